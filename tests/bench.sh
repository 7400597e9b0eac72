#!/bin/bash
# `make bench`: our runtime against its peers, in one run, and bench/RESULTS.md from it.
#  1. inference latency of every teacher in models/ and of a width-0.5 student of each (made with
#     `onnx-distill shrink`), batch 1 and 64 at 1 and 2 threads, batch 8 at 2: `onnx-distill bench`
#     against ONNX Runtime (tests/ort_bench.js) and PyTorch (tests/torch_bench.py, the same graph converted to
#     torch.nn and checked against `onnx-distill run` first). Peers are interleaved: in every
#     round each configuration runs ours, ORT and torch back to back (the order rotating from
#     round to round); a cell is the median over rounds of each run's median.
#  2. training throughput of each student (bench_train) against PyTorch training the same
#     converted graph (batch 64, L2 loss on random "teacher logits", Adam), interleaved likewise;
#     the convolutions' share of a step (bench_train's profile) as GFLOP/s against 3.
#  3. GFLOP/s of our convolution plans against one large XNNPACK convolution (bench_xnn_ceiling).
#  4. peak memory (/usr/bin/time -v) of `onnx-distill distill` against dataset + model bytes.
#  5. the same on an image folder: a resnet18 teacher at 224x224 and BENCH_IMAGES (20,000) JPEGs
#     (tests/bench_images.sh; BENCH_IMAGES=0 skips it; writing the images takes minutes, the
#     distillation about BENCH_IMAGE_TRAIN_LIMIT resnet18 steps more).
#  6. data-parallel distillation: 2 MPI ranks x 1 thread against 1 process (tests/bench_mpi.sh).
#  7. torchvision resnet18, mobilenet_v2, mobilenet_v3_small and efficientnet_b0 at 224x224 (random
#     weights, 1000 classes, exported with tests/export_torchvision.py's code and cached in
#     build/torchvision_224/): batch 1 at 1 and 2 threads, batch 8 and 64 at 2 threads, against ONNX
#     Runtime only, interleaved like 1. Batch 8 and 64 runs take seconds: they are timed with
#     --min-time BENCH_TV_MIN_TIME (0.1) and --min-runs BENCH_TV_MIN_RUNS (3) (warm-up: 3 runs and
#     up to 0.2 s). BENCH_TORCHVISION=0 skips this part.
# The whole run takes about 7 minutes on an idle 2-core machine (16 with a load average of 8-10
# from other work). Settings (environment):
#   BENCH_MIN_TIME (0.5 s per measurement)  BENCH_ROUNDS (3)  BENCH_TRAIN_ROUNDS (5: a training
#   cell is the median of 5 runs of each runtime, whose rates swing more than latencies here)
#   BENCH_TRAIN_SECONDS (1.5: training steps per measurement are chosen from the previous round's
#   rate to last about this long, 10 to 300 steps; the first round takes 10)
#   BENCH_TEACHERS (models/*.onnx)  BENCH_DISTILL_TEACHER (models/cnn.onnx, or the first teacher)
#   BENCH_TRAIN_LIMIT (5000)  BENCH_OUT (bench/RESULTS.md)  BENCH_KEEP=1 keeps the raw records.
#   BENCH_TORCHVISION (1; 0 skips 7)  BENCH_TV_MODELS (the four above)  BENCH_TV_MIN_TIME (0.1)
#   BENCH_TV_MIN_RUNS (3)  BENCH_TV_BATCHES ("1 8 64")
# Exit status 1 when a measurement failed (the report is still written, naming it); targets
# missed are reported, not failed: this is a benchmark, not a test.
set -u -o pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
BIN=$BUILD/onnx-distill
TRAIN_BIN=$BUILD/tests/bench_train
CEIL_BIN=$BUILD/tests/bench_xnn_ceiling
PY=/usr/bin/python3 # Debian's: torch and onnx are installed for it
MIN_TIME=${BENCH_MIN_TIME:-0.5}
ROUNDS=${BENCH_ROUNDS:-3}
TRAIN_ROUNDS=${BENCH_TRAIN_ROUNDS:-5}
TRAIN_SECONDS=${BENCH_TRAIN_SECONDS:-1.5}
TRAIN_LIMIT=${BENCH_TRAIN_LIMIT:-5000}
OUT=${BENCH_OUT:-bench/RESULTS.md}
DATA=/usr/share/datasets/fashion-mnist
read -r -a TEACHERS <<<"${BENCH_TEACHERS:-$(echo models/*.onnx)}"
export NODE_PATH="$PWD/tests/node_modules"

for f in "$BIN" "$TRAIN_BIN" "$CEIL_BIN" "${TEACHERS[@]}"; do
    [ -e "$f" ] || { echo "bench: $f is missing (run make bench)" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/od-bench.XXXXXX)
RAW=$tmp/raw.jsonl
failures=0
started=$(date +%s)
cleanup() {
    [ -n "${TORCH_PID:-}" ] && kill "$TORCH_PID" 2>/dev/null
    if [ "${BENCH_KEEP:-0}" = 1 ]; then echo "bench: raw records kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

note() { printf '[%4ds] %s\n' $(($(date +%s) - started)) "$*" >&2; }
# A JSON string of the argument (no control characters expected beyond newlines and tabs).
jstr() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/ }
    printf '"%s"' "$s"
}
record() { printf '%s\n' "$1" >>"$RAW"; }
# Runs a command whose stdout is JSON; prints it on one line, or null (the caller counts that
# as a failure: this runs in a subshell).
json_of() {
    local out
    if out=$("$@" 2>>"$tmp/errors.log") && [ -n "$out" ]; then
        printf '%s' "$out" | tr -d '\n'
    else
        echo "bench: failed: $*" >>"$tmp/errors.log"
        printf 'null'
    fi
}

# PyTorch stays up for the whole run (its import costs seconds); one command per line.
coproc TORCH { exec "$PY" tests/torch_bench.py serve --onnx-distill "$BIN" 2>>"$tmp/torch.log"; }
torch_cmd() {
    if ! { echo "$*" >&"${TORCH[1]}" && IFS= read -r TORCH_REPLY <&"${TORCH[0]}"; } 2>/dev/null; then
        TORCH_REPLY='{"error": "the PyTorch process is gone (see its log)"}'
    fi
    case $TORCH_REPLY in
    *'"error"'*) echo "bench: torch $*: $TORCH_REPLY" >>"$tmp/errors.log"; failures=$((failures + 1)) ;;
    esac
}

# One-thread runs of ours and ONNX Runtime go on one CPU (BENCH_PIN_CPU, default 0; -1: not
# pinned): on a shared host one CPU can run 1.5x slower than the other for minutes, and an
# unpinned run lands on either, so a pair of runs compared the CPUs as much as the runtimes.
PIN_CPU=${BENCH_PIN_CPU:-0}
command -v taskset >/dev/null || PIN_CPU=-1
pin() { # pin THREADS CMD...: CMD, on PIN_CPU when THREADS is 1
    local t=$1
    shift
    if [ "$t" = 1 ] && [ "$PIN_CPU" -ge 0 ]; then taskset -c "$PIN_CPU" "$@"; else "$@"; fi
}

record "{\"kind\": \"env\", \"date\": $(jstr "$(date -u '+%Y-%m-%d %H:%M UTC')"), \
\"cpu\": $(jstr "$(lscpu | sed -n 's/^Model name: *//p' | head -1)"), \
\"cpus\": $(nproc), \"load_start\": $(jstr "$(cut -d' ' -f1-3 /proc/loadavg)"), \
\"flags\": $(jstr "$(grep -o -w -E 'avx2|fma|avx512f|avx512_vnni|avx512_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"), \
\"torch\": $(jstr "$("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null)"), \
\"ort\": $(jstr "$(node -p 'require("onnxruntime-node/package.json").version' 2>/dev/null)"), \
\"git\": $(jstr "$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"), \
\"min_time\": $MIN_TIME, \"pin_cpu\": $PIN_CPU, \"rounds\": $ROUNDS, \"train_rounds\": $TRAIN_ROUNDS, \"train_seconds\": $TRAIN_SECONDS, \"train_limit\": $TRAIN_LIMIT}"

# --- models: the teachers and a width-0.5 student of each ---------------------------------
MODELS=()
mkdir -p "$tmp/students"
for t in "${TEACHERS[@]}"; do
    name=$(basename "$t" .onnx)
    MODELS+=("$t")
    record "{\"kind\": \"model\", \"path\": $(jstr "$t"), \"name\": $(jstr "$name"), \"role\": \"teacher\", \
\"nodes\": $(jstr "$("$BIN" inspect "$t" 2>/dev/null | sed -n 's/^nodes *//p')")}"
    s=$tmp/students/${name}_w0.5.onnx
    if "$BIN" shrink "$t" --width 0.5 -o "$s" >/dev/null 2>>"$tmp/errors.log"; then
        MODELS+=("$s")
        record "{\"kind\": \"model\", \"path\": $(jstr "$s"), \"name\": $(jstr "${name} w0.5"), \"role\": \"student\", \
\"nodes\": $(jstr "$("$BIN" inspect "$s" 2>/dev/null | sed -n 's/^nodes *//p')")}"
    else
        echo "bench: onnx-distill shrink $t --width 0.5 failed" >>"$tmp/errors.log"
        failures=$((failures + 1))
    fi
done
STUDENTS=("$tmp"/students/*.onnx)
[ -e "${STUDENTS[0]}" ] || STUDENTS=()

# PyTorch must compute what we compute before its times mean anything.
TORCH_OK=()
for m in "${MODELS[@]}"; do
    torch_cmd check "$m"
    record "{\"kind\": \"check\", \"path\": $(jstr "$m"), \"out\": $TORCH_REPLY}"
    case $TORCH_REPLY in *'"ok": true'*) TORCH_OK+=("$m") ;; esac
done
torch_ok() { local x; for x in "${TORCH_OK[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
note "${#MODELS[@]} models, ${#TORCH_OK[@]} converted to PyTorch and checked"

# --- 1. inference latency, interleaved ---------------------------------------------------
RUNTIMES=(ours ort torch)
for ((r = 0; r < ROUNDS; r++)); do
    note "inference, round $((r + 1)) of $ROUNDS"
    k=0
    for m in "${MODELS[@]}"; do
        for b in 1 8 64; do
            for t in 1 2; do
                [ "$b" = 8 ] && [ "$t" = 1 ] && continue # issue 16 asks batch 8 at 2 threads only
                for ((j = 0; j < 3; j++)); do
                    rt=${RUNTIMES[$(((j + r + k) % 3))]}
                    case $rt in
                    ours) out=$(json_of pin "$t" "$BIN" bench "$m" --json --batch "$b" --threads "$t" --min-time "$MIN_TIME") ;;
                    ort) out=$(json_of pin "$t" node tests/ort_bench.js --batch "$b" --threads "$t" --min-time "$MIN_TIME" "$m") ;;
                    torch)
                        torch_ok "$m" || continue
                        torch_cmd infer "$m" "$b" "$t" "$MIN_TIME"
                        out=$TORCH_REPLY
                        ;;
                    esac
                    [ "$out" = null ] && failures=$((failures + 1))
                    record "{\"kind\": \"infer\", \"rt\": \"$rt\", \"path\": $(jstr "$m"), \"round\": $r, \"batch\": $b, \"threads\": $t, \"out\": $out}"
                done
                k=$((k + 1))
            done
        done
    done
done

# --- 7. torchvision models at 224x224 against ONNX Runtime, interleaved -----------------------
TV_MODELS=()
if [ "${BENCH_TORCHVISION:-1}" != 0 ]; then
    TV_DIR=$BUILD/torchvision_224
    read -r -a tv_families <<<"${BENCH_TV_MODELS:-resnet18 mobilenet_v2 mobilenet_v3_small efficientnet_b0}"
    note "torchvision models at 224x224: exporting what $TV_DIR lacks"
    mkdir -p "$TV_DIR"
    "$PY" - "$TV_DIR" "${tv_families[@]}" >>"$tmp/errors.log" 2>&1 <<'PYEOF'
import sys, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, "tests")
import export_torchvision as e  # its weights: random, BatchNorm calibrated; cached by file name
import torch
torch.set_num_threads(1)
for f in sys.argv[2:]:
    make = getattr(e.tvm, f)
    e.FAMILIES[f + "_224"] = (lambda make=make: make(num_classes=1000), 224)
    e.export(f + "_224", 17, sys.argv[1])
PYEOF
    for f in "${tv_families[@]}"; do
        m=$TV_DIR/${f}_224_op17.onnx
        if [ -e "$m" ]; then
            TV_MODELS+=("$m")
            record "{\"kind\": \"model\", \"path\": $(jstr "$m"), \"name\": $(jstr "$f 224"), \"role\": \"torchvision\", \
\"nodes\": $(jstr "$("$BIN" inspect "$m" 2>/dev/null | sed -n 's/^nodes *//p')")}"
        else
            echo "bench: exporting torchvision $f at 224x224 failed" >>"$tmp/errors.log"
            failures=$((failures + 1))
        fi
    done
fi
TV_MIN_TIME=${BENCH_TV_MIN_TIME:-0.1}
TV_MIN_RUNS=${BENCH_TV_MIN_RUNS:-3}
read -r -a TV_BATCHES <<<"${BENCH_TV_BATCHES:-1 8 64}"
for ((r = 0; r < ROUNDS && ${#TV_MODELS[@]} > 0; r++)); do
    note "torchvision inference, round $((r + 1)) of $ROUNDS"
    k=0
    for m in "${TV_MODELS[@]}"; do
        for b in "${TV_BATCHES[@]}"; do
            tl="2"
            [ "$b" = 1 ] && tl="1 2"
            for t in $tl; do
                if [ "$b" = 1 ]; then opts=(--min-time "$MIN_TIME"); else opts=(--min-time "$TV_MIN_TIME" --min-runs "$TV_MIN_RUNS"); fi
                for ((j = 0; j < 2; j++)); do
                    if (((j + r + k) % 2 == 0)); then
                        rt=ours
                        out=$(json_of pin "$t" "$BIN" bench "$m" --json --batch "$b" --threads "$t" "${opts[@]}")
                    else
                        rt=ort
                        out=$(json_of pin "$t" node tests/ort_bench.js --batch "$b" --threads "$t" "${opts[@]}" "$m")
                    fi
                    [ "$out" = null ] && failures=$((failures + 1))
                    record "{\"kind\": \"infer\", \"rt\": \"$rt\", \"path\": $(jstr "$m"), \"round\": $r, \"batch\": $b, \"threads\": $t, \"out\": $out}"
                done
                k=$((k + 1))
            done
        done
    done
done

# --- 2. training throughput, interleaved --------------------------------------------------
# Steps for the next measurement of runtime/student/threads $1, from the rate it last reached.
declare -A TRAIN_RATE
train_steps() {
    local rate=${TRAIN_RATE[$1]:-}
    [ -n "$rate" ] || { echo 10; return; }
    awk -v r="$rate" -v s="$TRAIN_SECONDS" 'BEGIN { n = int(r * s / 64); print (n < 10 ? 10 : (n > 300 ? 300 : n)) }'
}
# Keeps the rate of a bench_train / torch_bench.py train answer $2 under key $1.
train_rate() {
    local r
    r=$(printf '%s' "$2" | sed -n 's/.*"samples_per_s": *\([0-9.e+]*\).*/\1/p')
    [ -n "$r" ] && TRAIN_RATE[$1]=$r
}
for ((r = 0; r < TRAIN_ROUNDS; r++)); do
    note "training, round $((r + 1)) of $TRAIN_ROUNDS"
    k=0
    for s in "${STUDENTS[@]}"; do
        for t in 1 2; do
            for ((j = 0; j < 2; j++)); do
                if (((j + r + k) % 2 == 0)); then
                    n=$(train_steps "ours|$s|$t")
                    out=$(json_of "$TRAIN_BIN" --student "$s" --batch 64 --threads "$t" --steps "$n" --json)
                    [ "$out" = null ] && failures=$((failures + 1))
                    train_rate "ours|$s|$t" "$out"
                    record "{\"kind\": \"train\", \"rt\": \"ours\", \"path\": $(jstr "$s"), \"round\": $r, \"threads\": $t, \"steps\": $n, \"out\": $out}"
                elif torch_ok "$s"; then
                    n=$(train_steps "torch|$s|$t")
                    torch_cmd train "$s" 64 "$t" "$n"
                    train_rate "torch|$s|$t" "$TORCH_REPLY"
                    record "{\"kind\": \"train\", \"rt\": \"torch\", \"path\": $(jstr "$s"), \"round\": $r, \"threads\": $t, \"steps\": $n, \"out\": $TORCH_REPLY}"
                fi
            done
            k=$((k + 1))
        done
    done
done
echo quit >&"${TORCH[1]}" 2>/dev/null

ceiling() {
    local out
    out=$(json_of "$CEIL_BIN" --threads 1,2 --min-time "$MIN_TIME" --json)
    [ "$out" = null ] && failures=$((failures + 1))
    record "{\"kind\": \"ceiling\", \"out\": $out}"
}

# --- 3. the XNNPACK convolution ceiling, one round before and one after the profiles -------
note "XNNPACK convolution ceiling"
ceiling

# Where our time goes: per-node profiles of the convolution models at batch 1 and 64, 1 thread.
note "profiles"
for m in "${MODELS[@]}"; do
    "$BIN" inspect "$m" 2>/dev/null | grep -q 'nodes.*Conv' || continue
    for b in 1 64; do
        "$BIN" bench "$m" --batch "$b" --threads 1 --min-time "$MIN_TIME" --profile >"$tmp/profile.txt" 2>&1 ||
            failures=$((failures + 1))
        record "{\"kind\": \"profile\", \"path\": $(jstr "$m"), \"batch\": $b, \"text\": $(jstr "$(cat "$tmp/profile.txt")")}"
    done
done
for m in "${TV_MODELS[@]}"; do
    "$BIN" bench "$m" --batch 1 --threads 1 --min-time "$MIN_TIME" --profile >"$tmp/profile.txt" 2>&1 ||
        failures=$((failures + 1))
    record "{\"kind\": \"profile\", \"path\": $(jstr "$m"), \"batch\": 1, \"text\": $(jstr "$(cat "$tmp/profile.txt")")}"
done
ceiling

# --- 4. peak memory of distill ----------------------------------------------------------
DT=${BENCH_DISTILL_TEACHER:-models/cnn.onnx}
[ -e "$DT" ] || DT=${TEACHERS[0]}
note "distill memory ($DT, 1 epoch, $TRAIN_LIMIT samples)"
dcmd=("$BIN" distill "$DT" --data fashion-mnist --width 0.5 --epochs 1 --train-limit "$TRAIN_LIMIT" --quiet -o "$tmp/distilled.onnx")
[ -x /usr/bin/time ] || echo "bench: /usr/bin/time is missing (Debian package time)" >>"$tmp/errors.log"
if /usr/bin/time -v -o "$tmp/time.txt" "${dcmd[@]}" >"$tmp/distill.txt" 2>&1; then
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$tmp/time.txt")
    wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$tmp/time.txt")
    data_bytes=0
    for f in "$DATA"/*-ubyte.gz; do data_bytes=$((data_bytes + $(gzip -dc "$f" | wc -c))); done
    record "{\"kind\": \"memory\", \"teacher\": $(jstr "$DT"), \"cmd\": $(jstr "onnx-distill distill $DT --data fashion-mnist --width 0.5 --epochs 1 --train-limit $TRAIN_LIMIT -o S.onnx"), \
\"rss_kb\": ${rss:-0}, \"wall\": $(jstr "$wall"), \"data_bytes\": $data_bytes, \"data_gz_bytes\": $(cat "$DATA"/*-ubyte.gz | wc -c), \
\"teacher_bytes\": $(stat -c %s "$DT"), \"student_bytes\": $(stat -c %s "$tmp/distilled.onnx"), \
\"train_limit\": $TRAIN_LIMIT, \"log\": $(jstr "$(tail -5 "$tmp/distill.txt")")}"
else
    echo "bench: ${dcmd[*]} failed: $(tail -3 "$tmp/distill.txt")" >>"$tmp/errors.log"
    failures=$((failures + 1))
fi

# --- 5. peak memory of distill on an image folder ---------------------------------------------
if [ "${BENCH_IMAGES:-20000}" -gt 0 ]; then
    note "distill memory on ${BENCH_IMAGES:-20000} images (resnet18 at 224x224)"
    if tests/bench_images.sh "$tmp/images.json" >"$tmp/images.txt" 2>&1; then
        record "$(cat "$tmp/images.json")"
    else
        echo "bench: tests/bench_images.sh failed: $(tail -3 "$tmp/images.txt")" >>"$tmp/errors.log"
        failures=$((failures + 1))
    fi
fi

record "{\"kind\": \"end\", \"load_end\": $(jstr "$(cut -d' ' -f1-3 /proc/loadavg)"), \"seconds\": $(($(date +%s) - started)), \"failures\": $failures}"
[ -s "$tmp/errors.log" ] && record "{\"kind\": \"errors\", \"text\": $(jstr "$(sort -u "$tmp/errors.log" | head -40)")}"

# --- the report ---------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
"$PY" - "$RAW" "$OUT" <<'EOF'
import json, os, statistics, sys

raw, out_path = sys.argv[1], sys.argv[2]
recs = []
for line in open(raw):
    try:
        recs.append(json.loads(line))
    except ValueError:
        pass
env = next(r for r in recs if r["kind"] == "env")
end = next((r for r in recs if r["kind"] == "end"), {})
models = [r for r in recs if r["kind"] == "model"]
by_path = {m["path"]: m for m in models}
facts = {}  # path -> (bytes, params, macs) from our bench output
lat = {}    # (path, batch, threads, rt) -> [median_ms per round]
for r in recs:
    if r["kind"] != "infer" or not r.get("out"):
        continue
    o = r["out"]
    if r["rt"] in ("ours", "ort"):
        if not isinstance(o, list) or not o or not o[0].get("results"):
            continue
        if r["rt"] == "ours":
            facts[r["path"]] = (o[0]["bytes"], o[0]["params"], o[0]["macs"])
        res = o[0]["results"][0]
    else:
        if "median_ms" not in o:
            continue
        res = o
    lat.setdefault((r["path"], r["batch"], r["threads"], r["rt"]), []).append(res["median_ms"])
train = {}
conv_ms = {}  # (path, threads) -> the convolutions' ms per training step (bench_train's profile)
for r in recs:
    if r["kind"] == "train" and isinstance(r.get("out"), dict) and r["out"].get("samples_per_s", 0) > 0:
        train.setdefault((r["path"], r["threads"], r["rt"]), []).append(r["out"]["samples_per_s"])
        if r["rt"] == "ours" and "conv_ms_per_step" in r["out"]:
            conv_ms.setdefault((r["path"], r["threads"]), []).append(r["out"]["conv_ms_per_step"])

def med(xs):
    return statistics.median(xs) if xs else None

def ms(x):
    return "—" if x is None else (f"{x:.3f}" if x < 10 else f"{x:.1f}")

def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b

def fmt_ratio(x):
    return "—" if x is None else f"{x:.2f}x"

def name(p):
    return by_path[p]["name"] if p in by_path else os.path.basename(p)

def human(n):
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"

lines = []
w = lines.append
met, missed = [], []
w("# onnx-distill benchmarks\n")
w(f"Written by `make bench` (tests/bench.sh) on {env['date']}, git {env['git'] or '?'}.\n")
w(f"- CPU: {env['cpu']}, {env['cpus']} CPUs ({env['flags'].strip()})")
w(f"- peers: ONNX Runtime for Node.js {env['ort'] or '?'} (tests/ort_bench.js), PyTorch {env['torch'] or '?'} "
  "(tests/torch_bench.py: the same ONNX graph converted to torch.nn, eager mode, "
  "BatchNormalization kept as a layer, `torch.no_grad()` and eval() for inference)")
w(f"- load average at start {env['load_start']}, at end {end.get('load_end', '?')}; run time {end.get('seconds', '?')} s. "
  "The machine may be shared: read ratios (measured seconds apart, interleaved) rather than absolute times.")
loads = [float(x) for x in (env["load_start"].split()[:1] + end.get("load_end", "").split()[:1])]
if loads and max(loads) > 0.5 * env["cpus"]:
    w(f"- **warning: the machine was busy with other work (1-minute load average up to {max(loads):.1f} on "
      f"{env['cpus']} CPUs)**: runs get preempted, 2-thread runs worst (a thread pool waits for a descheduled "
      "worker); absolute numbers and 2-thread ratios are unreliable. Re-run on an idle machine to judge the targets.")
w(f"- settings: --min-time {env['min_time']} s per measurement, {env['rounds']} rounds, "
  f"training: {env.get('train_rounds', env['rounds'])} rounds of measurements of about {env['train_seconds']} s (10 to 300 steps after 5 warm-up steps; 10 in the first round); a cell is the median over rounds of each run's median.")
w("- one-thread runs of ours and ONNX Runtime " + (f"pinned to CPU {env['pin_cpu']} (taskset): on a shared host one CPU can run "
  "1.5x slower than the other for minutes, and an unpinned pair compared the CPUs as much as the runtimes; PyTorch (one "
  "long-lived process) is not pinned.\n" if env.get('pin_cpu', -1) >= 0 else "not pinned (BENCH_PIN_CPU=-1 or no taskset).\n"))

w("## Commands\n")
w("```")
w(f"onnx-distill shrink TEACHER --width 0.5 -o STUDENT")
w(f"onnx-distill bench MODEL --json --batch B --threads T --min-time {env['min_time']}")
w(f"node tests/ort_bench.js --batch B --threads T --min-time {env['min_time']} MODEL")
w(f"/usr/bin/python3 tests/torch_bench.py infer --batch B --threads T --min-time {env['min_time']} MODEL   (served, same code)")
w(f"build/tests/bench_train --student STUDENT --batch 64 --threads T --steps N --json")
w(f"/usr/bin/python3 tests/torch_bench.py train --batch 64 --threads T --steps N STUDENT")
w(f"build/tests/bench_xnn_ceiling --threads 1,2 --min-time {env['min_time']} --json")
mem = next((r for r in recs if r["kind"] == "memory"), None)
if mem:
    w(f"/usr/bin/time -v {mem['cmd']}")
w("```\n")

# Conversion checks
bad = [r for r in recs if r["kind"] == "check" and not (isinstance(r["out"], dict) and r["out"].get("ok"))]
checks = [r for r in recs if r["kind"] == "check" and isinstance(r["out"], dict) and r["out"].get("ok")]
worst = max((r["out"]["max_rel_err"] for r in checks), default=None)
w("## Models\n")
w("| model | role | nodes | bytes | params | MACs/sample | torch conversion vs `onnx-distill run` |")
w("|---|---|---|---:|---:|---:|---|")
for m in models:
    f = facts.get(m["path"])
    c = next((r["out"] for r in recs if r["kind"] == "check" and r["path"] == m["path"]), None)
    cs = ("max |Δ|/(1+|ours|) = %.1e ≤ 1e-4" % c["max_rel_err"]) if c and c.get("ok") else \
         ("FAILED: " + (c.get("error") or "max |Δ|/(1+|ours|) = %.1e" % c.get("max_rel_err", float("nan")))) if c else "—"
    w(f"| {m['name']} | {m['role']} | {m['nodes']} | {f[0]:,} | {f[1]:,} | {f[2]:,} | {cs} |" if f else
      f"| {m['name']} | {m['role']} | {m['nodes']} | — | — | — | {cs} |")
w("")

def judge_latency(what, rx, target):
    """A latency ratio against ORT's, judged against target (at most): the table cell, and the
    line in the Targets list."""
    if rx is None:
        missed.append(f"inference {what}: not measured")
        return f"≤ {target:.2f}: not measured"
    if rx <= target:
        met.append(f"inference {what}")
        return f"≤ {target:.2f}: **met**"
    missed.append(f"inference {what}: {rx:.2f}x ORT (target ≤ {target:.2f}x)")
    return f"≤ {target:.2f}: **missed**"

def judge_at_least(what, label, v, target, unmeasured, why):
    """A rate judged against target (at least): the table cell (label: the target as shown), and
    the line in the Targets list."""
    if v is None:
        missed.append(f"{what}: {unmeasured}")
        return f"{label}: not measured"
    if v >= target:
        met.append(what)
        return f"{label}: **met**"
    missed.append(f"{what}: {why}")
    return f"{label}: **missed**"

# 1. inference
w("## 1. Inference latency\n")
w("Median ms per run (batch of B samples). ours/ORT and ours/torch below 1 mean we are faster. "
  "Targets, against ONNX Runtime: batch 1, 1 thread ≤ 0.8x for models under 10 M MACs "
  "per sample (issue 3), ≤ 0.95x for larger; batch 1, 2 threads ≤ 0.9x on the teachers (issue 16); "
  "batch 8 (teachers, issue 16) and 64, 2 threads ≤ 1.0x.\n")
w("| model | batch | threads | ours ms | ORT ms | torch ms | ours/ORT | target | ours/torch |")
w("|---|---:|---:|---:|---:|---:|---:|---|---:|")
for m in models:
    if m["role"] == "torchvision":
        continue
    p = m["path"]
    macs = facts.get(p, (0, 0, 0))[2]
    for b, t in ((1, 1), (1, 2), (8, 2), (64, 1), (64, 2)):
        o, x, pt = (med(lat.get((p, b, t, rt), [])) for rt in ("ours", "ort", "torch"))
        if b == 8 and o is None and x is None:
            continue  # an older run without batch 8
        rx = ratio(o, x)
        target = None
        if b == 1 and t == 1:
            target = 0.8 if macs < 10e6 else 0.95
        elif b == 1 and t == 2 and m["role"] == "teacher":
            target = 0.9
        elif (b == 64 or (b == 8 and m["role"] == "teacher")) and t == 2:
            target = 1.0
        ts = "" if target is None else judge_latency(f"{m['name']} b{b} t{t}", rx, target)
        w(f"| {m['name']} | {b} | {t} | {ms(o)} | {ms(x)} | {ms(pt)} | {fmt_ratio(rx)} | {ts} | {fmt_ratio(ratio(o, pt))} |")
w("")

# 1b. torchvision at 224x224
tv = [m for m in models if m["role"] == "torchvision"]
if tv:
    w("## 1b. Inference latency of torchvision models at 224x224\n")
    w("torchvision's resnet18, mobilenet_v2, mobilenet_v3_small, efficientnet_b0 (random weights, 1000 classes, "
      "opset 17), against ONNX Runtime, interleaved. Batch 1: --min-time as above; batch 8 and 64: "
      f"--min-time {os.environ.get('BENCH_TV_MIN_TIME', '0.1')} --min-runs {os.environ.get('BENCH_TV_MIN_RUNS', '3')}. "
      "Targets (issue 16): batch 1, 2 threads ≤ 0.9x ORT; batch 1, 1 thread ≤ 0.95x; batch 8 and 64, 2 threads ≤ 1.0x.\n")
    w("| model | batch | threads | ours ms | ORT ms | ours/ORT | target | ours GFLOP/s |")
    w("|---|---:|---:|---:|---:|---:|---|---:|")
    for m in tv:
        p = m["path"]
        macs = facts.get(p, (0, 0, 0))[2]
        for b, t, target in ((1, 1, 0.95), (1, 2, 0.9), (8, 2, 1.0), (64, 2, 1.0)):
            o, x = (med(lat.get((p, b, t, rt), [])) for rt in ("ours", "ort"))
            if o is None and x is None:
                continue
            rx = ratio(o, x)
            ts = judge_latency(f"{m['name']} b{b} t{t}", rx, target)
            g = "—" if o is None else f"{2 * macs * b / (o * 1e-3) * 1e-9:.1f}"
            w(f"| {m['name']} | {b} | {t} | {ms(o)} | {ms(x)} | {fmt_ratio(rx)} | {ts} | {g} |")
    w("")

# the ceiling: XNNPACK's convolution alone, best shape per thread count (table in section 3)
ceil = {}
for r in recs:
    if r["kind"] == "ceiling" and isinstance(r.get("out"), list):
        for c in r["out"]:
            ceil.setdefault((c["shape"], c["threads"]), []).append(c["gflops"])
cmax = {t: max([max(v) for (shape, tt), v in ceil.items() if tt == t] or [0]) for t in (1, 2)}

# 2. training
w("## 2. Training throughput (batch 64)\n")
w("Samples/s of forward + L2 loss + backward + Adam step on the student (its BatchNormalization "
  "layers in training mode). Target (issue 16): ours ≥ 3x PyTorch at 2 threads. conv GFLOP/s: the "
  "convolutions' work in a step (forward, input and weight gradients: 3 x 2 x MACs x 64; MACs of "
  "Conv, Gemm and MatMul) over their time in bench_train's per-node profile, and its share of "
  "XNNPACK's convolution alone at the same thread count (section 3); target (issue 16): ≥ 50% at "
  "2 threads on the resnet students.\n")
w("| student | threads | ours samples/s | torch samples/s | ours/torch | target | conv GFLOP/s (share of ceiling) | target |")
w("|---|---:|---:|---:|---:|---|---:|---|")
for m in models:
    if m["role"] != "student":
        continue
    macs = facts.get(m["path"], (0, 0, 0))[2]
    for t in (1, 2):
        o, pt = med(train.get((m["path"], t, "ours"), [])), med(train.get((m["path"], t, "torch"), []))
        rx = ratio(o, pt)
        ts = "" if t != 2 else judge_at_least(f"training {m['name']} t2", "≥ 3", rx, 3, "not measured",
                                              rx is not None and f"{rx:.2f}x torch (target ≥ 3x)")
        cm, cs, ct = med(conv_ms.get((m["path"], t), [])), "—", ""
        if cm and macs and "Conv" in m["nodes"]:
            g = 6 * macs * 64 / (cm * 1e-3) * 1e-9
            share = g / cmax[t] if cmax[t] else None
            cs = f"{g:.1f}" + (f" ({100 * share:.0f}%)" if share is not None else "")
            if t == 2 and m["name"].startswith("resnet"):
                ct = judge_at_least(f"training conv rate {m['name']} t2", "≥ 50%", share, 0.5, "no ceiling measured",
                                    share is not None and f"{100 * share:.0f}% of XNNPACK's convolution (target ≥ 50%)")
        f = lambda v: "—" if v is None else f"{v:,.0f}"
        w(f"| {m['name']} | {t} | {f(o)} | {f(pt)} | {fmt_ratio(rx)} | {ts} | {cs} | {ct} |")
w("")

# 3. GFLOP/s
conv_desc = {c["shape"]: c["conv"] for r in recs if r["kind"] == "ceiling" and isinstance(r.get("out"), list) for c in r["out"]}
w("## 3. GFLOP/s against XNNPACK's convolution alone\n")
w("One XNNPACK convolution timed alone (build/tests/bench_xnn_ceiling), the median of its runs, "
  "the better of two passes (one before, one after the profiles). The ceiling at a thread count is "
  "the best of these shapes.\n")
w("| convolution | 1 thread GFLOP/s | 2 threads GFLOP/s |")
w("|---|---:|---:|")
for shape in conv_desc:
    g = [max(ceil.get((shape, t), [0])) for t in (1, 2)]
    w(f"| {shape}: {conv_desc[shape]} | {g[0]:.1f} | {g[1]:.1f} |")
w("")
w("Our plans (2 x MACs x batch / median latency; all ops counted in the time, only Conv/Gemm/MatMul in the "
  "MACs, counted as a direct convolution does them), as GFLOP/s and as a share of the ceiling at the same "
  "thread count. A share above 100% comes from our own kernels (conv_wide's tile is faster than XNNPACK's "
  "here) and from 3x3 layers on conv_winograd, which does 4/9 of the multiplications counted (these are "
  "effective GFLOP/s), or from the ceiling's runs slowed more than ours by other work on the machine:\n")
w("| model | MACs/sample | b1 t1 | b1 t2 | b64 t1 | b64 t2 |")
w("|---|---:|---:|---:|---:|---:|")
for m in models:
    if "Conv" not in m["nodes"] or m["path"] not in facts:
        continue
    macs = facts[m["path"]][2]
    cells = []
    for b in (1, 64):
        for t in (1, 2):
            o = med(lat.get((m["path"], b, t, "ours"), []))
            if o is None:
                cells.append("—")
            else:
                g = 2 * macs * b / (o * 1e-3) * 1e-9
                cells.append(f"{g:.1f} ({100 * g / cmax[t]:.0f}%)" if cmax[t] else f"{g:.1f}")
    w(f"| {m['name']} | {human(macs)} | " + " | ".join(cells) + " |")
w("")

# 4. memory
w("## 4. Peak memory of distill\n")
if mem:
    rss = mem["rss_kb"] * 1024
    base = mem["data_bytes"] + mem["teacher_bytes"] + mem["student_bytes"]
    w(f"`{mem['cmd']}` (wall {mem['wall']}):\n")
    w("| peak RSS | dataset (IDX, uncompressed) | teacher file | student file | dataset + models | RSS / (dataset + models) |")
    w("|---:|---:|---:|---:|---:|---:|")
    w(f"| {rss / 2**20:.1f} MiB | {mem['data_bytes'] / 2**20:.1f} MiB | {mem['teacher_bytes'] / 2**20:.2f} MiB | "
      f"{mem['student_bytes'] / 2**20:.2f} MiB | {base / 2**20:.1f} MiB | {rss / base:.2f}x |")
    w(f"\n(the .gz files are {mem['data_gz_bytes'] / 2**20:.1f} MiB; the whole dataset is loaded, "
      f"--train-limit {mem['train_limit']} only limits the samples trained on)\n")
else:
    w("not measured (distill failed; see Errors)\n")

# 5. memory on an image folder
img = next((r for r in recs if r["kind"] == "image_memory"), None)
if img:
    w("## 5. Peak memory of distill on an image folder\n")
    base = img["teacher_bytes"] + img["student_bytes"] + img["batch_bytes"]
    w(f"`/usr/bin/time -v {img['cmd']}` on {img['images']:,} JPEGs in {img['classes']} classes, resnet18 teacher "
      f"(torchvision, random weights) at 224x224 (wall {img['wall']}):\n")
    w("| peak RSS | decoded images (uint8) | teacher file | student file | one input batch | RSS / (models + one batch) | target |")
    w("|---:|---:|---:|---:|---:|---:|---|")
    dec = img["images"] * 3 * 224 * 224
    w(f"| {img['rss_bytes'] / 2**20:.0f} MiB | {dec / 2**20:.0f} MiB | {img['teacher_bytes'] / 2**20:.1f} MiB | "
      f"{img['student_bytes'] / 2**20:.1f} MiB | {img['batch_bytes'] / 2**20:.1f} MiB | {img['rss_bytes'] / base:.1f}x | "
      f"{'met' if img['rss_bytes'] <= 1.5e9 else 'missed'} (≤ 1.5 GB) |")
    w(f"\n(all {img['images']:,} images are decoded into the store; --train-limit {img['train_limit']} limits the "
      "samples trained on; most of the RSS is the trainer's activations, about 42 MB per sample of batch)\n")

# summary
w("## Targets\n")
w(f"{len(met)} met, {len(missed)} missed.\n")
for s in missed:
    w(f"- missed: {s}")
if met:
    w(f"- met: " + "; ".join(met))
w("")

profiles = [r for r in recs if r["kind"] == "profile"]
if profiles:
    w("## Where our time goes (onnx-distill bench --profile, 1 thread)\n")
    for r in profiles:
        w(f"<details><summary>{name(r['path'])}, batch {r['batch']}</summary>\n\n```\n{r['text']}\n```\n</details>\n")
errs = next((r for r in recs if r["kind"] == "errors"), None)
if errs:
    w("## Errors\n\n```\n" + errs["text"] + "\n```\n")

text = "\n".join(lines).replace("/tmp/od-bench", "TMP/od-bench")
open(out_path + ".tmp", "w").write(text)
os.replace(out_path + ".tmp", out_path)
print(text)
EOF
rc=$?
# 5. data-parallel throughput under MPI, appended
tests/bench_mpi.sh >>"$OUT" || failures=$((failures + 1))
note "wrote $OUT"
[ $rc -eq 0 ] && [ $failures -eq 0 ]

#!/bin/bash
# `make paper`: Sau & Balasubramanian's comparison on Fashion-MNIST with the bundled CNN teacher
# and a shallow student (width 0.25, depth 0.5: one of the two same-shape conv layers dropped):
# labels alone; the plain teacher (sigma 0); the noisy teacher over sigma x alpha; 3 seeds each.
# Each run's JSON report gives the test accuracy, the training time (epochs only, teacher logits
# apart) and the batch-1 latency. Writes bench/paper.jsonl (one line a run), bench/PAPER.md
# (mean +- std table) and bench/paper.svg (accuracy against sigma).
#   EPOCHS=5 SEEDS="1 2 3" SIGMAS="0.1 0.2 0.4 0.8" ALPHAS="0.25 0.5 1.0" LR_LABELS=0.002 LR_L2=0.01
#   WIDTH=0.25 DEPTH=0.5 TRAIN_LIMIT=0 THREADS=2 tests/paper.sh
# THREADS is every run's --threads: with THREADS=1 two parts (PARTS=grid, PARTS=auto with BENCH
# apart) can run side by side on 2 cores.
# Issue 17's tables follow the grid, each a PART (PARTS="grid auto regime lowlabel teachers"):
#   auto      --sigma auto --alpha auto beside the grid (same student, epochs, seeds): its test
#             accuracy against the best grid point, its training time (search + final) against
#             the grid's; AUTO_BUDGET (default 2.5 x EPOCHS, distill's); its labels-only candidate at
#             --lr-labels LR_LABELS, the others at LR_L2.
#   regime    training-set size REGIME_SIZES ("1000 5000 0", 0: all) x student REGIME_STUDENTS
#             ("conv mlp half": the grid's shallow conv student, a 784-800-800-10 MLP made here,
#             --width 0.5) for REGIME_EPOCHS (20: long enough to overfit the small sets); per cell
#             labels alone, the plain teacher, REGIME_NOISE ("0.1:0.5 0.4:1.0", sigma:alpha) and
#             labels + logits (--label-weight REGIME_LW, 0.5), on each loss's learning rate.
#   lowlabel  LOW_LABELS (1000) labelled images, alone (labels; plain teacher) for LOW_EPOCHS_SMALL
#             (50) epochs, and with the other 59,000 training images as --unlabeled (plain teacher;
#             labels + logits) for LOW_EPOCHS (5).
#   teachers  models/cnn.onnx alone against cnn + resnet averaged and drawn per sample.
# Each part's rows go to bench/paper.jsonl with "table"; PAPER.md gets one table each, with its
# wall time. A part not in PARTS keeps the rows an earlier run wrote. BENCH=DIR writes there instead
# of bench/ (a reduced run that must not replace the full one).
set -u
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/onnx-distill
EPOCHS=${EPOCHS:-5}
SEEDS=${SEEDS:-"1 2 3"}
SIGMAS=${SIGMAS:-"0.1 0.2 0.4 0.8"}
ALPHAS=${ALPHAS:-"0.25 0.5 1.0"}
WIDTH=${WIDTH:-0.25}
DEPTH=${DEPTH:-0.5}
# Each loss at the learning rate a one-seed sweep found best for this student (README): regressing
# raw logits wants larger steps than cross-entropy on labels, which was flat from 0.002 to 0.01.
LR_LABELS=${LR_LABELS:-0.002}
LR_L2=${LR_L2:-0.01}
THREADS=${THREADS:-2}
PARTS=${PARTS:-"grid auto regime lowlabel teachers"}
AUTO_BUDGET=${AUTO_BUDGET:-$(awk "BEGIN { print 2.5 * $EPOCHS }")}
REGIME_SIZES=${REGIME_SIZES:-"1000 5000 0"}
REGIME_STUDENTS=${REGIME_STUDENTS:-"conv mlp half"}
REGIME_EPOCHS=${REGIME_EPOCHS:-20}
REGIME_NOISE=${REGIME_NOISE:-"0.1:0.5 0.4:1.0"}
REGIME_LW=${REGIME_LW:-0.5}
LOW_LABELS=${LOW_LABELS:-1000}
LOW_EPOCHS=${LOW_EPOCHS:-5}
LOW_EPOCHS_SMALL=${LOW_EPOCHS_SMALL:-50}
LOW_UNLABELED=${LOW_UNLABELED:-0} # 0: all the other training images
LATENCY=${LATENCY:-full}          # the grid's: off skips the latency column
LIMIT=()
[ "${TRAIN_LIMIT:-0}" != 0 ] && LIMIT=(--train-limit "$TRAIN_LIMIT")
[ "${TEST_LIMIT:-0}" != 0 ] && LIMIT+=(--test-limit "$TEST_LIMIT")
TLIMIT=()
[ "${TEST_LIMIT:-0}" != 0 ] && TLIMIT=(--test-limit "$TEST_LIMIT")
GRID=(models/cnn.onnx --width "$WIDTH" --depth "$DEPTH" --epochs "$EPOCHS" "${LIMIT[@]}")
BENCH=${BENCH:-bench} # where paper.jsonl, PAPER.md and paper.svg go
OUT=$BENCH/paper.jsonl
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$BENCH"
NEW=$OUT.new.$$ # this run's rows; parts run side by side (same BENCH) each have their own
: >"$NEW"
n=0
failed=0
run() { # table cell label seed distill-args...
    local table=$1 cell=$2 label=$3 seed=$4
    shift 4
    n=$((n + 1))
    if ! "$BIN" distill "$@" --data fashion-mnist --threads "$THREADS" --seed "$seed" --quiet -o "$T/s.onnx" \
        --report "$T/r.json" >"$T/out" 2>"$T/err"; then
        echo "[$n] FAILED $table $cell $label seed $seed: $(tail -n 1 "$T/err")"
        failed=$((failed + 1))
        return
    fi
    /usr/bin/python3 - "$T/r.json" "$table" "$cell" "$label" "$seed" "$n" >>"$NEW" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
d, s = r["distill"], r["models"][1]
lat = [x["median_ms"] for x in s.get("latency", []) if x["batch"] == 1 and x["threads"] == 1]
search = d.get("search", {}).get("seconds", 0.0)
row = {"table": sys.argv[2], "cell": sys.argv[3], "config": sys.argv[4], "seed": int(sys.argv[5]),
       "test_accuracy": s["accuracy"], "teacher_accuracy": d["teacher_test_accuracy"], "agreement": s["agreement"],
       "train_seconds": d["time"]["epochs"]["seconds"] + search, "search_seconds": search,
       "teacher_logits_seconds": d["time"]["teacher_logits"]["seconds"], "best_epoch": d["best_epoch"],
       "n_train": d["n_train"], "n_unlabeled": d.get("n_unlabeled", 0), "params": s["params"], "macs": s["macs"],
       "latency_ms": lat[0] if lat else None, "sigma": d["options"]["sigma"], "alpha": d["options"]["alpha"],
       "loss": d["options"]["loss"], "lr": d["options"]["lr"], "threads": d["options"]["threads"], "label_weight": d["options"]["label_weight"],
       "search_why": d.get("search", {}).get("why")}
print(json.dumps(row))
print("[%s] %s %s %s seed %s: accuracy %.2f%%, training %.1f s" % (sys.argv[6], row["table"], row["cell"], row["config"],
      row["seed"], 100 * row["test_accuracy"], row["train_seconds"]), file=sys.stderr)
PY
}
wall=()
part() { [[ " $PARTS " == *" $1 "* ]]; }
if part grid; then
    t0=$SECONDS
    for seed in $SEEDS; do
        run grid "" "labels only" "$seed" "${GRID[@]}" --loss labels --lr "$LR_LABELS" --latency "$LATENCY"
        run grid "" "teacher, sigma 0" "$seed" "${GRID[@]}" --sigma 0 --lr "$LR_L2" --latency "$LATENCY"
        for s in $SIGMAS; do
            for a in $ALPHAS; do
                run grid "" "sigma $s, alpha $a" "$seed" "${GRID[@]}" --sigma "$s" --alpha "$a" --lr "$LR_L2" --latency "$LATENCY"
            done
        done
    done
    wall+=("grid=$((SECONDS - t0))")
fi
if part auto; then
    t0=$SECONDS
    for seed in $SEEDS; do
        run auto "" "sigma auto, alpha auto" "$seed" "${GRID[@]}" --sigma auto --alpha auto --search-budget "$AUTO_BUDGET" --lr "$LR_L2" \
            --lr-labels "$LR_LABELS" --latency off
    done
    wall+=("auto=$((SECONDS - t0))")
fi
if part regime; then
    t0=$SECONDS
    # the paper's MNIST student: 784-800-800-10, PyTorch's default initialisation, seeded
    [[ " $REGIME_STUDENTS " == *" mlp "* ]] && /usr/bin/python3 - "$T/mlp800.onnx" <<'PY'
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
rng = np.random.default_rng(17)
def lin(name, i, o):
    b = 1 / np.sqrt(i)
    return [numpy_helper.from_array(rng.uniform(-b, b, (o, i)).astype(np.float32), name + ".w"),
            numpy_helper.from_array(rng.uniform(-b, b, o).astype(np.float32), name + ".b")]
inits = lin("fc1", 784, 800) + lin("fc2", 800, 800) + lin("fc3", 800, 10)
nodes = [helper.make_node("Flatten", ["input"], ["x0"], axis=1),
         helper.make_node("Gemm", ["x0", "fc1.w", "fc1.b"], ["h1"], transB=1), helper.make_node("Relu", ["h1"], ["r1"]),
         helper.make_node("Gemm", ["r1", "fc2.w", "fc2.b"], ["h2"], transB=1), helper.make_node("Relu", ["h2"], ["r2"]),
         helper.make_node("Gemm", ["r2", "fc3.w", "fc3.b"], ["logits"], transB=1)]
g = helper.make_graph(nodes, "mlp800", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
PY
    for size in $REGIME_SIZES; do
        lim=()
        [ "$size" != 0 ] && lim=(--train-limit "$size")
        for st in $REGIME_STUDENTS; do
            case $st in
            conv) stu=(--width "$WIDTH" --depth "$DEPTH") ;;
            mlp) stu=(--student "$T/mlp800.onnx") ;;
            half) stu=(--width 0.5) ;;
            esac
            cell="$([ "$size" = 0 ] && echo all || echo "$size"), $st"
            R=(models/cnn.onnx "${stu[@]}" "${lim[@]}" "${TLIMIT[@]}" --epochs "$REGIME_EPOCHS" --latency off)
            for seed in $SEEDS; do
                run regime "$cell" "labels only" "$seed" "${R[@]}" --loss labels --lr "$LR_LABELS"
                run regime "$cell" "teacher, sigma 0" "$seed" "${R[@]}" --sigma 0 --lr "$LR_L2"
                for sa in $REGIME_NOISE; do
                    run regime "$cell" "sigma ${sa%%:*}, alpha ${sa##*:}" "$seed" "${R[@]}" --sigma "${sa%%:*}" --alpha "${sa##*:}" --lr "$LR_L2"
                done
                run regime "$cell" "labels + logits (weight $REGIME_LW)" "$seed" "${R[@]}" --sigma 0 --label-weight "$REGIME_LW" --lr "$LR_L2"
            done
        done
    done
    wall+=("regime=$((SECONDS - t0))")
fi
if part lowlabel; then
    t0=$SECONDS
    /usr/bin/python3 - "$T/unlabeled.npz" "$LOW_LABELS" "$LOW_UNLABELED" <<'PY'
import gzip, sys, numpy as np
raw = gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").read()
x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
k, u = int(sys.argv[2]), int(sys.argv[3])
x = x[k:k + u] if u > 0 else x[k:]
np.savez(sys.argv[1], x_train=x, x_test=x[:1])  # the training images after the labelled ones, labels dropped
PY
    L=(models/cnn.onnx --width "$WIDTH" --depth "$DEPTH" --train-limit "$LOW_LABELS" "${TLIMIT[@]}" --latency off)
    cell="$LOW_LABELS labelled"
    for seed in $SEEDS; do
        run lowlabel "$cell" "labels only" "$seed" "${L[@]}" --epochs "$LOW_EPOCHS_SMALL" --loss labels --lr "$LR_LABELS"
        run lowlabel "$cell" "teacher, sigma 0" "$seed" "${L[@]}" --epochs "$LOW_EPOCHS_SMALL" --sigma 0 --lr "$LR_L2"
        run lowlabel "$cell" "teacher, sigma 0, + unlabelled" "$seed" "${L[@]}" --epochs "$LOW_EPOCHS" --sigma 0 --lr "$LR_L2" \
            --unlabeled "$T/unlabeled.npz"
        run lowlabel "$cell" "labels + logits, + unlabelled" "$seed" "${L[@]}" --epochs "$LOW_EPOCHS" --sigma 0 --label-weight "$REGIME_LW" \
            --lr "$LR_L2" --unlabeled "$T/unlabeled.npz"
    done
    wall+=("lowlabel=$((SECONDS - t0))")
fi
if part teachers; then
    t0=$SECONDS
    for seed in $SEEDS; do
        run teachers "" "one teacher (cnn)" "$seed" "${GRID[@]}" --sigma 0 --lr "$LR_L2" --latency off
        run teachers "" "cnn + resnet, mean" "$seed" "${GRID[@]}" models/resnet.onnx --sigma 0 --lr "$LR_L2" --latency off
        run teachers "" "cnn + resnet, draw" "$seed" "${GRID[@]}" models/resnet.onnx --teachers draw --sigma 0 --lr "$LR_L2" --latency off
    done
    wall+=("teachers=$((SECONDS - t0))")
fi
if [ "$failed" != 0 ]; then
    echo "paper: $failed of $n runs failed; $BENCH/ left as it was (this run's rows: $NEW)" >&2
    exit 1
fi
# this run's cells (a part, or one of its cells: regime size x student) replace their own rows
# only; the others keep theirs, so the regime map can be run a cell at a time. Under a lock, so a
# part finishing beside another (THREADS=1, same BENCH) keeps the other's rows.
exec 9>"$OUT.lock"
flock 9
cp "$NEW" "$T/this.jsonl"
if [ -s "$OUT" ]; then
    /usr/bin/python3 - "$OUT" "$NEW" >>"$NEW" <<'PY'
import json, sys
key = lambda r: (r.get("table", "grid"), r.get("cell", ""))
mine = {key(json.loads(l)) for l in open(sys.argv[2]) if l.strip()}
for line in open(sys.argv[1]):
    if line.strip() and key(json.loads(line)) not in mine:
        print(line.rstrip())
PY
fi
mv "$NEW" "$OUT"
printf '%s\n' "${wall[@]}" >"$T/wall"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
envs="EPOCHS=$EPOCHS SEEDS=\"$SEEDS\" SIGMAS=\"$SIGMAS\" ALPHAS=\"$ALPHAS\" LR_LABELS=$LR_LABELS LR_L2=$LR_L2 THREADS=$THREADS WIDTH=$WIDTH DEPTH=$DEPTH TRAIN_LIMIT=${TRAIN_LIMIT:-0} TEST_LIMIT=${TEST_LIMIT:-0} LATENCY=$LATENCY PARTS=\"$PARTS\" AUTO_BUDGET=$AUTO_BUDGET REGIME_SIZES=\"$REGIME_SIZES\" REGIME_STUDENTS=\"$REGIME_STUDENTS\" REGIME_EPOCHS=$REGIME_EPOCHS REGIME_NOISE=\"$REGIME_NOISE\" REGIME_LW=$REGIME_LW LOW_LABELS=$LOW_LABELS LOW_UNLABELED=$LOW_UNLABELED LOW_EPOCHS=$LOW_EPOCHS LOW_EPOCHS_SMALL=$LOW_EPOCHS_SMALL tests/paper.sh"
settings="$(date -u +%Y-%m-%d), $cpu, $(nproc) cores: \`$envs\` ($((SECONDS / 60)) min). Each run: \`onnx-distill distill models/cnn.onnx --data fashion-mnist --width $WIDTH --depth $DEPTH --epochs $EPOCHS --threads $THREADS --seed S\` plus \`--loss labels --lr $LR_LABELS\`, \`--sigma 0 --lr $LR_L2\` or \`--sigma σ --alpha α --lr $LR_L2\` (Adam, cosine schedule, batch 64; the epoch kept is the best on a 5% validation split). Training time: the epochs with their validation and test evaluation, $THREADS thread(s), without the teacher's logits (computed once a run). The auto table's runs: \`--sigma auto --alpha auto --search-budget $AUTO_BUDGET --lr $LR_L2 --lr-labels $LR_LABELS\`."
cmd="$(date -u '+%Y-%m-%d %H:%M') UTC, load $(cut -d' ' -f1 /proc/loadavg) at the end: \`$envs\`"
WALL_FILE="$T/wall" THIS_RUN="$T/this.jsonl" PAPER_CMD="$cmd" /usr/bin/python3 tests/paper_summary.py "$OUT" "$BENCH/PAPER.md" "$BENCH/paper.svg" "$settings"
cat "$BENCH/PAPER.md"
flock -u 9

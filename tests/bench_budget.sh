#!/bin/bash
# Students chosen by a latency budget (issue 20), measured: for each teacher, budgets of 1/2, 1/4
# and 1/8 of its measured batch-1, 1-thread latency; `shrink --budget` chooses a student (per-layer
# or uniform, with blocks dropped when it does so) and must meet the budget when measured afresh
# with `bench` (median and p90); the best uniform-width student at the chosen student's measured
# latency (the width bisected with `bench` until its fresh median is at most the chosen one's, at
# the teacher's depth) is measured afresh the same way; for the Fashion-MNIST teachers both are
# distilled the same short way and their test accuracy compared.
# Writes its section of bench/RESULTS.md between the budget markers (replacing the last one),
# so run it after tests/bench.sh (make bench does). Teachers: models/cnn.onnx, models/resnet.onnx,
# torchvision resnet18 at 32x32 and mobilenet_v2 at 224x224 (random weights with calibrated BN,
# exported by tests/export_torchvision.py's code; skipped without torch).
#   BUILD=build tests/bench_budget.sh [--quick]    (--quick: cnn and resnet only)
# Environment: TRAIN_LIMIT (5000), TEST_LIMIT (2000), EPOCHS (2), MIN_TIME (1.0 s per fresh measurement),
# BISECT_TIME (0.5 s per measurement of the uniform bisection).
set -u
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/onnx-distill
PY=${PYTHON:-/usr/bin/python3}
OUT=bench/RESULTS.md
W=${BUILD:-build}/bench_budget
TRAIN_LIMIT=${TRAIN_LIMIT:-5000} TEST_LIMIT=${TEST_LIMIT:-2000} EPOCHS=${EPOCHS:-2} MIN_TIME=${MIN_TIME:-1.0}
BISECT_TIME=${BISECT_TIME:-0.5}
quick=0
[ "${1:-}" = --quick ] && quick=1
mkdir -p "$W"
[ -x "$BIN" ] || { echo "no $BIN (run make)"; exit 1; }

teachers="models/cnn.onnx models/resnet.onnx"
if [ $quick -eq 0 ]; then
    [ -f build/real_exports/resnet18_op13.onnx ] ||
        "$PY" tests/export_torchvision.py build/real_exports resnet18@13 >/dev/null 2>&1
    [ -f build/real_exports/resnet18_op13.onnx ] && teachers="$teachers build/real_exports/resnet18_op13.onnx"
    [ -f "$W/mobilenet_v2_224_op13.onnx" ] || "$PY" - "$W" >/dev/null 2>&1 <<'EOF'
import sys, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, "tests")
import export_torchvision as e
e.FAMILIES["mobilenet_v2_224"] = (lambda: e.tvm.mobilenet_v2(num_classes=10), 224)
e.export("mobilenet_v2_224", 13, sys.argv[1])
EOF
    [ -f "$W/mobilenet_v2_224_op13.onnx" ] && teachers="$teachers $W/mobilenet_v2_224_op13.onnx"
fi

# median_p90 MODEL [MIN_TIME]: "median p90" in ms at batch 1, 1 thread, measured afresh
median_p90() {
    "$BIN" bench "$1" --batch 1 --threads 1 --min-time "${2:-$MIN_TIME}" --json |
        "$PY" -c 'import json,sys; r=json.load(sys.stdin)[0]["results"][0]; print("%.4f %.4f" % (r["median_ms"], r["p90_ms"]))'
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
# uniform_at TEACHER MS OUT.onnx: the widest uniform width (width 1, then 7 halvings; 0.001 when
# none of them) whose student's fresh median is at most MS; the student is left in OUT.onnx
uniform_at() {
    local teacher=$1 target=$2 out=$3 lo=0 hi=1 mid med p90
    "$BIN" shrink "$teacher" --width 1 -o "$out" >/dev/null 2>&1
    read -r med p90 < <(median_p90 "$out" "$BISECT_TIME")
    if le "$med" "$target"; then echo 1; return; fi
    for _ in 1 2 3 4 5 6 7; do
        mid=$(awk -v a=$lo -v b=$hi 'BEGIN { printf "%.7g", (a + b) / 2 }')
        "$BIN" shrink "$teacher" --width "$mid" -o "$out" >/dev/null 2>&1
        read -r med p90 < <(median_p90 "$out" "$BISECT_TIME")
        if le "$med" "$target"; then lo=$mid; else hi=$mid; fi
    done
    [ "$lo" = 0 ] && lo=0.001
    "$BIN" shrink "$teacher" --width "$lo" -o "$out" >/dev/null 2>&1
    echo "$lo"
}
# accuracy REPORT.json: the student's test accuracy in %
accuracy() { "$PY" -c 'import json,sys; print("%.2f" % (100 * json.load(open(sys.argv[1]))["models"][1]["accuracy"]))' "$1"; }
distill() { # distill TEACHER OUT.onnx REPORT.json SHRINK-ARGS...
    local teacher=$1 out=$2 rep=$3; shift 3
    "$BIN" distill "$teacher" --data fashion-mnist "$@" --train-limit "$TRAIN_LIMIT" --test-limit "$TEST_LIMIT" \
        --epochs "$EPOCHS" --threads 1 --latency off --seed 1 -o "$out" --report "$rep" >"$W/distill.log" 2>&1
}

start=$(date -u '+%Y-%m-%d %H:%M UTC') load0=$(cut -d' ' -f1-3 /proc/loadavg) t0=$SECONDS
rows=""
for teacher in $teachers; do
    name=$(basename "$teacher" .onnx)
    trainable=0
    case "$name" in cnn | resnet) trainable=1 ;; esac
    read -r t_med t_p90 < <(median_p90 "$teacher")
    echo "$name: teacher $t_med ms (p90 $t_p90)"
    for frac in 2 4 8; do
        budget_ms=$(awk -v t="$t_med" -v f=$frac 'BEGIN { printf "%.4f", t / f }')
        s=$W/$name.b$frac
        if ! "$BIN" shrink "$teacher" --budget "${budget_ms}ms" --budget-spec-out "$s.spec.json" -o "$s.onnx" >"$s.log" 2>&1; then
            rows="$rows| $name | $t_med | 1/$frac: $budget_ms | $(tail -1 "$s.log" | sed 's/|/\\|/g') | | | | | | |\n"
            continue
        fi
        chosen=$(sed -n 's/^chosen: \(.*\), [0-9.e-]* ms (p90 .*/\1/p' "$s.log" | sed 's/ (the spec below)//')
        read -r c_med c_p90 < <(median_p90 "$s.onnx")
        # the best uniform width at the chosen student's measured latency, bisected afresh
        uw=$(uniform_at "$teacher" "$c_med" "$s.uniform.onnx")
        read -r u_med u_p90 < <(median_p90 "$s.uniform.onnx")
        meets=$(awk -v m="$c_med" -v b="$budget_ms" 'BEGIN { print (m <= b ? "yes" : "**no**") }')
        slower=$(awk -v u="$u_med" -v c="$c_med" -v w="$uw" 'BEGIN { print (w == 0.001 && u > c ? " (slower)" : "") }')
        acc_c="" acc_u=""
        if [ $trainable -eq 1 ]; then
            distill "$teacher" "$s.trained.onnx" "$s.trained.json" --spec "$s.spec.json" && acc_c=$(accuracy "$s.trained.json")
            if [ "${chosen%% *}" = width ] && [ "${chosen#width * }" = "$chosen" ] &&
                awk -v a="${chosen#width }" -v b="$uw" 'BEGIN { exit !(a - b < 1e-6 && b - a < 1e-6) }'; then
                acc_u="(the same student)"
            else
                distill "$teacher" "$s.utrained.onnx" "$s.utrained.json" --width "$uw" && acc_u=$(accuracy "$s.utrained.json")
            fi
        fi
        kept=$(sed -n 's/.*keeps \([0-9.]*%\) of the teacher.*/\1/p;s/.*keeping \([0-9.]*%\) of the teacher.*/\1/p' "$s.log" | head -1)
        [ -z "$kept" ] && kept=$(sed -n 's/.*uniform width that meets the budget (\([0-9.]*%\) of.*/\1/p' "$s.log")
        row="| $name | $t_med | 1/$frac: $budget_ms | $chosen${kept:+ ($kept L1 kept)} | $c_med ($c_p90) | $meets | $uw | $u_med ($u_p90)$slower | ${acc_c:--} | ${acc_u:--} |"
        echo "$row"
        rows="$rows$row\n"
    done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

section="<!-- budget:begin -->
## 7. Students chosen by a latency budget (tests/bench_budget.sh)

Written on $start, git $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)'); load average at start $load0, at end $load1; $((SECONDS - t0)) s.
**The machine was shared with other work** while this ran: latencies are noisy (p90 shows how much), and a choice that fit during the search can miss when measured again.

For each teacher, budgets of 1/2, 1/4 and 1/8 of its median batch-1, 1-thread latency (\`bench --min-time $MIN_TIME\`).
\`onnx-distill shrink TEACHER --budget Bms --budget-spec-out SPEC -o S\` chooses the student (the uniform width by bisection, blocks
dropped when width alone cannot meet the budget or when the depth-aware proxy gains over 5% by it, then the per-layer search;
all aiming under the budget by the auto \`--budget-margin\` (the spread of the search's repeated measurements, 2-10%); every
choice verified on 3 fresh plans, the slowest median deciding, and cut further on a miss); \`bench S --batch 1 --threads 1 --min-time $MIN_TIME\`
measures it afresh (\"chosen ms\"). The uniform column is the widest \`--width\` (teacher's depth; width 1 then 7 halvings, each
measured afresh with \`bench --min-time $BISECT_TIME\`) whose median is at most the chosen student's measured median, then measured afresh
again like the chosen one (\"(slower)\": even width 0.001 is slower than the chosen student). Fashion-MNIST teachers: both distilled
with \`distill --data fashion-mnist --train-limit $TRAIN_LIMIT --test-limit $TEST_LIMIT --epochs $EPOCHS --seed 1\` (\`--spec SPEC\` or \`--width W\`), test accuracy.
resnet18_op13 is torchvision resnet18 at 32x32, mobilenet_v2_224_op13 torchvision mobilenet_v2 at 224x224 (random weights, BN calibrated: latency only).

| teacher | teacher ms | budget ms | chosen | chosen ms afresh (p90) | meets | uniform width at the chosen ms | uniform ms afresh (p90) | chosen acc % | uniform acc % |
|---|---:|---|---|---|---|---|---|---:|---:|
$(printf "%b" "$rows")
<!-- budget:end -->"
if [ -f "$OUT" ] && grep -q '<!-- budget:begin -->' "$OUT"; then
    "$PY" - "$OUT" "$section" <<'EOF'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
text = re.sub(r"<!-- budget:begin -->.*?<!-- budget:end -->", lambda m: section, text, flags=re.S)
open(path, "w").write(text)
EOF
else
    printf '\n%s\n' "$section" >>"$OUT"
fi
echo "wrote the budget section of $OUT"

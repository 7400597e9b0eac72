#!/bin/bash
# `shrink --budget` and `distill --budget`: MACs and size budgets on the CNN and ResNet teachers
# are met exactly when the written student is inspected (and the spec printed rebuilds the same
# student, per-layer channels included); a latency budget of half the teacher's measured batch-1 latency gives a narrower
# student with the candidates and a fresh measurement listed (no timing is asserted); bad
# budgets fail with exit 1, one stderr line, nothing on stdout and no file (also with every
# removable block dropped); a MACs budget below width 0.001's MACs drops blocks (the depth is in
# the printed and written spec, which rebuilds the student); --budget with
# --width or --spec is a usage error; distill trains the chosen student and its report carries
# the budget.
# Prints `budget: N passed, N failed, N skipped` last.
. "$(dirname "$0")/lib.sh"

need_bin

# inspect_key FILE KEY: a number from `inspect --json`
inspect_key() { "$BIN" inspect --json "$1" | sed -n "s/.*\"$2\": \([0-9]*\).*/\1/p"; }

"$BIN" shrink --help >"$T/help" 2>&1
check "shrink --help documents --budget and --budget-spec-out" \
    "grep -q -- '--budget B' '$T/help' && grep -q -- '--budget-spec-out FILE' '$T/help'"
"$BIN" distill --help >"$T/dhelp" 2>&1
check "distill --help documents --budget" "grep -q -- '--budget B' '$T/dhelp'"

# ---- MACs and size: exact ---------------------------------------------------------------------
# budget_exact NAME TEACHER BUDGET KEY LIMIT
budget_exact() {
    local name=$1 teacher=$2 budget=$3 key=$4 limit=$5
    rm -f "$T/s.onnx" "$T/spec.json"
    "$BIN" shrink "$teacher" --budget "$budget" --budget-spec-out "$T/spec.json" -o "$T/s.onnx" >"$T/out" 2>"$T/err"
    local rc=$? got teacher_v
    got=$(inspect_key "$T/s.onnx" "$key")
    teacher_v=$(inspect_key "$teacher" "$key")
    check "$name: exit 0" "[ $rc -eq 0 ] || { cat '$T/err'; false; }"
    check "$name: inspect --json $key $got <= $limit (teacher $teacher_v)" "[ -n '$got' ] && [ '$got' -le $limit ] && [ '$got' -gt 0 ]"
    check "$name: the student is narrower than the teacher" "[ -n '$got' ] && [ '$got' -lt '$teacher_v' ]"
    check "$name: candidates listed, the choice fits" \
        "[ \$(grep -cE ' (fits|over)\$' '$T/out') -ge 4 ] && grep -q '^chosen: width 0\.' '$T/out'"
    check "$name: the spec is printed and written" \
        "grep -q '^spec: {\"width\": 0\.[0-9]*, \"depth\": 1[,}]' '$T/out' && grep -q '\"width\": 0\.' '$T/spec.json'"
    "$BIN" shrink "$teacher" --spec "$T/spec.json" -o "$T/again.onnx" >/dev/null 2>&1
    check "$name: --spec with the printed spec rebuilds the same student" "cmp -s '$T/s.onnx' '$T/again.onnx'"
    # the widest: one rounding step wider is over the budget (the bisection's last 'over')
    check "$name: a wider candidate was over the budget" "grep -q ' over\$' '$T/out'"
}
budget_exact "cnn 2M-macs" models/cnn.onnx 2M-macs macs 2000000
budget_exact "resnet 5M-macs" models/resnet.onnx 5M-macs macs 5000000
budget_exact "cnn 300KB" models/cnn.onnx 300KB bytes 300000
budget_exact "resnet 100KB" models/resnet.onnx 100KB bytes 100000
budget_exact "resnet 90KiB" models/resnet.onnx 90KiB bytes 92160

# per layer: after the uniform width, channels given back to named layers while the budget holds;
# every step is within the budget and the spec names those layers
"$BIN" shrink models/resnet.onnx --budget 100KB -o "$T/p.onnx" >"$T/out" 2>&1
check "per layer: resnet 100KB gives channels back to some layers" "grep -q '^per layer: /.* -> [0-9]* channels' '$T/out'"
check "per layer: every step within the budget" \
    "! sed -n 's/^per layer: .*, \([0-9]*\) bytes\$/\1/p' '$T/out' | awk '\$1 > 100000 { bad = 1 } END { exit !bad }'"
check "per layer: the spec names the layers" "grep -q '^spec: .*\"channels\": {\"/layers/' '$T/out'"

# a budget the teacher meets: width 1
"$BIN" shrink models/cnn.onnx --budget 1G-macs -o "$T/w1.onnx" >"$T/out" 2>&1
check "a budget the teacher meets keeps width 1" "grep -q '^chosen: width 1,' '$T/out' && grep -q '\"width\": 1,' '$T/out'"

# ---- depth: a MACs budget width alone cannot meet ----------------------------------------------
# between what width 0.001 gives at full depth and with every removable block dropped
"$BIN" shrink models/resnet.onnx --width 0.001 -o "$T/n1.onnx" >/dev/null 2>&1
"$BIN" shrink models/resnet.onnx --width 0.001 --depth 0.001 -o "$T/n0.onnx" >/dev/null 2>&1
m1=$(inspect_key "$T/n1.onnx" macs) m0=$(inspect_key "$T/n0.onnx" macs)
check "depth: dropping blocks saves MACs at width 0.001 ($m1 -> $m0)" "[ -n '$m1' ] && [ -n '$m0' ] && [ '$m0' -lt '$m1' ]"
mid=$(( (${m1:-0} + ${m0:-0}) / 2 ))
rm -f "$T/dd.onnx" "$T/dd.json"
"$BIN" shrink models/resnet.onnx --budget "${mid}-macs" --budget-spec-out "$T/dd.json" -o "$T/dd.onnx" >"$T/out" 2>"$T/err"
rc=$?
got=$(inspect_key "$T/dd.onnx" macs)
check "depth ${mid}-macs: exit 0" "[ $rc -eq 0 ] || { cat '$T/err'; false; }"
check "depth ${mid}-macs: the student's MACs $got <= $mid" "[ -n '$got' ] && [ '$got' -le $mid ]"
check "depth ${mid}-macs: the printed and written spec carry a depth below 1" \
    "grep -q '^spec: {\"width\": [0-9.e-]*, \"depth\": 0\.[0-9]*' '$T/out' && grep -q '\"depth\": 0\.' '$T/dd.json'"
check "depth ${mid}-macs: the choice names the blocks kept and why some were dropped" \
    "grep -qE '^chosen: width [0-9.e-]+ at depth 0\.[0-9]+ \([0-9]+ of [0-9]+ removable blocks\)' '$T/out' && grep -q 'removable blocks dropped: width alone could not meet the budget' '$T/out'"
check "depth ${mid}-macs: candidates at a lower depth are listed" "grep -qE '^width [0-9.e-]+ depth 0\.[0-9]+ ' '$T/out'"
"$BIN" shrink models/resnet.onnx --spec "$T/dd.json" -o "$T/dd2.onnx" >/dev/null 2>&1
check "depth ${mid}-macs: --spec with the written spec rebuilds the same student" "cmp -s '$T/dd.onnx' '$T/dd2.onnx'"

# ---- latency: half the teacher's measured batch-1 latency ------------------------------------
# (the searches below whose path is not asserted time each candidate for 0.05 s under the
# sanitizers, where a latency search's tens of measurements cost seconds each and their values
# mean nothing; this one, whose per-layer rounds are asserted, keeps the default 0.2 s in both
# passes: at 0.05 s a sanitizer run once listed no per-layer round)
BT_S=0.2
[ "${OD_TEST_QUICK:-0}" = 1 ] && BT_S=0.05
BT=(--budget-time $BT_S)
"$BIN" shrink models/cnn.onnx --budget 100s "${BT[@]}" -o "$T/lt.onnx" >"$T/out" 2>&1
teacher_ms=$(sed -n 's/.*; teacher: \([0-9.e-]*\) ms.*/\1/p' "$T/out")
check "the teacher's latency is reported ($teacher_ms ms)" "[ -n '$teacher_ms' ]"
check "latency: --budget-time $BT_S is the time per candidate printed" "grep -q '(median of $BT_S s of timed runs on onnx-distill' '$T/out'"
half_us=$(awk -v t="${teacher_ms:-1}" 'BEGIN { printf "%d", t * 500 }')
"$BIN" shrink models/cnn.onnx --budget "${half_us}us@b1t1" -o "$T/l.onnx" >"$T/out" 2>"$T/err"
rc=$?
check "latency ${half_us}us: exit 0" "[ $rc -eq 0 ] || { cat '$T/err'; false; }"
check "latency: 0.2 s per candidate by default" "grep -q '(median of 0.2 s of timed runs on onnx-distill' '$T/out'"
check "latency: a narrower student is chosen" "grep -qE '^chosen: (width 0\.|per-layer channels)' '$T/out'"
check "latency: candidates with median and p90 listed" "[ \$(grep -cE 'ms \([0-9.e-]+\) +(fits|over)' '$T/out') -ge 4 ]"
check "latency: the choice was measured again" "grep -q 'fresh measurement of the choice' '$T/out'"
check "latency: the student is written" "[ -s '$T/l.onnx' ]"
# the per-layer search: its rounds listed with the L1 share they keep, and why the choice won
# (on a miss the search's output goes to the log: twice in CI, never here, a run listed no round)
check "latency: per-layer candidates listed with their kept L1 share" \
    "grep -qE '^per-layer r1 +[0-9.e-]+ ms \([0-9.e-]+\) +(fits|over) +[0-9.]+% kept' '$T/out' || { cut -c1-160 '$T/out' >&2; false; }"
check "latency: why the chosen one won" \
    "grep -qE '^chosen: .*(per-layer student met the budget when measured afresh|widest uniform width that meets the budget .* won)' '$T/out'"
check "latency: the measuring runtime is named" "grep -q \"on onnx-distill's own plans\" '$T/out'"
# --budget-margin: auto (2-10%) by default, printed with the aim and on the chosen line; an asked
# margin is what the search aims under, the choice included
auto_pct=$(sed -n 's/^margin: \([0-9.]*\)%, the search aims at .*auto: that spread.*/\1/p' "$T/out")
check "latency: the auto margin is printed, 2-10% ($auto_pct)" \
    "awk -v m='${auto_pct:-0}' 'BEGIN { exit !(m >= 2 && m <= 10) }' && grep -qE '^chosen: .* \(p90 [0-9.e-]+ ms\), margin $auto_pct% \(auto\)' '$T/out'"
# (the same search as above with another margin: not again under the sanitizers, where its 0.2 s
# measurements of some 60 candidates cost 14 s)
if [ "${OD_TEST_QUICK:-0}" = 1 ]; then
    skipped "latency --budget-margin 20 (sanitizer pass)"
else
    "$BIN" shrink models/cnn.onnx --budget "${half_us}us" --budget-margin 20 -o "$T/lm.onnx" >"$T/out" 2>"$T/err"
    rc=$?
    chosen_ms=$(sed -n 's/^chosen: .*, \([0-9.e-]*\) ms (p90 .*/\1/p' "$T/out")
    check "latency --budget-margin 20: exit 0, printed as asked" \
        "[ $rc -eq 0 ] && grep -q '^margin: 20.0%, the search aims at .*(--budget-margin' '$T/out' && grep -q 'margin 20.0% (asked)' '$T/out'"
    check "latency --budget-margin 20: the choice ($chosen_ms ms) is under 80% of ${half_us}us" \
        "awk -v c='${chosen_ms:-1e9}' -v b='$half_us' 'BEGIN { exit !(c * 1000 <= 0.8 * b) }'"
fi

# a per-layer spec (a latency budget well under the teacher's, on the ResNet): its printed spec
# names layers and rebuilds the same student; the candidates all stay at most 32
"$BIN" shrink models/resnet.onnx --budget 100s "${BT[@]}" -o "$T/lt.onnx" >"$T/out" 2>&1
r_ms=$(sed -n 's/.*; teacher: \([0-9.e-]*\) ms.*/\1/p' "$T/out")
r_us=$(awk -v t="${r_ms:-1}" 'BEGIN { printf "%d", t * 400 }')
"$BIN" shrink models/resnet.onnx --budget "${r_us}us" "${BT[@]}" --budget-spec-out "$T/pl.json" -o "$T/pl.onnx" >"$T/out" 2>"$T/err"
rc=$?
check "latency resnet ${r_us}us: exit 0" "[ $rc -eq 0 ] || { cat '$T/err'; false; }"
"$BIN" shrink models/resnet.onnx --spec "$T/pl.json" -o "$T/pl2.onnx" >/dev/null 2>&1
check "latency resnet: the written spec rebuilds the same student" "cmp -s '$T/pl.onnx' '$T/pl2.onnx'"
if grep -q '^chosen: per-layer' "$T/out"; then
    check "latency resnet: the per-layer spec names layers" "grep -q '\"channels\": {\"/' '$T/pl.json'"
else
    check "latency resnet: the uniform spec has no channels" "! grep -q channels '$T/pl.json'"
fi

# ---- --target ort ------------------------------------------------------------------------------
ORT_DIR=$PWD/tests/node_modules
if command -v node >/dev/null && [ -d "$ORT_DIR/onnxruntime-node" ]; then
    OD_ORT_NODE_PATH=$ORT_DIR "$BIN" shrink models/cnn.onnx --budget 100s --target ort -o "$T/o.onnx" >"$T/out" 2>"$T/err"
    rc=$?
    check "--target ort: exit 0" "[ $rc -eq 0 ] || { cat '$T/err'; false; }"
    check "--target ort: the printout names ONNX Runtime" "grep -q 'on ONNX Runtime [0-9.]* (onnxruntime-node)' '$T/out'"
    check "--target ort: the teacher meets 100 s: width 1" "grep -q '^chosen: width 1,' '$T/out'"
else
    echo "SKIP --target ort: no node or no $ORT_DIR/onnxruntime-node"
fi
mkdir -p "$T/empty" # ORT missing: a clear error (below), never a silent fallback to our runtime

# ---- errors ------------------------------------------------------------------------------------
# expect_error NAME PATTERN WANT_RC ARGS...: exit WANT_RC, nothing on stdout, one stderr line, no file
expect_error() {
    local name=$1 pattern=$2 want=$3; shift 3
    rm -f "$T/e.onnx"
    "$BIN" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc -eq "$want" ] && [ ! -s "$T/out" ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -qF -- "$pattern" "$T/err" &&
        [ ! -e "$T/e.onnx" ]; then
        ok "$name"
    else
        bad "$name: exit $rc, stdout $(head -c 200 "$T/out"), stderr $(head -c 300 "$T/err")"
    fi
}
expect_error "unknown unit" 'unknown unit "furlongs"' 1 shrink models/cnn.onnx --budget 3furlongs -o "$T/e.onnx"
expect_error "no unit" 'unknown unit ""' 1 shrink models/cnn.onnx --budget 5 -o "$T/e.onnx"
expect_error "zero" 'must be above 0' 1 shrink models/cnn.onnx --budget 0ms -o "$T/e.onnx"
expect_error "negative" 'must be above 0' 1 shrink models/cnn.onnx --budget -2KB -o "$T/e.onnx"
expect_error "not a number" 'expected a number and a unit' 1 shrink models/cnn.onnx --budget fast -o "$T/e.onnx"
expect_error "bad @" 'must follow a latency' 1 shrink models/cnn.onnx --budget 1ms@x -o "$T/e.onnx"
expect_error "@ on a size" 'must follow a latency' 1 shrink models/cnn.onnx --budget 1KB@b1 -o "$T/e.onnx"
expect_error "unreachable MACs" 'even width 0.001 (round 8) gives' 1 shrink models/cnn.onnx --budget 100-macs -o "$T/e.onnx"
expect_error "unreachable size" 'over the budget of 1000 bytes' 1 shrink models/resnet.onnx --budget 1KB -o "$T/e.onnx"
expect_error "unreachable latency" 'over the budget' 1 shrink models/cnn.onnx --budget 1us "${BT[@]}" -o "$T/e.onnx"
expect_error "MACs below every block dropped" 'removable blocks dropped, over the budget' 1 \
    shrink models/resnet.onnx --budget "$(( ${m0:-2} - 1 ))-macs" -o "$T/e.onnx"
expect_error "latency below every block dropped" 'removable blocks dropped, over the budget' 1 \
    shrink models/resnet.onnx --budget 1us "${BT[@]}" -o "$T/e.onnx"
expect_error "--budget with --width" 'exclude each other' 2 shrink models/cnn.onnx --budget 1ms --width 0.5 -o "$T/e.onnx"
echo '{"width": 0.5}' >"$T/w.json"
expect_error "--budget with --spec" 'exclude each other' 2 shrink models/cnn.onnx --budget 1ms --spec "$T/w.json" -o "$T/e.onnx"
expect_error "--budget-spec-out alone" 'needs --budget' 2 shrink models/cnn.onnx --width 0.5 --budget-spec-out "$T/x.json" -o "$T/e.onnx"
expect_error "--target without --budget" 'needs --budget' 2 shrink models/cnn.onnx --width 0.5 --target ort -o "$T/e.onnx"
expect_error "--target ort on a MACs budget" 'only a latency budget' 1 shrink models/cnn.onnx --budget 2M-macs --target ort -o "$T/e.onnx"
NODE_PATH=$T/empty OD_ORT_NODE_PATH=$T/empty expect_error "--target ort without ONNX Runtime" 'ONNX Runtime for Node not found' 1 \
    shrink models/cnn.onnx --budget 1ms --target ort -o "$T/e.onnx"
"$BIN" shrink models/cnn.onnx --budget 2M-macs -o "$T/m1.onnx" >/dev/null 2>&1
"$BIN" shrink models/cnn.onnx --budget 2M-macs --budget-margin 10 -o "$T/m2.onnx" >"$T/out" 2>&1
check "a MACs budget takes no margin: the same student with --budget-margin 10" \
    "[ -s '$T/m1.onnx' ] && cmp -s '$T/m1.onnx' '$T/m2.onnx' && ! grep -q '^margin:' '$T/out'"
expect_error "--budget-margin over 50" '--budget-margin: "60" is not a number in [0, 50]' 2 \
    shrink models/cnn.onnx --budget 1ms --budget-margin 60 -o "$T/e.onnx"
expect_error "--budget-margin not a number" '--budget-margin: "fast"' 2 shrink models/cnn.onnx --budget 1ms --budget-margin fast -o "$T/e.onnx"
expect_error "distill: --budget-margin negative, validated as shrink does" '--budget-margin: "-1" is not a number in [0, 50]' 2 \
    distill models/cnn.onnx --data fashion-mnist --budget 1ms --budget-margin -1 -o "$T/e.onnx"
expect_error "--budget-margin without --budget" 'needs --budget' 2 shrink models/cnn.onnx --width 0.5 --budget-margin 5 -o "$T/e.onnx"
expect_error "distill: --budget-margin without --budget" 'needs --budget' 2 \
    distill models/cnn.onnx --data fashion-mnist --width 0.5 --budget-margin 5 -o "$T/e.onnx"
expect_error "--budget-time without --budget" 'needs --budget' 2 shrink models/cnn.onnx --width 0.5 --budget-time 1 -o "$T/e.onnx"
expect_error "distill: --budget-time without --budget" 'needs --budget' 2 \
    distill models/cnn.onnx --data fashion-mnist --width 0.5 --budget-time 1 -o "$T/e.onnx"
expect_error "--budget-time 0" '--budget-time: "0" is not a number in [0.01, 60]' 2 shrink models/cnn.onnx --budget 1ms --budget-time 0 -o "$T/e.onnx"
expect_error "distill: bad budget" 'unknown unit' 1 distill models/cnn.onnx --data fashion-mnist --budget 2parsecs -o "$T/e.onnx"

# ---- distill trains the chosen student ----------------------------------------------------------
"$BIN" distill models/cnn.onnx --data fashion-mnist --budget 3M-macs --train-limit 640 --test-limit 128 --epochs 1 \
    --threads 2 --latency quick --seed 3 -o "$T/d.onnx" --report "$T/d.json" >"$T/out" 2>"$T/err"
rc=$?
check "distill --budget: exit 0" "[ $rc -eq 0 ] || { cat '$T/err'; false; }"
macs=$(inspect_key "$T/d.onnx" macs)
check "distill --budget: the trained student's MACs $macs <= 3000000" "[ -n '$macs' ] && [ '$macs' -le 3000000 ]"
check "distill --budget: the report carries the budget and candidates" \
    "grep -q 'budget 3000000 MACs: width 0\.[0-9]* chosen' '$T/d.json' && grep -q 'candidates width 0\.[0-9]*: [0-9]* MACs' '$T/d.json'"
# a latency budget: the report (JSON, Markdown, HTML) shows the budget, median and p90, candidates, why
"$BIN" distill models/cnn.onnx --data fashion-mnist --budget "${half_us}us" "${BT[@]}" --train-limit 640 --test-limit 128 --epochs 1 \
    --threads 2 --latency quick --seed 3 -o "$T/dl.onnx" --report "$T/dl.md" >"$T/out" 2>"$T/err"
rc=$?
check "distill --budget latency: exit 0" "[ $rc -eq 0 ] || { cat '$T/err'; false; }"
check "distill --budget latency: the Markdown report shows budget, median, p90, candidates and why" \
    "grep -q 'budget [0-9.]* ms at batch 1, 1 thread, measured on onnx-distill' '$T/dl.md' && grep -q 'ms median, [0-9.e-]* ms p90 (fresh measurement)' '$T/dl.md' && grep -q 'why: ' '$T/dl.md' && grep -q 'candidates width 0.001: ' '$T/dl.md'"
check "distill --budget latency: the report names the margin" "grep -qE 'margin [0-9.]+% \(auto\)' '$T/dl.md'"

finish

#!/bin/bash
# `onnx-distill shrink` from the command line: help, one-line errors with exit 1 (and no output
# file left behind), every example teacher at several widths and depths (the student is written,
# inspect and run accept it, ONNX Runtime agrees with our runtime on it), width 1 depth 1 gives
# the teacher's outputs byte for byte, repeatable random init, spec files, and the od_bn_ nodes
# folded away by `optimize`. A teacher with depthwise convs, Concat and MatMul is made with
# PyTorch when /usr/bin/python3 has it (skipped otherwise).
# Prints `shrink_cli: N passed, N failed, N skipped` last.
. "$(dirname "$0")/lib.sh"
MODELS=${OD_SHRINK_MODELS:-models}

check_run() { # name command... : passes when the command succeeds
    local name=$1; shift
    if "$@" >/dev/null 2>&1; then ok; else bad "$name"; fi
}

# expect_error NAME PATTERN ARGS...: exit status 1 (a runtime error), nothing on stdout, one
# stderr line `onnx-distill: ...` containing PATTERN. expect_usage: the same with exit status 2
# (a usage error: the command line itself is wrong).
expect_error() {
    local name=$1 pattern=$2; shift 2
    "$BIN" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    local lines; lines=$(wc -l <"$T/err")
    if [ $rc -ne "${want_rc:-1}" ] || [ -s "$T/out" ] || [ "$lines" -ne 1 ] || ! grep -q '^onnx-distill: ' "$T/err" ||
        ! grep -qF -- "$pattern" "$T/err"; then
        bad "$name: exit $rc, stderr: $(head -c 300 "$T/err")"
    else
        ok
    fi
}
expect_usage() { want_rc=2 expect_error "$@"; }

# npy NAME N: a float32 [N,1,28,28] array of fixed values (perl, no numpy needed).
npy() {
    perl -e '
        my ($n) = @ARGV; my $count = $n * 784;
        my $h = "{\x27descr\x27: \x27<f4\x27, \x27fortran_order\x27: False, \x27shape\x27: ($n, 1, 28, 28), }";
        $h .= " " x (63 - (10 + length($h)) % 64) . "\n";
        print "\x93NUMPY\x01\x00", pack("v", length($h)), $h, pack("f<*", map { 2 * sin($_ * 0.37) } 0 .. $count - 1);
    ' "$2" >"$1"
}

need_bin

# ---- help and errors -----------------------------------------------------------------
"$BIN" shrink --help >"$T/help" 2>&1
check_run "shrink --help exits 0 and documents the options" \
    grep -q -- '--width W' "$T/help"
check_run "--help documents --spec, --init, --bn, --round, --seed" \
    bash -c "grep -q -- '--spec FILE' '$T/help' && grep -q -- '--init teacher|random' '$T/help' && grep -q -- '--bn auto|on|off' '$T/help' && grep -q -- '--round N' '$T/help' && grep -q -- '--seed S' '$T/help'"
check_run "the command list names shrink" bash -c "'$BIN' --help | grep -q '^  shrink '"

TEACHER="$MODELS/cnn.onnx"
[ -f "$TEACHER" ] || TEACHER="$MODELS/mlp.onnx"
if [ -f "$TEACHER" ]; then
    expect_usage "width 0" '--width: "0" is not a number in [0.001, 1]' shrink "$TEACHER" --width 0 -o "$T/x.onnx"
    expect_usage "width 1.5" '--width: "1.5" is not a number in [0.001, 1]' shrink "$TEACHER" --width 1.5 -o "$T/x.onnx"
    expect_usage "width abc" '--width: "abc"' shrink "$TEACHER" --width abc -o "$T/x.onnx"
    expect_usage "depth 0" '--depth: "0" is not a number in [0.001, 1]' shrink "$TEACHER" --depth 0 -o "$T/x.onnx"
    expect_usage "depth -0.5" '--depth: "-0.5"' shrink "$TEACHER" --depth=-0.5 -o "$T/x.onnx"
    expect_usage "round 0" '--round' shrink "$TEACHER" --width 0.5 --round 0 -o "$T/x.onnx"
    expect_usage "init foo" '--init: "foo" is not one of teacher, random' shrink "$TEACHER" --width 0.5 --init foo -o "$T/x.onnx"
    expect_usage "bn maybe" '--bn: "maybe" is not one of auto, on, off' shrink "$TEACHER" --width 0.5 --bn maybe -o "$T/x.onnx"
    expect_usage "seed -1" '--seed: "-1"' shrink "$TEACHER" --width 0.5 --seed -1 -o "$T/x.onnx"
    expect_usage "no output" 'no output given' shrink "$TEACHER" --width 0.5
    expect_usage "no mode" 'say how to shrink' shrink "$TEACHER" -o "$T/x.onnx"
    expect_usage "no teacher" 'no teacher given' shrink --width 0.5 -o "$T/x.onnx"
    expect_usage "two teachers" 'one teacher at a time' shrink "$TEACHER" "$TEACHER" --width 0.5 -o "$T/x.onnx"
    expect_usage "unknown option" 'unknown option --frob' shrink "$TEACHER" --frob
    expect_usage "missing value" '--width needs a value' shrink "$TEACHER" --width
    expect_error "missing teacher" 'nonexistent.onnx' shrink "$T/nonexistent.onnx" --width 0.5 -o "$T/x.onnx"
    expect_error "missing spec" 'nope.json' shrink "$TEACHER" --spec "$T/nope.json" -o "$T/x.onnx"
    printf '{"width": 0.5,\n  "dpeth": 1}\n' >"$T/typo.json"
    expect_error "spec typo" 'typo.json:2:3: unknown key "dpeth"' shrink "$TEACHER" --spec "$T/typo.json" -o "$T/x.onnx"
    printf '{"channels": {"/features/features.3/Cnv": 8, "/net/net.3/Gem": 8}}' >"$T/name.json"
    expect_error "spec unknown node" 'close matches: "' shrink "$TEACHER" --spec "$T/name.json" -o "$T/x.onnx"
    check_run "no output file after failures" test ! -e "$T/x.onnx"
    echo "precious" >"$T/keep.onnx"
    expect_error "failure keeps an existing output" 'close matches' shrink "$TEACHER" --spec "$T/name.json" -o "$T/keep.onnx"
    check_run "the existing output is untouched" grep -qx precious "$T/keep.onnx"
    expect_error "unwritable output" 'nonexistent_dir' shrink "$TEACHER" --width 0.5 -o "$T/nonexistent_dir/x.onnx"
else
    bad "no example teacher in $MODELS (cnn.onnx or mlp.onnx)"
fi

# ---- every example teacher ------------------------------------------------------------
have_ort=false
if command -v node >/dev/null && [ -d tests/node_modules/onnxruntime-node ]; then have_ort=true; fi
npy "$T/x.npy" 3
ort_models=""
for name in cnn cnn_bn resnet mlp; do
    TEACHER="$MODELS/$name.onnx"
    if [ ! -f "$TEACHER" ]; then
        bad "$TEACHER is missing"
        continue
    fi
    for spec in "--width 0.5" "--width 0.25 --depth 0.5" "--depth 0.5 --init random --seed 3" \
        "--width 0.75 --round 1 --bn on" "--width 0.5 --bn off --init random"; do
        tag=$(echo "$name $spec" | tr -c 'A-Za-z0-9.\n' '_')
        S="$T/$tag.onnx"
        # shellcheck disable=SC2086
        if "$BIN" shrink "$TEACHER" $spec -o "$S" >"$T/out" 2>"$T/err"; then
            if grep -q '^teacher .*params .*MACs' "$T/out" && grep -q '^student .*params .*MACs .*of the MACs' "$T/out"; then
                ok
            else
                bad "$name $spec: no params/MACs lines: $(cat "$T/out")"
            fi
            check_run "$name $spec: inspect accepts the student" "$BIN" inspect "$S"
            if "$BIN" run "$S" --input "input=$T/x.npy" --output "logits=$T/y.npy" >/dev/null 2>"$T/err"; then
                ok
            else
                bad "$name $spec: run: $(cat "$T/err")"
            fi
            ort_models="$ort_models $S"
        else
            bad "$name $spec: $(cat "$T/err")"
        fi
    done
    # width 0.5 keeps about a quarter of a conv net's MACs
    if "$BIN" shrink "$TEACHER" --width 0.5 -o "$T/$name-half.onnx" >"$T/out" 2>"$T/err"; then
        pct=$(sed -n 's/.*(\([0-9.]*\)% of the params, \([0-9.]*\)% of the MACs).*/\2/p' "$T/out")
        case $name in
        mlp) lo=20 hi=50 ;;
        *) lo=20 hi=30 ;;
        esac
        check_run "$name width 0.5 keeps ${pct:-?}% of the MACs (expected $lo..$hi)" \
            awk -v p="${pct:-0}" -v lo=$lo -v hi=$hi 'BEGIN { exit !(p >= lo && p <= hi) }'
    else
        bad "$name width 0.5: $(cat "$T/err")"
    fi
    # width 1, depth 1, teacher init: the teacher's outputs, byte for byte
    if "$BIN" shrink "$TEACHER" --width 1 --depth 1 --init teacher -o "$T/$name-same.onnx" >/dev/null 2>"$T/err" &&
        "$BIN" run "$TEACHER" --input "input=$T/x.npy" --output "logits=$T/t.npy" >/dev/null 2>&1 &&
        "$BIN" run "$T/$name-same.onnx" --input "input=$T/x.npy" --output "logits=$T/s.npy" >/dev/null 2>&1; then
        check_run "$name width 1 depth 1: the teacher's outputs" cmp -s "$T/t.npy" "$T/s.npy"
    else
        bad "$name width 1 depth 1: $(cat "$T/err")"
    fi
    ort_models="$ort_models $T/$name-same.onnx"
    # the same seed, the same file; another seed, another file
    "$BIN" shrink "$TEACHER" --width 0.5 --init random --seed 9 -o "$T/r1.onnx" >/dev/null 2>&1
    "$BIN" shrink "$TEACHER" --width 0.5 --init random --seed 9 -o "$T/r2.onnx" >/dev/null 2>&1
    "$BIN" shrink "$TEACHER" --width 0.5 --init random --seed 10 -o "$T/r3.onnx" >/dev/null 2>&1
    check_run "$name: random init is repeatable" cmp -s "$T/r1.onnx" "$T/r2.onnx"
    check_run "$name: random init follows the seed" bash -c "! cmp -s '$T/r1.onnx' '$T/r3.onnx'"
    # depth: blocks reported and dropped
    if "$BIN" shrink "$TEACHER" --depth 0.5 -v -o "$T/$name-deep.onnx" >"$T/out" 2>"$T/err"; then
        check_run "$name --depth 0.5 drops a block" grep -q ' dropped$' "$T/out"
    else
        bad "$name depth 0.5: $(cat "$T/err")"
    fi
done

# ---- spec files -------------------------------------------------------------------------
TEACHER="$MODELS/cnn.onnx"
if [ -f "$TEACHER" ]; then
    cat >"$T/spec.json" <<'EOF'
{"width": 0.25, "channels": {"/features/features.0/Conv": 24, "/classifier/*": 40},
 "drop": ["/features/features.10/*"]}
EOF
    if "$BIN" shrink "$TEACHER" --spec "$T/spec.json" -v -o "$T/spec.onnx" >"$T/out" 2>"$T/err"; then
        check_run "spec: channels of a named layer" grep -qE '^/features/features.0/Conv +Conv +32 +24' "$T/out"
        check_run "spec: channels of a glob" grep -qE '^/classifier/classifier.1/Gemm +Gemm +128 +40' "$T/out"
        check_run "spec: the width of the file" grep -qE '^/features/features.7/Conv +Conv +64 +16' "$T/out"
        check_run "spec: drop" grep -qE '^/features/features.10/Conv +layer .* dropped' "$T/out"
        check_run "spec: the student runs" "$BIN" run "$T/spec.onnx" --input "input=$T/x.npy" --output "logits=$T/y.npy"
        ort_models="$ort_models $T/spec.onnx"
    else
        bad "spec: $(cat "$T/err")"
    fi
    if "$BIN" shrink "$TEACHER" --spec "$T/spec.json" --width 0.5 -v -o "$T/spec2.onnx" >"$T/out" 2>"$T/err"; then
        check_run "--width overrides the spec's width" grep -qE '^/features/features.7/Conv +Conv +64 +32' "$T/out"
    else
        bad "spec and --width: $(cat "$T/err")"
    fi
    # the inserted BatchNormalization nodes fold away when optimising for shipping
    if "$BIN" optimize --help >/dev/null 2>&1; then
        "$BIN" shrink "$TEACHER" --width 0.5 --bn on -o "$T/bn.onnx" >/dev/null 2>&1
        if "$BIN" optimize "$T/bn.onnx" -o "$T/bn_opt.onnx" >/dev/null 2>"$T/err"; then
            check_run "od_bn_ nodes in the student" bash -c "'$BIN' inspect '$T/bn.onnx' | grep -q 'BatchNormalization 4'"
            check_run "optimize folds them away" bash -c "! '$BIN' inspect '$T/bn_opt.onnx' | grep -q BatchNormalization"
        else
            bad "optimize: $(cat "$T/err")"
        fi
    else
        skipped "optimize (no such command yet)"
    fi
fi

# ---- a teacher made now: depthwise convs in a residual branch, Concat, MatMul ------------
if /usr/bin/python3 -c 'import torch, onnx' 2>/dev/null; then
    cat >"$T/gen.py" <<'EOF'
import sys, torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = nn.Conv2d(1, 16, 3, padding=1)
        s.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16); s.bn = nn.BatchNorm2d(16)
        s.pw = nn.Conv2d(16, 16, 1)
        s.a = nn.Conv2d(16, 8, 1); s.b = nn.Conv2d(16, 24, 3, padding=1, stride=2)
        s.fc1 = nn.Linear(32 * 7 * 7, 32); s.fc2 = nn.Linear(32, 10)
    def forward(s, x):
        x = F.max_pool2d(F.relu(s.stem(x)), 2)
        x = x + s.pw(F.relu(s.bn(s.dw(x))))
        x = torch.cat([F.max_pool2d(s.a(x), 2), s.b(x)], 1)
        x = x.view(x.size(0), -1)
        return s.fc2(F.relu(torch.matmul(x, s.fc1.weight.t()) + s.fc1.bias))
m = Net().eval()
torch.onnx.export(m, torch.randn(1, 1, 28, 28), sys.argv[1], input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
EOF
    if /usr/bin/python3 "$T/gen.py" "$T/dw.onnx" >/dev/null 2>"$T/err"; then
        if "$BIN" shrink "$T/dw.onnx" --width 0.5 -v -o "$T/dw_half.onnx" >"$T/out" 2>"$T/err"; then
            check_run "depthwise teacher: the depthwise conv narrows with its group" grep -qE '^/dw/Conv +Conv +16 +8' "$T/out"
            check_run "depthwise teacher: the residual block is found" grep -qE ' residual ' "$T/out"
            check_run "depthwise teacher: the student runs" "$BIN" run "$T/dw_half.onnx" --input "input=$T/x.npy" --output "logits=$T/y.npy"
            ort_models="$ort_models $T/dw.onnx $T/dw_half.onnx"
        else
            bad "depthwise teacher: $(cat "$T/err")"
        fi
    else
        skipped "depthwise teacher: the export failed: $(tail -1 "$T/err")"
    fi
else
    skipped "depthwise teacher (no torch for /usr/bin/python3)"
fi

# ---- ONNX Runtime agrees with our runtime on the students -------------------------------
if $have_ort && [ -n "$ort_models" ]; then
    # shellcheck disable=SC2086
    NODE_PATH="$PWD/tests/node_modules" BUILD="$BUILD" node tests/ort_compare.js --bin "$BIN" --tol 1e-4 --batch 1,5 $ort_models >"$T/ort" 2>&1
    p=$(sed -n 's/^interop: \([0-9]*\) passed.*/\1/p' "$T/ort")
    f=$(sed -n 's/^interop: [0-9]* passed, \([0-9]*\) failed.*/\1/p' "$T/ort")
    grep "^FAIL" "$T/ort"; [ -n "${VERBOSE:-}" ] && cat "$T/ort"
    if [ -z "$p" ]; then
        bad "ort_compare: $(tail -3 "$T/ort")"
    else
        pass=$((pass + p))
        fail=$((fail + f))
    fi
else
    skipped "ONNX Runtime comparison (no node or tests/node_modules/onnxruntime-node)"
fi

finish

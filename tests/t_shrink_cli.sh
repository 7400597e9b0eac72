#!/bin/bash
# `onnx-distill shrink` from the command line: help, one-line errors with exit 1 (and no output
# file left behind), every example teacher at several widths and depths (the student is written,
# inspect and run accept it, ONNX Runtime agrees with our runtime on it), width 1 depth 1 gives
# the teacher's outputs byte for byte, repeatable random init, spec files, and the od_bn_ nodes
# folded away by `optimize`. A teacher with depthwise convs, Concat and MatMul is made with
# PyTorch when /usr/bin/python3 has it (skipped otherwise).
# Prints `shrink_cli: N passed, N failed, N skipped` last.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
BIN="$BUILD/onnx-distill"
MODELS=${OD_SHRINK_MODELS:-models}
pass=0 fail=0 skip=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
skipped() { skip=$((skip + 1)); echo "SKIP $*"; }
check() { # name command... : passes when the command succeeds
    local name=$1; shift
    if "$@" >/dev/null 2>&1; then ok; else bad "$name"; fi
}

# expect_error NAME PATTERN ARGS...: exit status 1 (a runtime error), nothing on stdout, one
# stderr line `onnx-distill: ...` containing PATTERN. expect_usage: the same with exit status 2
# (a usage error: the command line itself is wrong).
expect_error() {
    local name=$1 pattern=$2; shift 2
    "$BIN" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    local lines; lines=$(wc -l <"$tmp/err")
    if [ $rc -ne "${want_rc:-1}" ] || [ -s "$tmp/out" ] || [ "$lines" -ne 1 ] || ! grep -q '^onnx-distill: ' "$tmp/err" ||
        ! grep -qF -- "$pattern" "$tmp/err"; then
        bad "$name: exit $rc, stderr: $(head -c 300 "$tmp/err")"
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

[ -x "$BIN" ] || { echo "no $BIN (run make)"; echo "shrink_cli: 0 passed, 1 failed"; exit 1; }

# ---- help and errors -----------------------------------------------------------------
"$BIN" shrink --help >"$tmp/help" 2>&1
check "shrink --help exits 0 and documents the options" \
    grep -q -- '--width W' "$tmp/help"
check "--help documents --spec, --init, --bn, --round, --seed" \
    bash -c "grep -q -- '--spec FILE' '$tmp/help' && grep -q -- '--init teacher|random' '$tmp/help' && grep -q -- '--bn auto|on|off' '$tmp/help' && grep -q -- '--round N' '$tmp/help' && grep -q -- '--seed S' '$tmp/help'"
check "the command list names shrink" bash -c "'$BIN' --help | grep -q '^  shrink '"

T="$MODELS/cnn.onnx"
[ -f "$T" ] || T="$MODELS/mlp.onnx"
if [ -f "$T" ]; then
    expect_usage "width 0" '--width: "0" is not a number in [0.001, 1]' shrink "$T" --width 0 -o "$tmp/x.onnx"
    expect_usage "width 1.5" '--width: "1.5" is not a number in [0.001, 1]' shrink "$T" --width 1.5 -o "$tmp/x.onnx"
    expect_usage "width abc" '--width: "abc"' shrink "$T" --width abc -o "$tmp/x.onnx"
    expect_usage "depth 0" '--depth: "0" is not a number in [0.001, 1]' shrink "$T" --depth 0 -o "$tmp/x.onnx"
    expect_usage "depth -0.5" '--depth: "-0.5"' shrink "$T" --depth=-0.5 -o "$tmp/x.onnx"
    expect_usage "round 0" '--round' shrink "$T" --width 0.5 --round 0 -o "$tmp/x.onnx"
    expect_usage "init foo" '--init: "foo" is not one of teacher, random' shrink "$T" --width 0.5 --init foo -o "$tmp/x.onnx"
    expect_usage "bn maybe" '--bn: "maybe" is not one of auto, on, off' shrink "$T" --width 0.5 --bn maybe -o "$tmp/x.onnx"
    expect_usage "seed -1" '--seed: "-1"' shrink "$T" --width 0.5 --seed -1 -o "$tmp/x.onnx"
    expect_usage "no output" 'no output given' shrink "$T" --width 0.5
    expect_usage "no mode" 'say how to shrink' shrink "$T" -o "$tmp/x.onnx"
    expect_usage "no teacher" 'no teacher given' shrink --width 0.5 -o "$tmp/x.onnx"
    expect_usage "two teachers" 'one teacher at a time' shrink "$T" "$T" --width 0.5 -o "$tmp/x.onnx"
    expect_usage "unknown option" 'unknown option --frob' shrink "$T" --frob
    expect_usage "missing value" '--width needs a value' shrink "$T" --width
    expect_error "missing teacher" 'nonexistent.onnx' shrink "$tmp/nonexistent.onnx" --width 0.5 -o "$tmp/x.onnx"
    expect_error "missing spec" 'nope.json' shrink "$T" --spec "$tmp/nope.json" -o "$tmp/x.onnx"
    printf '{"width": 0.5,\n  "dpeth": 1}\n' >"$tmp/typo.json"
    expect_error "spec typo" 'typo.json:2:3: unknown key "dpeth"' shrink "$T" --spec "$tmp/typo.json" -o "$tmp/x.onnx"
    printf '{"channels": {"/features/features.3/Cnv": 8, "/net/net.3/Gem": 8}}' >"$tmp/name.json"
    expect_error "spec unknown node" 'close matches: "' shrink "$T" --spec "$tmp/name.json" -o "$tmp/x.onnx"
    check "no output file after failures" test ! -e "$tmp/x.onnx"
    echo "precious" >"$tmp/keep.onnx"
    expect_error "failure keeps an existing output" 'close matches' shrink "$T" --spec "$tmp/name.json" -o "$tmp/keep.onnx"
    check "the existing output is untouched" grep -qx precious "$tmp/keep.onnx"
    expect_error "unwritable output" 'nonexistent_dir' shrink "$T" --width 0.5 -o "$tmp/nonexistent_dir/x.onnx"
else
    bad "no example teacher in $MODELS (cnn.onnx or mlp.onnx)"
fi

# ---- every example teacher ------------------------------------------------------------
have_ort=false
if command -v node >/dev/null && [ -d tests/node_modules/onnxruntime-node ]; then have_ort=true; fi
npy "$tmp/x.npy" 3
ort_models=""
for name in cnn cnn_bn resnet mlp; do
    T="$MODELS/$name.onnx"
    if [ ! -f "$T" ]; then
        bad "$T is missing"
        continue
    fi
    for spec in "--width 0.5" "--width 0.25 --depth 0.5" "--depth 0.5 --init random --seed 3" \
        "--width 0.75 --round 1 --bn on" "--width 0.5 --bn off --init random"; do
        tag=$(echo "$name $spec" | tr -c 'A-Za-z0-9.\n' '_')
        S="$tmp/$tag.onnx"
        # shellcheck disable=SC2086
        if "$BIN" shrink "$T" $spec -o "$S" >"$tmp/out" 2>"$tmp/err"; then
            if grep -q '^teacher .*params .*MACs' "$tmp/out" && grep -q '^student .*params .*MACs .*of the MACs' "$tmp/out"; then
                ok
            else
                bad "$name $spec: no params/MACs lines: $(cat "$tmp/out")"
            fi
            check "$name $spec: inspect accepts the student" "$BIN" inspect "$S"
            if "$BIN" run "$S" --input "input=$tmp/x.npy" --output "logits=$tmp/y.npy" >/dev/null 2>"$tmp/err"; then
                ok
            else
                bad "$name $spec: run: $(cat "$tmp/err")"
            fi
            ort_models="$ort_models $S"
        else
            bad "$name $spec: $(cat "$tmp/err")"
        fi
    done
    # width 0.5 keeps about a quarter of a conv net's MACs
    if "$BIN" shrink "$T" --width 0.5 -o "$tmp/$name-half.onnx" >"$tmp/out" 2>"$tmp/err"; then
        pct=$(sed -n 's/.*(\([0-9.]*\)% of the params, \([0-9.]*\)% of the MACs).*/\2/p' "$tmp/out")
        case $name in
        mlp) lo=20 hi=50 ;;
        *) lo=20 hi=30 ;;
        esac
        check "$name width 0.5 keeps ${pct:-?}% of the MACs (expected $lo..$hi)" \
            awk -v p="${pct:-0}" -v lo=$lo -v hi=$hi 'BEGIN { exit !(p >= lo && p <= hi) }'
    else
        bad "$name width 0.5: $(cat "$tmp/err")"
    fi
    # width 1, depth 1, teacher init: the teacher's outputs, byte for byte
    if "$BIN" shrink "$T" --width 1 --depth 1 --init teacher -o "$tmp/$name-same.onnx" >/dev/null 2>"$tmp/err" &&
        "$BIN" run "$T" --input "input=$tmp/x.npy" --output "logits=$tmp/t.npy" >/dev/null 2>&1 &&
        "$BIN" run "$tmp/$name-same.onnx" --input "input=$tmp/x.npy" --output "logits=$tmp/s.npy" >/dev/null 2>&1; then
        check "$name width 1 depth 1: the teacher's outputs" cmp -s "$tmp/t.npy" "$tmp/s.npy"
    else
        bad "$name width 1 depth 1: $(cat "$tmp/err")"
    fi
    ort_models="$ort_models $tmp/$name-same.onnx"
    # the same seed, the same file; another seed, another file
    "$BIN" shrink "$T" --width 0.5 --init random --seed 9 -o "$tmp/r1.onnx" >/dev/null 2>&1
    "$BIN" shrink "$T" --width 0.5 --init random --seed 9 -o "$tmp/r2.onnx" >/dev/null 2>&1
    "$BIN" shrink "$T" --width 0.5 --init random --seed 10 -o "$tmp/r3.onnx" >/dev/null 2>&1
    check "$name: random init is repeatable" cmp -s "$tmp/r1.onnx" "$tmp/r2.onnx"
    check "$name: random init follows the seed" bash -c "! cmp -s '$tmp/r1.onnx' '$tmp/r3.onnx'"
    # depth: blocks reported and dropped
    if "$BIN" shrink "$T" --depth 0.5 -v -o "$tmp/$name-deep.onnx" >"$tmp/out" 2>"$tmp/err"; then
        check "$name --depth 0.5 drops a block" grep -q ' dropped$' "$tmp/out"
    else
        bad "$name depth 0.5: $(cat "$tmp/err")"
    fi
done

# ---- spec files -------------------------------------------------------------------------
T="$MODELS/cnn.onnx"
if [ -f "$T" ]; then
    cat >"$tmp/spec.json" <<'EOF'
{"width": 0.25, "channels": {"/features/features.0/Conv": 24, "/classifier/*": 40},
 "drop": ["/features/features.10/*"]}
EOF
    if "$BIN" shrink "$T" --spec "$tmp/spec.json" -v -o "$tmp/spec.onnx" >"$tmp/out" 2>"$tmp/err"; then
        check "spec: channels of a named layer" grep -qE '^/features/features.0/Conv +Conv +32 +24' "$tmp/out"
        check "spec: channels of a glob" grep -qE '^/classifier/classifier.1/Gemm +Gemm +128 +40' "$tmp/out"
        check "spec: the width of the file" grep -qE '^/features/features.7/Conv +Conv +64 +16' "$tmp/out"
        check "spec: drop" grep -qE '^/features/features.10/Conv +layer .* dropped' "$tmp/out"
        check "spec: the student runs" "$BIN" run "$tmp/spec.onnx" --input "input=$tmp/x.npy" --output "logits=$tmp/y.npy"
        ort_models="$ort_models $tmp/spec.onnx"
    else
        bad "spec: $(cat "$tmp/err")"
    fi
    if "$BIN" shrink "$T" --spec "$tmp/spec.json" --width 0.5 -v -o "$tmp/spec2.onnx" >"$tmp/out" 2>"$tmp/err"; then
        check "--width overrides the spec's width" grep -qE '^/features/features.7/Conv +Conv +64 +32' "$tmp/out"
    else
        bad "spec and --width: $(cat "$tmp/err")"
    fi
    # the inserted BatchNormalization nodes fold away when optimising for shipping
    if "$BIN" optimize --help >/dev/null 2>&1; then
        "$BIN" shrink "$T" --width 0.5 --bn on -o "$tmp/bn.onnx" >/dev/null 2>&1
        if "$BIN" optimize "$tmp/bn.onnx" -o "$tmp/bn_opt.onnx" >/dev/null 2>"$tmp/err"; then
            check "od_bn_ nodes in the student" bash -c "'$BIN' inspect '$tmp/bn.onnx' | grep -q 'BatchNormalization 4'"
            check "optimize folds them away" bash -c "! '$BIN' inspect '$tmp/bn_opt.onnx' | grep -q BatchNormalization"
        else
            bad "optimize: $(cat "$tmp/err")"
        fi
    else
        skipped "optimize (no such command yet)"
    fi
fi

# ---- a teacher made now: depthwise convs in a residual branch, Concat, MatMul ------------
if /usr/bin/python3 -c 'import torch, onnx' 2>/dev/null; then
    cat >"$tmp/gen.py" <<'EOF'
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
    if /usr/bin/python3 "$tmp/gen.py" "$tmp/dw.onnx" >/dev/null 2>"$tmp/err"; then
        if "$BIN" shrink "$tmp/dw.onnx" --width 0.5 -v -o "$tmp/dw_half.onnx" >"$tmp/out" 2>"$tmp/err"; then
            check "depthwise teacher: the depthwise conv narrows with its group" grep -qE '^/dw/Conv +Conv +16 +8' "$tmp/out"
            check "depthwise teacher: the residual block is found" grep -qE ' residual ' "$tmp/out"
            check "depthwise teacher: the student runs" "$BIN" run "$tmp/dw_half.onnx" --input "input=$tmp/x.npy" --output "logits=$tmp/y.npy"
            ort_models="$ort_models $tmp/dw.onnx $tmp/dw_half.onnx"
        else
            bad "depthwise teacher: $(cat "$tmp/err")"
        fi
    else
        skipped "depthwise teacher: the export failed: $(tail -1 "$tmp/err")"
    fi
else
    skipped "depthwise teacher (no torch for /usr/bin/python3)"
fi

# ---- ONNX Runtime agrees with our runtime on the students -------------------------------
if $have_ort && [ -n "$ort_models" ]; then
    # shellcheck disable=SC2086
    NODE_PATH="$PWD/tests/node_modules" BUILD="$BUILD" node tests/ort_compare.js --bin "$BIN" --tol 1e-4 --batch 1,5 $ort_models >"$tmp/ort" 2>&1
    p=$(sed -n 's/^interop: \([0-9]*\) passed.*/\1/p' "$tmp/ort")
    f=$(sed -n 's/^interop: [0-9]* passed, \([0-9]*\) failed.*/\1/p' "$tmp/ort")
    grep "^FAIL" "$tmp/ort"; [ -n "${VERBOSE:-}" ] && cat "$tmp/ort"
    if [ -z "$p" ]; then
        bad "ort_compare: $(tail -3 "$tmp/ort")"
    else
        pass=$((pass + p))
        fail=$((fail + f))
    fi
else
    skipped "ONNX Runtime comparison (no node or tests/node_modules/onnxruntime-node)"
fi

echo "shrink_cli: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]

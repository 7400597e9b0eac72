#!/bin/bash
# `onnx-distill optimize` end to end, on the example teachers (models/*.onnx) and on fixtures
# made here (PyTorch export with BatchNorm kept, and hand-built graphs with Dropout, Identity,
# shape chains, duplicate and unused initializers, opset 11 Squeeze/Unsqueeze/Softmax).
#
# For every model and every --weights f32, f16, int8, the written file must
#  - pass onnx.checker.check_model(model, full_check=True) (python3-onnx);
#  - keep the graph's input and output names, element types and dims (the batch dim symbolic);
#  - run in ONNX Runtime (onnxruntime-node) within 1e-4 of our interpreter, batch 1 and 64;
#  - agree with the original model in our interpreter, batch 1 and 64: f32 within 1e-4 per
#    element (relative to max(1, |x|)); f16 and int8 within F16_TOL and INT8_TOL of the
#    original's largest output magnitude (the measured values are printed).
# f32 files of the example teachers are at most 1% larger than their float32 parameters. On the
# example teachers, Fashion-MNIST test accuracy may drop by at most F16_DROP / INT8_DROP points.
# Also: the CLI's help and one-line errors, and that a failed run leaves the output untouched.
# Ends with `optimize: N passed, N failed, N skipped`.
. "$(dirname "$0")/lib.sh"
export NODE_PATH="$PWD/tests/node_modules"
F16_TOL=2e-3   # max |f16 - f32| / max |f32 output|
INT8_TOL=5e-2  # max |int8 - f32| / max |f32 output|
F16_DROP=0.1   # test accuracy points
INT8_DROP=0.5


need_bin

# ---- fixtures ------------------------------------------------------------------------------
cat >"$T/fixtures.py" <<'EOF'
import os, sys, warnings
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper
import torch, torch.nn as nn, torch.nn.functional as F
warnings.filterwarnings("ignore")
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
rng = np.random.default_rng(0)

class Net(nn.Module):  # every BN kind: after Conv (no bias), grouped Conv, grouped ConvTranspose, Linear
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1, bias=False); self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, groups=2); self.b2 = nn.BatchNorm2d(8)
        self.t1 = nn.ConvTranspose2d(8, 6, 2, stride=2, groups=2); self.b3 = nn.BatchNorm2d(6)
        self.l1 = nn.Linear(6 * 14 * 14, 32); self.b4 = nn.BatchNorm1d(32)
        self.l2 = nn.Linear(32, 10)
    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        x = F.max_pool2d(F.max_pool2d(F.relu(self.b2(self.c2(x))), 2), 2)
        x = F.relu(self.b3(self.t1(x)))
        x = x.reshape(x.shape[0], -1)  # a batch-dependent shape chain
        return self.l2(F.relu(self.b4(self.l1(x))))

net = Net()
for m in net.modules():
    if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        with torch.no_grad():
            m.running_mean.uniform_(-0.5, 0.5); m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5); m.bias.uniform_(-0.2, 0.2)
net.eval()
torch.onnx.export(net, torch.randn(2, 1, 28, 28), os.path.join(out, "torch_bn.onnx"), opset_version=13,
                  input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                  training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)

def init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)
f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
pos = lambda n: rng.uniform(0.5, 1.5, n).astype(np.float32)
def save(nodes, name, inputs, outputs, inits, opset, ir, **kw):
    g = helper.make_graph(nodes, name, inputs, outputs, inits, **kw)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="fixture", doc_string="doc")
    m.ir_version = ir
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, os.path.join(out, name + ".onnx"))
vi = helper.make_tensor_value_info

W2 = f32(16, 4); b2 = f32(4)
save([helper.make_node("Shape", ["x"], ["x_shape"], name="shape"),
      helper.make_node("Gather", ["x_shape", "idx1"], ["feat"], name="gather1", axis=0),
      helper.make_node("Unsqueeze", ["feat"], ["feat1"], name="unsq_feat", axes=[0]),
      helper.make_node("Concat", ["minus1", "feat1"], ["shape2"], name="concat_shape", axis=0),
      helper.make_node("Reshape", ["x", "shape2"], ["x2"], name="reshape_x"),
      helper.make_node("Gather", ["x_shape", "idx0"], ["batch"], name="gather0", axis=0),
      helper.make_node("Unsqueeze", ["batch"], ["batch1"], name="unsq_batch", axes=[0]),
      helper.make_node("Concat", ["batch1", "feat1"], ["shape3"], name="concat_shape3", axis=0),
      helper.make_node("Reshape", ["x2", "shape3"], ["x3"], name="reshape_x3", doc_string="batch dependent"),
      helper.make_node("Constant", [], ["half"], name="const_half", value=init("", np.array(0.5, np.float32))),
      helper.make_node("Mul", ["x3", "half"], ["x4"], name="mul_half"),
      helper.make_node("Gemm", ["x4", "W1", "C1"], ["g1"], name="gemm1", transB=1, beta=0.5),
      helper.make_node("BatchNormalization", ["g1", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn1"], name="od_bn_1", epsilon=1e-3),
      helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
      helper.make_node("Dropout", ["r1"], ["d1"], name="dropout1", ratio=0.25),
      helper.make_node("Unsqueeze", ["d1"], ["u1"], name="unsq1", axes=[1]),
      helper.make_node("Squeeze", ["u1"], ["s1"], name="sq1", axes=[1]),
      helper.make_node("MatMul", ["s1", "W2"], ["m2"], name="matmul2"),
      helper.make_node("Add", ["m2", "b2"], ["a2"], name="add2"),
      helper.make_node("Softmax", ["a2"], ["sm"], name="softmax", axis=1),
      helper.make_node("Identity", ["sm"], ["y"], name="identity_out"),
      helper.make_node("MatMul", ["s1", "W3"], ["m3"], name="matmul3"),
      helper.make_node("Add", ["m3", "b3"], ["a3"], name="add3"),
      helper.make_node("Identity", ["a3"], ["i3"], name="identity_mid"),
      helper.make_node("Relu", ["i3"], ["z"], name="relu_z"),
      helper.make_node("Relu", ["x"], ["dead"], name="dead_relu")],
     "handmade", [vi("x", TensorProto.FLOAT, ["N", 8])],
     [vi("y", TensorProto.FLOAT, ["N", 4]), vi("z", TensorProto.FLOAT, ["N", 4])],
     [init("W1", f32(16, 8)), init("C1", f32(1, 16)), init("bn_s", pos(16)), init("bn_b", f32(16)),
      init("bn_m", f32(16)), init("bn_v", pos(16)), init("W2", W2), init("b2", b2), init("W3", W2.copy()),
      init("b3", b2.copy()), init("unused", f32(100)), init("minus1", np.array([-1], np.int64)),
      init("idx1", np.array(1, np.int64)), init("idx0", np.array(0, np.int64))],
     11, 6, value_info=[vi("g1", TensorProto.FLOAT, ["N", 16])], doc_string="graph doc")

# Softmax over the channels of a 4-D tensor at opset 11: --weights int8 must be refused
save([helper.make_node("Conv", ["x", "Wc"], ["c"], name="conv", pads=[1, 1, 1, 1]),
      helper.make_node("Softmax", ["c"], ["y"], name="softmax_c", axis=1)],
     "softmax4d", [vi("x", TensorProto.FLOAT, ["N", 3, 8, 8])], [vi("y", TensorProto.FLOAT, ["N", 4, 8, 8])],
     [init("Wc", f32(4, 3, 3, 3))], 11, 6)

# Gemm without transB, alpha != 1, then BN; opset 17
save([helper.make_node("Gemm", ["x", "W", "C"], ["g"], name="gemm_nt", alpha=0.7),
      helper.make_node("BatchNormalization", ["g", "s", "b", "m", "v"], ["y"], name="bn_nt")],
     "gemm_nt", [vi("x", TensorProto.FLOAT, ["N", 8])], [vi("y", TensorProto.FLOAT, ["N", 6])],
     [init("W", f32(8, 6)), init("C", f32(6)), init("s", pos(6)), init("b", f32(6)), init("m", f32(6)), init("v", pos(6))],
     17, 8)
EOF

# ---- checks in Python ------------------------------------------------------------------------
cat >"$T/optcheck.py" <<'EOF'
import os, subprocess, sys
import numpy as np
import onnx
import onnx.numpy_helper

def sig(m):
    def one(v):
        t = v.type.tensor_type
        return (v.name, t.elem_type, [d.dim_param if d.HasField("dim_param") else d.dim_value for d in t.shape.dim])
    return [one(v) for v in m.graph.input], [one(v) for v in m.graph.output]

def check(orig, out):
    m = onnx.load(out)
    onnx.checker.check_model(m, full_check=True)
    a, b = sig(onnx.load(orig)), sig(m)
    inits = {i.name for i in onnx.load(orig).graph.initializer}
    a = ([x for x in a[0] if x[0] not in inits], a[1])
    if a != b:
        sys.exit("inputs/outputs changed: %s -> %s" % (a, b))
    for v in m.graph.input:
        d = v.type.tensor_type.shape.dim
        if len(d) and not d[0].HasField("dim_param"):
            sys.exit("input %s lost its symbolic batch dim" % v.name)

def run(binary, model, feeds, tmp, tag):
    args = [binary, "run", model]
    for name, x in feeds.items():
        f = os.path.join(tmp, "%s_in_%s.npy" % (tag, len(args)))
        np.save(f, x)
        args += ["--input", "%s=%s" % (name, f)]
    outs = [o.name for o in onnx.load(model).graph.output]
    files = [os.path.join(tmp, "%s_out_%d.npy" % (tag, i)) for i in range(len(outs))]
    for name, f in zip(outs, files):
        args += ["--output", "%s=%s" % (name, f)]
    subprocess.run(args, check=True, stderr=subprocess.PIPE)
    return [np.load(f) for f in files]

def compare(binary, orig, out, mode, tol, tmp):
    m = onnx.load(orig)
    inits = {i.name for i in m.graph.initializer}
    worst = 0.0
    for batch in (1, 64):
        rng = np.random.default_rng(batch)
        feeds = {}
        for v in m.graph.input:
            if v.name in inits:
                continue
            dims = [batch if d.HasField("dim_param") or d.dim_value <= 0 else d.dim_value
                    for d in v.type.tensor_type.shape.dim]
            feeds[v.name] = rng.uniform(-2, 2, dims).astype(np.float32)
        a = run(binary, orig, feeds, tmp, "a")
        b = run(binary, out, feeds, tmp, "b")
        for x, y in zip(a, b):
            if x.shape != y.shape:
                sys.exit("batch %d: shape %s vs %s" % (batch, x.shape, y.shape))
            d = np.abs(x.astype(np.float64) - y)
            if mode == "elem":
                w = float((d / np.maximum(1.0, np.abs(x))).max())
            else:
                w = float(d.max() / max(1e-12, np.abs(x).max()))
            worst = max(worst, w)
    print("%.3g" % worst)
    if not worst <= tol:
        sys.exit("max difference %.3g over the tolerance %g" % (worst, tol))

def params(path):
    m = onnx.load(path)
    n = sum(len(onnx.numpy_helper.to_array(t).tobytes()) for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)
    print(n)

cmd = sys.argv[1]
try:
    if cmd == "check":
        check(sys.argv[2], sys.argv[3])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]), sys.argv[7])
    elif cmd == "params":
        params(sys.argv[2])
except subprocess.CalledProcessError as e:
    sys.exit("onnx-distill run failed: " + e.stderr.decode().strip())
except Exception as e:
    sys.exit("%s: %s" % (type(e).__name__, e))
EOF

if $PY "$T/fixtures.py" "$T/fx" >"$T/fixtures.log" 2>&1; then
    ok "fixtures made"
else
    bad "fixtures: $(tail -3 "$T/fixtures.log")"
fi

examples=${OPTIMIZE_MODELS:-$(ls models/*.onnx 2>/dev/null)} # OPTIMIZE_MODELS: other teachers
[ -n "$examples" ] || bad "no example models in models/ (models/make_teachers.py makes them)"
mkdir -p "$T/out" "$T/work"

# ---- every model, every weight format ----------------------------------------------------------
for model in $examples "$T"/fx/*.onnx; do
    base=$(basename "$model" .onnx)
    for w in f32 f16 int8; do
        out="$T/out/$base.$w.onnx"
        label="$base --weights $w"
        if [ "$base" = softmax4d ] && [ "$w" = int8 ]; then
            echo keep >"$out"
            if "$BIN" optimize "$model" -o "$out" --weights int8 >"$T/log" 2>&1; then
                bad "$label: accepted, but an opset-11 Softmax over channels cannot move to opset 13"
            elif [ "$(wc -l <"$T/log")" -eq 1 ] && grep -q 'softmax_c.*opset 13' "$T/log" &&
                [ "$(cat "$out")" = keep ] && [ -z "$(ls "$T/out" | grep '\.tmp\.')" ]; then
                ok "$label: refused in one line, output untouched: $(cat "$T/log")"
            else
                bad "$label: refusal not as expected: $(cat "$T/log")"
            fi
            continue
        fi
        if ! "$BIN" optimize "$model" -o "$out" --weights "$w" >"$T/log" 2>&1; then
            bad "$label: $(tail -1 "$T/log")"
            continue
        fi
        if msg=$($PY "$T/optcheck.py" check "$model" "$out" 2>&1); then
            ok "$label: onnx.checker full_check, inputs/outputs and batch dim kept"
        else
            bad "$label: $msg"
        fi
        case $w in
        f32) mode=elem tol=1e-4 ;;
        f16) mode=range tol=$F16_TOL ;;
        int8) mode=range tol=$INT8_TOL ;;
        esac
        if msg=$($PY "$T/optcheck.py" compare "$BIN" "$model" "$out" $mode $tol "$T/work" 2>&1); then
            ok "$label: interpreter, original vs optimized, batch 1 and 64: $msg ($mode, tolerance $tol)"
        else
            bad "$label: interpreter, original vs optimized: $msg"
        fi
        if node tests/ort_compare.js --tol 1e-4 --batch 1,64 --bin "$BIN" "$out" >"$T/ort.log" 2>&1; then
            ok "$label: ONNX Runtime vs interpreter: $(grep -c '^PASS' "$T/ort.log") cases within 1e-4 ($(grep -o 'max rel diff [^ ]*' "$T/ort.log" | sort -k4 -g | tail -1))"
        else
            bad "$label: ONNX Runtime: $(grep -E '^FAIL|Error' "$T/ort.log" | head -2)"
        fi
        grep -E '^  (fold|drop|weights|size)' "$T/log" | sed "s/^/    $base $w: /"
    done
done

# ---- size of f32 files of the example teachers ----------------------------------------------
for model in $examples; do
    base=$(basename "$model" .onnx)
    out="$T/out/$base.f32.onnx"
    [ -f "$out" ] || continue
    size=$(stat -c %s "$out")
    params=$($PY "$T/optcheck.py" params "$out")
    if [ -n "$params" ] && [ "$size" -le $((params + params / 100)) ]; then
        ok "$base f32: $size bytes for $params bytes of float32 parameters (+$(awk "BEGIN{printf \"%.2f\", ($size-$params)*100/$params}")%, at most 1%)"
    else
        bad "$base f32: $size bytes for ${params:-?} bytes of float32 parameters (over 1%)"
    fi
done

# ---- accuracy of f16 and int8 on Fashion-MNIST -----------------------------------------------
acc() { "$BIN" eval "$1" --data fashion-mnist --json 2>/dev/null | $PY -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])'; }
# (not under OD_TEST_QUICK=1, run_all.sh's sanitizer pass: numbers, not memory safety)
if [ "${OD_TEST_QUICK:-0}" != 1 ] && [ -d /usr/share/datasets/fashion-mnist ] && "$BIN" eval --help >/dev/null 2>&1; then
    for model in $examples; do
        base=$(basename "$model" .onnx)
        a32=$(acc "$model")
        [ -n "$a32" ] || { bad "$base: eval failed"; continue; }
        for w in f16 int8; do
            out="$T/out/$base.$w.onnx"
            [ -f "$out" ] || continue
            a=$(acc "$out")
            limit=$F16_DROP; [ $w = int8 ] && limit=$INT8_DROP
            drop=$(awk "BEGIN{printf \"%.2f\", ($a32 - ${a:-0}) * 100}")
            if [ -n "$a" ] && awk "BEGIN{exit !($drop <= $limit)}"; then
                ok "$base $w: Fashion-MNIST test accuracy $a32 -> $a ($drop points, at most $limit)"
            else
                bad "$base $w: Fashion-MNIST test accuracy $a32 -> ${a:-?} (over $limit points)"
            fi
        done
    done
fi

# ---- the command line -------------------------------------------------------------------------
fx="$T/fx/handmade.onnx"
if "$BIN" optimize --help >"$T/log" 2>&1 && grep -q '^usage: onnx-distill optimize' "$T/log"; then
    ok "optimize --help"
else
    bad "optimize --help: $(head -1 "$T/log")"
fi
"$BIN" --help | grep -q '^  optimize' && ok "listed in onnx-distill --help" || bad "not listed in onnx-distill --help"
cli_error() { # label, grep pattern, args...: a runtime error, exit 1 (cli_usage: exit 2)
    local label=$1 pattern=$2
    shift 2
    "$BIN" optimize "$@" >"$T/out.log" 2>"$T/err.log"
    local rc=$?
    if [ $rc -eq "${want_rc:-1}" ] && [ "$(wc -l <"$T/err.log")" -eq 1 ] && grep -q "$pattern" "$T/err.log" &&
        [ ! -s "$T/out.log" ]; then
        ok "error, $label: $(cat "$T/err.log")"
    else
        bad "error, $label: exit $rc, stderr: $(head -3 "$T/err.log")"
    fi
}
cli_usage() { want_rc=2 cli_error "$@"; }
cli_usage "no model" "no model given"
cli_usage "no output" "no output" "$fx"
cli_usage "bad --weights" "int4" "$fx" -o "$T/x.onnx" --weights int4
cli_usage "unknown option" "unknown option --fast" "$fx" -o "$T/x.onnx" --fast
cli_error "missing file" "nope.onnx" "$T/nope.onnx" -o "$T/x.onnx"
echo "not onnx" >"$T/garbage.onnx"
cli_error "not a model" "garbage.onnx" "$T/garbage.onnx" -o "$T/x.onnx"
cli_error "unwritable output" "no/such/dir" "$fx" -o "$T/no/such/dir/x.onnx"
[ ! -e "$T/x.onnx" ] && ok "no output written on errors" || bad "an output was written on error"
if "$BIN" optimize "$fx" -o "$T/a.onnx" --no-check >/dev/null && "$BIN" optimize "$fx" -o "$T/b.onnx" >/dev/null &&
    cmp -s "$T/a.onnx" "$T/b.onnx"; then
    ok "deterministic output (and --no-check writes the same file)"
else
    bad "two runs wrote different files"
fi
if "$BIN" optimize "$T/a.onnx" -o "$T/c.onnx" >"$T/log" && cmp -s "$T/a.onnx" "$T/c.onnx"; then
    ok "optimizing an optimized model changes nothing"
else
    bad "a second optimize changed the file: $(grep -E 'fold|drop|removed' "$T/log" | tr '\n' ' ')"
fi
finish

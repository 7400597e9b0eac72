#!/bin/bash
# Static int8 quantization from the command line: `optimize --weights int8 --activations int8
# --calibrate fashion-mnist` on the example teachers (cnn, cnn_bn, resnet). For each written QDQ
# model:
#  - onnx.checker.check_model(full_check=True) passes; every Conv and Gemm reads its activation
#    and weight from DequantizeLinear (the weight an int8 initializer, the bias int32) and its
#    output (or its Relu's) goes into QuantizeLinear to int8;
#  - ONNX Runtime (onnxruntime-node) runs it on the first 1,000 Fashion-MNIST test images: its
#    argmax agrees with ours on >= 99% of them and its logits are within ORT_STEPS output
#    quantization steps of ours (ORT requantizes in its own way);
#  - the inputs and outputs keep their names, types and the dynamic batch dim.
# Also: QuantizeLinear's rounding and saturation against numpy; --calibrate-percentile changes the
# ranges; the flags' usage errors (exit 2).
# Ends with `int8: N passed, N failed, N skipped`.
. "$(dirname "$0")/lib.sh"
export NODE_PATH="$PWD/tests/node_modules"
DATA=/usr/share/datasets/fashion-mnist
ORT_STEPS=3


need_bin
if [ ! -d "$DATA" ]; then
    skipped "$DATA is not installed"; finish
fi

# the first 1,000 test images, preprocessed as the teachers' metadata says (all three agree)
$PY - "$T/x.npy" <<'PYEOF'
import gzip, sys, numpy as np
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
    x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:1000]
np.save(sys.argv[1], ((x.astype(np.float32) / 255 - 0.2860) / 0.3530).astype(np.float32))
PYEOF

cat >"$T/ort.js" <<'JSEOF'
// node ort.js MODEL IN.npy OUT.npy: ONNX Runtime (1 thread) on a float32 .npy, output 0 to .npy
const fs = require('fs'), ort = require('onnxruntime-node');
function readNpy(file) {
  const b = fs.readFileSync(file), hlen = b.readUInt16LE(8), header = b.toString('latin1', 10, 10 + hlen);
  const shape = header.match(/\(([^)]*)\)/)[1].split(',').map(s => s.trim()).filter(s => s).map(Number);
  const copy = Buffer.from(b.subarray(10 + hlen));
  return { data: new Float32Array(copy.buffer, copy.byteOffset, copy.byteLength / 4), shape };
}
function writeNpy(file, data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat((64 - ((11 + header.length) % 64)) % 64) + '\n';
  const h = Buffer.alloc(10); h.write('\x93NUMPY', 0, 'latin1'); h[6] = 1; h[7] = 0; h.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([h, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}
(async () => {
  const [model, inp, out] = process.argv.slice(2);
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  const x = readNpy(inp);
  const r = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) });
  const y = r[s.outputNames[0]];
  writeNpy(out, y.data, y.dims);
})().catch(e => { console.error(e.message); process.exit(1); });
JSEOF

for t in cnn cnn_bn resnet; do
    q="$T/${t}_int8.onnx"
    if ! "$BIN" optimize "models/$t.onnx" -o "$q" --weights int8 --activations int8 --calibrate fashion-mnist \
        --calibrate-samples 256 >"$T/log" 2>&1; then
        bad "$t: optimize --activations int8: $(tail -1 "$T/log")"
        continue
    fi
    grep -q "activations           int8:" "$T/log" && ok "$t: optimize reports the activations" ||
        bad "$t: no activations line: $(cat "$T/log")"
    if out=$($PY - "models/$t.onnx" "$q" 2>&1 <<'PYEOF'
import sys, onnx
from onnx import TensorProto
a, q = onnx.load(sys.argv[1]), onnx.load(sys.argv[2])
onnx.checker.check_model(q, full_check=True)
g = q.graph
prod = {o: n for n in g.node for o in n.output}
inits = {i.name: i for i in g.initializer}
def sig(vs):
    return [(v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in vs]
assert sig(a.graph.input) == sig(g.input), (sig(a.graph.input), sig(g.input))
assert sig(a.graph.output) == sig(g.output), (sig(a.graph.output), sig(g.output))
readers = {}
for n in g.node:
    for i in n.input: readers.setdefault(i, []).append(n)
n_ops = 0
for n in g.node:
    if n.op_type not in ("Conv", "Gemm"): continue
    n_ops += 1
    x, w = prod.get(n.input[0]), prod.get(n.input[1])
    assert x is not None and x.op_type == "DequantizeLinear", f"{n.name}: activation not from DequantizeLinear"
    assert w is not None and w.op_type == "DequantizeLinear" and inits[w.input[0]].data_type == TensorProto.INT8, f"{n.name}: weight"
    if len(n.input) > 2:
        b = prod.get(n.input[2])
        assert b is not None and inits[b.input[0]].data_type == TensorProto.INT32, f"{n.name}: bias not int32"
    y = n.output[0]
    r = readers.get(y, [])
    if len(r) == 1 and r[0].op_type == "Relu": y = r[0].output[0]; r = readers.get(y, [])
    assert len(r) == 1 and r[0].op_type == "QuantizeLinear", f"{n.name}: output not quantized"
    assert inits[r[0].input[2]].data_type == TensorProto.INT8, f"{n.name}: not int8"
assert n_ops >= 3
print(n_ops)
PYEOF
    ); then ok "$t: checker, QDQ around all $out Conv/Gemm nodes, int8 weights, int32 biases, same inputs/outputs"
    else bad "$t: $out"; fi
    if ! "$BIN" run "$q" --input "$T/x.npy" --output "$T/ours.npy" 2>"$T/err"; then
        bad "$t: run: $(cat "$T/err")"; continue
    fi
    if ! node "$T/ort.js" "$q" "$T/x.npy" "$T/ort.npy" 2>"$T/err"; then
        bad "$t: ONNX Runtime: $(cat "$T/err")"; continue
    fi
    if out=$($PY - "$q" "$T/ours.npy" "$T/ort.npy" "$ORT_STEPS" 2>&1 <<'PYEOF'
import sys, onnx, numpy as np
from onnx import numpy_helper
g = onnx.load(sys.argv[1]).graph
prod = {o: n for n in g.node for o in n.output}
inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
dq = prod[g.output[0].name]
assert dq.op_type == "DequantizeLinear"
step = float(inits[dq.input[1]])
ours, ort = np.load(sys.argv[2]), np.load(sys.argv[3])
agree = (ours.argmax(1) == ort.argmax(1)).mean()
worst = np.abs(ours - ort).max() / step
print(f"argmax agreement {100 * agree:.1f}%, max |ours - ORT| {worst:.1f} steps of {step:.4g}")
assert agree >= 0.99 and worst <= float(sys.argv[4]) + 1e-3
PYEOF
    ); then ok "$t: ONNX Runtime on 1,000 test images: $out"
    else bad "$t: ONNX Runtime vs ours: $out"; fi
done

# QuantizeLinear's rounding (half to even) and saturation against numpy, int8 and uint8
$PY - "$T" <<'PYEOF'
import sys, numpy as np, onnx
from onnx import helper, TensorProto, numpy_helper
d = sys.argv[1]
x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 127.5, 128.5, -128.5, -129.5, 1e9, -1e9, 300.49, 0.4999999,
              np.inf, -np.inf, 3.75, -7.25], np.float32)
np.save(f"{d}/qx.npy", x)
for name, t, zp in (("i8", TensorProto.INT8, np.int8(3)), ("u8", TensorProto.UINT8, np.uint8(7))):
    g = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], "q",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(x)])],
                          [helper.make_tensor_value_info("y", t, [len(x)])],
                          [numpy_helper.from_array(np.array(np.float32(0.5)), "s"), numpy_helper.from_array(np.array(zp), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]); m.ir_version = 7
    onnx.save(m, f"{d}/q_{name}.onnx")
    i = np.iinfo(zp.dtype)
    with np.errstate(invalid="ignore"):
        ref = np.clip(np.rint(x / np.float32(0.5)) + zp, i.min, i.max).astype(zp.dtype)
    open(f"{d}/q_{name}_ref.pb", "wb").write(numpy_helper.from_array(ref, "y").SerializeToString())
PYEOF
for q in i8 u8; do
    if "$BIN" run "$T/q_$q.onnx" --input "$T/qx.npy" --output "$T/q_$q.pb" 2>"$T/err" &&
        $PY -c "import sys, onnx; from onnx import numpy_helper as h
a, b = (h.to_array(onnx.load_tensor(f)) for f in sys.argv[1:]); assert (a == b).all(), (a, b)" \
            "$T/q_$q.pb" "$T/q_${q}_ref.pb" 2>>"$T/err"; then
        ok "QuantizeLinear $q: ties to even, saturation, infinities as numpy"
    else bad "QuantizeLinear $q: $(tail -3 "$T/err")"; fi
done

# a percentile clips the ranges: other scales, a model that still runs
if "$BIN" optimize models/cnn.onnx -o "$T/p.onnx" --weights int8 --activations int8 --calibrate fashion-mnist \
    --calibrate-samples 64 --calibrate-percentile 99.9 >"$T/log" 2>&1 &&
    "$BIN" optimize models/cnn.onnx -o "$T/m.onnx" --weights int8 --activations int8 --calibrate fashion-mnist \
        --calibrate-samples 64 >/dev/null 2>&1 && ! cmp -s "$T/p.onnx" "$T/m.onnx" &&
    "$BIN" run "$T/p.onnx" --input "$T/x.npy" --output "$T/p.npy" 2>/dev/null; then
    ok "--calibrate-percentile 99.9 gives other ranges, and runs"
else bad "--calibrate-percentile: $(tail -1 "$T/log")"; fi

# usage errors: exit 2, one line, no output file
usage() { # expected-text args...
    local want=$1; shift
    "$BIN" optimize models/cnn.onnx -o "$T/u.onnx" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ $rc -eq 2 ] && grep -q -- "$want" "$T/err" && [ ! -e "$T/u.onnx" ]; then ok "usage: $*"
    else bad "usage: $* -> exit $rc: $(cat "$T/err")"; fi
}
usage "needs --calibrate" --weights int8 --activations int8
usage "needs --weights int8" --weights f16 --activations int8 --calibrate fashion-mnist
usage "goes with --activations int8" --weights int8 --calibrate fashion-mnist
usage "calibrate-percentile" --weights int8 --activations int8 --calibrate fashion-mnist --calibrate-percentile 0
"$BIN" optimize models/cnn.onnx -o "$T/u.onnx" --weights int8 --activations int8 --calibrate "$T/none" \
    >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && [ ! -e "$T/u.onnx" ] && ok "missing calibration data: exit 1, one line" ||
    bad "missing calibration data: exit $rc: $(cat "$T/err")"
finish

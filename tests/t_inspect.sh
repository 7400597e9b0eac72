#!/bin/bash
# `inspect`: parameter and MAC counts against independent counts made with python3-onnx, the
# JSON keys, symbolic dims, and one-line errors for files that are not models.
. "$(dirname "$0")/lib.sh"
D=/usr/share/libonnx-testdata/data
models="models/*.onnx $D/pytorch-converted/test_Conv2d_groups/model.onnx $D/pytorch-converted/test_Linear/model.onnx
        $D/node/test_matmul_3d/model.onnx $D/node/test_gemm_transposeA/model.onnx $D/pytorch-converted/test_Conv2d_depthwise_strided/model.onnx
        $D/pytorch-converted/test_ConvTranspose2d/model.onnx $D/node/test_convtranspose/model.onnx"
for m in $models; do
    [ -f "$m" ] || continue
    ours=$("$BIN" inspect --json "$m" | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["params"], j["macs"])')
    theirs=$(/usr/bin/python3 tests/onnx_counts.py "$m" | /usr/bin/python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["params"], j["macs"])')
    check "$(basename "$(dirname "$m")")/$(basename "$m"): params and MACs ($ours vs $theirs)" '[ -n "$ours" ] && [ "$ours" = "$theirs" ]'
done
j=$("$BIN" inspect --json models/cnn.onnx)
check "JSON keys" '/usr/bin/python3 -c "
import json, sys; j = json.loads(sys.argv[1])
for k in (\"bytes\", \"ir_version\", \"opsets\", \"producer\", \"inputs\", \"outputs\", \"nodes\", \"ops\", \"params\", \"macs\"): assert k in j, k
assert j[\"inputs\"][0][\"shape\"][0] == \"N\" and j[\"inputs\"][0][\"shape\"][1:] == [1, 28, 28], j[\"inputs\"]
assert j[\"inputs\"][0][\"dtype\"] == \"float\" and j[\"outputs\"][0][\"shape\"] == [\"N\", 10]
" "$j"'
check "--nodes prints a row per node" '[ $("$BIN" inspect --nodes models/cnn.onnx | grep -c "Conv ") -ge 4 ]'
: >"$T/empty.onnx"
head -c 4096 /dev/urandom >"$T/random.onnx"
head -c 20000 models/cnn.onnx >"$T/truncated.onnx"
for f in empty random truncated; do
    "$BIN" inspect "$T/$f.onnx" >/dev/null 2>"$T/err"
    rc=$?
    check "$f file: exit 1, one line naming it" '[ $rc -eq 1 ] && [ $(wc -l <"$T/err") -eq 1 ] && grep -q "$f.onnx" "$T/err"'
done
"$BIN" inspect "$T/missing.onnx" >/dev/null 2>"$T/err"
check "missing file: exit 1" '[ $? -eq 1 ] && grep -q missing.onnx "$T/err"'
finish

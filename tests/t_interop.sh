#!/bin/bash
# Our interpreter against ONNX Runtime on the example teachers, batch 1 and 64.
set -u
cd "$(dirname "$0")/.."
export NODE_PATH="$PWD/tests/node_modules"
models=$(ls models/*.onnx 2>/dev/null)
[ -n "$models" ] || { echo "interop: 0 passed, 1 failed (no models/*.onnx)"; exit 1; }
exec node tests/ort_compare.js --tol 1e-4 --batch 1,64 $models

#!/bin/bash
# Our interpreter against ONNX Runtime on the example teachers, batch 1 and 64 (tests/ort_compare.js
# prints a line per case and the summary).
. "$(dirname "$0")/lib.sh"
export NODE_PATH="$PWD/tests/node_modules"
models=$(ls models/*.onnx 2>/dev/null)
[ -n "$models" ] || { bad "no models/*.onnx"; finish; }
# shellcheck disable=SC2086
node tests/ort_compare.js --tol 1e-4 --batch 1,64 $models

#!/bin/bash
# The main job on the bundled default: distil models/cnn.onnx (Fashion-MNIST) into a student
# with a quarter of its MACs, write out/student.onnx, print the teacher-vs-student summary.
set -eu
cd "$(dirname "$0")/.."
mkdir -p out
BIN=${BUILD:-build}/onnx-distill
REPORT=()
"$BIN" distill --help | grep -q -- '--report' && REPORT=(--report out/report.html)
exec "$BIN" distill models/cnn.onnx --data fashion-mnist --width 0.5 --epochs ${EPOCHS:-2} \
    --threads 2 -o out/student.onnx "${REPORT[@]}" "$@"

#!/bin/bash
# Peak memory of `onnx-distill distill` on an image folder (part 5 of `make bench`; runs alone too):
# a torchvision resnet18 teacher (random weights, exported at 224x224, 1000 outputs), N JPEG images
# of ImageNet-like sizes in K class folders (written here from seeded random content), one epoch
# of a width-0.5 student. Prints one JSON line: peak RSS, the bytes of both models and of one
# input batch, and their ratio.
# usage: tests/bench_images.sh OUT.json   settings (environment):
#   BENCH_IMAGES (20000)  BENCH_IMAGE_CLASSES (100)  BENCH_IMAGE_TRAIN_LIMIT (1000: images trained
#   on; all N are decoded into the store)  BENCH_IMAGE_TEST_LIMIT (500)  BENCH_IMAGE_BATCH (8: the
#   trainer of a width-0.5 resnet18 student at 224x224, BatchNormalization inserted, holds about
#   1.7 GB at batch 16)
# The decoded images go to a file store (--cache DIR, mapped), kept with the images.
#   BENCH_IMAGE_DIR (a folder to keep the images and teacher in between runs; default: temporary)
set -u -o pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/onnx-distill
PY=/usr/bin/python3
OUT=$1
N=${BENCH_IMAGES:-20000}
K=${BENCH_IMAGE_CLASSES:-100}
LIMIT=${BENCH_IMAGE_TRAIN_LIMIT:-1000}
TLIMIT=${BENCH_IMAGE_TEST_LIMIT:-500}
BATCH=${BENCH_IMAGE_BATCH:-8}
if [ -n "${BENCH_IMAGE_DIR:-}" ]; then D=$BENCH_IMAGE_DIR; mkdir -p "$D"; else D=$(mktemp -d); trap 'rm -rf "$D"' EXIT; fi

if [ ! -e "$D/resnet18.onnx" ]; then
    $PY - "$D/resnet18.onnx" <<'EOF' || exit 1
import sys, torch, torchvision
torch.manual_seed(0)
m = torchvision.models.resnet18(weights=None).eval()
torch.onnx.export(m, torch.zeros(1, 3, 224, 224), sys.argv[1], input_names=["x"], output_names=["y"],
                  dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, opset_version=13)
EOF
fi
if [ "$(find "$D/images" -name '*.jpg' 2>/dev/null | wc -l)" -ne "$N" ]; then
    rm -rf "$D/images"
    $PY - "$D/images" "$N" "$K" <<'EOF' || exit 1
import os, sys
import numpy as np
from PIL import Image
root, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
sizes = [(375, 500), (500, 375), (333, 500), (480, 640), (256, 256)]
for i in range(n):
    h, w = sizes[i % len(sizes)]
    coarse = rng.integers(0, 256, (h // 32 + 1, w // 32 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((w, h), Image.BILINEAR)
    d = f"{root}/class-{i % k:04d}"
    os.makedirs(d, exist_ok=True)
    img.save(f"{d}/{i:06d}.jpg", quality=85)
EOF
fi

cmd=("$BIN" distill "$D/resnet18.onnx" --data "$D/images" --resize 256 --width 0.5 --epochs 1 --batch "$BATCH"
     --train-limit "$LIMIT" --test-limit "$TLIMIT" --latency off --quiet --cache "$D/cache" -o "$D/student.onnx")
mkdir -p "$D/cache"
/usr/bin/time -v -o "$D/time.txt" "${cmd[@]}" >"$D/distill.txt" 2>&1 || { tail -5 "$D/distill.txt" >&2; exit 1; }
rss=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$D/time.txt")
wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$D/time.txt")
$PY - "$OUT" <<EOF
import json, os
teacher, student = os.path.getsize("$D/resnet18.onnx"), os.path.getsize("$D/student.onnx")
batch = $BATCH * 3 * 224 * 224 * 4
rss = $rss * 1024
json.dump({"kind": "image_memory", "images": $N, "classes": $K, "train_limit": $LIMIT, "test_limit": $TLIMIT, "batch": $BATCH,
           "cmd": "onnx-distill distill resnet18.onnx --data IMAGES --resize 256 --width 0.5 --epochs 1 --batch $BATCH "
                  "--train-limit $LIMIT --test-limit $TLIMIT --latency off --cache DIR -o S.onnx",
           "rss_bytes": rss, "wall": "$wall", "teacher_bytes": teacher, "student_bytes": student, "batch_bytes": batch,
           "ratio": rss / (teacher + student + batch)}, open("$OUT", "w"))
print(json.dumps(json.load(open("$OUT"))))
EOF

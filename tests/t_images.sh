#!/bin/bash
# Image folders end to end: tests/images_make.py writes the folders (20 reference images of every
# mode with torchvision's tensors, train/val splits, corrupt files, Fashion-MNIST as PNG) and
# test_images checks the reader on them; then the CLI: a distillation on the PNG folder reaches a
# sensible accuracy with class names in the report, the teacher scores the same on the PNGs as
# on the IDX files they came from, --strict and the skip warning, --augment, --latency off, and a
# 1000-class compare --html stays small.
. "$(dirname "$0")/lib.sh"
QUICK=${OD_TEST_QUICK:-0}
N_TRAIN=600 N_TEST=300
[ "$QUICK" = 1 ] && N_TRAIN=200 N_TEST=100

$PY tests/images_make.py "$T/img" $N_TRAIN $N_TEST >"$T/make.out" 2>&1
check "images_make.py writes the folders" '[ $? -eq 0 ] || { cat "$T/make.out"; false; }'

"$BUILD/tests/test_images" "$T/img" >"$T/unit.out" 2>&1
check "test_images: $(tail -1 "$T/unit.out")" '[ $? -eq 0 ] || { cat "$T/unit.out"; false; }'
grep torchvision "$T/unit.out"

# the PNGs are the IDX images: the teacher scores the same on both
a=$("$BIN" eval models/cnn.onnx --data "$T/img/fmnist" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
b=$("$BIN" compare models/cnn.onnx --data fashion-mnist --limit $N_TEST --no-latency --json |
    $PY -c 'import json,sys; print(json.load(sys.stdin)["models"][0]["accuracy"])')
check "teacher on the PNG folder ($a) = on the IDX files ($b)" '$PY -c "import sys; sys.exit(0 if abs($a - $b) < 1e-6 else 1)"'

"$BIN" distill models/cnn.onnx --data "$T/img/fmnist" -o "$T/s.onnx" --epochs 5 --threads 2 --seed 3 --latency off \
    --report "$T/r.json" >"$T/d.out" 2>"$T/d.err"
check "distill on an image folder exits 0" '[ $? -eq 0 ] || { cat "$T/d.err"; false; }'
if [ "$QUICK" != 1 ]; then
    acc=$($PY -c "import json; print(json.load(open('$T/r.json'))['models'][1]['accuracy'])" 2>/dev/null || echo 0)
    check "student accuracy $acc above 0.7 (600 PNGs, 5 epochs)" '$PY -c "import sys; sys.exit(0 if $acc > 0.7 else 1)"'
fi
check "class names from the folders in the report" 'grep -q "\"4-coat\"" "$T/r.json"'
check "--latency off: nothing timed" '$PY -c "import json,sys; r = json.load(open(\"$T/r.json\")); sys.exit(0 if all(not m[\"latency\"] for m in r[\"models\"]) else 1)"'
check "no progress lines when stderr is not a terminal" '! grep -q "teacher logits" "$T/d.err"'

"$BIN" distill models/cnn.onnx --data "$T/img/fmnist" -o "$T/aug.onnx" --epochs 1 --augment --no-latency --quiet >/dev/null 2>"$T/aug.err"
check "--augment runs" '[ $? -eq 0 ] && [ -s "$T/aug.onnx" ] || { cat "$T/aug.err"; false; }'
"$BIN" distill models/cnn.onnx --data "$T/img/fmnist" -o "$T/aug2.onnx" --epochs 1 --augment --no-latency --quiet >/dev/null 2>&1
check "--augment is seeded: the same bytes twice" 'cmp -s "$T/aug.onnx" "$T/aug2.onnx"'
check "--augment changes training" '"$BIN" distill models/cnn.onnx --data "$T/img/fmnist" -o "$T/plain.onnx" --epochs 1 --no-latency --quiet >/dev/null 2>&1 && ! cmp -s "$T/aug.onnx" "$T/plain.onnx"'

"$BIN" distill models/cnn.onnx --data "$T/img/fmnist" -o "$T/ck.onnx" --epochs 1 --checkpoint "$T/ck.ckpt" --no-latency --quiet >/dev/null 2>&1
"$BIN" distill models/cnn.onnx --data "$T/img/fmnist" -o "$T/ck2.onnx" --epochs 1 --resume "$T/ck.ckpt" --augment --no-latency --quiet >/dev/null 2>"$T/ck.err"
check "--resume refuses a checkpoint made without --augment" '[ $? -ne 0 ] && grep -q "checkpoint" "$T/ck.err"'

# corrupt files: a warning naming the first, or with --strict an error
"$BIN" eval models/cnn.onnx --data "$T/img/corrupt" --split train --crop 28 >/dev/null 2>"$T/c.err"
check "corrupt files skipped with a warning" 'grep -q "warning: 3 image files skipped" "$T/c.err" && grep -qE "1trunc.png|junk.jpg|x.bmp" "$T/c.err"'
"$BIN" eval models/cnn.onnx --data "$T/img/corrupt" --split train --strict >/dev/null 2>"$T/s.err"
check "--strict: exit 1 naming the file" '[ $? -eq 1 ] && grep -qE "1trunc.png|junk.jpg|x.bmp" "$T/s.err"'

# 1000 classes: the HTML report summarises instead of drawing two 1000 x 1000 matrices
$PY - "$T/k" <<'EOF' >"$T/k.out" 2>&1
import os, sys
import numpy as np, torch
from PIL import Image
root = sys.argv[1]
for seed in (1, 2):
    torch.manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 1000))
    torch.onnx.export(m, torch.zeros(1, 3, 8, 8), f"{root}-{seed}.onnx", input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
rng = np.random.default_rng(0)
for split in ("train", "val"):
    for c in range(1000):
        d = f"{root}/{split}/class-{c:04d}"
        os.makedirs(d)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(f"{d}/0.png")
EOF
check "1000-class models and folder written" '[ $? -eq 0 ] || { cat "$T/k.out"; false; }'
"$BIN" compare "$T/k-1.onnx" "$T/k-2.onnx" --data "$T/k" --no-latency --html >"$T/k.html" 2>"$T/k.err"
bytes=$(stat -c %s "$T/k.html" 2>/dev/null || echo 0)
check "1000-class compare --html: $bytes bytes, under 2 MB" '[ "$bytes" -gt 1000 ] && [ "$bytes" -lt 2000000 ] || cat "$T/k.err"'
check "1000-class HTML: most confused pairs, bounded class table" 'grep -q "Most confused classes" "$T/k.html" && grep -q "class-0" "$T/k.html" && [ $(grep -c "<rect" "$T/k.html") -lt 200 ]'
"$BIN" compare "$T/k-1.onnx" "$T/k-2.onnx" --data "$T/k" --no-latency --md >"$T/k.md" 2>/dev/null
mdbytes=$(stat -c %s "$T/k.md" 2>/dev/null || echo 0)
check "1000-class Markdown: $mdbytes bytes, under 100 kB" '[ "$mdbytes" -gt 500 ] && [ "$mdbytes" -lt 100000 ]'

finish

#!/bin/bash
# Data-parallel distillation under Open MPI (README, "Several machines (MPI)"): 2 ranks of 1
# thread against one process with the same seed and global batch on a slice of Fashion-MNIST:
# test accuracy within 0.1 point; with --deterministic the same bytes; rank 0 alone writes; a
# killed rank ends the job with a message on the other rank and the checkpoint intact, and a
# single process resumes from it to the same bytes as the uninterrupted 2-rank run.
. "$(dirname "$0")/lib.sh"

if ! command -v mpirun >/dev/null || ! nm "$BIN" 2>/dev/null | grep -q ' U MPI_Init\| T od_comm_mpi_init'; then
    skipped "mpirun missing or $BIN built without MPI (make deps installs libopenmpi-dev, openmpi-bin)"
    finish
fi
# CI runs as root; Open MPI refuses that unless told
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI=(mpirun --oversubscribe -np 2)
# under the sanitizer build: Open MPI's own allocations live until exit, not leaks of ours
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

QUICK=${OD_TEST_QUICK:-0}
LIMITS=(--train-limit 1280 --test-limit 200)
[ "$QUICK" = 1 ] && LIMITS=(--train-limit 640 --test-limit 64)
COMMON=(models/cnn.onnx --data fashion-mnist --width 0.5 "${LIMITS[@]}" --val-split 0.1 --threads 1 --seed 5 --epochs 2 --latency off --quiet)
acc() { "$BIN" eval "$1" --data fashion-mnist --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])'; }

mkdir -p "$T/one" "$T/two"
"$BIN" distill "${COMMON[@]}" -o "$T/one/s.onnx" >"$T/one.out" 2>&1
check "1 process exits 0" '[ $? -eq 0 ] || { cat "$T/one.out"; false; }'
(cd "$T/two" && "${MPI[@]}" "$OLDPWD/$BIN" distill "${COMMON[@]/models\/cnn.onnx/$OLDPWD/models/cnn.onnx}" -o s.onnx) >"$T/two.out" 2>&1
check "2 ranks exit 0" '[ $? -eq 0 ] || { cat "$T/two.out"; false; }'
check "rank 0 alone writes: the student and nothing else, one summary" \
    '[ "$(ls "$T/two")" = s.onnx ] && [ "$(grep -c "^wrote " "$T/two.out")" -eq 1 ]'
check "the summary says 2 ranks, samples/s per rank, communication" \
    'grep -qE "^data-parallel +2 ranks \(mpi\), [0-9]+ samples/s in total, [0-9]+ per rank, communication" "$T/two.out"'
# the 0.1-point bar on the full run only: 640 samples (the sanitizer pass) leave too few steps
if [ "$QUICK" != 1 ]; then
    a1=$(acc "$T/one/s.onnx") a2=$(acc "$T/two/s.onnx")
    check "test accuracy within 0.1 point: 1 process $a1, 2 ranks $a2" \
        '/usr/bin/python3 -c "import sys; sys.exit(0 if abs($a1 - $a2) <= 0.001 else 1)"'
fi

# --deterministic: fixed slices and a fixed summation tree, the same bytes at any rank count
"$BIN" distill "${COMMON[@]}" --deterministic -o "$T/d1.onnx" >"$T/d1.out" 2>&1
"${MPI[@]}" "$BIN" distill "${COMMON[@]}" --deterministic -o "$T/d2.onnx" >"$T/d2.out" 2>&1
check "--deterministic: 2 ranks give the bytes of 1 process" 'cmp -s "$T/d1.onnx" "$T/d2.onnx" || { tail -3 "$T/d1.out" "$T/d2.out"; false; }'
mpirun --oversubscribe -np 4 "$BIN" distill "${COMMON[@]}" --deterministic -o "$T/d4.onnx" >"$T/d4.out" 2>&1
check "--deterministic: 4 ranks give the bytes of 1 process" 'cmp -s "$T/d1.onnx" "$T/d4.onnx" || { tail -3 "$T/d4.out"; false; }'

# per-rank data: each rank read only its shard of the IDX training samples (the others' travel
# per batch), and the students above are the same regardless
n_all=$(grep -oE -- '--train-limit [0-9]+' <<<"${LIMITS[*]}" | cut -d' ' -f2)
check "each of 2 ranks holds half the training samples" \
    'grep -q "^data-parallel   each rank holds its shard of the training samples: rank 0 $((n_all / 2)) of $n_all$" "$T/d2.out" || { grep data-parallel "$T/d2.out"; false; }'
check "each of 4 ranks holds a quarter" \
    'grep -q "rank 0 $((n_all / 4)) of $n_all$" "$T/d4.out"'
check "one process holds them all (no shard line)" '! grep -q "holds its shard" "$T/d1.out"'
# every data format sharded: an .npz (uint8; float32 in [0, 1]; Keras-style float64 [N,H,W,1]),
# CIFAR binary batches (one plain, one gzipped) and a 40-image PNG folder. Each rank keeps only
# its shard of the training samples, and 2 ranks write the bytes of 1 process (--deterministic).
/usr/bin/python3 - "$T/f" <<'PY' >"$T/fixtures.out" 2>&1
import gzip, os, sys
import numpy as np, torch
from PIL import Image
f = sys.argv[1]
os.makedirs(f)
def idx(name, header):
    with gzip.open(f"/usr/share/datasets/fashion-mnist/{name}-idx{1 if 'labels' in name else 3}-ubyte.gz") as g:
        return np.frombuffer(g.read(), np.uint8, offset=header)
x = idx("train-images", 16).reshape(-1, 28, 28)[:500]
y = idx("train-labels", 8)[:500].astype(np.int64)
np.savez(f"{f}/u8.npz", x_train=x[:400], y_train=y[:400], x_test=x[400:], y_test=y[400:])
xf = (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
np.savez(f"{f}/f32.npz", x_train=xf[:400], y_train=y[:400].astype(np.int32), x_test=xf[400:], y_test=y[400:])
xd = x.reshape(-1, 28, 28, 1).astype(np.float64)
np.savez_compressed(f"{f}/f64.npz", x_train=xd[:400], y_train=y[:400], x_test=xd[400:], y_test=y[400:])
# CIFAR-10 binary batches: a label byte, then 3072 pixel bytes
rng = np.random.default_rng(3)
os.makedirs(f"{f}/cifar")
def batch(n):
    rec = np.zeros((n, 3073), np.uint8)
    rec[:, 0] = rng.integers(0, 10, n)
    rec[:, 1:] = rng.integers(0, 256, (n, 3072))
    return rec.tobytes()
open(f"{f}/cifar/data_batch_1.bin", "wb").write(batch(230))
open(f"{f}/cifar/data_batch_2.bin.gz", "wb").write(gzip.compress(batch(170)))
open(f"{f}/cifar/test_batch.bin", "wb").write(batch(50))
torch.manual_seed(0)
m = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                        torch.nn.Flatten(), torch.nn.Linear(32 * 8 * 8, 10))
torch.onnx.export(m, torch.zeros(1, 3, 32, 32), f"{f}/cifar.onnx", input_names=["x"], output_names=["y"],
                  dynamic_axes={"x": {0: "N"}, "y": {0: "N"}})
# 40 PNGs in 4 class folders (4 held out as the test set)
for i in range(40):
    d = f"{f}/img/class-{y[i] % 4}"
    os.makedirs(d, exist_ok=True)
    Image.fromarray(x[i]).save(f"{d}/{i:02d}.png")
PY
check "the format fixtures are made" '[ -s "$T/f/cifar.onnx" ] || { cat "$T/fixtures.out"; false; }'
F=(--width 0.5 --val-split 0.1 --threads 1 --seed 5 --epochs 2 --deterministic --no-latency --quiet)
# shard_case NAME TEACHER DATA HELD OF [flags]: 1 process and 2 ranks, the same bytes, rank 0 holding HELD of OF
shard_case() {
    local name=$1 teacher=$2 data=$3 held=$4 of=$5
    shift 5
    "$BIN" distill "$teacher" --data "$data" "${F[@]}" "$@" -o "$T/$name-1.onnx" >"$T/$name-1.out" 2>&1
    check "$name: 1 process exits 0" '[ $? -eq 0 ] || { cat "$T/$name-1.out"; false; }'
    "${MPI[@]}" "$BIN" distill "$teacher" --data "$data" "${F[@]}" "$@" -o "$T/$name-2.onnx" >"$T/$name-2.out" 2>&1
    check "$name: 2 ranks exit 0" '[ $? -eq 0 ] || { cat "$T/$name-2.out"; false; }'
    check "$name: 2 ranks give the bytes of 1 process" 'cmp -s "$T/$name-1.onnx" "$T/$name-2.onnx"'
    check "$name: rank 0 holds $held of $of training samples" \
        'grep -q "^data-parallel   each rank holds its shard of the training samples: rank 0 $held of $of$" "$T/$name-2.out" || { grep data-parallel "$T/$name-2.out"; false; }'
}
shard_case "npz uint8" models/cnn.onnx "$T/f/u8.npz" 200 400 --batch 16
shard_case "npz float32" models/cnn.onnx "$T/f/f32.npz" 200 400 --batch 16 --scale 1
# float shards hash to the same data identity as the whole set: 1 process takes 2 ranks' checkpoint
R=(--width 0.5 --val-split 0.1 --threads 1 --seed 5 --epochs 1 --deterministic --no-latency --quiet --batch 16 --scale 1)
"${MPI[@]}" "$BIN" distill models/cnn.onnx --data "$T/f/f32.npz" "${R[@]}" --checkpoint "$T/f32.ckpt" -o "$T/f32r2.onnx" >/dev/null 2>&1
"$BIN" distill models/cnn.onnx --data "$T/f/f32.npz" "${R[@]}" --resume "$T/f32.ckpt" -o "$T/f32r1.onnx" >"$T/f32r.out" 2>&1
check "npz float32: 1 process resumes the 2 ranks' checkpoint to their bytes" \
    '[ -s "$T/f32r2.onnx" ] && cmp -s "$T/f32r2.onnx" "$T/f32r1.onnx" || { cat "$T/f32r.out"; false; }'
shard_case "npz float64 [N,H,W,1], deflated" models/cnn.onnx "$T/f/f64.npz" 150 300 --batch 16 --train-limit 300
shard_case "CIFAR batches (plain and .gz)" "$T/f/cifar.onnx" "$T/f/cifar" 200 400 --batch 16
shard_case "CIFAR batches, --train-limit 301" "$T/f/cifar.onnx" "$T/f/cifar" 150 301 --batch 16 --train-limit 301
shard_case "PNG folder" models/cnn.onnx "$T/f/img" 18 36 --batch 8
# a training image of the shard that does not decode: an error (one rank cannot tell the others to skip it)
mkdir -p "$T/f/bad/train" "$T/f/bad/val" && cp -r "$T/f/img/." "$T/f/bad/train/" && cp -r "$T/f/img/class-1" "$T/f/bad/val/"
head -c 100 "$T/f/bad/train/class-0/$(ls "$T/f/bad/train/class-0" | head -1)" >"$T/f/bad/train/class-0/zz.png"
"${MPI[@]}" "$BIN" distill models/cnn.onnx --data "$T/f/bad" "${F[@]}" --batch 8 -o "$T/bad.onnx" >"$T/bad.out" 2>&1
check "PNG folder with a corrupt image on 2 ranks: an error naming it, nothing written" \
    '! [ -e "$T/bad.onnx" ] && grep -q "several ranks: .*zz.png" "$T/bad.out" || { cat "$T/bad.out"; false; }'

# OD_PHASES=1: every rank prints its per-phase wall and CPU seconds
OD_PHASES=1 "${MPI[@]}" "$BIN" distill "${COMMON[@]}" --epochs 1 -o "$T/ph.onnx" >"$T/ph.out" 2>&1
check "OD_PHASES=1: a phase line from each rank, with forward, backward, reduce and optim" \
    '[ "$(grep -cE "^phases rank [01] of 2: wall [0-9.]+ s, cpu [0-9.]+ s;.* forward .* backward .* reduce .* optim " "$T/ph.out")" -eq 2 ] || { cat "$T/ph.out"; false; }'

# a rank killed after the first epoch: the job ends, rank 0 says why, the checkpoint stays
"${MPI[@]}" "$BIN" distill "${COMMON[@]}" --epochs 3 --deterministic -o "$T/full.onnx" >/dev/null 2>&1
"${MPI[@]}" "$BIN" distill "${COMMON[@]}" --epochs 3 --deterministic --checkpoint "$T/run.ckpt" -o "$T/k.onnx" >"$T/k.out" 2>&1 &
mpid=$!
for _ in $(seq 1200); do [ -s "$T/run.ckpt" ] && break; sleep 0.05; done
victim=""
for p in $(ps --ppid $mpid -o pid=); do
    grep -qz '^OMPI_COMM_WORLD_RANK=1$' /proc/$p/environ 2>/dev/null && victim=$p
done
[ -n "$victim" ] && kill -KILL "$victim"
wait $mpid
rc=$?
check "killed rank: the job fails (rc $rc), no student" '[ -n "$victim" ] && [ $rc -ne 0 ] && [ ! -e "$T/k.onnx" ]'
check "killed rank: rank 0 says the job ends and where the checkpoint is" \
    'grep -q "rank 0 of 2: .*the last checkpoint, $T/run.ckpt, is intact" "$T/k.out" || { cat "$T/k.out"; false; }'
"$BIN" distill "${COMMON[@]}" --epochs 3 --deterministic --resume "$T/run.ckpt" -o "$T/r.onnx" >"$T/r.out" 2>&1
check "1 process resumes the 2-rank checkpoint to the uninterrupted run's bytes" \
    'cmp -s "$T/full.onnx" "$T/r.onnx" || { cat "$T/r.out"; false; }'

# a batch that does not split over the ranks: one clear line, exit 1, nothing written
"${MPI[@]}" "$BIN" distill "${COMMON[@]}" --batch 63 -o "$T/odd.onnx" >"$T/odd.out" 2>&1
check "--batch 63 on 2 ranks is refused" 'grep -q "does not split into 2 equal slices" "$T/odd.out" && [ ! -e "$T/odd.onnx" ]'

finish

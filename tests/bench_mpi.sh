#!/bin/bash
# Data-parallel throughput (issue 18): `onnx-distill distill` of the width-0.5 student of
# models/cnn.onnx, 2 MPI ranks x 1 thread against 1 process x 1 thread, the same global batch
# (64), interleaved for BENCH_ROUNDS (3) rounds; training samples/s of the epoch (evaluation
# excluded), the median per configuration, their ratio (target >= 1.7 on a 2-core machine) and
# the share of a 2-rank step spent communicating. Prints a markdown section; bench.sh appends it
# to bench/RESULTS.md. Settings: BENCH_ROUNDS, BENCH_MPI_TRAIN_LIMIT (6400), BUILD.
set -u -o pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/onnx-distill
ROUNDS=${BENCH_ROUNDS:-3}
LIMIT=${BENCH_MPI_TRAIN_LIMIT:-6400}
TEACHER=${BENCH_DISTILL_TEACHER:-models/cnn.onnx}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "## 6. Data-parallel distillation (MPI)"
echo
if ! command -v mpirun >/dev/null; then
    echo "not measured: mpirun is missing (make deps installs openmpi-bin)"
    exit 0
fi
tmp=$(mktemp -d /tmp/od-bench-mpi.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
ARGS=("$TEACHER" --data fashion-mnist --width 0.5 --train-limit "$LIMIT" --test-limit 1 --val-split 0.01 --threads 1
    --epochs 1 --batch 64 --seed 1)
one=() two=() comm=()
rate() { grep -oE '^epoch 1/1 .* ([0-9]+) samples/s' "$1" | grep -oE '[0-9]+ samples/s' | head -1 | cut -d' ' -f1; }
for r in $(seq "$ROUNDS"); do
    "$BIN" distill "${ARGS[@]}" -o "$tmp/a.onnx" >"$tmp/a.out" 2>"$tmp/a.err" || { cat "$tmp/a.err"; exit 1; }
    mpirun --oversubscribe -np 2 "$BIN" distill "${ARGS[@]}" -o "$tmp/b.onnx" >"$tmp/b.out" 2>"$tmp/b.err" ||
        { cat "$tmp/b.err"; exit 1; }
    one+=("$(rate "$tmp/a.err")") two+=("$(rate "$tmp/b.err")")
    comm+=("$(grep -oE '[0-9.]+% communicating' "$tmp/b.err" | head -1 | cut -d% -f1)")
done
/usr/bin/python3 - "$(cut -d' ' -f1-3 /proc/loadavg)" "${one[*]}" "${two[*]}" "${comm[*]}" <<'PY'
import statistics as s, sys
load, one, two, comm = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()], [float(x) for x in sys.argv[4].split()]
a, b, c = s.median(one), s.median(two), s.median(comm)
print("| configuration | training samples/s (median) | per rank | communication share |")
print("|---|---:|---:|---:|")
print(f"| 1 process x 1 thread | {a:.0f} | {a:.0f} | — |")
print(f"| 2 ranks x 1 thread (mpirun -np 2) | {b:.0f} | {b / 2:.0f} | {c:.0f}% |")
print(f"\nratio {b / a:.2f} (target >= 1.7: {'met' if b / a >= 1.7 else 'missed'}); load average {load} during the runs; "
      f"rounds: 1 process {one}, 2 ranks {two}\n")
PY

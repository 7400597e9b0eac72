#!/bin/bash
# `make paper`: Sau & Balasubramanian's comparison on Fashion-MNIST with the bundled CNN teacher
# and a shallow student (width 0.25): labels alone; the plain teacher (sigma 0); the noisy
# teacher over sigma x alpha; 3 seeds each. Writes bench/paper.jsonl (one line a run),
# bench/PAPER.md (mean +- std table) and bench/paper.svg (accuracy against sigma).
#   EPOCHS=3 SEEDS="1 2 3" SIGMAS="0.1 0.2 0.4 0.8" ALPHAS="0.25 0.5 1.0" TRAIN_LIMIT=0 tests/paper.sh
set -u
cd "$(dirname "$0")/.."
BIN=${BUILD:-build}/onnx-distill
EPOCHS=${EPOCHS:-3}
SEEDS=${SEEDS:-"1 2 3"}
SIGMAS=${SIGMAS:-"0.1 0.2 0.4 0.8"}
ALPHAS=${ALPHAS:-"0.25 0.5 1.0"}
WIDTH=${WIDTH:-0.25}
LIMIT=()
[ "${TRAIN_LIMIT:-0}" != 0 ] && LIMIT=(--train-limit "$TRAIN_LIMIT")
OUT=bench/paper.jsonl
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p bench
: >"$OUT"
run() { # label seed args...
    local label=$1 seed=$2
    shift 2
    local start=$SECONDS
    if ! "$BIN" distill models/cnn.onnx --data fashion-mnist --width "$WIDTH" --epochs "$EPOCHS" --threads 2 \
        --seed "$seed" "${LIMIT[@]}" --quiet -o "$T/s.onnx" "$@" >"$T/out" 2>"$T/err"; then
        echo "FAILED $label seed $seed: $(cat "$T/err")"
        return
    fi
    local secs=$((SECONDS - start))
    local acc lat
    acc=$("$BIN" eval "$T/s.onnx" --data fashion-mnist --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
    lat=$("$BIN" bench "$T/s.onnx" --batch 1 --threads 1 --min-time 0.3 --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["results"][0]["median_ms"])')
    printf '{"config": "%s", "seed": %s, "test_accuracy": %s, "seconds": %s, "latency_ms": %s}\n' "$label" "$seed" "$acc" "$secs" "$lat" >>"$OUT"
    echo "$label seed $seed: accuracy $acc, $secs s"
}
for seed in $SEEDS; do
    run "labels only" "$seed" --loss labels
    run "teacher, sigma 0" "$seed" --sigma 0
    for s in $SIGMAS; do
        for a in $ALPHAS; do
            run "sigma $s, alpha $a" "$seed" --sigma "$s" --alpha "$a"
        done
    done
done
/usr/bin/python3 tests/paper_summary.py "$OUT" bench/PAPER.md bench/paper.svg
cat bench/PAPER.md

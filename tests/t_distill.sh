#!/bin/bash
# End to end: distil the bundled CNN teacher on part of Fashion-MNIST; the loss drops, the
# student beats chance by far, has no BatchNormalization left, passes onnx.checker, agrees with
# ONNX Runtime, is byte-identical for the same seed and threads; bad options fail cleanly; a run
# interrupted by SIGINT resumes to the same bytes.
. "$(dirname "$0")/lib.sh"

# OD_TEST_QUICK=1 (run_all.sh's sanitizer pass): less data, and the accuracy bar is not checked.
QUICK=${OD_TEST_QUICK:-0}
LIMITS=(--train-limit 2000 --test-limit 500)
[ "$QUICK" = 1 ] && LIMITS=(--train-limit 640 --test-limit 128)
COMMON=(models/cnn.onnx --data fashion-mnist --width 0.5 "${LIMITS[@]}" --val-split 0.1 --threads 2 --seed 5 --latency off)

"$BIN" distill "${COMMON[@]}" --quiet --epochs 2 -o "$T/a.onnx" >"$T/a.out" 2>"$T/a.err"
check "distill exits 0" '[ $? -eq 0 ] || { cat "$T/a.err"; false; }'
check "student written" '[ -s "$T/a.onnx" ]'
check "default checkpoint removed after success" '[ ! -e "$T/a.onnx.ckpt" ]'
check "summary printed" 'grep -q "MACs per sample" "$T/a.out" && grep -q "agreement with teacher" "$T/a.out"'
check "no BatchNormalization or Dropout left" '! "$BIN" inspect "$T/a.onnx" | grep -qE "BatchNormalization|Dropout"'
macs_t=$("$BIN" inspect --json models/cnn.onnx | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["macs"])')
macs_s=$("$BIN" inspect --json "$T/a.onnx" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["macs"])')
check "a quarter of the MACs or less ($macs_s of $macs_t)" '[ $((macs_s * 4)) -le $((macs_t + macs_t / 50)) ]'
if [ "$QUICK" != 1 ]; then
    acc=$("$BIN" eval "$T/a.onnx" --data fashion-mnist --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
    check "student accuracy $acc above 0.7" '/usr/bin/python3 -c "import sys; sys.exit(0 if $acc > 0.7 else 1)"'
fi
check "onnx.checker full_check" '/usr/bin/python3 -c "import onnx; onnx.checker.check_model(onnx.load(\"$T/a.onnx\"), full_check=True)"'
check "provenance in metadata_props" '/usr/bin/python3 -c "
import onnx; m = {p.key: p.value for p in onnx.load(\"$T/a.onnx\").metadata_props}
assert len(m[\"distill.teacher_sha256\"]) == 64 and m[\"distill.seed\"] == \"5\" and \"preprocess.mean\" in m, m"'
check "ONNX Runtime agrees (batch 1, 64)" 'NODE_PATH=tests/node_modules node tests/ort_compare.js "$T/a.onnx" >"$T/ort.out" 2>&1 || { cat "$T/ort.out"; false; }'

# the loss drops between epochs (progress lines on stderr without --quiet)
"$BIN" distill "${COMMON[@]}" --epochs 2 -o "$T/b.onnx" >/dev/null 2>"$T/b.err"
l1=$(grep -oE '^epoch 1/2  loss [0-9.]+' "$T/b.err" | awk '{print $4}')
l2=$(grep -oE '^epoch 2/2  loss [0-9.]+' "$T/b.err" | awk '{print $4}')
check "loss drops ($l1 -> $l2)" '[ -n "$l1" ] && [ -n "$l2" ] && /usr/bin/python3 -c "import sys; sys.exit(0 if $l2 < $l1 else 1)"'
check "same seed and threads: byte-identical student" 'cmp -s "$T/a.onnx" "$T/b.onnx"'

# interrupted and resumed: the same bytes as the uninterrupted run
"$BIN" distill "${COMMON[@]}" --epochs 3 -o "$T/full.onnx" >/dev/null 2>&1
"$BIN" distill "${COMMON[@]}" --epochs 3 --checkpoint "$T/run.ckpt" -o "$T/int.onnx" >/dev/null 2>"$T/int.err" &
pid=$!
for _ in $(seq 600); do grep -q '^epoch 1/3 ' "$T/int.err" 2>/dev/null && break; sleep 0.1; done
kill -INT $pid
wait $pid
rc=$?
check "SIGINT: exit 130, checkpoint kept, no student (rc $rc)" '[ $rc -eq 130 ] && [ -s "$T/run.ckpt" ] && [ ! -e "$T/int.onnx" ]'
check "SIGINT: the message says how to resume" 'grep -q -- "--resume" "$T/int.err"'
"$BIN" distill "${COMMON[@]}" --epochs 3 --checkpoint "$T/run.ckpt" --resume "$T/run.ckpt" -o "$T/int.onnx" >/dev/null 2>"$T/res.err"
check "resumed run ends byte-identical to the uninterrupted one" 'cmp -s "$T/full.onnx" "$T/int.onnx" || { cat "$T/res.err"; false; }'
"$BIN" distill "${COMMON[@]}" --epochs 3 --seed 6 --resume "$T/run.ckpt" -o "$T/x.onnx" >/dev/null 2>"$T/x.err"
check "resume with another seed is refused" '[ $? -eq 1 ] && grep -q "checkpoint" "$T/x.err" && [ ! -e "$T/x.onnx" ]'

# bad options: one line, exit 2 (a usage error), nothing written
for args in "--sigma -1" "--alpha 1.5" "--width 0" "--width 1.5" "--epochs 0" "--bogus" "--lr nan" "--loss mse"; do
    "$BIN" distill "${COMMON[@]}" $args -o "$T/bad.onnx" >/dev/null 2>"$T/bad.err"
    rc=$?
    check "rejects $args" '[ $rc -eq 2 ] && [ "$(wc -l <"$T/bad.err")" -eq 1 ] && [ ! -e "$T/bad.onnx" ]'
done
"$BIN" distill models/cnn.onnx --data "$T/nowhere" -o "$T/bad.onnx" >/dev/null 2>"$T/bad.err"
check "missing dataset: exit 1, names it" '[ $? -eq 1 ] && grep -q nowhere "$T/bad.err" && [ ! -e "$T/bad.onnx" ]'

# Peak memory: the teacher's logits are computed in runs whose activations fit 64 MiB (runs of
# 2048 samples held 411 MiB of the CNN's activations, 489 MiB peak in all).
if [ "$QUICK" = 1 ] || [ ! -x /usr/bin/time ]; then
    skipped "distill's peak memory (sanitizer pass, or no /usr/bin/time)"
else
    /usr/bin/time -f %M -o "$T/rss" "$BIN" distill models/cnn.onnx --data fashion-mnist --width 0.5 --train-limit 2500 \
        --test-limit 2500 --epochs 1 --latency off --threads 1 --quiet -o "$T/m.onnx" >/dev/null 2>"$T/m.err"
    check "distill on 2,500 samples peaks under 300 MB (runs of logits cut to 64 MiB of activations)" \
        '[ $? -eq 0 ] && [ "$(tail -1 "$T/rss")" -lt 300000 ] || { cat "$T/m.err" "$T/rss"; false; }'
fi

finish

#!/bin/bash
# Runs each fuzz target (build-fuzz/fuzz_*) for SECONDS seconds on a corpus seeded from ONNX's
# conformance data (make_seeds.py, at run time). Found crashes go to build-fuzz/crashes/; each
# one is to become a regression: copy it into tests/fuzz/regressions/TARGET/ (a short name
# saying what it was), fix the bug, and tests/test_fuzz_regressions.c replays it in make test.
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]; ends with `fuzz: N passed, N failed`.
set -u
cd "$(dirname "$0")/../.."
SECS=${1:-10}
shift
TARGETS=${*:-$(ls tests/fuzz/fuzz_*.c | sed -E 's#.*/fuzz_(.*)\.c#\1#')}
B=build-fuzz
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:allocator_may_return_null=1:max_allocation_size_mb=1024:detect_leaks=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-}:print_stacktrace=1:halt_on_error=1
rm -rf "$B/seed"
/usr/bin/python3 tests/fuzz/make_seeds.py "$B/seed" || { echo "fuzz: 0 passed, 1 failed"; exit 1; }
mkdir -p "$B/crashes"
pass=0 fail=0
for t in $TARGETS; do
    mkdir -p "$B/corpus/$t"
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    echo "== fuzz_$t for $SECS s"
    # ASan refuses (returns NULL for) any allocation over 1 GiB, which the library must report
    # as out of memory: a model may rightly ask for that much, so it is no crash; the fuzzer's
    # own malloc limit sits above, its RSS limit catches memory really used.
    "$B/fuzz_$t" "$B/corpus/$t" "$B/seed/$t" "${dict[@]}" -max_total_time="$SECS" -timeout=20 \
        -rss_limit_mb=2560 -malloc_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$B/crashes/$t-" >"$B/fuzz_$t.log" 2>&1
    rc=$?
    grep -aE '^#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss' "$B/fuzz_$t.log" | head -3
    if [ $rc -eq 0 ]; then
        echo "PASS fuzz_$t"
        pass=$((pass + 1))
    else
        echo "FAIL fuzz_$t (exit $rc): $(grep -a -m1 -E 'ERROR|runtime error|Test unit written' "$B/fuzz_$t.log")"
        grep -aE 'Test unit written to' "$B/fuzz_$t.log" | sed 's/^/  /'
        grep -a -A12 -m1 -E '==ERROR|runtime error' "$B/fuzz_$t.log" | sed 's/^/  /'
        fail=$((fail + 1))
    fi
done
echo "fuzz: $pass passed, $fail failed"
[ $fail -eq 0 ]

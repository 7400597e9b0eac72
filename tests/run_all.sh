#!/bin/bash
# Runs every test suite; each prints `NAME: N passed, N failed[, N skipped]` last. Ends with the
# totals over all suites and exits non-zero when any suite failed.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
total_pass=0 total_fail=0 total_skip=0 failed_suites=""
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

run_suite() { # name command...
    local name=$1; shift
    local log="$log_dir/$name.log" start=$SECONDS
    echo "== $name: $*"
    "$@" >"$log" 2>&1
    local rc=$?
    grep -E '^(FAIL|ERROR)' "$log" | head -40
    local line
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    if [ -z "$line" ]; then
        tail -20 "$log"
        line="$name: 0 passed, 1 failed"
        rc=1
    fi
    echo "$line ($((SECONDS - start)) s)"
    local p f s
    p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || echo 0)
    total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + ${s:-0}))
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then total_fail=$((total_fail + 1)); fi
    if [ $rc -ne 0 ]; then failed_suites="$failed_suites $name"; fi
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    run_suite "$(basename "$t")" "$t"
done
for s in tests/t_*.sh; do
    [ -f "$s" ] || continue
    run_suite "$(basename "$s" .sh)" env BUILD="$BUILD" bash "$s"
done

echo
[ -n "$failed_suites" ] && echo "failed suites:$failed_suites"
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ -z "$failed_suites" ] && [ "$total_fail" -eq 0 ]

#!/bin/bash
# Runs every test suite; each prints `NAME: N passed, N failed[, N skipped]` last. Ends with the
# totals over all suites and exits non-zero when any suite failed.
#
#   BUILD=build         the build whose tests and binary are run (build/tests/test_*, then
#                       tests/t_*.sh with BUILD set)
#   ASAN_BUILD=build-asan  a second pass of the same suites against the sanitizer build, with
#                       OD_TEST_QUICK=1 (suites that train or evaluate on Fashion-MNIST use less
#                       of it) and every ASan/UBSan/LSan report written to a file: a suite with
#                       a report fails even when the process that hit it was expected to fail.
#                       Suites named in ASAN_SKIP (speed measurements) are left out.
#   FUZZ_SECONDS=N      one more suite: each fuzz target in build-fuzz/ runs N seconds
#   JOBS=N              suites run N at a time (default: the number of CPUs); each suite's
#                       output is printed when it ends
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ASAN_BUILD=${ASAN_BUILD:-}
ASAN_SKIP=${ASAN_SKIP:-}
FUZZ_SECONDS=${FUZZ_SECONDS:-}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
total_pass=0 total_fail=0 total_skip=0 failed_suites=""
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT
start=$SECONDS

# The queue: "label|kind|arg" with kind bin (a test binary), sh (a tests/t_*.sh script, arg the
# build) or fuzz. The slowest suites of both passes go first so that the others fill in beside
# them (CI of 2026-12-07: ASan t_noise 182 s, ASan t_bad_input 180, t_real_exports 141, ASan
# t_budget 141, t_noise 118, ASan t_mpi 110 — the ASan ones used to start last), then the rest,
# pass by pass. The sanitizer pass's t_real_exports stays with its rest: it reads the export
# cache the first pass's fills.
queue=() rest_queue=()
SLOW_FIRST="t_real_exports t_noise t_bad_input t_budget t_mpi t_distill t_optimize t_report t_shrink_cli test_gradcheck test_dataset"
add_pass() { # build prefix
    local b=$1 p=$2 name t s
    local -a all=()
    for t in "$b"/tests/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.o | *.d) continue ;; esac
        all+=("$(basename "$t")|bin|$t")
    done
    for s in tests/t_*.sh; do
        [ -f "$s" ] && all+=("$(basename "$s" .sh)|sh|$b")
    done
    local -a slow=() rest=()
    for e in "${all[@]}"; do
        name=${e%%|*}
        if [ -n "$p" ] && [[ " $ASAN_SKIP " == *" $name "* ]]; then continue; fi
        if [[ " $SLOW_FIRST " == *" $name "* ]] && [ "$p$name" != "asan:t_real_exports" ]; then slow+=("$p$e")
        else rest+=("$p$e"); fi
    done
    # slow ones in SLOW_FIRST's order
    for name in $SLOW_FIRST; do
        for e in "${slow[@]}"; do [ "${e%%|*}" = "$p$name" ] && queue+=("$e"); done
    done
    rest_queue+=("${rest[@]}")
}
add_pass "$BUILD" ""
[ -n "$ASAN_BUILD" ] && add_pass "$ASAN_BUILD" "asan:"
queue+=("${rest_queue[@]}")
[ -n "$FUZZ_SECONDS" ] && queue=("fuzz|fuzz|$FUZZ_SECONDS" "${queue[@]}")

# Runs one suite in the background; its log, exit status and seconds land in $log_dir.
launch() { # entry index
    local label=${1%%|*} rest=${1#*|}
    local kind=${rest%%|*} arg=${rest#*|} f="$log_dir/$2"
    (
        t0=$SECONDS
        case "$label" in
        asan:*)
            mkdir -p "$f.san"
            export OD_TEST_QUICK=1
            export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:exitcode=86:log_path=$f.san/asan"
            export LSAN_OPTIONS="exitcode=87:log_path=$f.san/lsan"
            export UBSAN_OPTIONS="print_stacktrace=1:exitcode=88:log_path=$f.san/ubsan"
            ;;
        esac
        case "$kind" in
        bin) echo "== $label: $arg" && "$arg" ;;
        sh) echo "== $label: BUILD=$arg tests/${label#asan:}.sh" && env BUILD="$arg" bash "tests/${label#asan:}.sh" ;;
        fuzz) echo "== $label: tests/fuzz/run.sh $arg" && tests/fuzz/run.sh "$arg" ;;
        esac >"$f.log" 2>&1 </dev/null
        echo $? >"$f.rc"
        echo $((SECONDS - t0)) >"$f.time"
    ) &
}

# Prints a finished suite's summary and adds it to the totals.
report() { # entry index
    local label=${1%%|*} f="$log_dir/$2"
    local rc line reports
    rc=$(cat "$f.rc")
    head -1 "$f.log"
    grep -E '^(FAIL|ERROR)' "$f.log" | head -40
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$f.log" | tail -1)
    if [ -z "$line" ]; then
        tail -20 "$f.log"
        line="$label: 0 passed, 1 failed"
        rc=1
    fi
    reports=$(ls "$f.san" 2>/dev/null)
    if [ -n "$reports" ]; then
        echo "FAIL $label: sanitizer reports:"
        for r in "$f.san"/*; do head -30 "$r" | sed 's/^/    /'; done
        rc=1
    fi
    [[ $label == asan:* ]] && line="asan: $line"
    echo "$line ($(cat "$f.time") s)"
    local p s fl
    p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line")
    fl=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
    s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+' || echo 0)
    total_pass=$((total_pass + p)) total_fail=$((total_fail + fl)) total_skip=$((total_skip + ${s:-0}))
    if [ "$rc" -ne 0 ] && [ "$fl" -eq 0 ]; then total_fail=$((total_fail + 1)); fi
    if [ "$rc" -ne 0 ]; then failed_suites="$failed_suites $label"; fi
}

running=() # indices
next=0
while [ $next -lt ${#queue[@]} ] || [ ${#running[@]} -gt 0 ]; do
    while [ $next -lt ${#queue[@]} ] && [ ${#running[@]} -lt "$JOBS" ]; do
        launch "${queue[$next]}" $next
        running+=($next)
        next=$((next + 1))
    done
    sleep 0.5
    still=()
    for i in "${running[@]}"; do
        if [ -f "$log_dir/$i.time" ]; then report "${queue[$i]}" "$i"; else still+=("$i"); fi
    done
    running=("${still[@]}")
done
wait

echo
[ -n "$failed_suites" ] && echo "failed suites:$failed_suites"
echo "all suites: $((SECONDS - start)) s with $JOBS at a time"
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ -z "$failed_suites" ] && [ "$total_fail" -eq 0 ]

#!/bin/bash
# The command-line parser (tools/cli.c) itself: the same bad value gets the same message in every
# command that has the option; usage errors exit 2 and runtime errors 1; `--`, `-oFILE` and
# `--name=value`; `onnx-distill help CMD`; the man page renders; tools see only public headers.
. "$(dirname "$0")/lib.sh"
need_bin
M=models/cnn.onnx

# run NAME ARGS...: runs the binary; $rc, $T/out, $T/err
run() { "$BIN" "$@" >"$T/out" 2>"$T/err" </dev/null; rc=$?; }

# ---- the same bad value, the same message, in every command that has the option ----------------
# same_message OPTION VALUE "CMD ARGS" "CMD ARGS"...: each exits 2 with one stderr line, all equal
same_message() {
    local opt=$1 value=$2 first="" why=""
    shift 2
    for cmd in "$@"; do
        # shellcheck disable=SC2086
        run $cmd "$opt" "$value"
        [ $rc -eq 2 ] || why="$why; $cmd: exit $rc"
        [ "$(wc -l <"$T/err")" -eq 1 ] || why="$why; $cmd: $(wc -l <"$T/err") lines"
        [ -s "$T/out" ] && why="$why; $cmd: wrote to stdout"
        if [ -z "$first" ]; then first=$(cat "$T/err"); elif [ "$(cat "$T/err")" != "$first" ]; then
            why="$why; $cmd says \"$(cat "$T/err")\", not \"$first\""
        fi
    done
    grep -qF -- "$opt" <<<"$first" || why="$why; the message does not name $opt"
    if [ -z "$why" ]; then ok "$opt $value: \"$first\" from $#"; else bad "$opt $value:$why"; fi
}
OUT="-o $T/x.onnx"
same_message --round 0 "shrink $M --width 0.5 $OUT" "distill $M --data fashion-mnist $OUT"
same_message --round 5000000 "shrink $M --width 0.5 $OUT" "distill $M --data fashion-mnist $OUT"
same_message --init foo "shrink $M --width 0.5 $OUT" "distill $M --data fashion-mnist $OUT"
same_message --bn maybe "shrink $M --width 0.5 $OUT" "distill $M --data fashion-mnist $OUT"
same_message --width 1.5 "shrink $M $OUT" "distill $M --data fashion-mnist $OUT"
same_message --depth -1 "shrink $M $OUT" "distill $M --data fashion-mnist $OUT"
same_message --seed -1 "shrink $M --width 0.5 $OUT" "distill $M --data fashion-mnist $OUT"
same_message --threads 0 "run $M --input a.npy --output b.npy" "eval $M --data fashion-mnist" \
    "distill $M --data fashion-mnist $OUT" "bench $M" "compare $M"
same_message --threads 300 "run $M --input a.npy --output b.npy" "bench $M" "compare $M"
same_message --batch 0 "bench $M" "compare $M"
same_message --min-time -1 "bench $M" "compare $M"
same_message --weights f8 "optimize $M $OUT" "distill $M --data fashion-mnist $OUT"
same_message --scale x "eval $M --data fashion-mnist" "compare $M" "distill $M --data fashion-mnist $OUT"
[ -e "$T/x.onnx" ] && bad "a usage error wrote the output" || ok "no usage error wrote an output"

# ---- exit status: 2 for the command line, 1 for what it names -----------------------------------
run; [ $rc -eq 2 ] && ok "no command: exit 2" || bad "no command: exit $rc"
run frobnicate; [ $rc -eq 2 ] && ok "unknown command: exit 2" || bad "unknown command: exit $rc"
run inspect; [ $rc -eq 2 ] && grep -q "no model given" "$T/err" && ok "no operand: exit 2" || bad "no operand: exit $rc $(cat "$T/err")"
run inspect $M $M; [ $rc -eq 2 ] && ok "two operands where one is taken: exit 2" || bad "two operands: exit $rc"
run inspect --json=yes $M; [ $rc -eq 2 ] && grep -q "takes no value" "$T/err" && ok "a flag given a value: exit 2" || bad "flag with value: exit $rc"
run shrink $M --width; [ $rc -eq 2 ] && grep -q -- "--width needs a value" "$T/err" && ok "missing value: exit 2" || bad "missing value: exit $rc"
run inspect "$T/nowhere.onnx"; [ $rc -eq 1 ] && grep -q nowhere "$T/err" && ok "missing file: exit 1" || bad "missing file: exit $rc"
run shrink $M --width 0.5 -o "$T/no/such/x.onnx"; [ $rc -eq 1 ] && ok "unwritable output: exit 1" || bad "unwritable output: exit $rc"
run --help; [ $rc -eq 0 ] && grep -q "2 usage error" "$T/out" && grep -q "1 runtime error" "$T/out" &&
    ok "--help documents the exit statuses" || bad "--help and exit statuses"
run shrink --help; [ $rc -eq 0 ] && grep -q "^Exit status: 0 success, 1 runtime error" "$T/out" &&
    ok "shrink --help documents the exit statuses" || bad "shrink --help and exit statuses"

# ---- spellings: --name=value, -oFILE, --output FILE, -- ------------------------------------------
run shrink $M --width=0.5 -o"$T/a.onnx"
[ $rc -eq 0 ] && [ -s "$T/a.onnx" ] && ok "--width=0.5 -oFILE" || bad "--width=0.5 -oFILE: exit $rc $(cat "$T/err")"
run shrink --output "$T/b.onnx" --width 0.5 $M
[ $rc -eq 0 ] && cmp -s "$T/a.onnx" "$T/b.onnx" && ok "--output FILE before the operand: the same student" ||
    bad "--output FILE: exit $rc"
run shrink $M --width 0.5 --output="$T/c.onnx"
[ $rc -eq 0 ] && cmp -s "$T/a.onnx" "$T/c.onnx" && ok "--output=FILE" || bad "--output=FILE: exit $rc"
cp $M "$T/-dash.onnx"
(cd "$T" && "$OLDPWD/$BIN" inspect -- -dash.onnx >"$T/out" 2>"$T/err"); rc=$?
[ $rc -eq 0 ] && grep -q "^file *-dash.onnx" "$T/out" && ok "-- then a file named -dash.onnx" || bad "--: exit $rc $(cat "$T/err")"
(cd "$T" && "$OLDPWD/$BIN" inspect -dash.onnx >"$T/out" 2>"$T/err"); rc=$?
[ $rc -eq 2 ] && grep -q "unknown option -dash.onnx" "$T/err" && ok "without --, -dash.onnx is an unknown option" || bad "no --: exit $rc"
run inspect $M -- --json; [ $rc -eq 2 ] && grep -q "one model at a time" "$T/err" && ok "after --, --json is an operand" || bad "after --: exit $rc"
run shrink $M --width 0.5 --seed 3 --seed 4 -o "$T/d.onnx"
run shrink $M --width 0.5 --seed 4 -o "$T/e.onnx"
cmp -s "$T/d.onnx" "$T/e.onnx" && ok "an option given twice: the last wins" || bad "repeated option"

# ---- help CMD, --help anywhere, the man page ---------------------------------------------------
for c in inspect run bench shrink optimize distill eval compare; do
    "$BIN" help $c >"$T/h1" 2>&1; r1=$?
    "$BIN" $c --help >"$T/h2" 2>&1; r2=$?
    "$BIN" $c --bogus --help >"$T/h3" 2>&1; r3=$?
    if [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ $r3 -eq 0 ] && cmp -s "$T/h1" "$T/h2" && cmp -s "$T/h1" "$T/h3" &&
        grep -q "^usage: onnx-distill $c " "$T/h1"; then
        ok "help $c = $c --help = $c --bogus --help"
    else
        bad "help $c: exits $r1 $r2 $r3"
    fi
done
run help nope; [ $rc -eq 2 ] && ok "help of an unknown command: exit 2" || bad "help nope: exit $rc"
run distill --help
for o in --width --depth --spec --round --init --bn --seed --threads --weights --data --scale -o; do
    grep -q -- "^  $o\b\|, $o\b\|^  -o, --output" "$T/out" || bad "distill --help lacks $o"
done
grep -q -- "--threads N .*1 to 256; default 2" "$T/out" && ok "--help shows range and default from the table" ||
    bad "--help range and default: $(grep -- --threads "$T/out")"
"$BIN" --man >"$T/od.1" 2>"$T/err"
if command -v groff >/dev/null; then
    warnings=$(groff -man -ww -z "$T/od.1" 2>&1)
    text=$(MANWIDTH=100 man -l "$T/od.1" 2>/dev/null)
    if [ -z "$warnings" ] && grep -q "^EXIT STATUS" <<<"$text" && grep -qE "^ +--sigma-range LO,HI" <<<"$text" &&
        grep -qE "^ +-o, --output FILE" <<<"$text"; then
        ok "the man page renders (man -l) with every option, no groff warnings"
    else
        bad "man page: $warnings $(head -5 <<<"$text")"
    fi
else
    bad "no groff (make deps installs groff-base and man-db)"
fi

# ---- layering: the include path tools/ gets holds the public headers only -----------------------
CC=${CC:-cc}
if echo '#include "onnx_distill.h"
#include "od_onnx.h"
int main(void) { return od_version()[0] == 0; }' | $CC -std=c11 -I"$BUILD/include" -fsyntax-only -x c - 2>"$T/err"; then
    ok "the public headers compile from $BUILD/include"
else
    bad "public headers: $(head -3 "$T/err")"
fi
for h in op.h plan_internal.h train_internal.h passes_internal.h od_proto.h; do
    if echo "#include \"$h\"" | $CC -std=c11 -I"$BUILD/include" -fsyntax-only -x c - 2>/dev/null; then
        bad "$h reachable from $BUILD/include"
    else
        ok "$h is not reachable from $BUILD/include (a tool including it fails to compile)"
    fi
done
grep -q 'TOOLS_CPPFLAGS := -D_GNU_SOURCE -I$(BUILD)/include$' Makefile && ok "tools/ compile with -I\$(BUILD)/include only" ||
    bad "the Makefile gives tools/ more than the public headers"

finish

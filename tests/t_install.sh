#!/bin/bash
# `make install` like a library: into a temporary PREFIX (and with DESTDIR), then the README's C
# example, which must be the header's example word for word, built against the installed copy
# with `pkg-config --cflags --libs onnx-distill` and run; the installed man page renders.
. "$(dirname "$0")/lib.sh"
ROOT=$PWD

# ---- the example: one text in the README and in the header ---------------------------------------
awk '/^## Using the library from C/ { s = 1 } s && /^```c$/ { c = 1; next } c && /^```$/ { exit } c' README.md >"$T/readme.c"
sed -n '/^ \*     #include <onnx_distill.h>/,/^ \*     }$/p' lib/onnx_distill.h | sed -E 's/^ \*( {5}|$)//; s/^ \* ?$//' >"$T/header.c"
if [ -s "$T/readme.c" ] && grep -q "od_open" "$T/readme.c" && cmp -s "$T/readme.c" "$T/header.c"; then
    ok "the README's example is the header's ($(wc -l <"$T/readme.c") lines)"
else
    bad "the README's example and the header's differ: $(diff "$T/readme.c" "$T/header.c" | head -5)"
fi

# ---- proto/: the schema the build compiles, checked --------------------------------------------
out=$(proto/check-schema.sh /usr/include/onnx/onnx.proto 2>&1) && grep -q "from libonnx-dev 1\." <<<"$out" &&
    ok "proto/check-schema.sh: $out" || bad "check-schema on the packaged schema: $out"
out=$(proto/check-schema.sh "$T/none.proto" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "not found.*libonnx-dev" <<<"$out" && ok "a missing schema: names the package" || bad "missing schema: $out"
echo 'syntax = "proto2";' >"$T/other.proto"
out=$(proto/check-schema.sh "$T/other.proto" 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "not ONNX's schema" <<<"$out" && ok "another .proto: refused" || bad "other proto: $out"

# ---- make install PREFIX= -----------------------------------------------------------------------
P=$T/prefix
# install what $BUILD holds, as built (this suite may run against the sanitizer build)
keep=(-o "$BUILD/onnx-distill" -o "$BUILD/onnx-distill.1" -o "$BUILD/libonnxdistill.a" -o "$BUILD/libonnxdistill.so")
if make -s install BUILD="$BUILD" PREFIX="$P" "${keep[@]}" >"$T/install.log" 2>&1; then
    ok "make install PREFIX=$P"
else
    bad "make install: $(tail -5 "$T/install.log")"
    finish
fi
for f in bin/onnx-distill share/man/man1/onnx-distill.1 lib/libonnxdistill.a lib/libonnxdistill.so \
    lib/libonnxdistill.so.0 lib/pkgconfig/onnx-distill.pc include/onnx-distill/onnx_distill.h \
    include/onnx-distill/od_runtime.h include/onnx-distill/od_onnx.h; do
    [ -e "$P/$f" ] || bad "not installed: $f"
done
[ -z "$(ls "$P/include/onnx-distill" | grep -E 'internal|^op\.h|proto')" ] && ok "only public headers installed" ||
    bad "internal headers installed: $(ls "$P/include/onnx-distill")"
"$P/bin/onnx-distill" --version | grep -q "^onnx-distill [0-9]" && ok "the installed program runs" || bad "installed program"

# ---- the example against the installed copy, through pkg-config ---------------------------------
export PKG_CONFIG_PATH=$P/lib/pkgconfig
flags=$(pkg-config --cflags --libs onnx-distill 2>"$T/pc.err")
if [ -n "$flags" ] && grep -q -- "-I$P/include/onnx-distill" <<<"$flags" && grep -q -- "-lonnxdistill" <<<"$flags"; then
    ok "pkg-config --cflags --libs onnx-distill: $flags"
else
    bad "pkg-config: $flags $(cat "$T/pc.err")"
fi
extra="" cc=${CC:-cc}
# the sanitizer build (clang's runtime, which its .so expects the program to bring)
nm -D "$P/lib/libonnxdistill.so" | grep -q __asan && extra="-fsanitize=address,undefined" cc=clang
# shellcheck disable=SC2086
if $cc -std=c11 -Wall -Wextra -Werror $extra "$T/readme.c" $flags -o "$T/example" 2>"$T/cc.err"; then
    ok "the example builds against the installed headers and library (-Wall -Wextra -Werror)"
else
    bad "the example does not build: $(head -5 "$T/cc.err")"
    finish
fi
ldd "$T/example" | grep -q "libonnxdistill.so.0 => $P/lib/" ||
    LD_LIBRARY_PATH=$P/lib ldd "$T/example" | grep -q "libonnxdistill.so.0 => $P/lib/" &&
    ok "the example links the installed libonnxdistill.so.0" || bad "the example does not use the installed .so"
mkdir -p "$T/run"
ln -s "$ROOT/models" "$T/run/models"
(cd "$T/run" && LD_LIBRARY_PATH=$P/lib ./../example >"$T/ex.out" 2>"$T/ex.err")
rc=$?
acc=$(sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' "$T/ex.out")
if [ $rc -eq 0 ] && grep -q "^params *467,818" "$T/ex.out" && [ -s "$T/run/student.onnx" ] &&
    awk -v a="${acc:-0}" 'BEGIN { exit !(a > 50) }'; then
    ok "the example runs: $(tail -1 "$T/ex.out")"
else
    bad "the example: exit $rc, $(tail -3 "$T/ex.out") $(head -3 "$T/ex.err")"
fi
"$P/bin/onnx-distill" inspect "$T/run/student.onnx" >"$T/insp.out" 2>&1 && grep -q "^MACs" "$T/insp.out" &&
    ok "its student.onnx loads in the installed program" || bad "student.onnx: $(head -2 "$T/insp.out")"

# ---- the man page --------------------------------------------------------------------------------
if command -v man >/dev/null; then
    MANWIDTH=100 man -l "$P/share/man/man1/onnx-distill.1" >"$T/man.txt" 2>"$T/man.err"
    if grep -q "^NAME" "$T/man.txt" && grep -qE "^ +--sigma-range" "$T/man.txt" && grep -q "^EXIT STATUS" "$T/man.txt" &&
        [ ! -s "$T/man.err" ]; then
        ok "man -l renders the installed page ($(wc -l <"$T/man.txt") lines)"
    else
        bad "man -l: $(head -3 "$T/man.err")"
    fi
    MANPATH=$P/share/man man -w onnx-distill >/dev/null 2>&1 && ok "man finds onnx-distill(1) under PREFIX/share/man" ||
        bad "man -w onnx-distill with MANPATH=$P/share/man"
else
    bad "no man (make deps installs man-db and groff-base)"
fi

# ---- DESTDIR: staged under it, the .pc still names PREFIX ----------------------------------------
if make -s install BUILD="$BUILD" PREFIX=/opt/od DESTDIR="$T/stage" "${keep[@]}" >"$T/install2.log" 2>&1 &&
    [ -x "$T/stage/opt/od/bin/onnx-distill" ] && grep -q "^prefix=/opt/od$" "$T/stage/opt/od/lib/pkgconfig/onnx-distill.pc" &&
    [ "$(readlink "$T/stage/opt/od/lib/libonnxdistill.so")" = libonnxdistill.so.0 ]; then
    ok "make install DESTDIR=... PREFIX=/opt/od: staged, .pc names /opt/od"
else
    bad "DESTDIR install: $(tail -3 "$T/install2.log")"
fi

finish

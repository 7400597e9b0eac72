# The shared header of every tests/t_*.sh, sourced as its first line:
#     . "$(dirname "$0")/lib.sh"
# It moves to the repository root and sets
#   BUILD, BIN   the build under test (BUILD=build unless set) and its binary, relative to the root
#   PY           the Python with torch, onnx and numpy
#   T            a fresh temporary folder, removed on exit
#   SUITE        the suite's name: the script's, without t_ and .sh
# and the counters pass, fail, skip with their helpers:
#   ok [TEXT]      a pass (TEXT printed as "PASS TEXT" when given)
#   bad TEXT       a failure, printed as "FAIL TEXT"
#   skipped TEXT   a skip, printed as "SKIP TEXT"
#   check NAME EXPR   ok NAME when the shell expression EXPR succeeds (eval), else bad NAME
#   need_bin       a failure and finish when $BIN is not built
#   fashion_head DIR NTRAIN NTEST
#                  writes the first NTRAIN training and NTEST test samples of Debian's
#                  Fashion-MNIST to DIR (named .../fashion-mnist, reports name it so) as
#                  uncompressed IDX: a run with --train-limit/--test-limit within those counts
#                  trains on the same samples as on the whole set, without inflating 30 MB each time
#   finish         prints the one summary line "SUITE: N passed, N failed, N skipped" and exits
#                  0 when nothing failed, 1 otherwise
# shellcheck shell=bash
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
BIN=$BUILD/onnx-distill
PY=/usr/bin/python3
SUITE=$(basename "$0" .sh)
SUITE=${SUITE#t_}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0 skip=0
ok() {
    pass=$((pass + 1))
    [ $# -eq 0 ] || echo "PASS $*"
}
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
skipped() { echo "SKIP $*"; skip=$((skip + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
finish() {
    echo "$SUITE: $pass passed, $fail failed, $skip skipped"
    [ "$fail" -eq 0 ]
    exit $?
}
fashion_head() {
    mkdir -p "$1" && $PY - "$@" <<'PYEOF'
import gzip, struct, sys
out, counts = sys.argv[1], {"train": int(sys.argv[2]), "t10k": int(sys.argv[3])}
for split, n in counts.items():
    for kind, rank in (("images", 3), ("labels", 1)):
        name = f"{split}-{kind}-idx{rank}-ubyte"
        with gzip.open(f"/usr/share/datasets/fashion-mnist/{name}.gz") as g:
            head = g.read(4 + 4 * rank)
            dims = list(struct.unpack(f">{rank}I", head[4:]))
            row = 1
            for d in dims[1:]:
                row *= d
            dims[0] = min(n, dims[0])
            body = g.read(dims[0] * row)
        with open(f"{out}/{name}", "wb") as f:
            f.write(head[:4] + struct.pack(f">{rank}I", *dims) + body)
PYEOF
}
need_bin() { [ -x "$BIN" ] || { bad "no $BIN (run make)"; finish; }; }

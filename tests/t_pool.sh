#!/bin/bash
# The pthreadpool functions libXNNPACK calls are all defined by runtime/pthreadpool.c and
# exported by both the tool and libonnxdistill.so, so that XNNPACK's calls reach our pool and
# never libpthreadpool's (which would read our pool as its own). tests/test_pool.c proves at
# run time that the calls arrive. Ends with `pool: N passed, N failed, N skipped`.
. "$(dirname "$0")/lib.sh"

xnn=$(ls /usr/lib/*/libXNNPACK.so.0 /usr/lib/libXNNPACK.so.0 2>/dev/null | head -1)
if [ -z "$xnn" ]; then
    bad "libXNNPACK.so.0 not found"
else
    need=$(nm -D --undefined-only "$xnn" | awk '$2 ~ /^pthreadpool_/ {print $2}' | sort -u)
    [ -n "$need" ] && ok || bad "libXNNPACK needs no pthreadpool symbol? (nm failed)"
    for f in "$BUILD/onnx-distill" "$BUILD/libonnxdistill.so"; do
        have=$(nm -D --defined-only "$f" | awk '$3 ~ /^pthreadpool_/ {sub(/@.*/, "", $3); print $3}' | sort -u)
        missing=$(comm -23 <(echo "$need") <(echo "$have") | tr '\n' ' ')
        [ -z "$missing" ] && ok || bad "$f does not export: $missing"
    done
fi
# The program must not link libpthreadpool itself: ours are the only definitions it brings.
if readelf -d "$BUILD/onnx-distill" | grep -q 'NEEDED.*libpthreadpool'; then
    bad "$BUILD/onnx-distill links libpthreadpool directly"
else ok; fi
finish

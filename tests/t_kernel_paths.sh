#!/bin/bash
# The kernels chosen by the CPU's features have fallbacks that a machine with those features never
# takes: run the suites that check them again with each choice switched off, so the other paths
# stay correct wherever CI happens to run.
#   OD_NO_AVX512_DW=1  the conv weight gradient's AVX2 tiles instead of the AVX-512 ones
#   OD_NO_DIRECT_DW=1  the conv weight gradient by im2row + sgemm (no direct tiles)
#   OD_NO_VNNI=1       int8 convolutions on XNNPACK's QS8 operators instead of our VNNI kernel
#   OD_NO_AVX512_CONV8=1  8-output-channel training convolutions on conv8.c's AVX2 tiles
#   OD_NO_CONV8=1      those on XNNPACK (no conv8.c)
#   OD_NO_AVX512_BN=1  training BatchNormalization's passes without their AVX-512 wide-row loops
#   OD_NO_CONVW=1      convolutions of 32+ output channels on XNNPACK instead of conv_wide.c
#   OD_CONVW_CHUNK=1   conv_wide padding one image of the batch at a time (the chunk loop)
#   OD_NO_HUGEPAGES=1  large buffers without the huge-page advice (test_pool checks which it got)
#   OD_NO_CONVDW=1     depthwise convolutions on XNNPACK instead of conv_depthwise.c
#   OD_NO_CONV_ACT=1   SiLU and HardSwish as steps of their own instead of in the producing conv
#   OD_NO_CONV_ADD=1   a residual Add as its own step instead of in the producing conv
#   OD_NO_WINOGRAD=1   3x3 stride-1 convolutions on conv_wide.c instead of conv_winograd.c
#   OD_NO_AVX512_GAP=1 GlobalAveragePool's chunk sums on the plain loop
#   OD_NO_AVX512_GATE=1 a channel gate (Mul or Add by a per-channel vector) on the plain loop
#   OD_NO_GATE=1       a channel gate on XNNPACK's operator instead of binary.c's tasks
#   OD_NO_BN_ADD=1     in training, a residual Add as its own step instead of in the BN before it
#   OD_NO_LANES=1      a plan on the pool packing its arena greedily instead of in lanes
#   OD_NO_PAIRS=1      1x1 products to 8 + 16k channels on XNNPACK instead of conv_pairs.c
# Ends with `kernel_paths: N passed, N failed, N skipped`.
. "$(dirname "$0")/lib.sh"

run_with() { # ENV SUITE: the suite's own summary must say 0 failed
    local env=$1 suite=$2 out
    if [ ! -x "$BUILD/tests/$suite" ]; then
        bad "$BUILD/tests/$suite is not built"
        return
    fi
    out=$(env "$env" "$BUILD/tests/$suite" 2>&1)
    local rc=$? last
    last=$(tail -n 1 <<<"$out")
    if [ $rc -eq 0 ] && grep -qE ' [1-9][0-9]* passed, 0 failed' <<<"$last"; then ok "$env $suite: $last"
    else bad "$env $suite: exit $rc: $(grep -E '^FAIL' <<<"$out" | head -5) $last"; fi
}
run_with OD_NO_AVX512_DW=1 test_gradcheck
run_with OD_NO_DIRECT_DW=1 test_gradcheck
# (test_qs8 runs its int8 plans on XNNPACK's QS8 operators itself too; the whole suite again with
# them is not repeated under the sanitizers, where it costs 17 s)
if [ "${OD_TEST_QUICK:-0}" = 1 ]; then skipped "OD_NO_VNNI=1 test_qs8 (sanitizer pass)"
else run_with OD_NO_VNNI=1 test_qs8; fi
run_with OD_NO_AVX512_CONV8=1 test_gradcheck
run_with OD_NO_CONV8=1 test_gradcheck
run_with OD_NO_AVX512_BN=1 test_gradcheck
run_with OD_NO_BN_ADD=1 test_gradcheck
run_with OD_NO_CONVW=1 test_ops_random
run_with OD_NO_PAIRS=1 test_ops_random
run_with OD_CONVW_CHUNK=1 test_ops_random
run_with OD_NO_CONVW=1 test_gradcheck
run_with OD_NO_HUGEPAGES=1 test_pool
run_with OD_NO_LANES=1 test_pool
run_with OD_NO_CONVDW=1 test_ops_random
run_with OD_NO_CONVDW=1 test_fusion
run_with OD_NO_CONV_ACT=1 test_fusion
run_with OD_NO_CONV_ADD=1 test_fusion
run_with OD_NO_WINOGRAD=1 test_ops_random
run_with OD_NO_WINOGRAD=1 test_fusion
run_with OD_NO_AVX512_GAP=1 test_ops_random
run_with OD_NO_AVX512_GATE=1 test_fusion
run_with OD_NO_GATE=1 test_fusion
finish

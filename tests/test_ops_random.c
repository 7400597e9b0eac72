/* Conv, ConvTranspose, Gemm, MatMul and GlobalAveragePool on random data against plain reference
 * loops.
 *
 * Each case builds a one-node graph through the IR (weights as initializers or as graph
 * inputs, so that both the packed-once and the run-time paths are taken), plans it at batch
 * 1 and 3 with 1 and 2 threads, and compares every output element with a straightforward
 * loop written here in ONNX (NCHW) order: |got - want| <= 1e-4 * max(1, |want|).
 * Prints one line per case and `ops_random: N passed, N failed`; exits 1 on any failure. */
#include "od_runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- cases ----------------------------------------------------------------- */

enum { IN_GRAPH = 0, IN_CONST, IN_ABSENT };

typedef struct tin {
    int kind;
    int rank;
    int64_t dims[6];
    bool batch; /* dim 0 is the symbolic batch (dims[0] ignored) */
} tin;

typedef struct tcase {
    const char *name, *op;
    int n_in;
    tin in[3];
    /* Conv, ConvTranspose (zero: attribute omitted) */
    int64_t group, strides[3], dil[3], pads[6], opad[3], oshape[3];
    const char *auto_pad;
    /* Gemm */
    int ta, tb;
    bool set_ab;
    float alpha, beta;
} tcase;

#define IN(r, ...) {.kind = IN_GRAPH, .rank = r, .dims = {__VA_ARGS__}}
#define INB(r, ...) {.kind = IN_GRAPH, .rank = r, .dims = {__VA_ARGS__}, .batch = true}
#define CST(r, ...) {.kind = IN_CONST, .rank = r, .dims = {__VA_ARGS__}}
#define CASE(nm, o, n, ...) .name = nm, .op = o, .n_in = n, .in = {__VA_ARGS__}

static const tcase cases[] = {
    /* Conv */
    {CASE("conv2d_pad1_bias", "Conv", 3, INB(4, 0, 3, 7, 6), CST(4, 4, 3, 3, 3), CST(1, 4)),
     .pads = {1, 1, 1, 1}},
    {CASE("conv2d_stride2_asym_pads", "Conv", 2, INB(4, 0, 3, 9, 8), CST(4, 5, 3, 3, 2)),
     .strides = {2, 2}, .pads = {0, 1, 1, 0}},
    {CASE("conv2d_dilation2", "Conv", 3, INB(4, 0, 2, 9, 9), CST(4, 3, 2, 3, 3), CST(1, 3)),
     .dil = {2, 2}, .pads = {2, 1, 2, 1}},
    {CASE("conv2d_group2", "Conv", 3, INB(4, 0, 4, 6, 7), CST(4, 6, 2, 3, 3), CST(1, 6)),
     .group = 2, .pads = {1, 1, 1, 1}},
    {CASE("conv2d_depthwise", "Conv", 3, INB(4, 0, 4, 8, 8), CST(4, 4, 1, 3, 3), CST(1, 4)),
     .group = 4, .strides = {2, 2}, .pads = {1, 1, 1, 1}},
    {CASE("conv2d_depthwise_x2", "Conv", 2, INB(4, 0, 3, 7, 5), CST(4, 6, 1, 3, 3)), .group = 3,
     .pads = {1, 1, 1, 1}},
    /* depthwise on conv_depthwise.c (AVX-512): its strips of 8, 14, 7, 4 and 1 pixels, with
     * and without border columns, two blocks of 16 channels at a time and a partial block, the
     * kernels it has registers for (3, 5, 7 wide; 3 and 5 at stride 2), another on its per-pixel
     * loop, padding wider than the kernel, 1-D */
    {CASE("conv2d_dw_3x3_c40_w37", "Conv", 3, INB(4, 0, 40, 9, 37), CST(4, 40, 1, 3, 3), CST(1, 40)), .group = 40,
     .pads = {1, 1, 1, 1}},
    {CASE("conv2d_dw_5x5_s2_c24_w28", "Conv", 2, INB(4, 0, 24, 11, 28), CST(4, 24, 1, 5, 5)), .group = 24,
     .strides = {2, 2}, .pads = {2, 2, 2, 2}},
    {CASE("conv2d_dw_7x7_c16_w14", "Conv", 3, INB(4, 0, 16, 6, 14), CST(4, 16, 1, 7, 7), CST(1, 16)), .group = 16,
     .pads = {3, 3, 3, 3}},
    {CASE("conv2d_dw_3x3_s2_c72_w15", "Conv", 3, INB(4, 0, 72, 7, 15), CST(4, 72, 1, 3, 3), CST(1, 72)),
     .group = 72, .strides = {2, 2}, .pads = {1, 1, 1, 1}},
    {CASE("conv2d_dw_5x5_c33_w7", "Conv", 3, INB(4, 0, 33, 7, 7), CST(4, 33, 1, 5, 5), CST(1, 33)), .group = 33,
     .pads = {2, 2, 2, 2}},
    {CASE("conv2d_dw_3x5_asym_pads", "Conv", 2, INB(4, 0, 48, 6, 12), CST(4, 48, 1, 3, 5)), .group = 48,
     .pads = {0, 2, 2, 1}},
    {CASE("conv2d_dw_4x4_s3", "Conv", 3, INB(4, 0, 20, 10, 12), CST(4, 20, 1, 4, 4), CST(1, 20)), .group = 20,
     .strides = {3, 3}, .pads = {1, 2, 1, 2}},
    {CASE("conv2d_dw_pad_past_kernel", "Conv", 3, INB(4, 0, 16, 4, 5), CST(4, 16, 1, 3, 3), CST(1, 16)),
     .group = 16, .pads = {3, 3, 3, 3}},
    {CASE("conv1d_dw_k5", "Conv", 3, INB(3, 0, 32, 19), CST(3, 32, 1, 5), CST(1, 32)), .group = 32, .pads = {2, 2}},
    {CASE("conv2d_same_upper_s2", "Conv", 2, INB(4, 0, 2, 7, 8), CST(4, 3, 2, 3, 3)),
     .strides = {2, 2}, .auto_pad = "SAME_UPPER"},
    {CASE("conv2d_same_lower", "Conv", 2, INB(4, 0, 2, 6, 5), CST(4, 3, 2, 2, 4)),
     .auto_pad = "SAME_LOWER"},
    {CASE("conv2d_valid", "Conv", 2, INB(4, 0, 2, 6, 5), CST(4, 3, 2, 3, 2)),
     .auto_pad = "VALID"},
    {CASE("conv1d_stride2_pad", "Conv", 3, INB(3, 0, 3, 11), CST(3, 4, 3, 3), CST(1, 4)),
     .strides = {2}, .pads = {1, 2}},
    {CASE("conv1d_dilation2_group", "Conv", 2, INB(3, 0, 4, 12), CST(3, 2, 2, 3)), .group = 2,
     .dil = {2}},
    {CASE("conv2d_weights_input", "Conv", 3, INB(4, 0, 4, 7, 6), IN(4, 6, 2, 3, 3), IN(1, 6)),
     .group = 2, .strides = {2, 1}, .pads = {1, 0, 1, 1}},
    {CASE("conv1d_weights_input", "Conv", 3, INB(3, 0, 3, 9), IN(3, 2, 3, 2), CST(1, 2)),
     .dil = {2}, .pads = {1, 1}},
    {CASE("conv3d", "Conv", 3, INB(5, 0, 2, 4, 5, 6), CST(5, 3, 2, 2, 3, 2), CST(1, 3)),
     .strides = {1, 2, 1}, .pads = {0, 1, 1, 1, 0, 0}},
    {CASE("conv2d_const_input", "Conv", 2, CST(4, 2, 3, 5, 4), CST(4, 4, 3, 2, 2)),
     .strides = {2, 1}},
    /* 32 or more output channels in 16s, weights under 1 MiB: conv_wide.c on AVX-512 (14-pixel
     * tiles of 32 or 16 channels, then a tail) */
    {CASE("conv2d_wide_m32_tail", "Conv", 3, INB(4, 0, 3, 5, 19), CST(4, 32, 3, 3, 3), CST(1, 32)),
     .pads = {1, 1, 1, 1}},
    {CASE("conv2d_wide_m48_s2_dil", "Conv", 2, INB(4, 0, 5, 9, 33), CST(4, 48, 5, 3, 3)),
     .strides = {2, 2}, .dil = {1, 2}, .pads = {0, 2, 1, 1}},
    {CASE("conv1d_wide_m32", "Conv", 3, INB(3, 0, 4, 30), CST(3, 32, 4, 5), CST(1, 32)), .pads = {2, 1}},
    {CASE("conv2d_wide_1x2", "Conv", 2, INB(4, 0, 8, 4, 15), CST(4, 64, 8, 1, 2))},
    /* 80 input channels: two blocks, the second adding to the first's sums; rows of 6 pixels in
     * pairs and one alone */
    {CASE("conv2d_wide_c80_pairs", "Conv", 3, INB(4, 0, 80, 5, 6), CST(4, 48, 80, 3, 3), CST(1, 48)),
     .pads = {1, 1, 1, 1}},
    {CASE("conv2d_wide_s2_pairs", "Conv", 2, INB(4, 0, 8, 11, 13), CST(4, 32, 8, 3, 3)), .strides = {2, 2},
     .pads = {1, 1, 1, 1}},
    /* 64 input channels at stride 1, and 32 at stride 2: the full tiles' pixel stride as a constant */
    {CASE("conv2d_wide_c64_xs", "Conv", 3, INB(4, 0, 64, 3, 16), CST(4, 32, 64, 3, 3), CST(1, 32)),
     .pads = {1, 1, 1, 1}},
    {CASE("conv2d_wide_c32_s2_xs", "Conv", 2, INB(4, 0, 32, 3, 31), CST(4, 48, 32, 3, 3)), .strides = {1, 2}},
    /* an RGB stem as torchvision's (7x7, stride 2, 3 channels), and at stride 1 */
    {CASE("conv2d_wide_rgb_stem_s2", "Conv", 3, INB(4, 0, 3, 9, 34), CST(4, 64, 3, 7, 7), CST(1, 64)),
     .strides = {2, 2}, .pads = {3, 3, 3, 3}},
    {CASE("conv2d_wide_rgb_s1", "Conv", 2, INB(4, 0, 3, 4, 17), CST(4, 32, 3, 3, 3)), .pads = {1, 1, 1, 1}},
    /* mobilenet_v3's stem: 16 output channels, which conv_wide takes only on a few input channels;
     * these graph inputs are read in ONNX order by the padding copy (conv_reads_plain) */
    {CASE("conv2d_wide_rgb_m16_s2", "Conv", 3, INB(4, 0, 3, 10, 37), CST(4, 16, 3, 3, 3), CST(1, 16)),
     .strides = {2, 2}, .pads = {1, 1, 1, 1}},
    /* 1x1 kernels on one thread: at stride 1 the image read in place (no padded copy), at stride 2
     * through the copy, with two blocks of input channels */
    {CASE("conv2d_wide_1x1", "Conv", 3, INB(4, 0, 40, 5, 17), CST(4, 48, 40, 1, 1), CST(1, 48))},
    {CASE("conv2d_wide_1x1_m16", "Conv", 3, INB(4, 0, 32, 6, 17), CST(4, 16, 32, 1, 1), CST(1, 16))},
    /* 1x1 products of 256+ pixels to 8 + 16k channels: conv_pairs.c (tiles of 8 pixels and a
     * tail of 1; 40 channels: a group of 24 and one of 16; an odd number of input channels) */
    {CASE("conv2d_pairs_m24", "Conv", 3, INB(4, 0, 36, 17, 17), CST(4, 24, 36, 1, 1), CST(1, 24))},
    {CASE("conv2d_pairs_m40", "Conv", 2, INB(4, 0, 20, 16, 17), CST(4, 40, 20, 1, 1))},
    {CASE("conv2d_pairs_m8_odd_k", "Conv", 2, INB(4, 0, 5, 16, 16), CST(4, 8, 5, 1, 1))},
    {CASE("conv2d_wide_1x1_s2", "Conv", 2, INB(4, 0, 70, 6, 15), CST(4, 32, 70, 1, 1)), .strides = {2, 2}},
    /* 1x1 to 512+ channels on 64 pixels or fewer: on conv_wide on the pool too (batch 1; batch 3
     * has 72 pixels and goes to XNNPACK) */
    {CASE("conv2d_wide_1x1_m512_small", "Conv", 3, INB(4, 0, 72, 4, 6), CST(4, 512, 72, 1, 1), CST(1, 512))},
    /* 3x3 at stride 1, 16+ input and output channels in 16s, 14x14 outputs or more: Winograd's
     * F(2x2, 3x3) on conv_winograd.c (AVX-512): full blocks of 14 tiles with the channel count as a
     * constant (64) and not (48), a partial block, odd output sizes (a tile half outside), 16
     * output channels at the end of M and alone, input channels not in 16s, asymmetric and no
     * padding */
    {CASE("conv2d_wino_c64_m64", "Conv", 3, INB(4, 0, 64, 14, 16), CST(4, 64, 64, 3, 3), CST(1, 64)),
     .pads = {1, 1, 1, 1}},
    {CASE("conv2d_wino_c48_m48_odd", "Conv", 3, INB(4, 0, 48, 15, 17), CST(4, 48, 48, 3, 3), CST(1, 48)),
     .pads = {1, 1, 1, 1}},
    {CASE("conv2d_wino_c20_m32_asym", "Conv", 2, INB(4, 0, 20, 16, 19), CST(4, 32, 20, 3, 3)),
     .pads = {0, 2, 1, 0}},
    {CASE("conv2d_wino_c16_m16", "Conv", 3, INB(4, 0, 16, 14, 14), CST(4, 16, 16, 3, 3), CST(1, 16)),
     .pads = {1, 1, 1, 1}},
    {CASE("conv2d_wino_c16_m80_valid", "Conv", 3, INB(4, 0, 16, 17, 18), CST(4, 80, 16, 3, 3), CST(1, 80))},
    /* GlobalAveragePool by chunks of 64 pixels summed apart, then added up: 143 pixels (two full
     * chunks and a partial one) of 20 channels (a block of 16 and a masked tail on AVX-512), 80
     * channels (a block of 64 in registers and one of 16), 1-D with 200 pixels, and one chunk */
    {CASE("gap2d_chunks", "GlobalAveragePool", 1, INB(4, 0, 20, 13, 11))},
    {CASE("gap2d_c80", "GlobalAveragePool", 1, INB(4, 0, 80, 9, 8))},
    {CASE("gap1d_chunks", "GlobalAveragePool", 1, INB(3, 0, 37, 200))},
    {CASE("gap2d_small", "GlobalAveragePool", 1, INB(4, 0, 5, 3, 4))},
    /* ConvTranspose */
    {CASE("convT2d_bias", "ConvTranspose", 3, INB(4, 0, 3, 4, 5), CST(4, 3, 2, 3, 3),
          CST(1, 2))},
    {CASE("convT2d_s2_pads_outpad", "ConvTranspose", 2, INB(4, 0, 2, 4, 3), CST(4, 2, 3, 3, 3)),
     .strides = {2, 2}, .pads = {1, 0, 0, 1}, .opad = {1, 1}},
    {CASE("convT2d_group2_dil2_s2", "ConvTranspose", 3, INB(4, 0, 4, 3, 4), CST(4, 4, 3, 2, 3),
          CST(1, 6)),
     .group = 2, .strides = {2, 2}, .dil = {2, 2}},
    {CASE("convT2d_output_shape", "ConvTranspose", 2, INB(4, 0, 1, 3, 3), CST(4, 1, 2, 3, 3)),
     .strides = {3, 2}, .oshape = {10, 8}},
    {CASE("convT2d_output_shape_far", "ConvTranspose", 2, INB(4, 0, 2, 3, 3),
          CST(4, 2, 2, 3, 3)),
     .strides = {2, 2}, .oshape = {11, 6}},
    {CASE("convT2d_same_upper", "ConvTranspose", 2, INB(4, 0, 2, 3, 4), CST(4, 2, 2, 3, 3)),
     .strides = {2, 2}, .auto_pad = "SAME_UPPER"},
    {CASE("convT2d_same_lower", "ConvTranspose", 2, INB(4, 0, 2, 3, 4), CST(4, 2, 2, 4, 3)),
     .strides = {2, 3}, .auto_pad = "SAME_LOWER"},
    {CASE("convT1d_stride3", "ConvTranspose", 3, INB(3, 0, 3, 5), CST(3, 3, 2, 4), CST(1, 2)),
     .strides = {3}, .pads = {1, 2}},
    {CASE("convT2d_weights_input", "ConvTranspose", 3, INB(4, 0, 4, 3, 3), IN(4, 4, 2, 3, 2),
          IN(1, 4)),
     .group = 2, .strides = {2, 1}, .pads = {0, 1, 1, 0}, .opad = {1, 0}},
    {CASE("convT3d", "ConvTranspose", 2, INB(5, 0, 2, 2, 3, 3), CST(5, 2, 2, 2, 2, 3)),
     .strides = {2, 1, 2}},
    /* Gemm */
    {CASE("gemm_fc_bias", "Gemm", 3, INB(2, 0, 20), CST(2, 20, 7), CST(1, 7))},
    {CASE("gemm_transB_alpha_beta_row", "Gemm", 3, INB(2, 0, 9), CST(2, 5, 9), CST(2, 1, 5)),
     .tb = 1, .set_ab = true, .alpha = 0.5f, .beta = 2.0f},
    {CASE("gemm_C_matrix_input", "Gemm", 3, INB(2, 0, 6), CST(2, 6, 4), INB(2, 0, 4)),
     .set_ab = true, .alpha = 1.5f, .beta = -1.0f},
    {CASE("gemm_C_column", "Gemm", 3, INB(2, 0, 6), CST(2, 6, 4), INB(2, 0, 1))},
    {CASE("gemm_transA_scalar_C", "Gemm", 3, IN(2, 8, 5), IN(2, 8, 3), CST(0, 0)), .ta = 1,
     .set_ab = true, .alpha = 1.0f, .beta = 0.25f},
    {CASE("gemm_transAB_no_C", "Gemm", 2, IN(2, 4, 6), IN(2, 3, 4)), .ta = 1, .tb = 1},
    {CASE("gemm_B_input_vector_C", "Gemm", 3, INB(2, 0, 5), IN(2, 5, 3), IN(1, 3))},
    /* MatMul */
    {CASE("matmul_3d_const_B", "MatMul", 2, INB(3, 0, 5, 7), CST(2, 7, 3))},
    {CASE("matmul_2d_const_B", "MatMul", 2, INB(2, 0, 16), CST(2, 16, 9))},
    {CASE("matmul_batched", "MatMul", 2, INB(4, 0, 2, 5, 7), IN(3, 2, 7, 3))},
    {CASE("matmul_broadcast", "MatMul", 2, INB(4, 0, 1, 4, 6), CST(3, 3, 6, 2))},
    {CASE("matmul_broadcast_B_batch", "MatMul", 2, IN(3, 3, 4, 6), INB(4, 0, 1, 6, 2))},
    {CASE("matmul_1d_A", "MatMul", 2, IN(1, 7), INB(3, 0, 7, 4))},
    {CASE("matmul_1d_B", "MatMul", 2, INB(3, 0, 3, 7), IN(1, 7))},
    {CASE("matmul_1d_B_const", "MatMul", 2, INB(2, 0, 7), CST(1, 7))},
    {CASE("matmul_1d_both", "MatMul", 2, IN(1, 9), IN(1, 9))},
    {CASE("matmul_folded", "MatMul", 2, CST(3, 2, 3, 4), CST(2, 4, 5))},
    {CASE("gemm_folded", "Gemm", 3, CST(2, 3, 4), CST(2, 5, 4), CST(1, 5)), .tb = 1},
};

/* ---- random data ------------------------------------------------------------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float frand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* ---- reference loops (ONNX order, double accumulation) -------------------------- */

typedef struct tensor {
    int rank;
    int64_t dims[8];
    float *data;
} tensor;

static int64_t count(const tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++) n *= t->dims[d];
    return n;
}

static int64_t floor_half(int64_t v) { return (int64_t)floor((double)v / 2.0); }

/* Conv and ConvTranspose for 1 to 3 spatial dims; unused dims have size 1. */
static void ref_conv(const tcase *c, const tensor *x, const tensor *w, const tensor *b,
                     tensor *y, bool transposed) {
    int sp = x->rank - 2;
    int64_t N = x->dims[0], C = x->dims[1], G = c->group ? c->group : 1;
    int64_t M = transposed ? w->dims[1] * G : w->dims[0], Cg = C / G, Mg = M / G;
    int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, dl[3] = {1, 1, 1};
    int64_t pb[3] = {0}, out[3] = {1, 1, 1};
    for (int d = 0; d < sp; d++) {
        in[d] = x->dims[2 + d];
        k[d] = w->dims[2 + d];
        if (c->strides[0]) s[d] = c->strides[d];
        if (c->dil[0]) dl[d] = c->dil[d];
        int64_t dk = dl[d] * (k[d] - 1) + 1, pe = c->pads[sp + d];
        pb[d] = c->pads[d];
        bool same = c->auto_pad && strncmp(c->auto_pad, "SAME", 4) == 0;
        bool upper = same && strcmp(c->auto_pad, "SAME_UPPER") == 0;
        if (c->auto_pad && strcmp(c->auto_pad, "VALID") == 0) pb[d] = pe = 0;
        if (!transposed) {
            if (same) {
                int64_t o = (in[d] + s[d] - 1) / s[d], total = (o - 1) * s[d] + dk - in[d];
                if (total < 0) total = 0;
                pb[d] = upper ? total / 2 : total - total / 2;
                pe = total - pb[d];
            }
            out[d] = (in[d] + pb[d] + pe - dk) / s[d] + 1;
        } else {
            int64_t full = s[d] * (in[d] - 1) + c->opad[d] + dk;
            if (same || c->oshape[0]) {
                int64_t want = c->oshape[0] ? c->oshape[d] : in[d] * s[d], total = full - want;
                pb[d] = upper ? floor_half(total) : total - floor_half(total);
                pe = total - pb[d];
            }
            out[d] = full - pb[d] - pe;
        }
    }
    y->rank = x->rank;
    y->dims[0] = N;
    y->dims[1] = M;
    for (int d = 0; d < sp; d++) y->dims[2 + d] = out[d];
    int64_t osz = out[0] * out[1] * out[2], isz = in[0] * in[1] * in[2], K = k[0] * k[1] * k[2];
    double *acc = calloc((size_t)(N * M * osz), sizeof(double));
    y->data = malloc(sizeof(float) * (size_t)(N * M * osz));
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++)
            for (int64_t ci = 0; ci < Cg; ci++)
                for (int64_t mi = 0; mi < Mg; mi++)
                    for (int64_t kk = 0; kk < K; kk++) {
                        int64_t kd[3] = {kk / (k[1] * k[2]), kk / k[2] % k[1], kk % k[2]};
                        float wv = transposed ? w->data[((g * Cg + ci) * Mg + mi) * K + kk]
                                              : w->data[((g * Mg + mi) * Cg + ci) * K + kk];
                        const float *xp = x->data + (n * C + g * Cg + ci) * isz;
                        double *yp = acc + (n * M + g * Mg + mi) * osz;
                        if (!transposed) { /* gather over outputs */
                            for (int64_t o = 0; o < osz; o++) {
                                int64_t od[3] = {o / (out[1] * out[2]), o / out[2] % out[1],
                                                 o % out[2]},
                                        id[3];
                                bool ok = true;
                                for (int d = 0; d < 3; d++) {
                                    id[d] = od[d] * s[d] + kd[d] * dl[d] - pb[d];
                                    ok = ok && id[d] >= 0 && id[d] < in[d];
                                }
                                if (ok) yp[o] += wv * xp[(id[0] * in[1] + id[1]) * in[2] + id[2]];
                            }
                        } else { /* scatter over inputs */
                            for (int64_t i = 0; i < isz; i++) {
                                int64_t idd[3] = {i / (in[1] * in[2]), i / in[2] % in[1],
                                                  i % in[2]},
                                        od[3];
                                bool ok = true;
                                for (int d = 0; d < 3; d++) {
                                    od[d] = idd[d] * s[d] + kd[d] * dl[d] - pb[d];
                                    ok = ok && od[d] >= 0 && od[d] < out[d];
                                }
                                                if (ok)
                                    yp[(od[0] * out[1] + od[1]) * out[2] + od[2]] += wv * xp[i];
                            }
                        }
                    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t o = 0; o < osz; o++) {
                int64_t i = (n * M + m) * osz + o;
                y->data[i] = (float)(acc[i] + (b ? b->data[m] : 0.0f));
            }
    free(acc);
}

static void ref_gemm(const tcase *c, const tensor *a, const tensor *b, const tensor *C,
                     tensor *y) {
    float alpha = c->set_ab ? c->alpha : 1.0f, beta = c->set_ab ? c->beta : 1.0f;
    int64_t M = a->dims[c->ta], K = a->dims[!c->ta], N = b->dims[!c->tb];
    y->rank = 2;
    y->dims[0] = M;
    y->dims[1] = N;
    y->data = malloc(sizeof(float) * (size_t)(M * N + 1));
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
                acc += (double)a->data[c->ta ? k * M + i : i * K + k] *
                       b->data[c->tb ? j * K + k : k * N + j];
            double cv = 0;
            if (C) {
                int64_t r = C->rank == 2 ? C->dims[0] : 1;
                int64_t cols = C->rank ? C->dims[C->rank - 1] : 1;
                cv = C->data[(r == 1 ? 0 : i) * cols + (cols == 1 ? 0 : j)];
            }
            y->data[i * N + j] = (float)(alpha * acc + beta * cv);
        }
}

/* The mean over every dim after the first two, in double. */
static void ref_gap(const tensor *x, tensor *y) {
    int64_t N = x->dims[0], C = x->dims[1], P = 1;
    for (int d = 2; d < x->rank; d++) P *= x->dims[d];
    y->rank = x->rank;
    y->dims[0] = N, y->dims[1] = C;
    for (int d = 2; d < x->rank; d++) y->dims[d] = 1;
    y->data = malloc(sizeof(float) * (size_t)(N * C));
    for (int64_t i = 0; i < N * C; i++) {
        double sum = 0;
        for (int64_t p = 0; p < P; p++) sum += x->data[i * P + p];
        y->data[i] = (float)(sum / (double)P);
    }
}

static void ref_matmul(const tensor *a, const tensor *b, tensor *y) {
    tensor A = *a, B = *b; /* promote 1-D operands */
    if (A.rank == 1) {
        A.rank = 2;
        A.dims[0] = 1;
        A.dims[1] = a->dims[0];
    }
    if (B.rank == 1) {
        B.rank = 2;
        B.dims[0] = b->dims[0];
        B.dims[1] = 1;
    }
    int64_t M = A.dims[A.rank - 2], K = A.dims[A.rank - 1], N = B.dims[B.rank - 1];
    int nb = (A.rank > B.rank ? A.rank : B.rank) - 2;
    int64_t bd[8], ad[8], bbd[8], items = 1;
    for (int d = 0; d < nb; d++) {
        int ia = d - (nb - (A.rank - 2)), ib = d - (nb - (B.rank - 2));
        ad[d] = ia >= 0 ? A.dims[ia] : 1;
        bbd[d] = ib >= 0 ? B.dims[ib] : 1;
        bd[d] = ad[d] > bbd[d] ? ad[d] : bbd[d];
        items *= bd[d];
    }
    y->rank = 0;
    for (int d = 0; d < nb; d++) y->dims[y->rank++] = bd[d];
    if (a->rank > 1) y->dims[y->rank++] = M;
    if (b->rank > 1) y->dims[y->rank++] = N;
    y->data = malloc(sizeof(float) * (size_t)(items * M * N + 1));
    for (int64_t it = 0; it < items; it++) {
        int64_t idx[8], rest = it, ia = 0, ib = 0;
        for (int d = nb - 1; d >= 0; d--) {
            idx[d] = rest % bd[d];
            rest /= bd[d];
        }
        for (int d = 0; d < nb; d++) {
            ia = ia * ad[d] + (ad[d] == 1 ? 0 : idx[d]);
            ib = ib * bbd[d] + (bbd[d] == 1 ? 0 : idx[d]);
        }
        const float *pa = A.data + ia * M * K, *pb = B.data + ib * K * N;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++) acc += (double)pa[i * K + k] * pb[k * N + j];
                y->data[(it * M + i) * N + j] = (float)acc;
            }
    }
}

/* ---- graph building ------------------------------------------------------------ */

static od_attr *new_attr(od_node *n, const char *name, od_attr_type type) {
    n->attrs = realloc(n->attrs, sizeof *n->attrs * (size_t)(n->n_attrs + 1));
    od_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    a->type = type;
    return a;
}

static void attr_ints(od_node *n, const char *name, int count, const int64_t *v) {
    od_attr *a = new_attr(n, name, OD_ATTR_INTS);
    a->count = (size_t)count;
    a->ints = malloc(sizeof(int64_t) * (size_t)count);
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
}

static void attr_int(od_node *n, const char *name, int64_t v) {
    new_attr(n, name, OD_ATTR_INT)->i = v;
}

static void attr_float(od_node *n, const char *name, float v) {
    new_attr(n, name, OD_ATTR_FLOAT)->f = v;
}

static void attr_string(od_node *n, const char *name, const char *v) {
    od_attr *a = new_attr(n, name, OD_ATTR_STRING);
    a->s.len = strlen(v);
    a->s.data = (uint8_t *)strdup(v);
}

static void append(int **list, int *n, int v) {
    *list = realloc(*list, sizeof(int) * (size_t)(*n + 1));
    (*list)[(*n)++] = v;
}

/* The case's graph; constant inputs get data from consts[i] (allocated here). */
static od_model *build(const tcase *c, tensor *consts) {
    od_model *m = od_model_create();
    od_graph *g = &m->graph;
    g->opset = 17;
    static const char *const names[3] = {"X", "W", "B"};
    int vin[3];
    for (int i = 0; i < c->n_in; i++) {
        const tin *t = &c->in[i];
        vin[i] = -1;
        if (t->kind == IN_ABSENT) continue;
        int v = vin[i] = od_graph_intern_value(g, names[i]);
        od_value *val = &g->values[v];
        val->dtype = OD_DTYPE_FLOAT;
        val->rank = t->rank;
        val->has_type = true;
        for (int d = 0; d < t->rank; d++) val->dims[d].value = t->dims[d];
        if (t->batch) {
            val->dims[0].value = -1;
            val->dims[0].param = strdup("N");
        }
        if (t->kind == IN_CONST) {
            val->init = od_tensor_create(names[i], OD_DTYPE_FLOAT, t->rank, t->dims, NULL);
            float *p = val->init->data;
            for (int64_t k = 0; k < od_tensor_count(val->init); k++) p[k] = frand();
            consts[i].rank = t->rank;
            memcpy(consts[i].dims, t->dims, sizeof t->dims);
            consts[i].data = p;
            append(&g->inits, &g->n_inits, v);
        } else {
            append(&g->inputs, &g->n_inputs, v);
        }
    }
    int vy = od_graph_intern_value(g, "Y");
    append(&g->outputs, &g->n_outputs, vy);
    int ni = od_graph_add_node(g); /* may move g->nodes */
    od_node *n = &g->nodes[ni];
    n->name = strdup(c->name);
    n->op_type = strdup(c->op);
    n->domain = strdup("");
    n->n_inputs = c->n_in;
    n->inputs = malloc(sizeof(int) * (size_t)c->n_in);
    memcpy(n->inputs, vin, sizeof(int) * (size_t)c->n_in);
    n->n_outputs = 1;
    n->outputs = malloc(sizeof(int));
    n->outputs[0] = vy;
    int sp = c->in[0].rank - 2;
    if (c->group) attr_int(n, "group", c->group);
    if (c->strides[0]) attr_ints(n, "strides", sp, c->strides);
    if (c->dil[0]) attr_ints(n, "dilations", sp, c->dil);
    if (c->auto_pad) attr_string(n, "auto_pad", c->auto_pad);
    for (int d = 0; d < 2 * sp; d++)
        if (c->pads[d]) {
            attr_ints(n, "pads", 2 * sp, c->pads);
            break;
        }
    if (c->opad[0] || c->opad[1]) attr_ints(n, "output_padding", sp, c->opad);
    if (c->oshape[0]) attr_ints(n, "output_shape", sp, c->oshape);
    if (strcmp(c->op, "Conv") == 0 || strcmp(c->op, "ConvTranspose") == 0)
        attr_ints(n, "kernel_shape", sp, c->in[1].dims + 2);
    if (c->ta) attr_int(n, "transA", 1);
    if (c->tb) attr_int(n, "transB", 1);
    if (c->set_ab) {
        attr_float(n, "alpha", c->alpha);
        attr_float(n, "beta", c->beta);
    }
    od_error err = {0};
    if (od_graph_check(g, &err)) {
        fprintf(stderr, "%s: %s\n", c->name, err.message);
        od_model_destroy(m);
        return NULL;
    }
    return m;
}

/* ---- running ------------------------------------------------------------------- */

static bool close_enough(float got, float want) {
    return fabsf(got - want) <= 1e-4f * fmaxf(1.0f, fabsf(want));
}

/* Runs one case at one batch size for 1 and 2 threads; why says what went wrong. */
static bool run_batch(const tcase *c, od_model *m, const tensor *consts, int64_t batch,
                      char *why, size_t size) {
    tensor in[3] = {{0}}, y = {0};
    const tensor *ptr[3] = {NULL, NULL, NULL};
    for (int i = 0; i < c->n_in; i++) {
        const tin *t = &c->in[i];
        if (t->kind == IN_ABSENT) continue;
        if (t->kind == IN_CONST) {
            ptr[i] = &consts[i];
            continue;
        }
        in[i].rank = t->rank;
        memcpy(in[i].dims, t->dims, sizeof t->dims);
        if (t->batch) in[i].dims[0] = batch;
        in[i].data = malloc(sizeof(float) * (size_t)(count(&in[i]) + 1));
        for (int64_t k = 0; k < count(&in[i]); k++) in[i].data[k] = frand();
        ptr[i] = &in[i];
    }
    if (strcmp(c->op, "Conv") == 0) ref_conv(c, ptr[0], ptr[1], ptr[2], &y, false);
    else if (strcmp(c->op, "ConvTranspose") == 0) ref_conv(c, ptr[0], ptr[1], ptr[2], &y, true);
    else if (strcmp(c->op, "Gemm") == 0) ref_gemm(c, ptr[0], ptr[1], ptr[2], &y);
    else if (strcmp(c->op, "GlobalAveragePool") == 0) ref_gap(ptr[0], &y);
    else ref_matmul(ptr[0], ptr[1], &y);
    bool ok = true;
    for (int threads = 1; threads <= 2 && ok; threads++) {
        od_error err = {0};
        od_plan *plan = NULL;
        if (od_plan_create(&m->graph, &(od_plan_options){.batch = batch, .threads = threads},
                           &plan, &err)) {
            snprintf(why, size, "batch %lld, %d threads: plan: %s", (long long)batch, threads,
                     err.message);
            ok = false;
            break;
        }
        const od_plan_io *out = od_plan_output(plan, 0);
        bool same_shape = out->rank == y.rank;
        for (int d = 0; same_shape && d < y.rank; d++) same_shape = out->dims[d] == y.dims[d];
        /* with 2 threads the first two runs go without and with the pool (plan.c); a run may
         * reuse its input's memory, so each is given the inputs again */
        for (int run = 0; run < threads && ok; run++) {
            for (int i = 0, k = 0; i < c->n_in; i++) {
                if (c->in[i].kind != IN_GRAPH) continue;
                const od_plan_io *io = od_plan_input(plan, k++);
                memcpy(io->data, in[i].data, io->nbytes);
            }
            if (od_plan_run(plan, &err)) {
                snprintf(why, size, "batch %lld, %d threads, run %d: run: %s", (long long)batch,
                         threads, run + 1, err.message);
                ok = false;
            } else if (!same_shape) {
                snprintf(why, size,
                         "batch %lld, %d threads, run %d: output rank %d dims [%lld, %lld, ...], "
                         "expected rank %d [%lld, %lld, ...]",
                         (long long)batch, threads, run + 1, out->rank, (long long)out->dims[0],
                         (long long)out->dims[1], y.rank, (long long)y.dims[0],
                         (long long)y.dims[1]);
                ok = false;
            } else {
                const float *got = out->data;
                for (int64_t k = 0; k < count(&y) && ok; k++)
                    if (!close_enough(got[k], y.data[k])) {
                        snprintf(why, size,
                                 "batch %lld, %d threads, run %d: element %lld is %.7g, "
                                 "expected %.7g",
                                 (long long)batch, threads, run + 1, (long long)k, got[k],
                                 y.data[k]);
                        ok = false;
                    }
            }
        }
        od_plan_destroy(plan);
    }
    for (int i = 0; i < 3; i++) free(in[i].data);
    free(y.data);
    return ok;
}

int main(void) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const tcase *c = &cases[i];
        tensor consts[3] = {{0}};
        char why[1400] = "";
        od_model *m = build(c, consts);
        bool ok = m != NULL;
        if (!m) snprintf(why, sizeof why, "cannot build the graph");
        for (int64_t batch = 1; ok && batch <= 3; batch += 2)
            ok = run_batch(c, m, consts, batch, why, sizeof why);
        od_model_destroy(m);
        printf("%s %s (%s)%s%s\n", ok ? "PASS" : "FAIL", c->name, c->op, ok ? "" : ": ", why);
        if (ok) passed++;
        else failed++;
    }
    printf("ops_random: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

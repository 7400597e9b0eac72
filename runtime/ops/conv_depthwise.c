/* A depthwise convolution, channels-last, on AVX-512, for inference. XNNPACK's depthwise kernel
 * loads a weight and an input for every multiply-add (one output pixel at a time, through an
 * indirection buffer): mobilenet_v2's and efficientnet_b0's depthwise layers ran at 1.4-2x ONNX
 * Runtime's time. Here a strip of 8 output pixels of a row keeps a kernel row's weights in
 * registers and loads each input once, adding it into every pixel of the strip that reads it:
 * about one load per multiply-add for 3x3, fewer for 5x5. Pixels whose taps leave the image
 * (the borders) take a loop with bounds checks. The epilogue clamps (a fused Relu or Clip) and
 * applies a fused activation (SiLU, HardSwish) while the strip is in registers. */
#include "conv_depthwise.h"

#include "../op.h"

#include <stdlib.h>
#include <string.h>

static int64_t padded_channels(const od_convdw_geom *g) { return (g->C + 15) / 16 * 16; }

size_t od_convdw_packed_floats(const od_convdw_geom *g) {
    return (size_t)((g->KH * g->KW + 1) * padded_channels(g));
}

void od_convdw_pack(const od_convdw_geom *g, const float *w, const float *bias, float *packed) {
    int64_t taps = g->KH * g->KW, CP = padded_channels(g);
    memset(packed, 0, sizeof(float) * od_convdw_packed_floats(g));
    for (int64_t c = 0; c < g->C; c++) {
        for (int64_t q = 0; q < taps; q++) packed[q * CP + c] = w[c * taps + q];
        packed[taps * CP + c] = bias ? bias[c] : 0.0f;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "act_avx512.h"

#include <math.h>

#define DW_TARGET OD_UNSANITIZED __attribute__((target("avx512f")))
#define DW_INLINE DW_TARGET static inline __attribute__((always_inline))

bool od_convdw_fits(const od_convdw_geom *g) {
    return g->KW <= 7 && g->KH >= 1 && g->KW >= 1 && g->C >= 1 && od_avx512_on("OD_NO_CONVDW");
}

/* What the strips of one output row share. */
typedef struct dw_row {
    const float *x;     /* the image */
    const float *w;     /* the packed weights [taps][CP], the bias [CP] after them */
    float *y;           /* the output row */
    const float *res;   /* the residual's row, or NULL */
    int64_t C, CP, W, KW, sw, pl, taps;
    int64_t iy0;        /* the input row of kernel row 0 (above the image when negative) */
    int64_t i0, i1;     /* the kernel rows inside the image */
    int64_t cb0, cb1;   /* the blocks of 16 channels */
    __m512 lo, hi;
    bool clamp;
    bool prefetch; /* an image past the core's cache: the next strip's inputs are prefetched */
    int act;
} dw_row;

DW_INLINE __mmask16 block_mask(const dw_row *r, int64_t c0) {
    return od_tail_mask16(r->C - c0);
}

DW_INLINE void finish(const dw_row *r, __m512 a, __mmask16 k, int64_t at) {
    float *y = r->y + at;
    if (r->res) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(k, r->res + at));
    if (r->clamp) a = _mm512_min_ps(_mm512_max_ps(a, r->lo), r->hi);
    a = od_act_ps(r->act, a);
    _mm512_mask_storeu_ps(y, k, a);
}

/* Output pixel ox, its taps checked against the image's columns: kernels without a strip. */
DW_TARGET static void pixel(const dw_row *r, int64_t ox) {
    int64_t ix0 = ox * r->sw - r->pl;
    for (int64_t c0 = 16 * r->cb0; c0 < 16 * r->cb1; c0 += 16) {
        __mmask16 k = block_mask(r, c0);
        __m512 acc = _mm512_loadu_ps(r->w + r->taps * r->CP + c0);
        for (int64_t i = r->i0; i < r->i1; i++)
            for (int64_t j = 0; j < r->KW; j++) {
                int64_t ix = ix0 + j;
                if (ix < 0 || ix >= r->W) continue;
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, r->x + ((r->iy0 + i) * r->W + ix) * r->C + c0),
                                      _mm512_loadu_ps(r->w + (i * r->KW + j) * r->CP + c0), acc);
            }
        finish(r, acc, k, ox * r->C + c0);
    }
}

/* P output pixels from ox, every block of channels; KW and SW are constants after inlining: a
 * kernel row's KW weights stay in registers, and input column col (of the (P - 1) SW + KW the
 * strip reads) is loaded once and added into each pixel p with col = p SW + j for a tap j.
 * With edge, columns outside the image are skipped (the zero padding). */
DW_INLINE void strip(const dw_row *r, int64_t ox, const int P, const int KW, const int SW, const bool edge) {
    int64_t ix0 = ox * SW - r->pl;
    for (int64_t c0 = 16 * r->cb0; c0 < 16 * r->cb1; c0 += 16) {
        __mmask16 k = block_mask(r, c0);
        __m512 acc[14], bias = _mm512_loadu_ps(r->w + r->taps * r->CP + c0);
        _Pragma("GCC unroll 14") for (int p = 0; p < P; p++) acc[p] = bias;
        for (int64_t i = r->i0; i < r->i1; i++) {
            __m512 w[7];
            _Pragma("GCC unroll 7") for (int j = 0; j < KW; j++) w[j] = _mm512_loadu_ps(r->w + (i * KW + j) * r->CP + c0);
            const float *xc = r->x + ((r->iy0 + i) * r->W + ix0) * r->C + c0;
            _Pragma("GCC unroll 40") for (int col = 0; col < (P - 1) * SW + KW; col++) {
                if (!edge || (uint64_t)(ix0 + col) < (uint64_t)r->W) {
                    __m512 xv = _mm512_maskz_loadu_ps(k, xc);
                if (r->prefetch) _mm_prefetch((const char *)(xc + P * SW * r->C), _MM_HINT_T0); /* the next strip's */
                    _Pragma("GCC unroll 7") for (int j = 0; j < KW; j++) {
                        int d = col - j;
                        if (d >= 0 && d % SW == 0 && d / SW < P) acc[d / SW] = _mm512_fmadd_ps(xv, w[j], acc[d / SW]);
                    }
                }
                /* one add a column: GCC would otherwise keep each column's offset, and spill them */
                xc += r->C;
                __asm__("" : "+r"(xc));
            }
        }
        _Pragma("GCC unroll 14") for (int p = 0; p < P; p++) finish(r, acc[p], k, (ox + p) * r->C + c0);
    }
}

/* A strip for each kernel this file has registers for (kind: KW, plus 10 at stride 2). */
DW_INLINE void strip_of(const dw_row *r, int kind, int64_t ox, const int P, const bool edge) {
    switch (kind) {
    case 3: strip(r, ox, P, 3, 1, edge); break;
    case 5: strip(r, ox, P, 5, 1, edge); break;
    case 7: strip(r, ox, P, 7, 1, edge); break;
    case 13: strip(r, ox, P, 3, 2, edge); break;
    case 15: strip(r, ox, P, 5, 2, edge); break;
    default:
        for (int p = 0; p < P; p++) pixel(r, ox + p);
    }
}

/* Pixels in a strip: 8 along long rows; a row of 14 or 7 (28x28 and 56x56 images at stride 2,
 * the last stages) whole, with one accumulator chain a pixel enough to hide the FMA latency; the
 * rest 4 or 1 at a time. */
static int strip_pixels(int64_t n) {
    return n >= 16 ? 8 : n == 14 ? 14 : n >= 8 ? 8 : n == 7 ? 7 : n >= 4 ? 4 : 1;
}

/* A task's rows and channel blocks: along a row, strips of pixels, and in each strip every
 * block of 16 channels, so that the input is read pixel by pixel, all its channels together, as
 * it lies in memory (a whole row block by block read one line in six of a 112x112x96 input at
 * a time, and ran slower than XNNPACK). */
DW_TARGET void od_convdw_rows(const od_convdw_geom *g, const float *x, const float *packed, float lo, float hi,
                              int act, float *y, const float *res, int64_t oy0, int64_t oy1, int64_t cb0, int64_t cb1) {
    /* the columns whose taps all lie inside: ox sw - pl >= 0 and ox sw - pl + KW - 1 < W */
    int64_t a = (g->pl + g->sw - 1) / g->sw, last = g->W - g->KW + g->pl;
    int64_t b = last < 0 ? 0 : last / g->sw + 1;
    int kind = g->sw == 1 ? (int)g->KW : g->sw == 2 ? 10 + (int)g->KW : 0;
    dw_row r = {.x = x, .w = packed, .C = g->C, .CP = padded_channels(g), .W = g->W, .KW = g->KW, .sw = g->sw,
                .pl = g->pl, .taps = g->KH * g->KW, .cb0 = cb0, .cb1 = cb1, .lo = _mm512_set1_ps(lo),
                .hi = _mm512_set1_ps(hi), .clamp = lo > -INFINITY || hi < INFINITY, .act = act,
                /* efficientnet_b0's 112x112x96 (4.8 MB) at stride 2: 0.32 -> 0.22 ms */
                .prefetch = g->H * g->W * g->C * (int64_t)sizeof(float) > (2 << 20)};
    for (int64_t oy = oy0; oy < oy1; oy++) {
        r.iy0 = oy * g->sh - g->pt;
        r.i0 = r.iy0 < 0 ? -r.iy0 : 0;
        r.i1 = g->H - r.iy0 < g->KH ? g->H - r.iy0 : g->KH;
        if (r.i1 < r.i0) r.i1 = r.i0;
        r.y = y + oy * g->OW * g->C;
        r.res = res ? res + oy * g->OW * g->C : NULL;
        for (int64_t ox = 0; ox < g->OW;) {
            int P = strip_pixels(g->OW - ox);
            /* (whole rows of 14 or 7 always take the checks: they have padding on both sides) */
            bool edge = ox < a || ox + P > b;
            switch (P * 2 + edge) {
            case 28:
            case 29: strip_of(&r, kind, ox, 14, true); break;
            case 16: strip_of(&r, kind, ox, 8, false); break;
            case 17: strip_of(&r, kind, ox, 8, true); break;
            case 14:
            case 15: strip_of(&r, kind, ox, 7, true); break;
            case 8: strip_of(&r, kind, ox, 4, false); break;
            case 9: strip_of(&r, kind, ox, 4, true); break;
            case 2: strip_of(&r, kind, ox, 1, false); break;
            default: strip_of(&r, kind, ox, 1, true); break;
            }
            ox += P;
        }
    }
}
#else
bool od_convdw_fits(const od_convdw_geom *g) { return false; }
void od_convdw_rows(const od_convdw_geom *g, const float *x, const float *packed, float lo, float hi, int act,
                    float *y, const float *res, int64_t oy0, int64_t oy1, int64_t cb0, int64_t cb1) {}
#endif

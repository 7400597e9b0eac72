/* A direct convolution, channels-last, output channels in multiples of 16, on AVX-512. A
 * register tile is 14 output pixels of a row x 32 output channels (28 accumulators): per input
 * channel of a tap, two loads of weights and 28 FMAs with the pixel's input broadcast from
 * memory. XNNPACK's kernel of this XNNPACK version is 7 pixels x 16 channels, one weight load
 * and 7 broadcasts per 7 FMAs: on a CPU with two 512-bit FMA units its loads, not its FMAs,
 * set the pace (3x3, 64 channels, 56x56: 164-175 GFLOP/s a core; this tile: ~220). The taps
 * read a zero-padded copy of the image, so the loops have no bounds checks. */
#include "conv_wide.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WIDE_TARGET __attribute__((target("avx512f")))

enum { PIX = 14 };

bool od_convw_fits(od_convw_geom *g) {
    g->HP = (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1;
    g->WP = (g->OW - 1) * g->sw + (g->KW - 1) * g->dw + 1;
    int64_t wbytes = (int64_t)sizeof(float) * g->KH * g->KW * g->C * g->M;
    /* 16 channels alone, or a 1x1 kernel (a plain product), measured slower than XNNPACK's
     * (resnet's 16-channel 3x3 layers at batch 64: 125 against 162 GFLOP/s) */
    return g->M % 16 == 0 && g->M >= 32 && g->KH * g->KW > 1 && g->pt >= 0 && g->pl >= 0 && wbytes <= (1 << 20) && __builtin_cpu_supports("avx512f") &&
           !getenv("OD_NO_CONVW");
}

void od_convw_pack(const od_convw_geom *g, const float *w, float *packed) {
    int64_t taps = g->KH * g->KW;
    for (int64_t m = 0; m < g->M; m++)
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t q = 0; q < taps; q++) packed[(q * g->C + c) * g->M + m] = w[(m * g->C + c) * taps + q];
}

void od_convw_pad_rows(const od_convw_geom *g, const float *x, float *xp, int64_t r0, int64_t r1) {
    int64_t w = g->W < g->WP - g->pl ? g->W : g->WP - g->pl; /* columns the taps read */
    for (int64_t r = r0; r < r1 && r + g->pt < g->HP && w > 0; r++)
        memcpy(xp + ((r + g->pt) * g->WP + g->pl) * g->C, x + r * g->W * g->C, sizeof(float) * (size_t)(w * g->C));
}

/* n pixels (a constant after inlining) of row oy from column ox0, V (1 or 2) vectors of 16
 * channels from m0. */
WIDE_TARGET static inline __attribute__((always_inline)) void tile(const od_convw_geom *g, const float *xp,
                                                                   const float *packed, const float *bias, float lo,
                                                                   float hi, bool clamp, float *y, int64_t oy,
                                                                   int64_t ox0, int64_t m0, const int n, const int V) {
    __m512 acc[PIX][2];
    for (int v = 0; v < V; v++) {
        __m512 b = bias ? _mm512_loadu_ps(bias + m0 + 16 * v) : _mm512_setzero_ps();
        for (int t = 0; t < n; t++) acc[t][v] = b;
    }
    int64_t C = g->C, M = g->M, xs = g->sw * C; /* floats between the inputs of adjacent pixels */
    for (int64_t i = 0; i < g->KH; i++) {
        const float *xr = xp + ((oy * g->sh + i * g->dh) * g->WP + ox0 * g->sw) * C;
        for (int64_t j = 0; j < g->KW; j++) {
            const float *xt = xr + j * g->dw * C, *wt = packed + (i * g->KW + j) * C * M + m0;
            for (int64_t c = 0; c < C; c++, xt++, wt += M) {
                __m512 w[2];
                for (int v = 0; v < V; v++) w[v] = _mm512_loadu_ps(wt + 16 * v);
                for (int t = 0; t < n; t++) {
                    __m512 xb = _mm512_set1_ps(xt[t * xs]);
                    for (int v = 0; v < V; v++) acc[t][v] = _mm512_fmadd_ps(xb, w[v], acc[t][v]);
                }
            }
        }
    }
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    float *yr = y + (oy * g->OW + ox0) * M + m0;
    for (int t = 0; t < n; t++)
        for (int v = 0; v < V; v++)
            _mm512_storeu_ps(yr + t * M + 16 * v, clamp ? _mm512_min_ps(_mm512_max_ps(acc[t][v], vlo), vhi) : acc[t][v]);
}

/* A row's pixels from ox in tiles of PIX, then the tail as one tile of its own width. */
#define ROW(V)                                                                                                     \
    do {                                                                                                           \
        int64_t ox = 0;                                                                                            \
        for (; ox + PIX <= g->OW; ox += PIX) tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, PIX, V);      \
        switch (g->OW - ox) {                                                                                      \
        case 13: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 13, V); break;                          \
        case 12: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 12, V); break;                          \
        case 11: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 11, V); break;                          \
        case 10: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 10, V); break;                          \
        case 9: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 9, V); break;                            \
        case 8: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 8, V); break;                            \
        case 7: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 7, V); break;                            \
        case 6: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 6, V); break;                            \
        case 5: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 5, V); break;                            \
        case 4: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 4, V); break;                            \
        case 3: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 3, V); break;                            \
        case 2: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 2, V); break;                            \
        case 1: tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, 1, V); break;                            \
        default: break;                                                                                            \
        }                                                                                                          \
    } while (0)

WIDE_TARGET void od_convw_rows(const od_convw_geom *g, const float *xp, const float *packed, const float *bias,
                               float lo, float hi, float *y, int64_t oy0, int64_t oy1) {
    bool clamp = lo > -INFINITY || hi < INFINITY;
    for (int64_t oy = oy0; oy < oy1; oy++) {
        int64_t m0 = 0;
        for (; m0 + 32 <= g->M; m0 += 32) ROW(2);
        if (m0 < g->M) ROW(1);
    }
}
#else
bool od_convw_fits(od_convw_geom *g) { return false; }
void od_convw_pack(const od_convw_geom *g, const float *w, float *packed) {}
void od_convw_pad_rows(const od_convw_geom *g, const float *x, float *xp, int64_t r0, int64_t r1) {}
void od_convw_rows(const od_convw_geom *g, const float *xp, const float *packed, const float *bias, float lo,
                   float hi, float *y, int64_t oy0, int64_t oy1) {}
#endif

/* A direct convolution for exactly 8 output channels (Conv.c's training forward and input
 * gradient). XNNPACK's kernels compute 16 output channels at a time, so on 8 they waste half of
 * every multiply (resnet w0.5's 8-channel 3x3 layers: ~60 GFLOP/s a core). The taps read a
 * zero-padded copy of the image, so the loops have no bounds checks.
 * With AVX-512 and stride 1 across, the copy is planar and a register holds 16 adjacent output
 * pixels of one channel: a tile of 8 channels x 32 pixels costs, per input channel of a tap, two
 * loads and 16 FMAs with the weight broadcast from memory; the tile is transposed back to
 * channels-last as it is stored. Otherwise one AVX2 register holds a pixel's 8 output channels
 * and a tile 12 pixels of a row: one load of the weights, 12 broadcasts and 12 FMAs. */
#include "conv8.h"

#include "conv_common.h"

#include <math.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CONV8_TARGET __attribute__((target("avx2,fma")))

enum { TILE = 12 };

bool od_conv8_fits(od_conv8_geom *g) {
    g->HP = (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1;
    g->WP = (g->OW - 1) * g->sw + (g->KW - 1) * g->dw + 1;
    g->planar = g->sw == 1 && od_avx512_on("OD_NO_AVX512_CONV8");
    g->WQ = (g->OW + 15) / 16 * 16 + (g->KW - 1) * g->dw;
    g->scratch = g->C * (g->planar ? g->HP * g->WQ : g->HP * g->WP);
    return g->pt >= 0 && g->pl >= 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           !getenv("OD_NO_CONV8");
}

/* n (a constant after inlining) output pixels of row oy from column ox0. */
OD_UNSANITIZED CONV8_TARGET static inline __attribute__((always_inline)) void tile(const od_conv8_geom *g, const float *xp,
                                                                     const float *packed, __m256 b, __m256 lo,
                                                                     __m256 hi, bool clamp, bool add, float *y, int64_t oy,
                                                                     int64_t ox0, const int n) {
    __m256 acc[TILE];
    for (int t = 0; t < n; t++) acc[t] = b;
    int64_t C = g->C, xs = g->sw * C; /* floats between the inputs of adjacent output pixels */
    for (int64_t i = 0; i < g->KH; i++) {
        const float *xr = xp + ((oy * g->sh + i * g->dh) * g->WP + ox0 * g->sw) * C;
        for (int64_t j = 0; j < g->KW; j++) {
            const float *xt = xr + j * g->dw * C, *wt = packed + (i * g->KW + j) * C * 8;
            for (int64_t c = 0; c < C; c++) {
                __m256 w = _mm256_loadu_ps(wt + c * 8);
                for (int t = 0; t < n; t++) acc[t] = _mm256_fmadd_ps(_mm256_broadcast_ss(xt + t * xs + c), w, acc[t]);
            }
        }
    }
    float *yr = y + (oy * g->OW + ox0) * 8;
    for (int t = 0; t < n; t++) { /* no clamp unless asked: max and min would turn a NaN into a bound */
        __m256 v = clamp ? _mm256_min_ps(_mm256_max_ps(acc[t], lo), hi) : acc[t];
        _mm256_storeu_ps(yr + t * 8, add ? _mm256_add_ps(_mm256_loadu_ps(yr + t * 8), v) : v);
    }
}

#define PLANAR_TARGET __attribute__((target("avx512f,avx2,fma")))

/* y[p*stride + c] = r[c][p] (add: +=) for p < valid (of 8): an 8x8 transpose. */
OD_UNSANITIZED PLANAR_TARGET static inline __attribute__((always_inline)) void store_transposed(const __m256 *r, float *y,
                                                                                 int64_t stride, int64_t valid, bool add) {
    __m256 t[8], s[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);     /* pixels 0,1 | 4,5 of two channels */
        t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]); /* pixels 2,3 | 6,7 */
    }
    for (int h = 0; h < 2; h++) { /* channels 0-3, then 4-7 */
        s[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0)); /* pixel 0 | 4 */
        s[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2)); /* 1 | 5 */
        s[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0)); /* 2 | 6 */
        s[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2)); /* 3 | 7 */
    }
    for (int p = 0; p < 4; p++) { /* low halves: pixels 0-3; high halves: 4-7 (immediates: clang wants constants) */
        __m256 lo = _mm256_permute2f128_ps(s[p], s[4 + p], 0x20), hi = _mm256_permute2f128_ps(s[p], s[4 + p], 0x31);
        float *a = y + p * stride, *b = y + (p + 4) * stride;
        if (p < valid) _mm256_storeu_ps(a, add ? _mm256_add_ps(_mm256_loadu_ps(a), lo) : lo);
        if (p + 4 < valid) _mm256_storeu_ps(b, add ? _mm256_add_ps(_mm256_loadu_ps(b), hi) : hi);
    }
}

/* 16 * V (a constant after inlining) output pixels of row oy from column ox0, on the planar copy xq. */
OD_UNSANITIZED PLANAR_TARGET static inline __attribute__((always_inline)) void planar_tile(const od_conv8_geom *g, const float *xq,
                                                                            const float *packed, const float *bias,
                                                                            float lo, float hi, bool clamp, bool add, float *y,
                                                                            int64_t oy, int64_t ox0, const int V) {
    __m512 acc[8][2];
    for (int c = 0; c < 8; c++)
        for (int v = 0; v < V; v++) acc[c][v] = _mm512_set1_ps(bias ? bias[c] : 0.0f);
    int64_t plane = g->HP * g->WQ;
    for (int64_t i = 0; i < g->KH; i++) {
        const float *xr = xq + (oy * g->sh + i * g->dh) * g->WQ + ox0;
        for (int64_t j = 0; j < g->KW; j++) {
            const float *xt = xr + j * g->dw, *wt = packed + (i * g->KW + j) * g->C * 8;
            for (int64_t ci = 0; ci < g->C; ci++, xt += plane, wt += 8) {
                __m512 x[2];
                for (int v = 0; v < V; v++) x[v] = _mm512_loadu_ps(xt + 16 * v);
                for (int c = 0; c < 8; c++) {
                    __m512 w = _mm512_set1_ps(wt[c]);
                    for (int v = 0; v < V; v++) acc[c][v] = _mm512_fmadd_ps(x[v], w, acc[c][v]);
                }
            }
        }
    }
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int v = 0; v < V; v++)
        for (int h = 0; h < 2; h++) {
            int64_t at = ox0 + 16 * v + 8 * h;
            if (at >= g->OW) return;
            __m256 r[8];
            for (int c = 0; c < 8; c++) {
                __m512 a = clamp ? _mm512_min_ps(_mm512_max_ps(acc[c][v], vlo), vhi) : acc[c][v];
                r[c] = h ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)) : _mm512_castps512_ps256(a);
            }
            store_transposed(r, y + (oy * g->OW + at) * 8, 8, g->OW - at, add);
        }
}

OD_UNSANITIZED PLANAR_TARGET static void planar_image(const od_conv8_geom *g, const float *x, const float *packed, const float *bias,
                                       float lo, float hi, bool clamp, bool add, float *xq, float *y) {
    int64_t w = g->W < g->WP - g->pl ? g->W : g->WP - g->pl; /* columns the taps read */
    int64_t plane = g->HP * g->WQ, c8 = g->C % 8 ? 0 : g->C; /* channels taken 8 x 8 pixels at a time */
    for (int64_t r = 0; r < g->H && r + g->pt < g->HP; r++) {
        float *row = xq + (r + g->pt) * g->WQ + g->pl;
        const float *xr = x + r * g->W * g->C;
        int64_t col = 0;
        for (; c8 && col + 8 <= w; col += 8)
            for (int64_t c = 0; c < c8; c += 8) {
                __m256 px[8];
                for (int p = 0; p < 8; p++) px[p] = _mm256_loadu_ps(xr + (col + p) * g->C + c);
                store_transposed(px, row + c * plane + col, plane, 8, false);
            }
        for (; col < w; col++)
            for (int64_t c = 0; c < g->C; c++) row[c * plane + col] = xr[col * g->C + c];
    }
    for (int64_t oy = 0; oy < g->OH; oy++)
        for (int64_t ox = 0; ox < g->OW;) {
            if (g->OW - ox > 16) planar_tile(g, xq, packed, bias, lo, hi, clamp, add, y, oy, ox, 2), ox += 32;
            else planar_tile(g, xq, packed, bias, lo, hi, clamp, add, y, oy, ox, 1), ox += 16;
        }
}

OD_UNSANITIZED CONV8_TARGET void od_conv8_image(const od_conv8_geom *g, const float *x, const float *packed, const float *bias,
                                 float lo, float hi, float *xp, float *y, bool add) {
    /* rows -pt .. HP-pt-1 and columns -pl .. WP-pl-1 of x; the padding is never written */
    bool clamp = lo > -INFINITY || hi < INFINITY;
    if (g->planar) {
        planar_image(g, x, packed, bias, lo, hi, clamp, add, xp, y);
        return;
    }
    od_conv_pad_rows(x, g->W, g->C, 0, g->H, xp, g->HP, g->WP, g->pt, g->pl);
    __m256 b = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    for (int64_t oy = 0; oy < g->OH; oy++) {
        int64_t ox = 0;
        for (; ox + TILE <= g->OW; ox += TILE) tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, TILE);
        switch (g->OW - ox) { /* each tail width its own unrolled tile */
        case 11: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 11); break;
        case 10: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 10); break;
        case 9: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 9); break;
        case 8: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 8); break;
        case 7: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 7); break;
        case 6: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 6); break;
        case 5: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 5); break;
        case 4: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 4); break;
        case 3: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 3); break;
        case 2: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 2); break;
        case 1: tile(g, xp, packed, b, vlo, vhi, clamp, add, y, oy, ox, 1); break;
        default: break;
        }
    }
}
#else
bool od_conv8_fits(od_conv8_geom *g) { return false; }
void od_conv8_image(const od_conv8_geom *g, const float *x, const float *packed, const float *bias, float lo, float hi,
                    float *xp, float *y, bool add) {}
#endif

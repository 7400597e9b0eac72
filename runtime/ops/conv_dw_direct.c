/* The weight gradient of a training convolution without im2row (Conv.c's conv_dw_shard):
 * dW[m][i][j][c] += sum over output pixels p of dY[p][m] * x[p's tap (i, j)][c], read straight
 * from a zero-padded copy of one image. A register tile holds 4 output channels x up to 3 taps
 * of one kernel row x 8 input channels (12 AVX2 accumulators); each pixel costs 3 loads,
 * 4 broadcasts and 12 FMAs, where im2row + sgemm copied every tap and packed both operands
 * (resnet w0.5: 37% of a step). With AVX-512 and Cg % 16 == 0 a tile is 4 or 8 output channels
 * x 3 taps x 16 input channels (on Zen 5, twice the rate); with 8 channels and one group, one
 * register holds two adjacent taps (contiguous in x and in dW). The bias sums ride along in one tile
 * per output channel block. Needs AVX2 + FMA, Cg % 8 == 0 and Mg % 4 == 0. Narrower inputs (an
 * image model's first layer, C = 1 or 3, with Mg % 8 == 0; depthwise, Cg = Mg = 1, G % 8 == 0)
 * take tap_tiles: lanes over 8 output channels (groups), one accumulator per tap. */
#include "conv_dw_direct.h"

#include "conv_common.h"

#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DIRECT_TARGET __attribute__((target("avx2,fma")))
#define WIDE_TARGET __attribute__((target("avx512f,avx2,fma")))

bool od_conv_dw_direct_fits(od_conv_dw_geom *g) {
    bool avx512 = od_avx512_on("OD_NO_AVX512_DW");
    g->wide = avx512 && g->Cg % 16 == 0;
    g->pairs = avx512 && g->G == 1 && g->C == 8 && g->dw == 1;
    g->taps = (g->Cg < 8 && g->Mg % 8 == 0) || (g->Cg == 1 && g->Mg == 1 && g->G % 8 == 0);
    return (g->taps || (g->Cg % 8 == 0 && g->Mg % 4 == 0)) && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma") && !getenv("OD_NO_DIRECT_DW");
}

/* T taps (j0 .. j0+T-1) of kernel row i, output channels m0 .. m0+3, input channels c0 .. c0+7;
 * db non-NULL: also db[m0 .. m0+3] += the sums of dY. */
DIRECT_TARGET static inline __attribute__((always_inline)) void tile(const od_conv_dw_geom *g, const float *xp,
                                                                      const float *dy, float *dw, float *db,
                                                                      int64_t m0, int64_t c0, int64_t i, int64_t j0,
                                                                      int T) {
    __m128 bias = _mm_setzero_ps();
    __m256 acc[4][3];
    for (int k = 0; k < 4; k++)
        for (int t = 0; t < 3; t++) acc[k][t] = _mm256_setzero_ps();
    int64_t xs = g->sw * g->C, ts = g->dw * g->C; /* floats between pixels, between taps */
    for (int64_t oy = 0; oy < g->OH; oy++) {
        const float *xr = xp + ((oy * g->sh + i * g->dh) * g->WP + j0 * g->dw) * g->C + c0;
        const float *dr = dy + oy * g->OW * g->M + m0;
        for (int64_t ox = 0; ox < g->OW; ox++, xr += xs, dr += g->M) {
            __m256 x[3];
            for (int t = 0; t < T; t++) x[t] = _mm256_loadu_ps(xr + t * ts);
            if (db) bias = _mm_add_ps(bias, _mm_loadu_ps(dr));
            for (int k = 0; k < 4; k++) {
                __m256 d = _mm256_broadcast_ss(dr + k);
                for (int t = 0; t < T; t++) acc[k][t] = _mm256_fmadd_ps(d, x[t], acc[k][t]);
            }
        }
    }
    for (int k = 0; k < 4; k++)
        for (int t = 0; t < T; t++) {
            float *o = dw + (((m0 + k) * g->KH + i) * g->KW + j0 + t) * g->Cg + (c0 % g->Cg);
            _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), acc[k][t]));
        }
    if (db) _mm_storeu_ps(db + m0, _mm_add_ps(_mm_loadu_ps(db + m0), bias));
}

/* As tile, with MB (4 or 8) output channels and 16 input channels in AVX-512 registers. */
WIDE_TARGET static inline __attribute__((always_inline)) void tile16(const od_conv_dw_geom *g, const float *xp,
                                                                    const float *dy, float *dw, float *db,
                                                                    int64_t m0, int64_t c0, int64_t i, int64_t j0,
                                                                    int MB, int T) {
    __m256 bias = _mm256_setzero_ps();
    __m512 acc[8][3];
    for (int k = 0; k < MB; k++)
        for (int t = 0; t < 3; t++) acc[k][t] = _mm512_setzero_ps();
    int64_t xs = g->sw * g->C, ts = g->dw * g->C;
    for (int64_t oy = 0; oy < g->OH; oy++) {
        const float *xr = xp + ((oy * g->sh + i * g->dh) * g->WP + j0 * g->dw) * g->C + c0;
        const float *dr = dy + oy * g->OW * g->M + m0;
        for (int64_t ox = 0; ox < g->OW; ox++, xr += xs, dr += g->M) {
            __m512 x[3];
            for (int t = 0; t < T; t++) x[t] = _mm512_loadu_ps(xr + t * ts);
            if (db && MB == 8) bias = _mm256_add_ps(bias, _mm256_loadu_ps(dr));
            else if (db) bias = _mm256_castps128_ps256(_mm_add_ps(_mm256_castps256_ps128(bias), _mm_loadu_ps(dr)));
            for (int k = 0; k < MB; k++) {
                __m512 d = _mm512_set1_ps(dr[k]);
                for (int t = 0; t < T; t++) acc[k][t] = _mm512_fmadd_ps(d, x[t], acc[k][t]);
            }
        }
    }
    for (int k = 0; k < MB; k++)
        for (int t = 0; t < T; t++) {
            float *o = dw + (((m0 + k) * g->KH + i) * g->KW + j0 + t) * g->Cg + (c0 % g->Cg);
            _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), acc[k][t]));
        }
    if (db && MB == 8) _mm256_storeu_ps(db + m0, _mm256_add_ps(_mm256_loadu_ps(db + m0), bias));
    else if (db) _mm_storeu_ps(db + m0, _mm_add_ps(_mm_loadu_ps(db + m0), _mm256_castps256_ps128(bias)));
}

/* MB output channels x taps j0 .. j0+2P-1 of row i (P pairs of taps, the last one's upper tap
 * cut by mask `last` past the kernel's width) x the 8 channels (g->pairs). */
WIDE_TARGET static inline __attribute__((always_inline)) void tile_pairs(const od_conv_dw_geom *g, const float *xp,
                                                                        const float *dy, float *dw, float *db,
                                                                        int64_t m0, int64_t i, int64_t j0, int MB,
                                                                        int P, __mmask16 last) {
    __m256 bias = _mm256_setzero_ps();
    __m512 acc[8][2];
    for (int k = 0; k < MB; k++)
        for (int p = 0; p < 2; p++) acc[k][p] = _mm512_setzero_ps();
    int64_t xs = g->sw * 8;
    for (int64_t oy = 0; oy < g->OH; oy++) {
        const float *xr = xp + ((oy * g->sh + i * g->dh) * g->WP + j0) * 8;
        const float *dr = dy + oy * g->OW * g->M + m0;
        for (int64_t ox = 0; ox < g->OW; ox++, xr += xs, dr += g->M) {
            __m512 x[2];
            for (int p = 0; p < P; p++) x[p] = _mm512_maskz_loadu_ps(p == P - 1 ? last : 0xFFFF, xr + 16 * p);
            if (db && MB == 8) bias = _mm256_add_ps(bias, _mm256_loadu_ps(dr));
            else if (db) bias = _mm256_castps128_ps256(_mm_add_ps(_mm256_castps256_ps128(bias), _mm_loadu_ps(dr)));
            for (int k = 0; k < MB; k++) {
                __m512 d = _mm512_set1_ps(dr[k]);
                for (int p = 0; p < P; p++) acc[k][p] = _mm512_fmadd_ps(d, x[p], acc[k][p]);
            }
        }
    }
    for (int k = 0; k < MB; k++)
        for (int p = 0; p < P; p++) {
            __mmask16 m = p == P - 1 ? last : 0xFFFF;
            float *o = dw + (((m0 + k) * g->KH + i) * g->KW + j0 + 2 * p) * 8;
            _mm512_mask_storeu_ps(o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), acc[k][p]));
        }
    if (db && MB == 8) _mm256_storeu_ps(db + m0, _mm256_add_ps(_mm256_loadu_ps(db + m0), bias));
    else if (db) _mm_storeu_ps(db + m0, _mm_add_ps(_mm_loadu_ps(db + m0), _mm256_castps256_ps128(bias)));
}

WIDE_TARGET static void image_pairs(const od_conv_dw_geom *g, const float *xp, const float *dy, float *dw,
                                    float *db) {
    int MB = g->M % 8 == 0 ? 8 : 4;
    for (int64_t m0 = 0; m0 < g->M; m0 += MB)
        for (int64_t i = 0; i < g->KH; i++)
            for (int64_t j0 = 0; j0 < g->KW; j0 += 4) {
                int64_t taps = g->KW - j0 < 4 ? g->KW - j0 : 4;
                int P = (int)(taps + 1) / 2;
                __mmask16 last = taps % 2 ? 0x00FF : 0xFFFF;
                float *b = db && i == 0 && j0 == 0 ? db : NULL;
                if (MB == 8 && P == 2) tile_pairs(g, xp, dy, dw, b, m0, i, j0, 8, 2, last);
                else if (MB == 8) tile_pairs(g, xp, dy, dw, b, m0, i, j0, 8, 1, last);
                else if (P == 2) tile_pairs(g, xp, dy, dw, b, m0, i, j0, 4, 2, last);
                else tile_pairs(g, xp, dy, dw, b, m0, i, j0, 4, 1, last);
            }
}

/* The image's tiles on AVX-512 (g->wide). */
WIDE_TARGET static void image16(const od_conv_dw_geom *g, const float *xp, const float *dy, float *dw, float *db) {
    int MB = g->Mg % 8 == 0 ? 8 : 4;
    for (int64_t grp = 0; grp < g->G; grp++)
        for (int64_t m0 = grp * g->Mg; m0 < (grp + 1) * g->Mg; m0 += MB)
            for (int64_t c0 = grp * g->Cg; c0 < (grp + 1) * g->Cg; c0 += 16)
                for (int64_t i = 0; i < g->KH; i++)
                    for (int64_t j0 = 0; j0 < g->KW; j0 += 3) {
                        int64_t T = g->KW - j0 < 3 ? g->KW - j0 : 3;
                        float *b = db && c0 == grp * g->Cg && i == 0 && j0 == 0 ? db : NULL;
                        if (MB == 8 && T == 3) tile16(g, xp, dy, dw, b, m0, c0, i, j0, 8, 3);
                        else if (MB == 8 && T == 2) tile16(g, xp, dy, dw, b, m0, c0, i, j0, 8, 2);
                        else if (MB == 8) tile16(g, xp, dy, dw, b, m0, c0, i, j0, 8, 1);
                        else if (T == 3) tile16(g, xp, dy, dw, b, m0, c0, i, j0, 4, 3);
                        else if (T == 2) tile16(g, xp, dy, dw, b, m0, c0, i, j0, 4, 2);
                        else tile16(g, xp, dy, dw, b, m0, c0, i, j0, 4, 1);
                    }
}

/* Taps q0 .. q0+Q-1 (q = i*KW + j) for lanes l0 .. l0+7: output channels of input channel c
 * (x broadcast), or depthwise groups (x loaded, c unused). */
DIRECT_TARGET static inline __attribute__((always_inline)) void tile_taps(const od_conv_dw_geom *g, const float *xp,
                                                                         const float *dy, float *dw, float *db,
                                                                         int64_t l0, int64_t c, int64_t q0, int Q,
                                                                         bool depthwise) {
    int64_t off[12];
    __m256 acc[12], bias = _mm256_setzero_ps();
    for (int t = 0; t < Q; t++) {
        int64_t i = (q0 + t) / g->KW, j = (q0 + t) % g->KW;
        off[t] = (i * g->dh * g->WP + j * g->dw) * g->C + (depthwise ? l0 : c);
        acc[t] = _mm256_setzero_ps();
    }
    for (int64_t oy = 0; oy < g->OH; oy++) {
        const float *xr = xp + oy * g->sh * g->WP * g->C, *dr = dy + oy * g->OW * g->M + l0;
        for (int64_t ox = 0; ox < g->OW; ox++, xr += g->sw * g->C, dr += g->M) {
            __m256 d = _mm256_loadu_ps(dr);
            if (db) bias = _mm256_add_ps(bias, d);
            for (int t = 0; t < Q; t++) {
                __m256 x = depthwise ? _mm256_loadu_ps(xr + off[t]) : _mm256_broadcast_ss(xr + off[t]);
                acc[t] = _mm256_fmadd_ps(d, x, acc[t]);
            }
        }
    }
    int64_t kq = g->KH * g->KW, cl = depthwise ? 0 : c % g->Cg;
    for (int t = 0; t < Q; t++) {
        float a[8];
        _mm256_storeu_ps(a, acc[t]);
        for (int l = 0; l < 8; l++) dw[((l0 + l) * kq + q0 + t) * g->Cg + cl] += a[l];
    }
    if (db) _mm256_storeu_ps(db + l0, _mm256_add_ps(_mm256_loadu_ps(db + l0), bias));
}

DIRECT_TARGET static void image_taps(const od_conv_dw_geom *g, const float *xp, const float *dy, float *dw,
                                     float *db) {
    bool depthwise = g->Cg == 1 && g->Mg == 1;
    int64_t kq = g->KH * g->KW;
    for (int64_t l0 = 0; l0 < g->M; l0 += 8)
        for (int64_t ci = 0; ci < (depthwise ? 1 : g->Cg); ci++)
            for (int64_t q0 = 0; q0 < kq; q0 += 12) {
                int Q = kq - q0 < 12 ? (int)(kq - q0) : 12;
                int64_t c = l0 / g->Mg * g->Cg + ci; /* the input channel (not depthwise) */
                float *b = db && ci == 0 && q0 == 0 ? db : NULL;
                if (depthwise && Q == 9) tile_taps(g, xp, dy, dw, b, l0, 0, q0, 9, true);
                else if (depthwise) tile_taps(g, xp, dy, dw, b, l0, 0, q0, Q, true);
                else if (Q == 9) tile_taps(g, xp, dy, dw, b, l0, c, q0, 9, false);
                else tile_taps(g, xp, dy, dw, b, l0, c, q0, Q, false);
            }
}

DIRECT_TARGET void od_conv_dw_direct_image(const od_conv_dw_geom *g, const float *x, const float *dy, float *xp,
                                           float *dw, float *db) {
    od_conv_pad_rows(x, g->W, g->C, 0, g->H, xp, g->HP, g->WP, g->pt, g->pl);
    if (g->taps) {
        image_taps(g, xp, dy, dw, db);
        return;
    }
    if (g->wide || g->pairs) {
        (g->wide ? image16 : image_pairs)(g, xp, dy, dw, db);
        return;
    }
    for (int64_t grp = 0; grp < g->G; grp++)
        for (int64_t m0 = grp * g->Mg; m0 < (grp + 1) * g->Mg; m0 += 4)
            for (int64_t c0 = grp * g->Cg; c0 < (grp + 1) * g->Cg; c0 += 8)
                for (int64_t i = 0; i < g->KH; i++)
                    for (int64_t j0 = 0; j0 < g->KW; j0 += 3) {
                        int64_t T = g->KW - j0 < 3 ? g->KW - j0 : 3;
                        float *b = db && c0 == grp * g->Cg && i == 0 && j0 == 0 ? db : NULL;
                        if (T == 3) tile(g, xp, dy, dw, b, m0, c0, i, j0, 3);
                        else if (T == 2) tile(g, xp, dy, dw, b, m0, c0, i, j0, 2);
                        else tile(g, xp, dy, dw, b, m0, c0, i, j0, 1);
                    }
}
#else
bool od_conv_dw_direct_fits(od_conv_dw_geom *g) { return false; }
void od_conv_dw_direct_image(const od_conv_dw_geom *g, const float *x, const float *dy, float *xp, float *dw,
                             float *db) {}
#endif

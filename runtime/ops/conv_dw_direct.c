/* The weight gradient of a training convolution without im2row (Conv.c's conv_dw_shard):
 * dW[m][i][j][c] += sum over output pixels p of dY[p][m] * x[p's tap (i, j)][c], read straight
 * from a zero-padded copy of one image. A register tile holds 4 output channels x up to 3 taps
 * of one kernel row x 8 input channels (12 AVX2 accumulators); each pixel costs 3 loads,
 * 4 broadcasts and 12 FMAs, where im2row + sgemm copied every tap and packed both operands
 * (resnet w0.5: 37% of a step). The bias sums ride along in one tile per output channel block.
 * Needs AVX2 + FMA, Cg % 8 == 0 and Mg % 4 == 0. */
#include "conv_dw_direct.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DIRECT_TARGET __attribute__((target("avx2,fma")))

bool od_conv_dw_direct_fits(const od_conv_dw_geom *g) {
    return g->Cg % 8 == 0 && g->Mg % 4 == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           !getenv("OD_NO_DIRECT_DW");
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

DIRECT_TARGET void od_conv_dw_direct_image(const od_conv_dw_geom *g, const float *x, const float *dy, float *xp,
                                           float *dw, float *db) {
    /* the padded image: rows -pt .. HP-pt-1, columns -pl .. WP-pl-1 of x; the padding is never
     * written, so it stays zero */
    for (int64_t y = 0; y < g->H; y++) {
        int64_t py = y + g->pt;
        if (py >= g->HP) break;
        int64_t w = g->W < g->WP - g->pl ? g->W : g->WP - g->pl;
        if (w <= 0) break;
        memcpy(xp + (py * g->WP + g->pl) * g->C, x + y * g->W * g->C, sizeof(float) * (size_t)(w * g->C));
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
bool od_conv_dw_direct_fits(const od_conv_dw_geom *g) { return false; }
void od_conv_dw_direct_image(const od_conv_dw_geom *g, const float *x, const float *dy, float *xp, float *dw,
                             float *db) {}
#endif

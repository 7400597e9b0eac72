/* A 1x1 convolution to 8 + 16k output channels (mobilenet_v2's and efficientnet_b0's projections
 * to 24 and 40), channels-last, on AVX-512. Tiles of 16 channels leave a third of every register
 * empty at 24 (XNNPACK's 16-wide tiles, conv_wide's too); here a register holds 8 output channels
 * for two adjacent input channels (lane 2i: output channel i times input channel k, lane 2i + 1:
 * times k + 1), so 24 channels are three full registers. Per pair of input channels a pixel's two
 * inputs are one 64-bit broadcast load, and a tile of 8 pixels x 24 channels costs three weight
 * loads, 8 broadcasts and 24 FMAs. Adjacent lanes are summed, and the sums gathered by a permute,
 * as the tile is stored, with the bias, a residual, the clamp and the activation. */
#include "conv_pairs.h"

#include "../op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include "act_avx512.h"
#define PAIRS_TARGET __attribute__((target("avx512f")))

enum { GROUP = 24, PIXELS = 8 }; /* output channels and pixels a tile */

bool od_pairs_fits(int64_t K, int64_t M) { return K > 0 && M % 16 == 8 && od_avx512_on("OD_NO_PAIRS"); }

int64_t od_pairs_packed_floats(int64_t K, int64_t M) { return ((K + 1) / 2) * 2 * M; }

/* Groups of 24 output channels (the last one 8 or 16), in each [K/2 pairs][blocks of 8][8
 * channels x 2 inputs]; an odd K's last pair has zero weights for the input past the end. */
void od_pairs_pack(const float *w, int64_t K, int64_t M, float *packed) {
    int64_t kp = (K + 1) / 2;
    for (int64_t m0 = 0; m0 < M; m0 += GROUP) {
        int64_t J = (M - m0 < GROUP ? M - m0 : GROUP) / 8;
        float *g = packed + 2 * m0 * kp;
        for (int64_t q = 0; q < kp; q++)
            for (int64_t j = 0; j < J; j++)
                for (int64_t i = 0; i < 8; i++)
                    for (int h = 0; h < 2; h++) {
                        int64_t k = 2 * q + h;
                        g[(q * J + j) * 16 + 2 * i + h] = k < K ? w[(m0 + 8 * j + i) * K + k] : 0.0f;
                    }
    }
}

/* R pixels from p x channels [m0, m0 + 8 J), R and J constants after inlining. */
OD_UNSANITIZED PAIRS_TARGET static inline __attribute__((always_inline)) void
tile(const float *x, int64_t K, int64_t M, const float *g, const float *bias, const float *res, float lo, float hi,
     bool clamp, int act, float *y, int64_t p, int64_t m0, const int R, const int J) {
    __m512 acc[PIXELS][3];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < J; j++) acc[r][j] = _mm512_setzero_ps();
    const float *xp = x + p * K;
    int64_t q = 0;
    for (; 2 * q + 1 < K; q++) { /* inputs 2q and 2q + 1 of each pixel in one broadcast */
        __m512 w[3];
        for (int j = 0; j < J; j++) w[j] = _mm512_loadu_ps(g + (q * J + j) * 16);
        for (int r = 0; r < R; r++) {
            double two; /* the 64 bits of inputs 2q and 2q + 1 */
            memcpy(&two, xp + r * K + 2 * q, sizeof two);
            __m512 v = _mm512_castpd_ps(_mm512_set1_pd(two));
            for (int j = 0; j < J; j++) acc[r][j] = _mm512_fmadd_ps(v, w[j], acc[r][j]);
        }
    }
    if (2 * q < K) /* an odd K's last input: the even lanes alone (its pair's weights are zero) */
        for (int r = 0; r < R; r++) {
            __m512 v = _mm512_set1_ps(xp[r * K + 2 * q]);
            for (int j = 0; j < J; j++)
                acc[r][j] = _mm512_mask3_fmadd_ps(v, _mm512_loadu_ps(g + (q * J + j) * 16), acc[r][j], 0x5555);
        }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
    const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < J; j++) {
            int64_t m = m0 + 8 * j, at = (p + r) * M + m;
            __m512 s = _mm512_add_ps(acc[r][j], _mm512_permute_ps(acc[r][j], 0xB1)); /* lane 2i: both inputs */
            __m256 v = _mm512_castps512_ps256(_mm512_permutexvar_ps(even, s));
            if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + m));
            if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + at));
            if (clamp) v = _mm256_min_ps(_mm256_max_ps(v, _mm512_castps512_ps256(vlo)), _mm512_castps512_ps256(vhi));
            if (act) v = _mm512_castps512_ps256(od_act_ps(act, _mm512_castps256_ps512(v)));
            _mm256_storeu_ps(y + at, v);
        }
}

#define TILE_J(J)                                                                                      \
    switch (R) {                                                                                       \
    case 8: tile(x, K, M, g, bias, res, lo, hi, clamp, act, y, p, m0, 8, J); break;                    \
    case 7: tile(x, K, M, g, bias, res, lo, hi, clamp, act, y, p, m0, 7, J); break;                    \
    case 6: tile(x, K, M, g, bias, res, lo, hi, clamp, act, y, p, m0, 6, J); break;                    \
    case 5: tile(x, K, M, g, bias, res, lo, hi, clamp, act, y, p, m0, 5, J); break;                    \
    case 4: tile(x, K, M, g, bias, res, lo, hi, clamp, act, y, p, m0, 4, J); break;                    \
    case 3: tile(x, K, M, g, bias, res, lo, hi, clamp, act, y, p, m0, 3, J); break;                    \
    case 2: tile(x, K, M, g, bias, res, lo, hi, clamp, act, y, p, m0, 2, J); break;                    \
    default: tile(x, K, M, g, bias, res, lo, hi, clamp, act, y, p, m0, 1, J); break;                   \
    }

OD_UNSANITIZED PAIRS_TARGET void od_pairs_rows(const float *x, int64_t K, int64_t M, const float *packed, const float *bias,
                                               const float *res, float lo, float hi, int act, float *y, int64_t p0,
                                               int64_t p1) {
    bool clamp = lo > -INFINITY || hi < INFINITY; /* max and min would turn a NaN into a bound */
    int64_t kp = (K + 1) / 2;
    for (int64_t p = p0; p < p1; p += PIXELS) {
        int R = (int)(p1 - p < PIXELS ? p1 - p : PIXELS);
        for (int64_t m0 = 0; m0 < M; m0 += GROUP) {
            int J = (int)((M - m0 < GROUP ? M - m0 : GROUP) / 8);
            const float *g = packed + 2 * m0 * kp;
            if (J == 3) TILE_J(3) else if (J == 2) TILE_J(2) else TILE_J(1)
        }
    }
}
#else
bool od_pairs_fits(int64_t K, int64_t M) { return false; }
int64_t od_pairs_packed_floats(int64_t K, int64_t M) { return ((K + 1) / 2) * 2 * M; }
void od_pairs_pack(const float *w, int64_t K, int64_t M, float *packed) {}
void od_pairs_rows(const float *x, int64_t K, int64_t M, const float *packed, const float *bias, const float *res,
                   float lo, float hi, int act, float *y, int64_t p0, int64_t p1) {}
#endif

/* A 3x3 convolution at stride 1 by Winograd's F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for
 * Convolutional Neural Networks", 2015), channels-last, on AVX-512.
 *
 * The direct kernel (conv_wide.c) runs resnet18's 3x3 layers at the FMA units' pace, as ONNX
 * Runtime does: only fewer multiplications make them faster. A 2x2 block of outputs ("tile")
 * reads a 4x4 patch of the input; with d' = B^T d B (per channel) and u = G w G^T (per channel
 * pair), the tile is A^T (sum over channels of u . d') A: 16 products per channel pair where the
 * direct form has 36, each of the 16 positions a matrix product [tiles x C] [C x M] that runs on
 * the same register tile as conv_wide's (14 rows x 32 channels, weights loaded, inputs
 * broadcast). The transforms are additions only (F(2,3)'s points 0, 1, -1), so the error stays
 * at the direct form's: larger tiles (F(4,3)) would save more but lose digits.
 *
 * Per block of 14 tiles (the caller, Conv.c, runs a few blocks a task): the input transform into
 * [position][tile][channel], in a buffer of the thread's that stays in cache (transforming a
 * whole image first wrote and read back 4x its size: at 56x56x64 that took longer than the
 * products saved); then per 32 output channels the 16 products, kept in a stack buffer, and the
 * output transform with bias, residual, clamp and activation on the way out. */
#include "conv_winograd.h"

#include "../op.h"

#include <math.h>
#include <stdlib.h>

enum { NB = OD_WINO_NB };

size_t od_wino_packed_floats(const od_wino_geom *g) { return (size_t)(16 * g->C * g->M); }

size_t od_wino_block_floats(const od_wino_geom *g) { return (size_t)(16 * NB * g->C); }

void od_wino_pack(const od_wino_geom *g, const float *w, float *packed) {
    int64_t C = g->C;
    for (int64_t m0 = 0; m0 < g->M; m0 += 32) {
        int64_t bw = g->M - m0 < 32 ? g->M - m0 : 32;
        float *blk = packed + m0 * 16 * C;
        for (int64_t o = 0; o < bw; o++)
            for (int64_t c = 0; c < C; c++) {
                const float *k = w + ((m0 + o) * C + c) * 9;
                float t[4][3], u[4][4]; /* t = G k, u = t G^T */
                for (int j = 0; j < 3; j++) {
                    t[0][j] = k[j];
                    t[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
                    t[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
                    t[3][j] = k[6 + j];
                }
                for (int i = 0; i < 4; i++) {
                    u[i][0] = t[i][0];
                    u[i][1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                    u[i][2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                    u[i][3] = t[i][2];
                }
                for (int q = 0; q < 16; q++) blk[(q * C + c) * bw + o] = u[q / 4][q % 4];
            }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "act_avx512.h"
#define WINO_TARGET __attribute__((target("avx512f")))

bool od_wino_fits(od_wino_geom *g) {
    g->TW = (g->OW + 1) / 2;
    g->tiles = (g->OH + 1) / 2 * g->TW;
    g->blocks = (g->tiles + NB - 1) / NB;
    /* 7x7 images (resnet18's last stage) make 16 tiles of 64 outputs for 49, and 16/9 the
     * direct form's weights to read at batch 1: measured no faster there */
    return g->M % 16 == 0 && g->M >= 16 && g->C >= 16 && g->OH * g->OW >= 196 && g->pt >= 0 && g->pl >= 0 &&
           od_avx512_on("OD_NO_WINOGRAD");
}

OD_UNSANITIZED WINO_TARGET void od_wino_input(const od_wino_geom *g, const float *x, int64_t blk, float *v) {
    int64_t C = g->C, H = g->H, W = g->W;
    const __m512 z = _mm512_setzero_ps();
    for (int64_t t = 0; t < NB && blk * NB + t < g->tiles; t++) {
        int64_t idx = blk * NB + t, iy0 = idx / g->TW * 2 - g->pt, ix0 = idx % g->TW * 2 - g->pl;
        unsigned in = 0; /* bit 4 i + j: the patch's (i, j) is inside the image */
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                if (iy0 + i >= 0 && iy0 + i < H && ix0 + j >= 0 && ix0 + j < W) in |= 1u << (4 * i + j);
        float *vt = v + t * C;
        for (int64_t c0 = 0; c0 < C; c0 += 16) {
            __mmask16 m = od_tail_mask16(C - c0);
            __m512 d[4][4], r[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    d[i][j] = in >> (4 * i + j) & 1 ? _mm512_maskz_loadu_ps(m, x + ((iy0 + i) * W + ix0 + j) * C + c0) : z;
            for (int j = 0; j < 4; j++) { /* B^T d */
                r[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
                r[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
                r[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
                r[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
            }
            for (int i = 0; i < 4; i++) { /* (B^T d) B */
                float *vi = vt + 4 * i * NB * C + c0;
                _mm512_mask_storeu_ps(vi, m, _mm512_sub_ps(r[i][0], r[i][2]));
                _mm512_mask_storeu_ps(vi + NB * C, m, _mm512_add_ps(r[i][1], r[i][2]));
                _mm512_mask_storeu_ps(vi + 2 * NB * C, m, _mm512_sub_ps(r[i][2], r[i][1]));
                _mm512_mask_storeu_ps(vi + 3 * NB * C, m, _mm512_sub_ps(r[i][1], r[i][3]));
            }
        }
    }
}

/* The 16 products of n tiles (a constant after inlining) x 16 V output channels: o[q][t][.] =
 * sum over c of v[q][t][c] u[q][c][.]. CS, when not 0, is C as a constant: the n inputs of a
 * channel are then addressed from one register (as conv_wide.c's XS). */
OD_UNSANITIZED WINO_TARGET static inline __attribute__((always_inline)) void products(const float *vb, const float *ub,
                                                                                    int64_t C, float *o, const int n,
                                                                                    const int V, const int64_t CS) {
    int64_t cs = CS ? CS : C;
    for (int q = 0; q < 16; q++) {
        __m512 acc[NB][2];
        for (int t = 0; t < n; t++)
            for (int v = 0; v < V; v++) acc[t][v] = _mm512_setzero_ps();
        const float *xc = vb + q * NB * cs, *wc = ub + q * cs * 16 * V;
        for (int64_t c = 0; c < cs; c++, xc++, wc += 16 * V) {
            __m512 w[2];
            for (int v = 0; v < V; v++) w[v] = _mm512_loadu_ps(wc + 16 * v);
            for (int t = 0; t < n; t++) {
                __m512 xb = _mm512_set1_ps(xc[t * cs]);
                for (int v = 0; v < V; v++) acc[t][v] = _mm512_fmadd_ps(xb, w[v], acc[t][v]);
            }
        }
        for (int t = 0; t < n; t++)
            for (int v = 0; v < V; v++) _mm512_store_ps(o + (q * NB + t) * 32 + 16 * v, acc[t][v]);
    }
}

/* The output transform of n tiles from o, the epilogue, the stores of the outputs inside the image. */
OD_UNSANITIZED WINO_TARGET static void finish(const od_wino_geom *g, const float *o, const float *bias, float lo, float hi,
                                              int act, float *y, const float *res, int64_t blk, int64_t m0, int n, int V) {
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int t = 0; t < n; t++) {
        int64_t idx = blk * NB + t, oy = idx / g->TW * 2, ox = idx % g->TW * 2;
        for (int v = 0; v < V; v++) {
            __m512 p[16], s0[4], s1[4], out[4];
            for (int q = 0; q < 16; q++) p[q] = _mm512_load_ps(o + (q * NB + t) * 32 + 16 * v);
            for (int j = 0; j < 4; j++) { /* A^T p */
                s0[j] = _mm512_add_ps(_mm512_add_ps(p[j], p[4 + j]), p[8 + j]);
                s1[j] = _mm512_sub_ps(_mm512_sub_ps(p[4 + j], p[8 + j]), p[12 + j]);
            }
            out[0] = _mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]); /* (A^T p) A */
            out[1] = _mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]);
            out[2] = _mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]);
            out[3] = _mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]);
            __m512 b = bias ? _mm512_loadu_ps(bias + m0 + 16 * v) : _mm512_setzero_ps();
            for (int k = 0; k < 4; k++) {
                int64_t yy = oy + k / 2, xx = ox + k % 2;
                if (yy >= g->OH || xx >= g->OW) continue;
                int64_t at = (yy * g->OW + xx) * g->M + m0 + 16 * v;
                __m512 a = _mm512_add_ps(out[k], b);
                if (res) a = _mm512_add_ps(a, _mm512_loadu_ps(res + at));
                a = _mm512_min_ps(_mm512_max_ps(a, vlo), vhi);
                _mm512_storeu_ps(y + at, od_act_ps(act, a));
            }
        }
    }
}

#define PRODUCTS(n, V, CS) products(vb, ub, g->C, o, n, V, CS)
#define FULL(V)                                                                                                    \
    do {                                                                                                           \
        switch (g->C) {                                                                                            \
        case 16: PRODUCTS(NB, V, 16); break;                                                                       \
        case 32: PRODUCTS(NB, V, 32); break;                                                                       \
        case 64: PRODUCTS(NB, V, 64); break;                                                                       \
        case 128: PRODUCTS(NB, V, 128); break;                                                                     \
        case 256: PRODUCTS(NB, V, 256); break;                                                                     \
        case 512: PRODUCTS(NB, V, 512); break;                                                                     \
        default: PRODUCTS(NB, V, 0); break;                                                                        \
        }                                                                                                          \
    } while (0)
#define TAIL(V)                                                                                                    \
    do {                                                                                                           \
        switch (n) {                                                                                               \
        case 13: PRODUCTS(13, V, 0); break;                                                                        \
        case 12: PRODUCTS(12, V, 0); break;                                                                        \
        case 11: PRODUCTS(11, V, 0); break;                                                                        \
        case 10: PRODUCTS(10, V, 0); break;                                                                        \
        case 9: PRODUCTS(9, V, 0); break;                                                                          \
        case 8: PRODUCTS(8, V, 0); break;                                                                          \
        case 7: PRODUCTS(7, V, 0); break;                                                                          \
        case 6: PRODUCTS(6, V, 0); break;                                                                          \
        case 5: PRODUCTS(5, V, 0); break;                                                                          \
        case 4: PRODUCTS(4, V, 0); break;                                                                          \
        case 3: PRODUCTS(3, V, 0); break;                                                                          \
        case 2: PRODUCTS(2, V, 0); break;                                                                          \
        default: PRODUCTS(1, V, 0); break;                                                                         \
        }                                                                                                          \
    } while (0)

OD_UNSANITIZED WINO_TARGET void od_wino_output(const od_wino_geom *g, const float *v, const float *packed,
                                               const float *bias, float lo, float hi, int act, float *y,
                                               const float *res, int64_t blk, int64_t m0) {
    _Alignas(64) float o[16 * NB * 32];
    int n = g->tiles - blk * NB < NB ? (int)(g->tiles - blk * NB) : NB;
    const float *vb = v, *ub = packed + m0 * 16 * g->C;
    bool two = g->M - m0 >= 32;
    if (n == NB) {
        if (two) FULL(2);
        else FULL(1);
    } else {
        if (two) TAIL(2);
        else TAIL(1);
    }
    finish(g, o, bias, lo, hi, act, y, res, blk, m0, n, two ? 2 : 1);
}
#else
bool od_wino_fits(od_wino_geom *g) { return false; }
void od_wino_input(const od_wino_geom *g, const float *x, int64_t blk, float *v) {}
void od_wino_output(const od_wino_geom *g, const float *v, const float *packed, const float *bias, float lo, float hi,
                    int act, float *y, const float *res, int64_t blk, int64_t m0) {}
#endif

/* A direct convolution, channels-last, output channels in multiples of 16, on AVX-512. A
 * register tile is 14 output pixels of a row x 32 output channels (28 accumulators): per input
 * channel of a tap, two loads of weights and 28 FMAs with the pixel's input broadcast from
 * memory. XNNPACK's kernel of this XNNPACK version is 7 pixels x 16 channels, one weight load
 * and 7 broadcasts per 7 FMAs: on a CPU with two 512-bit FMA units its loads, not its FMAs,
 * set the pace (3x3, 64 channels, 56x56: 164-175 GFLOP/s a core; this tile: ~220). The taps
 * read a zero-padded copy of the image, so the loops have no bounds checks. Deep layers at small
 * images (resnet18's 512 channels at 7x7) read megabytes of weights for few pixels: the weights
 * are packed in the order they are read, and each tile prefetches the next block's. */
#include "conv_wide.h"

#include "../op.h"

#include <math.h>
#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include "act_avx512.h"
#define WIDE_TARGET __attribute__((target("avx512f")))

enum { PIX = 14 };

/* Where the weights of output channels [m0, m0 + 16 V) and input channels [c0, ...) start. */
static inline const float *block_weights(const od_convw_geom *g, const float *packed, int64_t m0, int64_t c0, int V) {
    return packed + (m0 * g->C + c0 * 16 * V) * g->KH * g->KW;
}

void od_convw_pack(const od_convw_geom *g, const float *w, float *packed) {
    int64_t taps = g->KH * g->KW;
    for (int64_t m0 = 0; m0 < g->M; m0 += 32) {
        int64_t bw = g->M - m0 < 32 ? g->M - m0 : 32;
        for (int64_t c0 = 0; c0 < g->C; c0 += OD_CONVW_KC) {
            int64_t kc = g->C - c0 < OD_CONVW_KC ? g->C - c0 : OD_CONVW_KC;
            float *b = packed + (m0 * g->C + c0 * bw) * taps;
            for (int64_t q = 0; q < taps; q++)
                for (int64_t c = 0; c < kc; c++)
                    for (int64_t o = 0; o < bw; o++) b[(q * kc + c) * bw + o] = w[((m0 + o) * g->C + c0 + c) * taps + q];
        }
    }
}

void od_convw_derive(od_convw_geom *g) {
    g->HP = (g->OH - 1) * g->sh + (g->KH - 1) * g->dh + 1;
    g->WP = (g->OW - 1) * g->sw + (g->KW - 1) * g->dw + 1;
    g->rows = g->OW > 0 && g->OW < 200 ? 200 / g->OW : 1;
    g->rows += g->rows % 2; /* rows of 7 pixels or fewer go in pairs */
}

bool od_convw_fits(od_convw_geom *g, bool pointwise) {
    od_convw_derive(g);
    /* 16 channels alone measured slower than XNNPACK's (resnet's 16-channel 3x3 layers at batch
     * 64: 125 against 162 GFLOP/s), but not on an input of a few channels (a first layer:
     * mobilenet_v3_small's 3 -> 16 at 224x224, batch 1, with its transpose saved, 0.142 -> 0.119
     * ms at one thread; the bundled resnet's 1 -> 16, 0.0042 -> 0.0036 ms) nor in a 1x1 product
     * (mobilenet_v2's 32 -> 16 at 112x112, one thread: 0.12 -> 0.085 ms). 1x1 kernels (a plain
     * product) only on one thread: there XNNPACK's GEMM is load-bound like its convolution
     * (mobilenet_v2 224, batch 1: 0.91x), but split over two threads at batch 1 its finer tiles
     * won (1.06x), and so did its product on images of fewer pixels than a tile
     * (squeeze-and-excitation's 1x1 images) */
    bool product_ok = pointwise && g->OH * g->OW >= PIX, one = g->KH * g->KW == 1;
    return g->M % 16 == 0 && (g->M >= 32 || g->C <= 4 || (one && product_ok)) && (!one || product_ok) && g->pt >= 0 &&
           g->pl >= 0 &&
           od_avx512_on("OD_NO_CONVW");
}

/* rows (1 or 2) x n pixels (constants after inlining, rows * n <= PIX) from row oy, column ox0,
 * V (1 or 2) vectors of 16 channels from m0, input channels [c0, c1): the sums start from the
 * bias on the first block of input channels, else from y; the clamp comes with the last. XS, when
 * not 0, is the floats between adjacent pixels' inputs (sw x C) as a constant: the 14 inputs of a
 * row are then addressed from one register, where 14 runtime offsets spill to the stack. */
OD_UNSANITIZED WIDE_TARGET static inline __attribute__((always_inline)) void tile(const od_convw_geom *g, const float *xp,
                                                                   const float *packed, const float *bias, float lo,
                                                                   float hi, bool clamp, float *y, int64_t oy,
                                                                   int64_t ox0, int64_t m0, int64_t c0, int64_t c1,
                                                                   const int n, const int rows, const int V,
                                                                   const int64_t XS) {
    __m512 acc[PIX][2];
    int64_t C = g->C, M = g->M, xs = XS ? XS : g->sw * C; /* floats between the inputs of adjacent pixels */
    float *yr[2] = {y + (oy * g->OW + ox0) * M + m0, y + ((oy + 1) * g->OW + ox0) * M + m0};
    for (int v = 0; v < V; v++) {
        __m512 b = bias ? _mm512_loadu_ps(bias + m0 + 16 * v) : _mm512_setzero_ps();
        for (int t = 0; t < n * rows; t++)
            acc[t][v] = c0 > 0 ? _mm512_loadu_ps(yr[t / n] + (t % n) * M + 16 * v) : b;
    }
    /* the weights of this block, one stream, and of the next block of input channels, prefetched
     * a row of 16 V floats per row read (the next block is no longer than this one) */
    const float *wt = block_weights(g, packed, m0, c0, V);
    const char *pf = (const char *)(c1 < C ? block_weights(g, packed, m0, c1, V) : wt);
    for (int64_t i = 0; i < g->KH; i++) {
        const float *xr = xp + ((oy * g->sh + i * g->dh) * g->WP + ox0 * g->sw) * C + c0;
        for (int64_t j = 0; j < g->KW; j++) {
            const float *xt[2] = {xr + j * g->dw * C, xr + (j * g->dw + g->sh * g->WP) * C};
            for (int64_t c = c0; c < c1; c++, xt[0]++, xt[1]++, wt += 16 * V, pf += 64 * V) {
                __m512 w[2];
                for (int v = 0; v < V; v++) {
                    w[v] = _mm512_loadu_ps(wt + 16 * v);
                    _mm_prefetch(pf + 64 * v, _MM_HINT_T1);
                }
                for (int t = 0; t < n * rows; t++) {
                    __m512 xb = _mm512_set1_ps(xt[t / n][(t % n) * xs]);
                    for (int v = 0; v < V; v++) acc[t][v] = _mm512_fmadd_ps(xb, w[v], acc[t][v]);
                }
            }
        }
    }
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    bool last = c1 == C;
    for (int t = 0; t < n * rows; t++)
        for (int v = 0; v < V; v++)
            _mm512_storeu_ps(yr[t / n] + (t % n) * M + 16 * v,
                             clamp && last ? _mm512_min_ps(_mm512_max_ps(acc[t][v], vlo), vhi) : acc[t][v]);
}

/* y = act(clamp(y + res)) over rows [oy0, oy1), channels m0 .. m0 + 16 V - 1, while the block is
 * still in cache. Kept out of the tiles: in their epilogue it cost every 3x3 layer 1.5% (the
 * activation's constants crowd the accumulators' registers). */
OD_UNSANITIZED WIDE_TARGET static void finish_block(const od_convw_geom *g, float *y, const float *res, float lo,
                                                    float hi, int act, int64_t oy0, int64_t oy1, int64_t m0, int V) {
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int64_t p = oy0 * g->OW; p < oy1 * g->OW; p++)
        for (int v = 0; v < V; v++) {
            int64_t at = p * g->M + m0 + 16 * v;
            __m512 a = _mm512_loadu_ps(y + at);
            if (res) a = _mm512_add_ps(a, _mm512_loadu_ps(res + at));
            a = _mm512_min_ps(_mm512_max_ps(a, vlo), vhi);
            _mm512_storeu_ps(y + at, od_act_ps(act, a));
        }
}

#define TILE(n, rows, V) tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, c0, c1, n, rows, V, 0)
#define FULL_TILES(V, XS)                                                                                          \
    for (; ox + PIX <= g->OW; ox += PIX) tile(g, xp, packed, bias, lo, hi, clamp, y, oy, ox, m0, c0, c1, PIX, 1, V, XS)

/* A row's pixels from ox in tiles of PIX (with a constant pixel stride for the usual channel
 * counts, and RGB stems), then the tail as one tile of its own width. */
#define ROW(V)                                                                                                     \
    do {                                                                                                           \
        int64_t ox = 0;                                                                                            \
        switch (g->sw * g->C) {                                                                                    \
        case 3: FULL_TILES(V, 3); break; /* RGB stems, stride 1 and 2 */                                           \
        case 6: FULL_TILES(V, 6); break;                                                                           \
        case 32: FULL_TILES(V, 32); break;                                                                         \
        case 64: FULL_TILES(V, 64); break;                                                                         \
        case 128: FULL_TILES(V, 128); break;                                                                       \
        case 256: FULL_TILES(V, 256); break;                                                                       \
        case 512: FULL_TILES(V, 512); break;                                                                       \
        default: FULL_TILES(V, 0); break;                                                                          \
        }                                                                                                          \
        switch (g->OW - ox) {                                                                                      \
        case 13: TILE(13, 1, V); break;                                                                            \
        case 12: TILE(12, 1, V); break;                                                                            \
        case 11: TILE(11, 1, V); break;                                                                            \
        case 10: TILE(10, 1, V); break;                                                                            \
        case 9: TILE(9, 1, V); break;                                                                              \
        case 8: TILE(8, 1, V); break;                                                                              \
        case 7: TILE(7, 1, V); break;                                                                              \
        case 6: TILE(6, 1, V); break;                                                                              \
        case 5: TILE(5, 1, V); break;                                                                              \
        case 4: TILE(4, 1, V); break;                                                                              \
        case 3: TILE(3, 1, V); break;                                                                              \
        case 2: TILE(2, 1, V); break;                                                                              \
        case 1: TILE(1, 1, V); break;                                                                              \
        default: break;                                                                                            \
        }                                                                                                          \
    } while (0)

/* Rows of at most 7 pixels two at a time: a tile of 2 x OW pixels. */
#define ROW_PAIR(V)                                                                                                \
    do {                                                                                                           \
        int64_t ox = 0;                                                                                            \
        switch (g->OW) {                                                                                           \
        case 7: TILE(7, 2, V); break;                                                                              \
        case 6: TILE(6, 2, V); break;                                                                              \
        case 5: TILE(5, 2, V); break;                                                                              \
        case 4: TILE(4, 2, V); break;                                                                              \
        case 3: TILE(3, 2, V); break;                                                                              \
        case 2: TILE(2, 2, V); break;                                                                              \
        default: TILE(1, 2, V); break;                                                                             \
        }                                                                                                          \
    } while (0)

OD_UNSANITIZED WIDE_TARGET void od_convw_block(const od_convw_geom *g, const float *xp, const float *packed, const float *bias,
                                float lo, float hi, int act, float *y, const float *res, int64_t oy0, int64_t oy1, int64_t m0) {
    bool post = res || act, clamp = !post && (lo > -INFINITY || hi < INFINITY);
    for (int64_t c0 = 0; c0 < g->C; c0 += OD_CONVW_KC) {
        int64_t c1 = g->C - c0 < OD_CONVW_KC ? g->C : c0 + OD_CONVW_KC;
        for (int64_t oy = oy0; oy < oy1;) {
            bool pair = g->OW <= PIX / 2 && oy + 1 < oy1;
            if (g->M - m0 >= 32) {
                if (pair) ROW_PAIR(2);
                else ROW(2);
            } else {
                if (pair) ROW_PAIR(1);
                else ROW(1);
            }
            oy += pair ? 2 : 1;
        }
    }
    if (post) finish_block(g, y, res, lo, hi, act, oy0, oy1, m0, g->M - m0 >= 32 ? 2 : 1);
}
#else
void od_convw_pack(const od_convw_geom *g, const float *w, float *packed) {}
void od_convw_derive(od_convw_geom *g) {}
bool od_convw_fits(od_convw_geom *g, bool pointwise) { return false; }
void od_convw_block(const od_convw_geom *g, const float *xp, const float *packed, const float *bias, float lo,
                    float hi, int act, float *y, const float *res, int64_t oy0, int64_t oy1, int64_t m0) {}
#endif

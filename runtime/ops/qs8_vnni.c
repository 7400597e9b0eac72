/* int8 convolutions on AVX-512 VNNI (vpdpbusd: 64 multiply-adds of u8 x s8 per instruction),
 * where the CPU has it: im2col of the input (shifted to uint8 by +128, padding at the zero
 * point) times the int8 kernel, requantized in float like XNNPACK's fp32 requantization (round
 * half to even). XNNPACK 2022's QC8 kernels (16-bit multiply-adds) run the teachers' 3x3
 * convolutions only ~1.45x faster than its f32 ones; this path is for groups of 1 and output
 * channels in multiples of 16, the rest stays on XNNPACK. */
#include "qs8_common.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

struct od_qs8_vnni {
    int64_t N, H, W, C, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl;
    int64_t K, Kp, M, P;  /* taps x channels, padded to 4; output channels; output pixels */
    uint8_t pad;          /* the input zero point + 128 */
    int8_t *w;            /* [Kp / 4][M][4] */
    int32_t *corr;        /* per m: bias - (128 + zp) * sum of the weights */
    float *mult;          /* per m: x_scale * w_scale / y_scale */
    int32_t zp_y, lo, hi;
    uint8_t *cols;        /* [P][Kp] */
    uint8_t *xs;          /* the input + 128 */
    /* implicit im2col (dilation 1 across, C a multiple of 4): the input + 128 inside a border of
     * the zero point + 128 (written once), each window row read in place */
    bool implicit;
    int64_t HP, WP;
    uint8_t *xp;
};

VNNI_TARGET static inline void copy_bytes(uint8_t *d, const uint8_t *src, int64_t n) {
    for (; n >= 32; n -= 32, d += 32, src += 32)
        _mm256_storeu_si256((__m256i *)d, _mm256_loadu_si256((const __m256i *)src));
    for (; n >= 16; n -= 16, d += 16, src += 16) _mm_storeu_si128((__m128i *)d, _mm_loadu_si128((const __m128i *)src));
    for (; n > 0; n--) *d++ = *src++;
}

/* The input shifted to uint8 once (xs), then each output pixel's window: whole rows of kw x C
 * bytes inside the image (dilation 1), tap by tap at the borders (padding at the zero point). */
VNNI_TARGET static void im2col(const od_qs8_vnni *v, const int8_t *x) {
    int64_t total = v->N * v->H * v->W * v->C, e = 0;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (; e + 64 <= total; e += 64)
        _mm512_storeu_si512(v->xs + e, _mm512_xor_si512(_mm512_loadu_si512(x + e), flip));
    for (; e < total; e++) v->xs[e] = (uint8_t)(x[e] ^ 0x80);
    int64_t C = v->C, W = v->W, row = v->kw * C;
    uint8_t *r = v->cols;
    for (int64_t n = 0; n < v->N; n++)
        for (int64_t oy = 0; oy < v->OH; oy++)
            for (int64_t ox = 0; ox < v->OW; ox++) {
                int64_t iy0 = oy * v->sh - v->pt, ix0 = ox * v->sw - v->pl;
                const uint8_t *img = v->xs + n * v->H * W * C;
                if (v->dw == 1 && iy0 >= 0 && iy0 + (v->kh - 1) * v->dh < v->H && ix0 >= 0 && ix0 + v->kw - 1 < W) {
                    for (int64_t i = 0; i < v->kh; i++, r += row)
                        copy_bytes(r, img + ((iy0 + i * v->dh) * W + ix0) * C, row);
                } else {
                    for (int64_t i = 0; i < v->kh; i++) {
                        int64_t iy = iy0 + i * v->dh;
                        for (int64_t j = 0; j < v->kw; j++, r += C) {
                            int64_t ix = ix0 + j * v->dw;
                            if (iy >= 0 && iy < v->H && ix >= 0 && ix < W) copy_bytes(r, img + (iy * W + ix) * C, C);
                            else memset(r, v->pad, (size_t)C);
                        }
                    }
                }
                for (int64_t k = v->K; k < v->Kp; k++) *r++ = 0; /* zero weights there too */
            }
}

typedef struct gemm_ctx {
    const od_qs8_vnni *v;
    int8_t *y;
} gemm_ctx;

#define PX 4 /* pixels per tile */

VNNI_TARGET static void store_block(const od_qs8_vnni *v, __m512i acc, int64_t m, int8_t *dst) {
    __m512i a = _mm512_add_epi32(acc, _mm512_loadu_si512(v->corr + m));
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(a), _mm512_loadu_ps(v->mult + m));
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), _mm512_set1_epi32(v->zp_y));
    q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_set1_epi32(v->lo)), _mm512_set1_epi32(v->hi));
    _mm_storeu_si128((__m128i *)dst, _mm512_cvtepi32_epi8(q));
}

/* Pixels [t * 64, ...) of the output: tiles of PX pixels x 16 channels. */
VNNI_TARGET static void gemm_chunk(void *ctx, size_t t) {
    const gemm_ctx *g = ctx;
    const od_qs8_vnni *v = g->v;
    int64_t p0 = (int64_t)t * 64, p1 = p0 + 64 < v->P ? p0 + 64 : v->P, q4 = v->Kp / 4;
    for (int64_t p = p0; p < p1; p += PX) {
        int64_t np = p1 - p < PX ? p1 - p : PX;
        const uint8_t *c[PX];
        for (int i = 0; i < PX; i++) c[i] = v->cols + (p + (i < np ? i : 0)) * v->Kp;
        for (int64_t m = 0; m < v->M; m += 32) {
            bool two = m + 32 <= v->M;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            __m512i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            const int8_t *w = v->w + m * 4;
            for (int64_t q = 0; q < q4; q++, w += v->M * 4) {
                __m512i w0 = _mm512_loadu_si512(w);
                __m512i x0 = _mm512_set1_epi32(*(const int32_t *)(c[0] + 4 * q));
                __m512i x1 = _mm512_set1_epi32(*(const int32_t *)(c[1] + 4 * q));
                __m512i x2 = _mm512_set1_epi32(*(const int32_t *)(c[2] + 4 * q));
                __m512i x3 = _mm512_set1_epi32(*(const int32_t *)(c[3] + 4 * q));
                a0 = _mm512_dpbusd_epi32(a0, x0, w0);
                a1 = _mm512_dpbusd_epi32(a1, x1, w0);
                a2 = _mm512_dpbusd_epi32(a2, x2, w0);
                a3 = _mm512_dpbusd_epi32(a3, x3, w0);
                if (two) {
                    __m512i w1 = _mm512_loadu_si512(w + 64);
                    b0 = _mm512_dpbusd_epi32(b0, x0, w1);
                    b1 = _mm512_dpbusd_epi32(b1, x1, w1);
                    b2 = _mm512_dpbusd_epi32(b2, x2, w1);
                    b3 = _mm512_dpbusd_epi32(b3, x3, w1);
                }
            }
            __m512i as[PX] = {a0, a1, a2, a3}, bs[PX] = {b0, b1, b2, b3};
            for (int i = 0; i < np; i++) {
                int8_t *dst = g->y + (p + i) * v->M;
                store_block(v, as[i], m, dst + m);
                if (two) store_block(v, bs[i], m + 16, dst + m + 16);
            }
        }
    }
}

od_qs8_vnni *od_qs8_vnni_create(const od_step *s, const od_qs8_conv_geom *g, int64_t OH, int64_t OW,
                                const int8_t *kernel, const float *bias) {
    if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || g->groups != 1 || g->cout % 16 || getenv("OD_NO_VNNI"))
        return NULL;
    const od_qs8_params *q = s->qs8;
    od_qs8_vnni *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    *v = (od_qs8_vnni){.N = (int64_t)g->batch, .H = (int64_t)g->h, .W = (int64_t)g->w, .C = (int64_t)g->cin,
                       .OH = OH, .OW = OW, .kh = g->kh, .kw = g->kw, .sh = g->sh, .sw = g->sw, .dh = g->dh,
                       .dw = g->dw, .pt = g->pad_top, .pl = g->pad_left, .M = (int64_t)g->cout,
                       .pad = (uint8_t)(q->in_zp[0] + 128), .zp_y = q->out_zp};
    int8_t lo, hi;
    od_qs8_out_range(s, &lo, &hi);
    v->lo = lo, v->hi = hi;
    v->K = v->kh * v->kw * v->C;
    v->Kp = (v->K + 3) / 4 * 4;
    v->P = v->N * v->OH * v->OW;
    v->w = calloc((size_t)(v->Kp * v->M), 1);
    v->corr = malloc(sizeof(int32_t) * (size_t)v->M);
    v->mult = malloc(sizeof(float) * (size_t)v->M);
    v->implicit = v->dw == 1 && v->C % 4 == 0;
    if (v->implicit) {
        v->HP = v->H + v->pt + g->pad_bottom;
        v->WP = v->W + v->pl + g->pad_right;
        size_t bytes = (size_t)(v->N * v->HP * v->WP * v->C) + 64;
        if ((v->xp = malloc(bytes))) memset(v->xp, v->pad, bytes);
    } else {
        v->cols = malloc((size_t)(v->P * v->Kp) + 64);
        v->xs = malloc((size_t)(v->N * v->H * v->W * v->C) + 64);
    }
    if (!v->w || !v->corr || !v->mult || (v->implicit ? !v->xp : !v->cols || !v->xs)) {
        od_qs8_vnni_destroy(v);
        return NULL;
    }
    for (int64_t m = 0; m < v->M; m++) {
        int64_t sum = 0;
        for (int64_t k = 0; k < v->K; k++) {
            int8_t wv = kernel[m * v->K + k];
            v->w[((k / 4) * v->M + m) * 4 + k % 4] = wv;
            sum += wv;
        }
        float ws = q->w_scale[q->n_w_scale == 1 ? 0 : m];
        int64_t b = 0;
        if (bias) {
            double r = __builtin_nearbyint((double)bias[m] / (double)(q->in_scale[0] * ws));
            b = r > 2147483647.0 ? INT32_MAX : r < -2147483647.0 ? -INT32_MAX : (int64_t)r;
        }
        v->corr[m] = (int32_t)(b - (128 + q->in_zp[0]) * sum);
        v->mult[m] = q->in_scale[0] * ws / q->out_scale;
    }
    return v;
}

VNNI_TARGET static void pad_input(const od_qs8_vnni *v, const int8_t *x) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    int64_t row = v->W * v->C;
    for (int64_t n = 0; n < v->N; n++)
        for (int64_t y = 0; y < v->H; y++) {
            const int8_t *src = x + (n * v->H + y) * row;
            uint8_t *dst = v->xp + ((n * v->HP + y + v->pt) * v->WP + v->pl) * v->C;
            int64_t e = 0;
            for (; e + 64 <= row; e += 64)
                _mm512_storeu_si512(dst + e, _mm512_xor_si512(_mm512_loadu_si512(src + e), flip));
            for (; e < row; e++) dst[e] = (uint8_t)(src[e] ^ 0x80);
        }
}

VNNI_TARGET static void gemm_implicit_chunk(void *ctx, size_t t) {
    const gemm_ctx *g = ctx;
    const od_qs8_vnni *v = g->v;
    int64_t p0 = (int64_t)t * 64, p1 = p0 + 64 < v->P ? p0 + 64 : v->P;
    int64_t rowq = v->kw * v->C / 4, ohw = v->OH * v->OW, rstep = v->dh * v->WP * v->C;
    for (int64_t p = p0; p < p1; p += PX) {
        int64_t np = p1 - p < PX ? p1 - p : PX;
        const uint8_t *base[PX];
        for (int i = 0; i < PX; i++) {
            int64_t pp = p + (i < np ? i : 0), n = pp / ohw, r = pp % ohw, oy = r / v->OW, ox = r % v->OW;
            base[i] = v->xp + ((n * v->HP + oy * v->sh) * v->WP + ox * v->sw) * v->C;
        }
        for (int64_t m = 0; m < v->M; m += 32) {
            bool two = m + 32 <= v->M;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            __m512i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            const int8_t *w = v->w + m * 4;
            for (int64_t i = 0; i < v->kh; i++) {
                const uint8_t *c0 = base[0] + i * rstep, *c1 = base[1] + i * rstep;
                const uint8_t *c2 = base[2] + i * rstep, *c3 = base[3] + i * rstep;
                for (int64_t q = 0; q < rowq; q++, w += v->M * 4) {
                    __m512i w0 = _mm512_loadu_si512(w);
                    __m512i x0 = _mm512_set1_epi32(*(const int32_t *)(c0 + 4 * q));
                    __m512i x1 = _mm512_set1_epi32(*(const int32_t *)(c1 + 4 * q));
                    __m512i x2 = _mm512_set1_epi32(*(const int32_t *)(c2 + 4 * q));
                    __m512i x3 = _mm512_set1_epi32(*(const int32_t *)(c3 + 4 * q));
                    a0 = _mm512_dpbusd_epi32(a0, x0, w0);
                    a1 = _mm512_dpbusd_epi32(a1, x1, w0);
                    a2 = _mm512_dpbusd_epi32(a2, x2, w0);
                    a3 = _mm512_dpbusd_epi32(a3, x3, w0);
                    if (two) {
                        __m512i w1 = _mm512_loadu_si512(w + 64);
                        b0 = _mm512_dpbusd_epi32(b0, x0, w1);
                        b1 = _mm512_dpbusd_epi32(b1, x1, w1);
                        b2 = _mm512_dpbusd_epi32(b2, x2, w1);
                        b3 = _mm512_dpbusd_epi32(b3, x3, w1);
                    }
                }
            }
            __m512i as[PX] = {a0, a1, a2, a3}, bs[PX] = {b0, b1, b2, b3};
            for (int i = 0; i < np; i++) {
                int8_t *dst = g->y + (p + i) * v->M;
                store_block(v, as[i], m, dst + m);
                if (two) store_block(v, bs[i], m + 16, dst + m + 16);
            }
        }
    }
}

void od_qs8_vnni_run(od_qs8_vnni *v, const int8_t *x, int8_t *y, pthreadpool_t pool) {
    gemm_ctx g = {v, y};
    if (v->implicit) {
        pad_input(v, x);
        od_parallel_for(pool, (size_t)((v->P + 63) / 64), gemm_implicit_chunk, &g);
        return;
    }
    im2col(v, x);
    od_parallel_for(pool, (size_t)((v->P + 63) / 64), gemm_chunk, &g);
}

void od_qs8_vnni_destroy(od_qs8_vnni *v) {
    if (!v) return;
    free(v->w);
    free(v->corr);
    free(v->mult);
    free(v->cols);
    free(v->xs);
    free(v->xp);
    free(v);
}
#else
od_qs8_vnni *od_qs8_vnni_create(const od_step *s, const od_qs8_conv_geom *g, int64_t OH, int64_t OW,
                                const int8_t *kernel, const float *bias) {
    return NULL;
}
void od_qs8_vnni_run(od_qs8_vnni *v, const int8_t *x, int8_t *y, pthreadpool_t pool) {}
void od_qs8_vnni_destroy(od_qs8_vnni *v) {}
#endif

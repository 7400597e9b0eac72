/* Ops the planner makes from exporters' spellings of one activation (runtime/plan_fuse.c); no
 * ONNX node has these types and they are not in ops.def.
 *   SiLU(x) = x * Sigmoid(x)   one pass over x: y = x / (1 + e^-x). XNNPACK's sigmoid then a
 *                              product in place read the tensor three times and wrote it twice,
 *                              which for the large activations of efficientnet_b0 (4.8 MB) was
 *                              15% of a batch-1 run. Within 4 ulp of x / (1 + e^-x); AVX-512
 *                              (OD_NO_AVX512_SILU=1 for the AVX2 path, as test_fusion does),
 *                              AVX2 + FMA, or libm's expf.
 * Inference only; float32, any rank and layout (element-wise). */
#include "ew_common.h"

#include <math.h>
#include <stdlib.h>

typedef struct silu_state {
    const float *x;
    float *y;
    void (*kernel)(const float *x, float *y, int64_t n);
} silu_state;

static void silu_scalar(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* e^z by Cephes' expf: k = round(z log2 e), r = z - k ln 2 (ln 2 in two parts), e^r by a degree-6
 * polynomial, times 2^k built in the exponent bits. z is clamped to [-87, 88] so that 2^k stays a
 * normal float: below, x / (1 + e^-x) is x to float precision; above, 0. */
__attribute__((target("avx2,fma"))) static void silu_avx2(const float *x, float *y, int64_t n) {
    const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f), one = _mm256_set1_ps(1.0f);
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f), ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
    const __m256 c5 = _mm256_set1_ps(1.9875691500e-4f), c4 = _mm256_set1_ps(1.3981999507e-3f),
                 c3 = _mm256_set1_ps(8.3334519073e-3f), c2 = _mm256_set1_ps(4.1665795894e-2f),
                 c1 = _mm256_set1_ps(1.6666665459e-1f), c0 = _mm256_set1_ps(5.0000001201e-1f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 nv = _mm256_sub_ps(_mm256_setzero_ps(), v);
        __m256 gone = _mm256_cmp_ps(nv, hi, _CMP_GT_OQ); /* x < -88: x e^x is 0 in float */
        __m256 z = _mm256_min_ps(_mm256_max_ps(nv, lo), hi);
        __m256 k = _mm256_round_ps(_mm256_mul_ps(z, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 r = _mm256_fnmadd_ps(k, ln2_lo, _mm256_fnmadd_ps(k, ln2_hi, z));
        __m256 p = _mm256_fmadd_ps(c5, r, c4);
        p = _mm256_fmadd_ps(p, r, c3);
        p = _mm256_fmadd_ps(p, r, c2);
        p = _mm256_fmadd_ps(p, r, c1);
        p = _mm256_fmadd_ps(p, r, c0);
        p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, one));
        __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
        __m256 ez = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
        _mm256_storeu_ps(y + i, _mm256_andnot_ps(gone, _mm256_div_ps(v, _mm256_add_ps(one, ez))));
    }
    silu_scalar(x + i, y + i, n - i);
}
/* The same, 16 lanes; 1 / (1 + e^-x) by a reciprocal estimate and one Newton step (where the
 * division cost a third of the time). */
__attribute__((target("avx512f"))) static void silu_avx512(const float *x, float *y, int64_t n) {
    const __m512 lo = _mm512_set1_ps(-87.0f), hi = _mm512_set1_ps(88.0f), one = _mm512_set1_ps(1.0f),
                 two = _mm512_set1_ps(2.0f);
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f);
    const __m512 ln2_hi = _mm512_set1_ps(0.693359375f), ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    const __m512 c5 = _mm512_set1_ps(1.9875691500e-4f), c4 = _mm512_set1_ps(1.3981999507e-3f),
                 c3 = _mm512_set1_ps(8.3334519073e-3f), c2 = _mm512_set1_ps(4.1665795894e-2f),
                 c1 = _mm512_set1_ps(1.6666665459e-1f), c0 = _mm512_set1_ps(5.0000001201e-1f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 nv = _mm512_sub_ps(_mm512_setzero_ps(), v);
        __mmask16 kept = _mm512_cmp_ps_mask(nv, hi, _CMP_NGT_UQ); /* x < -88: x e^x is 0 in float */
        __m512 z = _mm512_min_ps(_mm512_max_ps(nv, lo), hi);
        __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(z, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fnmadd_ps(k, ln2_lo, _mm512_fnmadd_ps(k, ln2_hi, z));
        __m512 p = _mm512_fmadd_ps(c5, r, c4);
        p = _mm512_fmadd_ps(p, r, c3);
        p = _mm512_fmadd_ps(p, r, c2);
        p = _mm512_fmadd_ps(p, r, c1);
        p = _mm512_fmadd_ps(p, r, c0);
        p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, one));
        __m512 d = _mm512_add_ps(one, _mm512_scalef_ps(p, k));
        __m512 q = _mm512_rcp14_ps(d);
        q = _mm512_mul_ps(q, _mm512_fnmadd_ps(d, q, two));
        _mm512_storeu_ps(y + i, _mm512_maskz_mul_ps(kept, v, q));
    }
    silu_avx2(x + i, y + i, n - i);
}
static int simd_level(void) {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    return __builtin_cpu_supports("avx512f") && !getenv("OD_NO_AVX512_SILU") ? 2 : 1;
}
#else
static void silu_avx2(const float *x, float *y, int64_t n) { silu_scalar(x, y, n); }
static void silu_avx512(const float *x, float *y, int64_t n) { silu_scalar(x, y, n); }
static int simd_level(void) { return 0; }
#endif

static od_status silu_prepare(od_step *s, od_error *err) {
    silu_state *u = calloc(1, sizeof *u);
    if (!u) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = u;
    u->x = s->in[0]->data;
    u->y = s->out[0]->data;
    int level = simd_level();
    u->kernel = level == 2 ? silu_avx512 : level == 1 ? silu_avx2 : silu_scalar;
    return OD_STATUS_OK;
}

static void silu_rows(void *ctx, int64_t first, int64_t end) {
    const silu_state *u = ctx;
    int64_t i = first * EW_CHUNK, n = (end - first) * EW_CHUNK;
    u->kernel(u->x + i, u->y + i, n);
}

static od_status silu_run(od_step *s, od_error *err) {
    (void)err;
    silu_state *u = s->state;
    int64_t n = od_buf_count(s->out[0]), rows = n / EW_CHUNK;
    ew_for_rows(s->pool, rows, EW_CHUNK, silu_rows, u);
    u->kernel(u->x + rows * EW_CHUNK, u->y + rows * EW_CHUNK, n - rows * EW_CHUNK);
    return OD_STATUS_OK;
}

static void silu_destroy(od_step *s) {
    free(s->state);
    s->state = NULL;
}

const od_op_desc od_fused_SiLU = {.name = "SiLU",
                                  .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                                  .prepare = silu_prepare,
                                  .run = silu_run,
                                  .destroy = silu_destroy};

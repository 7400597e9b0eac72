/* Ops the planner makes from exporters' spellings of one activation (runtime/plan_fuse.c); no
 * ONNX node has these types and they are not in ops.def.
 *   SiLU(x) = x * Sigmoid(x)   with AVX-512, one pass over x: y = x / (1 + e^-x), within 4 ulp.
 *                              XNNPACK's sigmoid then a product in place read the tensor three
 *                              times and wrote it twice: for efficientnet_b0's 4.8 MB activations,
 *                              15% of a batch-1 run. Without AVX-512 (or OD_NO_AVX512_SILU=1, as
 *                              test_fusion checks) it still runs that way: our own 8-lane pass
 *                              measured twice as slow as XNNPACK's on this AVX-512 CPU.
 * Inference only; float32, any rank and layout (element-wise). */
#include "ew_common.h"

#include <math.h>
#include <stdlib.h>
#include <xnnpack.h>

typedef struct silu_state {
    const float *x;
    float *y;
    xnn_operator_t sigmoid; /* without AVX-512: XNNPACK's sigmoid into y, then y *= x */
} silu_state;

static void silu_scalar(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* e^z by Cephes' expf: k = round(z log2 e), r = z - k ln 2 (ln 2 in two parts), e^r by a degree-6
 * polynomial, times 2^k (scalef). z is clamped to [-87, 88]: below, x / (1 + e^-x) is x to float
 * precision; above, 0. 1 / (1 + e^-x) by a reciprocal estimate and one Newton step. */
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
    silu_scalar(x + i, y + i, n - i);
}
static bool have_avx512(void) { return __builtin_cpu_supports("avx512f") && !getenv("OD_NO_AVX512_SILU"); }
#else
static void silu_avx512(const float *x, float *y, int64_t n) { silu_scalar(x, y, n); }
static bool have_avx512(void) { return false; }
#endif

static od_status silu_prepare(od_step *s, od_error *err) {
    silu_state *u = calloc(1, sizeof *u);
    if (!u) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = u;
    u->x = s->in[0]->data;
    u->y = s->out[0]->data;
    if (have_avx512()) return OD_STATUS_OK;
    od_status st = od_xnn_check(xnn_create_sigmoid_nc_f32(1, 1, 1, 0, &u->sigmoid), err, s->node,
                                "create sigmoid");
    if (st) return st;
    size_t n = (size_t)od_buf_count(s->out[0]);
    return od_xnn_check(xnn_setup_sigmoid_nc_f32(u->sigmoid, n, u->x, u->y, NULL), err, s->node,
                        "setup sigmoid");
}

/* Elements [i, i + n): the whole SiLU, or (after XNNPACK's sigmoid) the product with x. */
static void silu_range(const silu_state *u, int64_t i, int64_t n) {
    if (!u->sigmoid)
        silu_avx512(u->x + i, u->y + i, n);
    else
        for (int64_t k = i; k < i + n; k++) u->y[k] *= u->x[k];
}

static void silu_rows(void *ctx, int64_t first, int64_t end) {
    silu_range(ctx, first * EW_CHUNK, (end - first) * EW_CHUNK);
}

static od_status silu_run(od_step *s, od_error *err) {
    silu_state *u = s->state;
    if (u->sigmoid) {
        od_status st = od_xnn_check(xnn_run_operator(u->sigmoid, s->pool), err, s->node, "run sigmoid");
        if (st) return st;
    }
    int64_t n = od_buf_count(s->out[0]), rows = n / EW_CHUNK;
    ew_for_rows(s->pool, rows, EW_CHUNK, silu_rows, u);
    silu_range(u, rows * EW_CHUNK, n - rows * EW_CHUNK);
    return OD_STATUS_OK;
}

static void silu_destroy(od_step *s) {
    silu_state *u = s->state;
    if (u && u->sigmoid) xnn_delete_operator(u->sigmoid);
    free(u);
    s->state = NULL;
}

const od_op_desc od_fused_SiLU = {.name = "SiLU",
                                  .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                                  .prepare = silu_prepare,
                                  .run = silu_run,
                                  .destroy = silu_destroy};

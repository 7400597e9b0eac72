/* Ops the planner makes from exporters' spellings of one activation (runtime/plan_fuse.c); no
 * ONNX node has these types and they are not in ops.def.
 *   SiLU(x) = x * Sigmoid(x)   with AVX-512, one pass over x: y = x / (1 + e^-x), within 4 ulp.
 *                              XNNPACK's sigmoid then a product in place read the tensor three
 *                              times and wrote it twice: for efficientnet_b0's 4.8 MB activations,
 *                              15% of a batch-1 run. Without AVX-512 (or OD_NO_AVX512_SILU=1, as
 *                              test_fusion checks) it still runs that way: our own 8-lane pass
 *                              measured twice as slow as XNNPACK's on this AVX-512 CPU.
 * Inference only; float32, any rank and layout (element-wise). With AVX-512 the planner fuses a
 * SiLU or HardSwish into the convolution producing x instead (od_step.act): conv_wide.c and
 * conv_depthwise.c apply it in their epilogue, XNNPACK's paths call od_epilogue_inplace after. */
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
#include "act_avx512.h"
__attribute__((target("avx512f"))) static void silu_avx512(const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, od_silu_ps(_mm512_loadu_ps(x + i)));
    silu_scalar(x + i, y + i, n - i);
}
/* y = act(clamp(y + r)) over n floats (r may be NULL; add_clamp false: y = act(y)); add_clamp
 * and act are constants after inlining, so each combination is its own loop. */
__attribute__((target("avx512f"), always_inline)) static inline void epilogue_loop(float *y, const float *r, float lo,
                                                                                   float hi, int64_t n,
                                                                                   const bool add_clamp,
                                                                                   const int act) {
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = od_tail_mask16(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, y + i);
        if (add_clamp) {
            if (r) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, r + i));
            v = _mm512_min_ps(_mm512_max_ps(v, vlo), vhi);
        }
        _mm512_mask_storeu_ps(y + i, k, od_act_ps(act, v));
    }
}

__attribute__((target("avx512f"))) static void epilogue_avx512(float *y, const float *r, float lo, float hi,
                                                              bool add_clamp, od_activation act, int64_t n) {
    switch (act * 2 + add_clamp) {
    case OD_ACT_NONE * 2 + 1: epilogue_loop(y, r, lo, hi, n, true, OD_ACT_NONE); break;
    case OD_ACT_SILU * 2: epilogue_loop(y, r, lo, hi, n, false, OD_ACT_SILU); break;
    case OD_ACT_SILU * 2 + 1: epilogue_loop(y, r, lo, hi, n, true, OD_ACT_SILU); break;
    case OD_ACT_HARDSWISH * 2: epilogue_loop(y, r, lo, hi, n, false, OD_ACT_HARDSWISH); break;
    case OD_ACT_HARDSWISH * 2 + 1: epilogue_loop(y, r, lo, hi, n, true, OD_ACT_HARDSWISH); break;
    default: break;
    }
}
#else
static void epilogue_avx512(float *y, const float *r, float lo, float hi, bool add_clamp, od_activation act,
                            int64_t n) {}
static void silu_avx512(const float *x, float *y, int64_t n) { silu_scalar(x, y, n); }
#endif
static bool have_avx512(void) { return od_avx512_on("OD_NO_AVX512_SILU"); }

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

bool od_act_fusable(void) { return have_avx512() && !getenv("OD_NO_CONV_ACT"); }

typedef struct epilogue_job {
    float *y;
    const float *r;
    float lo, hi;
    bool add_clamp, vector;
    od_activation act;
} epilogue_job;

static void epilogue_range(const epilogue_job *j, int64_t i0, int64_t i1) {
    if (j->vector) {
        epilogue_avx512(j->y + i0, j->r ? j->r + i0 : NULL, j->lo, j->hi, j->add_clamp, j->act, i1 - i0);
        return;
    }
    for (int64_t i = i0; i < i1; i++) { /* without AVX-512 no act is fused (od_act_fusable) */
        float v = j->y[i] + (j->r ? j->r[i] : 0.0f);
        j->y[i] = v < j->lo ? j->lo : v > j->hi ? j->hi : v;
    }
}

static void epilogue_rows(void *ctx, int64_t first, int64_t end) {
    epilogue_range(ctx, first * EW_CHUNK, end * EW_CHUNK);
}

void od_epilogue_inplace(pthreadpool_t pool, float *y, const float *r, float lo, float hi, od_activation act,
                         int64_t n) {
    epilogue_job j = {.y = y, .r = r, .lo = lo, .hi = hi, .add_clamp = r || lo > -INFINITY || hi < INFINITY,
                      .vector = __builtin_cpu_supports("avx512f"), .act = act};
    if (!j.add_clamp && !act) return;
    int64_t rows = n / EW_CHUNK;
    ew_for_rows(pool, rows, EW_CHUNK, epilogue_rows, &j);
    epilogue_range(&j, rows * EW_CHUNK, n);
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

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
 * conv_depthwise.c apply it in their epilogue, XNNPACK's paths call od_act_inplace after. */
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
/* y = act(y) in place; the tail one lane-masked vector. */
__attribute__((target("avx512f"))) static void act_avx512(od_activation act, float *y, int64_t n) {
    int64_t i = 0;
    if (act == OD_ACT_SILU)
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, od_silu_ps(_mm512_loadu_ps(y + i)));
    else if (act == OD_ACT_HARDSWISH)
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, od_hardswish_ps(_mm512_loadu_ps(y + i)));
    if (i < n && act != OD_ACT_NONE) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, k, od_act_ps(act, _mm512_maskz_loadu_ps(k, y + i)));
    }
}
static bool have_avx512(void) { return __builtin_cpu_supports("avx512f") && !getenv("OD_NO_AVX512_SILU"); }
#else
static void act_avx512(od_activation act, float *y, int64_t n) {}
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

bool od_act_fusable(void) { return have_avx512() && !getenv("OD_NO_CONV_ACT"); }

typedef struct act_job {
    od_activation act;
    float *y;
} act_job;

static void act_rows(void *ctx, int64_t first, int64_t end) {
    const act_job *j = ctx;
    act_avx512(j->act, j->y + first * EW_CHUNK, (end - first) * EW_CHUNK);
}

void od_act_inplace(pthreadpool_t pool, od_activation act, float *y, int64_t n) {
    act_job j = {.act = act, .y = y};
    int64_t rows = n / EW_CHUNK;
    ew_for_rows(pool, rows, EW_CHUNK, act_rows, &j);
    act_avx512(act, y + rows * EW_CHUNK, n - rows * EW_CHUNK);
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

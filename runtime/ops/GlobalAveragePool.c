/* GlobalAveragePool, opset 1: the mean over every spatial dim of [N, C, spatial...] (rank 3 and
 * up); float by chunks of pixels (channels-last input is [N, pixels, C]), double on a loop.
 * Backward: 2-D (pool_common.c). Layout: spatial.
 *
 * Float: each task sums a chunk of 64 pixels of an image into its own row of partial sums, and
 * the caller adds the rows up. XNNPACK's pooling is one task per image: at batch 1 on two threads
 * it read on one core the half of the image the other had written (the convolution before splits
 * rows), a cache line at a time across cores (efficientnet_b0's squeeze-excitation pools: 0.13 ms
 * on one thread, 0.18 on two). Chunks do not depend on the thread count: 1 and 2 threads agree
 * bit for bit. */
#include "pool_common.h"
#include "qs8_common.h"

#include <math.h>
#include <stdlib.h>
#include <xnnpack.h>

static od_status gap_infer(od_infer_ctx *c) { return od_pool_infer(c, false, true); }

enum { GAP_CHUNK = 64 }; /* pixels a task sums */

typedef struct gap_job {
    const float *x;
    float *partial; /* [N][chunks][C] */
    int64_t pixels, C, chunks;
    bool avx512;
} gap_job;

/* acc[c] = the sum of x[p][c] over np pixels of C channels. */
static void gap_sum(const float *x, int64_t np, int64_t C, float *acc) {
    for (int64_t c = 0; c < C; c++) acc[c] = 0.0f;
    for (int64_t p = 0; p < np; p++, x += C)
        for (int64_t c = 0; c < C; c++) acc[c] += x[c];
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "act_avx512.h"
/* The same with 64 channels' sums in registers across the pixels, then 16 at a time (a masked
 * tail): the build targets baseline x86-64, whose 4-lane loop ran at half XNNPACK's rate. Each
 * sum adds the pixels in the same order as gap_sum. */
__attribute__((target("avx512f"))) static void gap_sum_avx512(const float *x, int64_t np, int64_t C, float *acc) {
    int64_t c0 = 0;
    for (; c0 + 64 <= C; c0 += 64) {
        __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        for (const float *xp = x + c0, *end = xp + np * C; xp < end; xp += C) {
            s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xp));
            s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xp + 16));
            s2 = _mm512_add_ps(s2, _mm512_loadu_ps(xp + 32));
            s3 = _mm512_add_ps(s3, _mm512_loadu_ps(xp + 48));
        }
        _mm512_storeu_ps(acc + c0, s0);
        _mm512_storeu_ps(acc + c0 + 16, s1);
        _mm512_storeu_ps(acc + c0 + 32, s2);
        _mm512_storeu_ps(acc + c0 + 48, s3);
    }
    for (; c0 < C; c0 += 16) {
        __mmask16 m = od_tail_mask16(C - c0);
        __m512 s = _mm512_setzero_ps();
        for (const float *xp = x + c0, *end = xp + np * C; xp < end; xp += C) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, xp));
        _mm512_mask_storeu_ps(acc + c0, m, s);
    }
}
#else
static void gap_sum_avx512(const float *x, int64_t np, int64_t C, float *acc) { gap_sum(x, np, C, acc); }
#endif

static void gap_chunk_task(void *ctx, size_t n, size_t k) {
    const gap_job *j = ctx;
    int64_t p0 = (int64_t)k * GAP_CHUNK, p1 = p0 + GAP_CHUNK < j->pixels ? p0 + GAP_CHUNK : j->pixels, C = j->C;
    const float *x = j->x + ((int64_t)n * j->pixels + p0) * C;
    float *acc = j->partial + ((int64_t)n * j->chunks + (int64_t)k) * C;
    (j->avx512 ? gap_sum_avx512 : gap_sum)(x, p1 - p0, C, acc);
}

static int64_t gap_chunks(const od_buf *x) {
    int64_t pixels = od_dims_count(x->rank - 2, x->dims + 2);
    return (pixels + GAP_CHUNK - 1) / GAP_CHUNK;
}

static od_status gap_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    od_pool_state *g = NULL;
    od_status st = od_pool_state_create(s, false, true, &g, err);
    if (st) return st;
    int64_t C = x->dims[1], pixels = od_dims_count(x->rank - 2, x->dims + 2);
    if (x->dtype != OD_DTYPE_FLOAT || C == 0 || pixels == 0) return OD_STATUS_OK;
    g->partial = malloc(sizeof(float) * (size_t)(x->dims[0] * gap_chunks(x) * C));
    if (!g->partial) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    g->partial_avx512 = od_avx512_on("OD_NO_AVX512_GAP");
    return OD_STATUS_OK;
}

static od_status gap_run(od_step *s, od_error *err) {
    od_pool_state *g = s->state;
    const od_buf *x = s->in[0];
    if (!g->partial) return od_pool_state_run(s, "run global average pooling", err);
    int64_t N = x->dims[0];
    gap_job j = {.x = x->data, .partial = g->partial, .pixels = od_dims_count(x->rank - 2, x->dims + 2),
                 .C = x->dims[1], .chunks = gap_chunks(x), .avx512 = g->partial_avx512};
    pthreadpool_parallelize_2d(s->pool, gap_chunk_task, &j, (size_t)N, (size_t)j.chunks, 0);
    float *y = s->out[0]->data;
    float scale = 1.0f / (float)j.pixels;
    for (int64_t n = 0; n < N; n++) {
        float *yn = y + n * j.C;
        const float *part = j.partial + n * j.chunks * j.C;
        for (int64_t c = 0; c < j.C; c++) yn[c] = part[c];
        for (int64_t k = 1; k < j.chunks; k++)
            for (int64_t c = 0; c < j.C; c++) yn[c] += part[k * j.C + c];
        for (int64_t c = 0; c < j.C; c++) yn[c] *= scale;
    }
    return OD_STATUS_OK;
}

/* int8 (quantized execution, plan_qs8.c): XNNPACK's QS8 global average pooling. */
static bool gap_qs8_accepts(const od_node *n, const od_shape_info *const *in) {
    (void)n;
    return in[0] && in[0]->rank >= 3 && in[0]->dims[1] > 0 && od_dims_count(in[0]->rank - 2, in[0]->dims + 2) > 0;
}

static od_status gap_qs8_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    const od_qs8_params *q = s->qs8;
    size_t C = (size_t)x->dims[1], pixels = (size_t)od_dims_count(x->rank - 2, x->dims + 2);
    int8_t lo, hi;
    od_qs8_out_range(s, &lo, &hi);
    xnn_operator_t op = NULL;
    enum xnn_status r = xnn_create_global_average_pooling_nwc_qs8(
        C, C, C, (int8_t)q->in_zp[0], q->in_scale[0], (int8_t)q->out_zp, q->out_scale, lo, hi, 0, &op);
    od_status st = od_xnn_check(r, err, s->node, "create int8 global average pooling");
    if (st) return st;
    s->state = op;
    r = xnn_setup_global_average_pooling_nwc_qs8(op, (size_t)x->dims[0], pixels, (const int8_t *)x->data,
                                                 (int8_t *)s->out[0]->data, s->pool);
    return od_xnn_check(r, err, s->node, "setup int8 global average pooling");
}

static const od_op_desc od_qs8_GlobalAveragePool = {.name = "GlobalAveragePool (int8)", .layout = OD_LAYOUT_POLICY_SPATIAL,
                                                    .fuses_activation = true, .prepare = gap_qs8_prepare,
                                                    .run = od_qs8_xnn_run, .destroy = od_qs8_xnn_destroy};

OD_OP_FACTS(GlobalAveragePool, 1, NULL);
const od_op_desc od_op_GlobalAveragePool = {
    OD_OP_NAME(GlobalAveragePool), .channel_role = OD_CHANNELS_PER_CHANNEL, .stable_since = 1, .qs8 = &od_qs8_GlobalAveragePool, .qs8_accepts = gap_qs8_accepts, .per_sample = od_per_sample_always, .layout = OD_LAYOUT_POLICY_SPATIAL, .infer = gap_infer,
    .prepare = gap_prepare, .run = gap_run, .destroy = od_pool_state_destroy, OD_POOL_TRAIN};

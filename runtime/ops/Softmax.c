/* Softmax and LogSoftmax, opsets 1-13, float32, attribute axis. Before opset 13 the input is
 * coerced to 2-D at axis (default 1) and normalised over each row of the flattened
 * [d0 * ... * d(axis-1), d(axis) * ...]; from opset 13 over the one axis (default -1). Softmax
 * over contiguous rows (opset 13 on the last axis, or any coerced case) runs on XNNPACK's
 * softmax; LogSoftmax, and Softmax over an inner axis, a loop that subtracts the maximum first.
 * Layout: plain (the axis is an ONNX axis). Backward: both, over whatever axis the forward takes
 * (one axis from opset 13, the coerced 2-D rows before); a channels-last input is read through
 * od_relayout. */
#include "../train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

static od_status softmax_infer(od_infer_ctx *c) {
    if (c->n_in != 1)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "takes one input, not %d",
                             c->n_in);
    od_status st = od_infer_expect(c, 0, 1, OD_MAX_RANK);
    if (st) return st;
    int64_t axis = od_attr_int(c->node, "axis", c->opset < 13 ? 1 : -1);
    if (od_axis(axis, c->in[0]->rank) < 0)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "axis %lld is out of range for rank %d", (long long)axis,
                             c->in[0]->rank);
    od_infer_same(c, 0, 0);
    return OD_STATUS_OK;
}

typedef struct softmax_state {
    xnn_operator_t xnn;
    bool log;
    size_t outer, len, inner; /* the input seen as [outer, len, inner], normalised over len */
    const float *x;
    float *y;
    float *scratch; /* max and sum per inner position, per outer index: 2 * outer * inner */
    float *plain;   /* training on a channels-last input: it, then its gradient, in ONNX order */
} softmax_state;

static void softmax_destroy(od_step *s) {
    softmax_state *m = s->state;
    if (!m) return;
    if (m->xnn) xnn_delete_operator(m->xnn);
    free(m->scratch);
    free(m->plain);
    free(m);
    s->state = NULL;
}

static od_status softmax_prepare(od_step *s, od_error *err) {
    softmax_state *m = calloc(1, sizeof *m);
    if (!m) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = m;
    const od_buf *x = s->in[0];
    m->log = s->op->name[0] == 'L';
    m->x = x->data;
    m->y = s->out[0]->data;
    int axis = od_axis(od_attr_int(s->node, "axis", s->opset < 13 ? 1 : -1), x->rank);
    m->outer = (size_t)od_dims_count(axis, x->dims);
    m->len = (size_t)od_dims_count(s->opset < 13 ? x->rank - axis : 1, x->dims + axis);
    size_t outer_len = m->outer * m->len;
    m->inner = outer_len ? (size_t)od_buf_count(x) / outer_len : 0;
    if (m->outer * m->len * m->inner == 0) return OD_STATUS_OK;
    if (m->inner > 1) {
        m->scratch = malloc(sizeof(float) * 2 * m->outer * m->inner);
        if (!m->scratch) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    if (m->log || m->inner > 1) return OD_STATUS_OK;
    xnn_operator_t op = NULL;
    enum xnn_status r = xnn_create_softmax_nc_f32(m->len, m->len, m->len, 0, &op);
    od_status st = od_xnn_check(r, err, s->node, "create softmax");
    if (st) return st;
    m->xnn = op;
    r = xnn_setup_softmax_nc_f32(op, m->outer, m->x, m->y, s->pool);
    return od_xnn_check(r, err, s->node, "setup softmax");
}

/* One row of contiguous values (inner == 1). */
static void softmax_row(const softmax_state *m, size_t o) {
    const float *x = m->x + o * m->len;
    float *y = m->y + o * m->len;
    float max = x[0], sum = 0.0f;
    for (size_t i = 1; i < m->len; i++)
        max = x[i] > max ? x[i] : max;
    if (m->log) {
        for (size_t i = 0; i < m->len; i++)
            sum += expf(x[i] - max);
        float lse = logf(sum); /* kept apart from max: max + lse may round away lse's digits */
        for (size_t i = 0; i < m->len; i++)
            y[i] = (x[i] - max) - lse;
    } else {
        for (size_t i = 0; i < m->len; i++)
            sum += y[i] = expf(x[i] - max);
        for (size_t i = 0; i < m->len; i++)
            y[i] /= sum;
    }
}

/* One outer index of an inner axis: [len, inner] with strided rows, vectorised over inner. */
static void softmax_block(const softmax_state *m, size_t o) {
    size_t len = m->len, inner = m->inner;
    const float *x = m->x + o * len * inner;
    float *y = m->y + o * len * inner;
    float *max = m->scratch + 2 * o * inner, *sum = max + inner;
    for (size_t k = 0; k < inner; k++) {
        max[k] = x[k];
        sum[k] = 0.0f;
    }
    for (size_t i = 1; i < len; i++)
        for (size_t k = 0; k < inner; k++)
            max[k] = x[i * inner + k] > max[k] ? x[i * inner + k] : max[k];
    for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < inner; k++) {
            float e = expf(x[i * inner + k] - max[k]);
            sum[k] += e;
            if (!m->log) y[i * inner + k] = e;
        }
    if (m->log) {
        for (size_t k = 0; k < inner; k++)
            sum[k] = logf(sum[k]);
        for (size_t i = 0; i < len; i++)
            for (size_t k = 0; k < inner; k++)
                y[i * inner + k] = (x[i * inner + k] - max[k]) - sum[k];
    } else {
        for (size_t i = 0; i < len; i++)
            for (size_t k = 0; k < inner; k++)
                y[i * inner + k] /= sum[k];
    }
}

static void softmax_task(void *ctx, size_t o) {
    const softmax_state *m = ctx;
    if (m->inner > 1)
        softmax_block(m, o);
    else
        softmax_row(m, o);
}

static od_status softmax_run(od_step *s, od_error *err) {
    softmax_state *m = s->state;
    if (m->xnn) return od_xnn_check(xnn_run_operator(m->xnn, s->pool), err, s->node, "run");
    if (m->outer * m->len * m->inner == 0) return OD_STATUS_OK;
    /* threads only pay off when each task has some work */
    od_parallel_for(m->len * m->inner >= 1024 ? s->pool : NULL, m->outer, softmax_task, m);
    return OD_STATUS_OK;
}

/* ---- training ------------------------------------------------------------------------------ */

/* The inference state without XNNPACK, over the trainer's buffers; scratch always (backward's
 * sums use it too). */
static od_status softmax_train_prepare(od_tstep *s, od_error *err) {
    softmax_state *m = calloc(1, sizeof *m);
    if (!m) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = m;
    const od_tbuf *x = s->in[0];
    m->log = s->op->name[0] == 'L';
    int axis = od_axis(od_attr_int(s->node, "axis", s->opset < 13 ? 1 : -1), x->rank);
    m->outer = (size_t)od_dims_count(axis, x->dims);
    m->len = (size_t)od_dims_count(s->opset < 13 ? x->rank - axis : 1, x->dims + axis);
    size_t outer_len = m->outer * m->len;
    m->inner = outer_len ? (size_t)x->count / outer_len : 0;
    m->scratch = malloc(sizeof(float) * (2 * m->outer * m->inner + 1));
    if (x->cl && x->rank >= 3) m->plain = malloc(sizeof(float) * (size_t)x->count + 64);
    if (!m->scratch || (x->cl && x->rank >= 3 && !m->plain))
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

static void softmax_fwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    (void)shard;
    for (int64_t o = begin; o < end; o++) softmax_task(ctx, (size_t)o);
}

static od_status softmax_train_forward(od_tstep *s, od_error *err) {
    softmax_state *m = s->state;
    const od_tbuf *x = s->in[0];
    m->x = m->plain ? m->plain : x->data;
    m->y = s->out[0]->data;
    if (m->plain) od_relayout(x->data, m->plain, x->rank, x->dims, false, sizeof(float), false, NULL);
    if (m->outer * m->len * m->inner != 0) od_shards(s, (int64_t)m->outer, softmax_fwd_shard, m);
    return OD_STATUS_OK;
}

typedef struct softmax_bwd {
    const softmax_state *m;
    const float *dy;
    float *dx;
} softmax_bwd;

/* Per outer index, with sums over len for each inner position in scratch:
 * Softmax dx = y (dy - sum(dy y)); LogSoftmax dx = dy - exp(y) sum(dy). */
static void softmax_bwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    const softmax_bwd *b = ctx;
    const softmax_state *m = b->m;
    size_t len = m->len, inner = m->inner;
    (void)shard;
    for (int64_t o = begin; o < end; o++) {
        size_t base = (size_t)o * len * inner;
        const float *y = m->y + base, *dy = b->dy + base;
        float *dx = b->dx + base, *sum = m->scratch + 2 * (size_t)o * inner;
        for (size_t k = 0; k < inner; k++) sum[k] = 0.0f;
        for (size_t i = 0; i < len; i++)
            for (size_t k = 0; k < inner; k++)
                sum[k] += m->log ? dy[i * inner + k] : dy[i * inner + k] * y[i * inner + k];
        for (size_t i = 0; i < len; i++)
            for (size_t k = 0; k < inner; k++) {
                size_t j = i * inner + k;
                dx[j] += m->log ? dy[j] - expf(y[j]) * sum[k] : y[j] * (dy[j] - sum[k]);
            }
    }
}

static od_status softmax_train_backward(od_tstep *s, od_error *err) {
    softmax_state *m = s->state;
    const od_tbuf *x = s->in[0];
    if (!x->grad || m->outer * m->len * m->inner == 0) return OD_STATUS_OK;
    softmax_bwd b = {m, s->out[0]->grad, m->plain ? m->plain : x->grad};
    if (m->plain) memset(m->plain, 0, sizeof(float) * (size_t)x->count); /* X itself is no longer needed */
    od_shards(s, (int64_t)m->outer, softmax_bwd_shard, &b);
    if (m->plain) od_relayout(m->plain, x->grad, x->rank, x->dims, true, sizeof(float), true, NULL);
    return OD_STATUS_OK;
}

static bool softmax_per_sample(const od_node *n, int rank) { return od_per_sample_axis(n, rank, -1); }

/* Softmax and LogSoftmax differ only by name: softmax_prepare reads it */
#define SOFTMAX_DESC(NAME)                                                                         \
    OD_OP_FACTS(NAME, 1, "axis");                                                                  \
    const od_op_desc od_op_##NAME = {OD_OP_NAME(NAME), .channel_role = OD_CHANNELS_ELEMENTWISE, .stable_since = 13, .per_sample = softmax_per_sample,           \
                                     .infer = softmax_infer,                                       \
                                     .prepare = softmax_prepare, .run = softmax_run,               \
                                     .destroy = softmax_destroy,                                   \
                                     .train_layout = OD_TRAIN_LAYOUT_PLAIN,                        \
                                     .train_prepare = softmax_train_prepare,                       \
                                     .forward_train = softmax_train_forward,                       \
                                     .backward = softmax_train_backward,                           \
                                     .train_destroy = softmax_destroy};
SOFTMAX_DESC(Softmax)
SOFTMAX_DESC(LogSoftmax)

/* LayerNormalization, opset 17, float32: Y = (X - mean) / sqrt(var + epsilon) * Scale + B, the
 * mean and variance taken over the dims from axis (default -1) to the last. Attributes axis,
 * epsilon (default 1e-5), stash_type (only 1, float32). Scale and the optional B hold either the
 * normalised dims' count of values (shape X.shape[axis:], or that broadcast from fewer leading
 * dims of size 1) or one value. Optional outputs Mean and InvStdDev: X's shape with the
 * normalised dims set to 1. Layout: plain. No MACs counted (like BatchNormalization). Backward: not yet. */
#include "../op.h"

#include <math.h>
#include <stdlib.h>

static od_status ln_check_param(od_infer_ctx *c, int i, int64_t norm) {
    const od_shape_info *p = i < c->n_in ? c->in[i] : NULL;
    if (!p) return OD_STATUS_OK;
    if (p->dtype != OD_DTYPE_FLOAT)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "input %d is not float32", i);
    if (p->rank < 0 || norm < 0) return OD_STATUS_OK; /* checked again with known shapes */
    int64_t n = od_dims_count(p->rank, p->dims);
    if (n != norm && n != 1)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "input %d holds %lld values, not 1 or the %lld normalised ones", i,
                             (long long)n, (long long)norm);
    return OD_STATUS_OK;
}

static od_status ln_infer(od_infer_ctx *c) {
    if (c->n_in < 2 || c->n_in > 3)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "takes 2 or 3 inputs, not %d", c->n_in);
    od_status st = od_infer_expect(c, 0, 1, OD_MAX_RANK);
    if (st) return st;
    if (!c->in[1])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "has no Scale input");
    if (od_attr_int(c->node, "stash_type", 1) != 1)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "stash_type %lld (only 1, float32)",
                             (long long)od_attr_int(c->node, "stash_type", 1));
    const od_shape_info *x = c->in[0];
    int axis = od_axis(od_attr_int(c->node, "axis", -1), x->rank);
    if (axis < 0)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "axis %lld is out of range for rank %d",
                             (long long)od_attr_int(c->node, "axis", -1), x->rank);
    int64_t norm = 1;
    for (int d = axis; d < x->rank; d++)
        norm = x->dims[d] < 0 || norm < 0 ? -1 : norm * x->dims[d];
    if ((st = ln_check_param(c, 1, norm)) || (st = ln_check_param(c, 2, norm))) return st;
    od_infer_same(c, 0, 0);
    for (int o = 1; o < c->n_out && o < 3; o++) {
        od_infer_same(c, o, 0);
        for (int d = axis; d < x->rank; d++)
            c->out[o].dims[d] = 1;
    }
    return OD_STATUS_OK;
}

typedef struct ln_state {
    size_t outer, norm;
    float epsilon;
    const float *x, *scale, *bias; /* bias may be NULL */
    bool scale_one, bias_one;      /* a single value for every position */
    float *y, *mean, *inv_std;     /* mean, inv_std may be NULL */
} ln_state;

static void ln_destroy(od_step *s) {
    free(s->state);
    s->state = NULL;
}

static od_status ln_prepare(od_step *s, od_error *err) {
    ln_state *m = calloc(1, sizeof *m);
    if (!m) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = m;
    const od_buf *x = s->in[0];
    int axis = od_axis(od_attr_int(s->node, "axis", -1), x->rank);
    m->outer = (size_t)od_dims_count(axis, x->dims);
    m->norm = (size_t)od_dims_count(x->rank - axis, x->dims + axis);
    m->epsilon = od_node_attr_float(s->node, "epsilon");
    m->x = x->data;
    m->scale = s->in[1]->data;
    m->scale_one = od_buf_count(s->in[1]) == 1 && m->norm != 1;
    if (s->n_in > 2 && s->in[2]) {
        m->bias = s->in[2]->data;
        m->bias_one = od_buf_count(s->in[2]) == 1 && m->norm != 1;
    }
    for (int i = 1; i < s->n_in && i < 3; i++) {
        int64_t n = s->in[i] ? od_buf_count(s->in[i]) : 1;
        if (n != 1 && n != (int64_t)m->norm)
            return od_node_error(err, OD_STATUS_SHAPE, s->node,
                                 "input %d holds %lld values, not 1 or the %zu normalised ones", i,
                                 (long long)n, m->norm);
    }
    m->y = s->out[0]->data;
    m->mean = s->n_out > 1 && s->out[1] ? s->out[1]->data : NULL;
    m->inv_std = s->n_out > 2 && s->out[2] ? s->out[2]->data : NULL;
    return OD_STATUS_OK;
}

static void ln_row(void *ctx, size_t o) {
    const ln_state *m = ctx;
    size_t n = m->norm;
    const float *x = m->x + o * n;
    float *y = m->y + o * n;
    /* two passes in double: the mean first, then the spread around it (no cancellation) */
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    float mean = (float)(sum / (double)n);
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)(x[i] - mean);
        ss += d * d;
    }
    float inv = (float)(1.0 / sqrt(ss / (double)n + (double)m->epsilon));
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] - mean) * inv * m->scale[m->scale_one ? 0 : i];
        y[i] = m->bias ? v + m->bias[m->bias_one ? 0 : i] : v;
    }
    if (m->mean) m->mean[o] = mean;
    if (m->inv_std) m->inv_std[o] = inv;
}

static od_status ln_run(od_step *s, od_error *err) {
    const ln_state *m = s->state;
    if (m->outer == 0 || m->norm == 0) return OD_STATUS_OK;
    od_parallel_for(m->norm >= 256 ? s->pool : NULL, m->outer, ln_row, (void *)m);
    return OD_STATUS_OK;
}

OD_OP_FACTS(LayerNormalization, 17, "axis", "epsilon=1e-05", "stash_type");
const od_op_desc od_op_LayerNormalization = {OD_OP_NAME(LayerNormalization), .channel_role = OD_CHANNELS_NORMALIZES, .channel_inputs = 2,
                                             .infer = ln_infer,
                                             .prepare = ln_prepare,
                                             .run = ln_run,
                                             .destroy = ln_destroy};

/* LayerNormalization, opset 17, float32: Y = (X - mean) / sqrt(var + epsilon) * Scale + B, the
 * mean and variance taken over the dims from axis (default -1) to the last. Attributes axis,
 * epsilon (default 1e-5), stash_type (only 1, float32). Scale and the optional B hold either the
 * normalised dims' count of values (shape X.shape[axis:], or that broadcast from fewer leading
 * dims of size 1) or one value. Optional outputs Mean and InvStdDev: X's shape with the
 * normalised dims set to 1. Layout: plain. No MACs counted (like BatchNormalization).
 * Backward: X, Scale and B (both trained when initializers), any axis, either form of Scale and
 * B; a channels-last X is read through od_relayout. Mean and InvStdDev are written in training
 * too, but a graph that reads them there is refused (no gradient flows back through them). */
#include "../train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- training ------------------------------------------------------------------------------ */

typedef struct ln_train {
    int64_t outer, norm;
    float epsilon;
    bool scale_one, bias_one;
    int shards;
    float *mean, *inv;  /* per row, kept by forward for backward */
    float *plain;       /* X then its gradient in ONNX order when X is channels-last, or NULL */
    float *dx;          /* where this backward adds dX (ONNX order), or NULL */
    float *partial;     /* per shard: dScale then dB, 2 * norm each */
    const float *x;     /* X in ONNX order */
} ln_train;

static void ln_train_destroy(od_tstep *s) {
    ln_train *m = s->state;
    if (m) {
        free(m->mean);
        free(m->plain);
        free(m->partial);
    }
    free(m);
    s->state = NULL;
}

static od_status ln_train_prepare(od_tstep *s, od_error *err) {
    ln_train *m = calloc(1, sizeof *m);
    if (!m) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = m;
    const od_tbuf *x = s->in[0];
    for (int k = 1; k < s->n_out && k < 3; k++)
        if (s->out[k] && s->out[k]->consumers > 0)
            return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node,
                                 "training through output %s is not supported", k == 1 ? "Mean" : "InvStdDev");
    int axis = od_axis(od_attr_int(s->node, "axis", -1), x->rank);
    m->outer = od_dims_count(axis, x->dims);
    m->norm = od_dims_count(x->rank - axis, x->dims + axis);
    m->epsilon = od_node_attr_float(s->node, "epsilon");
    for (int i = 1; i < s->n_in && i < 3; i++) {
        int64_t n = s->in[i] ? s->in[i]->count : 1;
        if (n != 1 && n != m->norm)
            return od_node_error(err, OD_STATUS_SHAPE, s->node,
                                 "input %d holds %lld values, not 1 or the %lld normalised ones", i,
                                 (long long)n, (long long)m->norm);
    }
    m->scale_one = s->in[1]->count == 1 && m->norm != 1;
    m->bias_one = s->n_in > 2 && s->in[2] && s->in[2]->count == 1 && m->norm != 1;
    m->shards = od_shard_count(s, m->outer);
    size_t rows = (size_t)m->outer + 1;
    m->mean = malloc(sizeof(float) * 2 * rows);
    m->partial = malloc(sizeof(float) * 2 * (size_t)(m->norm * m->shards + 1));
    if (x->cl && x->rank >= 3) m->plain = malloc(sizeof(float) * 2 * (size_t)x->count + 64);
    if (!m->mean || !m->partial || (x->cl && x->rank >= 3 && !m->plain))
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    m->inv = m->mean + rows;
    return OD_STATUS_OK;
}

/* Rows [begin, end): the statistics in double as inference takes them, then Y. */
static void ln_fwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    const od_tstep *s = ctx;
    const ln_train *m = s->state;
    const float *scale = s->in[1]->data, *bias = s->n_in > 2 && s->in[2] ? s->in[2]->data : NULL;
    int64_t n = m->norm;
    (void)shard;
    for (int64_t o = begin; o < end; o++) {
        const float *x = m->x + o * n;
        float *y = s->out[0]->data + o * n;
        double sum = 0.0, ss = 0.0;
        for (int64_t i = 0; i < n; i++) sum += x[i];
        float mean = (float)(sum / (double)n);
        for (int64_t i = 0; i < n; i++) {
            double d = (double)(x[i] - mean);
            ss += d * d;
        }
        float inv = (float)(1.0 / sqrt(ss / (double)n + (double)m->epsilon));
        for (int64_t i = 0; i < n; i++) {
            float v = (x[i] - mean) * inv * scale[m->scale_one ? 0 : i];
            y[i] = bias ? v + bias[m->bias_one ? 0 : i] : v;
        }
        m->mean[o] = mean;
        m->inv[o] = inv;
    }
}

static od_status ln_train_forward(od_tstep *s, od_error *err) {
    ln_train *m = s->state;
    const od_tbuf *x = s->in[0];
    m->x = x->data;
    if (m->plain) {
        od_relayout(x->data, m->plain, x->rank, x->dims, false, sizeof(float), false, NULL);
        m->x = m->plain;
    }
    od_shards(s, m->outer, ln_fwd_shard, s);
    for (int k = 1; k < s->n_out && k < 3; k++) /* Mean, InvStdDev: one value per row */
        if (s->out[k]) memcpy(s->out[k]->data, k == 1 ? m->mean : m->inv, sizeof(float) * (size_t)m->outer);
    return OD_STATUS_OK;
}

/* dX = inv (g - mean(g) - xhat mean(g xhat)) with g = dY Scale; this shard's dScale, dB sums. */
static void ln_bwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    const od_tstep *s = ctx;
    const ln_train *m = s->state;
    const float *scale = s->in[1]->data;
    float *dx_all = m->dx;
    int64_t n = m->norm;
    float *ds = m->partial + 2 * n * shard, *db = ds + n;
    memset(ds, 0, sizeof(float) * 2 * (size_t)n);
    for (int64_t o = begin; o < end; o++) {
        const float *x = m->x + o * n, *dy = s->out[0]->grad + o * n;
        float mean = m->mean[o], inv = m->inv[o];
        double sg = 0.0, sgx = 0.0;
        for (int64_t i = 0; i < n; i++) {
            float xh = (x[i] - mean) * inv, g = dy[i] * scale[m->scale_one ? 0 : i];
            sg += g;
            sgx += (double)g * xh;
            ds[i] += dy[i] * xh;
            db[i] += dy[i];
        }
        if (!dx_all) continue;
        float mg = (float)(sg / (double)n), mgx = (float)(sgx / (double)n);
        float *dx = dx_all + o * n;
        for (int64_t i = 0; i < n; i++) {
            float xh = (x[i] - mean) * inv, g = dy[i] * scale[m->scale_one ? 0 : i];
            dx[i] += inv * (g - mg - xh * mgx);
        }
    }
}

static od_status ln_train_backward(od_tstep *s, od_error *err) {
    ln_train *m = s->state;
    const od_tbuf *x = s->in[0];
    int64_t n = m->norm;
    m->dx = m->plain && x->grad ? m->plain + x->count : x->grad;
    if (m->plain && x->grad) memset(m->dx, 0, sizeof(float) * (size_t)x->count);
    od_shards(s, m->outer, ln_bwd_shard, s);
    if (m->plain && x->grad) od_relayout(m->dx, x->grad, x->rank, x->dims, true, sizeof(float), true, NULL);
    for (int k = 1; k < 3 && k < s->n_in; k++) {
        float *g = s->in[k] ? s->in[k]->grad : NULL;
        if (!g) continue;
        bool one = k == 1 ? m->scale_one : m->bias_one;
        for (int sh = 0; sh < m->shards; sh++) {
            const float *p = m->partial + 2 * n * sh + (k == 1 ? 0 : n);
            if (one)
                for (int64_t i = 0; i < n; i++) g[0] += p[i];
            else
                od_add_into(g, p, n);
        }
    }
    return OD_STATUS_OK;
}

OD_OP_FACTS(LayerNormalization, 17, "axis", "epsilon=1e-05", "stash_type");
const od_op_desc od_op_LayerNormalization = {OD_OP_NAME(LayerNormalization), .channel_role = OD_CHANNELS_NORMALIZES, .channel_inputs = 2,
                                             .infer = ln_infer,
                                             .prepare = ln_prepare,
                                             .run = ln_run,
                                             .destroy = ln_destroy,
                                             .trained_inputs = 0x6, /* Scale, B */
                                             .train_layout = OD_TRAIN_LAYOUT_PLAIN,
                                             .train_prepare = ln_train_prepare,
                                             .forward_train = ln_train_forward,
                                             .backward = ln_train_backward,
                                             .train_destroy = ln_train_destroy};

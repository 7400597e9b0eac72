/* The Reduce family, opsets 1-17: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd,
 * ReduceSumSquare, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp. They share this file
 * because they differ only in the per-element function and the finish. axes from the
 * attribute, or from a constant input (ReduceSum from opset 13; any of them when given one),
 * negative from 11; keepdims; noop_with_empty_axes (empty axes then copy the input).
 * float, double, float16, accumulating in double; int32 and int64 for sum, mean, max, min, prod,
 * sum of squares and L1. One pass over the input in memory order, folding each row into the
 * output accumulators. Backward: ReduceMean on float (training kernel at the end; a
 * channels-last input is read through od_relayout). Layout: plain. */
#include "../train_internal.h"
#include "strided.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum reduce_kind {
    R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_SUMSQ, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP
} reduce_kind;

static reduce_kind kind_of(const char *name) {
    static const char *const names[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                        "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceL2",
                                        "ReduceLogSum", "ReduceLogSumExp"};
    for (int k = 0; k < 10; k++)
        if (strcmp(name, names[k]) == 0) return (reduce_kind)k;
    return R_SUM;
}

/* Which dims are reduced; false from *noop when the input is to be copied unchanged. */
static od_status reduce_axes(od_infer_ctx *c, bool *reduced, bool *noop) {
    const od_shape_info *x = c->in[0];
    int64_t axes[OD_MAX_RANK];
    int n;
    if (c->n_in > 1 && c->in[1]) {
        od_status st = od_const_ints_input(c, 1, "the axes input", axes, OD_MAX_RANK, &n);
        if (st) return st;
    } else {
        n = od_attr_ints(c->node, "axes", axes, OD_MAX_RANK);
        if (n > OD_MAX_RANK)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "too many axes");
    }
    od_status st = od_normalize_axes(c, axes, n > 0 ? n : 0, x->rank);
    if (st) return st;
    *noop = n <= 0 && od_attr_int(c->node, "noop_with_empty_axes", 0) != 0;
    for (int d = 0; d < x->rank; d++) reduced[d] = n <= 0 && !*noop;
    for (int i = 0; i < n; i++) reduced[axes[i]] = true;
    return OD_STATUS_OK;
}

static od_status reduce_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    const od_shape_info *x = c->in[0];
    reduce_kind k = kind_of(c->node->op_type);
    od_dtype t = x->dtype;
    bool fp = t == OD_DTYPE_FLOAT || t == OD_DTYPE_DOUBLE || t == OD_DTYPE_FLOAT16;
    bool ints = (t == OD_DTYPE_INT32 || t == OD_DTYPE_INT64) && k != R_L2 && k != R_LOGSUM &&
                k != R_LOGSUMEXP;
    if (!fp && !ints)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "element type %s is not supported", od_dtype_name(t));
    bool reduced[OD_MAX_RANK], noop;
    od_status st = reduce_axes(c, reduced, &noop);
    if (st) return st;
    bool keep = od_attr_int(c->node, "keepdims", 1) != 0;
    od_shape_info *o = &c->out[0];
    *o = (od_shape_info){.dtype = t, .rank = 0};
    for (int d = 0; d < x->rank; d++)
        if (!reduced[d]) o->dims[o->rank++] = x->dims[d];
        else if (keep) o->dims[o->rank++] = 1;
    return OD_STATUS_OK;
}

typedef struct reduce_state {
    reduce_kind kind;
    bool noop;
    int rank;                  /* after merging; the last dim is the row */
    int64_t dims[OD_MAX_RANK]; /* input dims, merged */
    int64_t ostr[OD_MAX_RANK]; /* output strides, 0 on reduced dims */
    int64_t count;             /* elements folded into each output */
    double *acc, *shift, *row; /* per output; per output (LogSumExp's max); one row */
} reduce_state;

static void reduce_destroy(od_step *s) {
    reduce_state *r = s->state;
    if (r) {
        free(r->acc);
        free(r->shift);
        free(r->row);
    }
    free(r);
    s->state = NULL;
}

static od_status reduce_prepare(od_step *s, od_error *err) {
    od_step_shapes sh;
    reduce_state *r = od_step_state_with_shapes(s, sizeof *r, &sh, err);
    if (!r) return OD_STATUS_OUT_OF_MEMORY;
    bool reduced[OD_MAX_RANK];
    od_status st = reduce_axes(&sh.c, reduced, &r->noop);
    if (st || r->noop) return st;
    r->kind = kind_of(s->node->op_type);
    const od_buf *x = s->in[0];
    int64_t ostride = 1, ostr[OD_MAX_RANK];
    r->count = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        ostr[d] = reduced[d] ? 0 : ostride;
        if (!reduced[d]) ostride *= x->dims[d];
        else r->count *= x->dims[d];
    }
    /* merge neighbours of one kind; dims of 1 carry nothing */
    for (int d = 0; d < x->rank; d++) {
        if (x->dims[d] == 1) continue;
        int k = r->rank;
        if (k > 0 && (ostr[d] == 0) == (r->ostr[k - 1] == 0)) {
            r->dims[k - 1] *= x->dims[d];
            r->ostr[k - 1] = ostr[d];
            continue;
        }
        r->dims[k] = x->dims[d];
        r->ostr[k] = ostr[d];
        r->rank++;
    }
    if (r->rank == 0) {
        r->dims[0] = 1;
        r->ostr[0] = 1;
        r->rank = 1;
    }
    size_t n_out = (size_t)od_buf_count(s->out[0]);
    r->acc = malloc(sizeof(double) * (n_out + 1));
    r->shift = malloc(sizeof(double) * (n_out + 1));
    r->row = malloc(sizeof(double) * (size_t)(r->dims[r->rank - 1] + 1));
    if (!r->acc || !r->shift || !r->row)
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

/* acc[o] = fold(acc[o], f(x)) over the input: one pass, row by row. */
static void reduce_pass(const reduce_state *r, reduce_kind k, const od_buf *x, double *acc,
                        const double *shift) {
    int rank = r->rank;
    int64_t n = r->dims[rank - 1], os = r->ostr[rank - 1], rows = 1, idx[OD_MAX_RANK] = {0};
    for (int d = 0; d < rank - 1; d++) rows *= r->dims[d];
    size_t e = od_dtype_size(x->dtype);
    int64_t o = 0;
    for (int64_t row = 0; row < rows; row++) {
        double *v = r->row, *a = acc + o;
        od_load_doubles((const char *)x->data + (size_t)(row * n) * e, x->dtype, n, v);
        for (int64_t i = 0; i < n; i++) {
            double *t = a + i * os;
            switch (k) {
            case R_SUM: case R_MEAN: case R_LOGSUM: *t += v[i]; break;
            case R_SUMSQ: case R_L2: *t += v[i] * v[i]; break;
            case R_L1: *t += fabs(v[i]); break;
            case R_PROD: *t *= v[i]; break;
            case R_MAX: if (v[i] > *t || isnan(v[i])) *t = v[i]; break;
            case R_MIN: if (v[i] < *t || isnan(v[i])) *t = v[i]; break;
            case R_LOGSUMEXP: *t += exp(v[i] - shift[t - acc]); break;
            }
        }
        for (int d = rank - 2; d >= 0; d--) { /* next row: step the output offset */
            o += r->ostr[d];
            if (++idx[d] < r->dims[d]) break;
            o -= r->ostr[d] * r->dims[d];
            idx[d] = 0;
        }
    }
}

static void fill(double *a, int64_t n, double v) {
    for (int64_t i = 0; i < n; i++) a[i] = v;
}

static od_status reduce_run(od_step *s, od_error *err) {
    const reduce_state *r = s->state;
    const od_buf *x = s->in[0];
    od_buf *y = s->out[0];
    if (r->noop) {
        if (y->data != x->data) memcpy(y->data, x->data, y->nbytes);
        return OD_STATUS_OK;
    }
    int64_t n = od_buf_count(y);
    reduce_kind k = r->kind;
    if (k == R_LOGSUMEXP) { /* shift by the max where exp would overflow (or all underflow) */
        fill(r->shift, n, -INFINITY);
        reduce_pass(r, R_MAX, x, r->shift, NULL);
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(r->shift[i]) || fabs(r->shift[i]) < 600) r->shift[i] = 0;
    }
    fill(r->acc, n, k == R_PROD ? 1 : k == R_MAX ? -INFINITY : k == R_MIN ? INFINITY : 0);
    reduce_pass(r, k, x, r->acc, r->shift);
    for (int64_t i = 0; i < n; i++) {
        double *a = &r->acc[i];
        switch (k) {
        case R_MEAN: *a /= (double)r->count; break;
        case R_L2: *a = sqrt(*a); break;
        case R_LOGSUM: *a = log(*a); break;
        case R_LOGSUMEXP: *a = log(*a) + r->shift[i]; break;
        default: break;
        }
    }
    od_store_doubles(r->acc, n, y->data, y->dtype);
    return OD_STATUS_OK;
}

/* ---- training: ReduceMean (float) ----------------------------------------------------------- */

typedef struct mean_train {
    int rank;
    int64_t dims[OD_MAX_RANK], ostr[OD_MAX_RANK]; /* input dims (ONNX order); output strides */
    float inv_count;
    float *plain; /* a channels-last input in ONNX order, and its gradient there: after this
                   * struct, in the same block, which the trainer frees */
} mean_train;

static od_status mean_train_prepare(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0], *y = s->out[0];
    size_t plain = x->cl && x->rank >= 3 ? (size_t)x->count : 0;
    mean_train *m = calloc(1, sizeof *m + sizeof(float) * plain + 64);
    if (!m) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = m;
    m->plain = plain ? (float *)(m + 1) : NULL;
    /* which axes: the rule inference uses, on the trainer's shapes */
    od_shape_info in[2] = {{.dtype = OD_DTYPE_FLOAT, .rank = x->rank}, {.rank = -1}}, out = {0};
    memcpy(in[0].dims, x->dims, sizeof x->dims);
    if (s->n_in > 1 && s->in[1]) {
        in[1] = (od_shape_info){.dtype = s->in[1]->constant ? s->in[1]->constant->dtype : OD_DTYPE_FLOAT,
                                .rank = s->in[1]->rank, .constant = s->in[1]->constant};
        memcpy(in[1].dims, s->in[1]->dims, sizeof in[1].dims);
    }
    const od_shape_info *inp[2] = {&in[0], s->n_in > 1 && s->in[1] ? &in[1] : NULL};
    od_infer_ctx c = {s->node, s->opset, s->n_in < 2 ? s->n_in : 2, 1, inp, &out, NULL, err};
    bool reduced[OD_MAX_RANK], noop;
    od_status st = reduce_axes(&c, reduced, &noop);
    if (st) return st;
    m->rank = x->rank;
    memcpy(m->dims, x->dims, sizeof m->dims);
    int64_t stride = 1;
    for (int d = x->rank - 1; d >= 0; d--) {
        m->ostr[d] = reduced[d] ? 0 : stride;
        stride *= reduced[d] ? 1 : x->dims[d];
    }
    m->inv_count = y->count > 0 ? (float)((double)y->count / (double)x->count) : 0.0f;
    return OD_STATUS_OK;
}

/* Walks every input element i (ONNX order) with its output element o: forward sums x[i] into
 * y[o], backward adds y[o] / count into x[i]. */
static void mean_walk(const mean_train *m, int64_t count, float *x, float *y, bool backward) {
    int64_t idx[OD_MAX_RANK] = {0}, o = 0;
    for (int64_t i = 0; i < count; i++) {
        if (backward) x[i] += y[o] * m->inv_count;
        else y[o] += x[i];
        for (int d = m->rank - 1; d >= 0; d--) { /* next index, carrying */
            o += m->ostr[d];
            if (++idx[d] < m->dims[d]) break;
            o -= m->ostr[d] * m->dims[d];
            idx[d] = 0;
        }
    }
}

static od_status mean_forward(od_tstep *s, od_error *err) {
    mean_train *m = s->state;
    const od_tbuf *x = s->in[0];
    od_tbuf *y = s->out[0];
    float *xp = x->data;
    if (m->plain) {
        od_relayout(x->data, m->plain, x->rank, x->dims, false, sizeof(float), false, NULL);
        xp = m->plain;
    }
    memset(y->data, 0, sizeof(float) * (size_t)y->count);
    mean_walk(m, x->count, xp, y->data, false);
    for (int64_t i = 0; i < y->count; i++) y->data[i] *= m->inv_count;
    return OD_STATUS_OK;
}

static od_status mean_backward(od_tstep *s, od_error *err) {
    mean_train *m = s->state;
    const od_tbuf *x = s->in[0];
    float *dx = x->grad;
    if (m->plain) memset(dx = m->plain, 0, sizeof(float) * (size_t)x->count);
    mean_walk(m, x->count, dx, s->out[0]->grad, true);
    if (m->plain) od_relayout(m->plain, x->grad, x->rank, x->dims, true, sizeof(float), true, NULL);
    return OD_STATUS_OK;
}


#define REDUCE_FAMILY                                                                              \
    .channel_role = OD_CHANNELS_REDUCES, .infer = reduce_infer, .prepare = reduce_prepare,          \
        .run = reduce_run, .destroy = reduce_destroy
#define REDUCE_DESC(NAME, SINCE, STABLE, ...)                                                            \
    OD_OP_FACTS(NAME, SINCE, __VA_ARGS__);                                                         \
    const od_op_desc od_op_##NAME = {OD_OP_NAME(NAME), .stable_since = STABLE, REDUCE_FAMILY};
OD_OP_FACTS(ReduceMean, 1, "axes", "keepdims", "noop_with_empty_axes");
const od_op_desc od_op_ReduceMean = {OD_OP_NAME(ReduceMean), .stable_since = 1, REDUCE_FAMILY,
                                     .train_layout = OD_TRAIN_LAYOUT_PLAIN,
                                     .train_prepare = mean_train_prepare,
                                     .forward_train = mean_forward, .backward = mean_backward};
REDUCE_DESC(ReduceSum, 1, 13, "axes", "keepdims", "noop_with_empty_axes")
REDUCE_DESC(ReduceMax, 1, 1, "axes", "keepdims", "noop_with_empty_axes")
REDUCE_DESC(ReduceMin, 1, 1, "axes", "keepdims", "noop_with_empty_axes")
REDUCE_DESC(ReduceProd, 1, 1, "axes", "keepdims", "noop_with_empty_axes")
REDUCE_DESC(ReduceSumSquare, 1, 1, "axes", "keepdims", "noop_with_empty_axes")
REDUCE_DESC(ReduceL1, 1, 1, "axes", "keepdims", "noop_with_empty_axes")
REDUCE_DESC(ReduceL2, 1, 1, "axes", "keepdims", "noop_with_empty_axes")
REDUCE_DESC(ReduceLogSum, 1, 1, "axes", "keepdims", "noop_with_empty_axes")
REDUCE_DESC(ReduceLogSumExp, 1, 1, "axes", "keepdims", "noop_with_empty_axes")

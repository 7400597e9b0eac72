/* Sum, Max, Min, Mean, opsets 6-13: element-wise over one or more float32 inputs (Max and Min
 * also int32 and int64 from opset 12, for shape arithmetic); numpy broadcasting from opset 8,
 * equal shapes before. They share this file because they differ only in the combining
 * function. Two float inputs of Sum/Max/Min run on XNNPACK's add/maximum/minimum "nd"
 * operators (up to 6 dims), other cases one broadcasting loop over all inputs, whose Max and
 * Min propagate NaN as numpy does. Layout: element-wise. Backward: not yet. */
#include "../op.h"
#include "ew_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

typedef enum variadic_kind {
    VARIADIC_SUM,
    VARIADIC_MAX,
    VARIADIC_MIN,
    VARIADIC_MEAN
} variadic_kind;

static variadic_kind kind_of(const char *name) {
    return strcmp(name, "Sum") == 0   ? VARIADIC_SUM
           : strcmp(name, "Max") == 0 ? VARIADIC_MAX
           : strcmp(name, "Min") == 0 ? VARIADIC_MIN
                                      : VARIADIC_MEAN;
}

static od_status variadic_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || c->n_in > EW_MAX_IN)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "takes 1 to %d inputs, not %d", EW_MAX_IN, c->n_in);
    od_dtype t = c->in[0] ? c->in[0]->dtype : OD_DTYPE_UNDEFINED;
    variadic_kind k = kind_of(c->node->op_type);
    bool ints = (t == OD_DTYPE_INT32 || t == OD_DTYPE_INT64) && c->opset >= 12 &&
                (k == VARIADIC_MAX || k == VARIADIC_MIN);
    for (int i = 0; i < c->n_in; i++) {
        if (!ints) {
            od_status st = od_infer_expect(c, i, 0, OD_MAX_RANK);
            if (st) return st;
        } else if (!c->in[i] || c->in[i]->dtype != t) {
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                                 "input %d is missing or not of input 0's element type", i);
        }
    }
    od_status st = od_infer_broadcast(c);
    if (st || c->opset >= 8) return st;
    for (int i = 1; i < c->n_in; i++) {
        bool same = c->in[i]->rank == c->in[0]->rank;
        for (int d = 0; same && d < c->in[0]->rank; d++)
            same = c->in[i]->dims[d] == c->in[0]->dims[d];
        if (!same)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                 "inputs 0 and %d differ in shape (broadcasting needs opset 8)", i);
    }
    return OD_STATUS_OK;
}

typedef struct variadic_state {
    xnn_operator_t xnn;
    variadic_kind kind;
    int n;
    od_dtype dtype;
    const void *in[EW_MAX_IN];
    void *out;
    ew_bcast bc;
} variadic_state;

static void variadic_destroy(od_step *s) {
    variadic_state *v = s->state;
    if (v && v->xnn) xnn_delete_operator(v->xnn);
    free(v);
    s->state = NULL;
}

/* Two inputs on an XNNPACK "nd" operator. */
static od_status variadic_prepare_xnn(od_step *s, variadic_state *v, od_error *err) {
    size_t shape[2][XNN_MAX_TENSOR_DIMS];
    for (int k = 0; k < 2; k++) {
        int64_t dims[OD_MAX_RANK];
        od_buf_phys_dims(s->in[k], dims);
        for (int d = 0; d < s->in[k]->rank; d++)
            shape[k][d] = (size_t)dims[d];
    }
    xnn_operator_t op = NULL;
    enum xnn_status r = v->kind == VARIADIC_SUM ? xnn_create_add_nd_f32(-INFINITY, INFINITY, 0, &op)
                        : v->kind == VARIADIC_MAX ? xnn_create_maximum_nd_f32(0, &op)
                                                  : xnn_create_minimum_nd_f32(0, &op);
    od_status st = od_xnn_check(r, err, s->node, "create");
    if (st) return st;
    v->xnn = op;
    size_t ra = (size_t)s->in[0]->rank, rb = (size_t)s->in[1]->rank;
    const float *a = v->in[0], *b = v->in[1];
    r = v->kind == VARIADIC_SUM
            ? xnn_setup_add_nd_f32(op, ra, shape[0], rb, shape[1], a, b, v->out, s->pool)
        : v->kind == VARIADIC_MAX
            ? xnn_setup_maximum_nd_f32(op, ra, shape[0], rb, shape[1], a, b, v->out, s->pool)
            : xnn_setup_minimum_nd_f32(op, ra, shape[0], rb, shape[1], a, b, v->out, s->pool);
    return od_xnn_check(r, err, s->node, "setup");
}

static od_status variadic_prepare(od_step *s, od_error *err) {
    variadic_state *v = calloc(1, sizeof *v);
    if (!v) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = v;
    v->kind = kind_of(s->op->name);
    v->n = s->n_in;
    v->dtype = s->out[0]->dtype;
    for (int k = 0; k < s->n_in; k++)
        v->in[k] = s->in[k]->data;
    v->out = s->out[0]->data;
    ew_bcast_init(&v->bc, s->out[0], s->n_in, s->in);
    if (s->n_in == 2 && v->kind != VARIADIC_MEAN && v->dtype == OD_DTYPE_FLOAT &&
        s->out[0]->rank <= XNN_MAX_TENSOR_DIMS && od_buf_count(s->out[0]) > 0)
        return variadic_prepare_xnn(s, v, err);
    return OD_STATUS_OK;
}

/* out = in0; out = f(out, ink) for each further input, row by row. */
#define VARIADIC_ROWS(NAME, T)                                                                     \
    static void NAME(void *ctx, int64_t first, int64_t end) {                                      \
        const variadic_state *v = ctx;                                                             \
        const ew_bcast *b = &v->bc;                                                                \
        int last = b->rank - 1;                                                                    \
        int64_t n = b->dims[last], off[EW_MAX_IN];                                                 \
        for (int64_t r = first; r < end; r++) {                                                    \
            ew_bcast_offsets(b, r, off);                                                           \
            T *z = (T *)v->out + r * n;                                                            \
            for (int k = 0; k < v->n; k++) {                                                       \
                const T *x = (const T *)v->in[k] + off[k];                                         \
                int64_t sx = b->strides[k][last];                                                  \
                if (k == 0)                                                                        \
                    for (int64_t i = 0; i < n; i++)                                                \
                        z[i] = x[i * sx];                                                          \
                else if (v->kind == VARIADIC_MAX)                                                  \
                    for (int64_t i = 0; i < n; i++) {                                              \
                        T a = x[i * sx];                                                           \
                        if (a > z[i] || a != a) z[i] = a; /* NaN wins */                           \
                    }                                                                              \
                else if (v->kind == VARIADIC_MIN)                                                  \
                    for (int64_t i = 0; i < n; i++) {                                              \
                        T a = x[i * sx];                                                           \
                        if (a < z[i] || a != a) z[i] = a;                                          \
                    }                                                                              \
                else                                                                               \
                    for (int64_t i = 0; i < n; i++)                                                \
                        z[i] += x[i * sx];                                                         \
            }                                                                                      \
            if (v->kind == VARIADIC_MEAN)                                                          \
                for (int64_t i = 0; i < n; i++)                                                    \
                    z[i] /= (T)v->n;                                                               \
        }                                                                                          \
    }

VARIADIC_ROWS(variadic_rows_f32, float)
VARIADIC_ROWS(variadic_rows_i32, int32_t) /* Max and Min only */
VARIADIC_ROWS(variadic_rows_i64, int64_t)

static od_status variadic_run(od_step *s, od_error *err) {
    variadic_state *v = s->state;
    if (v->xnn) return od_xnn_check(xnn_run_operator(v->xnn, s->pool), err, s->node, "run");
    ew_rows_fn fn = v->dtype == OD_DTYPE_INT32   ? variadic_rows_i32
                    : v->dtype == OD_DTYPE_INT64 ? variadic_rows_i64
                                                 : variadic_rows_f32;
    ew_for_rows(s->pool, v->bc.rows, v->bc.dims[v->bc.rank - 1], fn, v);
    return OD_STATUS_OK;
}

#define VARIADIC_DESC(NAME, SINCE, ...)                                                            \
    OD_OP_FACTS(NAME, SINCE, __VA_ARGS__);                                                         \
    const od_op_desc od_op_##NAME = {OD_OP_NAME(NAME), .channel_role = OD_CHANNELS_BROADCAST, .stable_since = 8, .per_sample = od_per_sample_always,         \
                                     .layout = OD_LAYOUT_POLICY_ELEMENTWISE,                       \
                                     .infer = variadic_infer,                                      \
                                     .prepare = variadic_prepare,                                  \
                                     .run = variadic_run,                                          \
                                     .destroy = variadic_destroy};
VARIADIC_DESC(Sum, 1, "consumed_inputs")
VARIADIC_DESC(Max, 1, "consumed_inputs")
VARIADIC_DESC(Min, 1, "consumed_inputs")
VARIADIC_DESC(Mean, 1, "consumed_inputs")

/* Pow, opsets 1-15: Z = X ^ Y with numpy broadcasting, X float32, Y float32 or a 32/64-bit
 * integer (mixed types from opset 12). Opset 1's `broadcast` is honoured when it is a numpy
 * broadcast; its `axis` is not supported. A constant scalar exponent of 2 or 0.5 runs on XNNPACK's
 * square or square_root, anything else on powf. Layout: element-wise. Backward: for the base, with
 * the exponent a constant holding one value (float or integer); a computed or many-valued
 * exponent is refused for training, and an initializer exponent is never trained. */
#include "../train_internal.h"
#include "ew_common.h"

#include <math.h>
#include <stdlib.h>
#include <xnnpack.h>

static od_status pow_infer(od_infer_ctx *c) {
    if (c->n_in != 2 || !c->in[0] || !c->in[1])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs two inputs");
    od_status st = od_infer_expect(c, 0, 0, OD_MAX_RANK);
    if (st) return st;
    od_dtype yt = c->in[1]->dtype;
    if (yt != OD_DTYPE_FLOAT && yt != OD_DTYPE_INT32 && yt != OD_DTYPE_INT64 &&
        yt != OD_DTYPE_UINT32 && yt != OD_DTYPE_UINT64)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "exponent of element type %s is not supported", od_dtype_name(yt));
    if (c->opset < 12 && yt != OD_DTYPE_FLOAT)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "before opset 12 the exponent must have the base's element type");
    if (c->opset < 7 && od_node_attr(c->node, "axis"))
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "the legacy `axis` broadcast is not supported");
    st = od_infer_broadcast(c);
    if (st) return st;
    if (c->opset < 7 && !od_attr_int(c->node, "broadcast", 0)) {
        bool same = c->in[0]->rank == c->in[1]->rank;
        for (int d = 0; same && d < c->in[0]->rank; d++)
            same = c->in[0]->dims[d] == c->in[1]->dims[d];
        if (!same)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                 "shapes differ and `broadcast` is not set");
    }
    return OD_STATUS_OK;
}

static od_status pow_prepare(od_step *s, od_error *err) {
    od_buf *x = s->in[0], *y = s->in[1];
    ew_job *p = NULL;
    od_status st = ew_job_create(s, 2, NULL, y->dtype, &p, err); /* t: the exponent's type */
    size_t n = (size_t)od_buf_count(s->out[0]);
    if (st || !y->constant || od_buf_count(y) != 1 || (size_t)od_buf_count(x) != n || n == 0)
        return st;
    float e = od_const_float(&(od_shape_info){.constant = y->constant}, NAN);
    if (e != 2.0f && e != 0.5f) return OD_STATUS_OK;
    xnn_operator_t op = NULL;
    enum xnn_status r = e == 2.0f ? xnn_create_square_nc_f32(1, 1, 1, 0, &op)
                                  : xnn_create_square_root_nc_f32(1, 1, 1, 0, &op);
    st = od_xnn_check(r, err, s->node, "create");
    if (st) return st;
    p->xnn = op;
    r = e == 2.0f ? xnn_setup_square_nc_f32(op, n, p->in[0], p->out, s->pool)
                  : xnn_setup_square_root_nc_f32(op, n, p->in[0], p->out, s->pool);
    return od_xnn_check(r, err, s->node, "setup");
}

#define POW_ROW(T)                                                                                 \
    do {                                                                                           \
        const T *e = (const T *)p->in[1] + off[1];                                                     \
        for (int64_t i = 0; i < n; i++)                                                            \
            z[i] = powf(x[i * sx], (float)e[i * sy]);                                              \
    } while (0)

static void pow_rows(void *ctx, int64_t first, int64_t end) {
    const ew_job *p = ctx;
    const ew_bcast *b = &p->b;
    int last = b->rank - 1;
    int64_t n = b->dims[last], sx = b->strides[0][last], sy = b->strides[1][last], off[2];
    for (int64_t r = first; r < end; r++) {
        ew_bcast_offsets(b, r, off);
        const float *x = (const float *)p->in[0] + off[0];
        float *z = (float *)p->out + r * n;
        if (p->t == OD_DTYPE_FLOAT)
            POW_ROW(float);
        else if (p->t == OD_DTYPE_INT32)
            POW_ROW(int32_t);
        else if (p->t == OD_DTYPE_INT64)
            POW_ROW(int64_t);
        else if (p->t == OD_DTYPE_UINT32)
            POW_ROW(uint32_t);
        else
            POW_ROW(uint64_t);
    }
}

static od_status pow_run(od_step *s, od_error *err) { return ew_job_run(s, pow_rows, err); }

/* ---- training: the base's gradient, the exponent one constant value ---------------------- */

static od_status pow_train_prepare(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0], *e = s->in[1];
    if (!e->constant)
        return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node,
                             "training needs a constant exponent (no gradient for a computed one)");
    if (od_tensor_count(e->constant) != 1 || s->out[0]->count != x->count)
        return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node,
                             "training needs an exponent of one value, not %lld",
                             (long long)od_tensor_count(e->constant));
    float v = od_const_float(&(od_shape_info){.constant = e->constant}, NAN);
    if (isnan(v))
        return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "exponent of element type %s in training",
                             od_dtype_name(e->constant->dtype));
    float *p = malloc(sizeof *p);
    if (!p) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    *p = v;
    s->state = p;
    return OD_STATUS_OK;
}

static od_status pow_forward(od_tstep *s, od_error *err) {
    float e = *(const float *)s->state;
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data;
    int64_t n = s->out[0]->count;
    if (e == 2.0f)
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
    else
        for (int64_t i = 0; i < n; i++) y[i] = powf(x[i], e);
    return OD_STATUS_OK;
}

static od_status pow_backward(od_tstep *s, od_error *err) {
    float e = *(const float *)s->state;
    const float *x = s->in[0]->data, *dy = s->out[0]->grad;
    float *dx = s->in[0]->grad;
    int64_t n = s->out[0]->count;
    if (!dx) return OD_STATUS_OK;
    if (e == 2.0f)
        for (int64_t i = 0; i < n; i++) dx[i] += 2.0f * x[i] * dy[i];
    else if (e != 0.0f)
        for (int64_t i = 0; i < n; i++) dx[i] += e * powf(x[i], e - 1.0f) * dy[i];
    return OD_STATUS_OK;
}

OD_OP_FACTS(Pow, 1, "axis", "broadcast");
const od_op_desc od_op_Pow = {OD_OP_NAME(Pow), .channel_role = OD_CHANNELS_BROADCAST, .stable_since = 7, .per_sample = od_per_sample_always,
                              .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                              .infer = pow_infer,
                              .prepare = pow_prepare,
                              .run = pow_run,
                              .destroy = ew_job_destroy,
                              .trained_inputs = 0x1, /* the base; the exponent stays constant */
                              .train_layout = OD_TRAIN_LAYOUT_SAME,
                              .train_prepare = pow_train_prepare,
                              .forward_train = pow_forward,
                              .backward = pow_backward};

/* Gather, opsets 1-17: axis (negative from 11), int32 or int64 indices (negative ones count
 * from the end, opset 11); any element type with a fixed size. Out-of-range indices are a run
 * time error. Backward (float data, constant indices of rank 0 or 1, as a class token's
 * x[:, 0]): the output's gradient added back at the gathered positions (repeats add up); data
 * in either training layout. Layout: plain. */
#include "../train_internal.h"
#include "strided.h"

#include <string.h>

static od_status gather_infer(od_infer_ctx *c) {
    od_status st = od_expect_sized(c, 0);
    if (st) return st;
    if (c->n_in < 2 || !c->in[1])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs indices");
    const od_shape_info *x = c->in[0], *idx = c->in[1];
    if (idx->dtype != OD_DTYPE_INT64 && idx->dtype != OD_DTYPE_INT32)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "indices have element type %s; expected int32 or int64",
                             od_dtype_name(idx->dtype));
    int64_t a = od_attr_int(c->node, "axis", 0);
    int axis = od_axis(a, x->rank);
    if (axis < 0)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "axis %lld is out of range for rank %d", (long long)a, x->rank);
    int rank = x->rank - 1 + idx->rank;
    if (rank > OD_MAX_RANK)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "rank %d is above %d", rank,
                             OD_MAX_RANK);
    od_shape_info *o = &c->out[0];
    *o = (od_shape_info){.dtype = x->dtype, .rank = rank};
    memcpy(o->dims, x->dims, sizeof(int64_t) * axis);
    memcpy(o->dims + axis, idx->dims, sizeof(int64_t) * idx->rank);
    memcpy(o->dims + axis + idx->rank, x->dims + axis + 1, sizeof(int64_t) * (x->rank - axis - 1));
    return OD_STATUS_OK;
}

static od_status gather_run(od_step *s, od_error *err) {
    const od_buf *x = s->in[0], *idx = s->in[1];
    int axis = od_axis(od_attr_int(s->node, "axis", 0), x->rank);
    size_t esize = od_dtype_size(x->dtype);
    int64_t outer = od_dims_count(axis, x->dims), n = x->dims[axis];
    int64_t n_idx = od_buf_count(idx);
    size_t inner = (size_t)od_dims_count(x->rank - axis - 1, x->dims + axis + 1) * esize;
    const char *src = (const void *)x->data;
    char *dst = (void *)s->out[0]->data;
    for (int64_t i = 0; i < n_idx; i++) {
        int64_t k = idx->dtype == OD_DTYPE_INT64 ? ((const int64_t *)idx->data)[i]
                                                 : ((const int32_t *)idx->data)[i];
        if (k < -n || k >= n)
            return od_node_error(err, OD_STATUS_INVALID_ARGUMENT, s->node,
                                 "index %lld is out of range for a dim of %lld", (long long)k,
                                 (long long)n);
        if (k < 0) k += n;
        for (int64_t o = 0; o < outer; o++)
            memcpy(dst + (size_t)(o * n_idx + i) * inner, src + (size_t)(o * n + k) * inner, inner);
    }
    return OD_STATUS_OK;
}

/* ---- training (float data, constant indices) ---------------------------------------------- */

/* Per index i: the sub-views of x at index k along axis and of y at position i, as strides over
 * the dims that remain (x's dims without axis); *rank of those views. */
static od_status gather_train_views(od_tstep *s, int *rank, int64_t *dims, int64_t *xs, int64_t *ys,
                                    int64_t *x_step, int64_t *y_step, od_error *err) {
    const od_tbuf *x = s->in[0], *idx = s->in[1], *y = s->out[0];
    int axis = od_axis(od_attr_int(s->node, "axis", 0), x->rank);
    if (!idx->constant || idx->rank > 1)
        return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node,
                             "training Gather needs constant indices of rank 0 or 1");
    int64_t xst[OD_MAX_RANK], yst[OD_MAX_RANK];
    od_tbuf_strides(x, xst);
    od_tbuf_strides(y, yst);
    *rank = 0;
    for (int d = 0; d < x->rank; d++) {
        if (d == axis) continue;
        int yd = d < axis || idx->rank == 1 ? d : d - 1; /* y's dim for x's dim d */
        dims[*rank] = x->dims[d];
        xs[*rank] = xst[d];
        ys[(*rank)++] = yst[yd];
    }
    *x_step = xst[axis];
    *y_step = idx->rank == 1 ? yst[axis] : 0;
    return OD_STATUS_OK;
}

static int64_t gather_index(const od_tbuf *idx, int64_t i, int64_t n) {
    int64_t k = idx->dtype == OD_DTYPE_INT64 ? ((const int64_t *)idx->data)[i] : ((const int32_t *)idx->data)[i];
    return k < 0 ? k + n : k;
}

static od_status gather_train_prepare(od_tstep *s, od_error *err) {
    int rank;
    int64_t dims[OD_MAX_RANK], xs[OD_MAX_RANK], ys[OD_MAX_RANK], xstep, ystep;
    od_status st = gather_train_views(s, &rank, dims, xs, ys, &xstep, &ystep, err);
    if (st) return st;
    const od_tbuf *x = s->in[0], *idx = s->in[1];
    int64_t n = x->dims[od_axis(od_attr_int(s->node, "axis", 0), x->rank)];
    for (int64_t i = 0; i < od_buf_count(idx); i++) {
        int64_t k = gather_index(idx, i, n);
        if (k < 0 || k >= n)
            return od_node_error(err, OD_STATUS_INVALID_ARGUMENT, s->node,
                                 "index %lld is out of range for a dim of %lld", (long long)k, (long long)n);
    }
    return OD_STATUS_OK;
}

static od_status gather_forward(od_tstep *s, od_error *err) {
    int rank;
    int64_t dims[OD_MAX_RANK], xs[OD_MAX_RANK], ys[OD_MAX_RANK], xstep, ystep;
    od_status st = gather_train_views(s, &rank, dims, xs, ys, &xstep, &ystep, err);
    if (st) return st;
    const od_tbuf *x = s->in[0], *idx = s->in[1];
    int64_t n = x->dims[od_axis(od_attr_int(s->node, "axis", 0), x->rank)];
    for (int64_t i = 0; i < od_buf_count(idx); i++)
        od_copy_strided(s->out[0]->data + i * ystep, ys, x->data + gather_index(idx, i, n) * xstep, xs, rank, dims,
                        sizeof(float), NULL);
    return OD_STATUS_OK;
}

static od_status gather_backward(od_tstep *s, od_error *err) {
    if (!s->in[0]->grad) return OD_STATUS_OK;
    int rank;
    int64_t dims[OD_MAX_RANK], xs[OD_MAX_RANK], ys[OD_MAX_RANK], xstep, ystep;
    od_status st = gather_train_views(s, &rank, dims, xs, ys, &xstep, &ystep, err);
    if (st) return st;
    const od_tbuf *x = s->in[0], *idx = s->in[1];
    int64_t n = x->dims[od_axis(od_attr_int(s->node, "axis", 0), x->rank)];
    for (int64_t i = 0; i < od_buf_count(idx); i++)
        od_add_strided(x->grad + gather_index(idx, i, n) * xstep, xs, s->out[0]->grad + i * ystep, ys, rank, dims);
    return OD_STATUS_OK;
}

OD_OP_FACTS(Gather, 1, "axis=0");
const od_op_desc od_op_Gather = {OD_OP_NAME(Gather), .channel_role = OD_CHANNELS_MOVES, .stable_since = 1, .infer = gather_infer, .run = gather_run,
                                 .train_layout = OD_TRAIN_LAYOUT_PLAIN, .train_prepare = gather_train_prepare,
                                 .forward_train = gather_forward, .backward = gather_backward};

/* Gather, opsets 1-17: axis (negative from 11), int32 or int64 indices (negative ones count
 * from the end, opset 11); any element type with a fixed size. Out-of-range indices are a run
 * time error. Backward: not yet. Layout: plain. */
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

OD_OP_FACTS(Gather, 1, "axis=0");
const od_op_desc od_op_Gather = {OD_OP_NAME(Gather), .channel_role = OD_CHANNELS_MOVES, .infer = gather_infer, .run = gather_run};

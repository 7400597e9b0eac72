/* Concat, opsets 1-17: axis (default 1 in opset 1, required from 4, negative from 11). Any
 * element type with a fixed size; each input is one strided copy into its slab of the
 * output. Backward: not yet. Layout: plain. */
#include "strided.h"

static int concat_axis(const od_node *n, int64_t opset, int rank) {
    const od_attr *a = od_node_attr(n, "axis");
    if (!a) return opset < 4 ? od_axis(1, rank) : -2;
    return od_axis(a->i, rank);
}

static od_status concat_infer(od_infer_ctx *c) {
    if (c->n_in < 1)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    for (int i = 0; i < c->n_in; i++) {
        od_status st = od_expect_sized(c, i);
        if (st) return st;
    }
    const od_shape_info *x = c->in[0];
    int axis = concat_axis(c->node, c->opset, x->rank);
    if (axis == -2)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an axis");
    if (axis < 0)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "axis %lld is out of range for rank %d",
                             (long long)od_attr_int(c->node, "axis", 1), x->rank);
    od_shape_info *o = &c->out[0];
    *o = (od_shape_info){.dtype = x->dtype, .rank = x->rank};
    for (int d = 0; d < x->rank; d++) o->dims[d] = x->dims[d];
    o->dims[axis] = 0;
    for (int i = 0; i < c->n_in; i++) {
        const od_shape_info *s = c->in[i];
        if (s->dtype != x->dtype || s->rank != x->rank)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                 "input %d is %s of rank %d; input 0 is %s of rank %d", i,
                                 od_dtype_name(s->dtype), s->rank, od_dtype_name(x->dtype),
                                 x->rank);
        for (int d = 0; d < x->rank; d++)
            if (d != axis && s->dims[d] != x->dims[d])
                return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                     "input %d has dim %d = %lld; input 0 has %lld", i, d,
                                     (long long)s->dims[d], (long long)x->dims[d]);
        o->dims[axis] += s->dims[axis];
    }
    return OD_STATUS_OK;
}

static od_status concat_run(od_step *s, od_error *err) {
    od_buf *y = s->out[0];
    int axis = concat_axis(s->node, s->opset, y->rank);
    size_t esize = od_dtype_size(y->dtype);
    int64_t ys[OD_MAX_RANK], xs[OD_MAX_RANK], offset = 0;
    od_strides(y->rank, y->dims, ys);
    for (int i = 0; i < s->n_in; i++) {
        const od_buf *x = s->in[i];
        od_strides(x->rank, x->dims, xs);
        od_copy_strided((char *)y->data + (size_t)(offset * ys[axis]) * esize, ys, x->data, xs,
                        x->rank, x->dims, esize, s->pool);
        offset += x->dims[axis];
    }
    return OD_STATUS_OK;
}

const od_op_desc od_op_Concat = {.name = "Concat", .infer = concat_infer, .run = concat_run};

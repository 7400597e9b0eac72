/* Concat, opsets 1-17: axis (default 1 in opset 1, required from 4, negative from 11). Any
 * element type with a fixed size; each input is one strided copy into its slab of the
 * output. Backward: yes, for float inputs of one layout (training keeps Concat between
 * channels-last values channels-last). Layout: plain. */
#include "../train_internal.h"
#include "strided.h"

#include <string.h>

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

/* ---- Concat ----------------------------------------------------------------------------- */

static od_status concat_prepare(od_tstep *s, od_error *err) {
    for (int k = 0; k < s->n_in; k++)
        if (s->in[k] && (s->in[k]->cl != s->out[0]->cl || !s->in[k]->data))
            return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training needs Concat inputs of one layout");
    return OD_STATUS_OK;
}

static void concat_walk(od_tstep *s, bool backward) {
    const od_tbuf *o = s->out[0];
    int axis = concat_axis(s->node, s->opset, o->rank);
    if (o->cl && o->rank >= 3) axis = axis == 0 ? 0 : axis == 1 ? o->rank - 1 : axis - 1;
    int64_t pd[OD_MAX_RANK];
    od_tbuf_phys_dims(o, pd);
    int64_t outer = od_dims_count(axis, pd), inner = od_dims_count(o->rank - axis - 1, pd + axis + 1);
    int64_t offset = 0;
    for (int k = 0; k < s->n_in; k++) {
        od_tbuf *in = s->in[k];
        if (!in) continue;
        int64_t ip[OD_MAX_RANK];
        od_tbuf_phys_dims(in, ip);
        int64_t block = ip[axis] * inner;
        for (int64_t i = 0; i < outer; i++) {
            float *dst = o->data + i * pd[axis] * inner + offset;
            if (!backward) memcpy(dst, in->data + i * block, sizeof(float) * (size_t)block);
            else if (in->grad) od_add_into(in->grad + i * block, o->grad + i * pd[axis] * inner + offset, block);
        }
        offset += block;
    }
}

static od_status concat_forward(od_tstep *s, od_error *err) {
    concat_walk(s, false);
    return OD_STATUS_OK;
}

static od_status concat_backward(od_tstep *s, od_error *err) {
    concat_walk(s, true);
    return OD_STATUS_OK;
}

OD_OP_FACTS(Concat, 1, "axis");
/* axis is required from opset 4: without one, do not split */
static bool concat_per_sample(const od_node *n, int rank) { return od_per_sample_axis(n, rank, 0); }

const od_op_desc od_op_Concat = {OD_OP_NAME(Concat), .channel_role = OD_CHANNELS_CONCATENATES, .stable_since = 4, .per_sample = concat_per_sample,
                                 .infer = concat_infer, .run = concat_run,
                                 .train_layout = OD_TRAIN_LAYOUT_SAME, .train_prepare = concat_prepare,
                                 .forward_train = concat_forward, .backward = concat_backward};

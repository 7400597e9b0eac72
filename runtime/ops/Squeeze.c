/* Squeeze, opsets 1-17: axes as an attribute (before 13) or a constant input (13 on), negative
 * from 11; without axes every dim of size 1 goes. Any element type; shares its input's memory.
 * Backward: not yet. Layout: plain. */
#include "../train_internal.h"
#include "strided.h"

static od_status squeeze_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    const od_shape_info *x = c->in[0];
    int64_t axes[OD_MAX_RANK];
    int n = -1;
    od_status st;
    if (c->n_in > 1 && c->in[1]) {
        st = od_const_ints_input(c, 1, "the axes input", axes, OD_MAX_RANK, &n);
        if (st) return st;
    } else {
        n = od_attr_ints(c->node, "axes", axes, OD_MAX_RANK);
        if (n > OD_MAX_RANK)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "too many axes");
    }
    bool drop[OD_MAX_RANK] = {0};
    if (n <= 0) { /* no axes (or an empty list): every dim of 1 */
        for (int d = 0; d < x->rank; d++) drop[d] = x->dims[d] == 1;
    } else {
        st = od_normalize_axes(c, axes, n, x->rank);
        if (st) return st;
        for (int i = 0; i < n; i++) {
            if (x->dims[axes[i]] != 1)
                return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                     "cannot squeeze dim %d of size %lld", (int)axes[i],
                                     (long long)x->dims[axes[i]]);
            drop[axes[i]] = true;
        }
    }
    od_shape_info *o = &c->out[0];
    *o = (od_shape_info){.dtype = x->dtype, .rank = 0};
    for (int d = 0; d < x->rank; d++)
        if (!drop[d]) o->dims[o->rank++] = x->dims[d];
    return OD_STATUS_OK;
}

static od_status alias_run(od_step *s, od_error *err) { return OD_STATUS_OK; }

OD_OP_FACTS(Squeeze, 1, "axes");
const od_op_desc od_op_Squeeze = {OD_OP_NAME(Squeeze), .channel_role = OD_CHANNELS_MOVES, .stable_since = 13, .alias_input0 = true,
                                  .infer = squeeze_infer, .run = alias_run, OD_TRAIN_PLAIN_COPY};

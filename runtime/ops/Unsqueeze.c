/* Unsqueeze, opsets 1-17: axes (of the output) as an attribute (before 13) or a constant input
 * (13 on), negative from 11, in any order. Any element type; shares its input's memory.
 * Backward: not yet. Layout: plain. */
#include "../train_internal.h"
#include "strided.h"

static od_status unsqueeze_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    const od_shape_info *x = c->in[0];
    int64_t axes[OD_MAX_RANK + 1];
    int n;
    od_status st;
    if (c->n_in > 1 && c->in[1]) {
        st = od_const_ints_input(c, 1, "the axes input", axes, OD_MAX_RANK + 1, &n);
        if (st) return st;
    } else {
        n = od_attr_ints(c->node, "axes", axes, OD_MAX_RANK + 1);
        if (n < 0)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs axes");
    }
    int rank = x->rank + n;
    if (rank > OD_MAX_RANK)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "rank %d is above %d", rank,
                             OD_MAX_RANK);
    st = od_normalize_axes(c, axes, n, rank);
    if (st) return st;
    bool added[OD_MAX_RANK] = {0};
    for (int i = 0; i < n; i++) added[axes[i]] = true;
    od_shape_info *o = &c->out[0];
    *o = (od_shape_info){.dtype = x->dtype, .rank = rank};
    for (int d = 0, k = 0; d < rank; d++) o->dims[d] = added[d] ? 1 : x->dims[k++];
    return OD_STATUS_OK;
}

static od_status alias_run(od_step *s, od_error *err) { return OD_STATUS_OK; }

OD_OP_FACTS(Unsqueeze, 1, "axes");
const od_op_desc od_op_Unsqueeze = {OD_OP_NAME(Unsqueeze), .channel_role = OD_CHANNELS_MOVES, .stable_since = 13, .alias_input0 = true,
                                    .infer = unsqueeze_infer, .run = alias_run, OD_TRAIN_PLAIN_COPY};

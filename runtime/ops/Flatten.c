/* Flatten, opsets 1-13: [d0..d(axis-1)] x [d(axis)..] as a 2-D view; axis may be negative
 * (opset 11). Shares its input's memory. Layout: plain. */
#include "../train_internal.h"

static od_status flatten_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    const od_shape_info *x = c->in[0];
    int64_t axis = od_attr_int(c->node, "axis", 1);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis > x->rank)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "axis %lld is out of range for rank %d",
                             (long long)od_attr_int(c->node, "axis", 1), x->rank);
    c->out[0].dtype = x->dtype;
    c->out[0].rank = 2;
    c->out[0].dims[0] = od_dims_count((int)axis, x->dims);
    c->out[0].dims[1] = od_dims_count(x->rank - (int)axis, x->dims + axis);
    return OD_STATUS_OK;
}

static od_status alias_run(od_step *s, od_error *err) { return OD_STATUS_OK; }

OD_OP_FACTS(Flatten, 1, "axis=1");
/* keeps samples apart unless axis 0 folds the batch into one row */
static bool flatten_per_sample(const od_node *n, int rank) {
    return od_axis(od_attr_int(n, "axis", 1), rank + 1) != 0;
}

extern const od_op_desc od_op_Flatten;
/* int8 (plan_qs8.c): the same op, the int8 values passing through */
const od_op_desc od_op_Flatten = {OD_OP_NAME(Flatten), .channel_role = OD_CHANNELS_MOVES, .stable_since = 1, .qs8 = &od_op_Flatten, .qs8_same = true, .alias_input0 = true, .per_sample = flatten_per_sample,
                                  .infer = flatten_infer, .run = alias_run, OD_TRAIN_PLAIN_COPY};

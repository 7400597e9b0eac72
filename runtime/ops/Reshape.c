/* Reshape, opsets 5-14: shape from a constant input (0 copies a dim unless allowzero, -1 is
 * inferred). Shares its input's memory: no work at run time. Layout: plain. */
#include "../train_internal.h"

#include <string.h>

static od_status reshape_infer(od_infer_ctx *c) {
    if (c->n_in < 2 || !c->in[0] || !c->in[1])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs data and shape inputs");
    int64_t shape[OD_MAX_RANK + 1];
    int n = od_const_ints(c->in[1], shape, OD_MAX_RANK + 1);
    if (n < 0)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "the shape input must be a constant (or fold to one)");
    if (n > OD_MAX_RANK)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "rank %d is above %d", n, OD_MAX_RANK);
    bool allowzero = od_attr_int(c->node, "allowzero", 0) != 0;
    const od_shape_info *x = c->in[0];
    int64_t total = od_dims_count(x->rank, x->dims), known = 1;
    int infer_at = -1;
    for (int d = 0; d < n; d++) {
        if (shape[d] == 0 && !allowzero) {
            if (d >= x->rank)
                return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "0 at dim %d copies a dim the input lacks", d);
            shape[d] = x->dims[d];
        }
        if (shape[d] == -1) {
            if (infer_at >= 0)
                return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "more than one -1 in the shape");
            infer_at = d;
        } else if (shape[d] < 0) {
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "negative dim %lld", (long long)shape[d]);
        } else if (__builtin_mul_overflow(known, shape[d], &known)) {
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "the shape's dims multiply past int64");
        }
    }
    if (infer_at >= 0) {
        if (known == 0 || total % known)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "cannot reshape %lld elements with a -1",
                                 (long long)total);
        shape[infer_at] = total / known;
    } else if (known != total) {
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "cannot reshape %lld elements into %lld",
                             (long long)total, (long long)known);
    }
    c->out[0].dtype = x->dtype;
    c->out[0].rank = n;
    memcpy(c->out[0].dims, shape, sizeof(int64_t) * n);
    return OD_STATUS_OK;
}

static od_status alias_run(od_step *s, od_error *err) { return OD_STATUS_OK; }

OD_OP_FACTS(Reshape, 1, "allowzero", "consumed_inputs", "shape");
extern const od_op_desc od_op_Reshape;
/* int8 (plan_qs8.c): the same op, the int8 values passing through */
const od_op_desc od_op_Reshape = {OD_OP_NAME(Reshape), .channel_role = OD_CHANNELS_MOVES, .stable_since = 5, .qs8 = &od_op_Reshape, .qs8_same = true, .per_sample = od_per_sample_always,
                                  .alias_input0 = true,
                                  .infer = reshape_infer, .run = alias_run, OD_TRAIN_PLAIN_COPY,
                                  /* a 4-D result (ShuffleNet's channel shuffle) goes on into
                                   * convolutions, which take channels-last */
                                  .train_layout = OD_TRAIN_LAYOUT_SPATIAL};

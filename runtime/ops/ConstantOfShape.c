/* ConstantOfShape, opsets 9-17: a tensor of the shape given by a constant int64 input, filled
 * with `value` (one element of any fixed-size type; default float 0). Folded at plan time.
 * Backward: none (no inputs to train). Layout: plain. */
#include "strided.h"

#include <string.h>

static od_status cos_infer(od_infer_ctx *c) {
    int64_t shape[OD_MAX_RANK + 1];
    int n;
    od_status st = od_const_ints_input(c, 0, "the shape input", shape, OD_MAX_RANK + 1, &n);
    if (st) return st;
    if (n > OD_MAX_RANK)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "rank %d is above %d", n,
                             OD_MAX_RANK);
    const od_attr *a = od_node_attr(c->node, "value");
    od_dtype t = OD_DTYPE_FLOAT;
    if (a) {
        if (a->type != OD_ATTR_TENSOR || !a->t || od_tensor_count(a->t) != 1)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                                 "value must be a one-element tensor");
        t = a->t->dtype;
        if (od_dtype_size(t) == 0)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "value of type %s is not supported", od_dtype_name(t));
    }
    for (int d = 0; d < n; d++)
        if (shape[d] < 0)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "negative dim %lld",
                                 (long long)shape[d]);
    if (od_dims_count(n, shape) < 0)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "the output is too large");
    c->out[0] = (od_shape_info){.dtype = t, .rank = n};
    memcpy(c->out[0].dims, shape, sizeof(int64_t) * n);
    return OD_STATUS_OK;
}

static od_status cos_run(od_step *s, od_error *err) {
    od_buf *y = s->out[0];
    const od_attr *a = od_node_attr(s->node, "value");
    size_t e = od_dtype_size(y->dtype);
    int64_t count = od_buf_count(y);
    char *dst = (void *)y->data;
    if (count == 0) return OD_STATUS_OK;
    if (a) memcpy(dst, a->t->data, e);
    else memset(dst, 0, e);
    for (int64_t done = 1; done < count; done *= 2)
        memcpy(dst + done * e, dst, (size_t)(done < count - done ? done : count - done) * e);
    return OD_STATUS_OK;
}

OD_OP_FACTS(ConstantOfShape, 9, "value");
const od_op_desc od_op_ConstantOfShape = {OD_OP_NAME(ConstantOfShape), .channel_role = OD_CHANNELS_NONE, .stable_since = 9, .infer = cos_infer,
                                          .run = cos_run};

/* Shape, opsets 1-15 (start/end from 15): the input's dims as int64, known at plan time. */
#include "../op.h"

static od_status shape_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    const od_shape_info *x = c->in[0];
    int64_t start = od_attr_int(c->node, "start", 0), end = od_attr_int(c->node, "end", x->rank);
    if (start < 0) start += x->rank;
    if (end < 0) end += x->rank;
    if (start < 0) start = 0;
    if (end > x->rank) end = x->rank;
    int64_t n = end > start ? end - start : 0;
    od_tensor *t = od_tensor_create(NULL, OD_DTYPE_INT64, 1, &n, c->err);
    if (!t) return c->err ? c->err->status : OD_STATUS_OUT_OF_MEMORY;
    for (int64_t i = 0; i < n; i++) ((int64_t *)t->data)[i] = x->dims[start + i];
    c->out[0].dtype = OD_DTYPE_INT64;
    c->out[0].rank = 1;
    c->out[0].dims[0] = n;
    c->out_constant[0] = t;
    return OD_STATUS_OK;
}

static od_status shape_run(od_step *s, od_error *err) {
    return od_node_error(err, OD_STATUS_BACKEND, s->node, "a Shape reached run time");
}

OD_OP_FACTS(Shape, 1, "end", "start");
const od_op_desc od_op_Shape = {OD_OP_NAME(Shape), .channel_role = OD_CHANNELS_NONE, .stable_since = 1, .per_sample = od_per_sample_always,
                                .infer = shape_infer, .run = shape_run};

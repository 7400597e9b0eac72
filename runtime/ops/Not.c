/* Not, opset 1: logical negation of bool. Backward: none. Layout: element-wise. */
#include "../op.h"

static od_status not_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    if (c->in[0]->dtype != OD_DTYPE_BOOL)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "input has element type %s; expected bool",
                             od_dtype_name(c->in[0]->dtype));
    od_infer_same(c, 0, 0);
    return OD_STATUS_OK;
}

static od_status not_run(od_step *s, od_error *err) {
    const uint8_t *x = (const void *)s->in[0]->data;
    uint8_t *y = (void *)s->out[0]->data;
    for (int64_t i = 0, n = od_buf_count(s->out[0]); i < n; i++) y[i] = !x[i];
    return OD_STATUS_OK;
}

OD_OP_FACTS(Not, 1, NULL);
const od_op_desc od_op_Not = {OD_OP_NAME(Not), .channel_role = OD_CHANNELS_ELEMENTWISE, .stable_since = 1, .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                              .infer = not_infer, .run = not_run};

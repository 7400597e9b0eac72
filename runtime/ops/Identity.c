/* Identity, opsets 1-16 (tensors only): shares its input's memory, keeps its layout.
 * Backward: yes. */
#include "../train_internal.h"

#include <string.h>

static od_status identity_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    od_infer_same(c, 0, 0);
    return OD_STATUS_OK;
}

static od_status alias_run(od_step *s, od_error *err) { return OD_STATUS_OK; }

/* Training keeps the input's layout. */
static od_status identity_forward_train(od_tstep *s, od_error *err) {
    if (s->out[0]->data != s->in[0]->data)
        memcpy(s->out[0]->data, s->in[0]->data, sizeof(float) * (size_t)s->out[0]->count);
    return OD_STATUS_OK;
}

static od_status identity_backward(od_tstep *s, od_error *err) {
    od_add_into(s->in[0]->grad, s->out[0]->grad, s->out[0]->count);
    return OD_STATUS_OK;
}

OD_OP_FACTS(Identity, 1, NULL);
const od_op_desc od_op_Identity = {OD_OP_NAME(Identity), .channel_role = OD_CHANNELS_ELEMENTWISE, .stable_since = 1, .per_sample = od_per_sample_always,
                                   .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                                   .alias_input0 = true, .infer = identity_infer, .run = alias_run,
                                   .train_layout = OD_TRAIN_LAYOUT_SAME,
                                   .forward_train = identity_forward_train,
                                   .backward = identity_backward};

/* Dropout, opsets 1-13, inference: output = input (shared memory); the optional mask output
 * is all true. training_mode as a constant true is refused here (training uses its own path).
 * Layout: keeps its input's. */
#include "../op.h"

#include <string.h>

static od_status dropout_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    if (c->n_in > 2 && c->in[2]) {
        if (!c->in[2]->constant)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "training_mode must be a constant");
        const od_tensor *t = c->in[2]->constant;
        if (t->nbytes >= 1 && ((const uint8_t *)t->data)[0])
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "training_mode = true is not supported for inference");
    }
    od_infer_same(c, 0, 0);
    if (c->n_out > 1) {
        od_infer_same(c, 1, 0);
        c->out[1].dtype = OD_DTYPE_BOOL;
    }
    return OD_STATUS_OK;
}

static od_status dropout_run(od_step *s, od_error *err) {
    if (s->n_out > 1 && s->out[1]) memset(s->out[1]->data, 1, s->out[1]->nbytes);
    return OD_STATUS_OK;
}

const od_op_desc od_op_Dropout = {.name = "Dropout", .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                                  .alias_input0 = true, .infer = dropout_infer, .run = dropout_run};

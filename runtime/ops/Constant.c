/* Constant, opsets 1-13: value (tensor), value_float(s), value_int(s). Always folded at plan
 * time; sparse_value and value_string(s) are refused. */
#include "../op.h"

#include <string.h>

static od_status constant_infer(od_infer_ctx *c) {
    const od_node *n = c->node;
    od_tensor *t = NULL;
    const od_attr *a;
    if ((a = od_node_attr(n, "value")) && a->type == OD_ATTR_TENSOR && a->t) {
        if (od_dtype_size(a->t->dtype) == 0)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, n, "value of type %s", od_dtype_name(a->t->dtype));
        t = od_tensor_create(NULL, a->t->dtype, a->t->rank, a->t->dims, c->err);
        if (t) memcpy(t->data, a->t->data, a->t->nbytes);
    } else if ((a = od_node_attr(n, "value_float")) && a->type == OD_ATTR_FLOAT) {
        t = od_tensor_create(NULL, OD_DTYPE_FLOAT, 0, NULL, c->err);
        if (t) *(float *)t->data = a->f;
    } else if ((a = od_node_attr(n, "value_int")) && a->type == OD_ATTR_INT) {
        t = od_tensor_create(NULL, OD_DTYPE_INT64, 0, NULL, c->err);
        if (t) *(int64_t *)t->data = a->i;
    } else if ((a = od_node_attr(n, "value_floats")) && a->type == OD_ATTR_FLOATS) {
        int64_t d = (int64_t)a->count;
        t = od_tensor_create(NULL, OD_DTYPE_FLOAT, 1, &d, c->err);
        if (t && d) memcpy(t->data, a->floats, sizeof(float) * a->count);
    } else if ((a = od_node_attr(n, "value_ints")) && a->type == OD_ATTR_INTS) {
        int64_t d = (int64_t)a->count;
        t = od_tensor_create(NULL, OD_DTYPE_INT64, 1, &d, c->err);
        if (t && d) memcpy(t->data, a->ints, sizeof(int64_t) * a->count);
    } else {
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, n,
                             "needs a value, value_float(s) or value_int(s) attribute");
    }
    if (!t) return c->err ? c->err->status : OD_STATUS_OUT_OF_MEMORY;
    c->out[0].dtype = t->dtype;
    c->out[0].rank = t->rank;
    memcpy(c->out[0].dims, t->dims, sizeof t->dims);
    c->out_constant[0] = t;
    return OD_STATUS_OK;
}

static od_status constant_run(od_step *s, od_error *err) {
    return od_node_error(err, OD_STATUS_BACKEND, s->node, "a Constant reached run time");
}

OD_OP_FACTS(Constant, 1,
            "sparse_value", "value", "value_float", "value_floats", "value_int", "value_ints",
            "value_string", "value_strings");
const od_op_desc od_op_Constant = {OD_OP_NAME(Constant), .channel_role = OD_CHANNELS_NONE, .stable_since = 1, .per_sample = od_per_sample_always,
                                   .infer = constant_infer, .run = constant_run};

/* Cast, opsets 1-17 (`to` a type name in opset 1, a type code from 6): between float, double,
 * float16, bfloat16 (truncating, as ONNX's reference does), bool and the integer types.
 * Integers convert exactly through int64; floats into integers truncate toward zero. Strings
 * are refused. Backward: not yet. Layout: element-wise. */
#include "strided.h"

#include <string.h>
#include <strings.h>

static od_dtype cast_to(const od_node *n) {
    const od_attr *a = od_node_attr(n, "to");
    if (!a) return OD_DTYPE_UNDEFINED;
    if (a->type == OD_ATTR_INT)
        return od_dtype_valid((int)a->i) ? (od_dtype)a->i : OD_DTYPE_UNDEFINED;
    char buf[32];
    const char *name = od_attr_string(n, "to", "", buf, sizeof buf);
    for (int t = 1; t < OD_DTYPE_COUNT; t++)
        if (strcasecmp(name, od_dtype_name((od_dtype)t)) == 0) return (od_dtype)t;
    return OD_DTYPE_UNDEFINED;
}

static od_status cast_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    od_dtype from = c->in[0]->dtype, to = cast_to(c->node);
    if (to == OD_DTYPE_UNDEFINED)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "needs a valid `to` element type");
    if (!od_numeric(from) || !od_numeric(to))
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "cast from %s to %s is not supported", od_dtype_name(from),
                             od_dtype_name(to));
    od_infer_same(c, 0, 0);
    c->out[0].dtype = to;
    return OD_STATUS_OK;
}

static od_status cast_run(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    od_buf *y = s->out[0];
    int64_t n = od_buf_count(x);
    size_t ex = od_dtype_size(x->dtype), ey = od_dtype_size(y->dtype);
    if (x->dtype == y->dtype) {
        if (x->data != y->data) memcpy(y->data, x->data, (size_t)n * ex);
        return OD_STATUS_OK;
    }
    bool exact = od_integral(x->dtype) && od_integral(y->dtype);
    for (int64_t k = 0; k < n; k += 512) { /* a block at a time through the stack */
        union {
            double f[512];
            int64_t i[512];
        } tmp;
        int64_t m = n - k < 512 ? n - k : 512;
        const char *src = (const char *)x->data + k * ex;
        char *dst = (char *)y->data + k * ey;
        if (exact) {
            od_load_int64s(src, x->dtype, m, tmp.i);
            od_store_int64s(tmp.i, m, dst, y->dtype);
        } else {
            od_load_doubles(src, x->dtype, m, tmp.f);
            od_store_doubles(tmp.f, m, dst, y->dtype);
        }
    }
    return OD_STATUS_OK;
}

OD_OP_FACTS(Cast, 1, "to");
const od_op_desc od_op_Cast = {OD_OP_NAME(Cast), .channel_role = OD_CHANNELS_ELEMENTWISE, .stable_since = 6, .per_sample = od_per_sample_always,
                               .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                               .infer = cast_infer, .run = cast_run};

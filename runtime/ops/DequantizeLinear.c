/* DequantizeLinear, opsets 10-18: y = (x - x_zero_point) * x_scale, float32 out, for int8,
 * uint8 and int32 x (int32 only with a zero point of 0 or none). Opset 10 is per tensor (scalar
 * scale and zero point); from 13, a 1-D scale (and zero point) of length x.dims[axis] is per
 * axis (attribute axis, default 1, negative from the end). A 1-D scale of one element is per
 * tensor. Weight storage (`--weights int8`) writes it over constant initializers, so plans
 * usually fold it away; on activations (QDQ models) it runs here, or inside a quantized step
 * (plan_qs8.c). Backward: none (inference only). Layout: plain. */
#include "quant_common.h"

static bool dq_input_type(od_dtype t) {
    return t == OD_DTYPE_INT8 || t == OD_DTYPE_UINT8 || t == OD_DTYPE_INT32;
}

static od_status dq_infer(od_infer_ctx *c) {
    if (c->n_in < 2 || !c->in[0] || !c->in[1])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs x and x_scale");
    const od_shape_info *x = c->in[0], *scale = c->in[1];
    const od_shape_info *zp = c->n_in > 2 ? c->in[2] : NULL;
    if (!dq_input_type(x->dtype))
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "x has element type %s; expected int8, uint8 or int32",
                             od_dtype_name(x->dtype));
    if (zp && zp->dtype != x->dtype)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "x_zero_point has element type %s, x has %s",
                             od_dtype_name(zp->dtype), od_dtype_name(x->dtype));
    if (od_quant_infer_axis(c, x, scale, zp, "x_scale") == -1)
        return c->err ? c->err->status : OD_STATUS_SHAPE;
    od_infer_same(c, 0, 0);
    c->out[0].dtype = OD_DTYPE_FLOAT;
    return OD_STATUS_OK;
}

static void dq_span(const od_step *s, int64_t base, int64_t n, float f, float z) {
    const od_buf *x = s->in[0];
    float *y = s->out[0]->data;
    for (int64_t i = base; i < base + n; i++)
        y[i] = (od_quant_load(x->data, x->dtype, i) - z) * f;
}

static od_status dq_run(od_step *s, od_error *err) {
    const od_buf *x = s->in[0], *zp = s->n_in > 2 ? s->in[2] : NULL;
    if (zp && x->dtype == OD_DTYPE_INT32) {
        for (int64_t k = 0; k < od_buf_count(zp); k++)
            if (od_quant_load(zp->data, zp->dtype, k) != 0)
                return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node,
                                     "an int32 x needs a zero point of 0");
    }
    od_quant_walk(s, dq_span);
    return OD_STATUS_OK;
}

OD_OP_FACTS(DequantizeLinear, 10, "axis");
const od_op_desc od_op_DequantizeLinear = {
    OD_OP_NAME(DequantizeLinear), .channel_role = OD_CHANNELS_NONE, .stable_since = 10, .per_sample = od_per_sample_always, .infer = dq_infer, .run = dq_run};

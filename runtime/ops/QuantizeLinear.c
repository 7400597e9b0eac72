/* QuantizeLinear, opsets 10-18: y = saturate(round(x / y_scale) + y_zero_point), rounding half
 * to even, saturating to [0, 255] for uint8 y (the default without a zero point) or [-128, 127]
 * for int8; x float32 (or int32). Per tensor, or from opset 13 per axis (axis, default 1), as
 * DequantizeLinear (quant_common.c). A QDQ model's Q -> DQ pairs run here in float emulation
 * unless a quantized step absorbs them (plan_qs8.c). Backward: none (inference only). Layout:
 * plain. */
#include "quant_common.h"

#include <math.h>

static od_status q_infer(od_infer_ctx *c) {
    if (c->n_in < 2 || !c->in[0] || !c->in[1])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs x and y_scale");
    const od_shape_info *x = c->in[0], *scale = c->in[1];
    const od_shape_info *zp = c->n_in > 2 ? c->in[2] : NULL;
    if (x->dtype != OD_DTYPE_FLOAT && x->dtype != OD_DTYPE_INT32)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "x has element type %s; expected float or int32", od_dtype_name(x->dtype));
    od_dtype yt = zp ? zp->dtype : OD_DTYPE_UINT8;
    if (yt != OD_DTYPE_UINT8 && yt != OD_DTYPE_INT8)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "y_zero_point has element type %s; expected uint8 or int8",
                             od_dtype_name(yt));
    if (od_quant_infer_axis(c, x, scale, zp, "y_scale") == -1)
        return c->err ? c->err->status : OD_STATUS_SHAPE;
    od_infer_same(c, 0, 0);
    c->out[0].dtype = yt;
    return OD_STATUS_OK;
}

/* round(v) + z, saturated to [lo, hi] (NaN: z, as ONNX Runtime's cast of NaN gives 0). Rounds
 * half to even by adding and removing 1.5 * 2^23 (the FPU's default mode), after clamping v to
 * +-1024, which leaves the saturated result alone: a loop of these vectorizes (nearbyintf is a
 * call per element on baseline x86-64). */
static inline int q_one(float v, float z, float lo, float hi) {
    const float magic = 12582912.0f;
    if (!(v == v)) return (int)z;
    v = v < -1024.0f ? -1024.0f : v > 1024.0f ? 1024.0f : v;
    float r = ((v + magic) - magic) + z;
    r = r < lo ? lo : r > hi ? hi : r;
    return (int)r;
}

static void q_span(const od_step *s, int64_t base, int64_t n, float f, float z) {
    const od_buf *x = s->in[0];
    od_buf *y = s->out[0];
    bool i8 = y->dtype == OD_DTYPE_INT8;
    float lo = i8 ? -128.0f : 0.0f, hi = i8 ? 127.0f : 255.0f;
    for (int64_t i = base; i < base + n; i++) {
        float v = x->dtype == OD_DTYPE_FLOAT ? ((const float *)x->data)[i]
                                             : (float)((const int32_t *)x->data)[i];
        int q = q_one(v / f, z, lo, hi);
        if (i8) ((int8_t *)y->data)[i] = (int8_t)q;
        else ((uint8_t *)y->data)[i] = (uint8_t)q;
    }
}

static od_status q_run(od_step *s, od_error *err) {
    (void)err;
    od_quant_walk(s, q_span);
    return OD_STATUS_OK;
}

OD_OP_FACTS(QuantizeLinear, 10, "axis");
const od_op_desc od_op_QuantizeLinear = {
    OD_OP_NAME(QuantizeLinear), .channel_role = OD_CHANNELS_NONE, .stable_since = 10, .per_sample = od_per_sample_always, .infer = q_infer, .run = q_run};

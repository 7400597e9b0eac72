/* DequantizeLinear, opsets 10-18: y = (x - x_zero_point) * x_scale, float32 out, for int8,
 * uint8 and int32 x (int32 only with a zero point of 0 or none). Opset 10 is per tensor (scalar
 * scale and zero point); from 13, a 1-D scale (and zero point) of length x.dims[axis] is per
 * axis (attribute axis, default 1, negative from the end). A 1-D scale of one element is per
 * tensor. Weight storage (`--weights int8`) writes it over constant initializers, so plans
 * usually fold it away. Backward: none (inference only). Layout: plain. */
#include "../op.h"

static bool dq_input_type(od_dtype t) {
    return t == OD_DTYPE_INT8 || t == OD_DTYPE_UINT8 || t == OD_DTYPE_INT32;
}

/* Per-axis dim for the scale (0: per tensor); -1 with the error set. */
static int dq_axis(od_infer_ctx *c, const od_shape_info *x, const od_shape_info *scale) {
    int64_t count = od_dims_count(scale->rank, scale->dims);
    if (scale->rank == 0 || (scale->rank == 1 && count == 1 && c->opset < 13)) return -2;
    if (scale->rank != 1) {
        od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                      "x_scale must be a scalar or 1-D, not rank %d", scale->rank);
        return -1;
    }
    if (c->opset < 13 && count != 1) {
        od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                      "per-axis x_scale needs opset 13 or later (the model imports %lld)",
                      (long long)c->opset);
        return -1;
    }
    int64_t a = od_attr_int(c->node, "axis", 1);
    int axis = od_axis(a, x->rank);
    if (axis < 0) {
        if (count == 1) return -2;
        od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                      "axis %lld is out of range for rank %d", (long long)a, x->rank);
        return -1;
    }
    if (x->dims[axis] != count) {
        if (count == 1) return -2;
        od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                      "x_scale has %lld elements, dim %d of x has %lld", (long long)count, axis,
                      (long long)x->dims[axis]);
        return -1;
    }
    return axis;
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
    if (scale->dtype != OD_DTYPE_FLOAT)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "x_scale has element type %s; expected float",
                             od_dtype_name(scale->dtype));
    if (dq_axis(c, x, scale) == -1) return c->err ? c->err->status : OD_STATUS_SHAPE;
    if (zp) {
        if (zp->dtype != x->dtype)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                                 "x_zero_point has element type %s, x has %s",
                                 od_dtype_name(zp->dtype), od_dtype_name(x->dtype));
        if (zp->rank != scale->rank ||
            od_dims_count(zp->rank, zp->dims) != od_dims_count(scale->rank, scale->dims))
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                 "x_zero_point and x_scale differ in shape");
    }
    od_infer_same(c, 0, 0);
    c->out[0].dtype = OD_DTYPE_FLOAT;
    return OD_STATUS_OK;
}

static float dq_load(const void *p, od_dtype t, int64_t i) {
    switch (t) {
    case OD_DTYPE_INT8:
        return (float)((const int8_t *)p)[i];
    case OD_DTYPE_UINT8:
        return (float)((const uint8_t *)p)[i];
    default:
        return (float)((const int32_t *)p)[i];
    }
}

static od_status dq_run(od_step *s, od_error *err) {
    const od_buf *x = s->in[0], *scale = s->in[1];
    const od_buf *zp = s->n_in > 2 ? s->in[2] : NULL;
    float *y = s->out[0]->data;
    const float *sc = scale->data;
    int64_t n = od_buf_count(x), count = od_buf_count(scale);
    int axis = -1;
    if (scale->rank == 1 && count > 1) axis = od_axis(od_attr_int(s->node, "axis", 1), x->rank);
    if (zp && x->dtype == OD_DTYPE_INT32) {
        for (int64_t k = 0; k < od_buf_count(zp); k++)
            if (dq_load(zp->data, zp->dtype, k) != 0)
                return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node,
                                     "an int32 x needs a zero point of 0");
    }
    if (axis < 0) {
        float z = zp ? dq_load(zp->data, zp->dtype, 0) : 0.0f, f = sc[0];
        for (int64_t i = 0; i < n; i++)
            y[i] = (dq_load(x->data, x->dtype, i) - z) * f;
        return OD_STATUS_OK;
    }
    /* x as [outer, dims[axis], inner]: channel c uses sc[c] and zp[c] */
    int64_t C = x->dims[axis], inner = od_dims_count(x->rank - axis - 1, x->dims + axis + 1);
    int64_t outer = C && inner ? n / (C * inner) : 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < C; c++) {
            float z = zp ? dq_load(zp->data, zp->dtype, c) : 0.0f, f = sc[c];
            int64_t base = (o * C + c) * inner;
            for (int64_t i = 0; i < inner; i++)
                y[base + i] = (dq_load(x->data, x->dtype, base + i) - z) * f;
        }
    return OD_STATUS_OK;
}

OD_OP_FACTS(DequantizeLinear, 10, "axis");
const od_op_desc od_op_DequantizeLinear = {
    OD_OP_NAME(DequantizeLinear), .channel_role = OD_CHANNELS_NONE, .stable_since = 10, .per_sample = od_per_sample_always, .infer = dq_infer, .run = dq_run};

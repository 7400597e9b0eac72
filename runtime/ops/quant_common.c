/* What QuantizeLinear and DequantizeLinear share (quant_common.h). */
#include "quant_common.h"

int od_quant_infer_axis(od_infer_ctx *c, const od_shape_info *x, const od_shape_info *scale,
                        const od_shape_info *zp, const char *scale_name) {
    if (scale->dtype != OD_DTYPE_FLOAT) {
        od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "%s has element type %s; expected float",
                      scale_name, od_dtype_name(scale->dtype));
        return -1;
    }
    if (zp && (zp->rank != scale->rank ||
               od_dims_count(zp->rank, zp->dims) != od_dims_count(scale->rank, scale->dims))) {
        od_node_error(c->err, OD_STATUS_SHAPE, c->node, "the zero point and %s differ in shape",
                      scale_name);
        return -1;
    }
    int64_t count = od_dims_count(scale->rank, scale->dims);
    if (scale->rank == 0 || (scale->rank == 1 && count == 1 && c->opset < 13)) return -2;
    if (scale->rank != 1) {
        od_node_error(c->err, OD_STATUS_SHAPE, c->node, "%s must be a scalar or 1-D, not rank %d",
                      scale_name, scale->rank);
        return -1;
    }
    if (c->opset < 13 && count != 1) {
        od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                      "per-axis %s needs opset 13 or later (the model imports %lld)", scale_name,
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
        od_node_error(c->err, OD_STATUS_SHAPE, c->node, "%s has %lld elements, dim %d of x has %lld",
                      scale_name, (long long)count, axis, (long long)x->dims[axis]);
        return -1;
    }
    return axis;
}

void od_quant_walk(const od_step *s, od_quant_span_fn span) {
    const od_buf *x = s->in[0], *scale = s->in[1], *zp = s->n_in > 2 ? s->in[2] : NULL;
    const float *sc = scale->data;
    int axis = scale->rank != 1 || od_buf_count(scale) <= 1
                   ? -1
                   : od_axis(od_attr_int(s->node, "axis", 1), x->rank);
    int64_t n = od_buf_count(x);
    int64_t C = axis >= 0 ? x->dims[axis] : 1;
    int64_t inner = axis >= 0 ? od_dims_count(x->rank - axis - 1, x->dims + axis + 1) : n;
    int64_t outer = C && inner ? n / (C * inner) : 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < C; c++)
            span(s, (o * C + c) * inner, inner, sc[c],
                 zp ? od_quant_load(zp->data, zp->dtype, c) : 0.0f);
}

float od_quant_load(const void *p, od_dtype t, int64_t i) {
    switch (t) {
    case OD_DTYPE_INT8:
        return (float)((const int8_t *)p)[i];
    case OD_DTYPE_UINT8:
        return (float)((const uint8_t *)p)[i];
    default:
        return (float)((const int32_t *)p)[i];
    }
}

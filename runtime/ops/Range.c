/* Range, opset 11: start, limit and delta as constant scalars of float, double, int16, int32
 * or int64; max(ceil((limit - start) / delta), 0) elements. Folded at plan time (its length
 * is its shape). Backward: none. Layout: plain. */
#include "strided.h"

#include <math.h>

static od_status range_infer(od_infer_ctx *c) {
    double v[3];
    for (int i = 0; i < 3; i++) {
        const od_shape_info *s = i < c->n_in ? c->in[i] : NULL;
        if (!s)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "input %d is missing",
                                 i);
        od_dtype t = s->dtype;
        if (t != OD_DTYPE_FLOAT && t != OD_DTYPE_DOUBLE && t != OD_DTYPE_INT16 &&
            t != OD_DTYPE_INT32 && t != OD_DTYPE_INT64)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "element type %s is not supported", od_dtype_name(t));
        if (t != c->in[0]->dtype || od_dims_count(s->rank, s->dims) != 1)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                                 "start, limit and delta must be scalars of one type");
        if (!s->constant)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "input %d must be a constant: the length is the output's shape",
                                 i);
        od_load_doubles(s->constant->data, t, 1, &v[i]);
    }
    if (v[2] == 0 || !isfinite(v[0]) || !isfinite(v[1]) || !isfinite(v[2]))
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "delta must be nonzero and every input finite");
    double n = ceil((v[1] - v[0]) / v[2]);
    if (n > 1e12)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "%.0f elements is too many", n);
    c->out[0] = (od_shape_info){.dtype = c->in[0]->dtype, .rank = 1};
    c->out[0].dims[0] = n > 0 ? (int64_t)n : 0;
    return OD_STATUS_OK;
}

static od_status range_run(od_step *s, od_error *err) {
    od_buf *y = s->out[0];
    int64_t n = y->dims[0];
    if (od_integral(y->dtype)) { /* exact: start + i * delta */
        int64_t start, delta;
        od_load_int64s(s->in[0]->data, y->dtype, 1, &start);
        od_load_int64s(s->in[2]->data, y->dtype, 1, &delta);
        for (int64_t i = 0; i < n; i++) {
            int64_t v = (int64_t)((uint64_t)start + (uint64_t)i * (uint64_t)delta); /* wraps */
            od_store_int64s(&v, 1, (char *)y->data + i * od_dtype_size(y->dtype), y->dtype);
        }
        return OD_STATUS_OK;
    }
    /* as the spec's loop: repeated addition in the input's type */
    double start, delta;
    od_load_doubles(s->in[0]->data, y->dtype, 1, &start);
    od_load_doubles(s->in[2]->data, y->dtype, 1, &delta);
    if (y->dtype == OD_DTYPE_FLOAT) {
        float v = (float)start, d = (float)delta, *o = y->data;
        for (int64_t i = 0; i < n; i++, v += d) o[i] = v;
    } else {
        double v = start, *o = (void *)y->data;
        for (int64_t i = 0; i < n; i++, v += delta) o[i] = v;
    }
    return OD_STATUS_OK;
}

OD_OP_FACTS(Range, 11, NULL);
const od_op_desc od_op_Range = {OD_OP_NAME(Range), .channel_role = OD_CHANNELS_NONE, .stable_since = 11, .infer = range_infer, .run = range_run};

/* Internal: what QuantizeLinear and DequantizeLinear share: the scale's axis and the
 * [outer, C, inner] walk of a per-axis (or per-tensor) scale and zero point. */
#ifndef OD_QUANT_COMMON_H
#define OD_QUANT_COMMON_H

#include "../op.h"

/* Checks scale (and zero point zp, may be NULL) against x: returns the per-axis dim, -2 per
 * tensor, -1 with the error set. Opset 10 is per tensor; from 13 a 1-D scale of x.dims[axis]
 * elements (attribute axis, default 1, negative from the end) is per axis, one of one element
 * per tensor. q is the quantized side (x of DequantizeLinear, y of QuantizeLinear): zp must
 * have its element type. */
int od_quant_infer_axis(od_infer_ctx *c, const od_shape_info *x, const od_shape_info *scale,
                        const od_shape_info *zp, const char *scale_name);

/* The same at run time, on checked buffers: the axis, or -1 per tensor. */
int od_quant_axis(const od_step *s, const od_buf *x, const od_buf *scale);

/* x as [outer, C, inner] for a scale along axis (-1: C = 1). */
void od_quant_split(const od_buf *x, int axis, int64_t *outer, int64_t *C, int64_t *inner);

/* Element i of an int8, uint8 or int32 buffer, as float. */
float od_quant_load(const void *p, od_dtype t, int64_t i);

#endif

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

/* One span of the walk: elements base .. base + n - 1 of x share the scale f and zero point z. */
typedef void (*od_quant_span_fn)(const od_step *s, int64_t base, int64_t n, float f, float z);

/* The run-time walk of x (s->in[0]) as [outer, C, inner] for its scale (s->in[1]: per axis, or
 * per tensor with C = 1) and zero point (s->in[2], 0 when absent): span once per (outer, c). */
void od_quant_walk(const od_step *s, od_quant_span_fn span);

/* Element i of an int8, uint8 or int32 buffer, as float. */
float od_quant_load(const void *p, od_dtype t, int64_t i);

#endif

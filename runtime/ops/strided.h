/* Helpers for the data-movement and shape ops (Transpose, Slice, Concat, Split, Pad, Tile,
 * Expand, Gather, Cast, Reduce*, ...): an n-d strided copy of any element size, the input
 * checks they share, and half-precision conversions. */
#ifndef OD_STRIDED_H
#define OD_STRIDED_H

#include "../op.h"

/* Tile splits each dim in two, so copies take up to twice the tensor rank. */
#define OD_STRIDED_MAX_RANK (2 * OD_MAX_RANK)

/* Row-major strides of dims, in elements. */
void od_strides(int rank, const int64_t *dims, int64_t *strides);

/* For every index i < dims: dst[i . dst_stride] = src[i . src_stride]. Strides are in
 * elements and may be negative (src may also repeat with stride 0); rank may be 0 (one
 * element) up to OD_STRIDED_MAX_RANK. Dims are merged where both sides allow, transposes are
 * copied in cache-sized tiles, and big copies are split across pool. */
void od_copy_strided(void *dst, const int64_t *dst_stride, const void *src,
                     const int64_t *src_stride, int rank, const int64_t *dims, size_t esize,
                     pthreadpool_t pool);

/* Fails (UNSUPPORTED, naming the node) when input i is missing or has no fixed element size. */
od_status od_expect_sized(od_infer_ctx *c, int i);

/* Reads a constant int input (int32 or int64) into out; errors name the node and `what`
 * (UNSUPPORTED when not constant, SHAPE when longer than max). Returns the count via n_out. */
od_status od_const_ints_input(od_infer_ctx *c, int i, const char *what, int64_t *out, int max,
                              int *n_out);

/* Normalises axes (negative counted from the end) into [0, rank) and checks for repeats. */
od_status od_normalize_axes(od_infer_ctx *c, int64_t *axes, int n, int rank);

/* An infer context over a step's inputs (with their plan-time constants), so that prepare can
 * read attributes and constant inputs exactly as infer did: up to OD_STEP_MAX_IN inputs,
 * OD_STEP_MAX_OUT outputs. */
#define OD_STEP_MAX_IN 64
#define OD_STEP_MAX_OUT 16
typedef struct od_step_shapes {
    od_shape_info info[OD_STEP_MAX_IN], out[OD_STEP_MAX_OUT];
    const od_shape_info *in[OD_STEP_MAX_IN];
    od_infer_ctx c; /* points into the arrays above: do not copy */
} od_step_shapes;
/* prepare()'s start for an op that reads its plan with the function its infer() uses (Pad,
 * Slice, Split, ReduceMean): sh->c as infer() saw the step, and s->state a zeroed block of
 * size bytes, returned (NULL when out of memory, err set). */
void *od_step_state_with_shapes(od_step *s, size_t size, od_step_shapes *sh, od_error *err);

/* IEEE half and bfloat16 from and to float. Half rounds to nearest even; bfloat16 truncates,
 * as ONNX's reference does. */
float od_half_to_float(uint16_t h);
uint16_t od_float_to_half(float f);
float od_bfloat_to_float(uint16_t b);
uint16_t od_float_to_bfloat(float f);

/* Numeric element conversions, n elements at a time. Integer and bool types go through int64
 * exactly; doubles into integers truncate toward zero (NaN and out-of-range values become
 * INT64_MIN, then wrap to narrower types), into bool test != 0. od_numeric is false for
 * types without a number (string, complex, undefined), which these leave alone. */
bool od_numeric(od_dtype t);
bool od_integral(od_dtype t); /* integer types and bool */
void od_load_doubles(const void *src, od_dtype t, int64_t n, double *dst);
void od_store_doubles(const double *src, int64_t n, void *dst, od_dtype t);
void od_load_int64s(const void *src, od_dtype t, int64_t n, int64_t *dst);
void od_store_int64s(const int64_t *src, int64_t n, void *dst, od_dtype t);

#endif

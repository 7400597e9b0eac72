/* Internal: what the int8 (QS8) steps of quantized execution share (plan_qs8.c makes them;
 * od_step.qs8 holds their scales and zero points). */
#ifndef OD_QS8_COMMON_H
#define OD_QS8_COMMON_H

#include "../op.h"

#include <xnnpack.h>

/* The int8 range of the step's output for its fused float range [act_min, act_max] (a Relu
 * absorbed: [out_zp, 127]). */
void od_qs8_out_range(const od_step *s, int8_t *lo, int8_t *hi);

/* A 2-D convolution's geometry, as XNNPACK takes it (a 1-D one has height 1). */
typedef struct od_qs8_conv_geom {
    uint32_t pad_top, pad_right, pad_bottom, pad_left, kh, kw, sh, sw, dh, dw, groups;
    size_t cg, mg, cin, cout; /* per group, and in all */
    size_t batch, h, w;       /* the input's */
} od_qs8_conv_geom;

/* An int8 convolution (or dense layer, as a 1x1 convolution) on XNNPACK's QC8 operator, set up
 * from input to the step's output: kernel [M][kh][kw][Cg] int8 with the step's per-channel
 * weight scales, bias float [M] (NULL: none) quantized to int32 at input scale x weight scale. */
od_status od_qs8_conv_create(od_step *s, const od_qs8_conv_geom *c, const int8_t *kernel,
                             const float *bias, const int8_t *input, xnn_operator_t *out,
                             od_error *err);

/* run and destroy for steps whose state is one XNNPACK operator */
od_status od_qs8_xnn_run(od_step *s, od_error *err);
void od_qs8_xnn_destroy(od_step *s);

/* A dense layer y[N, M] = x[N, K] W + b on int8 activations: W the step's int8 weight, laid out
 * [M][K] (km false) or [K][M] (km true). */
od_status od_qs8_dense_prepare(od_step *s, int64_t N, int64_t K, int64_t M, bool km,
                               const float *bias, od_error *err);

/* The same convolution on AVX-512 VNNI (qs8_vnni.c), groups of 1 and output channels in
 * multiples of 16, kernel [M][kh][kw][C], geometry of the convolution itself (input dims,
 * padding, strides, dilations) and its output size; NULL when the CPU lacks VNNI, the shape
 * does not fit, OD_NO_VNNI is set, or memory runs out (XNNPACK then runs it). */
typedef struct od_qs8_vnni od_qs8_vnni;
od_qs8_vnni *od_qs8_vnni_create(const od_step *s, const od_qs8_conv_geom *g, int64_t OH, int64_t OW,
                                const int8_t *kernel, const float *bias);
void od_qs8_vnni_run(od_qs8_vnni *v, const int8_t *x, int8_t *y, pthreadpool_t pool);
void od_qs8_vnni_destroy(od_qs8_vnni *v);

#endif

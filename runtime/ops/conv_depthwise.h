/* A depthwise convolution for inference, channels-last, on AVX-512 (conv_depthwise.c). */
#ifndef OD_CONV_DEPTHWISE_H
#define OD_CONV_DEPTHWISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One filter per channel (group = input = output channels), dilation 1. */
typedef struct od_convdw_geom {
    int64_t C, H, W;   /* an input image [H][W][C] */
    int64_t OH, OW;    /* an output image [OH][OW][C] */
    int64_t KH, KW, sh, sw, pt, pl;
} od_convdw_geom;

/* Whether this CPU runs the kernel here: AVX-512, a kernel of at most 7 columns. OD_NO_CONVDW=1
 * turns it off. */
bool od_convdw_fits(const od_convdw_geom *g);
/* Floats of the packed weights and bias. */
size_t od_convdw_packed_floats(const od_convdw_geom *g);
/* Packs w [C][1][KH][KW] and bias [C] (NULL: zeros) as [KH*KW + 1][C rounded up to 16]. */
void od_convdw_pack(const od_convdw_geom *g, const float *w, const float *bias, float *packed);
/* Output rows [oy0, oy1) of one image, channels [16 cb0, 16 cb1) (the last block may be partial):
 * y = act(clamp(conv(x, packed) + res, lo, hi)), res laid out as y or NULL, act an od_activation (op.h). */
void od_convdw_rows(const od_convdw_geom *g, const float *x, const float *packed, float lo, float hi, int act,
                    float *y, const float *res, int64_t oy0, int64_t oy1, int64_t cb0, int64_t cb1);

#endif

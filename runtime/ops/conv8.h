/* A direct convolution for exactly 8 output channels, channels-last (conv8.c). */
#ifndef OD_CONV8_H
#define OD_CONV8_H

#include <stdbool.h>
#include <stdint.h>

typedef struct od_conv8_geom {
    int64_t C, H, W;   /* the input image [H][W][C] */
    int64_t OH, OW;    /* the output image [OH][OW][8] */
    int64_t KH, KW, sh, sw, dh, dw, pt, pl;
    int64_t HP, WP;    /* the padded image the taps read: (OH-1)*sh + (KH-1)*dh + 1 rows, likewise columns */
    bool planar;       /* AVX-512 and stride 1 across: the padded copy is planar [C][HP][WQ] */
    int64_t WQ;        /* its row: OW rounded up to 16, plus the kernel's extent */
    int64_t scratch;   /* floats of the padded copy */
} od_conv8_geom;

/* Fills the geometry's derived fields; whether this CPU runs the kernel (AVX2 + FMA;
 * OD_NO_CONV8=1 turns it off, OD_NO_AVX512_CONV8=1 keeps it on AVX2). */
bool od_conv8_fits(od_conv8_geom *g);
/* y [OH][OW][8] = clamp(conv(x [H][W][C], packed) + bias, lo, hi) (add: y += that), packed the
 * weights as [KH*KW][C][8] (od_conv_pack_taps); bias may be NULL. xp: scratch
 * of g->scratch floats, zero before the first call and kept for the next (only the image's own
 * positions are written). */
void od_conv8_image(const od_conv8_geom *g, const float *x, const float *packed, const float *bias, float lo, float hi,
                    float *xp, float *y, bool add);

#endif

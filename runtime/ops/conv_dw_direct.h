/* The direct weight gradient of a training convolution (conv_dw_direct.c). */
#ifndef OD_CONV_DW_DIRECT_H
#define OD_CONV_DW_DIRECT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct od_conv_dw_geom {
    int64_t C, H, W, M, KH, KW, OH, OW, G, Cg, Mg;
    int64_t sh, sw, dh, dw, pt, pl;
    int64_t HP, WP; /* the padded image the taps read: (OH-1)*sh + (KH-1)*dh + 1 rows, likewise columns */
    bool wide;      /* set by od_conv_dw_direct_fits: AVX-512 tiles of 16 input channels */
    bool pairs;     /* likewise: AVX-512 tiles of two adjacent taps of 8 channels (C == 8) */
    bool taps;      /* likewise: Cg < 8, lanes over output channels (or depthwise, over groups) */
} od_conv_dw_geom;

/* Whether the direct kernel runs this convolution on this CPU (OD_NO_DIRECT_DW=1 turns it off;
 * OD_NO_AVX512_DW=1 keeps it on AVX2); sets g->wide. */
bool od_conv_dw_direct_fits(od_conv_dw_geom *g);
/* dw [M][KH][KW][Cg] += the weight gradient of one image: x [H][W][C] and dy [OH][OW][M]
 * channels-last; db [M] (unless NULL) += the sums of dy. xp: scratch of HP*WP*C floats, zero
 * before the first call and kept for the next (only the image's own positions are written). */
void od_conv_dw_direct_image(const od_conv_dw_geom *g, const float *x, const float *dy, float *xp, float *dw,
                             float *db);

#endif

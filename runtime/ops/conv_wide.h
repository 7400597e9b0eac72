/* A direct convolution for output channels in multiples of 16, on AVX-512 (conv_wide.c). */
#ifndef OD_CONV_WIDE_H
#define OD_CONV_WIDE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct od_convw_geom {
    int64_t C, H, W;   /* an input image [H][W][C] */
    int64_t M, OH, OW; /* an output image [OH][OW][M] */
    int64_t KH, KW, sh, sw, dh, dw, pt, pl;
    int64_t HP, WP; /* the zero-padded image the taps read: (OH-1)*sh + (KH-1)*dh + 1 rows, likewise columns */
    int64_t rows;   /* output rows a task takes: about 200 pixels, so a block of weights is reused */
} od_convw_geom;

/* Input channels in a block: a block's weights for 32 output channels (3x3: 72 KB) stay in the
 * second-level cache while a task's tiles use them. */
#define OD_CONVW_KC 64

/* Packs w [M][C][KH][KW] in the order the tiles read it: blocks of 32 output channels (16 for
 * the last when M % 32 is 16), in each the blocks of OD_CONVW_KC input channels, in each
 * [KH*KW][its channels][32]. A block of weights is then one stream, and the next is where the
 * kernel prefetches. */
void od_convw_pack(const od_convw_geom *g, const float *w, float *packed);
/* Fills HP, WP and rows. */
void od_convw_derive(od_convw_geom *g);
/* od_convw_derive; whether this CPU runs the kernel here: AVX-512, M % 16 == 0 and
 * M >= 32 (16 too on 4 input channels or fewer, and in a product), a kernel larger than 1x1 or, with pointwise (where the caller found conv_wide's
 * product faster than XNNPACK's GEMM: Conv.c), 1x1 too. The caller checks for one group.
 * OD_NO_CONVW=1 turns it off. */
bool od_convw_fits(od_convw_geom *g, bool pointwise);
/* Output rows [oy0, oy1), channels m0 .. m0+31 (m0 .. m0+15 at the end of M) of
 * y [OH][OW][M] = act(clamp(conv(xp, packed) + bias + res, lo, hi)), xp the image padded to
 * [HP][WP][C] and packed the weights by od_convw_pack (xp by od_conv_pad_rows); bias and res
 * (laid out as y) may be NULL; no clamp when lo, hi are -inf, inf; act an od_activation (op.h).
 * m0 is a multiple of 32. */
void od_convw_block(const od_convw_geom *g, const float *xp, const float *packed, const float *bias, float lo,
                    float hi, int act, float *y, const float *res, int64_t oy0, int64_t oy1, int64_t m0);

#endif

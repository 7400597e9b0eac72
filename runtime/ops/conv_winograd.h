/* A 3x3 convolution at stride 1 by Winograd's F(2x2, 3x3), for inference, channels-last, on
 * AVX-512 (conv_winograd.c). */
#ifndef OD_CONV_WINOGRAD_H
#define OD_CONV_WINOGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tiles (2x2 outputs each) in a block: the rows of the products' register tile. */
#define OD_WINO_NB 14

typedef struct od_wino_geom {
    int64_t C, H, W;   /* an input image [H][W][C] */
    int64_t M, OH, OW; /* an output image [OH][OW][M] */
    int64_t pt, pl;    /* padding before the first row and column */
    int64_t TW, tiles, blocks; /* tiles in a row, in all, blocks of OD_WINO_NB tiles (od_wino_fits fills them) */
} od_wino_geom;

/* Fills TW, tiles, blocks; whether the kernel runs here: AVX-512, M a multiple of 16, C 16 or
 * more, 14x14 outputs or more. The caller checks 3x3, stride 1, dilation 1, one group.
 * OD_NO_WINOGRAD=1 turns it off. */
bool od_wino_fits(od_wino_geom *g);
/* Floats of the transformed weights: 16 C M. */
size_t od_wino_packed_floats(const od_wino_geom *g);
/* Transforms w [M][C][3][3] into G w G^T, laid out per block of 32 output channels (16 for the
 * last when M % 32 is 16) as [16 positions][C][block's channels]. */
void od_wino_pack(const od_wino_geom *g, const float *w, float *packed);
/* Floats of a tile block's transformed input: 16 x OD_WINO_NB x C. */
size_t od_wino_block_floats(const od_wino_geom *g);
/* Transforms tile block blk of image x into v (B^T d B of each tile's 4x4 input patch, zero
 * outside the image), laid out [16 positions][OD_WINO_NB tiles][C]. */
void od_wino_input(const od_wino_geom *g, const float *x, int64_t blk, float *v);
/* Output channels m0 .. m0 + 31 (m0 .. m0 + 15 at the end of M) of tile block blk of
 * y [OH][OW][M] = act(clamp(A^T (U . V) A + bias + res, lo, hi)): the 16 products of the block's
 * transformed input v (od_wino_input) and the weights packed, then the output transform. bias
 * and res (laid out as y) may be NULL; act an od_activation (op.h). m0 is a multiple of 32. */
void od_wino_output(const od_wino_geom *g, const float *v, const float *packed, const float *bias, float lo, float hi,
                    int act, float *y, const float *res, int64_t blk, int64_t m0);

#endif

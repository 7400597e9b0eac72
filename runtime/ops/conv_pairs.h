/* A 1x1 convolution (a product) to a width of 8 + 16k channels, two input channels a register,
 * on AVX-512 (conv_pairs.c). */
#ifndef OD_CONV_PAIRS_H
#define OD_CONV_PAIRS_H

#include <stdbool.h>
#include <stdint.h>

/* Whether the kernel takes a product of K input channels to M outputs on this CPU: AVX-512,
 * M % 16 == 8 (24, 40, ...: where 16-channel tiles leave part of a register empty).
 * OD_NO_PAIRS=1 turns it off. */
bool od_pairs_fits(int64_t K, int64_t M);
/* Floats od_pairs_pack writes. */
int64_t od_pairs_packed_floats(int64_t K, int64_t M);
/* w [M][K] (ONNX's 1x1 kernel) in the order the tiles read it. */
void od_pairs_pack(const float *w, int64_t K, int64_t M, float *packed);
/* y[p][0..M) = act(clamp(x[p] W^T + bias + res[p], lo, hi)) for pixels [p0, p1) of x [P][K]
 * and y, res [P][M]; bias and res may be NULL, act an od_activation (op.h). */
void od_pairs_rows(const float *x, int64_t K, int64_t M, const float *packed, const float *bias, const float *res,
                   float lo, float hi, int act, float *y, int64_t p0, int64_t p1);

#endif

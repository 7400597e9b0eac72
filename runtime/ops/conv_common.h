/* Shared by Conv and ConvTranspose: attribute reading, weight packing, and a direct loop over
 * channels-last data for what XNNPACK cannot run (weights known only at run time, 3-D kernels,
 * padding XNNPACK does not take). Correct first; the hot path stays on XNNPACK. */
#ifndef OD_CONV_COMMON_H
#define OD_CONV_COMMON_H

#include "../op.h"

#include <stdatomic.h>
#include <xnnpack.h>

#define OD_CONV_MAX_SP 3

typedef struct od_conv_params {
    int sp; /* spatial dims, 1..3; unused dims below hold size 1, stride 1, no padding */
    bool transposed;
    int64_t group, cin, cout; /* channels in total */
    int64_t kernel[OD_CONV_MAX_SP], stride[OD_CONV_MAX_SP], dilation[OD_CONV_MAX_SP];
    /* Conv: pads of the input. ConvTranspose: crops of the full output, negative when the
     * output extends past it (output_shape, output_padding). */
    int64_t pad_begin[OD_CONV_MAX_SP], pad_end[OD_CONV_MAX_SP];
    int64_t in[OD_CONV_MAX_SP], out[OD_CONV_MAX_SP];
} od_conv_params;

/* Reads group, kernel_shape (checked against the weights' spatial dims wk), strides, dilations
 * and pads (begin/end) for sp spatial dims; sets every other field to its neutral value. */
od_status od_conv_read_common(const od_node *n, int sp, const int64_t *wk, od_conv_params *p,
                              od_error *err);

/* Reads the attributes of a Conv (p->transposed false) or ConvTranspose for input dims x
 * ([N, C, spatial...]) and weight dims w, and resolves padding and output sizes. */
typedef od_status (*od_conv_read_fn)(const od_node *n, const int64_t *x, int rank,
                                     const int64_t *w, od_conv_params *p, od_error *err);

/* infer() of both: input and weights of rank 3-5 and one rank, channels that agree with the
 * weights and group, an optional float bias of p.cout; the output [N, p.cout, p.out...]. */
od_status od_conv_infer(od_infer_ctx *c, od_conv_read_fn read);

/* Product of the kernel dims. */
int64_t od_conv_kernel_size(const od_conv_params *p);

/* ONNX weights -> [cout][kernel...][cin / group], the layout of XNNPACK's convolution and
 * deconvolution and of od_conv_direct. Conv weights are [cout][cin/g][kernel...],
 * ConvTranspose weights [cin][cout/g][kernel...]. */
void od_conv_pack_weights(const od_conv_params *p, const float *w, float *packed);

/* The direct kernels' shared pieces (conv8.c, conv_wide.c, conv_dw_direct.c):
 * rows [r0, r1) of a channels-last image x [.][W][C] into its zero-padded copy xp [HP][WP][C],
 * at row r0 + pt, column pl, as far as the copy reaches (its padding is never written: xp
 * starts zeroed and keeps its zeros for the next image); */
/* od_conv_pad_rows for an image held in ONNX order, x [C][H][W]: its rows r0..r1 go into the
 * padded channels-last image as od_conv_pad_rows puts them. */
void od_conv_pad_rows_planar(const float *x, int64_t H, int64_t W, int64_t C, int64_t r0, int64_t r1, float *xp,
                             int64_t HP, int64_t WP, int64_t pt, int64_t pl);
void od_conv_pad_rows(const float *x, int64_t W, int64_t C, int64_t r0, int64_t r1, float *xp, int64_t HP,
                      int64_t WP, int64_t pt, int64_t pl);
/* and weights as packed[(q*C + c)*M + o] (tap q, input channel c, output channel o) from w,
 * where they are w[o*s_o + q*s_q + c*s_c]. */
void od_conv_pack_taps(const float *w, int64_t s_o, int64_t s_q, int64_t s_c, int64_t M, int64_t taps, int64_t C,
                       float *packed);

/* y[N, out..., cout] = conv(x[N, in..., cin], packed, bias) in channels-last order; bias may be
 * NULL. Spreads batch x first output dim over the pool. */
void od_conv_direct(const od_conv_params *p, int64_t batch, const float *x, const float *packed,
                    const float *bias, float *y, pthreadpool_t pool);

/* What a Conv or ConvTranspose step keeps: an XNNPACK operator, or for the direct loop the
 * packed weights (and a constant bias). */
typedef struct od_conv_state {
    xnn_operator_t xnn;
    od_conv_params p;
    float *packed;  /* direct loop: weights as od_conv_pack_weights lays them out (conv_wide.c's
                     * layout when xpad is set) */
    float *bias;    /* direct loop with a constant bias */
    bool repack;    /* weights known only at run time */
    float *xpad;    /* Conv on conv_wide.c (Conv.c): the zero-padded input of xpad_images images */
    int64_t xpad_images;
    bool depthwise; /* Conv on conv_depthwise.c (Conv.c): packed as od_convdw_pack lays it out */
    bool pairs;     /* Conv on conv_pairs.c (Conv.c): packed as od_pairs_pack lays it out */
    float *wino;    /* Conv on conv_winograd.c (Conv.c): wino_slots buffers of wino_floats for the
                     * transformed inputs, one per thread of the pool, taken through wino_busy;
                     * packed as od_wino_pack lays it out */
    size_t wino_floats;
    int wino_slots;
    atomic_flag *wino_busy;
} od_conv_state;

/* The start of prepare(): s->state, its params read, room for the packed weights (packed when
 * constant). */
od_status od_conv_state_create(od_step *s, od_conv_read_fn read, od_conv_state **out,
                               od_error *err);
/* The end of prepare() on XNNPACK: the packed weights (copied by XNNPACK) freed, r checked. */
od_status od_conv_state_created(od_conv_state *cs, const od_step *s, enum xnn_status r,
                                const char *what, od_error *err);
/* Sets cs up for the direct loop: repack at run time unless the weights are constant, keep a
 * constant bias. */
od_status od_conv_state_use_direct(const od_step *s, od_conv_state *cs, od_error *err);
/* run() on the direct loop (the weights repacked first when known only at run time). */
void od_conv_state_run_direct(od_step *s);
void od_conv_state_destroy(od_step *s);

#endif

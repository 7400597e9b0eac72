/* Conv, opsets 1-17: 1-D, 2-D and 3-D, group (incl. depthwise), dilations, strides, pads,
 * auto_pad (NOTSET, SAME_UPPER, SAME_LOWER, VALID), optional bias. Float32. Constant weights
 * of a 1-D or 2-D conv run on XNNPACK's NHWC convolution (1-D as 2-D of height 1), packed once
 * per plan; weights known only at run time (or 3-D kernels) run conv_common's direct loop.
 * Backward: 1-D and 2-D, at the end of this file (forward on XNNPACK's convolution, the input
 * gradient on its deconvolution, the weight gradient per batch shard: conv_dw_direct.c where it
 * fits, else im2row + sgemm).
 * Layout: spatial (input and output channels-last; an input in ONNX order, such as a Transpose's
 * output in ConvNeXt, is copied to channels-last and its gradient added back).
 * Inference epilogue, from the planner: y = act(clamp(conv + bias + residual)), the residual
 * (input 3, a fused Add's other input), clamp (a fused Relu or Clip) and act (a fused SiLU or
 * HardSwish) each optional; conv_wide.c and conv_depthwise.c do it in registers, the other paths
 * in a pass after (conv_finish). */
#include "../train_internal.h"
#include "conv_common.h"
#include "conv8.h"
#include "conv_wide.h"
#include "conv_dw_direct.h"
#include "conv_depthwise.h"
#include "conv_winograd.h"
#include "conv_pairs.h"
#include "qs8_common.h"
#include "strided.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

/* Weights of at least this many bytes (past a core's L2) are set up in narrow tiles. */
#define CONV_TILED_WEIGHTS (2 << 20)

/* Resolves attributes, padding and sizes for input dims x ([N, C, spatial...]), weights w. */
static od_status conv_params_read(const od_node *n, const int64_t *x, int rank, const int64_t *w,
                                  od_conv_params *p, od_error *err) {
    int sp = rank - 2;
    od_status st = od_conv_read_common(n, sp, w + 2, p, err);
    if (st) return st;
    p->cin = x[1];
    p->cout = w[0];
    od_auto_pad ap;
    od_status ap_status = od_attr_auto_pad(n, &ap, err);
    if (ap_status) return ap_status;
    for (int d = 0; d < sp; d++) {
        int64_t in = x[2 + d], dk = p->dilation[d] * (p->kernel[d] - 1) + 1;
        p->in[d] = in;
        od_auto_pad_window(ap, in, dk, p->stride[d], &p->pad_begin[d], &p->pad_end[d]);
        int64_t span = in + p->pad_begin[d] + p->pad_end[d] - dk;
        if (span < 0)
            return od_node_error(err, OD_STATUS_SHAPE, n,
                                 "the kernel is larger than the padded input (spatial dim %d)", d);
        p->out[d] = span / p->stride[d] + 1;
    }
    return OD_STATUS_OK;
}

static od_status conv_infer(od_infer_ctx *c) { return od_conv_infer(c, conv_params_read); }

/* Output elements times the multiply-adds per element (C/group x kernel). */
static int64_t conv_macs(const od_node *n, const od_shape_info *const *in,
                         const od_shape_info *out) {
    int64_t k = od_dims_count(in[1]->rank - 1, in[1]->dims + 1);
    return od_macs_mul(od_dims_count(out->rank, out->dims), k);
}

/* The geometry of a 2-D (or 1-D) convolution with one group for conv_wide.c. */
static od_convw_geom conv_wide_geom(const od_conv_params *p) {
    bool two = p->sp == 2;
    int iw = p->sp - 1;
    return (od_convw_geom){.C = p->cin, .H = two ? p->in[0] : 1, .W = p->in[iw], .M = p->cout,
                           .OH = two ? p->out[0] : 1, .OW = p->out[iw], .KH = two ? p->kernel[0] : 1,
                           .KW = p->kernel[iw], .sh = two ? p->stride[0] : 1, .sw = p->stride[iw],
                           .dh = two ? p->dilation[0] : 1, .dw = p->dilation[iw], .pt = two ? p->pad_begin[0] : 0,
                           .pl = p->pad_begin[iw]};
}

typedef struct conv_wide_run {
    const od_step *s;
    od_convw_geom g;
    int64_t first; /* the chunk's first image: its padded copies are cs->xpad's */
    bool in_place;  /* the taps read the input itself: a 1x1 kernel at stride 1 without padding */
    bool planar;    /* the input is in ONNX order (conv_reads_plain) */
} conv_wide_run;

/* Images padded at a time: 4 MiB of copies or one image (the whole batch's copies added a third
 * to distill's peak memory). OD_CONVW_CHUNK=K sets it, for tests. */
static int64_t conv_wide_chunk(const od_convw_geom *g, int64_t batch) {
    int64_t per = g->HP * g->WP * g->C, k = per > 0 ? (1 << 20) / per : batch;
    const char *e = getenv("OD_CONVW_CHUNK");
    if (e && atoi(e) > 0) k = atoi(e);
    return k < 1 ? 1 : k > batch ? batch : k;
}

enum { PAD_ROWS = 8 }; /* input rows a padding task copies: at batch 1 every thread takes some */

static void conv_wide_pad_task(void *ctx, size_t n, size_t chunk) {
    const conv_wide_run *r = ctx;
    const od_conv_state *cs = r->s->state;
    int64_t r0 = (int64_t)chunk * PAD_ROWS, r1 = r0 + PAD_ROWS < r->g.H ? r0 + PAD_ROWS : r->g.H;
    const od_convw_geom *g = &r->g;
    const float *x = r->s->in[0]->data + (r->first + (int64_t)n) * g->H * g->W * g->C;
    float *xp = cs->xpad + (int64_t)n * g->HP * g->WP * g->C;
    if (r->planar) od_conv_pad_rows_planar(x, g->H, g->W, g->C, r0, r1, xp, g->HP, g->WP, g->pt, g->pl);
    else od_conv_pad_rows(x, g->W, g->C, r0, r1, xp, g->HP, g->WP, g->pt, g->pl);
}

/* The fused Add's other input (input 3), NULL when there is none. */
static const float *conv_residual(const od_step *s) { return s->n_in > 3 && s->in[3] ? s->in[3]->data : NULL; }

/* The epilogue of the paths that do not do it themselves (XNNPACK's, made without a clamp when
 * there is a residual; the direct loop): y = act(clamp(y + residual)). */
static void conv_finish(od_step *s) {
    od_epilogue_inplace(s->pool, s->out[0]->data, conv_residual(s), s->act_min, s->act_max, s->act,
                        od_buf_count(s->out[0]));
}

/* Image n of the chunk, output channels from 32 * mb, the rows of group rg. */
static void conv_wide_block_task(void *ctx, size_t n, size_t mb, size_t rg) {
    const conv_wide_run *r = ctx;
    const od_step *s = r->s;
    const od_conv_state *cs = s->state;
    const od_convw_geom *g = &r->g;
    int64_t oy0 = (int64_t)rg * g->rows, oy1 = oy0 + g->rows < g->OH ? oy0 + g->rows : g->OH;
    const float *xp = r->in_place ? s->in[0]->data + (r->first + (int64_t)n) * g->H * g->W * g->C
                                  : cs->xpad + (int64_t)n * g->HP * g->WP * g->C;
    int64_t y0 = (r->first + (int64_t)n) * g->OH * g->OW * g->M;
    od_convw_block(g, xp, cs->packed, cs->bias, s->act_min, s->act_max, s->act, s->out[0]->data + y0,
                   conv_residual(s) ? conv_residual(s) + y0 : NULL, oy0, oy1, 32 * (int64_t)mb);
}

/* A 1x1 kernel at stride 1 without padding reads the image as it is: no padded copy. */
static bool conv_wide_in_place(const od_convw_geom *g) {
    return g->KH == 1 && g->KW == 1 && g->HP == g->H && g->WP == g->W && g->pt == 0 && g->pl == 0;
}

/* Weights and bias known, one group, 32+ output channels in 16s (od_convw_fits): chunk by chunk
 * of the batch, its images padded (a task per 8 rows of an image; not for a 1x1 kernel read in
 * place), then a task per image, 32 output channels and group of rows. */
static od_status conv_wide_prepare(od_step *s, od_conv_state *cs, od_error *err) {
    const od_buf *b = s->n_in > 2 ? s->in[2] : NULL;
    od_convw_geom g = conv_wide_geom(&cs->p);
    od_convw_derive(&g);
    od_convw_pack(&g, s->in[1]->data, cs->packed);
    cs->xpad_images = conv_wide_in_place(&g) ? 0 : conv_wide_chunk(&g, s->in[0]->dims[0]);
    cs->xpad = od_calloc_large((size_t)(cs->xpad_images * g.HP * g.WP * g.C) + 1, sizeof(float));
    cs->bias = b ? malloc(sizeof(float) * (size_t)g.M) : NULL;
    if (!cs->xpad || (b && !cs->bias)) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    if (b) memcpy(cs->bias, b->data, sizeof(float) * (size_t)g.M);
    return OD_STATUS_OK;
}

/* The same task, its grid walked rows first. */
static void conv_wide_rows_task(void *ctx, size_t n, size_t rg, size_t mb) { conv_wide_block_task(ctx, n, mb, rg); }

static void conv_wide_run_step(od_step *s) {
    od_conv_state *cs = s->state;
    conv_wide_run r = {.s = s, .g = conv_wide_geom(&cs->p)};
    od_convw_derive(&r.g);
    r.in_place = conv_wide_in_place(&r.g);
    r.planar = s->in[0]->layout == OD_LAYOUT_PLAIN;
    int64_t batch = s->in[0]->dims[0], chunk = r.in_place ? batch : cs->xpad_images;
    for (r.first = 0; r.first < batch; r.first += chunk) {
        size_t k = (size_t)(batch - r.first < chunk ? batch - r.first : chunk);
        if (!r.in_place)
            pthreadpool_parallelize_2d(s->pool, conv_wide_pad_task, &r, k, (size_t)((r.g.H + PAD_ROWS - 1) / PAD_ROWS), 0);
        size_t blocks = (size_t)((r.g.M + 31) / 32), groups = (size_t)((r.g.OH + r.g.rows - 1) / r.g.rows);
        /* On one thread a block of weights serves every row before the next is read; on the pool
         * the rows go first, so that each thread writes the image rows the next step (split by
         * rows too: workers.c) reads on the same thread (efficientnet_b0 224, batch 1: 0.95x). */
        if (s->pool)
            pthreadpool_parallelize_3d(s->pool, conv_wide_rows_task, &r, k, groups, blocks, 0);
        else
            pthreadpool_parallelize_3d(s->pool, conv_wide_block_task, &r, k, blocks, groups, 0);
    }
}

/* The geometry of a depthwise 2-D (or 1-D) convolution for conv_depthwise.c; C = 0 when the
 * conv is not one it takes (several channels a group, dilation). */
static od_convdw_geom conv_depthwise_geom(const od_conv_params *p) {
    bool two = p->sp == 2;
    int iw = p->sp - 1;
    bool dw = p->sp <= 2 && p->group == p->cin && p->cout == p->cin && p->dilation[0] == 1 && p->dilation[iw] == 1;
    return (od_convdw_geom){.C = dw ? p->cin : 0, .H = two ? p->in[0] : 1, .W = p->in[iw], .OH = two ? p->out[0] : 1,
                            .OW = p->out[iw], .KH = two ? p->kernel[0] : 1, .KW = p->kernel[iw],
                            .sh = two ? p->stride[0] : 1, .sw = p->stride[iw], .pt = two ? p->pad_begin[0] : 0,
                            .pl = p->pad_begin[iw]};
}

typedef struct conv_depthwise_run {
    const od_step *s;
    od_convdw_geom g;
    int64_t blocks; /* blocks of 16 channels a task takes */
} conv_depthwise_run;

static void conv_depthwise_task(void *ctx, size_t n, size_t oy, size_t cg) {
    const conv_depthwise_run *r = ctx;
    const od_step *s = r->s;
    const od_convdw_geom *g = &r->g;
    int64_t all = (g->C + 15) / 16, cb0 = (int64_t)cg * r->blocks, cb1 = cb0 + r->blocks < all ? cb0 + r->blocks : all;
    int64_t y0 = (int64_t)n * g->OH * g->OW * g->C;
    od_convdw_rows(g, s->in[0]->data + (int64_t)n * g->H * g->W * g->C, ((const od_conv_state *)s->state)->packed,
                   s->act_min, s->act_max, s->act, s->out[0]->data + y0, conv_residual(s) ? conv_residual(s) + y0 : NULL,
                   (int64_t)oy, (int64_t)oy + 1, cb0, cb1);
}

/* A task per image and output row, all channels; when the batch has fewer than 16 rows in all
 * (small images at batch 1), the channels are split too, so that two threads share the work. */
static void conv_depthwise_run_step(od_step *s) {
    conv_depthwise_run r = {.s = s, .g = conv_depthwise_geom(&((const od_conv_state *)s->state)->p)};
    int64_t batch = s->in[0]->dims[0], rows = batch * r.g.OH, all = (r.g.C + 15) / 16;
    int64_t groups = rows >= 16 ? 1 : (16 + rows - 1) / rows;
    if (groups > all) groups = all;
    r.blocks = (all + groups - 1) / groups;
    pthreadpool_parallelize_3d(s->pool, conv_depthwise_task, &r, (size_t)batch, (size_t)r.g.OH,
                               (size_t)((all + r.blocks - 1) / r.blocks), 0);
}

static od_status conv_depthwise_prepare(od_step *s, od_conv_state *cs, const od_convdw_geom *g, od_error *err) {
    const od_buf *b = s->n_in > 2 ? s->in[2] : NULL;
    free(cs->packed);
    cs->packed = malloc(sizeof(float) * od_convdw_packed_floats(g));
    if (!cs->packed) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    od_convdw_pack(g, s->in[1]->data, b ? b->data : NULL, cs->packed);
    cs->depthwise = true;
    return OD_STATUS_OK;
}

/* The geometry of a 2-D 3x3 convolution at stride 1, dilation 1, one group for conv_winograd.c;
 * C = 0 for any other. */
static od_wino_geom conv_winograd_geom(const od_conv_params *p) {
    bool ok = p->sp == 2 && p->group == 1;
    for (int d = 0; ok && d < 2; d++) ok = p->kernel[d] == 3 && p->stride[d] == 1 && p->dilation[d] == 1;
    if (!ok) return (od_wino_geom){0};
    return (od_wino_geom){.C = p->cin, .H = p->in[0], .W = p->in[1], .M = p->cout, .OH = p->out[0], .OW = p->out[1],
                          .pt = p->pad_begin[0], .pl = p->pad_begin[1]};
}

typedef struct conv_winograd_run {
    const od_step *s;
    od_wino_geom g;
    int64_t group; /* tile blocks a task takes */
} conv_winograd_run;

/* Tile blocks whose transformed inputs fill at most 256 KiB (they stay in the second-level cache
 * while every block of output channels reads them). */
static int64_t conv_winograd_group(const od_wino_geom *g) {
    int64_t k = (256 << 10) / (4 * (int64_t)od_wino_block_floats(g));
    return k < 1 ? 1 : k;
}

/* Image n, tile blocks of group gi: their input transform into a buffer of the thread's (a
 * free slot: no more tasks run at once than the pool has threads), then per 32 output channels
 * each block's products and output transform. */
static void conv_winograd_task(void *ctx, size_t n, size_t gi) {
    const conv_winograd_run *r = ctx;
    const od_step *s = r->s;
    od_conv_state *cs = s->state;
    const od_wino_geom *g = &r->g;
    int slot = 0;
    while (atomic_flag_test_and_set_explicit(&cs->wino_busy[slot], memory_order_acquire))
        slot = (slot + 1) % cs->wino_slots;
    float *v = cs->wino + (size_t)slot * cs->wino_floats;
    int64_t per = (int64_t)od_wino_block_floats(g), b0 = (int64_t)gi * r->group;
    int64_t b1 = b0 + r->group < g->blocks ? b0 + r->group : g->blocks;
    for (int64_t b = b0; b < b1; b++)
        od_wino_input(g, s->in[0]->data + (int64_t)n * g->H * g->W * g->C, b, v + (b - b0) * per);
    int64_t y0 = (int64_t)n * g->OH * g->OW * g->M;
    const float *res = conv_residual(s) ? conv_residual(s) + y0 : NULL;
    for (int64_t m0 = 0; m0 < g->M; m0 += 32)
        for (int64_t b = b0; b < b1; b++)
            od_wino_output(g, v + (b - b0) * per, cs->packed, cs->bias, s->act_min, s->act_max, s->act,
                           s->out[0]->data + y0, res, b, m0);
    atomic_flag_clear_explicit(&cs->wino_busy[slot], memory_order_release);
}

/* A task per image and group of tile blocks: groups small enough that one image gives each
 * thread four tasks or more, when it has the blocks. */
static void conv_winograd_run_step(od_step *s) {
    od_conv_state *cs = s->state;
    conv_winograd_run r = {.s = s, .g = conv_winograd_geom(&cs->p)};
    od_wino_fits(&r.g);
    int64_t most = conv_winograd_group(&r.g), spread = r.g.blocks / (4 * cs->wino_slots);
    r.group = spread < 1 ? 1 : spread < most ? spread : most;
    pthreadpool_parallelize_2d(s->pool, conv_winograd_task, &r, (size_t)s->in[0]->dims[0],
                               (size_t)((r.g.blocks + r.group - 1) / r.group), 0);
}

/* The weights transformed; a buffer for the transformed inputs per thread of the pool. */
static od_status conv_winograd_prepare(od_step *s, od_conv_state *cs, const od_wino_geom *g, od_error *err) {
    const od_buf *b = s->n_in > 2 ? s->in[2] : NULL;
    free(cs->packed);
    cs->packed = od_alloc_large(sizeof(float) * od_wino_packed_floats(g));
    if (!cs->packed) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    od_wino_pack(g, s->in[1]->data, cs->packed);
    cs->wino_slots = (int)pthreadpool_get_threads_count(s->pool);
    cs->wino_floats = (size_t)conv_winograd_group(g) * od_wino_block_floats(g);
    cs->wino = od_alloc_large(sizeof(float) * cs->wino_floats * (size_t)cs->wino_slots);
    cs->wino_busy = calloc((size_t)cs->wino_slots, sizeof *cs->wino_busy);
    cs->bias = b ? malloc(sizeof(float) * (size_t)g->M) : NULL;
    if (!cs->wino || !cs->wino_busy || (b && !cs->bias)) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < cs->wino_slots; i++) atomic_flag_clear(&cs->wino_busy[i]);
    if (b) memcpy(cs->bias, b->data, sizeof(float) * (size_t)g->M);
    return OD_STATUS_OK;
}

/* A convolution that conv_wide runs on a padded copy (one group, known weights, a kernel over
 * 1x1) of an input with a few channels (an image's RGB) reads it in ONNX order: the padding copy
 * takes it channels-last, and the planner makes no channels-last copy first (mobilenet_v2 224,
 * batch 1: a 36 us transpose of a 4.2 ms run). */
static bool conv_reads_plain(const od_node *n, const od_buf *const *in, int n_in) {
    if (n_in < 2 || !in[0] || !in[1] || in[0]->rank != 4 || !in[1]->constant || (n_in > 2 && in[2] && !in[2]->constant))
        return false;
    od_conv_params p;
    if (conv_params_read(n, in[0]->dims, in[0]->rank, in[1]->dims, &p, &(od_error){0})) return false;
    od_wino_geom ng = conv_winograd_geom(&p);
    od_convw_geom wg = conv_wide_geom(&p);
    return p.group == 1 && p.cin <= 4 && !(ng.C && od_wino_fits(&ng)) && od_convw_fits(&wg, false);
}

enum { PAIRS_CHUNK = 64 }; /* pixels a task of the pool */

/* A product (1x1 kernel, stride 1, no padding, one group) to 8 + 16k channels (conv_pairs.c):
 * mobilenet_v2's projections to 24 channels at 56x56, which XNNPACK's 16-wide tiles ran at 100
 * GFLOP/s a core (144 -> 24: 0.22 -> 0.13 ms at one thread); from 4 tasks of pixels, so that
 * the pool splits it too (batch 1, 2 threads, 11 interleaved rounds: mobilenet_v2 0.96x,
 * efficientnet_b0 0.97x), at any thread count (2 threads then give 1 thread's bits). */
static bool conv_pairs_take(const od_conv_params *p, int64_t batch) {
    int64_t pixels = batch;
    for (int d = 0; d < p->sp; d++) {
        if (p->kernel[d] != 1 || p->stride[d] != 1 || p->pad_begin[d] || p->pad_end[d]) return false;
        pixels *= p->out[d];
    }
    return p->group == 1 && pixels >= 4 * PAIRS_CHUNK && od_pairs_fits(p->cin, p->cout);
}

/* Pixels [p0, p1) of the batch, every pixel a row of one product. */
static void conv_pairs_pixels(const od_step *s, int64_t p0, int64_t p1) {
    const od_conv_state *cs = s->state;
    od_pairs_rows(s->in[0]->data, cs->p.cin, cs->p.cout, cs->packed, cs->bias, conv_residual(s), s->act_min, s->act_max,
                  s->act, s->out[0]->data, p0, p1);
}

static void conv_pairs_task(void *ctx, size_t t) {
    const od_step *s = ctx;
    int64_t pixels = od_buf_count(s->out[0]) / ((const od_conv_state *)s->state)->p.cout, p0 = (int64_t)t * PAIRS_CHUNK;
    conv_pairs_pixels(s, p0, p0 + PAIRS_CHUNK < pixels ? p0 + PAIRS_CHUNK : pixels);
}

static od_status conv_pairs_prepare(od_step *s, od_conv_state *cs, od_error *err) {
    const od_buf *b = s->n_in > 2 ? s->in[2] : NULL;
    free(cs->packed);
    cs->packed = od_alloc_large(sizeof(float) * (size_t)od_pairs_packed_floats(cs->p.cin, cs->p.cout) + 64);
    cs->bias = b ? malloc(sizeof(float) * (size_t)cs->p.cout) : NULL;
    if (!cs->packed || (b && !cs->bias)) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    od_pairs_pack(s->in[1]->data, cs->p.cin, cs->p.cout, cs->packed);
    if (b) memcpy(cs->bias, b->data, sizeof(float) * (size_t)cs->p.cout);
    cs->pairs = true;
    return OD_STATUS_OK;
}

static od_status conv_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0], *w = s->in[1], *b = s->n_in > 2 ? s->in[2] : NULL;
    od_conv_state *cs;
    od_status st = od_conv_state_create(s, conv_params_read, &cs, err);
    if (st) return st;
    const od_conv_params *p = &cs->p;
    if (x->layout == OD_LAYOUT_PLAIN && x->rank >= 3) { /* the planner asked conv_reads_plain */
        if (!conv_reads_plain(s->node, (const od_buf *const *)s->in, s->n_in))
            return od_node_error(err, OD_STATUS_BACKEND, s->node, "input in ONNX order where conv_wide cannot read it");
        return conv_wide_prepare(s, cs, err);
    }
    if (!w->constant || (b && !b->constant) || p->sp > 2) return od_conv_state_use_direct(s, cs, err);
    od_wino_geom ng = conv_winograd_geom(p);
    if (ng.C && od_wino_fits(&ng)) return conv_winograd_prepare(s, cs, &ng, err);
    if (conv_pairs_take(p, x->dims[0])) return conv_pairs_prepare(s, cs, err);
    od_convw_geom wg = conv_wide_geom(p);
    /* 1x1 kernels too on a step run on one thread, and on the pool for a product to 512+ channels
     * of 64 pixels or fewer, split by blocks of 32 channels: the 7x7 expansions and heads of
     * mobilenet_v2, efficientnet_b0 and mobilenet_v3_small at batch 1 (whole model on 2 threads
     * 0.98-0.99x of XNNPACK's time; their projections to 160-320 channels, 5-10 blocks, ran
     * slower on conv_wide, and larger images gained nothing) */
    bool product = !s->pool || (wg.M >= 512 && wg.OH * wg.OW * x->dims[0] <= 64);
    if (p->group == 1 && od_convw_fits(&wg, product)) return conv_wide_prepare(s, cs, err);
    od_convdw_geom dg = conv_depthwise_geom(p);
    if (dg.C && od_convdw_fits(&dg)) return conv_depthwise_prepare(s, cs, &dg, err);
    bool two = p->sp == 2; /* a 1-D conv is a 2-D one of height 1 */
    int iw = p->sp - 1;
    int64_t G = p->group, Cg = p->cin / G, Mg = p->cout / G;
    enum xnn_status r = xnn_create_convolution2d_nhwc_f32(
        two ? (uint32_t)p->pad_begin[0] : 0, (uint32_t)p->pad_end[iw],
        two ? (uint32_t)p->pad_end[0] : 0, (uint32_t)p->pad_begin[iw],
        two ? (uint32_t)p->kernel[0] : 1, (uint32_t)p->kernel[iw],
        two ? (uint32_t)p->stride[0] : 1, (uint32_t)p->stride[iw],
        two ? (uint32_t)p->dilation[0] : 1, (uint32_t)p->dilation[iw], (uint32_t)G, (size_t)Cg,
        (size_t)Mg, (size_t)p->cin, (size_t)p->cout, cs->packed, b ? b->data : NULL,
        conv_residual(s) ? -INFINITY : s->act_min, conv_residual(s) ? INFINITY : s->act_max, 0, &cs->xnn);
    st = od_conv_state_created(cs, s, r, "create convolution", err);
    if (st) return st;
    /* Weights past the L2 cache are set up in narrow channel tiles, so that each tile of them
     * is read from memory once and used for every row (pthreadpool.c walks the tiles so). */
    int64_t wbytes = (int64_t)sizeof(float) * Cg * p->cout;
    for (int d = 0; d < p->sp; d++) wbytes *= p->kernel[d];
    r = xnn_setup_convolution2d_nhwc_f32(cs->xnn, (size_t)x->dims[0],
                                         two ? (size_t)p->in[0] : 1, (size_t)p->in[iw], x->data,
                                         s->out[0]->data,
                                         wbytes >= CONV_TILED_WEIGHTS ? od_xnn_tiling_pool() : s->pool);
    return od_xnn_check(r, err, s->node, "setup convolution");
}

static od_status conv_run(od_step *s, od_error *err) {
    od_conv_state *cs = s->state;
    if (cs->xnn) {
        od_status st = od_xnn_check(xnn_run_operator(cs->xnn, s->pool), err, s->node, "run convolution");
        if (!st && (s->act || conv_residual(s))) conv_finish(s);
        return st;
    }
    if (cs->xpad) {
        conv_wide_run_step(s);
        return OD_STATUS_OK;
    }
    if (cs->wino) {
        conv_winograd_run_step(s);
        return OD_STATUS_OK;
    }
    if (cs->depthwise) {
        conv_depthwise_run_step(s);
        return OD_STATUS_OK;
    }
    if (cs->pairs) {
        int64_t pixels = od_buf_count(s->out[0]) / cs->p.cout;
        if (s->pool) pthreadpool_parallelize_1d(s->pool, conv_pairs_task, s, (size_t)((pixels + PAIRS_CHUNK - 1) / PAIRS_CHUNK), 0);
        else conv_pairs_pixels(s, 0, pixels);
        return OD_STATUS_OK;
    }
    od_conv_state_run_direct(s);
    conv_finish(s);
    return OD_STATUS_OK;
}

/* ---- training (channels-last) ------------------------------------------------------------- */

typedef struct conv_train {
    int64_t N, C, H, W, M, KH, KW, OH, OW, G, Cg, Mg;
    int64_t sh, sw, dh, dw, pt, pl, pb, pr;
    int64_t kk;          /* KH * KW * Cg: one row of the patch matrix */
    int64_t chunk;       /* images per weight-gradient sgemm */
    bool direct;         /* the weight gradient on conv_dw_direct.c, geometry in dg */
    od_conv_dw_geom dg;
    int64_t dw_off;      /* floats before dW in a shard's scratch */
    float *wpack;        /* conv weights [M][KH][KW][Cg] */
    float *dpack;        /* input-gradient weights [G][Cg][KH][KW][Mg], the kernel flipped when dx_conv */
    bool dx_conv;        /* stride 1: the input gradient as a convolution of dY (see conv_dx_shard) */
    bool dx_gemm;        /* else, one group: as dY W, then col2im (conv_dx_gemm), dx_chunk images at a time */
    int64_t dx_chunk, cols_off; /* its patch rows at cols_off in a shard's scratch */
    int32_t *c2i_at, *c2i_off;  /* col2im: input pixel p sums the patch entries at offsets
                                 * c2i_off[c2i_at[p] .. c2i_at[p + 1]) of an image's patch rows */
    bool fwd8, dx8;             /* the forward, the input gradient (dx_conv) on conv8.c: 8 output channels */
    od_conv8_geom g8f, g8d;
    float *w8f, *w8d;           /* their packed weights */
    bool fwdw;                  /* else the forward on conv_wide.c (gw, its weights in w8f) */
    od_convw_geom gw;
    float *pad8;                /* per shard: the padded images, g8f's (or gw's) then g8d's at dx_pad_at */
    size_t pad8_floats, dx_pad_at;
    int64_t xpt, xpl, xpb, xpr; /* its padding */
    float *dxbuf;        /* input gradient when it must be added, else NULL */
    float *xcl;          /* an input in ONNX order (a graph input, a Transpose's output): its
                          * channels-last copy, the gradient added back from dxbuf; else NULL */
    float *scratch;      /* per shard: patches [chunk*OH*OW][kk] or a padded image, dW [M][kk], db [M] */
    size_t shard_floats;
    xnn_operator_t *fwd, *bwd; /* per shard: each runs one slice of the batch on one thread */
    int *xnn_status;           /* per shard: XNNPACK's status of the last pass */
} conv_train;

/* Along one axis of n inputs: for input index v, the pairs (tap, output index) whose tap reads
 * it are t[2*k], t[2*k+1] for k in [t[v], t[v+1]). NULL when out of memory. */
static int64_t *axis_taps(int64_t n, int64_t k, int64_t out, int64_t stride, int64_t dil, int64_t pad) {
    int64_t *t = calloc((size_t)(n + 1 + 2 * out * k) + 1, sizeof(int64_t)), *pairs = t + n + 1;
    if (!t) return NULL;
    for (int64_t o = 0; o < out; o++) /* count, then start offsets, then fill */
        for (int64_t i = 0; i < k; i++) {
            int64_t v = o * stride - pad + i * dil;
            if (v >= 0 && v < n) t[v + 1]++;
        }
    for (int64_t v = 0; v < n; v++) t[v + 1] += t[v];
    int64_t *fill = calloc((size_t)n + 1, sizeof(int64_t));
    if (!fill) return free(t), NULL;
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < k; i++) {
            int64_t v = o * stride - pad + i * dil;
            if (v < 0 || v >= n) continue;
            int64_t at = t[v] + fill[v]++;
            pairs[2 * at] = i, pairs[2 * at + 1] = o;
        }
    free(fill);
    return t;
}

/* col2im's table: for each input pixel, where its taps' entries are in an image's patch rows
 * [OH*OW][KH][KW][C]. Nonzero when out of memory. */
static int col2im_table(conv_train *c) {
    int64_t *yt = axis_taps(c->H, c->KH, c->OH, c->sh, c->dh, c->pt), *xt = axis_taps(c->W, c->KW, c->OW, c->sw, c->dw, c->pl);
    int64_t n = 0;
    for (int64_t iy = 0; yt && xt && iy < c->H; iy++)
        for (int64_t ix = 0; ix < c->W; ix++) n += (yt[iy + 1] - yt[iy]) * (xt[ix + 1] - xt[ix]);
    c->c2i_at = malloc(sizeof(int32_t) * (size_t)(c->H * c->W + 1));
    c->c2i_off = malloc(sizeof(int32_t) * (size_t)(n + 1));
    if (yt && xt && c->c2i_at && c->c2i_off) {
        const int64_t *yp = yt + c->H + 1, *xp = xt + c->W + 1; /* (tap, output index) pairs */
        int32_t k = 0;
        for (int64_t iy = 0; iy < c->H; iy++)
            for (int64_t ix = 0; ix < c->W; ix++) {
                c->c2i_at[iy * c->W + ix] = k;
                for (int64_t a = yt[iy]; a < yt[iy + 1]; a++)
                    for (int64_t b = xt[ix]; b < xt[ix + 1]; b++)
                        c->c2i_off[k++] = (int32_t)((yp[2 * a + 1] * c->OW + xp[2 * b + 1]) * c->kk + (yp[2 * a] * c->KW + xp[2 * b]) * c->C);
            }
        c->c2i_at[c->H * c->W] = k;
    }
    free(yt), free(xt);
    return !c->c2i_at || !c->c2i_off || !yt || !xt;
}

static od_status conv_train_prepare(od_tstep *s, od_error *err) {
    const od_node *n = s->node;
    const od_tbuf *x = s->in[0], *w = s->in[1], *y = s->out[0];
    if (x->rank != 4 && x->rank != 3)
        return od_node_error(err, OD_STATUS_UNSUPPORTED, n, "training supports 1-D and 2-D convolutions");
    if (s->n_in > 2 && s->in[2] && !s->in[2]->data)
        return od_node_error(err, OD_STATUS_UNSUPPORTED, n, "the bias must be float");
    conv_train *c = calloc(1, sizeof *c);
    if (!c) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = c;
    bool two = x->rank == 4;
    c->N = x->dims[0], c->C = x->dims[1], c->H = two ? x->dims[2] : 1, c->W = x->dims[x->rank - 1];
    c->M = w->dims[0], c->KH = two ? w->dims[2] : 1, c->KW = w->dims[w->rank - 1];
    c->OH = two ? y->dims[2] : 1, c->OW = y->dims[y->rank - 1];
    od_conv_params p;
    od_status st = conv_params_read(n, x->dims, x->rank, w->dims, &p, err);
    if (st) return st;
    c->G = p.group;
    c->Cg = c->C / c->G, c->Mg = c->M / c->G;
    int h = two ? 0 : -1, v = two ? 1 : 0; /* the spatial dims in p; a 1-D conv has height 1 */
    c->sh = two ? p.stride[h] : 1, c->sw = p.stride[v];
    c->dh = two ? p.dilation[h] : 1, c->dw = p.dilation[v];
    c->pt = two ? p.pad_begin[h] : 0, c->pb = two ? p.pad_end[h] : 0;
    c->pl = p.pad_begin[v], c->pr = p.pad_end[v];
    c->kk = c->KH * c->KW * c->Cg;
    /* With stride 1 the input gradient is a convolution of dY with the kernel flipped and its
     * channel roles swapped, padded by the kernel's extent minus the forward padding. XNNPACK
     * runs that on its convolution kernels, much faster than its deconvolution for narrow layers
     * (8 channels at 28x28, batch 64: 2.7x). A padding wider than the kernel keeps the deconvolution. */
    int64_t eh = c->dh * (c->KH - 1), ew = c->dw * (c->KW - 1);
    c->dx_conv = c->sh == 1 && c->sw == 1 && c->pt <= eh && c->pb <= eh && c->pl <= ew && c->pr <= ew;
    c->xpt = eh - c->pt, c->xpb = eh - c->pb, c->xpl = ew - c->pl, c->xpr = ew - c->pr;
    /* XNNPACK's deconvolution writes 16 input channels at a time: narrower inputs waste most of
     * it (resnet w0.5's 8-channel stride-2 layers: 1.6 ms, 0.98 through dx_gemm at batch 64),
     * while on 16 channels it beat dx_gemm (0.49 against 0.62 ms). */
    c->dx_gemm = !c->dx_conv && c->G == 1 && c->C < 16 && c->OH * c->OW * c->kk < INT32_MAX;
    /* 8 output channels (forward) or 8 input channels (input gradient), one group: conv8.c */
    c->g8f = (od_conv8_geom){.C = c->C, .H = c->H, .W = c->W, .OH = c->OH, .OW = c->OW, .KH = c->KH, .KW = c->KW,
                             .sh = c->sh, .sw = c->sw, .dh = c->dh, .dw = c->dw, .pt = c->pt, .pl = c->pl};
    c->g8d = (od_conv8_geom){.C = c->M, .H = c->OH, .W = c->OW, .OH = c->H, .OW = c->W, .KH = c->KH, .KW = c->KW,
                             .sh = 1, .sw = 1, .dh = c->dh, .dw = c->dw, .pt = c->xpt, .pl = c->xpl};
    c->fwd8 = c->G == 1 && c->M == 8 && od_conv8_fits(&c->g8f);
    c->dx8 = c->G == 1 && c->C == 8 && c->dx_conv && od_conv8_fits(&c->g8d);
    c->gw = (od_convw_geom){.C = c->C, .H = c->H, .W = c->W, .M = c->M, .OH = c->OH, .OW = c->OW, .KH = c->KH,
                            .KW = c->KW, .sh = c->sh, .sw = c->sw, .dh = c->dh, .dw = c->dw, .pt = c->pt, .pl = c->pl};
    c->fwdw = c->G == 1 && !c->fwd8 && od_convw_fits(&c->gw, false);
    c->dx_pad_at = (size_t)(c->fwd8 ? c->g8f.scratch : c->fwdw ? c->gw.HP * c->gw.WP * c->C : 0);
    c->pad8_floats = c->dx_pad_at + (size_t)(c->dx8 ? c->g8d.scratch : 0);
    size_t wn = (size_t)(c->M * c->kk);
    int shards = s->threads > 0 ? s->threads : 1;
    /* the weight gradient takes several images per sgemm: a longer reduction runs faster */
    int64_t per_image = c->OH * c->OW * c->kk;
    c->chunk = per_image > 0 ? (1 << 20) / per_image : 1;
    c->chunk = c->chunk < 1 ? 1 : c->chunk > 16 ? 16 : c->chunk;
    c->dg = (od_conv_dw_geom){.C = c->C, .H = c->H, .W = c->W, .M = c->M, .KH = c->KH, .KW = c->KW, .OH = c->OH,
                              .OW = c->OW, .G = c->G, .Cg = c->Cg, .Mg = c->Mg, .sh = c->sh, .sw = c->sw,
                              .dh = c->dh, .dw = c->dw, .pt = c->pt, .pl = c->pl,
                              .HP = (c->OH - 1) * c->sh + (c->KH - 1) * c->dh + 1,
                              .WP = (c->OW - 1) * c->sw + (c->KW - 1) * c->dw + 1};
    c->direct = od_conv_dw_direct_fits(&c->dg);
    c->dw_off = c->direct ? c->dg.HP * c->dg.WP * c->C : c->chunk * per_image;
    c->cols_off = c->dw_off + c->M * c->kk + c->M; /* after dW and db: the direct path keeps its padding zeros */
    c->shard_floats = (size_t)c->cols_off;
    if (c->dx_gemm) { /* the patch rows of dx_chunk images (~256 KB: they stay in cache for col2im) */
        c->dx_chunk = per_image > 0 ? (1 << 16) / per_image : 1;
        c->dx_chunk = c->dx_chunk < 1 ? 1 : c->dx_chunk;
        c->shard_floats += (size_t)(c->dx_chunk * per_image);
        if (col2im_table(c)) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    c->fwd = calloc((size_t)shards, sizeof(xnn_operator_t));
    c->bwd = calloc((size_t)shards, sizeof(xnn_operator_t));
    c->xnn_status = calloc((size_t)shards, sizeof(int));
    if (!c->fwd || !c->bwd || !c->xnn_status) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    if (c->fwd8 || c->fwdw || c->dx8) {
        c->w8f = malloc(sizeof(float) * wn + 64);
        c->w8d = malloc(sizeof(float) * wn + 64);
        c->pad8 = calloc(c->pad8_floats * (size_t)shards + 1, sizeof(float)); /* the padding's zeros */
        if (!c->w8f || !c->w8d || !c->pad8) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    c->wpack = malloc(sizeof(float) * wn + 64);
    c->dpack = malloc(sizeof(float) * wn + 64);
    c->scratch = od_calloc_large(c->shard_floats * (size_t)shards + 16, sizeof(float)); /* the padded images' zeros */
    /* XNNPACK writes the input gradient whole (conv_dx_shard): straight into x->grad when this is
     * the first to write it, else into dxbuf and added */
    bool direct_dx = x->cl && od_claim_grad(s, 0);
    if (x->grad && !direct_dx) c->dxbuf = od_alloc_large(sizeof(float) * (size_t)x->count + 64);
    if (!x->cl) c->xcl = od_alloc_large(sizeof(float) * (size_t)x->count + 64);
    if (!c->wpack || !c->dpack || !c->scratch || (x->grad && !direct_dx && !c->dxbuf) || (!x->cl && !c->xcl))
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

/* The input as the kernels read it (channels-last), and the strides between the two orders. */
static const float *conv_x(const od_tstep *s, const conv_train *c) { return c->xcl ? c->xcl : s->in[0]->data; }
static void conv_x_strides(const od_tbuf *x, int64_t *plain, int64_t *cl) {
    od_tbuf v = *x;
    v.cl = true;
    od_tbuf_strides(&v, cl);
    od_strides(x->rank, x->dims, plain);
}

/* Repacks the current weights for XNNPACK's convolution and deconvolution. */
static void conv_pack(od_tstep *s, conv_train *c) {
    const float *w = s->in[1]->data; /* ONNX [M][Cg][KH][KW] */
    int64_t ksz = c->KH * c->KW;
    for (int64_t m = 0; m < c->M; m++)
        for (int64_t ch = 0; ch < c->Cg; ch++)
            for (int64_t q = 0; q < ksz; q++) {
                float v = w[(m * c->Cg + ch) * ksz + q];
                c->wpack[(m * ksz + q) * c->Cg + ch] = v;
                int64_t g = m / c->Mg, mg = m % c->Mg;
                c->dpack[((g * c->Cg + ch) * ksz + (c->dx_conv ? ksz - 1 - q : q)) * c->Mg + mg] = v;
            }
    if (c->fwd8) od_conv_pack_taps(w, c->C * ksz, 1, ksz, c->M, ksz, c->C, c->w8f); /* [M][C][KH][KW] */
    if (c->fwdw) od_convw_pack(&c->gw, w, c->w8f);
    if (c->dx8) od_conv_pack_taps(c->dpack, ksz * c->M, c->M, 1, c->C, ksz, c->M, c->w8d);      /* [C][KH][KW][M] */
}

/* A fresh operator for this step's weights over images [begin, end); its status in
 * c->xnn_status[shard]. */
static void conv_fwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    conv_train *c = s->state;
    if (c->fwd[shard]) xnn_delete_operator(c->fwd[shard]);
    c->fwd[shard] = NULL;
    const float *bias = s->n_in > 2 && s->in[2] ? s->in[2]->data : NULL;
    float lo = s->fused_relu ? 0.0f : -INFINITY;
    float *y = s->out[0]->data + begin * c->OH * c->OW * c->M;
    if (c->fwd8) {
        for (int64_t n = begin; n < end; n++)
            od_conv8_image(&c->g8f, conv_x(s, c) + n * c->H * c->W * c->C, c->w8f, bias, lo, INFINITY,
                           c->pad8 + (size_t)shard * c->pad8_floats, y + (n - begin) * c->OH * c->OW * c->M, false);
        c->xnn_status[shard] = xnn_status_success;
        return;
    }
    if (c->fwdw) {
        float *pad = c->pad8 + (size_t)shard * c->pad8_floats;
        for (int64_t n = begin; n < end; n++) {
            od_conv_pad_rows(conv_x(s, c) + n * c->H * c->W * c->C, c->W, c->C, 0, c->H, pad, c->gw.HP, c->gw.WP,
                             c->pt, c->pl);
            for (int64_t m0 = 0; m0 < c->M; m0 += 32)
                od_convw_block(&c->gw, pad, c->w8f, bias, lo, INFINITY, OD_ACT_NONE, y + (n - begin) * c->OH * c->OW * c->M, NULL, 0,
                               c->OH, m0);
        }
        c->xnn_status[shard] = xnn_status_success;
        return;
    }
    enum xnn_status r = xnn_create_convolution2d_nhwc_f32(
        (uint32_t)c->pt, (uint32_t)c->pr, (uint32_t)c->pb, (uint32_t)c->pl, (uint32_t)c->KH, (uint32_t)c->KW,
        (uint32_t)c->sh, (uint32_t)c->sw, (uint32_t)c->dh, (uint32_t)c->dw, (uint32_t)c->G, (size_t)c->Cg,
        (size_t)c->Mg, (size_t)c->C, (size_t)c->M, c->wpack, bias, lo, INFINITY, 0, &c->fwd[shard]);
    if (r == xnn_status_success)
        r = xnn_setup_convolution2d_nhwc_f32(c->fwd[shard], (size_t)(end - begin), (size_t)c->H, (size_t)c->W,
                                             conv_x(s, c) + begin * c->H * c->W * c->C, y, NULL);
    if (r == xnn_status_success) r = xnn_run_operator(c->fwd[shard], NULL);
    c->xnn_status[shard] = r;
}

/* The first failed shard's XNNPACK status as an error naming the node. */
static od_status conv_shards_status(const od_tstep *s, const conv_train *c, const char *what, od_error *err) {
    for (int i = 0; i < od_shard_count(s, c->N); i++)
        if (c->xnn_status[i] != xnn_status_success) return od_xnn_check(c->xnn_status[i], err, s->node, what);
    return OD_STATUS_OK;
}

static od_status conv_train_forward(od_tstep *s, od_error *err) {
    conv_train *c = s->state;
    conv_pack(s, c);
    if (c->xcl) {
        const od_tbuf *x = s->in[0];
        int64_t plain[OD_MAX_RANK], cl[OD_MAX_RANK];
        conv_x_strides(x, plain, cl);
        od_copy_strided(c->xcl, cl, x->data, plain, x->rank, x->dims, sizeof(float), NULL);
    }
    od_shards(s, c->N, conv_fwd_shard, s);
    return conv_shards_status(s, c, "training convolution", err);
}

typedef float f8 __attribute__((vector_size(32), aligned(4))); /* 8 floats, any alignment */

/* One image's dx from its patch rows cols [OH*OW][KH][KW][C]: each input pixel sums the entries
 * that read it (col2im_table), 8 channels at a time in a register, then is written (or added
 * to, add) once. */
static void col2im(const conv_train *c, const float *cols, float *dx, bool add) {
    int64_t C = c->C, c8 = C - C % 8;
    for (int64_t p = 0; p < c->H * c->W; p++) {
        float *d = dx + p * C;
        const int32_t *t0 = c->c2i_off + c->c2i_at[p], *t1 = c->c2i_off + c->c2i_at[p + 1];
        for (int64_t c0 = 0; c0 < c8; c0 += 8) {
            f8 acc = {0};
            for (const int32_t *t = t0; t < t1; t++) acc += *(const f8 *)(cols + *t + c0);
            *(f8 *)(d + c0) = add ? *(f8 *)(d + c0) + acc : acc;
        }
        for (int64_t ch = c8; ch < C; ch++) {
            float acc = 0;
            for (const int32_t *t = t0; t < t1; t++) acc += cols[*t + ch];
            d[ch] = add ? d[ch] + acc : acc;
        }
    }
}

/* The input gradient of a narrow strided convolution with one group (dx_gemm), as
 * dY [pixels][M] x W [M][kk] (XNNPACK's fully-connected kernels) then col2im, dx_chunk images
 * at a time in the shard's scratch. */
static enum xnn_status conv_dx_gemm(conv_train *c, int shard, const float *dy, float *dst, int64_t images, bool add) {
    float *cols = c->scratch + (size_t)shard * c->shard_floats + c->cols_off;
    int64_t ohw = c->OH * c->OW;
    enum xnn_status r = xnn_create_fully_connected_nc_f32((size_t)c->M, (size_t)c->kk, (size_t)c->M, (size_t)c->kk,
                                                          c->wpack, NULL, -INFINITY, INFINITY,
                                                          XNN_FLAG_TRANSPOSE_WEIGHTS, &c->bwd[shard]);
    for (int64_t n0 = 0; n0 < images && r == xnn_status_success; n0 += c->dx_chunk) {
        int64_t nn = images - n0 < c->dx_chunk ? images - n0 : c->dx_chunk;
        r = xnn_setup_fully_connected_nc_f32(c->bwd[shard], (size_t)(nn * ohw), dy + n0 * ohw * c->M, cols, NULL);
        if (r == xnn_status_success) r = xnn_run_operator(c->bwd[shard], NULL);
        for (int64_t k = 0; k < nn && r == xnn_status_success; k++)
            col2im(c, cols + k * ohw * c->kk, dst + (n0 + k) * c->H * c->W * c->C, add);
    }
    return r;
}

/* The input gradient of images [begin, end): a convolution (dx_conv), a product and col2im
 * (dx_gemm) or a deconvolution of their output gradient. */
static void conv_dx_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    conv_train *c = s->state;
    od_tbuf *x = s->in[0], *y = s->out[0];
    int64_t in_img = c->H * c->W * c->C;
    float *dst = (c->dxbuf ? c->dxbuf : x->grad) + begin * in_img; /* no dxbuf: od_claim_grad */
    const float *dy = y->grad + begin * c->OH * c->OW * c->M;
    if (c->bwd[shard]) xnn_delete_operator(c->bwd[shard]);
    c->bwd[shard] = NULL;
    /* col2im and conv8 add into x->grad themselves (the same sums as adding dxbuf after) */
    bool add = (c->dx_gemm || c->dx8) && c->dxbuf && !c->xcl;
    float *into = add ? x->grad + begin * in_img : dst;
    enum xnn_status r;
    if (c->dx_gemm) {
        r = conv_dx_gemm(c, shard, dy, into, end - begin, add);
    } else if (c->dx8) {
        float *pad = c->pad8 + (size_t)shard * c->pad8_floats + c->dx_pad_at;
        for (int64_t n = 0; n < end - begin; n++)
            od_conv8_image(&c->g8d, dy + n * c->OH * c->OW * c->M, c->w8d, NULL, -INFINITY, INFINITY, pad, into + n * in_img,
                           add);
        r = xnn_status_success;
    } else if (c->dx_conv) {
        r = xnn_create_convolution2d_nhwc_f32(
            (uint32_t)c->xpt, (uint32_t)c->xpr, (uint32_t)c->xpb, (uint32_t)c->xpl, (uint32_t)c->KH, (uint32_t)c->KW, 1, 1,
            (uint32_t)c->dh, (uint32_t)c->dw, (uint32_t)c->G, (size_t)c->Mg, (size_t)c->Cg, (size_t)c->M, (size_t)c->C,
            c->dpack, NULL, -INFINITY, INFINITY, 0, &c->bwd[shard]);
        if (r == xnn_status_success)
            r = xnn_setup_convolution2d_nhwc_f32(c->bwd[shard], (size_t)(end - begin), (size_t)c->OH, (size_t)c->OW, dy,
                                                 dst, NULL);
    } else {
        uint32_t adj_h = (uint32_t)(c->H - ((c->OH - 1) * c->sh + c->dh * (c->KH - 1) + 1 - c->pt - c->pb));
        uint32_t adj_w = (uint32_t)(c->W - ((c->OW - 1) * c->sw + c->dw * (c->KW - 1) + 1 - c->pl - c->pr));
        r = xnn_create_deconvolution2d_nhwc_f32(
            (uint32_t)c->pt, (uint32_t)c->pr, (uint32_t)c->pb, (uint32_t)c->pl, (uint32_t)c->KH, (uint32_t)c->KW,
            (uint32_t)c->sh, (uint32_t)c->sw, (uint32_t)c->dh, (uint32_t)c->dw, (uint32_t)c->G, (size_t)c->Mg,
            (size_t)c->Cg, (size_t)c->M, (size_t)c->C, c->dpack, NULL, -INFINITY, INFINITY, 0, &c->bwd[shard]);
        if (r == xnn_status_success)
            r = xnn_setup_deconvolution2d_nhwc_f32(c->bwd[shard], (size_t)(end - begin), (size_t)c->OH, (size_t)c->OW,
                                                   adj_h, adj_w, dy, dst, NULL);
    }
    if (r == xnn_status_success && c->bwd[shard] && !c->dx_gemm) r = xnn_run_operator(c->bwd[shard], NULL);
    c->xnn_status[shard] = r;
    if (c->dxbuf && !c->xcl && !add) od_add_into(x->grad + begin * in_img, dst, (end - begin) * in_img);
}

/* patches[(oy*OW + ox)][(i*KW + j)*Cg + ch] = x[oy*sh - pt + i*dh][ox*sw - pl + j*dw][g*Cg + ch].
 * With one group and no horizontal dilation, the KW taps of a row inside the image are KW*C
 * contiguous floats: one copy (a third of the time for 8 channels). */
static void im2row(const conv_train *c, const float *x, int64_t g, float *rows) {
    const size_t cg = sizeof(float) * (size_t)c->Cg;
    bool runs = c->G == 1 && c->dw == 1;
    for (int64_t oy = 0; oy < c->OH; oy++)
        for (int64_t i = 0; i < c->KH; i++) {
            int64_t iy = oy * c->sh - c->pt + i * c->dh;
            for (int64_t ox = 0; ox < c->OW; ox++) {
                float *r = rows + (oy * c->OW + ox) * c->kk + i * c->KW * c->Cg;
                int64_t ix0 = ox * c->sw - c->pl;
                if (iy < 0 || iy >= c->H) {
                    memset(r, 0, cg * (size_t)c->KW);
                } else if (runs && ix0 >= 0 && ix0 + c->KW <= c->W) {
                    memcpy(r, x + (iy * c->W + ix0) * c->C, cg * (size_t)c->KW);
                } else {
                    for (int64_t j = 0; j < c->KW; j++, r += c->Cg) {
                        int64_t ix = ix0 + j * c->dw;
                        if (ix < 0 || ix >= c->W) memset(r, 0, cg);
                        else memcpy(r, x + (iy * c->W + ix) * c->C + g * c->Cg, cg);
                    }
                }
            }
        }
}

static void conv_dw_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    conv_train *c = s->state;
    const float *x = conv_x(s, c), *dy = s->out[0]->grad;
    float *rows = c->scratch + (size_t)shard * c->shard_floats;
    float *dw = rows + c->dw_off, *db = dw + c->M * c->kk;
    int64_t ohw = c->OH * c->OW;
    memset(dw, 0, sizeof(float) * (size_t)(c->M * c->kk + c->M));
    for (int64_t n0 = begin; n0 < end; n0 += c->chunk) {
        int64_t nn = end - n0 < c->chunk ? end - n0 : c->chunk;
        const float *dyn = dy + n0 * ohw * c->M; /* [nn * ohw, M]: channels-last is already rows */
        if (s->in[1]->grad && c->direct) {
            for (int64_t k = 0; k < nn; k++)
                od_conv_dw_direct_image(&c->dg, x + (n0 + k) * c->H * c->W * c->C, dyn + k * ohw * c->M, rows, dw, db);
            continue; /* the bias sums too */
        }
        if (s->in[1]->grad)
            for (int64_t g = 0; g < c->G; g++) {
                for (int64_t k = 0; k < nn; k++) im2row(c, x + (n0 + k) * c->H * c->W * c->C, g, rows + k * ohw * c->kk);
                /* dW_g [Mg, kk] += dY_g^T [Mg, nn*ohw] x rows [nn*ohw, kk] */
                od_sgemm(true, false, c->Mg, c->kk, nn * ohw, 1.0f, dyn + g * c->Mg, c->M, rows, c->kk, 1.0f, dw + g * c->Mg * c->kk,
                      c->kk);
            }
        for (int64_t p = 0; p < nn * ohw; p++)
            for (int64_t m = 0; m < c->M; m++) db[m] += dyn[p * c->M + m];
    }
}

/* Both gradients of a shard's images in one pass over the shards: one barrier a step fewer. */
static void conv_bwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    bool want_b = s->n_in > 2 && s->in[2] && s->in[2]->grad;
    if (s->in[0]->grad) conv_dx_shard(ctx, shard, begin, end);
    if (s->in[1]->grad || want_b) conv_dw_shard(ctx, shard, begin, end);
}

static od_status conv_train_backward(od_tstep *s, od_error *err) {
    conv_train *c = s->state;
    od_tbuf *x = s->in[0], *y = s->out[0];
    if (s->fused_relu) od_relu_mask(y->data, y->grad, y->count);
    od_shards(s, c->N, conv_bwd_shard, s);
    if (x->grad) {
        od_status st = conv_shards_status(s, c, "input gradient (deconvolution)", err);
        if (st) return st;
        if (c->xcl) { /* back to ONNX order */
            int64_t plain[OD_MAX_RANK], cl[OD_MAX_RANK];
            conv_x_strides(x, plain, cl);
            od_add_strided(x->grad, plain, c->dxbuf, cl, x->rank, x->dims);
        }
    }
    bool want_b = s->n_in > 2 && s->in[2] && s->in[2]->grad;
    if (!s->in[1]->grad && !want_b) return OD_STATUS_OK;
    int shards = od_shard_count(s, c->N);
    for (int sh = 0; sh < shards; sh++) {
        const float *dw = c->scratch + (size_t)sh * c->shard_floats + c->dw_off;
        if (s->in[1]->grad) { /* [M][KH][KW][Cg] back to ONNX [M][Cg][KH][KW] */
            int64_t ksz = c->KH * c->KW;
            for (int64_t m = 0; m < c->M; m++)
                for (int64_t q = 0; q < ksz; q++)
                    for (int64_t ch = 0; ch < c->Cg; ch++)
                        s->in[1]->grad[(m * c->Cg + ch) * ksz + q] += dw[(m * ksz + q) * c->Cg + ch];
        }
        if (want_b) od_add_into(s->in[2]->grad, dw + c->M * c->kk, c->M);
    }
    return OD_STATUS_OK;
}

static void conv_train_destroy(od_tstep *s) {
    conv_train *c = s->state;
    if (c) {
        for (int i = 0; i < (s->threads > 0 ? s->threads : 1); i++) {
            if (c->fwd && c->fwd[i]) xnn_delete_operator(c->fwd[i]);
            if (c->bwd && c->bwd[i]) xnn_delete_operator(c->bwd[i]);
        }
        free(c->fwd);
        free(c->bwd);
        free(c->xnn_status);
        free(c->wpack);
        free(c->dpack);
        free(c->dxbuf);
        free(c->xcl);
        free(c->scratch);
        free(c->w8f);
        free(c->w8d);
        free(c->pad8);
        free(c->c2i_at);
        free(c->c2i_off);
    }
    free(c);
    s->state = NULL;
}

/* ---- int8 (quantized execution, plan_qs8.c) ------------------------------------------------ */

/* 1-D and 2-D convolutions with a constant weight: XNNPACK's per-channel QC8 convolution. */
static bool conv_qs8_accepts(const od_node *n, const od_shape_info *const *in) {
    (void)n;
    return in[0] && (in[0]->rank == 3 || in[0]->rank == 4) && in[1] && in[1]->constant &&
           in[1]->rank == in[0]->rank;
}

/* A convolution of few input channels per group (a first layer on grey images) wastes most of
 * XNNPACK's int8 kernels, which take channels in blocks of 8: it runs as im2col into cols
 * (padding at the input's zero point) and a 1x1 convolution over kh x kw x C channels. */
typedef struct conv_qs8 {
    xnn_operator_t xnn;
    od_qs8_vnni *vnni; /* AVX-512 VNNI instead (qs8_vnni.c), or NULL */
    int8_t *cols; /* [N, OH, OW, kh, kw, C], or NULL: direct */
    int64_t N, H, W, C, OH, OW, kh, kw, sh, sw, dh, dw, pt, pl;
    int8_t zp;
} conv_qs8;

static void conv_qs8_im2col(const conv_qs8 *c, const int8_t *x) {
    int8_t *r = c->cols;
    int64_t C = c->C, W = c->W;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t oy = 0; oy < c->OH; oy++)
            for (int64_t ox = 0; ox < c->OW; ox++) {
                int64_t iy0 = oy * c->sh - c->pt, ix0 = ox * c->sw - c->pl;
                if (iy0 >= 0 && iy0 + (c->kh - 1) * c->dh < c->H && ix0 >= 0 && ix0 + (c->kw - 1) * c->dw < W) {
                    const int8_t *src = x + ((n * c->H + iy0) * W + ix0) * C; /* inside: no checks */
                    for (int64_t i = 0; i < c->kh; i++, src += c->dh * W * C)
                        for (int64_t j = 0; j < c->kw; j++, r += C)
                            for (int64_t ch = 0; ch < C; ch++) r[ch] = src[j * c->dw * C + ch];
                    continue;
                }
                for (int64_t i = 0; i < c->kh; i++) {
                    int64_t iy = oy * c->sh - c->pt + i * c->dh;
                    bool row = iy >= 0 && iy < c->H;
                    const int8_t *src = x + (n * c->H + (row ? iy : 0)) * c->W * c->C;
                    for (int64_t j = 0; j < c->kw; j++, r += c->C) { /* C < 8: bytes, not memcpy calls */
                        int64_t ix = ox * c->sw - c->pl + j * c->dw;
                        bool in = row && ix >= 0 && ix < c->W;
                        for (int64_t ch = 0; ch < c->C; ch++) r[ch] = in ? src[ix * c->C + ch] : c->zp;
                    }
                }
            }
}

static od_status conv_qs8_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0], *w = s->in[1], *b = s->n_in > 2 ? s->in[2] : NULL;
    od_conv_params p;
    od_status st = conv_params_read(s->node, x->dims, x->rank, w->dims, &p, err);
    if (st) return st;
    conv_qs8 *cs = calloc(1, sizeof *cs);
    if (!cs) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = cs;
    bool two = p.sp == 2;
    int iw = p.sp - 1;
    int64_t kh = two ? p.kernel[0] : 1, kw = p.kernel[iw], M = p.cout, Cg = p.cin / p.group;
    int8_t *k = malloc((size_t)(M * kh * kw * Cg) + 1);
    if (!k) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    const int8_t *src = s->qs8->w; /* ONNX [M][Cg][kh][kw] -> [M][kh][kw][Cg] */
    for (int64_t m = 0; m < M; m++)
        for (int64_t c = 0; c < Cg; c++)
            for (int64_t q = 0; q < kh * kw; q++) k[(m * kh * kw + q) * Cg + c] = src[(m * Cg + c) * kh * kw + q];
    od_qs8_conv_geom g = {
        .pad_top = two ? (uint32_t)p.pad_begin[0] : 0, .pad_right = (uint32_t)p.pad_end[iw],
        .pad_bottom = two ? (uint32_t)p.pad_end[0] : 0, .pad_left = (uint32_t)p.pad_begin[iw],
        .kh = (uint32_t)kh, .kw = (uint32_t)kw, .sh = two ? (uint32_t)p.stride[0] : 1,
        .sw = (uint32_t)p.stride[iw], .dh = two ? (uint32_t)p.dilation[0] : 1,
        .dw = (uint32_t)p.dilation[iw], .groups = (uint32_t)p.group, .cg = (size_t)Cg,
        .mg = (size_t)(M / p.group), .cin = (size_t)p.cin, .cout = (size_t)M,
        .batch = (size_t)x->dims[0], .h = two ? (size_t)p.in[0] : 1, .w = (size_t)p.in[iw]};
    const int8_t *input = (const int8_t *)x->data;
    if ((cs->vnni = od_qs8_vnni_create(s, &g, two ? p.out[0] : 1, p.out[iw], k, b ? b->data : NULL))) {
        free(k);
        return OD_STATUS_OK;
    }
    if (p.group == 1 && Cg < 8 && kh * kw > 1) {
        *cs = (conv_qs8){.N = x->dims[0], .H = (int64_t)g.h, .W = (int64_t)g.w, .C = Cg, .OH = two ? p.out[0] : 1,
                         .OW = p.out[iw], .kh = kh, .kw = kw, .sh = g.sh, .sw = g.sw, .dh = g.dh, .dw = g.dw,
                         .pt = g.pad_top, .pl = g.pad_left, .zp = (int8_t)s->qs8->in_zp[0]};
        cs->cols = malloc((size_t)(cs->N * cs->OH * cs->OW * kh * kw * Cg) + 64);
        if (!cs->cols) {
            free(k);
            return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        }
        g = (od_qs8_conv_geom){.kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1,
                               .cg = (size_t)(kh * kw * Cg), .mg = (size_t)M, .cin = (size_t)(kh * kw * Cg),
                               .cout = (size_t)M, .batch = (size_t)cs->N, .h = (size_t)cs->OH, .w = (size_t)cs->OW};
        input = cs->cols;
    }
    st = od_qs8_conv_create(s, &g, k, b ? b->data : NULL, input, &cs->xnn, err);
    free(k);
    return st;
}

static od_status conv_qs8_run(od_step *s, od_error *err) {
    conv_qs8 *cs = s->state;
    if (cs->vnni) {
        od_qs8_vnni_run(cs->vnni, (const int8_t *)s->in[0]->data, (int8_t *)s->out[0]->data, s->pool);
        return OD_STATUS_OK;
    }
    if (cs->cols) conv_qs8_im2col(cs, (const int8_t *)s->in[0]->data);
    return od_xnn_check(xnn_run_operator(cs->xnn, s->pool), err, s->node, "run int8 convolution");
}

static void conv_qs8_destroy(od_step *s) {
    conv_qs8 *cs = s->state;
    if (cs && cs->xnn) xnn_delete_operator(cs->xnn);
    if (cs) od_qs8_vnni_destroy(cs->vnni);
    if (cs) free(cs->cols);
    free(cs);
    s->state = NULL;
}

const od_op_desc od_qs8_Conv = {.name = "Conv (int8)", .layout = OD_LAYOUT_POLICY_SPATIAL,
                                .fuses_activation = true, .prepare = conv_qs8_prepare,
                                .run = conv_qs8_run, .destroy = conv_qs8_destroy};

OD_OP_FACTS(Conv, 1, "auto_pad=NOTSET", "dilations=[1]", "group=1", "kernel_shape", "pads=[0]", "strides=[1]");
static int conv_weight_axis(const od_node *n, int rank) { return rank >= 3 ? 0 : -1; } /* [M, C/group, k...] */
const od_op_desc od_op_Conv = {OD_OP_NAME(Conv), .channel_role = OD_CHANNELS_MIXES, .stable_since = 1, .per_sample = od_per_sample_always,
                               .weight_axis = conv_weight_axis,
                               .layout = OD_LAYOUT_POLICY_SPATIAL, .reads_plain_input = conv_reads_plain,
                               .infer = conv_infer, .prepare = conv_prepare, .run = conv_run,
                               .destroy = od_conv_state_destroy, .macs = conv_macs,
                               .fuses_activation = true, .fuses_act = true, .fuses_residual = true,
                               .qs8 = &od_qs8_Conv, .qs8_accepts = conv_qs8_accepts,
                               .trained_inputs = 0x6, /* W, B */
                               .train_layout = OD_TRAIN_LAYOUT_SPATIAL,
                               .train_fuses_relu = true,
                               .train_prepare = conv_train_prepare,
                               .forward_train = conv_train_forward,
                               .backward = conv_train_backward,
                               .train_destroy = conv_train_destroy};

/* AveragePool, opsets 1-11 (and up to 17, which changed nothing): kernel_shape, strides, pads,
 * auto_pad, ceil_mode (a last window starting in the end padding is dropped, as PyTorch does),
 * count_include_pad (counts the explicit padding, not what ceil_mode adds); 1-D, 2-D and 3-D;
 * float and double. Float 1-D/2-D pools run on XNNPACK's NHWC average pooling, which divides
 * by the input cells of each window: used when that is the rule (count_include_pad = 0, or no
 * explicit padding); the rest on a loop. Backward: 2-D (pool_common.c). Layout: spatial. */
#include "pool_common.h"

#include <math.h>
#include <stdlib.h>
#include <xnnpack.h>


static od_status avgpool_infer(od_infer_ctx *c) { return od_pool_infer(c, false, false); }

/* XNNPACK divides by the input cells of each window (refusing 1-cell windows), which is the
 * rule unless count_include_pad meets explicit padding. */
static bool xnn_fits(const od_pool *p, od_dtype t) {
    if (t != OD_DTYPE_FLOAT || p->sp > 2) return false;
    int64_t cells = 1;
    for (int d = 0; d < p->sp; d++) {
        cells *= p->kernel[d];
        if (p->count_include_pad && (p->pad_begin[d] || p->pad_end[d])) return false;
    }
    return cells > 1 && od_pool_windows_nonempty(p);
}

static od_status avgpool_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    od_pool_state *a = NULL;
    od_status st = od_pool_state_create(s, false, false, &a, err);
    if (st) return st;
    const od_pool *p = &a->pool;
    if (!xnn_fits(p, x->dtype)) return OD_STATUS_OK;
    int h = p->sp == 2 ? 0 : -1, w = p->sp - 1; /* height dim in p, -1 for 1-D */
    size_t C = (size_t)p->channels;
    enum xnn_status r = xnn_create_average_pooling2d_nhwc_f32(
        h < 0 ? 0 : (uint32_t)p->pad_begin[0], (uint32_t)od_pool_backend_pad_end(p, w),
        h < 0 ? 0 : (uint32_t)od_pool_backend_pad_end(p, 0), (uint32_t)p->pad_begin[w],
        h < 0 ? 1 : (uint32_t)p->kernel[0], (uint32_t)p->kernel[w],
        h < 0 ? 1 : (uint32_t)p->stride[0], (uint32_t)p->stride[w], C, C, C, -INFINITY, INFINITY,
        0, &a->xnn);
    if (r != xnn_status_success) { /* the loop does the same */
        a->xnn = NULL;
        return OD_STATUS_OK;
    }
    r = xnn_setup_average_pooling2d_nhwc_f32(a->xnn, (size_t)p->batch,
                                             h < 0 ? 1 : (size_t)p->in[0], (size_t)p->in[w],
                                             x->data, s->out[0]->data, s->pool);
    return od_xnn_check(r, err, s->node, "setup average pooling");
}

static od_status avgpool_run(od_step *s, od_error *err) {
    return od_pool_state_run(s, "run average pooling", err);
}

OD_OP_FACTS(AveragePool, 1,
            "auto_pad=NOTSET", "ceil_mode=0", "count_include_pad=0", "kernel_shape", "pads=[0]", "strides=[1]");
const od_op_desc od_op_AveragePool = {OD_OP_NAME(AveragePool), .channel_role = OD_CHANNELS_PER_CHANNEL, .stable_since = 7, .per_sample = od_per_sample_always,
                                      .layout = OD_LAYOUT_POLICY_SPATIAL,
                                      .infer = avgpool_infer, .prepare = avgpool_prepare,
                                      .run = avgpool_run, .destroy = od_pool_state_destroy, OD_POOL_TRAIN};

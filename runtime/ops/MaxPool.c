/* MaxPool, opsets 1-12: kernel_shape, strides, pads, auto_pad, dilations, ceil_mode (a last
 * window starting in the end padding is dropped, as PyTorch does), storage_order (accepted: it
 * only orders Indices); 1-D, 2-D and 3-D; float, double, int8, uint8. Padded cells never win.
 * The Indices output is refused (UNSUPPORTED). Float 1-D/2-D pools run on XNNPACK's NHWC max
 * pooling (1-D as height 1; ceil_mode as extra end padding) when every window holds an input
 * cell; the rest (3-D, 1-cell windows, other types) on a loop. Backward: 2-D (pool_common.c).
 * Layout: spatial. */
#include "pool_common.h"

#include <math.h>
#include <stdlib.h>
#include <xnnpack.h>


static od_status maxpool_infer(od_infer_ctx *c) { return od_pool_infer(c, true, false); }

/* XNNPACK's max pooling (2-D float or int8) refuses 1-cell windows; its padding never wins. */
static bool xnn_fits(const od_pool *p, od_dtype t) {
    if ((t != OD_DTYPE_FLOAT && t != OD_DTYPE_INT8) || p->sp > 2) return false;
    int64_t cells = 1;
    for (int d = 0; d < p->sp; d++) cells *= p->kernel[d];
    return cells > 1 && od_pool_windows_nonempty(p);
}

static od_status maxpool_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    od_pool_state *m = NULL;
    od_status st = od_pool_state_create(s, true, false, &m, err);
    if (st) return st;
    const od_pool *p = &m->pool;
    if (!xnn_fits(p, x->dtype)) return OD_STATUS_OK;
    int h = p->sp == 2 ? 0 : -1, w = p->sp - 1; /* height dim in p, -1 for 1-D */
    size_t C = (size_t)p->channels;
    enum xnn_status r;
    if (x->dtype == OD_DTYPE_INT8) { /* int8 values of a QDQ model (plan_qs8.c) */
        r = xnn_create_max_pooling2d_nhwc_s8(
            h < 0 ? 0 : (uint32_t)p->pad_begin[0], (uint32_t)od_pool_backend_pad_end(p, w),
            h < 0 ? 0 : (uint32_t)od_pool_backend_pad_end(p, 0), (uint32_t)p->pad_begin[w],
            h < 0 ? 1 : (uint32_t)p->kernel[0], (uint32_t)p->kernel[w],
            h < 0 ? 1 : (uint32_t)p->stride[0], (uint32_t)p->stride[w],
            h < 0 ? 1 : (uint32_t)p->dilation[0], (uint32_t)p->dilation[w], C, C, C, -128, 127, 0,
            &m->xnn);
        if (r != xnn_status_success) {
            m->xnn = NULL;
            return OD_STATUS_OK;
        }
        r = xnn_setup_max_pooling2d_nhwc_s8(m->xnn, (size_t)p->batch, h < 0 ? 1 : (size_t)p->in[0],
                                            (size_t)p->in[w], (const int8_t *)x->data,
                                            (int8_t *)s->out[0]->data, s->pool);
        return od_xnn_check(r, err, s->node, "setup max pooling");
    }
    r = xnn_create_max_pooling2d_nhwc_f32(
        h < 0 ? 0 : (uint32_t)p->pad_begin[0], (uint32_t)od_pool_backend_pad_end(p, w),
        h < 0 ? 0 : (uint32_t)od_pool_backend_pad_end(p, 0), (uint32_t)p->pad_begin[w],
        h < 0 ? 1 : (uint32_t)p->kernel[0], (uint32_t)p->kernel[w],
        h < 0 ? 1 : (uint32_t)p->stride[0], (uint32_t)p->stride[w],
        h < 0 ? 1 : (uint32_t)p->dilation[0], (uint32_t)p->dilation[w], C, C, C, -INFINITY,
        INFINITY, 0, &m->xnn);
    if (r != xnn_status_success) { /* the loop does the same */
        m->xnn = NULL;
        return OD_STATUS_OK;
    }
    r = xnn_setup_max_pooling2d_nhwc_f32(m->xnn, (size_t)p->batch, h < 0 ? 1 : (size_t)p->in[0],
                                         (size_t)p->in[w], x->data, s->out[0]->data, s->pool);
    return od_xnn_check(r, err, s->node, "setup max pooling");
}

static od_status maxpool_run(od_step *s, od_error *err) {
    return od_pool_state_run(s, "run max pooling", err);
}

OD_OP_FACTS(MaxPool, 1,
            "auto_pad=NOTSET", "ceil_mode=0", "dilations=[1]", "kernel_shape", "pads=[0]", "storage_order=0",
            "strides=[1]");
/* int8 (plan_qs8.c): the same op on int8 values, which max pooling passes through unchanged */
static bool maxpool_qs8_accepts(const od_node *n, const od_shape_info *const *in) {
    return n->n_outputs < 2 || n->outputs[1] < 0 ? in[0] != NULL : false;
}
extern const od_op_desc od_op_MaxPool;
const od_op_desc od_op_MaxPool = {OD_OP_NAME(MaxPool), .channel_role = OD_CHANNELS_PER_CHANNEL, .stable_since = 8, .per_sample = od_per_sample_always,
                                  .qs8 = &od_op_MaxPool, .qs8_accepts = maxpool_qs8_accepts, .qs8_same = true,
                                  .layout = OD_LAYOUT_POLICY_SPATIAL,
                                  .infer = maxpool_infer, .prepare = maxpool_prepare,
                                  .run = maxpool_run, .destroy = od_pool_state_destroy, OD_POOL_TRAIN};

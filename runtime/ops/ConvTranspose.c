/* ConvTranspose, opsets 1-17: 1-D, 2-D and 3-D, group, strides, dilations, pads,
 * output_padding, output_shape (spatial dims, or full rank), auto_pad (NOTSET, SAME_UPPER,
 * SAME_LOWER, VALID: pads from the spec's total_padding formula), optional bias. Float32.
 * Constant weights of a 1-D or 2-D node run on XNNPACK's NHWC deconvolution (packed once per
 * plan); weights known only at run time, 3-D kernels and output extensions XNNPACK cannot take
 * (more than stride - 1 extra elements, or any at the start) run conv_common's direct loop.
 * Backward: not yet. Layout: spatial (input and output channels-last). */
#include "conv_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

/* Resolves attributes, crops and sizes for input dims x ([N, C, spatial...]), weights w. */
static od_status convt_params_read(const od_node *n, const int64_t *x, int rank, const int64_t *w,
                                   od_conv_params *p, od_error *err) {
    int sp = rank - 2;
    od_status st = od_conv_read_common(n, sp, w + 2, p, err);
    if (st) return st;
    p->transposed = true;
    p->cin = x[1];
    p->cout = w[1] * p->group;
    int64_t opad[OD_MAX_RANK] = {0}, oshape[OD_MAX_RANK];
    int k = od_attr_ints(n, "output_padding", opad, OD_MAX_RANK);
    if (k >= 0 && k != sp)
        return od_node_error(err, OD_STATUS_INVALID_MODEL, n,
                             "output_padding has %d values, expected %d", k, sp);
    int ns = od_attr_ints(n, "output_shape", oshape, OD_MAX_RANK);
    if (ns >= 0 && ns != sp && ns != rank)
        return od_node_error(err, OD_STATUS_INVALID_MODEL, n,
                             "output_shape has %d values, expected %d", ns, sp);
    const int64_t *os = ns == rank ? oshape + 2 : ns >= 0 ? oshape : NULL;
    od_auto_pad ap;
    od_status ap_status = od_attr_auto_pad(n, &ap, err);
    if (ap_status) return ap_status;
    bool same = ap == OD_AUTO_PAD_SAME_UPPER || ap == OD_AUTO_PAD_SAME_LOWER;
    for (int d = 0; d < sp; d++) {
        int64_t in = x[2 + d], s = p->stride[d], dk = p->dilation[d] * (p->kernel[d] - 1) + 1;
        if (opad[d] < 0)
            return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "output_padding is negative");
        p->in[d] = in;
        int64_t full = s * (in - 1) + opad[d] + dk;
        if (os || same) {
            int64_t want = os ? os[d] : in * s;
            if (want < 1)
                return od_node_error(err, OD_STATUS_INVALID_MODEL, n,
                                     "output_shape must be positive");
            od_pad_split(ap, full - want, &p->pad_begin[d], &p->pad_end[d]);
        } else if (ap == OD_AUTO_PAD_VALID) {
            p->pad_begin[d] = p->pad_end[d] = 0;
        }
        p->out[d] = full - p->pad_begin[d] - p->pad_end[d];
        if (p->out[d] < 1)
            return od_node_error(err, OD_STATUS_SHAPE, n,
                                 "the pads leave no output along spatial dim %d", d);
    }
    return OD_STATUS_OK;
}

static od_status convt_infer(od_infer_ctx *c) { return od_conv_infer(c, convt_params_read); }

/* Every input element meets (C_out / group) x kernel weights. */
static int64_t convt_macs(const od_node *n, const od_shape_info *const *in,
                          const od_shape_info *out) {
    int64_t per_input = od_dims_count(in[1]->rank - 1, in[1]->dims + 1);
    return od_macs_mul(od_dims_count(in[0]->rank, in[0]->dims), per_input);
}

static od_status convt_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0], *w = s->in[1], *b = s->n_in > 2 ? s->in[2] : NULL;
    od_conv_state *cs;
    od_status st = od_conv_state_create(s, convt_params_read, &cs, err);
    if (st) return st;
    const od_conv_params *p = &cs->p;
    /* XNNPACK crops the full output at both ends and extends it at the end by an adjustment
     * below the stride. */
    int64_t crop_end[2], adjust[2];
    bool xnn = w->constant && (!b || b->constant) && p->sp <= 2;
    for (int d = 0; d < p->sp && xnn; d++) {
        int64_t full = p->stride[d] * (p->in[d] - 1) + p->dilation[d] * (p->kernel[d] - 1) + 1;
        int64_t end = full - p->pad_begin[d] - p->out[d];
        crop_end[d] = end > 0 ? end : 0;
        adjust[d] = end < 0 ? -end : 0;
        xnn = p->pad_begin[d] >= 0 && adjust[d] < p->stride[d];
    }
    if (!xnn) return od_conv_state_use_direct(s, cs, err);
    bool two = p->sp == 2; /* a 1-D node is a 2-D one of height 1 */
    int iw = p->sp - 1;
    int64_t G = p->group;
    enum xnn_status r = xnn_create_deconvolution2d_nhwc_f32(
        two ? (uint32_t)p->pad_begin[0] : 0, (uint32_t)crop_end[iw],
        two ? (uint32_t)crop_end[0] : 0, (uint32_t)p->pad_begin[iw],
        two ? (uint32_t)p->kernel[0] : 1, (uint32_t)p->kernel[iw],
        two ? (uint32_t)p->stride[0] : 1, (uint32_t)p->stride[iw],
        two ? (uint32_t)p->dilation[0] : 1, (uint32_t)p->dilation[iw], (uint32_t)G,
        (size_t)(p->cin / G), (size_t)(p->cout / G), (size_t)p->cin, (size_t)p->cout, cs->packed,
        b ? b->data : NULL, -INFINITY, INFINITY, 0, &cs->xnn);
    st = od_conv_state_created(cs, s, r, "create deconvolution", err);
    if (st) return st;
    r = xnn_setup_deconvolution2d_nhwc_f32(
        cs->xnn, (size_t)x->dims[0], two ? (size_t)p->in[0] : 1, (size_t)p->in[iw],
        two ? (uint32_t)adjust[0] : 0, (uint32_t)adjust[iw], x->data, s->out[0]->data, s->pool);
    return od_xnn_check(r, err, s->node, "setup deconvolution");
}

static od_status convt_run(od_step *s, od_error *err) {
    od_conv_state *cs = s->state;
    if (cs->xnn)
        return od_xnn_check(xnn_run_operator(cs->xnn, s->pool), err, s->node,
                            "run deconvolution");
    od_conv_state_run_direct(s);
    return OD_STATUS_OK;
}

OD_OP_FACTS(ConvTranspose, 1,
            "auto_pad=NOTSET", "dilations=[1]", "group=1", "kernel_shape", "output_padding=[0]", "output_shape",
            "pads=[0]", "strides=[1]");
static int convt_weight_axis(const od_node *n, int rank) { return rank >= 3 ? 1 : -1; } /* [C, M/group, k...] */
const od_op_desc od_op_ConvTranspose = {OD_OP_NAME(ConvTranspose), .channel_role = OD_CHANNELS_MIXES, .stable_since = 1, .per_sample = od_per_sample_always,
                                        .weight_axis = convt_weight_axis,
                                        .layout = OD_LAYOUT_POLICY_SPATIAL,
                                        .infer = convt_infer, .prepare = convt_prepare,
                                        .run = convt_run, .destroy = od_conv_state_destroy,
                                        .macs = convt_macs};

/* Conv, opsets 1-17: 1-D, 2-D and 3-D, group (incl. depthwise), dilations, strides, pads,
 * auto_pad (NOTSET, SAME_UPPER, SAME_LOWER, VALID), optional bias. Float32. Constant weights
 * of a 1-D or 2-D conv run on XNNPACK's NHWC convolution (1-D as 2-D of height 1), packed once
 * per plan; weights known only at run time (or 3-D kernels) run conv_common's direct loop.
 * Backward: not yet. Layout: spatial (input and output channels-last). */
#include "conv_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

/* Resolves attributes, padding and sizes for input dims x ([N, C, spatial...]), weights w. */
static od_status conv_params_read(const od_node *n, const int64_t *x, int rank, const int64_t *w,
                                  od_conv_params *p, od_error *err) {
    int sp = rank - 2;
    od_status st = od_conv_read_common(n, sp, w + 2, p, err);
    if (st) return st;
    p->cin = x[1];
    p->cout = w[0];
    char buf[32];
    const char *ap = od_attr_string(n, "auto_pad", "NOTSET", buf, sizeof buf);
    bool upper = strcmp(ap, "SAME_UPPER") == 0, lower = strcmp(ap, "SAME_LOWER") == 0;
    bool valid = strcmp(ap, "VALID") == 0;
    if (!upper && !lower && !valid && strcmp(ap, "NOTSET") != 0)
        return od_node_error(err, OD_STATUS_INVALID_MODEL, n,
                             "auto_pad \"%s\" is not one ONNX defines", ap);
    for (int d = 0; d < sp; d++) {
        int64_t in = x[2 + d], dk = p->dilation[d] * (p->kernel[d] - 1) + 1;
        p->in[d] = in;
        if (upper || lower) {
            int64_t out = (in + p->stride[d] - 1) / p->stride[d];
            int64_t total = (out - 1) * p->stride[d] + dk - in;
            if (total < 0) total = 0;
            p->pad_begin[d] = upper ? total / 2 : total - total / 2;
            p->pad_end[d] = total - p->pad_begin[d];
        } else if (valid) {
            p->pad_begin[d] = p->pad_end[d] = 0;
        }
        int64_t span = in + p->pad_begin[d] + p->pad_end[d] - dk;
        if (span < 0)
            return od_node_error(err, OD_STATUS_SHAPE, n,
                                 "the kernel is larger than the padded input (spatial dim %d)", d);
        p->out[d] = span / p->stride[d] + 1;
    }
    return OD_STATUS_OK;
}

static od_status conv_infer(od_infer_ctx *c) {
    od_status st = od_infer_expect(c, 0, 3, 5);
    if (!st) st = od_infer_expect(c, 1, 3, 5);
    if (st) return st;
    const od_shape_info *x = c->in[0], *w = c->in[1];
    if (x->rank != w->rank)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "input rank %d, weight rank %d",
                             x->rank, w->rank);
    od_conv_params p;
    st = conv_params_read(c->node, x->dims, x->rank, w->dims, &p, c->err);
    if (st) return st;
    if (w->dims[0] < 1 || w->dims[1] < 1 || w->dims[0] % p.group ||
        w->dims[1] * p.group != x->dims[1])
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                             "input has %lld channels, weights [%lld, %lld, ...] with group %lld",
                             (long long)x->dims[1], (long long)w->dims[0], (long long)w->dims[1],
                             (long long)p.group);
    if (c->n_in > 2 && c->in[2]) {
        const od_shape_info *b = c->in[2];
        if (b->dtype != OD_DTYPE_FLOAT)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "bias has element type %s; only float is supported",
                                 od_dtype_name(b->dtype));
        if (b->rank != 1 || b->dims[0] != w->dims[0])
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "bias must have shape [%lld]",
                                 (long long)w->dims[0]);
    }
    od_shape_info *o = &c->out[0];
    o->dtype = OD_DTYPE_FLOAT;
    o->rank = x->rank;
    o->dims[0] = x->dims[0];
    o->dims[1] = w->dims[0];
    for (int d = 0; d < p.sp; d++) o->dims[2 + d] = p.out[d];
    return OD_STATUS_OK;
}

/* Output elements times the multiply-adds per element (C/group x kernel). */
static int64_t conv_macs(const od_node *n, const od_shape_info *const *in,
                         const od_shape_info *out) {
    int64_t k = od_dims_count(in[1]->rank - 1, in[1]->dims + 1);
    return od_macs_mul(od_dims_count(out->rank, out->dims), k);
}

static od_status conv_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0], *w = s->in[1], *b = s->n_in > 2 ? s->in[2] : NULL;
    od_conv_state *cs = calloc(1, sizeof *cs);
    if (!cs) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = cs;
    od_conv_params *p = &cs->p;
    od_status st = conv_params_read(s->node, x->dims, x->rank, w->dims, p, err);
    if (st) return st;
    if ((st = od_conv_state_pack(s, cs, err))) return st;
    if (!w->constant || (b && !b->constant) || p->sp > 2) return od_conv_state_use_direct(s, cs, err);
    bool two = p->sp == 2; /* a 1-D conv is a 2-D one of height 1 */
    int iw = p->sp - 1;
    int64_t G = p->group, Cg = p->cin / G, Mg = p->cout / G;
    enum xnn_status r = xnn_create_convolution2d_nhwc_f32(
        two ? (uint32_t)p->pad_begin[0] : 0, (uint32_t)p->pad_end[iw],
        two ? (uint32_t)p->pad_end[0] : 0, (uint32_t)p->pad_begin[iw],
        two ? (uint32_t)p->kernel[0] : 1, (uint32_t)p->kernel[iw],
        two ? (uint32_t)p->stride[0] : 1, (uint32_t)p->stride[iw],
        two ? (uint32_t)p->dilation[0] : 1, (uint32_t)p->dilation[iw], (uint32_t)G, (size_t)Cg,
        (size_t)Mg, (size_t)p->cin, (size_t)p->cout, cs->packed, b ? b->data : NULL, s->act_min,
        s->act_max, 0, &cs->xnn);
    free(cs->packed);
    cs->packed = NULL;
    st = od_xnn_check(r, err, s->node, "create convolution");
    if (st) return st;
    r = xnn_setup_convolution2d_nhwc_f32(cs->xnn, (size_t)x->dims[0],
                                         two ? (size_t)p->in[0] : 1, (size_t)p->in[iw], x->data,
                                         s->out[0]->data, s->pool);
    return od_xnn_check(r, err, s->node, "setup convolution");
}

static od_status conv_run(od_step *s, od_error *err) {
    od_conv_state *cs = s->state;
    if (cs->xnn)
        return od_xnn_check(xnn_run_operator(cs->xnn, s->pool), err, s->node, "run convolution");
    const od_buf *b = s->n_in > 2 ? s->in[2] : NULL;
    if (cs->repack) od_conv_pack_weights(&cs->p, s->in[1]->data, cs->packed);
    od_conv_direct(&cs->p, s->in[0]->dims[0], s->in[0]->data, cs->packed,
                   cs->bias ? cs->bias : b ? b->data : NULL, s->out[0]->data, s->pool);
    od_step_clamp(s, s->out[0]->data, od_buf_count(s->out[0]));
    return OD_STATUS_OK;
}

const od_op_desc od_op_Conv = {.name = "Conv", .layout = OD_LAYOUT_POLICY_SPATIAL,
                               .infer = conv_infer, .prepare = conv_prepare, .run = conv_run,
                               .destroy = od_conv_state_destroy, .macs = conv_macs,
                               .fuses_activation = true};

/* Conv, opsets 1-17: 1-D and 2-D, group (incl. depthwise), dilations, strides, pads,
 * auto_pad (NOTSET, SAME_UPPER, SAME_LOWER, VALID). Float32 on XNNPACK's NHWC convolution:
 * a 1-D conv runs as a 2-D one of height 1. Weights are repacked once per plan. Backward: not
 * yet. Layout: spatial (input and output channels-last). */
#include "../op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

typedef struct conv_params {
    int spatial; /* 1 or 2 */
    int64_t kernel[2], stride[2], dilation[2], pad_begin[2], pad_end[2], group;
} conv_params;

/* Resolves attributes and padding for input dims x ([N, C, spatial...]) and weights w. */
static od_status conv_params_read(const od_node *n, const int64_t *x, int rank,
                                  const int64_t *w, conv_params *p, od_error *err) {
    int sp = rank - 2;
    memset(p, 0, sizeof *p);
    p->spatial = sp;
    p->group = od_attr_int(n, "group", 1);
    int64_t v[8];
    int k = od_attr_ints(n, "kernel_shape", v, 8);
    for (int d = 0; d < sp; d++) p->kernel[d] = w[2 + d];
    if (k >= 0) {
        if (k != sp) return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "kernel_shape has %d dims, the input %d spatial dims", k, sp);
        for (int d = 0; d < sp; d++)
            if (v[d] != w[2 + d]) return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "kernel_shape disagrees with the weights");
    }
    for (int d = 0; d < sp; d++) p->stride[d] = p->dilation[d] = 1;
    k = od_attr_ints(n, "strides", v, 8);
    if (k >= 0 && k != sp) return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "strides has %d values, expected %d", k, sp);
    for (int d = 0; d < k; d++) p->stride[d] = v[d];
    k = od_attr_ints(n, "dilations", v, 8);
    if (k >= 0 && k != sp) return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "dilations has %d values, expected %d", k, sp);
    for (int d = 0; d < k; d++) p->dilation[d] = v[d];
    k = od_attr_ints(n, "pads", v, 8);
    if (k >= 0 && k != 2 * sp) return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "pads has %d values, expected %d", k, 2 * sp);
    for (int d = 0; d < sp && k > 0; d++) {
        p->pad_begin[d] = v[d];
        p->pad_end[d] = v[sp + d];
    }
    for (int d = 0; d < sp; d++)
        if (p->stride[d] < 1 || p->dilation[d] < 1 || p->kernel[d] < 1 || p->pad_begin[d] < 0 || p->pad_end[d] < 0)
            return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "strides, dilations and kernel must be positive, pads not negative");
    char buf[32];
    const char *ap = od_attr_string(n, "auto_pad", "NOTSET", buf, sizeof buf);
    bool upper = strcmp(ap, "SAME_UPPER") == 0, lower = strcmp(ap, "SAME_LOWER") == 0;
    if (upper || lower) {
        for (int d = 0; d < sp; d++) {
            int64_t in = x[2 + d], out = (in + p->stride[d] - 1) / p->stride[d];
            int64_t total = (out - 1) * p->stride[d] + p->dilation[d] * (p->kernel[d] - 1) + 1 - in;
            if (total < 0) total = 0;
            p->pad_begin[d] = upper ? total / 2 : total - total / 2;
            p->pad_end[d] = total - p->pad_begin[d];
        }
    } else if (strcmp(ap, "VALID") == 0) {
        for (int d = 0; d < sp; d++) p->pad_begin[d] = p->pad_end[d] = 0;
    } else if (strcmp(ap, "NOTSET") != 0) {
        return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "auto_pad \"%s\" is not one ONNX defines", ap);
    }
    return OD_STATUS_OK;
}

static od_status conv_infer(od_infer_ctx *c) {
    od_status st = od_infer_expect(c, 0, 3, 5);
    if (!st) st = od_infer_expect(c, 1, 3, 5);
    if (st) return st;
    const od_shape_info *x = c->in[0], *w = c->in[1];
    if (x->rank != w->rank)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "input rank %d, weight rank %d", x->rank, w->rank);
    if (x->rank > 4)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "3-D convolution is not supported");
    conv_params p;
    st = conv_params_read(c->node, x->dims, x->rank, w->dims, &p, c->err);
    if (st) return st;
    if (p.group < 1 || x->dims[1] % p.group || w->dims[0] % p.group || w->dims[1] * p.group != x->dims[1])
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                             "input has %lld channels, weights expect %lld x group %lld",
                             (long long)x->dims[1], (long long)w->dims[1], (long long)p.group);
    if (c->n_in > 2 && c->in[2] && (c->in[2]->rank != 1 || c->in[2]->dims[0] != w->dims[0]))
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "bias must have %lld elements", (long long)w->dims[0]);
    od_shape_info *o = &c->out[0];
    o->dtype = OD_DTYPE_FLOAT;
    o->rank = x->rank;
    o->dims[0] = x->dims[0];
    o->dims[1] = w->dims[0];
    for (int d = 0; d < p.spatial; d++) {
        int64_t span = x->dims[2 + d] + p.pad_begin[d] + p.pad_end[d] - p.dilation[d] * (p.kernel[d] - 1) - 1;
        if (span < 0)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "the kernel is larger than the padded input");
        o->dims[2 + d] = span / p.stride[d] + 1;
    }
    return OD_STATUS_OK;
}

static int64_t conv_macs(const od_node *n, const od_shape_info *const *in, const od_shape_info *out) {
    int64_t k = in[1]->dims[1];
    for (int d = 2; d < in[1]->rank; d++) k *= in[1]->dims[d];
    return od_dims_count(out->rank, out->dims) * k;
}

typedef struct conv_state {
    xnn_operator_t xnn;
} conv_state;

static od_status conv_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0], *w = s->in[1], *b = s->n_in > 2 ? s->in[2] : NULL;
    if (!w->constant || (b && !b->constant))
        return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "weights and bias must be constants");
    conv_params p;
    od_status st = conv_params_read(s->node, x->dims, x->rank, w->dims, &p, err);
    if (st) return st;
    int64_t M = w->dims[0], Cg = w->dims[1], G = p.group, Mg = M / G;
    int64_t kh = p.spatial == 2 ? p.kernel[0] : 1, kw = p.kernel[p.spatial - 1];
    size_t ksize = (size_t)(kh * kw);
    /* ONNX [M, C/g, kh, kw] -> XNNPACK [M, kh, kw, C/g] */
    float *packed = malloc(sizeof(float) * (size_t)(M * Cg) * ksize + 1);
    float *wf = od_tensor_to_float(w->constant, err);
    float *bf = b ? od_tensor_to_float(b->constant, err) : NULL;
    if (!packed || !wf || (b && !bf)) {
        free(packed);
        free(wf);
        free(bf);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory packing weights");
    }
    for (int64_t m = 0; m < M; m++)
        for (int64_t c = 0; c < Cg; c++)
            for (size_t k = 0; k < ksize; k++)
                packed[((size_t)m * ksize + k) * Cg + c] = wf[((size_t)m * Cg + c) * ksize + k];
    int i = p.spatial == 2 ? 0 : -1; /* index of the height dim in p, -1 for 1-D */
    xnn_operator_t op = NULL;
    enum xnn_status r = xnn_create_convolution2d_nhwc_f32(
        i < 0 ? 0 : (uint32_t)p.pad_begin[0], (uint32_t)p.pad_end[p.spatial - 1],
        i < 0 ? 0 : (uint32_t)p.pad_end[0], (uint32_t)p.pad_begin[p.spatial - 1], (uint32_t)kh,
        (uint32_t)kw, i < 0 ? 1 : (uint32_t)p.stride[0], (uint32_t)p.stride[p.spatial - 1],
        i < 0 ? 1 : (uint32_t)p.dilation[0], (uint32_t)p.dilation[p.spatial - 1], (uint32_t)G,
        (size_t)Cg, (size_t)Mg, (size_t)(Cg * G), (size_t)M, packed, bf, -INFINITY, INFINITY, 0, &op);
    free(packed);
    free(wf);
    free(bf);
    st = od_xnn_check(r, err, s->node, "create convolution");
    if (st) return st;
    conv_state *cs = calloc(1, sizeof *cs);
    if (!cs) {
        xnn_delete_operator(op);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    cs->xnn = op;
    s->state = cs;
    size_t ih = p.spatial == 2 ? (size_t)x->dims[2] : 1, iw = (size_t)x->dims[x->rank - 1];
    r = xnn_setup_convolution2d_nhwc_f32(op, (size_t)x->dims[0], ih, iw, x->data, s->out[0]->data, s->pool);
    return od_xnn_check(r, err, s->node, "setup convolution");
}

static od_status conv_run(od_step *s, od_error *err) {
    conv_state *cs = s->state;
    return od_xnn_check(xnn_run_operator(cs->xnn, s->pool), err, s->node, "run convolution");
}

static void conv_destroy(od_step *s) {
    conv_state *cs = s->state;
    if (cs && cs->xnn) xnn_delete_operator(cs->xnn);
    free(cs);
    s->state = NULL;
}

const od_op_desc od_op_Conv = {.name = "Conv", .layout = OD_LAYOUT_POLICY_SPATIAL,
                               .infer = conv_infer, .prepare = conv_prepare, .run = conv_run,
                               .destroy = conv_destroy, .macs = conv_macs};

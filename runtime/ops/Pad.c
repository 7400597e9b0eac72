/* Pad, opsets 2-17: modes constant, reflect and edge; pads as an attribute (before 11) or a
 * constant input (11 on), negative pads crop; the fill value from the `value` attribute (before
 * 11) or the optional constant_value input (read at run time). Any element type with a fixed
 * size (constant mode: numeric). Opset 1 (`paddings`) is refused. Backward: constant mode on
 * float (training kernels at the end; the output keeps the input's layout). Layout: plain. */
#include "../train_internal.h"
#include "strided.h"

#include <stdlib.h>
#include <string.h>

typedef enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE } pad_mode;

typedef struct pad_plan {
    pad_mode mode;
    /* per dim: the input's kept range [from, from + len) lands at out offset `at` */
    int64_t from[OD_MAX_RANK], len[OD_MAX_RANK], at[OD_MAX_RANK], out[OD_MAX_RANK];
} pad_plan;

static od_status pad_read(od_infer_ctx *c, pad_plan *p) {
    const od_shape_info *x = c->in[0];
    int rank = x->rank, n;
    int64_t pads[2 * OD_MAX_RANK];
    char buf[16];
    const char *mode = od_attr_string(c->node, "mode", "constant", buf, sizeof buf);
    if (strcmp(mode, "constant") == 0) p->mode = PAD_CONSTANT;
    else if (strcmp(mode, "reflect") == 0) p->mode = PAD_REFLECT;
    else if (strcmp(mode, "edge") == 0) p->mode = PAD_EDGE;
    else
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "mode \"%s\" is not supported",
                             mode);
    if (c->opset < 2)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "opset 1 Pad (paddings) is not supported");
    if (c->opset < 11) {
        n = od_attr_ints(c->node, "pads", pads, 2 * OD_MAX_RANK);
        if (n < 0)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs pads");
    } else {
        od_status st = od_const_ints_input(c, 1, "the pads input", pads, 2 * OD_MAX_RANK, &n);
        if (st) return st;
        if (c->n_in > 3 && c->in[3])
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "the axes input (opset 18) is not supported");
        const od_shape_info *v = c->n_in > 2 ? c->in[2] : NULL;
        if (v && (v->dtype != x->dtype || od_dims_count(v->rank, v->dims) != 1))
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                                 "constant_value must be one %s", od_dtype_name(x->dtype));
    }
    if (n != 2 * rank)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "pads has %d values for rank %d", n, rank);
    if (p->mode == PAD_CONSTANT && !od_numeric(x->dtype))
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "constant padding of %s is not supported", od_dtype_name(x->dtype));
    for (int d = 0; d < rank; d++) {
        int64_t dim = x->dims[d], b = pads[d], e = pads[rank + d];
        int64_t cut_b = b < 0 ? -b : 0, cut_e = e < 0 ? -e : 0;
        if (dim + b + e < 0 || cut_b + cut_e > dim)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                 "pads %lld and %lld remove more than dim %d's %lld",
                                 (long long)b, (long long)e, d, (long long)dim);
        p->from[d] = cut_b;
        p->len[d] = dim - cut_b - cut_e;
        p->at[d] = b > 0 ? b : 0;
        p->out[d] = dim + b + e;
        int64_t grow = b > e ? b : e;
        if (p->mode == PAD_EDGE && grow > 0 && p->len[d] == 0)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "cannot edge-pad empty dim %d",
                                 d);
        if (p->mode == PAD_REFLECT && grow > 0 && grow >= p->len[d])
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "reflect padding of %lld on dim %d of size %lld (must be "
                                 "smaller than the dim)",
                                 (long long)grow, d, (long long)p->len[d]);
    }
    return OD_STATUS_OK;
}

static od_status pad_infer(od_infer_ctx *c) {
    od_status st = od_expect_sized(c, 0);
    if (st) return st;
    pad_plan p;
    st = pad_read(c, &p);
    if (st) return st;
    c->out[0] = (od_shape_info){.dtype = c->in[0]->dtype, .rank = c->in[0]->rank};
    memcpy(c->out[0].dims, p.out, sizeof(int64_t) * c->in[0]->rank);
    return OD_STATUS_OK;
}

static od_status pad_prepare(od_step *s, od_error *err) {
    od_step_shapes sh;
    pad_plan *p = od_step_state_with_shapes(s, sizeof *p, &sh, err);
    return p ? pad_read(&sh.c, p) : OD_STATUS_OUT_OF_MEMORY;
}

static od_status pad_run(od_step *s, od_error *err) {
    const pad_plan *p = s->state;
    const od_buf *x = s->in[0];
    od_buf *y = s->out[0];
    int rank = x->rank;
    size_t e = od_dtype_size(x->dtype);
    int64_t count = od_buf_count(y), xs[OD_MAX_RANK], ys[OD_MAX_RANK], box[OD_MAX_RANK];
    if (count == 0) return OD_STATUS_OK;
    char *dst = (void *)y->data;
    const char *src = (const void *)x->data;
    if (p->mode == PAD_CONSTANT) { /* fill all, the data goes over it */
        if (s->opset >= 11 && s->n_in > 2 && s->in[2]) {
            memcpy(dst, s->in[2]->data, e);
        } else {
            double v = s->opset >= 11 ? 0.0 : od_attr_float(s->node, "value", 0);
            od_store_doubles(&v, 1, dst, x->dtype);
        }
        for (int64_t done = 1; done < count; done *= 2)
            memcpy(dst + done * e, dst, (size_t)(done < count - done ? done : count - done) * e);
    }
    od_strides(rank, x->dims, xs);
    od_strides(rank, y->dims, ys);
    int64_t in_off = 0, out_off = 0;
    for (int d = 0; d < rank; d++) {
        in_off += p->from[d] * xs[d];
        out_off += p->at[d] * ys[d];
    }
    od_copy_strided(dst + out_off * e, ys, src + in_off * e, xs, rank, p->len, e, s->pool);
    if (p->mode == PAD_CONSTANT) return OD_STATUS_OK;
    /* Edge and reflect fill one dim at a time from the last: the dims after d are then whole,
     * those before it hold data only in their kept range. Each padded index along d copies
     * the hyperplane of its source index. */
    for (int d = rank - 1; d >= 0; d--) {
        int64_t base = 0;
        for (int k = 0; k < rank; k++) {
            box[k] = k < d ? p->len[k] : k > d ? y->dims[k] : 1;
            if (k < d) base += p->at[k] * ys[k];
        }
        int64_t first = p->at[d], last = p->at[d] + p->len[d] - 1;
        for (int64_t i = 0; i < y->dims[d]; i++) {
            if (i >= first && i <= last) continue;
            int64_t from = p->mode == PAD_EDGE ? (i < first ? first : last)
                                               : (i < first ? 2 * first - i : 2 * last - i);
            od_copy_strided(dst + (base + i * ys[d]) * e, ys, dst + (base + from * ys[d]) * e, ys,
                            rank, box, e, s->pool);
        }
    }
    return OD_STATUS_OK;
}

/* ---- training: constant mode (float) -------------------------------------------------------- */

typedef struct pad_train {
    pad_plan p;
    float value;
} pad_train;

static od_status pad_train_prepare(od_tstep *s, od_error *err) {
    od_shape_info info[OD_TSTEP_MAX_IN], out;
    const od_shape_info *in[OD_TSTEP_MAX_IN];
    od_infer_ctx c = od_tstep_infer_ctx(s, info, in, &out, err);
    pad_train *t = calloc(1, sizeof *t);
    if (!t) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = t;
    od_status st = pad_read(&c, &t->p);
    if (st) return st;
    if (t->p.mode != PAD_CONSTANT)
        return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training through %s padding is not supported",
                             t->p.mode == PAD_EDGE ? "edge" : "reflect");
    if (s->opset < 11) t->value = od_attr_float(s->node, "value", 0);
    else if (s->n_in > 2 && s->in[2]) {
        if (!s->in[2]->data)
            return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training needs a float constant_value");
        t->value = s->in[2]->data[0];
    }
    return OD_STATUS_OK;
}

/* The kept box of x and where it lands in y, as strided views in ONNX order (either layout). */
static void pad_views(const pad_train *t, const od_tbuf *x, const od_tbuf *y, int64_t *xs, int64_t *ys,
                      int64_t *x_off, int64_t *y_off) {
    od_tbuf_strides(x, xs);
    od_tbuf_strides(y, ys);
    *x_off = *y_off = 0;
    for (int d = 0; d < x->rank; d++) {
        *x_off += t->p.from[d] * xs[d];
        *y_off += t->p.at[d] * ys[d];
    }
}

static od_status pad_forward(od_tstep *s, od_error *err) {
    const pad_train *t = s->state;
    const od_tbuf *x = s->in[0];
    od_tbuf *y = s->out[0];
    int64_t xs[OD_MAX_RANK], ys[OD_MAX_RANK], xo, yo;
    for (int64_t i = 0; i < y->count; i++) y->data[i] = t->value;
    pad_views(t, x, y, xs, ys, &xo, &yo);
    od_copy_strided(y->data + yo, ys, x->data + xo, xs, x->rank, t->p.len, sizeof(float), NULL);
    return OD_STATUS_OK;
}

static od_status pad_backward(od_tstep *s, od_error *err) {
    const pad_train *t = s->state;
    const od_tbuf *x = s->in[0], *y = s->out[0];
    int64_t xs[OD_MAX_RANK], ys[OD_MAX_RANK], xo, yo;
    if (!x->grad) return OD_STATUS_OK;
    pad_views(t, x, y, xs, ys, &xo, &yo);
    od_add_strided(x->grad + xo, xs, y->grad + yo, ys, x->rank, t->p.len);
    return OD_STATUS_OK;
}

OD_OP_FACTS(Pad, 1, "mode", "paddings", "pads", "value");
const od_op_desc od_op_Pad = {OD_OP_NAME(Pad), .channel_role = OD_CHANNELS_MOVES, .stable_since = 11, .infer = pad_infer, .prepare = pad_prepare,
                              .run = pad_run, .train_layout = OD_TRAIN_LAYOUT_SAME,
                              .train_prepare = pad_train_prepare, .forward_train = pad_forward,
                              .backward = pad_backward};

/* Slice, opsets 1-17: starts/ends/axes as attributes (opset 1) or constant inputs with steps
 * (10 on); negative starts, ends and steps, ends beyond the dim (INT64_MAX / INT64_MIN) clamped
 * as the spec says. Any element type with a fixed size; one strided copy. Backward: float (training kernels at the
 * end; the output keeps the input's layout). Layout: plain. */
#include "../train_internal.h"
#include "strided.h"

#include <stdlib.h>
#include <string.h>

typedef struct slice_plan {
    int64_t start[OD_MAX_RANK], step[OD_MAX_RANK], count[OD_MAX_RANK];
} slice_plan;

static od_status slice_read(od_infer_ctx *c, slice_plan *p) {
    const od_shape_info *x = c->in[0];
    int rank = x->rank;
    int64_t starts[OD_MAX_RANK], ends[OD_MAX_RANK], axes[OD_MAX_RANK], steps[OD_MAX_RANK];
    int ns, ne, na = -1, nst = -1;
    od_status st;
    if (c->opset < 10) {
        ns = od_attr_ints(c->node, "starts", starts, OD_MAX_RANK);
        ne = od_attr_ints(c->node, "ends", ends, OD_MAX_RANK);
        na = od_attr_ints(c->node, "axes", axes, OD_MAX_RANK);
        if (ns < 0 || ne < 0)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                                 "needs starts and ends attributes");
    } else {
        st = od_const_ints_input(c, 1, "the starts input", starts, OD_MAX_RANK, &ns);
        if (!st) st = od_const_ints_input(c, 2, "the ends input", ends, OD_MAX_RANK, &ne);
        if (!st && c->n_in > 3 && c->in[3])
            st = od_const_ints_input(c, 3, "the axes input", axes, OD_MAX_RANK, &na);
        if (!st && c->n_in > 4 && c->in[4])
            st = od_const_ints_input(c, 4, "the steps input", steps, OD_MAX_RANK, &nst);
        if (st) return st;
    }
    if (ns > rank || ne != ns || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "starts, ends, axes and steps must have the same length, at most "
                             "the rank %d",
                             rank);
    if (na < 0)
        for (int i = 0; i < ns; i++) axes[i] = i;
    st = od_normalize_axes(c, axes, ns, rank);
    if (st) return st;
    for (int d = 0; d < rank; d++) {
        p->start[d] = 0;
        p->step[d] = 1;
        p->count[d] = x->dims[d];
    }
    for (int i = 0; i < ns; i++) {
        int a = (int)axes[i];
        int64_t dim = x->dims[a], step = nst >= 0 ? steps[i] : 1, s = starts[i], e = ends[i];
        if (step == 0)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "a step is 0");
        if (s < 0) s += dim;
        if (e < 0) e += dim;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            p->count[a] = e > s ? (e - s + step - 1) / step : 0;
        } else {
            s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            p->count[a] = s > e ? (s - e + (-step) - 1) / -step : 0;
        }
        p->start[a] = s;
        p->step[a] = step;
    }
    return OD_STATUS_OK;
}

static od_status slice_infer(od_infer_ctx *c) {
    od_status st = od_expect_sized(c, 0);
    if (st) return st;
    slice_plan p;
    st = slice_read(c, &p);
    if (st) return st;
    c->out[0] = (od_shape_info){.dtype = c->in[0]->dtype, .rank = c->in[0]->rank};
    memcpy(c->out[0].dims, p.count, sizeof(int64_t) * c->in[0]->rank);
    return OD_STATUS_OK;
}

/* The plan is read again from the constants the step holds. */
static od_status slice_prepare(od_step *s, od_error *err) {
    od_step_shapes sh;
    slice_plan *p = od_step_state_with_shapes(s, sizeof *p, &sh, err);
    return p ? slice_read(&sh.c, p) : OD_STATUS_OUT_OF_MEMORY;
}

static od_status slice_run(od_step *s, od_error *err) {
    const slice_plan *p = s->state;
    const od_buf *x = s->in[0];
    od_buf *y = s->out[0];
    size_t esize = od_dtype_size(x->dtype);
    int64_t xs[OD_MAX_RANK], ys[OD_MAX_RANK], ss[OD_MAX_RANK], offset = 0;
    od_strides(x->rank, x->dims, xs);
    od_strides(y->rank, y->dims, ys);
    for (int d = 0; d < x->rank; d++) {
        offset += p->start[d] * xs[d];
        ss[d] = p->step[d] * xs[d];
    }
    od_copy_strided(y->data, ys, (const char *)x->data + (size_t)offset * esize, ss, y->rank,
                    y->dims, esize, s->pool);
    return OD_STATUS_OK;
}

/* ---- training (float) ---------------------------------------------------------------------- */

static od_status slice_train_prepare(od_tstep *s, od_error *err) {
    od_shape_info info[OD_TSTEP_MAX_IN], out;
    const od_shape_info *in[OD_TSTEP_MAX_IN];
    od_infer_ctx c = od_tstep_infer_ctx(s, info, in, &out, err);
    slice_plan *p = malloc(sizeof *p);
    if (!p) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = p;
    return slice_read(&c, p);
}

/* x's slice as a strided view in ONNX order (either layout), and y's strides. */
static int64_t slice_views(const slice_plan *p, const od_tbuf *x, const od_tbuf *y, int64_t *ss, int64_t *ys) {
    int64_t xs[OD_MAX_RANK], offset = 0;
    od_tbuf_strides(x, xs);
    od_tbuf_strides(y, ys);
    for (int d = 0; d < x->rank; d++) {
        offset += p->start[d] * xs[d];
        ss[d] = p->step[d] * xs[d];
    }
    return offset;
}

static od_status slice_forward(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0];
    od_tbuf *y = s->out[0];
    int64_t ss[OD_MAX_RANK], ys[OD_MAX_RANK];
    int64_t offset = slice_views(s->state, x, y, ss, ys);
    od_copy_strided(y->data, ys, x->data + offset, ss, y->rank, y->dims, sizeof(float), NULL);
    return OD_STATUS_OK;
}

static od_status slice_backward(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0], *y = s->out[0];
    int64_t ss[OD_MAX_RANK], ys[OD_MAX_RANK];
    if (!x->grad) return OD_STATUS_OK;
    int64_t offset = slice_views(s->state, x, y, ss, ys);
    od_add_strided(x->grad + offset, ss, y->grad, ys, y->rank, y->dims);
    return OD_STATUS_OK;
}

OD_OP_FACTS(Slice, 1, "axes", "ends", "starts");
const od_op_desc od_op_Slice = {OD_OP_NAME(Slice), .channel_role = OD_CHANNELS_MOVES, .stable_since = 10, .infer = slice_infer, .prepare = slice_prepare,
                                .run = slice_run, .train_layout = OD_TRAIN_LAYOUT_SAME,
                                .train_prepare = slice_train_prepare, .forward_train = slice_forward,
                                .backward = slice_backward};

/* Expand, opsets 8-17: numpy (two-way) broadcasting of the input against a constant shape
 * input. Any element type with a fixed size; a strided copy with stride 0 where the input
 * repeats. Backward (float): the output's gradient summed over the expanded dims (a class
 * token broadcast over the batch); input in either training layout. Layout: plain. */
#include "../train_internal.h"
#include "strided.h"

static od_status expand_infer(od_infer_ctx *c) {
    od_status st = od_expect_sized(c, 0);
    int64_t shape[OD_MAX_RANK + 1];
    int n;
    if (!st) st = od_const_ints_input(c, 1, "the shape input", shape, OD_MAX_RANK + 1, &n);
    if (st) return st;
    const od_shape_info *x = c->in[0];
    int rank = n > x->rank ? n : x->rank;
    if (rank > OD_MAX_RANK)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "rank %d is above %d", rank,
                             OD_MAX_RANK);
    c->out[0] = (od_shape_info){.dtype = x->dtype, .rank = rank};
    for (int d = 0; d < rank; d++) {
        int64_t a = d < rank - x->rank ? 1 : x->dims[d - (rank - x->rank)];
        int64_t b = d < rank - n ? 1 : shape[d - (rank - n)];
        if (a != b && a != 1 && b != 1)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                 "dim %lld of the input does not broadcast to %lld", (long long)a,
                                 (long long)b);
        if (b < 0)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "negative dim %lld in the shape",
                                 (long long)b);
        c->out[0].dims[d] = a == 1 ? b : a;
    }
    if (od_dims_count(rank, c->out[0].dims) < 0)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "the output is too large");
    return OD_STATUS_OK;
}

static od_status expand_run(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    od_buf *y = s->out[0];
    int64_t xs[OD_MAX_RANK], ys[OD_MAX_RANK], ss[OD_MAX_RANK];
    int pad = y->rank - x->rank;
    od_strides(x->rank, x->dims, xs);
    od_strides(y->rank, y->dims, ys);
    for (int d = 0; d < y->rank; d++)
        ss[d] = d < pad || x->dims[d - pad] == 1 ? 0 : xs[d - pad];
    od_copy_strided(y->data, ys, x->data, ss, y->rank, y->dims, od_dtype_size(y->dtype), s->pool);
    return OD_STATUS_OK;
}

/* ---- training (float) ---------------------------------------------------------------------- */

/* x's strides in y's dims (0 where x repeats), and y's strides. */
static void expand_views(const od_tstep *s, int64_t *ss, int64_t *ys) {
    const od_tbuf *x = s->in[0], *y = s->out[0];
    int64_t xs[OD_MAX_RANK];
    int pad = y->rank - x->rank;
    od_tbuf_strides(x, xs);
    od_tbuf_strides(y, ys);
    for (int d = 0; d < y->rank; d++) ss[d] = d < pad || x->dims[d - pad] == 1 ? 0 : xs[d - pad];
}

static od_status expand_forward(od_tstep *s, od_error *err) {
    int64_t ss[OD_MAX_RANK], ys[OD_MAX_RANK];
    expand_views(s, ss, ys);
    od_copy_strided(s->out[0]->data, ys, s->in[0]->data, ss, s->out[0]->rank, s->out[0]->dims, sizeof(float), NULL);
    return OD_STATUS_OK;
}

static od_status expand_backward(od_tstep *s, od_error *err) {
    if (!s->in[0]->grad) return OD_STATUS_OK;
    int64_t ss[OD_MAX_RANK], ys[OD_MAX_RANK];
    expand_views(s, ss, ys);
    od_add_strided(s->in[0]->grad, ss, s->out[0]->grad, ys, s->out[0]->rank, s->out[0]->dims);
    return OD_STATUS_OK;
}

OD_OP_FACTS(Expand, 8, NULL);
const od_op_desc od_op_Expand = {OD_OP_NAME(Expand), .channel_role = OD_CHANNELS_MOVES, .stable_since = 8, .infer = expand_infer, .run = expand_run,
                                 .trained_inputs = 0x1, /* a class token */
                                 .train_layout = OD_TRAIN_LAYOUT_PLAIN, .forward_train = expand_forward,
                                 .backward = expand_backward};

/* Transpose, opsets 1-17: perm (default: reverse the dims). Any element type with a fixed
 * size; a strided copy that moves NCHW<->NHWC-like permutations in tiles. Backward: float (training kernels at the end:
 * a channels-last input is read as a strided view; the output is plain). Layout: plain. */
#include "../train_internal.h"
#include "strided.h"

static od_status read_perm(const od_node *n, int rank, int64_t *perm, od_error *err) {
    int k = od_attr_ints(n, "perm", perm, OD_MAX_RANK);
    if (k < 0) {
        for (int d = 0; d < rank; d++) perm[d] = rank - 1 - d;
        return OD_STATUS_OK;
    }
    if (k != rank)
        return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "perm has %d values for rank %d", k,
                             rank);
    bool seen[OD_MAX_RANK] = {0};
    for (int d = 0; d < rank; d++) {
        if (perm[d] < 0 || perm[d] >= rank || seen[perm[d]])
            return od_node_error(err, OD_STATUS_INVALID_MODEL, n,
                                 "perm is not a permutation of 0..%d", rank - 1);
        seen[perm[d]] = true;
    }
    return OD_STATUS_OK;
}

static od_status transpose_infer(od_infer_ctx *c) {
    od_status st = od_expect_sized(c, 0);
    if (st) return st;
    const od_shape_info *x = c->in[0];
    int64_t perm[OD_MAX_RANK];
    st = read_perm(c->node, x->rank, perm, c->err);
    if (st) return st;
    c->out[0].dtype = x->dtype;
    c->out[0].rank = x->rank;
    for (int d = 0; d < x->rank; d++) c->out[0].dims[d] = x->dims[perm[d]];
    return OD_STATUS_OK;
}

static od_status transpose_run(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    od_buf *y = s->out[0];
    int64_t perm[OD_MAX_RANK], xs[OD_MAX_RANK], ys[OD_MAX_RANK], ss[OD_MAX_RANK];
    od_status st = read_perm(s->node, x->rank, perm, err);
    if (st) return st;
    od_strides(x->rank, x->dims, xs);
    od_strides(y->rank, y->dims, ys);
    for (int d = 0; d < y->rank; d++) ss[d] = xs[perm[d]];
    od_copy_strided(y->data, ys, x->data, ss, y->rank, y->dims, od_dtype_size(y->dtype), s->pool);
    return OD_STATUS_OK;
}

/* ---- training (float) ---------------------------------------------------------------------- */

/* x's strides taken in y's dim order (either layout of x), and y's strides. */
static od_status transpose_views(od_tstep *s, int64_t *ss, int64_t *ys, od_error *err) {
    const od_tbuf *x = s->in[0], *y = s->out[0];
    int64_t perm[OD_MAX_RANK], xs[OD_MAX_RANK];
    od_status st = read_perm(s->node, x->rank, perm, err);
    if (st) return st;
    od_tbuf_strides(x, xs);
    od_tbuf_strides(y, ys);
    for (int d = 0; d < y->rank; d++) ss[d] = xs[perm[d]];
    return OD_STATUS_OK;
}

static od_status transpose_forward(od_tstep *s, od_error *err) {
    int64_t ss[OD_MAX_RANK], ys[OD_MAX_RANK];
    od_status st = transpose_views(s, ss, ys, err);
    if (st) return st;
    od_copy_strided(s->out[0]->data, ys, s->in[0]->data, ss, s->out[0]->rank, s->out[0]->dims, sizeof(float), NULL);
    return OD_STATUS_OK;
}

static od_status transpose_backward(od_tstep *s, od_error *err) {
    int64_t ss[OD_MAX_RANK], ys[OD_MAX_RANK];
    if (!s->in[0]->grad) return OD_STATUS_OK;
    od_status st = transpose_views(s, ss, ys, err);
    if (st) return st;
    od_add_strided(s->in[0]->grad, ss, s->out[0]->grad, ys, s->out[0]->rank, s->out[0]->dims);
    return OD_STATUS_OK;
}

OD_OP_FACTS(Transpose, 1, "perm");
const od_op_desc od_op_Transpose = {OD_OP_NAME(Transpose), .channel_role = OD_CHANNELS_MOVES, .stable_since = 1, .infer = transpose_infer,
                                    .run = transpose_run, .train_layout = OD_TRAIN_LAYOUT_PLAIN,
                                    .forward_train = transpose_forward, .backward = transpose_backward};

/* Split, opsets 1-17: axis (negative from 11); sizes from the `split` attribute (before 13),
 * a constant input (opset 1 and 13 on), or equal parts over the outputs. Any element type
 * with a fixed size; each output is one strided copy. Backward: not yet. Layout: plain. */
#include "strided.h"

#include <stdlib.h>

#define SPLIT_MAX 16 /* the planner's limit on outputs */

static od_status split_read(od_infer_ctx *c, int *axis_out, int64_t *sizes) {
    const od_shape_info *x = c->in[0];
    int64_t a = od_attr_int(c->node, "axis", 0);
    int axis = od_axis(a, x->rank), n = -1;
    if (axis < 0)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "axis %lld is out of range for rank %d", (long long)a, x->rank);
    if (c->n_out > SPLIT_MAX)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "more than %d outputs",
                             SPLIT_MAX);
    if (c->n_in > 1 && c->in[1]) {
        od_status st = od_const_ints_input(c, 1, "the split input", sizes, SPLIT_MAX, &n);
        if (st) return st;
    } else if (c->opset < 13) {
        n = od_attr_ints(c->node, "split", sizes, SPLIT_MAX);
    }
    int64_t dim = x->dims[axis], total = 0;
    if (n < 0) {
        if (c->n_out < 1 || dim % c->n_out)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                 "dim %lld does not split into %d equal parts", (long long)dim,
                                 c->n_out);
        for (int i = 0; i < c->n_out; i++) sizes[i] = dim / c->n_out;
        n = c->n_out;
    }
    if (n != c->n_out)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "split has %d sizes for %d outputs", n, c->n_out);
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "negative split size");
        total += sizes[i];
    }
    if (total != dim)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                             "split sizes add up to %lld; the dim is %lld", (long long)total,
                             (long long)dim);
    *axis_out = axis;
    return OD_STATUS_OK;
}

static od_status split_infer(od_infer_ctx *c) {
    od_status st = od_expect_sized(c, 0);
    int axis;
    int64_t sizes[SPLIT_MAX];
    if (!st) st = split_read(c, &axis, sizes);
    if (st) return st;
    for (int i = 0; i < c->n_out; i++) {
        od_infer_same(c, i, 0);
        c->out[i].dims[axis] = sizes[i];
    }
    return OD_STATUS_OK;
}

typedef struct split_plan {
    int axis;
    int64_t sizes[SPLIT_MAX];
} split_plan;

static od_status split_prepare(od_step *s, od_error *err) {
    od_step_shapes sh;
    split_plan *p = od_step_state_with_shapes(s, sizeof *p, &sh, err);
    return p ? split_read(&sh.c, &p->axis, p->sizes) : OD_STATUS_OUT_OF_MEMORY;
}

static od_status split_run(od_step *s, od_error *err) {
    const split_plan *p = s->state;
    const od_buf *x = s->in[0];
    size_t e = od_dtype_size(x->dtype);
    int64_t xs[OD_MAX_RANK], ys[OD_MAX_RANK], offset = 0;
    od_strides(x->rank, x->dims, xs);
    for (int i = 0; i < s->n_out; i++) {
        const od_buf *y = s->out[i];
        if (y) {
            od_strides(y->rank, y->dims, ys);
            od_copy_strided(y->data, ys, (const char *)x->data + (size_t)(offset * xs[p->axis]) * e,
                            xs, y->rank, y->dims, e, s->pool);
        }
        offset += p->sizes[i];
    }
    return OD_STATUS_OK;
}

OD_OP_FACTS(Split, 1, "axis", "split");
const od_op_desc od_op_Split = {OD_OP_NAME(Split), .channel_role = OD_CHANNELS_MOVES, .stable_since = 13, .infer = split_infer, .prepare = split_prepare,
                                .run = split_run};

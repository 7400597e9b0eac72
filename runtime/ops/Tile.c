/* Tile, opsets 6-17: repeats as a constant int64 input, one per dim. Any element type with a
 * fixed size; one strided copy over [repeat, dim] pairs. Opset 1 (tiles and axis inputs) is
 * refused. Backward: not yet. Layout: plain. */
#include "strided.h"

static od_status tile_infer(od_infer_ctx *c) {
    if (c->opset < 6)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "opset 1 Tile (tiles and axis inputs) is not supported");
    od_status st = od_expect_sized(c, 0);
    int64_t rep[OD_MAX_RANK];
    int n;
    if (!st) st = od_const_ints_input(c, 1, "the repeats input", rep, OD_MAX_RANK, &n);
    if (st) return st;
    const od_shape_info *x = c->in[0];
    if (n != x->rank)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                             "repeats has %d values for rank %d", n, x->rank);
    c->out[0] = (od_shape_info){.dtype = x->dtype, .rank = x->rank};
    for (int d = 0; d < n; d++) {
        if (rep[d] < 0)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                                 "negative repeat %lld", (long long)rep[d]);
        if (rep[d] > 0 && x->dims[d] > INT64_MAX / rep[d])
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "the output is too large");
        c->out[0].dims[d] = x->dims[d] * rep[d];
    }
    if (od_dims_count(n, c->out[0].dims) < 0)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "the output is too large");
    return OD_STATUS_OK;
}

static od_status tile_run(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    od_buf *y = s->out[0];
    int r = x->rank;
    int64_t xs[OD_MAX_RANK], ys[OD_MAX_RANK];
    int64_t dims[OD_STRIDED_MAX_RANK], ds[OD_STRIDED_MAX_RANK], ss[OD_STRIDED_MAX_RANK];
    od_strides(r, x->dims, xs);
    od_strides(r, y->dims, ys);
    for (int d = 0; d < r; d++) { /* output index along d = k * dim + i */
        int64_t dim = x->dims[d];
        dims[2 * d] = dim ? y->dims[d] / dim : 0;
        ds[2 * d] = dim * ys[d];
        ss[2 * d] = 0;
        dims[2 * d + 1] = dim;
        ds[2 * d + 1] = ys[d];
        ss[2 * d + 1] = xs[d];
    }
    od_copy_strided(y->data, ds, x->data, ss, 2 * r, dims, od_dtype_size(y->dtype), s->pool);
    return OD_STATUS_OK;
}

OD_OP_FACTS(Tile, 1, NULL);
const od_op_desc od_op_Tile = {OD_OP_NAME(Tile), .channel_role = OD_CHANNELS_MOVES, .stable_since = 6, .infer = tile_infer, .run = tile_run};

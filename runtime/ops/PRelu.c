/* PRelu, opsets 6-16: y = x < 0 ? slope * x : x, float32. Opset 7+: slope broadcasts to X by
 * numpy's unidirectional rule (commonly [C, 1, 1] for NCHW). Opset 6: a 1-D slope as long as
 * dim 1 is per channel (what PyTorch exported), otherwise it must broadcast as above.
 * A constant slope that varies only along the last physical dim (per channel once a Conv has
 * made the data channels-last, or a [C] slope over [..., C]) runs on XNNPACK's prelu, a constant
 * scalar on leaky_relu, anything else a broadcasting loop. Layout: element-wise.
 * Backward: not yet. */
#include "../op.h"
#include "ew_common.h"

#include <stdlib.h>
#include <xnnpack.h>

/* Opset 6's per-channel slope: [C] (or [1, ..., C], as the planner may pad it) where C is X's
 * dim 1. */
static bool prelu_legacy(int64_t opset, int x_rank, const int64_t *x_dims, int s_rank,
                         const int64_t *s_dims) {
    if (opset >= 7 || x_rank < 2 || s_rank < 1 || x_dims[1] == 1 || s_dims[s_rank - 1] != x_dims[1])
        return false;
    for (int d = 0; d < s_rank - 1; d++)
        if (s_dims[d] != 1) return false;
    return true;
}

static od_status prelu_infer(od_infer_ctx *c) {
    if (c->n_in != 2)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "takes 2 inputs, not %d",
                             c->n_in);
    od_status st = od_infer_expect(c, 0, 0, OD_MAX_RANK);
    if (!st) st = od_infer_expect(c, 1, 0, OD_MAX_RANK);
    if (st) return st;
    const od_shape_info *x = c->in[0], *slope = c->in[1];
    if (!prelu_legacy(c->opset, x->rank, x->dims, slope->rank, slope->dims) &&
        !ew_unidirectional(slope, x))
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                             "slope of rank %d does not broadcast to the input's shape (rank %d)",
                             slope->rank, x->rank);
    od_infer_same(c, 0, 0);
    return OD_STATUS_OK;
}

static od_status prelu_prepare(od_step *s, od_error *err) {
    od_buf *x = s->in[0], *slope = s->in[1];
    od_buf legacy; /* opset 6's [C] slope seen as [1, C, 1, ...] in X's layout */
    if (prelu_legacy(s->opset, x->rank, x->dims, slope->rank, slope->dims)) {
        legacy = *slope;
        legacy.rank = x->rank;
        legacy.layout = x->layout;
        for (int d = 0; d < x->rank; d++)
            legacy.dims[d] = d == 1 ? x->dims[1] : 1;
        slope = &legacy;
    }
    od_buf *in[2] = {x, slope};
    ew_job *p = NULL;
    od_status st = ew_job_create(s, 2, in, OD_DTYPE_FLOAT, &p, err);
    if (st || !s->in[1]->constant || p->b.rows == 0) return st;
    const ew_bcast *b = &p->b;
    const float *slopes = p->in[1];
    int last = b->rank - 1;
    bool scalar = true, per_channel = b->strides[1][last] == 1;
    for (int d = 0; d <= last; d++)
        scalar = scalar && b->strides[1][d] == 0;
    for (int d = 0; d < last; d++)
        per_channel = per_channel && b->strides[1][d] == 0;
    if (!scalar && !per_channel) return OD_STATUS_OK;
    size_t channels = scalar ? 1 : (size_t)b->dims[last];
    size_t batch = (size_t)od_buf_count(s->out[0]) / channels;
    xnn_operator_t op = NULL;
    enum xnn_status r =
        scalar ? xnn_create_leaky_relu_nc_f32(1, 1, 1, slopes[0], 0, &op)
               : xnn_create_prelu_nc_f32(channels, channels, channels, slopes, 0, &op);
    st = od_xnn_check(r, err, s->node, "create");
    if (st) return st;
    p->xnn = op;
    r = scalar ? xnn_setup_leaky_relu_nc_f32(op, batch, p->in[0], p->out, s->pool)
               : xnn_setup_prelu_nc_f32(op, batch, p->in[0], p->out, s->pool);
    return od_xnn_check(r, err, s->node, "setup");
}

static void prelu_rows(void *ctx, int64_t first, int64_t end) {
    const ew_job *p = ctx;
    const ew_bcast *b = &p->b;
    int64_t n = b->dims[b->rank - 1], ss = b->strides[1][b->rank - 1], off[2];
    for (int64_t r = first; r < end; r++) {
        ew_bcast_offsets(b, r, off);
        const float *x = (const float *)p->in[0] + off[0], *slope = (const float *)p->in[1] + off[1];
        float *y = (float *)p->out + r * n;
        for (int64_t i = 0; i < n; i++)
            y[i] = x[i] < 0.0f ? slope[i * ss] * x[i] : x[i];
    }
}

static od_status prelu_run(od_step *s, od_error *err) { return ew_job_run(s, prelu_rows, err); }

OD_OP_FACTS(PRelu, 1, "consumed_inputs");
const od_op_desc od_op_PRelu = {OD_OP_NAME(PRelu), .channel_role = OD_CHANNELS_ELEMENTWISE, .stable_since = 7, .channel_inputs = 1, .per_sample = od_per_sample_always,
                                .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                                .infer = prelu_infer,
                                .prepare = prelu_prepare,
                                .run = prelu_run,
                                .destroy = ew_job_destroy};

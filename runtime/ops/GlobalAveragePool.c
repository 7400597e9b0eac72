/* GlobalAveragePool, opset 1: the mean over every spatial dim of [N, C, spatial...] (rank 3 and
 * up); float on XNNPACK's global average pooling (channels-last input is [N, pixels, C]),
 * double on a loop. Backward: 2-D (pool_common.c). Layout: spatial. */
#include "pool_common.h"
#include "qs8_common.h"

#include <math.h>
#include <stdlib.h>
#include <xnnpack.h>

static od_status gap_infer(od_infer_ctx *c) { return od_pool_infer(c, false, true); }

static od_status gap_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    od_pool_state *g = NULL;
    od_status st = od_pool_state_create(s, false, true, &g, err);
    if (st) return st;
    size_t C = (size_t)x->dims[1], pixels = (size_t)od_dims_count(x->rank - 2, x->dims + 2);
    if (x->dtype != OD_DTYPE_FLOAT || C == 0 || pixels == 0) return OD_STATUS_OK;
    if (xnn_create_global_average_pooling_nwc_f32(C, C, C, -INFINITY, INFINITY, 0, &g->xnn) !=
        xnn_status_success) {
        g->xnn = NULL; /* the loop does the same */
        return OD_STATUS_OK;
    }
    enum xnn_status r = xnn_setup_global_average_pooling_nwc_f32(
        g->xnn, (size_t)x->dims[0], pixels, x->data, s->out[0]->data, s->pool);
    return od_xnn_check(r, err, s->node, "setup global average pooling");
}

static od_status gap_run(od_step *s, od_error *err) {
    return od_pool_state_run(s, "run global average pooling", err);
}

/* int8 (quantized execution, plan_qs8.c): XNNPACK's QS8 global average pooling. */
static bool gap_qs8_accepts(const od_node *n, const od_shape_info *const *in) {
    (void)n;
    return in[0] && in[0]->rank >= 3 && in[0]->dims[1] > 0 && od_dims_count(in[0]->rank - 2, in[0]->dims + 2) > 0;
}

static od_status gap_qs8_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    const od_qs8_params *q = s->qs8;
    size_t C = (size_t)x->dims[1], pixels = (size_t)od_dims_count(x->rank - 2, x->dims + 2);
    int8_t lo, hi;
    od_qs8_out_range(s, &lo, &hi);
    xnn_operator_t op = NULL;
    enum xnn_status r = xnn_create_global_average_pooling_nwc_qs8(
        C, C, C, (int8_t)q->in_zp[0], q->in_scale[0], (int8_t)q->out_zp, q->out_scale, lo, hi, 0, &op);
    od_status st = od_xnn_check(r, err, s->node, "create int8 global average pooling");
    if (st) return st;
    s->state = op;
    r = xnn_setup_global_average_pooling_nwc_qs8(op, (size_t)x->dims[0], pixels, (const int8_t *)x->data,
                                                 (int8_t *)s->out[0]->data, s->pool);
    return od_xnn_check(r, err, s->node, "setup int8 global average pooling");
}

static const od_op_desc od_qs8_GlobalAveragePool = {.name = "GlobalAveragePool (int8)", .layout = OD_LAYOUT_POLICY_SPATIAL,
                                                    .fuses_activation = true, .prepare = gap_qs8_prepare,
                                                    .run = od_qs8_xnn_run, .destroy = od_qs8_xnn_destroy};

OD_OP_FACTS(GlobalAveragePool, 1, NULL);
const od_op_desc od_op_GlobalAveragePool = {
    OD_OP_NAME(GlobalAveragePool), .channel_role = OD_CHANNELS_PER_CHANNEL, .stable_since = 1, .qs8 = &od_qs8_GlobalAveragePool, .qs8_accepts = gap_qs8_accepts, .per_sample = od_per_sample_always, .layout = OD_LAYOUT_POLICY_SPATIAL, .infer = gap_infer,
    .prepare = gap_prepare, .run = gap_run, .destroy = od_pool_state_destroy, OD_POOL_TRAIN};

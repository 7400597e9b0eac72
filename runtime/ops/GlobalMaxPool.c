/* GlobalMaxPool, opset 1: the max over every spatial dim of [N, C, spatial...] (rank 3 and up);
 * float, double, int8, uint8, on the pooling loop (rows of C channels at a time). Backward: 2-D
 * (pool_common.c). Layout: spatial. */
#include "pool_common.h"

#include <stdlib.h>

static od_status gmp_infer(od_infer_ctx *c) { return od_pool_infer(c, true, true); }

static od_status gmp_prepare(od_step *s, od_error *err) {
    od_pool *p = malloc(sizeof *p);
    if (!p) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    od_pool_global(true, s->in[0]->rank, s->in[0]->dims, p);
    s->state = p;
    return OD_STATUS_OK;
}

static od_status gmp_run(od_step *s, od_error *err) {
    od_pool_run_loop(s->state, s->in[0]->dtype, s->in[0]->data, s->out[0]->data, s->pool);
    return OD_STATUS_OK;
}

OD_OP_FACTS(GlobalMaxPool, 1, NULL);
const od_op_desc od_op_GlobalMaxPool = {OD_OP_NAME(GlobalMaxPool), .channel_role = OD_CHANNELS_PER_CHANNEL, .stable_since = 1, .per_sample = od_per_sample_always,
                                        .layout = OD_LAYOUT_POLICY_SPATIAL, .infer = gmp_infer,
                                        .prepare = gmp_prepare, .run = gmp_run, OD_POOL_TRAIN};

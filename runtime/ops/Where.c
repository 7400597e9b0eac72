/* Where, opsets 9-17: numpy broadcasting of a bool condition and two inputs of one type (any
 * fixed size). Backward: not yet. Layout: element-wise. */
#include "ew_common.h"

#include <stdlib.h>
#include <string.h>

static od_status where_infer(od_infer_ctx *c) {
    if (c->n_in != 3 || !c->in[0] || !c->in[1] || !c->in[2])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs three inputs");
    if (c->in[0]->dtype != OD_DTYPE_BOOL)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "the condition has element type %s; expected bool",
                             od_dtype_name(c->in[0]->dtype));
    od_dtype t = c->in[1]->dtype;
    if (t != c->in[2]->dtype)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "inputs have element types %s and %s", od_dtype_name(t),
                             od_dtype_name(c->in[2]->dtype));
    if (od_dtype_size(t) == 0)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "element type %s is not supported", od_dtype_name(t));
    od_status st = od_infer_broadcast(c);
    if (st) return st;
    c->out[0].dtype = t;
    return OD_STATUS_OK;
}

#define WHERE_LOOP(E)                                                                              \
    for (int64_t i = 0; i < n; i++)                                                                \
        memcpy(o + i * (E), c[i * sc] ? x + i * sx * (E) : y + i * sy * (E), (E))

static void where_rows(void *ctx, int64_t first, int64_t end) {
    const ew_job *j = ctx;
    int r = j->b.rank;
    size_t e = od_dtype_size(j->t);
    int64_t n = j->b.dims[r - 1], sc = j->b.strides[0][r - 1], sx = j->b.strides[1][r - 1],
            sy = j->b.strides[2][r - 1];
    for (int64_t row = first; row < end; row++) {
        int64_t off[3];
        ew_bcast_offsets(&j->b, row, off);
        const uint8_t *c = (const uint8_t *)j->in[0] + off[0];
        const char *x = (const char *)j->in[1] + off[1] * e, *y = (const char *)j->in[2] + off[2] * e;
        char *o = (char *)j->out + row * n * e;
        switch (e) {
        case 1: WHERE_LOOP(1); break;
        case 2: WHERE_LOOP(2); break;
        case 4: WHERE_LOOP(4); break;
        case 8: WHERE_LOOP(8); break;
        default: WHERE_LOOP(e); break;
        }
    }
}

static od_status where_prepare(od_step *s, od_error *err) {
    return ew_job_create(s, 3, NULL, s->out[0]->dtype, NULL, err);
}

static od_status where_run(od_step *s, od_error *err) { return ew_job_run(s, where_rows, err); }

OD_OP_FACTS(Where, 9, NULL);
const od_op_desc od_op_Where = {OD_OP_NAME(Where), .channel_role = OD_CHANNELS_BROADCAST, .stable_since = 9, .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                                .infer = where_infer, .prepare = where_prepare, .run = where_run,
                                .destroy = ew_job_destroy};

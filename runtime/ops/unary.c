/* Element-wise unary ops, one descriptor each; they share this file because they share
 * everything but the function: opsets 6-17, float32 only, layout-agnostic, no backward yet.
 *   Relu           XNNPACK clamp [0, inf)
 * Each op either drives an XNNPACK "nc" operator (created and set up once per plan) or runs a
 * scalar loop over the elements. */
#include "../op.h"

#include <math.h>
#include <stdlib.h>
#include <xnnpack.h>

typedef struct unary_state {
    xnn_operator_t xnn;
} unary_state;

static od_status unary_infer(od_infer_ctx *c) {
    od_status st = od_infer_expect(c, 0, 0, OD_MAX_RANK);
    if (st) return st;
    od_infer_same(c, 0, 0);
    return OD_STATUS_OK;
}

static void unary_destroy(od_step *s) {
    unary_state *u = s->state;
    if (u && u->xnn) xnn_delete_operator(u->xnn);
    free(u);
    s->state = NULL;
}

static od_status unary_run_xnn(od_step *s, od_error *err) {
    unary_state *u = s->state;
    return od_xnn_check(xnn_run_operator(u->xnn, s->pool), err, s->node, "run");
}

/* Creates state and sets up a created "nc" operator over all elements as one channel row. */
static od_status unary_setup(od_step *s, xnn_operator_t op, enum xnn_status created,
                             enum xnn_status (*setup)(xnn_operator_t, size_t, const float *,
                                                      float *, pthreadpool_t),
                             od_error *err) {
    od_status st = od_xnn_check(created, err, s->node, "create");
    if (st) return st;
    unary_state *u = calloc(1, sizeof *u);
    if (!u) {
        xnn_delete_operator(op);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    u->xnn = op;
    s->state = u;
    size_t n = (size_t)od_buf_count(s->out[0]);
    return od_xnn_check(setup(op, n, s->in[0]->data, s->out[0]->data, s->pool), err, s->node,
                        "setup");
}

/* ---- Relu ----------------------------------------------------------------------- */

static od_status relu_prepare(od_step *s, od_error *err) {
    xnn_operator_t op = NULL;
    enum xnn_status created = xnn_create_clamp_nc_f32(1, 1, 1, 0.0f, INFINITY, 0, &op);
    return unary_setup(s, op, created, xnn_setup_clamp_nc_f32, err);
}

const od_op_desc od_op_Relu = {.name = "Relu", .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                               .infer = unary_infer, .prepare = relu_prepare,
                               .run = unary_run_xnn, .destroy = unary_destroy};

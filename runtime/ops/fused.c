/* Ops the planner makes from exporters' spellings of one activation (runtime/plan_fuse.c); no
 * ONNX node has these types and they are not in ops.def.
 *   SiLU(x) = x * Sigmoid(x)   one step over x: XNNPACK's sigmoid into the output, then the
 *                              product with x in place; the same bits as Sigmoid then Mul.
 * Inference only; float32, any rank and layout (element-wise). */
#include "ew_common.h"

#include <stdlib.h>
#include <xnnpack.h>

typedef struct silu_state {
    xnn_operator_t sigmoid;
    const float *x;
    float *y;
} silu_state;

static od_status silu_prepare(od_step *s, od_error *err) {
    silu_state *u = calloc(1, sizeof *u);
    if (!u) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = u;
    u->x = s->in[0]->data;
    u->y = s->out[0]->data;
    od_status st = od_xnn_check(xnn_create_sigmoid_nc_f32(1, 1, 1, 0, &u->sigmoid), err, s->node,
                                "create sigmoid");
    if (st) return st;
    size_t n = (size_t)od_buf_count(s->out[0]);
    return od_xnn_check(xnn_setup_sigmoid_nc_f32(u->sigmoid, n, u->x, u->y, NULL), err, s->node,
                        "setup sigmoid");
}

static void silu_rows(void *ctx, int64_t first, int64_t end) {
    const silu_state *u = ctx;
    for (int64_t i = first * EW_CHUNK; i < end * EW_CHUNK; i++) u->y[i] *= u->x[i];
}

static void silu_tail(const silu_state *u, int64_t first, int64_t end) {
    for (int64_t i = first; i < end; i++) u->y[i] *= u->x[i];
}

static od_status silu_run(od_step *s, od_error *err) {
    silu_state *u = s->state;
    od_status st = od_xnn_check(xnn_run_operator(u->sigmoid, s->pool), err, s->node, "run sigmoid");
    if (st) return st;
    int64_t n = od_buf_count(s->out[0]), rows = n / EW_CHUNK;
    ew_for_rows(s->pool, rows, EW_CHUNK, silu_rows, u);
    silu_tail(u, rows * EW_CHUNK, n);
    return OD_STATUS_OK;
}

static void silu_destroy(od_step *s) {
    silu_state *u = s->state;
    if (u && u->sigmoid) xnn_delete_operator(u->sigmoid);
    free(u);
    s->state = NULL;
}

const od_op_desc od_fused_SiLU = {.name = "SiLU",
                                  .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                                  .prepare = silu_prepare,
                                  .run = silu_run,
                                  .destroy = silu_destroy};

/* Dropout, opsets 1-13, inference: output = input (shared memory); the optional mask output
 * is all true. training_mode as a constant true is refused here. Backward: yes; in training
 * the masks are a function of (seed, call, element). Layout: keeps its input's. */
#include "../train_internal.h"

#include <stdlib.h>

#include <string.h>

static od_status dropout_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    if (c->n_in > 2 && c->in[2]) {
        if (!c->in[2]->constant)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node, "training_mode must be a constant");
        const od_tensor *t = c->in[2]->constant;
        if (t->nbytes >= 1 && ((const uint8_t *)t->data)[0])
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "training_mode = true is not supported for inference");
    }
    od_infer_same(c, 0, 0);
    if (c->n_out > 1) {
        od_infer_same(c, 1, 0);
        c->out[1].dtype = OD_DTYPE_BOOL;
    }
    return OD_STATUS_OK;
}

static od_status dropout_run(od_step *s, od_error *err) {
    if (s->n_out > 1 && s->out[1]) memset(s->out[1]->data, 1, s->out[1]->nbytes);
    return OD_STATUS_OK;
}

/* ---- Dropout ---------------------------------------------------------------------------- */

typedef struct dropout_train {
    float ratio;
    uint8_t *mask;
} dropout_train;

static od_status dropout_prepare(od_tstep *s, od_error *err) {
    dropout_train *d = calloc(1, sizeof *d);
    if (!d) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = d;
    d->ratio = od_attr_float(s->node, "ratio", 0.5f);
    if (s->n_in > 1 && s->in[1] && s->in[1]->data) d->ratio = s->in[1]->data[0];
    if (!(d->ratio >= 0 && d->ratio < 1)) return od_node_error(err, OD_STATUS_INVALID_MODEL, s->node, "ratio must be in [0, 1)");
    d->mask = calloc((size_t)s->out[0]->count + 1, 1);
    if (!d->mask) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

static uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static od_status dropout_forward(od_tstep *s, od_error *err) {
    dropout_train *d = s->state;
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data;
    int64_t n = s->out[0]->count;
    if (!s->training || d->ratio == 0) {
        memset(d->mask, 1, (size_t)n);
        memcpy(y, x, sizeof(float) * (size_t)n);
        return OD_STATUS_OK;
    }
    uint64_t base = splitmix(s->seed ^ splitmix(s->calls));
    float keep = 1 - d->ratio, scale = 1 / keep;
    uint64_t threshold = (uint64_t)(keep * 18446744073709551616.0);
    for (int64_t i = 0; i < n; i++) {
        d->mask[i] = splitmix(base + (uint64_t)i) < threshold;
        y[i] = d->mask[i] ? x[i] * scale : 0;
    }
    return OD_STATUS_OK;
}

static od_status dropout_backward(od_tstep *s, od_error *err) {
    dropout_train *d = s->state;
    float scale = s->training && d->ratio > 0 ? 1 / (1 - d->ratio) : 1;
    for (int64_t i = 0; i < s->out[0]->count; i++)
        if (d->mask[i]) s->in[0]->grad[i] += s->out[0]->grad[i] * scale;
    return OD_STATUS_OK;
}

static void dropout_destroy(od_tstep *s) {
    dropout_train *d = s->state;
    if (d) free(d->mask);
    free(d);
    s->state = NULL;
}

OD_OP_FACTS(Dropout, 1, "consumed_inputs", "is_test", "ratio", "seed");
const od_op_desc od_op_Dropout = {OD_OP_NAME(Dropout), .channel_role = OD_CHANNELS_ELEMENTWISE, .stable_since = 12, .per_sample = od_per_sample_always,
                                  .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                                  .alias_input0 = true, .infer = dropout_infer, .run = dropout_run,
                                  .train_layout = OD_TRAIN_LAYOUT_SAME, .train_prepare = dropout_prepare,
                                  .forward_train = dropout_forward, .backward = dropout_backward,
                                  .train_destroy = dropout_destroy};

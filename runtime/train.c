/* The trainer: a thin layer over a plan in training mode (plan.c) that gives the caller its
 * batch and logits in ONNX order, the loss's gradient slot, the parameter list and per-step
 * times. */
#include "plan_internal.h"
#include "train_internal.h"

#include <stdlib.h>
#include <string.h>

struct od_trainer {
    od_plan *plan;
    int64_t batch;
    od_buf *in, *out; /* the plan's first input and output */
    int n_params;
    od_param *params;
    float *input_plain; /* the caller's NCHW batch when the graph input is kept channels-last */
    float *output_plain, *output_grad_plain; /* likewise for a channels-last graph output */
    od_train_profile *profile;
};

/* A step this small runs faster on one thread: handing out the shards costs more than they save
 * (a 134 k-MAC MLP at batch 64: 109 k samples/s on one thread, 95 k on two; a small CNN at 48 M
 * MACs a step: 1.6x faster on two). */
#define SERIAL_STEP_MACS 32000000

int od_trainer_useful_threads(const od_graph *g, int64_t batch, int threads) {
    od_graph_shapes shapes;
    if (threads <= 1 || od_graph_infer(g, batch, &shapes, NULL)) return threads > 1 ? threads : 1;
    int64_t macs = 0;
    for (int i = 0; i < g->n_nodes; i++) macs += od_node_macs(g, i, &shapes);
    od_graph_shapes_clear(&shapes);
    return macs < SERIAL_STEP_MACS ? 1 : threads;
}

static float *alloc_floats(int64_t count) { return od_alloc_large(sizeof(float) * (size_t)count + 64); }

od_status od_trainer_create(od_graph *g, const od_trainer_options *opt, od_trainer **out, od_error *err) {
    *out = NULL;
    od_trainer_options o = opt ? *opt : (od_trainer_options){0};
    if (o.batch <= 0) o.batch = 64;
    if (o.threads <= 0) o.threads = 1;
    od_trainer *t = calloc(1, sizeof *t);
    if (!t) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    t->batch = o.batch;
    od_status st = od_plan_create_training(g, &(od_plan_options){.batch = o.batch, .threads = o.threads}, o.seed,
                                           &t->plan, err);
    if (st) goto fail;
    od_plan *p = t->plan;
    t->in = &p->bufs[p->input_buf[0]];
    t->out = &p->bufs[p->output_buf[0]];
    if ((t->in->cl && !(t->input_plain = alloc_floats(t->in->count))) ||
        (t->out->cl && (!(t->output_plain = alloc_floats(t->out->count)) ||
                        !(t->output_grad_plain = alloc_floats(t->out->count)))))
        goto oom;
    for (int v = 0; v < g->n_values; v++) t->n_params += p->bufs[v].is_param;
    if (!(t->params = calloc(t->n_params + 1, sizeof *t->params))) goto oom;
    for (int v = 0, i = 0; v < g->n_values; v++) {
        const od_buf *b = &p->bufs[v];
        if (b->is_param)
            t->params[i++] = (od_param){.name = g->values[v].name, .data = b->data, .grad = b->grad,
                                        .count = b->count, .decay = b->rank >= 2};
    }
    if (o.profile) {
        if (!(t->profile = calloc(p->n_steps + 1, sizeof *t->profile))) goto oom;
        for (int i = 0; i < p->n_steps; i++) {
            t->profile[i].node_name = p->steps[i].node->name;
            t->profile[i].op_type = p->steps[i].node->op_type;
        }
    }
    *out = t;
    return OD_STATUS_OK;
oom:
    st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for training buffers");
fail:
    od_trainer_destroy(t);
    return st;
}

void od_trainer_destroy(od_trainer *t) {
    if (!t) return;
    od_plan_destroy(t->plan);
    free(t->params);
    free(t->profile);
    free(t->input_plain);
    free(t->output_plain);
    free(t->output_grad_plain);
    free(t);
}

int64_t od_trainer_batch(const od_trainer *t) { return t->batch; }
float *od_trainer_input(od_trainer *t) { return t->input_plain ? t->input_plain : t->in->data; }
int64_t od_trainer_input_count(const od_trainer *t) { return t->in->count / t->batch; }
const float *od_trainer_output(const od_trainer *t) { return t->output_plain ? t->output_plain : t->out->data; }
int64_t od_trainer_classes(const od_trainer *t) { return t->out->count / t->batch; }
float *od_trainer_output_grad(od_trainer *t) { return t->output_grad_plain ? t->output_grad_plain : t->out->grad; }

int od_trainer_params(od_trainer *t, od_param **params_out) {
    *params_out = t->params;
    return t->n_params;
}

/* [N, C, spatial] <-> channels-last for the staging buffers of a channels-last input or output. */
static void relayout_buf(const od_buf *b, const float *src, float *dst, bool to_last) {
    od_relayout(src, dst, b->rank, b->dims, to_last, sizeof(float), false, NULL);
}

od_status od_trainer_forward(od_trainer *t, bool training, od_error *err) {
    if (t->input_plain) relayout_buf(t->in, t->input_plain, t->in->data, true);
    od_status st = od_plan_run_forward(t->plan, training, t->profile, err);
    if (st) return st;
    if (t->output_plain) relayout_buf(t->out, t->out->data, t->output_plain, false);
    return OD_STATUS_OK;
}

od_status od_trainer_backward(od_trainer *t, od_error *err) {
    if (t->output_grad_plain) relayout_buf(t->out, t->output_grad_plain, t->out->grad, true);
    return od_plan_run_backward(t->plan, t->profile, err);
}

int od_trainer_profile(const od_trainer *t, const od_train_profile **out) {
    *out = t->profile;
    return t->profile ? t->plan->n_steps : 0;
}

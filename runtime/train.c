/* The trainer: a graph's forward pass keeping every activation, and its backward pass. */
#include "train_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct od_trainer {
    od_graph *graph;
    od_trainer_options opt;
    od_graph_shapes shapes;
    od_tbuf *bufs; /* one per graph value */
    int n_steps;
    od_tstep *steps;
    od_tbuf **step_io;
    float *act;  /* every non-constant activation */
    float *grads; /* every gradient except the parameters' */
    size_t grads_count;
    int n_params;
    od_param *params;
    int in_value, out_value;
    float *input_plain; /* the caller's NCHW batch when the graph input is kept channels-last */
    float *output_plain, *output_grad_plain; /* likewise for a channels-last graph output */
    od_train_profile *profile;
    od_workers *workers;
};

typedef struct shard_call {
    void (*fn)(void *, int, int64_t, int64_t);
    void *ctx;
    int64_t n;
    int shards;
} shard_call;

static void shard_task(void *p, int who, int64_t i) {
    shard_call *c = p;
    int64_t begin = c->n * i / c->shards, end = c->n * (i + 1) / c->shards;
    if (end > begin) c->fn(c->ctx, (int)i, begin, end);
}

/* Shard i is always the same slice, whichever thread runs it: the same thread count gives
 * the same bits. */
int od_shard_count(const od_tstep *s, int64_t n) {
    return s->threads > 1 && n > 1 ? (int)(n < s->threads ? n : s->threads) : 1;
}

void od_shards(const od_tstep *s, int64_t n, void (*fn)(void *, int, int64_t, int64_t), void *ctx) {
    int shards = od_shard_count(s, n);
    shard_call c = {fn, ctx, n, shards};
    if (shards == 1) {
        fn(ctx, 0, 0, n);
        return;
    }
    od_workers_run(s->workers, shards, shard_task, &c);
}

static bool is_float_param(const od_value *v) {
    return v->init && v->init->dtype == OD_DTYPE_FLOAT;
}

extern const od_op_desc od_op_Relu;

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

/* A Relu whose input is the only use of the output of an op with train_fuses_relu (Conv, Gemm,
 * BatchNormalization, Add, Sub, Mul) is done by that op, in the same pass over memory (what
 * bounds these kernels): its step is skipped and its output shares the op's buffers. */
static void fuse_relus(od_trainer *t) {
    const od_graph *g = t->graph;
    int *uses = od_graph_count_uses(g);
    int *step_of = malloc(sizeof(int) * (g->n_nodes ? g->n_nodes : 1));
    if (!uses || !step_of) goto done;
    for (int i = 0; i < g->n_nodes; i++) step_of[i] = -1;
    for (int s = 0; s < t->n_steps; s++) step_of[t->steps[s].node - g->nodes] = s;
    for (int s = 0; s < t->n_steps; s++) {
        od_tstep *r = &t->steps[s];
        if (r->op != &od_op_Relu || r->n_in < 1 || !r->in[0]) continue;
        int v = r->node->inputs[0], prod = g->values[v].producer;
        if (prod < 0 || step_of[prod] < 0 || uses[v] != 1) continue;
        od_tstep *p = &t->steps[step_of[prod]];
        if (!p->op->train_fuses_relu || p->out[0] != r->in[0]) continue;
        bool is_output = false;
        for (int i = 0; i < g->n_outputs; i++) is_output |= g->outputs[i] == r->node->outputs[0];
        if (is_output) continue;
        p->fused_relu = true;
        r->fused_relu = true; /* on a Relu step: skip it */
        r->out[0]->data = r->in[0]->data;
        r->out[0]->grad = r->in[0]->grad;
    }
done:
    free(uses);
    free(step_of);
}

/* Activations of rank 3 and 4 are channels-last where the ops allow (convolutions, pools, BN
 * and element-wise ops between them); parameters and constants stay in ONNX order. */
static od_status assign_layouts(od_trainer *t, od_error *err) {
    od_tbuf *in = &t->bufs[t->in_value];
    in->cl = in->rank == 4;
    for (int i = 0; i < t->n_steps && in->rank == 3; i++) /* [N, C, L] into a 1-D conv or pool */
        for (int k = 0; k < t->steps[i].n_in; k++)
            if (t->steps[i].in[k] == in && t->steps[i].op->train_layout == OD_TRAIN_LAYOUT_SPATIAL) in->cl = true;
    if (in->cl && !(t->input_plain = malloc(sizeof(float) * (size_t)in->count + 64)))
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < t->n_steps; i++) {
        od_tstep *s = &t->steps[i];
        const od_op_desc *op = s->op;
        for (int k = 0; k < s->n_in; k++)
            if (s->in[k]) s->in[k]->consumers++;
        for (int k = 0; k < s->n_out; k++) {
            od_tbuf *o = s->out[k];
            if (!o) continue;
            bool spatial = o->rank == 3 || o->rank == 4;
            if (op->train_layout == OD_TRAIN_LAYOUT_SPATIAL) {
                o->cl = spatial;
            } else if (op->train_layout == OD_TRAIN_LAYOUT_SAME) {
                o->cl = false;
                for (int j = 0; j < s->n_in; j++)
                    if (s->in[j] && s->in[j]->cl && s->in[j]->rank == o->rank) o->cl = spatial;
            } else {
                o->cl = false;
            }
        }
    }
    const od_tbuf *o = &t->bufs[t->out_value];
    if (o->cl && (!(t->output_plain = malloc(sizeof(float) * (size_t)o->count + 64)) ||
                  !(t->output_grad_plain = malloc(sizeof(float) * (size_t)o->count + 64))))
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

/* Whether every output of n is known from shapes alone (a constant shape chain such as
 * Shape -> Gather -> Concat -> Reshape's shape, with the batch fixed): it never runs. */
static bool node_folded(const od_node *n, const od_shape_info *info) {
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0 && !info[n->outputs[k]].constant) return false;
    return true;
}

/* Refuses the graph's ops without a backward, naming one node of each. info NULL (before shape
 * inference): only when some op is unknown to the engine, listing all; else nodes that fold
 * to constants are skipped. */
static od_status refuse_untrainable(const od_graph *g, const od_shape_info *info, od_error *err) {
    char list[600] = "";
    int bad = 0;
    bool unknown = false;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        const od_op_desc *op = od_op_find(n->domain, n->op_type);
        if (op && op->backward) continue;
        if (info && node_folded(n, info)) continue;
        unknown |= !op;
        if (strstr(list, n->op_type)) continue;
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s (node \"%s\")", bad++ ? ", " : "", n->op_type, n->name ? n->name : "");
    }
    if (!bad || (!info && !unknown)) return OD_STATUS_OK;
    return od_error_set(err, OD_STATUS_UNSUPPORTED, "cannot train through op%s %s", bad > 1 ? "s" : "", list);
}

od_status od_trainer_create(od_graph *g, const od_trainer_options *opt, od_trainer **out, od_error *err) {
    *out = NULL;
    /* XNNPACK runs the convolutions; OpenBLAS stays on one thread: the kernels shard the batch
     * over our own threads */
    od_status st = od_backend_init(err);
    if (st) return st;
    od_trainer *t = calloc(1, sizeof *t);
    if (!t) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    t->graph = g;
    if (opt) t->opt = *opt;
    if (t->opt.batch <= 0) t->opt.batch = 64;
    if (t->opt.threads <= 0) t->opt.threads = 1;
    /* refuse every op we cannot train, all at once: ops unknown to the engine before shapes
     * are inferred, then every op without a backward outside the constant chains */
    if ((st = refuse_untrainable(g, NULL, err))) goto fail;
    st = od_graph_infer(g, t->opt.batch, &t->shapes, err);
    if (st) goto fail;
    if ((st = refuse_untrainable(g, t->shapes.info, err))) goto fail;
    if (t->opt.threads > 1 && !(t->workers = od_workers_create(t->opt.threads))) {
        st = od_error_set(err, OD_STATUS_BACKEND, "cannot start %d threads", t->opt.threads);
        goto fail;
    }
    int nv = g->n_values;
    t->bufs = calloc(nv ? nv : 1, sizeof *t->bufs);
    t->steps = calloc(g->n_nodes ? g->n_nodes : 1, sizeof *t->steps);
    bool *needs_grad = calloc(nv ? nv : 1, sizeof(bool));
    bool *is_param = calloc(nv ? nv : 1, sizeof(bool));
    if (!t->bufs || !t->steps || !needs_grad || !is_param) {
        free(needs_grad);
        free(is_param);
        goto oom;
    }
    /* parameters: float initializers in trainable slots */
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        const od_op_desc *op = od_op_find(n->domain, n->op_type);
        for (int k = 0; k < n->n_inputs && k < 32; k++) {
            int v = n->inputs[k];
            if (v >= 0 && (op->trained_inputs >> k & 1) && g->values[v].init) {
                if (!is_float_param(&g->values[v])) {
                    char label[256];
                    st = od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: parameter \"%s\" is %s; training needs float",
                                      od_node_label(n, label, sizeof label), g->values[v].name,
                                      od_dtype_name(g->values[v].init->dtype));
                    free(needs_grad);
                    free(is_param);
                    goto fail;
                }
                is_param[v] = needs_grad[v] = true;
            }
        }
    }
    /* which nodes run, and which values need gradients (downstream of a parameter) */
    size_t act_count = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (node_folded(n, t->shapes.info)) continue;
        bool grad = false;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && needs_grad[n->inputs[k]]) grad = true;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0) {
                needs_grad[n->outputs[k]] = grad;
                const od_shape_info *info = &t->shapes.info[n->outputs[k]];
                if (info->dtype != OD_DTYPE_FLOAT) {
                    char label[256];
                    st = od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: output %d is %s; training needs float",
                                      od_node_label(n, label, sizeof label), k, od_dtype_name(info->dtype));
                    free(needs_grad);
                    free(is_param);
                    goto fail;
                }
                act_count += (size_t)od_dims_count(info->rank, info->dims);
            }
    }
    t->in_value = t->out_value = -1;
    for (int i = 0; i < g->n_inputs && t->in_value < 0; i++)
        if (!g->values[g->inputs[i]].init) t->in_value = g->inputs[i];
    if (t->in_value < 0 || g->n_outputs < 1) {
        free(needs_grad);
        free(is_param);
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "the graph needs an input and an output to train");
        goto fail;
    }
    t->out_value = g->outputs[0];
    const od_shape_info *in_info = &t->shapes.info[t->in_value];
    if (in_info->dtype != OD_DTYPE_FLOAT) {
        free(needs_grad);
        free(is_param);
        st = od_error_set(err, OD_STATUS_UNSUPPORTED, "graph input \"%s\" is %s; training needs float",
                          g->values[t->in_value].name, od_dtype_name(in_info->dtype));
        goto fail;
    }
    act_count += (size_t)od_dims_count(in_info->rank, in_info->dims);
    needs_grad[t->out_value] = true; /* the loss writes it */
    size_t grad_count = 0;
    for (int v = 0; v < nv; v++) {
        const od_shape_info *info = &t->shapes.info[v];
        if (needs_grad[v] && !is_param[v] && info->rank >= 0) grad_count += (size_t)od_dims_count(info->rank, info->dims);
    }
    int n_params = 0;
    for (int v = 0; v < nv; v++) n_params += is_param[v];
    t->act = calloc(act_count + 1, sizeof(float));
    t->grads = calloc(grad_count + 1, sizeof(float));
    t->params = calloc(n_params + 1, sizeof *t->params);
    if (!t->act || !t->grads || !t->params) {
        free(needs_grad);
        free(is_param);
        goto oom;
    }
    t->grads_count = grad_count;
    float *a = t->act, *gr = t->grads;
    for (int v = 0; v < nv; v++) {
        const od_shape_info *info = &t->shapes.info[v];
        od_tbuf *b = &t->bufs[v];
        b->rank = info->rank < 0 ? 0 : info->rank;
        memcpy(b->dims, info->dims, sizeof b->dims);
        b->count = od_dims_count(b->rank, b->dims);
        if (info->constant) {
            b->constant = info->constant;
            if (info->constant->dtype == OD_DTYPE_FLOAT) b->data = info->constant->data;
        } else if (info->rank >= 0 && (t->bufs[v].count > 0) &&
                   (v == t->in_value || g->values[v].producer >= 0)) {
            b->data = a;
            a += b->count;
        }
        if (is_param[v]) {
            b->is_param = true;
            b->grad = calloc((size_t)b->count + 1, sizeof(float));
            if (!b->grad) {
                free(needs_grad);
                free(is_param);
                goto oom;
            }
            od_param *p = &t->params[t->n_params++];
            p->name = g->values[v].name;
            p->data = b->data;
            p->grad = b->grad;
            p->count = b->count;
            p->decay = b->rank >= 2;
        } else if (needs_grad[v]) {
            b->grad = gr;
            gr += b->count;
        }
    }
    free(needs_grad);
    free(is_param);
    /* steps */
    size_t io_total = 0;
    for (int i = 0; i < g->n_nodes; i++) io_total += g->nodes[i].n_inputs + g->nodes[i].n_outputs;
    t->step_io = calloc(io_total + 1, sizeof(od_tbuf *));
    if (!t->step_io) goto oom;
    od_tbuf **io = t->step_io;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (node_folded(n, t->shapes.info)) continue;
        od_tstep *s = &t->steps[t->n_steps++];
        s->node = n;
        s->op = od_op_find(n->domain, n->op_type);
        s->opset = g->opset ? g->opset : 17;
        s->n_in = n->n_inputs;
        s->n_out = n->n_outputs;
        s->in = io;
        io += s->n_in;
        s->out = io;
        io += s->n_out;
        for (int k = 0; k < s->n_in; k++) s->in[k] = n->inputs[k] >= 0 ? &t->bufs[n->inputs[k]] : NULL;
        for (int k = 0; k < s->n_out; k++) s->out[k] = n->outputs[k] >= 0 ? &t->bufs[n->outputs[k]] : NULL;
        s->workers = t->workers;
        s->threads = t->opt.threads;
        s->seed = t->opt.seed * 0x9E3779B97F4A7C15ull + (uint64_t)i;
    }
    if ((st = assign_layouts(t, err))) goto fail;
    for (int i = 0; i < t->n_steps; i++) {
        od_tstep *s = &t->steps[i];
        if (s->op->train_prepare && (st = s->op->train_prepare(s, err))) goto fail;
    }
    fuse_relus(t);
    if (t->opt.profile) {
        if (!(t->profile = calloc(t->n_steps + 1, sizeof *t->profile))) goto oom;
        for (int i = 0; i < t->n_steps; i++) {
            t->profile[i].node_name = t->steps[i].node->name;
            t->profile[i].op_type = t->steps[i].node->op_type;
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
    for (int i = 0; i < t->n_steps; i++) {
        const od_op_desc *op = t->steps[i].op;
        if (op && op->train_destroy) op->train_destroy(&t->steps[i]);
        else free(t->steps[i].state);
    }
    if (t->bufs)
        for (int v = 0; v < t->graph->n_values; v++)
            if (t->bufs[v].is_param) free(t->bufs[v].grad);
    free(t->bufs);
    free(t->steps);
    free(t->step_io);
    free(t->act);
    free(t->grads);
    free(t->params);
    free(t->profile);
    free(t->input_plain);
    free(t->output_plain);
    free(t->output_grad_plain);
    od_graph_shapes_clear(&t->shapes);
    od_workers_destroy(t->workers);
    free(t);
}

int64_t od_trainer_batch(const od_trainer *t) { return t->opt.batch; }
float *od_trainer_input(od_trainer *t) { return t->input_plain ? t->input_plain : t->bufs[t->in_value].data; }
int64_t od_trainer_input_count(const od_trainer *t) {
    return t->bufs[t->in_value].count / t->opt.batch;
}
const float *od_trainer_output(const od_trainer *t) {
    return t->output_plain ? t->output_plain : t->bufs[t->out_value].data;
}
int64_t od_trainer_classes(const od_trainer *t) { return t->bufs[t->out_value].count / t->opt.batch; }
float *od_trainer_output_grad(od_trainer *t) {
    return t->output_grad_plain ? t->output_grad_plain : t->bufs[t->out_value].grad;
}

/* [N, C, spatial] <-> channels-last for the staging buffers of a channels-last input or output. */
static void relayout_buf(const od_tbuf *b, const float *src, float *dst, bool to_last) {
    od_relayout(src, dst, b->rank, b->dims, to_last, sizeof(float), false, NULL);
}
int od_trainer_params(od_trainer *t, od_param **params_out) {
    *params_out = t->params;
    return t->n_params;
}

od_status od_trainer_forward(od_trainer *t, bool training, od_error *err) {
    if (t->input_plain) relayout_buf(&t->bufs[t->in_value], t->input_plain, t->bufs[t->in_value].data, true);
    for (int i = 0; i < t->n_steps; i++) {
        od_tstep *s = &t->steps[i];
        if (s->fused_relu && s->n_out && s->out[0]->data == s->in[0]->data) continue; /* done by its producer */
        s->training = training;
        double t0 = t->profile ? od_seconds() : 0;
        od_status st = s->op->forward_train(s, err);
        if (st) return st;
        if (t->profile) t->profile[i].forward_s += od_seconds() - t0;
        s->calls++;
    }
    if (t->output_plain) relayout_buf(&t->bufs[t->out_value], t->bufs[t->out_value].data, t->output_plain, false);
    return OD_STATUS_OK;
}

od_status od_trainer_backward(od_trainer *t, od_error *err) {
    /* zero every gradient but the output's, which the loss just wrote */
    od_tbuf *outb = &t->bufs[t->out_value];
    if (outb->grad >= t->grads && outb->grad < t->grads + t->grads_count + 1) {
        size_t before = (size_t)(outb->grad - t->grads), after = before + (size_t)outb->count;
        memset(t->grads, 0, before * sizeof(float));
        memset(t->grads + after, 0, (t->grads_count - after) * sizeof(float));
    }
    for (int i = 0; i < t->n_params; i++) memset(t->params[i].grad, 0, sizeof(float) * (size_t)t->params[i].count);
    if (t->output_grad_plain) relayout_buf(outb, t->output_grad_plain, outb->grad, true);
    for (int i = t->n_steps - 1; i >= 0; i--) {
        od_tstep *s = &t->steps[i];
        if (s->fused_relu && s->n_out && s->out[0]->data == s->in[0]->data) continue;
        bool any = false;
        for (int k = 0; k < s->n_in; k++)
            if (s->in[k] && s->in[k]->grad) any = true;
        if (!any) continue;
        double t0 = t->profile ? od_seconds() : 0;
        od_status st = s->op->backward(s, err);
        if (st) return st;
        if (t->profile) t->profile[i].backward_s += od_seconds() - t0;
    }
    return OD_STATUS_OK;
}

int od_trainer_profile(const od_trainer *t, const od_train_profile **out) {
    *out = t->profile;
    return t->profile ? t->n_steps : 0;
}

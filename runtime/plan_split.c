/* Micro-batches: a batch run as slices through per-thread plans of a smaller batch.
 *
 * Why: at batch 64 a conv net's activations (MBs each) fall out of the caches, and the run
 * becomes a stream through memory; slices of a few samples go through the whole network while
 * their activations stay in cache. With threads, each thread has its own plan and takes the
 * next slice when it is free, so no step waits for a slow or descheduled worker, and workers
 * never synchronise inside the network.
 *
 * Applies only when every sample is computed apart from the others: the ops are all known to
 * work per sample (and not along the batch axis), and every activation's shape at the full
 * batch is its shape at the micro-batch with dim 0 scaled. Otherwise the plan is made whole. */
#include "plan_internal.h"
#include "workers.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_BYTES (256 * 1024) /* the largest activation of a slice should fit about here */

typedef struct plan_split {
    int threads;
    int64_t batch, mb, n_chunks, tail; /* n_chunks slices of mb, the last of tail (0: none) */
    od_plan **full, **last;            /* per thread: plans at mb and at tail */
    int n_in, n_out;
    size_t *in_sample, *out_sample;    /* bytes per sample */
    void **in_data, **out_data;        /* the whole batch, owned */
    od_workers *workers;
    atomic_int failed;
    od_error first_err;
} plan_split;

/* Ops known to compute each sample apart from the others: their descriptors' fact. */
static bool per_sample_op(const od_node *n, const od_graph_shapes *s) {
    const od_op_desc *op = od_op_find(n->domain, n->op_type);
    int rank = n->n_inputs > 0 && n->inputs[0] >= 0 ? s->info[n->inputs[0]].rank : 0;
    return op && op->per_sample && op->per_sample(n, rank);
}

/* Every activation at batch B is its shape at mb with dim 0 scaled by B / mb. */
static bool shapes_scale(const od_graph *g, const od_graph_shapes *big, const od_graph_shapes *small, int64_t B,
                         int64_t mb) {
    for (int v = 0; v < g->n_values; v++) {
        const od_shape_info *a = &big->info[v], *b = &small->info[v];
        if (a->constant || b->constant) continue;
        if (a->rank != b->rank || a->rank < 1 || a->dims[0] * mb != b->dims[0] * B) return false;
        for (int d = 1; d < a->rank; d++)
            if (a->dims[d] != b->dims[d]) return false;
    }
    return true;
}

static void run_chunk(void *ctx, int who, int64_t chunk) {
    plan_split *s = ctx;
    bool tail = s->tail && chunk == s->n_chunks - 1;
    od_plan *p = tail ? s->last[who] : s->full[who];
    int64_t start = chunk * s->mb, count = tail ? s->tail : s->mb;
    for (int i = 0; i < s->n_in; i++)
        memcpy(p->inputs[i].data, (char *)s->in_data[i] + start * s->in_sample[i], (size_t)count * s->in_sample[i]);
    od_error err = {0};
    if (od_plan_run(p, &err)) {
        if (atomic_exchange(&s->failed, 1) == 0) s->first_err = err;
        return;
    }
    for (int i = 0; i < s->n_out; i++)
        memcpy((char *)s->out_data[i] + start * s->out_sample[i], p->outputs[i].data, (size_t)count * s->out_sample[i]);
}

od_status od_plan_split_run(plan_split *s, od_error *err) {
    atomic_store(&s->failed, 0);
    od_workers_run(s->workers, s->n_chunks, run_chunk, s);
    if (atomic_load(&s->failed)) {
        if (err) *err = s->first_err;
        return s->first_err.status ? s->first_err.status : OD_STATUS_BACKEND;
    }
    return OD_STATUS_OK;
}

const od_plan *od_plan_split_first(const plan_split *s) { return s->full[0]; }

void od_plan_split_destroy(plan_split *s) {
    if (!s) return;
    od_workers_destroy(s->workers);
    for (int t = 0; t < s->threads; t++) {
        if (s->full) od_plan_destroy(s->full[t]);
        if (s->last) od_plan_destroy(s->last[t]);
    }
    for (int i = 0; i < s->n_in && s->in_data; i++) free(s->in_data[i]);
    for (int i = 0; i < s->n_out && s->out_data; i++) free(s->out_data[i]);
    free(s->full);
    free(s->last);
    free(s->in_sample);
    free(s->out_sample);
    free(s->in_data);
    free(s->out_data);
    free(s);
}

/* The micro-batch: activations of about CACHE_BYTES, and a slice per thread at least; 0 when
 * slicing costs more memory traffic than it saves. Each slice streams all the weights (W bytes)
 * through the caches once, where a whole batch streams them once in all; in exchange a slice's
 * activations stay in cache, where the whole batch's go through memory, about A bytes per sample
 * (every activation of one sample). Slicing pays when W < mb x A: a slice saves more activation
 * traffic than its pass over the weights costs, and weights that stay in the shared cache cost
 * less to stream again than activations do, so slicing pays up to W < 2 x mb x A. Measured (2
 * threads, batch 8 and 64): mobilenet_v2 at 32x32 (W 9 MB, A x mb 2.6 MB) ran 1.8x faster whole,
 * resnet18 at 224x224 (W 47 MB, A 17 MB) 10% faster whole on XNNPACK's convolutions but 5-7%
 * faster in slices of 1 on conv_wide.c's, mobilenet_v2 and efficientnet_b0 at 224x224 (A 3-4x W)
 * as fast or faster sliced, the bundled cnn (W 1.9 MB, A x 2 0.66 MB) 10-25%
 * faster in slices of 2 (6.8 against 7.6 ms at batch 64, 0.85 against 1.10 at batch 8), an MLP
 * (W 1.3 MB, A 9 KB) 2-4x slower in slices of 2 to 8. */
static int64_t choose_micro_batch(const od_graph *g, const od_graph_shapes *one, int64_t batch, int threads) {
    size_t largest = 1, acts = 0, weights = 0;
    for (int v = 0; v < g->n_values; v++) {
        if (g->values[v].init) weights += g->values[v].init->nbytes;
        const od_shape_info *a = &one->info[v];
        if (a->constant || a->rank < 1) continue;
        int64_t n = od_dims_count(a->rank, a->dims);
        size_t bytes = n > 0 ? (size_t)n * od_dtype_size(a->dtype) : 0;
        if (bytes > largest) largest = bytes;
        acts += bytes;
    }
    int64_t mb = (int64_t)(CACHE_BYTES / largest);
    if (mb < 1) mb = 1;
    if (threads > 1 && mb > (batch + threads - 1) / threads) mb = (batch + threads - 1) / threads;
    return weights < 2 * (size_t)mb * acts ? mb : 0;
}

bool od_plan_split(od_plan *p, const od_graph *g, const od_plan_options *opt, od_error *err) {
    int64_t batch = opt && opt->batch > 0 ? opt->batch : 1;
    int threads = opt && opt->threads > 0 ? opt->threads : 1;
    if (batch < 2) return false;
    od_graph_shapes one = {0}, big = {0}, small = {0};
    od_error ignore = {0};
    bool ok = false;
    if (od_graph_infer(g, 1, &one, &ignore) || od_graph_infer(g, batch, &big, &ignore)) goto out;
    int64_t mb = choose_micro_batch(g, &one, batch, threads);
    if (mb < 1 || mb >= batch) goto out;
    for (int i = 0; i < g->n_nodes; i++)
        if (!per_sample_op(&g->nodes[i], &big)) goto out;
    /* every graph input and output carries the batch in dim 0 */
    for (int i = 0; i < g->n_inputs; i++) {
        const od_shape_info *a = &big.info[g->inputs[i]];
        if (!g->values[g->inputs[i]].init && (a->rank < 1 || a->dims[0] != batch)) goto out;
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const od_shape_info *a = &big.info[g->outputs[i]];
        if (a->constant || a->rank < 1 || a->dims[0] != batch) goto out;
    }
    if (od_graph_infer(g, mb, &small, &ignore) || !shapes_scale(g, &big, &small, batch, mb) ||
        (batch % mb && (od_graph_shapes_clear(&small), od_graph_infer(g, batch % mb, &small, &ignore))))
        goto out;
    plan_split *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    p->split = s;
    s->threads = threads;
    s->batch = batch;
    s->mb = mb;
    s->tail = batch % mb;
    s->n_chunks = batch / mb + (s->tail ? 1 : 0);
    s->full = calloc((size_t)threads, sizeof *s->full);
    s->last = calloc((size_t)threads, sizeof *s->last);
    if (!s->full || !s->last) goto oom;
    od_plan_options inner = {.batch = mb, .threads = 1, .profile = opt->profile,
                           .no_fusion = opt->no_fusion, .no_qs8 = opt->no_qs8};
    for (int t = 0; t < threads; t++) {
        if (od_plan_create_whole(g, &inner, &s->full[t], &ignore)) goto out;
        p->arena_bytes += od_plan_arena_bytes(s->full[t]);
        if (s->tail) {
            od_plan_options last = inner;
            last.batch = s->tail;
            if (od_plan_create_whole(g, &last, &s->last[t], &ignore)) goto out;
            p->arena_bytes += od_plan_arena_bytes(s->last[t]);
        }
    }
    const od_plan *f = s->full[0];
    s->n_in = p->n_in = f->n_in;
    s->n_out = p->n_out = f->n_out;
    p->inputs = calloc((size_t)s->n_in + 1, sizeof *p->inputs);
    p->outputs = calloc((size_t)s->n_out + 1, sizeof *p->outputs);
    s->in_sample = calloc((size_t)s->n_in + 1, sizeof(size_t));
    s->out_sample = calloc((size_t)s->n_out + 1, sizeof(size_t));
    s->in_data = calloc((size_t)s->n_in + 1, sizeof(void *));
    s->out_data = calloc((size_t)s->n_out + 1, sizeof(void *));
    if (!p->inputs || !p->outputs || !s->in_sample || !s->out_sample || !s->in_data || !s->out_data) goto oom;
    for (int io = 0; io < 2; io++) {
        int n = io ? s->n_out : s->n_in;
        for (int i = 0; i < n; i++) {
            const od_plan_io *src = io ? &f->outputs[i] : &f->inputs[i];
            od_plan_io *dst = io ? &p->outputs[i] : &p->inputs[i];
            size_t *sample = io ? &s->out_sample[i] : &s->in_sample[i];
            void **data = io ? &s->out_data[i] : &s->in_data[i];
            *dst = *src;
            if (src->rank < 1 || src->dims[0] != mb) goto out; /* not batched: keep it whole */
            dst->dims[0] = batch;
            *sample = src->nbytes / (size_t)mb;
            dst->nbytes = *sample * (size_t)batch;
            if (!(*data = calloc(1, dst->nbytes + 64))) goto oom;
            dst->data = *data;
        }
    }
    if (threads > 1 && !(s->workers = od_workers_create(threads))) goto out;
    p->graph = g;
    p->opt = *opt;
    ok = true;
    goto out;
oom:
    od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory while planning");
out:
    if (!ok && p->split) {
        od_plan_split_destroy(p->split);
        p->split = NULL;
        free(p->inputs);
        free(p->outputs);
        p->inputs = p->outputs = NULL;
        p->arena_bytes = 0;
    }
    od_graph_shapes_clear(&one);
    od_graph_shapes_clear(&big);
    od_graph_shapes_clear(&small);
    return ok;
}

/* The distillation loop: teacher logits cached once, noise drawn per batch on top, the
 * student trained on them, the epoch kept chosen on a held-out split; plus evaluation. */
#include "distill_dp.h"
#include "distill_internal.h"
#include "od_onnx.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void od_distill_options_default(od_distill_options *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 5;
    o->batch = 64;
    o->threads = 2;
    o->seed = 1;
    o->loss = OD_LOSS_L2;
    o->temperature = 4.0f;
    o->sigma = 0.1f;
    o->alpha = 0.5f;
    o->optim.kind = OD_OPTIM_ADAM;
    o->lr = 2e-3f;
    o->lr_labels = 2e-3f;
    o->sched = OD_SCHED_COSINE;
    o->warmup_epochs = 0.3f;
    o->step_epochs = 10;
    o->step_gamma = 0.1f;
    o->val_split = 0.05f;
}

void od_distill_result_clear(od_distill_result *r) {
    free(r->epochs);
    free(r->search.trials);
    memset(r, 0, sizeof *r);
}

int64_t od_argmax(const float *row, int64_t classes) {
    int64_t best = 0;
    for (int64_t j = 1; j < classes; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

double od_accuracy(const float *logits, const int32_t *labels, int64_t n, int64_t classes) {
    if (!labels || n <= 0) return -1;
    int64_t ok = 0;
    for (int64_t i = 0; i < n; i++) ok += od_argmax(logits + i * classes, classes) == labels[i];
    return (double)ok / (double)n;
}

double od_agreement(const float *a, const float *b, int64_t n, int64_t classes) {
    if (n <= 0) return -1;
    int64_t ok = 0;
    for (int64_t i = 0; i < n; i++) ok += od_argmax(a + i * classes, classes) == od_argmax(b + i * classes, classes);
    return (double)ok / (double)n;
}

/* The first graph input that is not an initializer. */
static const od_value *model_input(const od_model *m) {
    for (int i = 0; i < m->graph.n_inputs; i++)
        if (!m->graph.values[m->graph.inputs[i]].init) return &m->graph.values[m->graph.inputs[i]];
    return NULL;
}

static od_status check_fits(const od_model *m, const char *what, const od_dataset *d, od_error *err) {
    const od_value *in = model_input(m);
    if (!in || in->rank < 1) return od_error_set(err, OD_STATUS_INVALID_MODEL, "the %s has no input with a shape", what);
    int64_t dims[OD_MAX_RANK];
    for (int k = 0; k < in->rank; k++) dims[k] = in->dims[k].value;
    od_status st = od_dataset_check_input(d, in->rank, dims, err);
    if (st) od_error_prefix(err, "%s input \"%s\": ", what, in->name);
    return st;
}

/* NaN or infinity in a model's float initializers: an error naming the first such tensor.
 * XNNPACK's max and clamp can swallow a NaN, so the logits alone do not reveal them. */
static od_status check_finite_weights(const od_model *m, const char *what, od_error *err) {
    const od_graph *g = &m->graph;
    for (int i = 0; i < g->n_inits; i++) {
        const od_tensor *t = g->values[g->inits[i]].init;
        if (!t || t->dtype != OD_DTYPE_FLOAT) continue;
        const float *x = t->data;
        int64_t n = (int64_t)(t->nbytes / sizeof(float));
        for (int64_t k = 0; k < n; k++)
            if (!isfinite(x[k]))
                return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                    "%s: initializer \"%s\" holds %s at element %lld; nothing written", what,
                                    t->name ? t->name : "", isnan(x[k]) ? "NaN" : "infinity", (long long)k);
    }
    return OD_STATUS_OK;
}

/* Labels the teacher cannot predict: the dataset is not the teacher's. */
static od_status check_labels(const od_dataset *d, int64_t n, const char *split, int64_t classes, od_error *err) {
    od_status st = od_dataset_check_labels(d, n, classes, err);
    if (st) od_error_prefix(err, "%s ", split);
    return st;
}

static od_status check_finite_logits(const float *z, int64_t n, int64_t classes, const char *split, od_error *err) {
    for (int64_t i = 0; i < n * classes; i++)
        if (!isfinite(z[i]))
            return od_error_set(err, OD_STATUS_INVALID_MODEL, "teacher: its logits for %s sample %lld are %s; nothing written", split,
                                (long long)(i / classes), isnan(z[i]) ? "NaN" : "infinite");
    return OD_STATUS_OK;
}

#define LOGITS_ARENA_BYTES ((size_t)64 << 20) /* activations of one logits run, at most about */

/* Logits of samples idx[0..n) of d (idx NULL: 0..n-1), with progress after every run. */
typedef struct logits_progress {
    const od_distill_options *opt;
    int64_t done, total; /* over all the calls of one phase */
} logits_progress;

static od_status model_logits(const od_model *m, const od_dataset *d, const int64_t *sel, int64_t n, const od_preprocess *pre,
                              int threads, logits_progress *lp, float **logits_out, int64_t *classes_out, od_error *err) {
    *logits_out = NULL;
    /* Large runs: each run ends in a wait for every thread, and on a shared machine a wait can
     * cost a time slice. Evaluating a small student on 10,000 samples beside another 2-thread
     * job took 2.3 s in runs of 256 and 0.7 s in runs of 2048 (0.2 s idle, either way). About
     * 8 MiB of input a run, 64 to 2048 samples, fewer when their activations exceed the cap below. */
    int64_t per = od_dataset_sample_size(d) * (int64_t)sizeof(float);
    int64_t B = per > 0 ? (8 << 20) / per : 2048;
    B = B < 64 ? 64 : B > 2048 ? 2048 : B;
    int64_t batch = n < B ? (n > 0 ? n : 1) : B;
    /* A plan's activations grow with its batch (2048 samples of the bundled CNN teacher hold
     * 411 MiB) and are touched when it is made: a plan of a few samples measures them per
     * sample first, and runs are cut to what fits LOGITS_ARENA_BYTES. */
    int64_t probe = batch < 8 ? batch : 8;
    od_plan *plan = NULL;
    od_status st = od_plan_create(&m->graph, &(od_plan_options){.batch = probe, .threads = threads}, &plan, err);
    if (st) return st;
    double per_sample = (double)od_plan_arena_bytes(plan) / (double)probe;
    if (per_sample * (double)batch > (double)LOGITS_ARENA_BYTES) {
        int64_t fit = (int64_t)((double)LOGITS_ARENA_BYTES / per_sample);
        batch = fit > probe ? fit : probe;
    }
    if (batch != probe) {
        od_plan_destroy(plan);
        plan = NULL;
        if ((st = od_plan_create(&m->graph, &(od_plan_options){.batch = batch, .threads = threads}, &plan, err))) return st;
    }
    const od_plan_io *in = od_plan_input(plan, 0), *out = od_plan_output(plan, 0);
    int64_t sample = od_dataset_sample_size(d);
    if (!in || !out || in->dtype != OD_DTYPE_FLOAT || out->dtype != OD_DTYPE_FLOAT ||
        (int64_t)(in->nbytes / sizeof(float)) != batch * sample || out->rank != 2) {
        od_plan_destroy(plan);
        return od_error_set(err, OD_STATUS_SHAPE, "the model's input does not take %lld-element samples, or its output is not [N, classes]",
                            (long long)sample);
    }
    int64_t classes = out->dims[1];
    float *logits = malloc(sizeof(float) * (size_t)(n * classes) + 1);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)batch);
    if (!logits || !idx) {
        free(logits);
        free(idx);
        od_plan_destroy(plan);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for logits");
    }
    for (int64_t start = 0; start < n; start += batch) {
        int64_t count = n - start < batch ? n - start : batch;
        for (int64_t i = 0; i < batch; i++) {
            int64_t k = start + (i < count ? i : 0); /* pad with a repeat */
            idx[i] = sel ? sel[k] : k;
        }
        od_dataset_fill(d, pre, idx, batch, in->data);
        if ((st = od_plan_run(plan, err))) break;
        memcpy(logits + start * classes, out->data, sizeof(float) * (size_t)(count * classes));
        if (lp && lp->opt->progress) {
            lp->done += count;
            od_distill_progress p = {.logits_done = lp->done, .logits_total = lp->total};
            lp->opt->progress(&p, lp->opt->progress_ctx);
        }
    }
    free(idx);
    od_plan_destroy(plan);
    if (st) {
        free(logits);
        return st;
    }
    *logits_out = logits;
    *classes_out = classes;
    return OD_STATUS_OK;
}

od_status od_model_logits(const od_model *m, const od_dataset *d, const od_preprocess *pre, int threads,
                          float **logits_out, int64_t *classes_out, od_error *err) {
    return model_logits(m, d, NULL, d->n, pre, threads, NULL, logits_out, classes_out, err);
}

/* ---- data-parallel hooks (lib/distill_dp.c holds the steps) ------------------------------------ */

/* Teacher logits of d, each rank computing those of its shards (contiguous runs of samples)
 * and gathering the rest. One process without --deterministic: od_model_logits as it is. */
static od_status sharded_logits(const od_model *m, const od_dataset *d, int64_t n, const od_preprocess *pre,
                                const od_distill_options *opt, logits_progress *lp, float **logits_out, int64_t *classes_out,
                                od_error *err) {
    int ranks = od_comm_size(opt->comm), shards = od_dp_slices(opt->comm, opt->deterministic);
    if (shards == 1 || n < shards) return model_logits(m, d, NULL, n, pre, opt->threads, lp, logits_out, classes_out, err);
    *logits_out = NULL;
    int per_rank = shards / ranks, rank = od_comm_rank(opt->comm);
    int64_t classes = 0, counts[256], *sel = NULL;
    if (ranks > 256) return od_error_set(err, OD_STATUS_UNSUPPORTED, "distill: at most 256 ranks");
    float *mine = NULL, *all = NULL;
    int64_t lo = n * (rank * per_rank) / shards, hi = n * ((rank + 1) * per_rank) / shards;
    od_status st = OD_STATUS_OK;
    if (!(sel = malloc(sizeof(int64_t) * (size_t)(hi - lo) + 1))) goto oom;
    for (int k = rank * per_rank; k < (rank + 1) * per_rank; k++) {
        int64_t a = n * k / shards, b = n * (k + 1) / shards;
        for (int64_t i = a; i < b; i++) sel[i - a] = i;
        float *z = NULL;
        if ((st = model_logits(m, d, sel, b - a, pre, opt->threads, lp, &z, &classes, err))) goto done;
        if (!mine && !(mine = malloc(sizeof(float) * (size_t)((hi - lo) * classes) + 1))) {
            free(z);
            goto oom;
        }
        memcpy(mine + (a - lo) * classes, z, sizeof(float) * (size_t)((b - a) * classes));
        free(z);
    }
    for (int r = 0; r < ranks; r++)
        counts[r] = (n * ((r + 1) * per_rank) / shards - n * (r * per_rank) / shards) * classes;
    if (!(all = malloc(sizeof(float) * (size_t)(n * classes) + 1))) goto oom;
    if ((st = od_comm_allgather(opt->comm, mine, counts, all, err))) goto done;
    *logits_out = all;
    *classes_out = classes;
    all = NULL;
    goto done;
oom:
    st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for logits");
done:
    free(sel);
    free(mine);
    free(all);
    return st;
}

/* The ranks agree: true on every rank when any rank says true. */
static bool any_rank(od_comm *comm, bool mine) {
    float v = mine ? 1.0f : 0.0f;
    od_error ignored = {0};
    if (od_comm_size(comm) > 1 && od_comm_allreduce_sum(comm, &v, 1, &ignored)) return true;
    return v > 0;
}

/* ---- the teachers' logits, computed once ---------------------------------------------------- */

static const od_value *model_output(const od_model *m) {
    return m->graph.n_outputs > 0 ? &m->graph.values[m->graph.outputs[0]] : NULL;
}

static bool same_shape(const od_value *a, const od_value *b) {
    if (!a || !b || a->rank != b->rank) return false;
    for (int k = 0; k < a->rank; k++)
        if (a->dims[k].value > 0 && b->dims[k].value > 0 && a->dims[k].value != b->dims[k].value) return false;
    return true;
}

static void shape_text(const od_value *v, char *buf, size_t size) {
    if (!v || v->rank < 0) {
        snprintf(buf, size, "undeclared");
        return;
    }
    int o = snprintf(buf, size, "[");
    for (int k = 0; k < v->rank && (size_t)o < size; k++) {
        if (v->dims[k].value > 0) o += snprintf(buf + o, size - (size_t)o, "%s%lld", k ? "," : "", (long long)v->dims[k].value);
        else o += snprintf(buf + o, size - (size_t)o, "%s%s", k ? "," : "", v->dims[k].param ? v->dims[k].param : "?");
    }
    if ((size_t)o < size) snprintf(buf + o, size - (size_t)o, "]");
}

od_status od_teachers_check(const od_model *first, const od_model *other, od_error *err) {
    const od_value *pairs[2][2] = {{model_input(first), model_input(other)}, {model_output(first), model_output(other)}};
    for (int k = 0; k < 2; k++) {
        if (same_shape(pairs[k][0], pairs[k][1])) continue;
        char a[128], b[128];
        shape_text(pairs[k][1], b, sizeof b);
        shape_text(pairs[k][0], a, sizeof a);
        return od_error_set(err, OD_STATUS_SHAPE, "its %s is %s, the first teacher's %s: teachers must have the same input and output shapes",
                            k ? "output" : "input", b, a);
    }
    return OD_STATUS_OK;
}


void distill_cache_clear(distill_cache *c) {
    free(c->train);
    free(c->each);
    free(c->test);
    memset(c, 0, sizeof *c);
}

/* dst = src (first teacher) or dst += src, in double so that the mean of identical teachers is
 * the same bits as one teacher's logits */
static void cache_add(double *sum, float *dst, const float *src, int64_t count, int k) {
    if (sum) for (int64_t i = 0; i < count; i++) sum[i] = (k ? sum[i] : 0) + src[i];
    else memcpy(dst, src, sizeof(float) * (size_t)count);
}

static od_status cache_build(const od_model *teacher, const od_distill_options *opt, const od_dataset *train, int64_t n_all,
                             const od_dataset *test, const od_preprocess *pre, distill_cache *c, od_error *err) {
    memset(c, 0, sizeof *c);
    const od_dataset *unl = opt->unlabeled;
    int nt = 1 + opt->n_more_teachers;
    int64_t n_u = unl ? unl->n : 0, n = n_all + n_u, classes = 0;
    logits_progress lp = {opt, 0, nt * (n + test->n)};
    double *sum = NULL, *tsum = NULL;
    float *a = NULL, *b = NULL, *t = NULL;
    od_status st = OD_STATUS_OK;
    for (int k = 0; k < nt; k++) {
        const od_model *m = k ? opt->more_teachers[k - 1] : teacher;
        int64_t ca = 0, cb = 0, ct = 0;
        char who[32];
        snprintf(who, sizeof who, nt > 1 ? "teacher %d: " : "teacher: ", k + 1);
        if ((st = sharded_logits(m, train, n_all, pre, opt, &lp, &a, &ca, err))) {
            od_error_prefix(err, "%s", who);
            goto done;
        }
        if ((st = check_finite_logits(a, n_all, ca, "training", err))) goto done;
        if (k == 0) {
            classes = c->classes = ca;
            c->n = n;
            if ((st = check_labels(train, n_all, "training", classes, err))) goto done;
            if (!(c->train = malloc(sizeof(float) * (size_t)(n * classes) + 1))) goto oom;
            if (test->n > 0 && !(c->test = malloc(sizeof(float) * (size_t)(test->n * classes) + 1))) goto oom;
            if (nt > 1 && (!(sum = malloc(sizeof(double) * (size_t)(n * classes) + 1)) ||
                           !(tsum = malloc(sizeof(double) * (size_t)(test->n * classes) + 1))))
                goto oom;
            if (nt > 1 && opt->teachers == OD_TEACHERS_DRAW) {
                if (!(c->each = malloc(sizeof(float) * (size_t)(nt * n * classes) + 1))) goto oom;
                c->n_each = nt;
            }
        } else if (ca != classes) {
            st = od_error_set(err, OD_STATUS_SHAPE, "teacher %d gives %lld classes, teacher 1 %lld", k + 1, (long long)ca, (long long)classes);
            goto done;
        }
        cache_add(sum, c->train, a, n_all * classes, k);
        if (c->each) memcpy(c->each + (size_t)(k * n * classes), a, sizeof(float) * (size_t)(n_all * classes));
        if (n_u > 0) {
            if ((st = sharded_logits(m, unl, n_u, pre, opt, &lp, &b, &cb, err))) {
                od_error_prefix(err, "%sunlabelled data: ", who);
                goto done;
            }
            if ((st = check_finite_logits(b, n_u, cb, "unlabelled", err))) goto done;
            cache_add(sum ? sum + n_all * classes : NULL, c->train + n_all * classes, b, n_u * classes, k);
            if (c->each) memcpy(c->each + (size_t)((k * n + n_all) * classes), b, sizeof(float) * (size_t)(n_u * classes));
        }
        if (test->n > 0) {
            if ((st = sharded_logits(m, test, test->n, pre, opt, &lp, &t, &ct, err))) goto done;
            if ((st = check_finite_logits(t, test->n, ct, "test", err)) || (k == 0 && (st = check_labels(test, test->n, "test", classes, err))))
                goto done;
            cache_add(tsum, c->test, t, test->n * classes, k);
        }
        free(a), free(b), free(t);
        a = b = t = NULL;
    }
    if (sum) {
        for (int64_t i = 0; i < n * classes; i++) c->train[i] = (float)(sum[i] / nt);
        for (int64_t i = 0; i < test->n * classes; i++) c->test[i] = (float)(tsum[i] / nt);
    }
    goto done;
oom:
    st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for the teachers' logits");
done:
    free(a), free(b), free(t), free(sum), free(tsum);
    if (st) distill_cache_clear(c);
    return st;
}

/* Fills n samples idx[] of the training set: labelled below n_all, unlabelled from n_all. */
static void fill_samples(const od_dataset *train, const od_dataset *unl, int64_t n_all, const od_preprocess *pre, const int64_t *idx,
                         int64_t n, float *input) {
    if (!unl) {
        od_dataset_fill(train, pre, idx, n, input);
        return;
    }
    int64_t per = od_dataset_sample_size(train), shifted[256];
    for (int64_t i = 0; i < n;) { /* runs of samples from one source */
        bool u = idx[i] >= n_all;
        int64_t j = i + 1;
        while (j < n && (idx[j] >= n_all) == u && j - i < 256) j++;
        if (!u) od_dataset_fill(train, pre, idx + i, j - i, input + i * per);
        else {
            for (int64_t k = i; k < j; k++) shifted[k - i] = idx[k] - n_all;
            od_dataset_fill(unl, pre, shifted, j - i, input + i * per);
        }
        i = j;
    }
}

/* ---- a training set held in shards (od_dataset.held: several ranks) ------------------------------
 * Rank r holds samples [n_all*r/N, n_all*(r+1)/N) (lib/dataset.c's od_shard_range: the loaders
 * keep no others); the samples another rank needs travel as raw bytes or floats (a global batch)
 * or as logits (validation). */

static bool sharded(const od_dataset *d) {
    return d->held > 0;
}
/* A sample's stored bytes (uint8 or float) and where sample i lies: the one place that knows. */
static int64_t sample_bytes(const od_dataset *d) {
    return od_dataset_sample_size(d) * (d->u8 ? 1 : (int64_t)sizeof(float));
}
static const uint8_t *sample_at(const od_dataset *d, int64_t i) {
    const uint8_t *base = d->u8 ? d->u8 : (const uint8_t *)d->f32;
    return base + (i - d->first) * sample_bytes(d);
}
static int64_t shard_lo(int64_t n_all, int r, int ranks) {
    return n_all * r / ranks;
}
static int owner_of(int64_t i, int64_t n_all, int ranks) {
    int r = (int)(i * ranks / (n_all > 0 ? n_all : 1));
    while (r + 1 < ranks && shard_lo(n_all, r + 1, ranks) <= i) r++;
    while (r > 0 && shard_lo(n_all, r, ranks) > i) r--;
    return r;
}

/* Every rank gets the raw samples idx[0..n) into rows ([n, sample] bytes, position order): each
 * gives those it holds, in position order, and the gathered runs are put back in place. */
static od_status gather_rows(od_comm *comm, const od_dataset *d, int64_t n_all, const int64_t *idx, int64_t n,
                             uint8_t *rows, od_error *err) {
    int ranks = od_comm_size(comm), me = od_comm_rank(comm);
    int64_t ss = sample_bytes(d), counts[256] = {0}, k = 0;
    if (ranks > 256) return od_error_set(err, OD_STATUS_UNSUPPORTED, "distill: a sharded data set on at most 256 ranks");
    uint8_t *buf = malloc((size_t)(2 * n * ss) + 1);
    if (!buf) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for a batch");
    uint8_t *mine = buf + n * ss;
    for (int64_t p = 0; p < n; p++) {
        int o = owner_of(idx[p], n_all, ranks);
        counts[o] += ss;
        if (o == me) memcpy(mine + (k++) * ss, sample_at(d, idx[p]), (size_t)ss);
    }
    od_status st = od_comm_allgather_bytes(comm, mine, counts, buf, err);
    for (int r = 0, q = 0; !st && r < ranks; r++)
        for (int64_t p = 0; p < n; p++)
            if (owner_of(idx[p], n_all, ranks) == r) memcpy(rows + p * ss, buf + (q++) * ss, (size_t)ss);
    free(buf);
    return st;
}

/* The loss of n samples of the global batch from position first: the teacher's (noisy) targets,
 * and cross-entropy on labels when asked for. Unlabelled samples (index n_labelled and above)
 * get the logit term alone, also with --loss labels. */
typedef struct batch_ctx {
    const od_distill_options *opt;
    const od_dataset *train;
    const od_preprocess *pre;
    const int64_t *bi; /* the global batch's sample indices */
    const float *targets;
    const float *noise;   /* --noise-on student: per-logit factors (1 + xi) of the student's output; NULL: none */
    float *noisy;         /* scratch for the student's perturbed output, as large as targets */
    int64_t classes;
    int64_t n_labelled;   /* samples from here on are opt->unlabeled's */
    const od_dataset *staged; /* a sharded training set: the global batch's samples, gathered (rows in position order) */
    const int64_t *positions; /* 0, 1, ..: the staged rows */
} batch_ctx;

static void batch_fill(void *ctx, float *input, int64_t first, int64_t n) {
    const batch_ctx *c = ctx;
    if (c->staged) {
        od_dataset_fill(c->staged, c->pre, c->positions + first, n, input);
        return;
    }
    fill_samples(c->train, c->opt->unlabeled, c->n_labelled, c->pre, c->bi + first, n, input);
}

static float batch_loss(void *ctx, const float *out, int64_t first, int64_t n, float *grad) {
    const batch_ctx *c = ctx;
    const od_distill_options *opt = c->opt;
    int64_t C = c->classes, nc = n * C;
    const float *targets = c->targets + first * C;
    const int64_t *bi = c->bi + first;
    int64_t n_unl = 0;
    if (opt->unlabeled)
        for (int64_t i = 0; i < n; i++) n_unl += bi[i] >= c->n_labelled;
    float loss = 0;
    const float *z = out; /* what the logit term sees: the output, or the output times the noise */
    if (c->noise) {
        const float *f = c->noise + first * C;
        float *zn = c->noisy + first * C;
        for (int64_t k = 0; k < nc; k++) zn[k] = out[k] * f[k];
        z = zn;
    }
    if (opt->loss == OD_LOSS_KD) loss = od_loss_kd(z, targets, n, C, opt->temperature, grad);
    else if (opt->loss == OD_LOSS_L2) loss = od_loss_l2(z, targets, n, C, grad);
    else {
        memset(grad, 0, sizeof(float) * (size_t)nc);
        /* labels alone: the unlabelled samples learn the logits, each weighing 1/n as in a batch mean */
        for (int64_t i = 0; n_unl && i < n; i++) {
            if (bi[i] < c->n_labelled) continue;
            loss += od_loss_l2(z + i * C, targets + i * C, 1, C, grad + i * C) / (float)n;
            for (int64_t j = 0; j < C; j++) grad[i * C + j] /= (float)n;
        }
    }
    if (z != out) /* d(out * f)/d(out) = f */
        for (int64_t k = 0; k < nc; k++) grad[k] *= c->noise[first * C + k];
    float label_weight = opt->loss == OD_LOSS_LABELS && opt->label_weight <= 0 ? 1.0f : opt->label_weight;
    if (label_weight > 0 && c->train->labels) {
        int32_t lab[4096]; /* -1: unlabelled, no term (still a 1/n share of the batch mean) */
        int64_t nb = n < 4096 ? n : 4096;
        for (int64_t i = 0; i < nb; i++) lab[i] = bi[i] < c->n_labelled ? c->train->labels[bi[i]] : -1;
        loss += od_loss_ce_add(out, lab, nb, C, label_weight, grad);
    }
    return loss;
}

/* ---- checkpoints: everything that decides the rest of the run ------------------------------ */

/* A checkpoint: CKPT_MAGIC, the SHA-256 (hex) of the rest, then the body: a ckpt_header, the
 * run's settings as text (run_settings), the weights, the best weights, the optimiser state and
 * the per-epoch stats. The checksum catches a corrupted or edited file; the settings let
 * --resume name every option that differs. */
#define CKPT_MAGIC "ODCKPT02"
#define CKPT_SUM 64 /* hex digits */

typedef struct ckpt_header {
    uint64_t settings_len;
    int32_t epochs_done, best_epoch;
    double best_score;
    od_rng rng;
    int64_t optim_step;
    uint64_t n_floats; /* weights + best weights + optimiser state */
} ckpt_header;

/* Every float initializer of the student: trained weights and BN running statistics. */
typedef struct weight_set {
    int n;
    float **data;
    int64_t *count;
    int64_t total;
} weight_set;

static od_status weights_collect(od_model *m, weight_set *w, od_error *err) {
    memset(w, 0, sizeof *w);
    od_graph *g = &m->graph;
    w->data = calloc(g->n_inits + 1, sizeof(float *));
    w->count = calloc(g->n_inits + 1, sizeof(int64_t));
    if (!w->data || !w->count) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < g->n_inits; i++) {
        od_tensor *t = g->values[g->inits[i]].init;
        if (!t || t->dtype != OD_DTYPE_FLOAT) continue;
        w->data[w->n] = t->data;
        w->count[w->n] = od_tensor_count(t);
        w->total += w->count[w->n++];
    }
    return OD_STATUS_OK;
}

static void weights_clear(weight_set *w) {
    free(w->data);
    free(w->count);
}

static void weights_save(const weight_set *w, float *dst) {
    for (int i = 0; i < w->n; i++, dst += w->count[i - 1]) memcpy(dst, w->data[i], sizeof(float) * (size_t)w->count[i]);
}

static void weights_load(const weight_set *w, const float *src) {
    for (int i = 0; i < w->n; i++, src += w->count[i - 1]) memcpy(w->data[i], src, sizeof(float) * (size_t)w->count[i]);
}

/* Appends printf output to a growing string; false when out of memory. */
static bool str_addf(char **s, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static bool str_addf(char **s, size_t *len, size_t *cap, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*s ? *s + *len : NULL, *s ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return false;
        if (*s && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return true;
        }
        size_t nc = (*cap ? *cap * 2 : 1024) + (size_t)n;
        char *ns = realloc(*s, nc);
        if (!ns) return false;
        if (!*s) ns[0] = 0;
        *s = ns;
        *cap = nc;
    }
}

/* Every setting that changes the trained student, one "name value" line each (names as the
 * command line spells them): the student's parameter shapes, the options, the preprocessing, and
 * the identity of the training data and of the teacher's logits on it. NULL when out of memory. */
/* The training samples' identity for the settings: SHA-256 over one 64-bit hash per sample (of
 * its stored bytes, uint8 or float), so that ranks holding shards compute (hash theirs, gather
 * the hashes) what one process holding them all does. */
static uint64_t sample_hash(const uint8_t *p, int64_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        h = (h ^ v) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static od_status samples_identity(const od_dataset *train, int64_t n_all, od_comm *comm, char out[65], od_error *err) {
    int64_t ss = sample_bytes(train);
    int ranks = sharded(train) ? od_comm_size(comm) : 1, me = sharded(train) ? od_comm_rank(comm) : 0;
    int64_t lo = shard_lo(n_all, me, ranks), hi = shard_lo(n_all, me + 1, ranks), counts[256];
    if (ranks > 256) return od_error_set(err, OD_STATUS_UNSUPPORTED, "distill: a sharded data set on at most 256 ranks");
    if (sharded(train) && (train->first != lo || train->first + train->held < hi))
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: internal: rank %d holds samples %lld.., not its shard %lld..%lld",
                            me, (long long)train->first, (long long)lo, (long long)hi);
    uint64_t *h = malloc(sizeof(uint64_t) * (size_t)(n_all + hi - lo) + 8), *mine = h + n_all;
    if (!h) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = lo; i < hi; i++) mine[i - lo] = sample_hash(sample_at(train, i), ss);
    for (int r = 0; r < ranks; r++) counts[r] = (int64_t)sizeof(uint64_t) * (shard_lo(n_all, r + 1, ranks) - shard_lo(n_all, r, ranks));
    od_status st = ranks > 1 ? od_comm_allgather_bytes(comm, mine, counts, h, err) : OD_STATUS_OK;
    if (ranks == 1) memcpy(h, mine, sizeof(uint64_t) * (size_t)n_all);
    if (!st) od_sha256_hex(h, sizeof(uint64_t) * (size_t)n_all, out);
    free(h);
    return st;
}

static char *run_settings(const weight_set *w, const od_distill_options *o, const od_preprocess *pre,
                          const od_dataset *train, int64_t n_all, const char *samples, const distill_cache *tc) {
    static const char *const losses[] = {"l2", "kd", "labels"}, *const scheds[] = {"constant", "step", "cosine"},
                             *const optims[] = {"sgd", "adam", "adamw"};
    char shapes[65], labels[65] = "none", logits[65];
    od_sha256_hex(w->count, sizeof(int64_t) * (size_t)w->n, shapes);
    int64_t sample = od_dataset_sample_size(train);
    if (train->labels) od_sha256_hex(train->labels, sizeof(int32_t) * (size_t)n_all, labels);
    od_sha256_hex(tc->train, sizeof(float) * (size_t)(tc->n * tc->classes), logits);
    char each[65] = "", unl[65] = "";
    if (tc->each) od_sha256_hex(tc->each, sizeof(float) * (size_t)(tc->n_each * tc->n * tc->classes), each);
    const od_dataset *u = o->unlabeled;
    if (u && u->u8) od_sha256_hex(u->u8, (size_t)(u->n * sample), unl);
    else if (u) od_sha256_hex(u->f32, sizeof(float) * (size_t)(u->n * sample), unl);
    char *s = NULL;
    size_t len = 0, cap = 0;
    bool ok = str_addf(&s, &len, &cap, "student %d tensors, %lld parameters, shapes %.16s\n", w->n, (long long)w->total, shapes) &&
              str_addf(&s, &len, &cap, "data %lld training samples %.16s, labels %.16s\n", (long long)n_all, samples, labels) &&
              str_addf(&s, &len, &cap, "teacher logits %.16s\n", logits) &&
              str_addf(&s, &len, &cap, "--teachers %d %s %.16s\n", 1 + o->n_more_teachers,
                       o->teachers == OD_TEACHERS_DRAW ? "draw" : "mean", each) &&
              str_addf(&s, &len, &cap, "--unlabeled %lld samples %.16s\n", (long long)(u ? u->n : 0), unl) &&
              str_addf(&s, &len, &cap, "--seed %llu\n--batch %lld\n--threads %d\n--epochs %d\n", (unsigned long long)o->seed,
                       (long long)o->batch, o->threads, o->epochs) &&
              str_addf(&s, &len, &cap, "--loss %s\n--temperature %.9g\n--label-weight %.9g\n", losses[o->loss], o->temperature,
                       o->label_weight) &&
              str_addf(&s, &len, &cap, "--sigma %.9g\n--sigma-range %.9g,%.9g\n--alpha %.9g\n", o->sigma, o->sigma_lo, o->sigma_hi,
                       o->alpha) &&
              str_addf(&s, &len, &cap, "--noise-on %s\n", o->noise_on == OD_NOISE_STUDENT ? "student" : "teacher") &&
              str_addf(&s, &len, &cap, "--optimizer %s\n--lr %.9g\n--momentum %.9g\n--nesterov %d\n--weight-decay %.9g\n",
                       optims[o->optim.kind], o->lr, o->optim.momentum, o->optim.nesterov, o->optim.weight_decay) &&
              str_addf(&s, &len, &cap, "--schedule %s\n--warmup %.9g\n--step-epochs %d\n--step-gamma %.9g\n", scheds[o->sched],
                       o->warmup_epochs, o->step_epochs, o->step_gamma) &&
              str_addf(&s, &len, &cap, "--augment %d\n", (int)o->augment) &&
              str_addf(&s, &len, &cap, "--deterministic %d\n", (int)o->deterministic) && /* not the rank count */
              str_addf(&s, &len, &cap, "--val-split %.9g\n--train-limit %lld\n--test-limit %lld\n", o->val_split,
                       (long long)o->train_limit, (long long)o->test_limit) &&
              str_addf(&s, &len, &cap, "--scale %.9g\n--mean", pre->scale);
    for (int c = 0; ok && c < pre->n_channels && c < 16; c++) ok = str_addf(&s, &len, &cap, "%s%.9g", c ? "," : " ", pre->mean[c]);
    ok = ok && str_addf(&s, &len, &cap, "\n--std");
    for (int c = 0; ok && c < pre->n_channels && c < 16; c++) ok = str_addf(&s, &len, &cap, "%s%.9g", c ? "," : " ", pre->std[c]);
    ok = ok && str_addf(&s, &len, &cap, "\n");
    if (!ok) {
        free(s);
        return NULL;
    }
    return s;
}

/* "--lr 0.002 in the checkpoint, 0.01 now; ..." for every line of now that then lacks or
 * holds with another value. Empty when they agree. */
static void settings_diff(const char *then, size_t then_len, const char *now, char *out, size_t size) {
    size_t o = 0;
    out[0] = 0;
    for (const char *line = now; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *sp = memchr(line, ' ', n);
        size_t key = sp ? (size_t)(sp - line) + 1 : n; /* "--lr " */
        const char *found = NULL;
        size_t fn = 0;
        for (const char *t = then; t < then + then_len;) {
            const char *te = memchr(t, '\n', (size_t)(then + then_len - t));
            size_t tn = te ? (size_t)(te - t) : (size_t)(then + then_len - t);
            if (tn >= key && memcmp(t, line, key) == 0) {
                found = t, fn = tn;
                break;
            }
            t += tn + 1;
        }
        if ((!found || fn != n || memcmp(found, line, n) != 0) && o < size) {
            int k = (int)(key > 0 && sp ? key - 1 : key);
            o += (size_t)snprintf(out + o, size - o, "%s%.*s %.*s in the checkpoint, %.*s now", o ? "; " : "", k, line,
                                  found ? (int)(fn - key) : 4, found ? found + key : "none", (int)(n - key), line + key);
        }
        line += n + (end ? 1 : 0);
    }
    if (o >= size && size > 4) memcpy(out + size - 4, "...", 4);
}

typedef struct run_state {
    ckpt_header h;
    const char *settings; /* run_settings */
    float *best;          /* best weights */
    od_epoch_stats *stats;
} run_state;

static od_status ckpt_write(const char *path, const run_state *rs, const weight_set *w, const float *optim_state,
                            size_t optim_count, od_error *err) {
    size_t body = sizeof rs->h + rs->h.settings_len + sizeof(float) * (size_t)(2 * w->total + (int64_t)optim_count) +
                  sizeof(od_epoch_stats) * (size_t)rs->h.epochs_done;
    size_t bytes = 8 + CKPT_SUM + body;
    uint8_t *buf = malloc(bytes + 1), *p = buf + 8 + CKPT_SUM;
    if (!buf) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for a checkpoint");
    memcpy(p, &rs->h, sizeof rs->h);
    p += sizeof rs->h;
    memcpy(p, rs->settings, rs->h.settings_len);
    p += rs->h.settings_len;
    weights_save(w, (float *)p);
    p += sizeof(float) * (size_t)w->total;
    memcpy(p, rs->best, sizeof(float) * (size_t)w->total);
    p += sizeof(float) * (size_t)w->total;
    memcpy(p, optim_state, sizeof(float) * optim_count);
    p += sizeof(float) * optim_count;
    memcpy(p, rs->stats, sizeof(od_epoch_stats) * (size_t)rs->h.epochs_done);
    char sum[65];
    od_sha256_hex(buf + 8 + CKPT_SUM, body, sum);
    memcpy(buf, CKPT_MAGIC, 8);
    memcpy(buf + 8, sum, CKPT_SUM);
    od_status st = od_file_write_atomic(path, buf, bytes, err);
    free(buf);
    return st;
}

/* Reads a checkpoint into rs (whose settings and h.n_floats describe this run): refused, naming
 * each difference, unless it is intact and made with the same settings. */
static od_status ckpt_read(const char *path, run_state *rs, const weight_set *w, float *optim_state, size_t optim_count,
                           int64_t *optim_step, int max_epochs, od_error *err) {
    od_bytes b = {0};
    od_status st = od_file_read(path, &b, err);
    if (st) return st;
    ckpt_header h;
    char sum[65], diff[700];
    if (b.len < 8 + CKPT_SUM + sizeof h || memcmp(b.data, CKPT_MAGIC, 8) != 0) goto bad;
    const uint8_t *body = b.data + 8 + CKPT_SUM;
    size_t body_len = b.len - 8 - CKPT_SUM;
    od_sha256_hex(body, body_len, sum);
    if (memcmp(sum, b.data + 8, CKPT_SUM) != 0) {
        od_bytes_free(&b);
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: the checkpoint is corrupted (its checksum does not match); start over without --resume", path);
    }
    memcpy(&h, body, sizeof h);
    if (h.settings_len > body_len - sizeof h) goto bad;
    settings_diff((const char *)body + sizeof h, (size_t)h.settings_len, rs->settings, diff, sizeof diff);
    if (diff[0]) {
        od_bytes_free(&b);
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "%s: made by a different run: %s; resume with the same settings or start over",
                            path, diff);
    }
    if (h.epochs_done < 0 || h.epochs_done > max_epochs || h.best_epoch < 0 || h.best_epoch > h.epochs_done ||
        h.n_floats != rs->h.n_floats)
        goto bad;
    size_t need = sizeof h + (size_t)h.settings_len + sizeof(float) * (size_t)h.n_floats + sizeof(od_epoch_stats) * (size_t)h.epochs_done;
    if (body_len != need) goto bad;
    const uint8_t *p = body + sizeof h + h.settings_len;
    weights_load(w, (const float *)p);
    p += sizeof(float) * (size_t)w->total;
    memcpy(rs->best, p, sizeof(float) * (size_t)w->total);
    p += sizeof(float) * (size_t)w->total;
    memcpy(optim_state, p, sizeof(float) * optim_count);
    p += sizeof(float) * optim_count;
    memcpy(rs->stats, p, sizeof(od_epoch_stats) * (size_t)h.epochs_done);
    h.settings_len = rs->h.settings_len;
    rs->h = h;
    *optim_step = h.optim_step;
    od_bytes_free(&b);
    return OD_STATUS_OK;
bad:
    od_bytes_free(&b);
    return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: not a checkpoint of this run (bad header or size)", path);
}

/* ---- the loop ------------------------------------------------------------------------------------ */

static float lr_at(const od_distill_options *o, double epoch_pos) {
    double lr = o->lr;
    if (o->warmup_epochs > 0 && epoch_pos < o->warmup_epochs) return (float)(lr * (epoch_pos + 1e-3) / o->warmup_epochs);
    if (o->sched == OD_SCHED_COSINE) lr *= 0.5 * (1 + cos(M_PI * epoch_pos / (o->epochs > 0 ? o->epochs : 1)));
    else if (o->sched == OD_SCHED_STEP && o->step_epochs > 0) lr *= pow(o->step_gamma, floor(epoch_pos / o->step_epochs));
    return (float)lr;
}

/* Evaluates the student's current weights on a subset of a dataset. */
/* model_logits of samples idx[0..n) of a sharded set: each rank those it holds, then gathered
 * into position order. */
static od_status gathered_logits(od_comm *comm, const od_model *m, const od_dataset *d, int64_t n_all, const int64_t *idx,
                                 int64_t n, const od_preprocess *pre, int threads, int64_t classes, float **logits_out,
                                 od_error *err) {
    int ranks = od_comm_size(comm), me = od_comm_rank(comm);
    int64_t counts[256] = {0}, k = 0;
    if (ranks > 256) return od_error_set(err, OD_STATUS_UNSUPPORTED, "distill: a sharded data set on at most 256 ranks");
    *logits_out = NULL;
    int64_t *sel = malloc(sizeof(int64_t) * (size_t)n + 1);
    float *all = malloc(sizeof(float) * (size_t)(n * classes) + 1), *z = NULL, *out = malloc(sizeof(float) * (size_t)(n * classes) + 1);
    od_status st = OD_STATUS_OK;
    if (!sel || !all || !out) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for logits");
        goto done;
    }
    for (int64_t p = 0; p < n; p++) {
        int o = owner_of(idx[p], n_all, ranks);
        counts[o] += classes;
        if (o == me) sel[k++] = idx[p];
    }
    int64_t c = classes;
    if (k > 0 && (st = model_logits(m, d, sel, k, pre, threads, NULL, &z, &c, err))) goto done;
    if ((st = od_comm_allgather(comm, z, counts, all, err))) goto done;
    for (int r = 0, q = 0; r < ranks; r++)
        for (int64_t p = 0; p < n; p++)
            if (owner_of(idx[p], n_all, ranks) == r) memcpy(out + p * classes, all + (q++) * classes, sizeof(float) * (size_t)classes);
    *logits_out = out, out = NULL;
done:
    free(sel);
    free(all);
    free(z);
    free(out);
    return st;
}

static od_status eval_subset(od_model *student, const od_dataset *d, const int64_t *idx, int64_t n, const od_preprocess *pre,
                             const float *teacher_logits, int threads, od_comm *comm, int64_t n_all, int64_t n_classes,
                             double *acc, double *agree, bool *collapsed, od_error *err) {
    *acc = *agree = -1;
    *collapsed = false;
    if (n <= 0) return OD_STATUS_OK;
    /* labels of the subset; the samples are read where they are (no gathered copy: at 224x224
     * a validation split of 1,000 images would be 600 MB of floats) */
    int32_t *labels = d->labels ? malloc(sizeof(int32_t) * (size_t)n) : NULL;
    if (d->labels && !labels) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; d->labels && i < n; i++) labels[i] = d->labels[idx[i]];
    float *logits = NULL;
    int64_t classes = n_classes;
    od_status st = sharded(d) ? gathered_logits(comm, student, d, n_all, idx, n, pre, threads, classes, &logits, err)
                              : model_logits(student, d, idx, n, pre, threads, NULL, &logits, &classes, err);
    if (!st) {
        *acc = od_accuracy(logits, labels, n, classes);
        float *tl = malloc(sizeof(float) * (size_t)(n * classes) + 1);
        if (tl) {
            for (int64_t i = 0; i < n; i++) memcpy(tl + i * classes, teacher_logits + idx[i] * classes, sizeof(float) * (size_t)classes);
            *agree = od_agreement(logits, tl, n, classes);
            free(tl);
        }
        /* collapse: non-finite outputs, or (nearly) the same output for every sample */
        double var = 0;
        for (int64_t j = 0; j < classes; j++) {
            double m = 0, s = 0;
            for (int64_t i = 0; i < n; i++) m += logits[i * classes + j];
            m /= (double)n;
            for (int64_t i = 0; i < n; i++) s += (logits[i * classes + j] - m) * (logits[i * classes + j] - m);
            var += s / (double)n;
        }
        if (!isfinite(var) || var < 1e-10) *collapsed = true;
    }
    free(logits);
    free(labels);
    return st;
}

/* The share of samples (idx[0..n), or 0..n with idx NULL) whose teacher answer is the teacher's
 * most common answer: the agreement a student gets by always answering that class. */
static double majority_share(const float *logits, const int64_t *idx, int64_t n, int64_t classes) {
    int64_t *count = calloc((size_t)classes + 1, sizeof *count), best = 0;
    if (!count || n <= 0) {
        free(count);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t c = od_argmax(logits + (idx ? idx[i] : i) * classes, classes);
        if (++count[c] > best) best = count[c];
    }
    free(count);
    return (double)best / (double)n;
}

od_status distill_eval_test(od_model *student, const od_data_split *data, const od_preprocess *pre, const od_distill_options *opt,
                           const distill_cache *cache, od_distill_result *res, od_error *err) {
    int64_t n = opt->test_limit > 0 && opt->test_limit < data->test.n ? opt->test_limit : data->test.n;
    if (n <= 0 || !cache->test) return OD_STATUS_OK;
    double t0 = od_seconds();
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)n);
    if (!idx) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    bool collapsed;
    od_status st = eval_subset(student, &data->test, idx, n, pre, cache->test, opt->threads, opt->comm, n, cache->classes,
                               &res->student_test_acc, &res->test_agreement, &collapsed, err);
    free(idx);
    res->teacher_test_acc = od_accuracy(cache->test, data->test.labels, n, cache->classes);
    if (!st && res->best_epoch > 0) {
        od_epoch_stats *b = &res->epochs[res->best_epoch - 1];
        b->test_acc = res->student_test_acc, b->test_agree = res->test_agreement;
    }
    res->t_train += od_seconds() - t0; /* a plain run's evaluations are in its epochs' time */
    return st;
}

od_status od_distill(const od_model *teacher, od_model *student, const od_data_split *data, const od_preprocess *pre,
                     const od_distill_options *opt, od_distill_result *res, od_error *err) {
    if (opt->sigma_auto || opt->alpha_auto || opt->label_weight_auto) return noise_search(teacher, student, data, pre, opt, res, err);
    distill_cache cache = {0};
    od_status st = distill_run(teacher, student, data, pre, opt, &cache, true, res, err);
    distill_cache_clear(&cache);
    return st;
}

od_status distill_run(const od_model *teacher, od_model *student, const od_data_split *data, const od_preprocess *pre,
                      const od_distill_options *opt, distill_cache *shared, bool eval_test, od_distill_result *res, od_error *err) {
    od_status st;
    double t0 = od_seconds();
    memset(res, 0, sizeof *res);
    res->teacher_test_acc = res->student_test_acc = res->test_agreement = -1;
    res->loss = opt->loss, res->sigma = opt->sigma, res->alpha = opt->alpha, res->label_weight = opt->label_weight, res->lr = opt->lr;
    res->search.winner = -1;
    const od_dataset *train = &data->train;
    od_dataset test_head = data->test;
    if (opt->test_limit > 0 && opt->test_limit < test_head.n) test_head.n = opt->test_limit;
    const od_dataset *test = &test_head;
    if (opt->batches_per_epoch < 0) return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: options out of range");
    if (opt->loss == OD_LOSS_LABELS && !train->labels)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: --loss labels needs a dataset with labels");
    if (opt->epochs < 1 || opt->batch < 1 || !(opt->sigma >= 0) || !(opt->alpha >= 0 && opt->alpha <= 1) ||
        !(opt->val_split >= 0 && opt->val_split < 1) || !(opt->lr > 0))
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: options out of range");
    if (student->graph.opset > 0 && student->graph.opset < OD_ORT_OPSET_MIN)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "student: stamped opset %lld; ONNX Runtime supports %d to %d: convert it first (onnx.version_converter)",
                            (long long)student->graph.opset, OD_ORT_OPSET_MIN, OD_ONNX_OPSET_MAX);
    if ((st = check_fits(teacher, "teacher", train, err)) || (st = check_fits(student, "student", train, err))) return st;
    if ((st = check_finite_weights(teacher, "teacher", err)) || (st = check_finite_weights(student, "student", err))) return st;
    if (opt->n_more_teachers < 0 || (opt->n_more_teachers > 0 && !opt->more_teachers))
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: options out of range");
    for (int k = 0; k < opt->n_more_teachers; k++) {
        char who[32];
        snprintf(who, sizeof who, "teacher %d", k + 2);
        if ((st = od_teachers_check(teacher, opt->more_teachers[k], err))) {
            od_error_prefix(err, "%s: ", who);
            return st;
        }
        if ((st = check_fits(opt->more_teachers[k], who, train, err)) || (st = check_finite_weights(opt->more_teachers[k], who, err)))
            return st;
    }
    const od_dataset *unl = opt->unlabeled;
    if (unl) {
        bool same = unl->rank == train->rank;
        for (int k = 0; same && k < train->rank; k++) same = unl->dims[k] == train->dims[k];
        if (unl->n < 1) return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "unlabelled data: no samples");
        if (!same) {
            char a[96] = "", b[96] = "";
            for (int k = 0, o = 0; k < unl->rank && o < 90; k++) o += snprintf(a + o, sizeof a - (size_t)o, "%s%lld", k ? "x" : "", (long long)unl->dims[k]);
            for (int k = 0, o = 0; k < train->rank && o < 90; k++) o += snprintf(b + o, sizeof b - (size_t)o, "%s%lld", k ? "x" : "", (long long)train->dims[k]);
            return od_error_set(err, OD_STATUS_SHAPE, "unlabelled data: samples of %s, the labelled data's are %s", a, b);
        }
    }
    int64_t n_all = opt->train_limit > 0 && opt->train_limit < train->n ? opt->train_limit : train->n;
    int64_t n_u = unl ? unl->n : 0;
    int64_t n_val = (int64_t)(opt->val_split * (double)n_all), n_train = n_all - n_val + n_u;
    if (n_train < opt->batch)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: %lld training samples, fewer than one batch of %lld",
                            (long long)n_train, (long long)opt->batch);
    res->n_train = n_train;
    res->n_unlabeled = n_u;
    res->n_teachers = 1 + opt->n_more_teachers;
    res->n_val = n_val;
    res->n_test = test->n;

    float *tlog = NULL, *test_tlog = NULL, *targets = NULL, *noise = NULL, *noisy = NULL, *best_snapshot = NULL;
    char *settings = NULL;
    int64_t *order = NULL, *idx = NULL, *base_order = NULL, *staged_pos = NULL, classes = 0;
    uint8_t *staged_rows = NULL; /* a sharded training set: the global batch's samples */
    od_trainer *tr = NULL;
    od_dp *dp = NULL; /* data-parallel: several ranks, or --deterministic */
    od_optim *optim = NULL;
    weight_set w = {0};
    run_state rs = {0};
    od_rng rng;
    memset(&rng, 0, sizeof rng); /* its padding goes into checkpoints: keep them deterministic */
    od_rng_seed(&rng, opt->seed);

    /* teacher logits, once */
    double tt = od_seconds();
    if (!shared->train) {
        if ((st = cache_build(teacher, opt, train, n_all, test, pre, shared, err))) goto done;
        shared->seconds = od_seconds() - tt;
    }
    double t_logits = od_seconds() - tt; /* this call's: 0 when the cache was given */
    const distill_cache cache = *shared;
    if (cache.n != n_all + n_u || (test->n > 0 && !cache.test)) {
        st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: internal: the logit cache is of another run");
        goto done;
    }
    if (!eval_test) test_head.n = 0; /* the search's short runs: chosen on validation, the test set untouched */
    tlog = cache.train, test_tlog = cache.test, classes = cache.classes;
    res->n_logits_cached = cache.n;
    if (test->n > 0) res->teacher_test_acc = od_accuracy(test_tlog, test->labels, test->n, classes);
    res->t_teacher = shared->seconds;

    /* split: a seeded permutation; its first n_val samples are the validation split */
    order = malloc(sizeof(int64_t) * (size_t)(n_all + n_u));
    idx = malloc(sizeof(int64_t) * (size_t)(n_all > test->n ? n_all : test->n) + 8);
    targets = malloc(sizeof(float) * (size_t)(opt->batch * classes));
    if (!order || !idx || !targets) goto oom;
    if (opt->noise_on == OD_NOISE_STUDENT && (!(noise = malloc(sizeof(float) * (size_t)(opt->batch * classes))) ||
                                              !(noisy = malloc(sizeof(float) * (size_t)(opt->batch * classes)))))
        goto oom;
    for (int64_t i = 0; i < n_all + n_u; i++) order[i] = i;
    od_rng_shuffle(&rng, order, n_all); /* the unlabelled samples stay after the labelled: never validation */
    int64_t *val_idx = order, *train_idx = order + n_val;
    if (!(base_order = malloc(sizeof(int64_t) * (size_t)n_train + 1))) goto oom;
    memcpy(base_order, train_idx, sizeof(int64_t) * (size_t)n_train);

    res->ranks = od_comm_size(opt->comm);
    if (res->ranks > 1 || opt->deterministic) {
        if (opt->augment) {
            st = od_error_set(err, OD_STATUS_UNSUPPORTED, "distill: --augment does not run on several ranks or with --deterministic yet");
            goto done;
        }
        if ((st = od_dp_create(&student->graph, opt->comm, opt->batch, opt->deterministic, opt->threads, opt->seed, &dp, err)))
            goto done;
        tr = od_dp_trainer(dp);
    } else {
        int train_threads = od_trainer_useful_threads(&student->graph, opt->batch, opt->threads);
        if ((st = od_trainer_create(&student->graph, &(od_trainer_options){.batch = opt->batch, .threads = train_threads, .seed = opt->seed}, &tr, err)))
            goto done;
    }
    if (od_trainer_classes(tr) != classes) {
        st = od_error_set(err, OD_STATUS_SHAPE, "the student has %lld outputs per sample, the teacher %lld",
                          (long long)od_trainer_classes(tr), (long long)classes);
        goto done;
    }
    if (!(optim = od_optim_create(tr, &opt->optim, err))) {
        st = err->status;
        goto done;
    }
    if ((st = weights_collect(student, &w, err))) goto done;
    float *optim_state;
    int64_t *optim_step;
    size_t optim_count = od_optim_state(optim, &optim_state, &optim_step);
    rs.best = malloc(sizeof(float) * (size_t)w.total + 1);
    rs.stats = calloc((size_t)opt->epochs + 1, sizeof(od_epoch_stats));
    best_snapshot = rs.best;
    if (!rs.best || !rs.stats) goto oom;
    char samples_id[65];
    if ((st = samples_identity(train, n_all, opt->comm, samples_id, err))) goto done;
    if (!(settings = run_settings(&w, opt, pre, train, n_all, samples_id, &cache))) goto oom;
    rs.settings = settings;
    rs.h.settings_len = strlen(settings);
    rs.h.best_score = -1;
    rs.h.n_floats = (uint64_t)(2 * w.total) + optim_count;
    weights_save(&w, rs.best);
    if (opt->resume) {
        st = ckpt_read(opt->resume, &rs, &w, optim_state, optim_count, optim_step, opt->epochs, err);
        if (any_rank(opt->comm, st != OD_STATUS_OK) && !st)
            st = od_error_set(err, OD_STATUS_IO, "%s: another rank could not read this checkpoint", opt->resume);
        if (st) goto done;
        rng = rs.h.rng;
        res->resumed_epochs = rs.h.epochs_done;
    }
    res->t_load = od_seconds() - t0 - t_logits;

    /* a sharded training set: each global batch's samples gathered from the ranks holding them */
    od_dataset staged = *train;
    if (sharded(train)) {
        if (!dp || unl) {
            st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: internal: a sharded training set needs several ranks and no unlabelled data");
            goto done;
        }
        staged.n = opt->batch, staged.first = staged.held = 0, staged.labels = NULL, staged.map_base = NULL;
        if (!(staged_rows = malloc((size_t)(opt->batch * sample_bytes(train)) + 1))) goto oom;
        staged.u8 = train->u8 ? staged_rows : NULL;
        staged.f32 = train->u8 ? NULL : (float *)staged_rows;
        if (!(staged_pos = malloc(sizeof(int64_t) * (size_t)opt->batch))) goto oom;
        for (int64_t i = 0; i < opt->batch; i++) staged_pos[i] = i;
    }
    int64_t batches = n_train / opt->batch;
    if (opt->batches_per_epoch > 0 && opt->batches_per_epoch < batches) batches = opt->batches_per_epoch;
    double t_train = od_seconds(), comm0 = od_comm_seconds(opt->comm);
    for (int epoch = rs.h.epochs_done; epoch < opt->epochs; epoch++) {
        rs.h.rng = rng; /* the state this epoch starts from */
        double te = od_seconds(), loss_sum = 0, comm_e = od_comm_seconds(opt->comm);
        /* each epoch's order depends only on the rng state, so a resumed run repeats it */
        memcpy(train_idx, base_order, sizeof(int64_t) * (size_t)n_train);
        od_rng_shuffle(&rng, train_idx, n_train);
        /* The logit noise has a stream of its own, from the seed and the epoch: so σ, α and the
         * loss never change the batch order or the augmentation, runs that differ only in the
         * noise stay paired, and a resumed run draws the same noise. */
        od_rng noise_rng;
        memset(&noise_rng, 0, sizeof noise_rng);
        od_rng_seed(&noise_rng, opt->seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(epoch + 1)));
        for (int64_t b = 0; b < batches; b++) {
            if (!dp && opt->stop && *opt->stop) {
                res->interrupted = true;
                goto finish;
            }
            od_phases_lap(-1);
            const int64_t *bi = train_idx + b * opt->batch;
            if (!dp) fill_samples(train, unl, n_all, pre, bi, opt->batch, od_trainer_input(tr));
            if (!dp && opt->augment && train->rank == 3)
                od_augment_batch(od_trainer_input(tr), opt->batch, train->dims[0], train->dims[1], train->dims[2], &rng);
            if (!dp) od_phases_lap(OD_PH_FILL);
            float sigma = opt->sigma;
            if (opt->sigma_hi > 0) sigma = (float)(opt->sigma_lo + (opt->sigma_hi - opt->sigma_lo) * od_rng_uniform(&noise_rng));
            for (int64_t i = 0; i < opt->batch; i++) {
                float *z = targets + i * classes;
                const float *src = tlog + bi[i] * classes;
                if (cache.each) { /* one teacher drawn for this sample, this time */
                    int k = (int)(od_rng_uniform(&rng) * (float)cache.n_each);
                    src = cache.each + ((k < cache.n_each ? k : cache.n_each - 1) * cache.n + bi[i]) * classes;
                }
                memcpy(z, src, sizeof(float) * (size_t)classes);
                /* the same draws whichever side the noise goes to */
                float *f = noise ? noise + i * classes : z;
                if (noise) for (int64_t j = 0; j < classes; j++) f[j] = 1.0f;
                if (sigma > 0 && od_rng_uniform(&noise_rng) < opt->alpha)
                    for (int64_t j = 0; j < classes; j++) f[j] *= 1.0f + sigma * od_rng_normal(&noise_rng);
            }
            od_phases_lap(OD_PH_TARGETS);
            batch_ctx bc = {opt, train, pre, bi, targets, sigma > 0 ? noise : NULL, noisy, classes, n_all, NULL, NULL};
            if (staged_rows) {
                if ((st = gather_rows(opt->comm, train, n_all, bi, opt->batch, staged_rows, err))) goto done;
                bc.staged = &staged, bc.positions = staged_pos;
                od_phases_lap(OD_PH_FILL);
            }
            float loss = 0;
            if (dp) {
                bool stop = false;
                od_dp_batch db = {&bc, batch_fill, batch_loss};
                if ((st = od_dp_step(dp, &db, opt->stop && *opt->stop, &loss, &stop, err))) goto done;
                if (stop) {
                    res->interrupted = true;
                    goto finish;
                }
            } else {
                if ((st = od_trainer_forward(tr, true, err))) goto done;
                od_phases_lap(OD_PH_FORWARD);
                loss = batch_loss(&bc, od_trainer_output(tr), 0, opt->batch, od_trainer_output_grad(tr));
                od_phases_lap(OD_PH_LOSS);
            }
            if (!isfinite(loss)) {
                st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                                  "training diverged at epoch %d, batch %lld (loss %g); nothing written: try a lower --lr or a longer --warmup",
                                  epoch + 1, (long long)b + 1, loss);
                goto done;
            }
            loss_sum += loss;
            if (!dp && (st = od_trainer_backward(tr, err))) goto done;
            if (!dp) od_phases_lap(OD_PH_BACKWARD);
            od_optim_step(optim, lr_at(opt, epoch + (double)b / (double)batches));
            od_phases_lap(OD_PH_OPTIM);
            if (opt->progress && (b % 20 == 0 || b + 1 == batches)) {
                double el = od_seconds() - te, sps = (double)(b + 1) * opt->batch / (el > 0 ? el : 1e-9);
                od_distill_progress p = {epoch + 1, opt->epochs, b + 1, batches, loss_sum / (double)(b + 1), sps,
                                         (double)((batches - b - 1) + (opt->epochs - epoch - 1) * batches) * opt->batch / sps, NULL, 0, 0, res->ranks, NULL, 0};
                opt->progress(&p, opt->progress_ctx);
            }
        }
        od_epoch_stats *es = &rs.stats[epoch];
        es->epoch = epoch + 1;
        es->loss = loss_sum / (double)batches;
        es->seconds = od_seconds() - te;
        es->samples_per_s = (double)(batches * opt->batch) / es->seconds;
        es->comm_seconds = od_comm_seconds(opt->comm) - comm_e;
        bool collapsed = false, c2 = false;
        if ((st = eval_subset(student, train, val_idx, n_val, pre, tlog, opt->threads, opt->comm, n_all, classes, &es->val_acc, &es->val_agree, &collapsed, err)))
            goto done;
        for (int64_t i = 0; i < test->n; i++) idx[i] = i;
        es->test_acc = es->test_agree = -1; /* unknown without a test set (or in the search's runs) */
        if (test->n > 0 && (st = eval_subset(student, test, idx, test->n, pre, test_tlog, opt->threads, opt->comm, test->n, classes, &es->test_acc,
                                             &es->test_agree, &c2, err)))
            goto done;
        for (int i = 0; i < w.n && !st; i++)
            for (int64_t k = 0; k < w.count[i]; k++)
                if (!isfinite(w.data[i][k])) {
                    st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                                      "training diverged at epoch %d: the student's weights are no longer finite; nothing written: try a lower --lr or a longer --warmup",
                                      epoch + 1);
                    break;
                }
        if (st) goto done;
        if (collapsed || (n_val == 0 && c2)) {
            st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                              "training collapsed at epoch %d: the student gives the same output for every sample; nothing written: try a lower --lr or a longer --warmup",
                              epoch + 1);
            goto done;
        }
        double score = n_val > 0 ? (es->val_acc >= 0 ? es->val_acc : es->val_agree) : (double)epoch;
        if (score > rs.h.best_score) {
            rs.h.best_score = score;
            rs.h.best_epoch = epoch + 1;
            weights_save(&w, rs.best);
        }
        rs.h.epochs_done = epoch + 1;
        rs.h.rng = rng;
        rs.h.optim_step = *optim_step;
        if (opt->checkpoint && od_comm_rank(opt->comm) == 0 && (st = ckpt_write(opt->checkpoint, &rs, &w, optim_state, optim_count, err))) goto done;
        if (opt->progress) {
            od_distill_progress p = {epoch + 1, opt->epochs, batches, batches, es->loss, es->samples_per_s, 0, es, 0, 0, res->ranks, NULL, 0};
            opt->progress(&p, opt->progress_ctx);
        }
    }
finish:
    od_phases_report(opt->comm);
    res->t_train = od_seconds() - t_train;
    res->t_comm = od_comm_seconds(opt->comm) - comm0;
    res->n_epochs = rs.h.epochs_done;
    res->best_epoch = rs.h.best_epoch;
    res->epochs = calloc((size_t)rs.h.epochs_done + 1, sizeof(od_epoch_stats));
    if (!res->epochs) goto oom;
    memcpy(res->epochs, rs.stats, sizeof(od_epoch_stats) * (size_t)rs.h.epochs_done);
    if (res->interrupted) {
        /* the checkpoint must describe a whole epoch: the state at the last epoch's end */
        if (opt->checkpoint && rs.h.epochs_done == 0) {
            /* nothing finished: a checkpoint that starts over */
            od_rng_seed(&rng, opt->seed);
        }
    }
    weights_load(&w, rs.best);
    if (rs.h.best_epoch > 0) {
        const od_epoch_stats *b = &rs.stats[rs.h.best_epoch - 1];
        res->student_test_acc = b->test_acc;
        res->test_agreement = b->test_agree;
        /* A student that agrees with its teacher no more often than always answering the
         * teacher's most common class learned nothing (e.g. --lr 16): fail, as a collapse does.
         * Judged on 100 samples or more, where one sample moves the agreement by 1 point at
         * most: on a dozen, a student that matches the commonest class is no verdict. */
        bool on_val = n_val > 0;
        int64_t n_judged = on_val ? n_val : test->n;
        double agree = on_val ? b->val_agree : b->test_agree;
        double chance = on_val ? majority_share(tlog, val_idx, n_val, classes)
                               : test->n > 0 ? majority_share(test_tlog, NULL, test->n, classes) : 0;
        if (!res->interrupted && n_judged >= 100 && agree >= 0 && chance > 0 && chance < 1 && agree <= chance) {
            st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                              "training failed: the kept student (epoch %d) agrees with the teacher on %.1f%% of the %s split, no more than always answering the teacher's most common class (%.1f%%); nothing written: try a lower --lr or a longer --warmup",
                              rs.h.best_epoch, 100 * agree, on_val ? "validation" : "test", 100 * chance);
            goto done;
        }
    }
    st = OD_STATUS_OK;
    goto done;
oom:
    st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory during distillation");
done:
    if (st && w.n && best_snapshot) weights_load(&w, best_snapshot);
    weights_clear(&w);
    free(settings);
    free(rs.best);
    free(rs.stats);
    od_optim_destroy(optim);
    if (dp) od_dp_destroy(dp);
    else od_trainer_destroy(tr);
    free(targets);
    free(noise);
    free(noisy);
    free(order);
    free(staged_pos);
    free(staged_rows);
    free(base_order);
    free(idx);
    return st;
}

od_status od_distill_finish(od_model *student, const od_model *teacher, const char *teacher_path,
                            const char *spec_text, const od_distill_options *opt,
                            const od_distill_result *res, od_weight_format weights, od_error *err) {
    od_status st;
    char sha[65] = "", buf[64];
    if ((st = od_optimize(student, NULL, err)) || (st = od_store_weights(student, weights, err))) return st;
    if (teacher_path && (st = od_file_sha256(teacher_path, sha, err))) return st;
    if ((st = od_model_copy_meta(student, teacher, "preprocess.", err))) return st;
    static const char *const loss_names[] = {"l2", "kd", "labels"};
    struct {
        const char *key;
        char value[128];
    } kv[16];
    int n = 0;
#define KV(k, ...) (kv[n].key = (k), snprintf(kv[n].value, sizeof kv[n].value, __VA_ARGS__), n++)
    KV("distill.teacher_sha256", "%s", sha);
    KV("distill.loss", "%s", loss_names[opt->loss]);
    if (opt->sigma_hi > 0) KV("distill.sigma", "uniform %g..%g", opt->sigma_lo, opt->sigma_hi);
    else KV("distill.sigma", "%g", opt->sigma);
    KV("distill.alpha", "%g", opt->alpha);
    if (res->search.n_trials > 0)
        KV("distill.search", "successive halving, %d candidates, %d rungs, %.3g of %.3g epochs", res->search.n_candidates,
           res->search.n_rungs, res->search.search_epochs, res->search.budget_epochs);
    if (opt->n_more_teachers > 0)
        KV("distill.teachers", "%d, %s", 1 + opt->n_more_teachers, opt->teachers == OD_TEACHERS_DRAW ? "draw" : "mean");
    if (opt->unlabeled) KV("distill.unlabeled", "%lld", (long long)res->n_unlabeled);
    if (opt->noise_on == OD_NOISE_STUDENT && (opt->sigma > 0 || opt->sigma_hi > 0)) /* no noise: nothing to say */
        KV("distill.noise_on", "student");
    KV("distill.seed", "%llu", (unsigned long long)opt->seed);
    KV("distill.epochs", "%d (kept %d)", res->n_epochs, res->best_epoch);
    if (res->student_test_acc >= 0) KV("distill.test_accuracy", "%.4f", res->student_test_acc);
    KV("distill.tool", "onnx-distill %s", OD_VERSION);
#undef KV
    for (int i = 0; i < n; i++)
        if ((st = od_model_set_meta(student, kv[i].key, kv[i].value, err))) return st;
    if ((st = od_model_set_meta(student, "distill.spec", spec_text, err))) return st;
    if (weights != OD_WEIGHTS_F32) {
        snprintf(buf, sizeof buf, "%s", weights == OD_WEIGHTS_F16 ? "f16" : "int8");
        if ((st = od_model_set_meta(student, "distill.weights", buf, err))) return st;
    }
    return OD_STATUS_OK;
}

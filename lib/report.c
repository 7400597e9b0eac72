/* Reports: models side by side, filled after a distillation (or for compare), and written as a
 * text table, JSON or Markdown (HTML in report_html.c). */
#include "report_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *od_format_count(int64_t v, char *buf, size_t size) {
    char raw[32];
    snprintf(raw, sizeof raw, "%llu", v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v);
    size_t len = strlen(raw), o = 0;
    if (v < 0 && o + 1 < size) buf[o++] = '-';
    for (size_t i = 0; i < len && o + 2 < size; i++) {
        if (i && (len - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = raw[i];
    }
    if (size) buf[o < size ? o : size - 1] = 0;
    return buf;
}

/* ---- per-class evaluation ---------------------------------------------------------------- */

od_status od_class_eval_compute(const float *logits, int64_t classes, const int32_t *labels,
                                int64_t n, int64_t data_classes, od_class_eval *out,
                                od_error *err) {
    memset(out, 0, sizeof *out);
    int64_t K = classes > data_classes ? classes : data_classes;
    if (K < 1 || K > OD_DATASET_MAX_CLASSES)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "%lld classes: out of range", (long long)K);
    out->confusion = calloc((size_t)(K * K), sizeof(int64_t));
    out->support = calloc((size_t)K, sizeof(int64_t));
    out->per_class = calloc((size_t)K, sizeof(double));
    if (!out->confusion || !out->support || !out->per_class) {
        od_class_eval_clear(out);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for a %lld-class confusion matrix",
                            (long long)K);
    }
    out->n = n;
    out->classes = K;
    for (int64_t i = 0; i < n; i++) {
        int64_t p = od_argmax(logits + i * classes, classes), y = labels[i];
        if (y < 0 || y >= K) continue;
        out->confusion[y * K + p]++;
        out->support[y]++;
        out->correct += p == y;
    }
    out->accuracy = n > 0 ? (double)out->correct / (double)n : -1;
    for (int64_t c = 0; c < K; c++)
        out->per_class[c] = out->support[c] ? (double)out->confusion[c * K + c] / (double)out->support[c] : -1;
    return OD_STATUS_OK;
}

void od_class_eval_clear(od_class_eval *e) {
    free(e->confusion);
    free(e->support);
    free(e->per_class);
    memset(e, 0, sizeof *e);
}

/* ---- building ------------------------------------------------------------------------------ */

void od_report_options_default(od_report_options *o) {
    memset(o, 0, sizeof *o);
    o->n_batches = 2;
    o->batches[0] = 1;
    o->batches[1] = 64;
    o->n_threads = 2;
    o->threads[0] = 1;
    o->threads[1] = 2;
    o->min_time = 0.3;
}

void od_report_init(od_report *r) { memset(r, 0, sizeof *r); }

static void diff_clear(od_report_diff *d) {
    free(d->per_class);
    memset(d, 0, sizeof *d);
}

static void model_clear(od_report_model *m) {
    free(m->label);
    free(m->path);
    od_class_eval_clear(&m->eval);
    free(m->pred);
    diff_clear(&m->wrong_ref_right);
    diff_clear(&m->right_ref_wrong);
    memset(m, 0, sizeof *m);
}

static void names_clear(od_report *r) {
    for (int i = 0; i < r->n_class_names; i++) free(r->class_names[i]);
    free(r->class_names);
    r->class_names = NULL;
    r->n_class_names = 0;
}

void od_report_clear(od_report *r) {
    for (int i = 0; i < r->n_models; i++) model_clear(&r->models[i]);
    free(r->models);
    free(r->data);
    names_clear(r);
    free(r->distill.spec);
    free(r->distill.weights);
    free(r->distill.epochs);
    free(r->distill.search.trials);
    memset(r, 0, sizeof *r);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

od_status od_report_add_model(od_report *r, const char *label, const char *path,
                              const od_model *m, const od_report_options *o, od_error *err) {
    od_report_model *models = realloc(r->models, sizeof *models * (size_t)(r->n_models + 1));
    if (!models) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    r->models = models;
    od_report_model *x = &models[r->n_models];
    memset(x, 0, sizeof *x);
    x->accuracy = x->agreement = -1;
    od_bytes file = {0};
    od_status st;
    x->label = strdup(label ? label : path ? base_name(path) : "model");
    x->path = path ? strdup(path) : NULL;
    if (!x->label || (path && !x->path)) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto fail;
    }
    if (path && (st = od_file_read(path, &file, err))) goto fail_named; /* its errors name the path */
    if (!path && (st = od_model_encode(m, &file, err))) goto fail;
    x->bytes = file.len;
    if ((st = od_compressed_size(file.data, file.len, &x->gzip_bytes, err)) ||
        (st = od_model_count(m, &x->params, &x->macs, err)))
        goto fail;
    od_bytes_free(&file);
    for (int b = 0; o && b < o->n_batches; b++)
        for (int t = 0; t < o->n_threads && x->n_latency < OD_REPORT_MAX_LATENCY; t++) {
            if ((st = od_measure_latency(&m->graph, o->batches[b], o->threads[t], o->min_time,
                                         &x->latency[x->n_latency], err)))
                goto fail;
            x->n_latency++;
        }
    r->n_models++;
    return OD_STATUS_OK;
fail:
    od_error_prefix(err, "%s: ", path ? path : x->label ? x->label : "model");
fail_named:
    od_bytes_free(&file);
    model_clear(x);
    return st;
}

static const char *const fashion_names[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
static const char *const cifar10_names[] = {"airplane", "automobile", "bird", "cat", "deer",
                                            "dog", "frog", "horse", "ship", "truck"};

/* "/x/Fashion-MNIST/" -> "fashion-mnist" */
static void dataset_key(const char *name, char *out, size_t size) {
    size_t len = strlen(name);
    while (len > 1 && name[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && name[start - 1] != '/') start--;
    size_t o = 0;
    for (size_t i = start; i < len && o + 1 < size; i++) out[o++] = (char)tolower((unsigned char)name[i]);
    out[o] = 0;
}

static const char *const *known_names(const char *name) {
    char key[128];
    if (!name) return NULL;
    dataset_key(name, key, sizeof key);
    if (strstr(key, "fashion")) return fashion_names;
    if (strstr(key, "cifar-10") == key || strstr(key, "cifar10") == key) return cifar10_names;
    return NULL;
}

static od_status names_add(od_report *r, const char *s, size_t len, od_error *err) {
    char **names = realloc(r->class_names, sizeof *names * (size_t)(r->n_class_names + 1));
    if (!names) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    r->class_names = names;
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && isspace((unsigned char)s[len - 1])) len--;
    if (!(names[r->n_class_names] = strndup(s, len))) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    r->n_class_names++;
    return OD_STATUS_OK;
}

od_status od_report_set_data(od_report *r, const char *name, const od_model *ref, od_error *err) {
    free(r->data);
    names_clear(r);
    r->data = NULL;
    if (name && !(r->data = strdup(name))) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    const char *listed = ref ? od_model_meta(ref, "class_names") : NULL;
    od_status st = OD_STATUS_OK;
    if (listed && *listed) {
        for (const char *s = listed;; ) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            if ((st = names_add(r, s, len, err))) return st;
            if (!comma) break;
            s = comma + 1;
        }
        return OD_STATUS_OK;
    }
    const char *const *known = known_names(name);
    if (!known && ref) known = known_names(od_model_meta(ref, "dataset"));
    for (int c = 0; known && c < 10 && !st; c++) st = names_add(r, known[c], strlen(known[c]), err);
    return st;
}

od_status od_report_set_class_names(od_report *r, char *const *names, int n, od_error *err) {
    if (n <= 0) return OD_STATUS_OK;
    names_clear(r);
    od_status st = OD_STATUS_OK;
    for (int c = 0; c < n && !st; c++) st = names_add(r, names[c], strlen(names[c]), err);
    return st;
}

static od_status diff_init(od_report_diff *d, int64_t classes, od_error *err) {
    d->classes = classes;
    if (!(d->per_class = calloc((size_t)classes + 1, sizeof(int64_t))))
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

static void diff_add(od_report_diff *d, int64_t i, int32_t label, int32_t pred, int32_t ref_pred) {
    d->count++;
    if (label >= 0 && label < d->classes) d->per_class[label]++;
    if (d->n_samples < OD_REPORT_MAX_SAMPLES)
        d->samples[d->n_samples++] = (od_report_sample){i, label, pred, ref_pred};
}

od_status od_report_evaluate(od_report *r, int i, const od_model *m, const od_dataset *test,
                             const od_preprocess *pre, int threads, od_error *err) {
    if (i < 0 || i >= r->n_models)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "report: no model %d", i);
    od_report_model *x = &r->models[i], *ref = &r->models[0];
    if (i > 0 && !ref->evaluated)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "report: evaluate model 0 first");
    if (test->n <= 0) return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "report: no test samples to evaluate on");
    if (r->n_test && test->n != r->n_test)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "report: models evaluated on %lld and %lld samples",
                            (long long)r->n_test, (long long)test->n);
    if (x->evaluated) return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "report: model %d evaluated twice", i);
    float *logits = NULL;
    int64_t classes = 0, n = test->n;
    od_status st = od_preprocess_check(pre, test, err);
    if (!st) st = od_model_logits(m, test, pre, threads, &logits, &classes, err);
    if (!st && i == 0) od_preprocess_describe(pre, r->preprocess, sizeof r->preprocess);
    if (!st) st = od_dataset_check_labels(test, n, classes, err);
    if (st) {
        free(logits);
        od_error_prefix(err, "%s: ", x->path ? x->path : x->label);
        return st;
    }
    if (!(x->pred = malloc(sizeof(int32_t) * (size_t)n))) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (int64_t k = 0; k < n; k++) x->pred[k] = (int32_t)od_argmax(logits + k * classes, classes);
    if (test->labels) {
        if ((st = od_class_eval_compute(logits, classes, test->labels, n, test->n_classes, &x->eval, err))) goto done;
        x->accuracy = x->eval.accuracy;
    }
    int64_t K = x->eval.classes > classes ? x->eval.classes : classes;
    if (K > r->n_classes) r->n_classes = K;
    if (i > 0) {
        int64_t same = 0;
        for (int64_t k = 0; k < n; k++) same += x->pred[k] == ref->pred[k];
        x->agreement = (double)same / (double)n;
        if (test->labels) {
            if ((st = diff_init(&x->wrong_ref_right, r->n_classes, err)) ||
                (st = diff_init(&x->right_ref_wrong, r->n_classes, err)))
                goto done;
            for (int64_t k = 0; k < n; k++) {
                int32_t y = test->labels[k];
                bool here = x->pred[k] == y, there = ref->pred[k] == y;
                if (!here && there) diff_add(&x->wrong_ref_right, k, y, x->pred[k], ref->pred[k]);
                if (here && !there) diff_add(&x->right_ref_wrong, k, y, x->pred[k], ref->pred[k]);
            }
        }
    }
    r->n_test = n;
    x->evaluated = true;
done:
    free(logits);
    return st;
}

od_status od_report_set_distill(od_report *r, const od_distill_options *opt,
                                const od_distill_result *res, const char *spec,
                                const char *weights, od_error *err) {
    od_report_distill *d = &r->distill;
    free(d->spec);
    free(d->weights);
    free(d->epochs);
    free(d->search.trials);
    memset(d, 0, sizeof *d);
    d->options = *opt;
    d->options.checkpoint = d->options.resume = NULL;
    d->options.stop = NULL;
    d->options.progress = NULL;
    d->options.progress_ctx = NULL;
    d->options.more_teachers = NULL;
    d->options.unlabeled = NULL;
    d->spec = spec ? strdup(spec) : NULL;
    d->weights = weights ? strdup(weights) : NULL;
    d->epochs = calloc((size_t)res->n_epochs + 1, sizeof *d->epochs);
    if ((spec && !d->spec) || (weights && !d->weights) || !d->epochs)
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    if (res->n_epochs > 0) memcpy(d->epochs, res->epochs, sizeof *d->epochs * (size_t)res->n_epochs);
    d->n_epochs = res->n_epochs;
    d->best_epoch = res->best_epoch;
    d->n_train = res->n_train;
    d->n_unlabeled = res->n_unlabeled;
    d->search = res->search;
    d->search.trials = NULL;
    if (res->search.n_trials > 0) {
        if (!(d->search.trials = malloc(sizeof *d->search.trials * (size_t)res->search.n_trials)))
            return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        memcpy(d->search.trials, res->search.trials, sizeof *d->search.trials * (size_t)res->search.n_trials);
    } else {
        d->search.n_trials = 0;
    }
    d->n_teachers = res->n_teachers;
    d->n_val = res->n_val;
    d->n_test = res->n_test;
    d->teacher_test_acc = res->teacher_test_acc;
    r->has_distill = true;
    return OD_STATUS_OK;
}

/* ---- shared formatting ------------------------------------------------------------------- */

const char *od_report_class_name(const od_report *r, int64_t c, char *buf, size_t size) {
    if (c >= 0 && c < r->n_class_names && r->class_names[c][0]) return r->class_names[c];
    snprintf(buf, size, "%lld", (long long)c);
    return buf;
}

const char *od_report_ms(double seconds, char *buf, size_t size) {
    double ms = seconds * 1e3;
    if (!(ms >= 0) || !isfinite(ms)) snprintf(buf, size, "-");
    else if (ms >= 100) snprintf(buf, size, "%.0f", ms);
    else if (ms >= 10) snprintf(buf, size, "%.1f", ms);
    else if (ms >= 1) snprintf(buf, size, "%.2f", ms);
    else if (ms >= 0.1) snprintf(buf, size, "%.3f", ms);
    else snprintf(buf, size, "%.4f", ms);
    return buf;
}

const char *od_report_ratio(double a, double b, char *buf, size_t size) {
    if (!(b > 0) || !isfinite(a / b)) snprintf(buf, size, "-");
    else if (a / b >= 100) snprintf(buf, size, "%.0fx", a / b);
    else if (a / b >= 10) snprintf(buf, size, "%.1fx", a / b);
    else if (a / b >= 0.1) snprintf(buf, size, "%.2fx", a / b);
    else snprintf(buf, size, "%.3fx", a / b);
    return buf;
}

const char *od_report_latency_name(const od_latency *l, char *buf, size_t size) {
    snprintf(buf, size, "batch %lld, %d thread%s", (long long)l->batch, l->threads, l->threads == 1 ? "" : "s");
    return buf;
}

const char *od_report_title(const od_report *r, char *buf, size_t size) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < r->n_models && o + 1 < size; i++) {
        const od_report_model *m = &r->models[i];
        const char *name = m->path ? base_name(m->path) : m->label;
        int w = snprintf(buf + o, size - o, "%s%s", i ? (r->has_distill ? " \u2192 " : " vs ") : "", name);
        if (w < 0) break;
        o += (size_t)w < size - o ? (size_t)w : size - o - 1;
    }
    return buf;
}

static const char *loss_name(od_loss_kind k) {
    return k == OD_LOSS_KD ? "kd" : k == OD_LOSS_LABELS ? "labels" : "l2";
}
static const char *sched_name(od_sched_kind k) {
    return k == OD_SCHED_STEP ? "step" : k == OD_SCHED_COSINE ? "cosine" : "constant";
}
static const char *optim_name(od_optim_kind k) {
    return k == OD_OPTIM_SGD ? "sgd" : k == OD_OPTIM_ADAMW ? "adamw" : "adam";
}

int od_report_option_rows(const od_report *r, char names[][32], char values[][96]) {
    const od_distill_options *o = &r->distill.options;
    int n = 0;
#define ROW(name, ...) (snprintf(names[n], 32, "%s", name), snprintf(values[n], 96, __VA_ARGS__), n++)
    if (r->distill.spec) ROW("student", "%s", r->distill.spec);
    ROW("epochs", "%d (kept %d)", o->epochs, r->distill.best_epoch);
    ROW("batch", "%lld", (long long)o->batch);
    ROW("threads", "%d", o->threads);
    ROW("seed", "%llu", (unsigned long long)o->seed);
    ROW("loss", "%s", loss_name(o->loss));
    if (o->loss == OD_LOSS_KD) ROW("temperature", "%g", o->temperature);
    ROW("label weight", "%g", o->label_weight);
    if (o->sigma_hi > 0) ROW("sigma", "uniform %g..%g", o->sigma_lo, o->sigma_hi);
    else ROW("sigma", "%g", o->sigma);
    ROW("alpha", "%g", o->alpha);
    if (r->distill.search.n_trials > 0)
        ROW("search", "auto: %d candidates, %d rungs, %.3g of %.3g epochs", r->distill.search.n_candidates, r->distill.search.n_rungs,
            r->distill.search.search_epochs, r->distill.search.budget_epochs);
    ROW("noise on", "%s", o->noise_on == OD_NOISE_STUDENT ? "student" : "teacher");
    if (r->distill.n_teachers > 1)
        ROW("teachers", "%d, %s", r->distill.n_teachers, o->teachers == OD_TEACHERS_DRAW ? "one drawn per sample" : "logits averaged");
    if (r->distill.n_unlabeled > 0) ROW("unlabelled samples", "%lld", (long long)r->distill.n_unlabeled);
    ROW("optimizer", "%s", optim_name(o->optim.kind));
    ROW("learning rate", "%g", o->lr);
    if (o->optim.kind == OD_OPTIM_SGD) ROW("momentum", "%g%s", o->optim.momentum, o->optim.nesterov ? " (Nesterov)" : "");
    ROW("weight decay", "%g", o->optim.weight_decay);
    ROW("schedule", "%s", sched_name(o->sched));
    if (o->sched == OD_SCHED_STEP) ROW("step", "x%g every %d epochs", o->step_gamma, o->step_epochs);
    ROW("warm-up epochs", "%g", o->warmup_epochs);
    ROW("validation split", "%g", o->val_split);
    ROW("train limit", "%lld", (long long)o->train_limit);
    ROW("test limit", "%lld", (long long)o->test_limit);
    if (r->distill.weights) ROW("weights", "%s", r->distill.weights);
#undef ROW
    return n;
}

/* ---- text --------------------------------------------------------------------------------- */

#define LABEL_W 28
#define CELL_W 17
#define RATIO_W 10

static void text_row(FILE *f, const od_report *r, const char *label, char cells[][40], char ratios[][24]) {
    fprintf(f, "%-*s", LABEL_W, label);
    for (int i = 0; i < r->n_models; i++) {
        fprintf(f, " %*s", CELL_W, cells[i]);
        if (i > 0) fprintf(f, " %*s", RATIO_W, ratios[i]);
    }
    fputc('\n', f);
}

static int64_t count_of(const od_report_model *m, int k) {
    return k == 0 ? (int64_t)m->bytes : k == 1 ? (int64_t)m->gzip_bytes : k == 2 ? m->params : m->macs;
}

const char *const od_report_count_labels[4] = {"file bytes", "gzip bytes (zlib -9)", "params", "MACs per sample"};

od_report_row_kind od_report_summary_row(const od_report *r, int row, int *sub, char (*cells)[40],
                                         char (*ratios)[24]) {
    const od_report_model *m0 = &r->models[0];
    char a[24], b[24];
    int n_lat = m0->n_latency;
    od_report_row_kind kind = row < 4                   ? OD_REPORT_ROW_COUNT
                              : row < 4 + n_lat         ? OD_REPORT_ROW_LATENCY
                              : !r->n_test              ? OD_REPORT_ROW_END
                              : row == 4 + n_lat        ? OD_REPORT_ROW_ACCURACY
                              : row == 4 + n_lat + 1    ? OD_REPORT_ROW_AGREEMENT
                                                        : OD_REPORT_ROW_END;
    int k = *sub = kind == OD_REPORT_ROW_COUNT ? row : row - 4;
    for (int i = 0; i < r->n_models && kind != OD_REPORT_ROW_END; i++) {
        const od_report_model *m = &r->models[i];
        char *c = cells[i], *q = ratios[i];
        switch (kind) {
        case OD_REPORT_ROW_COUNT:
            od_format_count(count_of(m, k), c, sizeof cells[i]);
            od_report_ratio((double)count_of(m, k), (double)count_of(m0, k), q, sizeof ratios[i]);
            break;
        case OD_REPORT_ROW_LATENCY:
            if (k < m->n_latency) {
                snprintf(c, sizeof cells[i], "%s / %s", od_report_ms(m->latency[k].median, a, sizeof a),
                         od_report_ms(m->latency[k].p90, b, sizeof b));
                od_report_ratio(m->latency[k].median, m0->latency[k].median, q, sizeof ratios[i]);
            } else {
                snprintf(c, sizeof cells[i], "-");
                snprintf(q, sizeof ratios[i], "-");
            }
            break;
        case OD_REPORT_ROW_ACCURACY:
            if (m->accuracy >= 0) snprintf(c, sizeof cells[i], "%.2f%%", 100 * m->accuracy);
            else snprintf(c, sizeof cells[i], "-");
            if (m->accuracy >= 0 && m0->accuracy >= 0)
                snprintf(q, sizeof ratios[i], "%+.2f pt", 100 * (m->accuracy - m0->accuracy));
            else snprintf(q, sizeof ratios[i], "-");
            break;
        default:
            if (m->agreement >= 0) snprintf(c, sizeof cells[i], "%.2f%%", 100 * m->agreement);
            else snprintf(c, sizeof cells[i], "-");
            q[0] = 0;
        }
    }
    return kind;
}

/* Classes where d is most often, "Shirt 20, Coat 5, Pullover 3" */
static void top_classes(const od_report *r, const od_report_diff *d, char *buf, size_t size) {
    size_t o = 0;
    buf[0] = 0;
    bool used[4096] = {0};
    for (int k = 0; k < 3; k++) {
        int64_t best = -1;
        for (int64_t c = 0; c < d->classes && c < 4096; c++)
            if (!used[c] && d->per_class[c] > 0 && (best < 0 || d->per_class[c] > d->per_class[best])) best = c;
        if (best < 0) break;
        used[best] = true;
        char nb[24];
        int w = snprintf(buf + o, size - o, "%s%s %lld", k ? ", " : "", od_report_class_name(r, best, nb, sizeof nb),
                         (long long)d->per_class[best]);
        if (w < 0 || (size_t)w >= size - o) break;
        o += (size_t)w;
    }
}

static void text_as_is(FILE *f, const char *s) { fputs(s, f); }

void od_report_summary_rows(FILE *f, const od_report *r, const od_report_table_syntax *syn) {
    const od_report_model *m0 = &r->models[0];
    char nb[32];
    char (*cells)[40] = calloc((size_t)r->n_models, sizeof *cells);
    char (*ratios)[24] = calloc((size_t)r->n_models, sizeof *ratios);
    int sub;
    od_report_row_kind kind;
    for (int row = 0; cells && ratios && (kind = od_report_summary_row(r, row, &sub, cells, ratios)) != OD_REPORT_ROW_END;
         row++) {
        fputs(syn->row_open, f);
        if (kind == OD_REPORT_ROW_COUNT) fputs(od_report_count_labels[sub], f);
        else if (kind == OD_REPORT_ROW_LATENCY)
            fprintf(f, "latency ms, %s%smedian / p90%s", od_report_latency_name(&m0->latency[sub], nb, sizeof nb),
                    syn->note_open, syn->note_close);
        else if (kind == OD_REPORT_ROW_ACCURACY) fputs("test accuracy", f);
        else {
            fputs("agreement with ", f);
            syn->text(f, m0->label);
        }
        fputs(syn->label_close, f);
        for (int i = 0; i < r->n_models; i++) {
            syn->cell(f, cells[i]);
            if (i) syn->cell(f, ratios[i]);
        }
        fputs(syn->row_close, f);
    }
    free(cells);
    free(ratios);
}

void od_report_data_phrase(FILE *f, const od_report *r, void (*text)(FILE *f, const char *s)) {
    if (r->data) {
        fputs(" of ", f);
        text(f, r->data);
    }
    if (r->preprocess[0]) {
        fputs(", preprocessing: ", f);
        text(f, r->preprocess);
    }
}

static void text_phase(FILE *f, const char *name, const od_report_phase *p) {
    char b[32];
    fprintf(f, "  %-22s %9.2f s", name, p->seconds);
    if (p->samples > 0 && p->seconds > 0)
        fprintf(f, " %14s samples/s", od_format_count((int64_t)llround((double)p->samples / p->seconds), b, sizeof b));
    fputc('\n', f);
}

void od_report_print(const od_report *r, FILE *f) {
    int n = r->n_models;
    if (n == 0) return;
    char (*cells)[40] = calloc((size_t)n, sizeof *cells);
    char (*ratios)[24] = calloc((size_t)n, sizeof *ratios);
    if (!cells || !ratios) {
        free(cells);
        free(ratios);
        fputs("out of memory for the summary\n", f);
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *lab = r->models[i].label;
        size_t len = strlen(lab);
        snprintf(cells[i], sizeof cells[i], "%s", len > CELL_W ? lab + len - CELL_W : lab);
        snprintf(ratios[i], sizeof ratios[i], "ratio");
    }
    text_row(f, r, "", cells, ratios);
    int sub;
    od_report_row_kind kind;
    for (int row = 0; (kind = od_report_summary_row(r, row, &sub, cells, ratios)) != OD_REPORT_ROW_END; row++) {
        char label[64];
        bool labelled = false;
        switch (kind) {
        case OD_REPORT_ROW_COUNT: text_row(f, r, od_report_count_labels[sub], cells, ratios); break;
        case OD_REPORT_ROW_LATENCY:
            if (sub == 0) fputs("latency, ms (median / p90)\n", f);
            snprintf(label, sizeof label, "  ");
            od_report_latency_name(&r->models[0].latency[sub], label + 2, sizeof label - 2);
            text_row(f, r, label, cells, ratios);
            break;
        case OD_REPORT_ROW_ACCURACY:
            for (int i = 0; i < n; i++)
                labelled |= r->models[i].accuracy >= 0;
            if (labelled) text_row(f, r, "test accuracy", cells, ratios);
            break;
        default:
            snprintf(label, sizeof label, "agreement with %s", r->models[0].label);
            if (n > 1) text_row(f, r, label, cells, ratios);
        }
    }
    if (r->n_test > 0) {
        char nb[32];
        fprintf(f, "\n(latency: ms per run of the batch; ratio: model / %s; accuracy on %s test samples",
                r->models[0].label, od_format_count(r->n_test, nb, sizeof nb));
        od_report_data_phrase(f, r, text_as_is);
        fputs(")\n", f);
        for (int i = 1; i < n; i++) {
            const od_report_model *m = &r->models[i];
            if (!m->wrong_ref_right.per_class) continue;
            char top1[256], top2[256];
            top_classes(r, &m->wrong_ref_right, top1, sizeof top1);
            top_classes(r, &m->right_ref_wrong, top2, sizeof top2);
            fprintf(f, "%s wrong where %s is right: %lld samples%s%s%s; the reverse: %lld%s%s%s\n", m->label, r->models[0].label,
                    (long long)m->wrong_ref_right.count, *top1 ? " (" : "", top1, *top1 ? ")" : "",
                    (long long)m->right_ref_wrong.count, *top2 ? " (" : "", top2, *top2 ? ")" : "");
        }
    } else {
        fprintf(f, "\n(latency: ms per run of the batch; ratio: model / %s)\n", r->models[0].label);
    }
    free(cells);
    free(ratios);
    if (!r->has_distill) return;
    const od_report_distill *d = &r->distill;
    char b1[32], b2[32];
    fprintf(f, "\ntraining: epoch %d of %d kept (best on %s validation samples), %s training samples\n", d->best_epoch,
            d->n_epochs, od_format_count(d->n_val, b1, sizeof b1), od_format_count(d->n_train, b2, sizeof b2));
    text_phase(f, "loading", &d->loading);
    text_phase(f, "teacher logits", &d->teacher_logits);
    text_phase(f, "epochs", &d->training);
    text_phase(f, "writing", &d->writing);
    fprintf(f, "  %-22s %9.2f s\n", "total", d->total_seconds);
    if (d->measuring.seconds > 0) text_phase(f, "measuring (this report)", &d->measuring);
}

/* ---- JSON -------------------------------------------------------------------------------- */

void od_print_escaped(FILE *f, const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len; i++) {
        bool c1 = s[i] == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f;
        if ((s[i] < 0x20 && s[i] != '\n') || s[i] == 0x7f)
            fprintf(f, "\\x%02x", s[i]);
        else if (c1)
            fprintf(f, "\\xc2\\x%02x", s[++i]);
        else
            fputc(s[i], f);
    }
}

void od_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* A number, or null when unknown (negative where that means unknown, or not finite). */
static void json_num(FILE *f, double v, bool negative_is_null) {
    if (!isfinite(v) || (negative_is_null && v < 0)) fputs("null", f);
    else fprintf(f, "%.10g", v);
}

static void json_ratio(FILE *f, double a, double b) {
    if (b > 0 && isfinite(a / b)) fprintf(f, "%.6g", a / b);
    else fputs("null", f);
}

static void json_diff(FILE *f, const od_report_diff *d) {
    fprintf(f, "{\"count\": %lld, \"per_class\": [", (long long)d->count);
    for (int64_t c = 0; c < d->classes; c++) fprintf(f, "%s%lld", c ? ", " : "", (long long)d->per_class[c]);
    fputs("], \"samples\": [", f);
    for (int k = 0; k < d->n_samples; k++) {
        const od_report_sample *s = &d->samples[k];
        fprintf(f, "%s{\"index\": %lld, \"label\": %d, \"pred\": %d, \"ref_pred\": %d}", k ? ", " : "", (long long)s->index,
                s->label, s->pred, s->ref_pred);
    }
    fputs("]}", f);
}

static void json_phase(FILE *f, const char *name, const od_report_phase *p, bool last) {
    fprintf(f, "      \"%s\": {\"seconds\": %.6g, \"samples\": %lld, \"samples_per_s\": ", name, p->seconds, (long long)p->samples);
    if (p->samples > 0 && p->seconds > 0) fprintf(f, "%.6g", (double)p->samples / p->seconds);
    else fputs("null", f);
    fprintf(f, "}%s\n", last ? "" : ",");
}

static void write_json(const od_report *r, FILE *f) {
    fprintf(f, "{\n  \"tool\": \"onnx-distill %s\",\n  \"kind\": \"%s\",\n  \"data\": ", OD_VERSION,
            r->has_distill ? "distill" : "compare");
    if (r->data) od_json_string(f, r->data);
    else fputs("null", f);
    fputs(",\n  \"preprocessing\": ", f);
    if (r->preprocess[0]) od_json_string(f, r->preprocess);
    else fputs("null", f);
    fprintf(f, ",\n  \"test_samples\": %lld,\n  \"classes\": %lld,\n  \"class_names\": [", (long long)r->n_test,
            (long long)r->n_classes);
    for (int64_t c = 0; c < r->n_classes; c++) {
        char nb[24];
        fputs(c ? ", " : "", f);
        od_json_string(f, od_report_class_name(r, c, nb, sizeof nb));
    }
    fputs("],\n  \"models\": [", f);
    const od_report_model *m0 = r->n_models ? &r->models[0] : NULL;
    for (int i = 0; i < r->n_models; i++) {
        const od_report_model *m = &r->models[i];
        fputs(i ? ",\n    {\"label\": " : "\n    {\"label\": ", f);
        od_json_string(f, m->label);
        fputs(", \"path\": ", f);
        if (m->path) od_json_string(f, m->path);
        else fputs("null", f);
        fprintf(f, ",\n     \"bytes\": %zu, \"gzip_bytes\": %zu, \"params\": %lld, \"macs\": %lld,\n     \"latency\": [",
                m->bytes, m->gzip_bytes, (long long)m->params, (long long)m->macs);
        for (int k = 0; k < m->n_latency; k++) {
            const od_latency *l = &m->latency[k];
            fprintf(f, "%s{\"batch\": %lld, \"threads\": %d, \"median_ms\": %.6g, \"p10_ms\": %.6g, \"p90_ms\": %.6g, \"runs\": %lld}",
                    k ? ",\n                 " : "", (long long)l->batch, l->threads, 1e3 * l->median, 1e3 * l->p10, 1e3 * l->p90,
                    (long long)l->runs);
        }
        fputs("],\n     \"accuracy\": ", f);
        json_num(f, m->accuracy, true);
        fputs(", \"agreement\": ", f);
        json_num(f, m->agreement, true);
        if (m->eval.classes > 0) {
            fprintf(f, ", \"correct\": %lld,\n     \"per_class\": [", (long long)m->eval.correct);
            for (int64_t c = 0; c < m->eval.classes; c++) {
                fputs(c ? ", " : "", f);
                json_num(f, m->eval.per_class[c], true);
            }
            fputs("],\n     \"support\": [", f);
            for (int64_t c = 0; c < m->eval.classes; c++) fprintf(f, "%s%lld", c ? ", " : "", (long long)m->eval.support[c]);
            fputs("],\n     \"confusion\": [", f);
            for (int64_t c = 0; c < m->eval.classes; c++) {
                fputs(c ? ",\n                   [" : "[", f);
                for (int64_t j = 0; j < m->eval.classes; j++)
                    fprintf(f, "%s%lld", j ? ", " : "", (long long)m->eval.confusion[c * m->eval.classes + j]);
                fputs("]", f);
            }
            fputs("]", f);
        }
        if (i > 0) {
            fputs(",\n     \"ratios\": {\"bytes\": ", f);
            json_ratio(f, (double)m->bytes, (double)m0->bytes);
            fputs(", \"gzip_bytes\": ", f);
            json_ratio(f, (double)m->gzip_bytes, (double)m0->gzip_bytes);
            fputs(", \"params\": ", f);
            json_ratio(f, (double)m->params, (double)m0->params);
            fputs(", \"macs\": ", f);
            json_ratio(f, (double)m->macs, (double)m0->macs);
            fputs(", \"latency_median\": [", f);
            for (int k = 0; k < m->n_latency; k++) {
                fputs(k ? ", " : "", f);
                if (k < m0->n_latency) json_ratio(f, m->latency[k].median, m0->latency[k].median);
                else fputs("null", f);
            }
            fputs("], \"accuracy_delta\": ", f);
            /* as precise as the accuracies themselves, so that their difference checks out */
            if (m->accuracy >= 0 && m0->accuracy >= 0) json_num(f, m->accuracy - m0->accuracy, false);
            else fputs("null", f);
            fputs("}", f);
            if (m->wrong_ref_right.per_class) {
                fputs(",\n     \"wrong_where_first_right\": ", f);
                json_diff(f, &m->wrong_ref_right);
                fputs(",\n     \"right_where_first_wrong\": ", f);
                json_diff(f, &m->right_ref_wrong);
            }
        }
        fputs("}", f);
    }
    fputs("\n  ]", f);
    if (r->has_distill) {
        const od_report_distill *d = &r->distill;
        const od_distill_options *o = &d->options;
        fputs(",\n  \"distill\": {\n    \"student\": ", f);
        od_json_string(f, d->spec);
        fputs(",\n    \"weights\": ", f);
        od_json_string(f, d->weights);
        fprintf(f, ",\n    \"options\": {\"epochs\": %d, \"batch\": %lld, \"threads\": %d, \"seed\": %llu, \"loss\": \"%s\", "
                   "\"temperature\": %g, \"label_weight\": %g,\n                \"sigma\": %g, \"alpha\": %g, \"noise_on\": \"%s\", \"sigma_range\": ",
                o->epochs, (long long)o->batch, o->threads, (unsigned long long)o->seed, loss_name(o->loss), o->temperature,
                o->label_weight, o->sigma, o->alpha, o->noise_on == OD_NOISE_STUDENT ? "student" : "teacher");
        if (o->sigma_hi > 0) fprintf(f, "[%g, %g]", o->sigma_lo, o->sigma_hi);
        else fputs("null", f);
        fprintf(f, ", \"optimizer\": \"%s\", \"lr\": %g, \"momentum\": %g, \"nesterov\": %s, \"weight_decay\": %g,\n"
                   "                \"schedule\": \"%s\", \"warmup_epochs\": %g, \"step_epochs\": %d, \"step_gamma\": %g, "
                   "\"val_split\": %g, \"train_limit\": %lld, \"test_limit\": %lld},\n",
                optim_name(o->optim.kind), o->lr, o->optim.momentum, o->optim.nesterov ? "true" : "false", o->optim.weight_decay,
                sched_name(o->sched), o->warmup_epochs, o->step_epochs, o->step_gamma, o->val_split, (long long)o->train_limit,
                (long long)o->test_limit);
        fprintf(f, "    \"n_train\": %lld, \"n_unlabeled\": %lld, \"teachers\": %d, \"teachers_mode\": \"%s\", \"n_val\": %lld, \"n_test\": %lld, \"best_epoch\": %d, \"teacher_test_accuracy\": ",
                (long long)d->n_train, (long long)d->n_unlabeled, d->n_teachers > 0 ? d->n_teachers : 1,
                o->teachers == OD_TEACHERS_DRAW ? "draw" : "mean", (long long)d->n_val, (long long)d->n_test, d->best_epoch);
        json_num(f, d->teacher_test_acc, true);
        fputs(",\n    \"epochs\": [", f);
        for (int e = 0; e < d->n_epochs; e++) {
            const od_epoch_stats *s = &d->epochs[e];
            fprintf(f, "%s{\"epoch\": %d, \"loss\": ", e ? ",\n               " : "", s->epoch);
            json_num(f, s->loss, false);
            fputs(", \"val_accuracy\": ", f);
            json_num(f, s->val_acc, true);
            fputs(", \"val_agreement\": ", f);
            json_num(f, s->val_agree, true);
            fputs(", \"test_accuracy\": ", f);
            json_num(f, s->test_acc, true);
            fputs(", \"test_agreement\": ", f);
            json_num(f, s->test_agree, true);
            fprintf(f, ", \"seconds\": %.6g, \"samples_per_s\": %.6g}", s->seconds, s->samples_per_s);
        }
        fputs("],\n", f);
        const od_search_result *sr = &d->search;
        if (sr->n_trials > 0) {
            fprintf(f, "    \"search\": {\"candidates\": %d, \"rungs\": %d, \"budget_epochs\": %.6g, \"search_epochs\": %.6g, \"seconds\": %.6g, "
                       "\"n_val\": %lld, \"score\": \"%s\", \"winner\": %d, \"why\": ",
                    sr->n_candidates, sr->n_rungs, sr->budget_epochs, sr->search_epochs, sr->seconds, (long long)sr->n_val,
                    sr->val_is_agreement ? "validation agreement" : "validation accuracy", sr->winner);
            od_json_string(f, sr->why);
            char untried[320];
            od_search_untried_text(sr, untried, sizeof untried);
            fprintf(f, ", \"untried\": %d, \"budget_for_all\": %.6g, \"untried_why\": ", sr->n_untried, sr->n_untried ? sr->budget_for_all : 0);
            od_json_string(f, untried);
            fputs(",\n      \"trials\": [", f);
            for (int t = 0; t < sr->n_trials; t++) {
                const od_search_trial *x = &sr->trials[t];
                fprintf(f, "%s{\"rung\": %d, \"labels_only\": %s, \"sigma\": %g, \"alpha\": %g, \"label_weight\": %g, \"lr\": %g, \"epochs\": %.4g, \"val\": ",
                        t ? ",\n                 " : "", x->rung, x->labels_only ? "true" : "false", x->sigma, x->alpha, x->label_weight, x->lr, x->epochs);
                json_num(f, x->val_acc, true);
                fprintf(f, ", \"promoted\": %s}", x->promoted ? "true" : "false");
            }
            fputs("]},\n", f);
        }
        fputs("    \"time\": {\n", f);
        json_phase(f, "loading", &d->loading, false);
        json_phase(f, "teacher_logits", &d->teacher_logits, false);
        json_phase(f, "epochs", &d->training, false);
        json_phase(f, "writing", &d->writing, false);
        json_phase(f, "measuring", &d->measuring, false);
        fprintf(f, "      \"total_seconds\": %.6g\n    }\n  }", d->total_seconds);
    }
    fputs("\n}\n", f);
}

/* ---- Markdown ---------------------------------------------------------------------------- */

int od_report_top_pairs(const od_class_eval *e, od_report_pair *out, int max) {
    int n = 0;
    int64_t K = e->classes;
    for (int64_t c = 0; c < K; c++)
        for (int64_t j = 0; j < K; j++) {
            int64_t v = e->confusion[c * K + j];
            if (c == j || !v) continue;
            /* insertion into a short sorted list: K*K cells, max (25) kept */
            int k = n < max ? n++ : max;
            if (k == max && v <= out[max - 1].count) continue;
            if (k == max) k = max - 1;
            while (k > 0 && out[k - 1].count < v) out[k] = out[k - 1], k--;
            out[k] = (od_report_pair){c, j, v};
        }
    return n;
}

int64_t od_report_shown_classes(const od_report *r, int64_t *out, int64_t cap) {
    const od_class_eval *e = &r->models[r->n_models - 1].eval;
    int64_t K = r->models[0].eval.classes;
    if (K <= OD_REPORT_MATRIX_MAX_CLASSES) {
        for (int64_t c = 0; c < K && c < cap; c++) out[c] = c;
        return K < cap ? K : cap;
    }
    int64_t n = 0, max = cap < OD_REPORT_TOP ? cap : OD_REPORT_TOP;
    for (int64_t c = 0; c < K; c++) {
        double acc = c < e->classes && e->per_class[c] >= 0 ? e->per_class[c] : 2; /* no samples: last */
        int64_t k = n < max ? n++ : max;
        if (k == max) {
            double worst = out[max - 1] < e->classes && e->per_class[out[max - 1]] >= 0 ? e->per_class[out[max - 1]] : 2;
            if (acc >= worst) continue;
            k = max - 1;
        }
        while (k > 0) {
            int64_t p = out[k - 1];
            double pa = p < e->classes && e->per_class[p] >= 0 ? e->per_class[p] : 2;
            if (pa <= acc) break;
            out[k] = p, k--;
        }
        out[k] = c;
    }
    return n;
}

int od_report_top_diff_classes(const od_report_diff *d, int64_t *out, int max) {
    int n = 0;
    for (int64_t c = 0; c < d->classes; c++) {
        int64_t v = d->per_class[c];
        if (!v) continue;
        int k = n < max ? n++ : max;
        if (k == max && v <= d->per_class[out[max - 1]]) continue;
        if (k == max) k = max - 1;
        while (k > 0 && d->per_class[out[k - 1]] < v) out[k] = out[k - 1], k--;
        out[k] = c;
    }
    return n;
}

static void md_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (strchr("|\\*_`<>[]", *s)) fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
}

static void md_confusion(FILE *f, const od_report *r, const od_report_model *m) {
    const od_class_eval *e = &m->eval;
    char nb[24];
    fputs("\n### ", f);
    md_text(f, m->label);
    fputs(": confusion matrix (rows: true class, columns: predicted)\n\n| true \\\\ predicted |", f);
    for (int64_t j = 0; j < e->classes; j++) {
        fputc(' ', f);
        md_text(f, od_report_class_name(r, j, nb, sizeof nb));
        fputs(" |", f);
    }
    fputs("\n|---|", f);
    for (int64_t j = 0; j < e->classes; j++) fputs("---:|", f);
    fputc('\n', f);
    for (int64_t c = 0; c < e->classes; c++) {
        fputs("| ", f);
        md_text(f, od_report_class_name(r, c, nb, sizeof nb));
        fputs(" |", f);
        for (int64_t j = 0; j < e->classes; j++) {
            int64_t v = e->confusion[c * e->classes + j];
            fprintf(f, c == j ? " **%lld** |" : " %lld |", (long long)v);
        }
        fputc('\n', f);
    }
}

static void md_pairs(FILE *f, const od_report *r, const od_report_model *m) {
    od_report_pair top[OD_REPORT_TOP];
    int n = od_report_top_pairs(&m->eval, top, OD_REPORT_TOP);
    char nb[24], pb[24];
    fputs("\n### ", f);
    md_text(f, m->label);
    fprintf(f, ": the %d most confused pairs of %lld classes\n\n| true class | predicted | samples | share of the class |\n|---|---|---:|---:|\n",
            n, (long long)m->eval.classes);
    for (int k = 0; k < n; k++) {
        int64_t sup = m->eval.support[top[k].label];
        fputs("| ", f);
        md_text(f, od_report_class_name(r, top[k].label, nb, sizeof nb));
        fputs(" | ", f);
        md_text(f, od_report_class_name(r, top[k].pred, pb, sizeof pb));
        fprintf(f, " | %lld | %.1f%% |\n", (long long)top[k].count, sup ? 100.0 * (double)top[k].count / (double)sup : 0);
    }
}

static void md_diff(FILE *f, const od_report *r, const od_report_model *m, const od_report_diff *d, const char *title) {
    char nb[24], b2[24], b3[24];
    fprintf(f, "\n### %s: %lld samples\n\n", title, (long long)d->count);
    if (!d->count) return;
    int64_t top[OD_REPORT_TOP];
    int n_top = od_report_top_diff_classes(d, top, OD_REPORT_TOP);
    fputs("| true class | samples |\n|---|---:|\n", f);
    for (int t = 0; t < n_top; t++) {
        int64_t c = top[t];
        fputs("| ", f);
        md_text(f, od_report_class_name(r, c, nb, sizeof nb));
        fprintf(f, " | %lld |\n", (long long)d->per_class[c]);
    }
    fprintf(f, "\nThe first %d:\n\n| test sample | true class | ", d->n_samples);
    md_text(f, m->label);
    fputs(" | ", f);
    md_text(f, r->models[0].label);
    fputs(" |\n|---:|---|---|---|\n", f);
    for (int k = 0; k < d->n_samples; k++) {
        const od_report_sample *s = &d->samples[k];
        fprintf(f, "| %lld | ", (long long)s->index);
        md_text(f, od_report_class_name(r, s->label, nb, sizeof nb));
        fputs(" | ", f);
        md_text(f, od_report_class_name(r, s->pred, b2, sizeof b2));
        fputs(" | ", f);
        md_text(f, od_report_class_name(r, s->ref_pred, b3, sizeof b3));
        fputs(" |\n", f);
    }
}

static void md_phase(FILE *f, const char *name, const od_report_phase *p) {
    char b[32];
    fprintf(f, "| %s | %.2f | ", name, p->seconds);
    if (p->samples > 0 && p->seconds > 0) fputs(od_format_count((int64_t)llround((double)p->samples / p->seconds), b, sizeof b), f);
    fputs(" |\n", f);
}

/* " text |", or " |" for an empty cell */
static void md_cell(FILE *f, const char *text) {
    if (text[0]) fprintf(f, " %s |", text);
    else fputs(" |", f);
}

static void write_markdown(const od_report *r, FILE *f) {
    char title[1024], a[24], b[24], nb[32];
    int n = r->n_models;
    if (!n) return;
    const od_report_model *m0 = &r->models[0];
    fputs("# ", f);
    md_text(f, od_report_title(r, title, sizeof title));
    fputs(r->has_distill ? "\n\nDistillation report from onnx-distill " : "\n\nModel comparison from onnx-distill ", f);
    fprintf(f, "%s. Ratios divide each model's value by %s's%s.\n\n", OD_VERSION, m0->label,
            r->n_test ? "; accuracy is on the test samples named below the table" : "");
    fputs("| |", f);
    for (int i = 0; i < n; i++) {
        fputc(' ', f);
        md_text(f, r->models[i].label);
        fputs(i ? " | ratio |" : " |", f);
    }
    fputs("\n|---|", f);
    for (int i = 0; i < n; i++) fputs(i ? "---:|---:|" : "---:|", f);
    fputc('\n', f);
    static const od_report_table_syntax md = {"| ", " |", "\n", " (", ")", md_text, md_cell};
    od_report_summary_rows(f, r, &md);
    if (r->n_test) {
        fprintf(f, "\nEvaluated on %s test samples", od_format_count(r->n_test, nb, sizeof nb));
        od_report_data_phrase(f, r, md_text);
        fputs(".\n", f);
    }
    bool labelled = r->n_test && m0->eval.classes > 0;
    if (labelled) {
        fputs("\n## Accuracy per class\n\n| class | samples |", f);
        for (int i = 0; i < n; i++) {
            fputc(' ', f);
            md_text(f, r->models[i].label);
            fputs(" |", f);
        }
        fputs("\n|---|---:|", f);
        for (int i = 0; i < n; i++) fputs("---:|", f);
        fputc('\n', f);
        int64_t shown[OD_REPORT_MATRIX_MAX_CLASSES + 1];
        int64_t n_shown = od_report_shown_classes(r, shown, OD_REPORT_MATRIX_MAX_CLASSES + 1);
        for (int64_t s = 0; s < n_shown; s++) {
            int64_t c = shown[s];
            fputs("| ", f);
            md_text(f, od_report_class_name(r, c, nb, sizeof nb));
            fprintf(f, " | %lld |", (long long)m0->eval.support[c]);
            for (int i = 0; i < n; i++) {
                const od_class_eval *e = &r->models[i].eval;
                if (c < e->classes && e->per_class[c] >= 0) fprintf(f, " %.2f%% |", 100 * e->per_class[c]);
                else fputs(" - |", f);
            }
            fputc('\n', f);
        }
        if (n_shown < m0->eval.classes)
            fprintf(f, "\n(the %lld of %lld classes with the lowest accuracy for %s; every class is in the JSON report)\n",
                    (long long)n_shown, (long long)m0->eval.classes, r->models[n - 1].label);
        fputs("\n## Confusion matrices\n", f);
        for (int i = 0; i < n; i++)
            if (r->models[i].eval.classes > 0 && r->models[i].eval.classes <= OD_REPORT_MATRIX_MAX_CLASSES) md_confusion(f, r, &r->models[i]);
            else if (r->models[i].eval.classes > OD_REPORT_MATRIX_MAX_CLASSES) md_pairs(f, r, &r->models[i]);
        for (int i = 1; i < n; i++) {
            const od_report_model *m = &r->models[i];
            if (!m->wrong_ref_right.per_class) continue;
            char t[512];
            fputs("\n## Where ", f);
            md_text(f, m->label);
            fputs(" and ", f);
            md_text(f, m0->label);
            fputs(" differ\n", f);
            snprintf(t, sizeof t, "%s wrong, %s right", m->label, m0->label);
            md_diff(f, r, m, &m->wrong_ref_right, t);
            snprintf(t, sizeof t, "%s right, %s wrong", m->label, m0->label);
            md_diff(f, r, m, &m->right_ref_wrong, t);
        }
    }
    if (!r->has_distill) return;
    const od_report_distill *d = &r->distill;
    fprintf(f, "\n## Training\n\nEpoch %d of %d kept (best on %s validation samples); %s training samples.\n\n", d->best_epoch,
            d->n_epochs, od_format_count(d->n_val, a, sizeof a), od_format_count(d->n_train, b, sizeof b));
    fputs("| phase | seconds | samples/s |\n|---|---:|---:|\n", f);
    md_phase(f, "loading", &d->loading);
    md_phase(f, "teacher logits", &d->teacher_logits);
    md_phase(f, "epochs", &d->training);
    md_phase(f, "writing", &d->writing);
    fprintf(f, "| **total** | **%.2f** | |\n", d->total_seconds);
    if (d->measuring.seconds > 0) md_phase(f, "measuring (this report)", &d->measuring);
    fputs("\n### Per epoch\n\n| epoch | loss | val accuracy | val agreement | test accuracy | test agreement | seconds | samples/s |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|\n", f);
    for (int e = 0; e < d->n_epochs; e++) {
        const od_epoch_stats *s = &d->epochs[e];
        fprintf(f, "| %d%s | %.4f |", s->epoch, s->epoch == d->best_epoch ? " (kept)" : "", s->loss);
        const double v[4] = {s->val_acc, s->val_agree, s->test_acc, s->test_agree};
        for (int k = 0; k < 4; k++)
            if (v[k] >= 0) fprintf(f, " %.2f%% |", 100 * v[k]);
            else fputs(" - |", f);
        fprintf(f, " %.1f | %s |\n", s->seconds, od_format_count((int64_t)llround(s->samples_per_s), nb, sizeof nb));
    }
    const od_search_result *sr = &d->search;
    if (sr->n_trials > 0) {
        fprintf(f, "\n### Noise search\n\nSuccessive halving over %d candidates in %d rung%s on the %s-sample validation split: %.2f of "
                   "%.3g budget epochs, %.1f s; the student written is the winning finalist's own %d-epoch run. ",
                sr->n_candidates, sr->n_rungs, sr->n_rungs == 1 ? "" : "s", od_format_count(sr->n_val, a, sizeof a), sr->search_epochs, sr->budget_epochs, sr->seconds,
                d->options.epochs);
        md_text(f, sr->why);
        char untried[320];
        od_search_untried_text(sr, untried, sizeof untried);
        if (*untried) fputs(" ", f), md_text(f, untried), fputs(".", f);
        fprintf(f, "\n\n| rung | candidate | lr | epochs | %s | |\n|---:|---|---:|---:|---:|---|\n",
                sr->val_is_agreement ? "validation agreement" : "validation accuracy");
        for (int t = 0; t < sr->n_trials; t++) {
            const od_search_trial *x = &sr->trials[t];
            char name[96];
            od_search_trial_name(x, name, sizeof name);
            fprintf(f, "| %d | %s | %g | %.2f | ", x->rung, name, x->lr, x->epochs);
            if (x->val_acc >= 0) fprintf(f, "%.2f%%", 100 * x->val_acc);
            else fputs("failed", f);
            fprintf(f, " | %s |\n", t == sr->winner ? "**winner**" : x->promoted ? "next rung" : "");
        }
    }
    char names[32][32], values[32][96];
    int rows = od_report_option_rows(r, names, values);
    fputs("\n### Hyper-parameters\n\n| option | value |\n|---|---|\n", f);
    for (int k = 0; k < rows; k++) {
        fprintf(f, "| %s | ", names[k]);
        md_text(f, values[k]);
        fputs(" |\n", f);
    }
    if (d->spec && strlen(d->spec) >= 96) { /* the table cuts it short (a --budget's candidates, say) */
        fputs("\n**student, in full:** ", f);
        md_text(f, d->spec);
        fputs("\n", f);
    }
}

/* ---- output ------------------------------------------------------------------------------- */

void od_report_write(const od_report *r, od_report_format fmt, FILE *f) {
    switch (fmt) {
    case OD_REPORT_TEXT: od_report_print(r, f); break;
    case OD_REPORT_JSON: write_json(r, f); break;
    case OD_REPORT_MARKDOWN: write_markdown(r, f); break;
    case OD_REPORT_HTML: od_report_write_html(r, f); break;
    }
}

od_status od_report_format_from_path(const char *path, od_report_format *out, od_error *err) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash)) {
        if (!strcasecmp(dot, ".json")) return *out = OD_REPORT_JSON, OD_STATUS_OK;
        if (!strcasecmp(dot, ".md")) return *out = OD_REPORT_MARKDOWN, OD_STATUS_OK;
        if (!strcasecmp(dot, ".html")) return *out = OD_REPORT_HTML, OD_STATUS_OK;
    }
    return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "%s: a report is .json, .md or .html", path);
}

od_status od_report_save(const od_report *r, const char *path, od_error *err) {
    od_report_format fmt;
    od_status st = od_report_format_from_path(path, &fmt, err);
    if (st) return st;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    od_report_write(r, fmt, f);
    bool bad = ferror(f);
    if (fclose(f) != 0 || bad) st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory writing the report", path);
    else st = od_file_write_atomic(path, buf, len, err);
    free(buf);
    return st;
}

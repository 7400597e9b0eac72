/* --sigma auto, --alpha auto, --label-weight auto: successive halving on the validation split.
 *
 * The candidates are sigma in S x alpha in A x label weight in W (sigma 0 once per label weight:
 * alpha means nothing there), plus the labels alone, at their own learning rate (lr_labels: the
 * two losses want different step sizes; lr sets the others'). Every candidate of a rung
 * trains from the same initial student with the same seed (a paired comparison: the same
 * initialisation and data order, the noise draws apart) for the rung's length and is scored on
 * the validation split (its best epoch); the better half goes on to the next rung, whose runs are
 * twice as long. The search spends budget - epochs epochs, split evenly over the rungs; the
 * winner of the last rung is then trained afresh for --epochs (at its own learning rate) on the
 * same logit cache, and that student is the one written (the search's own short-run models are
 * not kept). */
#include "distill_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const float default_sigmas[] = {0, 0.1f, 0.3f, 1.0f}, default_alphas[] = {0.1f, 0.5f, 1.0f},
                   default_label_weights[] = {0, 0.5f};

typedef struct candidate {
    float sigma, alpha, label_weight;
    bool labels_only;
    double score;
    int order; /* position in the list: ties go to the earlier (the plain teacher first) */
} candidate;

/* The student's float initializers, saved and restored so that every trial starts alike. */
static int64_t weights_count(const od_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->graph.n_inits; i++) {
        const od_tensor *t = m->graph.values[m->graph.inits[i]].init;
        if (t && t->dtype == OD_DTYPE_FLOAT) n += (int64_t)(t->nbytes / sizeof(float));
    }
    return n;
}

static void weights_copy(od_model *m, float *buf, bool restore) {
    for (int i = 0; i < m->graph.n_inits; i++) {
        od_tensor *t = m->graph.values[m->graph.inits[i]].init;
        if (!t || t->dtype != OD_DTYPE_FLOAT) continue;
        if (restore) memcpy(t->data, buf, t->nbytes);
        else memcpy(buf, t->data, t->nbytes);
        buf += t->nbytes / sizeof(float);
    }
}

void od_search_trial_name(const od_search_trial *t, char *buf, size_t size) {
    if (t->labels_only) snprintf(buf, size, "labels only");
    else if (t->sigma == 0) snprintf(buf, size, "sigma 0");
    else snprintf(buf, size, "sigma %g, alpha %g", t->sigma, t->alpha);
    if (!t->labels_only && t->label_weight > 0) {
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, ", label weight %g", t->label_weight);
    }
}

/* The options of one candidate's run; the labels alone train at their own learning rate. */
static od_distill_options candidate_options(const od_distill_options *opt, bool labels_only, float sigma, float alpha,
                                            float label_weight) {
    od_distill_options o = *opt;
    o.sigma_auto = o.alpha_auto = o.label_weight_auto = false;
    o.sigma = labels_only ? 0 : sigma;
    o.alpha = alpha;
    o.label_weight = label_weight;
    if (labels_only) o.loss = OD_LOSS_LABELS, o.lr = opt->lr_labels;
    return o;
}

static int by_score(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->order - y->order;
}

/* The last trial of the candidate named like c, or NULL. */
static const od_search_trial *last_trial(const od_search_result *sr, bool labels_only, bool sigma0) {
    for (int i = sr->n_trials - 1; i >= 0; i--)
        if (sr->trials[i].labels_only == labels_only && (labels_only || (sr->trials[i].sigma == 0) == sigma0) &&
            (labels_only || !sigma0 || sr->trials[i].label_weight == 0))
            return &sr->trials[i];
    return NULL;
}

static void explain(od_search_result *sr, const od_search_trial *win, const od_search_trial *second) {
    char w[96], s[96];
    const char *what = sr->val_is_agreement ? "agreement with the teacher" : "validation accuracy";
    od_search_trial_name(win, w, sizeof w);
    double p = win->val_acc, se = sr->n_val > 0 && p >= 0 ? 100 * sqrt(p * (1 - p) / (double)sr->n_val) : 0;
    size_t o = (size_t)snprintf(sr->why, sizeof sr->why, "%s won the last rung (%d of %d, %.2f epochs each) with %.2f%% %s on the %lld-sample validation split",
                                w, win->rung, sr->n_rungs, win->epochs, 100 * p, what, (long long)sr->n_val);
    if (second && o < sizeof sr->why) {
        od_search_trial_name(second, s, sizeof s);
        double d = 100 * (win->val_acc - second->val_acc);
        o += (size_t)snprintf(sr->why + o, sizeof sr->why - o, ", %.2f points ahead of %s (%.2f%%); one standard error there is %.1f points, so the lead is %s",
                              d, s, 100 * second->val_acc, se, d > 2 * se ? "clear" : d > se ? "modest" : "within the noise (a close call)");
    }
    const od_search_trial *plain = last_trial(sr, false, true), *labels = last_trial(sr, true, false);
    if (plain && plain != win && o < sizeof sr->why)
        o += (size_t)snprintf(sr->why + o, sizeof sr->why - o, ". The plain teacher (sigma 0) reached %.2f%% at rung %d", 100 * plain->val_acc, plain->rung);
    if (labels && labels != win && o < sizeof sr->why)
        o += (size_t)snprintf(sr->why + o, sizeof sr->why - o, "%s the labels alone %.2f%% at rung %d", plain && plain != win ? "," : ". The", 100 * labels->val_acc,
                              labels->rung);
    if (o < sizeof sr->why) snprintf(sr->why + o, sizeof sr->why - o, ".");
}

od_status noise_search(const od_model *teacher, od_model *student, const od_data_split *data, const od_preprocess *pre,
                       const od_distill_options *opt, od_distill_result *res, od_error *err) {
    memset(res, 0, sizeof *res);
    res->search.winner = -1;
    if (opt->sigma_hi > 0)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: --sigma-range and an auto search exclude each other");
    if (opt->loss == OD_LOSS_LABELS && (opt->sigma_auto || opt->alpha_auto))
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: --sigma/--alpha auto search the noise on logits: use --loss l2 or kd");
    if (!(opt->val_split > 0))
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: an auto search chooses on the validation split: --val-split must be above 0");
    if (opt->epochs < 1 || opt->batch < 1) return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: options out of range");
    if (!(opt->lr_labels > 0)) return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: --lr-labels must be above 0");
    double budget = opt->search_budget > 0 ? opt->search_budget : 2.0 * opt->epochs, search_epochs = budget - opt->epochs;
    if (!(search_epochs > 0))
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "distill: --search-budget %g epochs leaves nothing for the search: it covers the search and the final %d epochs",
                            budget, opt->epochs);

    /* the candidates */
    const float *S = opt->sigma_auto ? (opt->n_sigma_candidates ? opt->sigma_candidates : default_sigmas) : &opt->sigma;
    const float *A = opt->alpha_auto ? (opt->n_alpha_candidates ? opt->alpha_candidates : default_alphas) : &opt->alpha;
    const float *W = opt->label_weight_auto ? (opt->n_label_weight_candidates ? opt->label_weight_candidates : default_label_weights)
                                            : &opt->label_weight;
    int nS = opt->sigma_auto ? (opt->n_sigma_candidates ? opt->n_sigma_candidates : 4) : 1;
    int nA = opt->alpha_auto ? (opt->n_alpha_candidates ? opt->n_alpha_candidates : 3) : 1;
    int nW = opt->label_weight_auto ? (opt->n_label_weight_candidates ? opt->n_label_weight_candidates : 2) : 1;
    candidate cand[16 * 16 * 16 + 1];
    int N = 0;
    for (int w = 0; w < nW; w++)
        for (int s = 0; s < nS; s++)
            for (int a = 0; a < (S[s] == 0 ? 1 : nA); a++)
                cand[N] = (candidate){S[s], S[s] == 0 ? opt->alpha : A[a], W[w], false, 0, N}, N++;
    if (data->train.labels) cand[N] = (candidate){0, opt->alpha, 0, true, 0, N}, N++;

    od_search_result *sr = &res->search;
    int rungs = 0;
    while ((1 << rungs) < N) rungs++;
    int64_t n_all = opt->train_limit > 0 && opt->train_limit < data->train.n ? opt->train_limit : data->train.n;
    int64_t n_val = (int64_t)(opt->val_split * (double)n_all);
    int64_t full = (n_all - n_val + (opt->unlabeled ? opt->unlabeled->n : 0)) / opt->batch; /* batches in an epoch */
    if (full < 1) full = 1;
    sr->n_rungs = rungs;
    sr->n_candidates = N;
    sr->budget_epochs = budget;
    sr->n_val = n_val;
    sr->val_is_agreement = !data->train.labels;
    sr->winner = -1;
    sr->trials = calloc((size_t)(2 * N + 2), sizeof *sr->trials);
    float *initial = malloc(sizeof(float) * (size_t)weights_count(student) + 1);
    distill_cache cache = {0};
    od_status st = OD_STATUS_OK;
    if (!sr->trials || !initial) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for the search");
        goto done;
    }
    weights_copy(student, initial, false);
    double t0 = od_seconds();
    int alive = N;
    for (int r = 0; r < rungs; r++) {
        int64_t len = llround(search_epochs / rungs / alive * (double)full); /* batches each */
        if (len < 1) len = 1;
        int64_t ep = (len + full - 1) / full, per = (len + ep - 1) / ep;
        for (int c = 0; c < alive; c++) {
            candidate *k = &cand[c];
            od_distill_options o = candidate_options(opt, k->labels_only, k->sigma, k->alpha, k->label_weight);
            o.epochs = (int)ep;
            o.batches_per_epoch = per;
            o.checkpoint = o.resume = NULL;
            o.progress = NULL;
            weights_copy(student, initial, true);
            od_distill_result one = {0};
            od_error e = {0};
            od_status s1 = distill_run(teacher, student, data, pre, &o, &cache, false, &one, &e);
            bool stopped = one.interrupted;
            k->score = !s1 && one.best_epoch > 0 ? (one.epochs[one.best_epoch - 1].val_acc >= 0 ? one.epochs[one.best_epoch - 1].val_acc
                                                                                                  : one.epochs[one.best_epoch - 1].val_agree)
                                                 : -1;
            od_distill_result_clear(&one);
            if (stopped) {
                res->interrupted = true;
                goto done;
            }
            if (s1 && s1 != OD_STATUS_INVALID_ARGUMENT) { /* diverged, collapsed: the candidate loses; anything else ends the run */
                *err = e;
                st = s1;
                goto done;
            }
            sr->trials[sr->n_trials++] = (od_search_trial){k->sigma, k->alpha, k->label_weight, k->labels_only, o.lr, r + 1,
                                                           (double)(ep * per) / (double)full, k->score, false};
            sr->search_epochs += (double)(ep * per) / (double)full;
        }
        qsort(cand, (size_t)alive, sizeof *cand, by_score);
        int keep = (alive + 1) / 2;
        for (int t = sr->n_trials - alive; t < sr->n_trials; t++)
            for (int c = 0; c < keep; c++) {
                const od_search_trial *x = &sr->trials[t];
                if (x->labels_only == cand[c].labels_only && x->sigma == cand[c].sigma && x->alpha == cand[c].alpha &&
                    x->label_weight == cand[c].label_weight)
                    sr->trials[t].promoted = true;
            }
        if (r == rungs - 1) {
            for (int t = sr->n_trials - alive; t < sr->n_trials; t++) {
                const od_search_trial *x = &sr->trials[t];
                bool won = x->labels_only == cand[0].labels_only && x->sigma == cand[0].sigma && x->alpha == cand[0].alpha &&
                           x->label_weight == cand[0].label_weight;
                sr->trials[t].promoted = won;
                if (won) sr->winner = t;
            }
        }
        alive = keep;
        sr->seconds = od_seconds() - t0;
        if (opt->progress) {
            od_distill_progress p = {0};
            p.search = sr;
            p.search_rung = r + 1;
            opt->progress(&p, opt->progress_ctx);
        }
    }
    sr->seconds = od_seconds() - t0;
    if (sr->winner < 0 && sr->n_trials == 0) { /* one candidate: nothing to search */
        sr->trials[0] = (od_search_trial){cand[0].sigma, cand[0].alpha, cand[0].label_weight, cand[0].labels_only,
                                          cand[0].labels_only ? opt->lr_labels : opt->lr, 0, 0, -1, true};
        sr->n_trials = 1;
        sr->winner = 0;
        snprintf(sr->why, sizeof sr->why, "one candidate: nothing to search");
    } else if (sr->winner >= 0) {
        const od_search_trial *second = NULL;
        for (int t = 0; t < sr->n_trials; t++)
            if (sr->trials[t].rung == rungs && t != sr->winner && (!second || sr->trials[t].val_acc > second->val_acc)) second = &sr->trials[t];
        explain(sr, &sr->trials[sr->winner], second);
    }

    /* the winner, trained for --epochs on the same cache; res is the run's */
    {
        const od_search_trial *w = &sr->trials[sr->winner];
        od_distill_options o = candidate_options(opt, w->labels_only, w->sigma, w->alpha, w->label_weight);
        weights_copy(student, initial, true);
        od_search_result keep = *sr;
        st = distill_run(teacher, student, data, pre, &o, &cache, true, res, err);
        res->search = keep; /* distill_run starts from a clean result */
        res->t_teacher = cache.seconds;
    }
done:
    if (res->interrupted) weights_copy(student, initial, true);
    distill_cache_clear(&cache);
    free(initial);
    return st;
}

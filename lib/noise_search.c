/* --sigma auto, --alpha auto, --label-weight auto: successive halving on the validation split.
 *
 * The candidates are sigma in S x alpha in A x label weight in W (sigma 0 once per label weight:
 * alpha means nothing there), plus the labels alone, at their own learning rate (lr_labels: the
 * two losses want different step sizes; lr sets the others'). Every candidate of a rung
 * trains from the same initial student with the same seed (a paired comparison: the same
 * initialisation and data order, the noise draws apart) and is scored on the validation split
 * (its best epoch); the better half goes on. The last rung's two finalists train for the full
 * --epochs, each exactly the run a plain `distill` with its values would make: short runs (their
 * cosine schedule squeezed into a fraction of an epoch) order candidates differently than full
 * runs do, so only full runs pick the output, and the better finalist's run is the student
 * written (nothing trained again). The earlier rungs share budget - 2 x epochs evenly. */
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

/* A rung-1 trial shorter than this ranks the candidates' warm-up, not their training: at 7 batches
 * (10,000 samples, 3 epochs, budget 7.5) the labels alone sat at chance while L2 was at 26-37%;
 * from 25 batches on, short runs ordered the two as their full runs did. */
#define MIN_TRIAL_BATCHES 50

/* Rungs to halve n candidates down to the 2 finalists' rung. */
static int rungs_for(int n) {
    int r = 0;
    while ((1 << r) < n) r++;
    return r > 0 ? r : 1;
}

/* Batches each of n candidates trains in rung 1 when the rungs before the last share early epochs. */
static double first_rung_batches(double early, int n, int64_t full) {
    int rungs = rungs_for(n);
    return rungs > 1 ? early / (rungs - 1) / n * (double)full : 1e300;
}

/* Keeps n of the N candidates: the plain teacher (the first with sigma 0, else the first) and the
 * labels alone (last, when there) always, the others evenly spread over the list so that every
 * sigma stays near one tried. */
static void thin_candidates(candidate *cand, int N, int n) {
    bool labels = cand[N - 1].labels_only;
    int plain = 0;
    while (plain < N - 1 - labels && cand[plain].sigma != 0) plain++;
    if (plain == N - 1 - labels && cand[plain].sigma != 0) plain = 0;
    candidate rest[16 * 16 * 16 + 1], keep[16 * 16 * 16 + 1];
    int n_rest = 0, k = 0, want = n - 1 - labels;
    for (int i = 0; i < N - labels; i++)
        if (i != plain) rest[n_rest++] = cand[i];
    keep[k++] = cand[plain];
    for (int i = 0; i < want; i++) keep[k++] = rest[(int)(((double)i + 0.5) * n_rest / want)];
    if (labels) keep[k++] = cand[N - 1];
    for (int i = 0; i < k; i++) cand[i] = keep[i], cand[i].order = i;
}

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

void od_search_untried_text(const od_search_result *sr, char *buf, size_t size) {
    if (size) buf[0] = 0;
    if (sr->n_untried > 0)
        snprintf(buf, size, "%d of the %d candidates tried: a rung-1 trial needs %lld batches (50, an epoch at most) and --search-budget "
                            "%.3g pays that for no more; %.3g would try all %d",
                 sr->n_candidates, sr->n_candidates + sr->n_untried, (long long)sr->trial_floor, sr->budget_epochs,
                 ceil(sr->budget_for_all * 100) / 100, sr->n_candidates + sr->n_untried);
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

static bool uses_labels(const candidate *k) { return k->labels_only || k->label_weight > 0; }

/* One standard error of an accuracy p measured on n samples, in points. */
static double std_err(double p, int64_t n) { return n > 0 && p >= 0 && p <= 1 ? 100 * sqrt(p * (1 - p) / (double)n) : 0; }

/* The last trial of the candidate named like c, or NULL. */
static const od_search_trial *last_trial(const od_search_result *sr, bool labels_only, bool sigma0) {
    for (int i = sr->n_trials - 1; i >= 0; i--)
        if (sr->trials[i].labels_only == labels_only && (labels_only || (sr->trials[i].sigma == 0) == sigma0) &&
            (labels_only || !sigma0 || sr->trials[i].label_weight == 0))
            return &sr->trials[i];
    return NULL;
}

/* tie: the winner trailed second within one standard error and won the tie rule. */
static void explain(od_search_result *sr, const od_search_trial *win, const od_search_trial *second, bool tie) {
    char w[96], s[96];
    const char *what = sr->val_is_agreement ? "agreement with the teacher" : "validation accuracy";
    od_search_trial_name(win, w, sizeof w);
    double se = std_err(win->val_acc, sr->n_val);
    size_t o = (size_t)snprintf(sr->why, sizeof sr->why, "%s won the last rung (%d of %d, the finalists trained for the full %.3g epochs) with %.2f%% %s on the %lld-sample validation split",
                                w, win->rung, sr->n_rungs, win->epochs, 100 * win->val_acc, what, (long long)sr->n_val);
    if (second && o < sizeof sr->why) {
        od_search_trial_name(second, s, sizeof s);
        double d = 100 * (win->val_acc - second->val_acc);
        if (tie)
            o += (size_t)snprintf(sr->why + o, sizeof sr->why - o, ", %.2f points behind %s (%.2f%%), within one standard error (%.1f points): a tie, and ties go to the objective with the labels, which the validation split measures",
                                  -d, s, 100 * second->val_acc, se);
        else
            o += (size_t)snprintf(sr->why + o, sizeof sr->why - o, ", %.2f points ahead of %s (%.2f%%); one standard error there is %.1f points, so the lead is %s",
                                  d, s, 100 * second->val_acc, se, d > 2 * se ? "clear" : d > se ? "modest" : "within the noise (a close call)");
    }
    const od_search_trial *plain = last_trial(sr, false, true), *labels = last_trial(sr, true, false);
    if (plain && plain != win && plain != second && o < sizeof sr->why)
        o += plain->val_acc < 0 ? (size_t)snprintf(sr->why + o, sizeof sr->why - o, ". The plain teacher (sigma 0) failed at rung %d", plain->rung)
                                : (size_t)snprintf(sr->why + o, sizeof sr->why - o, ". The plain teacher (sigma 0) reached %.2f%% at rung %d", 100 * plain->val_acc, plain->rung);
    bool said_plain = plain && plain != win && plain != second;
    if (labels && labels != win && labels != second && o < sizeof sr->why)
        o += labels->val_acc < 0 ? (size_t)snprintf(sr->why + o, sizeof sr->why - o, "%s labels alone failed at rung %d", said_plain ? ", the" : ". The", labels->rung)
                                 : (size_t)snprintf(sr->why + o, sizeof sr->why - o, "%s labels alone %.2f%% at rung %d", said_plain ? ", the" : ". The",
                                                    100 * labels->val_acc, labels->rung);
    if (o < sizeof sr->why) snprintf(sr->why + o, sizeof sr->why - o, ".");
}

/* One candidate's run from the initial student, the test set untouched (the kept finalist's is
 * evaluated once, at the end); *score is its best epoch's validation accuracy
 * (agreement without labels), -1 when it diverged or collapsed. A short run (not a finalist) that
 * ended no better than always answering one class keeps its score: a few batches may learn that
 * little, and the score ranks it. Other failures end the search. */
static od_status trial_run(const od_model *teacher, od_model *student, const od_data_split *data, const od_preprocess *pre,
                           const od_distill_options *o, distill_cache *cache, const float *initial, od_distill_result *one,
                           bool short_run, double *score, od_error *err) {
    weights_copy(student, (float *)initial, true);
    od_error e = {0};
    od_status s = distill_run(teacher, student, data, pre, o, cache, false, one, &e);
    /* that failure is the only one after the epochs' stats are in one (divergence, collapse end before) */
    bool scored = !s || (short_run && s == OD_STATUS_INVALID_ARGUMENT);
    const od_epoch_stats *b = scored && one->best_epoch > 0 && one->epochs ? &one->epochs[one->best_epoch - 1] : NULL;
    *score = b ? (b->val_acc >= 0 ? b->val_acc : b->val_agree) : -1;
    if (s && s != OD_STATUS_INVALID_ARGUMENT && !one->interrupted) { /* diverged, collapsed: the candidate loses; anything else ends the run */
        *err = e;
        return s;
    }
    if (s) *err = e; /* kept for when every finalist fails */
    return OD_STATUS_OK;
}

static bool same_candidate(const od_search_trial *x, const candidate *c) {
    return x->labels_only == c->labels_only && x->sigma == c->sigma && x->alpha == c->alpha && x->label_weight == c->label_weight;
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
    if (opt->resume)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: an auto search does not resume (its trials are not checkpointed): run it again");

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

    int rungs = rungs_for(N);
    /* the last rung: 2 finalists x epochs; the earlier rungs: the rest */
    double budget = opt->search_budget > 0 ? opt->search_budget : 2.5 * opt->epochs, finals = N > 1 ? 2.0 * opt->epochs : opt->epochs,
           early = budget - finals;
    if (rungs > 1 ? !(early > 0) : early < 0)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "distill: --search-budget %g epochs leaves nothing for the search: the last rung alone trains 2 finalists for the %d epochs each",
                            budget, opt->epochs);

    od_search_result *sr = &res->search;
    int64_t n_all = opt->train_limit > 0 && opt->train_limit < data->train.n ? opt->train_limit : data->train.n;
    int64_t n_val = (int64_t)(opt->val_split * (double)n_all);
    int64_t full = (n_all - n_val + (opt->unlabeled ? opt->unlabeled->n : 0)) / opt->batch; /* batches in an epoch */
    if (full < 1) full = 1;
    /* Rung 1 must pay each candidate MIN_TRIAL_BATCHES (one epoch at most); when the budget cannot,
     * fewer candidates are tried, down to the two finalists' full runs alone. */
    int64_t min_len = full < MIN_TRIAL_BATCHES ? full : MIN_TRIAL_BATCHES;
    int n_tried = N;
    sr->trial_floor = min_len;
    while (n_tried > 2 && first_rung_batches(early, n_tried, full) < (double)min_len) n_tried--;
    if (n_tried < N) {
        sr->n_untried = N - n_tried;
        sr->budget_for_all = finals + (double)min_len * N * (rungs - 1) / (double)full;
        thin_candidates(cand, N, n_tried);
        N = n_tried;
        rungs = rungs_for(N);
    }
    sr->n_rungs = rungs;
    sr->n_candidates = N;
    sr->budget_epochs = budget;
    sr->n_val = n_val;
    sr->val_is_agreement = !data->train.labels;
    sr->winner = -1;
    sr->trials = calloc((size_t)(2 * N + 2), sizeof *sr->trials);
    int64_t n_weights = weights_count(student);
    float *initial = malloc(sizeof(float) * (size_t)n_weights + 1), *kept = malloc(sizeof(float) * (size_t)n_weights + 1);
    distill_cache cache = {0};
    od_distill_result fin[2] = {{0}};
    double fin_seconds[2] = {0};
    od_status st = OD_STATUS_OK;
    if (!sr->trials || !initial || !kept) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for the search");
        goto done;
    }
    weights_copy(student, initial, false);
    double t0 = od_seconds();
    int alive = N, kept_run = -1, n_fin = N > 1 ? 2 : 1; /* kept_run: the finalist whose weights are in kept */
    for (int r = 0; r < rungs; r++) {
        bool last = r == rungs - 1;
        int64_t len = last ? 0 : llround(early / (rungs - 1) / alive * (double)full); /* batches each */
        if (!last && len < 1) len = 1;
        int64_t ep = last ? opt->epochs : (len + full - 1) / full, per = last ? 0 : (len + ep - 1) / ep;
        for (int c = 0; c < alive; c++) {
            candidate *k = &cand[c];
            od_distill_options o = candidate_options(opt, k->labels_only, k->sigma, k->alpha, k->label_weight);
            o.epochs = (int)ep;
            o.batches_per_epoch = per;
            o.checkpoint = NULL;
            if (!last) o.progress = NULL;
            od_distill_result one = {0};
            double t1 = od_seconds();
            if ((st = trial_run(teacher, student, data, pre, &o, &cache, initial, &one, !last, &k->score, err))) {
                od_distill_result_clear(&one);
                goto done;
            }
            if (one.interrupted) {
                od_distill_result_clear(&one);
                res->interrupted = true;
                goto done;
            }
            if (last) { /* kept whole: one of the two is the output */
                fin[c] = one;
                fin_seconds[c] = od_seconds() - t1;
                if (c == 0 && alive > 1) weights_copy(student, kept, false), kept_run = 0;
            } else
                od_distill_result_clear(&one);
            double trained = last ? (double)ep : (double)(ep * per) / (double)full;
            sr->trials[sr->n_trials++] = (od_search_trial){k->sigma, k->alpha, k->label_weight, k->labels_only, o.lr, r + 1, trained, k->score, false};
            sr->search_epochs += trained;
        }
        qsort(cand, (size_t)alive, sizeof *cand, by_score);
        bool tie = false;
        if (last && alive > 1 && !sr->val_is_agreement && !uses_labels(&cand[0]) && uses_labels(&cand[1]) && cand[1].score >= 0 &&
            100 * (cand[0].score - cand[1].score) <= std_err(cand[0].score, n_val)) {
            /* a lead within one standard error is noise; validation measures the labels, so their objective takes the tie */
            candidate t = cand[0];
            cand[0] = cand[1], cand[1] = t, tie = true;
        }
        int keep = last ? 1 : (alive + 1) / 2;
        for (int t = sr->n_trials - alive; t < sr->n_trials; t++) {
            for (int c = 0; c < keep; c++)
                if (same_candidate(&sr->trials[t], &cand[c])) sr->trials[t].promoted = true;
            if (last && same_candidate(&sr->trials[t], &cand[0])) sr->winner = t;
        }
        if (last && sr->winner >= 0) {
            const od_search_trial *second = NULL;
            for (int t = sr->n_trials - alive; t < sr->n_trials; t++)
                if (t != sr->winner) second = &sr->trials[t];
            if (N > 1) explain(sr, &sr->trials[sr->winner], second, tie);
            else snprintf(sr->why, sizeof sr->why, "one candidate: nothing to search");
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

    /* the winning finalist's run is the output: its weights, its result */
    int w = sr->winner - (sr->n_trials - n_fin);
    if (sr->trials[sr->winner].val_acc < 0) { /* every finalist failed: the last one's error */
        st = err->status ? err->status : od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "distill: every finalist of the search failed");
        goto done;
    }
    if (w == kept_run) weights_copy(student, kept, true);
    sr->seconds = od_seconds() - t0 - fin_seconds[w];
    if ((st = distill_eval_test(student, data, pre, opt, &cache, &fin[w], err))) goto done;
    od_search_result keep_sr = *sr;
    *res = fin[w];
    memset(&fin[w], 0, sizeof fin[w]);
    res->search = keep_sr; /* distill_run starts from a clean result */
    res->search.search_epochs -= opt->epochs; /* the output's own run is not the search's */
    res->t_teacher = cache.seconds;
    *err = (od_error){0};
done:
    if (res->interrupted) weights_copy(student, initial, true);
    for (int k = 0; k < 2; k++) od_distill_result_clear(&fin[k]);
    distill_cache_clear(&cache);
    free(initial);
    free(kept);
    return st;
}

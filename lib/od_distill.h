/* Distillation: a student trained on a (noisy) teacher's logits, and model evaluation.
 *
 *   od_distill_options opt;
 *   od_distill_options_default(&opt);             // the paper's L2 on logits, alpha 0.5
 *   od_distill_result res = {0};
 *   od_distill(teacher, student, &data, &pre, &opt, &res, &err);   // student trained in place
 *   od_distill_result_clear(&res);
 */
#ifndef OD_DISTILL_H
#define OD_DISTILL_H

#include "od_comm.h"
#include "od_dataset.h"
#include "od_passes.h"
#include "od_train.h"

#include <signal.h>

/* L2 on logits (the paper's), Hinton's soft targets, or labels alone (no teacher: a baseline) */
typedef enum od_loss_kind { OD_LOSS_L2, OD_LOSS_KD, OD_LOSS_LABELS } od_loss_kind;
typedef enum od_sched_kind { OD_SCHED_CONSTANT, OD_SCHED_STEP, OD_SCHED_COSINE } od_sched_kind;
/* Where the noise goes: the teacher's logits (the paper's method) or the student's (its Fig. 2
 * control: the same z <- z (1 + xi) on the student's output before the loss). */
typedef enum od_noise_target { OD_NOISE_TEACHER, OD_NOISE_STUDENT } od_noise_target;
/* Several teachers: their logits averaged, or one teacher drawn per sample each time it is used
 * (the paper's "many teachers" reading of the noise). */
typedef enum od_teachers_mode { OD_TEACHERS_MEAN, OD_TEACHERS_DRAW } od_teachers_mode;

typedef struct od_epoch_stats {
    int epoch;              /* 1-based */
    double loss;            /* mean training loss */
    double val_acc, val_agree, test_acc, test_agree; /* -1 when not known */
    double seconds, samples_per_s; /* samples/s of all ranks together */
    double comm_seconds;           /* of seconds, spent communicating between ranks */
} od_epoch_stats;

typedef struct od_distill_progress {
    int epoch, epochs;
    int64_t batch, batches;
    double loss, samples_per_s, eta_seconds;
    const od_epoch_stats *done; /* non-NULL once the epoch is evaluated */
    int64_t logits_done, logits_total; /* logits_total > 0: computing the teacher's logits, not training */
    int ranks;                  /* data-parallel ranks (1: one process) */
    const struct od_search_result *search; /* non-NULL after a rung of the search: its trials so far */
    int search_rung;                        /* that rung, 1-based */
} od_distill_progress;

typedef struct od_distill_options {
    int epochs;
    int64_t batch;
    int threads;
    uint64_t seed;
    od_loss_kind loss;
    float temperature;  /* kd */
    float label_weight; /* cross-entropy on labels, mixed in */
    float sigma, alpha; /* noisy teacher: z <- z (1 + xi), xi ~ N(0, sigma^2), for a fraction alpha */
    float sigma_lo, sigma_hi; /* sigma_hi > 0: sigma drawn uniformly per batch */
    od_noise_target noise_on;
    /* Teachers after the first (od_distill's teacher argument), with the same input and output
     * shapes (od_teachers_check); every teacher's logits are cached. */
    const od_model *const *more_teachers;
    int n_more_teachers;
    od_teachers_mode teachers;
    /* Samples whose labels are ignored: the teachers label them (their logits) and they join the
     * training set. The validation split and the test set come from the labelled data only;
     * with --loss labels or a label weight, these samples contribute the logit term alone. */
    const od_dataset *unlabeled;
    /* --sigma auto, --alpha auto, --label-weight auto: the value is searched by successive halving
     * on the validation split (od_search_result) over the candidates (n 0: the defaults), the plain
     * teacher (sigma 0) and the labels alone always among them; the last rung's 2 finalists train
     * for epochs and the better one's run is the result. search_budget: epochs of training for
     * the whole run, the finalists included (0: 2.5 x epochs). */
    bool sigma_auto, alpha_auto, label_weight_auto;
    float sigma_candidates[16], alpha_candidates[16], label_weight_candidates[16];
    int n_sigma_candidates, n_alpha_candidates, n_label_weight_candidates;
    double search_budget;
    int64_t batches_per_epoch; /* > 0: an "epoch" is this many batches (the search's short runs) */
    od_optim_options optim;
    float lr;
    /* The learning rate of an auto search's labels-only runs (its candidate, and the final
     * training when it wins): cross-entropy on labels and L2 on logits want different step
     * sizes (default 0.002). */
    float lr_labels;
    od_sched_kind sched;
    float warmup_epochs; /* linear warm-up from 0 */
    int step_epochs;     /* step schedule: every this many epochs ... */
    float step_gamma;    /* ... multiply by this */
    float val_split;     /* held out of the training set to pick the epoch kept */
    int64_t train_limit; /* use only the first N training samples (0: all) */
    int64_t test_limit;  /* evaluate on the first N test samples only (0: all) */
    bool augment;        /* random-resized crop and flip of [C,H,W] training batches (od_augment_batch) */
    const char *checkpoint; /* written after every epoch (atomically) */
    const char *resume;     /* continue from this checkpoint */
    volatile sig_atomic_t *stop; /* non-zero: stop after this batch; the checkpoint holds the
                                  * state at the last finished epoch (res->interrupted) */
    void (*progress)(const od_distill_progress *p, void *ctx);
    void *progress_ctx;
    /* Data-parallel over these ranks (NULL: one process): each computes the teacher logits of
     * its shard and its slice of every global batch; gradients are summed over ranks. Only
     * rank 0 writes the checkpoint; every rank reads --resume (any rank count). */
    od_comm *comm;
    /* Each global batch in fixed slices summed in a fixed tree: the same bytes with 1, 2 or 4
     * ranks (see README, "Several machines (MPI)"). */
    bool deterministic;
} od_distill_options;

/* One short training run of the search: a candidate at a rung. */
typedef struct od_search_trial {
    float sigma, alpha, label_weight;
    bool labels_only; /* --loss labels (sigma, alpha unused) */
    float lr;         /* its learning rate: lr_labels for the labels alone, else lr */
    int rung;         /* 1-based */
    double epochs;    /* trained for (fractions: a part of an epoch) */
    double val_acc;   /* best over its epochs; agreement with the teacher without labels; -1: it failed */
    bool promoted;    /* went on to the next rung (or, at the last, won) */
} od_search_trial;

typedef struct od_search_result {
    int n_trials, n_rungs, n_candidates;
    int n_untried;           /* candidates left out: rung 1 could not pay each trial_floor batches */
    int64_t trial_floor;     /* the shortest rung-1 trial: 50 batches, an epoch at most */
    double budget_for_all;   /* with n_untried: the --search-budget that would try them all */
    od_search_trial *trials;
    int winner;              /* the trial that won the last rung, the run kept (-1: no search ran) */
    double budget_epochs;    /* for search and final training together */
    double search_epochs;    /* spent on the trials but the winner's */
    double seconds;          /* of the search (the winner's own run not counted) */
    int64_t n_val;
    bool val_is_agreement;   /* no labels: trials scored by agreement with the teacher */
    char why[512];           /* why the winner won, in words */
} od_search_result;

typedef struct od_distill_result {
    int n_epochs;
    od_epoch_stats *epochs;
    int best_epoch;          /* 1-based; its weights are the student's */
    int resumed_epochs;      /* epochs the --resume checkpoint held (0 without one) */
    bool interrupted;        /* stopped early by opt.stop; the checkpoint holds the state */
    double t_load, t_teacher, t_train; /* seconds: setup, teacher logits, epochs */
    double teacher_test_acc, student_test_acc, test_agreement; /* -1 when not known */
    int64_t n_train, n_val, n_test; /* n_train counts the unlabelled samples too */
    int64_t n_unlabeled;            /* of n_train, from opt.unlabeled */
    int64_t n_logits_cached;        /* training samples (labelled and unlabelled) whose teacher logits are cached */
    int n_teachers;
    int ranks;     /* data-parallel ranks that trained */
    double t_comm; /* seconds of t_train spent communicating between ranks */
    /* what the student was trained with: the options', or the search's winner */
    od_loss_kind loss;
    float sigma, alpha, label_weight, lr;
    od_search_result search; /* n_trials 0 without --sigma/--alpha/--label-weight auto */
} od_distill_result;

void od_distill_options_default(od_distill_options *o);
/* Trains student's initializers in place. On error or interruption the student holds the
 * best weights so far (never NaN). */
od_status od_distill(const od_model *teacher, od_model *student, const od_data_split *data,
                     const od_preprocess *pre, const od_distill_options *opt, od_distill_result *res,
                     od_error *err);
void od_distill_result_clear(od_distill_result *r);
/* Makes a trained student ready to ship: passes (BN folded, Dropout dropped, ...), weight
 * storage, and provenance in metadata_props (teacher SHA-256, spec, loss, sigma, alpha, seed,
 * epochs, test accuracy, tool version; the teacher's preprocessing keys copied). */
od_status od_distill_finish(od_model *student, const od_model *teacher, const char *teacher_path,
                            const char *spec_text, const od_distill_options *opt,
                            const od_distill_result *res, od_weight_format weights, od_error *err);

/* Whether other can stand beside first as a teacher: the same input and output ranks and the same
 * fixed dims (a symbolic batch dim matches anything). The message says what differs. */
/* "sigma 0.3, alpha 0.5", "labels only", "sigma 0, label weight 0.5": a trial's candidate. */
void od_search_trial_name(const od_search_trial *t, char *buf, size_t size);
/* Why some candidates were not tried (empty when all were), one sentence without a final period. */
void od_search_untried_text(const od_search_result *sr, char *buf, size_t size);

od_status od_teachers_check(const od_model *first, const od_model *other, od_error *err);

/* Logits of model for every sample of d (batched inference plans), [d->n, classes]. */
od_status od_model_logits(const od_model *m, const od_dataset *d, const od_preprocess *pre,
                          int threads, float **logits_out, int64_t *classes_out, od_error *err);
/* Top-1 accuracy against labels, and agreement of two logit sets (argmax match). */
double od_accuracy(const float *logits, const int32_t *labels, int64_t n, int64_t classes);
double od_agreement(const float *a, const float *b, int64_t n, int64_t classes);
int64_t od_argmax(const float *row, int64_t classes);

#endif

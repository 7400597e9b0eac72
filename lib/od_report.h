/* Reports: models side by side (a teacher beside its student, or any models to compare) as a
 * text table, JSON, Markdown or a self-contained HTML page; latency measurement and per-class
 * evaluation, shared with the bench and eval commands.
 *
 *   od_report rep;
 *   od_report_options ro;
 *   od_report_init(&rep);
 *   od_report_options_default(&ro);                       // batch 1,64 x threads 1,2, 0.3 s each
 *   if (od_report_add_model(&rep, "teacher", "cnn.onnx", teacher, &ro, &err) ||   // sizes, latency
 *       od_report_add_model(&rep, "student", "s.onnx", student, &ro, &err) ||
 *       od_report_set_data(&rep, "fashion-mnist", teacher, &err) ||
 *       od_report_evaluate(&rep, 0, teacher, &data.test, &pre, 2, &err) ||  // accuracy, confusion
 *       od_report_evaluate(&rep, 1, student, &data.test, &pre, 2, &err) ||  // + agreement with 0
 *       od_report_set_distill(&rep, &opt, &res, "width 0.5", "f32", &err))  // curve, options
 *       ...;
 *   od_report_print(&rep, stdout);                        // the summary table
 *   od_report_save(&rep, "report.html", &err);            // .json, .md or .html; atomic
 *   od_report_clear(&rep);
 *
 * Model 0 is the reference: ratios, agreement and the lists of samples one model gets wrong and
 * the other right are always relative to it.
 */
#ifndef OD_REPORT_H
#define OD_REPORT_H

#include "od_distill.h"

#include <stdio.h>

/* ---- latency ----------------------------------------------------------------------------- */

typedef struct od_latency {
    int64_t batch;
    int threads;
    double median, p10, p90; /* seconds per run of the whole batch */
    int64_t runs;            /* timed runs */
} od_latency;

/* Deterministic inputs for timing: floats in [-1, 1), zeros for other element types. */
void od_plan_fill_bench_inputs(od_plan *plan);
/* Times od_plan_run on plan as it is: a warm-up (3 runs and up to 0.2 s), then at least 10 runs
 * and min_time seconds. */
od_status od_measure_latency_plan(od_plan *plan, double min_time, od_latency *out, od_error *err);
/* The same with at least min_runs timed runs instead of 10, and a warm-up of min(3, min_runs)
 * runs and up to 0.2 s: for runs of seconds (batch 64 at 224x224). */
od_status od_measure_latency_plan_runs(od_plan *plan, double min_time, int min_runs, od_latency *out, od_error *err);
/* Builds a plan for (batch, threads), fills it with od_plan_fill_bench_inputs and times it. */
od_status od_measure_latency(const od_graph *g, int64_t batch, int threads, double min_time,
                             od_latency *out, od_error *err);
/* The same with at least min_runs timed runs (od_measure_latency_plan_runs). */
od_status od_measure_latency_runs(const od_graph *g, int64_t batch, int threads, double min_time, int min_runs,
                                  od_latency *out, od_error *err);

/* ---- model facts ------------------------------------------------------------------------- */

/* Parameters (elements of floating-point and 8-bit integer initializers: weights, stored in any
 * format) and multiply-accumulates per sample at batch 1 (ops whose shapes cannot be inferred
 * count 0). */
od_status od_model_count(const od_model *m, int64_t *params_out, int64_t *macs_out, od_error *err);
/* The same, also counting the nodes whose output shapes could not be inferred
 * (unknown_nodes_out, may be NULL): when it is not 0, the MACs are only a lower bound. */
od_status od_model_count_ex(const od_model *m, int64_t *params_out, int64_t *macs_out,
                            int *unknown_nodes_out, od_error *err);
/* Size of data after zlib's compress2 at level 9: gzip -9's deflate stream, in a zlib frame
 * (6 bytes) rather than gzip's (18 bytes). */
od_status od_compressed_size(const void *data, size_t len, size_t *out, od_error *err);

/* "1,234,567" */
const char *od_format_count(int64_t v, char *buf, size_t size);
/* s as a JSON string literal, quotes included (NULL as ""). */
void od_json_string(FILE *f, const char *s);
/* Writes text for a terminal: names from a model may hold escape sequences, so every control
 * character but the newline (C0, DEL, and C1 in UTF-8) is written as \xNN. */
void od_print_escaped(FILE *f, const char *text, size_t len);

/* ---- per-class evaluation ------------------------------------------------------------------ */

typedef struct od_class_eval {
    int64_t n;          /* samples */
    int64_t classes;    /* K: the larger of the model's outputs and the dataset's classes */
    int64_t correct;
    double accuracy;    /* correct / n */
    int64_t *confusion; /* K x K, [true class][predicted class] */
    int64_t *support;   /* K: samples per true class */
    double *per_class;  /* K: accuracy per true class, -1 for a class without samples */
} od_class_eval;

/* From logits [n, classes] and labels (values outside 0..K-1 count as wrong, in no cell). */
od_status od_class_eval_compute(const float *logits, int64_t classes, const int32_t *labels,
                                int64_t n, int64_t data_classes, od_class_eval *out,
                                od_error *err);
void od_class_eval_clear(od_class_eval *e);

/* ---- the report ------------------------------------------------------------------------------ */

#define OD_REPORT_MAX_LATENCY 16 /* (batch, threads) pairs */
#define OD_REPORT_MAX_SAMPLES 20 /* sample indices kept per list of differences */

typedef struct od_report_options {
    int n_batches, n_threads; /* 0 batches: no latency measured */
    int64_t batches[4];
    int threads[4];
    double min_time; /* seconds of timed runs per (batch, threads) */
} od_report_options;

/* A sample that one model gets right and the reference the other way round. */
typedef struct od_report_sample {
    int64_t index; /* in the test set */
    int32_t label, pred, ref_pred;
} od_report_sample;

typedef struct od_report_diff {
    int64_t count;
    int64_t classes;    /* entries of per_class */
    int64_t *per_class; /* by true class */
    int n_samples;      /* the first ones, in test-set order */
    od_report_sample samples[OD_REPORT_MAX_SAMPLES];
} od_report_diff;

typedef struct od_report_model {
    char *label; /* "teacher", "student", or a file name */
    char *path;
    size_t bytes, gzip_bytes;
    int64_t params, macs;
    int n_latency;
    od_latency latency[OD_REPORT_MAX_LATENCY];
    bool evaluated;
    double accuracy;  /* -1: no labels */
    double agreement; /* top-1 agreement with model 0; -1 for model 0 itself or not evaluated */
    od_class_eval eval; /* classes 0 without labels */
    int32_t *pred;      /* top-1 class per test sample */
    od_report_diff wrong_ref_right; /* this model wrong, model 0 right (models 1..) */
    od_report_diff right_ref_wrong; /* the reverse */
} od_report_model;

/* Time spent in a phase, and the samples it went through (0: no rate). */
typedef struct od_report_phase {
    double seconds;
    int64_t samples;
} od_report_phase;

typedef struct od_report_distill {
    od_distill_options options; /* a copy; the pointers in it (checkpoint, resume, ...) cleared */
    char *spec;                 /* how the student was made */
    char *weights;              /* weight storage of the written student */
    int n_epochs, best_epoch;
    od_epoch_stats *epochs;
    int64_t n_train, n_val, n_test;
    int64_t n_unlabeled;        /* of n_train, labelled by the teachers (--unlabeled) */
    od_search_result search;    /* a copy (trials owned); n_trials 0 without an auto search */
    int n_teachers;
    double teacher_test_acc;    /* as od_distill measured (-1: unknown; several teachers: their mean's) */
    od_report_phase loading, teacher_logits, training, writing, measuring;
    double total_seconds;
} od_report_distill;

typedef struct od_report {
    int n_models;
    od_report_model *models;
    char *data;          /* dataset path or name; NULL when not evaluated */
    int64_t n_test;      /* samples evaluated */
    char preprocess[256]; /* the evaluation's preprocessing (od_preprocess_describe); "" before */
    int64_t n_classes;   /* K of the evaluation */
    int n_class_names;
    char **class_names;  /* names of classes 0 .. n_class_names - 1; others shown as numbers */
    bool has_distill;
    od_report_distill distill;
} od_report;

typedef enum od_report_format {
    OD_REPORT_TEXT,
    OD_REPORT_JSON,
    OD_REPORT_MARKDOWN,
    OD_REPORT_HTML,
} od_report_format;

void od_report_options_default(od_report_options *o);
void od_report_init(od_report *r);
void od_report_clear(od_report *r); /* frees everything; the report can be used again */

/* Appends a model: file bytes and compressed bytes (of the file at path; NULL: of the model
 * encoded in memory), params, MACs, and latency for every (batch, threads) of o (NULL: none). */
od_status od_report_add_model(od_report *r, const char *label, const char *path,
                              const od_model *m, const od_report_options *o, od_error *err);
/* Names the dataset, and the classes from ref's metadata "class_names" (comma-separated) or,
 * for well-known datasets (from the name or ref's metadata "dataset"), their usual names.
 * ref may be NULL. */
od_status od_report_set_data(od_report *r, const char *name, const od_model *ref, od_error *err);
/* Replaces the class names with names[0..n) (an image folder's); n 0: keeps them. */
od_status od_report_set_class_names(od_report *r, char *const *names, int n, od_error *err);
/* Runs model i (already added) over test (pass a view with n lowered to use the first n
 * samples) with its preprocessing: accuracy, per-class accuracy, confusion matrix, and for
 * i > 0 agreement with model 0 and the samples where they differ in correctness (model 0
 * first). Every model must be evaluated on the same samples. */
od_status od_report_evaluate(od_report *r, int i, const od_model *m, const od_dataset *test,
                             const od_preprocess *pre, int threads, od_error *err);
/* Records a distillation: options, the per-epoch curve, counts; phases are set by the caller. */
od_status od_report_set_distill(od_report *r, const od_distill_options *opt,
                                const od_distill_result *res, const char *spec,
                                const char *weights, od_error *err);

/* The summary table: models side by side, ratios to model 0, training time when distilled. */
void od_report_print(const od_report *r, FILE *f);
/* Writes the report in a format; ferror(f) afterwards reports output errors. */
void od_report_write(const od_report *r, od_report_format fmt, FILE *f);
/* ".json", ".md" or ".html" (any case); anything else is OD_STATUS_INVALID_ARGUMENT. */
od_status od_report_format_from_path(const char *path, od_report_format *out, od_error *err);
/* Writes in the format the extension names, atomically. */
od_status od_report_save(const od_report *r, const char *path, od_error *err);

#endif

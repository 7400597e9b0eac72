/* The student builder: a smaller student cut from the teacher's own graph.
 *
 *   od_shrink_spec spec;
 *   od_shrink_spec_default(&spec);    // width 1, depth 1, round 8, teacher init, bn auto, seed 1
 *   spec.width = 0.5;                 // every Conv, ConvTranspose, Gemm, MatMul: half its channels
 *   spec.depth = 0.5;                 // keep half of the removable blocks
 *   od_model *student = NULL;
 *   if (od_shrink(teacher, &spec, &student, &err)) { puts(err.message); return 1; }
 *   od_model_save(student, "student.onnx", &err);
 *   od_model_destroy(student);
 *
 * The student is a new model (the teacher is not modified) with the teacher's graph inputs and
 * outputs, opsets and metadata; it passes od_graph_check and shape inference wherever the
 * teacher does.
 *
 * Width: each layer keeps round(width * C) output channels, rounded up to a multiple of
 * round_to, at least 1, at most C. Channel counts that must be equal are one group, found by a
 * union-find over the graph's channel dims: the branches of a residual Add (Sub, Mul, ...), a
 * depthwise conv's input and output, the inputs of a Concat along another axis. Everything that
 * depends on a channel count follows: the next layer's input channels (also across Flatten or a
 * flattening Reshape into a Gemm, by blocks of H*W columns), BatchNormalization,
 * InstanceNormalization, LayerNormalization (over the channel axis, also in the decomposed form
 * of older opsets: a ReduceMean over the channels keeping the dim) and PRelu parameters, biases,
 * constants broadcast along the channels, the group attribute of depthwise convs. A Concat along
 * the channels concatenates its inputs' kept channels. A grouped (not depthwise) Conv keeps its
 * group count: its input and output channels each split into that many equal blocks, every
 * block keeping as many channels (the best of that block; the count rounded up to a whole
 * number per block), so each group gets narrower. Attention: a fused projection cut into equal
 * parts by Slices (in_proj [E, 3E] into q, k, v) is that many groups, the Slice bounds following;
 * a Reshape splitting the channels into heads ([.., E] -> [.., B * h, E / h] or [.., h, E / h])
 * keeps whole heads (the head dim stays, the head count written in the shape or in a Mul feeding
 * it follows), the heads are followed through Transposes, the score and value MatMuls (q, k and v
 * one group), Softmax and elementwise ops to the Reshape merging them back. Reshapes that only
 * regroup the axes before the channels, shapes Concat'ed from constants, and a constant expanded
 * over the batch and Concat'ed to the stream (a class token) follow. The graph inputs and outputs keep their
 * channels, and so does any dim an op this builder does not know consumes ("pinned": the
 * report says why).
 *
 * Teacher init keeps, per group, the channels of largest L1 norm summed over the group's
 * producers (a layer followed by BatchNormalization counted as if the BN were folded into it),
 * in their original order, and slices everything downstream to match; with width 1
 * and depth 1 the student computes exactly the teacher's function. Random init: fresh weights
 * as PyTorch initialises Conv and Linear (kaiming_uniform(a = sqrt 5): bound 1/sqrt(fan_in),
 * bias likewise), BatchNormalization scale 1, bias 0, mean 0, var 1; PRelu slope 0.25;
 * deterministic from the seed.
 *
 * Depth: a removable block is a residual block whose output shape equals its input's (an Add
 * whose one operand is the block input x and the other a branch computed from x alone: the
 * branch goes, the skip carries x), or a layer in a chain of same-shape layers (a Conv with
 * group 1, ConvTranspose, Gemm or MatMul with its BatchNormalization and activation, whose input
 * feeds nothing else and whose output feeds no join such as Add or Concat: the layer goes). The
 * student keeps round(depth * n) of the n blocks, spread evenly; the others are removed and
 * their consumers read the block input. A transformer's attention residual block (it has a
 * Softmax) and the MLP residual block reading its output are one encoder block; when all blocks
 * are such, the first and the last are kept and the others evenly spaced.
 *
 * BatchNormalization for training: bn ON (or AUTO when the student has more than 2 Conv and
 * ConvTranspose nodes) inserts, after each Conv and ConvTranspose not already followed by one
 * (and not the classifier: one whose output reaches a graph output through no other layer),
 * a BatchNormalization named "od_bn_<conv name>" with scale 1, bias 0, mean 0,
 * epsilon 1e-5 and var = 1 - epsilon (in float32, var + epsilon == 1 exactly): an exact
 * identity at inference, so the student's function is unchanged; od_optimize folds it away.
 *
 * Per-layer control (od_shrink_spec_load, or spec_path): a JSON object
 *   {"width": 0.5, "depth": 1, "channels": {"NODE or GLOB*": 24, ...}, "drop": ["BLOCK or GLOB"]}
 * channels: the output channels of the matching Conv, ConvTranspose, Gemm or MatMul nodes (a
 * group takes the largest asked of its members); drop: removable blocks to remove, matched by
 * the name of any of their nodes (fnmatch globs, '*' also crossing '/'). A name or glob that
 * matches nothing is an error listing the closest node names.
 */
#ifndef OD_SHRINK_H
#define OD_SHRINK_H

#include "od_runtime.h"

#include <stdio.h>

typedef enum od_shrink_init { OD_SHRINK_INIT_TEACHER = 0, OD_SHRINK_INIT_RANDOM } od_shrink_init;
typedef enum od_shrink_bn { OD_SHRINK_BN_AUTO = 0, OD_SHRINK_BN_ON, OD_SHRINK_BN_OFF } od_shrink_bn;

/* "channels": {pattern: channels} of a spec file. */
typedef struct od_shrink_rule {
    char *pattern;
    int64_t channels;
} od_shrink_rule;

typedef struct od_shrink_spec {
    double width; /* (0, 1] */
    double depth; /* (0, 1] */
    int round_to; /* >= 1; 1: no rounding */
    od_shrink_init init;
    od_shrink_bn bn;
    uint64_t seed;
    const char *spec_path; /* JSON per-layer control read by od_shrink (NULL: none); its width
                            * and depth replace the two fields above */
    /* Per-layer control as od_shrink_spec_load fills it; owned, freed by od_shrink_spec_clear. */
    int n_channels;
    od_shrink_rule *channels;
    int n_drop;
    char **drop;
} od_shrink_spec;

void od_shrink_spec_default(od_shrink_spec *s);
/* Reads a JSON spec file into s: width and depth when present (replacing s's), channel rules and
 * drop patterns appended. Errors name the file, line and column; unknown keys are errors. */
od_status od_shrink_spec_load(od_shrink_spec *s, const char *path, od_error *err);
/* The same from text in memory; name is used in messages. */
od_status od_shrink_spec_parse(od_shrink_spec *s, const char *text, size_t len, const char *name,
                               od_error *err);
/* Frees the rules and patterns (the other fields stay). */
void od_shrink_spec_clear(od_shrink_spec *s);

/* ---- what was done ---------------------------------------------------------------- */

typedef struct od_shrink_layer {
    char *node, *op_type; /* a Conv, ConvTranspose, Gemm or MatMul of the student */
    int64_t teacher_channels, student_channels; /* its output channels */
    char *pinned;                               /* why its channels could not change, or NULL */
    bool at_output; /* pinned only as a graph output (the classifier): expected, no loss */
    int group;      /* layers whose output channels must stay equal share a group number */
} od_shrink_layer;

typedef struct od_shrink_block {
    char *name; /* the Add of a residual block, the layer node of a chain layer */
    bool residual;
    bool transformer; /* a transformer encoder block: attention and MLP residual blocks as one */
    int n_nodes; /* nodes removed with it */
    bool dropped;
} od_shrink_block;

typedef struct od_shrink_report {
    int n_layers;
    od_shrink_layer *layers;
    int n_blocks;
    od_shrink_block *blocks; /* the teacher's removable blocks, in graph order */
    int n_dropped;
    int n_bn_inserted;
    int n_kept_whole; /* layers asked to shrink that could not (pinned, not at an output) */
    int n_unshared;   /* canonical form: initializers given one copy per reader */
    int n_folded;     /* canonical form: constant, Identity and Dropout nodes folded away */
} od_shrink_report;

void od_shrink_report_clear(od_shrink_report *r);
/* The builder's summary on out (what got narrower, how many layers were kept whole, what the
 * canonical form changed) and, on warn (may be NULL), one warning per layer asked to shrink
 * that could not, naming it and saying why. Used by `shrink` and `distill`. */
void od_shrink_report_print(const od_shrink_report *r, const od_shrink_spec *spec, FILE *out,
                            FILE *warn);

/* Builds the student. INVALID_ARGUMENT for a spec out of range or naming unknown nodes. */
od_status od_shrink(const od_model *teacher, const od_shrink_spec *spec, od_model **student_out,
                    od_error *err);
/* The same, also describing what was done (report may be NULL; clear it after use). */
od_status od_shrink_ex(const od_model *teacher, const od_shrink_spec *spec, od_model **student_out,
                       od_shrink_report *report, od_error *err);

/* ---- students chosen by a budget ------------------------------------------------------- */

/* A budget the student must meet, as `--budget` reads it:
 *   "0.5ms", "500us", "0.5ms@b8t2"   latency of one run (batch b, threads t; default b1t1) on
 *                                    this library's own plans, median of the timed runs
 *   "200KB", "1.5MB", "30000B"       the encoded ONNX file (KB = 1000 bytes, KiB = 1024)
 *   "2M-macs", "150000-macs"         multiply-accumulates per sample (K, M, G: 1e3, 1e6, 1e9) */
typedef enum od_budget_kind { OD_BUDGET_LATENCY = 0, OD_BUDGET_SIZE, OD_BUDGET_MACS } od_budget_kind;

/* Times one run of m (latency budgets): median and p90 in seconds over at least min_time seconds.
 * NULL in od_budget: this library's own plans. The CLI's `--target ort` passes ONNX Runtime's. */
typedef od_status (*od_budget_timer)(const od_model *m, int64_t batch, int threads, double min_time,
                                     double *median, double *p90, void *ctx, od_error *err);

typedef struct od_budget {
    od_budget_kind kind;
    double limit;   /* seconds, bytes or MACs; > 0 */
    int64_t batch;  /* latency only */
    int threads;    /* latency only */
    od_budget_timer timer; /* latency only; NULL: our plans */
    void *timer_ctx;
    const char *runtime;   /* which runtime the timer measures, for the printout ("onnx-distill" when NULL) */
    /* latency only: the search aims at limit x (1 - margin), so that a choice still meets the budget
     * when measured again later; margin_auto (od_budget_parse's default): the largest relative
     * spread of the search's own repeated measurements (the teacher's and the narrowest student's,
     * OD_BUDGET_MARGIN_RUNS fresh plans each), clamped to [OD_BUDGET_MARGIN_MIN, OD_BUDGET_MARGIN_MAX].
     * MACs and size are exact: no margin. */
    double margin;
    bool margin_auto;
} od_budget;

#define OD_BUDGET_MARGIN_MIN 0.02
#define OD_BUDGET_MARGIN_MAX 0.10
#define OD_BUDGET_MARGIN_RUNS 3

/* INVALID_ARGUMENT naming the text for an unknown unit, a number that is not > 0, a bad @bNtM. */
od_status od_budget_parse(const char *text, od_budget *out, od_error *err);
/* "0.5 ms at batch 1, 1 thread", "200 KB", "2.0M MACs" */
const char *od_budget_describe(const od_budget *b, double value, char *buf, size_t size);
/* The auto margin from a relative spread: clamped to [OD_BUDGET_MARGIN_MIN, OD_BUDGET_MARGIN_MAX]. */
double od_budget_margin_auto(double spread);
/* The depth-aware accuracy proxy of the spec's student: the geometric mean over the teacher's
 * layers of the share of each one's L1 weight mass its kept channels carry, a layer of a dropped
 * block counting 0.25 and a layer whose width is tied to an earlier one (its channel group's
 * other members) left out; pinned layers too. 1 for the teacher. A latency search picks, among
 * the depths whose widest width meets the budget, the one where it is highest. */
od_status od_budget_depth_proxy(const od_model *teacher, const od_shrink_spec *spec, double *proxy, od_error *err);

#define OD_BUDGET_MAX_CANDIDATES 64

typedef struct od_budget_candidate {
    double width;    /* the uniform width, or the start width of a per-layer candidate */
    double depth;    /* the depth it was built with (blocks dropped when below 1) */
    bool per_layer;  /* latency: a per-layer channel spec (round `round` of the per-layer search) */
    int round;
    double kept;     /* mean over the teacher's layers of the L1 weight mass its kept channels carry */
    double value;    /* MACs, bytes, or the median latency in seconds */
    double p90;      /* latency only */
    bool fits;
    bool verify;     /* a fresh measurement of a choice (latency: the slowest median of several
                      * fresh plans): only these decide that a latency budget is met */
} od_budget_candidate;

#define OD_BUDGET_MAX_STEPS 16

/* MACs and size: after the uniform width, channels given back layer by layer. */
typedef struct od_budget_step {
    char node[128];
    int64_t from, to;  /* its output channels */
    double saliency;   /* share of the layer's L1 weight mass the added channels carry */
    double value;      /* the student's value after the step */
} od_budget_step;

typedef struct od_budget_result {
    int n_steps;
    od_budget_step steps[OD_BUDGET_MAX_STEPS];
    double width;            /* the chosen uniform width */
    double depth;            /* the chosen depth (the spec's, or lower when blocks were dropped) */
    int n_blocks, kept_blocks; /* the teacher's removable blocks and how many the choice keeps */
    double value, p90;       /* its measured value (latency: the fresh verification run); after
                              * the per-layer steps, the final student's */
    double uniform_value;    /* the value at the uniform width, before the per-layer steps */
    double teacher_value, teacher_p90;
    double margin;           /* latency: the margin the search used (fraction of the budget) */
    double spread;           /* latency: the largest relative spread seen in its repeated measurements */
    double min_time;         /* latency: seconds of timed runs per candidate */
    /* latency: the per-layer search from the teacher (channels cut where the least L1 mass is
     * lost per second saved, by a latency model calibrated on per-step profiles of our plans) */
    bool per_layer;          /* the chosen student is the per-layer one (spec->channels) */
    double kept, uniform_kept; /* mean kept L1 share of the chosen and of the best uniform student */
    char why[400];           /* why the chosen one won, one sentence */
    char warning[300];       /* "" or why the choice may be useless (too little of the teacher kept) */
    int n_candidates;
    od_budget_candidate candidates[OD_BUDGET_MAX_CANDIDATES];
} od_budget_result;

/* Finds the widest uniform width (spec's round_to, init and bn kept) whose student meets the
 * budget: a bisection on the width, MACs and size computed exactly from the built student,
 * latency measured (min_time seconds per candidate). When even the narrowest width (0.001, i.e.
 * --round channels per layer) is over the budget at the spec's depth, removable blocks are
 * dropped (the spec's depth lowered one block at a time) until it is not; for a latency, also when
 * the widest width that meets it keeps under a quarter of the teacher's L1 weight mass per layer
 * (then the most blocks are kept that let the width keep a quarter). MACs and size then give
 * channels back, one --round step of one layer at a time, to the layer whose added channels carry
 * the most L1 weight mass (its share of the layer's) per unit of budget spent, while the budget
 * holds: those land in spec->channels (owned by spec) as rules naming the nodes. A latency choice
 * (uniform, then the per-layer search's) is measured afresh on several fresh plans, the slowest
 * median deciding; a miss cuts further (per-layer channels by the recalibrated model, the width by
 * the miss, then blocks) and measures afresh again, a bounded number of times. Sets spec->width
 * and spec->depth to the choice; *student_out (may be NULL) gets the chosen student.
 * INVALID_ARGUMENT when nothing meets the budget: "even width W gives X, over the budget" (also
 * with every block dropped), or for a latency "no student met ... when measured afresh; the
 * fastest: X". The student measured is the one the spec builds (with its BatchNormalization). */
od_status od_budget_search(const od_model *teacher, od_shrink_spec *spec, const od_budget *b,
                           double min_time, od_budget_result *res, od_model **student_out,
                           od_error *err);
/* The candidates tried, the teacher's value and why the chosen one won, on out. */
void od_budget_print(const od_budget *b, const od_budget_result *res, FILE *out);
/* One line for reports: the budget, the choice and its measurement, every candidate tried. */
const char *od_budget_summary(const od_budget *b, const od_budget_result *res, char *buf, size_t size);
/* The chosen spec as --spec JSON: {"width": W, "depth": D[, "channels": {...}]} and a newline,
 * in buf (truncated when too small). */
const char *od_budget_spec_json(const od_shrink_spec *spec, char *buf, size_t size);

#endif

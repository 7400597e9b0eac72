/* The command line, declared: each subcommand is a table of options (shared ones come from the
 * CLI_OPT_* / CLI_OPTS_* macros below, so an option means, checks and says the same in every
 * command). One parser (cli_parse) reads argv against a table; --help, `onnx-distill help CMD`
 * and the man page (onnx-distill --man) are printed from the same tables.
 *
 * Exit status: 0 success, 1 runtime error (a bad model, dataset or file), 2 usage error (an
 * unknown option, a value out of range, a missing operand), 130 interrupted. */
#ifndef OD_CLI_H
#define OD_CLI_H

#include "od_onnx.h"

#include <stdio.h>

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2, CLI_EXIT_INTERRUPTED = 130 };

typedef enum cli_kind {
    CLI_END = 0,   /* ends a table */
    CLI_HEADING,   /* a heading in the help: help is its text */
    CLI_FLAG,      /* no value */
    CLI_INT,       /* a whole number in [lo, hi]; hi == 0: no upper bound */
    CLI_REAL,      /* a finite number in [lo, hi] ((lo, hi] with lo_open), or one of choices when set */
    CLI_TEXT,      /* any text: a path, a name */
    CLI_CHOICE,    /* one of choices ("a|b|c") */
    CLI_INT_LIST,  /* comma-separated CLI_INT items */
    CLI_REAL_LIST, /* comma-separated CLI_REAL items */
} cli_kind;

typedef struct cli_option {
    cli_kind kind;
    const char *name;    /* "--width" */
    char short_name;     /* 'o' for -o FILE / -oFILE, 0: none */
    const char *arg;     /* the value's placeholder in the help: "W", "FILE" */
    double lo, hi;       /* numbers, and list items */
    bool lo_open;        /* lo itself is refused */
    const char *choices; /* CLI_CHOICE: "teacher|random"; numbers and lists: names also accepted */
    int min_items, max_items; /* lists: 1 and 16 unless set */
    bool repeat;         /* may be given more than once, every value kept (run --input) */
    const char *dflt;    /* shown as "(default X)" */
    const char *help;    /* wrapped to the terminal width; "\n" forces a break */
} cli_option;

typedef struct cli_command {
    const char *name, *summary;
    const char *synopsis; /* after "onnx-distill NAME " in the usage line */
    int min_operands, max_operands; /* max -1: any number */
    const char *operand;  /* what an operand is, for messages: "teacher", "model" */
    const char *about;    /* paragraphs before the options */
    const cli_option *options;
    const char *notes;    /* paragraphs after the options, or NULL */
} cli_command;

/* ---- shared options: one definition each ------------------------------------------------ */

#define CLI_OPT_OUTPUT(what) {CLI_TEXT, "--output", 'o', "FILE", .help = what " (written atomically)"}
#define CLI_OPT_THREADS(d) {CLI_INT, "--threads", 0, "N", 1, 256, .dflt = d, .help = "worker threads"}
#define CLI_OPT_THREAD_LIST(d, h) {CLI_INT_LIST, "--threads", 0, "LIST", 1, 256, .max_items = 4, .dflt = d, .help = h}
#define CLI_OPT_BATCH_LIST(d, h) {CLI_INT_LIST, "--batch", 0, "LIST", 1, 1 << 20, .max_items = 4, .dflt = d, .help = h}
#define CLI_OPT_MIN_TIME(d) \
    {CLI_REAL, "--min-time", 0, "S", 0.001, 3600, .dflt = d, .help = "seconds of timed runs per measurement"}
#define CLI_OPT_SEED \
    {CLI_INT, "--seed", 0, "S", 0, 0, .dflt = "1", .help = "seed of the random initialisation (and of the data order)"}
#define CLI_OPT_WEIGHTS \
    {CLI_CHOICE, "--weights", 0, NULL, .choices = "f32|f16|int8", .dflt = "f32", \
     .help = "weight storage of the written model: float32 as they are; float16 initializers each " \
             "followed by Cast; per-output-channel symmetric int8 with DequantizeLinear (opset raised " \
             "to 13 when lower). Activations stay float32."}
#define CLI_OPT_DATA(what) \
    {CLI_TEXT, "--data", 0, "PATH", .help = what ": an IDX folder, a CIFAR folder, an .npz file, fashion-mnist, " \
     "or a folder of PNG/JPEG images with one sub-folder per class (train/ and val/ or test/ when present, else " \
     "a seeded 10% test split)"}
#define CLI_OPT_JSON(what) {CLI_FLAG, "--json", .help = what}
#define CLI_OPT_VERBOSE(what) {CLI_FLAG, "--verbose", 'v', .help = what}

/* How to build a student: shrink, and distill when it builds one. */
#define CLI_OPTS_SHRINK                                                                                       \
    {CLI_REAL, "--width", 0, "W", 0.001, 1,                                                      \
     .help = "every Conv, ConvTranspose, Gemm and MatMul keeps round(W x its output channels), "  \
             "rounded up to a multiple of --round. Channels that must agree (residual Add branches, "        \
             "depthwise convs, Concat inputs along other axes) form one group; the graph's inputs and the "  \
             "classifier's outputs stay."},                                                                  \
    {CLI_REAL, "--depth", 0, "D", 0.001, 1,                                                      \
     .help = "keep round(D x n) of the n removable blocks, spread evenly. A removable block is "  \
             "a residual block whose output shape equals its input's (the branch goes, the skip stays) or a " \
             "layer with its BN and activation in a chain of same-shape layers (e.g. an MLP's hidden layers)."}, \
    {CLI_TEXT, "--spec", 0, "FILE",                                                                          \
     .help = "JSON per-layer control, e.g.\n"                                                                \
             "  {\"width\": 0.5, \"depth\": 1, \"channels\": {\"/features/*/Conv\": 24},\n"                   \
             "   \"drop\": [\"/layers/layers.1/*\"]}\n"                                                       \
             "channels: output channels of the matching nodes (names or globs); drop: removable blocks "     \
             "holding a matching node. --width and --depth given on the command line override the file's."}, \
    {CLI_TEXT, "--budget", 0, "B",                                                                           \
     .help = "instead of --width/--spec: the widest uniform width whose student meets B, found by bisection, "  \
             "then (latency) a per-layer search cutting the layers that lose the least L1 mass per second "   \
             "saved; printed with the candidates tried, why the choice won and its spec (as --spec JSON). B is a latency "   \
             "on our own plans (0.5ms, 500us; @b8t2: at batch 8, 2 threads; default b1t1; median of 0.2 s of "  \
             "runs, --budget-time; the choice measured again), an encoded size (200KB, 1.5MB, 30000B, KiB, MiB) or MACs per "  \
             "sample (2M-macs, 150000-macs). --depth, --round, --init, --bn apply as given."},                 \
    {CLI_TEXT, "--budget-spec-out", 0, "FILE", .help = "with --budget: also write the chosen spec there (JSON)"}, \
    {CLI_REAL, "--budget-margin", 0, "PCT|auto", 0, 50, .choices = "auto", .dflt = "auto",                    \
     .help = "with a latency --budget: aim PCT percent under it, so that the choice still meets it when "     \
             "measured again; auto: the largest relative spread of the search's own repeated measurements "   \
             "(the teacher's and the narrowest student's, 3 fresh plans each), clamped to 2-10%. MACs and "     \
             "size budgets are exact and take no margin."},                                                   \
    {CLI_REAL, "--budget-time", 0, "S", 0.01, 60, .dflt = "0.2",                                              \
     .help = "with a latency --budget: seconds of timed runs per candidate (their median counts); longer "   \
             "is steadier on a busy machine, shorter searches faster"},                                        \
    {CLI_CHOICE, "--target", 0, NULL, .choices = "ours|ort", .dflt = "ours",                                  \
     .help = "with a latency --budget: time the candidates on our own plans, or on ONNX Runtime (node and "    \
             "onnxruntime-node, found through OD_ORT_NODE_PATH or NODE_PATH; an error when missing). The "     \
             "per-layer model is still calibrated on our plans' profiles, scaled to the measured latency."}, \
    {CLI_INT, "--round", 0, "N", 1, 65536, .dflt = "8", .help = "channel multiple (1: no rounding)"},         \
    {CLI_CHOICE, "--init", 0, NULL, .choices = "teacher|random", .dflt = "teacher",                           \
     .help = "teacher: keep each group's channels of largest L1 norm, with the teacher's weights; random: "  \
             "PyTorch's default initialisation"},                                                            \
    {CLI_CHOICE, "--bn", 0, NULL, .choices = "auto|on|off", .dflt = "auto",                                   \
     .help = "insert BatchNormalization (named od_bn_*, an identity until trained) after each Conv that "    \
             "lacks one, for training; the writer folds them away. auto: on when the student has more than " \
             "2 Conv layers"}

/* Preprocessing that overrides a model's metadata (eval, distill, compare). */
#define CLI_OPTS_PREPROCESS                                                                         \
    {CLI_REAL, "--scale", 0, "F", 1e-12, 1e12, .help = "x = (raw x F - mean) / std"},               \
    {CLI_REAL_LIST, "--mean", 0, "LIST", -1e9, 1e9, .choices = "imagenet",                          \
     .help = "per-channel mean (one value: all; imagenet: torchvision's 0.485,0.456,0.406)"},        \
    {CLI_REAL_LIST, "--std", 0, "LIST", 1e-12, 1e9, .choices = "imagenet",                          \
     .help = "per-channel std (one value: all; imagenet: torchvision's 0.229,0.224,0.225)"}, \
    CLI_OPTS_IMAGES

/* Image folders (cli_data_load): resize and crop as torchvision's Resize + CenterCrop. */
#define CLI_OPTS_IMAGES                                                                                        \
    {CLI_INT, "--resize", 0, "N", 1, 65536,                                                                    \
     .help = "image folders: the shorter side becomes N first (antialiased bilinear, as torchvision); default: " \
             "the model's preprocess.resize metadata, else its input's larger side (ImageNet teachers: 256)"},   \
    {CLI_TEXT, "--crop", 0, "H[xW]", .help = "image folders: center crop (default: the model's input H x W)"},  \
    {CLI_FLAG, "--strict", .help = "image folders: a file that does not decode is an error, not skipped with a warning"}, \
    {CLI_TEXT, "--cache", 0, "DIR", .help = "image folders: keep the decoded images in DIR (mapped) for the next run"}

/* ---- parsing and reading the values ------------------------------------------------------- */

typedef struct cli_args {
    const cli_command *cmd;
    int n_operands;
    const char **operands;
    int n_given;
    struct cli_given {
        const cli_option *opt;
        const char *value; /* NULL for a flag */
    } *given;
} cli_args;

/* Reads argv (argv[0] is the command's name) against cmd's table: `--name value`,
 * `--name=value`, `-o value`, `-ovalue`, `--` ends the options. Returns -1 to go on, 0 after
 * printing the help (--help, -h), CLI_EXIT_USAGE after a usage message. Values are checked
 * here, so the getters below cannot fail. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_args *a);
void cli_args_clear(cli_args *a);

bool cli_given(const cli_args *a, const char *name);
/* The last value given, or dflt. */
const char *cli_text(const cli_args *a, const char *name, const char *dflt);
long long cli_int(const cli_args *a, const char *name, long long dflt);
double cli_real(const cli_args *a, const char *name, double dflt);
/* The index of the value in the option's choices, or dflt. */
int cli_choice(const cli_args *a, const char *name, int dflt);
/* List items (count returned; 0 when not given). */
int cli_int_list(const cli_args *a, const char *name, long long *out, int max);
int cli_real_list(const cli_args *a, const char *name, double *out, int max);
/* Repeated options: how many times given, and the k-th value. */
int cli_count(const cli_args *a, const char *name);
const char *cli_nth(const cli_args *a, const char *name, int k);

/* `onnx-distill: MESSAGE` on stderr. cli_fail returns 1 (a runtime error); cli_usage returns
 * 2 and names the command's help. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_fail_err(const od_error *err);
int cli_usage(const cli_command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void cli_print_help(const cli_command *cmd, FILE *f);
/* The man page onnx-distill(1), in roff, from every command's table. */
void cli_print_man(const cli_command *const *cmds, int n, FILE *f);

/* --scale F, --mean LIST, --std LIST applied over the preprocessing a model's metadata gives. */
void cli_preprocess_apply(const cli_args *a, od_preprocess *pre);
/* od_data_load_ex with image-folder options from model's input (may be NULL) and CLI_OPTS_IMAGES;
 * decoding progress (on a terminal) and a warning about skipped files on stderr unless quiet. */
od_status cli_data_load(const cli_args *a, const char *path, const od_model *model, int threads, bool quiet,
                        od_data_split *out, od_error *err);
/* The same, keeping only shard `shard` of `shards` of the first shard_limit training samples
 * (od_image_options.shard: IDX data; distill on several ranks). */
od_status cli_data_load_shard(const cli_args *a, const char *path, const od_model *model, int threads, bool quiet,
                              int shard, int shards, int64_t shard_limit, od_data_split *out, od_error *err);

/* Facts about a model for inspect, bench and reports. */
typedef struct model_facts {
    size_t bytes;
    int64_t params, macs; /* per sample, batch 1 */
    int macs_unknown;     /* nodes of unknown shape: macs is then a lower bound */
} model_facts;
od_status model_facts_get(const char *path, const od_model *m, model_facts *f, od_error *err);

/* --target ort (cli_ort.c): whether ONNX Runtime for Node runs, naming its version; the timer. */
od_status cli_ort_check(char *version, size_t size, od_error *err);
od_status cli_ort_timer(const od_model *m, int64_t batch, int threads, double min_time, double *median, double *p90,
                        void *ctx, od_error *err);
/* --target, --budget-margin and --budget-time: set b's timer (ort: checked to run first) and
 * margin, and *min_time, the seconds a latency candidate is timed (for cli_budget_choose). */
od_status cli_budget_target(const cli_args *a, od_budget *b, double *min_time, od_error *err);
/* --budget (shrink, distill): searches the width meeting b (parsed by od_budget_parse), prints
 * the candidates and the chosen spec JSON on stdout, writes it to spec_out (may be NULL). Sets
 * spec->width and *res; *student gets the chosen student. Errors are returned in err.
 * A latency candidate is timed for min_time seconds (--budget-time). */
od_status cli_budget_choose(const od_model *teacher, const od_budget *b, double min_time, const char *spec_out,
                            od_shrink_spec *spec, od_budget_result *res, od_model **student, od_error *err);

/* The subcommands: each a table and a function. */
extern const cli_command cli_cmd_inspect, cli_cmd_run, cli_cmd_bench, cli_cmd_shrink, cli_cmd_optimize,
    cli_cmd_distill, cli_cmd_eval, cli_cmd_compare;
int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_shrink(int argc, char **argv);
int cmd_optimize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_compare(int argc, char **argv);

#endif

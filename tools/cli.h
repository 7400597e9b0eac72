/* Shared by the subcommands: option parsing, errors, number lists, model facts. */
#ifndef OD_CLI_H
#define OD_CLI_H

#include "onnx_distill.h"

#include <stdio.h>

/* Prints `onnx-distill: MESSAGE` to stderr; returns 1 (the exit status for any error). */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, from an error record. */
int cli_fail_err(const od_error *err);

/* Option parsing: `--name value` or `--name=value`. Returns true and sets *value (NULL for a
 * flag) when argv[*i] is that option; advances *i past a separate value. */
bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value);
bool cli_flag(const char *arg, const char *name);
/* Parses numbers; false (with a message printed) when out of [lo, hi] or not a number. */
bool cli_int(const char *opt, const char *s, long lo, long hi, long *out);
bool cli_double(const char *opt, const char *s, double lo, double hi, double *out);
/* "1,64" -> {1, 64}; returns count or -1 (message printed). */
int cli_int_list(const char *opt, const char *s, long lo, long hi, long *out, int max);

/* --scale F, --mean LIST, --std LIST: override the preprocessing a model's metadata gives. */
typedef struct cli_preprocess {
    bool has_scale;
    float scale;
    int n_mean, n_std;
    float mean[16], std[16];
} cli_preprocess;
/* 0: argv[*i] was one of them (parsed); -1: not one of them; 1: bad value (message printed). */
int cli_preprocess_option(int argc, char **argv, int *i, cli_preprocess *p);
void cli_preprocess_apply(const cli_preprocess *p, od_preprocess *pre);

/* Facts about a model for inspect, bench and reports. */
typedef struct model_facts {
    size_t bytes;
    int64_t params, macs; /* per sample, batch 1 */
    int macs_unknown;     /* nodes of unknown shape: macs is then a lower bound */
} model_facts;
od_status model_facts_get(const char *path, const od_model *m, model_facts *f, od_error *err);

int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_shrink(int argc, char **argv);
int cmd_optimize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_compare(int argc, char **argv);

#endif

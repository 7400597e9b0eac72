/* onnx-distill compare MODEL... [--data PATH] [--limit N] [--batch 1,64] [--threads 1,2]
 *                      [--min-time S] [--json|--md|--html] */
#include "cli.h"

#include <string.h>

enum { MAX_MODELS = 16 };

const cli_command cli_cmd_compare = {
    .name = "compare",
    .summary = "models side by side: size, params, MACs, latency, accuracy, agreement",
    .synopsis = "MODEL... [--data PATH [--limit N]] [--batch 1,64] [--threads 1,2] [--min-time SECONDS] "
                "[--json | --md | --html]",
    .min_operands = 1, .max_operands = MAX_MODELS, .operand = "model",
    .about = "Puts models side by side, as distill's summary does for a teacher and its student: file bytes, "
             "gzip -9 bytes, params, MACs per sample, and latency (median and p90) for every batch size and "
             "thread count, each with its ratio to the first model. With --data, also test accuracy, agreement "
             "with the first model (top-1), per-class accuracy, confusion matrices and the samples one model "
             "gets wrong and the first right, and the reverse. For comparing a teacher with several students, "
             "or one model before and after `optimize`.",
    .options = (const cli_option[]){
        CLI_OPT_DATA("test data"),
        {CLI_INT, "--limit", 0, "N", 1, 0x7fffffffffffLL, .help = "evaluate on the first N test samples only"},
        CLI_OPTS_PREPROCESS,
        CLI_OPT_BATCH_LIST("1,64", "batch sizes to time"),
        CLI_OPT_THREAD_LIST("1,2", "thread counts to time; evaluation uses the largest"),
        CLI_OPT_MIN_TIME("0.3"),
        {CLI_FLAG, "--no-latency", .help = "skip timing"},
        CLI_OPT_JSON("the report as JSON (the keys distill --report writes, kind \"compare\")"),
        {CLI_FLAG, "--md", .help = "the report as Markdown"},
        {CLI_FLAG, "--html", .help = "the report as one self-contained HTML page"},
        {0},
    },
};


int cmd_compare(int argc, char **argv) {
    const cli_command *cmd = &cli_cmd_compare;
    cli_args args;
    int parsed = cli_parse(cmd, argc, argv, &args);
    if (parsed >= 0) return parsed;
    const char *paths[MAX_MODELS], *data_path = cli_text(&args, "--data", NULL);
    int n_models = args.n_operands;
    memcpy(paths, args.operands, sizeof *paths * (size_t)n_models);
    long limit = (long)cli_int(&args, "--limit", 0);
    long long list[4];
    od_report_options ro;
    od_report_options_default(&ro);
    int n = cli_int_list(&args, "--batch", list, 4);
    if (n) ro.n_batches = n;
    for (int k = 0; k < n; k++) ro.batches[k] = list[k];
    n = cli_int_list(&args, "--threads", list, 4);
    if (n) ro.n_threads = n;
    for (int k = 0; k < n; k++) ro.threads[k] = (int)list[k];
    ro.min_time = cli_real(&args, "--min-time", ro.min_time);
    bool no_latency = cli_given(&args, "--no-latency");
    int n_formats = cli_given(&args, "--json") + cli_given(&args, "--md") + cli_given(&args, "--html");
    od_report_format fmt = cli_given(&args, "--json") ? OD_REPORT_JSON
                           : cli_given(&args, "--md") ? OD_REPORT_MARKDOWN
                           : cli_given(&args, "--html") ? OD_REPORT_HTML
                                                        : OD_REPORT_TEXT;
    if (n_formats > 1) return cli_args_clear(&args), cli_usage(cmd, "compare: --json, --md and --html exclude each other");
    if (limit && !data_path) return cli_args_clear(&args), cli_usage(cmd, "compare: --limit needs --data");
    if (no_latency) ro.n_batches = 0;
    int eval_threads = 1;
    for (int k = 0; k < ro.n_threads; k++)
        if (ro.threads[k] > eval_threads) eval_threads = ro.threads[k];

    int rc = 1;
    od_error err = {0};
    od_report rep;
    od_report_init(&rep);
    od_data_split data = {0};
    od_model *models[MAX_MODELS] = {0};
    for (int i = 0; i < n_models; i++) {
        /* the file name as label, or the path when two models share a name */
        const char *base = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
        bool clash = false;
        for (int j = 0; j < n_models; j++) {
            const char *other = strrchr(paths[j], '/') ? strrchr(paths[j], '/') + 1 : paths[j];
            clash |= j != i && strcmp(base, other) == 0;
        }
        if (od_model_load(paths[i], &models[i], &err) ||
            od_report_add_model(&rep, clash ? paths[i] : base, paths[i], models[i], &ro, &err))
            goto fail;
    }
    if (data_path) {
        if (cli_data_load(&args, data_path, models[0], eval_threads, false, &data, &err) ||
            od_report_set_data(&rep, data_path, models[0], &err) ||
            od_report_set_class_names(&rep, data.class_names, data.n_class_names, &err))
            goto fail;
        od_dataset test = data.test;
        if (limit && limit < test.n) test.n = limit;
        if (test.n == 0) {
            cli_fail("compare: %s has no test samples", data_path);
            goto done;
        }
        for (int i = 0; i < n_models; i++) {
            od_preprocess pre;
            if (od_preprocess_from_model(models[i], &pre, &err)) {
                od_error_prefix(&err, "%s: ", paths[i]);
                goto fail;
            }
            cli_preprocess_apply(&args, &pre);
            if (od_report_evaluate(&rep, i, models[i], &test, &pre, eval_threads, &err)) goto fail;
        }
    }
    od_report_write(&rep, fmt, stdout);
    fflush(stdout);
    if (ferror(stdout)) {
        cli_fail("compare: cannot write to stdout");
        goto done;
    }
    rc = 0;
    goto done;
fail:
    cli_fail_err(&err);
done:
    cli_args_clear(&args);
    od_report_clear(&rep);
    od_data_split_clear(&data);
    for (int i = 0; i < n_models; i++) od_model_destroy(models[i]);
    return rc;
}

/* onnx-distill compare MODEL... [--data PATH] [--limit N] [--batch 1,64] [--threads 1,2]
 *                      [--min-time S] [--json|--md|--html] */
#include "cli.h"

#include <string.h>

static const char compare_help[] =
    "usage: onnx-distill compare MODEL... [--data PATH [--limit N]] [--batch 1,64] [--threads 1,2]\n"
    "                            [--min-time SECONDS] [--json | --md | --html]\n\n"
    "Puts models side by side, as distill's summary does for a teacher and its student: file\n"
    "bytes, gzip -9 bytes, params, MACs per sample, and latency (median and p90) for every batch\n"
    "size and thread count, each with its ratio to the first model. With --data, also test\n"
    "accuracy, agreement with the first model (top-1), per-class accuracy, confusion matrices and\n"
    "the samples one model gets wrong and the first right, and the reverse. For comparing a\n"
    "teacher with several students, or one model before and after `optimize`.\n\n"
    "  --data PATH        IDX folder, CIFAR folder, .npz file, or a short name: fashion-mnist\n"
    "  --limit N          evaluate on the first N test samples only\n"
    "  --scale F --mean LIST --std LIST   preprocessing (default: each model's metadata)\n"
    CLI_IMAGE_HELP
    "  --batch LIST       batch sizes to time (default 1,64)\n"
    "  --threads LIST     thread counts to time (default 1,2); evaluation uses the largest\n"
    "  --min-time S       seconds of timed runs per (batch, threads) and model (default 0.3)\n"
    "  --no-latency       skip timing\n"
    "  --json             the report as JSON (the keys distill --report writes, kind \"compare\")\n"
    "  --md               the report as Markdown\n"
    "  --html             the report as one self-contained HTML page\n";

#define MAX_MODELS 16

int cmd_compare(int argc, char **argv) {
    const char *paths[MAX_MODELS], *data_path = NULL, *v;
    int n_models = 0;
    long limit = 0, list[4];
    od_report_format fmt = OD_REPORT_TEXT;
    od_report_options ro;
    od_report_options_default(&ro);
    cli_preprocess pre_flags = {0};
    bool no_latency = false;
    for (int i = 1; i < argc; i++) {
        int pre_rc = cli_preprocess_option(argc, argv, &i, &pre_flags);
        if (pre_rc > 0) return 1;
        if (pre_rc == 0) continue;
        const char *a = argv[i];
        if (cli_flag(a, "--help") || cli_flag(a, "-h")) {
            fputs(compare_help, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--data", &v)) {
            if (!(data_path = v)) return 1;
        } else if (cli_opt(argc, argv, &i, "--limit", &v)) {
            if (!cli_int("--limit", v, 1, 0x7fffffffffffL, &limit)) return 1;
        } else if (cli_opt(argc, argv, &i, "--batch", &v)) {
            int n = cli_int_list("--batch", v, 1, 1 << 20, list, 4);
            if (n < 0) return 1;
            ro.n_batches = n;
            for (int k = 0; k < n; k++) ro.batches[k] = list[k];
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            int n = cli_int_list("--threads", v, 1, 256, list, 4);
            if (n < 0) return 1;
            ro.n_threads = n;
            for (int k = 0; k < n; k++) ro.threads[k] = (int)list[k];
        } else if (cli_opt(argc, argv, &i, "--min-time", &v)) {
            if (!cli_double("--min-time", v, 0.001, 3600, &ro.min_time)) return 1;
        } else if (cli_flag(a, "--no-latency")) {
            no_latency = true;
        } else if (cli_flag(a, "--json") || cli_flag(a, "--md") || cli_flag(a, "--html")) {
            od_report_format want = a[2] == 'j' ? OD_REPORT_JSON : a[2] == 'm' ? OD_REPORT_MARKDOWN : OD_REPORT_HTML;
            if (fmt != OD_REPORT_TEXT && fmt != want) return cli_fail("compare: --json, --md and --html exclude each other");
            fmt = want;
        } else if (a[0] == '-') {
            return cli_fail("compare: unknown option %s (see onnx-distill compare --help)", a);
        } else if (n_models == MAX_MODELS) {
            return cli_fail("compare: at most %d models", MAX_MODELS);
        } else {
            paths[n_models++] = a;
        }
    }
    if (!n_models) return cli_fail("compare: no model given (see onnx-distill compare --help)");
    if (limit && !data_path) return cli_fail("compare: --limit needs --data");
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
        if (cli_data_load(data_path, models[0], &pre_flags, eval_threads, false, &data, &err) ||
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
            cli_preprocess_apply(&pre_flags, &pre);
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
    od_report_clear(&rep);
    od_data_split_clear(&data);
    for (int i = 0; i < n_models; i++) od_model_destroy(models[i]);
    return rc;
}

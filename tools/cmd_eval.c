/* onnx-distill eval MODEL --data PATH [--json] [--threads N] [--split test|train] */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

const cli_command cli_cmd_eval = {
    .name = "eval",
    .summary = "accuracy, per-class accuracy and confusion matrix on a labelled dataset",
    .synopsis = "MODEL --data PATH [--split test|train] [--threads N] [--json]",
    .min_operands = 1, .max_operands = 1, .operand = "model",
    .about = "Accuracy, per-class accuracy and the confusion matrix of MODEL on a labelled dataset. "
             "Preprocessing comes from the model's metadata (preprocess.scale/mean/std) unless given.",
    .options = (const cli_option[]){
        CLI_OPT_DATA("the labelled data"),
        {CLI_CHOICE, "--split", 0, NULL, .choices = "test|train", .dflt = "test"},
        CLI_OPTS_PREPROCESS,
        CLI_OPT_THREADS("2"),
        CLI_OPT_JSON("one JSON object: model, split, samples, accuracy, per_class, confusion"),
        {0},
    },
};

int cmd_eval(int argc, char **argv) {
    cli_args args;
    int parsed = cli_parse(&cli_cmd_eval, argc, argv, &args);
    if (parsed >= 0) return parsed;
    const char *path = args.operands[0], *data_path = cli_text(&args, "--data", NULL),
               *split = cli_text(&args, "--split", "test");
    bool json = cli_given(&args, "--json");
    long threads = (long)cli_int(&args, "--threads", 2);
    if (!data_path) return cli_args_clear(&args), cli_usage(&cli_cmd_eval, "eval: no --data given");
    od_error err = {0};
    od_model *m = NULL;
    od_data_split data = {0};
    float *logits = NULL;
    int rc = 1;
    if (od_model_load(path, &m, &err) || cli_data_load(&args, data_path, m, (int)threads, false, &data, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    od_preprocess pre;
    if (od_preprocess_from_model(m, &pre, &err)) {
        cli_fail("%s: %s", path, err.message);
        goto done;
    }
    cli_preprocess_apply(&args, &pre);
    const od_dataset *d = strcmp(split, "train") == 0 ? &data.train : &data.test;
    if (d->n == 0) {
        cli_fail("eval: %s has no %s samples", data_path, split);
        goto done;
    }
    if (!d->labels) {
        cli_fail("eval: %s has no labels for its %s samples", data_path, split);
        goto done;
    }
    if (od_preprocess_check(&pre, d, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    int64_t classes;
    if (od_model_logits(m, d, &pre, (int)threads, &logits, &classes, &err)) {
        cli_fail("%s: %s", path, err.message);
        goto done;
    }
    if (od_dataset_check_labels(d, d->n, classes, &err)) {
        cli_fail("eval: %s: %s %s (%s)", data_path, split, err.message, path);
        goto done;
    }
    od_class_eval ev;
    if (od_class_eval_compute(logits, classes, d->labels, d->n, d->n_classes, &ev, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    int64_t K = ev.classes;
    const int64_t *conf = ev.confusion;
    if (json) {
        printf("{\"model\": ");
        od_json_string(stdout, path);
        printf(", \"split\": \"%s\", \"samples\": %lld, \"accuracy\": %.6f, \"per_class\": [", split, (long long)d->n,
               ev.accuracy);
        for (int64_t c = 0; c < K; c++) printf("%s%.6f", c ? ", " : "", ev.per_class[c] >= 0 ? ev.per_class[c] : 0.0);
        printf("], \"confusion\": [");
        for (int64_t c = 0; c < K; c++) {
            printf("%s[", c ? ", " : "");
            for (int64_t j = 0; j < K; j++) printf("%s%lld", j ? ", " : "", (long long)conf[c * K + j]);
            printf("]");
        }
        printf("]}\n");
    } else {
        printf("%s on %s (%s, %lld samples): accuracy %.2f%%\n\nper class:\n", path, data_path, split, (long long)d->n,
               100 * ev.accuracy);
        for (int64_t c = 0; c < K; c++)
            printf("  class %-3lld %6.2f%%  (%lld samples)\n", (long long)c, ev.per_class[c] >= 0 ? 100.0 * ev.per_class[c] : 0.0,
                   (long long)ev.support[c]);
        printf("\nconfusion (rows: true class, columns: predicted):\n     ");
        for (int64_t j = 0; j < K; j++) printf("%6lld", (long long)j);
        printf("\n");
        for (int64_t c = 0; c < K; c++) {
            printf("  %-3lld", (long long)c);
            for (int64_t j = 0; j < K; j++) printf("%6lld", (long long)conf[c * K + j]);
            printf("\n");
        }
    }
    od_class_eval_clear(&ev);
    rc = 0;
done:
    cli_args_clear(&args);
    free(logits);
    od_data_split_clear(&data);
    od_model_destroy(m);
    return rc;
}

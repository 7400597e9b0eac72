/* onnx-distill eval MODEL --data PATH [--json] [--threads N] [--split test|train] */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char eval_help[] =
    "usage: onnx-distill eval MODEL --data PATH [--split test|train] [--threads N] [--json]\n\n"
    "Accuracy, per-class accuracy and the confusion matrix of MODEL on a labelled dataset.\n"
    "Preprocessing comes from the model's metadata (preprocess.scale/mean/std) unless given.\n\n"
    "  --data PATH        IDX folder, CIFAR folder, .npz file, or a short name: fashion-mnist\n"
    "  --split S          test (default) or train\n"
    "  --scale F --mean LIST --std LIST   preprocessing: x = (raw * scale - mean) / std;\n"
    "                     LIST may be imagenet (torchvision's per-channel values)\n"
    "  --threads N        worker threads (default 2)\n"
    "  --json             one JSON object: model, split, samples, accuracy, per_class, confusion\n";

int cmd_eval(int argc, char **argv) {
    const char *path = NULL, *data_path = NULL, *split = "test";
    bool json = false;
    long threads = 2;
    cli_preprocess pre_flags = {0};
    for (int i = 1; i < argc; i++) {
        const char *v;
        int pre_rc = cli_preprocess_option(argc, argv, &i, &pre_flags);
        if (pre_rc > 0) return 1;
        if (pre_rc == 0) continue;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            fputs(eval_help, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--data", &v)) {
            if (!(data_path = v)) return 1;
        } else if (cli_opt(argc, argv, &i, "--split", &v)) {
            if (!v || (strcmp(v, "test") && strcmp(v, "train"))) return cli_fail("eval: --split is test or train");
            split = v;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if (!cli_int("--threads", v, 1, 256, &threads)) return 1;
        } else if (cli_flag(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] == '-') {
            return cli_fail("eval: unknown option %s (see onnx-distill eval --help)", argv[i]);
        } else if (path) {
            return cli_fail("eval: one model at a time (%s and %s given)", path, argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (!path) return cli_fail("eval: no model given (see onnx-distill eval --help)");
    if (!data_path) return cli_fail("eval: no --data given");
    od_error err = {0};
    od_model *m = NULL;
    od_data_split data = {0};
    float *logits = NULL;
    int rc = 1;
    if (od_model_load(path, &m, &err) || od_data_load(data_path, &data, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    od_preprocess pre;
    if (od_preprocess_from_model(m, &pre, &err)) {
        cli_fail("%s: %s", path, err.message);
        goto done;
    }
    cli_preprocess_apply(&pre_flags, &pre);
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
    free(logits);
    od_data_split_clear(&data);
    od_model_destroy(m);
    return rc;
}

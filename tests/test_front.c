/* The front door (lib/onnx_distill.h) on its own: every call, on the MLP teacher (small enough to
 * train a little here), the failures each reports through od_last_error, and agreement with the
 * detailed API it wraps. Only onnx_distill.h is included until the cross-checks at the end. */
#include "onnx_distill.h"

#include "test_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "od_onnx.h" /* for the cross-checks: the same model seen through the detailed API */

int main(void) {
    char dir[] = "/tmp/od_front_XXXXXX", path[256], report[256];
    check(mkdtemp(dir) != NULL, "mkdtemp", "%s", dir);
    snprintf(path, sizeof path, "%s/student.onnx", dir);
    snprintf(report, sizeof report, "%s/report.json", dir);

    check(strcmp(od_version(), OD_VERSION) == 0, "od_version", "%s", od_version());
    check(od_open("/nowhere/x.onnx") == NULL && strstr(od_last_error(), "/nowhere/x.onnx"),
          "od_open of a missing file", "%s", od_last_error());
    check(od_open(NULL) == NULL && od_last_error()[0], "od_open(NULL)", "%s", od_last_error());
    od_close(NULL);

    od_model *t = od_open("models/mlp.onnx");
    check(t != NULL, "od_open models/mlp.onnx", "%s", od_last_error());
    if (!t) goto done;
    int64_t params = od_param_count(t), macs = od_mac_count(t);
    int64_t dp, dm;
    od_error err = {0};
    check(!od_model_count(t, &dp, &dm, &err) && dp == params && dm == macs && params > 0,
          "counts agree with od_model_count", "%lld %lld vs %lld %lld", (long long)params,
          (long long)macs, (long long)dp, (long long)dm);
    check(od_input_count(t) == 1 && od_output_count(t) == 1, "one input, one output", "%d %d",
          od_input_count(t), od_output_count(t));
    check(od_input_name(t, 0) && od_output_name(t, 0) && !od_input_name(t, 1) &&
              !od_output_name(t, -1),
          "names", "%s %s", od_input_name(t, 0), od_output_name(t, 0));
    int64_t dims[8];
    int rank = od_input_shape(t, 0, dims);
    int64_t sample = 1;
    for (int d = 1; d < rank; d++)
        sample *= dims[d];
    check(rank >= 2 && dims[0] == -1 && sample == 784, "input shape [N, 784-ish], batch symbolic",
          "rank %d", rank);
    check(od_input_shape(t, 3, dims) == -1 && od_last_error()[0], "od_input_shape out of range",
          "%s", od_last_error());

    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    check(mem && od_describe(t, mem) == 0, "od_describe", "%s", od_last_error());
    if (mem) fclose(mem);
    check(text && strstr(text, "params") && strstr(text, "MACs") &&
              strstr(text, od_input_name(t, 0)),
          "od_describe text", "%s", text ? text : "");
    free(text);

    check(od_make_student(t, 0, 1) == NULL && strstr(od_last_error(), "width"),
          "od_make_student width 0 refused", "%s", od_last_error());
    od_model *s = od_make_student(t, 0.5, 1);
    check(s != NULL, "od_make_student 0.5", "%s", od_last_error());
    if (!s) goto done_t;
    check(od_param_count(s) < params, "the student is smaller", "%lld vs %lld",
          (long long)od_param_count(s), (long long)params);

    float *x = calloc(4 * 784, sizeof(float)), y[4 * 10], y1[10];
    for (int i = 0; x && i < 4 * 784; i++)
        x[i] = (float)sin(i * 0.01);
    check(x && od_predict(s, x, 4, y, 40) == 0, "od_predict batch 4", "%s", od_last_error());
    check(od_predict(s, x + 784, 1, y1, 10) == 0 && fabsf(y1[3] - y[13]) < 1e-4f,
          "batch 1 gives sample 1's row", "%g vs %g", y1[3], y[13]);
    check(od_predict(s, x, 4, y, 39) != 0 && strstr(od_last_error(), "room for 39"),
          "od_predict: output too small", "%s", od_last_error());

    check(od_train_student(t, s, "/nowhere/data", 1, 0) != 0 &&
              strstr(od_last_error(), "/nowhere/data"),
          "od_train_student on missing data", "%s", od_last_error());
    check(od_train_student(t, s, "fashion-mnist", 1, 1000) == 0,
          "od_train_student 1 epoch, 1000 samples", "%s", od_last_error());
    double acc = -1;
    check(od_test_accuracy(s, "fashion-mnist", 500, &acc) == 0 && acc > 0.3 && acc <= 1,
          "od_test_accuracy after training", "%g (%s)", acc, od_last_error());

    check(od_compress(s, "f17") != 0 && strstr(od_last_error(), "f17"), "od_compress refuses f17",
          "%s", od_last_error());
    check(od_compress(s, "f16") == 0, "od_compress f16", "%s", od_last_error());
    check(od_write(s, path) == 0 && access(path, R_OK) == 0, "od_write", "%s", od_last_error());
    od_model *back = od_open(path);
    double acc2 = -1;
    check(back && od_test_accuracy(back, "fashion-mnist", 500, &acc2) == 0 &&
              fabs(acc2 - acc) < 0.05,
          "written and read back: about the same accuracy (f16)", "%g vs %g", acc2, acc);
    od_close(back);

    double ms = od_bench_ms(s, 1, 1);
    check(ms > 0 && ms < 1000, "od_bench_ms", "%g", ms);
    check(od_bench_ms(s, 0, 1) < 0, "od_bench_ms batch 0 refused", "%s", od_last_error());

    check(od_write_report(t, s, "fashion-mnist", 200, report) == 0, "od_write_report .json", "%s",
          od_last_error());
    od_bytes rb = {0};
    check(!od_file_read(report, &rb, &err) && rb.len > 0 &&
              memmem(rb.data, rb.len, "\"agreement\"", 11),
          "the report holds the agreement", "%zu bytes", rb.len);
    od_bytes_free(&rb);
    check(od_write_report(t, s, NULL, 0, "r.txt") != 0 &&
              strstr(od_last_error(), ".json, .md or .html"),
          "od_write_report .txt refused", "%s", od_last_error());
    unlink(report);
    unlink(path);
    free(x);
    od_close(s);
done_t:
    od_close(t);
done:
    rmdir(dir);
    printf("front: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}

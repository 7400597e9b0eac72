/* Reports without training: number formatting, per-class evaluation, compressed size, report
 * formats by extension, and a report built over the bundled teacher (evaluated on a small
 * synthetic test set, no latency) written as text, JSON, Markdown and HTML: every writer runs,
 * labels are escaped, the HTML fetches nothing, and saving is atomic and refuses unknown
 * extensions. Run from the repository root (needs models/cnn.onnx). */
#include "od_onnx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_check.h"


static void check_format_count(void) {
    static const struct {
        int64_t v;
        const char *want;
    } cases[] = {{0, "0"}, {999, "999"}, {1000, "1,000"}, {-1234567, "-1,234,567"}, {INT64_MIN, "-9,223,372,036,854,775,808"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[40];
        od_format_count(cases[i].v, buf, sizeof buf);
        check(strcmp(buf, cases[i].want) == 0, "od_format_count", "%lld -> \"%s\", want \"%s\"", (long long)cases[i].v, buf,
              cases[i].want);
    }
    char small[4];
    od_format_count(123456, small, sizeof small);
    check(strlen(small) < sizeof small, "od_format_count truncates", "\"%s\"", small);
}

static void check_class_eval(void) {
    /* 5 samples, 3 outputs; labels from a 4-class dataset; class 3 has no sample */
    const float logits[] = {9, 0, 0, /* 0 */ 0, 9, 0, /* 1 */ 0, 0, 9, /* 2 */ 9, 0, 0, /* 0 */ 0, 9, 0 /* 1 */};
    const int32_t labels[] = {0, 1, 2, 1, 7};
    od_class_eval e;
    od_error err = {0};
    if (od_class_eval_compute(logits, 3, labels, 5, 4, &e, &err)) {
        check(false, "class eval", "%s", err.message);
        return;
    }
    check(e.classes == 4 && e.n == 5 && e.correct == 3, "class eval counts", "K %lld n %lld correct %lld", (long long)e.classes,
          (long long)e.n, (long long)e.correct);
    check(e.accuracy > 0.599 && e.accuracy < 0.601, "class eval accuracy", "%g", e.accuracy);
    check(e.confusion[1 * 4 + 0] == 1 && e.confusion[1 * 4 + 1] == 1 && e.support[1] == 2, "class eval confusion", "row 1 wrong");
    check(e.per_class[1] == 0.5 && e.per_class[3] == -1, "class eval per class", "%g %g", e.per_class[1], e.per_class[3]);
    int64_t sum = 0;
    for (int64_t i = 0; i < 16; i++) sum += e.confusion[i];
    check(sum == 4, "class eval: a label outside 0..K-1 is in no cell", "%lld", (long long)sum);
    od_class_eval_clear(&e);
    od_class_eval_clear(&e); /* twice: a no-op */
}

static void check_compressed(void) {
    static uint8_t zeros[100000];
    size_t n = 0;
    od_error err = {0};
    check(!od_compressed_size(zeros, sizeof zeros, &n, &err) && n > 0 && n < 1000, "compressed size of zeros", "%zu", n);
    check(!od_compressed_size(zeros, 0, &n, &err) && n > 0 && n < 16, "compressed size of nothing", "%zu", n);
}

static void check_formats(void) {
    static const struct {
        const char *path;
        int fmt; /* -1: refused */
    } cases[] = {{"a.json", OD_REPORT_JSON}, {"x/b.MD", OD_REPORT_MARKDOWN}, {"c.html", OD_REPORT_HTML},
                 {"d.txt", -1},          {"noext", -1},                   {"dir.json/x", -1},
                 {"e.htm", -1},          {".html/", -1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        od_report_format f;
        od_error err = {0};
        od_status st = od_report_format_from_path(cases[i].path, &f, &err);
        if (cases[i].fmt < 0)
            check(st == OD_STATUS_INVALID_ARGUMENT && strstr(err.message, ".json, .md or .html"), "format refused", "%s", cases[i].path);
        else
            check(!st && (int)f == cases[i].fmt, "format by extension", "%s", cases[i].path);
    }
}

static char *render(const od_report *r, od_report_format fmt) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    od_report_write(r, fmt, f);
    fclose(f);
    return buf;
}

static void check_report(void) {
    od_error err = {0};
    od_model *m = NULL;
    if (od_model_load("models/cnn.onnx", &m, &err)) {
        check(false, "load models/cnn.onnx", "%s", err.message);
        return;
    }
    /* 24 samples of noise, labels 0..9 */
    enum { N = 24, S = 28 * 28 };
    od_dataset test = {.n = N, .rank = 3, .dims = {1, 28, 28}, .n_classes = 10};
    test.f32 = malloc(sizeof(float) * N * S);
    test.labels = malloc(sizeof(int32_t) * N);
    od_rng rng;
    od_rng_seed(&rng, 7);
    for (int i = 0; i < N * S; i++) test.f32[i] = (float)od_rng_uniform(&rng);
    for (int i = 0; i < N; i++) test.labels[i] = i % 10;
    od_preprocess pre;
    od_preprocess_default(&pre);
    pre.scale = 1;

    od_report r;
    od_report_init(&r);
    od_status st = od_report_add_model(&r, "teacher", "models/cnn.onnx", m, NULL, &err);
    if (!st) st = od_report_add_model(&r, "<b>&\"st|u'", NULL, m, NULL, &err); /* in-memory size, odd label */
    if (!st) st = od_report_set_data(&r, "/usr/share/datasets/fashion-mnist/", NULL, &err);
    check(od_report_evaluate(&r, 1, m, &test, &pre, 1, &err) == OD_STATUS_INVALID_ARGUMENT, "model 0 evaluated first", "%s",
          err.message);
    if (!st) st = od_report_evaluate(&r, 0, m, &test, &pre, 1, &err);
    if (!st) st = od_report_evaluate(&r, 1, m, &test, &pre, 1, &err);
    od_epoch_stats epochs[2] = {{1, 2.5, 0.5, 0.6, 0.55, 0.65, 1.0, 100}, {2, 1.5, -1, -1, 0.6, 0.7, 1.0, 100}};
    od_distill_result res = {.n_epochs = 2, .epochs = epochs, .best_epoch = 2, .n_train = 100, .n_val = 10, .n_test = N,
                             .teacher_test_acc = 0.8};
    od_distill_options opt;
    od_distill_options_default(&opt);
    opt.checkpoint = "ignored";
    if (!st) st = od_report_set_distill(&r, &opt, &res, "width 0.5", "f32", &err);
    check(!st, "report built", "%s", err.message);
    if (st) goto done;
    check(r.models[0].bytes > 1000000 && r.models[1].bytes > 1000000 && r.models[0].params == r.models[1].params,
          "sizes from file and from memory", "%zu %zu", r.models[0].bytes, r.models[1].bytes);
    check(r.models[1].agreement == 1 && r.models[1].wrong_ref_right.count == 0 && r.models[1].right_ref_wrong.count == 0,
          "a model agrees with itself", "%g", r.models[1].agreement);
    check(r.n_class_names == 10 && strcmp(r.class_names[9], "Ankle boot") == 0, "Fashion-MNIST class names from the path", "%d",
          r.n_class_names);
    check(r.distill.options.checkpoint == NULL, "option pointers cleared", "checkpoint kept");
    int64_t sum = 0;
    for (int64_t i = 0; i < r.models[0].eval.classes * r.models[0].eval.classes; i++) sum += r.models[0].eval.confusion[i];
    check(sum == N, "confusion sums to n", "%lld", (long long)sum);

    char *text = render(&r, OD_REPORT_TEXT), *json = render(&r, OD_REPORT_JSON), *md = render(&r, OD_REPORT_MARKDOWN),
         *html = render(&r, OD_REPORT_HTML);
    check(text && strstr(text, "MACs per sample") && strstr(text, "agreement with teacher") && strstr(text, "teacher logits"),
          "text summary", "%s", text ? text : "(null)");
    check(json && json[0] == '{' && strstr(json, "\"kind\": \"distill\"") && strstr(json, "\"val_accuracy\": null") &&
              strstr(json, "\"label\": \"<b>&\\\"st|u'\""),
          "JSON", "%.400s", json ? json : "(null)");
    check(md && strstr(md, "## Training") && strstr(md, "\\<b\\>&\"st\\|u'") && strstr(md, "| Ankle boot |"), "Markdown",
          "%.400s", md ? md : "(null)");
    check(html && strstr(html, "&lt;b&gt;&amp;&quot;st|u&#39;") && !strstr(html, "<b>&") && strstr(html, "id=\"chart-confusion-1\"") &&
              strstr(html, "id=\"chart-loss\"") && !strstr(html, "http") && !strstr(html, "<script") && strstr(html, "</html>"),
          "HTML", "%.400s", html ? html : "(null)");
    free(text);
    free(json);
    free(md);
    free(html);

    char dir[] = "/tmp/od_report.XXXXXX", path[64];
    if (mkdtemp(dir)) {
        snprintf(path, sizeof path, "%s/r.html", dir);
        check(!od_report_save(&r, path, &err), "save", "%s", err.message);
        struct stat sb;
        check(stat(path, &sb) == 0 && sb.st_size > 10000, "saved HTML", "%s", path);
        unlink(path);
        snprintf(path, sizeof path, "%s/r.txt", dir);
        check(od_report_save(&r, path, &err) == OD_STATUS_INVALID_ARGUMENT && access(path, F_OK) != 0, "save refuses .txt", "%s", path);
        rmdir(dir);
    }
done:
    od_report_clear(&r);
    od_report_clear(&r);
    free(test.f32);
    free(test.labels);
    od_model_destroy(m);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    check_format_count();
    check_class_eval();
    check_compressed();
    check_formats();
    check_report();
    printf("report_unit: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

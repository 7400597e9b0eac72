/* Static int8 quantization end to end in C: each example teacher (models/cnn.onnx, cnn_bn.onnx,
 * resnet.onnx), optimized, calibrated on 256 Fashion-MNIST training images and written as a QDQ
 * model by od_quantize_static, then run on 1,000 test images three ways: the float model, the
 * QDQ model as written (od_plan_options.no_qs8: QuantizeLinear/DequantizeLinear in float), and
 * the QDQ model on XNNPACK's int8 operators (plan_qs8.c). Checks:
 *  - the int8 plan runs fewer steps than the emulated one (the QDQ patterns became int8 steps;
 *    cnn: every Conv and Gemm);
 *  - int8 and emulated logits agree within QS8_STEPS output quantization steps everywhere, and
 *    within 1 step for >= 99% of them (requantization rounds differently from float emulation,
 *    and a 1-step difference in one layer can move the next by more);
 *  - the int8 plan's argmax agrees with the emulated one on >= 99% of the images;
 *  - its accuracy is within 1 point of the float model's on the same images;
 *  - batch 1 on 2 threads gives the bits of batch 50 on 1 thread;
 *  - with OD_NO_VNNI (XNNPACK's QC8 convolutions instead of the AVX-512 VNNI kernel) the int8
 *    plan agrees with the emulated one just as well;
 *  - a pattern that does not match (a MaxPool whose QuantizeLinear has another scale than its
 *    input's) runs that node in float, and the plan still agrees with the emulated one.
 * Ends with `qs8: N passed, N failed, N skipped` (skipped without the data set). */
#include "od_onnx.h"
#include "od_runtime.h"
#include "test_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define N_TEST 1000
#define N_CAL 256
#define BATCH 50
#define QS8_STEPS 2

static int n_skip;

/* Logits of plan p (batch BATCH) over n samples of x. */
static bool run_all(const od_model *m, const od_plan_options *o, const float *x, int64_t n, int64_t sample,
                    float *out, int64_t classes, int *steps) {
    od_plan *p = NULL;
    od_error err = {0};
    if (od_plan_create(&m->graph, o, &p, &err)) {
        printf("FAIL plan: %s\n", err.message);
        n_fail++;
        return false;
    }
    const od_step_profile *prof;
    if (steps) *steps = od_plan_profile(p, &prof);
    int64_t b = o->batch;
    bool ok = true;
    for (int64_t i = 0; i < n && ok; i += b) {
        memcpy(od_plan_input(p, 0)->data, x + i * sample, sizeof(float) * (size_t)(b * sample));
        ok = !od_plan_run(p, &err);
        memcpy(out + i * classes, od_plan_output(p, 0)->data, sizeof(float) * (size_t)(b * classes));
    }
    if (!ok) {
        printf("FAIL run: %s\n", err.message);
        n_fail++;
    }
    od_plan_destroy(p);
    return ok;
}

static int64_t argmax(const float *r, int64_t k) {
    int64_t best = 0;
    for (int64_t j = 1; j < k; j++)
        if (r[j] > r[best]) best = j;
    return best;
}

/* The scale of the DequantizeLinear writing the graph's output. */
static float output_scale(const od_model *m) {
    const od_graph *g = &m->graph;
    int p = g->values[g->outputs[0]].producer;
    if (p < 0 || strcmp(g->nodes[p].op_type, "DequantizeLinear") != 0) return 0;
    const od_tensor *s = g->values[g->nodes[p].inputs[1]].init;
    return s ? *(const float *)s->data : 0;
}

static void check_teacher(const char *path, const od_data_split *data) {
    od_error err = {0};
    od_model *f = NULL, *q = NULL;
    if (od_model_load(path, &f, &err) || od_model_load(path, &q, &err)) {
        check(false, path, "load: %s", err.message);
        goto done;
    }
    od_preprocess pre;
    od_preprocess_from_model(f, &pre, &err);
    int64_t sample = od_dataset_sample_size(&data->test), classes = 10;
    float *cal = malloc(sizeof(float) * N_CAL * sample), *x = malloc(sizeof(float) * N_TEST * sample);
    float *yf = malloc(sizeof(float) * N_TEST * classes), *ye = malloc(sizeof(float) * N_TEST * classes);
    float *yq = malloc(sizeof(float) * N_TEST * classes), *y1 = malloc(sizeof(float) * N_TEST * classes);
    int64_t idx[N_TEST];
    for (int64_t i = 0; i < N_TEST; i++) idx[i] = i;
    od_dataset_fill(&data->train, &pre, idx, N_CAL, cal);
    od_dataset_fill(&data->test, &pre, idx, N_TEST, x);
    od_calibration c = {.x = cal, .n = N_CAL, .sample_size = sample, .percentile = 100, .threads = 1};
    od_quant_stats qs;
    bool ok = !od_optimize(q, NULL, &err) && !od_quantize_static(q, &c, &qs, &err);
    check(ok, path, "quantize: %s", err.message);
    if (!ok) goto free;
    check(qs.nodes >= 3 && qs.activations >= qs.nodes, path, "%d nodes, %d activations quantized", qs.nodes,
          qs.activations);
    int steps_q = 0, steps_e = 0;
    od_plan_options of = {.batch = BATCH, .threads = 1}, oe = of, oq = of, o1 = {.batch = 1, .threads = 2};
    oe.no_qs8 = true;
    oq.profile = oe.profile = true;
    if (!run_all(f, &of, x, N_TEST, sample, yf, classes, NULL) ||
        !run_all(q, &oe, x, N_TEST, sample, ye, classes, &steps_e) ||
        !run_all(q, &oq, x, N_TEST, sample, yq, classes, &steps_q) ||
        !run_all(q, &o1, x, N_TEST, sample, y1, classes, NULL))
        goto free;
    check(steps_q < steps_e, path, "int8 plan %d steps, emulated %d", steps_q, steps_e);
    float step = output_scale(q);
    check(step > 0, path, "the output comes from a DequantizeLinear");
    double worst = 0;
    int64_t within1 = 0, agree = 0, right_f = 0, right_q = 0;
    for (int64_t i = 0; i < N_TEST * classes; i++) {
        double d = fabs((double)yq[i] - ye[i]) / step;
        if (!(d <= worst)) worst = d;
        within1 += d <= 1.0 + 1e-3;
    }
    for (int64_t i = 0; i < N_TEST; i++) {
        int64_t a = argmax(yq + i * classes, classes);
        agree += a == argmax(ye + i * classes, classes);
        right_q += a == data->test.labels[i];
        right_f += argmax(yf + i * classes, classes) == data->test.labels[i];
    }
    double acc_f = 100.0 * right_f / N_TEST, acc_q = 100.0 * right_q / N_TEST;
    printf("%s: %d nodes int8, steps %d (emulated %d); int8 vs emulated: max %.1f steps of %.4g, %.2f%% within 1, "
           "argmax %.1f%%; accuracy f32 %.1f%%, int8 %.1f%%\n",
           path, qs.nodes, steps_q, steps_e, worst, step, 100.0 * within1 / (N_TEST * classes), 100.0 * agree / N_TEST,
           acc_f, acc_q);
    check(worst <= QS8_STEPS, path, "int8 vs emulated: %.2f output steps apart", worst);
    check(within1 >= 0.99 * N_TEST * classes, path, "%lld of %d logits within 1 step", (long long)within1,
          N_TEST * (int)classes);
    check(agree >= 0.99 * N_TEST, path, "argmax agreement %lld / %d", (long long)agree, N_TEST);
    check(fabs(acc_q - acc_f) <= 1.0, path, "accuracy int8 %.1f%%, f32 %.1f%%", acc_q, acc_f);
    check(memcmp(y1, yq, sizeof(float) * N_TEST * classes) == 0, path, "batch 1 on 2 threads differs from batch %d",
          BATCH);
    /* XNNPACK's QC8 convolutions instead of the VNNI kernel (where the CPU has one): the same
     * agreement with the emulated plan */
    setenv("OD_NO_VNNI", "1", 1);
    bool ran = run_all(q, &oq, x, N_TEST, sample, y1, classes, NULL);
    unsetenv("OD_NO_VNNI");
    if (!ran) goto free;
    double worst_x = 0;
    for (int64_t i = 0; i < N_TEST * classes; i++) {
        double d = fabs((double)y1[i] - ye[i]) / step;
        if (!(d <= worst_x)) worst_x = d;
    }
    check(worst_x <= QS8_STEPS, path, "XNNPACK int8 vs emulated: %.2f output steps apart", worst_x);
    /* the fallback: the first MaxPool's output scale made 1.5 times its input's */
    od_graph *g = &q->graph;
    int mp = -1;
    for (int i = 0; i < g->n_nodes && mp < 0; i++)
        if (!strcmp(g->nodes[i].op_type, "MaxPool")) mp = i;
    if (mp >= 0) {
        int reader = -1;
        for (int i = 0; i < g->n_nodes; i++)
            if (!strcmp(g->nodes[i].op_type, "QuantizeLinear") && g->nodes[i].inputs[0] == g->nodes[mp].outputs[0]) reader = i;
        check(reader >= 0, path, "no QuantizeLinear after the MaxPool");
        if (reader < 0) goto free;
        *(float *)g->values[g->nodes[reader].inputs[1]].init->data *= 1.5f;
        int steps_f = 0;
        if (!run_all(q, &oe, x, N_TEST, sample, ye, classes, &steps_e) ||
            !run_all(q, &oq, x, N_TEST, sample, yq, classes, &steps_f))
            goto free;
        worst = 0;
        for (int64_t i = 0; i < N_TEST * classes; i++) {
            double d = fabs((double)yq[i] - ye[i]) / step;
            if (!(d <= worst)) worst = d;
        }
        check(steps_f > steps_q && steps_f < steps_e, path, "fallback: %d steps (int8 %d, emulated %d)", steps_f,
              steps_q, steps_e);
        check(worst <= QS8_STEPS, path, "fallback: %.2f output steps from the emulated plan", worst);
        printf("%s: MaxPool scale changed: %d steps, max %.1f steps from emulated\n", path, steps_f, worst);
    }
free:
    free(cal);
    free(x);
    free(yf);
    free(ye);
    free(yq);
    free(y1);
done:
    od_model_destroy(f);
    od_model_destroy(q);
}

int main(void) {
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0) {
        printf("SKIP qs8: /usr/share/datasets/fashion-mnist is not installed\n");
        printf("qs8: 0 passed, 0 failed, 1 skipped\n");
        return 0;
    }
    od_data_split data = {0};
    od_error err = {0};
    if (od_data_load("fashion-mnist", &data, &err)) {
        printf("FAIL load fashion-mnist: %s\nqs8: 0 passed, 1 failed, 0 skipped\n", err.message);
        return 1;
    }
    const char *teachers[] = {"models/cnn.onnx", "models/cnn_bn.onnx", "models/resnet.onnx"};
    for (int t = 0; t < 3; t++) check_teacher(teachers[t], &data);
    od_data_split_clear(&data);
    printf("qs8: %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}

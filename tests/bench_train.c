/* Training throughput of a student: samples/s of forward + L2 loss + backward + Adam step
 * on random data, and where the time goes per op. Not a test: `make bench` runs it.
 *   bench_train TEACHER.onnx [--width W] [--batch N] [--threads N] [--steps N] [--student S] */
#include "od_onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the whole process (every thread): on a loaded machine the wall clock counts
 * the time other programs ran, this does not. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *teacher = NULL, *student_path = NULL;
    double width = 0.5;
    int batch = 64, threads = 1, steps = 100;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--width") && i + 1 < argc) width = atof(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--student") && i + 1 < argc) student_path = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = true;
        else teacher = argv[i];
    }
    od_error err = {0};
    od_model *t = NULL, *s = NULL;
    if ((student_path ? od_model_load(student_path, &s, &err) : 0) || (!student_path && (!teacher || od_model_load(teacher, &t, &err)))) {
        fprintf(stderr, "bench_train: %s\n", err.message[0] ? err.message : "no teacher given");
        return 1;
    }
    if (!s) {
        od_shrink_spec spec;
        od_shrink_spec_default(&spec);
        spec.width = width;
        if (od_shrink(t, &spec, &s, &err)) {
            fprintf(stderr, "bench_train: %s\n", err.message);
            return 1;
        }
    }
    od_trainer *tr;
    /* as distill does: one thread for a step too small for two */
    int used = od_trainer_useful_threads(&s->graph, batch, threads);
    if (od_trainer_create(&s->graph, &(od_trainer_options){.batch = batch, .threads = used, .profile = true}, &tr, &err)) {
        fprintf(stderr, "bench_train: %s\n", err.message);
        return 1;
    }
    od_optim *opt = od_optim_create(tr, &(od_optim_options){.kind = OD_OPTIM_ADAM}, &err);
    int64_t in = batch * od_trainer_input_count(tr), classes = od_trainer_classes(tr);
    float *x = od_trainer_input(tr), *target = malloc(sizeof(float) * batch * classes);
    uint32_t r = 1;
    for (int64_t i = 0; i < in; i++) x[i] = (float)((r = r * 1664525u + 1013904223u) >> 8) / (1 << 24);
    for (int64_t i = 0; i < batch * classes; i++) target[i] = (float)((r = r * 1664525u + 1013904223u) >> 8) / (1 << 24);
    double t0 = 0, c0 = 0;
    for (int k = 0; k < steps + 5; k++) {
        if (k == 5) t0 = od_seconds(), c0 = cpu_seconds(); /* warm-up */
        /* a failed step is an error, not a fast one */
        if (od_trainer_forward(tr, true, &err) ||
            (od_loss_l2(od_trainer_output(tr), target, batch, classes, od_trainer_output_grad(tr)),
             od_trainer_backward(tr, &err))) {
            fprintf(stderr, "bench_train: %s\n", err.message);
            return 1;
        }
        od_optim_step(opt, 1e-4f);
    }
    double el = od_seconds() - t0, sps = (double)steps * batch / el;
    double cpu_sps = (double)steps * batch / (cpu_seconds() - c0);
    const od_train_profile *p;
    int n = od_trainer_profile(tr, &p);
    /* the convolutions' share of a step, forward and backward: bench.sh sets their rate against
     * XNNPACK's convolution alone */
    double conv_s = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(p[i].op_type, "Conv")) conv_s += p[i].forward_s + p[i].backward_s;
    if (json) {
        printf("{\"batch\": %d, \"threads\": %d, \"threads_used\": %d, \"samples_per_s\": %.1f, \"cpu_samples_per_s\": %.1f, "
               "\"conv_ms_per_step\": %.4f}\n",
               batch, threads, used, sps, cpu_sps, 1e3 * conv_s / (steps + 5));
    } else {
        printf("batch %d, threads %d (%d used): %.1f samples/s (%.3f ms per step)\n", batch, threads, used, sps, 1e3 * el / steps);
        double tot = 0;
        for (int i = 0; i < n; i++) tot += p[i].forward_s + p[i].backward_s;
        for (int i = 0; i < n; i++)
            printf("  %-28.28s %-20s fwd %6.3f ms  bwd %6.3f ms  %5.1f%%\n", p[i].node_name, p[i].op_type, 1e3 * p[i].forward_s / (steps + 5),
                   1e3 * p[i].backward_s / (steps + 5), 100 * (p[i].forward_s + p[i].backward_s) / tot);
    }
    od_optim_destroy(opt);
    od_trainer_destroy(tr);
    free(target);
    od_model_destroy(s);
    od_model_destroy(t);
    return 0;
}

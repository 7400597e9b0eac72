/* The practical GFLOP/s ceiling of this CPU for our convolution-heavy plans: one large XNNPACK
 * convolution alone (NHWC, f32), timed the way `onnx-distill bench` times a plan (warm-up, then
 * repeated runs for --min-time seconds and at least 10, median). Not a test: `make bench` runs it.
 *   bench_xnn_ceiling [--threads 1,2] [--min-time S] [--json]
 * Shapes, all 3x3 convolutions with 64 -> 64 channels (the largest layers of our example teachers):
 * 56x56 batch 8 (a ResNet stage-1 layer: ~15 ms a run, the kernels at full speed over a large
 * problem); 28x28 batch 1 (~0.5 ms a run: short enough that on a shared machine most runs are
 * not preempted, so its median stays honest); 14x14 batch 1 (the CNN teacher's 64-channel layers
 * at batch 1). The ceiling is the best of them at each thread count. */
#include "od_runtime.h" /* od_seconds */

#include <pthreadpool.h>
#include <xnnpack.h>

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    uint32_t k, cin, cout, hw, batch;
} conv_shape;

static const conv_shape shapes[] = {
    {"56x56 b8", 3, 64, 64, 56, 8},
    {"28x28 b1", 3, 64, 64, 28, 1},
    {"14x14 b1", 3, 64, 64, 14, 1},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char *status_name(enum xnn_status s) {
    switch (s) {
    case xnn_status_success:
        return "success";
    case xnn_status_uninitialized:
        return "uninitialized";
    case xnn_status_invalid_parameter:
        return "invalid parameter";
    case xnn_status_invalid_state:
        return "invalid state";
    case xnn_status_unsupported_parameter:
        return "unsupported parameter";
    case xnn_status_unsupported_hardware:
        return "unsupported hardware";
    case xnn_status_out_of_memory:
        return "out of memory";
    default:
        return "unknown status";
    }
}

static void fill(float *x, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
    }
}

/* Times one shape at one thread count; median seconds per run into *median_out. */
static int measure(const conv_shape *s, int threads, double min_time, double *median_out) {
    int rc = 1;
    size_t in_n = (size_t)s->batch * s->hw * s->hw * s->cin,
           out_n = (size_t)s->batch * s->hw * s->hw * s->cout;
    size_t w_n = (size_t)s->cout * s->k * s->k * s->cin, cap = 1024, n = 0;
    float *in = malloc(in_n * sizeof(float)), *out = malloc(out_n * sizeof(float));
    float *w = malloc(w_n * sizeof(float)), *bias = malloc(s->cout * sizeof(float));
    double *t = malloc(cap * sizeof(double));
    pthreadpool_t pool = threads > 1 ? pthreadpool_create((size_t)threads) : NULL;
    xnn_operator_t op = NULL;
    enum xnn_status st;
    if (!in || !out || !w || !bias || !t || (threads > 1 && !pool)) {
        fprintf(stderr, "bench_xnn_ceiling: out of memory\n");
        goto cleanup;
    }
    fill(in, in_n, 1);
    fill(w, w_n, 2);
    fill(bias, s->cout, 3);
    uint32_t pad = s->k / 2;
    st = xnn_create_convolution2d_nhwc_f32(pad, pad, pad, pad, s->k, s->k, 1, 1, 1, 1, 1, s->cin,
                                           s->cout, s->cin, s->cout, w, bias, 0.0f, INFINITY, 0,
                                           &op);
    if (st != xnn_status_success) {
        fprintf(stderr, "bench_xnn_ceiling: create convolution: %s\n", status_name(st));
        goto cleanup;
    }
    st = xnn_setup_convolution2d_nhwc_f32(op, s->batch, s->hw, s->hw, in, out, pool);
    if (st != xnn_status_success) {
        fprintf(stderr, "bench_xnn_ceiling: setup convolution: %s\n", status_name(st));
        goto cleanup;
    }
    double warm_end = od_seconds() + (min_time * 0.2 < 0.2 ? min_time * 0.2 : 0.2);
    for (int i = 0; i < 3 || od_seconds() < warm_end; i++)
        if ((st = xnn_run_operator(op, pool)) != xnn_status_success) goto run_failed;
    double start = od_seconds();
    while (n < 10 || od_seconds() - start < min_time) {
        double t0 = od_seconds();
        if ((st = xnn_run_operator(op, pool)) != xnn_status_success) goto run_failed;
        if (n == cap) {
            double *nt = realloc(t, (cap *= 2) * sizeof(double));
            if (!nt) {
                fprintf(stderr, "bench_xnn_ceiling: out of memory\n");
                goto cleanup;
            }
            t = nt;
        }
        t[n++] = od_seconds() - t0;
    }
    qsort(t, n, sizeof *t, cmp_double);
    *median_out = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    rc = 0;
    goto cleanup;
run_failed:
    fprintf(stderr, "bench_xnn_ceiling: run convolution: %s\n", status_name(st));
cleanup:
    xnn_delete_operator(op);
    if (pool) pthreadpool_destroy(pool);
    free(in);
    free(out);
    free(w);
    free(bias);
    free(t);
    return rc;
}

int main(int argc, char **argv) {
    int threads[8] = {1, 2}, n_threads = 2;
    double min_time = 1.0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            n_threads = 0;
            for (char *p = argv[++i]; *p && n_threads < 8;) {
                threads[n_threads++] = (int)strtol(p, &p, 10);
                if (*p == ',')
                    p++;
                else if (*p)
                    break;
            }
        } else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            min_time = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else {
            fprintf(stderr, "usage: bench_xnn_ceiling [--threads 1,2] [--min-time S] [--json]\n");
            return 2;
        }
    }
    for (int i = 0; i < n_threads; i++)
        if (threads[i] < 1) {
            fprintf(stderr, "bench_xnn_ceiling: thread counts must be >= 1\n");
            return 2;
        }
    enum xnn_status st = xnn_initialize(NULL);
    if (st != xnn_status_success) {
        fprintf(stderr, "bench_xnn_ceiling: XNNPACK initialisation: %s\n", status_name(st));
        return 1;
    }
    if (json) fputs("[", stdout);
    int first = 1;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int ti = 0; ti < n_threads; ti++) {
            const conv_shape *s = &shapes[si];
            double median;
            if (measure(s, threads[ti], min_time, &median)) return 1;
            double flops = 2.0 * s->batch * s->hw * s->hw * s->cout * s->cin * s->k * s->k;
            if (json)
                printf("%s{\"shape\": \"%s\", \"conv\": \"%ux%u, %u->%u ch, %ux%u, batch %u\", "
                       "\"threads\": %d, "
                       "\"median_ms\": %.6g, \"gflops\": %.2f}",
                       first ? "" : ",\n ", s->name, s->k, s->k, s->cin, s->cout, s->hw, s->hw,
                       s->batch, threads[ti], 1e3 * median, flops / median * 1e-9);
            else
                printf(
                    "%-8s  %ux%u, %u->%u ch, %ux%u, batch %u, %d thread%s: %.3f ms, %.1f GFLOP/s\n",
                    s->name, s->k, s->k, s->cin, s->cout, s->hw, s->hw, s->batch, threads[ti],
                    threads[ti] > 1 ? "s" : "", 1e3 * median, flops / median * 1e-9);
            fflush(stdout);
            first = 0;
        }
    if (json) puts("]");
    xnn_deinitialize();
    return 0;
}

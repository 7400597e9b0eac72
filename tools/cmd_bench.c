/* onnx-distill bench MODEL... [--batch 1,64] [--threads 1,2] [--min-time S] [--json] [--profile] */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char bench_help[] =
    "usage: onnx-distill bench MODEL... [--batch 1,64] [--threads 1,2] [--min-time SECONDS]\n"
    "                          [--json] [--profile]\n\n"
    "Times inference of each model for every (batch, threads) pair: warm-up, then repeated\n"
    "runs for at least --min-time seconds (default 1) and 10 runs; prints median, p10 and p90\n"
    "latency and samples/s, with file bytes, params and MACs per sample. With two or more\n"
    "models, the median of each is also given as a ratio to the first model's.\n\n"
    "  --batch LIST     batch sizes (default 1,64)\n"
    "  --threads LIST   thread counts (default 1,2)\n"
    "  --min-time S     seconds of timed runs per measurement (default 1)\n"
    "  --json           a JSON list: {model, bytes, params, macs, results: [{batch, threads,\n"
    "                   median_ms, p10_ms, p90_ms, samples_per_s}], profile}\n"
    "  --profile        per-node breakdown (node, op, share of time, GFLOP/s) at the first\n"
    "                   batch size and thread count\n";

#define MAX_MODELS 16
#define MAX_CONF 8

typedef struct result {
    long batch, threads;
    double median, p10, p90; /* seconds */
} result;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Deterministic inputs: floats in [-1, 1], zeros otherwise. */
static void fill_inputs(od_plan *plan) {
    uint32_t s = 12345;
    for (int i = 0; i < od_plan_n_inputs(plan); i++) {
        const od_plan_io *io = od_plan_input(plan, i);
        if (io->dtype != OD_DTYPE_FLOAT) {
            memset(io->data, 0, io->nbytes);
            continue;
        }
        float *x = io->data;
        for (size_t k = 0; k < io->nbytes / 4; k++) {
            s = s * 1664525u + 1013904223u;
            x[k] = (float)(s >> 8) / (float)(1u << 23) - 1.0f;
        }
    }
}

static od_status measure(od_plan *plan, double min_time, result *r, od_error *err) {
    double warm_end = now() + (min_time * 0.2 < 0.2 ? min_time * 0.2 : 0.2);
    for (int i = 0; i < 3 || now() < warm_end; i++)
        if (od_plan_run(plan, err)) return err->status;
    size_t cap = 1024, n = 0;
    double *t = malloc(sizeof(double) * cap), start = now();
    if (!t) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    while (n < 10 || (now() - start < min_time && n < 1000000)) {
        double t0 = now();
        if (od_plan_run(plan, err)) {
            free(t);
            return err->status;
        }
        if (n == cap) {
            double *nt = realloc(t, sizeof(double) * (cap *= 2));
            if (!nt) {
                free(t);
                return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
            }
            t = nt;
        }
        t[n++] = now() - t0;
    }
    qsort(t, n, sizeof *t, cmp_double);
    r->median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    r->p10 = t[n / 10];
    r->p90 = t[n * 9 / 10];
    free(t);
    return OD_STATUS_OK;
}

static void print_profile(FILE *f, od_plan *plan, long batch, bool json) {
    const od_step_profile *p;
    int n = od_plan_profile(plan, &p);
    double total = 0;
    for (int i = 0; i < n; i++) total += p[i].seconds;
    if (json) fputs(", \"profile\": [", f);
    else fprintf(f, "  per node (batch %ld):\n  %-32s %-18s %7s %9s %9s\n", batch, "node", "op", "share", "ms", "GFLOP/s");
    for (int i = 0; i < n; i++) {
        double share = total > 0 ? p[i].seconds / total : 0;
        double per_run = p[i].runs ? p[i].seconds / (double)p[i].runs : 0;
        double gflops = per_run > 0 ? 2.0 * (double)p[i].macs / per_run : 0;
        if (json) {
            fputs(i ? ", " : "", f);
            fputs("{\"node\": ", f);
            json_string(f, p[i].node_name);
            fputs(", \"op\": ", f);
            json_string(f, p[i].op_type);
            fprintf(f, ", \"share\": %.4f, \"ms\": %.6g, \"gflops\": %.4g}", share, 1e3 * per_run, gflops * 1e-9);
        } else {
            fprintf(f, "  %-32.32s %-18s %6.1f%% %9.4f %9.2f\n", p[i].node_name && *p[i].node_name ? p[i].node_name : "-",
                    p[i].op_type, 100 * share, 1e3 * per_run, gflops * 1e-9);
        }
    }
    if (json) fputs("]", f);
}

int cmd_bench(int argc, char **argv) {
    const char *paths[MAX_MODELS];
    int n_models = 0, n_batch = 2, n_threads = 2;
    long batches[MAX_CONF] = {1, 64}, threads[MAX_CONF] = {1, 2};
    double min_time = 1.0;
    bool json = false, profile = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            fputs(bench_help, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--batch", &v)) {
            if ((n_batch = cli_int_list("--batch", v, 1, 1 << 20, batches, MAX_CONF)) < 0) return 1;
        } else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            if ((n_threads = cli_int_list("--threads", v, 1, 256, threads, MAX_CONF)) < 0) return 1;
        } else if (cli_opt(argc, argv, &i, "--min-time", &v)) {
            if (!cli_double("--min-time", v, 0.001, 3600, &min_time)) return 1;
        } else if (cli_flag(argv[i], "--json")) {
            json = true;
        } else if (cli_flag(argv[i], "--profile")) {
            profile = true;
        } else if (argv[i][0] == '-') {
            return cli_fail("bench: unknown option %s (see onnx-distill bench --help)", argv[i]);
        } else if (n_models == MAX_MODELS) {
            return cli_fail("bench: at most %d models", MAX_MODELS);
        } else {
            paths[n_models++] = argv[i];
        }
    }
    if (!n_models) return cli_fail("bench: no model given (see onnx-distill bench --help)");
    static result results[MAX_MODELS][MAX_CONF * MAX_CONF];
    FILE *f = stdout;
    if (json) fputs("[", f);
    for (int mi = 0; mi < n_models; mi++) {
        od_error err = {0};
        od_model *m = NULL;
        model_facts facts;
        if (od_model_load(paths[mi], &m, &err) || model_facts_get(paths[mi], m, &facts, &err)) {
            od_model_destroy(m);
            if (json) fputs("]\n", f);
            return cli_fail_err(&err);
        }
        char b1[32], b2[32], b3[32];
        if (json) {
            fputs(mi ? ",\n {\"model\": " : "{\"model\": ", f);
            json_string(f, paths[mi]);
            fprintf(f, ", \"bytes\": %zu, \"params\": %lld, \"macs\": %lld, \"results\": [", facts.bytes,
                    (long long)facts.params, (long long)facts.macs);
        } else {
            fprintf(f, "%s: %s bytes, %s params, %s MACs per sample\n", paths[mi], fmt_count((int64_t)facts.bytes, b1, sizeof b1),
                    fmt_count(facts.params, b2, sizeof b2), fmt_count(facts.macs, b3, sizeof b3));
            fprintf(f, "  %6s %7s %11s %11s %11s %13s %8s\n", "batch", "threads", "median ms", "p10 ms", "p90 ms",
                    "samples/s", "GFLOP/s");
        }
        int k = 0;
        for (int bi = 0; bi < n_batch; bi++)
            for (int ti = 0; ti < n_threads; ti++, k++) {
                od_plan *plan = NULL;
                result *r = &results[mi][k];
                r->batch = batches[bi];
                r->threads = threads[ti];
                if (od_plan_create(&m->graph, &(od_plan_options){.batch = r->batch, .threads = (int)r->threads}, &plan, &err)) {
                    od_error_prefix(&err, "%s: ", paths[mi]);
                    od_model_destroy(m);
                    if (json) fputs("]}]\n", f);
                    return cli_fail_err(&err);
                }
                fill_inputs(plan);
                od_status st = measure(plan, min_time, r, &err);
                od_plan_destroy(plan);
                if (st) {
                    od_model_destroy(m);
                    if (json) fputs("]}]\n", f);
                    return cli_fail("%s: %s", paths[mi], err.message);
                }
                double sps = r->batch / r->median, gf = 2.0 * (double)facts.macs * r->batch / r->median * 1e-9;
                if (json) {
                    fprintf(f, "%s{\"batch\": %ld, \"threads\": %ld, \"median_ms\": %.6g, \"p10_ms\": %.6g, "
                               "\"p90_ms\": %.6g, \"samples_per_s\": %.6g}",
                            k ? ", " : "", r->batch, r->threads, 1e3 * r->median, 1e3 * r->p10, 1e3 * r->p90, sps);
                } else {
                    fprintf(f, "  %6ld %7ld %11.4f %11.4f %11.4f %13.0f %8.2f", r->batch, r->threads, 1e3 * r->median,
                            1e3 * r->p10, 1e3 * r->p90, sps, gf);
                    if (mi) fprintf(f, "   %.2fx of %s", r->median / results[0][k].median, paths[0]);
                    fputc('\n', f);
                }
                fflush(f);
            }
        if (json) fputs("]", f);
        if (profile) {
            od_plan *plan = NULL;
            if (!od_plan_create(&m->graph, &(od_plan_options){.batch = batches[0], .threads = (int)threads[0], .profile = true},
                                &plan, &err)) {
                fill_inputs(plan);
                result r;
                if (!measure(plan, min_time, &r, &err)) print_profile(f, plan, batches[0], json);
                od_plan_destroy(plan);
            }
        }
        if (json) fputs("}", f);
        od_model_destroy(m);
    }
    if (json) fputs("]\n", f);
    return 0;
}

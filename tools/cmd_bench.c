/* onnx-distill bench MODEL... [--batch 1,64] [--threads 1,2] [--min-time S] [--min-runs N] [--json] [--profile] */
#include "cli.h"

#include <string.h>

enum { MAX_MODELS = 16 };

const cli_command cli_cmd_bench = {
    .name = "bench",
    .summary = "inference latency of models at several batch sizes and thread counts",
    .synopsis = "MODEL... [--batch 1,64] [--threads 1,2] [--min-time SECONDS] [--min-runs N] [--json] [--profile]",
    .min_operands = 1, .max_operands = MAX_MODELS, .operand = "model",
    .about = "Times inference of each model for every (batch, threads) pair: warm-up, then repeated runs for "
             "at least --min-time seconds and --min-runs runs; prints median, p10 and p90 latency and samples/s, with "
             "file bytes, params and MACs per sample. With two or more models, the median of each is also "
             "given as a ratio to the first model's.",
    .options = (const cli_option[]){
        CLI_OPT_BATCH_LIST("1,64", "batch sizes"),
        CLI_OPT_THREAD_LIST("1,2", "thread counts"),
        CLI_OPT_MIN_TIME("1"),
        {CLI_INT, "--min-runs", 0, "N", 1, 1000000, .dflt = "10",
         .help = "timed runs at least (the warm-up: min(3, N) runs and up to 0.2 s)"},
        CLI_OPT_JSON("a JSON list: {model, bytes, params, macs, results: [{batch, threads, median_ms, p10_ms, "
                     "p90_ms, samples_per_s}], profile}"),
        {CLI_FLAG, "--profile",
         .help = "per-node breakdown (node, op, share of time, GFLOP/s) at the first batch size and thread count"},
        {0},
    },
};

#define MAX_CONF 4

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
            od_json_string(f, p[i].node_name);
            fputs(", \"op\": ", f);
            od_json_string(f, p[i].op_type);
            fprintf(f, ", \"share\": %.4f, \"ms\": %.6g, \"gflops\": %.4g}", share, 1e3 * per_run, gflops * 1e-9);
        } else {
            fprintf(f, "  %-32.32s %-18s %6.1f%% %9.4f %9.2f\n", p[i].node_name && *p[i].node_name ? p[i].node_name : "-",
                    p[i].op_type, 100 * share, 1e3 * per_run, gflops * 1e-9);
        }
    }
    if (json) fputs("]", f);
}

int cmd_bench(int argc, char **argv) {
    cli_args args;
    int parsed = cli_parse(&cli_cmd_bench, argc, argv, &args);
    if (parsed >= 0) return parsed;
    const char *paths[MAX_MODELS];
    int n_models = args.n_operands;
    memcpy(paths, args.operands, sizeof *paths * (size_t)n_models);
    long long bl[MAX_CONF], tl[MAX_CONF];
    long batches[MAX_CONF] = {1, 64}, threads[MAX_CONF] = {1, 2};
    int n_batch = cli_int_list(&args, "--batch", bl, MAX_CONF), n_threads = cli_int_list(&args, "--threads", tl, MAX_CONF);
    for (int k = 0; k < n_batch; k++) batches[k] = (long)bl[k];
    for (int k = 0; k < n_threads; k++) threads[k] = (long)tl[k];
    if (!n_batch) n_batch = 2;
    if (!n_threads) n_threads = 2;
    double min_time = cli_real(&args, "--min-time", 1.0);
    int min_runs = (int)cli_int(&args, "--min-runs", 10);
    bool json = cli_given(&args, "--json"), profile = cli_given(&args, "--profile");
    cli_args_clear(&args);
    static od_latency results[MAX_MODELS][MAX_CONF * MAX_CONF];
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
            od_json_string(f, paths[mi]);
            fprintf(f, ", \"bytes\": %zu, \"params\": %lld, \"macs\": %lld, \"results\": [", facts.bytes,
                    (long long)facts.params, (long long)facts.macs);
        } else {
            fprintf(f, "%s: %s bytes, %s params, %s MACs per sample\n", paths[mi], od_format_count((int64_t)facts.bytes, b1, sizeof b1),
                    od_format_count(facts.params, b2, sizeof b2), od_format_count(facts.macs, b3, sizeof b3));
            fprintf(f, "  %6s %7s %11s %11s %11s %13s %8s\n", "batch", "threads", "median ms", "p10 ms", "p90 ms",
                    "samples/s", "GFLOP/s");
        }
        int k = 0;
        for (int bi = 0; bi < n_batch; bi++)
            for (int ti = 0; ti < n_threads; ti++, k++) {
                od_latency *r = &results[mi][k];
                if (od_measure_latency_runs(&m->graph, batches[bi], (int)threads[ti], min_time, min_runs, r, &err)) {
                    od_error_prefix(&err, "%s: ", paths[mi]);
                    od_model_destroy(m);
                    if (json) fputs("]}]\n", f);
                    return cli_fail_err(&err);
                }
                double sps = r->batch / r->median, gf = 2.0 * (double)facts.macs * r->batch / r->median * 1e-9;
                if (json) {
                    fprintf(f, "%s{\"batch\": %lld, \"threads\": %d, \"median_ms\": %.6g, \"p10_ms\": %.6g, "
                               "\"p90_ms\": %.6g, \"samples_per_s\": %.6g}",
                            k ? ", " : "", (long long)r->batch, r->threads, 1e3 * r->median, 1e3 * r->p10, 1e3 * r->p90, sps);
                } else {
                    fprintf(f, "  %6lld %7d %11.4f %11.4f %11.4f %13.0f %8.2f", (long long)r->batch, r->threads, 1e3 * r->median,
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
                od_plan_fill_bench_inputs(plan);
                od_latency r;
                if (!od_measure_latency_plan_runs(plan, min_time, min_runs, &r, &err)) print_profile(f, plan, batches[0], json);
                od_plan_destroy(plan);
            }
        }
        if (json) fputs("}", f);
        od_model_destroy(m);
    }
    if (json) fputs("]\n", f);
    return 0;
}

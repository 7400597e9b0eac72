/* Measuring models: inference latency (median and spread over repeated runs), parameter and
 * MAC counts, compressed size. Shared by bench, distill's report and compare. */
#include "od_onnx.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void od_plan_fill_bench_inputs(od_plan *plan) {
    uint32_t s = 12345;
    for (int i = 0; i < od_plan_n_inputs(plan); i++) {
        const od_plan_io *io = od_plan_input(plan, i);
        if (io->dtype != OD_DTYPE_FLOAT) {
            memset(io->data, 0, io->nbytes);
            continue;
        }
        float *x = io->data;
        for (size_t k = 0; k < io->nbytes / sizeof(float); k++) {
            s = s * 1664525u + 1013904223u;
            x[k] = (float)(s >> 8) / (float)(1u << 23) - 1.0f;
        }
    }
}

od_status od_measure_latency_plan(od_plan *plan, double min_time, od_latency *out, od_error *err) {
    return od_measure_latency_plan_runs(plan, min_time, 10, out, err);
}

od_status od_measure_latency_plan_runs(od_plan *plan, double min_time, int min_runs, od_latency *out, od_error *err) {
    if (min_runs < 1) min_runs = 1;
    /* warm-up: caches, the thread pool and XNNPACK's lazily packed weights */
    double warm_end = od_seconds() + (min_time * 0.2 < 0.2 ? min_time * 0.2 : 0.2);
    for (int i = 0; i < (min_runs < 3 ? min_runs : 3) || od_seconds() < warm_end; i++)
        if (od_plan_run(plan, err)) return err->status;
    size_t cap = 1024, n = 0;
    double *t = malloc(sizeof(double) * cap), start = od_seconds();
    if (!t) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    while (n < (size_t)min_runs || (od_seconds() - start < min_time && n < 1000000)) {
        double t0 = od_seconds();
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
        t[n++] = od_seconds() - t0;
    }
    qsort(t, n, sizeof *t, cmp_double);
    out->median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    out->p10 = t[n / 10];
    out->p90 = t[n * 9 / 10];
    out->runs = (int64_t)n;
    free(t);
    return OD_STATUS_OK;
}

od_status od_measure_latency(const od_graph *g, int64_t batch, int threads, double min_time,
                             od_latency *out, od_error *err) {
    return od_measure_latency_runs(g, batch, threads, min_time, 10, out, err);
}

od_status od_measure_latency_runs(const od_graph *g, int64_t batch, int threads, double min_time, int min_runs,
                                  od_latency *out, od_error *err) {
    od_plan *plan = NULL;
    memset(out, 0, sizeof *out);
    out->batch = batch;
    out->threads = threads;
    od_status st = od_plan_create(g, &(od_plan_options){.batch = batch, .threads = threads}, &plan, err);
    if (st) return st;
    od_plan_fill_bench_inputs(plan);
    st = od_measure_latency_plan_runs(plan, min_time, min_runs, out, err);
    od_plan_destroy(plan);
    return st;
}

static bool is_weight_type(od_dtype t) {
    return t == OD_DTYPE_FLOAT || t == OD_DTYPE_FLOAT16 || t == OD_DTYPE_BFLOAT16 ||
           t == OD_DTYPE_DOUBLE || t == OD_DTYPE_INT8 || t == OD_DTYPE_UINT8;
}

od_status od_model_count(const od_model *m, int64_t *params_out, int64_t *macs_out, od_error *err) {
    return od_model_count_ex(m, params_out, macs_out, NULL, err);
}

od_status od_model_count_ex(const od_model *m, int64_t *params_out, int64_t *macs_out,
                            int *unknown_nodes_out, od_error *err) {
    const od_graph *g = &m->graph;
    int64_t params = 0, macs = 0;
    for (int i = 0; i < g->n_inits; i++) {
        const od_tensor *t = g->values[g->inits[i]].init;
        if (t && is_weight_type(t->dtype)) params += od_tensor_count(t);
    }
    od_graph_shapes s;
    od_error ignored = {0};
    od_status st = od_graph_infer_ex(g, 1, true, &s, &ignored);
    if (st) return od_error_set(err, st, "%s", ignored.message);
    int unknown = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        macs += od_node_macs(g, i, &s);
        const od_node *n = &g->nodes[i];
        bool known = true;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && s.info[n->outputs[k]].rank < 0) known = false;
        unknown += !known;
    }
    od_graph_shapes_clear(&s);
    if (unknown_nodes_out) *unknown_nodes_out = unknown;
    if (params_out) *params_out = params;
    if (macs_out) *macs_out = macs;
    return OD_STATUS_OK;
}

od_status od_compressed_size(const void *data, size_t len, size_t *out, od_error *err) {
    uLongf cap = compressBound((uLong)len);
    Bytef *buf = malloc(cap ? cap : 1);
    if (!buf) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory compressing %zu bytes", len);
    int zrc = compress2(buf, &cap, data, (uLong)len, 9);
    free(buf);
    if (zrc != Z_OK) return od_error_set(err, OD_STATUS_BACKEND, "zlib compress2 failed (%d)", zrc);
    *out = (size_t)cap;
    return OD_STATUS_OK;
}

/* libFuzzer target: an ONNX model from arbitrary bytes, through everything a user's file meets
 * before training: decode, encode and decode again, od_graph_check, shape inference (partial
 * and strict), MACs, and, when it plans at batch 1 within the limits below, one run; then
 * shrink (width 0.5), optimize and int8 weight storage.
 *
 *   make fuzz SECONDS=60     (builds build-fuzz/fuzz_model, runs it on a seeded corpus)
 *   build-fuzz/fuzz_model build-fuzz/corpus/model    (by hand)
 *
 * tests/test_fuzz_regressions.c replays tests/fuzz/regressions/model/ through this entry point
 * in make test. Built with -DOD_FUZZ_STANDALONE (and any compiler), it is a program that runs
 * the files named on its command line, for gdb. */
#include "fuzz_common.h"

/* A plan whose buffers or work exceed these is not built: a model may rightly ask for
 * gigabytes, which is not a bug, but would stop the fuzzer (malloc limit, timeouts). */
#define FUZZ_MAX_BYTES ((int64_t)16 << 20)
#define FUZZ_MAX_MACS ((int64_t)20 << 20)

static bool add_sat(int64_t *acc, int64_t v) {
    if (v < 0 || __builtin_add_overflow(*acc, v, acc)) {
        *acc = INT64_MAX;
        return false;
    }
    return true;
}

/* Bytes and work (MACs, and pooling windows) of the graph at batch 1, from partial inference;
 * false when unknown. */
static bool graph_cost(const od_graph *g, int64_t *bytes, int64_t *macs) {
    od_graph_shapes s;
    od_error err = {0};
    *bytes = *macs = 0;
    if (od_graph_infer_ex(g, 1, true, &s, &err)) return false;
    bool known = true;
    for (int v = 0; v < g->n_values; v++) {
        const od_shape_info *info = &s.info[v];
        if (info->rank < 0) continue;
        int64_t count = od_dims_count(info->rank, info->dims);
        int64_t size = (int64_t)od_dtype_size(info->dtype);
        int64_t b;
        if (count < 0 || __builtin_mul_overflow(count, size ? size : 8, &b) || !add_sat(bytes, b))
            known = false;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        if (!add_sat(macs, od_node_macs(g, i, &s))) known = false;
        /* pools do no MACs but a window's worth of work per output */
        const od_node *n = &g->nodes[i];
        const od_attr *k = od_node_attr(n, "kernel_shape");
        int64_t window = 1;
        for (size_t d = 0; k && k->type == OD_ATTR_INTS && d < k->count; d++)
            if (k->ints[d] < 0 || __builtin_mul_overflow(window, k->ints[d], &window)) known = false;
        for (int o = 0; o < n->n_outputs; o++) {
            const od_shape_info *info = n->outputs[o] >= 0 ? &s.info[n->outputs[o]] : NULL;
            int64_t count = info && info->rank >= 0 ? od_dims_count(info->rank, info->dims) : 0, work;
            if (count < 0 || __builtin_mul_overflow(count, window, &work) || !add_sat(macs, work)) known = false;
        }
    }
    od_graph_shapes_clear(&s);
    return known;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    od_error err = {0};
    od_model *m = NULL, *again = NULL;
    od_bytes enc = {0};
    if (od_model_decode(data, size, NULL, &m, &err)) {
        fuzz_check_error(&err);
        return 0;
    }
    /* what decodes encodes, and decodes again */
    if (od_model_encode(m, &enc, &err) == OD_STATUS_OK) {
        if (od_model_decode(enc.data, enc.len, NULL, &again, &err)) fuzz_check_error(&err);
        od_model_destroy(again);
        od_bytes_free(&enc);
    }
    od_preprocess pre; /* metadata_props preprocess.* */
    if (od_preprocess_from_model(m, &pre, &err)) fuzz_check_error(&err);
    if (od_graph_check(&m->graph, &err)) {
        fuzz_check_error(&err);
        goto done;
    }
    od_graph_shapes s;
    if (od_graph_infer(&m->graph, 1, &s, &err) == OD_STATUS_OK)
        od_graph_shapes_clear(&s);
    else
        fuzz_check_error(&err);
    int64_t bytes, macs;
    if (!graph_cost(&m->graph, &bytes, &macs) || bytes > FUZZ_MAX_BYTES || macs > FUZZ_MAX_MACS) goto done;
    od_plan *plan = NULL;
    if (od_plan_create(&m->graph, &(od_plan_options){.batch = 1, .threads = 1}, &plan, &err)) {
        fuzz_check_error(&err);
        goto done;
    }
    if (od_plan_arena_bytes(plan) <= (size_t)FUZZ_MAX_BYTES) {
        for (int i = 0; i < od_plan_n_inputs(plan); i++) {
            const od_plan_io *io = od_plan_input(plan, i);
            if (io->data) memset(io->data, 0, io->nbytes); /* zeros: a valid value of any type */
        }
        if (od_plan_run(plan, &err)) fuzz_check_error(&err);
    }
    od_plan_destroy(plan);
    /* what shrink and optimize do with a user's model */
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    spec.width = 0.5;
    od_model *student = NULL;
    if (od_shrink(m, &spec, &student, &err) == OD_STATUS_OK)
        od_model_destroy(student);
    else
        fuzz_check_error(&err);
    od_shrink_spec_clear(&spec);
    if (od_optimize(m, NULL, &err) || od_store_weights(m, OD_WEIGHTS_INT8, &err)) fuzz_check_error(&err);
done:
    od_model_destroy(m);
    return 0;
}

FUZZ_STANDALONE_MAIN

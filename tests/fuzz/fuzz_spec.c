/* libFuzzer target: a shrink spec file (`shrink --spec FILE`, `distill --spec FILE`) from
 * arbitrary bytes: od_shrink_spec_parse, then the rules applied to a small two-layer model.
 *
 *   make fuzz SECONDS=60     (builds build-fuzz/fuzz_spec, runs it on a seeded corpus) */
#include "fuzz_common.h"

/* x [N,3,8,8] -> Conv 3->16 (3x3) -> Relu -> Conv 16->16 -> Flatten -> Gemm -> [N,10], built
 * once through the public API: what a spec's globs and channel counts meet. */
static od_model *spec_model(void) {
    od_model *m = od_model_create();
    if (!m) abort();
    od_graph *g = &m->graph;
    od_error err = {0};
    m->ir_version = 8;
    m->opsets = calloc(1, sizeof *m->opsets);
    m->opsets[0].domain = strdup("");
    m->opsets[0].version = 13;
    m->n_opsets = 1;
    g->name = strdup("spec");
    g->opset = 13;
    struct {
        const char *op, *name, *in[3], *out;
    } nodes[] = {
        {"Conv", "/features/0/Conv", {"x", "w0", "b0"}, "c0"},
        {"Relu", "/features/1/Relu", {"c0"}, "r0"},
        {"Conv", "/features/2/Conv", {"r0", "w1", "b1"}, "c1"},
        {"Relu", "/features/3/Relu", {"c1"}, "r1"},
        {"Flatten", "/flatten/Flatten", {"r1"}, "f"},
        {"Gemm", "/classifier/Gemm", {"f", "w2", "b2"}, "y"},
    };
    struct {
        const char *name;
        int rank;
        int64_t dims[4];
    } inits[] = {{"w0", 4, {16, 3, 3, 3}}, {"b0", 1, {16}}, {"w1", 4, {16, 16, 3, 3}}, {"b1", 1, {16}},
                 {"w2", 2, {10, 16 * 4 * 4}}, {"b2", 1, {10}}};
    g->inits = calloc(6, sizeof(int));
    g->inputs = calloc(1, sizeof(int));
    g->outputs = calloc(1, sizeof(int));
    int x = od_graph_intern_value(g, "x");
    g->values[x].dtype = OD_DTYPE_FLOAT;
    g->values[x].rank = 4;
    const int64_t xd[4] = {-1, 3, 8, 8};
    for (int d = 0; d < 4; d++) g->values[x].dims[d].value = xd[d];
    g->values[x].has_type = true;
    g->inputs[g->n_inputs++] = x;
    for (int i = 0; i < 6; i++) {
        int v = od_graph_intern_value(g, inits[i].name);
        od_tensor *t = od_tensor_create(inits[i].name, OD_DTYPE_FLOAT, inits[i].rank, inits[i].dims, &err);
        if (!t) abort();
        float *w = t->data;
        for (int64_t k = 0; k < od_tensor_count(t); k++) w[k] = (float)((k * 7919) % 13) / 13.0f - 0.5f;
        g->values[v].init = t;
        g->inits[g->n_inits++] = v;
    }
    for (size_t i = 0; i < sizeof nodes / sizeof *nodes; i++) {
        int k = od_graph_add_node(g);
        od_node *n = &g->nodes[k];
        n->name = strdup(nodes[i].name);
        n->op_type = strdup(nodes[i].op);
        n->domain = strdup("");
        n->inputs = calloc(3, sizeof(int));
        for (int j = 0; j < 3 && nodes[i].in[j]; j++) n->inputs[n->n_inputs++] = od_graph_intern_value(g, nodes[i].in[j]);
        n->outputs = calloc(1, sizeof(int));
        n->outputs[n->n_outputs++] = od_graph_intern_value(g, nodes[i].out);
    }
    od_node *gemm = &g->nodes[5];
    gemm->attrs = calloc(1, sizeof *gemm->attrs);
    gemm->attrs[0] = (od_attr){.name = strdup("transB"), .type = OD_ATTR_INT, .i = 1};
    gemm->n_attrs = 1;
    int y = od_graph_find_value(g, "y");
    g->values[y].dtype = OD_DTYPE_FLOAT;
    g->values[y].rank = 2;
    g->values[y].dims[0].value = -1;
    g->values[y].dims[1].value = 10;
    g->values[y].has_type = true;
    g->outputs[g->n_outputs++] = y;
    if (od_graph_check(g, &err)) {
        fprintf(stderr, "spec_model: %s\n", err.message);
        abort();
    }
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static od_model *model;
    if (!model) model = spec_model(); /* kept for the whole run */
    od_error err = {0};
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    if (od_shrink_spec_parse(&spec, (const char *)data, size, "spec.json", &err) == OD_STATUS_OK) {
        od_model *student = NULL;
        if (od_shrink(model, &spec, &student, &err) == OD_STATUS_OK)
            od_model_destroy(student);
        else
            fuzz_check_error(&err);
    } else {
        fuzz_check_error(&err);
    }
    od_shrink_spec_clear(&spec);
    return 0;
}

FUZZ_STANDALONE_MAIN

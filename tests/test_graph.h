/* The C test suites' one graph builder: a model made node by node in memory, values named by
 * strings (test_passes, test_fusion). Functions are static inline: a suite uses what it needs. */
#ifndef OD_TEST_GRAPH_H
#define OD_TEST_GRAPH_H

#include "od_onnx.h"
#include "passes_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rng_state = 12345;
static inline float frand(float lo, float hi) {
    rng_state = rng_state * 1103515245u + 12345u;
    return lo + (hi - lo) * (float)(rng_state >> 8) / 16777216.0f;
}

/* An empty model of the default domain at this opset. */
static inline od_model *new_model(int64_t opset) {
    od_model *m = od_model_create();
    m->ir_version = opset >= 13 ? 7 : 6;
    m->opsets = calloc(1, sizeof *m->opsets);
    m->opsets[0].domain = strdup("");
    m->opsets[0].version = opset;
    m->n_opsets = 1;
    m->graph.name = strdup("test");
    m->graph.opset = opset;
    return m;
}

/* A float input with dims (-1: the symbolic batch "N"). */
static inline int add_input(od_model *m, const char *name, int rank, const int64_t *dims) {
    od_graph *g = &m->graph;
    int v = od_graph_intern_value(g, name);
    od_value *val = &g->values[v];
    val->dtype = OD_DTYPE_FLOAT;
    val->rank = rank;
    val->has_type = true;
    for (int d = 0; d < rank; d++) {
        val->dims[d].value = dims[d];
        if (dims[d] < 0) val->dims[d].param = strdup("N");
    }
    g->inputs = realloc(g->inputs, sizeof(int) * (size_t)(g->n_inputs + 1));
    g->inputs[g->n_inputs++] = v;
    return v;
}

static inline void add_output(od_model *m, const char *name) {
    od_graph *g = &m->graph;
    int v = od_graph_intern_value(g, name);
    g->values[v].dtype = OD_DTYPE_FLOAT;
    g->values[v].has_type = true;
    g->outputs = realloc(g->outputs, sizeof(int) * (size_t)(g->n_outputs + 1));
    g->outputs[g->n_outputs++] = v;
}

/* A float initializer filled uniformly in [lo, hi] (or from data when not NULL). */
static inline int add_init(od_model *m, const char *name, int rank, const int64_t *dims, float lo,
                           float hi, const float *data) {
    od_graph *g = &m->graph;
    od_tensor *t = od_tensor_create(name, OD_DTYPE_FLOAT, rank, dims, NULL);
    float *p = t->data;
    for (int64_t i = 0; i < od_tensor_count(t); i++)
        p[i] = data ? data[i] : frand(lo, hi);
    int v = od_graph_intern_value(g, name);
    g->values[v].init = t;
    g->inits = realloc(g->inits, sizeof(int) * (size_t)(g->n_inits + 1));
    g->inits[g->n_inits++] = v;
    return v;
}

/* An int64 initializer holding data. */
static inline int add_int64_init(od_model *m, const char *name, int rank, const int64_t *dims,
                                 const int64_t *data) {
    od_graph *g = &m->graph;
    od_tensor *t = od_tensor_create(name, OD_DTYPE_INT64, rank, dims, NULL);
    memcpy(t->data, data, t->nbytes);
    int v = od_graph_intern_value(g, name);
    g->values[v].init = t;
    g->inits = realloc(g->inits, sizeof(int) * (size_t)(g->n_inits + 1));
    g->inits[g->n_inits++] = v;
    return v;
}

/* Node with comma-separated input and output names ("" between commas: omitted). */
static inline od_node *add_node(od_model *m, const char *op, const char *name, const char *ins,
                                const char *outs) {
    od_graph *g = &m->graph;
    int in[16], out[16], n_in = 0, n_out = 0;
    char buf[512];
    const char *lists[2] = {ins, outs};
    for (int l = 0; l < 2; l++) {
        snprintf(buf, sizeof buf, "%s", lists[l]);
        char *p = *buf ? buf : NULL; /* "": no names */
        while (p) {
            char *comma = strchr(p, ',');
            if (comma) *comma = 0;
            int v = *p ? od_graph_intern_value(g, p) : -1;
            if (l == 0)
                in[n_in++] = v;
            else
                out[n_out++] = v;
            p = comma ? comma + 1 : NULL;
        }
    }
    int k = od_pass_add_node(g, op, name, n_in, in, n_out, out, NULL);
    return &g->nodes[k];
}


#endif

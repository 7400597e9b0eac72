/* The student builder (see od_shrink.h): copy the teacher, drop removable blocks, group the
 * channel dims with a union-find, keep per group the channels of largest L1 norm and slice every
 * weight to them, re-initialise when asked, insert BatchNormalization for training.
 *
 * Soundness rests on one rule: a value's shape may change only through a channel dim this file
 * tracks and knows how to follow. An op it does not know "pins" the dims of its inputs (they keep
 * every channel), so its outputs never change shape. */
#include "onnx_distill.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IN 64

static od_status oom(od_error *err) {
    return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory building the student");
}

/* ---- op classes ---------------------------------------------------------------------- */

static const char *const unary_ops[] = {
    "Relu",  "LeakyRelu", "Sigmoid",  "Tanh",       "HardSigmoid", "HardSwish",  "Elu",
    "Selu",  "Celu",      "Gelu",     "Softplus",   "Softsign",    "Clip",       "Dropout",
    "Identity", "Abs",    "Neg",      "Exp",        "Log",         "Sqrt",       "Reciprocal",
    "Erf",   "Floor",     "Ceil",     "Round",      "Sign",        "Cast",       "Mish",
    "ThresholdedRelu", "Sin", "Cos",  "Tan",        "Not",         "IsNaN",      "IsInf",
    "Softmax", "LogSoftmax", "Hardmax", "Shrink",   "CastLike",    NULL};
/* shape-preserving activations a chain layer may end with */
static const char *const act_ops[] = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid",
                                      "HardSwish", "Elu", "Selu", "Celu", "Gelu", "Softplus",
                                      "Softsign", "Clip", "Dropout", "Identity", "Mish",
                                      "ThresholdedRelu", "PRelu", NULL};
/* channel axis 1 in, the same channels out */
static const char *const pool_ops[] = {"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
                                       "GlobalMaxPool", "GlobalLpPool", "LRN", NULL};
/* elementwise with numpy broadcasting over every input */
static const char *const broadcast_ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min",
                                            "Sum", "Mean", "Where", "Equal", "Less", "Greater",
                                            "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor",
                                            "Mod", "BitShift", NULL};
/* a chain layer's output may not feed these: it would be a branch of a join */
static const char *const join_ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum",
                                       "Mean", "Concat", "Where", NULL};
static const char *const reduce_ops[] = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
                                         "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
                                         "ReduceLogSumExp", "ReduceSumSquare", NULL};

static bool default_domain(const od_node *n) {
    return !n->domain || !*n->domain || strcmp(n->domain, "ai.onnx") == 0;
}

static bool op_is(const od_node *n, const char *op) {
    return default_domain(n) && strcmp(n->op_type, op) == 0;
}

static bool op_in(const od_node *n, const char *const *list) {
    if (!default_domain(n)) return false;
    for (; *list; list++)
        if (strcmp(n->op_type, *list) == 0) return true;
    return false;
}

static bool is_source_op(const od_node *n) {
    return op_is(n, "Conv") || op_is(n, "ConvTranspose") || op_is(n, "Gemm") || op_is(n, "MatMul");
}

/* ---- attributes ---------------------------------------------------------------------- */

static int64_t attr_int(const od_node *n, const char *name, int64_t dflt) {
    const od_attr *a = od_node_attr(n, name);
    return a && a->type == OD_ATTR_INT ? a->i : dflt;
}

/* Count copied, or -1 when absent or longer than max. */
static int attr_ints(const od_node *n, const char *name, int64_t *out, int max) {
    const od_attr *a = od_node_attr(n, name);
    if (!a || a->type != OD_ATTR_INTS || a->count > (size_t)max) return -1;
    for (size_t i = 0; i < a->count; i++) out[i] = a->ints[i];
    return (int)a->count;
}

static od_attr *attr_get_or_add(od_node *n, const char *name, od_error *err) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    od_attr *a = realloc(n->attrs, sizeof *a * (size_t)(n->n_attrs + 1));
    if (!a) {
        oom(err);
        return NULL;
    }
    n->attrs = a;
    a = &n->attrs[n->n_attrs];
    memset(a, 0, sizeof *a);
    if (!(a->name = strdup(name))) {
        oom(err);
        return NULL;
    }
    n->n_attrs++;
    return a;
}

static od_status attr_set_int(od_node *n, const char *name, int64_t v, od_error *err) {
    od_attr *a = attr_get_or_add(n, name, err);
    if (!a) return OD_STATUS_OUT_OF_MEMORY;
    a->type = OD_ATTR_INT;
    a->i = v;
    return OD_STATUS_OK;
}

static od_status attr_set_float(od_node *n, const char *name, float v, od_error *err) {
    od_attr *a = attr_get_or_add(n, name, err);
    if (!a) return OD_STATUS_OUT_OF_MEMORY;
    a->type = OD_ATTR_FLOAT;
    a->f = v;
    return OD_STATUS_OK;
}

/* ---- graph editing ------------------------------------------------------------------- */

static void attr_free(od_attr *a) {
    free(a->name);
    free(a->s.data);
    od_tensor_destroy(a->t);
    free(a->floats);
    free(a->ints);
    if (a->strings)
        for (size_t i = 0; i < a->count; i++) free(a->strings[i].data);
    free(a->strings);
    if (a->tensors)
        for (size_t i = 0; i < a->count; i++) od_tensor_clear(&a->tensors[i]);
    free(a->tensors);
    free(a->opaque.data);
    free(a->ref_attr_name);
}

static void node_free(od_node *n) {
    free(n->name);
    free(n->op_type);
    free(n->domain);
    free(n->inputs);
    free(n->outputs);
    for (int a = 0; a < n->n_attrs; a++) attr_free(&n->attrs[a]);
    free(n->attrs);
    free(n->doc_string);
    memset(n, 0, sizeof *n);
}

/* Removes the nodes marked in drop (order kept). */
static void remove_nodes(od_graph *g, const bool *drop) {
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (drop[i]) {
            node_free(&g->nodes[i]);
            continue;
        }
        g->nodes[k++] = g->nodes[i];
    }
    g->n_nodes = k;
}

static bool is_graph_output(const od_graph *g, int v) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return true;
    return false;
}

static bool is_graph_input(const od_graph *g, int v) {
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == v) return true;
    return false;
}

/* Uses of each value: node input slots, and graph outputs. */
typedef struct use_map {
    int n_values;
    int *count;    /* slot uses + graph outputs */
    int *start;    /* consumers of v: node[start[v] .. start[v + 1]) (one per slot) */
    int *node;
    bool *output;  /* a graph output */
} use_map;

static void use_map_clear(use_map *u) {
    free(u->count);
    free(u->start);
    free(u->node);
    free(u->output);
    memset(u, 0, sizeof *u);
}

static od_status use_map_build(const od_graph *g, use_map *u, od_error *err) {
    use_map_clear(u);
    int nv = g->n_values;
    u->n_values = nv;
    u->count = calloc((size_t)nv + 1, sizeof *u->count);
    u->start = calloc((size_t)nv + 2, sizeof *u->start);
    u->output = calloc((size_t)nv + 1, sizeof *u->output);
    int total = 0;
    for (int i = 0; i < g->n_nodes; i++) total += g->nodes[i].n_inputs;
    u->node = malloc(sizeof *u->node * (size_t)(total + 1));
    int *fill = calloc((size_t)nv + 1, sizeof *fill);
    if (!u->count || !u->start || !u->output || !u->node || !fill) {
        free(fill);
        use_map_clear(u);
        return oom(err);
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] >= 0) u->start[g->nodes[i].inputs[k] + 1]++;
    for (int v = 0; v < nv; v++) {
        u->count[v] = u->start[v + 1];
        u->start[v + 1] += u->start[v];
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v >= 0) u->node[u->start[v] + fill[v]++] = i;
        }
    for (int i = 0; i < g->n_outputs; i++) {
        u->output[g->outputs[i]] = true;
        u->count[g->outputs[i]]++;
    }
    free(fill);
    return OD_STATUS_OK;
}

/* Removes dead nodes (no output used) and initializers nothing uses; returns nodes removed. */
static od_status graph_gc(od_graph *g, int *removed_out, od_error *err) {
    int removed = 0;
    use_map u = {0};
    bool *drop = NULL;
    od_status st;
    for (;;) {
        if ((st = use_map_build(g, &u, err))) goto done;
        free(drop);
        drop = calloc((size_t)g->n_nodes + 1, sizeof *drop);
        if (!drop) {
            st = oom(err);
            goto done;
        }
        int n_drop = 0;
        for (int i = 0; i < g->n_nodes; i++) {
            const od_node *n = &g->nodes[i];
            bool used = false;
            for (int o = 0; o < n->n_outputs && !used; o++)
                used = n->outputs[o] >= 0 && u.count[n->outputs[o]] > 0;
            if (!used) drop[i] = true, n_drop++;
        }
        if (!n_drop) break;
        remove_nodes(g, drop);
        removed += n_drop;
    }
    /* initializers */
    int k = 0;
    for (int i = 0; i < g->n_inits; i++) {
        int v = g->inits[i];
        if (u.count[v] > 0) {
            g->inits[k++] = v;
            continue;
        }
        od_tensor_destroy(g->values[v].init);
        g->values[v].init = NULL;
        int m = 0;
        for (int j = 0; j < g->n_inputs; j++)
            if (g->inputs[j] != v) g->inputs[m++] = g->inputs[j];
        g->n_inputs = m;
    }
    g->n_inits = k;
    st = OD_STATUS_OK;
done:
    if (removed_out) *removed_out = removed;
    free(drop);
    use_map_clear(&u);
    return st;
}

/* A value name not yet in the graph: base, else base_1, base_2, ... */
static char *unique_value_name(const od_graph *g, const char *base) {
    size_t len = strlen(base) + 24;
    char *s = malloc(len);
    if (!s) return NULL;
    snprintf(s, len, "%s", base);
    for (int k = 1; od_graph_find_value(g, s) >= 0; k++) snprintf(s, len, "%s_%d", base, k);
    return s;
}

/* Adds an initializer value holding t (owned from now on, also on failure); -1 out of memory. */
static int add_initializer(od_graph *g, const char *base, od_tensor *t) {
    char *name = unique_value_name(g, base);
    int *inits = name ? realloc(g->inits, sizeof *inits * (size_t)(g->n_inits + 1)) : NULL;
    if (inits) g->inits = inits;
    int v = inits ? od_graph_intern_value(g, name) : -1;
    free(name);
    if (v < 0) {
        od_tensor_destroy(t);
        return -1;
    }
    free(t->name);
    t->name = strdup(g->values[v].name);
    g->values[v].init = t;
    g->values[v].dtype = t->dtype;
    g->inits[g->n_inits++] = v;
    return v;
}

/* Puts t (owned) as the data of node ni's input slot: in place when that slot is the value's only
 * use, else as a new initializer for this slot alone. */
static od_status slot_set_tensor(od_graph *g, int ni, int slot, od_tensor *t, od_error *err) {
    int v = g->nodes[ni].inputs[slot];
    int uses = 0;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) uses += g->nodes[i].inputs[k] == v;
    if (uses == 1 && g->values[v].init && !is_graph_input(g, v) && !is_graph_output(g, v)) {
        free(t->name);
        t->name = strdup(g->values[v].name);
        od_tensor_destroy(g->values[v].init);
        g->values[v].init = t;
        g->values[v].dtype = t->dtype;
        return t->name ? OD_STATUS_OK : oom(err);
    }
    char base[512];
    snprintf(base, sizeof base, "%s", g->values[v].name);
    int nv = add_initializer(g, base, t);
    if (nv < 0) return oom(err);
    g->nodes[ni].inputs[slot] = nv;
    return OD_STATUS_OK;
}

static const od_tensor *slot_init(const od_graph *g, int ni, int slot) {
    const od_node *n = &g->nodes[ni];
    if (slot >= n->n_inputs || n->inputs[slot] < 0) return NULL;
    return g->values[n->inputs[slot]].init;
}

/* A copy of t keeping, along axis, the indices keep[0 .. n_keep). */
static od_tensor *tensor_take(const od_tensor *t, int axis, const int64_t *keep, int64_t n_keep,
                              od_error *err) {
    size_t es = od_dtype_size(t->dtype);
    if (!es || axis < 0 || axis >= t->rank) {
        od_error_set(err, OD_STATUS_UNSUPPORTED, "initializer \"%s\": cannot slice %s data",
                     t->name ? t->name : "", od_dtype_name(t->dtype));
        return NULL;
    }
    int64_t dims[OD_MAX_RANK];
    memcpy(dims, t->dims, sizeof dims);
    dims[axis] = n_keep;
    od_tensor *o = od_tensor_create(t->name, t->dtype, t->rank, dims, err);
    if (!o) return NULL;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++) outer *= t->dims[d];
    for (int d = axis + 1; d < t->rank; d++) inner *= t->dims[d];
    size_t row = (size_t)inner * es;
    const uint8_t *src = t->data;
    uint8_t *dst = o->data;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t k = 0; k < n_keep; k++)
            memcpy(dst + ((size_t)a * (size_t)n_keep + (size_t)k) * row,
                   src + ((size_t)a * (size_t)t->dims[axis] + (size_t)keep[k]) * row, row);
    return o;
}

/* Values that do not depend on any graph input: initializers and constant subgraphs. */
static bool *static_values(const od_graph *g) {
    bool *st = calloc((size_t)g->n_values + 1, sizeof *st);
    if (!st) return NULL;
    for (int i = 0; i < g->n_inits; i++) st[g->inits[i]] = true;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        bool all = true;
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0 && !st[n->inputs[k]]) all = false;
        for (int o = 0; o < n->n_outputs; o++)
            if (n->outputs[o] >= 0) st[n->outputs[o]] = all;
    }
    return st;
}

/* Integers of a constant input (initializer or folded at inference); count or -1. */
static int const_ints(const od_graph_shapes *s, int v, int64_t *out, int max) {
    if (v < 0) return -1;
    const od_tensor *t = s->info[v].constant;
    if (!t) return -1;
    int64_t n = od_tensor_count(t);
    if (n < 0 || n > max) return -1;
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == OD_DTYPE_INT64) memcpy(&out[i], (const int64_t *)t->data + i, 8);
        else if (t->dtype == OD_DTYPE_INT32) out[i] = ((const int32_t *)t->data)[i];
        else return -1;
    }
    return (int)n;
}

static bool same_shape(const od_shape_info *a, const od_shape_info *b) {
    if (a->rank < 0 || a->rank != b->rank) return false;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d]) return false;
    return true;
}

static int64_t prod_dims(const int64_t *dims, int from, int to) {
    int64_t p = 1;
    for (int d = from; d < to; d++) p *= dims[d];
    return p;
}

/* ---- name matching ------------------------------------------------------------------- */

static bool is_glob(const char *p) { return strpbrk(p, "*?[") != NULL; }

static bool name_matches(const char *pattern, const char *name) {
    return name && (strcmp(pattern, name) == 0 || fnmatch(pattern, name, 0) == 0);
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 200) la = 200;
    if (lb > 200) lb = 200;
    int row[201];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            if (up + 1 < best) best = up + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* `"a", "b", "c"`: up to three node names closest to pattern (only those where keep[i], when
 * keep is given). */
static void close_names(const od_graph *g, const bool *keep, const char *pattern, char *buf,
                        size_t size) {
    int best[3] = {-1, -1, -1}, dist[3] = {1 << 30, 1 << 30, 1 << 30};
    for (int i = 0; i < g->n_nodes; i++) {
        const char *nm = g->nodes[i].name;
        if (!nm || !*nm || (keep && !keep[i])) continue;
        int d = edit_distance(pattern, nm);
        for (int k = 0; k < 3; k++) {
            if (d < dist[k]) {
                for (int j = 2; j > k; j--) best[j] = best[j - 1], dist[j] = dist[j - 1];
                best[k] = i;
                dist[k] = d;
                break;
            }
        }
    }
    size_t o = 0;
    buf[0] = 0;
    for (int k = 0; k < 3 && best[k] >= 0 && o < size; k++)
        o += (size_t)snprintf(buf + o, size - o, "%s\"%s\"", k ? ", " : "", g->nodes[best[k]].name);
    if (!o) snprintf(buf, size, "(no named nodes)");
}

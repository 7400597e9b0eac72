/* Graph passes before writing a model: constant folding, Dropout/Identity removal, BatchNorm
 * folding, dead nodes and unused initializers, shared initializers, doc strings; and the graph
 * editing helpers they share with quantize.c (passes_internal.h).
 *
 * Passes mark nodes to drop and rewire value indices in place; od_pass_compact then removes the
 * marked nodes and every value nothing refers to, and re-checks the graph. */
#include "od_onnx.h"
#include "passes_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static od_status oom(od_error *err) {
    return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory optimizing the graph");
}

static bool is_op(const od_node *n, const char *op_type) {
    return (!n->domain || !*n->domain || strcmp(n->domain, "ai.onnx") == 0) &&
           strcmp(n->op_type, op_type) == 0;
}

/* ---- editing helpers ------------------------------------------------------------ */

bool od_pass_is_graph_output(const od_graph *g, int v) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return true;
    return false;
}

bool od_pass_is_graph_input(const od_graph *g, int v) {
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == v) return true;
    return false;
}

char *od_pass_unique_name(const od_graph *g, const char *base, const char *suffix, int first) {
    size_t n = strlen(base) + strlen(suffix) + 24;
    char *name = malloc(n);
    if (!name) return NULL;
    snprintf(name, n, "%s%s", base, suffix);
    for (int k = first; od_graph_find_value(g, name) >= 0; k++)
        snprintf(name, n, "%s%s_%d", base, suffix, k);
    return name;
}

/* Node names need not be unique in ONNX, but unique ones read better in errors. */
static char *unique_node_name(const od_graph *g, const char *base) {
    size_t n = strlen(base) + 24;
    char *name = malloc(n);
    if (!name) return NULL;
    snprintf(name, n, "%s", base);
    for (int k = 2;; k++) {
        bool taken = false;
        for (int i = 0; i < g->n_nodes && !taken; i++)
            taken = g->nodes[i].name && strcmp(g->nodes[i].name, name) == 0;
        if (!taken) return name;
        snprintf(name, n, "%s_%d", base, k);
    }
}

int od_pass_add_init(od_graph *g, const char *base, const char *suffix, od_tensor *t,
                     od_error *err) {
    char *name = od_pass_unique_name(g, base, suffix, 2);
    int *inits = realloc(g->inits, sizeof(int) * (size_t)(g->n_inits + 1));
    if (inits) g->inits = inits;
    int v = name && inits ? od_graph_intern_value(g, name) : -1;
    if (v < 0) {
        free(name);
        od_tensor_destroy(t);
        oom(err);
        return -1;
    }
    free(t->name);
    t->name = name;
    g->values[v].init = t;
    g->values[v].producer = -1;
    g->inits[g->n_inits++] = v;
    return v;
}

void od_pass_drop_init(od_graph *g, int v) {
    int w = 0;
    for (int i = 0; i < g->n_inits; i++)
        if (g->inits[i] != v) g->inits[w++] = g->inits[i];
    g->n_inits = w;
    od_tensor_destroy(g->values[v].init);
    g->values[v].init = NULL;
}

int od_pass_add_node(od_graph *g, const char *op_type, const char *name, int n_in, const int *in,
                     int n_out, const int *out, od_error *err) {
    char *nm = unique_node_name(g, name);
    int k = nm ? od_graph_add_node(g) : -1;
    if (k < 0) {
        free(nm);
        oom(err);
        return -1;
    }
    od_node *n = &g->nodes[k];
    n->name = nm;
    n->op_type = strdup(op_type);
    n->domain = strdup("");
    n->inputs = malloc(sizeof(int) * (size_t)(n_in ? n_in : 1));
    n->outputs = malloc(sizeof(int) * (size_t)(n_out ? n_out : 1));
    if (!n->op_type || !n->domain || !n->inputs || !n->outputs) {
        od_node_clear(n);
        g->n_nodes--;
        oom(err);
        return -1;
    }
    memcpy(n->inputs, in, sizeof(int) * (size_t)n_in);
    memcpy(n->outputs, out, sizeof(int) * (size_t)n_out);
    n->n_inputs = n_in;
    n->n_outputs = n_out;
    for (int o = 0; o < n_out; o++)
        if (out[o] >= 0) g->values[out[o]].producer = k;
    return k;
}

static od_attr *attr_slot(od_node *n, const char *name, od_error *err) {
    for (int a = 0; a < n->n_attrs; a++)
        if (strcmp(n->attrs[a].name, name) == 0) {
            char *keep = n->attrs[a].name;
            n->attrs[a].name = NULL;
            od_attr_clear(&n->attrs[a]);
            n->attrs[a].name = keep;
            return &n->attrs[a];
        }
    od_attr *attrs = realloc(n->attrs, sizeof *attrs * (size_t)(n->n_attrs + 1));
    if (!attrs) {
        oom(err);
        return NULL;
    }
    n->attrs = attrs;
    od_attr *a = &attrs[n->n_attrs];
    memset(a, 0, sizeof *a);
    if (!(a->name = strdup(name))) {
        oom(err);
        return NULL;
    }
    n->n_attrs++;
    return a;
}

od_status od_pass_set_attr_int(od_node *n, const char *name, int64_t v, od_error *err) {
    od_attr *a = attr_slot(n, name, err);
    if (!a) return OD_STATUS_OUT_OF_MEMORY;
    a->type = OD_ATTR_INT;
    a->i = v;
    return OD_STATUS_OK;
}

od_status od_pass_set_attr_float(od_node *n, const char *name, float v, od_error *err) {
    od_attr *a = attr_slot(n, name, err);
    if (!a) return OD_STATUS_OUT_OF_MEMORY;
    a->type = OD_ATTR_FLOAT;
    a->f = v;
    return OD_STATUS_OK;
}

void od_pass_remove_attr(od_node *n, const char *name) {
    for (int a = 0; a < n->n_attrs; a++)
        if (strcmp(n->attrs[a].name, name) == 0) {
            od_attr_clear(&n->attrs[a]);
            memmove(&n->attrs[a], &n->attrs[a + 1],
                    sizeof *n->attrs * (size_t)(n->n_attrs - a - 1));
            n->n_attrs--;
            return;
        }
}

od_status od_pass_set_input(od_node *n, int k, int v, od_error *err) {
    if (k >= n->n_inputs) {
        int *in = realloc(n->inputs, sizeof(int) * (size_t)(k + 1));
        if (!in) return oom(err);
        n->inputs = in;
        for (int i = n->n_inputs; i <= k; i++)
            in[i] = -1;
        n->n_inputs = k + 1;
    }
    n->inputs[k] = v;
    return OD_STATUS_OK;
}

static void free_value(od_value *v) {
    free(v->name);
    for (int d = 0; d < OD_MAX_RANK; d++)
        free(v->dims[d].param);
    free(v->opaque_type.data);
    od_tensor_destroy(v->init);
}

od_status od_pass_compact(od_graph *g, const bool *drop, od_error *err) {
    int w = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (drop && drop[i]) {
            od_node_clear(&g->nodes[i]);
            continue;
        }
        if (w != i) g->nodes[w] = g->nodes[i];
        w++;
    }
    g->n_nodes = w;
    int nv = g->n_values;
    bool *used = calloc(nv ? (size_t)nv : 1, sizeof *used);
    int *map = malloc(sizeof(int) * (size_t)(nv ? nv : 1));
    if (!used || !map) {
        free(used);
        free(map);
        return oom(err);
    }
    for (int i = 0; i < g->n_inputs; i++)
        used[g->inputs[i]] = true;
    for (int i = 0; i < g->n_outputs; i++)
        used[g->outputs[i]] = true;
    for (int i = 0; i < g->n_inits; i++)
        used[g->inits[i]] = true;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) used[n->inputs[k]] = true;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0) used[n->outputs[k]] = true;
    }
    w = 0;
    for (int v = 0; v < nv; v++) {
        if (!used[v]) {
            map[v] = -1;
            free_value(&g->values[v]);
            continue;
        }
        map[v] = w;
        if (w != v) g->values[w] = g->values[v];
        w++;
    }
    g->n_values = w;
    for (int i = 0; i < g->n_inputs; i++)
        g->inputs[i] = map[g->inputs[i]];
    for (int i = 0; i < g->n_outputs; i++)
        g->outputs[i] = map[g->outputs[i]];
    for (int i = 0; i < g->n_inits; i++)
        g->inits[i] = map[g->inits[i]];
    for (int i = 0; i < g->n_nodes; i++) {
        od_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) n->inputs[k] = map[n->inputs[k]];
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0) n->outputs[k] = map[n->outputs[k]];
    }
    /* value_info: intermediate values only, each once */
    bool *seen = used; /* reused, indexed by new value numbers */
    memset(seen, 0, sizeof *seen * (size_t)(nv ? nv : 1));
    for (int i = 0; i < g->n_inputs; i++)
        seen[g->inputs[i]] = true;
    for (int i = 0; i < g->n_outputs; i++)
        seen[g->outputs[i]] = true;
    w = 0;
    for (int i = 0; i < g->n_value_infos; i++) {
        int v = map[g->value_infos[i]];
        if (v < 0 || seen[v] || g->values[v].init) continue;
        seen[v] = true;
        g->value_infos[w++] = v;
    }
    g->n_value_infos = w;
    free(used);
    free(map);
    return od_graph_check(g, err);
}

/* Replaces every use of value from by value to in the nodes not dropped. */
static void replace_uses(od_graph *g, int from, int to, const bool *drop) {
    for (int i = 0; i < g->n_nodes; i++) {
        if (drop && drop[i]) continue;
        od_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] == from) n->inputs[k] = to;
    }
}

static const od_tensor *float_init(const od_graph *g, int v) {
    if (v < 0) return NULL;
    const od_tensor *t = g->values[v].init;
    return t && t->dtype == OD_DTYPE_FLOAT ? t : NULL;
}

/* ---- 1. initializers as graph inputs --------------------------------------------- */

static void pass_init_inputs(od_model *m) {
    od_graph *g = &m->graph;
    int w = 0;
    for (int i = 0; i < g->n_inputs; i++)
        if (!g->values[g->inputs[i]].init) g->inputs[w++] = g->inputs[i];
    if (w == g->n_inputs) return;
    g->n_inputs = w;
    if (m->ir_version < 4) m->ir_version = 4; /* before 4, every initializer had to be an input */
}

/* ---- 2. constant folding ---------------------------------------------------------- */

#define FOLD_SMALL_BYTES 4096 /* outputs this small always fold */

static bool same_tensor(const od_tensor *a, const od_tensor *b) {
    return a && b && a->dtype == b->dtype && a->rank == b->rank &&
           memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank) == 0 &&
           a->nbytes == b->nbytes && (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
}

/* Weight storage nodes (od_store_weights) that folding would undo. */
static bool is_decompression(const od_graph *g, const od_node *n) {
    if (n->n_inputs < 1 || n->inputs[0] < 0 || !g->values[n->inputs[0]].init) return false;
    od_dtype from = g->values[n->inputs[0]].init->dtype;
    if (is_op(n, "DequantizeLinear")) return true;
    return is_op(n, "Cast") && (from == OD_DTYPE_FLOAT16 || from == OD_DTYPE_BFLOAT16);
}

static od_status pass_fold_constants(od_graph *g, od_pass_stats *stats, od_error *err) {
    /* Values constant at three batch sizes do not depend on the batch (a Shape of the input
     * followed by Gather(0) differs; Gather(1) does not). */
    static const int64_t batches[] = {1, 2, 5};
    enum { NB = sizeof batches / sizeof *batches };
    od_graph_shapes s[NB];
    memset(s, 0, sizeof s);
    od_status st = OD_STATUS_OK;
    bool *fold = calloc(g->n_nodes ? (size_t)g->n_nodes : 1, 2 * sizeof *fold);
    if (!fold) return oom(err);
    bool *kept = fold + g->n_nodes; /* constant, but kept on purpose */
    for (int b = 0; b < NB; b++) {
        od_error ignored = {0};
        st = od_graph_infer_ex(g, batches[b], true, &s[b], &ignored);
        if (st == OD_STATUS_OUT_OF_MEMORY) {
            oom(err);
            goto cleanup;
        }
        if (st) { /* no shapes, nothing to fold */
            st = OD_STATUS_OK;
            goto cleanup;
        }
    }
    int n_fold = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        bool ok = !is_decompression(g, n) && !(n->domain && *n->domain);
        size_t in_bytes = 0, out_bytes = 0;
        for (int k = 0; ok && k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0) continue;
            if (g->values[v].init) {
                in_bytes += g->values[v].init->nbytes;
            } else if (g->values[v].producer >= 0 && fold[g->values[v].producer]) {
                in_bytes += s[0].info[v].constant->nbytes;
            } else if (g->values[v].producer >= 0 && kept[g->values[v].producer]) {
                /* known, but from a node kept on purpose (weight decompression, a big
                 * output): folding through it would undo that choice */
                ok = false;
            } /* else the value depends on the batch (Shape) or is unknown: what this node
               * makes of it is checked at every batch below */
        }
        int n_out = 0;
        for (int k = 0; ok && k < n->n_outputs; k++) {
            int v = n->outputs[k];
            if (v < 0) continue;
            n_out++;
            if (od_pass_is_graph_output(g, v)) ok = false;
            for (int b = 0; ok && b < NB; b++)
                ok = s[b].folded[v] && same_tensor(s[0].folded[v], s[b].folded[v]);
            if (ok) out_bytes += s[0].folded[v]->nbytes;
        }
        /* Folding must not grow the file: ConstantOfShape, Expand, Tile and the like stay. */
        if (ok && out_bytes > FOLD_SMALL_BYTES && out_bytes > in_bytes && !is_op(n, "Constant")) {
            ok = false;
            kept[i] = true;
        }
        if (is_decompression(g, n)) kept[i] = true;
        fold[i] = ok && n_out > 0;
        n_fold += fold[i];
    }
    if (!n_fold) goto cleanup;
    /* Inputs of the nodes that stay, written by nodes that go, become initializers. */
    for (int i = 0; i < g->n_nodes; i++) {
        if (fold[i]) continue;
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int v = g->nodes[i].inputs[k];
            if (v < 0 || g->values[v].init) continue;
            int p = g->values[v].producer;
            if (p < 0 || !fold[p]) continue;
            od_tensor *t = s[0].folded[v];
            s[0].folded[v] = NULL;
            free(t->name);
            if (!(t->name = strdup(g->values[v].name))) {
                od_tensor_destroy(t);
                st = oom(err);
                goto cleanup;
            }
            int *inits = realloc(g->inits, sizeof(int) * (size_t)(g->n_inits + 1));
            if (!inits) {
                od_tensor_destroy(t);
                st = oom(err);
                goto cleanup;
            }
            g->inits = inits;
            g->inits[g->n_inits++] = v;
            g->values[v].init = t;
            od_node *pn = &g->nodes[p];
            for (int o = 0; o < pn->n_outputs; o++)
                if (pn->outputs[o] == v) pn->outputs[o] = -1;
        }
    }
    for (int b = 0; b < NB; b++)
        od_graph_shapes_clear(&s[b]);
    if (stats) stats->folded_consts += n_fold;
    st = od_pass_compact(g, fold, err);
    free(fold);
    return st;
cleanup:
    for (int b = 0; b < NB; b++)
        od_graph_shapes_clear(&s[b]);
    free(fold);
    return st;
}

/* ---- 3. Dropout and Identity ------------------------------------------------------ */

static bool all_zero(const od_tensor *t) {
    for (size_t i = 0; i < t->nbytes; i++)
        if (((const uint8_t *)t->data)[i]) return false;
    return true;
}

static od_status pass_drop_identity(od_graph *g, od_pass_stats *stats, od_error *err) {
    bool *drop = calloc(g->n_nodes ? (size_t)g->n_nodes : 1, sizeof *drop);
    int *uses = od_graph_count_uses(g);
    if (!drop || !uses) {
        free(drop);
        free(uses);
        return oom(err);
    }
    int n_drop = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        od_node *n = &g->nodes[i];
        bool dropout = is_op(n, "Dropout");
        if (!dropout && !is_op(n, "Identity")) continue;
        if (n->n_inputs < 1 || n->n_outputs < 1 || n->inputs[0] < 0 || n->outputs[0] < 0) continue;
        if (dropout) {
            if (n->n_outputs > 1 && n->outputs[1] >= 0 && uses[n->outputs[1]]) continue; /* mask */
            if (n->n_inputs > 2 && n->inputs[2] >= 0) { /* training_mode: a constant false only */
                const od_tensor *t = g->values[n->inputs[2]].init;
                if (!t || !all_zero(t)) continue;
            }
        }
        int x = n->inputs[0], y = n->outputs[0];
        if (g->values[x].dtype && g->values[y].dtype && g->values[x].dtype != g->values[y].dtype)
            continue;
        if (!od_pass_is_graph_output(g, y)) {
            replace_uses(g, y, x, drop);
        } else {
            /* y names a graph output: x's producer writes y instead */
            int p = g->values[x].producer;
            if (p < 0 || drop[p] || od_pass_is_graph_output(g, x) || od_pass_is_graph_input(g, x))
                continue;
            od_node *pn = &g->nodes[p];
            for (int o = 0; o < pn->n_outputs; o++)
                if (pn->outputs[o] == x) pn->outputs[o] = y;
            n->outputs[0] = -1; /* y has one producer at all times */
            g->values[y].producer = p;
            replace_uses(g, x, y, drop);
            uses[y] += uses[x] - 1;
            uses[x] = 0;
        }
        drop[i] = true;
        n_drop++;
    }
    od_status st = OD_STATUS_OK;
    if (n_drop) {
        if (stats) stats->dropped += n_drop;
        st = od_pass_compact(g, drop, err);
    }
    free(drop);
    free(uses);
    return st;
}

/* ---- 4. BatchNormalization folding ------------------------------------------------ */

/* The initializer at node input k, copied first when anything else uses it. */
static od_tensor *own_init(od_graph *g, int node, int k, const int *uses, od_error *err) {
    int v = g->nodes[node].inputs[k];
    if (uses[v] <= 1 && !od_pass_is_graph_input(g, v)) return g->values[v].init;
    od_tensor *t = malloc(sizeof *t);
    if (!t || od_tensor_copy(t, g->values[v].init, err)) {
        free(t);
        oom(err);
        return NULL;
    }
    char base[256];
    snprintf(base, sizeof base, "%s", g->values[v].name);
    int nv = od_pass_add_init(g, base, "_bn_folded", t, err);
    if (nv < 0) return NULL;
    g->nodes[node].inputs[k] = nv;
    return g->values[nv].init;
}

/* A name for a new bias from the weight's: "conv1.weight" -> "conv1.bias", else W + "_bias".
 * Returns the suffix to add to base. */
static const char *bias_name(const char *weight, char *base, size_t size) {
    size_t n = strlen(weight);
    if (n > 6 && n - 6 < size && strcmp(weight + n - 6, "weight") == 0) {
        snprintf(base, size, "%.*s", (int)(n - 6), weight);
        return "bias";
    }
    snprintf(base, size, "%s", weight);
    return "_bias";
}

/* BN parameters: scale, B, mean, var and epsilon, and the factor f = scale / sqrt(var + eps). */
typedef struct bn_params {
    int64_t C;
    const float *bn[4];
    float eps;
    double *f;
    const float *mean, *bias;
} bn_params;

static bool bn_read(const od_graph *g, const od_node *bn, int64_t opset, bn_params *p) {
    if (!od_bn_is_inference(bn, opset)) return false;
    const od_tensor *t[4];
    for (int k = 0; k < 4; k++) {
        t[k] = float_init(g, bn->inputs[k + 1]);
        if (!t[k] || t[k]->rank != 1 || t[k]->dims[0] != t[0]->dims[0]) return false;
        p->bn[k] = t[k]->data;
    }
    p->eps = od_node_attr_float(bn, "epsilon");
    p->C = t[0]->dims[0];
    p->f = malloc(sizeof(double) * (size_t)(p->C ? p->C : 1));
    if (!p->f) return false;
    const float *scale = t[0]->data, *var = t[3]->data;
    for (int64_t c = 0; c < p->C; c++)
        p->f[c] = scale[c] / sqrt((double)var[c] + p->eps);
    p->bias = t[1]->data;
    p->mean = t[2]->data;
    return true;
}

static void bn_params_free(bn_params *p) {
    free(p->f);
}

/* Folds BN into the Conv or ConvTranspose at node i. Returns false when it does not fit
 * (nothing changed), with *st set on a real error. */
static bool fold_into_conv(od_graph *g, int i, const bn_params *p, const int *uses, od_status *st,
                           od_error *err) {
    od_node *n = &g->nodes[i];
    bool transpose = is_op(n, "ConvTranspose");
    const od_tensor *w = n->n_inputs > 1 ? float_init(g, n->inputs[1]) : NULL;
    if (!w || w->rank < 3) return false;
    int64_t group = od_attr_int(n, "group", 1);
    if (group < 1 || w->dims[0] % group) return false;
    int64_t cout = transpose ? w->dims[1] * group : w->dims[0];
    if (cout != p->C) return false;
    int bias_v = n->n_inputs > 2 ? n->inputs[2] : -1;
    const od_tensor *b = bias_v >= 0 ? float_init(g, bias_v) : NULL;
    if (bias_v >= 0 && (!b || b->rank != 1 || b->dims[0] != cout)) return false;

    od_tensor *wt = own_init(g, i, 1, uses, err);
    if (!wt) goto fail;
    od_tensor *bt;
    if (bias_v >= 0) {
        bt = own_init(g, i, 2, uses, err);
    } else {
        bt = od_tensor_create(NULL, OD_DTYPE_FLOAT, 1, &cout, err);
        char base[256];
        const char *suffix = bias_name(g->values[g->nodes[i].inputs[1]].name, base, sizeof base);
        int v = bt ? od_pass_add_init(g, base, suffix, bt, err) : -1;
        if (v < 0 || od_pass_set_input(&g->nodes[i], 2, v, err)) goto fail;
    }
    if (!bt) goto fail;
    od_bn_fold_into_conv(wt->data, bt->data, wt->rank, wt->dims, group, transpose, p->bn, p->eps);
    return true;
fail:
    *st = err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    return false;
}

/* Folds BN (on Y = alpha A B + beta C, [M, N]) into the Gemm at node i. */
static bool fold_into_gemm(od_graph *g, int i, const bn_params *p, const int *uses, od_status *st,
                           od_error *err) {
    od_node *n = &g->nodes[i];
    const od_tensor *w = n->n_inputs > 1 ? float_init(g, n->inputs[1]) : NULL;
    if (!w || w->rank != 2) return false;
    bool trans_b = od_attr_int(n, "transB", 0) != 0;
    int64_t N = trans_b ? w->dims[0] : w->dims[1];
    if (N != p->C) return false;
    int c_v = n->n_inputs > 2 ? n->inputs[2] : -1;
    const od_tensor *c = c_v >= 0 ? float_init(g, c_v) : NULL;
    if (c_v >= 0 && (!c || c->rank > 2)) return false;
    int64_t cd0 = 1, cd1 = 1; /* C as [cd0, cd1], broadcast to [M, N] */
    if (c && c->rank == 1) cd1 = c->dims[0];
    if (c && c->rank == 2) {
        cd0 = c->dims[0];
        cd1 = c->dims[1];
    }
    if (c && cd1 != 1 && cd1 != N) return false;
    const od_attr *ba = od_node_attr(n, "beta");
    double beta = ba && ba->type == OD_ATTR_FLOAT ? ba->f : 1.0;

    int64_t dims[2] = {cd0, N};
    od_tensor *ct = cd0 > 1 ? od_tensor_create(NULL, OD_DTYPE_FLOAT, 2, dims, err)
                            : od_tensor_create(NULL, OD_DTYPE_FLOAT, 1, &N, err);
    if (!ct) goto fail;
    float *cn = ct->data;
    for (int64_t r = 0; r < cd0; r++)
        for (int64_t o = 0; o < N; o++) {
            double cv = c ? beta * ((const float *)c->data)[r * cd1 + (cd1 == 1 ? 0 : o)] : 0.0;
            cn[r * N + o] = (float)((cv - p->mean[o]) * p->f[o] + p->bias[o]);
        }
    od_tensor *wt = own_init(g, i, 1, uses, err);
    if (!wt) {
        od_tensor_destroy(ct);
        goto fail;
    }
    float *wd = wt->data;
    int64_t K = trans_b ? w->dims[1] : w->dims[0];
    for (int64_t k = 0; k < K; k++)
        for (int64_t o = 0; o < N; o++) {
            float *e = trans_b ? &wd[o * K + k] : &wd[k * N + o];
            *e = (float)(*e * p->f[o]);
        }
    if (c && uses[c_v] <= 1 && !od_pass_is_graph_input(g, c_v)) { /* in place, same name */
        ct->name = strdup(g->values[c_v].name);
        if (!ct->name) {
            od_tensor_destroy(ct);
            goto fail;
        }
        od_tensor_destroy(g->values[c_v].init);
        g->values[c_v].init = ct;
    } else {
        char base[256];
        const char *suffix = "_bn_folded";
        if (c)
            snprintf(base, sizeof base, "%s", g->values[c_v].name);
        else
            suffix = bias_name(g->values[g->nodes[i].inputs[1]].name, base, sizeof base);
        int v = od_pass_add_init(g, base, suffix, ct, err);
        if (v < 0 || od_pass_set_input(&g->nodes[i], 2, v, err)) goto fail;
    }
    if (beta != 1.0 && od_pass_set_attr_float(&g->nodes[i], "beta", 1.0f, err)) goto fail;
    return true;
fail:
    *st = err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    return false;
}

static od_status pass_fold_bn(od_graph *g, od_pass_stats *stats, od_error *err) {
    bool *drop = calloc(g->n_nodes ? (size_t)g->n_nodes : 1, sizeof *drop);
    int *uses = od_graph_count_uses(g);
    od_status st = OD_STATUS_OK;
    if (!drop || !uses) {
        st = oom(err);
        goto cleanup;
    }
    int n_fold = 0;
    int64_t opset = g->opset ? g->opset : 17;
    for (int i = 0; i < g->n_nodes && !st; i++) {
        const od_node *bn = &g->nodes[i];
        if (!is_op(bn, "BatchNormalization") || bn->n_inputs < 1 || bn->inputs[0] < 0 ||
            bn->n_outputs < 1 || bn->outputs[0] < 0)
            continue;
        int x = bn->inputs[0], p = g->values[x].producer;
        if (p < 0 || drop[p] || uses[x] != 1 || g->nodes[p].outputs[0] != x) continue;
        const od_node *pn = &g->nodes[p];
        bool conv = is_op(pn, "Conv") || is_op(pn, "ConvTranspose"), gemm = is_op(pn, "Gemm");
        if (!conv && !gemm) continue;
        bn_params bp = {0};
        if (!bn_read(g, bn, opset, &bp)) {
            bn_params_free(&bp);
            continue;
        }
        bool done = conv ? fold_into_conv(g, p, &bp, uses, &st, err)
                         : fold_into_gemm(g, p, &bp, uses, &st, err);
        bn_params_free(&bp);
        if (!done) continue;
        /* the producer now writes the BN's output */
        bn = &g->nodes[i]; /* od_pass_add_init may have moved nothing, but be safe */
        int y = bn->outputs[0];
        g->nodes[p].outputs[0] = y;
        g->nodes[i].outputs[0] = -1;
        g->values[y].producer = p;
        drop[i] = true;
        n_fold++;
        /* uses of the parameters changed: recount for the copy-on-write decisions */
        free(uses);
        if (!(uses = od_graph_count_uses(g))) st = oom(err);
        for (int k = 0; uses && k < g->n_nodes; k++)
            if (drop[k])
                for (int j = 0; j < g->nodes[k].n_inputs; j++)
                    if (g->nodes[k].inputs[j] >= 0) uses[g->nodes[k].inputs[j]]--;
    }
    if (!st && n_fold) {
        if (stats) stats->bn_folded += n_fold;
        st = od_pass_compact(g, drop, err);
    }
cleanup:
    free(drop);
    free(uses);
    return st;
}

/* ---- 5. dead nodes and unused initializers --------------------------------------- */

static od_status pass_dead(od_graph *g, od_pass_stats *stats, od_error *err) {
    bool *drop = calloc(g->n_nodes ? (size_t)g->n_nodes : 1, sizeof *drop);
    bool *needed = calloc(g->n_values ? (size_t)g->n_values : 1, sizeof *needed);
    if (!drop || !needed) {
        free(drop);
        free(needed);
        return oom(err);
    }
    for (int i = 0; i < g->n_outputs; i++)
        needed[g->outputs[i]] = true;
    int n_dead = 0;
    for (int i = g->n_nodes - 1; i >= 0; i--) { /* nodes are in topological order */
        const od_node *n = &g->nodes[i];
        bool live = false;
        for (int k = 0; k < n->n_outputs && !live; k++)
            live = n->outputs[k] >= 0 && needed[n->outputs[k]];
        if (!live) {
            drop[i] = true;
            n_dead++;
            continue;
        }
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) needed[n->inputs[k]] = true;
    }
    int w = 0, n_unused = 0;
    for (int i = 0; i < g->n_inits; i++) {
        int v = g->inits[i];
        if (needed[v] || od_pass_is_graph_input(g, v)) {
            g->inits[w++] = v;
            continue;
        }
        od_tensor_destroy(g->values[v].init);
        g->values[v].init = NULL;
        n_unused++;
    }
    g->n_inits = w;
    if (stats) {
        stats->dead_nodes += n_dead;
        stats->unused_inits += n_unused;
    }
    od_status st = n_dead || n_unused ? od_pass_compact(g, drop, err) : OD_STATUS_OK;
    free(drop);
    free(needed);
    return st;
}

/* ---- 6. shared initializers --------------------------------------------------------- */

static uint64_t tensor_hash(const od_tensor *t) {
    uint64_t h = 1469598103934665603ull;
    const uint8_t *p = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h ^ ((uint64_t)t->dtype << 56) ^ (uint64_t)t->rank;
}

static od_status pass_share(od_graph *g, od_pass_stats *stats, od_error *err) {
    int n = g->n_inits;
    uint64_t *h = malloc(sizeof *h * (size_t)(n ? n : 1));
    bool *gone = calloc(n ? (size_t)n : 1, sizeof *gone);
    if (!h || !gone) {
        free(h);
        free(gone);
        return oom(err);
    }
    for (int i = 0; i < n; i++)
        h[i] = tensor_hash(g->values[g->inits[i]].init);
    int shared = 0;
    for (int j = 0; j < n; j++) {
        int vj = g->inits[j];
        if (g->values[vj].init->dtype == OD_DTYPE_STRING || od_pass_is_graph_output(g, vj) ||
            od_pass_is_graph_input(g, vj))
            continue;
        for (int i = 0; i < j; i++) {
            int vi = g->inits[i];
            if (gone[i] || h[i] != h[j] || od_pass_is_graph_input(g, vi) ||
                !same_tensor(g->values[vi].init, g->values[vj].init))
                continue;
            replace_uses(g, vj, vi, NULL);
            gone[j] = true;
            shared++;
            break;
        }
    }
    int w = 0;
    for (int i = 0; i < n; i++) {
        if (!gone[i]) {
            g->inits[w++] = g->inits[i];
            continue;
        }
        od_tensor_destroy(g->values[g->inits[i]].init);
        g->values[g->inits[i]].init = NULL;
    }
    g->n_inits = w;
    free(h);
    free(gone);
    if (!shared) return OD_STATUS_OK;
    if (stats) stats->shared_inits += shared;
    return od_pass_compact(g, NULL, err);
}

/* ---- the builder's canonical form: one copy of an initializer per consumer ----------- */

/* Exporters share equal constants (zero biases, default BatchNorm statistics) between layers
 * that merely happen to hold the same values; the builder must be free to slice each layer's
 * copy on its own. A weight of rank >= 2 read as the weight of several layers (Conv, Gemm,
 * MatMul, the table of a Gather) is truly tied and stays shared. */
static bool is_weight_slot(const od_node *n, int k) {
    return (k == 1 && od_node_channel_role(n) == OD_CHANNELS_MIXES) ||
           (k == 0 && is_op(n, "Gather"));
}

static od_status pass_unshare(od_graph *g, od_pass_stats *stats, od_error *err) {
    int *uses = od_graph_count_uses(g);
    int *weight_uses = calloc(g->n_values ? (size_t)g->n_values : 1, sizeof *weight_uses);
    od_status st = OD_STATUS_OK;
    if (!uses || !weight_uses) {
        st = oom(err);
        goto done;
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] >= 0 && is_weight_slot(&g->nodes[i], k))
                weight_uses[g->nodes[i].inputs[k]]++;
    int n_values = g->n_values; /* copies added below are not looked at again */
    for (int i = 0; i < g->n_nodes; i++) {
        od_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0 || v >= n_values || uses[v] < 2) continue;
            const od_tensor *t = g->values[v].init;
            if (!t || od_pass_is_graph_input(g, v) || od_pass_is_graph_output(g, v)) continue;
            if (t->rank >= 2 && weight_uses[v] >= 2 && is_weight_slot(n, k)) continue;
            /* the first use keeps the original */
            uses[v]--;
            od_tensor *copy = calloc(1, sizeof *copy);
            if (!copy || od_tensor_copy(copy, t, err)) {
                free(copy);
                st = copy ? err->status : oom(err);
                goto done;
            }
            int c = od_pass_add_init(g, g->values[v].name, "_copy", copy, err);
            if (c < 0) {
                st = err->status;
                goto done;
            }
            n = &g->nodes[i];
            n->inputs[k] = c;
            if (stats) stats->unshared_inits++;
        }
    }
    st = od_pass_compact(g, NULL, err);
done:
    free(uses);
    free(weight_uses);
    return st;
}

/* What every pass pipeline starts with: counts before, the opset, producers and order checked
 * (whoever built the graph), initializers taken out of the graph inputs. */
static od_status passes_begin(od_model *m, od_pass_stats *stats, od_error *err) {
    od_graph *g = &m->graph;
    memset(stats, 0, sizeof *stats);
    stats->nodes_before = g->n_nodes;
    stats->inits_before = g->n_inits;
    if (!g->opset) g->opset = od_model_opset(m, "");
    od_status st = od_graph_check(g, err);
    if (!st) pass_init_inputs(m);
    return st;
}

od_status od_canonicalize(od_model *m, od_pass_stats *stats, od_error *err) {
    od_pass_stats local;
    if (!stats) stats = &local;
    od_graph *g = &m->graph;
    od_status st = passes_begin(m, stats, err);
    if (st) return st;
    if ((st = pass_fold_constants(g, stats, err)) || (st = pass_drop_identity(g, stats, err)) ||
        (st = pass_dead(g, stats, err)) || (st = pass_unshare(g, stats, err)))
        return st;
    stats->nodes_after = g->n_nodes;
    stats->inits_after = g->n_inits;
    return OD_STATUS_OK;
}

/* ---- 7. doc strings ----------------------------------------------------------------- */

static void pass_strip_docs(od_model *m) {
    free(m->doc_string);
    m->doc_string = NULL;
    free(m->graph.doc_string);
    m->graph.doc_string = NULL;
    for (int i = 0; i < m->graph.n_nodes; i++) {
        free(m->graph.nodes[i].doc_string);
        m->graph.nodes[i].doc_string = NULL;
    }
}

/* ---- 8. compact encoding ---------------------------------------------------------------- */

/* Drops default-valued attributes and value_info (shape annotations every runtime infers
 * again), and gives the values between nodes short names (Op_k, when shorter than the name they
 * have; a second run renames nothing): the graph's inputs, outputs
 * and initializers keep theirs, and so do node names and stored weights (Cast, DequantizeLinear
 * outputs). */
static od_status pass_compact_encoding(od_graph *g, od_error *err) {
    if (g->opset >= 7)
        for (int i = 0; i < g->n_nodes; i++) {
            od_node *n = &g->nodes[i];
            for (int a = n->n_attrs - 1; a >= 0; a--)
                /* the defaults the op descriptors give are the same in every opset from 7 */
                if (od_attr_is_default(n, &n->attrs[a])) od_pass_remove_attr(n, n->attrs[a].name);
        }
    g->n_value_infos = 0;
    bool *keep = calloc(g->n_values ? (size_t)g->n_values : 1, sizeof *keep);
    if (!keep) return oom(err);
    for (int i = 0; i < g->n_inputs; i++)
        keep[g->inputs[i]] = true;
    for (int i = 0; i < g->n_outputs; i++)
        keep[g->outputs[i]] = true;
    for (int v = 0; v < g->n_values; v++)
        keep[v] |= g->values[v].init != NULL;
    int counter = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (is_decompression(g, n)) continue; /* a stored weight keeps the weight's name */
        for (int o = 0; o < n->n_outputs; o++) {
            int v = n->outputs[o];
            if (v < 0 || keep[v]) continue;
            char name[96];
            bool taken;
            do { /* value names stay unique at every step: only a free name is taken */
                snprintf(name, sizeof name, "%.64s_%d", n->op_type, counter++);
                taken = od_graph_find_value(g, name) >= 0;
            } while (taken);
            if (strlen(name) >= strlen(g->values[v].name)) continue; /* already short */
            char *dup = strdup(name);
            if (!dup) {
                free(keep);
                return oom(err);
            }
            free(g->values[v].name);
            g->values[v].name = dup;
        }
    }
    free(keep);
    return OD_STATUS_OK;
}

od_status od_optimize(od_model *m, od_pass_stats *stats, od_error *err) {
    od_pass_stats local;
    if (!stats) stats = &local;
    od_graph *g = &m->graph;
    od_status st = passes_begin(m, stats, err);
    if (st) return st;
    if ((st = pass_fold_constants(g, stats, err)) || (st = pass_drop_identity(g, stats, err)) ||
        (st = pass_fold_bn(g, stats, err)) || (st = pass_dead(g, stats, err)) ||
        (st = pass_share(g, stats, err)))
        return st;
    pass_strip_docs(m);
    if ((st = od_pass_compact(g, NULL, err)) || (st = pass_compact_encoding(g, err))) return st;
    stats->nodes_after = g->n_nodes;
    stats->inits_after = g->n_inits;
    return OD_STATUS_OK;
}

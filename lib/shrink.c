/* The student builder (see od_shrink.h): copy the teacher, drop removable blocks, group the
 * channel dims with a union-find, keep per group the channels of largest L1 norm and slice every
 * weight to them, re-initialise when asked, insert BatchNormalization for training.
 *
 * Soundness rests on one rule: a value's shape may change only through a channel dim this file
 * tracks and knows how to follow. An op it does not know "pins" the dims of its inputs (they keep
 * every channel), so its outputs never change shape. */
#include "od_onnx.h"
#include "passes_internal.h"

#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static od_status oom(od_error *err) {
    return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory building the student");
}

/* ---- op classes ---------------------------------------------------------------------- */

/* How an op treats channels is a fact of the op (od_node_channel_role, od_node_channel_inputs);
 * the lists here are about how a chain layer ends and where branches join. Op lists are
 * space-separated names. */
/* shape-preserving activations a chain layer may end with */
static const char act_ops[] = "Relu LeakyRelu Sigmoid Tanh HardSigmoid HardSwish Elu Selu Celu "
                              "Gelu Softplus Softsign Clip Dropout Identity Mish ThresholdedRelu "
                              "PRelu";
/* a chain layer's output may not feed these: it would be a branch of a join */
static const char join_ops[] = "Add Sub Mul Div Pow Max Min Sum Mean Concat Where";

static bool default_domain(const od_node *n) {
    return !n->domain || !*n->domain || strcmp(n->domain, "ai.onnx") == 0;
}

static bool op_is(const od_node *n, const char *op) {
    return default_domain(n) && strcmp(n->op_type, op) == 0;
}

static bool op_in(const od_node *n, const char *list) {
    if (!default_domain(n)) return false;
    size_t len = strlen(n->op_type);
    for (const char *p = strstr(list, n->op_type); p && len; p = strstr(p + 1, n->op_type))
        if ((p == list || p[-1] == ' ') && (p[len] == ' ' || p[len] == 0)) return true;
    return false;
}

static bool role_is(const od_node *n, od_channel_role role) {
    return od_node_channel_role(n) == role;
}

/* output channels are a weight's: Conv, ConvTranspose, Gemm, MatMul */
static bool is_source_op(const od_node *n) { return role_is(n, OD_CHANNELS_MIXES); }

/* elementwise on input 0 alone (activations, Softmax, Cast, ...) */
static bool is_unary(const od_node *n) {
    return role_is(n, OD_CHANNELS_ELEMENTWISE) && od_node_channel_inputs(n) == 0;
}

/* elementwise on input 0 with per-channel operands broadcast against it (PRelu's slope) */
static bool is_sloped(const od_node *n) {
    return role_is(n, OD_CHANNELS_ELEMENTWISE) && od_node_channel_inputs(n) > 0;
}

/* ---- attributes ---------------------------------------------------------------------- */

/* Count copied, or -1 when absent or longer than max. */
static int attr_ints(const od_node *n, const char *name, int64_t *out, int max) {
    const od_attr *a = od_node_attr(n, name);
    if (!a || a->type != OD_ATTR_INTS || a->count > (size_t)max) return -1;
    for (size_t i = 0; i < a->count; i++)
        out[i] = a->ints[i];
    return (int)a->count;
}

/* ---- graph editing ------------------------------------------------------------------- */

/* Removes the nodes marked in drop (order kept). */
static void remove_nodes(od_graph *g, const bool *drop) {
    int k = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        if (drop[i]) {
            od_node_clear(&g->nodes[i]);
            continue;
        }
        g->nodes[k++] = g->nodes[i];
    }
    g->n_nodes = k;
}

/* Uses of each value: node input slots, and graph outputs. */
typedef struct use_map {
    int n_values;
    int *count; /* slot uses + graph outputs */
    int *start; /* consumers of v: node[start[v] .. start[v + 1]) (one per slot) */
    int *node;
    bool *output; /* a graph output */
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
    for (int i = 0; i < g->n_nodes; i++)
        total += g->nodes[i].n_inputs;
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

/* Adds an initializer value holding t (owned from now on, also on failure); -1 out of memory. */
static int add_initializer(od_graph *g, const char *base, od_tensor *t) {
    char *name = od_pass_unique_name(g, base, "", 1);
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
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            uses += g->nodes[i].inputs[k] == v;
    if (uses == 1 && g->values[v].init && !od_pass_is_graph_input(g, v) && !od_pass_is_graph_output(g, v)) {
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
    for (int d = 0; d < axis; d++)
        outer *= t->dims[d];
    for (int d = axis + 1; d < t->rank; d++)
        inner *= t->dims[d];
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
    for (int i = 0; i < g->n_inits; i++)
        st[g->inits[i]] = true;
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
        if (t->dtype == OD_DTYPE_INT64)
            memcpy(&out[i], (const int64_t *)t->data + i, 8);
        else if (t->dtype == OD_DTYPE_INT32)
            out[i] = ((const int32_t *)t->data)[i];
        else
            return -1;
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
    for (int d = from; d < to; d++)
        p *= dims[d];
    return p;
}

/* ---- name matching ------------------------------------------------------------------- */

static bool is_glob(const char *p) {
    return strpbrk(p, "*?[") != NULL;
}

static bool name_matches(const char *pattern, const char *name) {
    return name && (strcmp(pattern, name) == 0 || fnmatch(pattern, name, 0) == 0);
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 200) la = 200;
    if (lb > 200) lb = 200;
    int row[201];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
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
                for (int j = 2; j > k; j--)
                    best[j] = best[j - 1], dist[j] = dist[j - 1];
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

/* ---- the builder's state ------------------------------------------------------------- */

typedef struct shrink {
    od_model *m; /* the student */
    od_graph *g;
    od_shrink_spec spec; /* the caller's, with the spec file's rules merged in (owned copies) */
    od_shrink_report *report;
    od_error *err;
    od_graph_shapes shapes; /* the student's at batch 1 (partial) */
    use_map uses;
    bool *stat; /* per value: independent of the graph inputs */
} shrink;

/* Shapes, uses and static values of the current graph (after od_graph_check). */
static od_status shrink_refresh(shrink *c) {
    od_status st;
    if ((st = od_graph_check(c->g, c->err))) return st;
    od_graph_shapes_clear(&c->shapes);
    od_error note = {0};
    if ((st = od_graph_infer_ex(c->g, 1, true, &c->shapes, &note))) {
        *c->err = note;
        return st;
    }
    if ((st = use_map_build(c->g, &c->uses, c->err))) return st;
    free(c->stat);
    if (!(c->stat = static_values(c->g))) return oom(c->err);
    return OD_STATUS_OK;
}

/* ---- depth: removable blocks ------------------------------------------------------------ */

typedef struct block {
    int in_v, out_v; /* the block computes out_v from in_v; without it, out_v's readers read in_v */
    int head;        /* the node naming it: the Add, or the layer */
    int first;       /* its lowest node index */
    int n_nodes;
    int *nodes;
    bool residual, drop;
    bool transformer; /* an attention block and the MLP block after it: one encoder block */
} block;

typedef struct block_list {
    int n, cap;
    block *b;
} block_list;

static void blocks_clear(block_list *l) {
    for (int i = 0; i < l->n; i++)
        free(l->b[i].nodes);
    free(l->b);
    memset(l, 0, sizeof *l);
}

static bool blocks_push(block_list *l, const block *b) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        block *nb = realloc(l->b, sizeof *nb * (size_t)cap);
        if (!nb) return false;
        l->b = nb;
        l->cap = cap;
    }
    l->b[l->n++] = *b;
    return true;
}

/* A residual block ending at the Add node a: one operand x, the other a branch computed from x
 * alone (and constants) that nothing else reads, all three of the same shape. */
static od_status find_residual(shrink *c, int a, bool *mark, int *stack, block_list *out) {
    const od_graph *g = c->g;
    const use_map *u = &c->uses;
    const od_node *add = &g->nodes[a];
    if (!op_is(add, "Add") || add->n_inputs != 2 || add->n_outputs != 1) return OD_STATUS_OK;
    int y = add->outputs[0];
    if (y < 0 || u->output[y]) return OD_STATUS_OK;
    for (int si = 0; si < 2; si++) {
        int x = add->inputs[si], b = add->inputs[1 - si];
        if (x < 0 || b < 0 || x == b || c->stat[x] || c->stat[b]) continue;
        const od_shape_info *sx = &c->shapes.info[x];
        if (!same_shape(&c->shapes.info[y], sx) || !same_shape(&c->shapes.info[b], sx)) continue;
        int pb = g->values[b].producer;
        if (pb < 0) continue;
        int n = 0, top = 0;
        bool ok = true, reads_x = false;
        mark[pb] = true;
        stack[top++] = pb;
        while (top > 0 && ok) {
            int ni = stack[--top];
            stack[g->n_nodes + n++] = ni; /* the branch list lives in the stack's upper half */
            const od_node *bn = &g->nodes[ni];
            for (int k = 0; k < bn->n_inputs && ok; k++) {
                int v = bn->inputs[k];
                if (v < 0 || c->stat[v]) continue;
                if (v == x) {
                    reads_x = true;
                    continue;
                }
                int p = g->values[v].producer;
                if (p < 0 || p == a)
                    ok = false;
                else if (!mark[p])
                    mark[p] = true, stack[top++] = p;
            }
        }
        int *branch = stack + g->n_nodes;
        for (int i = 0; i < n && ok; i++) {
            const od_node *bn = &g->nodes[branch[i]];
            for (int o = 0; o < bn->n_outputs && ok; o++) {
                int w = bn->outputs[o];
                if (w < 0) continue;
                if (u->output[w]) ok = false;
                for (int k = u->start[w]; k < u->start[w + 1] && ok; k++) {
                    int cn = u->node[k];
                    if (!mark[cn] && !(cn == a && w == b)) ok = false;
                }
            }
        }
        ok = ok && top == 0 && reads_x;
        for (int i = 0; i < n; i++)
            mark[branch[i]] = false;
        for (int i = 0; i < top; i++)
            mark[stack[i]] = false;
        if (!ok) continue;
        block bl = {
            .in_v = x, .out_v = y, .head = a, .first = a, .n_nodes = n + 1, .residual = true};
        if (!(bl.nodes = malloc(sizeof(int) * (size_t)(n + 1)))) return oom(c->err);
        for (int i = 0; i < n; i++) {
            bl.nodes[i] = branch[i];
            if (branch[i] < bl.first) bl.first = branch[i];
        }
        bl.nodes[n] = a;
        if (!blocks_push(out, &bl)) {
            free(bl.nodes);
            return oom(c->err);
        }
        return OD_STATUS_OK;
    }
    return OD_STATUS_OK;
}

/* A chain layer starting at node si: a Conv (group 1), ConvTranspose (group 1), Gemm or MatMul
 * with constant weights, then BatchNormalization and activations, each read only by the next;
 * its input read by it alone, its output of the input's shape and read by no join. */
static od_status find_chain(shrink *c, int si, const bool *in_residual, block_list *out) {
    const od_graph *g = c->g;
    const use_map *u = &c->uses;
    const od_node *s = &g->nodes[si];
    if (!is_source_op(s) || in_residual[si] || s->n_inputs < 2 || s->n_outputs != 1)
        return OD_STATUS_OK;
    if ((op_is(s, "Conv") || op_is(s, "ConvTranspose")) && od_attr_int(s, "group", 1) != 1)
        return OD_STATUS_OK;
    if (op_is(s, "Gemm") && od_attr_int(s, "transA", 0)) return OD_STATUS_OK;
    int x = s->inputs[0];
    if (x < 0 || c->stat[x] || u->count[x] != 1) return OD_STATUS_OK;
    for (int k = 1; k < s->n_inputs; k++)
        if (s->inputs[k] >= 0 && !c->stat[s->inputs[k]]) return OD_STATUS_OK;
    int nodes[16], n = 0;
    nodes[n++] = si;
    int cur = s->outputs[0];
    while (cur >= 0 && n < 16 && !u->output[cur] && u->count[cur] == 1) {
        int cn = u->node[u->start[cur]];
        const od_node *nd = &g->nodes[cn];
        if (in_residual[cn] || nd->n_inputs < 1 || nd->inputs[0] != cur ||
            !(op_is(nd, "BatchNormalization") || op_in(nd, act_ops)))
            break;
        bool ok = true;
        for (int k = 1; k < nd->n_inputs; k++)
            if (nd->inputs[k] >= 0 && !c->stat[nd->inputs[k]]) ok = false;
        for (int o = 1; o < nd->n_outputs; o++)
            if (nd->outputs[o] >= 0 && u->count[nd->outputs[o]]) ok = false;
        if (!ok || nd->n_outputs < 1 || nd->outputs[0] < 0) break;
        nodes[n++] = cn;
        cur = nd->outputs[0];
    }
    int y = cur;
    if (y < 0 || u->output[y] || u->count[y] == 0) return OD_STATUS_OK;
    if (!same_shape(&c->shapes.info[x], &c->shapes.info[y])) return OD_STATUS_OK;
    for (int k = u->start[y]; k < u->start[y + 1]; k++)
        if (op_in(&g->nodes[u->node[k]], join_ops)) return OD_STATUS_OK;
    block bl = {.in_v = x, .out_v = y, .head = si, .first = si, .n_nodes = n};
    if (!(bl.nodes = malloc(sizeof(int) * (size_t)n))) return oom(c->err);
    memcpy(bl.nodes, nodes, sizeof(int) * (size_t)n);
    if (!blocks_push(out, &bl)) {
        free(bl.nodes);
        return oom(c->err);
    }
    return OD_STATUS_OK;
}

static int block_cmp(const void *pa, const void *pb) {
    const block *a = pa, *b = pb;
    return (a->first > b->first) - (a->first < b->first);
}

static bool block_matches(const od_graph *g, const block *b, const char *pattern) {
    for (int i = 0; i < b->n_nodes; i++)
        if (name_matches(pattern, g->nodes[b->nodes[i]].name)) return true;
    return false;
}

static const char *block_name(const od_graph *g, const block *b) {
    const char *nm = g->nodes[b->head].name;
    return nm && *nm ? nm : g->values[b->out_v].name;
}

static bool block_has_op(const od_graph *g, const block *b, const char *op) {
    for (int i = 0; i < b->n_nodes; i++)
        if (op_is(&g->nodes[b->nodes[i]], op)) return true;
    return false;
}

/* A transformer's encoder block is two residual blocks: attention (it has a Softmax), then the
 * MLP reading its output. Dropping only one of them would leave half a block: they become one. */
static od_status merge_encoder_blocks(shrink *c, block_list *bl) {
    const od_graph *g = c->g;
    int o = 0;
    for (int i = 0; i < bl->n; i++) {
        block *a = &bl->b[i], *b = i + 1 < bl->n ? &bl->b[i + 1] : NULL;
        if (b && a->residual && b->residual && b->in_v == a->out_v &&
            block_has_op(g, a, "Softmax") && !block_has_op(g, b, "Softmax")) {
            int *nodes = malloc(sizeof(int) * (size_t)(a->n_nodes + b->n_nodes));
            if (!nodes) return oom(c->err);
            memcpy(nodes, a->nodes, sizeof(int) * (size_t)a->n_nodes);
            memcpy(nodes + a->n_nodes, b->nodes, sizeof(int) * (size_t)b->n_nodes);
            block m = {.in_v = a->in_v, .out_v = b->out_v, .head = b->head,
                       .first = a->first < b->first ? a->first : b->first,
                       .n_nodes = a->n_nodes + b->n_nodes, .nodes = nodes, .residual = true,
                       .transformer = true};
            free(a->nodes);
            free(b->nodes);
            bl->b[o++] = m;
            i++;
        } else {
            bl->b[o++] = *a;
        }
    }
    bl->n = o;
    return OD_STATUS_OK;
}

static od_status apply_depth(shrink *c) {
    od_graph *g = c->g;
    od_status st = OD_STATUS_OK;
    block_list bl = {0};
    int nn = g->n_nodes;
    bool *mark = calloc((size_t)nn + 1, sizeof *mark);
    bool *in_res = calloc((size_t)nn + 1, sizeof *in_res);
    int *stack = malloc(sizeof(int) * (size_t)(2 * nn + 2));
    int *alias = NULL;
    bool *drop_node = NULL;
    if (!mark || !in_res || !stack) goto oom;
    for (int a = 0; a < nn; a++)
        if ((st = find_residual(c, a, mark, stack, &bl))) goto done;
    for (int i = 0; i < bl.n; i++)
        for (int k = 0; k < bl.b[i].n_nodes; k++)
            in_res[bl.b[i].nodes[k]] = true;
    for (int si = 0; si < nn; si++)
        if ((st = find_chain(c, si, in_res, &bl))) goto done;
    if (bl.n > 1) qsort(bl.b, (size_t)bl.n, sizeof *bl.b, block_cmp);
    if ((st = merge_encoder_blocks(c, &bl))) goto done;
    bool encoder = bl.n > 0;
    for (int i = 0; i < bl.n; i++)
        encoder &= bl.b[i].transformer;

    /* the spec's drops first, then evenly spread ones up to the depth asked */
    int forced = 0;
    for (int p = 0; p < c->spec.n_drop; p++) {
        const char *pat = c->spec.drop[p];
        bool any_block = false, any_node = false;
        for (int i = 0; i < bl.n; i++)
            if (block_matches(g, &bl.b[i], pat)) {
                if (!bl.b[i].drop) forced++;
                bl.b[i].drop = any_block = true;
            }
        for (int i = 0; i < nn && !any_node; i++)
            any_node = name_matches(pat, g->nodes[i].name);
        if (!any_block) {
            char names[1024] = "", close[768];
            size_t o = 0;
            for (int i = 0; i < bl.n && o < sizeof names - 64; i++)
                o += (size_t)snprintf(names + o, sizeof names - o, "%s\"%s\"", i ? ", " : "",
                                      block_name(g, &bl.b[i]));
            if (any_node) {
                st = od_error_set(c->err, OD_STATUS_INVALID_ARGUMENT,
                                  "drop: \"%s\" is not in a removable block (removable: %s)", pat,
                                  bl.n ? names : "none");
            } else {
                close_names(g, NULL, pat, close, sizeof close);
                st = od_error_set(c->err, OD_STATUS_INVALID_ARGUMENT,
                                  "drop: no node matches \"%s\"; close matches: %s", pat, close);
            }
            goto done;
        }
    }
    int keep = (int)lround(c->spec.depth * bl.n);
    int more = bl.n - keep - forced;
    if (more > 0 && encoder) {
        /* encoder blocks: the first and the last stay, the others kept evenly spaced */
        int m = bl.n - forced, kept = m - more, i = 0;
        bool *stay = calloc((size_t)m + 1, sizeof *stay);
        if (!stay) goto oom;
        for (int k = 0; k < kept; k++)
            stay[kept == 1 ? 0 : (int)lround((double)k * (m - 1) / (kept - 1))] = true;
        for (int b = 0; b < bl.n; b++) {
            if (bl.b[b].drop) continue;
            bl.b[b].drop = !stay[i++];
        }
        free(stay);
    } else if (more > 0) {
        int m = bl.n - forced, i = 0;
        for (int b = 0; b < bl.n; b++) {
            if (bl.b[b].drop) continue;
            if ((int64_t)(i + 1) * more / m > (int64_t)i * more / m) bl.b[b].drop = true;
            i++;
        }
    }
    if (c->report && bl.n > 0) {
        c->report->blocks = calloc((size_t)bl.n, sizeof *c->report->blocks);
        if (!c->report->blocks) goto oom;
        for (int i = 0; i < bl.n; i++) {
            od_shrink_block *rb = &c->report->blocks[c->report->n_blocks++];
            if (!(rb->name = strdup(block_name(g, &bl.b[i])))) goto oom;
            rb->residual = bl.b[i].residual;
            rb->transformer = bl.b[i].transformer;
            rb->n_nodes = bl.b[i].n_nodes;
            rb->dropped = bl.b[i].drop;
            c->report->n_dropped += rb->dropped;
        }
    }
    int n_drop = 0;
    for (int i = 0; i < bl.n; i++)
        n_drop += bl.b[i].drop;
    if (!n_drop) goto done;

    alias = malloc(sizeof(int) * (size_t)(g->n_values + 1));
    drop_node = calloc((size_t)nn + 1, sizeof *drop_node);
    if (!alias || !drop_node) goto oom;
    for (int v = 0; v < g->n_values; v++)
        alias[v] = -1;
    for (int i = 0; i < bl.n; i++) {
        if (!bl.b[i].drop) continue;
        alias[bl.b[i].out_v] = bl.b[i].in_v;
        for (int k = 0; k < bl.b[i].n_nodes; k++)
            drop_node[bl.b[i].nodes[k]] = true;
    }
    for (int i = 0; i < nn; i++) {
        od_node *n = &g->nodes[i];
        if (drop_node[i]) continue;
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            for (int hops = 0; v >= 0 && alias[v] >= 0 && hops <= g->n_values; hops++)
                v = alias[v];
            n->inputs[k] = v;
        }
    }
    remove_nodes(g, drop_node);
    if ((st = graph_gc(g, NULL, c->err))) goto done;
    st = shrink_refresh(c);
    goto done;
oom:
    st = oom(c->err);
done:
    blocks_clear(&bl);
    free(mark);
    free(in_res);
    free(stack);
    free(alias);
    free(drop_node);
    return st;
}

/* ---- width: channel dims, groups and what follows them ---------------------------------- */

/* A union-find element: one channel dim of some tensors, all of one size. */
typedef struct elem {
    int parent;
    int64_t size;
    bool pinned, has_source;
    bool at_output; /* pinned only because it is a graph output (the classifier) */
    int64_t blocks; /* > 1: the channels form this many equal blocks (the groups of a grouped
                     * conv), each keeping as many */
    int64_t chunk;  /* > 1: kept in whole runs of this many (attention heads, head dim kept) */
    int64_t want;   /* channels the spec asks for (0: none) */
    int64_t target; /* the student's channels (roots) */
    int64_t *kept;  /* the teacher channels kept, ascending (roots) */
    double *score;  /* L1 norms summed over the group's producers (roots, teacher init) */
    char reason[200];
} elem;

typedef enum dim_kind { DIM_BASE, DIM_CONCAT, DIM_BLOCK } dim_kind;

/* A value's channel dim: an element, the concatenation of dims (Concat along the channels), or
 * a dim whose every channel became a block of `block` consecutive ones (Flatten, Reshape). */
typedef struct dimnode {
    dim_kind kind;
    int elem;            /* BASE */
    int child;           /* BLOCK */
    int64_t block;       /* BLOCK */
    bool shuffled;       /* BLOCK: made by a channel shuffle (analyse_shuffle) */
    int n_parts, *parts; /* CONCAT */
} dimnode;

/* FIX_GROUPED_IN: the input channels of a grouped conv's weight [cout, cin / group, k...], each
 * group of rows keeping its own group's kept input channels. */
typedef enum fix_kind {
    FIX_SLICE,
    FIX_GROUP,
    FIX_RESHAPE_PREFIX,
    FIX_RESHAPE_FLATTEN,
    FIX_GROUPED_IN,
    FIX_PART_BOUND, /* an entry counting dim's channels (a multiple or a divisor of them, such as
                     * a Slice bound or a head count): scaled by the student's share */
    FIX_SLICE_PART  /* a Slice bound (axis: 0 start, 1 end) of part `part` of CONCAT dim */
} fix_kind;

/* An edit to make once the kept channels are known. */
typedef struct fix {
    fix_kind kind;
    int node, slot, axis, dim;
    int part; /* FIX_SLICE_PART */
} fix;

#define MAX_PARTS 16 /* equal parts a fused projection may be cut into (q, k, v) */

typedef struct width {
    shrink *c;
    od_graph *g;
    const od_graph_shapes *s;
    int n_elems, cap_elems;
    elem *elems;
    int n_dims, cap_dims;
    dimnode *dims;
    int n_fixes, cap_fixes;
    fix *fixes;
    int *vdim, *vaxis; /* per value: its channel dim and the axis it is on; vdim -1: untracked */
    bool *vheads;      /* per value: attention heads split off dim vdim into axis vaxis (merged
                        * with the batch or an axis of their own), each head's dims after it */
    int *src_dim;      /* per node: the output dim of a Conv, ConvTranspose, Gemm, MatMul; or -1 */
    int *src_waxis;    /* per node: the output-channel axis of its weight */
    bool failed;       /* out of memory somewhere */
} width;

static int new_elem(width *w, int64_t size) {
    if (w->n_elems == w->cap_elems) {
        int cap = w->cap_elems ? 2 * w->cap_elems : 64;
        elem *e = realloc(w->elems, sizeof *e * (size_t)cap);
        if (!e) {
            w->failed = true;
            return -1;
        }
        w->elems = e;
        w->cap_elems = cap;
    }
    elem *e = &w->elems[w->n_elems];
    memset(e, 0, sizeof *e);
    e->parent = w->n_elems;
    e->size = size;
    return w->n_elems++;
}

static int new_dim(width *w, dim_kind kind) {
    if (w->n_dims == w->cap_dims) {
        int cap = w->cap_dims ? 2 * w->cap_dims : 64;
        dimnode *d = realloc(w->dims, sizeof *d * (size_t)cap);
        if (!d) {
            w->failed = true;
            return -1;
        }
        w->dims = d;
        w->cap_dims = cap;
    }
    dimnode *d = &w->dims[w->n_dims];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->elem = d->child = -1;
    return w->n_dims++;
}

static int new_base(width *w, int64_t size) {
    int e = new_elem(w, size);
    int d = e >= 0 ? new_dim(w, DIM_BASE) : -1;
    if (d >= 0) w->dims[d].elem = e;
    return d;
}

static int root(width *w, int e) {
    while (w->elems[e].parent != e) {
        w->elems[e].parent = w->elems[w->elems[e].parent].parent;
        e = w->elems[e].parent;
    }
    return e;
}

static int64_t dim_full(width *w, int d) {
    const dimnode *n = &w->dims[d];
    if (n->kind == DIM_BASE) return w->elems[n->elem].size;
    if (n->kind == DIM_BLOCK) return dim_full(w, n->child) * n->block;
    int64_t t = 0;
    for (int i = 0; i < n->n_parts; i++)
        t += dim_full(w, n->parts[i]);
    return t;
}

static int64_t dim_new(width *w, int d) {
    const dimnode *n = &w->dims[d];
    if (n->kind == DIM_BASE) return w->elems[root(w, n->elem)].target;
    if (n->kind == DIM_BLOCK) return dim_new(w, n->child) * n->block;
    int64_t t = 0;
    for (int i = 0; i < n->n_parts; i++)
        t += dim_new(w, n->parts[i]);
    return t;
}

/* The teacher indices the student keeps along dim d, ascending; returns the count. */
static int64_t dim_kept(width *w, int d, int64_t *out) {
    const dimnode *n = &w->dims[d];
    if (n->kind == DIM_BASE) {
        const elem *r = &w->elems[root(w, n->elem)];
        memcpy(out, r->kept, sizeof(int64_t) * (size_t)r->target);
        return r->target;
    }
    if (n->kind == DIM_BLOCK) {
        int64_t k = dim_kept(w, n->child, out), b = n->block;
        for (int64_t i = k - 1; i >= 0; i--) /* backwards: expands in place */
            for (int64_t j = b - 1; j >= 0; j--)
                out[i * b + j] = out[i] * b + j;
        return k * b;
    }
    int64_t t = 0, off = 0;
    for (int i = 0; i < n->n_parts; i++) {
        int64_t k = dim_kept(w, n->parts[i], out + t);
        for (int64_t j = 0; j < k; j++)
            out[t + j] += off;
        t += k;
        off += dim_full(w, n->parts[i]);
    }
    return t;
}

static void pin_dim(width *w, int d, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pin_dim(width *w, int d, const char *fmt, ...) {
    if (d < 0) return;
    const dimnode *n = &w->dims[d];
    if (n->kind == DIM_BASE) {
        elem *r = &w->elems[root(w, n->elem)];
        if (!r->pinned) {
            r->pinned = true;
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(r->reason, sizeof r->reason, fmt, ap);
            va_end(ap);
        }
        return;
    }
    char buf[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n->kind == DIM_BLOCK) {
        pin_dim(w, n->child, "%s", buf);
        return;
    }
    for (int i = 0; i < n->n_parts; i++)
        pin_dim(w, w->dims[d].parts[i], "%s", buf);
}

static const char *label(const od_node *n, char *buf, size_t size) {
    return od_node_label(n, buf, size);
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Elem r's channels must split into blocks equal blocks keeping equally many (lcm with what it
 * already had); pins it when its size does not divide. */
static void elem_need_blocks(width *w, int r, int64_t blocks, const char *why) {
    elem *e = &w->elems[r];
    int64_t have = e->blocks > 1 ? e->blocks : 1;
    int64_t want = blocks > 1 ? have / gcd64(have, blocks) * blocks : have;
    if (want > 1 && (e->size % want != 0 || e->chunk > 1)) {
        if (!e->pinned) {
            e->pinned = true;
            snprintf(e->reason, sizeof e->reason, "%.120s: %lld channels do not split into %lld groups",
                     why, (long long)e->size, (long long)want);
        }
        return;
    }
    e->blocks = want;
}

/* Elem r's channels are kept in whole runs of chunk (attention heads of chunk dims); pins it
 * when that clashes with its size, its groups or another head size. */
static void elem_need_chunk(width *w, int r, int64_t chunk, const char *why) {
    elem *e = &w->elems[r];
    const char *clash = e->size % chunk ? "do not split into heads of"
                        : e->blocks > 1 ? "are grouped; heads of"
                        : e->chunk > 1 && e->chunk != chunk ? "meet heads of another size,"
                                                           : NULL;
    if (!clash) {
        e->chunk = chunk;
        return;
    }
    if (!e->pinned) {
        e->pinned = true;
        snprintf(e->reason, sizeof e->reason, "%.120s: %lld channels %s %lld", why,
                 (long long)e->size, clash, (long long)chunk);
    }
}

/* Dims that must be equal: one group. Returns the dim to use for the result. */
static int unite(width *w, int a, int b, const od_node *n) {
    if (a < 0) return b;
    if (b < 0 || a == b) return a;
    char lb[256];
    int64_t fa = dim_full(w, a), fb = dim_full(w, b);
    if (fa != fb) {
        pin_dim(w, a, "%lld and %lld channels meet at %s", (long long)fa, (long long)fb,
                label(n, lb, sizeof lb));
        pin_dim(w, b, "%lld and %lld channels meet at %s", (long long)fa, (long long)fb,
                label(n, lb, sizeof lb));
        return a;
    }
    if (w->dims[a].kind != DIM_BASE || w->dims[b].kind != DIM_BASE) {
        pin_dim(w, a, "concatenated or flattened channels meet others at %s",
                label(n, lb, sizeof lb));
        pin_dim(w, b, "concatenated or flattened channels meet others at %s",
                label(n, lb, sizeof lb));
        return a;
    }
    int ra = root(w, w->dims[a].elem), rb = root(w, w->dims[b].elem);
    if (ra == rb) return a;
    elem *ea = &w->elems[ra], *eb = &w->elems[rb];
    eb->parent = ra;
    if (!ea->pinned && eb->pinned) {
        ea->pinned = true;
        memcpy(ea->reason, eb->reason, sizeof ea->reason);
    }
    ea->has_source |= eb->has_source;
    if (eb->blocks > 1) elem_need_blocks(w, ra, eb->blocks, "groups meet");
    if (eb->chunk > 1) elem_need_chunk(w, ra, eb->chunk, label(n, lb, sizeof lb));
    return a;
}

static void add_fix(width *w, fix_kind kind, int node, int slot, int axis, int dim) {
    if (w->n_fixes == w->cap_fixes) {
        int cap = w->cap_fixes ? 2 * w->cap_fixes : 64;
        fix *f = realloc(w->fixes, sizeof *f * (size_t)cap);
        if (!f) {
            w->failed = true;
            return;
        }
        w->fixes = f;
        w->cap_fixes = cap;
    }
    w->fixes[w->n_fixes++] = (fix){kind, node, slot, axis, dim, 0};
}

static const od_shape_info *vinfo(width *w, int v) {
    return &w->s->info[v];
}

static void track(width *w, int v, int d, int axis) {
    if (v < 0) return;
    w->vdim[v] = d;
    w->vaxis[v] = axis;
}

/* An op this builder does not follow: its inputs keep their channels. */
static void opaque(width *w, int ni, const char *why) {
    const od_node *n = &w->g->nodes[ni];
    char lb[256];
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v >= 0 && w->vdim[v] >= 0)
            pin_dim(w, w->vdim[v], "read by %s%s%s", label(n, lb, sizeof lb), why ? ": " : "",
                    why ? why : "");
    }
}

/* Input slot of node ni broadcast against dim d on axis p of an output of rank ro: an
 * initializer with all d's channels there is sliced; a non-constant one pins d. */
static void bind_operand(width *w, int ni, int slot, int d, int p, int ro) {
    const od_node *n = &w->g->nodes[ni];
    int v = slot < n->n_inputs ? n->inputs[slot] : -1;
    if (v < 0) return;
    char lb[256];
    const od_shape_info *si = vinfo(w, v);
    if (si->rank < 0) {
        pin_dim(w, d, "an input of %s has an unknown shape", label(n, lb, sizeof lb));
        return;
    }
    int pos = p - (ro - si->rank);
    if (pos < 0 || si->dims[pos] == 1) return;
    if (si->dims[pos] != dim_full(w, d)) {
        pin_dim(w, d, "%s broadcasts %lld against %lld channels", label(n, lb, sizeof lb),
                (long long)si->dims[pos], (long long)dim_full(w, d));
    } else if (w->g->values[v].init) {
        add_fix(w, FIX_SLICE, ni, slot, pos, d);
    } else {
        pin_dim(w, d, "%s joins it with \"%s\", whose channels are fixed", label(n, lb, sizeof lb),
                w->g->values[v].name);
    }
}

/* A per-channel parameter ([C]) of BatchNormalization and the like. */
static void bind_param(width *w, int ni, int slot, int d) {
    const od_node *n = &w->g->nodes[ni];
    int v = slot < n->n_inputs ? n->inputs[slot] : -1;
    if (v < 0) return;
    const od_tensor *t = w->g->values[v].init;
    char lb[256];
    if (!t || t->rank != 1 || t->dims[0] != dim_full(w, d))
        pin_dim(w, d, "parameter \"%s\" of %s is not a constant of its channels",
                w->g->values[v].name, label(n, lb, sizeof lb));
    else
        add_fix(w, FIX_SLICE, ni, slot, 0, d);
}

static int tracked_input(width *w, const od_node *n, int k) {
    return k < n->n_inputs && n->inputs[k] >= 0 ? w->vdim[n->inputs[k]] : -1;
}

static void analyse_conv(width *w, int ni, bool transpose) {
    const od_node *n = &w->g->nodes[ni];
    const od_tensor *W = slot_init(w->g, ni, 1);
    char lb[256];
    if (!W || W->rank < 3) {
        opaque(w, ni, "weights that are not an initializer");
        return;
    }
    int x = n->inputs[0];
    int din = tracked_input(w, n, 0);
    if (din >= 0 && w->vaxis[x] != 1) {
        pin_dim(w, din, "read by %s on another axis", label(n, lb, sizeof lb));
        din = -1;
    }
    int64_t group = od_attr_int(n, "group", 1);
    int in_axis = transpose ? 0 : 1, out_axis = transpose ? 1 : 0;
    int64_t cin = transpose ? W->dims[0] : W->dims[1] * group;
    int64_t cout = transpose ? W->dims[1] * group : W->dims[0];
    int dout;
    bool has_bias = n->n_inputs > 2 && n->inputs[2] >= 0;
    if (group == 1) {
        if (din >= 0) add_fix(w, FIX_SLICE, ni, 1, in_axis, din);
        dout = new_base(w, cout);
        if (dout < 0) return;
        add_fix(w, FIX_SLICE, ni, 1, out_axis, dout);
        w->src_waxis[ni] = out_axis;
    } else if (group == cin && group == cout && W->dims[1] == 1) {
        /* depthwise: one channel dim through; the group attribute follows it */
        if (din >= 0) {
            dout = din; /* concatenated or shuffled channels go through as they are */
        } else {
            dout = new_base(w, cout);
            if (dout < 0) return;
            pin_dim(w, dout, "depthwise %s reads fixed channels", label(n, lb, sizeof lb));
        }
        add_fix(w, FIX_SLICE, ni, 1, 0, dout);
        add_fix(w, FIX_GROUP, ni, 0, 0, dout);
        w->src_waxis[ni] = 0;
        if (w->dims[dout].kind != DIM_BASE) { /* not a source: its channels are its input's */
            if (has_bias) bind_param(w, ni, 2, dout);
            track(w, n->outputs[0], dout, 1);
            return;
        }
    } else if (!transpose && group > 1 && cin % group == 0 && cout % group == 0) {
        /* grouped: the group count stays, each group narrower by the same count */
        label(n, lb, sizeof lb);
        if (din >= 0 && w->dims[din].kind == DIM_BASE) {
            elem_need_blocks(w, root(w, w->dims[din].elem), group, lb);
            add_fix(w, FIX_GROUPED_IN, ni, 1, 1, din);
        } else if (din >= 0) {
            pin_dim(w, din, "concatenated or flattened channels read by grouped %s", lb);
        }
        dout = new_base(w, cout);
        if (dout < 0) return;
        elem_need_blocks(w, root(w, w->dims[dout].elem), group, lb);
        add_fix(w, FIX_SLICE, ni, 1, 0, dout);
        w->src_waxis[ni] = 0;
    } else {
        if (din >= 0) pin_dim(w, din, "grouped %s", label(n, lb, sizeof lb));
        dout = new_base(w, cout);
        if (dout < 0) return;
        pin_dim(w, dout, "grouped %s (group %lld)", label(n, lb, sizeof lb), (long long)group);
        w->src_waxis[ni] = out_axis;
    }
    if (has_bias) bind_param(w, ni, 2, dout);
    w->src_dim[ni] = dout;
    track(w, n->outputs[0], dout, 1);
}

static void analyse_gemm(width *w, int ni) {
    const od_node *n = &w->g->nodes[ni];
    const od_tensor *B = slot_init(w->g, ni, 1);
    char lb[256];
    if (!B || B->rank != 2) {
        opaque(w, ni, "weights that are not an initializer");
        return;
    }
    bool ta = od_attr_int(n, "transA", 0) != 0, tb = od_attr_int(n, "transB", 0) != 0;
    int x = n->inputs[0];
    int din = tracked_input(w, n, 0);
    if (din >= 0) {
        if (ta || w->vaxis[x] != 1 || vinfo(w, x)->rank != 2)
            pin_dim(w, din, "read by %s on another axis", label(n, lb, sizeof lb));
        else
            add_fix(w, FIX_SLICE, ni, 1, tb ? 1 : 0, din);
    }
    int dout = new_base(w, tb ? B->dims[0] : B->dims[1]);
    if (dout < 0) return;
    add_fix(w, FIX_SLICE, ni, 1, tb ? 0 : 1, dout);
    w->src_waxis[ni] = tb ? 0 : 1;
    if (n->n_inputs > 2) bind_operand(w, ni, 2, dout, 1, 2);
    w->src_dim[ni] = dout;
    track(w, n->outputs[0], dout, 1);
}

static void analyse_matmul(width *w, int ni) {
    const od_node *n = &w->g->nodes[ni];
    const od_tensor *B = slot_init(w->g, ni, 1);
    int x = n->inputs[0], y = n->outputs[0];
    char lb[256];
    if (!B || B->rank != 2 || x < 0 || y < 0 || vinfo(w, x)->rank < 2 || vinfo(w, y)->rank < 2) {
        opaque(w, ni, "not an activation times a weight matrix");
        return;
    }
    int din = tracked_input(w, n, 0);
    if (din >= 0) {
        if (w->vaxis[x] != vinfo(w, x)->rank - 1)
            pin_dim(w, din, "read by %s on another axis", label(n, lb, sizeof lb));
        else
            add_fix(w, FIX_SLICE, ni, 1, 0, din);
    }
    int dout = new_base(w, B->dims[1]);
    if (dout < 0) return;
    add_fix(w, FIX_SLICE, ni, 1, 1, dout);
    w->src_waxis[ni] = 1;
    w->src_dim[ni] = dout;
    track(w, y, dout, vinfo(w, y)->rank - 1);
}

/* Elementwise with broadcasting: the tracked inputs' channel dims are one group. */
static void analyse_broadcast(width *w, int ni) {
    const od_node *n = &w->g->nodes[ni];
    int y = n->n_outputs ? n->outputs[0] : -1;
    if (y < 0 || vinfo(w, y)->rank < 0) {
        opaque(w, ni, "unknown output shape");
        return;
    }
    int ro = vinfo(w, y)->rank, p = -1, d = -1;
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v < 0 || w->vdim[v] < 0) continue;
        if (vinfo(w, v)->rank < 0) {
            opaque(w, ni, "unknown input shape");
            return;
        }
        if (dim_full(w, w->vdim[v]) == 1) continue; /* broadcast along the channels */
        int pk = w->vaxis[v] + ro - vinfo(w, v)->rank;
        if (p >= 0 && pk != p) {
            opaque(w, ni, "channels on different axes");
            return;
        }
        p = pk;
        d = unite(w, d, w->vdim[v], n);
    }
    if (p < 0) return;
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v >= 0 && w->vdim[v] < 0) bind_operand(w, ni, k, d, p, ro);
    }
    for (int o = 0; o < n->n_outputs; o++)
        if (n->outputs[o] >= 0 && vinfo(w, n->outputs[o])->rank == ro)
            track(w, n->outputs[o], d, p);
}

static void analyse_concat(width *w, int ni) {
    const od_node *n = &w->g->nodes[ni];
    int y = n->outputs[0];
    int ro = y >= 0 ? vinfo(w, y)->rank : -1;
    char lb[256];
    if (ro < 0) {
        opaque(w, ni, "unknown output shape");
        return;
    }
    int axis = (int)od_attr_int(n, "axis", 0);
    if (axis < 0) axis += ro;
    int p = -1;
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v < 0 || w->vdim[v] < 0) continue;
        if (p >= 0 && w->vaxis[v] != p) {
            opaque(w, ni, "channels on different axes");
            return;
        }
        p = w->vaxis[v];
    }
    if (p < 0) return;
    if (axis == p) {
        int d = new_dim(w, DIM_CONCAT);
        int *parts = d >= 0 ? malloc(sizeof(int) * (size_t)(n->n_inputs + 1)) : NULL;
        if (!parts) {
            w->failed = true;
            return;
        }
        int np = 0;
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0) continue;
            int pd = w->vdim[v];
            if (pd < 0) {
                pd = new_base(w, vinfo(w, v)->rank > p ? vinfo(w, v)->dims[p] : 1);
                if (pd < 0) {
                    free(parts);
                    return;
                }
                pin_dim(w, pd, "concatenated by %s, an input of fixed channels",
                        label(n, lb, sizeof lb));
            }
            parts[np++] = pd;
        }
        w->dims[d].parts = parts;
        w->dims[d].n_parts = np;
        track(w, y, d, p);
        return;
    }
    int d = -1;
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v >= 0 && w->vdim[v] >= 0) d = unite(w, d, w->vdim[v], n);
    }
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v < 0 || w->vdim[v] >= 0 || d < 0) continue;
        /* a constant, or a constant expanded over the batch (ViT's class token), of all the
         * channels: sliced */
        int e = w->g->values[v].producer;
        bool expand = e >= 0 && op_is(&w->g->nodes[e], "Expand") && default_domain(&w->g->nodes[e]);
        int cv = expand ? w->g->nodes[e].inputs[0] : v;
        const od_shape_info *sc = cv >= 0 ? vinfo(w, cv) : NULL;
        if (cv >= 0 && w->g->values[cv].init && sc->rank == ro && sc->dims[p] == dim_full(w, d) &&
            vinfo(w, v)->rank == ro && vinfo(w, v)->dims[p] == dim_full(w, d))
            add_fix(w, FIX_SLICE, expand ? e : ni, expand ? 0 : k, p, d);
        else
            pin_dim(w, d, "%s joins it with \"%s\", whose channels are fixed",
                    label(n, lb, sizeof lb), w->g->values[v].name);
    }
    track(w, y, d, p);
}

static bool axis_listed(const int64_t *axes, int n, int axis, int rank) {
    for (int i = 0; i < n; i++)
        if ((axes[i] < 0 ? axes[i] + rank : axes[i]) == axis) return true;
    return false;
}

static int count_below(const int64_t *axes, int n, int axis, int rank) {
    int k = 0;
    for (int i = 0; i < n; i++)
        if ((axes[i] < 0 ? axes[i] + rank : axes[i]) < axis) k++;
    return k;
}

/* Entry pos of the shape input of Reshape ri counts dim's channels (all of them, or the heads
 * they split into): a constant there is rescaled to the student's (FIX_PART_BOUND), either the
 * whole shape or the piece of a Concat that holds it; with through_mul also a piece computed as
 * Unsqueeze(n * k) for a constant k (the batch times the heads, as torch exports
 * nn.MultiheadAttention). False when no constant holds it. */
static bool shape_entry_fix(width *w, int ri, int pos, int dim, bool through_mul) {
    const od_graph *g = w->g;
    int v = g->nodes[ri].inputs[1];
    if (g->values[v].init) {
        add_fix(w, FIX_PART_BOUND, ri, 1, pos, dim);
        return true;
    }
    int ci = g->values[v].producer;
    if (ci < 0 || !op_is(&g->nodes[ci], "Concat")) return false;
    const od_node *cn = &g->nodes[ci];
    for (int k = 0, off = 0; k < cn->n_inputs; k++) {
        int iv = cn->inputs[k];
        int len = iv >= 0 && vinfo(w, iv)->rank == 1 ? (int)vinfo(w, iv)->dims[0] : -1;
        if (len < 0) return false;
        if (pos >= off + len) {
            off += len;
            continue;
        }
        if (g->values[iv].init) {
            add_fix(w, FIX_PART_BOUND, ci, k, pos - off, dim);
            return true;
        }
        int ui = g->values[iv].producer;
        if (!through_mul || len != 1 || ui < 0 || !op_is(&g->nodes[ui], "Unsqueeze")) return false;
        int mv = g->nodes[ui].inputs[0];
        int mi = mv >= 0 ? g->values[mv].producer : -1;
        if (mi < 0 || !op_is(&g->nodes[mi], "Mul") || g->nodes[mi].n_inputs != 2) return false;
        for (int slot = 0; slot < 2; slot++) {
            const od_tensor *t = slot_init(g, mi, slot);
            if (t && od_tensor_count(t) == 1 && !g->values[g->nodes[mi].inputs[1 - slot]].init) {
                add_fix(w, FIX_PART_BOUND, mi, slot, 0, dim);
                return true;
            }
        }
        return false;
    }
    return false;
}

/* Whether entry pos of Reshape ri's shape is a piece of its input's own shape at the same
 * position (Concat(Slice(Shape(x), 0, k), ...), k > pos): it follows the student's channels. */
static bool shape_entry_own(width *w, int ri, int pos) {
    const od_graph *g = w->g;
    int x = g->nodes[ri].inputs[0], v = g->nodes[ri].inputs[1];
    int ci = g->values[v].producer;
    if (ci < 0 || !op_is(&g->nodes[ci], "Concat") || g->nodes[ci].n_inputs < 1) return false;
    int iv = g->nodes[ci].inputs[0];
    int si = iv >= 0 ? g->values[iv].producer : -1;
    if (si < 0 || !op_is(&g->nodes[si], "Slice") || g->nodes[si].n_inputs < 3) return false;
    int sv = g->nodes[si].inputs[0];
    int shp = sv >= 0 ? g->values[sv].producer : -1;
    if (shp < 0 || !op_is(&g->nodes[shp], "Shape") || g->nodes[shp].inputs[0] != x ||
        od_attr_int(&g->nodes[shp], "start", 0) != 0)
        return false;
    int64_t a = -1, b = -1;
    if (const_ints(w->s, g->nodes[si].inputs[1], &a, 1) != 1 ||
        const_ints(w->s, g->nodes[si].inputs[2], &b, 1) != 1)
        return false;
    return a == 0 && b > pos && vinfo(w, iv)->rank == 1 && vinfo(w, iv)->dims[0] > pos;
}

/* Whether entry pos of Reshape ri's shape is a constant of the graph (not computed from a shape
 * the student changes). */
static bool shape_entry_const(width *w, int ri, int pos) {
    const od_graph *g = w->g;
    int v = g->nodes[ri].inputs[1];
    if (g->values[v].init) return true;
    int ci = g->values[v].producer;
    if (ci < 0 || !op_is(&g->nodes[ci], "Concat")) return false;
    const od_node *cn = &g->nodes[ci];
    for (int k = 0, off = 0; k < cn->n_inputs; k++) {
        int iv = cn->inputs[k];
        int len = iv >= 0 && vinfo(w, iv)->rank == 1 ? (int)vinfo(w, iv)->dims[0] : -1;
        if (len < 0) return false;
        if (pos < off + len) return g->values[iv].init != NULL;
        off += len;
    }
    return false;
}

/* Attention heads split off the channels (the last axis, dim d): [.., C] -> [.., h, C / h] (a
 * head axis of their own) or [.., B, C] -> [.., B * h, C / h] (merged with the batch, as torch
 * 1.13 exports nn.MultiheadAttention). The student keeps whole heads, so the head dim stays and
 * the head count in the shape follows; the output is tracked as heads (analyse_heads). */
static bool analyse_head_split(width *w, int ni, int d, int c, const int64_t *sh) {
    const od_node *n = &w->g->nodes[ni];
    const od_shape_info *si = vinfo(w, n->inputs[0]), *so = vinfo(w, n->outputs[0]);
    int r = si->rank, ro = so->rank, hax;
    if (c != r - 1 || ro < 2 || w->dims[d].kind != DIM_BASE) return false;
    int64_t full = dim_full(w, d), hd = so->dims[ro - 1];
    if (hd <= 1 || hd >= full || full % hd) return false;
    int64_t h = full / hd;
    if (ro == r + 1) {
        hax = c;
        for (int i = 0; i < c; i++)
            if (so->dims[i] != si->dims[i]) return false;
        if (so->dims[c] != h) return false;
    } else if (ro == r && c >= 1) {
        hax = c - 1;
        for (int i = 0; i < c - 1; i++)
            if (so->dims[i] != si->dims[i]) return false;
        if (so->dims[c - 1] != si->dims[c - 1] * h) return false;
    } else {
        return false;
    }
    if (!(sh[ro - 1] == -1 || (sh[ro - 1] == hd && shape_entry_const(w, ni, ro - 1)))) return false;
    if (sh[hax] == 0 || (sh[hax] != -1 && !shape_entry_fix(w, ni, hax, d, true))) return false;
    char lb[256];
    elem_need_chunk(w, root(w, w->dims[d].elem), hd, label(n, lb, sizeof lb));
    track(w, n->outputs[0], d, hax);
    w->vheads[n->outputs[0]] = true;
    return true;
}

/* Reshape [.., C] -> [.., C] with the last axis (the channels) unchanged: only the axes before
 * regroup (torch's [T * B, E] -> [T, B, E] around an attention's output projection). */
static bool analyse_suffix_reshape(width *w, int ni, int d, int c, const int64_t *sh) {
    const od_node *n = &w->g->nodes[ni];
    const od_shape_info *si = vinfo(w, n->inputs[0]), *so = vinfo(w, n->outputs[0]);
    int ro = so->rank;
    if (c != si->rank - 1 || ro < 1 || so->dims[ro - 1] != si->dims[c]) return false;
    bool ok = sh[ro - 1] == -1 || (sh[ro - 1] == 0 && ro - 1 == c) ||
              (sh[ro - 1] > 0 && shape_entry_fix(w, ni, ro - 1, d, false));
    if (!ok) return false;
    track(w, n->outputs[0], d, ro - 1);
    return true;
}

static void analyse_reshape(width *w, int ni, int d, int c) {
    const od_node *n = &w->g->nodes[ni];
    int x = n->inputs[0], y = n->outputs[0];
    const od_shape_info *si = vinfo(w, x), *so = y >= 0 ? vinfo(w, y) : NULL;
    if (!so || si->rank < 0 || so->rank < 0 || n->n_inputs < 2) {
        opaque(w, ni, "unknown shapes");
        return;
    }
    bool allowzero = od_attr_int(n, "allowzero", 0) != 0;
    int64_t sh[OD_MAX_RANK];
    int ns = const_ints(w->s, n->inputs[1], sh, OD_MAX_RANK);
    bool init = w->g->values[n->inputs[1]].init != NULL;
    if (ns != so->rank) {
        opaque(w, ni, "a shape not known when building");
        return;
    }
    if (analyse_head_split(w, ni, d, c, sh)) return;
    bool prefix = so->rank > c;
    for (int i = 0; prefix && i <= c; i++)
        prefix = so->dims[i] == si->dims[i];
    if (prefix) {
        if (!((sh[c] == 0 && !allowzero) || sh[c] == -1)) {
            if (allowzero ||
                (!init && !shape_entry_own(w, ni, c) && !shape_entry_fix(w, ni, c, d, false))) {
                opaque(w, ni, "its shape spells out the channels");
                return;
            }
            if (init) add_fix(w, FIX_RESHAPE_PREFIX, ni, 1, c, d);
        }
        track(w, y, d, c);
        return;
    }
    bool flat = so->rank == c + 1 && so->dims[c] == prod_dims(si->dims, c, si->rank);
    for (int i = 0; flat && i < c; i++)
        flat = so->dims[i] == si->dims[i];
    if (!flat) {
        if (!analyse_suffix_reshape(w, ni, d, c, sh))
            opaque(w, ni, "it reshapes across the channels");
        return;
    }
    if (sh[c] != -1) {
        bool minus_before = false;
        for (int i = 0; i < c; i++)
            minus_before |= sh[i] == -1;
        if (!init || (allowzero && minus_before)) {
            opaque(w, ni, "its shape spells out the channels");
            return;
        }
        add_fix(w, FIX_RESHAPE_FLATTEN, ni, 1, c, d);
    }
    int64_t block = prod_dims(si->dims, c + 1, si->rank);
    int dout = d;
    if (block != 1) {
        dout = new_dim(w, DIM_BLOCK);
        if (dout < 0) return;
        w->dims[dout].child = d;
        w->dims[dout].block = block;
    }
    track(w, y, dout, c);
}

/* ---- the channel shuffle: Reshape [N, C, ...] -> [N, g, C / g, ...], Transpose of those two
 * axes, Reshape back to [N, C, ...] (ShuffleNet, as torch exports it) ---------------------- */

/* The one node reading v, when it is op; or -1. */
static int sole_reader(width *w, int v, const char *op) {
    const use_map *u = &w->c->uses;
    if (v < 0 || u->output[v] || u->start[v + 1] - u->start[v] != 1) return -1;
    int ni = u->node[u->start[v]];
    return op_is(&w->g->nodes[ni], op) && w->g->nodes[ni].inputs[0] == v ? ni : -1;
}

/* If Reshape ni starts a channel shuffle of x (channels on axis c, dim d the concatenation of
 * g equal parts), returns the closing Reshape's output; else -1. */
static int shuffle_end(width *w, int ni, int d, int c) {
    const od_node *n = &w->g->nodes[ni];
    int x = n->inputs[0], y = n->outputs[0];
    const od_shape_info *si = vinfo(w, x), *so = vinfo(w, y);
    const dimnode *dn = &w->dims[d];
    if (dn->kind != DIM_CONCAT || dn->n_parts < 2 || so->rank != si->rank + 1) return -1;
    int64_t g = dn->n_parts, part = dim_full(w, dn->parts[0]);
    for (int i = 0; i < dn->n_parts; i++)
        if (w->dims[dn->parts[i]].kind != DIM_BASE || dim_full(w, dn->parts[i]) != part) return -1;
    if (so->dims[c] != g || so->dims[c + 1] != part) return -1;
    for (int i = 0; i < si->rank; i++)
        if (i != c && so->dims[i < c ? i : i + 1] != si->dims[i]) return -1;
    int ti = sole_reader(w, y, "Transpose");
    if (ti < 0) return -1;
    int64_t perm[OD_MAX_RANK];
    if (attr_ints(&w->g->nodes[ti], "perm", perm, OD_MAX_RANK) != so->rank) return -1;
    for (int i = 0; i < so->rank; i++)
        if (perm[i] != (i == c ? c + 1 : i == c + 1 ? c : i)) return -1;
    int ri = sole_reader(w, w->g->nodes[ti].outputs[0], "Reshape");
    if (ri < 0) return -1;
    int z = w->g->nodes[ri].outputs[0];
    return z >= 0 && same_shape(vinfo(w, z), si) ? z : -1;
}

/* Entry pos of the shape input of Reshape ri, a multiple of dim's channels (or -1, 0): rescaled
 * where it is a constant, either the whole shape or the piece of a Concat that holds it. */
static void fix_shape_entry(width *w, int ri, int pos, int dim) {
    int v = w->g->nodes[ri].inputs[1];
    if (w->g->values[v].init) {
        add_fix(w, FIX_PART_BOUND, ri, 1, pos, dim);
        return;
    }
    for (int i = 0; i < w->g->n_nodes; i++) {
        const od_node *cn = &w->g->nodes[i];
        if (cn->n_outputs < 1 || cn->outputs[0] != v) continue;
        if (!op_is(cn, "Concat")) return; /* computed: follows the student's shape */
        for (int k = 0, off = 0; k < cn->n_inputs; k++) {
            int iv = cn->inputs[k];
            int len = iv >= 0 && vinfo(w, iv)->rank == 1 ? (int)vinfo(w, iv)->dims[0] : -1;
            if (len < 0) return;
            if (pos < off + len) {
                if (w->g->values[iv].init) add_fix(w, FIX_PART_BOUND, i, k, pos - off, dim);
                return;
            }
            off += len;
        }
        return;
    }
}

/* The shuffled channel j * g + p is channel j of part p: with the parts one group (the same
 * channels kept in each), the result is each kept channel expanded into a block of g. */
static bool analyse_shuffle(width *w, int ni, int d, int c) {
    int z = shuffle_end(w, ni, d, c);
    if (z < 0) return false;
    const dimnode *dn = &w->dims[d];
    int part = dn->parts[0], g = dn->n_parts;
    for (int i = 1; i < g; i++)
        part = unite(w, part, w->dims[d].parts[i], &w->g->nodes[ni]);
    int dout = new_dim(w, DIM_BLOCK);
    if (dout < 0) return true;
    w->dims[dout].child = part;
    w->dims[dout].block = g;
    w->dims[dout].shuffled = true;
    track(w, z, dout, c);
    fix_shape_entry(w, ni, c + 1, part);
    for (int i = 0; i < w->g->n_nodes; i++)
        if (w->g->nodes[i].n_outputs > 0 && w->g->nodes[i].outputs[0] == z)
            fix_shape_entry(w, i, c, part);
    return true;
}

/* Slice ni takes one of the g equal parts of shuffled channels (dim d, a block of g, on axis c),
 * its constant bounds rescaled to the student's parts (FIX_PART_BOUND): the student's part has
 * the child's channels. The teacher channels it carries are a mix of the parts' ones, so the
 * weights read for them (the child's kept ones) are a start, not exact. */
static bool analyse_shuffled_slice(width *w, int ni, int d, int c, int r) {
    const od_node *n = &w->g->nodes[ni];
    const dimnode *dn = &w->dims[d];
    if (dn->kind != DIM_BLOCK || !dn->shuffled || w->dims[dn->child].kind != DIM_BASE ||
        n->n_inputs < 4)
        return false;
    int64_t st[OD_MAX_RANK], en[OD_MAX_RANK], ax[OD_MAX_RANK], sp[OD_MAX_RANK];
    int ns = const_ints(w->s, n->inputs[1], st, OD_MAX_RANK);
    int ne = const_ints(w->s, n->inputs[2], en, OD_MAX_RANK);
    int na = const_ints(w->s, n->inputs[3], ax, OD_MAX_RANK);
    int nsp =
        n->n_inputs > 4 && n->inputs[4] >= 0 ? const_ints(w->s, n->inputs[4], sp, OD_MAX_RANK) : 0;
    if (na != 1 || ns != 1 || ne != 1 || (nsp && (nsp != 1 || sp[0] != 1))) return false;
    if ((ax[0] < 0 ? ax[0] + r : ax[0]) != c) return false;
    int64_t part = dim_full(w, dn->child), full = part * dn->block;
    int64_t a = st[0] < 0 ? st[0] + full : st[0], b = en[0] < 0 ? en[0] + full : en[0];
    if (b > full) b = full;
    if (b - a != part || a % part != 0) return false;
    for (int slot = 1; slot <= 2; slot++)
        if (w->g->values[n->inputs[slot]].init) add_fix(w, FIX_PART_BOUND, ni, slot, 0, dn->child);
    track(w, n->outputs[0], dn->child, c);
    return true;
}

/* Shape(x) whose channel count only sizes a shuffle or a shuffled slice of x. */
static bool shape_feeds_shuffle(width *w, int x) {
    const use_map *u = &w->c->uses;
    if (u->output[x]) return false;
    bool any = false;
    for (int k = u->start[x]; k < u->start[x + 1]; k++) {
        const od_node *cn = &w->g->nodes[u->node[k]];
        if (op_is(cn, "Shape")) continue;
        int d = w->vdim[x];
        if (cn->inputs[0] != x || d < 0) return false;
        if (op_is(cn, "Reshape") ? shuffle_end(w, u->node[k], d, w->vaxis[x]) < 0
                                 : !op_is(cn, "Slice") || !w->dims[d].shuffled)
            return false;
        any = true;
    }
    return any;
}

/* Whether v (a piece of x's own shape) only feeds Concats that reshape x itself: the student's
 * channels then go where the teacher's went (torch's flatten(2): shape[:2] + [-1]). */
static bool reshapes_itself(width *w, int v, int x) {
    const use_map *u = &w->c->uses;
    if (v < 0 || u->output[v] || u->start[v + 1] == u->start[v]) return false;
    for (int k = u->start[v]; k < u->start[v + 1]; k++) {
        const od_node *cn = &w->g->nodes[u->node[k]];
        int y = cn->n_outputs ? cn->outputs[0] : -1;
        if (!op_is(cn, "Concat") || y < 0 || u->output[y] || u->start[y + 1] == u->start[y])
            return false;
        for (int j = u->start[y]; j < u->start[y + 1]; j++) {
            const od_node *rn = &w->g->nodes[u->node[j]];
            if (!op_is(rn, "Reshape") || rn->inputs[0] != x || rn->inputs[1] != y) return false;
        }
    }
    return true;
}

/* Shape(x): harmless when its value is only read at other positions than the channels. */
static void analyse_shape(width *w, int ni, int d, int c) {
    const od_node *n = &w->g->nodes[ni];
    const use_map *u = &w->c->uses;
    int y = n->outputs[0];
    int r = vinfo(w, n->inputs[0])->rank;
    bool ok = y >= 0 && !u->output[y] && r >= 0 && od_attr_int(n, "start", 0) == 0;
    for (int k = ok ? u->start[y] : 0; ok && k < u->start[y + 1]; k++) {
        const od_node *cn = &w->g->nodes[u->node[k]];
        int64_t idx[OD_MAX_RANK];
        int nidx = cn->n_inputs > 1 ? const_ints(w->s, cn->inputs[1], idx, OD_MAX_RANK) : -1;
        ok = op_is(cn, "Gather") && cn->inputs[0] == y && od_attr_int(cn, "axis", 0) == 0 &&
             nidx >= 0 && !axis_listed(idx, nidx, c, r);
        if (!ok && op_is(cn, "Slice") && cn->inputs[0] == y && cn->n_inputs >= 3) {
            /* shape[a:b] (flatten(2) as torch exports it): the dims before the channels */
            int64_t e[OD_MAX_RANK];
            int ne = const_ints(w->s, cn->inputs[2], e, OD_MAX_RANK);
            int64_t ax = 0, sp = 1;
            bool ax_ok = cn->n_inputs < 4 || cn->inputs[3] < 0 ||
                         (const_ints(w->s, cn->inputs[3], &ax, 1) == 1 && ax == 0);
            bool sp_ok = cn->n_inputs < 5 || cn->inputs[4] < 0 ||
                         (const_ints(w->s, cn->inputs[4], &sp, 1) == 1 && sp == 1);
            int64_t end = ne == 1 ? (e[0] < 0 ? e[0] + r : e[0]) : -1;
            ok = nidx == 1 && ne == 1 && ax_ok && sp_ok && idx[0] >= 0 && end >= 0 &&
                 (end <= c || idx[0] > c || reshapes_itself(w, cn->outputs[0], n->inputs[0]));
        }
    }
    if (!ok && !shape_feeds_shuffle(w, n->inputs[0])) {
        char lb[256];
        pin_dim(w, d, "its shape is read by %s", label(n, lb, sizeof lb));
    }
}

/* Slice ni takes part j of m equal parts of the channels (dim d on axis c): a fused projection
 * such as nn.MultiheadAttention's in_proj [3E, E] cut into q, k and v. The dim becomes the
 * concatenation of m groups (each narrowed on its own) when it is a source's own dim; the
 * bounds follow the student's parts (FIX_SLICE_PART). */
static bool analyse_part_slice(width *w, int ni, int d, int c, int r) {
    const od_node *n = &w->g->nodes[ni];
    if (n->n_inputs < 4 || n->n_outputs < 1 || n->outputs[0] < 0) return false;
    int64_t st[OD_MAX_RANK], en[OD_MAX_RANK], ax[OD_MAX_RANK], sp[OD_MAX_RANK];
    int ns = const_ints(w->s, n->inputs[1], st, OD_MAX_RANK);
    int ne = const_ints(w->s, n->inputs[2], en, OD_MAX_RANK);
    int na = const_ints(w->s, n->inputs[3], ax, OD_MAX_RANK);
    int nsp =
        n->n_inputs > 4 && n->inputs[4] >= 0 ? const_ints(w->s, n->inputs[4], sp, OD_MAX_RANK) : 0;
    if (na != 1 || ns != 1 || ne != 1 || (nsp && (nsp != 1 || sp[0] != 1))) return false;
    if ((ax[0] < 0 ? ax[0] + r : ax[0]) != c) return false;
    if (!w->g->values[n->inputs[1]].init || !w->g->values[n->inputs[2]].init) return false;
    int64_t full = dim_full(w, d), a = st[0], b = en[0] > full ? full : en[0];
    if (a < 0 || b <= a) return false;
    int64_t len = b - a, m = full / len, j = a / len;
    if (full % len || a % len || m < 2 || m > MAX_PARTS || (en[0] > full && j != m - 1))
        return false;
    if (w->dims[d].kind == DIM_BASE) {
        int e = root(w, w->dims[d].elem);
        const elem *ee = &w->elems[e];
        if (ee->pinned || ee->chunk > 1 || ee->blocks > 1) return false;
        for (int i = 0; i < w->n_elems; i++)
            if (i != e && root(w, i) == e) return false; /* already one group with others */
        for (int i = 0; i < w->n_dims; i++)
            if (i != d && w->dims[i].kind == DIM_BASE && root(w, w->dims[i].elem) == e) return false;
        int *parts = malloc(sizeof(int) * (size_t)m);
        if (!parts) {
            w->failed = true;
            return true;
        }
        for (int64_t k = 0; k < m; k++)
            if ((parts[k] = new_base(w, len)) < 0) {
                free(parts);
                return true;
            }
        w->dims[d].kind = DIM_CONCAT;
        w->dims[d].elem = -1;
        w->dims[d].parts = parts;
        w->dims[d].n_parts = (int)m;
    }
    const dimnode *dn = &w->dims[d];
    if (dn->kind != DIM_CONCAT || dn->n_parts != m) return false;
    for (int k = 0; k < dn->n_parts; k++)
        if (w->dims[dn->parts[k]].kind != DIM_BASE || dim_full(w, dn->parts[k]) != len)
            return false;
    add_fix(w, FIX_SLICE_PART, ni, 1, 0, d);
    w->fixes[w->n_fixes - 1].part = (int)j;
    add_fix(w, FIX_SLICE_PART, ni, 2, 1, d);
    w->fixes[w->n_fixes - 1].part = (int)j;
    track(w, n->outputs[0], dn->parts[j], c);
    return true;
}

/* Attention heads merged back into the channels: Reshape [.., h, C / h] -> [.., C] (heads on
 * the axis before the head dim, their own or merged with the batch). */
static bool analyse_head_merge(width *w, int ni, int d, int ax) {
    const od_node *n = &w->g->nodes[ni];
    int x = n->inputs[0], y = n->outputs[0];
    const od_shape_info *si = vinfo(w, x), *so = y >= 0 ? vinfo(w, y) : NULL;
    if (!so || si->rank < 2 || so->rank < 1 || n->n_inputs < 2) return false;
    int r = si->rank, ro = so->rank;
    const elem *e = &w->elems[root(w, w->dims[d].elem)];
    int64_t sh[OD_MAX_RANK];
    if (const_ints(w->s, n->inputs[1], sh, OD_MAX_RANK) != ro) return false;
    if (ax != r - 2 || si->dims[r - 1] != e->chunk || so->dims[ro - 1] != dim_full(w, d))
        return false;
    for (int i = 0; i < ro - 1; i++)
        if (sh[i] == 0 && i == ax) return false; /* would copy the teacher's head count */
    if (sh[ro - 1] != -1 && !shape_entry_fix(w, ni, ro - 1, d, false)) return false;
    track(w, y, d, ro - 1);
    return true;
}

/* A node reading attention heads (w->vheads): they pass through Transposes, the batched MatMuls
 * of scores and values (whose operands' heads are one group), Softmax and elementwise ops with
 * operands that do not vary per head, up to the Reshape that merges them back. */
static void analyse_heads(width *w, int ni) {
    const od_node *n = &w->g->nodes[ni];
    char lb[256];
    int d = -1, ax = -1, y = n->n_outputs ? n->outputs[0] : -1;
    int ro = y >= 0 ? vinfo(w, y)->rank : -1;
    const char *why = NULL;
    for (int k = 0; k < n->n_inputs && !why; k++) {
        int v = n->inputs[k];
        if (v < 0 || w->vdim[v] < 0) continue;
        if (!w->vheads[v]) {
            why = "it meets channels that are not heads";
            continue;
        }
        int p = ro >= 0 && vinfo(w, v)->rank >= 0 ? w->vaxis[v] + ro - vinfo(w, v)->rank : -1;
        if (ax >= 0 && p != ax) why = "heads on different axes";
        ax = p;
        d = unite(w, d, w->vdim[v], n);
    }
    if (!why && (ro < 0 || ax < 0)) why = "unknown shapes";
    int x = n->inputs[0];
    if (!why && x < 0) why = "no first input";
    if (!why && default_domain(n)) {
        if (op_is(n, "Transpose")) {
            int64_t perm[OD_MAX_RANK];
            int np = attr_ints(n, "perm", perm, OD_MAX_RANK);
            for (int j = 0; j < np; j++)
                if (perm[j] == ax) {
                    track(w, y, d, j);
                    w->vheads[y] = true;
                    return;
                }
        } else if (op_is(n, "MatMul")) {
            /* batched: scores q k^T and their weighting of v, per head */
            if (n->n_inputs == 2 && w->vdim[n->inputs[0]] >= 0 && w->vdim[n->inputs[1]] >= 0 &&
                ax < ro - 2) {
                track(w, y, d, ax);
                w->vheads[y] = true;
                return;
            }
        } else if (role_is(n, OD_CHANNELS_BROADCAST)) {
            bool per_head = false;
            for (int k = 0; k < n->n_inputs; k++) {
                int v = n->inputs[k];
                if (v < 0 || w->vdim[v] >= 0) continue;
                const od_shape_info *si = vinfo(w, v);
                int pos = ax - (ro - si->rank);
                per_head |= si->rank < 0 || (pos >= 0 && si->dims[pos] != 1);
            }
            if (!per_head && vinfo(w, y)->rank == ro) {
                track(w, y, d, ax);
                w->vheads[y] = true;
                return;
            }
        } else if (is_unary(n) && w->vdim[x] >= 0) {
            bool norm = op_is(n, "Softmax") || op_is(n, "LogSoftmax") || op_is(n, "Hardmax");
            int a = (int)od_attr_int(n, "axis", -1);
            if (a < 0) a += ro;
            if (!norm || a != ax) {
                track(w, y, d, ax);
                w->vheads[y] = true;
                return;
            }
        } else if (op_is(n, "Reshape") && w->vdim[x] >= 0) {
            if (analyse_head_merge(w, ni, d, w->vaxis[x])) return;
            why = "it reshapes the heads other than back into channels";
        }
    }
    pin_dim(w, d, "attention heads read by %s%s%s", label(n, lb, sizeof lb), why ? ": " : "",
            why ? why : "");
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v >= 0 && w->vdim[v] >= 0 && !w->vheads[v])
            pin_dim(w, w->vdim[v], "read by %s with attention heads", label(n, lb, sizeof lb));
    }
}

static void analyse_node(width *w, int ni) {
    const od_node *n = &w->g->nodes[ni];
    for (int k = 0; k < n->n_inputs; k++)
        if (n->inputs[k] >= 0 && w->vheads[n->inputs[k]]) {
            analyse_heads(w, ni);
            return;
        }
    if (op_is(n, "Conv")) {
        analyse_conv(w, ni, false);
        return;
    }
    if (op_is(n, "ConvTranspose")) {
        analyse_conv(w, ni, true);
        return;
    }
    if (op_is(n, "Gemm")) {
        analyse_gemm(w, ni);
        return;
    }
    if (op_is(n, "MatMul")) {
        analyse_matmul(w, ni);
        return;
    }
    int d = tracked_input(w, n, 0), x = n->n_inputs ? n->inputs[0] : -1;
    bool any = false;
    for (int k = 0; k < n->n_inputs; k++)
        any |= tracked_input(w, n, k) >= 0;
    if (!any) return; /* nothing here changes shape */
    if (!default_domain(n)) {
        opaque(w, ni, NULL);
        return;
    }
    if (role_is(n, OD_CHANNELS_BROADCAST)) {
        analyse_broadcast(w, ni);
        return;
    }
    if (op_is(n, "Concat")) {
        analyse_concat(w, ni);
        return;
    }
    if (d < 0) {
        opaque(w, ni, NULL);
        return;
    }
    int c = w->vaxis[x];
    int r = vinfo(w, x)->rank;
    int y = n->n_outputs ? n->outputs[0] : -1;
    if (r < 0 || y < 0) {
        opaque(w, ni, "unknown shapes");
        return;
    }
    for (int k = 1; k < n->n_inputs; k++)
        if (tracked_input(w, n, k) >= 0 && !is_sloped(n)) {
            opaque(w, ni, "several inputs with channels");
            return;
        }
    if (is_unary(n)) {
        for (int o = 0; o < n->n_outputs; o++)
            if (n->outputs[o] >= 0 && vinfo(w, n->outputs[o])->rank == r)
                track(w, n->outputs[o], d, c);
        return;
    }
    if (is_sloped(n)) {
        int k1 = od_node_channel_inputs(n) + 1;
        for (int k = 1; k < k1 && k < n->n_inputs; k++)
            if (tracked_input(w, n, k) >= 0) {
                opaque(w, ni, "a slope with channels");
                return;
            }
        for (int k = 1; k < k1 && k < n->n_inputs; k++)
            bind_operand(w, ni, k, d, c, r);
        {
            track(w, y, d, c);
            return;
        }
    }
    if (role_is(n, OD_CHANNELS_PER_CHANNEL)) {
        if (c != 1) {
            opaque(w, ni, "channels not on axis 1");
            return;
        }
        for (int k = 1; k <= od_node_channel_inputs(n) && k < n->n_inputs; k++)
            bind_param(w, ni, k, d);
        for (int o = 0; o < n->n_outputs; o++) {
            int v = n->outputs[o];
            if (v < 0) continue;
            if (vinfo(w, v)->rank == r)
                track(w, v, d, 1);
            else if (vinfo(w, v)->rank == 1)
                track(w, v, d, 0); /* BN training statistics */
        }
        return;
    }
    if (role_is(n, OD_CHANNELS_NORMALIZES)) {
        int a = (int)od_attr_int(n, "axis", -1);
        if (a < 0) a += r;
        if (c < a) {
            track(w, y, d, c);
            return;
        }
        if (c != a || c != r - 1) {
            opaque(w, ni, "normalises across the channels");
            return;
        }
        for (int k = 1; k < n->n_inputs; k++)
            bind_param(w, ni, k, d);
        {
            track(w, y, d, c);
            return;
        }
    }
    if (op_is(n, "Pad")) {
        int64_t pads[2 * OD_MAX_RANK];
        int np = attr_ints(n, "pads", pads, 2 * OD_MAX_RANK);
        if (np < 0 && n->n_inputs > 1) np = const_ints(w->s, n->inputs[1], pads, 2 * OD_MAX_RANK);
        if (np != 2 * r || (n->n_inputs > 3 && n->inputs[3] >= 0) || pads[c] || pads[c + r]) {
            opaque(w, ni, "pads the channels");
            return;
        }
        {
            track(w, y, d, c);
            return;
        }
    }
    if (op_is(n, "Resize") || op_is(n, "Upsample")) {
        bool sizes = op_is(n, "Resize") && n->n_inputs > 3 && n->inputs[3] >= 0 &&
                     vinfo(w, n->inputs[3])->rank == 1 && vinfo(w, n->inputs[3])->dims[0] > 0;
        if (sizes || vinfo(w, y)->rank != r || vinfo(w, y)->dims[c] != vinfo(w, x)->dims[c]) {
            opaque(w, ni, "resizes the channels");
            return;
        }
        {
            track(w, y, d, c);
            return;
        }
    }
    if (op_is(n, "Flatten")) {
        int a = (int)od_attr_int(n, "axis", 1);
        if (a < 0) a += r;
        const int64_t *di = vinfo(w, x)->dims;
        if (c < a || prod_dims(di, a, c) != 1) {
            opaque(w, ni, "flattens the channels away");
            return;
        }
        int64_t block = prod_dims(di, c + 1, r);
        int dout = d;
        if (block != 1) {
            if ((dout = new_dim(w, DIM_BLOCK)) < 0) return;
            w->dims[dout].child = d;
            w->dims[dout].block = block;
        }
        {
            track(w, y, dout, 1);
            return;
        }
    }
    if (op_is(n, "Reshape")) {
        if (!analyse_shuffle(w, ni, d, c)) analyse_reshape(w, ni, d, c);
        return;
    }
    if (op_is(n, "Transpose")) {
        int64_t perm[OD_MAX_RANK];
        int np = attr_ints(n, "perm", perm, OD_MAX_RANK);
        if (np < 0) {
            np = r;
            for (int i = 0; i < r; i++)
                perm[i] = r - 1 - i;
        }
        for (int j = 0; j < np; j++)
            if (perm[j] == c) {
                track(w, y, d, j);
                return;
            }
        {
            opaque(w, ni, NULL);
            return;
        }
    }
    if (op_is(n, "Squeeze") || op_is(n, "Unsqueeze")) {
        int64_t axes[OD_MAX_RANK];
        int na = attr_ints(n, "axes", axes, OD_MAX_RANK);
        if (na < 0 && n->n_inputs > 1 && n->inputs[1] >= 0)
            na = const_ints(w->s, n->inputs[1], axes, OD_MAX_RANK);
        int ro = vinfo(w, y)->rank;
        if (ro < 0) {
            opaque(w, ni, "unknown shapes");
            return;
        }
        if (op_is(n, "Squeeze")) {
            if (na < 0) { /* every dim of 1 goes */
                if (vinfo(w, x)->dims[c] == 1) {
                    opaque(w, ni, NULL);
                    return;
                }
                int k = 0;
                for (int i = 0; i < c; i++)
                    k += vinfo(w, x)->dims[i] == 1;
                {
                    track(w, y, d, c - k);
                    return;
                }
            }
            if (axis_listed(axes, na, c, r)) {
                opaque(w, ni, NULL);
                return;
            }
            {
                track(w, y, d, c - count_below(axes, na, c, r));
                return;
            }
        }
        if (na < 0) {
            opaque(w, ni, NULL);
            return;
        }
        for (int j = 0, i = 0; j < ro; j++) {
            if (axis_listed(axes, na, j, ro)) continue;
            if (i++ == c) {
                track(w, y, d, j);
                return;
            }
        }
        {
            opaque(w, ni, NULL);
            return;
        }
    }
    if (role_is(n, OD_CHANNELS_REDUCES)) {
        int64_t axes[OD_MAX_RANK];
        int na;
        if (op_is(n, "ArgMax") || op_is(n, "ArgMin")) {
            axes[0] = od_attr_int(n, "axis", 0);
            na = 1;
        } else {
            na = attr_ints(n, "axes", axes, OD_MAX_RANK);
            if (na < 0 && n->n_inputs > 1 && n->inputs[1] >= 0)
                na = const_ints(w->s, n->inputs[1], axes, OD_MAX_RANK);
        }
        /* a mean over the channels kept as a dim of 1 (LayerNorm as older exporters decompose
         * it: ReduceMean, Sub, Pow, ReduceMean, Sqrt, Div) is a statistic of whatever channels
         * there are: the input may narrow, the output has none to follow */
        if (na > 0 && op_is(n, "ReduceMean") && od_attr_int(n, "keepdims", 1) != 0 &&
            axis_listed(axes, na, c, r))
            return;
        if (na <= 0 || axis_listed(axes, na, c, r)) {
            opaque(w, ni, "reduces the channels");
            return;
        }
        bool keep = od_attr_int(n, "keepdims", 1) != 0;
        {
            track(w, y, d, keep ? c : c - count_below(axes, na, c, r));
            return;
        }
    }
    if (op_is(n, "Split")) {
        int a = (int)od_attr_int(n, "axis", 0);
        if (a < 0) a += r;
        if (a == c) {
            opaque(w, ni, "splits the channels");
            return;
        }
        for (int o = 0; o < n->n_outputs; o++)
            track(w, n->outputs[o], d, c);
        return;
    }
    if (op_is(n, "Slice")) {
        int64_t axes[OD_MAX_RANK], starts[OD_MAX_RANK];
        int na = attr_ints(n, "axes", axes, OD_MAX_RANK);
        if (na < 0 && n->n_inputs > 3 && n->inputs[3] >= 0)
            na = const_ints(w->s, n->inputs[3], axes, OD_MAX_RANK);
        if (na < 0) { /* default: the first len(starts) axes */
            int ns = attr_ints(n, "starts", starts, OD_MAX_RANK);
            if (ns < 0 && n->n_inputs > 1) ns = const_ints(w->s, n->inputs[1], starts, OD_MAX_RANK);
            if (ns < 0) {
                opaque(w, ni, NULL);
                return;
            }
            for (na = 0; na < ns; na++)
                axes[na] = na;
        }
        if (axis_listed(axes, na, c, r)) {
            if (!analyse_shuffled_slice(w, ni, d, c, r) && !analyse_part_slice(w, ni, d, c, r))
                opaque(w, ni, "slices the channels");
            return;
        }
        {
            track(w, y, d, c);
            return;
        }
    }
    if (op_is(n, "Gather")) {
        int a = (int)od_attr_int(n, "axis", 0);
        if (a < 0) a += r;
        int q = n->n_inputs > 1 && n->inputs[1] >= 0 ? vinfo(w, n->inputs[1])->rank : -1;
        if (a == c || q < 0) {
            opaque(w, ni, "gathers along the channels");
            return;
        }
        {
            track(w, y, d, c < a ? c : c - 1 + q);
            return;
        }
    }
    if (op_is(n, "Shape")) {
        analyse_shape(w, ni, d, c);
        return;
    }
    opaque(w, ni, NULL);
}

/* L1 norm of each output channel of a weight, along axis (the others summed). */
static od_status weight_norms(const od_tensor *W, int axis, double *acc, od_error *err) {
    float *f = od_tensor_to_float(W, err);
    if (!f) return err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    int64_t outer = prod_dims(W->dims, 0, axis), n = W->dims[axis];
    int64_t inner = prod_dims(W->dims, axis + 1, W->rank);
    for (int64_t a = 0; a < outer; a++)
        for (int64_t k = 0; k < n; k++) {
            const float *p = f + (a * n + k) * inner;
            double s = 0;
            for (int64_t i = 0; i < inner; i++)
                s += fabs(p[i]);
            acc[k] += s;
        }
    free(f);
    return OD_STATUS_OK;
}

/* A layer followed by BatchNormalization: its channels' norms as if the BN were folded in
 * (times |scale| / sqrt(var + eps)), so that a teacher with BN nodes and the same teacher
 * exported with BN folded keep the same channels. */
static od_status bn_scale_norms(width *w, int ni, double *norms, int64_t size) {
    const od_graph *g = w->g;
    const use_map *u = &w->c->uses;
    int y = g->nodes[ni].outputs[0];
    if (y < 0 || u->count[y] != 1) return OD_STATUS_OK;
    const od_node *bn = &g->nodes[u->node[u->start[y]]];
    if (!op_is(bn, "BatchNormalization") || bn->n_inputs < 5 || bn->inputs[0] != y ||
        bn->inputs[1] < 0 || bn->inputs[4] < 0)
        return OD_STATUS_OK;
    const od_tensor *scale = g->values[bn->inputs[1]].init, *var = g->values[bn->inputs[4]].init;
    if (!scale || !var || od_tensor_count(scale) != size || od_tensor_count(var) != size)
        return OD_STATUS_OK;
    float *fs = od_tensor_to_float(scale, w->c->err);
    float *fv = fs ? od_tensor_to_float(var, w->c->err) : NULL;
    if (!fv) {
        free(fs);
        return w->c->err->status;
    }
    double e = od_node_attr_float(bn, "epsilon");
    for (int64_t k = 0; k < size; k++)
        norms[k] *= fabs(fs[k]) / sqrt(fmax(fv[k] + e, 1e-30));
    free(fs);
    free(fv);
    return OD_STATUS_OK;
}

static int64_t round_channels(double width, int64_t c, int round_to) {
    int64_t k = (int64_t)llround(width * (double)c);
    if (round_to > 1) k = (k + round_to - 1) / round_to * round_to;
    if (k < 1) k = 1;
    return k > c ? c : k;
}

static const double *score_of; /* qsort context: one group's scores */
static int by_score(const void *pa, const void *pb) {
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    if (score_of[a] != score_of[b]) return score_of[a] < score_of[b] ? 1 : -1;
    return (a > b) - (a < b);
}
static int by_index(const void *pa, const void *pb) {
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

/* The elems a source node's output dim is made of: itself, or the parts of a fused projection
 * cut by Slices (q, k, v); *off_out gets each part's first channel. Returns the count. */
static int source_parts(width *w, int d, int *elems_out, int64_t *off_out, int max) {
    const dimnode *dn = &w->dims[d];
    if (dn->kind == DIM_BASE) {
        elems_out[0] = root(w, dn->elem);
        off_out[0] = 0;
        return 1;
    }
    int n = 0;
    int64_t off = 0;
    for (int i = 0; dn->kind == DIM_CONCAT && i < dn->n_parts && n < max; i++) {
        const dimnode *pn = &w->dims[dn->parts[i]];
        if (pn->kind != DIM_BASE) return 0;
        elems_out[n] = root(w, pn->elem);
        off_out[n++] = off;
        off += w->elems[pn->elem].size;
    }
    return n;
}


/* The spec's "channels": the groups of the matching layers take that many channels. */
static od_status apply_channel_rules(width *w) {
    shrink *c = w->c;
    od_graph *g = w->g;
    for (int ri = 0; ri < c->spec.n_channels; ri++) {
        const od_shrink_rule *rule = &c->spec.channels[ri];
        bool any_node = false, any_layer = false;
        const char *other = NULL;
        for (int ni = 0; ni < g->n_nodes; ni++) {
            const od_node *n = &g->nodes[ni];
            if (!name_matches(rule->pattern, n->name)) continue;
            any_node = true;
            if (w->src_dim[ni] < 0) {
                if (!other) other = n->op_type;
                continue;
            }
            any_layer = true;
            /* a fused projection (q, k, v cut by Slices): each part takes its share, rounded up
             * (as heads round up to whole heads) */
            int pe[MAX_PARTS];
            int64_t po[MAX_PARTS];
            int np = source_parts(w, w->src_dim[ni], pe, po, MAX_PARTS);
            for (int p = 0; p < np; p++) {
                elem *r = &w->elems[pe[p]];
                int64_t asked = (rule->channels + np - 1) / np;
                if (r->pinned && is_glob(rule->pattern)) continue;
                if (asked > r->size)
                    return od_error_set(c->err, OD_STATUS_INVALID_ARGUMENT,
                                        "channels: node \"%s\" (%s) has %lld output channels in %d "
                                        "equal parts; %lld asked (a student cannot be wider)",
                                        n->name, n->op_type, (long long)(r->size * np), np,
                                        (long long)rule->channels);
                if (r->pinned) {
                    if (asked == r->size) continue;
                    return od_error_set(c->err, OD_STATUS_INVALID_ARGUMENT,
                                        "channels: the %lld output channels of node \"%s\" (%s) "
                                        "cannot change: %s",
                                        (long long)(r->size * np), n->name, n->op_type, r->reason);
                }
                if (asked > r->want) r->want = asked;
            }
        }
        if (!any_node) {
            char close[768];
            close_names(g, NULL, rule->pattern, close, sizeof close);
            return od_error_set(c->err, OD_STATUS_INVALID_ARGUMENT,
                                "channels: no node matches \"%s\"; close matches: %s",
                                rule->pattern, close);
        }
        if (!any_layer) {
            bool *layers = calloc((size_t)g->n_nodes + 1, sizeof *layers);
            if (!layers) return oom(c->err);
            for (int ni = 0; ni < g->n_nodes; ni++)
                layers[ni] = w->src_dim[ni] >= 0;
            char close[768];
            close_names(g, layers, rule->pattern, close, sizeof close);
            free(layers);
            return od_error_set(c->err, OD_STATUS_INVALID_ARGUMENT,
                                "channels: \"%s\" matches no Conv, ConvTranspose, Gemm or MatMul "
                                "node (it matches a %s); close matches: %s",
                                rule->pattern, other, close);
        }
    }
    return OD_STATUS_OK;
}


/* Targets and kept channels of every group. */
static od_status choose_channels(width *w) {
    shrink *c = w->c;
    od_status st;
    for (int ni = 0; ni < w->g->n_nodes; ni++) {
        if (w->src_dim[ni] < 0) continue;
        int pe[MAX_PARTS];
        int64_t po[MAX_PARTS];
        int np = source_parts(w, w->src_dim[ni], pe, po, MAX_PARTS);
        const od_tensor *W = slot_init(w->g, ni, 1);
        int64_t full = dim_full(w, w->src_dim[ni]);
        if (W->dims[w->src_waxis[ni]] != full)
            return od_error_set(c->err, OD_STATUS_INVALID_MODEL,
                                "node \"%s\": weight channels %lld differ from its group's %lld",
                                w->g->nodes[ni].name, (long long)W->dims[w->src_waxis[ni]],
                                (long long)full);
        double *norms = NULL;
        for (int p = 0; p < np; p++) {
            elem *r = &w->elems[pe[p]];
            r->has_source = true;
            if (c->spec.init != OD_SHRINK_INIT_TEACHER || r->pinned) continue;
            if (!r->score && !(r->score = calloc((size_t)r->size + 1, sizeof(double))))
                goto oom;
            if (!norms) {
                if (!(norms = calloc((size_t)full + 1, sizeof(double)))) goto oom;
                if ((st = weight_norms(W, w->src_waxis[ni], norms, c->err)) ||
                    (st = bn_scale_norms(w, ni, norms, full))) {
                    free(norms);
                    return st;
                }
            }
            for (int64_t k = 0; k < r->size; k++)
                r->score[k] += norms[po[p] + k];
        }
        free(norms);
        continue;
    oom:
        free(norms);
        return oom(c->err);
    }
    if ((st = apply_channel_rules(w))) return st;
    for (int e = 0; e < w->n_elems; e++) {
        elem *r = &w->elems[e];
        if (r->parent != e) continue;
        if (r->pinned || !r->has_source)
            r->target = r->size;
        else if (r->want)
            r->target = r->want;
        else
            r->target = round_channels(c->spec.width, r->size, c->spec.round_to);
        int64_t nb = r->blocks > 1 ? r->blocks : 1, bsize = r->size / nb;
        if (nb > 1 && r->target < r->size) { /* as many per group: round up to whole rows */
            int64_t per = (r->target + nb - 1) / nb;
            r->target = (per < 1 ? 1 : per > bsize ? bsize : per) * nb;
        }
        int64_t ch = r->chunk > 1 ? r->chunk : 1; /* whole heads: round up to a head */
        if (ch > 1 && r->target < r->size) {
            int64_t heads = (r->target + ch - 1) / ch;
            r->target = (heads < 1 ? 1 : heads) * ch;
        }
        r->kept = malloc(sizeof(int64_t) * (size_t)(r->size + 1));
        if (!r->kept) return oom(c->err);
        for (int64_t i = 0; i < r->size; i++)
            r->kept[i] = i;
        if (r->target < r->size && ch > 1) {
            /* the heads of largest summed score, in their original order */
            int64_t nh = r->size / ch, keep_h = r->target / ch;
            double *hs = calloc((size_t)nh + 1, sizeof(double));
            int64_t *order = malloc(sizeof(int64_t) * (size_t)(nh + 1));
            if (!hs || !order) {
                free(hs);
                free(order);
                return oom(c->err);
            }
            for (int64_t h = 0; h < nh; h++) {
                order[h] = h;
                for (int64_t k = 0; r->score && k < ch; k++)
                    hs[h] += r->score[h * ch + k];
            }
            score_of = hs;
            qsort(order, (size_t)nh, sizeof(int64_t), by_score);
            qsort(order, (size_t)keep_h, sizeof(int64_t), by_index);
            for (int64_t h = 0; h < keep_h; h++)
                for (int64_t k = 0; k < ch; k++)
                    r->kept[h * ch + k] = order[h] * ch + k;
            free(hs);
            free(order);
        } else if (r->target < r->size) {
            /* per block (the whole dim when there are none): the best by score, first ones
             * without scores, then in their original order */
            int64_t per = r->target / nb;
            score_of = r->score;
            for (int64_t b = 0; b < nb; b++) {
                int64_t *blk = r->kept + b * bsize;
                if (r->score) qsort(blk, (size_t)bsize, sizeof(int64_t), by_score);
                memmove(r->kept + b * per, blk, sizeof(int64_t) * (size_t)per);
            }
            qsort(r->kept, (size_t)r->target, sizeof(int64_t), by_index);
        }
    }
    return OD_STATUS_OK;
}

/* FIX_GROUPED_IN: weight [rows, full / group, k...] -> [rows, now / group, k...]. */
static od_status grouped_in(width *w, const fix *f, int64_t *keep, int64_t full, int64_t now) {
    od_graph *g = w->g;
    od_node *n = &g->nodes[f->node];
    int64_t group = od_attr_int(n, "group", 1);
    const od_tensor *t = slot_init(g, f->node, f->slot);
    if (!t || t->rank < 3 || t->dtype != OD_DTYPE_FLOAT || group < 1 || full % group || now % group ||
        t->dims[0] % group)
        return od_error_set(w->c->err, OD_STATUS_INVALID_MODEL,
                            "node \"%s\": grouped weights that cannot be narrowed", n->name);
    int64_t in_full = full / group, in_now = now / group;
    if (t->dims[1] == in_now) return OD_STATUS_OK; /* the same slot asked twice */
    if (t->dims[1] != in_full)
        return od_error_set(w->c->err, OD_STATUS_INVALID_MODEL,
                            "node \"%s\": weight has %lld input channels per group, not %lld",
                            n->name, (long long)t->dims[1], (long long)in_full);
    int64_t k = dim_kept(w, f->dim, keep);
    if (k != now) return od_error_set(w->c->err, OD_STATUS_INVALID_MODEL, "grouped channels");
    int64_t dims[OD_MAX_RANK];
    memcpy(dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
    dims[1] = in_now;
    od_tensor *o = od_tensor_create(t->name, t->dtype, t->rank, dims, w->c->err);
    if (!o) return w->c->err->status;
    int64_t inner = od_dims_count(t->rank - 2, t->dims + 2), rows = t->dims[0];
    int64_t rows_per_group = rows / group;
    const float *src = t->data;
    float *dst = o->data;
    for (int64_t r = 0; r < rows; r++) {
        int64_t j = r / rows_per_group;
        for (int64_t i = 0; i < in_now; i++) {
            int64_t local = keep[j * in_now + i] - j * in_full; /* kept ascending, in_now per group */
            memcpy(dst + (r * in_now + i) * inner, src + (r * in_full + local) * inner,
                   sizeof(float) * (size_t)inner);
        }
    }
    return slot_set_tensor(g, f->node, f->slot, o, w->c->err);
}

/* FIX_SLICE_PART: the start (axis 0) or end (axis 1) of part f->part of CONCAT dim f->dim, at
 * the student's offsets. */
static od_status slice_part(width *w, const fix *f) {
    const dimnode *dn = &w->dims[f->dim];
    int64_t off_full = 0, off_now = 0;
    for (int i = 0; i < f->part + f->axis && i < dn->n_parts; i++) {
        off_full += dim_full(w, dn->parts[i]);
        off_now += dim_new(w, dn->parts[i]);
    }
    const od_tensor *t = slot_init(w->g, f->node, f->slot);
    if (!t || od_tensor_count(t) != 1 || (t->dtype != OD_DTYPE_INT64 && t->dtype != OD_DTYPE_INT32))
        return od_error_set(w->c->err, OD_STATUS_INVALID_MODEL,
                            "node \"%s\": a Slice bound that is not one integer",
                            w->g->nodes[f->node].name);
    int64_t v = t->dtype == OD_DTYPE_INT64 ? ((int64_t *)t->data)[0] : ((int32_t *)t->data)[0];
    if (v != off_full) return OD_STATUS_OK; /* open ends (-1, INT64_MAX) stay open */
    od_tensor *o = od_tensor_create(t->name, t->dtype, t->rank, t->dims, w->c->err);
    if (!o) return w->c->err->status;
    if (t->dtype == OD_DTYPE_INT64)
        ((int64_t *)o->data)[0] = off_now;
    else
        ((int32_t *)o->data)[0] = (int32_t)off_now;
    return slot_set_tensor(w->g, f->node, f->slot, o, w->c->err);
}

static od_status apply_fix(width *w, const fix *f, int64_t *keep) {
    od_graph *g = w->g;
    od_error *err = w->c->err;
    if (f->kind == FIX_SLICE_PART) return slice_part(w, f);
    int64_t full = dim_full(w, f->dim), now = dim_new(w, f->dim);
    if (now == full) return OD_STATUS_OK;
    od_node *n = &g->nodes[f->node];
    if (f->kind == FIX_PART_BOUND) /* a count shared by several readers (q, k, v): once */
        for (const fix *e = w->fixes; e < f; e++)
            if (e->kind == FIX_PART_BOUND && e->node == f->node && e->slot == f->slot &&
                e->axis == f->axis) {
                if (dim_new(w, e->dim) * full != now * dim_full(w, e->dim))
                    return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                        "node \"%s\": input %d counts channels of two groups "
                                        "narrowed differently",
                                        n->name, f->slot);
                return OD_STATUS_OK;
            }
    if (f->kind == FIX_GROUP) return od_pass_set_attr_int(n, "group", now, err);
    if (f->kind == FIX_GROUPED_IN) return grouped_in(w, f, keep, full, now);
    const od_tensor *t = slot_init(g, f->node, f->slot);
    if (!t)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "node \"%s\": input %d lost its data",
                            n->name, f->slot);
    od_tensor *o;
    if (f->kind == FIX_SLICE) {
        if (t->dims[f->axis] == now) return OD_STATUS_OK; /* the same slot asked twice */
        if (t->dims[f->axis] != full)
            return od_error_set(
                err, OD_STATUS_INVALID_MODEL,
                "node \"%s\": input \"%s\" has %lld where %lld channels were expected", n->name,
                g->values[n->inputs[f->slot]].name, (long long)t->dims[f->axis], (long long)full);
        int64_t k = dim_kept(w, f->dim, keep);
        o = tensor_take(t, f->axis, keep, k, err);
    } else {
        o = od_tensor_create(t->name, t->dtype, t->rank, t->dims, err);
        if (o) {
            memcpy(o->data, t->data, t->nbytes);
            int64_t cnt = od_tensor_count(t);
            for (int64_t i = 0; i < cnt; i++) {
                int64_t v =
                    t->dtype == OD_DTYPE_INT64 ? ((int64_t *)t->data)[i] : ((int32_t *)t->data)[i];
                if (f->kind == FIX_RESHAPE_PREFIX && i == f->axis) v = 0;
                if (f->kind == FIX_PART_BOUND && i == f->axis && v > 0 && v < INT32_MAX)
                    v = v * now / full; /* k * full -> k * now; full / h -> now / h */
                if (f->kind == FIX_RESHAPE_FLATTEN) v = i == f->axis ? -1 : v == -1 ? 0 : v;
                if (t->dtype == OD_DTYPE_INT64)
                    ((int64_t *)o->data)[i] = v;
                else
                    ((int32_t *)o->data)[i] = (int32_t)v;
            }
        }
    }
    if (!o) return err->status;
    return slot_set_tensor(g, f->node, f->slot, o, err);
}

/* Whether a pinned layer is a loss: something was asked of it. */
static bool c_width_below_one(const width *w) {
    return w->c->spec.width < 1 || w->c->spec.n_channels > 0;
}

static od_status report_layers(width *w) {
    od_shrink_report *rep = w->c->report;
    if (!rep) return OD_STATUS_OK;
    int n = 0;
    for (int ni = 0; ni < w->g->n_nodes; ni++)
        n += w->src_dim[ni] >= 0;
    if (!n) return OD_STATUS_OK;
    if (!(rep->layers = calloc((size_t)n, sizeof *rep->layers))) return oom(w->c->err);
    for (int ni = 0; ni < w->g->n_nodes; ni++) {
        if (w->src_dim[ni] < 0) continue;
        const od_node *nd = &w->g->nodes[ni];
        od_shrink_layer *l = &rep->layers[rep->n_layers++];
        int pe[MAX_PARTS];
        int64_t po[MAX_PARTS];
        int np = source_parts(w, w->src_dim[ni], pe, po, MAX_PARTS);
        if (np < 1) return od_error_set(w->c->err, OD_STATUS_INVALID_MODEL, "node \"%s\": "
                                        "output channels of no known group", nd->name);
        const elem *r = &w->elems[pe[0]];
        for (int p = 1; p < np; p++) /* a fused projection: its first pinned part speaks */
            if (w->elems[pe[p]].pinned && !r->pinned) r = &w->elems[pe[p]];
        l->node = strdup(nd->name ? nd->name : "");
        l->op_type = strdup(nd->op_type);
        l->teacher_channels = dim_full(w, w->src_dim[ni]);
        l->student_channels = dim_new(w, w->src_dim[ni]);
        if (r->pinned) l->pinned = strdup(r->reason);
        l->at_output = r->at_output;
        l->group = (int)(r - w->elems);
        if (r->pinned && !r->at_output && c_width_below_one(w)) rep->n_kept_whole++;
        if (!l->node || !l->op_type || (r->pinned && !l->pinned)) return oom(w->c->err);
    }
    return OD_STATUS_OK;
}

static void width_clear(width *w) {
    for (int e = 0; e < w->n_elems; e++) {
        free(w->elems[e].kept);
        free(w->elems[e].score);
    }
    for (int d = 0; d < w->n_dims; d++)
        free(w->dims[d].parts);
    free(w->elems);
    free(w->dims);
    free(w->fixes);
    free(w->vdim);
    free(w->vaxis);
    free(w->vheads);
    free(w->src_dim);
    free(w->src_waxis);
}

static od_status apply_width(shrink *c) {
    od_graph *g = c->g;
    od_status st = OD_STATUS_OK;
    width w = {.c = c, .g = g, .s = &c->shapes};
    int64_t *keep = NULL;
    size_t nv = (size_t)g->n_values + 1, nn = (size_t)g->n_nodes + 1;
    w.vdim = malloc(sizeof(int) * nv);
    w.vaxis = calloc(nv, sizeof(int));
    w.vheads = calloc(nv, sizeof(bool));
    w.src_dim = malloc(sizeof(int) * nn);
    w.src_waxis = calloc(nn, sizeof(int));
    if (!w.vdim || !w.vaxis || !w.vheads || !w.src_dim || !w.src_waxis) goto oom;
    for (int v = 0; v < g->n_values; v++)
        w.vdim[v] = -1;
    for (int i = 0; i < g->n_nodes; i++)
        w.src_dim[i] = -1;
    /* graph inputs stay untracked: nothing may change them, and a join with one pins */
    for (int ni = 0; ni < g->n_nodes && !w.failed; ni++)
        analyse_node(&w, ni);
    for (int i = 0; i < g->n_outputs; i++) {
        int v = g->outputs[i];
        if (w.vdim[v] < 0) continue;
        const dimnode *dn = &w.dims[w.vdim[v]];
        if (dn->kind == DIM_BASE && !w.elems[root(&w, dn->elem)].pinned)
            w.elems[root(&w, dn->elem)].at_output = true;
        pin_dim(&w, w.vdim[v], "the graph output \"%s\"", g->values[v].name);
    }
    if (w.failed) goto oom;
    if ((st = choose_channels(&w))) goto done;
    int64_t most = 1;
    for (int f = 0; f < w.n_fixes; f++) {
        int64_t full = dim_full(&w, w.fixes[f].dim);
        if (full > most) most = full;
    }
    if (!(keep = malloc(sizeof(int64_t) * (size_t)most))) goto oom;
    for (int f = 0; f < w.n_fixes; f++)
        if ((st = apply_fix(&w, &w.fixes[f], keep))) goto done;
    st = report_layers(&w);
    goto done;
oom:
    st = oom(c->err);
done:
    free(keep);
    width_clear(&w);
    return st;
}

/* ---- random init ---------------------------------------------------------------------- */

/* Replaces the float initializer of node ni's slot with uniform(-bound, bound) values, or with
 * `fill` when bound is 0. */
static od_status fresh_tensor(shrink *c, int ni, int slot, double bound, float fill, od_rng *rng) {
    const od_tensor *t = slot_init(c->g, ni, slot);
    if (!t) return OD_STATUS_OK;
    if (t->dtype != OD_DTYPE_FLOAT)
        return od_error_set(c->err, OD_STATUS_UNSUPPORTED,
                            "node \"%s\": --init random needs float weights, \"%s\" is %s",
                            c->g->nodes[ni].name, c->g->values[c->g->nodes[ni].inputs[slot]].name,
                            od_dtype_name(t->dtype));
    od_tensor *o = od_tensor_create(t->name, t->dtype, t->rank, t->dims, c->err);
    if (!o) return c->err->status;
    float *p = o->data;
    int64_t n = od_tensor_count(o);
    for (int64_t i = 0; i < n; i++)
        p[i] = bound > 0 ? (float)((2 * od_rng_uniform(rng) - 1) * bound) : fill;
    return slot_set_tensor(c->g, ni, slot, o, c->err);
}

/* PyTorch's defaults: Conv and Linear kaiming_uniform(a = sqrt 5), i.e. bound 1/sqrt(fan_in),
 * bias uniform(+-1/sqrt(fan_in)); norms scale 1, bias 0 (BN running mean 0, var 1); PRelu 0.25. */
static od_status random_init(shrink *c) {
    od_graph *g = c->g;
    od_rng rng;
    od_rng_seed(&rng, c->spec.seed);
    od_status st;
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const od_node *n = &g->nodes[ni];
        if (is_source_op(n)) {
            const od_tensor *W = slot_init(g, ni, 1);
            if (!W || W->rank < 2) continue;
            int64_t fan_in;
            if (op_is(n, "Conv") || op_is(n, "ConvTranspose"))
                fan_in = prod_dims(W->dims, 1, W->rank);
            else if (op_is(n, "Gemm"))
                fan_in = W->dims[od_attr_int(n, "transB", 0) ? 1 : 0];
            else
                fan_in = W->dims[0];
            double bound = 1.0 / sqrt((double)(fan_in > 0 ? fan_in : 1));
            int64_t cols = W->dims[1]; /* W is replaced below */
            if ((st = fresh_tensor(c, ni, 1, bound, 0, &rng))) return st;
            if (!op_is(n, "MatMul")) {
                if (n->n_inputs > 2 && (st = fresh_tensor(c, ni, 2, bound, 0, &rng))) return st;
                continue;
            }
            /* MatMul + Add(constant [N]): a Linear layer's bias */
            int y = n->outputs[0];
            if (y < 0 || c->uses.count[y] != 1) continue;
            int an = c->uses.node[c->uses.start[y]];
            const od_node *a = &g->nodes[an];
            if (!op_is(a, "Add") || a->n_inputs != 2) continue;
            int slot = a->inputs[0] == y ? 1 : 0;
            const od_tensor *b = slot_init(g, an, slot);
            if (b && od_tensor_count(b) == cols && (st = fresh_tensor(c, an, slot, bound, 0, &rng)))
                return st;
        } else if (role_is(n, OD_CHANNELS_PER_CHANNEL) || role_is(n, OD_CHANNELS_NORMALIZES)) {
            static const float fills[] = {1, 0, 0, 1}; /* scale, bias; BN's mean, var */
            for (int k = 1; k < n->n_inputs && k <= od_node_channel_inputs(n); k++)
                if ((st = fresh_tensor(c, ni, k, 0, fills[k - 1], &rng))) return st;
        } else if (op_is(n, "PRelu")) {
            if ((st = fresh_tensor(c, ni, 1, 0, 0.25f, &rng))) return st;
        }
    }
    return OD_STATUS_OK;
}

/* ---- BatchNormalization for training ----------------------------------------------------- */

static od_tensor *filled(const char *name, int64_t n, float v, od_error *err) {
    od_tensor *t = od_tensor_create(name, OD_DTYPE_FLOAT, 1, &n, err);
    if (t)
        for (int64_t i = 0; i < n; i++)
            ((float *)t->data)[i] = v;
    return t;
}

/* The classifier: a value reaching a graph output through no other layer and no join. */
static bool feeds_output(shrink *c, int v) {
    const od_graph *g = c->g;
    for (int hops = 0; v >= 0 && hops < g->n_nodes; hops++) {
        if (c->uses.output[v]) return true;
        if (c->uses.count[v] != 1) return false;
        const od_node *n = &g->nodes[c->uses.node[c->uses.start[v]]];
        if (is_source_op(n) || op_in(n, join_ops) || n->n_outputs < 1 || n->inputs[0] != v)
            return false;
        v = n->outputs[0];
    }
    return false;
}

static od_status insert_bn(shrink *c) {
    od_graph *g = c->g;
    od_status st;
    int convs = 0;
    for (int i = 0; i < g->n_nodes; i++)
        convs += op_is(&g->nodes[i], "Conv") || op_is(&g->nodes[i], "ConvTranspose");
    if (c->spec.bn == OD_SHRINK_BN_OFF || (c->spec.bn == OD_SHRINK_BN_AUTO && convs <= 2))
        return OD_STATUS_OK;
    const float eps = 1e-5f;
    /* var + eps == 1 exactly, so that the new node is an identity at inference */
    float var = 1.0f - eps;
    for (int i = 0; i < 64; i++) {
        volatile float sum = var + eps;
        if (sum == 1.0f) break;
        var = nextafterf(var, sum < 1.0f ? 2.0f : 0.0f);
    }
    int inserted = 0;
    for (int ni = g->n_nodes - 1; ni >= 0;
         ni--) { /* backwards: insertions shift only later nodes */
        const od_node *n = &g->nodes[ni];
        if (!(op_is(n, "Conv") || op_is(n, "ConvTranspose")) || n->n_outputs < 1) continue;
        int o = n->outputs[0];
        if (o < 0 || c->uses.count[o] == 0 || feeds_output(c, o)) continue;
        bool has = false;
        for (int k = c->uses.start[o]; k < c->uses.start[o + 1]; k++) {
            const od_node *cn = &g->nodes[c->uses.node[k]];
            has |= op_is(cn, "BatchNormalization") && cn->inputs[0] == o;
        }
        const od_tensor *W = slot_init(g, ni, 1);
        if (has || !W || W->rank < 3) continue;
        int64_t ch = op_is(n, "Conv") ? W->dims[0] : W->dims[1] * od_attr_int(n, "group", 1);
        char base[600];
        snprintf(base, sizeof base, "od_bn_%s", n->name && *n->name ? n->name : g->values[o].name);
        static const char *const suffix[] = {"scale", "bias", "mean", "var"};
        const float vals[] = {1, 0, 0, var};
        int params[4];
        for (int k = 0; k < 4; k++) {
            char name[700];
            snprintf(name, sizeof name, "%s.%s", base, suffix[k]);
            od_tensor *t = filled(name, ch, vals[k], c->err);
            if (!t) return c->err->status;
            if ((params[k] = add_initializer(g, name, t)) < 0) return oom(c->err);
        }
        char pre[600];
        snprintf(pre, sizeof pre, "%s_od_conv", g->values[o].name);
        char *pre_name = od_pass_unique_name(g, pre, "", 1);
        int nv = pre_name ? od_graph_intern_value(g, pre_name) : -1;
        free(pre_name);
        if (nv < 0) return oom(c->err);
        g->values[nv].dtype = OD_DTYPE_FLOAT;
        int bi = od_graph_add_node(g);
        if (bi < 0) return oom(c->err);
        od_node *bn = &g->nodes[bi];
        bn->name = strdup(base);
        bn->op_type = strdup("BatchNormalization");
        bn->domain = strdup("");
        bn->inputs = malloc(sizeof(int) * 5);
        bn->outputs = malloc(sizeof(int));
        if (!bn->name || !bn->op_type || !bn->domain || !bn->inputs || !bn->outputs)
            return oom(c->err);
        bn->n_inputs = 5;
        bn->n_outputs = 1;
        bn->inputs[0] = nv;
        for (int k = 0; k < 4; k++)
            bn->inputs[k + 1] = params[k];
        bn->outputs[0] = o;
        if ((st = od_pass_set_attr_float(bn, "epsilon", eps, c->err)) ||
            (st = od_pass_set_attr_float(bn, "momentum", 0.9f, c->err)))
            return st;
        g->nodes[ni].outputs[0] = nv;
        /* move the new node right after its conv */
        od_node tmp = g->nodes[bi];
        memmove(&g->nodes[ni + 2], &g->nodes[ni + 1], sizeof(od_node) * (size_t)(bi - ni - 1));
        g->nodes[ni + 1] = tmp;
        inserted++;
    }
    if (c->report) c->report->n_bn_inserted = inserted;
    return OD_STATUS_OK;
}

/* ---- the whole ------------------------------------------------------------------------ */

void od_shrink_report_print(const od_shrink_report *r, const od_shrink_spec *spec, FILE *out,
                            FILE *warn) {
    int changed = 0;
    for (int i = 0; i < r->n_layers; i++)
        changed += r->layers[i].student_channels != r->layers[i].teacher_channels;
    if (warn && (spec->width < 1 || spec->n_channels > 0)) {
        for (int i = 0; i < r->n_layers; i++) {
            const od_shrink_layer *l = &r->layers[i];
            if (!l->pinned || l->at_output) continue;
            fprintf(warn, "onnx-distill: warning: layer \"%s\" (%s) keeps all its %lld channels: %s\n",
                    l->node, l->op_type, (long long)l->teacher_channels, l->pinned);
        }
    }
    fprintf(out,
            "width %g (round %d): %d of %d layers narrower, %d kept whole%s; depth %g: %d of %d "
            "removable blocks dropped; init %s; %d BatchNormalization inserted\n",
            spec->width, spec->round_to, changed, r->n_layers, r->n_kept_whole,
            r->n_kept_whole ? " (see the warnings)" : "", spec->depth, r->n_dropped, r->n_blocks,
            spec->init == OD_SHRINK_INIT_RANDOM ? "random" : "teacher", r->n_bn_inserted);
    if (r->n_dropped > 0) { /* which ones: numbered in graph order from 1 */
        bool enc = false;
        for (int i = 0; i < r->n_blocks; i++)
            enc |= r->blocks[i].transformer;
        fprintf(out, "depth: kept %s", enc ? "encoder blocks" : "blocks");
        for (int i = 0, k = 0; i < r->n_blocks; i++)
            if (!r->blocks[i].dropped) fprintf(out, "%s%d", k++ ? ", " : " ", i + 1);
        fprintf(out, " of %d; dropped", r->n_blocks);
        for (int i = 0, k = 0; i < r->n_blocks; i++)
            if (r->blocks[i].dropped) fprintf(out, "%s%d (\"%s\")", k++ ? ", " : " ", i + 1, r->blocks[i].name);
        fputc('\n', out);
    }
    if (r->n_unshared || r->n_folded)
        fprintf(out,
                "canonical form: %d constant or Identity nodes folded, %d shared initializers "
                "given one copy per layer\n",
                r->n_folded, r->n_unshared);
    if (warn && r->n_layers > 0 && changed == 0 && (spec->width < 1 || spec->n_channels > 0))
        fprintf(warn, "onnx-distill: warning: no layer could be made narrower: the student has "
                      "the teacher's width\n");
}

void od_shrink_report_clear(od_shrink_report *r) {
    if (!r) return;
    for (int i = 0; i < r->n_layers; i++) {
        free(r->layers[i].node);
        free(r->layers[i].op_type);
        free(r->layers[i].pinned);
    }
    free(r->layers);
    for (int i = 0; i < r->n_blocks; i++)
        free(r->blocks[i].name);
    free(r->blocks);
    memset(r, 0, sizeof *r);
}

static od_status copy_model(const od_model *teacher, od_model **out, od_error *err) {
    od_bytes b = {0};
    od_status st = od_model_encode(teacher, &b, err);
    if (!st) st = od_model_decode(b.data, b.len, NULL, out, err);
    od_bytes_free(&b);
    if (!st && (st = od_graph_check(&(*out)->graph, err))) {
        od_model_destroy(*out);
        *out = NULL;
    }
    return st;
}

static od_status set_meta(od_model *m, const char *key, const char *value, od_error *err) {
    int i = 0;
    while (i < m->n_meta && strcmp(m->meta[i].key, key) != 0)
        i++;
    if (i == m->n_meta) {
        od_kv *kv = realloc(m->meta, sizeof *kv * (size_t)(m->n_meta + 1));
        if (!kv) return oom(err);
        m->meta = kv;
        kv[i].key = strdup(key);
        kv[i].value = NULL;
        if (!kv[i].key) return oom(err);
        m->n_meta++;
    }
    free(m->meta[i].value);
    return (m->meta[i].value = strdup(value)) ? OD_STATUS_OK : oom(err);
}

static void drop_meta(od_model *m, const char *key) {
    int k = 0;
    for (int i = 0; i < m->n_meta; i++) {
        if (strcmp(m->meta[i].key, key) == 0) {
            free(m->meta[i].key);
            free(m->meta[i].value);
        } else {
            m->meta[k++] = m->meta[i];
        }
    }
    m->n_meta = k;
}

/* Declared shapes of values inside the graph may be stale now: only the graph's inputs and
 * outputs keep theirs (their channels never change). */
static void forget_inner_shapes(od_graph *g) {
    for (int v = 0; v < g->n_values; v++) {
        od_value *val = &g->values[v];
        if (od_pass_is_graph_input(g, v) || od_pass_is_graph_output(g, v) || val->is_sequence_or_map) continue;
        for (int d = 0; d < OD_MAX_RANK; d++) {
            free(val->dims[d].param);
            val->dims[d].param = NULL;
        }
        val->rank = -1;
        val->has_type = false;
    }
    int k = 0;
    for (int i = 0; i < g->n_value_infos; i++) {
        int v = g->value_infos[i];
        if (g->values[v].is_sequence_or_map) g->value_infos[k++] = v;
    }
    g->n_value_infos = k;
}

static od_status check_spec(const od_shrink_spec *s, od_error *err) {
    if (!(s->width > 0 && s->width <= 1))
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "width %g is not in (0, 1]", s->width);
    if (!(s->depth > 0 && s->depth <= 1))
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "depth %g is not in (0, 1]", s->depth);
    if (s->round_to < 1 || s->round_to > 65536)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "round %d is not in 1 .. 65536",
                            s->round_to);
    if ((unsigned)s->init > OD_SHRINK_INIT_RANDOM || (unsigned)s->bn > OD_SHRINK_BN_OFF)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "unknown init or bn mode");
    for (int i = 0; i < s->n_channels; i++)
        if (s->channels[i].channels < 1 || !s->channels[i].pattern)
            return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                                "channels for \"%s\" must be at least 1",
                                s->channels[i].pattern ? s->channels[i].pattern : "");
    return OD_STATUS_OK;
}

/* A copy of src whose rules and drops are owned by dst. */
static od_status spec_copy(od_shrink_spec *dst, const od_shrink_spec *src, od_error *err) {
    *dst = *src;
    dst->channels = NULL;
    dst->drop = NULL;
    dst->n_channels = dst->n_drop = 0;
    if (src->n_channels > 0) {
        if (!(dst->channels = calloc((size_t)src->n_channels, sizeof *dst->channels)))
            return oom(err);
        for (int i = 0; i < src->n_channels; i++, dst->n_channels++) {
            dst->channels[i].channels = src->channels[i].channels;
            if (!(dst->channels[i].pattern =
                      strdup(src->channels[i].pattern ? src->channels[i].pattern : "")))
                return oom(err);
        }
    }
    if (src->n_drop > 0) {
        if (!(dst->drop = calloc((size_t)src->n_drop, sizeof *dst->drop))) return oom(err);
        for (int i = 0; i < src->n_drop; i++, dst->n_drop++)
            if (!(dst->drop[i] = strdup(src->drop[i] ? src->drop[i] : ""))) return oom(err);
    }
    return OD_STATUS_OK;
}

od_status od_shrink_ex(const od_model *teacher, const od_shrink_spec *spec, od_model **student_out,
                       od_shrink_report *report, od_error *err) {
    od_status st;
    shrink c = {.report = report, .err = err};
    od_error local = {0};
    if (!err) c.err = err = &local;
    *student_out = NULL;
    if (teacher->graph.opset > 0 && teacher->graph.opset < OD_ORT_OPSET_MIN)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "the teacher is stamped opset %lld; ONNX Runtime supports %d to %d: "
                            "convert it first (onnx.version_converter)",
                            (long long)teacher->graph.opset, OD_ORT_OPSET_MIN, OD_ONNX_OPSET_MAX);
    if (report) memset(report, 0, sizeof *report);
    if (!teacher || !spec)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "shrink: no teacher or no spec");
    if ((st = spec_copy(&c.spec, spec, err))) goto done;
    if (spec->spec_path && (st = od_shrink_spec_load(&c.spec, spec->spec_path, err))) goto done;
    if ((st = check_spec(&c.spec, err))) goto done;
    if ((st = od_graph_check_attrs(&teacher->graph, err))) goto done; /* defaults would mislead */

    /* the teacher's own inference, to tell our mistakes from what it already lacks */
    od_graph_shapes ts = {0};
    od_error tnote = {0};
    if ((st = od_graph_infer_ex(&teacher->graph, 1, true, &ts, &tnote))) {
        *err = tnote;
        goto done;
    }
    od_graph_shapes_clear(&ts);

    if ((st = copy_model(teacher, &c.m, err))) goto done;
    c.g = &c.m->graph;
    /* the graph as exporters write it, brought to one form: shared constants, Identity chains */
    od_pass_stats canon;
    if ((st = od_canonicalize(c.m, &canon, err))) goto done;
    if (report) {
        report->n_unshared = canon.unshared_inits;
        report->n_folded = canon.folded_consts + canon.dropped;
    }
    if ((st = shrink_refresh(&c)) || (st = apply_depth(&c))) goto done;
    if ((st = apply_width(&c))) goto done;
    if ((st = graph_gc(c.g, NULL, err)) || (st = shrink_refresh(&c))) goto done;
    if (c.spec.init == OD_SHRINK_INIT_RANDOM && (st = random_init(&c))) goto done;
    if ((st = insert_bn(&c))) goto done;
    forget_inner_shapes(c.g);
    if ((st = graph_gc(c.g, NULL, err)) || (st = shrink_refresh(&c))) goto done;
    /* the student must infer wherever the teacher did */
    od_error note = {0};
    od_graph_shapes ss = {0};
    st = od_graph_infer_ex(c.g, 1, true, &ss, &note);
    od_graph_shapes_clear(&ss);
    if (!st && note.status && !tnote.status) st = note.status;
    if (st) {
        od_error_set(err, st, "the student fails shape inference (a bug in the builder): %s",
                     note.message);
        goto done;
    }

    char desc[256];
    snprintf(desc, sizeof desc,
             "width %g, depth %g, round %d, init %s, bn %s, seed %llu, channel rules %d, drops %d",
             c.spec.width, c.spec.depth, c.spec.round_to,
             c.spec.init == OD_SHRINK_INIT_RANDOM ? "random" : "teacher",
             c.spec.bn == OD_SHRINK_BN_ON    ? "on"
             : c.spec.bn == OD_SHRINK_BN_OFF ? "off"
                                             : "auto",
             (unsigned long long)c.spec.seed, c.spec.n_channels, c.spec.n_drop);
    drop_meta(c.m, "test_accuracy");
    if ((st = set_meta(c.m, "onnx_distill.shrink", desc, err))) goto done;
    free(c.m->producer_name);
    free(c.m->producer_version);
    c.m->producer_name = strdup("onnx-distill");
    c.m->producer_version = strdup(OD_VERSION);
    if (!c.m->producer_name || !c.m->producer_version) {
        st = oom(err);
        goto done;
    }
    *student_out = c.m;
    c.m = NULL;
done:
    if (st && report) od_shrink_report_clear(report);
    od_model_destroy(c.m);
    od_graph_shapes_clear(&c.shapes);
    use_map_clear(&c.uses);
    free(c.stat);
    od_shrink_spec_clear(&c.spec);
    return st;
}

od_status od_shrink(const od_model *teacher, const od_shrink_spec *spec, od_model **student_out,
                    od_error *err) {
    return od_shrink_ex(teacher, spec, student_out, NULL, err);
}

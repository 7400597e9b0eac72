/* The student builder (lib/shrink.c, lib/shrink_spec.c).
 *
 * On every example teacher (the .onnx files in models/, or in $OD_SHRINK_MODELS) at several widths,
 * depths and inits: the student encodes and decodes, passes shape inference, plans and runs; its
 * inner layers keep a quarter of their MACs at width 0.5; the teacher is not modified; width 1 and
 * depth 1 compute the teacher's outputs bit for bit; a teacher whose odd channels are zero gives,
 * at width 0.5, a student computing the same function (so every slice is consistent); removable
 * blocks are found and dropped; random init is repeatable; BatchNormalization is inserted as asked.
 * A graph built here covers depthwise convs in a residual branch, Concat, ConvTranspose, MatMul
 * with a bias Add and Flatten into MatMul. And the spec file reader, its errors, and bad specs. */
#include "od_onnx.h"
#include "test_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers over models ------------------------------------------------------------- */

static bool same_bytes(const od_model *a, const od_model *b) {
    od_bytes x = {0}, y = {0};
    od_error err = {0};
    bool ok = !od_model_encode(a, &x, &err) && !od_model_encode(b, &y, &err) && x.len == y.len &&
              memcmp(x.data, y.data, x.len) == 0;
    od_bytes_free(&x);
    od_bytes_free(&y);
    return ok;
}

/* Encode, decode and check: what a reader of the saved file sees. */
static od_model *roundtrip(const od_model *m, od_error *err) {
    od_bytes b = {0};
    od_model *out = NULL;
    if (!od_model_encode(m, &b, err) && !od_model_decode(b.data, b.len, NULL, &out, err) &&
        od_graph_check(&out->graph, err)) {
        od_model_destroy(out);
        out = NULL;
    }
    od_bytes_free(&b);
    return out;
}

/* Output 0 of m on a fixed input of the given batch; NULL (err set) on failure. */
static float *run(const od_model *m, int64_t batch, int64_t *n_out, od_error *err) {
    od_plan *p = NULL;
    od_plan_options o = {.batch = batch, .threads = 1};
    if (od_plan_create(&m->graph, &o, &p, err)) return NULL;
    const od_plan_io *in = od_plan_input(p, 0);
    float *x = in->data;
    uint32_t s = 12345;
    for (size_t i = 0; i < in->nbytes / sizeof(float); i++) {
        s = s * 1103515245u + 12345u;
        x[i] = (float)(s >> 8) / 16777216.0f * 4.0f - 2.0f;
    }
    float *y = NULL;
    if (!od_plan_run(p, err)) {
        const od_plan_io *out = od_plan_output(p, 0);
        *n_out = (int64_t)(out->nbytes / sizeof(float));
        if ((y = malloc(out->nbytes ? out->nbytes : 1))) memcpy(y, out->data, out->nbytes);
    }
    od_plan_destroy(p);
    return y;
}

static int count_op(const od_model *m, const char *op) {
    int k = 0;
    for (int i = 0; i < m->graph.n_nodes; i++)
        k += strcmp(m->graph.nodes[i].op_type, op) == 0;
    return k;
}

static int count_prefix(const od_model *m, const char *prefix) {
    int k = 0;
    for (int i = 0; i < m->graph.n_nodes; i++)
        k += m->graph.nodes[i].name && strncmp(m->graph.nodes[i].name, prefix, strlen(prefix)) == 0;
    return k;
}

static const od_node *find_node(const od_model *m, const char *name) {
    for (int i = 0; i < m->graph.n_nodes; i++)
        if (m->graph.nodes[i].name && strcmp(m->graph.nodes[i].name, name) == 0)
            return &m->graph.nodes[i];
    return NULL;
}

static const od_tensor *weight(const od_model *m, const od_node *n, int slot) {
    if (!n || slot >= n->n_inputs || n->inputs[slot] < 0) return NULL;
    return m->graph.values[n->inputs[slot]].init;
}

static int64_t params(const od_model *m) {
    int64_t p = 0;
    for (int i = 0; i < m->graph.n_inits; i++) {
        const od_tensor *t = m->graph.values[m->graph.inits[i]].init;
        if (t->dtype == OD_DTYPE_FLOAT) p += od_tensor_count(t);
    }
    return p;
}

/* MACs per node name at batch 1; returns the total. */
static int64_t macs(const od_model *m, int64_t *per_node) {
    od_graph_shapes s;
    od_error err = {0};
    if (od_graph_infer(&m->graph, 1, &s, &err)) return -1;
    int64_t t = 0;
    for (int i = 0; i < m->graph.n_nodes; i++) {
        int64_t k = od_node_macs(&m->graph, i, &s);
        if (per_node) per_node[i] = k;
        t += k;
    }
    od_graph_shapes_clear(&s);
    return t;
}

static bool is_output(const od_graph *g, int v) {
    for (int i = 0; i < g->n_outputs; i++)
        if (g->outputs[i] == v) return true;
    return false;
}

static bool is_input(const od_graph *g, int v) {
    for (int i = 0; i < g->n_inputs; i++)
        if (g->inputs[i] == v) return true;
    return false;
}

static od_status shrink(const od_model *t, double width, double depth, od_shrink_init init,
                        od_shrink_bn bn, uint64_t seed, od_model **out, od_shrink_report *rep,
                        od_error *err) {
    od_shrink_spec s;
    od_shrink_spec_default(&s);
    s.width = width;
    s.depth = depth;
    s.init = init;
    s.bn = bn;
    s.seed = seed;
    return od_shrink_ex(t, &s, out, rep, err);
}

/* The student is a usable model: round trip, inference at two batches, a plan that runs and
 * gives finite outputs as many as the teacher's. */
static void check_usable(const char *what, const od_model *st, int64_t n_teacher_out) {
    od_error err = {0};
    od_model *rt = roundtrip(st, &err);
    check(rt != NULL, what, "round trip: %s", err.message);
    od_graph_shapes s;
    for (int64_t b = 1; rt && b <= 3; b += 2) {
        od_status stt = od_graph_infer(&rt->graph, b, &s, &err);
        check(!stt, what, "shape inference at batch %lld: %s", (long long)b, err.message);
        if (!stt) od_graph_shapes_clear(&s);
    }
    int64_t n = 0;
    float *y = rt ? run(rt, 2, &n, &err) : NULL;
    check(y != NULL, what, "plan and run: %s", err.message);
    if (y) {
        bool finite = true;
        for (int64_t i = 0; i < n; i++)
            finite &= isfinite(y[i]) != 0;
        check(finite && n == n_teacher_out, what, "%lld outputs (teacher %lld), finite %d",
              (long long)n, (long long)n_teacher_out, finite);
    }
    free(y);
    od_model_destroy(rt);
}

static double max_rel_diff(const float *a, const float *b, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

/* Zeroes the odd output channels of every layer not writing a graph output (weights, biases,
 * BN scale and bias, a MatMul's bias Add), so that they contribute nothing: a student keeping
 * the even ones (largest L1 norm) computes the same function. */
static void zero_odd_channels(od_model *m) {
    od_graph *g = &m->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        od_node *n = &g->nodes[i];
        if (n->n_outputs < 1 || is_output(g, n->outputs[0])) continue;
        const char *op = n->op_type;
        int axis = -1;
        if (!strcmp(op, "Conv"))
            axis = 0;
        else if (!strcmp(op, "ConvTranspose"))
            axis = 1;
        else if (!strcmp(op, "MatMul"))
            axis = 1;
        else if (!strcmp(op, "Gemm")) {
            const od_attr *a = od_node_attr(n, "transB");
            axis = a && a->i ? 0 : 1;
        }
        int slots[4] = {-1, -1, -1, -1};
        if (axis >= 0) slots[0] = 1, slots[1] = 2;
        if (!strcmp(op, "BatchNormalization")) axis = 0, slots[0] = 1, slots[1] = 2;
        if (!strcmp(op, "Add") && n->n_inputs == 2) { /* a MatMul's bias */
            for (int k = 0; k < 2; k++) {
                int p = g->values[n->inputs[1 - k]].producer;
                if (g->values[n->inputs[k]].init && p >= 0 &&
                    !strcmp(g->nodes[p].op_type, "MatMul"))
                    axis = 0, slots[0] = k;
            }
        }
        if (axis < 0) continue;
        for (int s = 0; s < 4 && slots[s] >= 0; s++) {
            od_tensor *t = (od_tensor *)weight(m, n, slots[s]);
            if (!t || t->dtype != OD_DTYPE_FLOAT) continue;
            int ax = t->rank == 1 ? 0 : axis;
            int64_t outer = 1, inner = 1, c = t->dims[ax];
            for (int d = 0; d < ax; d++)
                outer *= t->dims[d];
            for (int d = ax + 1; d < t->rank; d++)
                inner *= t->dims[d];
            float *p = t->data;
            for (int64_t a = 0; a < outer; a++)
                for (int64_t k = 1; k < c; k += 2)
                    memset(p + (a * c + k) * inner, 0, sizeof(float) * (size_t)inner);
        }
    }
}

/* ---- the example teachers ---------------------------------------------------------- */

typedef struct teacher_case {
    const char *file;
    int blocks;           /* removable blocks */
    const char *block_op; /* op counted to see blocks go, and how many per block */
    int per_block;
    bool convnet;
} teacher_case;

static void check_teacher(const char *dir, const teacher_case *tc) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, tc->file);
    od_error err = {0};
    od_model *t = NULL;
    if (od_model_load(path, &t, &err)) {
        check(false, tc->file, "%s", err.message);
        return;
    }
    od_model *copy = roundtrip(t, &err);
    int64_t n_out = 0;
    float *yt = run(t, 3, &n_out, &err);
    check(yt != NULL, tc->file, "the teacher runs: %s", err.message);
    int64_t n_out2 = 0;
    float *yt2 = run(t, 2, &n_out2, &err);
    free(yt2);
    int64_t t_params = params(t);
    int64_t *t_node_macs = calloc((size_t)t->graph.n_nodes + 1, sizeof(int64_t));
    int64_t t_macs = macs(t, t_node_macs);

    /* the matrix: every student usable, smaller when narrower */
    static const double widths[] = {1, 0.75, 0.5, 0.25};
    static const double depths[] = {1, 0.5};
    for (int wi = 0; wi < 4; wi++)
        for (int di = 0; di < 2; di++)
            for (int ii = 0; ii < 2; ii++) {
                char what[256];
                snprintf(what, sizeof what, "%s width %g depth %g init %s", tc->file, widths[wi],
                         depths[di], ii ? "random" : "teacher");
                od_model *s = NULL;
                od_status st =
                    shrink(t, widths[wi], depths[di], ii, OD_SHRINK_BN_AUTO, 7, &s, NULL, &err);
                check(!st, what, "%s", err.message);
                if (st) continue;
                check_usable(what, s, n_out2);
                int64_t p = params(s);
                check(widths[wi] == 1 && depths[di] == 1 ? p >= t_params : p < t_params, what,
                      "params %lld, teacher %lld", (long long)p, (long long)t_params);
                od_model_destroy(s);
            }
    check(copy && same_bytes(t, copy), tc->file, "the teacher is unchanged");

    /* width 1, depth 1: the teacher's function, bit for bit (inserted BNs are identities) */
    od_model *s = NULL;
    od_shrink_report rep = {0};
    if (!shrink(t, 1, 1, OD_SHRINK_INIT_TEACHER, OD_SHRINK_BN_AUTO, 1, &s, &rep, &err)) {
        int64_t n = 0;
        float *ys = run(s, 3, &n, &err);
        check(ys && yt && n == n_out && memcmp(ys, yt, sizeof(float) * (size_t)n) == 0, tc->file,
              "width 1 depth 1 differs from the teacher (max rel diff %g)",
              ys && yt && n == n_out ? max_rel_diff(ys, yt, n) : -1.0);
        check(rep.n_blocks == tc->blocks && rep.n_dropped == 0, tc->file,
              "%d removable blocks, %d dropped", rep.n_blocks, rep.n_dropped);
        free(ys);
    } else {
        check(false, tc->file, "width 1: %s", err.message);
    }
    od_model_destroy(s);
    od_shrink_report_clear(&rep);

    /* width 0.5: inner layers keep a quarter of their MACs, the classifier its outputs */
    if (!shrink(t, 0.5, 1, OD_SHRINK_INIT_TEACHER, OD_SHRINK_BN_OFF, 1, &s, &rep, &err)) {
        int64_t *node_macs = calloc((size_t)s->graph.n_nodes + 1, sizeof(int64_t));
        int64_t total = macs(s, node_macs);
        int inner = 0;
        for (int i = 0; i < s->graph.n_nodes; i++) {
            const od_node *n = &s->graph.nodes[i];
            if (strcmp(n->op_type, "Conv") && strcmp(n->op_type, "Gemm") &&
                strcmp(n->op_type, "MatMul"))
                continue;
            int ti = -1;
            for (int k = 0; k < t->graph.n_nodes; k++)
                if (!strcmp(t->graph.nodes[k].name, n->name)) ti = k;
            if (ti < 0) continue;
            const od_tensor *ws = weight(s, n, 1), *wt = weight(t, &t->graph.nodes[ti], 1);
            /* MACs scale with the weight: same spatial sizes, fewer channels */
            check(node_macs[i] * od_tensor_count(wt) == t_node_macs[ti] * od_tensor_count(ws),
                  tc->file, "node %s: MACs %lld vs teacher %lld, weights %lld vs %lld", n->name,
                  (long long)node_macs[i], (long long)t_node_macs[ti],
                  (long long)od_tensor_count(ws), (long long)od_tensor_count(wt));
            /* a node reading no graph input and writing no graph output: both sides halve */
            bool reads_input = false;
            int v = n->inputs[0];
            for (int hops = 0; v >= 0 && hops < 8; hops++) {
                if (is_input(&s->graph, v)) reads_input = true;
                int p = s->graph.values[v].producer;
                if (p < 0 || (strcmp(s->graph.nodes[p].op_type, "Flatten") &&
                              strcmp(s->graph.nodes[p].op_type, "Reshape")))
                    break;
                v = s->graph.nodes[p].inputs[0];
            }
            if (!reads_input && !is_output(&s->graph, n->outputs[0])) {
                inner++;
                check(node_macs[i] * 4 == t_node_macs[ti], tc->file,
                      "inner node %s: MACs %lld, teacher %lld (expected a quarter)", n->name,
                      (long long)node_macs[i], (long long)t_node_macs[ti]);
            }
        }
        check(inner > 0, tc->file, "no inner layer");
        double ratio = (double)total / (double)t_macs;
        check(tc->convnet ? ratio > 0.2 && ratio < 0.3 : ratio > 0.2 && ratio < 0.5, tc->file,
              "width 0.5 keeps %.3f of the MACs", ratio);
        bool pinned_out = false;
        for (int i = 0; i < rep.n_layers; i++)
            if (rep.layers[i].pinned && strstr(rep.layers[i].pinned, "graph output")) {
                pinned_out = true;
                check(rep.layers[i].student_channels == rep.layers[i].teacher_channels, tc->file,
                      "the classifier changed");
            }
        check(pinned_out, tc->file, "the classifier is not reported as fixed by the graph output");
        free(node_macs);
    } else {
        check(false, tc->file, "width 0.5: %s", err.message);
    }
    od_model_destroy(s);
    od_shrink_report_clear(&rep);

    /* teacher init keeps the channels of largest L1 norm: odd ones zeroed, even ones kept */
    od_model *z = roundtrip(t, &err);
    if (z) {
        zero_odd_channels(z);
        int64_t nz = 0, ns = 0;
        float *yz = run(z, 3, &nz, &err);
        if (!shrink(z, 0.5, 1, OD_SHRINK_INIT_TEACHER, OD_SHRINK_BN_AUTO, 1, &s, NULL, &err)) {
            float *ys = run(s, 3, &ns, &err);
            double d = ys && yz && ns == nz ? max_rel_diff(ys, yz, nz) : 1e9;
            check(d < 1e-4, tc->file, "width 0.5 of the zero-odd teacher differs by %g", d);
            free(ys);
        } else {
            check(false, tc->file, "zero-odd: %s", err.message);
        }
        od_model_destroy(s);
        free(yz);
        od_model_destroy(z);
    }

    /* depth 0.5: round(n / 2) blocks kept, their nodes gone */
    if (!shrink(t, 1, 0.5, OD_SHRINK_INIT_TEACHER, OD_SHRINK_BN_OFF, 1, &s, &rep, &err)) {
        int dropped = tc->blocks - (int)lround(0.5 * tc->blocks);
        check(rep.n_blocks == tc->blocks && rep.n_dropped == dropped, tc->file,
              "depth 0.5: %d of %d blocks dropped, expected %d of %d", rep.n_dropped, rep.n_blocks,
              dropped, tc->blocks);
        check(count_op(s, tc->block_op) == count_op(t, tc->block_op) - dropped * tc->per_block,
              tc->file, "depth 0.5: %d %s nodes, teacher %d", count_op(s, tc->block_op),
              tc->block_op, count_op(t, tc->block_op));
        od_model_destroy(s);
        od_shrink_report_clear(&rep);
    } else {
        check(false, tc->file, "depth 0.5: %s", err.message);
    }

    /* random init: repeatable from the seed */
    od_model *r1 = NULL, *r2 = NULL, *r3 = NULL;
    if (!shrink(t, 0.5, 1, OD_SHRINK_INIT_RANDOM, OD_SHRINK_BN_AUTO, 5, &r1, NULL, &err) &&
        !shrink(t, 0.5, 1, OD_SHRINK_INIT_RANDOM, OD_SHRINK_BN_AUTO, 5, &r2, NULL, &err) &&
        !shrink(t, 0.5, 1, OD_SHRINK_INIT_RANDOM, OD_SHRINK_BN_AUTO, 6, &r3, NULL, &err)) {
        check(same_bytes(r1, r2), tc->file, "random init with one seed differs");
        check(!same_bytes(r1, r3), tc->file, "random init ignores the seed");
        /* Kaiming-uniform bounds: |w| <= 1/sqrt(fan_in), and not all tiny */
        for (int i = 0; i < r1->graph.n_nodes; i++) {
            const od_node *n = &r1->graph.nodes[i];
            if (strcmp(n->op_type, "Conv") && strcmp(n->op_type, "Gemm")) continue;
            const od_tensor *w = weight(r1, n, 1);
            int64_t fan = 1;
            for (int d = 1; d < w->rank; d++)
                fan *= w->dims[d];
            double bound = 1 / sqrt((double)fan), hi = 0;
            const float *p = w->data;
            for (int64_t k = 0; k < od_tensor_count(w); k++)
                hi = fmax(hi, fabs(p[k]));
            check(hi <= bound * (1 + 1e-6) && hi > bound * 0.8, tc->file,
                  "node %s: max |w| %g, bound %g", n->name, hi, bound);
        }
    } else {
        check(false, tc->file, "random init: %s", err.message);
    }
    od_model_destroy(r1);
    od_model_destroy(r2);
    od_model_destroy(r3);

    /* BatchNormalization for training */
    int convs = count_op(t, "Conv");
    int with_bn = count_op(t, "BatchNormalization");
    static const od_shrink_bn modes[] = {OD_SHRINK_BN_AUTO, OD_SHRINK_BN_ON, OD_SHRINK_BN_OFF};
    for (int mi = 0; mi < 3; mi++) {
        if (shrink(t, 0.5, 1, OD_SHRINK_INIT_TEACHER, modes[mi], 1, &s, &rep, &err)) {
            check(false, tc->file, "bn mode %d: %s", mi, err.message);
            continue;
        }
        int want = modes[mi] == OD_SHRINK_BN_OFF || (modes[mi] == OD_SHRINK_BN_AUTO && convs <= 2)
                       ? 0
                       : convs - with_bn;
        check(count_prefix(s, "od_bn_") == want && rep.n_bn_inserted == want &&
                  count_op(s, "BatchNormalization") == with_bn + want,
              tc->file, "bn mode %d: %d od_bn_ nodes, expected %d", mi, count_prefix(s, "od_bn_"),
              want);
        od_model_destroy(s);
        od_shrink_report_clear(&rep);
    }

    /* spec rules on real node names */
    const char *first_layer = NULL;
    for (int i = 0; i < t->graph.n_nodes && !first_layer; i++)
        if (!strcmp(t->graph.nodes[i].op_type, "Conv") ||
            !strcmp(t->graph.nodes[i].op_type, "Gemm"))
            first_layer = t->graph.nodes[i].name;
    if (first_layer) {
        od_shrink_spec sp;
        od_shrink_spec_default(&sp);
        char text[1024];
        snprintf(text, sizeof text, "{\"width\": 0.5, \"channels\": {\"%s\": 5}}", first_layer);
        check(!od_shrink_spec_parse(&sp, text, strlen(text), "t.json", &err), tc->file, "spec: %s",
              err.message);
        sp.round_to = 8;
        if (!od_shrink_ex(t, &sp, &s, &rep, &err)) {
            const od_tensor *w = weight(s, find_node(s, first_layer), 1);
            bool gemm_nt = false;
            const od_node *fn = find_node(s, first_layer);
            if (!strcmp(fn->op_type, "Gemm")) {
                const od_attr *a = od_node_attr(fn, "transB");
                gemm_nt = !(a && a->i);
            }
            check(w && w->dims[gemm_nt ? 1 : 0] == 5, tc->file, "spec channels 5 for %s: got %lld",
                  first_layer, w ? (long long)w->dims[gemm_nt ? 1 : 0] : -1LL);
            check_usable("spec channels", s, n_out2);
            od_model_destroy(s);
            od_shrink_report_clear(&rep);
        } else {
            check(false, tc->file, "spec: %s", err.message);
        }
        od_shrink_spec_clear(&sp);
        /* a misspelt name: an error naming the real one */
        char bad[600];
        snprintf(bad, sizeof bad, "%sx", first_layer);
        od_shrink_rule rule = {bad, 4};
        od_shrink_spec_default(&sp);
        sp.n_channels = 1;
        sp.channels = &rule;
        od_status st = od_shrink(t, &sp, &s, &err);
        char quoted[600];
        snprintf(quoted, sizeof quoted, "\"%s\"", first_layer);
        check(st == OD_STATUS_INVALID_ARGUMENT && strstr(err.message, quoted) && !s, tc->file,
              "an unknown name: status %d, %s", st, err.message);
    }

    free(t_node_macs);
    free(yt);
    od_model_destroy(copy);
    od_model_destroy(t);
}

/* ---- a graph built here ------------------------------------------------------------ */

typedef struct builder {
    od_model *m;
    uint32_t seed;
} builder;

static int b_value(builder *b, const char *name) {
    return od_graph_intern_value(&b->m->graph, name);
}

static void b_init(builder *b, const char *name, int rank, const int64_t *dims) {
    od_graph *g = &b->m->graph;
    int v = b_value(b, name);
    od_tensor *t = od_tensor_create(name, OD_DTYPE_FLOAT, rank, dims, NULL);
    float *p = t->data;
    for (int64_t i = 0; i < od_tensor_count(t); i++) {
        b->seed = b->seed * 1664525u + 1013904223u;
        p[i] = ((float)(b->seed >> 8) / 16777216.0f - 0.5f) * 0.6f;
    }
    g->values[v].init = t;
    g->values[v].dtype = OD_DTYPE_FLOAT;
    g->inits = realloc(g->inits, sizeof(int) * (size_t)(g->n_inits + 1));
    g->inits[g->n_inits++] = v;
}

static od_node *b_node(builder *b, const char *op, const char *name, const char *inputs,
                       const char *output) {
    od_graph *g = &b->m->graph;
    int ni = od_graph_add_node(g);
    od_node *n = &g->nodes[ni];
    n->name = strdup(name);
    n->op_type = strdup(op);
    n->domain = strdup("");
    char buf[512];
    snprintf(buf, sizeof buf, "%s", inputs);
    n->inputs = malloc(sizeof(int) * 8);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int v = b_value(b, tok);
        n = &g->nodes[ni];
        n->inputs[n->n_inputs++] = v;
    }
    int o = b_value(b, output);
    n = &g->nodes[ni];
    n->outputs = malloc(sizeof(int));
    n->outputs[0] = o;
    n->n_outputs = 1;
    return n;
}

static void b_attr_int(od_node *n, const char *name, int64_t v) {
    n->attrs = realloc(n->attrs, sizeof(od_attr) * (size_t)(n->n_attrs + 1));
    od_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    a->type = OD_ATTR_INT;
    a->i = v;
}

static void b_attr_ints(od_node *n, const char *name, int count, const int64_t *v) {
    n->attrs = realloc(n->attrs, sizeof(od_attr) * (size_t)(n->n_attrs + 1));
    od_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    a->type = OD_ATTR_INTS;
    a->count = (size_t)count;
    a->ints = malloc(sizeof(int64_t) * (size_t)count);
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
}

/* x[N,3,8,8] -> Conv 16 -> Relu -> (Conv depthwise 16 -> Relu -> Conv 1x1 16) + skip -> Conv 8 and
 * Conv 24 -> Concat (32) -> ConvTranspose 16 (x2) -> MaxPool 4 -> Flatten (256) -> MatMul 20 -> Add
 * bias -> Relu -> Gemm 10 -> y */
static od_model *build_graph(void) {
    builder b = {od_model_create(), 7};
    od_model *m = b.m;
    m->ir_version = 8;
    m->opsets = calloc(1, sizeof *m->opsets);
    m->opsets[0].domain = strdup("");
    m->opsets[0].version = 13;
    m->n_opsets = 1;
    od_graph *g = &m->graph;
    g->name = strdup("built");
    g->opset = 13;
    int x = b_value(&b, "x");
    g->values[x].dtype = OD_DTYPE_FLOAT;
    g->values[x].rank = 4;
    g->values[x].has_type = true;
    int64_t in_dims[4] = {-1, 3, 8, 8};
    for (int d = 0; d < 4; d++)
        g->values[x].dims[d].value = in_dims[d];
    g->values[x].dims[0].param = strdup("N");
    g->inputs = malloc(sizeof(int));
    g->inputs[g->n_inputs++] = x;
    static const int64_t pads1[4] = {1, 1, 1, 1}, k3[2] = {3, 3}, k4[2] = {4, 4}, s2[2] = {2, 2},
                         k2[2] = {2, 2};
    b_init(&b, "w1", 4, (int64_t[]){16, 3, 3, 3});
    b_init(&b, "b1", 1, (int64_t[]){16});
    od_node *n = b_node(&b, "Conv", "c1", "x,w1,b1", "c1o");
    b_attr_ints(n, "pads", 4, pads1);
    b_attr_ints(n, "kernel_shape", 2, k3);
    b_node(&b, "Relu", "r1", "c1o", "r1o");
    b_init(&b, "wd", 4, (int64_t[]){16, 1, 3, 3});
    b_init(&b, "bd", 1, (int64_t[]){16});
    n = b_node(&b, "Conv", "dw", "r1o,wd,bd", "dwo");
    b_attr_ints(n, "pads", 4, pads1);
    b_attr_int(n, "group", 16);
    b_node(&b, "Relu", "r2", "dwo", "r2o");
    b_init(&b, "wp", 4, (int64_t[]){16, 16, 1, 1});
    b_node(&b, "Conv", "pw", "r2o,wp", "pwo");
    b_node(&b, "Add", "add", "r1o,pwo", "addo");
    b_init(&b, "wa", 4, (int64_t[]){8, 16, 1, 1});
    b_init(&b, "ba", 1, (int64_t[]){8});
    b_node(&b, "Conv", "ca", "addo,wa,ba", "cao");
    b_init(&b, "wb", 4, (int64_t[]){24, 16, 3, 3});
    n = b_node(&b, "Conv", "cb", "addo,wb", "cbo");
    b_attr_ints(n, "pads", 4, pads1);
    n = b_node(&b, "Concat", "cat", "cao,cbo", "cato");
    b_attr_int(n, "axis", 1);
    b_init(&b, "wt", 4, (int64_t[]){32, 16, 2, 2});
    b_init(&b, "bt", 1, (int64_t[]){16});
    n = b_node(&b, "ConvTranspose", "ct", "cato,wt,bt", "cto");
    b_attr_ints(n, "strides", 2, s2);
    b_attr_ints(n, "kernel_shape", 2, k2);
    n = b_node(&b, "MaxPool", "mp", "cto", "mpo");
    b_attr_ints(n, "kernel_shape", 2, k4);
    b_attr_ints(n, "strides", 2, k4);
    b_node(&b, "Flatten", "fl", "mpo", "flo");
    b_init(&b, "wm", 2, (int64_t[]){256, 20});
    b_node(&b, "MatMul", "mm", "flo,wm", "mmo");
    b_init(&b, "bm", 1, (int64_t[]){20});
    b_node(&b, "Add", "mmb", "bm,mmo", "mmbo");
    b_node(&b, "Relu", "r3", "mmbo", "r3o");
    b_init(&b, "wo", 2, (int64_t[]){10, 20});
    b_init(&b, "bo", 1, (int64_t[]){10});
    n = b_node(&b, "Gemm", "fc", "r3o,wo,bo", "y");
    b_attr_int(n, "transB", 1);
    int y = b_value(&b, "y");
    g->values[y].dtype = OD_DTYPE_FLOAT;
    g->outputs = malloc(sizeof(int));
    g->outputs[g->n_outputs++] = y;
    od_error err = {0};
    if (od_graph_check(g, &err)) {
        printf("FAIL the built graph: %s\n", err.message);
        od_model_destroy(m);
        return NULL;
    }
    return m;
}

static void check_built(void) {
    od_model *t = build_graph();
    check(t != NULL, "built graph", "does not hold");
    if (!t) return;
    od_error err = {0};
    int64_t nt = 0;
    float *yt = run(t, 2, &nt, &err);
    check(yt && nt == 20, "built graph runs", "%s", err.message);
    free(yt);
    od_shrink_spec sp;
    od_shrink_spec_default(&sp);
    sp.width = 0.5;
    sp.round_to = 1;
    sp.bn = OD_SHRINK_BN_OFF;
    od_model *s = NULL;
    od_shrink_report rep = {0};
    if (od_shrink_ex(t, &sp, &s, &rep, &err)) {
        check(false, "built graph, width 0.5", "%s", err.message);
        od_model_destroy(t);
        return;
    }
    check_usable("built graph, width 0.5", s, 20);
    const od_node *dw = find_node(s, "dw");
    const od_tensor *wd = weight(s, dw, 1);
    const od_attr *grp = dw ? od_node_attr(dw, "group") : NULL;
    check(wd && wd->dims[0] == 8 && wd->dims[1] == 1 && grp && grp->i == 8, "depthwise",
          "weight [%lld,%lld], group %lld (expected [8,1], 8)", wd ? (long long)wd->dims[0] : -1LL,
          wd ? (long long)wd->dims[1] : -1LL, grp ? (long long)grp->i : -1LL);
    const od_tensor *wp = weight(s, find_node(s, "pw"), 1), *wa = weight(s, find_node(s, "ca"), 1),
                    *wb = weight(s, find_node(s, "cb"), 1), *wt = weight(s, find_node(s, "ct"), 1),
                    *wm = weight(s, find_node(s, "mm"), 1), *wo = weight(s, find_node(s, "fc"), 1),
                    *bm = weight(s, find_node(s, "mmb"), 0);
    check(wp && wp->dims[0] == 8 && wp->dims[1] == 8, "pointwise conv [8,8]", "does not hold");
    check(wa && wa->dims[0] == 4 && wa->dims[1] == 8 && wb && wb->dims[0] == 12 && wb->dims[1] == 8,
          "concat branches [4,8] and [12,8]", "does not hold");
    check(wt && wt->dims[0] == 16 && wt->dims[1] == 8, "ConvTranspose [16 = 4 + 12, 8]",
          "does not hold");
    check(wm && wm->dims[0] == 128 && wm->dims[1] == 10, "MatMul after Flatten [128 = 8 x 16, 10]",
          "does not hold");
    check(bm && bm->dims[0] == 10, "MatMul bias [10]", "does not hold");
    check(wo && wo->dims[0] == 10 && wo->dims[1] == 10, "classifier [10, 10]", "does not hold");
    check(count_op(s, "Add") == 2 && count_op(s, "Concat") == 1, "residual Add and Concat kept",
          "does not hold");
    check(rep.n_blocks == 1 && rep.blocks[0].residual && !strcmp(rep.blocks[0].name, "add"),
          "the residual block around the depthwise conv is removable", "does not hold");
    od_model_destroy(s);
    od_shrink_report_clear(&rep);

    /* odd channels zeroed: the half-width student computes the same */
    od_model *z = roundtrip(t, &err);
    zero_odd_channels(z);
    int64_t nz = 0, ns = 0;
    float *yz = run(z, 2, &nz, &err);
    if (!od_shrink(z, &sp, &s, &err)) {
        float *ys = run(s, 2, &ns, &err);
        double d = ys && yz && ns == nz ? max_rel_diff(ys, yz, nz) : 1e9;
        check(d < 1e-4, "built graph", "width 0.5 of the zero-odd graph differs by %g", d);
        free(ys);
        od_model_destroy(s);
    } else {
        check(false, "built graph, zero-odd", "%s", err.message);
    }
    free(yz);
    od_model_destroy(z);

    /* random init: the MatMul's bias Add is re-initialised too */
    sp.init = OD_SHRINK_INIT_RANDOM;
    if (!od_shrink(t, &sp, &s, &err)) {
        const od_tensor *b0 = weight(t, find_node(t, "mmb"), 0),
                        *b1 = weight(s, find_node(s, "mmb"), 0);
        check(b0 && b1 && memcmp(b0->data, b1->data, b1->nbytes) != 0, "random init",
              "the MatMul bias is fresh");
        check_usable("built graph, random", s, 20);
        od_model_destroy(s);
    } else {
        check(false, "built graph, random", "%s", err.message);
    }

    /* drop the residual block by name: the depthwise branch goes */
    char *drop[] = {"dw"};
    sp.init = OD_SHRINK_INIT_TEACHER;
    sp.width = 1;
    sp.n_drop = 1;
    sp.drop = drop;
    if (!od_shrink_ex(t, &sp, &s, &rep, &err)) {
        check(!find_node(s, "dw") && !find_node(s, "pw") && !find_node(s, "add") &&
                  rep.n_dropped == 1,
              "drop [\"dw\"] removes the residual block", "does not hold");
        check_usable("built graph, block dropped", s, 20);
        od_model_destroy(s);
        od_shrink_report_clear(&rep);
    } else {
        check(false, "built graph, drop", "%s", err.message);
    }
    char *drop2[] = {"cb"};
    sp.drop = drop2;
    od_status st = od_shrink(t, &sp, &s, &err);
    check(st == OD_STATUS_INVALID_ARGUMENT && strstr(err.message, "not in a removable block"),
          "dropping a layer outside any block", "%s", err.message);

    /* --bn on: a BN after each of the 5 Conv and the ConvTranspose */
    sp.n_drop = 0;
    sp.drop = NULL;
    sp.bn = OD_SHRINK_BN_ON;
    if (!od_shrink(t, &sp, &s, &err)) {
        check(count_prefix(s, "od_bn_") == 6, "bn on", "%d inserted, expected 6",
              count_prefix(s, "od_bn_"));
        int64_t n1 = 0, n2 = 0;
        float *a = run(t, 2, &n1, &err), *c = run(s, 2, &n2, &err);
        check(a && c && n1 == n2 && memcmp(a, c, sizeof(float) * (size_t)n1) == 0,
              "the inserted BatchNormalization nodes are identities", "does not hold");
        free(a);
        free(c);
        od_model_destroy(s);
    } else {
        check(false, "built graph, bn on", "%s", err.message);
    }
    od_model_destroy(t);
}

static void b_init_ints(builder *b, const char *name, int count, const int64_t *v) {
    od_graph *g = &b->m->graph;
    int id = b_value(b, name);
    int64_t dims[1] = {count};
    od_tensor *t = od_tensor_create(name, OD_DTYPE_INT64, 1, dims, NULL);
    memcpy(t->data, v, sizeof(int64_t) * (size_t)count);
    g->values[id].init = t;
    g->values[id].dtype = OD_DTYPE_INT64;
    g->inits = realloc(g->inits, sizeof(int) * (size_t)(g->n_inits + 1));
    g->inits[g->n_inits++] = id;
}

/* A ShuffleNet unit with its shapes as constants: x[N,3,8,8] -> Conv 8 (a) and Conv 8 (b) ->
 * Concat 16 -> Reshape [0,2,8,8,8] -> Transpose [0,2,1,3,4] -> Reshape [0,16,8,8] -> Slice
 * [0,8) and [8,16) -> Conv 8 (c) on the second -> Concat 16 -> GlobalAveragePool -> Flatten ->
 * Gemm 10 -> y */
static void check_shuffle(void) {
    builder b = {od_model_create(), 11};
    od_model *m = b.m;
    m->ir_version = 8;
    m->opsets = calloc(1, sizeof *m->opsets);
    m->opsets[0].domain = strdup("");
    m->opsets[0].version = 13;
    m->n_opsets = 1;
    od_graph *g = &m->graph;
    g->name = strdup("shuffle");
    g->opset = 13;
    int x = b_value(&b, "x");
    g->values[x].dtype = OD_DTYPE_FLOAT;
    g->values[x].rank = 4;
    g->values[x].has_type = true;
    int64_t in_dims[4] = {-1, 3, 8, 8};
    for (int d = 0; d < 4; d++)
        g->values[x].dims[d].value = in_dims[d];
    g->values[x].dims[0].param = strdup("N");
    g->inputs = malloc(sizeof(int));
    g->inputs[g->n_inputs++] = x;
    b_init(&b, "wa", 4, (int64_t[]){8, 3, 1, 1});
    b_init(&b, "wb", 4, (int64_t[]){8, 3, 1, 1});
    b_init(&b, "wc", 4, (int64_t[]){8, 8, 1, 1});
    b_init(&b, "wo", 2, (int64_t[]){10, 16});
    b_init_ints(&b, "s5", 5, (int64_t[]){0, 2, 8, 8, 8});
    b_init_ints(&b, "s4", 4, (int64_t[]){0, 16, 8, 8});
    b_init_ints(&b, "z", 1, (int64_t[]){0});
    b_init_ints(&b, "h", 1, (int64_t[]){8});
    b_init_ints(&b, "f", 1, (int64_t[]){16});
    b_init_ints(&b, "one", 1, (int64_t[]){1});
    b_node(&b, "Conv", "a", "x,wa", "ao");
    b_node(&b, "Conv", "b", "x,wb", "bo");
    b_attr_int(b_node(&b, "Concat", "cat", "ao,bo", "cato"), "axis", 1);
    b_node(&b, "Reshape", "r5", "cato,s5", "r5o");
    b_attr_ints(b_node(&b, "Transpose", "tr", "r5o", "tro"), "perm", 5, (int64_t[]){0, 2, 1, 3, 4});
    b_node(&b, "Reshape", "r4", "tro,s4", "r4o");
    b_node(&b, "Slice", "x1", "r4o,z,h,one", "x1o");
    b_node(&b, "Slice", "x2", "r4o,h,f,one", "x2o");
    b_node(&b, "Conv", "c", "x2o,wc", "co");
    b_attr_int(b_node(&b, "Concat", "cat2", "x1o,co", "cat2o"), "axis", 1);
    b_node(&b, "GlobalAveragePool", "gap", "cat2o", "gapo");
    b_node(&b, "Flatten", "fl", "gapo", "flo");
    b_attr_int(b_node(&b, "Gemm", "fc", "flo,wo", "y"), "transB", 1);
    int y = b_value(&b, "y");
    g->values[y].dtype = OD_DTYPE_FLOAT;
    g->outputs = malloc(sizeof(int));
    g->outputs[g->n_outputs++] = y;
    od_error err = {0};
    check(!od_graph_check(g, &err), "shuffle graph", "%s", err.message);
    od_shrink_spec sp;
    od_shrink_spec_default(&sp);
    sp.width = 0.5;
    sp.round_to = 1;
    sp.bn = OD_SHRINK_BN_OFF;
    od_model *s = NULL;
    if (od_shrink(m, &sp, &s, &err)) {
        check(false, "shuffle, width 0.5", "%s", err.message);
        od_model_destroy(m);
        return;
    }
    check_usable("shuffle, width 0.5", s, 20);
    const od_tensor *wa = weight(s, find_node(s, "a"), 1), *wb = weight(s, find_node(s, "b"), 1),
                    *wc = weight(s, find_node(s, "c"), 1), *wo = weight(s, find_node(s, "fc"), 1),
                    *s5 = weight(s, find_node(s, "r5"), 1), *s4 = weight(s, find_node(s, "r4"), 1),
                    *e2 = weight(s, find_node(s, "x2"), 2);
    check(wa && wa->dims[0] == 4 && wb && wb->dims[0] == 4, "shuffled branches narrowed to 4",
          "does not hold");
    check(wc && wc->dims[0] == 4 && wc->dims[1] == 4, "conv after the slice [4,4]",
          "does not hold");
    check(wo && wo->dims[1] == 8, "classifier reads 8 channels", "does not hold");
    check(s5 && ((int64_t *)s5->data)[2] == 4 && s4 && ((int64_t *)s4->data)[1] == 8,
          "reshape shapes rescaled", "does not hold");
    check(e2 && ((int64_t *)e2->data)[0] == 8, "slice bound rescaled", "does not hold");
    od_model_destroy(s);
    sp.width = 1;
    if (!od_shrink(m, &sp, &s, &err)) {
        int64_t n1 = 0, n2 = 0;
        float *a = run(m, 2, &n1, &err), *c = run(s, 2, &n2, &err);
        check(a && c && n1 == n2 && max_rel_diff(a, c, n1) < 1e-6, "shuffle, width 1",
              "the teacher");
        free(a);
        free(c);
        od_model_destroy(s);
    } else {
        check(false, "shuffle, width 1", "%s", err.message);
    }
    od_model_destroy(m);
}

/* One attention block as torch writes it, its shapes as constants: x[N,8,32] -> MatMul in_proj
 * [32,96] + bias -> Slices q, k, v -> Reshape [0,8,4,8] (4 heads of 8) -> Transposes -> q k^T ->
 * Softmax -> times v -> Transpose -> Reshape [0,8,32] -> MatMul out_proj [32,32] -> + x ->
 * ReduceMean over the tokens -> Gemm 10. Heads 1 and 3 have zero q, k, v weights: they add
 * nothing (v = 0), so a width-0.5 student keeping heads 0 and 2 computes the teacher's function. */
static void check_attention(void) {
    builder b = {od_model_create(), 13};
    od_model *m = b.m;
    m->ir_version = 8;
    m->opsets = calloc(1, sizeof *m->opsets);
    m->opsets[0].domain = strdup("");
    m->opsets[0].version = 13;
    m->n_opsets = 1;
    od_graph *g = &m->graph;
    g->name = strdup("attention");
    g->opset = 13;
    int x = b_value(&b, "x");
    g->values[x].dtype = OD_DTYPE_FLOAT;
    g->values[x].rank = 3;
    g->values[x].has_type = true;
    int64_t in_dims[3] = {-1, 8, 32};
    for (int d = 0; d < 3; d++)
        g->values[x].dims[d].value = in_dims[d];
    g->values[x].dims[0].param = strdup("N");
    g->inputs = malloc(sizeof(int));
    g->inputs[g->n_inputs++] = x;
    b_init(&b, "wqkv", 2, (int64_t[]){32, 96});
    b_init(&b, "bqkv", 1, (int64_t[]){96});
    b_init(&b, "wout", 2, (int64_t[]){32, 32});
    b_init(&b, "wfc", 2, (int64_t[]){10, 32});
    float *wq = g->values[b_value(&b, "wqkv")].init->data;
    float *bq = g->values[b_value(&b, "bqkv")].init->data;
    for (int col = 0; col < 96; col++)
        if ((col % 32) / 8 % 2 == 1) { /* heads 1 and 3 of q, k and v */
            bq[col] = 0;
            for (int row = 0; row < 32; row++)
                wq[row * 96 + col] = 0;
        }
    static const char *bound_names[] = {"s0", "s32", "s64", "s96"};
    for (int i = 0; i < 4; i++)
        b_init_ints(&b, bound_names[i], 1, (int64_t[]){32 * i});
    b_init_ints(&b, "axlast", 1, (int64_t[]){-1});
    b_init_ints(&b, "split", 4, (int64_t[]){0, 8, 4, 8});
    b_init_ints(&b, "merge", 3, (int64_t[]){0, 8, 32});
    b_init_ints(&b, "tokens", 1, (int64_t[]){1});
    b_node(&b, "MatMul", "in_proj", "x,wqkv", "qkv0");
    b_node(&b, "Add", "in_bias", "qkv0,bqkv", "qkv");
    b_node(&b, "Slice", "sq", "qkv,s0,s32,axlast", "q");
    b_node(&b, "Slice", "sk", "qkv,s32,s64,axlast", "k");
    b_node(&b, "Slice", "sv", "qkv,s64,s96,axlast", "v");
    b_node(&b, "Reshape", "rq", "q,split", "q4");
    b_node(&b, "Reshape", "rk", "k,split", "k4");
    b_node(&b, "Reshape", "rv", "v,split", "v4");
    b_attr_ints(b_node(&b, "Transpose", "tq", "q4", "qt"), "perm", 4, (int64_t[]){0, 2, 1, 3});
    b_attr_ints(b_node(&b, "Transpose", "tk", "k4", "kt"), "perm", 4, (int64_t[]){0, 2, 3, 1});
    b_attr_ints(b_node(&b, "Transpose", "tv", "v4", "vt"), "perm", 4, (int64_t[]){0, 2, 1, 3});
    b_node(&b, "MatMul", "scores", "qt,kt", "sc");
    b_attr_int(b_node(&b, "Softmax", "softmax", "sc", "p"), "axis", -1);
    b_node(&b, "MatMul", "weigh", "p,vt", "o");
    b_attr_ints(b_node(&b, "Transpose", "to", "o", "o2"), "perm", 4, (int64_t[]){0, 2, 1, 3});
    b_node(&b, "Reshape", "rm", "o2,merge", "om");
    b_node(&b, "MatMul", "out_proj", "om,wout", "proj");
    b_node(&b, "Add", "res", "x,proj", "h");
    od_node *n = b_node(&b, "ReduceMean", "pool", "h", "pooled");
    b_attr_ints(n, "axes", 1, (int64_t[]){1});
    b_attr_int(n, "keepdims", 0);
    b_attr_int(b_node(&b, "Gemm", "fc", "pooled,wfc", "y"), "transB", 1);
    int y = b_value(&b, "y");
    g->values[y].dtype = OD_DTYPE_FLOAT;
    g->outputs = malloc(sizeof(int));
    g->outputs[g->n_outputs++] = y;
    od_error err = {0};
    check(!od_graph_check(g, &err), "attention graph", "%s", err.message);
    od_shrink_spec sp;
    od_shrink_spec_default(&sp);
    sp.width = 0.5;
    sp.round_to = 1;
    od_model *s = NULL;
    if (od_shrink(m, &sp, &s, &err)) {
        check(false, "attention, width 0.5", "%s", err.message);
        od_model_destroy(m);
        return;
    }
    check_usable("attention, width 0.5", s, 20);
    const od_tensor *wi = weight(s, find_node(s, "in_proj"), 1),
                    *wo = weight(s, find_node(s, "out_proj"), 1),
                    *sh = weight(s, find_node(s, "rq"), 1), *mg = weight(s, find_node(s, "rm"), 1),
                    *k0 = weight(s, find_node(s, "sk"), 1), *k1 = weight(s, find_node(s, "sk"), 2),
                    *v1 = weight(s, find_node(s, "sv"), 2);
    check(wi && wi->dims[0] == 32 && wi->dims[1] == 48, "in_proj [32,96] -> [32,48]",
          "does not hold");
    check(wo && wo->dims[0] == 16 && wo->dims[1] == 32, "out_proj reads 16 channels, writes 32",
          "does not hold");
    check(sh && ((int64_t *)sh->data)[2] == 2 && ((int64_t *)sh->data)[3] == 8,
          "heads 4 -> 2, head dim 8 kept", "does not hold");
    check(mg && ((int64_t *)mg->data)[2] == 16, "heads merged back into 16 channels",
          "does not hold");
    check(k0 && k1 && v1 && ((int64_t *)k0->data)[0] == 16 && ((int64_t *)k1->data)[0] == 32 &&
              ((int64_t *)v1->data)[0] == 48,
          "q, k, v slice bounds follow", "does not hold");
    int64_t n1 = 0, n2 = 0;
    float *a = run(m, 2, &n1, &err), *c = run(s, 2, &n2, &err);
    check(a && c && n1 == n2 && max_rel_diff(a, c, n1) < 1e-5, "attention, width 0.5",
          "heads 0 and 2 kept, the teacher's function");
    free(a);
    free(c);
    od_model_destroy(s);
    od_model_destroy(m);
}

/* ---- spec files and bad specs ---------------------------------------------------------- */

static void check_spec_parser(void) {
    od_error err = {0};
    od_shrink_spec s;
    od_shrink_spec_default(&s);
    const char *good =
        " {\"width\": 0.25, \"depth\": 0.5e0,\n \"channels\": {\"a/*\": 24, \"b\\u00e9\\\"\": 8},"
        " \"drop\": [\"x\", \"y*\"]} \n";
    od_status st = od_shrink_spec_parse(&s, good, strlen(good), "good.json", &err);
    check(!st && s.width == 0.25 && s.depth == 0.5 && s.n_channels == 2 && s.n_drop == 2 &&
              !strcmp(s.channels[0].pattern, "a/*") && s.channels[0].channels == 24 &&
              !strcmp(s.channels[1].pattern, "b\xc3\xa9\"") && !strcmp(s.drop[1], "y*"),
          "spec", "a good file: %s", err.message);
    od_shrink_spec_clear(&s);
    check(s.n_channels == 0 && s.channels == NULL, "spec", "clear");
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"{\"width\": 0.5,\n \"depht\": 1}", "bad.json:2:2: unknown key \"depht\""},
        {"{\"width\": 1.5}", "bad.json:1:11: width must be in (0, 1]"},
        {"{\"depth\": 0}", "depth must be in (0, 1]"},
        {"{\"width\": 0.5,}", "bad.json:1:15: expected a string"},
        {"{\"channels\": {\"a\": 2.5}}", "must be a whole number"},
        {"{\"channels\": {\"a\": 0}}", "must be a whole number"},
        {"{\"width\": 0.5, \"width\": 0.5}", "appears twice"},
        {"{} x", "text after"},
        {"{\"drop\": [\"a]}", "unterminated string"},
        {"{\"drop\": \"a\"}", "expected '['"},
        {"", "expected '{'"},
        {"{\"width\": \"half\"}", "width: expected a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        od_shrink_spec_default(&s);
        err.message[0] = 0;
        st = od_shrink_spec_parse(&s, bad[i].text, strlen(bad[i].text), "bad.json", &err);
        check(st == OD_STATUS_INVALID_ARGUMENT && strstr(err.message, bad[i].msg), "spec",
              "bad #%zu: status %d, \"%s\" (expected \"%s\")", i, st, err.message, bad[i].msg);
        od_shrink_spec_clear(&s);
    }
    od_shrink_spec_default(&s);
    st = od_shrink_spec_load(&s, "/nonexistent/spec.json", &err);
    check(st == OD_STATUS_IO && strstr(err.message, "/nonexistent/spec.json"), "spec",
          "missing file: %s", err.message);
}

static void check_bad_specs(void) {
    od_model *t = build_graph();
    if (!t) return;
    od_error err = {0};
    struct {
        double width, depth;
        int round_to;
    } bad[] = {{0, 1, 8}, {1.5, 1, 8}, {-1, 1, 8}, {NAN, 1, 8},
               {1, 0, 8}, {1, 2, 8},   {1, 1, 0},  {1, 1, 1 << 20}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        od_shrink_spec s;
        od_shrink_spec_default(&s);
        s.width = bad[i].width;
        s.depth = bad[i].depth;
        s.round_to = bad[i].round_to;
        od_model *out = (od_model *)&err; /* must come back NULL */
        od_status st = od_shrink(t, &s, &out, &err);
        check(st == OD_STATUS_INVALID_ARGUMENT && out == NULL, "bad spec #", "%zu: status %d", i,
              st);
    }
    od_shrink_spec s;
    od_shrink_spec_default(&s);
    od_shrink_rule r[] = {{"c1", 0}, {"r1", 4}, {"fc", 4}, {"c1", 99}, {"zz*", 4}};
    static const char *const msgs[] = {"at least 1", "matches no Conv", "cannot change",
                                       "cannot be wider", "no node matches \"zz*\""};
    for (int i = 0; i < 5; i++) {
        s.n_channels = 1;
        s.channels = &r[i];
        od_model *out = NULL;
        od_status st = od_shrink(t, &s, &out, &err);
        check(st == OD_STATUS_INVALID_ARGUMENT && strstr(err.message, msgs[i]) && !out,
              "bad rule #", "%d: status %d, %s", i, st, err.message);
    }
    /* spec_path: the library reads the file itself; its width replaces the field */
    char path[] = "/tmp/od_shrink_spec.XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f) {
        fputs("{\"width\": 0.25, \"channels\": {\"c*\": 6}}", f);
        fclose(f);
        od_shrink_spec_default(&s);
        s.spec_path = path;
        s.round_to = 1;
        od_model *o = NULL;
        od_shrink_report rp = {0};
        if (!od_shrink_ex(t, &s, &o, &rp, &err)) {
            int64_t want[] = {6, 6, 6, 6, 6, 6, 5, 10}; /* c1 group, ca, cb, ct; mm 20 / 4; fc */
            bool good = rp.n_layers == 8;
            for (int i = 0; good && i < 8; i++)
                good = rp.layers[i].student_channels == want[i];
            check(good, "spec_path", "channels from the file");
            od_shrink_report_clear(&rp);
            od_model_destroy(o);
        } else {
            check(false, "spec_path", "%s", err.message);
        }
        remove(path);
    }
    od_shrink_spec_default(&s);

    /* a glob over fixed layers skips them; a rule over a group sets it */
    od_shrink_rule ok[] = {{"*", 4}};
    s.n_channels = 1;
    s.channels = ok;
    od_model *out = NULL;
    od_shrink_report rep = {0};
    if (!od_shrink_ex(t, &s, &out, &rep, &err)) {
        bool good = true;
        for (int i = 0; i < rep.n_layers; i++)
            good &= rep.layers[i].pinned
                        ? rep.layers[i].student_channels == rep.layers[i].teacher_channels
                        : rep.layers[i].student_channels == 4;
        check(good && rep.n_layers == 8, "glob \"*\"", "4 channels everywhere but the classifier");
        check_usable("glob *", out, 20);
        od_shrink_report_clear(&rep);
        od_model_destroy(out);
    } else {
        check(false, "glob *", "%s", err.message);
    }
    od_model_destroy(t);
}

/* cnn_bn.onnx is cnn.onnx with its BatchNormalization nodes kept: BN-aware norms keep the same
 * channels, so the two half-width students compute the same function. */
static void check_bn_pair(const char *dir) {
    char p1[1024], p2[1024];
    snprintf(p1, sizeof p1, "%s/cnn.onnx", dir);
    snprintf(p2, sizeof p2, "%s/cnn_bn.onnx", dir);
    od_error err = {0};
    od_model *a = NULL, *b = NULL, *sa = NULL, *sb = NULL;
    if (od_model_load(p1, &a, &err) || od_model_load(p2, &b, &err)) {
        check(false, "cnn and cnn_bn", "%s", err.message);
    } else if (shrink(a, 0.5, 1, OD_SHRINK_INIT_TEACHER, OD_SHRINK_BN_OFF, 1, &sa, NULL, &err) ||
               shrink(b, 0.5, 1, OD_SHRINK_INIT_TEACHER, OD_SHRINK_BN_OFF, 1, &sb, NULL, &err)) {
        check(false, "cnn and cnn_bn at width 0.5", "%s", err.message);
    } else {
        int64_t na = 0, nb = 0;
        float *ya = run(sa, 3, &na, &err), *yb = run(sb, 3, &nb, &err);
        double d = ya && yb && na == nb ? max_rel_diff(ya, yb, na) : 1e9;
        check(d < 1e-4, "cnn and cnn_bn at width 0.5 keep different channels (outputs differ by",
              "%g)", d);
        free(ya);
        free(yb);
    }
    od_model_destroy(a);
    od_model_destroy(b);
    od_model_destroy(sa);
    od_model_destroy(sb);
}

int main(void) {
    const char *dir = getenv("OD_SHRINK_MODELS");
    if (!dir || !*dir) dir = "models";
    check_spec_parser();
    check_bad_specs();
    check_built();
    check_shuffle();
    check_attention();
    static const teacher_case cases[] = {
        {"cnn.onnx", 2, "Conv", 1, true},
        {"cnn_bn.onnx", 2, "BatchNormalization", 1, true},
        {"resnet.onnx", 4, "Add", 1, true},
        {"mlp.onnx", 2, "Gemm", 1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_teacher(dir, &cases[i]);
    check_bn_pair(dir);
    printf("shrink: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

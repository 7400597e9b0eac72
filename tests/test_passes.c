/* Graph passes (od_optimize), weight storage (od_store_weights), DequantizeLinear, metadata.
 *
 *   build/tests/test_passes
 *
 * Each case builds a small graph in memory, runs it in the interpreter before and after, and
 * checks both the structure (which nodes went, names kept) and the outputs (f32 within 1e-5
 * relative, f16 and int8 within the bounds stated in the cases). Ends with
 * `passes: N passed, N failed` and exits 1 on any failure. */
#include "od_onnx.h"
#include "passes_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_check.h"
#include "test_graph.h"


/* ---- graph building -------------------------------------------------------------------- */


static void attr_ints(od_node *n, const char *name, int count, const int64_t *v) {
    n->attrs = realloc(n->attrs, sizeof *n->attrs * (size_t)(n->n_attrs + 1));
    od_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    a->type = OD_ATTR_INTS;
    a->count = (size_t)count;
    a->ints = malloc(sizeof(int64_t) * (size_t)(count ? count : 1));
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
}

static void attr_int(od_node *n, const char *name, int64_t v) {
    od_pass_set_attr_int(n, name, v, NULL);
}
static void attr_float(od_node *n, const char *name, float v) {
    od_pass_set_attr_float(n, name, v, NULL);
}

/* BN parameters name_s, name_b, name_m, name_v for C channels; returns the input list. */
static const char *add_bn_params(od_model *m, const char *x, const char *name, int64_t C) {
    static char list[1024];
    char s[128], b[128], mn[128], v[128];
    snprintf(s, sizeof s, "%s_s", name);
    snprintf(b, sizeof b, "%s_b", name);
    snprintf(mn, sizeof mn, "%s_m", name);
    snprintf(v, sizeof v, "%s_v", name);
    add_init(m, s, 1, &C, 0.5f, 1.5f, NULL);
    add_init(m, b, 1, &C, -0.5f, 0.5f, NULL);
    add_init(m, mn, 1, &C, -0.5f, 0.5f, NULL);
    add_init(m, v, 1, &C, 0.5f, 2.0f, NULL);
    snprintf(list, sizeof list, "%s,%s,%s,%s,%s", x, s, b, mn, v);
    return list;
}

static int count_op(const od_model *m, const char *op) {
    int n = 0;
    for (int i = 0; i < m->graph.n_nodes; i++)
        n += strcmp(m->graph.nodes[i].op_type, op) == 0;
    return n;
}

static od_model *clone(const od_model *m) {
    od_bytes b = {0};
    od_model *c = NULL;
    od_error err = {0};
    if (od_model_encode(m, &b, &err) || od_model_decode(b.data, b.len, NULL, &c, &err) ||
        od_graph_check(&c->graph, &err)) {
        printf("FAIL clone: %s\n", err.message);
        n_fail++;
        od_bytes_free(&b);
        od_model_destroy(c);
        return NULL;
    }
    od_bytes_free(&b);
    return c;
}

/* Runs m at batch on seeded inputs in [-2, 2]; returns the outputs concatenated (count in
 * *n), NULL with a failure reported. */
static float *run(const od_model *m, int64_t batch, size_t *n, const char *what) {
    od_plan *p = NULL;
    od_error err = {0};
    if (od_plan_create(&m->graph, &(od_plan_options){.batch = batch, .threads = 1}, &p, &err)) {
        check(false, what, "batch %lld: %s", (long long)batch, err.message);
        return NULL;
    }
    uint32_t seed = 99u + (uint32_t)batch;
    for (int i = 0; i < od_plan_n_inputs(p); i++) {
        const od_plan_io *io = od_plan_input(p, i);
        float *x = io->data;
        for (size_t k = 0; k < io->nbytes / 4; k++) {
            seed = seed * 1103515245u + 12345u;
            x[k] = (float)(seed >> 8) / 16777216.0f * 4.0f - 2.0f;
        }
    }
    if (od_plan_run(p, &err)) {
        check(false, what, "batch %lld: %s", (long long)batch, err.message);
        od_plan_destroy(p);
        return NULL;
    }
    size_t total = 0;
    for (int i = 0; i < od_plan_n_outputs(p); i++)
        total += od_plan_output(p, i)->nbytes / 4;
    float *out = malloc(sizeof(float) * (total ? total : 1));
    total = 0;
    for (int i = 0; i < od_plan_n_outputs(p); i++) {
        const od_plan_io *io = od_plan_output(p, i);
        memcpy(out + total, io->data, io->nbytes);
        total += io->nbytes / 4;
    }
    od_plan_destroy(p);
    *n = total;
    return out;
}

/* max |a - b| / max(1, |a|) */
static double max_rel(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(1.0, fabs(a[i]));
        if (!(d <= worst)) worst = d;
    }
    return worst;
}

/* Outputs of before and after agree within tol at batch 1 and 3. */
static void check_same_outputs(const od_model *before, const od_model *after, double tol,
                               const char *what) {
    for (int64_t batch = 1; batch <= 3; batch += 2) {
        size_t na = 0, nb = 0;
        float *a = run(before, batch, &na, what), *b = run(after, batch, &nb, what);
        if (a && b) {
            double d = na == nb ? max_rel(a, b, na) : INFINITY;
            check(d <= tol, what, "batch %lld: outputs differ by %.3g (tolerance %.3g)",
                  (long long)batch, d, tol);
        }
        free(a);
        free(b);
    }
}

/* Copies m, optimizes the copy, checks its outputs against m; returns the copy. */
static od_model *optimized(const od_model *m, od_pass_stats *st, const char *what) {
    od_model *c = clone(m);
    if (!c) return NULL;
    od_error err = {0};
    if (od_optimize(c, st, &err)) {
        check(false, what, "od_optimize: %s", err.message);
        od_model_destroy(c);
        return NULL;
    }
    od_model *again = clone(c); /* what is written reads back and checks */
    if (!again) {
        od_model_destroy(c);
        return NULL;
    }
    od_model_destroy(c);
    check_same_outputs(m, again, 1e-5, what);
    return again;
}

/* Whether a plan of m (batch 2) has a step running op. */
static bool plan_runs(const od_model *m, const char *op) {
    od_plan *p = NULL;
    od_error err = {0};
    if (od_plan_create(&m->graph, &(od_plan_options){.batch = 2, .threads = 1, .profile = true}, &p, &err))
        return false;
    const od_step_profile *steps;
    int n = od_plan_profile(p, &steps);
    bool found = false;
    for (int i = 0; i < n; i++) found |= strcmp(steps[i].op_type, op) == 0;
    od_plan_destroy(p);
    return found;
}

/* m's first output (m's other outputs follow it) against o's only output. */
static void check_first_output(const od_model *m, const od_model *o, double tol, const char *what) {
    size_t na = 0, nb = 0;
    float *a = run(m, 3, &na, what), *b = run(o, 3, &nb, what);
    if (a && b) {
        double d = nb <= na ? max_rel(a, b, nb) : INFINITY;
        check(d <= tol, what, "outputs differ by %.3g from the unfolded reference", d);
    }
    free(a);
    free(b);
}

/* ---- cases ----------------------------------------------------------------------------- */

static void test_bn_conv(bool bias, bool transpose, int64_t group) {
    char what[96];
    snprintf(what, sizeof what, "BN after %s (bias %d, group %lld)",
             transpose ? "ConvTranspose" : "Conv", bias, (long long)group);
    od_model *m = new_model(13);
    add_input(m, "x", 4, (int64_t[]){-1, 4, 6, 6});
    int64_t C = 6;
    if (transpose)
        add_init(m, "w", 4, (int64_t[]){4, C / group, 3, 3}, -0.5f, 0.5f, NULL);
    else
        add_init(m, "w", 4, (int64_t[]){C, 4 / group, 3, 3}, -0.5f, 0.5f, NULL);
    if (bias) add_init(m, "b", 1, &C, -0.5f, 0.5f, NULL);
    od_node *n =
        add_node(m, transpose ? "ConvTranspose" : "Conv", "conv", bias ? "x,w,b" : "x,w", "c");
    attr_int(n, "group", group);
    attr_ints(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    n = add_node(m, "BatchNormalization", "od_bn_0", add_bn_params(m, "c", "bn", C), "y");
    attr_float(n, "epsilon", 1e-3f);
    add_output(m, "y");
    od_pass_stats st;
    od_model *o = optimized(m, &st, what);
    if (o) {
        check(st.bn_folded == 1 && count_op(o, "BatchNormalization") == 0 && o->graph.n_nodes == 1,
              what, "%d folded, %d nodes left", st.bn_folded, o->graph.n_nodes);
        check(o->graph.n_inits == 2, what, "%d initializers (want weight and bias)",
              o->graph.n_inits);
        check(strcmp(o->graph.values[o->graph.outputs[0]].name, "y") == 0, what,
              "the output is now \"%s\"", o->graph.values[o->graph.outputs[0]].name);
        /* plans fold it too (both through od_bn_fold_into_conv); the reference keeps the BN as
         * a step of its own, the conv's output being read twice once it is also an output */
        check(!plan_runs(m, "BatchNormalization") && plan_runs(m, transpose ? "ConvTranspose" : "Conv"), what,
              "the plan still runs the BN");
        add_output(m, "c");
        check(plan_runs(m, "BatchNormalization"), what, "the reference plan folds the BN");
        check_first_output(m, o, 1e-5, what);
    }
    od_model_destroy(o);
    od_model_destroy(m);
}

/* Conv -> BN -> Relu: plans fold the BN and then fuse the Relu into the Conv: one step. */
static void test_plan_conv_bn_relu(void) {
    const char *what = "plan: Conv + BN + Relu in one step";
    od_model *m = new_model(13);
    add_input(m, "x", 4, (int64_t[]){-1, 3, 5, 5});
    int64_t C = 4;
    add_init(m, "w", 4, (int64_t[]){C, 3, 3, 3}, -0.5f, 0.5f, NULL);
    add_node(m, "Conv", "conv", "x,w", "c");
    add_node(m, "BatchNormalization", "bn", add_bn_params(m, "c", "bn", C), "b");
    add_node(m, "Relu", "relu", "b", "y");
    add_output(m, "y");
    od_model *o = clone(m);
    check(o && !plan_runs(o, "BatchNormalization") && !plan_runs(o, "Relu"), what, "BN or Relu left as steps");
    add_output(m, "c"); /* the reference: nothing folded or fused */
    check(plan_runs(m, "BatchNormalization") && plan_runs(m, "Relu"), what, "the reference plan folds");
    if (o) check_first_output(m, o, 1e-5, what);
    od_model_destroy(o);
    od_model_destroy(m);
}

static void test_bn_gemm(int trans_b, int c_rank, float beta) {
    char what[96];
    snprintf(what, sizeof what, "BN after Gemm (transB %d, C rank %d, beta %g)", trans_b, c_rank,
             beta);
    od_model *m = new_model(13);
    add_input(m, "x", 2, (int64_t[]){-1, 5});
    int64_t N = 7;
    add_init(m, "w", 2, trans_b ? (int64_t[]){N, 5} : (int64_t[]){5, N}, -1, 1, NULL);
    if (c_rank == 0) add_init(m, "c", 0, NULL, -1, 1, NULL);
    if (c_rank == 1) add_init(m, "c", 1, &N, -1, 1, NULL);
    if (c_rank == 2) add_init(m, "c", 2, (int64_t[]){1, N}, -1, 1, NULL);
    od_node *n = add_node(m, "Gemm", "gemm", c_rank >= 0 ? "x,w,c" : "x,w", "g");
    attr_int(n, "transB", trans_b);
    attr_float(n, "alpha", 0.75f);
    attr_float(n, "beta", beta);
    add_node(m, "BatchNormalization", "bn", add_bn_params(m, "g", "bn", N), "y");
    add_output(m, "y");
    od_pass_stats st;
    od_model *o = optimized(m, &st, what);
    if (o) check(st.bn_folded == 1 && o->graph.n_nodes == 1, what, "%d folded", st.bn_folded);
    od_model_destroy(o);
    od_model_destroy(m);
}

/* Conv output used twice, or weights shared: BN must not fold, or must fold on a copy. */
static void test_bn_guards(void) {
    const char *what = "BN guards";
    od_model *m = new_model(13);
    add_input(m, "x", 4, (int64_t[]){-1, 3, 5, 5});
    add_init(m, "w", 4, (int64_t[]){3, 3, 1, 1}, -1, 1, NULL);
    add_node(m, "Conv", "conv1", "x,w", "c1");
    add_node(m, "BatchNormalization", "bn1", add_bn_params(m, "c1", "bn1", 3), "y1");
    add_node(m, "Relu", "relu_c1", "c1", "r1"); /* second consumer of c1: no fold */
    add_node(m, "Conv", "conv2", "x,w", "c2");  /* same weight as conv1: fold on a copy */
    add_node(m, "BatchNormalization", "bn2", add_bn_params(m, "c2", "bn2", 3), "y2");
    add_output(m, "y1");
    add_output(m, "r1");
    add_output(m, "y2");
    od_pass_stats st;
    od_model *o = optimized(m, &st, what);
    if (o) {
        check(st.bn_folded == 1 && count_op(o, "BatchNormalization") == 1, what,
              "%d folded, %d BN left (want 1 and 1)", st.bn_folded,
              count_op(o, "BatchNormalization"));
        check(od_graph_find_value(&o->graph, "w") >= 0 &&
                  od_graph_find_value(&o->graph, "w_bn_folded") >= 0,
              what, "the shared weight should stay and a folded copy appear");
    }
    od_model_destroy(o);
    od_model_destroy(m);
}

static void test_dropout_identity(void) {
    const char *what = "Dropout and Identity";
    od_model *m = new_model(13);
    add_input(m, "x", 2, (int64_t[]){-1, 4});
    add_node(m, "Relu", "relu", "x", "r");
    add_node(m, "Dropout", "drop", "r", "d");
    add_node(m, "Identity", "id_mid", "d", "i");
    add_node(m, "Sigmoid", "sig", "i", "s");
    add_node(m, "Identity", "id_out", "s", "y");         /* y is an output: sig writes y */
    add_node(m, "Identity", "id_in", "x", "xi");         /* input straight to an output: stays */
    add_node(m, "Dropout", "drop_mask", "r", "dm,mask"); /* mask used: stays */
    add_node(m, "Cast", "cast_mask", "mask", "maskf");
    od_pass_set_attr_int(&m->graph.nodes[m->graph.n_nodes - 1], "to", OD_DTYPE_FLOAT, NULL);
    add_output(m, "y");
    add_output(m, "xi");
    add_output(m, "dm");
    add_output(m, "maskf");
    od_pass_stats st;
    od_model *o = optimized(m, &st, what);
    if (o) {
        check(st.dropped == 3, what, "%d dropped (want 3)", st.dropped);
        check(count_op(o, "Identity") == 1 && count_op(o, "Dropout") == 1, what,
              "%d Identity, %d Dropout left (want 1, 1)", count_op(o, "Identity"),
              count_op(o, "Dropout"));
        const char *names[] = {"y", "xi", "dm", "maskf"};
        for (int i = 0; i < 4; i++)
            check(o->graph.n_outputs == 4 &&
                      strcmp(o->graph.values[o->graph.outputs[i]].name, names[i]) == 0,
                  what, "output %d is not \"%s\"", i, names[i]);
        int s = -1;
        for (int i = 0; i < o->graph.n_nodes; i++)
            if (!strcmp(o->graph.nodes[i].op_type, "Sigmoid")) s = i;
        check(s >= 0 && !strcmp(o->graph.values[o->graph.nodes[s].outputs[0]].name, "y"), what,
              "Sigmoid should write \"y\"");
    }
    od_model_destroy(o);
    od_model_destroy(m);
}

static void test_dead_shared_docs(void) {
    const char *what = "dead nodes, unused and shared initializers, doc strings";
    od_model *m = new_model(13);
    m->doc_string = strdup("model doc");
    m->graph.doc_string = strdup("graph doc");
    add_input(m, "x", 2, (int64_t[]){-1, 4});
    float w[16];
    for (int i = 0; i < 16; i++)
        w[i] = frand(-1, 1);
    add_init(m, "w1", 2, (int64_t[]){4, 4}, 0, 0, w);
    add_init(m, "w2", 2, (int64_t[]){4, 4}, 0, 0, w); /* equal to w1 */
    add_init(m, "w3", 2, (int64_t[]){2, 8}, 0, 0, w); /* same bytes, other dims: not shared */
    add_init(m, "unused", 1, (int64_t[]){10}, -1, 1, NULL);
    od_node *n = add_node(m, "MatMul", "mm1", "x,w1", "a");
    n->doc_string = strdup("node doc");
    add_node(m, "MatMul", "mm2", "a,w2", "b");
    add_node(m, "Reshape", "dead_reshape", "w3,shape", "dead1");
    add_int64_init(m, "shape", 1, (int64_t[]){1}, (int64_t[]){16});
    add_node(m, "Relu", "dead_relu", "dead1", "dead2");
    add_output(m, "b");
    od_pass_stats st;
    od_model *o = optimized(m, &st, what);
    if (o) {
        check(st.shared_inits == 1, what, "%d shared (want 1)", st.shared_inits);
        check(o->graph.n_nodes == 2 && o->graph.n_inits == 1, what,
              "%d nodes, %d initializers left (want 2, 1)", o->graph.n_nodes, o->graph.n_inits);
        bool docs = o->doc_string || o->graph.doc_string;
        for (int i = 0; i < o->graph.n_nodes; i++)
            docs |= o->graph.nodes[i].doc_string != NULL;
        check(!docs, what, "doc strings left");
    }
    od_model_destroy(o);
    od_model_destroy(m);
}

/* Default-valued attributes and value_info go; values between nodes get short names. */
static void test_compact_encoding(void) {
    const char *what = "compact encoding";
    od_model *m = new_model(13);
    add_input(m, "x", 4, (int64_t[]){-1, 2, 5, 5});
    add_init(m, "w", 4, (int64_t[]){3, 2, 3, 3}, -1, 1, NULL);
    od_node *n = add_node(m, "Conv", "conv", "x,w", "a_very_long_intermediate_name");
    attr_int(n, "group", 1);
    attr_ints(n, "strides", 2, (int64_t[]){1, 1});
    attr_ints(n, "dilations", 2, (int64_t[]){1, 1});
    attr_ints(n, "pads", 4, (int64_t[]){0, 0, 0, 0});
    attr_ints(n, "kernel_shape", 2, (int64_t[]){3, 3});
    n = add_node(m, "MaxPool", "pool", "a_very_long_intermediate_name", "y");
    attr_ints(n, "kernel_shape", 2, (int64_t[]){2, 2});
    attr_ints(n, "strides", 2, (int64_t[]){2, 2}); /* not the default: stays */
    attr_int(n, "ceil_mode", 0);
    add_output(m, "y");
    int v = od_graph_find_value(&m->graph, "a_very_long_intermediate_name");
    m->graph.value_infos = malloc(sizeof(int));
    m->graph.value_infos[m->graph.n_value_infos++] = v;
    od_pass_stats st;
    od_model *o = optimized(m, &st, what);
    if (o) {
        const od_node *c = &o->graph.nodes[0], *p = &o->graph.nodes[1];
        check(c->n_attrs == 1 && od_node_attr(c, "kernel_shape"), what,
              "Conv keeps %d attributes (want kernel_shape only)", c->n_attrs);
        check(p->n_attrs == 2 && od_node_attr(p, "strides"), what,
              "MaxPool keeps %d attributes (want kernel_shape and strides)", p->n_attrs);
        check(o->graph.n_value_infos == 0, what, "value_info kept");
        check(!strcmp(o->graph.values[c->outputs[0]].name, "Conv_0") &&
                  !strcmp(o->graph.values[p->outputs[0]].name, "y") &&
                  !strcmp(o->graph.values[c->inputs[1]].name, "w") && !strcmp(c->name, "conv"),
              what, "names: %s, %s", o->graph.values[c->outputs[0]].name,
              o->graph.values[p->outputs[0]].name);
    }
    od_model_destroy(o);
    od_model_destroy(m);
}

/* Shape -> Gather(1) -> Unsqueeze -> Concat folds; Shape -> Gather(0) (the batch) must not. */
static void test_fold_shape_chain(void) {
    const char *what = "constant folding of shape chains";
    od_model *m = new_model(13);
    add_input(m, "x", 3, (int64_t[]){-1, 3, 4});
    add_int64_init(m, "one", 0, NULL, (int64_t[]){1});
    add_int64_init(m, "zero", 0, NULL, (int64_t[]){0});
    add_int64_init(m, "axes0", 1, (int64_t[]){1}, (int64_t[]){0});
    add_int64_init(m, "minus1", 1, (int64_t[]){1}, (int64_t[]){-1});
    add_node(m, "Shape", "shape", "x", "sh");
    add_node(m, "Gather", "g1", "sh,one", "d1");
    add_node(m, "Unsqueeze", "u1", "d1,axes0", "d1u");
    add_node(m, "Concat", "cat1", "minus1,d1u", "s1");
    attr_int(&m->graph.nodes[m->graph.n_nodes - 1], "axis", 0);
    add_node(m, "Gather", "g0", "sh,zero", "d0");
    add_node(m, "Unsqueeze", "u0", "d0,axes0", "d0u");
    add_node(m, "Concat", "cat0", "d0u,minus1", "s0");
    attr_int(&m->graph.nodes[m->graph.n_nodes - 1], "axis", 0);
    add_node(m, "Reshape", "r1", "x,s1", "x1");  /* [-1, 3] */
    add_node(m, "Reshape", "r0", "x1,s0", "x0"); /* [N, -1] */
    od_node *c = add_node(m, "Constant", "k", "", "kv");
    c->attrs = calloc(1, sizeof *c->attrs);
    c->n_attrs = 1;
    c->attrs[0].name = strdup("value");
    c->attrs[0].type = OD_ATTR_TENSOR;
    c->attrs[0].t = od_tensor_create(NULL, OD_DTYPE_FLOAT, 0, NULL, NULL);
    *(float *)c->attrs[0].t->data = 3.0f;
    add_node(m, "Mul", "mul", "x0,kv", "y");
    add_output(m, "y");
    od_pass_stats st;
    od_model *o = optimized(m, &st, what);
    if (o) {
        /* g1, u1, cat1 and the Constant fold; Shape, g0, u0, cat0 stay */
        check(st.folded_consts == 4, what, "%d folded (want 4)", st.folded_consts);
        check(count_op(o, "Shape") == 1 && count_op(o, "Gather") == 1 &&
                  count_op(o, "Constant") == 0 && od_graph_find_value(&o->graph, "s1") >= 0 &&
                  o->graph.values[od_graph_find_value(&o->graph, "s1")].init,
              what, "unexpected graph after folding (%d nodes)", o->graph.n_nodes);
        const od_value *in = &o->graph.values[o->graph.inputs[0]];
        check(in->rank == 3 && in->dims[0].value < 0 && in->dims[0].param &&
                  !strcmp(in->dims[0].param, "N"),
              what, "the batch dim of the input is no longer symbolic");
    }
    od_model_destroy(o);
    od_model_destroy(m);
}

/* A model for weight storage: Conv -> Relu -> Flatten -> Gemm (transB) -> MatMul. */
static od_model *weights_model(int64_t opset) {
    od_model *m = new_model(opset);
    add_input(m, "x", 4, (int64_t[]){-1, 3, 6, 6});
    add_init(m, "conv.weight", 4, (int64_t[]){8, 3, 3, 3}, -0.3f, 0.3f, NULL);
    add_init(m, "conv.bias", 1, (int64_t[]){8}, -0.1f, 0.1f, NULL);
    add_init(m, "fc.weight", 2, (int64_t[]){16, 8 * 36}, -0.1f, 0.1f, NULL);
    add_init(m, "fc.bias", 1, (int64_t[]){16}, -0.1f, 0.1f, NULL);
    add_init(m, "head", 2, (int64_t[]){16, 5}, -0.5f, 0.5f, NULL);
    od_node *n = add_node(m, "Conv", "conv", "x,conv.weight,conv.bias", "c");
    attr_ints(n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    add_node(m, "Relu", "relu", "c", "r");
    add_node(m, "Flatten", "flat", "r", "f");
    n = add_node(m, "Gemm", "fc", "f,fc.weight,fc.bias", "h");
    attr_int(n, "transB", 1);
    add_node(m, "MatMul", "head", "h,head", "y");
    add_output(m, "y");
    return m;
}

static double max_abs_out(const od_model *m) {
    size_t n = 0;
    float *y = run(m, 3, &n, "reference");
    double r = 0;
    for (size_t i = 0; y && i < n; i++)
        r = fmax(r, fabs(y[i]));
    free(y);
    return r;
}

static void test_store(od_weight_format fmt, double tol) {
    char what[64];
    snprintf(what, sizeof what, "weights %s", od_weight_format_name(fmt));
    od_model *m = weights_model(13), *c = clone(m);
    od_error err = {0};
    od_weight_stats ws;
    if (od_store_weights_ex(c, fmt, &ws, &err)) {
        check(false, what, "%s", err.message);
    } else {
        od_model *again = clone(c);
        const char *op = fmt == OD_WEIGHTS_F16 ? "Cast" : "DequantizeLinear";
        check(ws.tensors == 3 && count_op(again, op) == 3, what, "%d tensors, %d %s (want 3)",
              ws.tensors, count_op(again, op), op);
        /* f16: |error| <= 2^-11 relative per weight; int8: scale / 2 per weight. The bound is
         * on the outputs relative to their largest magnitude. */
        double ref = max_abs_out(m);
        for (int64_t batch = 1; batch <= 3; batch += 2) {
            size_t na, nb;
            float *a = run(m, batch, &na, what), *b = run(again, batch, &nb, what);
            double worst = 0;
            for (size_t i = 0; a && b && i < na; i++)
                worst = fmax(worst, fabs(a[i] - b[i]));
            check(a && b && worst <= tol * ref, what, "batch %lld: max |diff| %.3g > %.3g",
                  (long long)batch, worst, tol * ref);
            free(a);
            free(b);
        }
        /* optimizing again keeps the storage (no folding back to float32) */
        od_pass_stats st;
        od_model *o = optimized(again, &st, what);
        if (o)
            check(count_op(o, op) == 3 && st.folded_consts == 0, what,
                  "optimize undid the weight storage");
        size_t expect = fmt == OD_WEIGHTS_F16 ? ws.bytes_before / 2 : ws.bytes_before / 4;
        check(ws.bytes_after >= expect && ws.bytes_after <= expect + 200, what,
              "stored %zu bytes for %zu float32 bytes", ws.bytes_after, ws.bytes_before);
        od_model_destroy(o);
        od_model_destroy(again);
    }
    od_model_destroy(c);
    od_model_destroy(m);
}

static void test_int8_opset_raise(void) {
    const char *what = "int8 at opset 11 (raised to 13)";
    od_model *m = new_model(11);
    add_input(m, "x", 2, (int64_t[]){-1, 6});
    add_init(m, "w", 2, (int64_t[]){6, 4}, -1, 1, NULL);
    add_node(m, "MatMul", "mm", "x,w", "a");
    od_node *n = add_node(m, "Unsqueeze", "unsq", "a", "u");
    attr_ints(n, "axes", 1, (int64_t[]){1});
    n = add_node(m, "Squeeze", "sq", "u", "s");
    attr_ints(n, "axes", 1, (int64_t[]){1});
    n = add_node(m, "Dropout", "drop", "s", "d");
    attr_float(n, "ratio", 0.2f);
    n = add_node(m, "Clip", "clip", "d", "cl");
    n = add_node(m, "ReduceSum", "rs", "cl", "sum");
    attr_ints(n, "axes", 1, (int64_t[]){1});
    add_node(m, "Softmax", "sm", "cl", "y");
    add_output(m, "y");
    add_output(m, "sum");
    od_model *c = clone(m);
    od_error err = {0};
    od_weight_stats ws;
    if (od_store_weights_ex(c, OD_WEIGHTS_INT8, &ws, &err)) {
        check(false, what, "%s", err.message);
    } else {
        od_model *again = clone(c);
        check(ws.opset_before == 11 && ws.opset_after == 13 && od_model_opset(again, "") == 13 &&
                  again->ir_version >= 7,
              what, "opset %lld -> %lld, ir %lld", (long long)ws.opset_before,
              (long long)ws.opset_after, (long long)again->ir_version);
        bool attrs_gone = true;
        for (int i = 0; i < again->graph.n_nodes; i++) {
            const od_node *k = &again->graph.nodes[i];
            if (od_node_attr(k, "axes") || od_node_attr(k, "ratio")) attrs_gone = false;
        }
        check(attrs_gone, what, "axes/ratio attributes left at opset 13");
        size_t na, nb;
        float *a = run(m, 3, &na, what), *b = run(again, 3, &nb, what);
        check(a && b && na == nb && max_rel(a, b, na) < 0.05, what, "outputs differ by %.3g",
              a && b ? max_rel(a, b, na) : -1.0);
        free(a);
        free(b);
        od_model_destroy(again);
    }
    od_model_destroy(c);
    od_model_destroy(m);
}

static void test_int8_refused(void) {
    const char *what = "int8 refused on an opset-11 Softmax over channels";
    od_model *m = new_model(11);
    add_input(m, "x", 4, (int64_t[]){-1, 2, 3, 3});
    add_init(m, "w", 4, (int64_t[]){4, 2, 1, 1}, -1, 1, NULL);
    add_node(m, "Conv", "conv", "x,w", "c");
    add_node(m, "Softmax", "softmax_c", "c", "y");
    add_output(m, "y");
    od_bytes before = {0}, after = {0};
    od_error err = {0};
    od_model_encode(m, &before, NULL);
    od_status st = od_store_weights(m, OD_WEIGHTS_INT8, &err);
    od_model_encode(m, &after, NULL);
    check(st == OD_STATUS_UNSUPPORTED && strstr(err.message, "softmax_c") &&
              strstr(err.message, "opset 13"),
          what, "status %s: %s", od_status_name(st), err.message);
    check(before.len == after.len && memcmp(before.data, after.data, before.len) == 0, what,
          "the model changed although refused");
    od_bytes_free(&before);
    od_bytes_free(&after);
    od_model_destroy(m);
}

/* DequantizeLinear on graph inputs: per tensor with a uint8 zero point, per axis int8. */
static void test_dequantize_op(void) {
    const char *what = "DequantizeLinear";
    for (int per_axis = 0; per_axis < 2; per_axis++) {
        od_model *m = new_model(13);
        od_graph *g = &m->graph;
        int x = od_graph_intern_value(g, "x");
        g->values[x].dtype = per_axis ? OD_DTYPE_INT8 : OD_DTYPE_UINT8;
        g->values[x].rank = 2;
        g->values[x].has_type = true;
        g->values[x].dims[0].value = 2;
        g->values[x].dims[1].value = 3;
        g->inputs = malloc(sizeof(int));
        g->inputs[g->n_inputs++] = x;
        float scales[3] = {0.5f, 2.0f, -1.0f};
        if (per_axis) {
            add_init(m, "s", 1, (int64_t[]){3}, 0, 0, scales);
            od_node *n = add_node(m, "DequantizeLinear", "dq", "x,s", "y");
            attr_int(n, "axis", -1);
        } else {
            add_init(m, "s", 0, NULL, 0, 0, scales);
            od_tensor *zp = od_tensor_create("zp", OD_DTYPE_UINT8, 0, NULL, NULL);
            *(uint8_t *)zp->data = 128;
            int v = od_graph_intern_value(g, "zp");
            g->values[v].init = zp;
            g->inits = realloc(g->inits, sizeof(int) * (size_t)(g->n_inits + 1));
            g->inits[g->n_inits++] = v;
            add_node(m, "DequantizeLinear", "dq", "x,s,zp", "y");
        }
        add_output(m, "y");
        od_error err = {0};
        od_plan *p = NULL;
        if (od_graph_check(g, &err) ||
            od_plan_create(g, &(od_plan_options){.batch = 1, .threads = 1}, &p, &err)) {
            check(false, what, "%s", err.message);
            od_model_destroy(m);
            continue;
        }
        uint8_t *in = od_plan_input(p, 0)->data;
        const uint8_t raw[6] = {0, 1, 127, 128, 200, 255};
        memcpy(in, raw, 6);
        od_plan_run(p, &err);
        const float *y = od_plan_output(p, 0)->data;
        bool ok = true;
        for (int i = 0; i < 6; i++) {
            float want = per_axis ? (float)(int8_t)raw[i] * scales[i % 3]
                                  : ((float)raw[i] - 128.0f) * scales[0];
            if (y[i] != want) ok = false;
        }
        check(ok, what, "%s: wrong values", per_axis ? "per axis" : "per tensor");
        od_plan_destroy(p);
        od_model_destroy(m);
    }
}

/* float16 storage rounds to nearest even and saturates instead of overflowing. */
static void test_half_rounding(void) {
    const char *what = "float16 rounding";
    const float in[8] = {1.0f, 65519.0f, 1e6f, -1e6f, 1e-9f, 5.96e-8f, 1.0f + 1.0f / 4096, 0.1f};
    const float want[8] = {1.0f, 65504.0f,      65504.0f, -65504.0f,
                           0.0f, 5.9604645e-8f, 1.0f,     0.0999755859375f};
    od_model *m = new_model(13);
    add_input(m, "x", 2, (int64_t[]){-1, 8});
    add_init(m, "w", 2, (int64_t[]){8, 1}, 0, 0, in);
    add_node(m, "MatMul", "mm", "x,w", "y");
    add_output(m, "y");
    od_error err = {0};
    if (od_store_weights(m, OD_WEIGHTS_F16, &err)) {
        check(false, what, "%s", err.message);
    } else {
        int v = od_graph_find_value(&m->graph, "w_fp16");
        float *f = v >= 0 ? od_tensor_to_float(m->graph.values[v].init, &err) : NULL;
        for (int i = 0; f && i < 8; i++)
            check(f[i] == want[i], what, "%g became %.9g, want %.9g", in[i], f[i], want[i]);
        check(f != NULL, what, "no w_fp16 initializer");
        free(f);
    }
    od_model_destroy(m);
}

static void test_meta(void) {
    const char *what = "metadata and SHA-256";
    od_model *m = new_model(13);
    od_error err = {0};
    od_model_set_meta(m, "a", "1", &err);
    od_model_set_meta(m, "preprocess.scale", "0.0039", &err);
    od_model_set_meta(m, "a", "2", &err);
    check(m->n_meta == 2 && !strcmp(od_model_meta(m, "a"), "2"), what, "set did not replace");
    check(od_model_set_meta(m, "", "x", &err) == OD_STATUS_INVALID_ARGUMENT, what,
          "an empty key was accepted");
    od_model *d = new_model(13);
    od_model_copy_meta(d, m, "preprocess.", &err);
    check(d->n_meta == 1 && od_model_meta(d, "preprocess.scale"), what, "copy by prefix");
    char hex[65];
    od_sha256_hex("abc", 3, hex);
    check(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), what,
          "sha256(abc) = %s", hex);
    char big[1000];
    memset(big, 'a', sizeof big);
    od_sha256_hex(big, 56, hex); /* padding spills into a second block */
    check(!strcmp(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"), what,
          "sha256(56 x a) = %s", hex);
    od_model_destroy(d);
    od_model_destroy(m);
}

static void test_formats(void) {
    od_weight_format f;
    check(!od_weight_format_parse("f16", &f, NULL) && f == OD_WEIGHTS_F16 &&
              !od_weight_format_parse("int8", &f, NULL) && f == OD_WEIGHTS_INT8 &&
              od_weight_format_parse("int4", &f, NULL) == OD_STATUS_INVALID_ARGUMENT,
          "weight format names", "parse failed");
}

/* The builder's canonical form: a bias shared by two Convs (through an Identity and by name)
 * gets one copy per Conv; a weight tied between two MatMuls stays one tensor; outputs unchanged;
 * optimize shares the copies again. */
static void test_canonicalize(void) {
    const char *what = "canonicalize";
    od_model *m = new_model(13);
    int64_t xd[4] = {-1, 4, 5, 5}, wd[4] = {4, 4, 3, 3}, bd[1] = {4}, td[2] = {5, 5};
    float zeros[4] = {0};
    add_input(m, "x", 4, xd);
    add_init(m, "w1", 4, wd, -1, 1, NULL);
    add_init(m, "w2", 4, wd, -1, 1, NULL);
    add_init(m, "b", 1, bd, 0, 0, zeros);
    add_init(m, "tied", 2, td, -1, 1, NULL);
    add_node(m, "Identity", "id", "b", "b_alias");
    attr_ints(add_node(m, "Conv", "c1", "x,w1,b", "a"), "pads", 4, (int64_t[]){1, 1, 1, 1});
    attr_ints(add_node(m, "Conv", "c2", "a,w2,b_alias", "c"), "pads", 4, (int64_t[]){1, 1, 1, 1});
    attr_ints(add_node(m, "Conv", "c3", "c,w2,b", "d"), "pads", 4, (int64_t[]){1, 1, 1, 1});
    add_node(m, "MatMul", "m1", "d,tied", "e");
    add_node(m, "MatMul", "m2", "e,tied", "y");
    add_output(m, "y");
    od_model *o = clone(m);
    od_pass_stats st;
    od_error err = {0};
    if (!o || od_canonicalize(o, &st, &err)) {
        check(false, what, "od_canonicalize: %s", err.message);
        od_model_destroy(o);
        od_model_destroy(m);
        return;
    }
    const od_graph *g = &o->graph;
    int biases[3], n_bias = 0, tied[2], n_tied = 0, w2[2] = {-1, -2};
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (strcmp(n->op_type, "Conv") == 0 && n_bias < 3) biases[n_bias++] = n->inputs[2];
        if (strcmp(n->name, "c2") == 0) w2[0] = n->inputs[1];
        if (strcmp(n->name, "c3") == 0) w2[1] = n->inputs[1];
        if (strcmp(n->op_type, "MatMul") == 0 && n_tied < 2) tied[n_tied++] = n->inputs[1];
    }
    check(count_op(o, "Identity") == 0 && n_bias == 3, what, "Identity left or Convs lost");
    check(n_bias == 3 && biases[0] != biases[1] && biases[0] != biases[2] &&
              biases[1] != biases[2] && g->values[biases[0]].init && g->values[biases[1]].init &&
              g->values[biases[2]].init,
          what, "the three Convs do not each own a bias initializer");
    check(n_tied == 2 && tied[0] == tied[1], what, "the tied MatMul weight was copied");
    check(w2[0] == w2[1], what, "a conv weight shared by two Convs was copied");
    check(st.unshared_inits == 1, what, "%d copies made (want 1: c3 reads b after c1)", st.unshared_inits);
    check_same_outputs(m, o, 1e-6, what);
    od_model *back = optimized(o, &st, what);
    if (back) check(st.shared_inits >= 2, what, "optimize shared %d again", st.shared_inits);
    od_model_destroy(back);
    od_model_destroy(o);
    od_model_destroy(m);
}

int main(void) {
    for (int bias = 0; bias < 2; bias++) {
        test_bn_conv(bias, false, 1);
        test_bn_conv(bias, false, 2);
        test_bn_conv(bias, true, 1);
        test_bn_conv(bias, true, 2);
    }
    for (int t = 0; t < 2; t++)
        for (int c = -1; c <= 2; c++)
            test_bn_gemm(t, c, c == 1 ? 0.5f : 1.0f);
    test_bn_guards();
    test_dropout_identity();
    test_dead_shared_docs();
    test_fold_shape_chain();
    test_compact_encoding();
    test_store(OD_WEIGHTS_F16, 2e-3);
    test_store(OD_WEIGHTS_INT8, 3e-2);
    test_int8_opset_raise();
    test_int8_refused();
    test_plan_conv_bn_relu();
    test_dequantize_op();
    test_half_rounding();
    test_meta();
    test_formats();
    test_canonicalize();
    printf("passes: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

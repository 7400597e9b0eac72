/* Plan-time fusions (runtime/plan_fuse.c, plan.c find_fusions): a plan with them gives the
 * outputs of the same plan made with od_plan_options.no_fusion within 1e-6 (relative to
 * max(1, |y|)), at batch 1 and 3, 1 and 2 threads, and has exactly the steps fewer the fusions
 * promise:
 *   Mul(x, HardSigmoid(x; 1/6, 1/2)) -> HardSwish      Mul(Sigmoid(x), x) -> SiLU
 *   Add + Relu -> one Add                               Conv + Clip(0, 6) -> one Conv
 *   Conv + Add (a residual) + Relu -> one Conv          Conv + SiLU / HardSwish -> one Conv
 * and nothing fuses where it must not: HardSigmoid with other constants, a gate computed from
 * another tensor (squeeze-excitation), an activation output used twice. The fused steps are also
 * checked against arithmetic done here: SiLU within 4 ulp (both paths), a channels-last Mul / Add by a
 * per-channel gate with its Relu fused in.
 * The torchvision fixtures (build/real_exports, tests/export_torchvision.py) are compared the
 * same way when present, on the exporter's own input (PATH.in.npy), within 1e-4: HardSwish and
 * SiLU round differently from their unfused spellings (an ulp or so per element), and 50 layers
 * amplify that to a few 1e-6..1e-5. Ends with `test_fusion: N passed, N failed, N skipped`. */
#include "od_onnx.h"
#include "passes_internal.h"
#include "od_runtime.h"
#include "op.h"
#include "test_check.h"
#include "test_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int n_skip;


static void set_ints(od_node *n, const char *name, int count, int64_t v) {
    n->attrs = realloc(n->attrs, sizeof *n->attrs * (size_t)(n->n_attrs + 1));
    od_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    a->type = OD_ATTR_INTS;
    a->count = count;
    a->ints = calloc((size_t)count, sizeof(int64_t));
    for (int k = 0; k < count; k++) a->ints[k] = v;
}

/* A k x k Conv, padded to keep the size at stride 1, with a bias; group 0 means 1. */
static void add_conv_k(od_model *m, const char *name, const char *x, const char *y, int64_t cin, int64_t cout,
                       int64_t k, int64_t group, int64_t stride) {
    char w[64], b[64], ins[256];
    snprintf(w, sizeof w, "%s_w", name);
    snprintf(b, sizeof b, "%s_b", name);
    add_init(m, w, 4, (int64_t[]){cout, cin / (group ? group : 1), k, k}, -0.3f, 0.3f, NULL);
    add_init(m, b, 1, &cout, -0.2f, 0.2f, NULL);
    snprintf(ins, sizeof ins, "%s,%s,%s", x, w, b);
    od_node *n = add_node(m, "Conv", name, ins, y);
    set_ints(n, "pads", 4, k / 2);
    if (stride > 1) set_ints(n, "strides", 2, stride);
    if (group > 1) od_pass_set_attr_int(n, "group", group, NULL);
}

static void add_conv(od_model *m, const char *name, const char *x, const char *y, int64_t c) {
    add_conv_k(m, name, x, y, c, c, 3, 0, 1);
}

/* Every fusion once, and the near misses that must not fuse. */
static od_model *fusion_graph(void) {
    od_model *m = new_model(13);
    const int64_t C = 8;
    add_input(m, "x", 4, (int64_t[]){-1, C, 7, 7});
    add_conv(m, "conv1", "x", "c1", C);
    od_pass_set_attr_float(add_node(m, "HardSigmoid", "hsig1", "c1", "h1"), "alpha", 1.0f / 6.0f, NULL);
    add_node(m, "Mul", "hswish1", "c1,h1", "hs"); /* -> HardSwish */
    add_conv(m, "conv2", "hs", "c2", C);
    add_node(m, "Sigmoid", "sig2", "c2", "s2");
    add_node(m, "Mul", "silu2", "s2,c2", "si"); /* -> SiLU (the gate first) */
    add_node(m, "Add", "add3", "si,hs", "a3");
    add_node(m, "Relu", "relu3", "a3", "r3"); /* -> into the Add */
    add_conv(m, "conv4", "r3", "c4", C);
    add_init(m, "lo", 0, NULL, 0.0f, 0.0f, NULL);
    add_init(m, "hi", 0, NULL, 6.0f, 6.0f, NULL);
    add_node(m, "Clip", "clip4", "c4,lo,hi", "k4"); /* -> into the Conv */
    /* near misses */
    add_node(m, "HardSigmoid", "hsig5", "k4", "h5"); /* alpha 0.2: not hardswish */
    add_node(m, "Mul", "mul5", "k4,h5", "m5");
    add_node(m, "GlobalAveragePool", "gap6", "m5", "g6");
    od_pass_set_attr_float(add_node(m, "HardSigmoid", "hsig6", "g6", "h6"), "alpha", 1.0f / 6.0f, NULL);
    add_node(m, "Mul", "se6", "m5,h6", "e6"); /* a gate from another tensor */
    add_node(m, "Sigmoid", "sig7", "e6", "s7");
    add_node(m, "Mul", "mul7", "e6,s7", "m7");
    add_node(m, "Add", "add7", "m7,s7", "y"); /* s7 used twice: no SiLU */
    add_output(m, "y");
    od_error err = {0};
    if (od_graph_check(&m->graph, &err)) {
        check(false, "fusion graph", "%s", err.message);
        od_model_destroy(m);
        return NULL;
    }
    return m;
}

/* Activations fused into the convolution producing x, on each of its paths at 1 and 2 threads:
 * SiLU (x * Sigmoid(x)) after conv_winograd (3x3; conv_wide's with OD_NO_WINOGRAD=1), conv_wide
 * (1x1 on one thread), XNNPACK's (1x1 on two threads) and the depthwise kernel (3x3; 5x5 at
 * stride 2 with a Clip fused in instead); a conv whose output has another use (no fusion: a SiLU
 * step); a HardSwish node after a 3x3 conv, and x * HardSigmoid(x) after the depthwise kernel. */
static od_model *conv_act_graph(void) {
    od_model *m = new_model(14);
    const int64_t C = 32;
    add_input(m, "x", 4, (int64_t[]){-1, C, 15, 17});
    const char *sig[][4] = {{"c1", "s1", "m1", NULL}, {"c2", "s2", "m2", NULL}, {"c3", "s3", "m3", NULL}};
    add_conv_k(m, "conv1", "x", "c1", C, C, 3, 0, 1);
    add_conv_k(m, "dw2", "m1", "c2", C, C, 3, C, 1);
    add_conv_k(m, "pw3", "m2", "c3", C, C, 1, 0, 1);
    for (int i = 0; i < 3; i++) {
        char sn[16], mn[16];
        snprintf(sn, sizeof sn, "sig%d", i + 1);
        snprintf(mn, sizeof mn, "mul%d", i + 1);
        add_node(m, "Sigmoid", sn, sig[i][0], sig[i][1]);
        add_node(m, "Mul", mn, i == 1 ? "s2,c2" : i == 0 ? "c1,s1" : "c3,s3", sig[i][2]);
    }
    add_conv_k(m, "dw4", "m3", "c4", C, C, 5, C, 2);
    add_init(m, "lo", 0, NULL, 0.0f, 0.0f, NULL);
    add_init(m, "hi", 0, NULL, 6.0f, 6.0f, NULL);
    add_node(m, "Clip", "clip4", "c4,lo,hi", "k4");
    add_conv_k(m, "conv5", "k4", "c5", C, C, 3, 0, 1); /* its output also feeds the Add: no fusion */
    add_node(m, "Sigmoid", "sig5", "c5", "s5");
    add_node(m, "Mul", "mul5", "c5,s5", "m5");
    add_node(m, "Add", "add5", "m5,c5", "a5");
    add_conv_k(m, "conv6", "a5", "c6", C, C, 3, 0, 1);
    add_node(m, "HardSwish", "hswish6", "c6", "h6");
    add_conv_k(m, "dw7", "h6", "c7", C, C, 3, C, 1);
    od_pass_set_attr_float(add_node(m, "HardSigmoid", "hsig7", "c7", "g7"), "alpha", 1.0f / 6.0f, NULL);
    add_node(m, "Mul", "hswish7", "c7,g7", "y");
    add_output(m, "y");
    od_error err = {0};
    if (od_graph_check(&m->graph, &err)) {
        check(false, "conv activation graph", "%s", err.message);
        od_model_destroy(m);
        return NULL;
    }
    return m;
}

/* A residual Add done in the conv producing one of its inputs (od_op_desc.fuses_residual), with
 * the Relu or Clip after it, on conv_winograd (3x3; conv_wide with OD_NO_WINOGRAD=1), conv_wide
 * (1x1 on one thread), XNNPACK (1x1 on two threads) and the depthwise kernel; and where it must not be: a conv output with another use, a skip
 * computed after the conv. */
static od_model *residual_graph(void) {
    od_model *m = new_model(13);
    const int64_t C = 32;
    add_input(m, "x", 4, (int64_t[]){-1, C, 15, 17});
    add_conv_k(m, "conv_a", "x", "a", C, C, 3, 0, 1);
    add_conv_k(m, "conv_b", "a", "b", C, C, 3, 0, 1);
    add_node(m, "Add", "add1", "b,x", "s1");
    add_node(m, "Relu", "relu1", "s1", "r1"); /* add1 and relu1 into conv_b */
    add_conv_k(m, "pw_c", "r1", "c", C, C, 1, 0, 1);
    add_node(m, "Add", "add2", "r1,c", "r2"); /* the conv's output second: into pw_c */
    add_conv_k(m, "dw_d", "r2", "d", C, C, 3, C, 1);
    add_node(m, "Add", "add3", "d,r2", "s3");
    add_init(m, "lo", 0, NULL, 0.0f, 0.0f, NULL);
    add_init(m, "hi", 0, NULL, 6.0f, 6.0f, NULL);
    add_node(m, "Clip", "clip3", "s3,lo,hi", "r3"); /* add3 and clip3 into dw_d */
    add_conv_k(m, "conv_e", "r3", "e", C, C, 3, 0, 1);
    add_node(m, "Add", "add4", "e,r3", "s4"); /* e is read twice: no fusion */
    add_node(m, "Add", "add5", "s4,e", "y5");
    add_conv_k(m, "conv_f", "y5", "f", C, C, 3, 0, 1);
    add_node(m, "Relu", "relu6", "y5", "w6"); /* computed after conv_f: add6 stays */
    add_node(m, "Add", "add6", "f,w6", "y");
    add_output(m, "y");
    od_error err = {0};
    if (od_graph_check(&m->graph, &err)) {
        check(false, "residual graph", "%s", err.message);
        od_model_destroy(m);
        return NULL;
    }
    return m;
}

/* The input run() feeds (repeated over the batch) instead of uniform [-3, 3) values, when set. */
static const od_tensor *given_input;

/* Runs g with or without fusions; returns output 0 (count in *n) and the step count. */
static float *run(const od_graph *g, int64_t batch, int threads, bool no_fusion, size_t *n,
                  int *steps, const char *what) {
    od_plan *p = NULL;
    od_error err = {0};
    od_plan_options o = {.batch = batch, .threads = threads, .profile = true, .no_fusion = no_fusion};
    if (od_plan_create(g, &o, &p, &err)) {
        check(false, what, "%s", err.message);
        return NULL;
    }
    uint32_t seed = 7u + (uint32_t)batch;
    for (int i = 0; i < od_plan_n_inputs(p); i++) {
        const od_plan_io *io = od_plan_input(p, i);
        for (size_t k = 0; k < io->nbytes / 4; k++) {
            seed = seed * 1103515245u + 12345u;
            ((float *)io->data)[k] = given_input ? ((const float *)given_input->data)[k % (given_input->nbytes / 4)]
                                                 : (float)(seed >> 8) / 16777216.0f * 6.0f - 3.0f;
        }
    }
    float *out = NULL;
    if (od_plan_run(p, &err)) {
        check(false, what, "%s", err.message);
    } else {
        const od_plan_io *y = od_plan_output(p, 0);
        out = malloc(y->nbytes);
        memcpy(out, y->data, y->nbytes);
        *n = y->nbytes / 4;
        const od_step_profile *prof;
        *steps = od_plan_profile(p, &prof);
    }
    od_plan_destroy(p);
    return out;
}

static bool has_step(const od_graph *g, const char *op) {
    od_plan *p = NULL;
    od_error err = {0};
    if (od_plan_create(g, &(od_plan_options){.batch = 1, .profile = true}, &p, &err)) return false;
    const od_step_profile *prof;
    int n = od_plan_profile(p, &prof);
    bool found = false;
    for (int s = 0; s < n; s++) found = found || strcmp(prof[s].op_type, op) == 0;
    od_plan_destroy(p);
    return found;
}

/* Fused against unfused within tol; expect_fewer < 0: do not check the step counts. */
static void compare(const od_graph *g, const char *name, int expect_fewer, const int64_t *batches,
                    double tol) {
    for (int b = 0; batches[b]; b++)
        for (int threads = 1; threads <= 2; threads++) {
            char what[256];
            snprintf(what, sizeof what, "%s batch %lld threads %d", name, (long long)batches[b], threads);
            size_t n0 = 0, n1 = 0;
            int s0 = 0, s1 = 0;
            float *y0 = run(g, batches[b], threads, true, &n0, &s0, what);
            float *y1 = run(g, batches[b], threads, false, &n1, &s1, what);
            if (y0 && y1 && n0 == n1) {
                double worst = 0;
                for (size_t i = 0; i < n0; i++) {
                    double d = fabs((double)y0[i] - y1[i]) / fmax(1.0, fabs(y0[i]));
                    if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
                }
                check(worst <= tol, what, "fused differs from unfused by %.3g (relative)", worst);
                if (expect_fewer >= 0)
                    check(s0 - s1 == expect_fewer, what, "%d steps unfused, %d fused: expected %d fewer",
                          s0, s1, expect_fewer);
            }
            free(y0);
            free(y1);
        }
}

static void test_real(const char *path, const char *op) {
    if (access(path, R_OK) != 0) {
        n_skip++;
        return;
    }
    od_model *m = NULL;
    od_error err = {0};
    if (od_model_load(path, &m, &err)) {
        check(false, path, "%s", err.message);
        return;
    }
    /* The exporter's own input (PATH.in.npy, standard normal): its BatchNorms are calibrated on
     * that, while uniform [-3, 3) blows efficientnet_b0's logits up to ~5,700, where one ulp in a
     * SiLU moves an output by 10% (and ONNX Runtime differs from us by as much). */
    char in_path[512];
    snprintf(in_path, sizeof in_path, "%.*s.in.npy", (int)(strlen(path) - strlen(".onnx")), path);
    od_tensor x = {0};
    given_input = od_npy_read(in_path, &x, &err) == OD_STATUS_OK ? &x : NULL;
    compare(&m->graph, path, -1, (const int64_t[]){1, 2, 0}, 1e-4);
    given_input = NULL;
    od_tensor_clear(&x);
    if (op) check(has_step(&m->graph, op), path, "no %s step", op);
    od_model_destroy(m);
}

/* The SiLU step against x / (1 + e^-x) in double over [-100, 100] (and 0, -0, the float extremes),
 * more elements than a task so that the vector loop and the scalar tail both run: within 4 ulp of
 * the exact value, or 1e-30 where the exact value is below float's normal range. */
static void test_silu_accuracy(const char *what) {
    const int64_t N = 3 * 4096 + 13;
    od_model *m = new_model(13);
    add_input(m, "x", 2, (int64_t[]){1, N});
    add_node(m, "Sigmoid", "sig", "x", "s");
    add_node(m, "Mul", "mul", "x,s", "y");
    add_output(m, "y");
    od_plan *p = NULL;
    od_error err = {0};
    if (od_plan_create(&m->graph, &(od_plan_options){.batch = 1, .threads = 2}, &p, &err)) {
        check(false, what, "%s", err.message);
        od_model_destroy(m);
        return;
    }
    float *x = od_plan_input(p, 0)->data;
    for (int64_t i = 0; i < N; i++) x[i] = -100.0f + 200.0f * (float)i / (float)(N - 1);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-38f, x[3] = -3.4e38f, x[4] = 3.4e38f, x[N - 1] = -1e-7f;
    double worst = 0;
    int64_t at = -1;
    if (od_plan_run(p, &err)) check(false, what, "%s", err.message);
    const float *y = od_plan_output(p, 0)->data;
    for (int64_t i = 0; i < N; i++) {
        double ref = (double)x[i] / (1.0 + exp(-(double)x[i]));
        double d = fabs(y[i] - ref) / (4 * 1.1920929e-7 * fabs(ref) + 1e-30);
        if (!(d <= worst)) worst = d, at = i;
    }
    check(worst <= 1.0, what, "x = %g: %g, exact %g", at >= 0 ? x[at] : 0.0,
          at >= 0 ? y[at] : 0.0, at >= 0 ? (double)x[at] / (1.0 + exp(-(double)x[at])) : 0.0);
    od_plan_destroy(p);
    od_model_destroy(m);
}

/* A Mul or Add of a channels-last activation by a per-(sample, channel) gate (squeeze-excitation,
 * broadcast over the spatial dims): x -> 1x1 identity Conv (so that the tensor is channels-last)
 * -> Mul / Add with g, then Relu, against x * g (x + g) computed here, the gate per sample [N,C,1,1]
 * or shared [1,C,1,1], batch 2, 1 and 2 threads. */
static void test_channel_gate(const char *op, int64_t gate_n) {
    const int64_t N = 2, C = 24, H = 11, W = 13; /* 143 pixels: binary.c's gate takes 64 a task */
    od_model *m = new_model(13);
    add_input(m, "x", 4, (int64_t[]){-1, C, H, W});
    float *eye = calloc((size_t)(C * C), sizeof *eye);
    for (int64_t c = 0; c < C; c++) eye[c * C + c] = 1.0f;
    add_init(m, "eye", 4, (int64_t[]){C, C, 1, 1}, 0, 0, eye);
    free(eye);
    add_init(m, "g", 4, (int64_t[]){gate_n, C, 1, 1}, -2.0f, 2.0f, NULL);
    add_node(m, "Conv", "conv", "x,eye", "y");
    add_node(m, op, "gate", "y,g", "z");
    add_node(m, "Relu", "relu", "z", "out");
    add_output(m, "out");
    const float *g = m->graph.values[od_graph_intern_value(&m->graph, "g")].init->data;
    for (int threads = 1; threads <= 2; threads++) {
        char what[96];
        snprintf(what, sizeof what, "%s by a [%lld,C,1,1] gate, channels-last, %d threads", op, (long long)gate_n, threads);
        od_plan *p = NULL;
        od_error err = {0};
        if (od_plan_create(&m->graph, &(od_plan_options){.batch = N, .threads = threads}, &p, &err)) {
            check(false, what, "%s", err.message);
            continue;
        }
        float *in = od_plan_input(p, 0)->data, *x = malloc(sizeof *x * (size_t)(N * C * H * W));
        for (int64_t i = 0; i < N * C * H * W; i++) in[i] = x[i] = frand(-3.0f, 3.0f);
        if (od_plan_run(p, &err)) check(false, what, "%s", err.message); /* in's memory is reused */
        const float *y = od_plan_output(p, 0)->data;
        double worst = 0;
        for (int64_t i = 0; i < N * C * H * W; i++) {
            int64_t n = i / (C * H * W), c = i / (H * W) % C;
            float gv = g[(gate_n == 1 ? 0 : n) * C + c];
            float want = op[0] == 'M' ? x[i] * gv : x[i] + gv;
            want = want > 0 ? want : 0;
            worst = fmax(worst, fabs(y[i] - want));
        }
        check(worst <= 1e-6, what, "differs from x %s g by %g", op, worst);
        free(x);
        od_plan_destroy(p);
    }
    od_model_destroy(m);
}

int main(void) {
    od_model *m = fusion_graph();
    if (m) {
        /* HardSigmoid and Sigmoid absorbed, Relu into the Add, Clip into the Conv */
        /* with AVX-512 the HardSwish goes into conv1, the SiLU into conv2 (od_act_fusable): a
         * step fewer each */
        bool into_conv = od_act_fusable();
        compare(&m->graph, "fusion graph", into_conv ? 6 : 4, (const int64_t[]){1, 3, 0}, 1e-6);
        check(has_step(&m->graph, "HardSwish") != into_conv, "HardSwish step", "x * HardSigmoid(x) not fused as expected");
        check(has_step(&m->graph, "SiLU") != into_conv, "SiLU step", "Sigmoid(x) * x not fused as expected");
        setenv("OD_NO_CONV_ACT", "1", 1); /* read when a plan is made */
        compare(&m->graph, "fusion graph, OD_NO_CONV_ACT=1", 4, (const int64_t[]){1, 0}, 1e-6);
        check(has_step(&m->graph, "HardSwish"), "HardSwish step, OD_NO_CONV_ACT=1", "x * HardSigmoid(x) not fused");
        check(has_step(&m->graph, "SiLU"), "SiLU step, OD_NO_CONV_ACT=1", "Sigmoid(x) * x not fused");
        unsetenv("OD_NO_CONV_ACT");
        od_model_destroy(m);
    }
    if (od_act_fusable() && (m = conv_act_graph())) {
        /* 3 SiLUs into convs (2 steps fewer each), the Clip into dw4, conv5's Sigmoid into a SiLU
         * step, a HardSwish node into conv6, x * HardSigmoid(x) into dw7 (2 steps fewer) */
        compare(&m->graph, "conv activation graph", 11, (const int64_t[]){1, 3, 0}, 1e-5);
        od_model_destroy(m);
    } else {
        n_skip++;
    }
    if ((m = residual_graph())) {
        /* 2 fewer as its own steps (OD_NO_CONV_ADD=1, as t_kernel_paths runs it): relu1 and clip3 into the Adds */
        compare(&m->graph, "residual graph", getenv("OD_NO_CONV_ADD") ? 2 : 5, (const int64_t[]){1, 3, 0}, 1e-5);
        setenv("OD_NO_CONV_ADD", "1", 1); /* read when a plan is made: each Add a step, its Relu in it */
        compare(&m->graph, "residual graph, OD_NO_CONV_ADD=1", 2, (const int64_t[]){1, 0}, 1e-5);
        unsetenv("OD_NO_CONV_ADD");
        od_model_destroy(m);
    }
    test_silu_accuracy("SiLU accuracy");
    setenv("OD_NO_AVX512_SILU", "1", 1); /* read when a SiLU step is prepared */
    test_silu_accuracy("SiLU accuracy, XNNPACK path");
    unsetenv("OD_NO_AVX512_SILU");
    test_channel_gate("Mul", 2);
    test_channel_gate("Mul", 1);
    test_channel_gate("Add", 2);
    test_real("build/real_exports/mobilenet_v3_small_op13.onnx", od_act_fusable() ? NULL : "HardSwish");
    test_real("build/real_exports/efficientnet_b0_op13.onnx", od_act_fusable() ? NULL : "SiLU");
    test_real("build/real_exports/resnet18_op13.onnx", NULL);
    test_real("build/real_exports/mobilenet_v2_op13.onnx", NULL);
    printf("test_fusion: %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}

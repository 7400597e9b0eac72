/* Every training kernel's backward against central finite differences, table-driven.
 * Each case is a graph X -> Mul(X, P0) -> op(...) -> Y with loss sum(Y * R): P0 makes the
 * op's input gradient visible as a parameter gradient; the op's own weights are parameters. */
#include "od_train.h"
#include "od_onnx.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 42;
static float urand(void) { /* [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) / (double)(1ull << 24)) * 2 - 1;
}

typedef struct builder {
    od_model *m;
    od_graph *g;
} builder;

static int add_value(builder *b, const char *name, int rank, const int64_t *dims) {
    int v = od_graph_intern_value(b->g, name);
    od_value *val = &b->g->values[v];
    val->dtype = OD_DTYPE_FLOAT;
    val->rank = rank;
    val->has_type = true;
    for (int d = 0; d < rank; d++) val->dims[d].value = dims[d];
    return v;
}

static int add_init(builder *b, const char *name, int rank, const int64_t *dims, float lo, float hi) {
    int v = od_graph_intern_value(b->g, name);
    od_tensor *t = od_tensor_create(name, OD_DTYPE_FLOAT, rank, dims, NULL);
    float *p = t->data;
    for (int64_t i = 0; i < od_tensor_count(t); i++) p[i] = lo + (hi - lo) * (urand() + 1) / 2;
    b->g->values[v].init = t;
    b->g->values[v].dtype = OD_DTYPE_FLOAT;
    b->g->inits = realloc(b->g->inits, sizeof(int) * (b->g->n_inits + 1));
    b->g->inits[b->g->n_inits++] = v;
    return v;
}

static int add_i64(builder *b, const char *name, int n, const int64_t *vals) {
    int v = od_graph_intern_value(b->g, name);
    int64_t d = n;
    od_tensor *t = od_tensor_create(name, OD_DTYPE_INT64, 1, &d, NULL);
    memcpy(t->data, vals, sizeof(int64_t) * n);
    b->g->values[v].init = t;
    b->g->values[v].dtype = OD_DTYPE_INT64;
    b->g->inits = realloc(b->g->inits, sizeof(int) * (b->g->n_inits + 1));
    b->g->inits[b->g->n_inits++] = v;
    return v;
}

/* attrs: "name=i:3", "name=f:0.5", "name=is:1,2,3", "name=s:SAME_UPPER"; ins/outs NULL-terminated lists */
static void add_node(builder *b, const char *op, const char *const *ins, const char *const *outs, const char *const *attrs) {
    int ni = od_graph_add_node(b->g);
    od_node *n = &b->g->nodes[ni];
    static int counter;
    char name[64];
    snprintf(name, sizeof name, "%s_%d", op, counter++);
    n->name = strdup(name);
    n->op_type = strdup(op);
    n->domain = strdup("");
    for (; ins && ins[n->n_inputs]; n->n_inputs++);
    for (; outs && outs[n->n_outputs]; n->n_outputs++);
    n->inputs = calloc(n->n_inputs + 1, sizeof(int));
    n->outputs = calloc(n->n_outputs + 1, sizeof(int));
    for (int k = 0; k < n->n_inputs; k++) n->inputs[k] = *ins[k] ? od_graph_intern_value(b->g, ins[k]) : -1;
    for (int k = 0; k < n->n_outputs; k++) n->outputs[k] = od_graph_intern_value(b->g, outs[k]);
    int na = 0;
    for (; attrs && attrs[na]; na++);
    n->attrs = calloc(na + 1, sizeof(od_attr));
    for (int a = 0; a < na; a++) {
        od_attr *at = &n->attrs[n->n_attrs++];
        const char *eq = strchr(attrs[a], '=');
        at->name = strndup(attrs[a], (size_t)(eq - attrs[a]));
        const char *val = strchr(eq, ':') + 1;
        if (eq[1] == 'i' && eq[2] == ':') at->type = OD_ATTR_INT, at->i = atoll(val);
        else if (eq[1] == 'f') at->type = OD_ATTR_FLOAT, at->f = (float)atof(val);
        else if (eq[1] == 's') at->type = OD_ATTR_STRING, at->s.data = (uint8_t *)strdup(val), at->s.len = strlen(val);
        else {
            at->type = OD_ATTR_INTS;
            at->ints = calloc(16, sizeof(int64_t));
            for (const char *p = val; *p;) {
                at->ints[at->count++] = strtoll(p, (char **)&p, 10);
                if (*p == ',') p++;
            }
        }
    }
}

static builder start(int rank, const int64_t *dims) {
    builder b;
    b.m = od_model_create();
    b.g = &b.m->graph;
    b.g->opset = 13;
    int x = add_value(&b, "X", rank, dims);
    b.g->inputs = malloc(sizeof(int));
    b.g->inputs[b.g->n_inputs++] = x;
    add_init(&b, "P0", rank, dims, 0.5f, 1.5f);
    add_node(&b, "Mul", (const char *[]){"X", "P0", NULL}, (const char *[]){"H", NULL}, NULL);
    return b;
}

static void finish(builder *b, const char *out) {
    int y = od_graph_intern_value(b->g, out);
    b->g->outputs = malloc(sizeof(int));
    b->g->outputs[b->g->n_outputs++] = y;
}

static double loss_of(od_trainer *t, const float *r, int64_t n, bool training) {
    od_trainer_forward(t, training, NULL);
    const float *y = od_trainer_output(t);
    double l = 0;
    for (int64_t i = 0; i < n; i++) l += (double)y[i] * r[i];
    return l;
}

static int passed, failed;

/* The trainer's forward (eval mode: BN on running statistics, Dropout off) gives what the
 * inference plan gives on the same weights and input: forward_train and run agree. */
static double worst_vs_plan(od_trainer *t, const od_graph *g, int64_t batch, int64_t n) {
    od_error err = {0};
    od_plan *p = NULL;
    if (od_plan_create(g, &(od_plan_options){.batch = batch, .threads = 1}, &p, &err)) return INFINITY;
    memcpy(od_plan_input(p, 0)->data, od_trainer_input(t), od_plan_input(p, 0)->nbytes);
    od_trainer_forward(t, false, NULL);
    double worst = od_plan_run(p, &err) ? INFINITY : 0;
    const float *a = od_trainer_output(t), *b = od_plan_output(p, 0)->data;
    for (int64_t i = 0; i < n && worst < INFINITY; i++) {
        double e = fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i]));
        if (!(e <= worst)) worst = e; /* NaN too */
    }
    od_plan_destroy(p);
    return worst;
}

/* Checks every parameter's gradient (a sample of up to 40 elements each). */
static void check(const char *label, builder *b, bool training, int threads) {
    od_error err = {0};
    if (od_graph_check(b->g, &err)) {
        printf("FAIL %s: graph: %s\n", label, err.message);
        failed++;
        return;
    }
    od_trainer *t = NULL;
    int64_t batch = b->g->values[b->g->inputs[0]].dims[0].value;
    if (od_trainer_create(b->g, &(od_trainer_options){.batch = batch, .threads = threads, .seed = 7}, &t, &err)) {
        printf("FAIL %s: %s\n", label, err.message);
        failed++;
        return;
    }
    float *x = od_trainer_input(t);
    for (int64_t i = 0; i < batch * od_trainer_input_count(t); i++) x[i] = urand();
    int64_t n = batch * od_trainer_classes(t);
    float *r = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) r[i] = urand();
    double vs_plan = worst_vs_plan(t, b->g, batch, n);
    bool same = vs_plan < 1e-4;
    printf("%s %s (threads %d): forward vs inference plan %.2e\n", same ? "PASS" : "FAIL", label, threads, vs_plan);
    same ? passed++ : failed++;
    loss_of(t, r, n, training);
    memcpy(od_trainer_output_grad(t), r, sizeof(float) * n);
    od_trainer_backward(t, &err);
    od_param *ps;
    int np = od_trainer_params(t, &ps);
    /* a second step gives the same gradients: whatever backward does not zero (grad_written) it
     * overwrites */
    float **first = calloc((size_t)np + 1, sizeof *first);
    for (int p = 0; p < np; p++)
        if ((first[p] = malloc(sizeof(float) * ps[p].count))) memcpy(first[p], ps[p].grad, sizeof(float) * ps[p].count);
    loss_of(t, r, n, training);
    memcpy(od_trainer_output_grad(t), r, sizeof(float) * n);
    od_trainer_backward(t, &err);
    bool repeat = true;
    for (int p = 0; p < np; p++) {
        repeat &= first[p] && !memcmp(first[p], ps[p].grad, sizeof(float) * ps[p].count);
        free(first[p]);
    }
    free(first);
    printf("%s %s (threads %d): a second backward repeats the first\n", repeat ? "PASS" : "FAIL", label, threads);
    repeat ? passed++ : failed++;
    double worst = 0;
    const char *worst_name = "";
    for (int p = 0; p < np; p++) {
        int64_t step = ps[p].count > 40 ? ps[p].count / 40 : 1;
        float *analytic = malloc(sizeof(float) * ps[p].count);
        memcpy(analytic, ps[p].grad, sizeof(float) * ps[p].count);
        for (int64_t i = 0; i < ps[p].count; i += step) {
            float keep = ps[p].data[i], h = 1e-3f * fmaxf(1.0f, fabsf(keep));
            ps[p].data[i] = keep + h;
            double lp = loss_of(t, r, n, training);
            ps[p].data[i] = keep - h;
            double lm = loss_of(t, r, n, training);
            ps[p].data[i] = keep;
            double numeric = (lp - lm) / (2.0 * h);
            double e = fabs(numeric - analytic[i]) / fmax(1.0, fabs(numeric));
            if (e > worst) worst = e, worst_name = ps[p].name;
        }
        free(analytic);
    }
    bool ok = worst < 2e-2;
    printf("%s %s (threads %d): worst relative error %.2e%s%s\n", ok ? "PASS" : "FAIL", label, threads, worst,
           ok ? "" : " in ", ok ? "" : worst_name);
    ok ? passed++ : failed++;
    free(r);
    od_trainer_destroy(t);
}

#define IN(...) (const char *[]){__VA_ARGS__, NULL}
#define AT(...) (const char *[]){__VA_ARGS__, NULL}
#define D(...) (int64_t[]){__VA_ARGS__}

static void run_case(const char *label, int rank, const int64_t *dims, void (*build)(builder *), bool training) {
    for (int threads = 1; threads <= 2; threads++) {
        rng_state = 42;
        builder b = start(rank, dims);
        build(&b);
        check(label, &b, training, threads);
        od_model_destroy(b.m);
    }
}

static void b_conv(builder *b) {
    add_init(b, "W", 4, D(4, 3, 3, 3), -0.5f, 0.5f);
    add_init(b, "B", 1, D(4), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "B"), IN("Y"), AT("pads=is:1,1,1,1", "strides=is:2,2"));
    finish(b, "Y");
}
static void b_conv_group(builder *b) {
    add_init(b, "W", 4, D(6, 1, 3, 3), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W"), IN("Y"), AT("group=i:3", "pads=is:1,1,1,1", "dilations=is:2,2"));
    finish(b, "Y");
}
static void b_conv1x1(builder *b) {
    add_init(b, "W", 4, D(5, 3, 1, 1), -0.5f, 0.5f);
    add_init(b, "B", 1, D(5), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "B"), IN("Y"), NULL);
    finish(b, "Y");
}
/* Stride 1 takes the input gradient as a convolution with the kernel flipped (Conv.c,
 * dx_conv): a 3x2 kernel with asymmetric padding; a padding wider than the kernel (1x1 with
 * pads 1) keeps the deconvolution; a 1-D convolution. */
static void b_conv_asym(builder *b) {
    add_init(b, "W", 4, D(4, 3, 3, 2), -0.5f, 0.5f);
    add_init(b, "B", 1, D(4), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "B"), IN("Y"), AT("pads=is:0,1,2,0"));
    finish(b, "Y");
}
static void b_conv1x1_padded(builder *b) {
    add_init(b, "W", 4, D(5, 3, 1, 1), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W"), IN("Y"), AT("pads=is:1,0,1,1"));
    finish(b, "Y");
}
static void b_conv1d(builder *b) {
    add_init(b, "W", 3, D(4, 3, 3), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W"), IN("Y"), AT("pads=is:2,1", "dilations=is:2"));
    finish(b, "Y");
}
/* 8-channel groups take the direct weight gradient (conv_dw_direct.c): tiles of 3, 2 and 1 taps,
 * stride, dilation, asymmetric pads, two groups */
static void b_conv_direct(builder *b) {
    add_init(b, "W", 4, D(4, 8, 3, 4), -0.5f, 0.5f);
    add_init(b, "B", 1, D(4), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "B"), IN("Y"), AT("pads=is:1,1,1,1", "strides=is:2,2"));
    finish(b, "Y");
}
static void b_conv_direct_group(builder *b) {
    add_init(b, "W", 4, D(8, 8, 2, 5), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W"), IN("Y"), AT("group=i:2", "pads=is:0,2,1,1", "dilations=is:2,1"));
    finish(b, "Y");
}
/* 8 channels, one group: AVX-512 tiles of tap pairs where the CPU has them (5 taps: 2 pairs and
 * a half) */
static void b_conv_direct_pairs(builder *b) {
    add_init(b, "W", 4, D(8, 8, 3, 5), -0.5f, 0.5f);
    add_init(b, "B", 1, D(8), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "B"), IN("Y"), AT("pads=is:1,2,1,2", "strides=is:1,2"));
    finish(b, "Y");
}
/* Narrow inputs and depthwise convolutions: lanes over 8 output channels or groups, one
 * accumulator per tap (9, 10, and 16 taps: 12 + 4) */
static void b_conv_taps(builder *b) {
    add_init(b, "W", 4, D(8, 3, 3, 3), -0.5f, 0.5f);
    add_init(b, "B", 1, D(8), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "B"), IN("Y"), AT("pads=is:1,1,1,1", "strides=is:2,2"));
    finish(b, "Y");
}
static void b_conv_taps_one(builder *b) {
    add_init(b, "W", 4, D(16, 1, 2, 5), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W"), IN("Y"), AT("pads=is:0,1,1,2", "dilations=is:2,1"));
    finish(b, "Y");
}
static void b_conv_depthwise(builder *b) {
    add_init(b, "W", 4, D(8, 1, 3, 3), -0.5f, 0.5f);
    add_init(b, "B", 1, D(8), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "B"), IN("Y"), AT("group=i:8", "pads=is:1,1,1,1"));
    finish(b, "Y");
}
static void b_conv_depthwise16(builder *b) {
    add_init(b, "W", 4, D(16, 1, 4, 4), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W"), IN("Y"), AT("group=i:16", "pads=is:1,2,2,1", "strides=is:1,2"));
    finish(b, "Y");
}
/* the output also read by a later Conv: its backward must not claim (overwrite) the gradient
 * the loss wrote */
static void b_output_read_again(builder *b) {
    add_init(b, "W", 4, D(4, 3, 3, 3), -0.5f, 0.5f);
    add_init(b, "W2", 4, D(2, 4, 1, 1), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W"), IN("Y"), AT("pads=is:1,1,1,1"));
    add_node(b, "Conv", IN("Y", "W2"), IN("Z"), NULL);
    finish(b, "Y");
}
/* Strided, under 16 input channels: the input gradient as a product and col2im (Conv.c,
 * dx_gemm). A residual block's downsampling: two convolutions read one input, the second adds
 * its input gradient to the first's; a dilated one with asymmetric pads. */
static void b_conv_strided_pair(builder *b) {
    add_init(b, "W0", 4, D(8, 3, 1, 1), -0.5f, 0.5f); /* channels-last between the convolutions */
    add_init(b, "W", 4, D(6, 8, 3, 3), -0.5f, 0.5f);
    add_init(b, "B", 1, D(6), -0.5f, 0.5f);
    add_init(b, "WS", 4, D(6, 8, 1, 1), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W0"), IN("T"), NULL);
    add_node(b, "Conv", IN("T", "W", "B"), IN("Y1"), AT("pads=is:1,1,1,1", "strides=is:2,2"));
    add_node(b, "Conv", IN("T", "WS"), IN("Y2"), AT("strides=is:2,2"));
    add_node(b, "Add", IN("Y1", "Y2"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_conv_strided_dilated(builder *b) {
    add_init(b, "W", 4, D(5, 4, 2, 3), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W"), IN("Y"), AT("pads=is:0,2,1,1", "strides=is:3,2", "dilations=is:2,2"));
    finish(b, "Y");
}
/* 8 output channels: the forward on conv8.c; 8 input channels at stride 1: the input gradient
 * too (a conv of dY with the kernel flipped). Rows of 21 pixels: a 32-pixel AVX-512 tile with
 * 11 lanes unused, or a 12-pixel AVX2 tile and a tail of 9; a dilated 2x3 kernel with
 * asymmetric pads. With Relu fused (its clamp), rows of 15: one 16-pixel tile, or 12 and 3. */
static void b_conv8(builder *b) {
    add_init(b, "W0", 4, D(8, 8, 3, 3), -0.5f, 0.5f);
    add_init(b, "B0", 1, D(8), -0.5f, 0.5f);
    add_init(b, "W1", 4, D(8, 8, 2, 3), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W0", "B0"), IN("T"), AT("pads=is:1,1,1,1"));
    add_node(b, "Conv", IN("T", "W1"), IN("Y"), AT("pads=is:1,0,0,2", "dilations=is:2,1"));
    finish(b, "Y");
}
static void b_conv8_relu(builder *b) {
    add_init(b, "W0", 4, D(8, 8, 3, 3), -0.5f, 0.5f);
    add_init(b, "B0", 1, D(8), -0.5f, 0.5f);
    add_init(b, "W1", 4, D(8, 8, 3, 3), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W0", "B0"), IN("T"), AT("pads=is:1,1,1,1"));
    add_node(b, "Relu", IN("T"), IN("R"), NULL);
    add_node(b, "Conv", IN("R", "W1"), IN("Y"), AT("pads=is:1,1,1,1"));
    finish(b, "Y");
}
/* 32 output channels: the forward on conv_wide.c where the CPU has AVX-512 (a 14-pixel tile
 * and a tail of 3), Relu fused */
static void b_conv_wide(builder *b) {
    add_init(b, "W", 4, D(32, 4, 3, 3), -0.5f, 0.5f);
    add_init(b, "B", 1, D(32), -0.5f, 0.5f);
    add_init(b, "W2", 4, D(2, 32, 1, 1), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "B"), IN("T"), AT("pads=is:1,0,1,2", "strides=is:1,1"));
    add_node(b, "Relu", IN("T"), IN("R"), NULL);
    add_node(b, "Conv", IN("R", "W2"), IN("Y"), NULL);
    finish(b, "Y");
}
/* 16-channel groups take its AVX-512 tiles where the CPU has them: 8 and 4 output channels */
static void b_conv_direct16(builder *b) {
    add_init(b, "W", 4, D(8, 16, 3, 5), -0.5f, 0.5f);
    add_init(b, "B", 1, D(8), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "B"), IN("Y"), AT("pads=is:1,2,1,2", "strides=is:2,1"));
    finish(b, "Y");
}
static void b_conv_direct16_group(builder *b) {
    add_init(b, "W", 4, D(8, 16, 2, 4), -0.5f, 0.5f);
    add_init(b, "B", 1, D(8), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "B"), IN("Y"), AT("group=i:2", "pads=is:1,0,0,2"));
    finish(b, "Y");
}
static void b_gemm(builder *b) {
    add_init(b, "W", 2, D(4, 6), -0.5f, 0.5f);
    add_init(b, "C", 1, D(4), -0.5f, 0.5f);
    add_node(b, "Gemm", IN("H", "W", "C"), IN("Y"), AT("transB=i:1", "alpha=f:0.7", "beta=f:1.3"));
    finish(b, "Y");
}
static void b_matmul(builder *b) {
    add_init(b, "W", 2, D(6, 3), -0.5f, 0.5f);
    add_init(b, "C", 1, D(3), -0.5f, 0.5f);
    add_node(b, "MatMul", IN("H", "W"), IN("T"), NULL);
    add_node(b, "Add", IN("T", "C"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_bn(builder *b) {
    add_init(b, "S", 1, D(3), 0.5f, 1.5f);
    add_init(b, "B", 1, D(3), -0.5f, 0.5f);
    add_init(b, "M", 1, D(3), -0.1f, 0.1f);
    add_init(b, "V", 1, D(3), 0.5f, 1.5f);
    add_node(b, "BatchNormalization", IN("H", "S", "B", "M", "V"), IN("Y"), AT("epsilon=f:0.001"));
    finish(b, "Y");
}
static const char *act_op;
static void b_act(builder *b) {
    if (!strcmp(act_op, "Clip")) {
        add_init(b, "lo", 0, NULL, -0.3f, -0.3f);
        add_init(b, "hi", 0, NULL, 0.6f, 0.6f);
        add_node(b, "Clip", IN("H", "lo", "hi"), IN("Y"), NULL);
    } else {
        add_node(b, act_op, IN("H"), IN("Y"), !strcmp(act_op, "LeakyRelu") ? AT("alpha=f:0.1") : NULL);
    }
    finish(b, "Y");
}
/* x * HardSigmoid(x) (a hand-written HardSwish): H reaches the loss twice */
static void b_x_hardsigmoid(builder *b) {
    add_node(b, "HardSigmoid", IN("H"), IN("S"), AT("alpha=f:0.4", "beta=f:0.5"));
    add_node(b, "Mul", IN("H", "S"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_maxpool(builder *b) {
    add_node(b, "MaxPool", IN("H"), IN("Y"), AT("kernel_shape=is:2,2", "strides=is:2,2"));
    finish(b, "Y");
}
static void b_avgpool(builder *b) {
    add_node(b, "AveragePool", IN("H"), IN("Y"), AT("kernel_shape=is:3,3", "strides=is:2,2", "pads=is:1,1,1,1", "count_include_pad=i:1"));
    finish(b, "Y");
}
static void b_avgpool_ex(builder *b) {
    add_node(b, "AveragePool", IN("H"), IN("Y"), AT("kernel_shape=is:3,3", "pads=is:1,1,1,1"));
    finish(b, "Y");
}
/* ceil_mode: the last windows hang past the input (and its padding) */
static void b_avgpool_ceil(builder *b) {
    add_node(b, "AveragePool", IN("H"), IN("Y"), AT("kernel_shape=is:3,3", "strides=is:2,2", "ceil_mode=i:1"));
    finish(b, "Y");
}
static void b_avgpool_ceil_pad(builder *b) {
    add_node(b, "AveragePool", IN("H"), IN("Y"),
             AT("kernel_shape=is:3,3", "strides=is:2,2", "pads=is:1,0,0,1", "ceil_mode=i:1", "count_include_pad=i:1"));
    finish(b, "Y");
}
static void b_maxpool_ceil(builder *b) {
    add_node(b, "MaxPool", IN("H"), IN("Y"), AT("kernel_shape=is:2,2", "strides=is:2,2", "ceil_mode=i:1"));
    finish(b, "Y");
}
static void b_gap(builder *b) {
    add_node(b, "GlobalAveragePool", IN("H"), IN("Y"), NULL);
    finish(b, "Y");
}
/* over a channels-last H: the kernel reads it in ONNX order */
static void b_reduce_mean_spatial(builder *b) {
    add_node(b, "ReduceMean", IN("H"), IN("Y"), AT("axes=is:2,3", "keepdims=i:1"));
    finish(b, "Y");
}
static void b_reduce_mean_channels(builder *b) {
    add_node(b, "ReduceMean", IN("H"), IN("Y"), AT("axes=is:-3", "keepdims=i:0"));
    finish(b, "Y");
}
/* on a channels-last H: pads on every dim but the batch, one negative (a crop), a fill value */
static void b_pad(builder *b) {
    add_i64(b, "pads", 8, D(0, 1, 2, 0, 0, 2, -1, 1));
    add_init(b, "cv", 0, NULL, 0.25f, 0.25f);
    add_node(b, "Pad", IN("H", "pads", "cv"), IN("P"), NULL);
    add_node(b, "Mul", IN("P", "P"), IN("Y"), NULL);
    finish(b, "Y");
}
/* Pad then a pool, as densenet's transitions export */
static void b_pad_pool(builder *b) {
    add_i64(b, "pads", 8, D(0, 0, 1, 1, 0, 0, 1, 1));
    add_node(b, "Pad", IN("H", "pads"), IN("P"), AT("mode=s:constant"));
    add_node(b, "AveragePool", IN("P"), IN("Y"), AT("kernel_shape=is:2,2", "strides=is:2,2"));
    finish(b, "Y");
}
/* ShuffleNet's channel shuffle as torch exports it: the batch read through Shape -> Gather ->
 * Concat (a constant chain once the batch is fixed), Reshape to 5-D, Transpose, Reshape back;
 * then its channel split: Slices of a channels-last value, one with a negative step */
static void b_shuffle_slice(builder *b) {
    add_i64(b, "i0", 1, D(0));
    add_i64(b, "s5", 4, D(2, 2, 3, 3));
    add_i64(b, "s4", 3, D(-1, 3, 3));
    add_i64(b, "st", 1, D(1));
    add_i64(b, "en", 1, D(3));
    add_i64(b, "ax", 1, D(1));
    add_i64(b, "st2", 2, D(-1, 2));
    add_i64(b, "en2", 2, D(-5, 0));
    add_i64(b, "ax2", 2, D(1, 3));
    add_i64(b, "sp2", 2, D(-2, -1));
    add_node(b, "Shape", IN("H"), IN("shp"), NULL);
    add_node(b, "Gather", IN("shp", "i0"), IN("n"), AT("axis=i:0"));
    add_node(b, "Concat", IN("n", "s5"), IN("shape5"), AT("axis=i:0"));
    add_node(b, "Concat", IN("n", "s4"), IN("shape4"), AT("axis=i:0"));
    add_node(b, "Reshape", IN("H", "shape5"), IN("R5"), NULL);
    add_node(b, "Transpose", IN("R5"), IN("T5"), AT("perm=is:0,2,1,3,4"));
    add_node(b, "Reshape", IN("T5", "shape4"), IN("R4"), NULL);
    add_node(b, "Mul", IN("R4", "H"), IN("M"), NULL);
    add_node(b, "Slice", IN("M", "st", "en", "ax"), IN("A"), NULL);
    add_node(b, "Slice", IN("M", "st2", "en2", "ax2", "sp2"), IN("B"), NULL);
    add_node(b, "Concat", IN("A", "B"), IN("C"), AT("axis=i:3"));
    add_node(b, "Transpose", IN("M"), IN("MT"), AT("perm=is:0,3,2,1")); /* of a channels-last value */
    add_node(b, "Flatten", IN("C"), IN("CF"), NULL);
    add_node(b, "Flatten", IN("MT"), IN("MF"), NULL);
    add_node(b, "Concat", IN("CF", "MF"), IN("Y"), AT("axis=i:1"));
    finish(b, "Y");
}
/* Reshapes in either layout: a 4-D result goes on channels-last into a Conv (ShuffleNet's
 * shuffle feeding the next block), a 4-D to 4-D reshape of a channels-last value */
static void b_reshape_conv(builder *b) {
    add_i64(b, "s5", 5, D(2, 2, 2, 3, 3));
    add_i64(b, "s4", 4, D(2, 4, 3, 3));
    add_i64(b, "s4b", 4, D(2, 4, 9, 1));
    add_init(b, "W", 4, D(3, 4, 3, 3), -0.5f, 0.5f);
    add_node(b, "Reshape", IN("H", "s5"), IN("R5"), NULL);
    add_node(b, "Transpose", IN("R5"), IN("T5"), AT("perm=is:0,2,1,3,4"));
    add_node(b, "Reshape", IN("T5", "s4"), IN("R4"), NULL);
    add_node(b, "Conv", IN("R4", "W"), IN("C"), AT("pads=is:1,1,1,1"));
    add_node(b, "Reshape", IN("H", "s4b"), IN("HB"), NULL);
    add_node(b, "Conv", IN("HB", "W"), IN("D"), AT("pads=is:1,1,1,1"));
    add_node(b, "Flatten", IN("C"), IN("CF"), NULL);
    add_node(b, "Flatten", IN("D"), IN("DF"), NULL);
    add_node(b, "Concat", IN("CF", "DF"), IN("Y"), AT("axis=i:1"));
    finish(b, "Y");
}
static void b_add_bcast(builder *b) {
    add_init(b, "C", 3, D(3, 1, 1), -0.5f, 0.5f);
    add_node(b, "Add", IN("H", "C"), IN("T"), NULL);
    add_node(b, "Mul", IN("T", "T"), IN("Y"), NULL); /* a value used twice: gradients add */
    finish(b, "Y");
}
static void b_mul_bcast(builder *b) {
    add_init(b, "C", 1, D(5), -0.5f, 0.5f);
    add_node(b, "Mul", IN("H", "C"), IN("T"), NULL);
    add_node(b, "Sub", IN("T", "H"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_flatten_gemm(builder *b) {
    add_init(b, "W", 2, D(48, 4), -0.5f, 0.5f);
    add_node(b, "Flatten", IN("H"), IN("F"), NULL);
    add_node(b, "Gemm", IN("F", "W"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_reshape_concat(builder *b) {
    add_i64(b, "shape", 2, D(0, -1));
    add_init(b, "Q", 2, D(2, 7), -0.5f, 0.5f);
    add_node(b, "Reshape", IN("H", "shape"), IN("F"), NULL);
    add_node(b, "Concat", IN("F", "Q", "F"), IN("Y"), AT("axis=i:1"));
    finish(b, "Y");
}
static void b_conv_bn_relu(builder *b) { /* Relu fused into BN, BN after Conv */
    add_init(b, "W", 4, D(4, 3, 3, 3), -0.5f, 0.5f);
    add_init(b, "S", 1, D(4), 0.5f, 1.5f);
    add_init(b, "B", 1, D(4), -0.5f, 0.5f);
    add_init(b, "M", 1, D(4), 0.0f, 0.0f);
    add_init(b, "V", 1, D(4), 1.0f, 1.0f);
    add_node(b, "Conv", IN("H", "W"), IN("C"), AT("pads=is:1,1,1,1"));
    add_node(b, "BatchNormalization", IN("C", "S", "B", "M", "V"), IN("N"), NULL);
    add_node(b, "Relu", IN("N"), IN("R"), NULL);
    add_node(b, "Mul", IN("R", "R"), IN("Y"), NULL);
    finish(b, "Y");
}
/* the same with a Conv after the Relu: its gradient is not zero where the Relu clamped, so
 * BN's backward must mask it */
static void b_conv_bn_relu_conv(builder *b) {
    add_init(b, "W", 4, D(4, 3, 3, 3), -0.5f, 0.5f);
    add_init(b, "S", 1, D(4), 0.5f, 1.5f);
    add_init(b, "B", 1, D(4), -0.5f, 0.5f);
    add_init(b, "M", 1, D(4), 0.0f, 0.0f);
    add_init(b, "V", 1, D(4), 1.0f, 1.0f);
    add_init(b, "W2", 4, D(3, 4, 1, 1), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W"), IN("C"), AT("pads=is:1,1,1,1"));
    add_node(b, "BatchNormalization", IN("C", "S", "B", "M", "V"), IN("N"), NULL);
    add_node(b, "Relu", IN("N"), IN("R"), NULL);
    add_node(b, "Conv", IN("R", "W2"), IN("Y"), NULL);
    finish(b, "Y");
}
/* A residual block's end, BN + Add + Relu, the Add done by the BN (plan.c: FUSES_ADD): H read by
 * the first Conv and by the Add (its gradient written by one, added by the other); a Conv after,
 * so that the Relu's mask matters */
static void bn_params(builder *b, int c) {
    add_init(b, "S", 1, D(c), 0.5f, 1.5f);
    add_init(b, "B", 1, D(c), -0.5f, 0.5f);
    add_init(b, "M", 1, D(c), 0.0f, 0.0f);
    add_init(b, "V", 1, D(c), 1.0f, 1.0f);
}
static void b_bn_add_relu(builder *b) {
    add_init(b, "W", 4, D(4, 4, 3, 3), -0.5f, 0.5f);
    add_init(b, "W2", 4, D(3, 4, 1, 1), -0.5f, 0.5f);
    bn_params(b, 4);
    add_node(b, "Conv", IN("H", "W"), IN("C"), AT("pads=is:1,1,1,1"));
    add_node(b, "BatchNormalization", IN("C", "S", "B", "M", "V"), IN("N"), NULL);
    add_node(b, "Add", IN("N", "H"), IN("A"), NULL);
    add_node(b, "Relu", IN("A"), IN("R"), NULL);
    add_node(b, "Conv", IN("R", "W2"), IN("Y"), NULL);
    finish(b, "Y");
}
/* the same with the BN's output second, the other a shortcut Conv computed first, no Relu */
static void b_shortcut_bn_add(builder *b) {
    add_init(b, "WS", 4, D(3, 3, 1, 1), -0.5f, 0.5f);
    add_init(b, "W", 4, D(3, 3, 3, 3), -0.5f, 0.5f);
    bn_params(b, 3);
    add_node(b, "Conv", IN("H", "WS"), IN("T"), NULL);
    add_node(b, "Conv", IN("H", "W"), IN("C"), AT("pads=is:1,1,1,1"));
    add_node(b, "BatchNormalization", IN("C", "S", "B", "M", "V"), IN("N"), NULL);
    add_node(b, "Add", IN("T", "N"), IN("A"), NULL);
    add_node(b, "Mul", IN("A", "A"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_add_relu(builder *b) { /* Relu fused into Add: a residual block's end, then broadcast */
    add_init(b, "W", 4, D(3, 3, 3, 3), -0.5f, 0.5f);
    add_init(b, "P", 4, D(1, 3, 1, 1), -0.3f, 0.3f);
    add_node(b, "Conv", IN("H", "W"), IN("C"), AT("pads=is:1,1,1,1"));
    add_node(b, "Add", IN("C", "H"), IN("A"), NULL);
    add_node(b, "Relu", IN("A"), IN("R"), NULL);
    add_node(b, "Sub", IN("R", "P"), IN("S"), NULL);
    add_node(b, "Relu", IN("S"), IN("T"), NULL);
    add_node(b, "Mul", IN("T", "T"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_conv_relu_gemm_relu(builder *b) { /* Relu fused into Conv and into Gemm */
    add_init(b, "W", 4, D(2, 3, 3, 3), -0.5f, 0.5f);
    add_init(b, "CB", 1, D(2), -0.2f, 0.2f);
    add_init(b, "G", 2, D(32, 5), -0.5f, 0.5f);
    add_init(b, "GB", 1, D(5), -0.2f, 0.2f);
    add_init(b, "G2", 2, D(5, 3), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W", "CB"), IN("C"), AT("strides=is:1,1"));
    add_node(b, "Relu", IN("C"), IN("R"), NULL);
    add_node(b, "Flatten", IN("R"), IN("F"), NULL);
    add_node(b, "Gemm", IN("F", "G", "GB"), IN("Z"), NULL);
    add_node(b, "Relu", IN("Z"), IN("ZR"), NULL);
    add_node(b, "Gemm", IN("ZR", "G2"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_dropout(builder *b) {
    add_node(b, "Dropout", IN("H"), IN("Y"), NULL);
    finish(b, "Y");
}

/* ---- transformer ops (ViT, DeiT, ConvNeXt): [N, T, C] activations, plain layout ---- */

/* Sqrt, Log, Reciprocal need positive inputs: of Exp(H) */
static void b_positive_unary(builder *b) {
    add_node(b, "Exp", IN("H"), IN("E"), NULL);
    add_node(b, "Sqrt", IN("E"), IN("S"), NULL);
    add_node(b, "Log", IN("E"), IN("L"), NULL);
    add_node(b, "Reciprocal", IN("E"), IN("R"), NULL);
    add_node(b, "Add", IN("S", "L"), IN("A"), NULL);
    add_node(b, "Add", IN("A", "R"), IN("Y"), NULL);
    finish(b, "Y");
}
/* Div of two activations, [N, T, C] / [N, T, 1]; a parameter [C] over an activation [N, T, C];
 * a constant divisor (held fixed: not a parameter) */
static void b_div(builder *b) {
    add_init(b, "C", 1, D(6), 0.5f, 1.5f);
    add_init(b, "k", 0, NULL, 1.5f, 1.5f);
    add_node(b, "ReduceMean", IN("H"), IN("M"), AT("axes=is:-1", "keepdims=i:1"));
    add_node(b, "Exp", IN("M"), IN("EM"), NULL);
    add_node(b, "Div", IN("H", "EM"), IN("A"), NULL);
    add_node(b, "Exp", IN("H"), IN("EH"), NULL);
    add_node(b, "Div", IN("C", "EH"), IN("B"), NULL);
    add_node(b, "Div", IN("B", "k"), IN("BK"), NULL);
    add_node(b, "Add", IN("A", "BK"), IN("Y"), NULL);
    finish(b, "Y");
}
/* Pow by a float scalar 2, a float 1.5 (of a positive base), an int64 [1] 3 */
static void b_pow(builder *b) {
    add_init(b, "two", 0, NULL, 2.0f, 2.0f);
    add_init(b, "onehalf", 1, D(1), 1.5f, 1.5f);
    add_i64(b, "three", 1, D(3));
    add_node(b, "Pow", IN("H", "two"), IN("P2"), NULL);
    add_node(b, "Exp", IN("H"), IN("E"), NULL);
    add_node(b, "Pow", IN("E", "onehalf"), IN("P15"), NULL);
    add_node(b, "Pow", IN("H", "three"), IN("P3"), NULL);
    add_node(b, "Add", IN("P2", "P15"), IN("A"), NULL);
    add_node(b, "Add", IN("A", "P3"), IN("Y"), NULL);
    finish(b, "Y");
}
/* LayerNorm as opsets < 17 export it: ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div,
 * Mul, Add, over ln_axes (the last axis of [N, T, C]; of a channels-last 4-D H, the last axis or
 * the channels, as timm's LayerNorm2d: then the statistics are plain, H channels-last) */
static const char *ln_axes = "axes=is:-1";
static int64_t ln_gamma[3] = {6}; /* gamma's and beta's shape */
static int ln_gamma_rank = 1;
static void b_ln_decomposed(builder *b) {
    add_init(b, "two", 0, NULL, 2.0f, 2.0f);
    add_init(b, "eps", 0, NULL, 1e-5f, 1e-5f);
    add_init(b, "gamma", ln_gamma_rank, ln_gamma, 0.5f, 1.5f);
    add_init(b, "beta", ln_gamma_rank, ln_gamma, -0.5f, 0.5f);
    add_node(b, "ReduceMean", IN("H"), IN("M"), AT(ln_axes, "keepdims=i:1"));
    add_node(b, "Sub", IN("H", "M"), IN("D"), NULL);
    add_node(b, "Pow", IN("D", "two"), IN("D2"), NULL);
    add_node(b, "ReduceMean", IN("D2"), IN("V"), AT(ln_axes, "keepdims=i:1"));
    add_node(b, "Add", IN("V", "eps"), IN("VE"), NULL);
    add_node(b, "Sqrt", IN("VE"), IN("S"), NULL);
    add_node(b, "Div", IN("D", "S"), IN("N"), NULL);
    add_node(b, "Mul", IN("N", "gamma"), IN("G"), NULL);
    add_node(b, "Add", IN("G", "beta"), IN("Y"), NULL);
    finish(b, "Y");
}
/* GELU as torch 1.13 exports it: x * 0.5 * (1 + Erf(x / sqrt(2))) */
static void b_gelu_erf(builder *b) {
    add_init(b, "sqrt2", 0, NULL, 1.41421356f, 1.41421356f);
    add_init(b, "one", 0, NULL, 1.0f, 1.0f);
    add_init(b, "half", 0, NULL, 0.5f, 0.5f);
    add_node(b, "Div", IN("H", "sqrt2"), IN("A"), NULL);
    add_node(b, "Erf", IN("A"), IN("E"), NULL);
    add_node(b, "Add", IN("E", "one"), IN("E1"), NULL);
    add_node(b, "Mul", IN("H", "E1"), IN("M"), NULL);
    add_node(b, "Mul", IN("M", "half"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_layernorm(builder *b) { /* opset 17, last axis, Scale and B [C] */
    b->g->opset = 17;
    add_init(b, "S", 1, D(6), 0.5f, 1.5f);
    add_init(b, "B", 1, D(6), -0.5f, 0.5f);
    add_node(b, "LayerNormalization", IN("H", "S", "B"), IN("Y"), AT("epsilon=f:1e-5"));
    finish(b, "Y");
}
static void b_layernorm_axis1(builder *b) { /* over [T, C]: Scale [T, C], no B */
    b->g->opset = 17;
    add_init(b, "S", 2, D(4, 6), 0.5f, 1.5f);
    add_node(b, "LayerNormalization", IN("H", "S"), IN("Y"), AT("axis=i:1"));
    finish(b, "Y");
}
static void b_layernorm_one(builder *b) { /* one Scale and one B value for every position */
    b->g->opset = 17;
    add_init(b, "S", 1, D(1), 0.5f, 1.5f);
    add_init(b, "B", 1, D(1), -0.5f, 0.5f);
    add_node(b, "LayerNormalization", IN("H", "S", "B"), IN("Y"), NULL);
    finish(b, "Y");
}
/* on a channels-last 4-D H (ConvNeXt's LayerNorm over channels-last rows): read through relayout */
static void b_layernorm_cl(builder *b) {
    b->g->opset = 17;
    add_init(b, "S", 1, D(5), 0.5f, 1.5f);
    add_init(b, "B", 1, D(5), -0.5f, 0.5f);
    add_node(b, "LayerNormalization", IN("H", "S", "B"), IN("Y"), NULL);
    finish(b, "Y");
}
static const char *softmax_op = "Softmax";
/* attention's softmax: the last axis of a plain 4-D [N, h, T, T] (a Reshape of [N, T, C]) */
static void b_softmax_4d(builder *b) {
    add_i64(b, "shape", 4, D(2, 2, 4, 3));
    add_node(b, "Reshape", IN("H", "shape"), IN("R"), NULL);
    add_node(b, softmax_op, IN("R"), IN("Y"), AT("axis=i:-1"));
    finish(b, "Y");
}
static void b_softmax_inner(builder *b) { /* an inner axis (strided rows) */
    add_node(b, softmax_op, IN("H"), IN("Y"), AT("axis=i:1"));
    finish(b, "Y");
}
static void b_softmax_coerced(builder *b) { /* opset 11: rows of the input coerced to 2-D at axis 1 */
    b->g->opset = 11;
    add_node(b, softmax_op, IN("H"), IN("Y"), AT("axis=i:1"));
    finish(b, "Y");
}
static void b_softmax_cl(builder *b) { /* on a channels-last 4-D H, the last ONNX axis */
    add_node(b, softmax_op, IN("H"), IN("Y"), NULL);
    finish(b, "Y");
}

/* attention with both MatMul operands activations: Q K^T then (Q K^T) V, heads on an axis */
static void b_attention_matmul(builder *b) {
    add_init(b, "P1", 3, D(2, 4, 6), 0.5f, 1.5f);
    add_i64(b, "shape", 4, D(2, 4, 2, 3));
    add_node(b, "Reshape", IN("H", "shape"), IN("R"), NULL);
    add_node(b, "Transpose", IN("R"), IN("Q"), AT("perm=is:0,2,1,3")); /* [2, 2, 4, 3] */
    add_node(b, "Mul", IN("H", "P1"), IN("H1"), NULL);
    add_node(b, "Reshape", IN("H1", "shape"), IN("R1"), NULL);
    add_node(b, "Transpose", IN("R1"), IN("K"), AT("perm=is:0,2,3,1")); /* [2, 2, 3, 4] */
    add_node(b, "MatMul", IN("Q", "K"), IN("A"), NULL);                 /* [2, 2, 4, 4] */
    add_node(b, "MatMul", IN("A", "Q"), IN("Y"), NULL);                 /* [2, 2, 4, 3] */
    finish(b, "Y");
}
/* batch dims broadcasting both ways: [2, 1, 4, 6] x [3, 6, 2] -> [2, 3, 4, 2]; A is a
 * Reshape's 4-D output, channels-last in training */
static void b_matmul_bcast(builder *b) {
    add_init(b, "W", 3, D(3, 6, 2), -0.5f, 0.5f);
    add_i64(b, "shape", 4, D(2, 1, 4, 6));
    add_node(b, "Reshape", IN("H", "shape"), IN("R"), NULL);
    add_node(b, "MatMul", IN("R", "W"), IN("Y"), NULL);
    finish(b, "Y");
}
/* a projection of a channels-last 4-D value (a Reshape's output) by a 2-D weight */
static void b_matmul_cl_proj(builder *b) {
    add_init(b, "W", 2, D(6, 3), -0.5f, 0.5f);
    add_i64(b, "shape", 4, D(2, 2, 2, 6));
    add_node(b, "Reshape", IN("H", "shape"), IN("R"), NULL);
    add_node(b, "MatMul", IN("R", "W"), IN("Y"), NULL);
    finish(b, "Y");
}
/* a Conv whose input is in ONNX order: a Transpose's output (ConvNeXt's permute back) */
static void b_conv_plain_input(builder *b) {
    add_init(b, "W", 4, D(3, 1, 3, 3), -0.5f, 0.5f);
    add_init(b, "B", 1, D(3), -0.5f, 0.5f);
    add_node(b, "Transpose", IN("H"), IN("T"), AT("perm=is:0,3,1,2")); /* [2, 3, 4, 5] */
    add_node(b, "Conv", IN("T", "W", "B"), IN("C"), AT("group=i:3", "pads=is:1,1,1,1"));
    add_node(b, "Add", IN("C", "T"), IN("Y"), NULL); /* T used twice: its gradient adds up */
    finish(b, "Y");
}
static void add_i64_scalar(builder *b, const char *name, int64_t val) {
    add_i64(b, name, 1, &val);
    b->g->values[od_graph_intern_value(b->g, name)].init->rank = 0;
}
/* a class token's x[:, 0] (scalar index), and a 1-D index with a repeat and a negative one */
static void b_gather(builder *b) {
    add_i64_scalar(b, "zero", 0);
    add_node(b, "Gather", IN("H", "zero"), IN("G0"), AT("axis=i:1")); /* [2, 6] */
    add_i64(b, "idx", 3, D(2, 0, -4));
    add_node(b, "Gather", IN("H", "idx"), IN("G1"), AT("axis=i:1")); /* [2, 3, 6] */
    add_node(b, "ReduceMean", IN("G1"), IN("M"), AT("axes=is:1", "keepdims=i:0"));
    add_node(b, "Add", IN("G0", "M"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_gather_cl(builder *b) { /* on a channels-last 4-D value, along its channels */
    add_init(b, "W", 4, D(3, 3, 1, 1), -0.5f, 0.5f);
    add_node(b, "Conv", IN("H", "W"), IN("C"), NULL);
    add_i64(b, "idx", 2, D(2, 0));
    add_node(b, "Gather", IN("C", "idx"), IN("Y"), AT("axis=i:1"));
    finish(b, "Y");
}
/* torchvision's ViT input: a class token Expand-ed over the batch by a Shape -> Gather ->
 * Unsqueeze -> Concat chain (folds once the batch is fixed), concatenated before the tokens,
 * plus a position embedding; then the token x[:, 0] */
static void b_class_token(builder *b) {
    add_init(b, "CT", 3, D(1, 1, 6), -0.5f, 0.5f);
    add_init(b, "POS", 3, D(1, 5, 6), -0.5f, 0.5f);
    add_i64_scalar(b, "zero", 0);
    add_i64(b, "ax0", 1, D(0));
    add_i64(b, "rest", 2, D(1, 6));
    add_node(b, "Shape", IN("H"), IN("SH"), NULL);
    add_node(b, "Gather", IN("SH", "zero"), IN("N"), AT("axis=i:0"));
    add_node(b, "Unsqueeze", IN("N", "ax0"), IN("N1"), NULL);
    add_node(b, "Concat", IN("N1", "rest"), IN("ES"), AT("axis=i:0"));
    add_i64(b, "ones", 3, D(1, 1, 1));
    add_node(b, "Mul", IN("ES", "ones"), IN("ES2"), NULL); /* an integer Mul: a shape constant */
    add_node(b, "Expand", IN("CT", "ES2"), IN("CTE"), NULL);  /* [2, 1, 6] */
    add_node(b, "Concat", IN("CTE", "H"), IN("TOK"), AT("axis=i:1")); /* [2, 5, 6] */
    add_node(b, "Add", IN("TOK", "POS"), IN("XP"), NULL);
    add_node(b, "Mul", IN("XP", "XP"), IN("Y"), NULL);
    finish(b, "Y");
}
/* The training plan for b_class_token: the class token is a parameter (its Expand runs, the
 * gradient reaches it), the integer Mul's constant is none, and the shape chain stays folded. */
static void check_class_token_plan(void) {
    rng_state = 42;
    builder b = start(3, D(2, 4, 6));
    b_class_token(&b);
    od_error err = {0};
    od_trainer *t = NULL;
    bool ok = !od_graph_check(b.g, &err) &&
              !od_trainer_create(b.g, &(od_trainer_options){.batch = 2, .threads = 1, .seed = 7}, &t, &err);
    double ct_grad = 0;
    int n_params = 0;
    bool ones_param = false;
    if (ok) {
        for (int64_t i = 0; i < 2 * od_trainer_input_count(t); i++) od_trainer_input(t)[i] = urand();
        ok = !od_trainer_forward(t, true, &err);
        int64_t n = 2 * od_trainer_classes(t);
        for (int64_t i = 0; i < n; i++) od_trainer_output_grad(t)[i] = 1.0f;
        ok = ok && !od_trainer_backward(t, &err);
        od_param *ps;
        n_params = od_trainer_params(t, &ps);
        for (int p = 0; p < n_params; p++) {
            if (!strcmp(ps[p].name, "CT"))
                for (int64_t i = 0; i < ps[p].count; i++) ct_grad += fabs(ps[p].grad[i]);
            ones_param |= !strcmp(ps[p].name, "ones");
        }
    }
    ok = ok && ct_grad > 0 && !ones_param && n_params == 3; /* P0, CT, POS */
    printf("%s class token: Expand runs and trains the token (|grad| %.3f, %d parameters), shape chain folded%s%s\n",
           ok ? "PASS" : "FAIL", ct_grad, n_params, err.message[0] ? ": " : "", err.message);
    ok ? passed++ : failed++;
    od_trainer_destroy(t);
    od_model_destroy(b.m);
}

/* A transformer block's scalars: a decomposed LayerNorm (eps, the exponent 2), a layer-scale
 * gamma [C], GELU's erf form (sqrt 2, 1, 0.5) and the attention's 1/sqrt(d) scale, then a Gemm
 * with one output (its bias [1]). */
static void b_formula_scalars(builder *b) {
    add_init(b, "two", 0, NULL, 2.0f, 2.0f);
    add_init(b, "eps", 0, NULL, 1e-5f, 1e-5f);
    add_init(b, "gamma", 1, D(6), 0.5f, 1.5f);
    add_init(b, "beta", 1, D(6), -0.5f, 0.5f);
    add_init(b, "layer_scale", 1, D(6), 0.5f, 1.5f);
    add_init(b, "scale", 1, D(1), 0.4f, 0.4f);
    add_init(b, "sqrt2", 0, NULL, 1.41421356f, 1.41421356f);
    add_init(b, "one", 0, NULL, 1.0f, 1.0f);
    add_init(b, "half", 0, NULL, 0.5f, 0.5f);
    add_init(b, "W", 2, D(6, 1), -0.5f, 0.5f);
    add_init(b, "C", 1, D(1), -0.5f, 0.5f);
    add_node(b, "ReduceMean", IN("H"), IN("M"), AT("axes=is:-1", "keepdims=i:1"));
    add_node(b, "Sub", IN("H", "M"), IN("D"), NULL);
    add_node(b, "Pow", IN("D", "two"), IN("D2"), NULL);
    add_node(b, "ReduceMean", IN("D2"), IN("V"), AT("axes=is:-1", "keepdims=i:1"));
    add_node(b, "Add", IN("V", "eps"), IN("VE"), NULL);
    add_node(b, "Sqrt", IN("VE"), IN("S"), NULL);
    add_node(b, "Div", IN("D", "S"), IN("N"), NULL);
    add_node(b, "Mul", IN("N", "gamma"), IN("G"), NULL);
    add_node(b, "Add", IN("G", "beta"), IN("L"), NULL);
    add_node(b, "Mul", IN("L", "layer_scale"), IN("LS"), NULL);
    add_node(b, "Mul", IN("scale", "LS"), IN("Q"), NULL);
    add_node(b, "Div", IN("Q", "sqrt2"), IN("A"), NULL);
    add_node(b, "Erf", IN("A"), IN("E"), NULL);
    add_node(b, "Add", IN("one", "E"), IN("E1"), NULL);
    add_node(b, "Mul", IN("Q", "E1"), IN("GM"), NULL);
    add_node(b, "Mul", IN("GM", "half"), IN("GE"), NULL);
    add_node(b, "ReduceMean", IN("GE"), IN("R"), AT("axes=is:1", "keepdims=i:0"));
    add_node(b, "Gemm", IN("R", "W", "C"), IN("Y"), NULL);
    finish(b, "Y");
}
/* The training plan for b_formula_scalars: the one-value initializers of element-wise ops
 * (eps, 1/sqrt(d), GELU's 1 and 0.5) are not parameters, so no optimiser step moves them (an
 * eps trained below zero made Sqrt NaN); gamma, beta, the layer scale, W and the one-output
 * Gemm's bias [1] are. */
static void check_formula_scalars_plan(void) {
    rng_state = 42;
    builder b = start(3, D(2, 4, 6));
    b_formula_scalars(&b);
    od_error err = {0};
    od_trainer *t = NULL;
    bool ok = !od_graph_check(b.g, &err) &&
              !od_trainer_create(b.g, &(od_trainer_options){.batch = 2, .threads = 1, .seed = 7}, &t, &err);
    char names[200] = "";
    if (ok) {
        od_param *ps;
        int np = od_trainer_params(t, &ps);
        for (int p = 0; p < np; p++) {
            size_t len = strlen(names);
            snprintf(names + len, sizeof names - len, "%s%s", p ? " " : "", ps[p].name);
        }
    }
    ok = ok && !strcmp(names, "P0 gamma beta layer_scale W C");
    printf("%s one-value constants of element-wise ops are not parameters: %s%s%s\n", ok ? "PASS" : "FAIL",
           names, err.message[0] ? ": " : "", err.message);
    ok ? passed++ : failed++;
    od_trainer_destroy(t);
    od_model_destroy(b.m);
}

/* Graphs training refuses, with the reason in the message. */
static void b_pow_computed(builder *b) {
    add_node(b, "Pow", IN("H", "H"), IN("Y"), NULL);
    finish(b, "Y");
}
static void b_ln_mean_used(builder *b) {
    b->g->opset = 17;
    add_init(b, "S", 1, D(6), 0.5f, 1.5f);
    add_node(b, "LayerNormalization", IN("H", "S"), IN("N", "Mean"), NULL);
    add_node(b, "Add", IN("N", "Mean"), IN("Y"), NULL);
    finish(b, "Y");
}
static void check_refused_by(const char *label, int rank, const int64_t *dims, void (*build)(builder *),
                             const char *expect) {
    builder b = start(rank, dims);
    build(&b);
    od_error err = {0};
    od_trainer *t = NULL;
    od_status st = od_graph_check(b.g, &err);
    if (!st) st = od_trainer_create(b.g, &(od_trainer_options){.batch = dims[0], .threads = 1}, &t, &err);
    bool ok = st == OD_STATUS_UNSUPPORTED && strstr(err.message, expect);
    printf("%s %s refused: %s\n", ok ? "PASS" : "FAIL", label, st ? err.message : "accepted");
    ok ? passed++ : failed++;
    od_trainer_destroy(t);
    od_model_destroy(b.m);
}

/* Constants of a formula stay constants: the initializer never becomes a parameter. */
static void check_not_trained(const char *label, int rank, const int64_t *dims, void (*build)(builder *),
                              const char *name) {
    rng_state = 42;
    builder b = start(rank, dims);
    build(&b);
    od_error err = {0};
    od_trainer *t = NULL;
    bool ok = !od_graph_check(b.g, &err) &&
              !od_trainer_create(b.g, &(od_trainer_options){.batch = dims[0], .threads = 1}, &t, &err);
    od_param *ps;
    int np = ok ? od_trainer_params(t, &ps) : 0, found = 0;
    for (int p = 0; p < np; p++) found += !strcmp(ps[p].name, name);
    ok = ok && np >= 1 && !found; /* P0 at least */
    printf("%s %s: \"%s\" is not trained (%d parameters)%s%s\n", ok ? "PASS" : "FAIL", label, name, np,
           err.message[0] ? ": " : "", err.message);
    ok ? passed++ : failed++;
    od_trainer_destroy(t);
    od_model_destroy(b.m);
}

/* LayerNorm -> Gemm learns a fixed random linear map of normalised rows with Adam: the L2 loss
 * drops to a tenth of its first value in 300 steps. */
static void b_ln_gemm(builder *b) {
    b->g->opset = 17;
    add_init(b, "S", 1, D(8), 0.9f, 1.1f);
    add_init(b, "B", 1, D(8), -0.1f, 0.1f);
    add_init(b, "W", 2, D(8, 4), -0.3f, 0.3f);
    add_node(b, "LayerNormalization", IN("H", "S", "B"), IN("N"), NULL);
    add_node(b, "Gemm", IN("N", "W"), IN("Y"), NULL);
    finish(b, "Y");
}
static void check_ln_gemm_trains(void) {
    rng_state = 42;
    builder b = start(2, D(16, 8));
    b_ln_gemm(&b);
    od_error err = {0};
    od_trainer *t = NULL;
    od_optim *o = NULL;
    bool ok = !od_graph_check(b.g, &err) &&
              !od_trainer_create(b.g, &(od_trainer_options){.batch = 16, .threads = 2, .seed = 7}, &t, &err) &&
              (o = od_optim_create(t, &(od_optim_options){.kind = OD_OPTIM_ADAM}, &err));
    float first = NAN, last = NAN;
    if (ok) {
        float target_w[8 * 4], x[16 * 8], target[16 * 4];
        for (int i = 0; i < 32; i++) target_w[i] = urand();
        for (int i = 0; i < 16 * 8; i++) x[i] = urand() * 3 + 1;
        for (int n = 0; n < 16; n++) /* the target: the map of the row normalised */
            for (int c = 0; c < 4; c++) {
                double m = 0, v = 0, acc = 0;
                for (int i = 0; i < 8; i++) m += x[n * 8 + i] / 8.0;
                for (int i = 0; i < 8; i++) v += (x[n * 8 + i] - m) * (x[n * 8 + i] - m) / 8.0;
                for (int i = 0; i < 8; i++) acc += (x[n * 8 + i] - m) / sqrt(v + 1e-5) * target_w[i * 4 + c];
                target[n * 4 + c] = (float)acc;
            }
        for (int step = 0; step < 300 && ok; step++) {
            memcpy(od_trainer_input(t), x, sizeof x); /* the graph multiplies it by P0, trained too */
            ok = !od_trainer_forward(t, true, &err);
            float l = od_loss_l2(od_trainer_output(t), target, 16, 4, od_trainer_output_grad(t));
            ok = ok && !od_trainer_backward(t, &err) && isfinite(l);
            od_optim_step(o, 0.01f);
            if (step == 0) first = l;
            last = l;
        }
    }
    ok = ok && last < first * 0.1f;
    printf("%s LayerNormalization -> Gemm trains: L2 loss %.4f -> %.4f%s%s\n", ok ? "PASS" : "FAIL", first, last,
           err.message[0] ? ": " : "", err.message);
    ok ? passed++ : failed++;
    od_optim_destroy(o);
    od_trainer_destroy(t);
    od_model_destroy(b.m);
}

/* An op without a backward that runs is refused, naming it and its node (a folded shape chain
 * is not: the channel-shuffle case above trains through Shape and Gather). */
static void b_sin(builder *b) {
    add_node(b, "Sin", IN("H"), IN("Y"), NULL);
    finish(b, "Y");
}
static void check_refused(void) {
    builder b = start(2, D(2, 5));
    b_sin(&b);
    od_error err = {0};
    od_trainer *t = NULL;
    od_status st = od_graph_check(b.g, &err);
    if (!st) st = od_trainer_create(b.g, &(od_trainer_options){.batch = 2, .threads = 1}, &t, &err);
    bool ok = st == OD_STATUS_UNSUPPORTED && strstr(err.message, "cannot train through op Sin (node \"Sin_");
    printf("%s Sin (no backward) refused: %s\n", ok ? "PASS" : "FAIL", st ? err.message : "accepted");
    ok ? passed++ : failed++;
    od_trainer_destroy(t);
    od_model_destroy(b.m);
}

int main(void) {
    run_case("Conv stride 2 pad 1 + bias", 4, D(2, 3, 7, 6), b_conv, true);
    run_case("Conv group 3 dilation 2", 4, D(2, 3, 6, 6), b_conv_group, true);
    run_case("Conv 1x1", 4, D(2, 3, 4, 4), b_conv1x1, true);
    run_case("Conv 3x2 asymmetric pads, stride 1", 4, D(2, 3, 5, 6), b_conv_asym, true);
    run_case("Conv 1x1 padded (deconvolution path)", 4, D(2, 3, 4, 4), b_conv1x1_padded, true);
    run_case("Conv 1-D dilation 2", 3, D(2, 3, 9), b_conv1d, true);
    run_case("Conv 8 channels, 3x4 kernel, direct weight gradient", 4, D(2, 8, 6, 5), b_conv_direct, true);
    run_case("Conv 2 groups of 8, 2x5 kernel, direct weight gradient", 4, D(2, 16, 5, 6), b_conv_direct_group, true);
    run_case("Conv 8 to 8 channels, 3x5 kernel, direct weight gradient", 4, D(2, 8, 6, 7), b_conv_direct_pairs, true);
    run_case("Output read again by a later Conv", 4, D(2, 3, 4, 4), b_output_read_again, true);
    run_case("Conv 3 to 8 channels, direct weight gradient", 4, D(2, 3, 6, 5), b_conv_taps, true);
    run_case("Conv 1 to 16 channels, 2x5 dilated, direct weight gradient", 4, D(2, 1, 6, 6), b_conv_taps_one, true);
    run_case("Conv depthwise 8, direct weight gradient", 4, D(2, 8, 5, 6), b_conv_depthwise, true);
    run_case("Conv depthwise 16, 4x4 kernel, direct weight gradient", 4, D(2, 16, 6, 7), b_conv_depthwise16, true);
    run_case("Conv 16 channels, 3x5 kernel, direct weight gradient", 4, D(2, 16, 6, 7), b_conv_direct16, true);
    run_case("Conv 2 groups of 16, 2x4 kernel, direct weight gradient", 4, D(2, 32, 5, 6), b_conv_direct16_group, true);
    run_case("Conv 3x3 and 1x1 stride 2 on one 8-channel input (product and col2im)", 4, D(2, 3, 7, 6),
             b_conv_strided_pair, true);
    run_case("Conv stride 3x2, dilation 2, asymmetric pads (product and col2im)", 4, D(2, 4, 9, 8),
             b_conv_strided_dilated, true);
    run_case("Conv 8 to 8 channels (conv8)", 4, D(2, 8, 4, 21), b_conv8, true);
    run_case("Conv 8 to 8 channels + Relu (conv8)", 4, D(1, 8, 3, 15), b_conv8_relu, true);
    run_case("Conv 4 to 32 channels + Relu (conv_wide)", 4, D(1, 4, 2, 15), b_conv_wide, true);
    run_case("Gemm transB alpha beta", 2, D(3, 6), b_gemm, true);
    run_case("MatMul + Add", 3, D(2, 4, 6), b_matmul, true);
    run_case("BatchNormalization training", 4, D(4, 3, 3, 3), b_bn, true);
    run_case("BatchNormalization eval", 4, D(4, 3, 3, 3), b_bn, false);
    const char *acts[] = {"Relu", "LeakyRelu", "Elu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh",
                          "Exp", "Erf", "Neg"};
    for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) {
        act_op = acts[i];
        run_case(acts[i], 4, D(2, 3, 4, 5), b_act, true);
    }
    run_case("x * HardSigmoid(x)", 4, D(2, 3, 4, 5), b_x_hardsigmoid, true);
    run_case("MaxPool 2x2", 4, D(2, 3, 6, 6), b_maxpool, true);
    run_case("AveragePool include pad", 4, D(2, 3, 6, 5), b_avgpool, true);
    run_case("AveragePool exclude pad", 4, D(2, 3, 5, 5), b_avgpool_ex, true);
    run_case("AveragePool ceil_mode", 4, D(2, 3, 6, 7), b_avgpool_ceil, true);
    run_case("AveragePool ceil_mode, asymmetric pads counted", 4, D(2, 3, 6, 7), b_avgpool_ceil_pad, true);
    run_case("MaxPool ceil_mode", 4, D(2, 3, 5, 5), b_maxpool_ceil, true);
    run_case("GlobalAveragePool", 4, D(2, 3, 4, 5), b_gap, true);
    run_case("ReduceMean spatial axes, keepdims", 4, D(2, 3, 4, 5), b_reduce_mean_spatial, true);
    run_case("ReduceMean channel axis", 4, D(2, 3, 4, 5), b_reduce_mean_channels, true);
    run_case("Pad constant, a crop, channels-last input", 4, D(2, 3, 4, 5), b_pad, true);
    run_case("Pad + AveragePool", 4, D(2, 3, 4, 4), b_pad_pool, true);
    run_case("channel shuffle (Shape/Gather chain, Transpose) + Slices", 4, D(2, 4, 3, 3), b_shuffle_slice, true);
    run_case("Reshape to 4-D into Conv, 4-D to 4-D Reshape", 4, D(2, 4, 3, 3), b_reshape_conv, true);
    run_case("Add broadcast, value used twice", 4, D(2, 3, 2, 2), b_add_bcast, true);
    run_case("Mul broadcast, Sub", 4, D(2, 3, 4, 5), b_mul_bcast, true);
    run_case("Flatten + Gemm", 4, D(2, 3, 4, 4), b_flatten_gemm, true);
    run_case("Reshape + Concat", 4, D(2, 3, 2, 2), b_reshape_concat, true);
    run_case("Conv + BN + Relu (fused)", 4, D(3, 3, 5, 5), b_conv_bn_relu, true);
    run_case("Conv + BN + Relu (fused) + Conv", 4, D(3, 3, 5, 5), b_conv_bn_relu_conv, true);
    run_case("Conv + Relu, Gemm + Relu (fused)", 4, D(3, 3, 6, 6), b_conv_relu_gemm_relu, true);
    run_case("Add + Relu, broadcast Sub + Relu (fused)", 4, D(2, 3, 4, 4), b_add_relu, true);
    run_case("Conv + BN + Add + Relu (Add and Relu in the BN) + Conv", 4, D(2, 4, 5, 5), b_bn_add_relu, true);
    run_case("shortcut Conv, Conv + BN, Add (in the BN)", 4, D(2, 3, 5, 5), b_shortcut_bn_add, true);
    run_case("Dropout eval", 4, D(2, 3, 2, 2), b_dropout, false);
    run_case("Sqrt, Log, Reciprocal of Exp", 3, D(2, 4, 6), b_positive_unary, true);
    run_case("Div both operands, broadcast either way, constant divisor", 3, D(2, 4, 6), b_div, true);
    run_case("Pow by 2, 1.5, int64 3", 3, D(2, 4, 6), b_pow, true);
    run_case("LayerNorm decomposed (opset < 17 export)", 3, D(2, 4, 6), b_ln_decomposed, true);
    ln_gamma[0] = 5;
    run_case("LayerNorm decomposed, last axis of a channels-last 4-D", 4, D(2, 3, 4, 5), b_ln_decomposed, true);
    ln_axes = "axes=is:1", ln_gamma_rank = 3, ln_gamma[0] = 3, ln_gamma[1] = ln_gamma[2] = 1;
    run_case("LayerNorm decomposed over channels (LayerNorm2d)", 4, D(2, 3, 4, 5), b_ln_decomposed, true);
    run_case("GELU erf form", 3, D(2, 4, 6), b_gelu_erf, true);
    run_case("LayerNormalization last axis", 3, D(2, 4, 6), b_layernorm, true);
    run_case("LayerNormalization axis 1, Scale [T, C], no B", 3, D(2, 4, 6), b_layernorm_axis1, true);
    run_case("LayerNormalization one Scale, one B", 3, D(2, 4, 6), b_layernorm_one, true);
    run_case("LayerNormalization channels-last input", 4, D(2, 3, 4, 5), b_layernorm_cl, true);
    const char *softmaxes[] = {"Softmax", "LogSoftmax"};
    for (int i = 0; i < 2; i++) {
        char label[80];
        softmax_op = softmaxes[i];
        snprintf(label, sizeof label, "%s last axis of 4-D", softmax_op);
        run_case(label, 3, D(2, 4, 6), b_softmax_4d, true);
        snprintf(label, sizeof label, "%s inner axis", softmax_op);
        run_case(label, 3, D(2, 4, 6), b_softmax_inner, true);
        snprintf(label, sizeof label, "%s opset 11 coerced", softmax_op);
        run_case(label, 3, D(2, 4, 6), b_softmax_coerced, true);
        snprintf(label, sizeof label, "%s channels-last input", softmax_op);
        run_case(label, 4, D(2, 3, 4, 5), b_softmax_cl, true);
    }
    run_case("attention MatMuls, both operands activations (4-D)", 3, D(2, 4, 6), b_attention_matmul, true);
    run_case("MatMul batch dims broadcast both ways", 3, D(2, 4, 6), b_matmul_bcast, true);
    run_case("MatMul of a channels-last value by a 2-D weight", 3, D(2, 4, 6), b_matmul_cl_proj, true);
    run_case("Conv of a Transpose's output (ONNX order), depthwise", 4, D(2, 4, 5, 3), b_conv_plain_input, true);
    run_case("Gather scalar and 1-D indices (repeat, negative)", 3, D(2, 4, 6), b_gather, true);
    run_case("Gather channels of a channels-last value", 4, D(2, 3, 2, 2), b_gather_cl, true);
    run_case("class token Expand + Concat + position embedding", 3, D(2, 4, 6), b_class_token, true);
    run_case("LayerNorm, layer scale, GELU, Gemm to one output: their scalars", 3, D(2, 4, 6), b_formula_scalars, true);
    check_class_token_plan();
    check_formula_scalars_plan();
    check_ln_gemm_trains();
    check_not_trained("Div's divisor", 3, D(2, 4, 6), b_div, "k");
    check_not_trained("Pow's exponent", 3, D(2, 4, 6), b_pow, "two");
    check_refused_by("Pow with a computed exponent", 3, D(2, 4, 6), b_pow_computed, "constant exponent");
    check_refused_by("LayerNormalization with Mean read", 3, D(2, 4, 6), b_ln_mean_used, "output Mean");
    check_refused();
    printf("gradcheck: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

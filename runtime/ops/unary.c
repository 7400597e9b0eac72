/* Element-wise unary ops, one descriptor each; they share this file because they share
 * everything but the function. Float32 only, layout-agnostic (element-wise policy).
 * Backward (the training kernels at the end): Relu, Sigmoid, Tanh, LeakyRelu, Elu, HardSigmoid,
 * HardSwish, Clip with constant bounds, Exp, Log, Sqrt, Reciprocal, Neg, Erf (GELU's erf form).
 *   Relu 6-14             XNNPACK clamp [0, inf)
 *   Sigmoid 6-13          XNNPACK sigmoid
 *   Tanh 6-13             tanhf
 *   LeakyRelu 6-16        alpha (0.01); XNNPACK leaky_relu
 *   Elu 6                 alpha (1); XNNPACK elu when alpha > 0, else a loop
 *   Selu 6                alpha, gamma
 *   Celu 12               alpha (1)
 *   ThresholdedRelu 10    alpha (1)
 *   HardSigmoid 6         alpha (0.2), beta (0.5)
 *   HardSwish 14          XNNPACK hardswish
 *   Clip 6-13             opset 6: min/max attributes; 11+: optional scalar min/max inputs
 *                         (constant: XNNPACK clamp; computed: read at run time)
 *   Softplus 1, Softsign 1, Exp 6-13, Log 6-13, Reciprocal 6-13, Erf 9-13, Sin 7, Cos 7,
 *   Sign 9-13             loops over libm
 *   Sqrt 6-13, Abs 6-13, Neg 6-13, Floor 6-13, Ceil 6-13   XNNPACK square_root, abs, negate,
 *                         floor, ceiling
 * Each op either drives an XNNPACK "nc" operator (created and set up once per plan) or runs a
 * scalar loop over the elements, split across threads when large. */
#include "../train_internal.h"
#include "ew_common.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

typedef struct unary_params {
    float alpha, beta, gamma; /* the op's attributes */
    float lo, hi;             /* Clip bounds */
} unary_params;

typedef void (*unary_loop)(const float *x, float *y, size_t n, const unary_params *p);

typedef struct unary_state {
    xnn_operator_t xnn;
    unary_loop loop;
    unary_params p;
    const od_buf *lo_in, *hi_in; /* Clip bounds computed by the graph, read at run time */
} unary_state;

typedef enum xnn_status (*unary_xnn_setup)(xnn_operator_t, size_t, const float *, float *,
                                           pthreadpool_t);

/* Input 0 float of any rank; the output takes its shape. */
static od_status unary_check(od_infer_ctx *c) {
    od_status st = od_infer_expect(c, 0, 0, OD_MAX_RANK);
    if (st) return st;
    od_infer_same(c, 0, 0);
    return OD_STATUS_OK;
}

static od_status unary_infer(od_infer_ctx *c) {
    if (c->n_in != 1)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "takes one input, not %d",
                             c->n_in);
    return unary_check(c);
}

static void unary_destroy(od_step *s) {
    unary_state *u = s->state;
    if (u && u->xnn) xnn_delete_operator(u->xnn);
    free(u);
    s->state = NULL;
}

static unary_state *unary_state_new(od_step *s, od_error *err) {
    unary_state *u = calloc(1, sizeof *u);
    if (!u) od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = u;
    return u;
}

/* Takes a created "nc" operator and sets it up over all elements as rows of one channel. */
static od_status unary_use_xnn(od_step *s, unary_state *u, xnn_operator_t op,
                               enum xnn_status created, unary_xnn_setup setup, od_error *err) {
    od_status st = od_xnn_check(created, err, s->node, "create");
    if (st) return st;
    u->xnn = op;
    size_t n = (size_t)od_buf_count(s->out[0]);
    return od_xnn_check(setup(op, n, s->in[0]->data, s->out[0]->data, s->pool), err, s->node,
                        "setup");
}

typedef struct unary_task {
    const unary_state *u;
    const float *x;
    float *y;
    size_t n;
} unary_task;

static void unary_chunk(void *ctx, size_t i) {
    const unary_task *t = ctx;
    size_t first = i * EW_CHUNK, len = t->n - first < EW_CHUNK ? t->n - first : EW_CHUNK;
    t->u->loop(t->x + first, t->y + first, len, &t->u->p);
}

static od_status unary_run(od_step *s, od_error *err) {
    unary_state *u = s->state;
    if (u->xnn) return od_xnn_check(xnn_run_operator(u->xnn, s->pool), err, s->node, "run");
    if (u->lo_in) u->p.lo = *(const float *)u->lo_in->data;
    if (u->hi_in) u->p.hi = *(const float *)u->hi_in->data;
    unary_task t = {u, s->in[0]->data, s->out[0]->data, (size_t)od_buf_count(s->out[0])};
    od_parallel_for(s->pool, (t.n + EW_CHUNK - 1) / EW_CHUNK, unary_chunk, &t);
    return OD_STATUS_OK;
}

/* ---- scalar loops ------------------------------------------------------------- */

#define UNARY_LOOP(NAME, EXPR)                                                                     \
    static void NAME##_loop(const float *x, float *y, size_t n, const unary_params *p) {           \
        (void)p;                                                                                   \
        for (size_t i = 0; i < n; i++) {                                                           \
            float v = x[i];                                                                        \
            y[i] = (EXPR);                                                                         \
        }                                                                                          \
    }

/* clang-format off */
UNARY_LOOP(sigmoid, 1.0f / (1.0f + expf(-v)))
UNARY_LOOP(tanh, tanhf(v))
UNARY_LOOP(leaky_relu, v < 0.0f ? p->alpha * v : v)
UNARY_LOOP(elu, v < 0.0f ? p->alpha * expm1f(v) : v)
UNARY_LOOP(selu, p->gamma * (v <= 0.0f ? p->alpha * expm1f(v) : v))
UNARY_LOOP(celu, fmaxf(0.0f, v) + fminf(0.0f, p->alpha * expm1f(v / p->alpha)))
UNARY_LOOP(thresholded_relu, v > p->alpha ? v : 0.0f)
UNARY_LOOP(hard_sigmoid, fmaxf(0.0f, fminf(1.0f, p->alpha * v + p->beta)))
UNARY_LOOP(hard_swish, v * fmaxf(0.0f, fminf(1.0f, v / 6.0f + 0.5f)))
/* numpy's clip: NaN passes through, and max wins when min > max */
UNARY_LOOP(clip, (v = v < p->lo ? p->lo : v) > p->hi ? p->hi : v)
UNARY_LOOP(softplus, v > 0.0f ? v + log1pf(expf(-v)) : log1pf(expf(v)))
UNARY_LOOP(softsign, v / (1.0f + fabsf(v)))
UNARY_LOOP(sqrt, sqrtf(v))
UNARY_LOOP(exp, expf(v))
UNARY_LOOP(log, logf(v))
UNARY_LOOP(abs, fabsf(v))
UNARY_LOOP(neg, -v)
UNARY_LOOP(reciprocal, 1.0f / v)
UNARY_LOOP(floor, floorf(v))
UNARY_LOOP(ceil, ceilf(v))
UNARY_LOOP(erf, erff(v))
UNARY_LOOP(sin, sinf(v))
UNARY_LOOP(cos, cosf(v))
UNARY_LOOP(sign, v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : v) /* 0 and NaN stay */
/* clang-format on */

/* ---- prepare: XNNPACK where it has the function, the loop otherwise ---------------- */

/* Ops whose XNNPACK operator takes no parameter. */
#define UNARY_XNN_PLAIN(NAME, XNAME)                                                               \
    static od_status NAME##_prepare(od_step *s, od_error *err) {                                   \
        unary_state *u = unary_state_new(s, err);                                                  \
        if (!u) return OD_STATUS_OUT_OF_MEMORY;                                                    \
        u->loop = NAME##_loop;                                                                     \
        xnn_operator_t op = NULL;                                                                  \
        enum xnn_status r = xnn_create_##XNAME##_nc_f32(1, 1, 1, 0, &op);                          \
        return unary_use_xnn(s, u, op, r, xnn_setup_##XNAME##_nc_f32, err);                        \
    }

UNARY_XNN_PLAIN(sigmoid, sigmoid)
UNARY_XNN_PLAIN(hard_swish, hardswish)
UNARY_XNN_PLAIN(sqrt, square_root)
UNARY_XNN_PLAIN(abs, abs)
UNARY_XNN_PLAIN(neg, negate)
UNARY_XNN_PLAIN(floor, floor)
UNARY_XNN_PLAIN(ceil, ceiling)

/* Ops with attributes alpha/beta/gamma and a loop only. */
#define UNARY_LOOP_OP(NAME, ALPHA, BETA, GAMMA)                                                    \
    static od_status NAME##_prepare(od_step *s, od_error *err) {                                   \
        unary_state *u = unary_state_new(s, err);                                                  \
        if (!u) return OD_STATUS_OUT_OF_MEMORY;                                                    \
        u->loop = NAME##_loop;                                                                     \
        u->p.alpha = od_attr_float(s->node, "alpha", ALPHA);                                       \
        u->p.beta = od_attr_float(s->node, "beta", BETA);                                          \
        u->p.gamma = od_attr_float(s->node, "gamma", GAMMA);                                       \
        return OD_STATUS_OK;                                                                       \
    }

UNARY_LOOP_OP(tanh, 0, 0, 0)
UNARY_LOOP_OP(selu, 1.67326319217681884765625f, 0, 1.05070102214813232421875f)
UNARY_LOOP_OP(celu, 1.0f, 0, 0)
UNARY_LOOP_OP(thresholded_relu, 1.0f, 0, 0)
UNARY_LOOP_OP(hard_sigmoid, 0.2f, 0.5f, 0)
UNARY_LOOP_OP(softplus, 0, 0, 0)
UNARY_LOOP_OP(softsign, 0, 0, 0)
UNARY_LOOP_OP(exp, 0, 0, 0)
UNARY_LOOP_OP(log, 0, 0, 0)
UNARY_LOOP_OP(reciprocal, 0, 0, 0)
UNARY_LOOP_OP(erf, 0, 0, 0)
UNARY_LOOP_OP(sin, 0, 0, 0)
UNARY_LOOP_OP(cos, 0, 0, 0)
UNARY_LOOP_OP(sign, 0, 0, 0)

/* Clamps to [lo, hi]: XNNPACK when the bounds are known and ordered, the loop otherwise. */
static od_status clamp_prepare(od_step *s, unary_state *u, od_error *err) {
    u->loop = clip_loop;
    if (u->lo_in || u->hi_in || !(u->p.lo < u->p.hi)) return OD_STATUS_OK;
    xnn_operator_t op = NULL;
    enum xnn_status r = xnn_create_clamp_nc_f32(1, 1, 1, u->p.lo, u->p.hi, 0, &op);
    return unary_use_xnn(s, u, op, r, xnn_setup_clamp_nc_f32, err);
}

static od_status relu_prepare(od_step *s, od_error *err) {
    unary_state *u = unary_state_new(s, err);
    if (!u) return OD_STATUS_OUT_OF_MEMORY;
    u->p.lo = 0.0f;
    u->p.hi = INFINITY;
    return clamp_prepare(s, u, err);
}

static od_status leaky_relu_prepare(od_step *s, od_error *err) {
    unary_state *u = unary_state_new(s, err);
    if (!u) return OD_STATUS_OUT_OF_MEMORY;
    u->loop = leaky_relu_loop;
    u->p.alpha = od_attr_float(s->node, "alpha", 0.01f);
    if (!isfinite(u->p.alpha)) return OD_STATUS_OK;
    xnn_operator_t op = NULL;
    enum xnn_status r = xnn_create_leaky_relu_nc_f32(1, 1, 1, u->p.alpha, 0, &op);
    return unary_use_xnn(s, u, op, r, xnn_setup_leaky_relu_nc_f32, err);
}

static od_status elu_prepare(od_step *s, od_error *err) {
    unary_state *u = unary_state_new(s, err);
    if (!u) return OD_STATUS_OUT_OF_MEMORY;
    u->loop = elu_loop;
    u->p.alpha = od_attr_float(s->node, "alpha", 1.0f);
    if (!(u->p.alpha > 0.0f) || !isnormal(u->p.alpha)) return OD_STATUS_OK; /* XNNPACK refuses */
    xnn_operator_t op = NULL;
    enum xnn_status r = xnn_create_elu_nc_f32(1, 1, 1, u->p.alpha, 0, &op);
    return unary_use_xnn(s, u, op, r, xnn_setup_elu_nc_f32, err);
}

/* ---- Clip ---------------------------------------------------------------------- */

static od_status clip_infer(od_infer_ctx *c) {
    if (c->n_in > (c->opset < 11 ? 1 : 3))
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "has too many inputs");
    od_status st = unary_check(c);
    if (st) return st;
    if (c->opset < 11) return OD_STATUS_OK;
    for (int i = 1; i < c->n_in && i < 3; i++) {
        const od_shape_info *b = c->in[i];
        if (!b) continue;
        if (b->dtype != c->in[0]->dtype)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                                 "%s has element type %s, the input %s", i == 1 ? "min" : "max",
                                 od_dtype_name(b->dtype), od_dtype_name(c->in[0]->dtype));
        if (od_dims_count(b->rank, b->dims) != 1)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "%s must be a scalar",
                                 i == 1 ? "min" : "max");
    }
    return OD_STATUS_OK;
}

static od_status clip_prepare(od_step *s, od_error *err) {
    unary_state *u = unary_state_new(s, err);
    if (!u) return OD_STATUS_OUT_OF_MEMORY;
    if (s->opset < 11) {
        u->p.lo = od_attr_float(s->node, "min", -FLT_MAX);
        u->p.hi = od_attr_float(s->node, "max", FLT_MAX);
    } else {
        const od_buf *lo = s->n_in > 1 ? s->in[1] : NULL, *hi = s->n_in > 2 ? s->in[2] : NULL;
        u->p.lo = lo && lo->constant ? *(const float *)lo->data : -INFINITY;
        u->p.hi = hi && hi->constant ? *(const float *)hi->data : INFINITY;
        u->lo_in = lo && !lo->constant ? lo : NULL;
        u->hi_in = hi && !hi->constant ? hi : NULL;
    }
    return clamp_prepare(s, u, err);
}

/* ---- element-wise activations -------------------------------------------------------- */

typedef enum act_kind {
    ACT_RELU, ACT_LEAKY, ACT_CLIP, ACT_HARDSWISH, ACT_HARDSIGMOID, ACT_SIGMOID, ACT_TANH, ACT_ELU,
    ACT_EXP, ACT_LOG, ACT_SQRT, ACT_RECIPROCAL, ACT_NEG, ACT_ERF
} act_kind;

typedef struct act_train {
    act_kind kind;
    float a, b; /* LeakyRelu/Elu alpha; Clip min, max; HardSigmoid alpha, beta */
} act_train;

extern const od_op_desc od_op_Relu, od_op_LeakyRelu, od_op_Elu, od_op_HardSwish, od_op_Sigmoid,
    od_op_Tanh, od_op_HardSigmoid, od_op_Exp, od_op_Log, od_op_Sqrt, od_op_Reciprocal, od_op_Neg,
    od_op_Erf;

static od_status act_prepare(od_tstep *s, od_error *err) {
    act_train *a = calloc(1, sizeof *a);
    if (!a) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = a;
    const od_op_desc *op = s->op;
    if (op == &od_op_Relu) a->kind = ACT_RELU;
    else if (op == &od_op_LeakyRelu) a->kind = ACT_LEAKY, a->a = od_attr_float(s->node, "alpha", 0.01f);
    else if (op == &od_op_Elu) a->kind = ACT_ELU, a->a = od_attr_float(s->node, "alpha", 1.0f);
    else if (op == &od_op_HardSwish) a->kind = ACT_HARDSWISH;
    else if (op == &od_op_Sigmoid) a->kind = ACT_SIGMOID;
    else if (op == &od_op_Tanh) a->kind = ACT_TANH;
    else if (op == &od_op_Exp) a->kind = ACT_EXP;
    else if (op == &od_op_Log) a->kind = ACT_LOG;
    else if (op == &od_op_Sqrt) a->kind = ACT_SQRT;
    else if (op == &od_op_Reciprocal) a->kind = ACT_RECIPROCAL;
    else if (op == &od_op_Neg) a->kind = ACT_NEG;
    else if (op == &od_op_Erf) a->kind = ACT_ERF;
    else if (op == &od_op_HardSigmoid) /* defaults from the attribute table */
        a->kind = ACT_HARDSIGMOID, a->a = od_node_attr_float(s->node, "alpha"),
        a->b = od_node_attr_float(s->node, "beta");
    else {
        a->kind = ACT_CLIP;
        a->a = od_attr_float(s->node, "min", -FLT_MAX);
        a->b = od_attr_float(s->node, "max", FLT_MAX);
        for (int k = 1; k < 3 && k < s->n_in; k++) {
            if (!s->in[k]) continue;
            if (!s->in[k]->constant || s->in[k]->count != 1)
                return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "Clip bounds must be constant scalars");
            float v = s->in[k]->data ? s->in[k]->data[0] : 0.0f;
            if (k == 1) a->a = v;
            else a->b = v;
        }
    }
    return OD_STATUS_OK;
}

static od_status act_forward(od_tstep *s, od_error *err) {
    const act_train *a = s->state;
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data;
    int64_t n = s->out[0]->count;
    switch (a->kind) {
    case ACT_RELU: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0; break;
    case ACT_LEAKY: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : a->a * x[i]; break;
    case ACT_ELU: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : a->a * expm1f(x[i]); break;
    case ACT_CLIP: for (int64_t i = 0; i < n; i++) y[i] = x[i] < a->a ? a->a : x[i] > a->b ? a->b : x[i]; break;
    case ACT_HARDSWISH:
        for (int64_t i = 0; i < n; i++) {
            float t = x[i] + 3;
            t = t < 0 ? 0 : t > 6 ? 6 : t;
            y[i] = x[i] * t / 6;
        }
        break;
    case ACT_SIGMOID: for (int64_t i = 0; i < n; i++) y[i] = 1 / (1 + expf(-x[i])); break;
    case ACT_TANH: for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]); break;
    case ACT_EXP: for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]); break;
    case ACT_LOG: for (int64_t i = 0; i < n; i++) y[i] = logf(x[i]); break;
    case ACT_SQRT: for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]); break;
    case ACT_RECIPROCAL: for (int64_t i = 0; i < n; i++) y[i] = 1 / x[i]; break;
    case ACT_NEG: for (int64_t i = 0; i < n; i++) y[i] = -x[i]; break;
    case ACT_ERF: for (int64_t i = 0; i < n; i++) y[i] = erff(x[i]); break;
    case ACT_HARDSIGMOID:
        for (int64_t i = 0; i < n; i++) {
            float t = a->a * x[i] + a->b;
            y[i] = t < 0 ? 0 : t > 1 ? 1 : t;
        }
        break;
    }
    return OD_STATUS_OK;
}

static od_status act_backward(od_tstep *s, od_error *err) {
    const act_train *a = s->state;
    const float *x = s->in[0]->data, *y = s->out[0]->data, *dy = s->out[0]->grad;
    float *dx = s->in[0]->grad;
    int64_t n = s->out[0]->count;
    switch (a->kind) {
    case ACT_RELU: for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : 0; break;
    case ACT_LEAKY: for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : a->a * dy[i]; break;
    case ACT_ELU: for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : dy[i] * (y[i] + a->a); break;
    case ACT_CLIP: for (int64_t i = 0; i < n; i++) dx[i] += x[i] >= a->a && x[i] <= a->b ? dy[i] : 0; break;
    case ACT_HARDSWISH:
        for (int64_t i = 0; i < n; i++) dx[i] += x[i] < -3 ? 0 : x[i] > 3 ? dy[i] : dy[i] * (2 * x[i] + 3) / 6;
        break;
    case ACT_SIGMOID: for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1 - y[i]); break;
    case ACT_TANH: for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1 - y[i] * y[i]); break;
    case ACT_EXP: for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i]; break;
    case ACT_LOG: for (int64_t i = 0; i < n; i++) dx[i] += dy[i] / x[i]; break;
    case ACT_SQRT: for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * 0.5f / y[i]; break; /* inf at 0, as torch */
    case ACT_RECIPROCAL: for (int64_t i = 0; i < n; i++) dx[i] -= dy[i] * y[i] * y[i]; break;
    case ACT_NEG: for (int64_t i = 0; i < n; i++) dx[i] -= dy[i]; break;
    case ACT_ERF: /* 2/sqrt(pi) exp(-x^2) */
        for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * 1.12837916709551257f * expf(-x[i] * x[i]);
        break;
    case ACT_HARDSIGMOID: /* slope alpha inside (0, 1), flat where clamped */
        for (int64_t i = 0; i < n; i++) {
            float t = a->a * x[i] + a->b;
            dx[i] += t > 0 && t < 1 ? a->a * dy[i] : 0;
        }
        break;
    }
    return OD_STATUS_OK;
}

/* The fields every unary op's descriptor has; the trainable ones add their training kernels. */
#define UNARY_DESC_FIELDS(OP, NAME, INFER, STABLE)                                                       \
    OD_OP_NAME(OP), .channel_role = OD_CHANNELS_ELEMENTWISE, .stable_since = STABLE, .per_sample = od_per_sample_always, .layout = OD_LAYOUT_POLICY_ELEMENTWISE,    \
        .infer = INFER, .prepare = NAME##_prepare, .run = unary_run, .destroy = unary_destroy
#define UNARY_DESC(OP, NAME, INFER, SINCE, STABLE, ...)                                                  \
    OD_OP_FACTS(OP, SINCE, __VA_ARGS__);                                                           \
    const od_op_desc od_op_##OP = {UNARY_DESC_FIELDS(OP, NAME, INFER, STABLE)};
/* ... and with the training kernels above */
#define UNARY_DESC_TRAIN(OP, NAME, INFER, SINCE, STABLE, ...)                                            \
    OD_OP_FACTS(OP, SINCE, __VA_ARGS__);                                                           \
    const od_op_desc od_op_##OP = {UNARY_DESC_FIELDS(OP, NAME, INFER, STABLE),                             \
                                   .train_layout = OD_TRAIN_LAYOUT_SAME,                           \
                                   .train_prepare = act_prepare,                                   \
                                   .forward_train = act_forward,                                   \
                                   .backward = act_backward};

UNARY_DESC_TRAIN(Relu, relu, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC_TRAIN(Sigmoid, sigmoid, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC_TRAIN(Tanh, tanh, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC_TRAIN(LeakyRelu, leaky_relu, unary_infer, 1, 6, "alpha=0.01", "consumed_inputs")
UNARY_DESC_TRAIN(Elu, elu, unary_infer, 1, 6, "alpha=1", "consumed_inputs")
UNARY_DESC(Selu, selu, unary_infer, 1, 6, "alpha", "consumed_inputs", "gamma")
UNARY_DESC(Celu, celu, unary_infer, 12, 12, "alpha")
UNARY_DESC(ThresholdedRelu, thresholded_relu, unary_infer, 10, 10, "alpha")
UNARY_DESC_TRAIN(HardSigmoid, hard_sigmoid, unary_infer, 1, 6, "alpha=0.2", "beta=0.5", "consumed_inputs")
UNARY_DESC_TRAIN(HardSwish, hard_swish, unary_infer, 14, 0, NULL)
UNARY_DESC_TRAIN(Clip, clip, clip_infer, 1, 11, "consumed_inputs", "max", "min")
UNARY_DESC(Softplus, softplus, unary_infer, 1, 1, NULL)
UNARY_DESC(Softsign, softsign, unary_infer, 1, 1, NULL)
UNARY_DESC_TRAIN(Sqrt, sqrt, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC_TRAIN(Exp, exp, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC_TRAIN(Log, log, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC(Abs, abs, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC_TRAIN(Neg, neg, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC_TRAIN(Reciprocal, reciprocal, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC(Floor, floor, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC(Ceil, ceil, unary_infer, 1, 6, "consumed_inputs")
UNARY_DESC_TRAIN(Erf, erf, unary_infer, 9, 9, NULL)
UNARY_DESC(Sin, sin, unary_infer, 7, 7, NULL)
UNARY_DESC(Cos, cos, unary_infer, 7, 7, NULL)
UNARY_DESC(Sign, sign, unary_infer, 9, 9, NULL)

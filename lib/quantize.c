/* Weight storage: float16 initializers with Cast, or per-output-channel symmetric int8 with
 * DequantizeLinear (raising the opset to 13 when lower, converting what needs it). */
#include "od_onnx.h"
#include "passes_internal.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OD_INT8_OPSET 13     /* DequantizeLinear with axis */
#define OD_INT8_IR_VERSION 7 /* the IR version that came with opset 13 */

const char *od_weight_format_name(od_weight_format fmt) {
    switch (fmt) {
    case OD_WEIGHTS_F32:
        return "f32";
    case OD_WEIGHTS_F16:
        return "f16";
    case OD_WEIGHTS_INT8:
        return "int8";
    }
    return "unknown";
}

od_status od_weight_format_parse(const char *s, od_weight_format *out, od_error *err) {
    if (s && (!strcmp(s, "f32") || !strcmp(s, "float32") || !strcmp(s, "float"))) {
        *out = OD_WEIGHTS_F32;
    } else if (s && (!strcmp(s, "f16") || !strcmp(s, "float16") || !strcmp(s, "fp16"))) {
        *out = OD_WEIGHTS_F16;
    } else if (s && !strcmp(s, "int8")) {
        *out = OD_WEIGHTS_INT8;
    } else {
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "weight format \"%s\" is not one of f32, f16, int8", s ? s : "");
    }
    return OD_STATUS_OK;
}

size_t od_model_float_param_bytes(const od_model *m) {
    size_t bytes = 0;
    for (int i = 0; i < m->graph.n_inits; i++) {
        const od_tensor *t = m->graph.values[m->graph.inits[i]].init;
        if (t && t->dtype == OD_DTYPE_FLOAT) bytes += t->nbytes;
    }
    return bytes;
}

static bool is_op(const od_node *n, const char *op_type) {
    return (!n->domain || !*n->domain || strcmp(n->domain, "ai.onnx") == 0) &&
           strcmp(n->op_type, op_type) == 0;
}

/* ---- float16 ------------------------------------------------------------------------ */

/* Round to nearest even; beyond the float16 range saturates to +-65504 (a weight that big
 * becoming infinite would poison every output). */
static uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return sign | 0x7e00;  /* NaN */
    if (ax >= 0x477ff000) return sign | 0x7bff; /* rounds to >= 65520: saturate */
    if (ax < 0x38800000) {                /* below the smallest normal half: subnormal or zero */
        if (ax < 0x33000000) return sign; /* under half the smallest subnormal */
        uint32_t mant = (ax & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(ax >> 23); /* 14 .. 24 */
        uint32_t half = mant >> shift, rest = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1))) half++;
        return sign | (uint16_t)half;
    }
    uint32_t h = ((ax >> 13) - ((127 - 15) << 10)), rest = ax & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return sign | (uint16_t)h;
}

/* ---- which initializers are weights ---------------------------------------------------- */

/* Output-channel axis of a weight input, -1 when input k of n is not a weight. */
static int weight_axis(const od_graph *g, const od_node *n, int k) {
    if (k != 1 || n->n_inputs < 2 || n->inputs[1] < 0) return -1; /* "" : an omitted input */
    const od_tensor *w = g->values[n->inputs[1]].init;
    if (!w || w->dtype != OD_DTYPE_FLOAT || w->rank < 2) return -1;
    return od_node_weight_axis(n, w->rank);
}

/* Per value: -1 not a weight, -2 a weight whose users disagree on the axis (per tensor),
 * else the axis. */
static int *weight_axes(const od_graph *g) {
    int *axis = malloc(sizeof(int) * (size_t)(g->n_values ? g->n_values : 1));
    if (!axis) return NULL;
    for (int v = 0; v < g->n_values; v++)
        axis[v] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        int a = weight_axis(g, n, 1);
        if (a < 0) continue;
        int v = n->inputs[1];
        if (od_pass_is_graph_input(g, v) || od_pass_is_graph_output(g, v)) continue;
        axis[v] = axis[v] == -1 || axis[v] == a ? a : -2;
    }
    return axis;
}

/* ---- opset 13 ------------------------------------------------------------------------ */

/* Whether an op means at opset 13 what it means at the model's opset is the op's fact
 * (od_node_stable_since). Ops that changed are converted below, from version `since`. */
static const struct {
    const char *op;
    int since;
} converted[] = {
    {"Squeeze", 1}, {"Unsqueeze", 1}, {"ReduceSum", 1},  {"Split", 2},   {"Dropout", 7},
    {"Clip", 6},    {"Softmax", 1},   {"LogSoftmax", 1}, {"Hardmax", 1},
};

static od_status refuse(od_error *err, const od_node *n, int64_t opset, const char *why) {
    char label[256];
    return od_error_set(err, OD_STATUS_UNSUPPORTED,
                        "%s: int8 weights need opset %d and this model has opset %lld: %s; "
                        "use --weights f16 or f32, or re-export the model at opset %d",
                        od_node_label(n, label, sizeof label), OD_INT8_OPSET, (long long)opset, why,
                        OD_INT8_OPSET);
}

/* Rank of value v from shapes or its declaration, -1 when unknown. */
static int value_rank(const od_graph *g, const od_graph_shapes *s, int v) {
    if (s && s->info && s->info[v].rank >= 0) return s->info[v].rank;
    return g->values[v].rank;
}

/* Checks that every node can move to opset 13; changes nothing. */
static od_status opset_check(const od_graph *g, int64_t opset, const od_graph_shapes *s,
                             od_error *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") != 0) continue;
        int since = od_node_stable_since(n);
        if (since > 0 && opset >= since) continue; /* means the same at 13 */
        bool conv = false;
        for (size_t k = 0; k < sizeof converted / sizeof *converted && !conv; k++)
            if (!strcmp(n->op_type, converted[k].op)) {
                since = converted[k].since;
                conv = true;
            }
        char why[256];
        if (since <= 0) {
            snprintf(why, sizeof why, "%s is not known to keep its meaning at opset %d", n->op_type,
                     OD_INT8_OPSET);
            return refuse(err, n, opset, why);
        }
        if (opset < since || !conv) {
            snprintf(why, sizeof why, "%s changed meaning at opset %d", n->op_type, since);
            return refuse(err, n, opset, why);
        }
        if (is_op(n, "Softmax") || is_op(n, "LogSoftmax") || is_op(n, "Hardmax")) {
            /* before 13: the input is flattened to 2-D at axis; from 13: one axis. The same
             * when axis is the last dim. */
            int rank = n->n_inputs > 0 && n->inputs[0] >= 0 ? value_rank(g, s, n->inputs[0]) : -1;
            int64_t a = od_attr_int(n, "axis", 1);
            if (rank < 0)
                return refuse(err, n, opset,
                              "the rank of its input is unknown, and its axis "
                              "means something else from opset 13");
            if (a < -rank || a >= rank || (a < 0 ? a + rank : a) != rank - 1) {
                snprintf(why, sizeof why,
                         "axis %lld of a rank-%d input flattens the dims after it before opset "
                         "13, and does not from 13",
                         (long long)a, rank);
                return refuse(err, n, opset, why);
            }
        }
        if (is_op(n, "Dropout") && opset < 10 && n->n_outputs > 1 && n->outputs[1] >= 0)
            return refuse(err, n, opset, "its mask output changes type at opset 10");
        if (is_op(n, "Clip") && opset < 11 && n->n_inputs > 0 && n->inputs[0] >= 0 && s &&
            s->info && s->info[n->inputs[0]].dtype != OD_DTYPE_FLOAT)
            return refuse(err, n, opset,
                          "its min and max become inputs of the input's type, "
                          "and only float is converted");
    }
    return OD_STATUS_OK;
}

/* attribute name (an INTS list) -> int64 initializer at input k */
static od_status ints_attr_to_input(od_graph *g, int i, const char *attr, int k, od_error *err) {
    const od_attr *a = od_node_attr(&g->nodes[i], attr);
    if (!a) return OD_STATUS_OK;
    int64_t count = (int64_t)a->count;
    od_tensor *t = od_tensor_create(NULL, OD_DTYPE_INT64, 1, &count, err);
    if (!t) return err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    if (a->count) memcpy(t->data, a->ints, sizeof(int64_t) * a->count);
    char base[300];
    snprintf(base, sizeof base, "%s_%s",
             g->nodes[i].name && *g->nodes[i].name ? g->nodes[i].name : g->nodes[i].op_type, attr);
    int v = od_pass_add_init(g, base, "", t, err);
    if (v < 0) return err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    od_status st = od_pass_set_input(&g->nodes[i], k, v, err);
    if (!st) od_pass_remove_attr(&g->nodes[i], attr);
    return st;
}

/* float attribute -> scalar float initializer at input k (when the attribute is set) */
static od_status float_attr_to_input(od_graph *g, int i, const char *attr, int k, od_error *err) {
    const od_attr *a = od_node_attr(&g->nodes[i], attr);
    if (!a) return OD_STATUS_OK;
    od_tensor *t = od_tensor_create(NULL, OD_DTYPE_FLOAT, 0, NULL, err);
    if (!t) return err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    *(float *)t->data = a->f;
    char base[300];
    snprintf(base, sizeof base, "%s_%s",
             g->nodes[i].name && *g->nodes[i].name ? g->nodes[i].name : g->nodes[i].op_type, attr);
    int v = od_pass_add_init(g, base, "", t, err);
    if (v < 0) return err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    od_status st = od_pass_set_input(&g->nodes[i], k, v, err);
    if (!st) od_pass_remove_attr(&g->nodes[i], attr);
    return st;
}

static od_status opset_convert(od_model *m, int64_t opset, const od_graph_shapes *s,
                               od_error *err) {
    od_graph *g = &m->graph;
    od_status st = OD_STATUS_OK;
    int n_nodes = g->n_nodes;
    for (int i = 0; i < n_nodes && !st; i++) {
        od_node *n = &g->nodes[i];
        if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") != 0) continue;
        if (is_op(n, "Squeeze") || is_op(n, "Unsqueeze") || is_op(n, "ReduceSum")) {
            st = ints_attr_to_input(g, i, "axes", 1, err);
        } else if (is_op(n, "Split")) {
            st = ints_attr_to_input(g, i, "split", 1, err);
        } else if (is_op(n, "Softmax") || is_op(n, "LogSoftmax") || is_op(n, "Hardmax")) {
            st = od_pass_set_attr_int(n, "axis", -1, err); /* checked: the last dim */
        } else if (is_op(n, "Dropout") && opset < 12) {
            if (!od_node_attr(n, "ratio")) continue;
            if (n->n_inputs > 1) { /* an input already there wins; the attribute goes */
                od_pass_remove_attr(n, "ratio");
                continue;
            }
            st = float_attr_to_input(g, i, "ratio", 1, err);
        } else if (is_op(n, "Clip") && opset < 11) {
            if (!(st = float_attr_to_input(g, i, "min", 1, err)))
                st = float_attr_to_input(g, i, "max", 2, err);
        }
    }
    if (st) return st;
    bool found = false;
    for (int i = 0; i < m->n_opsets; i++) {
        const char *d = m->opsets[i].domain ? m->opsets[i].domain : "";
        if (!*d || !strcmp(d, "ai.onnx")) {
            m->opsets[i].version = OD_INT8_OPSET;
            found = true;
        }
    }
    if (!found) {
        od_opset *o = realloc(m->opsets, sizeof *o * (size_t)(m->n_opsets + 1));
        if (!o) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        m->opsets = o;
        o[m->n_opsets].domain = strdup("");
        o[m->n_opsets].version = OD_INT8_OPSET;
        if (!o[m->n_opsets].domain)
            return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        m->n_opsets++;
    }
    g->opset = OD_INT8_OPSET;
    if (m->ir_version < OD_INT8_IR_VERSION) m->ir_version = OD_INT8_IR_VERSION;
    return OD_STATUS_OK;
}

/* ---- conversions ----------------------------------------------------------------------- */

/* Value v (an initializer) becomes the output of node op_type over the new initializer q
 * (and scale, when >= 0). v keeps its name, so its users need no change. */
static od_status replace_by_node(od_graph *g, int v, od_tensor *q, const char *q_suffix,
                                 od_tensor *scale, const char *op_type, int axis, od_error *err) {
    char *base = strdup(g->values[v].name);
    if (!base) {
        od_tensor_destroy(q);
        od_tensor_destroy(scale);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    od_status st = OD_STATUS_OK;
    int in[2], n_in = 1;
    in[0] = od_pass_add_init(g, base, q_suffix, q, err);
    if (in[0] < 0) {
        od_tensor_destroy(scale);
        goto fail;
    }
    if (scale) {
        in[1] = od_pass_add_init(g, base, "_scale", scale, err);
        if (in[1] < 0) goto fail;
        n_in = 2;
    }
    char name[300];
    snprintf(name, sizeof name, "%s_%s", base, scale ? "dequantize" : "cast");
    int k = od_pass_add_node(g, op_type, name, n_in, in, 1, &v, err);
    if (k < 0) goto fail;
    if (scale ? axis >= 0 && od_pass_set_attr_int(&g->nodes[k], "axis", axis, err)
              : od_pass_set_attr_int(&g->nodes[k], "to", OD_DTYPE_FLOAT, err))
        goto fail;
    od_pass_drop_init(g, v);
    free(base);
    return OD_STATUS_OK;
fail:
    st = err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    free(base);
    return st;
}

static od_status store_f16(od_graph *g, int v, od_weight_stats *ws, od_error *err) {
    const od_tensor *w = g->values[v].init;
    int64_t n = od_tensor_count(w);
    od_tensor *q = od_tensor_create(NULL, OD_DTYPE_FLOAT16, w->rank, w->dims, err);
    if (!q) return err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    const float *src = w->data;
    uint16_t *dst = q->data;
    for (int64_t i = 0; i < n; i++)
        dst[i] = float_to_half(src[i]);
    ws->bytes_before += w->nbytes;
    ws->bytes_after += q->nbytes;
    return replace_by_node(g, v, q, "_fp16", NULL, "Cast", -1, err);
}

/* axis >= 0: one scale per index of that dim; else one for the tensor. */
static od_status store_int8(od_graph *g, int v, int axis, od_weight_stats *ws, od_error *err) {
    const od_tensor *w = g->values[v].init;
    int64_t n = od_tensor_count(w);
    int64_t C = axis >= 0 ? w->dims[axis] : 1;
    int64_t inner = axis >= 0 ? od_dims_count(w->rank - axis - 1, w->dims + axis + 1) : n;
    int64_t outer = C && inner ? n / (C * inner) : 0;
    od_tensor *q = od_tensor_create(NULL, OD_DTYPE_INT8, w->rank, w->dims, err);
    od_tensor *scale =
        q ? od_tensor_create(NULL, OD_DTYPE_FLOAT, axis >= 0 ? 1 : 0, &C, err) : NULL;
    if (!q || !scale) {
        od_tensor_destroy(q);
        return err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    }
    const float *src = w->data;
    int8_t *dst = q->data;
    float *sc = scale->data;
    for (int64_t c = 0; c < C; c++) {
        float amax = 0.0f;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                float a = fabsf(src[(o * C + c) * inner + i]);
                if (a > amax) amax = a; /* NaN compares false: ignored */
            }
        if (!(amax <= FLT_MAX)) amax = FLT_MAX;
        /* an all-zero channel: any positive scale gives zeros back */
        sc[c] = amax > 0.0f ? amax / 127.0f : 1.0f;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t e = (o * C + c) * inner + i;
                float r = nearbyintf(src[e] / sc[c]);
                dst[e] = (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : r == r ? (int)r : 0);
            }
    }
    ws->bytes_before += w->nbytes;
    ws->bytes_after += q->nbytes + scale->nbytes;
    return replace_by_node(g, v, q, "_quantized", scale, "DequantizeLinear", axis, err);
}

/* The new nodes go first, so that each sits before its users (od_graph_check keeps a valid
 * order as it is). */
static void move_to_front(od_graph *g, int first_new) {
    int n_new = g->n_nodes - first_new;
    if (n_new <= 0 || first_new == 0) return;
    od_node *tmp = malloc(sizeof *tmp * (size_t)n_new);
    if (!tmp) return; /* od_graph_check sorts anyway */
    memcpy(tmp, g->nodes + first_new, sizeof *tmp * (size_t)n_new);
    memmove(g->nodes + n_new, g->nodes, sizeof *tmp * (size_t)first_new);
    memcpy(g->nodes, tmp, sizeof *tmp * (size_t)n_new);
    free(tmp);
}

od_status od_store_weights_ex(od_model *m, od_weight_format fmt, od_weight_stats *stats,
                              od_error *err) {
    od_weight_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    od_graph *g = &m->graph;
    if (!g->opset) g->opset = od_model_opset(m, "");
    stats->opset_before = stats->opset_after = g->opset;
    if (fmt == OD_WEIGHTS_F32) return OD_STATUS_OK;
    if (fmt != OD_WEIGHTS_F16 && fmt != OD_WEIGHTS_INT8)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "unknown weight format %d", (int)fmt);
    od_status st = od_graph_check(g, err);
    if (st) return st;
    if (fmt == OD_WEIGHTS_F16 && g->opset < 6)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "f16 weights need Cast with a numeric `to` (opset 6 or later); this "
                            "model has opset %lld",
                            (long long)g->opset);
    int *axis = weight_axes(g);
    if (!axis) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    bool raise = fmt == OD_WEIGHTS_INT8 && g->opset < OD_INT8_OPSET;
    od_graph_shapes shapes = {0};
    int64_t opset = g->opset;
    if (raise) { /* check everything first: a refusal leaves the model as it was */
        od_error ignored = {0};
        if (od_graph_infer_ex(g, 1, true, &shapes, &ignored) == OD_STATUS_OUT_OF_MEMORY) {
            st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
            goto cleanup;
        }
        if ((st = opset_check(g, opset, &shapes, err))) goto cleanup;
    }
    int first_new = g->n_nodes, n_values = g->n_values;
    for (int v = 0; v < n_values && !st; v++) {
        if (axis[v] == -1) continue;
        stats->tensors++;
        st = fmt == OD_WEIGHTS_F16 ? store_f16(g, v, stats, err)
                                   : store_int8(g, v, axis[v] >= 0 ? axis[v] : -1, stats, err);
    }
    if (st) goto cleanup;
    if (raise && (st = opset_convert(m, opset, &shapes, err))) goto cleanup;
    move_to_front(g, first_new);
    st = od_pass_compact(g, NULL, err);
    stats->opset_after = g->opset;
cleanup:
    od_graph_shapes_clear(&shapes);
    free(axis);
    return st;
}

od_status od_store_weights(od_model *m, od_weight_format fmt, od_error *err) {
    return od_store_weights_ex(m, fmt, NULL, err);
}

/* ---- static quantization: a QDQ model ------------------------------------------------- */

/* Per value of the float model, what the QDQ model does with it. */
enum { QV_FLOAT = 0, QV_CALIBRATED, QV_SAME };

typedef struct qdq_value {
    char *name;
    float lo, hi;   /* observed range (QV_CALIBRATED) */
    float scale;
    int zp;
} qdq_value;

/* Input shapes of node n, for od_node_qs8_kind. */
static void node_in_shapes(const od_node *n, const od_graph_shapes *s, const od_shape_info **in) {
    for (int k = 0; k < n->n_inputs && k < 64; k++)
        in[k] = n->inputs[k] >= 0 ? &s->info[n->inputs[k]] : NULL;
}

/* The one node reading v, or -1. */
static int sole_consumer(const od_graph *g, const int *uses, int v) {
    if (uses[v] != 1) return -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] == v) return i;
    return -1;
}

/* Marks each value QV_FLOAT, QV_CALIBRATED (an activation in or out of a COMPUTE node; out: after
 * a Relu that is its only reader) or QV_SAME (out of a SAME node whose input is
 * quantized: same_src[v] is that input). */
static void qdq_mark(const od_graph *g, const od_graph_shapes *s, const int *uses, char *mark,
                     int *same_src) {
    const od_shape_info *in[64];
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (n->n_inputs > 64 || n->n_outputs < 1 || n->outputs[0] < 0) continue;
        node_in_shapes(n, s, in);
        if (od_node_qs8_kind(n, in) != OD_QS8_COMPUTE) continue;
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v >= 0 && !s->info[v].constant && s->info[v].dtype == OD_DTYPE_FLOAT)
                mark[v] = QV_CALIBRATED;
        }
        int out = n->outputs[0], r = sole_consumer(g, uses, out);
        if (r >= 0 && is_op(&g->nodes[r], "Relu") &&
            g->nodes[r].inputs[0] == out && g->nodes[r].outputs[0] >= 0)
            out = g->nodes[r].outputs[0];
        if (s->info[out].dtype == OD_DTYPE_FLOAT) mark[out] = QV_CALIBRATED;
    }
    for (int i = 0; i < g->n_nodes; i++) { /* topological order: chains of SAME nodes */
        const od_node *n = &g->nodes[i];
        if (n->n_inputs < 1 || n->inputs[0] < 0 || !mark[n->inputs[0]] || n->n_outputs < 1 ||
            n->outputs[0] < 0 || n->n_inputs > 64)
            continue;
        node_in_shapes(n, s, in);
        if (od_node_qs8_kind(n, in) != OD_QS8_SAME) continue;
        mark[n->outputs[0]] = QV_SAME;
        same_src[n->outputs[0]] = n->inputs[0];
    }
}

/* Observes the calibrated values' ranges over the samples: min/max, then (percentile < 100) the
 * percentile and 100 - percentile points of a 2048-bin histogram over that range. */
#define QDQ_BINS 2048
static od_status qdq_calibrate(od_graph *g, const od_calibration *cal, const int *obs, int n_obs,
                               qdq_value *qv, od_error *err) {
    int n_inputs = 0, input = -1;
    for (int i = 0; i < g->n_inputs; i++)
        if (!g->values[g->inputs[i]].init) n_inputs++, input = g->inputs[i];
    if (n_inputs != 1)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "calibration needs a model with one input; this one has %d", n_inputs);
    int64_t batch = cal->n < 32 ? cal->n : 32;
    int *saved = g->outputs, n_saved = g->n_outputs;
    g->outputs = (int *)obs;
    g->n_outputs = n_obs;
    od_plan *p = NULL;
    od_status st = od_plan_create(
        g, &(od_plan_options){.batch = batch, .threads = cal->threads, .no_fusion = true}, &p, err);
    g->outputs = saved;
    g->n_outputs = n_saved;
    if (st) return st;
    const od_plan_io *pin = od_plan_input(p, 0);
    int64_t sample = (int64_t)(pin->nbytes / sizeof(float)) / batch;
    if (pin->dtype != OD_DTYPE_FLOAT || sample != cal->sample_size) {
        od_plan_destroy(p);
        return od_error_set(err, OD_STATUS_SHAPE,
                            "the calibration samples have %lld values each; input \"%s\" takes %lld",
                            (long long)cal->sample_size, g->values[input].name, (long long)sample);
    }
    bool hist = cal->percentile < 100.0;
    uint32_t *bins = hist ? calloc((size_t)n_obs * QDQ_BINS, sizeof *bins) : NULL;
    if (hist && !bins) {
        od_plan_destroy(p);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    for (int j = 0; j < n_obs; j++) qv[j].lo = INFINITY, qv[j].hi = -INFINITY;
    for (int pass = 0; pass < (hist ? 2 : 1) && !st; pass++)
        for (int64_t first = 0; first < cal->n && !st; first += batch) {
            int64_t rows = cal->n - first < batch ? cal->n - first : batch;
            float *x = pin->data;
            for (int64_t r = 0; r < batch; r++) /* a short last batch repeats its first sample */
                memcpy(x + r * sample, cal->x + (first + (r < rows ? r : 0)) * sample,
                       sizeof(float) * (size_t)sample);
            if ((st = od_plan_run(p, err))) break;
            for (int j = 0; j < n_obs; j++) {
                const od_plan_io *o = od_plan_output(p, j);
                const float *y = o->data;
                int64_t count = (int64_t)(o->nbytes / sizeof(float)) / batch * rows;
                if (pass == 0) {
                    for (int64_t e = 0; e < count; e++) {
                        if (y[e] < qv[j].lo) qv[j].lo = y[e]; /* NaN compares false */
                        if (y[e] > qv[j].hi) qv[j].hi = y[e];
                    }
                    continue;
                }
                float lo = qv[j].lo, w = (qv[j].hi - lo) / QDQ_BINS;
                uint32_t *b = bins + (size_t)j * QDQ_BINS;
                for (int64_t e = 0; e < count; e++) {
                    float f = w > 0 ? (y[e] - lo) / w : 0;
                    int k = f >= 0 && f < QDQ_BINS ? (int)f : f >= QDQ_BINS ? QDQ_BINS - 1 : 0;
                    b[k]++;
                }
            }
        }
    for (int j = 0; hist && !st && j < n_obs; j++) {
        const uint32_t *b = bins + (size_t)j * QDQ_BINS;
        double total = 0, acc = 0, cut = 0;
        for (int k = 0; k < QDQ_BINS; k++) total += b[k];
        cut = total * (100.0 - cal->percentile) / 100.0;
        float lo = qv[j].lo, w = (qv[j].hi - lo) / QDQ_BINS;
        int k0 = 0, k1 = QDQ_BINS - 1;
        for (acc = 0; k0 < QDQ_BINS - 1 && acc + b[k0] <= cut; k0++) acc += b[k0];
        for (acc = 0; k1 > k0 && acc + b[k1] <= cut; k1--) acc += b[k1];
        qv[j].lo = lo + w * (float)k0;
        qv[j].hi = lo + w * (float)(k1 + 1);
    }
    free(bins);
    od_plan_destroy(p);
    return st;
}

/* Asymmetric int8 parameters covering [lo, hi] and 0 (as ONNX Runtime's quantizer). */
static void qdq_params(qdq_value *q) {
    double lo = q->lo < 0 ? q->lo : 0, hi = q->hi > 0 ? q->hi : 0;
    if (!(lo >= -FLT_MAX)) lo = -FLT_MAX / 2;
    if (!(hi <= FLT_MAX)) hi = FLT_MAX / 2;
    double scale = (hi - lo) / 255.0;
    if (!(scale > 0) || scale < FLT_MIN) scale = 1.0;
    double zp = nearbyint(-128.0 - lo / scale);
    q->scale = (float)scale;
    q->zp = zp < -128 ? -128 : zp > 127 ? 127 : (int)zp;
}

static int scalar_init(od_graph *g, const char *base, const char *suffix, od_dtype t, double v,
                       od_error *err) {
    od_tensor *s = od_tensor_create(NULL, t, 0, NULL, err);
    if (!s) return -1;
    if (t == OD_DTYPE_FLOAT) *(float *)s->data = (float)v;
    else *(int8_t *)s->data = (int8_t)v;
    return od_pass_add_init(g, base, suffix, s, err);
}

/* A new value named base + suffix (made unique); -1 on OOM. */
static int new_value(od_graph *g, const char *base, const char *suffix, od_error *err) {
    char *name = od_pass_unique_name(g, base, suffix, 2);
    int v = name ? od_graph_intern_value(g, name) : -1;
    free(name);
    if (v < 0) od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return v;
}

/* Puts QuantizeLinear -> DequantizeLinear on activation v: its readers read the DequantizeLinear.
 * A node's output keeps its name on the DequantizeLinear (graph outputs stay), the producer
 * writing a new "_float" value; a graph input keeps feeding the QuantizeLinear. */
static od_status qdq_insert(od_graph *g, int v, const qdq_value *q, od_error *err) {
    char *base = strdup(g->values[v].name);
    if (!base) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    od_status st = OD_STATUS_OUT_OF_MEMORY;
    int sc = scalar_init(g, base, "_scale", OD_DTYPE_FLOAT, q->scale, err);
    int zp = sc < 0 ? -1 : scalar_init(g, base, "_zero_point", OD_DTYPE_INT8, q->zp, err);
    int vq = zp < 0 ? -1 : new_value(g, base, "_quantized", err);
    if (vq < 0) goto done;
    int prod = g->values[v].producer, src, dst;
    if (prod < 0) { /* a graph input: its readers move to a new value */
        if ((dst = new_value(g, base, "_dequantized", err)) < 0) goto done;
        for (int i = 0; i < g->n_nodes; i++)
            for (int k = 0; k < g->nodes[i].n_inputs; k++)
                if (g->nodes[i].inputs[k] == v) g->nodes[i].inputs[k] = dst;
        src = v;
    } else {
        if ((src = new_value(g, base, "_float", err)) < 0) goto done;
        od_node *pn = &g->nodes[prod];
        for (int k = 0; k < pn->n_outputs; k++)
            if (pn->outputs[k] == v) pn->outputs[k] = src;
        g->values[src].producer = prod;
        dst = v;
    }
    char name[300];
    snprintf(name, sizeof name, "%s_quantize", base);
    int qin[3] = {src, sc, zp}, dqin[3] = {vq, sc, zp};
    if (od_pass_add_node(g, "QuantizeLinear", name, 3, qin, 1, &vq, err) < 0) goto done;
    snprintf(name, sizeof name, "%s_dequantize", base);
    if (od_pass_add_node(g, "DequantizeLinear", name, 3, dqin, 1, &dst, err) < 0) goto done;
    st = OD_STATUS_OK;
done:
    free(base);
    return st ? (err ? err->status : st) : st;
}

/* The scale initializer of the DequantizeLinear producing v, or NULL. */
static const od_tensor *dq_scale(const od_graph *g, int v) {
    int p = v >= 0 ? g->values[v].producer : -1;
    if (p < 0 || !is_op(&g->nodes[p], "DequantizeLinear") || g->nodes[p].n_inputs < 2) return NULL;
    int s = g->nodes[p].inputs[1];
    const od_tensor *t = s >= 0 ? g->values[s].init : NULL;
    return t && t->dtype == OD_DTYPE_FLOAT ? t : NULL;
}

/* Bias input 2 of a COMPUTE node with a quantized input 0 (scale sx) and int8 weight: int32 with
 * scale sx * w_scale[c] behind a DequantizeLinear (axis 0), as ONNX Runtime's quantizer writes
 * it. A bias read by other nodes too stays float. */
static od_status qdq_bias(od_graph *g, int node, float sx, const int *uses, od_weight_stats *ws,
                          od_error *err) {
    const od_node *n = &g->nodes[node];
    if (n->n_inputs < 3 || n->inputs[2] < 0 || uses[n->inputs[2]] != 1) return OD_STATUS_OK;
    int vb = n->inputs[2];
    const od_tensor *b = g->values[vb].init, *ws_t = dq_scale(g, n->inputs[1]);
    if (!b || b->dtype != OD_DTYPE_FLOAT || b->rank != 1 || !ws_t) return OD_STATUS_OK;
    int64_t M = b->dims[0], nsc = od_tensor_count(ws_t);
    if (nsc != 1 && nsc != M) return OD_STATUS_OK;
    od_tensor *q = od_tensor_create(NULL, OD_DTYPE_INT32, 1, &M, err);
    od_tensor *sc = q ? od_tensor_create(NULL, OD_DTYPE_FLOAT, 1, &M, err) : NULL;
    if (!sc) {
        od_tensor_destroy(q);
        return err ? err->status : OD_STATUS_OUT_OF_MEMORY;
    }
    const float *bf = b->data, *wsc = ws_t->data;
    for (int64_t c = 0; c < M; c++) {
        float s = sx * wsc[nsc == 1 ? 0 : c];
        ((float *)sc->data)[c] = s;
        double r = s > 0 ? nearbyint((double)bf[c] / s) : 0;
        ((int32_t *)q->data)[c] = r > 2147483647.0 ? INT32_MAX : r < -2147483647.0 ? -INT32_MAX : r == r ? (int32_t)r : 0;
    }
    ws->bytes_before += b->nbytes;
    ws->bytes_after += q->nbytes + sc->nbytes;
    return replace_by_node(g, vb, q, "_quantized", sc, "DequantizeLinear", 0, err);
}

od_status od_quantize_static(od_model *m, const od_calibration *cal, od_quant_stats *stats,
                             od_error *err) {
    od_quant_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    od_graph *g = &m->graph;
    if (!cal || !cal->x || cal->n < 1 || !(cal->percentile > 0 && cal->percentile <= 100))
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "calibration needs at least one sample and a percentile in (0, 100]");
    if (!g->opset) g->opset = od_model_opset(m, "");
    od_status st = od_graph_check(g, err);
    if (st) return st;
    od_graph_shapes sh = {0};
    int nv = g->n_values, n_q = 0, n_obs = 0;
    char *mark = calloc((size_t)nv + 1, 1);
    int *same_src = malloc(sizeof(int) * ((size_t)nv + 1)), *uses = od_graph_count_uses(g);
    int *obs = malloc(sizeof(int) * ((size_t)nv + 1)), *slot = malloc(sizeof(int) * ((size_t)nv + 1));
    qdq_value *qv = calloc((size_t)nv + 1, sizeof *qv);
    if (!mark || !same_src || !uses || !obs || !slot || !qv) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    if ((st = od_graph_infer(g, 1, &sh, err))) goto done;
    qdq_mark(g, &sh, uses, mark, same_src);
    for (int v = 0; v < nv; v++) {
        slot[v] = -1;
        if (mark[v] == QV_CALIBRATED) obs[n_obs++] = v;
    }
    if (!n_obs) {
        st = od_error_set(err, OD_STATUS_UNSUPPORTED,
                          "no Conv, Gemm, MatMul (with constant weights) or Add to quantize");
        goto done;
    }
    /* calibrated values first (qv[j] is obs[j]), then the SAME ones in graph order */
    if ((st = qdq_calibrate(g, cal, obs, n_obs, qv, err))) goto done;
    for (int j = 0; j < n_obs; j++) {
        slot[obs[j]] = j;
        qdq_params(&qv[j]);
    }
    n_q = n_obs;
    for (int i = 0; i < g->n_nodes; i++) {
        int v = g->nodes[i].n_outputs > 0 ? g->nodes[i].outputs[0] : -1;
        if (v < 0 || mark[v] != QV_SAME || slot[same_src[v]] < 0) continue;
        qv[n_q] = qv[slot[same_src[v]]];
        slot[v] = n_q++;
    }
    for (int v = 0; v < nv; v++)
        if (slot[v] >= 0 && !(qv[slot[v]].name = strdup(g->values[v].name))) {
            st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
            goto done;
        }
    od_graph_shapes_clear(&sh);
    /* weights: per-channel int8 (value indices change from here: names lead) */
    if ((st = od_store_weights_ex(m, OD_WEIGHTS_INT8, &stats->weights, err))) goto done;
    free(uses);
    if (!(uses = od_graph_count_uses(g))) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    if ((st = od_graph_infer(g, 1, &sh, err))) goto done;
    int n_nodes = g->n_nodes;
    for (int i = 0; i < n_nodes && !st; i++) {
        const od_node *n = &g->nodes[i];
        const od_shape_info *in[64];
        if (n->n_inputs > 64 || n->n_inputs < 1 || n->inputs[0] < 0) continue;
        node_in_shapes(n, &sh, in);
        if (od_node_qs8_kind(n, in) != OD_QS8_COMPUTE) continue;
        stats->nodes++;
        for (int j = 0; j < n_q; j++)
            if (!strcmp(qv[j].name, g->values[n->inputs[0]].name)) {
                st = qdq_bias(g, i, qv[j].scale, uses, &stats->weights, err);
                break;
            }
    }
    for (int j = 0; j < n_q && !st; j++) {
        int v = od_graph_find_value(g, qv[j].name);
        if (v < 0) continue; /* gone with a pass (cannot happen: activations keep their names) */
        st = qdq_insert(g, v, &qv[j], err);
        stats->activations++;
    }
    if (!st) st = od_pass_compact(g, NULL, err);
done:
    od_graph_shapes_clear(&sh);
    for (int j = 0; qv && j < nv; j++) free(qv[j].name);
    free(qv);
    free(mark);
    free(same_src);
    free(uses);
    free(obs);
    free(slot);
    return st;
}

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

/* Quantized execution of QDQ models: DequantizeLinear -> op -> QuantizeLinear as one int8 step.
 *
 * A QDQ model (optimize --activations int8, or ONNX Runtime's static quantizer) writes every
 * quantized activation as QuantizeLinear -> DequantizeLinear and every weight as an int8
 * initializer behind DequantizeLinear. A node whose op has a qs8 variant (op.h) runs as that
 * variant, reading the int8 values the DequantizeLinear nodes read and writing the int8 value its
 * QuantizeLinear writes, when:
 *  - each activation input (not a plan-time constant) comes from a DequantizeLinear of an int8
 *    activation with one constant scale and zero point;
 *  - its output 0 (or, when a Relu is its only reader, the Relu's output: a clamp) is read by
 *    one QuantizeLinear to int8 with one constant scale and zero point, and nothing else;
 *  - a weight (input 1, when the op has one) is a DequantizeLinear of an int8 initializer with a
 *    zero point of 0, per tensor or per output channel;
 *  - the op's qs8_accepts takes the node, and for qs8_same ops the input's scale and zero point
 *    are the output's.
 * Anything else runs as written, in float: a pattern that does not match is slower, never wrong.
 * The DequantizeLinear nodes left without readers never run. */
#include "plan_internal.h"

#include <math.h>
#include <string.h>

extern const od_op_desc od_op_DequantizeLinear, od_op_QuantizeLinear, od_op_Relu;

static bool is(const od_node *n, const od_op_desc *op) { return od_op_find(n->domain, n->op_type) == op; }

/* A constant of one element of type t, read as float; false when it is not one. */
static bool const_scalar(const od_graph_shapes *s, int v, od_dtype t, float *out) {
    const od_tensor *c = v >= 0 ? s->info[v].constant : NULL;
    if (!c || c->dtype != t || od_tensor_count(c) != 1) return false;
    *out = t == OD_DTYPE_FLOAT ? *(const float *)c->data : (float)*(const int8_t *)c->data;
    return true;
}

/* v = DequantizeLinear(q) of an int8 activation q, per tensor: q, its scale and zero point. */
static bool dq_activation(const od_graph *g, const od_graph_shapes *s, int v, int *q, float *scale,
                          int *zp) {
    int p = v >= 0 ? g->values[v].producer : -1;
    if (p < 0 || !is(&g->nodes[p], &od_op_DequantizeLinear)) return false;
    const od_node *dq = &g->nodes[p];
    int x = dq->inputs[0];
    float z = 0;
    if (x < 0 || s->info[x].constant || s->info[x].dtype != OD_DTYPE_INT8) return false;
    if (!const_scalar(s, dq->inputs[1], OD_DTYPE_FLOAT, scale) || !(*scale > 0)) return false;
    if (dq->n_inputs > 2 && dq->inputs[2] >= 0 && !const_scalar(s, dq->inputs[2], OD_DTYPE_INT8, &z))
        return false;
    *q = x;
    *zp = (int)z;
    return true;
}

/* The node reading v and nothing else reading it (graph outputs count), or -1. */
static int sole_reader(const od_graph *g, const int *uses, int v) {
    if (v < 0 || uses[v] != 1) return -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] == v) return i;
    return -1;
}

/* Input 1 = DequantizeLinear of an int8 initializer, zero point 0, scales per tensor or along
 * the op's output-channel axis: fills the weight fields of prm. */
static bool dq_weight(const od_graph *g, const od_node *n, od_qs8_params *prm) {
    int v = n->n_inputs > 1 ? n->inputs[1] : -1, p = v >= 0 ? g->values[v].producer : -1;
    if (p < 0 || !is(&g->nodes[p], &od_op_DequantizeLinear)) return false;
    const od_node *dq = &g->nodes[p];
    const od_tensor *w = dq->inputs[0] >= 0 ? g->values[dq->inputs[0]].init : NULL;
    const od_tensor *sc = dq->n_inputs > 1 && dq->inputs[1] >= 0 ? g->values[dq->inputs[1]].init : NULL;
    const od_tensor *zp = dq->n_inputs > 2 && dq->inputs[2] >= 0 ? g->values[dq->inputs[2]].init : NULL;
    if (!w || w->dtype != OD_DTYPE_INT8 || !sc || sc->dtype != OD_DTYPE_FLOAT) return false;
    if (dq->n_inputs > 2 && dq->inputs[2] >= 0 && !zp) return false;
    for (int64_t i = 0; zp && i < od_tensor_count(zp); i++)
        if (zp->dtype != OD_DTYPE_INT8 || ((const int8_t *)zp->data)[i]) return false;
    int64_t count = od_tensor_count(sc);
    int axis = od_node_weight_axis(n, w->rank);
    if (count != 1) {
        int64_t a = od_attr_int(dq, "axis", 1);
        if (axis < 0 || od_axis(a, w->rank) != axis || w->dims[axis] != count) return false;
    }
    /* the kernels read [M, ...] rows (Conv, Gemm with transB) or [K, M] (MatMul, Gemm) */
    for (int64_t i = 0; i < count; i++)
        if (!(((const float *)sc->data)[i] > 0)) return false;
    prm->w = w->data;
    prm->w_scale = sc->data;
    prm->n_w_scale = count;
    return true;
}

void od_plan_find_qs8(const od_graph *g, const od_graph_shapes *s, const int *uses, od_node_qs8 *out) {
    for (int i = 0; i < g->n_nodes; i++) out[i] = (od_node_qs8){.act_min = -INFINITY, .act_max = INFINITY};
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        const od_op_desc *op = od_op_find(n->domain, n->op_type);
        if (!op || !op->qs8 || out[i].absorbed || n->n_inputs > 8 || n->n_outputs < 1 || n->outputs[0] < 0)
            continue;
        const od_shape_info *in[8];
        for (int k = 0; k < n->n_inputs; k++) in[k] = n->inputs[k] >= 0 ? &s->info[n->inputs[k]] : NULL;
        if (od_node_qs8_kind(n, in) == OD_QS8_NONE) continue;
        bool other_out = false;
        for (int k = 1; k < n->n_outputs; k++) other_out |= n->outputs[k] >= 0 && uses[n->outputs[k]] > 0;
        if (other_out) continue;
        od_node_qs8 q = {.op = op->qs8, .n_in = n->n_inputs, .act_min = -INFINITY, .act_max = INFINITY};
        int acts = 0;
        bool ok = true;
        for (int k = 0; k < n->n_inputs && ok; k++) {
            int v = n->inputs[k];
            q.in[k] = v;
            if (v < 0 || s->info[v].constant) continue;
            ok = acts < 2 && dq_activation(g, s, v, &q.in[k], &q.prm.in_scale[acts], &q.prm.in_zp[acts]);
            acts++;
        }
        if (!ok || acts == 0 || (op->weight_axis && !dq_weight(g, n, &q.prm))) continue;
        /* the output: through a Relu (a clamp), into one QuantizeLinear to int8 */
        int v = n->outputs[0], r = sole_reader(g, uses, v), relu = -1;
        if (r >= 0 && op->qs8->fuses_activation && is(&g->nodes[r], &od_op_Relu) && g->nodes[r].n_outputs > 0) {
            relu = r;
            v = g->nodes[r].outputs[0];
            r = sole_reader(g, uses, v);
            q.act_min = 0.0f;
        }
        if (r < 0 || !is(&g->nodes[r], &od_op_QuantizeLinear) || g->nodes[r].inputs[0] != v) continue;
        const od_node *qn = &g->nodes[r];
        float z = 0;
        if (qn->n_inputs < 3 || !const_scalar(s, qn->inputs[2], OD_DTYPE_INT8, &z) ||
            !const_scalar(s, qn->inputs[1], OD_DTYPE_FLOAT, &q.prm.out_scale) || !(q.prm.out_scale > 0) ||
            qn->outputs[0] < 0)
            continue;
        q.prm.out_zp = (int)z;
        if (op->qs8_same && (q.prm.in_scale[0] != q.prm.out_scale || q.prm.in_zp[0] != q.prm.out_zp || relu >= 0))
            continue;
        q.out = qn->outputs[0];
        out[i] = q;
        out[r].absorbed = true;
        if (relu >= 0) out[relu].absorbed = true;
    }
}

/* Exporters' spellings of one activation, run as one step (see plan_internal.h). */
#include "plan_internal.h"

#include <math.h>
#include <string.h>

extern const od_op_desc od_op_HardSwish, od_fused_SiLU;

static bool is_op(const od_node *n, const char *type) {
    return strcmp(n->op_type, type) == 0 && !(n->domain && *n->domain);
}

/* The activation a node computes on x when x is its only input: HardSwish for
 * HardSigmoid(alpha = 1/6, beta = 1/2), as PyTorch writes hardswish below opset 14; SiLU for
 * Sigmoid. NULL for any other node. */
static const od_op_desc *times_x_gives(const od_node *n) {
    if (is_op(n, "Sigmoid")) return &od_fused_SiLU;
    if (!is_op(n, "HardSigmoid")) return NULL;
    float alpha = od_attr_float(n, "alpha", 0.2f), beta = od_attr_float(n, "beta", 0.5f);
    return fabsf(alpha - 1.0f / 6.0f) <= 1e-7f && beta == 0.5f ? &od_op_HardSwish : NULL;
}

void od_plan_find_activation_fusions(const od_graph *g, const od_graph_shapes *shapes,
                                     const int *uses, od_node_fusion *out) {
    for (int i = 0; i < g->n_nodes; i++) out[i] = (od_node_fusion){.as_input = -1, .residual = -1};
    for (int m = 0; m < g->n_nodes; m++) {
        const od_node *mul = &g->nodes[m];
        if (!is_op(mul, "Mul") || mul->n_inputs != 2 || mul->n_outputs < 1) continue;
        for (int k = 0; k < 2; k++) {
            int a = mul->inputs[k], x = mul->inputs[1 - k];
            if (a < 0 || x < 0 || uses[a] != 1) continue;
            int h = g->values[a].producer;
            if (h < 0 || out[h].absorbed || out[h].as_op) continue;
            const od_node *act = &g->nodes[h];
            const od_op_desc *op = times_x_gives(act);
            if (!op || act->n_inputs != 1 || act->inputs[0] != x || act->n_outputs != 1) continue;
            const od_shape_info *xi = &shapes->info[x], *yi = &shapes->info[mul->outputs[0]];
            if (xi->dtype != OD_DTYPE_FLOAT || xi->rank != yi->rank || xi->constant) continue;
            bool same = true;
            for (int d = 0; d < xi->rank; d++) same = same && xi->dims[d] == yi->dims[d];
            if (!same) continue;
            out[h].absorbed = true;
            out[m].as_op = op;
            out[m].as_input = x;
            break;
        }
    }
}

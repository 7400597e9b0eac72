/* Shape inference over a checked graph, for one batch size, folding constant subgraphs. */
#include "op.h"
#include "plan_internal.h"

#include <stdlib.h>
#include <string.h>

void od_graph_shapes_clear(od_graph_shapes *s) {
    if (!s) return;
    if (s->folded)
        for (int i = 0; i < s->n_values; i++) od_tensor_destroy(s->folded[i]);
    free(s->folded);
    free(s->info);
    memset(s, 0, sizeof *s);
}

static bool is_initializer(const od_graph *g, int v) { return g->values[v].init != NULL; }

/* A known shape whose element count or byte size does not fit: declared dims such as
 * [N, 2^40, 2^40] would otherwise size buffers from a wrapped product. Zero dims are skipped:
 * strides of [0, 2^62, 2^62] overflow all the same. */
static bool shape_too_large(const od_shape_info *info) {
    if (info->rank < 0) return false;
    size_t esize = od_dtype_size(info->dtype);
    int64_t count = (int64_t)(esize ? esize : 1);
    for (int d = 0; d < info->rank; d++)
        if (info->dims[d] < 0 || (info->dims[d] > 0 && __builtin_mul_overflow(count, info->dims[d], &count)))
            return true;
    return count > INT64_MAX / 2;
}

/* Graph inputs: declared shape, the first symbolic dim taken as the batch. */
static od_status init_graph_input(const od_graph *g, int v, int64_t batch, bool partial,
                                  od_shape_info *info, od_error *err) {
    const od_value *val = &g->values[v];
    info->dtype = val->dtype;
    info->rank = val->rank;
    if (val->rank < 0) {
        if (partial) return OD_STATUS_OK;
        return od_error_set(err, OD_STATUS_SHAPE, "graph input \"%s\" has no declared shape",
                            val->name);
    }
    for (int d = 0; d < val->rank; d++) {
        if (val->dims[d].value >= 0) {
            info->dims[d] = val->dims[d].value;
        } else if (d == 0) {
            info->dims[d] = batch;
        } else if (partial) {
            info->rank = -1;
            return OD_STATUS_OK;
        } else {
            return od_error_set(err, OD_STATUS_SHAPE,
                                "graph input \"%s\": dim %d is symbolic (%s); only the first "
                                "(batch) dim may be",
                                val->name, d, val->dims[d].param ? val->dims[d].param : "?");
        }
    }
    return OD_STATUS_OK;
}

/* Outputs of a node we cannot infer: take whatever the file declares. */
static void declared_info(const od_graph *g, int v, od_shape_info *info) {
    const od_value *val = &g->values[v];
    info->dtype = val->dtype;
    info->rank = val->rank;
    for (int d = 0; d < val->rank && d < OD_MAX_RANK; d++) {
        if (val->dims[d].value < 0) {
            info->rank = -1;
            break;
        }
        info->dims[d] = val->dims[d].value;
    }
}

/* A misspelt attribute (Conv's "pad" for "pads") would run with the default and give another
 * result; other runtimes refuse the model. */
static od_status node_check_attrs(const od_node *n, const od_op_desc *op, od_error *err) {
    const char *unknown = od_op_unknown_attr(op, n);
    if (!unknown) return OD_STATUS_OK;
    return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "unknown attribute \"%s\"", unknown);
}

od_status od_graph_check_attrs(const od_graph *g, od_error *err) {
    for (int i = 0; i < g->n_nodes; i++) {
        const od_op_desc *op = od_op_find(g->nodes[i].domain, g->nodes[i].op_type);
        od_status st = op ? node_check_attrs(&g->nodes[i], op, err) : OD_STATUS_OK;
        if (st) return st;
    }
    return OD_STATUS_OK;
}

od_status od_graph_infer_ex(const od_graph *g, int64_t batch, bool partial, od_graph_shapes *out,
                            od_error *err) {
    od_status st = OD_STATUS_OK;
    memset(out, 0, sizeof *out);
    out->n_values = g->n_values;
    out->batch = batch;
    out->info = calloc(g->n_values ? g->n_values : 1, sizeof *out->info);
    out->folded = calloc(g->n_values ? g->n_values : 1, sizeof *out->folded);
    if (!out->info || !out->folded) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory inferring shapes");
        goto fail;
    }
    for (int v = 0; v < g->n_values; v++) out->info[v].rank = -1;
    for (int v = 0; v < g->n_values; v++) {
        const od_tensor *t = g->values[v].init;
        if (!t) continue;
        od_shape_info *info = &out->info[v];
        info->dtype = t->dtype;
        info->rank = t->rank;
        memcpy(info->dims, t->dims, sizeof info->dims);
        info->constant = t;
        if (shape_too_large(info)) {
            st = od_error_set(err, OD_STATUS_SHAPE, "initializer \"%s\": the product of its dims overflows",
                              g->values[v].name);
            goto fail;
        }
    }
    for (int i = 0; i < g->n_inputs; i++) {
        int v = g->inputs[i];
        if (is_initializer(g, v)) continue;
        st = init_graph_input(g, v, batch, partial, &out->info[v], err);
        if (st) goto fail;
        if (shape_too_large(&out->info[v])) {
            out->info[v].rank = -1;
            if (!partial) {
                st = od_error_set(err, OD_STATUS_SHAPE,
                                  "graph input \"%s\": the product of its dims overflows",
                                  g->values[v].name);
                goto fail;
            }
        }
    }
    od_error first_problem = {0};
    for (int ni = 0; ni < g->n_nodes; ni++) {
        const od_node *n = &g->nodes[ni];
        const od_op_desc *op = od_op_find(n->domain, n->op_type);
        const od_shape_info *in[64];
        od_shape_info outs[16];
        od_tensor *consts[16] = {0};
        bool known = n->n_inputs <= 64 && n->n_outputs <= 16;
        for (int k = 0; known && k < n->n_inputs; k++) {
            in[k] = n->inputs[k] >= 0 ? &out->info[n->inputs[k]] : NULL;
            if (in[k] && in[k]->rank < 0) known = false;
        }
        od_error node_err = {0};
        od_status nst = OD_STATUS_OK;
        if (op && od_op_unknown_attr(op, n)) {
            od_status ust = node_check_attrs(n, op, &node_err);
            if (!partial) {
                if (err) *err = node_err;
                st = ust;
                goto fail;
            }
            if (!first_problem.status) first_problem = node_err; /* inspect: a note */
            memset(&node_err, 0, sizeof node_err);
        }
        if (!op) {
            char label[256];
            nst = od_error_set(&node_err, OD_STATUS_UNSUPPORTED, "%s: unsupported op",
                               od_node_label(n, label, sizeof label));
        } else if (n->n_outputs < 1 || n->outputs[0] < 0) {
            /* every ONNX op has a required first output; the ops rely on it */
            nst = od_node_error(&node_err, OD_STATUS_INVALID_MODEL, n, "has no output");
        } else if (!known) {
            nst = od_node_error(&node_err, OD_STATUS_SHAPE, n, "an input's shape is unknown");
        } else {
            memset(outs, 0, sizeof outs);
            for (int k = 0; k < n->n_outputs; k++) outs[k].rank = -1;
            int64_t opset = g->opset ? g->opset : 17;
            od_infer_ctx c = {n, opset, n->n_inputs, n->n_outputs, in, outs, consts, &node_err};
            nst = op->infer(&c);
            for (int k = 0; nst == OD_STATUS_OK && k < n->n_outputs; k++)
                if (n->outputs[k] >= 0 && shape_too_large(&outs[k]))
                    nst = od_node_error(&node_err, OD_STATUS_SHAPE, n,
                                        "output \"%s\": the product of its dims overflows",
                                        g->values[n->outputs[k]].name);
            /* spatial ops want channels-last data, which folding does not make */
            bool all_const = n->n_inputs > 0 && !op->no_fold &&
                             op->layout != OD_LAYOUT_POLICY_SPATIAL;
            for (int k = 0; nst == OD_STATUS_OK && k < n->n_inputs; k++)
                if (in[k] && !in[k]->constant) all_const = false;
            for (int k = 0; k < n->n_outputs; k++)
                if (consts[k]) all_const = false; /* the op folded itself */
            if (nst == OD_STATUS_OK && all_const)
                nst = od_eval_node(n, opset, op, in, outs, consts, &node_err);
        }
        if (nst) {
            for (int k = 0; k < 16; k++) od_tensor_destroy(consts[k]);
            if (!partial) {
                if (err) *err = node_err;
                st = nst;
                goto fail;
            }
            if (!first_problem.status) first_problem = node_err;
            for (int k = 0; k < n->n_outputs; k++)
                if (n->outputs[k] >= 0) {
                    od_shape_info *o = &out->info[n->outputs[k]];
                    declared_info(g, n->outputs[k], o);
                    if (shape_too_large(o)) o->rank = -1;
                }
            continue;
        }
        for (int k = n->n_outputs; k < 16; k++) od_tensor_destroy(consts[k]); /* a node without outputs */
        for (int k = 0; k < n->n_outputs; k++) {
            int v = n->outputs[k];
            if (v < 0) {
                od_tensor_destroy(consts[k]);
                continue;
            }
            out->info[v] = outs[k];
            out->info[v].constant = NULL;
            if (consts[k]) {
                out->folded[v] = consts[k];
                out->info[v].constant = consts[k];
            }
        }
    }
    if (partial && first_problem.status && err) *err = first_problem;
    return OD_STATUS_OK;
fail:
    od_graph_shapes_clear(out);
    return st;
}

od_status od_graph_infer(const od_graph *g, int64_t batch, od_graph_shapes *out, od_error *err) {
    return od_graph_infer_ex(g, batch, false, out, err);
}

int64_t od_node_macs(const od_graph *g, int node, const od_graph_shapes *s) {
    const od_node *n = &g->nodes[node];
    const od_op_desc *op = od_op_find(n->domain, n->op_type);
    if (!op || !op->macs || n->n_outputs < 1 || n->outputs[0] < 0) return 0;
    const od_shape_info *in[64];
    /* every op that does MACs takes two tensors of rank 1 or more (Conv, ConvTranspose, Gemm,
     * MatMul); a node whose inference failed may lack them */
    if (n->n_inputs > 64 || n->n_inputs < 2) return 0;
    for (int k = 0; k < n->n_inputs; k++) {
        in[k] = n->inputs[k] >= 0 ? &s->info[n->inputs[k]] : NULL;
        if (in[k] && in[k]->rank < 0) return 0;
    }
    if (!in[0] || !in[1] || in[0]->rank < 1 || in[1]->rank < 1) return 0;
    const od_shape_info *o = &s->info[n->outputs[0]];
    if (o->rank < 1) return 0;
    int64_t macs = op->macs(n, in, o);
    return macs < 0 ? 0 : macs > OD_MACS_MAX ? OD_MACS_MAX : macs;
}

/* onnx-distill inspect MODEL [--json] [--nodes] */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

const cli_command cli_cmd_inspect = {
    .name = "inspect",
    .summary = "size, opsets, inputs/outputs, ops, parameters and MACs of a model",
    .synopsis = "MODEL [--json] [--nodes]",
    .min_operands = 1, .max_operands = 1, .operand = "model",
    .about = "Prints the file size, IR version, opsets, producer, graph inputs and outputs (a symbolic dim "
             "such as the batch prints by name), node count, op histogram, parameters (elements of float "
             "initializers), MACs per sample (Conv, ConvTranspose, Gemm, MatMul at batch 1; a lower bound, "
             "marked >=, when some shapes cannot be inferred) and the metadata_props (provenance).",
    .options = (const cli_option[]){
        {CLI_FLAG, "--nodes", .help = "also a table of every node: name, op, output shape, params, MACs"},
        CLI_OPT_JSON("one JSON object with keys bytes, ir_version, opsets, producer, inputs, outputs, nodes, "
                     "ops, params, macs, macs_complete, macs_unknown_nodes, metadata (and node_table with --nodes)"),
        {0},
    },
};

/* A value's dims for printing: fixed dims from inference at batch 1; a dim that changes
 * between batch 1 and batch 2 is the batch, printed by its declared name or "N". */
typedef struct shape_text {
    int rank;
    int64_t dims[OD_MAX_RANK];
    const char *names[OD_MAX_RANK]; /* non-NULL: symbolic */
} shape_text;

static void value_shape(const od_graph *g, int v, const od_graph_shapes *s1, const od_graph_shapes *s2,
                        shape_text *out) {
    const od_value *val = &g->values[v];
    memset(out, 0, sizeof *out);
    const od_shape_info *a = &s1->info[v], *b = &s2->info[v];
    if (a->rank >= 0 && b->rank == a->rank) {
        out->rank = a->rank;
        for (int d = 0; d < a->rank; d++) {
            out->dims[d] = a->dims[d];
            if (a->dims[d] != b->dims[d])
                out->names[d] = val->rank > d && val->dims[d].param ? val->dims[d].param : "N";
        }
        return;
    }
    out->rank = val->rank;
    for (int d = 0; d < val->rank; d++) {
        out->dims[d] = val->dims[d].value;
        if (val->dims[d].value < 0) out->names[d] = val->dims[d].param ? val->dims[d].param : "?";
    }
}

static void print_shape(FILE *f, const shape_text *s, bool json) {
    if (s->rank < 0) {
        fputs(json ? "null" : "?", f);
        return;
    }
    fputc('[', f);
    for (int d = 0; d < s->rank; d++) {
        if (d) fputs(json ? ", " : ",", f);
        if (s->names[d] && json) od_json_string(f, s->names[d]);
        else if (s->names[d]) fputs(s->names[d], f);
        else fprintf(f, "%lld", (long long)s->dims[d]);
    }
    fputc(']', f);
}

typedef struct op_hist {
    const char *op;
    int count;
} op_hist;

static int node_params(const od_graph *g, const od_node *n) {
    int64_t p = 0;
    for (int k = 0; k < n->n_inputs; k++) {
        int v = n->inputs[k];
        if (v < 0 || !g->values[v].init) continue;
        od_dtype t = g->values[v].init->dtype;
        if (t == OD_DTYPE_FLOAT || t == OD_DTYPE_FLOAT16 || t == OD_DTYPE_BFLOAT16 || t == OD_DTYPE_DOUBLE)
            p += od_tensor_count(g->values[v].init);
    }
    return (int)p;
}

int cmd_inspect(int argc, char **argv) {
    cli_args args;
    int parsed = cli_parse(&cli_cmd_inspect, argc, argv, &args);
    if (parsed >= 0) return parsed;
    const char *path = args.operands[0];
    bool json = cli_given(&args, "--json"), nodes = cli_given(&args, "--nodes");
    cli_args_clear(&args);
    od_error err = {0};
    od_model *m = NULL;
    if (od_model_load(path, &m, &err)) return cli_fail_err(&err);
    const od_graph *g = &m->graph;
    model_facts facts;
    od_graph_shapes s1 = {0}, s2 = {0};
    od_error note1 = {0}, note2 = {0};
    if (model_facts_get(path, m, &facts, &err) || od_graph_infer_ex(g, 1, true, &s1, &note1) ||
        od_graph_infer_ex(g, 2, true, &s2, &note2)) {
        od_graph_shapes_clear(&s1);
        od_model_destroy(m);
        return cli_fail("%s: %s", path, err.message[0] ? err.message : note1.message);
    }
    op_hist *hist = calloc(g->n_nodes + 1, sizeof *hist);
    int n_hist = 0;
    for (int i = 0; i < g->n_nodes && hist; i++) {
        int h = 0;
        while (h < n_hist && strcmp(hist[h].op, g->nodes[i].op_type) != 0) h++;
        if (h == n_hist) hist[n_hist++].op = g->nodes[i].op_type;
        hist[h].count++;
    }
    /* text goes through a buffer, to be escaped on its way to the terminal */
    char *text = NULL;
    size_t text_len = 0;
    FILE *f = json ? stdout : open_memstream(&text, &text_len);
    if (!f) f = stdout;
    char b1[32], b2[32];
    shape_text st;
    if (json) {
        fprintf(f, "{\"file\": ");
        od_json_string(f, path);
        fprintf(f, ", \"bytes\": %zu, \"ir_version\": %lld, \"opsets\": {", facts.bytes, (long long)m->ir_version);
        for (int i = 0; i < m->n_opsets; i++) {
            fputs(i ? ", " : "", f);
            od_json_string(f, m->opsets[i].domain && *m->opsets[i].domain ? m->opsets[i].domain : "ai.onnx");
            fprintf(f, ": %lld", (long long)m->opsets[i].version);
        }
        fputs("}, \"producer\": {\"name\": ", f);
        od_json_string(f, m->producer_name);
        fputs(", \"version\": ", f);
        od_json_string(f, m->producer_version);
        fputs("}", f);
        for (int io = 0; io < 2; io++) {
            fprintf(f, ", \"%s\": [", io ? "outputs" : "inputs");
            int n = io ? g->n_outputs : g->n_inputs;
            const int *vals = io ? g->outputs : g->inputs;
            for (int i = 0, k = 0; i < n; i++) {
                if (!io && g->values[vals[i]].init) continue;
                fputs(k++ ? ", " : "", f);
                fputs("{\"name\": ", f);
                od_json_string(f, g->values[vals[i]].name);
                fputs(", \"dtype\": ", f);
                od_json_string(f, od_dtype_name(g->values[vals[i]].dtype));
                fputs(", \"shape\": ", f);
                value_shape(g, vals[i], &s1, &s2, &st);
                print_shape(f, &st, true);
                fputs("}", f);
            }
            fputs("]", f);
        }
        fprintf(f, ", \"nodes\": %d, \"ops\": {", g->n_nodes);
        for (int h = 0; h < n_hist; h++) {
            fputs(h ? ", " : "", f);
            od_json_string(f, hist[h].op);
            fprintf(f, ": %d", hist[h].count);
        }
        fprintf(f, "}, \"params\": %lld, \"macs\": %lld, \"macs_complete\": %s, \"macs_unknown_nodes\": %d",
                (long long)facts.params, (long long)facts.macs, facts.macs_unknown ? "false" : "true",
                facts.macs_unknown);
        fputs(", \"metadata\": {", f);
        for (int i = 0; i < m->n_meta; i++) {
            fputs(i ? ", " : "", f);
            od_json_string(f, m->meta[i].key);
            fputs(": ", f);
            od_json_string(f, m->meta[i].value);
        }
        fputs("}", f);
        if (note1.status) {
            fputs(", \"note\": ", f);
            od_json_string(f, note1.message);
        }
        if (nodes) {
            fputs(", \"node_table\": [", f);
            for (int i = 0; i < g->n_nodes; i++) {
                const od_node *n = &g->nodes[i];
                fputs(i ? ", " : "", f);
                fputs("{\"name\": ", f);
                od_json_string(f, n->name);
                fputs(", \"op\": ", f);
                od_json_string(f, n->op_type);
                fputs(", \"shape\": ", f);
                if (n->n_outputs && n->outputs[0] >= 0) {
                    value_shape(g, n->outputs[0], &s1, &s2, &st);
                    print_shape(f, &st, true);
                } else {
                    fputs("null", f);
                }
                fprintf(f, ", \"params\": %d, \"macs\": %lld}", node_params(g, n), (long long)od_node_macs(g, i, &s1));
            }
            fputs("]", f);
        }
        fputs("}\n", f);
    } else {
        fprintf(f, "file        %s (%s bytes)\n", path, od_format_count((int64_t)facts.bytes, b1, sizeof b1));
        fprintf(f, "ir_version  %lld\nopsets     ", (long long)m->ir_version);
        for (int i = 0; i < m->n_opsets; i++)
            fprintf(f, " %s %lld", m->opsets[i].domain && *m->opsets[i].domain ? m->opsets[i].domain : "ai.onnx",
                    (long long)m->opsets[i].version);
        fprintf(f, "\nproducer    %s %s\n", m->producer_name ? m->producer_name : "?",
                m->producer_version ? m->producer_version : "");
        for (int io = 0; io < 2; io++) {
            int n = io ? g->n_outputs : g->n_inputs;
            const int *vals = io ? g->outputs : g->inputs;
            for (int i = 0; i < n; i++) {
                if (!io && g->values[vals[i]].init) continue;
                fprintf(f, "%-11s %s %s ", io ? "output" : "input", g->values[vals[i]].name,
                        od_dtype_name(g->values[vals[i]].dtype));
                value_shape(g, vals[i], &s1, &s2, &st);
                print_shape(f, &st, false);
                fputc('\n', f);
            }
        }
        fprintf(f, "nodes       %d:", g->n_nodes);
        for (int h = 0; h < n_hist; h++) fprintf(f, " %s %d%s", hist[h].op, hist[h].count, h + 1 < n_hist ? "," : "");
        fprintf(f, "\nparams      %s\n", od_format_count(facts.params, b1, sizeof b1));
        if (facts.macs_unknown)
            fprintf(f, "MACs        >= %s per sample (a lower bound: %d nodes of unknown shape)\n",
                    od_format_count(facts.macs, b2, sizeof b2), facts.macs_unknown);
        else
            fprintf(f, "MACs        %s per sample\n", od_format_count(facts.macs, b2, sizeof b2));
        for (int i = 0; i < m->n_meta; i++)
            fprintf(f, "%-11s %s = %s\n", i ? "" : "metadata", m->meta[i].key, m->meta[i].value);
        if (note1.status) fprintf(f, "note        %s\n", note1.message);
        if (nodes) {
            fprintf(f, "\n%-32s %-20s %-22s %12s %14s\n", "node", "op", "output shape", "params", "MACs");
            for (int i = 0; i < g->n_nodes; i++) {
                const od_node *n = &g->nodes[i];
                char shape[128] = "?";
                if (n->n_outputs && n->outputs[0] >= 0) {
                    value_shape(g, n->outputs[0], &s1, &s2, &st);
                    FILE *mf = fmemopen(shape, sizeof shape, "w");
                    if (mf) {
                        print_shape(mf, &st, false);
                        fclose(mf);
                    }
                }
                fprintf(f, "%-32s %-20s %-22s %12s %14s\n", n->name && *n->name ? n->name : "-", n->op_type, shape,
                        od_format_count(node_params(g, n), b1, sizeof b1), od_format_count(od_node_macs(g, i, &s1), b2, sizeof b2));
            }
        }
    }
    if (f != stdout) {
        fclose(f);
        od_print_escaped(stdout, text, text_len);
        free(text);
    }
    free(hist);
    od_graph_shapes_clear(&s1);
    od_graph_shapes_clear(&s2);
    od_model_destroy(m);
    return 0;
}

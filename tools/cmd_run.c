/* onnx-distill run MODEL --input [NAME=]FILE ... --output [NAME=]FILE ... [--threads N] */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

const cli_command cli_cmd_run = {
    .name = "run",
    .summary = "run a model on .npy or .pb inputs, write its outputs",
    .synopsis = "MODEL --input [NAME=]FILE ... --output [NAME=]FILE ... [--threads N]",
    .min_operands = 1, .max_operands = 1, .operand = "model",
    .about = "Runs MODEL once. Inputs are NumPy .npy (C order) or ONNX TensorProto .pb files; without NAME= "
             "they are taken in the order of the model's inputs. The batch size is the first dim of the "
             "inputs. Each --output FILE gets the output of that name (or the outputs in order); its format "
             "follows the extension (.npy or .pb). Files are written atomically.",
    .options = (const cli_option[]){
        {CLI_TEXT, "--input", 0, "[NAME=]FILE", .repeat = true, .help = "an input tensor"},
        {CLI_TEXT, "--output", 0, "[NAME=]FILE", .repeat = true, .help = "where an output goes"},
        CLI_OPT_THREADS("1"),
        {0},
    },
};

#define MAX_IO 32

typedef struct io_arg {
    const char *name; /* NULL: by position */
    const char *file;
} io_arg;

static io_arg split_arg(const char *s) {
    io_arg a = {NULL, s};
    const char *eq = strchr(s, '=');
    if (eq) { /* NAME=FILE; a file name could hold '=', so only when NAME has no '/' */
        char *name = strndup(s, (size_t)(eq - s));
        if (name && !strchr(name, '/')) {
            a.name = name;
            a.file = eq + 1;
        } else {
            free(name);
        }
    }
    return a;
}

static void shape_str(char *buf, size_t size, int rank, const int64_t *dims) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, size - o, "[");
    for (int d = 0; d < rank && o < size; d++) o += (size_t)snprintf(buf + o, size - o, "%s%lld", d ? "," : "", (long long)dims[d]);
    if (o < size) snprintf(buf + o, size - o, "]");
}

int cmd_run(int argc, char **argv) {
    cli_args args;
    int parsed = cli_parse(&cli_cmd_run, argc, argv, &args);
    if (parsed >= 0) return parsed;
    const char *path = args.operands[0];
    io_arg ins[MAX_IO], outs[MAX_IO];
    int n_ins = cli_count(&args, "--input"), n_outs = cli_count(&args, "--output"), rc = 1;
    long threads = (long)cli_int(&args, "--threads", 1);
    if (n_ins > MAX_IO || n_outs > MAX_IO)
        return cli_args_clear(&args), cli_usage(&cli_cmd_run, "run: at most %d inputs and %d outputs", MAX_IO, MAX_IO);
    for (int k = 0; k < n_ins; k++) ins[k] = split_arg(cli_nth(&args, "--input", k));
    for (int k = 0; k < n_outs; k++) outs[k] = split_arg(cli_nth(&args, "--output", k));
    cli_args_clear(&args);
    if (!n_ins || !n_outs) {
        for (int k = 0; k < n_ins; k++) free((char *)ins[k].name);
        for (int k = 0; k < n_outs; k++) free((char *)outs[k].name);
        return cli_usage(&cli_cmd_run, "run: no --%s given", n_ins ? "output" : "input");
    }
    od_error err = {0};
    od_model *m = NULL;
    od_plan *plan = NULL;
    od_tensor data[MAX_IO];
    memset(data, 0, sizeof data);
    const char *in_files[MAX_IO + 1] = {path}, *out_files[MAX_IO];
    for (int k = 0; k < n_ins; k++) in_files[k + 1] = ins[k].file;
    for (int k = 0; k < n_outs; k++) out_files[k] = outs[k].file;
    if (od_outputs_check(out_files, n_outs, in_files, n_ins + 1, &err) || od_model_load(path, &m, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    od_graph *g = &m->graph;
    int graph_in[MAX_IO], n_graph_in = 0;
    for (int i = 0; i < g->n_inputs && n_graph_in < MAX_IO; i++)
        if (!g->values[g->inputs[i]].init) graph_in[n_graph_in++] = g->inputs[i];
    if (n_ins != n_graph_in) {
        cli_fail("run: %s has %d input%s, %d given", path, n_graph_in, n_graph_in == 1 ? "" : "s", n_ins);
        goto done;
    }
    /* match each file to a graph input; the batch comes from the data */
    int order[MAX_IO];
    int64_t batch = 1;
    for (int k = 0; k < n_ins; k++) {
        order[k] = k;
        if (ins[k].name) {
            order[k] = -1;
            for (int j = 0; j < n_graph_in; j++)
                if (strcmp(g->values[graph_in[j]].name, ins[k].name) == 0) order[k] = j;
            if (order[k] < 0) {
                cli_fail("run: %s has no input named \"%s\"", path, ins[k].name);
                goto done;
            }
        }
        if (od_tensor_file_read(ins[k].file, &data[k], &err)) {
            cli_fail_err(&err);
            goto done;
        }
        const od_value *v = &g->values[graph_in[order[k]]];
        char want[160], have[160];
        shape_str(have, sizeof have, data[k].rank, data[k].dims);
        if (data[k].dtype != v->dtype) {
            cli_fail("run: %s: input \"%s\" wants %s, the file holds %s", ins[k].file, v->name,
                     od_dtype_name(v->dtype), od_dtype_name(data[k].dtype));
            goto done;
        }
        bool fits = v->rank < 0 || v->rank == data[k].rank;
        for (int d = 0; fits && d < v->rank; d++)
            if (v->dims[d].value >= 0 && v->dims[d].value != data[k].dims[d]) fits = false;
        if (!fits) {
            size_t o = 0;
            o += (size_t)snprintf(want + o, sizeof want - o, "[");
            for (int d = 0; d < v->rank; d++) {
                if (v->dims[d].value >= 0) o += (size_t)snprintf(want + o, sizeof want - o, "%s%lld", d ? "," : "", (long long)v->dims[d].value);
                else o += (size_t)snprintf(want + o, sizeof want - o, "%s%s", d ? "," : "", v->dims[d].param ? v->dims[d].param : "?");
            }
            snprintf(want + o, sizeof want - o, "]");
            cli_fail("run: %s: input \"%s\" wants shape %s, the file holds %s", ins[k].file, v->name, want, have);
            goto done;
        }
        if (data[k].rank > 0 && v->rank > 0 && v->dims[0].value < 0) batch = data[k].dims[0];
    }
    if (od_plan_create(g, &(od_plan_options){.batch = batch, .threads = (int)threads}, &plan, &err)) {
        od_error_prefix(&err, "%s: ", path);
        cli_fail_err(&err);
        goto done;
    }
    for (int k = 0; k < n_ins; k++) {
        const od_plan_io *io = od_plan_input(plan, order[k]);
        if (io->nbytes != data[k].nbytes) {
            cli_fail("run: %s: input \"%s\" has %zu bytes, the model wants %zu", ins[k].file, io->name, data[k].nbytes, io->nbytes);
            goto done;
        }
        memcpy(io->data, data[k].data, io->nbytes);
    }
    if (od_plan_run(plan, &err)) {
        od_error_prefix(&err, "%s: ", path);
        cli_fail_err(&err);
        goto done;
    }
    for (int k = 0; k < n_outs; k++) {
        int o = k;
        if (outs[k].name) {
            o = -1;
            for (int j = 0; j < od_plan_n_outputs(plan); j++)
                if (strcmp(od_plan_output(plan, j)->name, outs[k].name) == 0) o = j;
            if (o < 0) {
                cli_fail("run: %s has no output named \"%s\"", path, outs[k].name);
                goto done;
            }
        } else if (o >= od_plan_n_outputs(plan)) {
            cli_fail("run: %s has only %d output(s)", path, od_plan_n_outputs(plan));
            goto done;
        }
        const od_plan_io *io = od_plan_output(plan, o);
        od_tensor t = {.name = (char *)io->name, .dtype = io->dtype, .rank = io->rank, .data = io->data, .nbytes = io->nbytes};
        memcpy(t.dims, io->dims, sizeof t.dims);
        if (od_tensor_file_write(outs[k].file, &t, &err)) {
            cli_fail_err(&err);
            goto done;
        }
    }
    rc = 0;
done:
    for (int k = 0; k < MAX_IO; k++) od_tensor_clear(&data[k]);
    for (int k = 0; k < n_ins; k++) free((char *)ins[k].name);
    for (int k = 0; k < n_outs; k++) free((char *)outs[k].name);
    od_plan_destroy(plan);
    od_model_destroy(m);
    return rc;
}

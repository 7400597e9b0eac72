/* onnx-distill shrink TEACHER (--width W | --depth D | --spec FILE) [...] -o STUDENT */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

const cli_command cli_cmd_shrink = {
    .name = "shrink",
    .summary = "build a smaller student graph from a teacher (width/depth/spec)",
    .synopsis = "TEACHER.onnx (--width W | --depth D | --spec FILE | --budget B) [options] -o STUDENT.onnx",
    .min_operands = 1, .max_operands = 1, .operand = "teacher",
    .about = "Builds a smaller student from the teacher's own graph and writes it (atomically), untrained or "
             "initialised from the teacher; prints the teacher's and the student's parameters and MACs per "
             "sample. The graph inputs and outputs keep their names and shapes.",
    .options = (const cli_option[]){
        CLI_OPTS_SHRINK,
        CLI_OPT_SEED,
        CLI_OPT_VERBOSE("also list every layer's channels and the removable blocks"),
        CLI_OPT_OUTPUT("the student to write"),
        {0},
    },
};

static const char *pct(int64_t part, int64_t whole, char *buf, size_t size) {
    if (whole <= 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.1f%%", 100.0 * (double)part / (double)whole);
    return buf;
}

int cmd_shrink(int argc, char **argv) {
    cli_args args;
    int parsed = cli_parse(&cli_cmd_shrink, argc, argv, &args);
    if (parsed >= 0) return parsed;
    const char *teacher_path = args.operands[0], *out_path = cli_text(&args, "--output", NULL);
    const char *spec_path = cli_text(&args, "--spec", NULL);
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    double width = cli_real(&args, "--width", 0), depth = cli_real(&args, "--depth", 0);
    spec.round_to = (int)cli_int(&args, "--round", spec.round_to);
    spec.init = cli_choice(&args, "--init", 0) ? OD_SHRINK_INIT_RANDOM : OD_SHRINK_INIT_TEACHER;
    spec.bn = (od_shrink_bn[]){OD_SHRINK_BN_AUTO, OD_SHRINK_BN_ON, OD_SHRINK_BN_OFF}[cli_choice(&args, "--bn", 0)];
    spec.seed = (uint64_t)cli_int(&args, "--seed", (long long)spec.seed);
    bool verbose = cli_given(&args, "--verbose");
    const char *budget_text = cli_text(&args, "--budget", NULL), *budget_out = cli_text(&args, "--budget-spec-out", NULL);
    bool target_given = cli_given(&args, "--target");
    double budget_time = 0; /* --budget-time, read with the other budget options */
    od_budget budget;
    od_error budget_err = {0};
    if (target_given && !budget_text) return cli_args_clear(&args), cli_usage(&cli_cmd_shrink, "shrink: --target needs --budget");
    if (cli_given(&args, "--budget-margin") && !budget_text)
        return cli_args_clear(&args), cli_usage(&cli_cmd_shrink, "shrink: --budget-margin needs --budget");
    if (cli_given(&args, "--budget-time") && !budget_text)
        return cli_args_clear(&args), cli_usage(&cli_cmd_shrink, "shrink: --budget-time needs --budget");
    if (budget_text && (od_budget_parse(budget_text, &budget, &budget_err) || cli_budget_target(&args, &budget, &budget_time, &budget_err)))
        return cli_args_clear(&args), cli_fail_err(&budget_err);
    cli_args_clear(&args); /* the strings stay: they are argv's */
    if (budget_text && (width || spec_path))
        return cli_usage(&cli_cmd_shrink, "shrink: --budget and --width/--spec exclude each other");
    if (budget_out && !budget_text) return cli_usage(&cli_cmd_shrink, "shrink: --budget-spec-out needs --budget");
    if (!width && !depth && !spec_path && !budget_text)
        return cli_usage(&cli_cmd_shrink, "shrink: say how to shrink: --width W, --depth D, --spec FILE or --budget B");
    if (!out_path) return cli_usage(&cli_cmd_shrink, "shrink: no output given (-o STUDENT.onnx)");

    int rc = 1;
    od_error err = {0};
    od_model *teacher = NULL, *student = NULL;
    od_shrink_report rep = {0};
    const char *inputs[] = {teacher_path, spec_path}, *outs[] = {out_path, budget_out};
    if (od_outputs_check(outs, budget_out ? 2 : 1, inputs, 2, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    if (spec_path && od_shrink_spec_load(&spec, spec_path, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    if (width) spec.width = width;
    if (depth) spec.depth = depth;
    if (od_model_load(teacher_path, &teacher, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    if (budget_text) {
        od_budget_result res; /* the chosen student is built below, with the builder's summary */
        if (cli_budget_choose(teacher, &budget, budget_time, budget_out, &spec, &res, NULL, &err)) {
            cli_fail("shrink: %s: %s", teacher_path, err.message);
            goto done;
        }
    }
    if (od_shrink_ex(teacher, &spec, &student, &rep, &err)) {
        cli_fail("shrink: %s: %s", teacher_path, err.message);
        goto done;
    }
    if (od_model_save(student, out_path, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    model_facts ft, fs;
    if (model_facts_get(teacher_path, teacher, &ft, &err) ||
        model_facts_get(out_path, student, &fs, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    char b1[32], b2[32], b3[32], b4[32];
    printf("%-8s %-32s params %12s  MACs %14s\n", "teacher", teacher_path,
           od_format_count(ft.params, b1, sizeof b1), od_format_count(ft.macs, b2, sizeof b2));
    printf("%-8s %-32s params %12s  MACs %14s  (%s of the params, %s of the MACs)\n", "student",
           out_path, od_format_count(fs.params, b1, sizeof b1), od_format_count(fs.macs, b2, sizeof b2),
           pct(fs.params, ft.params, b3, sizeof b3), pct(fs.macs, ft.macs, b4, sizeof b4));
    od_shrink_report_print(&rep, &spec, stdout, stderr);
    if (verbose) {
        printf("\n%-40s %-14s %8s %8s  %s\n", "layer", "op", "teacher", "student", "note");
        for (int i = 0; i < rep.n_layers; i++) {
            const od_shrink_layer *l = &rep.layers[i];
            printf("%-40s %-14s %8lld %8lld  %s\n", l->node[0] ? l->node : "-", l->op_type,
                   (long long)l->teacher_channels, (long long)l->student_channels,
                   l->pinned ? l->pinned : "");
        }
        if (rep.n_blocks) printf("\n%-40s %-9s %6s  %s\n", "removable block", "kind", "nodes", "");
        for (int i = 0; i < rep.n_blocks; i++)
            printf("%-40s %-9s %6d  %s\n", rep.blocks[i].name,
                   rep.blocks[i].residual ? "residual" : "layer", rep.blocks[i].n_nodes,
                   rep.blocks[i].dropped ? "dropped" : "kept");
    }
    rc = 0;
done:
    od_shrink_report_clear(&rep);
    od_shrink_spec_clear(&spec);
    od_model_destroy(student);
    od_model_destroy(teacher);
    return rc;
}

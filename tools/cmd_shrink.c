/* onnx-distill shrink TEACHER (--width W | --depth D | --spec FILE) [...] -o STUDENT */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char shrink_help[] =
    "usage: onnx-distill shrink TEACHER.onnx (--width W | --depth D | --spec FILE)\n"
    "                           [--round N] [--init teacher|random] [--bn auto|on|off]\n"
    "                           [--seed S] [--verbose] -o STUDENT.onnx\n\n"
    "Builds a smaller student from the teacher's own graph and writes it (atomically), untrained\n"
    "or initialised from the teacher; prints the teacher's and the student's parameters and\n"
    "MACs per sample. The graph inputs and outputs keep their names and shapes.\n\n"
    "  --width W      0 < W <= 1: every Conv, ConvTranspose, Gemm and MatMul keeps round(W x its\n"
    "                 output channels), rounded up to a multiple of --round. Channels that must\n"
    "                 agree (residual Add branches, depthwise convs, Concat inputs along other\n"
    "                 axes) form one group; the graph's inputs and the classifier's outputs stay.\n"
    "  --depth D      0 < D <= 1: keep round(D x n) of the n removable blocks, spread evenly. A\n"
    "                 removable block is a residual block whose output shape equals its input's\n"
    "                 (the branch goes, the skip stays) or a layer with its BN and activation in\n"
    "                 a chain of same-shape layers (e.g. the hidden layers of an MLP).\n"
    "  --spec FILE    JSON per-layer control, e.g.\n"
    "                   {\"width\": 0.5, \"depth\": 1, \"channels\": {\"/features/*/Conv\": 24},\n"
    "                    \"drop\": [\"/layers/layers.1/*\"]}\n"
    "                 channels: output channels of the matching nodes (names or globs); drop:\n"
    "                 removable blocks holding a matching node. --width and --depth given on\n"
    "                 the command line override the file's.\n"
    "  --round N      channel multiple, 1 to 65536 (default 8; 1: no rounding)\n"
    "  --init MODE    teacher (default): keep each group's channels of largest L1 norm, with\n"
    "                 the teacher's weights; random: PyTorch's default initialisation\n"
    "  --bn MODE      auto (default: on when the student has more than 2 Conv layers), on, off:\n"
    "                 insert BatchNormalization (named od_bn_*, an identity until trained) after\n"
    "                 each Conv that lacks one, for training; the writer folds them away\n"
    "  --seed S       seed of the random init (default 1)\n"
    "  -v, --verbose  also list every layer's channels and the removable blocks\n"
    "  -o FILE        the student to write\n";

static int fail_range(const char *opt, const char *v, const char *range) {
    return cli_fail("shrink: %s \"%s\" is not in %s", opt, v, range);
}

static bool parse_unit(const char *opt, const char *v, double *out) {
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || !(d > 0 && d <= 1)) {
        if (v) fail_range(opt, v, "(0, 1]");
        return false;
    }
    *out = d;
    return true;
}

static const char *pct(int64_t part, int64_t whole, char *buf, size_t size) {
    if (whole <= 0)
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.1f%%", 100.0 * (double)part / (double)whole);
    return buf;
}

int cmd_shrink(int argc, char **argv) {
    const char *teacher_path = NULL, *out_path = NULL, *v;
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    double width = 0, depth = 0;
    const char *spec_path = NULL;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_flag(a, "--help") || cli_flag(a, "-h")) {
            fputs(shrink_help, stdout);
            return 0;
        } else if (cli_opt(argc, argv, &i, "--width", &v)) {
            if (!parse_unit("--width", v, &width)) return 1;
        } else if (cli_opt(argc, argv, &i, "--depth", &v)) {
            if (!parse_unit("--depth", v, &depth)) return 1;
        } else if (cli_opt(argc, argv, &i, "--spec", &v)) {
            if (!v) return 1;
            spec_path = v;
        } else if (cli_opt(argc, argv, &i, "--round", &v)) {
            long r;
            if (!v || !cli_int("--round", v, 1, 65536, &r)) return 1;
            spec.round_to = (int)r;
        } else if (cli_opt(argc, argv, &i, "--init", &v)) {
            if (!v) return 1;
            if (strcmp(v, "teacher") == 0)
                spec.init = OD_SHRINK_INIT_TEACHER;
            else if (strcmp(v, "random") == 0)
                spec.init = OD_SHRINK_INIT_RANDOM;
            else
                return cli_fail("shrink: --init \"%s\": expected teacher or random", v);
        } else if (cli_opt(argc, argv, &i, "--bn", &v)) {
            if (!v) return 1;
            if (strcmp(v, "auto") == 0)
                spec.bn = OD_SHRINK_BN_AUTO;
            else if (strcmp(v, "on") == 0)
                spec.bn = OD_SHRINK_BN_ON;
            else if (strcmp(v, "off") == 0)
                spec.bn = OD_SHRINK_BN_OFF;
            else
                return cli_fail("shrink: --bn \"%s\": expected auto, on or off", v);
        } else if (cli_opt(argc, argv, &i, "--seed", &v)) {
            char *end;
            if (!v) return 1;
            unsigned long long s = strtoull(v, &end, 10);
            if (end == v || *end || v[0] == '-')
                return cli_fail("shrink: --seed \"%s\" is not a whole number >= 0", v);
            spec.seed = s;
        } else if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) {
            if (!v) return 1;
            out_path = v;
        } else if (cli_flag(a, "-v") || cli_flag(a, "--verbose")) {
            verbose = true;
        } else if (a[0] == '-' && a[1]) {
            return cli_fail("shrink: unknown option %s (see onnx-distill shrink --help)", a);
        } else if (teacher_path) {
            return cli_fail("shrink: one teacher at a time (%s and %s given)", teacher_path, a);
        } else {
            teacher_path = a;
        }
    }
    if (!teacher_path) return cli_fail("shrink: no teacher given (see onnx-distill shrink --help)");
    if (!width && !depth && !spec_path)
        return cli_fail("shrink: say how to shrink: --width W, --depth D or --spec FILE");
    if (!out_path) return cli_fail("shrink: no output given (-o STUDENT.onnx)");

    int rc = 1;
    od_error err = {0};
    od_model *teacher = NULL, *student = NULL;
    od_shrink_report rep = {0};
    const char *inputs[] = {teacher_path, spec_path};
    if (od_outputs_check(&out_path, 1, inputs, 2, &err)) {
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
    int changed = 0, pinned = 0;
    for (int i = 0; i < rep.n_layers; i++) {
        changed += rep.layers[i].student_channels != rep.layers[i].teacher_channels;
        pinned += rep.layers[i].pinned != NULL;
    }
    printf("width %g (round %d): %d of %d layers narrower, %d fixed; depth %g: %d of %d removable "
           "blocks dropped; init %s; %d BatchNormalization inserted\n",
           spec.width, spec.round_to, changed, rep.n_layers, pinned, spec.depth, rep.n_dropped,
           rep.n_blocks, spec.init == OD_SHRINK_INIT_RANDOM ? "random" : "teacher",
           rep.n_bn_inserted);
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

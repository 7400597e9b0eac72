/* onnx-distill optimize IN.onnx -o OUT.onnx [--weights f32|f16|int8] [--activations f32|int8
 * --calibrate DATA [--calibrate-samples N] [--calibrate-percentile P]] [--no-check] */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const cli_command cli_cmd_optimize = {
    .name = "optimize",
    .summary = "fold BatchNorm, drop Dropout/Identity, fold constants, dedupe weights, store f16/int8",
    .synopsis = "IN.onnx -o OUT.onnx [--weights f32|f16|int8] [--activations int8 --calibrate DATA] [--no-check]",
    .min_operands = 1, .max_operands = 1, .operand = "model",
    .about = "Rewrites a model for shipping: folds constant subgraphs (shape chains included), drops Dropout "
             "and Identity, folds BatchNormalization into the Conv, ConvTranspose or Gemm before it, removes "
             "dead nodes and unused initializers, shares identical initializers and strips doc strings. Graph "
             "input and output names, element types and the dynamic batch dim stay.",
    .options = (const cli_option[]){
        CLI_OPT_OUTPUT("where to write; IN itself: optimized in place"),
        CLI_OPT_WEIGHTS,
        {CLI_CHOICE, "--activations", 0, NULL, .choices = "f32|int8", .dflt = "f32",
         .help = "int8 (with --weights int8 and --calibrate): static quantization, written as a QDQ model "
                 "(QuantizeLinear -> DequantizeLinear on the activations around Conv, Gemm, MatMul, Add and "
                 "GlobalAveragePool, asymmetric int8 from calibrated ranges; int32 biases) that ONNX Runtime "
                 "runs and our plans run on XNNPACK's int8 operators"},
        {CLI_TEXT, "--calibrate", 0, "DATA",
         .help = "calibration data (as --data elsewhere): the first --calibrate-samples training samples, "
                 "preprocessed as the model's metadata (or --scale/--mean/--std) says, run through the float model"},
        {CLI_INT, "--calibrate-samples", 0, "N", 1, 1 << 20, .dflt = "256", .help = "calibration samples"},
        {CLI_REAL, "--calibrate-percentile", 0, "P", 50, 100, .lo_open = true, .dflt = "100",
         .help = "each activation's range keeps P% of the values seen, clipping the tails equally "
                 "(100: min/max)"},
        CLI_OPTS_PREPROCESS,
        {CLI_FLAG, "--no-check", .help = "skip running both models in the interpreter before writing"},
        {0},
    },
    .notes = "Unless --no-check, the original and the result run on the same pseudo-random inputs (uniform in "
             "[-2, 2]; with --activations int8 the first calibration samples, which the int8 ranges were made for; "
             "batch 1 and 4) and the largest output difference is printed; a result that fails to "
             "run is not written.",
};

static size_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

/* Largest |a - b| over the outputs of two models run on the same inputs; *max_ref gets the
 * largest |a|. Returns 1 when the check cannot be made (reason in why), -1 when the optimized
 * model fails to run (err set), 0 when done. */
static int compare_models(const od_model *a, const od_model *b, int64_t batch, const float *samples,
                          double *max_diff, double *max_ref, char *why, size_t why_size, od_error *err) {
    od_plan *pa = NULL, *pb = NULL;
    int rc = 1;
    od_error ea = {0};
    if (od_plan_create(&a->graph, &(od_plan_options){.batch = batch, .threads = 1}, &pa, &ea)) {
        snprintf(why, why_size, "the original does not run here: %s", ea.message);
        goto done;
    }
    if (od_plan_create(&b->graph, &(od_plan_options){.batch = batch, .threads = 1}, &pb, err)) {
        rc = -1;
        goto done;
    }
    if (od_plan_n_inputs(pa) != od_plan_n_inputs(pb) ||
        od_plan_n_outputs(pa) != od_plan_n_outputs(pb)) {
        od_error_set(err, OD_STATUS_INVALID_MODEL, "the result has other inputs or outputs");
        rc = -1;
        goto done;
    }
    uint32_t seed = 1234u + (uint32_t)batch;
    for (int i = 0; i < od_plan_n_inputs(pa); i++) {
        const od_plan_io *ia = od_plan_input(pa, i), *ib = od_plan_input(pb, i);
        if (ia->dtype != OD_DTYPE_FLOAT) {
            snprintf(why, why_size, "input \"%s\" is %s, not float", ia->name,
                     od_dtype_name(ia->dtype));
            goto done;
        }
        if (ia->nbytes != ib->nbytes) {
            od_error_set(err, OD_STATUS_INVALID_MODEL, "input \"%s\" changed shape", ia->name);
            rc = -1;
            goto done;
        }
        float *x = ia->data;
        if (samples && i == 0) { /* calibration samples: the inputs the int8 ranges were made for */
            memcpy(x, samples, ia->nbytes);
            memcpy(ib->data, ia->data, ia->nbytes);
            continue;
        }
        for (size_t k = 0; k < ia->nbytes / 4; k++) {
            seed = seed * 1103515245u + 12345u;
            x[k] = (float)(seed >> 8) / 16777216.0f * 4.0f - 2.0f;
        }
        memcpy(ib->data, ia->data, ia->nbytes);
    }
    if (od_plan_run(pa, &ea)) {
        snprintf(why, why_size, "the original does not run here: %s", ea.message);
        goto done;
    }
    if (od_plan_run(pb, err)) {
        rc = -1;
        goto done;
    }
    for (int i = 0; i < od_plan_n_outputs(pa); i++) {
        const od_plan_io *oa = od_plan_output(pa, i), *ob = od_plan_output(pb, i);
        if (oa->nbytes != ob->nbytes || oa->dtype != ob->dtype) {
            od_error_set(err, OD_STATUS_INVALID_MODEL, "output \"%s\" changed shape or type",
                         oa->name);
            rc = -1;
            goto done;
        }
        if (oa->dtype != OD_DTYPE_FLOAT) continue;
        const float *fa = oa->data, *fb = ob->data;
        for (size_t k = 0; k < oa->nbytes / 4; k++) {
            double d = fabs((double)fa[k] - fb[k]);
            if (!(d <= *max_diff)) *max_diff = d; /* NaN wins */
            if (fabs(fa[k]) > *max_ref) *max_ref = fabs(fa[k]);
        }
    }
    rc = 0;
done:
    od_plan_destroy(pa);
    od_plan_destroy(pb);
    return rc;
}

int cmd_optimize(int argc, char **argv) {
    cli_args args;
    int parsed = cli_parse(&cli_cmd_optimize, argc, argv, &args);
    if (parsed >= 0) return parsed;
    const char *in = args.operands[0], *out = cli_text(&args, "--output", NULL);
    od_weight_format fmt = (od_weight_format[]){OD_WEIGHTS_F32, OD_WEIGHTS_F16, OD_WEIGHTS_INT8}[cli_choice(&args, "--weights", 0)];
    bool check = !cli_given(&args, "--no-check"), act8 = cli_choice(&args, "--activations", 0) == 1;
    const char *cal_path = cli_text(&args, "--calibrate", NULL);
    int64_t cal_n = cli_int(&args, "--calibrate-samples", 256);
    double cal_pct = cli_real(&args, "--calibrate-percentile", 100);
    if (!out) return cli_args_clear(&args), cli_usage(&cli_cmd_optimize, "optimize: no output given (-o OUT.onnx)");
    if (act8 && fmt != OD_WEIGHTS_INT8)
        return cli_args_clear(&args), cli_usage(&cli_cmd_optimize, "optimize: --activations int8 needs --weights int8");
    if (act8 && !cal_path)
        return cli_args_clear(&args),
               cli_usage(&cli_cmd_optimize, "optimize: --activations int8 needs --calibrate DATA");
    if (!act8 && (cal_path || cli_given(&args, "--calibrate-samples") || cli_given(&args, "--calibrate-percentile")))
        return cli_args_clear(&args),
               cli_usage(&cli_cmd_optimize, "optimize: --calibrate goes with --activations int8");
    od_error err = {0};
    /* -o IN is in place: allowed, and atomic like any write */
    const char *ins[1] = {cal_path};
    if (od_outputs_check(&out, 1, ins, cal_path ? 1 : 0, &err)) return cli_args_clear(&args), cli_fail_err(&err);

    int rc = 1;
    od_model *orig = NULL, *m = NULL;
    od_bytes bytes = {0};
    od_data_split data = {0};
    float *cal_x = NULL;
    od_quant_stats qs = {0};
    if (od_model_load(in, &orig, &err) || od_model_load(in, &m, &err)) {
        cli_fail_err(&err);
        goto done;
    }
    size_t size_before = file_size(in), params = od_model_float_param_bytes(m);
    od_pass_stats ps;
    if (od_optimize(m, &ps, &err)) {
        od_error_prefix(&err, "%s: optimize: ", in);
        cli_fail_err(&err);
        goto done;
    }
    size_t params_after = od_model_float_param_bytes(m);
    od_weight_stats ws;
    if (act8) {
        od_preprocess pre;
        if (cli_data_load(&args, cal_path, m, 2, true, &data, &err)) {
            cli_fail_err(&err);
            goto done;
        }
        if (od_preprocess_from_model(m, &pre, &err)) {
            cli_fail("%s: %s", in, err.message);
            goto done;
        }
        cli_preprocess_apply(&args, &pre);
        const od_dataset *d = &data.train;
        if (cal_n > d->n) cal_n = d->n;
        int64_t sample = od_dataset_sample_size(d);
        int64_t *idx = malloc(sizeof(int64_t) * (size_t)cal_n);
        cal_x = malloc(sizeof(float) * (size_t)(cal_n * sample));
        if (!idx || !cal_x) {
            free(idx);
            cli_fail("out of memory for %lld calibration samples", (long long)cal_n);
            goto done;
        }
        for (int64_t i = 0; i < cal_n; i++) idx[i] = i;
        if (od_preprocess_check(&pre, d, &err)) {
            free(idx);
            cli_fail_err(&err);
            goto done;
        }
        od_dataset_fill(d, &pre, idx, cal_n, cal_x);
        free(idx);
        od_calibration cal = {.x = cal_x, .n = cal_n, .sample_size = sample, .percentile = cal_pct, .threads = 2};
        if (od_quantize_static(m, &cal, &qs, &err)) {
            od_error_prefix(&err, "%s: --activations int8: ", in);
            cli_fail_err(&err);
            goto done;
        }
        ws = qs.weights;
    } else if (od_store_weights_ex(m, fmt, &ws, &err)) {
        od_error_prefix(&err, "%s: --weights %s: ", in, od_weight_format_name(fmt));
        cli_fail_err(&err);
        goto done;
    }
    /* check, then write, then report: an error prints one line and nothing else */
    double diff = 0, ref = 0;
    char why[1200] = "";
    int checked = 1;
    if (check) {
        checked = 0;
        for (int64_t batch = 1; batch <= 4 && checked == 0; batch += 3)
            checked = compare_models(orig, m, batch, act8 && cal_n >= 4 ? cal_x : NULL, &diff, &ref, why, sizeof why, &err);
        if (checked < 0) {
            od_error_prefix(&err, "%s: the optimized model does not run: ", in);
            cli_fail_err(&err);
            goto done;
        }
        if (checked == 0 && !(diff == diff)) {
            cli_fail("%s: the optimized model gives NaN where the original does not", in);
            goto done;
        }
    }
    if (od_model_encode(m, &bytes, &err)) {
        od_error_prefix(&err, "%s: ", out);
        cli_fail_err(&err);
        goto done;
    }
    if (od_file_write_atomic(out, bytes.data, bytes.len, &err)) { /* its errors name the path */
        cli_fail_err(&err);
        goto done;
    }
    char a[32], b[32];
    printf("%s -> %s\n", in, out);
    printf("  fold constants        %d node%s evaluated into initializers\n", ps.folded_consts,
           ps.folded_consts == 1 ? "" : "s");
    printf("  drop Dropout/Identity %d removed\n", ps.dropped);
    printf("  fold BatchNorm        %d folded into Conv/ConvTranspose/Gemm\n", ps.bn_folded);
    printf("  dead nodes            %d removed\n", ps.dead_nodes);
    printf("  unused initializers   %d removed\n", ps.unused_inits);
    printf("  shared initializers   %d merged into an equal one\n", ps.shared_inits);
    printf("  nodes                 %d -> %d, initializers %d -> %d\n", ps.nodes_before,
           ps.nodes_after, ps.inits_before, ps.inits_after);
    if (fmt == OD_WEIGHTS_F32) {
        printf("  weights               f32 (unchanged)\n");
    } else {
        printf("  weights               %s: %d tensor%s, %s -> %s bytes",
               od_weight_format_name(fmt), ws.tensors, ws.tensors == 1 ? "" : "s",
               od_format_count((int64_t)ws.bytes_before, a, sizeof a),
               od_format_count((int64_t)ws.bytes_after, b, sizeof b));
        if (ws.opset_after != ws.opset_before)
            printf(", opset %lld -> %lld", (long long)ws.opset_before, (long long)ws.opset_after);
        printf("\n");
    }
    if (act8)
        printf("  activations           int8: %d value%s quantized (QuantizeLinear/DequantizeLinear), %d node%s on "
               "int8; calibrated on %lld sample%s of %s (%s %g)\n",
               qs.activations, qs.activations == 1 ? "" : "s", qs.nodes, qs.nodes == 1 ? "" : "s",
               (long long)cal_n, cal_n == 1 ? "" : "s", cal_path, cal_pct < 100 ? "percentile" : "min/max, percentile", cal_pct);
    if (checked > 0 && check)
        printf("  check                 skipped: %s\n", why);
    else if (check)
        printf("  check                 max |difference| %.3g over outputs up to %.3g "
               "(%s, batch 1 and 4)\n",
               diff, ref, act8 && cal_n >= 4 ? "calibration samples" : "random inputs");
    printf("  size                  %s -> %s bytes", od_format_count((int64_t)size_before, a, sizeof a),
           od_format_count((int64_t)bytes.len, b, sizeof b));
    printf(" (float32 parameters: %s bytes", od_format_count((int64_t)params, a, sizeof a));
    if (params_after != params)
        printf(", %s after the passes", od_format_count((int64_t)params_after, b, sizeof b));
    printf(")\n");
    rc = 0;
done:
    cli_args_clear(&args);
    od_data_split_clear(&data);
    free(cal_x);
    od_bytes_free(&bytes);
    od_model_destroy(orig);
    od_model_destroy(m);
    return rc;
}

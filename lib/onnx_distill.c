/* The front door (onnx_distill.h): each call is a short walk over the detailed API, with the
 * error record kept per thread so that the example in the header fits on one screen. */
#include "onnx_distill.h"

#include "od_onnx.h"

#include <stdlib.h>
#include <string.h>

static _Thread_local od_error last_error;

/* Records err as this thread's last error; returns its status (never 0). */
static int failed(const od_error *err) {
    last_error = *err;
    if (!last_error.status) last_error.status = OD_STATUS_INVALID_ARGUMENT;
    return (int)last_error.status;
}

static int fail_arg(const char *what) {
    od_error err = {0};
    od_error_set(&err, OD_STATUS_INVALID_ARGUMENT, "%s", what);
    return failed(&err);
}

const char *od_version(void) {
    return OD_VERSION;
}

const char *od_last_error(void) {
    return last_error.message;
}

od_model *od_open(const char *path) {
    od_error err = {0};
    od_model *m = NULL;
    if (!path) return fail_arg("od_open: no path"), NULL;
    if (od_model_load(path, &m, &err)) return failed(&err), NULL;
    return m;
}

int od_write(const od_model *m, const char *path) {
    od_error err = {0};
    if (!m || !path) return fail_arg("od_write: no model or no path");
    return od_model_save(m, path, &err) ? failed(&err) : 0;
}

void od_close(od_model *m) {
    od_model_destroy(m);
}

static int64_t count(const od_model *m, bool macs) {
    od_error err = {0};
    int64_t params, mac;
    if (!m) return fail_arg("no model"), -1;
    if (od_model_count(m, &params, &mac, &err)) return failed(&err), -1;
    return macs ? mac : params;
}

int64_t od_param_count(const od_model *m) {
    return count(m, false);
}
int64_t od_mac_count(const od_model *m) {
    return count(m, true);
}

/* The i-th graph input that is not an initializer, or -1. */
static int input_value(const od_model *m, int i) {
    if (!m || i < 0) return -1;
    for (int k = 0; k < m->graph.n_inputs; k++)
        if (!m->graph.values[m->graph.inputs[k]].init && i-- == 0) return m->graph.inputs[k];
    return -1;
}

int od_input_count(const od_model *m) {
    int n = 0;
    while (input_value(m, n) >= 0)
        n++;
    return n;
}

int od_output_count(const od_model *m) {
    return m ? m->graph.n_outputs : 0;
}

const char *od_input_name(const od_model *m, int i) {
    int v = input_value(m, i);
    return v < 0 ? NULL : m->graph.values[v].name;
}

const char *od_output_name(const od_model *m, int i) {
    if (!m || i < 0 || i >= m->graph.n_outputs) return NULL;
    return m->graph.values[m->graph.outputs[i]].name;
}

int od_input_shape(const od_model *m, int i, int64_t dims[8]) {
    int v = input_value(m, i);
    if (v < 0) return fail_arg("od_input_shape: no such input"), -1;
    const od_value *val = &m->graph.values[v];
    if (val->rank < 0 || val->rank > 8)
        return fail_arg("od_input_shape: rank unknown or above 8"), -1;
    for (int d = 0; d < val->rank; d++)
        dims[d] = val->dims[d].value >= 0 ? val->dims[d].value : -1;
    return val->rank;
}

int od_describe(const od_model *m, FILE *f) {
    int64_t params = od_param_count(m), macs = od_mac_count(m);
    if (params < 0 || macs < 0) return (int)last_error.status;
    char b1[32], b2[32];
    fprintf(f, "ir_version  %lld\nopsets     ", (long long)m->ir_version);
    for (int i = 0; i < m->n_opsets; i++)
        fprintf(f, " %s %lld",
                m->opsets[i].domain && *m->opsets[i].domain ? m->opsets[i].domain : "ai.onnx",
                (long long)m->opsets[i].version);
    fprintf(f, "\nproducer    %s %s\n", m->producer_name ? m->producer_name : "?",
            m->producer_version ? m->producer_version : "");
    for (int io = 0; io < 2; io++)
        for (int i = 0; i < (io ? od_output_count(m) : od_input_count(m)); i++) {
            const char *name = io ? od_output_name(m, i) : od_input_name(m, i);
            int v = io ? m->graph.outputs[i] : input_value(m, i);
            const od_value *val = &m->graph.values[v];
            fprintf(f, "%-11s %s %s [", io ? "output" : "input", name, od_dtype_name(val->dtype));
            for (int d = 0; d < val->rank; d++) {
                if (d) fputc(',', f);
                if (val->dims[d].value >= 0)
                    fprintf(f, "%lld", (long long)val->dims[d].value);
                else
                    fputs(val->dims[d].param ? val->dims[d].param : "?", f);
            }
            fputs("]\n", f);
        }
    fprintf(f, "nodes       %d\nparams      %s\nMACs        %s per sample\n", m->graph.n_nodes,
            od_format_count(params, b1, sizeof b1), od_format_count(macs, b2, sizeof b2));
    return ferror(f) ? fail_arg("od_describe: cannot write") : 0;
}

od_model *od_make_student(const od_model *teacher, double width, double depth) {
    od_error err = {0};
    od_model *student = NULL;
    if (!teacher) return fail_arg("od_make_student: no teacher"), NULL;
    if (!(width > 0 && width <= 1) || !(depth > 0 && depth <= 1))
        return fail_arg("od_make_student: width and depth are in (0, 1]"), NULL;
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    spec.width = width;
    spec.depth = depth;
    od_status st = od_shrink(teacher, &spec, &student, &err);
    od_shrink_spec_clear(&spec);
    return st ? (failed(&err), NULL) : student;
}

/* A dataset, image folders sized for m's input (resize, crop, channels). */
static od_status load_for(const od_model *m, const char *data, od_data_split *split, od_error *err) {
    od_image_options io;
    od_image_options_default(&io);
    od_image_options_for_model(m, &io);
    return od_data_load_ex(data, &io, split, err);
}

/* A dataset and the model's preprocessing for it. */
static od_status load_data(const od_model *m, const char *data, od_data_split *split,
                           od_preprocess *pre, od_error *err) {
    od_status st;
    if ((st = load_for(m, data, split, err))) return st;
    if ((st = od_preprocess_from_model(m, pre, err))) return st;
    return od_preprocess_check(pre, &split->train, err);
}

int od_train_student(const od_model *teacher, od_model *student, const char *data, int epochs,
                     int64_t max_samples) {
    if (!teacher || !student || !data || epochs < 1)
        return fail_arg("od_train_student: a teacher, a student, data and epochs >= 1 are needed");
    od_error err = {0};
    od_data_split split = {0};
    od_preprocess pre;
    od_distill_result res = {0};
    od_distill_options opt;
    od_distill_options_default(&opt);
    opt.epochs = epochs;
    opt.train_limit = opt.test_limit = max_samples > 0 ? max_samples : 0;
    od_status st = load_data(teacher, data, &split, &pre, &err);
    if (!st) st = od_distill(teacher, student, &split, &pre, &opt, &res, &err);
    if (!st)
        st = od_distill_finish(student, teacher, NULL, "od_train_student", &opt, &res,
                               OD_WEIGHTS_F32, &err);
    od_distill_result_clear(&res);
    od_data_split_clear(&split);
    return st ? failed(&err) : 0;
}

int od_compress(od_model *m, const char *weights) {
    od_error err = {0};
    od_weight_format fmt;
    od_pass_stats ps;
    if (!m) return fail_arg("od_compress: no model");
    if (od_weight_format_parse(weights ? weights : "f32", &fmt, &err) ||
        od_optimize(m, &ps, &err) || od_store_weights(m, fmt, &err))
        return failed(&err);
    return 0;
}

int od_predict(const od_model *m, const float *input, int64_t batch, float *output,
               size_t output_count) {
    od_error err = {0};
    od_plan *plan = NULL;
    if (!m || !input || !output || batch < 1)
        return fail_arg("od_predict: a model, input, output and batch >= 1 are needed");
    od_status st =
        od_plan_create(&m->graph, &(od_plan_options){.batch = batch, .threads = 1}, &plan, &err);
    if (!st && (od_plan_n_inputs(plan) < 1 || od_plan_n_outputs(plan) < 1))
        st = od_error_set(&err, OD_STATUS_INVALID_ARGUMENT,
                          "od_predict: the model has no input or no output");
    if (!st) {
        const od_plan_io *in = od_plan_input(plan, 0), *out = od_plan_output(plan, 0);
        if (in->dtype != OD_DTYPE_FLOAT || out->dtype != OD_DTYPE_FLOAT)
            st = od_error_set(&err, OD_STATUS_INVALID_ARGUMENT,
                              "od_predict: \"%s\" or \"%s\" is not float32", in->name, out->name);
        else if (out->nbytes / sizeof(float) > output_count)
            st = od_error_set(&err, OD_STATUS_INVALID_ARGUMENT,
                              "od_predict: output \"%s\" has %zu values, room for %zu", out->name,
                              out->nbytes / sizeof(float), output_count);
        if (!st) {
            memcpy(in->data, input, in->nbytes);
            if (!(st = od_plan_run(plan, &err))) memcpy(output, out->data, out->nbytes);
        }
    }
    od_plan_destroy(plan);
    return st ? failed(&err) : 0;
}

double od_bench_ms(const od_model *m, int64_t batch, int threads) {
    od_error err = {0};
    od_latency r;
    if (!m || batch < 1 || threads < 1)
        return fail_arg("od_bench_ms: a model, batch >= 1 and threads >= 1"), -1;
    if (od_measure_latency(&m->graph, batch, threads, 0.3, &r, &err)) return failed(&err), -1;
    return 1e3 * r.median;
}

int od_test_accuracy(const od_model *m, const char *data, int64_t max_samples, double *accuracy) {
    if (!m || !data || !accuracy)
        return fail_arg("od_test_accuracy: a model, data and accuracy are needed");
    od_error err = {0};
    od_data_split split = {0};
    od_preprocess pre;
    float *logits = NULL;
    int64_t classes = 0;
    od_status st = load_data(m, data, &split, &pre, &err);
    od_dataset test = split.test;
    if (max_samples > 0 && max_samples < test.n) test.n = max_samples;
    if (!st && (!test.n || !test.labels))
        st = od_error_set(&err, OD_STATUS_INVALID_ARGUMENT, "%s: no labelled test samples", data);
    if (!st) st = od_model_logits(m, &test, &pre, 1, &logits, &classes, &err);
    if (!st) st = od_dataset_check_labels(&test, test.n, classes, &err);
    if (!st) *accuracy = od_accuracy(logits, test.labels, test.n, classes);
    free(logits);
    od_data_split_clear(&split);
    return st ? failed(&err) : 0;
}

int od_write_report(const od_model *teacher, const od_model *student, const char *data,
                    int64_t max_samples, const char *path) {
    if (!teacher || !student || !path)
        return fail_arg("od_write_report: a teacher, a student and a path are needed");
    od_error err = {0};
    od_report rep;
    od_report_init(&rep);
    od_report_options ro;
    od_report_options_default(&ro);
    od_data_split split = {0};
    const od_model *models[2] = {teacher, student};
    od_status st = od_report_add_model(&rep, "teacher", NULL, teacher, &ro, &err);
    if (!st) st = od_report_add_model(&rep, "student", NULL, student, &ro, &err);
    if (!st && data) st = load_for(teacher, data, &split, &err);
    if (!st && data) st = od_report_set_data(&rep, data, teacher, &err);
    if (!st && data) st = od_report_set_class_names(&rep, split.class_names, split.n_class_names, &err);
    od_dataset test = split.test;
    if (max_samples > 0 && max_samples < test.n) test.n = max_samples;
    for (int i = 0; i < 2 && !st && data && test.n; i++) {
        od_preprocess pre;
        if (!(st = od_preprocess_from_model(models[i], &pre, &err)))
            st = od_report_evaluate(&rep, i, models[i], &test, &pre, 1, &err);
    }
    if (!st) st = od_report_save(&rep, path, &err);
    od_report_clear(&rep);
    od_data_split_clear(&split);
    return st ? failed(&err) : 0;
}

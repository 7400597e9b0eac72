/* Round trip of ONNX files through the IR.
 *
 *   build/tests/test_roundtrip [DIR]     (DIR defaults to ONNX's test data)
 *
 * For every model.onnx under DIR: load (decode + check), encode, decode, check, and compare the
 * two IRs field by field; the second encode must also be byte-identical to the first. Every
 * test_data_set_*\/{input,output}_*.pb goes through encode/decode and must come back byte for
 * byte. Before the walk, targeted checks cover malformed input, typed-field conversion and
 * external data (with paths that try to leave the model's folder).
 *
 * A model whose first decode says UNSUPPORTED is skipped with its reason; so is test data of a
 * sequence, map or optional input. Anything else that fails is a failure. */
#include "od_onnx.h"

#include "onnx.pb-c.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test_check.h"
#include "test_files.h"

static int n_skip;
static char diff[2048]; /* the first difference found by a comparison */

static void report_fail(const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", what);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    n_fail++;
}

#define DIFF(...)                                                                                  \
    do {                                                                                           \
        snprintf(diff, sizeof diff, __VA_ARGS__);                                                  \
        return false;                                                                              \
    } while (0)

/* ---- IR comparison ----------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const char *s_or(const char *s) {
    return s ? s : "(null)";
}

static bool bytes_eq(const od_bytes *a, const od_bytes *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static bool tensor_eq(const od_tensor *a, const od_tensor *b, const char *where) {
    if (!str_eq(a->name, b->name))
        DIFF("%s: tensor name \"%s\" vs \"%s\"", where, s_or(a->name), s_or(b->name));
    if (a->dtype != b->dtype)
        DIFF("%s: dtype %s vs %s", where, od_dtype_name(a->dtype), od_dtype_name(b->dtype));
    if (a->rank != b->rank) DIFF("%s: rank %d vs %d", where, a->rank, b->rank);
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i])
            DIFF("%s: dim %d is %" PRId64 " vs %" PRId64, where, i, a->dims[i], b->dims[i]);
    if (a->nbytes != b->nbytes) DIFF("%s: %zu vs %zu bytes", where, a->nbytes, b->nbytes);
    if (a->dtype == OD_DTYPE_STRING) {
        const od_bytes *sa = a->data, *sb = b->data;
        for (size_t i = 0; i < a->nbytes / sizeof(od_bytes); i++)
            if (!bytes_eq(&sa[i], &sb[i])) DIFF("%s: string %zu differs", where, i);
    } else if (a->nbytes && memcmp(a->data, b->data, a->nbytes) != 0) {
        DIFF("%s: data differs", where);
    }
    return true;
}

static bool attr_eq(const od_attr *a, const od_attr *b, const char *node) {
    char where[768];
    snprintf(where, sizeof where, "%s attribute \"%s\"", node, s_or(a->name));
    if (!str_eq(a->name, b->name)) DIFF("%s: name vs \"%s\"", where, s_or(b->name));
    if (a->type != b->type) DIFF("%s: type %d vs %d", where, (int)a->type, (int)b->type);
    if (memcmp(&a->f, &b->f, sizeof a->f) != 0) DIFF("%s: f %g vs %g", where, a->f, b->f);
    if (a->i != b->i) DIFF("%s: i %" PRId64 " vs %" PRId64, where, a->i, b->i);
    if (!bytes_eq(&a->s, &b->s)) DIFF("%s: s differs", where);
    if (!a->t != !b->t) DIFF("%s: tensor present in one only", where);
    if (a->t && !tensor_eq(a->t, b->t, where)) return false;
    if (a->count != b->count) DIFF("%s: count %zu vs %zu", where, a->count, b->count);
    if (!a->floats != !b->floats || !a->ints != !b->ints || !a->strings != !b->strings ||
        !a->tensors != !b->tensors)
        DIFF("%s: a list is present in one only", where);
    if (a->floats && memcmp(a->floats, b->floats, sizeof(float) * a->count) != 0)
        DIFF("%s: floats differ", where);
    if (a->ints && memcmp(a->ints, b->ints, sizeof(int64_t) * a->count) != 0)
        DIFF("%s: ints differ", where);
    for (size_t i = 0; a->strings && i < a->count; i++)
        if (!bytes_eq(&a->strings[i], &b->strings[i])) DIFF("%s: string %zu differs", where, i);
    for (size_t i = 0; a->tensors && i < a->count; i++)
        if (!tensor_eq(&a->tensors[i], &b->tensors[i], where)) return false;
    if (!bytes_eq(&a->opaque, &b->opaque))
        DIFF("%s: opaque bytes differ (%zu vs %zu bytes)", where, a->opaque.len, b->opaque.len);
    if (!str_eq(a->ref_attr_name, b->ref_attr_name)) DIFF("%s: ref_attr_name differs", where);
    return true;
}

static bool value_eq(const od_value *a, const od_value *b) {
    const char *n = s_or(a->name);
    if (!str_eq(a->name, b->name)) DIFF("value name \"%s\" vs \"%s\"", n, s_or(b->name));
    if (a->dtype != b->dtype) DIFF("value \"%s\": dtype %d vs %d", n, a->dtype, b->dtype);
    if (a->rank != b->rank) DIFF("value \"%s\": rank %d vs %d", n, a->rank, b->rank);
    for (int d = 0; d < a->rank; d++) {
        if (a->dims[d].value != b->dims[d].value)
            DIFF("value \"%s\": dim %d %" PRId64 " vs %" PRId64, n, d, a->dims[d].value,
                 b->dims[d].value);
        if (!str_eq(a->dims[d].param, b->dims[d].param))
            DIFF("value \"%s\": dim %d param \"%s\" vs \"%s\"", n, d, s_or(a->dims[d].param),
                 s_or(b->dims[d].param));
    }
    if (a->has_type != b->has_type) DIFF("value \"%s\": has_type differs", n);
    if (a->is_sequence_or_map != b->is_sequence_or_map)
        DIFF("value \"%s\": is_sequence_or_map differs", n);
    if (!bytes_eq(&a->opaque_type, &b->opaque_type)) DIFF("value \"%s\": opaque type differs", n);
    if (!a->init != !b->init) DIFF("value \"%s\": initializer in one only", n);
    char where[600];
    snprintf(where, sizeof where, "initializer \"%s\"", n);
    if (a->init && !tensor_eq(a->init, b->init, where)) return false;
    if (a->producer != b->producer)
        DIFF("value \"%s\": producer %d vs %d", n, a->producer, b->producer);
    return true;
}

static bool ints_eq(int na, const int *a, int nb, const int *b, const char *what) {
    if (na != nb) DIFF("%s: %d vs %d entries", what, na, nb);
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) DIFF("%s: entry %d is %d vs %d", what, i, a[i], b[i]);
    return true;
}

static bool node_eq(const od_node *a, const od_node *b) {
    char label[600];
    od_node_label(a, label, sizeof label);
    if (!str_eq(a->name, b->name) || !str_eq(a->op_type, b->op_type) ||
        !str_eq(a->domain, b->domain))
        DIFF("%s: name/op_type/domain vs \"%s\" %s \"%s\"", label, s_or(b->name), s_or(b->op_type),
             s_or(b->domain));
    if (!str_eq(a->doc_string, b->doc_string)) DIFF("%s: doc_string differs", label);
    char what[700];
    snprintf(what, sizeof what, "%s inputs", label);
    if (!ints_eq(a->n_inputs, a->inputs, b->n_inputs, b->inputs, what)) return false;
    snprintf(what, sizeof what, "%s outputs", label);
    if (!ints_eq(a->n_outputs, a->outputs, b->n_outputs, b->outputs, what)) return false;
    if (a->n_attrs != b->n_attrs) DIFF("%s: %d vs %d attributes", label, a->n_attrs, b->n_attrs);
    for (int i = 0; i < a->n_attrs; i++)
        if (!attr_eq(&a->attrs[i], &b->attrs[i], label)) return false;
    return true;
}

static bool model_eq(const od_model *a, const od_model *b) {
    if (a->ir_version != b->ir_version) DIFF("ir_version differs");
    if (a->model_version != b->model_version) DIFF("model_version differs");
    if (!str_eq(a->producer_name, b->producer_name) ||
        !str_eq(a->producer_version, b->producer_version))
        DIFF("producer \"%s\" \"%s\" vs \"%s\" \"%s\"", s_or(a->producer_name),
             s_or(a->producer_version), s_or(b->producer_name), s_or(b->producer_version));
    if (!str_eq(a->domain, b->domain)) DIFF("domain differs");
    if (!str_eq(a->doc_string, b->doc_string)) DIFF("doc_string differs");
    if (a->n_opsets != b->n_opsets) DIFF("%d vs %d opsets", a->n_opsets, b->n_opsets);
    for (int i = 0; i < a->n_opsets; i++)
        if (!str_eq(a->opsets[i].domain, b->opsets[i].domain) ||
            a->opsets[i].version != b->opsets[i].version)
            DIFF("opset %d differs", i);
    if (a->n_meta != b->n_meta) DIFF("%d vs %d metadata entries", a->n_meta, b->n_meta);
    for (int i = 0; i < a->n_meta; i++)
        if (!str_eq(a->meta[i].key, b->meta[i].key) || !str_eq(a->meta[i].value, b->meta[i].value))
            DIFF("metadata %d differs", i);
    const od_graph *ga = &a->graph, *gb = &b->graph;
    if (!str_eq(ga->name, gb->name)) DIFF("graph name differs");
    if (!str_eq(ga->doc_string, gb->doc_string)) DIFF("graph doc_string differs");
    if (ga->opset != gb->opset) DIFF("graph opset %" PRId64 " vs %" PRId64, ga->opset, gb->opset);
    if (ga->n_values != gb->n_values) DIFF("%d vs %d values", ga->n_values, gb->n_values);
    for (int i = 0; i < ga->n_values; i++)
        if (!value_eq(&ga->values[i], &gb->values[i])) return false;
    if (ga->n_nodes != gb->n_nodes) DIFF("%d vs %d nodes", ga->n_nodes, gb->n_nodes);
    for (int i = 0; i < ga->n_nodes; i++)
        if (!node_eq(&ga->nodes[i], &gb->nodes[i])) return false;
    return ints_eq(ga->n_inputs, ga->inputs, gb->n_inputs, gb->inputs, "graph inputs") &&
           ints_eq(ga->n_outputs, ga->outputs, gb->n_outputs, gb->outputs, "graph outputs") &&
           ints_eq(ga->n_inits, ga->inits, gb->n_inits, gb->inits, "initializers") &&
           ints_eq(ga->n_value_infos, ga->value_infos, gb->n_value_infos, gb->value_infos,
                   "value_info");
}

/* ---- the walk ------------------------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* model.onnx in dir: load, encode, decode, check, compare, re-encode. Returns the loaded model
 * (for its input types) or NULL. */
static od_model *roundtrip_model(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    od_error err = {0};
    od_model *m1 = NULL, *m2 = NULL;
    od_bytes b1 = {0}, b2 = {0};
    od_status st = od_model_load(path, &m1, &err);
    if (st == OD_STATUS_UNSUPPORTED) {
        printf("SKIP %s\n", err.message);
        n_skip++;
        return NULL;
    }
    if (st) {
        report_fail(path, "load: %s (%s)", err.message, od_status_name(st));
        return NULL;
    }
    if ((st = od_model_encode(m1, &b1, &err))) {
        report_fail(path, "encode: %s", err.message);
        goto done;
    }
    if ((st = od_model_decode(b1.data, b1.len, dir, &m2, &err)) ||
        (st = od_graph_check(&m2->graph, &err))) {
        report_fail(path, "decode of the encoding: %s", err.message);
        goto done;
    }
    if (!model_eq(m1, m2)) {
        report_fail(path, "%s", diff);
        goto done;
    }
    if ((st = od_model_encode(m2, &b2, &err))) {
        report_fail(path, "second encode: %s", err.message);
        goto done;
    }
    if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0) {
        report_fail(path, "second encode differs (%zu vs %zu bytes)", b1.len, b2.len);
        goto done;
    }
    n_pass++;
done:
    od_model_destroy(m2);
    od_bytes_free(&b1);
    od_bytes_free(&b2);
    return m1;
}

/* The graph value test data file input_k / output_k stands for, or NULL: inputs count only
 * those that are not initializers (old models list initializers as inputs too). */
static const od_value *data_value(const od_model *m, bool is_input, int k) {
    if (!m) return NULL;
    const od_graph *g = &m->graph;
    if (!is_input) return k < g->n_outputs ? &g->values[g->outputs[k]] : NULL;
    for (int i = 0; i < g->n_inputs; i++) {
        const od_value *v = &g->values[g->inputs[i]];
        if (v->init) continue;
        if (k-- == 0) return v;
    }
    return NULL;
}

static void roundtrip_tensor_file(const char *path, const od_value *v) {
    od_error err = {0};
    od_bytes raw = {0}, b1 = {0}, b2 = {0};
    od_tensor t1 = {0}, t2 = {0};
    bool non_tensor = v && v->is_sequence_or_map;
    od_status st = od_file_read(path, &raw, &err);
    if (st) {
        report_fail(path, "%s", err.message);
        return;
    }
    st = od_tensor_decode(raw.data, raw.len, &t1, &err);
    if (st == OD_STATUS_UNSUPPORTED || (st && non_tensor)) {
        printf("SKIP %s: %s\n", path,
               non_tensor ? "data of a sequence, map or optional value" : err.message);
        n_skip++;
        goto done;
    }
    if (st) {
        report_fail(path, "decode: %s", err.message);
        goto done;
    }
    if (non_tensor) {
        /* parsed as a TensorProto by accident: not something to judge */
        printf("SKIP %s: data of a sequence, map or optional value\n", path);
        n_skip++;
        goto done;
    }
    if ((st = od_tensor_encode(&t1, &b1, &err)) ||
        (st = od_tensor_decode(b1.data, b1.len, &t2, &err))) {
        report_fail(path, "round trip: %s", err.message);
        goto done;
    }
    if (!tensor_eq(&t1, &t2, "tensor")) {
        report_fail(path, "%s", diff);
        goto done;
    }
    if ((st = od_tensor_encode(&t2, &b2, &err)) || b1.len != b2.len ||
        memcmp(b1.data, b2.data, b1.len) != 0) {
        report_fail(path, "second encode differs");
        goto done;
    }
    n_pass++;
done:
    od_tensor_clear(&t1);
    od_tensor_clear(&t2);
    od_bytes_free(&raw);
    od_bytes_free(&b1);
    od_bytes_free(&b2);
}

static int filter_visible(const struct dirent *d) {
    return d->d_name[0] != '.';
}

static void walk(const char *dir, int *n_models) {
    struct dirent **list;
    int n = scandir(dir, &list, filter_visible, alphasort);
    if (n < 0) {
        report_fail(dir, "%s", strerror(errno));
        return;
    }
    char path[4096];
    od_model *m = NULL;
    bool has_model = false;
    for (int i = 0; i < n; i++)
        has_model |= strcmp(list[i]->d_name, "model.onnx") == 0;
    if (has_model) {
        m = roundtrip_model(dir);
        (*n_models)++;
    }
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode)) {
            if (has_model && strncmp(name, "test_data_set_", 14) == 0) {
                struct dirent **files;
                int nf = scandir(path, &files, filter_visible, alphasort);
                for (int j = 0; j < nf; j++) {
                    const char *f = files[j]->d_name;
                    int k;
                    bool in = strncmp(f, "input_", 6) == 0, out = strncmp(f, "output_", 7) == 0;
                    if ((in || out) && ends_with(f, ".pb") &&
                        sscanf(f + (in ? 6 : 7), "%d", &k) == 1) {
                        char fp[8192];
                        snprintf(fp, sizeof fp, "%s/%s", path, f);
                        roundtrip_tensor_file(fp, data_value(m, in, k));
                    }
                    free(files[j]);
                }
                if (nf >= 0) free(files);
            } else {
                walk(path, n_models);
            }
        }
    }
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    od_model_destroy(m);
}

/* ---- targeted checks ---------------------------------------------------------------- */

/* A model with one initializer "w" (built with protobuf-c, so that the test can write what
 * our encoder never would: typed fields, external data, short raw_data) read by Identity. */
typedef struct fixture {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__NodeProto node;
    Onnx__NodeProto *nodes[1];
    Onnx__TensorProto w;
    Onnx__TensorProto *inits[1];
    Onnx__ValueInfoProto out;
    Onnx__ValueInfoProto *outs[1];
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1];
    char *in_names[1], *out_names[1];
    int64_t dims[OD_MAX_RANK + 1];
    Onnx__StringStringEntryProto ext[3];
    Onnx__StringStringEntryProto *ext_list[3];
} fixture;

static void fixture_init(fixture *f) {
    memset(f, 0, sizeof *f);
    onnx__model_proto__init(&f->model);
    onnx__graph_proto__init(&f->graph);
    onnx__node_proto__init(&f->node);
    onnx__tensor_proto__init(&f->w);
    onnx__value_info_proto__init(&f->out);
    onnx__operator_set_id_proto__init(&f->opset);
    f->model.has_ir_version = 1;
    f->model.ir_version = 8;
    f->opset.domain = "";
    f->opset.has_version = 1;
    f->opset.version = 13;
    f->opsets[0] = &f->opset;
    f->model.n_opset_import = 1;
    f->model.opset_import = f->opsets;
    f->model.graph = &f->graph;
    f->graph.name = "g";
    f->in_names[0] = "w";
    f->out_names[0] = "y";
    f->node.op_type = "Identity";
    f->node.n_input = 1;
    f->node.input = f->in_names;
    f->node.n_output = 1;
    f->node.output = f->out_names;
    f->nodes[0] = &f->node;
    f->graph.n_node = 1;
    f->graph.node = f->nodes;
    f->w.name = "w";
    f->w.has_data_type = 1;
    f->w.data_type = OD_DTYPE_FLOAT;
    f->dims[0] = 4;
    f->w.n_dims = 1;
    f->w.dims = f->dims;
    f->inits[0] = &f->w;
    f->graph.n_initializer = 1;
    f->graph.initializer = f->inits;
    f->out.name = "y";
    f->outs[0] = &f->out;
    f->graph.n_output = 1;
    f->graph.output = f->outs;
    for (int i = 0; i < 3; i++) {
        onnx__string_string_entry_proto__init(&f->ext[i]);
        f->ext_list[i] = &f->ext[i];
    }
}

/* Sets external data keys; NULL values are left out. */
static void fixture_external(fixture *f, const char *location, const char *offset,
                             const char *length) {
    f->w.has_data_location = 1;
    f->w.data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    const char *keys[3] = {"location", "offset", "length"}, *vals[3] = {location, offset, length};
    f->w.n_external_data = 0;
    for (int i = 0; i < 3; i++)
        if (vals[i]) {
            f->ext[f->w.n_external_data].key = (char *)keys[i];
            f->ext[f->w.n_external_data].value = (char *)vals[i];
            f->ext_list[f->w.n_external_data] = &f->ext[f->w.n_external_data];
            f->w.n_external_data++;
        }
    f->w.external_data = f->ext_list;
}

/* Packs f's model and decodes it with base_dir. */
static od_status fixture_decode(fixture *f, const char *base_dir, od_model **m, od_error *err) {
    size_t n = onnx__model_proto__get_packed_size(&f->model);
    uint8_t *buf = malloc(n ? n : 1);
    onnx__model_proto__pack(&f->model, buf);
    od_status st = od_model_decode(buf, n, base_dir, m, err);
    free(buf);
    return st;
}

static void check_decode_error(fixture *f, const char *base_dir, od_status want,
                               const char *want_text, const char *name) {
    od_error err = {0};
    od_model *m = NULL;
    od_status st = fixture_decode(f, base_dir, &m, &err);
    check(st == want && (!want_text || strstr(err.message, want_text)), name,
          "got %s \"%s\", want %s containing \"%s\"", od_status_name(st), err.message,
          od_status_name(want), want_text ? want_text : "");
    od_model_destroy(m);
}

static const float w_values[4] = {1.5f, -2.0f, 3.25f, 1e-3f};

static void check_typed_fields(void) {
    fixture f;
    od_error err = {0};
    od_model *m = NULL;

    /* float_data */
    fixture_init(&f);
    f.w.n_float_data = 4;
    f.w.float_data = (float *)w_values;
    od_status st = fixture_decode(&f, NULL, &m, &err);
    check(!st && m && m->graph.n_inits == 1 &&
              memcmp(m->graph.values[m->graph.inits[0]].init->data, w_values, 16) == 0,
          "float_data", "%s", err.message);
    od_model_destroy(m);
    m = NULL;

    /* int32_data into narrower types: FLOAT16 bit patterns, INT8, BOOL */
    int32_t i32[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    uint16_t want16[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    fixture_init(&f);
    f.w.data_type = OD_DTYPE_FLOAT16;
    f.w.n_int32_data = 4;
    f.w.int32_data = i32;
    st = fixture_decode(&f, NULL, &m, &err);
    check(!st && m && m->graph.values[m->graph.inits[0]].init->nbytes == 8 &&
              memcmp(m->graph.values[m->graph.inits[0]].init->data, want16, 8) == 0,
          "int32_data as float16", "%s", err.message);
    od_model_destroy(m);
    m = NULL;

    int32_t i8[4] = {-1, 127, -128, 5};
    int8_t want8[4] = {-1, 127, -128, 5};
    fixture_init(&f);
    f.w.data_type = OD_DTYPE_INT8;
    f.w.n_int32_data = 4;
    f.w.int32_data = i8;
    st = fixture_decode(&f, NULL, &m, &err);
    check(!st && m && memcmp(m->graph.values[m->graph.inits[0]].init->data, want8, 4) == 0,
          "int32_data as int8", "%s", err.message);
    od_model_destroy(m);
    m = NULL;

    uint64_t u64[4] = {0, 1, 0xffffffffu, 7};
    uint32_t want32[4] = {0, 1, 0xffffffffu, 7};
    fixture_init(&f);
    f.w.data_type = OD_DTYPE_UINT32;
    f.w.n_uint64_data = 4;
    f.w.uint64_data = u64;
    st = fixture_decode(&f, NULL, &m, &err);
    check(!st && m && memcmp(m->graph.values[m->graph.inits[0]].init->data, want32, 16) == 0,
          "uint64_data as uint32", "%s", err.message);
    od_model_destroy(m);
    m = NULL;

    /* wrong counts, short raw_data, rank, negative dims, no graph name */
    fixture_init(&f);
    f.w.n_float_data = 3;
    f.w.float_data = (float *)w_values;
    check_decode_error(&f, NULL, OD_STATUS_INVALID_MODEL,
                       "initializer \"w\" holds 3 values, its dims need 4", "float_data count");

    fixture_init(&f);
    f.w.has_raw_data = 1;
    f.w.raw_data.len = 12;
    f.w.raw_data.data = (uint8_t *)w_values;
    check_decode_error(&f, NULL, OD_STATUS_INVALID_MODEL,
                       "initializer \"w\" holds 12 bytes, its dims need 16", "short raw_data");

    fixture_init(&f);
    f.w.n_dims = OD_MAX_RANK + 1;
    for (int i = 0; i <= OD_MAX_RANK; i++)
        f.dims[i] = 1;
    check_decode_error(&f, NULL, OD_STATUS_UNSUPPORTED, "initializer \"w\" has rank 9",
                       "rank over the limit");

    fixture_init(&f);
    f.dims[0] = -4;
    check_decode_error(&f, NULL, OD_STATUS_INVALID_MODEL, "negative dim", "negative dim");

    fixture_init(&f);
    f.w.n_dims = 3;
    f.dims[0] = f.dims[1] = f.dims[2] = INT64_C(1) << 40;
    check_decode_error(&f, NULL, OD_STATUS_INVALID_MODEL, "overflows", "dims overflow");

    fixture_init(&f);
    f.w.data_type = 0;
    check_decode_error(&f, NULL, OD_STATUS_INVALID_MODEL, "no element type", "no data_type");

    fixture_init(&f);
    f.graph.name = NULL;
    f.w.n_float_data = 4;
    f.w.float_data = (float *)w_values;
    check_decode_error(&f, NULL, OD_STATUS_INVALID_MODEL, "the graph has no name", "no graph name");

    fixture_init(&f);
    f.model.graph = NULL;
    check_decode_error(&f, NULL, OD_STATUS_INVALID_MODEL, "no graph", "no graph");
}

static void check_external(const char *tmp) {
    char dir[4096], path[4200], outside[4200];
    snprintf(dir, sizeof dir, "%s/model", tmp);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/w.bin", dir);
    uint8_t blob[24] = {0};
    memcpy(blob + 8, w_values, 16);
    write_file(path, blob, sizeof blob);
    snprintf(outside, sizeof outside, "%s/outside.bin", tmp);
    write_file(outside, blob, sizeof blob);
    snprintf(path, sizeof path, "%s/link.bin", dir);
    if (symlink(outside, path) != 0) perror("symlink");
    snprintf(path, sizeof path, "%s/sub", dir);
    mkdir(path, 0755);

    fixture f;
    od_error err = {0};
    od_model *m = NULL;
    fixture_init(&f);
    fixture_external(&f, "w.bin", "8", "16");
    od_status st = fixture_decode(&f, dir, &m, &err);
    check(!st && m && memcmp(m->graph.values[m->graph.inits[0]].init->data, w_values, 16) == 0,
          "external data", "%s", err.message);
    /* it is written back inline and reads the same */
    od_bytes b = {0};
    od_model *m2 = NULL;
    if (!st) {
        st = od_model_encode(m, &b, &err);
        if (!st) st = od_model_decode(b.data, b.len, NULL, &m2, &err);
        check(!st && model_eq(m, m2), "external data written inline", "%s %s", err.message, diff);
    }
    od_model_destroy(m);
    od_model_destroy(m2);
    od_bytes_free(&b);

    fixture_init(&f);
    fixture_external(&f, "sub/../w.bin", "8", NULL);
    check_decode_error(&f, dir, OD_STATUS_INVALID_MODEL, "leaves the model's folder", "dot-dot");
    fixture_init(&f);
    fixture_external(&f, "../outside.bin", "8", NULL);
    check_decode_error(&f, dir, OD_STATUS_INVALID_MODEL, "leaves the model's folder", "dot-dot 2");
    fixture_init(&f);
    fixture_external(&f, outside, "8", NULL);
    check_decode_error(&f, dir, OD_STATUS_INVALID_MODEL, "is absolute", "absolute path");
    fixture_init(&f);
    fixture_external(&f, "link.bin", "8", NULL);
    check_decode_error(&f, dir, OD_STATUS_INVALID_MODEL, "resolves outside", "symlink out");
    fixture_init(&f);
    fixture_external(&f, "w.bin", "12", NULL);
    check_decode_error(&f, dir, OD_STATUS_INVALID_MODEL, "holds 24 bytes", "file too short");
    fixture_init(&f);
    fixture_external(&f, "w.bin", "0", "12");
    check_decode_error(&f, dir, OD_STATUS_INVALID_MODEL, "holds 12 bytes, its dims need 16",
                       "length mismatch");
    fixture_init(&f);
    fixture_external(&f, "w.bin", "-3", NULL);
    check_decode_error(&f, dir, OD_STATUS_INVALID_MODEL, "not a byte count", "negative offset");
    fixture_init(&f);
    fixture_external(&f, "missing.bin", NULL, NULL);
    check_decode_error(&f, dir, OD_STATUS_IO, "missing.bin", "missing file");
    fixture_init(&f);
    fixture_external(&f, "w.bin", "8", NULL);
    check_decode_error(&f, NULL, OD_STATUS_UNSUPPORTED, "external file", "no base dir");

    /* od_model_load resolves against the model's folder and prefixes errors with the path */
    fixture_init(&f);
    fixture_external(&f, "w.bin", "8", NULL);
    size_t n = onnx__model_proto__get_packed_size(&f.model);
    uint8_t *buf = malloc(n);
    onnx__model_proto__pack(&f.model, buf);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    write_file(path, buf, n);
    free(buf);
    st = od_model_load(path, &m, &err);
    check(!st, "load with external data", "%s", err.message);
    od_model_destroy(m);
    fixture_external(&f, "nope.bin", NULL, NULL);
    n = onnx__model_proto__get_packed_size(&f.model);
    buf = malloc(n);
    onnx__model_proto__pack(&f.model, buf);
    write_file(path, buf, n);
    free(buf);
    st = od_model_load(path, &m, &err);
    check(st && strncmp(err.message, path, strlen(path)) == 0, "load error names the file", "%s",
          err.message);
}

/* Empty, truncated and corrupted files must fail cleanly (run under ASan to mean much). */
static void check_malformed(const char *tmp) {
    od_error err = {0};
    od_model *m = NULL;
    od_status st = od_model_decode("", 0, NULL, &m, &err);
    check(st == OD_STATUS_INVALID_MODEL && strstr(err.message, "file is empty") && !m, "empty",
          "%s", err.message);
    char path[4200];
    snprintf(path, sizeof path, "%s/empty.onnx", tmp);
    write_file(path, "", 0);
    st = od_model_load(path, &m, &err);
    check(st == OD_STATUS_INVALID_MODEL && strstr(err.message, "file is empty") &&
              strncmp(err.message, path, strlen(path)) == 0,
          "empty file", "%s", err.message);
    st = od_model_decode("\xff\xff\xff\xff", 4, NULL, &m, &err);
    check(st == OD_STATUS_INVALID_MODEL && !m, "garbage", "%s", err.message);
    snprintf(path, sizeof path, "%s/no-such-file.onnx", tmp);
    st = od_model_load(path, &m, &err);
    check(st == OD_STATUS_IO, "missing file", "%s", err.message);

    /* every prefix, and single-byte corruptions, of a small real model */
    fixture f;
    fixture_init(&f);
    f.w.has_raw_data = 1;
    f.w.raw_data.len = 16;
    f.w.raw_data.data = (uint8_t *)w_values;
    size_t n = onnx__model_proto__get_packed_size(&f.model);
    uint8_t *buf = malloc(n);
    onnx__model_proto__pack(&f.model, buf);
    for (size_t len = 0; len < n; len++) {
        st = od_model_decode(buf, len, NULL, &m, &err);
        if (!st) od_graph_check(&m->graph, &err);
        od_model_destroy(m);
        m = NULL;
    }
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            st = od_model_decode(buf, n, NULL, &m, &err);
            if (!st) {
                od_bytes b = {0};
                od_graph_check(&m->graph, &err);
                if (!od_model_encode(m, &b, &err)) od_bytes_free(&b);
            }
            od_model_destroy(m);
            m = NULL;
            buf[i] ^= (uint8_t)(1u << bit);
        }
    n_pass++; /* getting here without a crash (or an ASan report) is the check */
    st = od_model_decode(buf, n, NULL, &m, &err);
    check(!st, "fixture decodes", "%s", err.message);
    od_model_destroy(m);
    free(buf);

    od_tensor t;
    st = od_tensor_decode("", 0, &t, &err);
    check(st == OD_STATUS_INVALID_MODEL, "empty tensor file", "%s", err.message);
}

/* od_graph_check sorts with a heap and per-value reader lists: nodes out of order come out in
 * dependency order, ready nodes lowest index first; a node reading one value twice waits for
 * it once; a cycle is named. */
static void add_node(od_graph *g, const char *name, const char *in0, const char *in1, const char *out) {
    int k = od_graph_add_node(g);
    od_node *n = &g->nodes[k];
    n->name = strdup(name);
    n->op_type = strdup(in1 ? "Add" : "Relu");
    n->domain = strdup("");
    n->n_inputs = in1 ? 2 : 1;
    n->inputs = malloc(sizeof(int) * 2);
    n->inputs[0] = od_graph_intern_value(g, in0);
    if (in1) n->inputs[1] = od_graph_intern_value(g, in1);
    n->n_outputs = 1;
    n->outputs = malloc(sizeof(int));
    n->outputs[0] = od_graph_intern_value(g, out);
}

static void check_graph_order(void) {
    od_graph g = {0};
    od_error err = {0};
    g.inputs = malloc(sizeof(int));
    g.outputs = malloc(sizeof(int));
    g.inputs[g.n_inputs++] = od_graph_intern_value(&g, "x");
    add_node(&g, "d", "b", "c", "y"); /* 0: needs b and c */
    add_node(&g, "c", "a", NULL, "c"); /* 1: needs a */
    add_node(&g, "b", "a", "a", "b");  /* 2: a twice */
    add_node(&g, "a", "x", NULL, "a"); /* 3: ready */
    g.outputs[g.n_outputs++] = od_graph_find_value(&g, "y");
    od_status st = od_graph_check(&g, &err);
    char order[8] = "";
    for (int i = 0; i < g.n_nodes && i < 7; i++) order[i] = g.nodes[i].name[0];
    check(!st && strcmp(order, "acbd") == 0, "graph check: dependency order, lowest index first", "%s %s", order, err.message);
    od_graph_clear(&g);
    g = (od_graph){0};
    g.inputs = malloc(sizeof(int));
    g.outputs = malloc(sizeof(int));
    g.inputs[g.n_inputs++] = od_graph_intern_value(&g, "x");
    add_node(&g, "p", "x", "q", "p"); /* p and q read each other */
    add_node(&g, "q", "p", NULL, "q");
    g.outputs[g.n_outputs++] = od_graph_find_value(&g, "q");
    st = od_graph_check(&g, &err);
    check(st == OD_STATUS_INVALID_MODEL && strstr(err.message, "node \"p\" (Add): the graph has a cycle"), "graph check: a cycle is named",
          "%s", err.message);
    od_graph_clear(&g);
}

/* The output rule (lib/output.c): an output that is an input is refused, through ".." and
 * symlinks; a write through a symlink replaces the file it names and keeps the link; a
 * character device is written through. */
static void check_output_rule(const char *tmp) {
    char in[4200], link[4200], dotdot[4200], out[4200], sub[4200];
    od_error err = {0};
    snprintf(in, sizeof in, "%s/in.onnx", tmp);
    snprintf(link, sizeof link, "%s/link.onnx", tmp);
    snprintf(sub, sizeof sub, "%s/sub", tmp);
    snprintf(dotdot, sizeof dotdot, "%s/sub/../in.onnx", tmp);
    snprintf(out, sizeof out, "%s/out.onnx", tmp);
    mkdir(sub, 0755);
    od_status st = od_file_write_atomic(in, "teacher", 7, &err);
    check(!st && symlink("in.onnx", link) == 0, "output rule: fixtures", "%s", err.message);
    const char *inputs[] = {in, NULL};
    const char *bad[] = {in, link, dotdot, "", sub};
    for (int i = 0; i < 5; i++) {
        st = od_outputs_check(&bad[i], 1, inputs, 2, &err);
        check(st == OD_STATUS_INVALID_ARGUMENT, "output rule: refused", "%s", bad[i]);
    }
    const char *two[] = {out, out};
    check(od_outputs_check(two, 2, inputs, 1, &err) == OD_STATUS_INVALID_ARGUMENT, "output rule: one file named twice", "%s", err.message);
    const char *fine[] = {out, "/dev/null"};
    check(od_outputs_check(fine, 2, inputs, 1, &err) == OD_STATUS_OK, "output rule: a new file and a device pass", "%s", err.message);
    st = od_file_write_atomic(link, "student", 7, &err);
    struct stat lb;
    od_bytes b = {0};
    bool link_kept = lstat(link, &lb) == 0 && S_ISLNK(lb.st_mode);
    if (!st) st = od_file_read(in, &b, &err);
    check(!st && link_kept && b.len == 7 && memcmp(b.data, "student", 7) == 0, "output rule: a symlink is kept, its file replaced", "%s",
          err.message);
    od_bytes_free(&b);
    st = od_file_write_atomic("/dev/null", "x", 1, &err);
    struct stat nb;
    check(!st && stat("/dev/null", &nb) == 0 && S_ISCHR(nb.st_mode), "output rule: /dev/null written through", "%s", err.message);
    st = od_file_read("/dev/zero", &b, &err);
    check(st == OD_STATUS_IO && strstr(err.message, "not a regular file"), "bounded reads: /dev/zero refused", "%s", err.message);
    unlink(link);
    unlink(in);
    rmdir(sub);
}

static void check_save(const char *tmp) {
    fixture f;
    od_error err = {0};
    od_model *m = NULL;
    fixture_init(&f);
    f.w.n_float_data = 4;
    f.w.float_data = (float *)w_values;
    od_status st = fixture_decode(&f, NULL, &m, &err);
    if (!st) st = od_graph_check(&m->graph, &err); /* load checks too: producers must agree */
    check(!st, "save fixture", "%s", err.message);
    if (st) return;
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/save", tmp);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/out.onnx", dir);
    st = od_model_save(m, path, &err);
    od_model *back = NULL;
    if (!st) st = od_model_load(path, &back, &err);
    check(!st && back && model_eq(m, back), "save and load", "%s %s", err.message, diff);
    od_model_destroy(back);
    /* a failed save leaves nothing behind */
    snprintf(path, sizeof path, "%s/missing/out.onnx", dir);
    st = od_model_save(m, path, &err);
    check(st == OD_STATUS_IO, "save into a missing folder", "%s", err.message);
    int entries = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        entries += e->d_name[0] != '.';
    if (d) closedir(d);
    check(entries == 1, "no temporary files left", "%d entries", entries);
    /* an IR that lost track of an initializer is refused, not written half-right */
    od_graph *g = &m->graph;
    int keep = g->n_inits;
    g->n_inits = 0;
    od_bytes b = {0};
    st = od_model_encode(m, &b, &err);
    check(st == OD_STATUS_INVALID_ARGUMENT, "unlisted initializer", "%s", od_status_name(st));
    od_bytes_free(&b);
    g->n_inits = keep;
    od_model_destroy(m);
}

static int rm_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return -1;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        for (struct dirent *e; d && (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_tree(p);
        }
        if (d) closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : "/usr/share/libonnx-testdata/data";
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    char tmp[] = "/tmp/od_roundtrip.XXXXXX";
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    check_malformed(tmp);
    check_typed_fields();
    check_external(tmp);
    check_save(tmp);
    check_graph_order();
    check_output_rule(tmp);
    rm_tree(tmp);
    int unit_pass = n_pass, unit_fail = n_fail;
    printf("targeted checks: %d passed, %d failed\n", unit_pass, unit_fail);

    int n_models = 0;
    walk(root, &n_models);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (n_models == 0) report_fail(root, "no model.onnx found");
    printf("%d models under %s in %.1f s\n", n_models, root, secs);
    printf("roundtrip: %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    return n_fail ? 1 : 0;
}

/* The graph IR: errors, element types, tensors, graphs and the topological check. */
#include "od_runtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- status and errors ------------------------------------------------- */

double od_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *od_status_name(od_status status) {
    static const char *const names[] = {"ok",           "invalid model", "unsupported",
                                        "shape error",  "out of memory", "I/O error",
                                        "backend error", "invalid argument"};
    return (unsigned)status < sizeof names / sizeof *names ? names[status] : "unknown error";
}

/* Messages quote names taken from files, which may hold newlines or escape sequences: each
 * control character becomes '?', so that a message stays one line of plain text. */
static void one_line(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

od_status od_error_set(od_error *err, od_status status, const char *fmt, ...) {
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        one_line(err->message);
    }
    return status;
}

void od_error_prefix(od_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[512], old[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    size_t np = strlen(prefix), no = strnlen(old, sizeof old - 1);
    if (np > sizeof err->message - 1) np = sizeof err->message - 1;
    if (no > sizeof err->message - 1 - np) no = sizeof err->message - 1 - np;
    memcpy(err->message, prefix, np);
    memcpy(err->message + np, old, no);
    err->message[np + no] = 0;
    one_line(err->message);
}

/* ---- element types ---------------------------------------------------- */

static const struct {
    const char *name;
    size_t size;
} dtype_table[OD_DTYPE_COUNT] = {
    [OD_DTYPE_UNDEFINED] = {"undefined", 0}, [OD_DTYPE_FLOAT] = {"float", 4},
    [OD_DTYPE_UINT8] = {"uint8", 1},         [OD_DTYPE_INT8] = {"int8", 1},
    [OD_DTYPE_UINT16] = {"uint16", 2},       [OD_DTYPE_INT16] = {"int16", 2},
    [OD_DTYPE_INT32] = {"int32", 4},         [OD_DTYPE_INT64] = {"int64", 8},
    [OD_DTYPE_STRING] = {"string", 0},       [OD_DTYPE_BOOL] = {"bool", 1},
    [OD_DTYPE_FLOAT16] = {"float16", 2},     [OD_DTYPE_DOUBLE] = {"double", 8},
    [OD_DTYPE_UINT32] = {"uint32", 4},       [OD_DTYPE_UINT64] = {"uint64", 8},
    [OD_DTYPE_COMPLEX64] = {"complex64", 8}, [OD_DTYPE_COMPLEX128] = {"complex128", 16},
    [OD_DTYPE_BFLOAT16] = {"bfloat16", 2},
};

bool od_dtype_valid(int code) { return code > 0 && code < OD_DTYPE_COUNT; }

const char *od_dtype_name(od_dtype dtype) {
    return (unsigned)dtype < OD_DTYPE_COUNT ? dtype_table[dtype].name : "unknown";
}

size_t od_dtype_size(od_dtype dtype) {
    return (unsigned)dtype < OD_DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

/* ---- tensors -------------------------------------------------------------- */

int64_t od_dims_count(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] != 0 && n > INT64_MAX / dims[i]) return -1;
        n *= dims[i];
    }
    return n;
}

int64_t od_tensor_count(const od_tensor *t) { return od_dims_count(t->rank, t->dims); }

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

od_tensor *od_tensor_create(const char *name, od_dtype dtype, int rank, const int64_t *dims,
                            od_error *err) {
    if (rank < 0 || rank > OD_MAX_RANK) {
        od_error_set(err, OD_STATUS_UNSUPPORTED, "tensor \"%s\" has rank %d (at most %d)",
                     name ? name : "", rank, OD_MAX_RANK);
        return NULL;
    }
    int64_t count = od_dims_count(rank, dims);
    size_t esize = dtype == OD_DTYPE_STRING ? sizeof(od_bytes) : od_dtype_size(dtype);
    if (count < 0 || (esize && (uint64_t)count > SIZE_MAX / 2 / esize)) {
        od_error_set(err, OD_STATUS_SHAPE, "tensor \"%s\": dims overflow or are negative",
                     name ? name : "");
        return NULL;
    }
    od_tensor *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    t->dtype = dtype;
    t->rank = rank;
    if (rank) memcpy(t->dims, dims, sizeof(int64_t) * rank);
    t->nbytes = (size_t)count * esize;
    t->name = dup_or_null(name);
    t->data = calloc(1, t->nbytes + 64); /* XNNPACK may read a little past the end */
    if (!t->data || (name && !t->name)) goto oom;
    return t;
oom:
    od_tensor_destroy(t);
    od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for tensor \"%s\"", name ? name : "");
    return NULL;
}

od_status od_tensor_copy(od_tensor *dst, const od_tensor *src, od_error *err) {
    memset(dst, 0, sizeof *dst);
    dst->dtype = src->dtype;
    dst->rank = src->rank;
    memcpy(dst->dims, src->dims, sizeof dst->dims);
    dst->nbytes = src->nbytes;
    dst->name = dup_or_null(src->name);
    dst->data = malloc(src->nbytes ? src->nbytes : 1);
    if (!dst->data || (src->name && !dst->name)) goto oom;
    if (src->nbytes) memcpy(dst->data, src->data, src->nbytes);
    if (src->dtype == OD_DTYPE_STRING) {
        od_bytes *s = src->data, *d = dst->data;
        size_t n = src->nbytes / sizeof(od_bytes);
        for (size_t i = 0; i < n; i++) d[i].data = NULL;
        for (size_t i = 0; i < n; i++) {
            d[i].data = malloc(s[i].len ? s[i].len : 1);
            if (!d[i].data) goto oom;
            if (s[i].len) memcpy(d[i].data, s[i].data, s[i].len);
        }
    }
    return OD_STATUS_OK;
oom:
    od_tensor_clear(dst);
    return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory copying tensor");
}

void od_tensor_clear(od_tensor *t) {
    if (!t) return;
    if (t->dtype == OD_DTYPE_STRING && t->data) {
        od_bytes *s = t->data;
        for (size_t i = 0; i < t->nbytes / sizeof(od_bytes); i++) free(s[i].data);
    }
    free(t->data);
    free(t->name);
    memset(t, 0, sizeof *t);
}

void od_tensor_destroy(od_tensor *t) {
    if (!t) return;
    od_tensor_clear(t);
    free(t);
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float *od_tensor_to_float(const od_tensor *t, od_error *err) {
    int64_t n = od_tensor_count(t);
    float *out = n >= 0 ? malloc(((size_t)n ? (size_t)n : 1) * sizeof(float)) : NULL;
    if (!out) {
        od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory converting \"%s\"",
                     t->name ? t->name : "");
        return NULL;
    }
    const uint8_t *p = t->data;
    for (int64_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case OD_DTYPE_FLOAT: memcpy(&out[i], p + 4 * i, 4); break;
        case OD_DTYPE_DOUBLE: { double d; memcpy(&d, p + 8 * i, 8); out[i] = (float)d; } break;
        case OD_DTYPE_FLOAT16: { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = half_to_float(h); } break;
        case OD_DTYPE_BFLOAT16: {
            uint16_t h; memcpy(&h, p + 2 * i, 2);
            uint32_t b = (uint32_t)h << 16; memcpy(&out[i], &b, 4);
        } break;
        case OD_DTYPE_INT64: { int64_t v; memcpy(&v, p + 8 * i, 8); out[i] = (float)v; } break;
        case OD_DTYPE_INT32: { int32_t v; memcpy(&v, p + 4 * i, 4); out[i] = (float)v; } break;
        case OD_DTYPE_INT8: out[i] = (float)(int8_t)p[i]; break;
        case OD_DTYPE_UINT8: case OD_DTYPE_BOOL: out[i] = (float)p[i]; break;
        default:
            free(out);
            od_error_set(err, OD_STATUS_UNSUPPORTED, "tensor \"%s\": cannot read %s as float",
                         t->name ? t->name : "", od_dtype_name(t->dtype));
            return NULL;
        }
    }
    return out;
}

/* ---- graph IR ------------------------------------------------------------- */

od_model *od_model_create(void) { return calloc(1, sizeof(od_model)); }

void od_attr_clear(od_attr *a) {
    free(a->name);
    free(a->s.data);
    od_tensor_destroy(a->t);
    free(a->floats);
    free(a->ints);
    if (a->strings)
        for (size_t i = 0; i < a->count; i++) free(a->strings[i].data);
    free(a->strings);
    if (a->tensors)
        for (size_t i = 0; i < a->count; i++) od_tensor_clear(&a->tensors[i]);
    free(a->tensors);
    free(a->opaque.data);
    free(a->ref_attr_name);
    memset(a, 0, sizeof *a);
}

void od_node_clear(od_node *n) {
    free(n->name);
    free(n->op_type);
    free(n->domain);
    free(n->inputs);
    free(n->outputs);
    for (int a = 0; a < n->n_attrs; a++) od_attr_clear(&n->attrs[a]);
    free(n->attrs);
    free(n->doc_string);
    memset(n, 0, sizeof *n);
}

void od_graph_clear(od_graph *g) {
    if (!g) return;
    for (int i = 0; i < g->n_values; i++) {
        od_value *v = &g->values[i];
        free(v->name);
        for (int d = 0; d < OD_MAX_RANK; d++) free(v->dims[d].param);
        free(v->opaque_type.data);
        od_tensor_destroy(v->init);
    }
    for (int i = 0; i < g->n_nodes; i++) od_node_clear(&g->nodes[i]);
    free(g->values);
    free(g->nodes);
    free(g->inputs);
    free(g->outputs);
    free(g->inits);
    free(g->value_infos);
    free(g->name);
    free(g->doc_string);
    memset(g, 0, sizeof *g);
}

void od_model_destroy(od_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_opsets; i++) free(m->opsets[i].domain);
    free(m->opsets);
    for (int i = 0; i < m->n_meta; i++) {
        free(m->meta[i].key);
        free(m->meta[i].value);
    }
    free(m->meta);
    free(m->producer_name);
    free(m->producer_version);
    free(m->domain);
    free(m->doc_string);
    od_graph_clear(&m->graph);
    free(m);
}

/* Value lookup is linear: lookups happen in passes and the builder, on a few names each;
 * decode, which interns every name, keeps its own hash index (lib/onnx_io.c). */
int od_graph_find_value(const od_graph *g, const char *name) {
    for (int i = 0; i < g->n_values; i++)
        if (strcmp(g->values[i].name, name) == 0) return i;
    return -1;
}

int od_graph_intern_value(od_graph *g, const char *name) {
    int i = od_graph_find_value(g, name);
    return i >= 0 ? i : od_graph_add_value(g, name);
}

int od_graph_add_value(od_graph *g, const char *name) {
    if (g->n_values == g->cap_values) {
        int cap = g->cap_values ? 2 * g->cap_values : 16;
        od_value *v = realloc(g->values, sizeof *v * cap);
        if (!v) return -1;
        g->values = v;
        g->cap_values = cap;
    }
    od_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = strdup(name);
    if (!v->name) return -1;
    v->rank = -1;
    v->producer = -1;
    return g->n_values++;
}

int od_graph_add_node(od_graph *g) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 16;
        od_node *n = realloc(g->nodes, sizeof *n * cap);
        if (!n) return -1;
        g->nodes = n;
        g->cap_nodes = cap;
    }
    memset(&g->nodes[g->n_nodes], 0, sizeof(od_node));
    return g->n_nodes++;
}

const od_attr *od_node_attr(const od_node *n, const char *name) {
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
    return NULL;
}

int64_t od_model_opset(const od_model *m, const char *domain) {
    bool want_default = !domain || !*domain || strcmp(domain, "ai.onnx") == 0;
    for (int i = 0; i < m->n_opsets; i++) {
        const char *d = m->opsets[i].domain ? m->opsets[i].domain : "";
        bool is_default = !*d || strcmp(d, "ai.onnx") == 0;
        if (want_default ? is_default : strcmp(d, domain) == 0) return m->opsets[i].version;
    }
    return 0;
}

const char *od_model_meta(const od_model *m, const char *key) {
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta[i].key, key) == 0) return m->meta[i].value;
    return NULL;
}

const char *od_node_label(const od_node *n, char *buf, size_t size) {
    snprintf(buf, size, "node \"%s\" (%s%s%s)", n->name && *n->name ? n->name : "?",
             n->domain && *n->domain ? n->domain : "", n->domain && *n->domain ? "." : "",
             n->op_type ? n->op_type : "?");
    return buf;
}

/* A min-heap of node indices: the ready nodes, lowest index first. */
static void heap_push(int *h, int *n, int x) {
    int i = (*n)++;
    for (; i > 0 && h[(i - 1) / 2] > x; i = (i - 1) / 2) h[i] = h[(i - 1) / 2];
    h[i] = x;
}

static int heap_pop(int *h, int *n) {
    int top = h[0], x = h[--*n], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= x) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = x;
    return top;
}

/* Kahn's algorithm, picking the lowest-index ready node so that a graph already in order
 * keeps its order. Linear in nodes and edges (times log n for the heap): each value lists the
 * nodes that read it (CSR), so finishing a node touches only its readers. */
od_status od_graph_check(od_graph *g, od_error *err) {
    od_status st = OD_STATUS_OK;
    int nv = g->n_values, nn = g->n_nodes;
    int64_t n_edges = 0;
    for (int i = 0; i < nn; i++) n_edges += g->nodes[i].n_inputs;
    int *producer = malloc(sizeof(int) * (nv ? nv : 1));
    int *missing = calloc(nn ? nn : 1, sizeof(int)); /* unresolved inputs per node */
    int *order = malloc(sizeof(int) * (nn ? nn : 1));
    int *ready = malloc(sizeof(int) * (nn ? nn : 1));
    int *first_reader = calloc((size_t)nv + 1, sizeof(int)); /* CSR: readers of value v are */
    int *readers = malloc(sizeof(int) * (size_t)(n_edges ? n_edges : 1)); /* readers[first_reader[v] ..
                                                                          * first_reader[v + 1]) */
    bool *available = calloc(nv ? nv : 1, sizeof(bool));
    char label[256];
    if (!producer || !missing || !order || !ready || !first_reader || !readers || !available) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory checking the graph");
        goto cleanup;
    }
    for (int i = 0; i < nv; i++) producer[i] = -1;
    for (int i = 0; i < g->n_inputs; i++) available[g->inputs[i]] = true;
    for (int i = 0; i < g->n_inits; i++) available[g->inits[i]] = true;
    for (int i = 0; i < nn; i++) {
        const od_node *n = &g->nodes[i];
        for (int o = 0; o < n->n_outputs; o++) {
            int v = n->outputs[o];
            if (v < 0) continue;
            if (producer[v] >= 0 || available[v]) {
                st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                                  "%s: output \"%s\" is already %s", od_node_label(n, label, sizeof label),
                                  g->values[v].name,
                                  producer[v] >= 0 ? "written by another node"
                                                   : "a graph input or initializer");
                goto cleanup;
            }
            producer[v] = i;
        }
    }
    for (int i = 0; i < nn; i++) {
        const od_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (v < 0 || available[v]) continue;
            if (producer[v] < 0) {
                st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                                  "%s: input \"%s\" is not a graph input, initializer or any "
                                  "node's output",
                                  od_node_label(n, label, sizeof label), g->values[v].name);
                goto cleanup;
            }
            missing[i]++;
            first_reader[v + 1]++;
        }
    }
    for (int v = 0; v < nv; v++) first_reader[v + 1] += first_reader[v];
    int n_reads = first_reader[nv];
    for (int i = nn - 1; i >= 0; i--) /* filled back to front, each count counted down */
        for (int k = g->nodes[i].n_inputs - 1; k >= 0; k--) {
            int v = g->nodes[i].inputs[k];
            if (v >= 0 && !available[v]) readers[--first_reader[v + 1]] = i;
        }
    /* first_reader[v + 1] now holds the start of v's readers; shift back to [v] */
    for (int v = 0; v < nv; v++) first_reader[v] = first_reader[v + 1];
    first_reader[nv] = n_reads;
    int n_ready = 0, n_done = 0;
    for (int i = 0; i < nn; i++)
        if (missing[i] == 0) heap_push(ready, &n_ready, i);
    while (n_ready > 0) {
        int pick = heap_pop(ready, &n_ready);
        order[n_done++] = pick;
        const od_node *n = &g->nodes[pick];
        for (int o = 0; o < n->n_outputs; o++) {
            int v = n->outputs[o];
            if (v < 0) continue;
            available[v] = true;
            for (int r = first_reader[v]; r < first_reader[v + 1]; r++)
                if (--missing[readers[r]] == 0) heap_push(ready, &n_ready, readers[r]);
        }
    }
    if (n_done < nn) {
        for (int i = 0; i < nn; i++)
            if (missing[i] > 0) {
                st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: the graph has a cycle through this node",
                                  od_node_label(&g->nodes[i], label, sizeof label));
                goto cleanup;
            }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        if (!available[g->outputs[i]]) {
            st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                              "graph output \"%s\" is not produced by any node",
                              g->values[g->outputs[i]].name);
            goto cleanup;
        }
    }
    /* apply the order */
    od_node *sorted = malloc(sizeof(od_node) * (nn ? nn : 1));
    if (!sorted) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory checking the graph");
        goto cleanup;
    }
    for (int k = 0; k < nn; k++) sorted[k] = g->nodes[order[k]];
    if (nn) memcpy(g->nodes, sorted, sizeof(od_node) * nn);
    free(sorted);
    for (int i = 0; i < nv; i++) g->values[i].producer = -1;
    for (int i = 0; i < nn; i++)
        for (int o = 0; o < g->nodes[i].n_outputs; o++)
            if (g->nodes[i].outputs[o] >= 0) g->values[g->nodes[i].outputs[o]].producer = i;
cleanup:
    free(producer);
    free(missing);
    free(order);
    free(ready);
    free(first_reader);
    free(readers);
    free(available);
    return st;
}

int *od_graph_count_uses(const od_graph *g) {
    int *uses = calloc(g->n_values ? (size_t)g->n_values : 1, sizeof *uses);
    if (!uses) return NULL;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] >= 0) uses[g->nodes[i].inputs[k]]++;
    for (int i = 0; i < g->n_outputs; i++) uses[g->outputs[i]]++;
    return uses;
}

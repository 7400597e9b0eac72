/* ONNX files <-> the IR: ModelProto and TensorProto decode and encode through protobuf-c, and the
 * whole-file read (writes: lib/output.c).
 *
 * protobuf-c structs never leave this file. Decode copies what the IR needs into plain C data
 * and frees the ModelProto; encode builds a ModelProto from malloc'd parts, packs it and frees
 * it with protobuf-c's own free_unpacked (which frees with free() when the allocator is NULL).
 * Tensor data is lent to the ModelProto while packing instead of copied, and taken back before
 * the free: see od_enc. */
#include "od_onnx.h"

#include "od_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Typed fields (float_data, int32_data, ...) are copied as host-order bytes. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "onnx_io.c assumes a little-endian host: the IR and ONNX raw_data are little-endian"
#endif

#define OD_LABEL_SIZE 512
#define OD_ATTR_LABEL_SIZE (OD_LABEL_SIZE + 256) /* a node label and an attribute name */

static od_status od_oom(od_error *err) {
    return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
}

/* strdup that maps NULL to "" (names the IR never leaves NULL). */
static char *od_dup0(const char *s) {
    return strdup(s ? s : "");
}

/* ---- files ------------------------------------------------------------------ */

void od_bytes_free(od_bytes *b) {
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

od_status od_file_read(const char *path, od_bytes *out, od_error *err) {
    od_status st = OD_STATUS_OK;
    uint8_t *buf = NULL;
    size_t cap, len = 0, limit = SIZE_MAX;
    out->data = NULL;
    out->len = 0;
    bool from_stdin = strcmp(path, "-") == 0;
    int fd = from_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return od_error_set(err, OD_STATUS_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = od_error_set(err, OD_STATUS_IO, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (S_ISDIR(sb.st_mode)) {
        st = od_error_set(err, OD_STATUS_IO, "%s: is a folder, not a file", path);
        goto cleanup;
    }
    if (!from_stdin && !S_ISREG(sb.st_mode)) { /* /dev/zero, /dev/urandom: reads that never end */
        st = od_error_set(err, OD_STATUS_IO, "%s: not a regular file (a device, FIFO or socket); give - to read standard input",
                          path);
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode)) limit = OD_STDIN_MAX;
    /* One byte over the size, so that the read that sees EOF needs no growth. A regular file
     * that grows while read is read to its end still; stdin grows up to its cap. */
    cap = S_ISREG(sb.st_mode) && sb.st_size > 0 && (uint64_t)sb.st_size < SIZE_MAX / 2
              ? (size_t)sb.st_size + 1
              : 65536;
    buf = malloc(cap);
    if (!buf) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory reading %zu bytes", path,
                          cap);
        goto cleanup;
    }
    for (;;) {
        if (len == cap) {
            if (len >= limit) {
                st = od_error_set(err, OD_STATUS_IO, "%s: standard input holds more than %zu bytes", path, limit);
                goto cleanup;
            }
            uint8_t *nb = cap < SIZE_MAX / 4 ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory reading", path);
                goto cleanup;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR) continue;
            st = od_error_set(err, OD_STATUS_IO, "%s: %s", path, strerror(errno));
            goto cleanup;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    out->data = buf;
    out->len = len;
    buf = NULL;
cleanup:
    free(buf);
    if (!from_stdin) close(fd);
    return st;
}

/* ---- decode: tensors --------------------------------------------------------- */

/* Parses a non-negative decimal int64 (external data offset and length). */
static bool od_parse_size(const char *s, int64_t *out) {
    if (!s || *s < '0' || *s > '9') return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 0) return false;
    *out = v;
    return true;
}

/* Reads need bytes of external data. The location must stay inside base_dir: no absolute
 * path, no "..", and no symlink leading out (checked on the resolved path). */
static od_status od_read_external(const Onnx__TensorProto *tp, const char *label,
                                  const char *base_dir, size_t need, uint8_t **data_out,
                                  od_error *err) {
    od_status st = OD_STATUS_OK;
    const char *location = NULL;
    int64_t offset = 0, length = -1;
    char *full = NULL, *base_real = NULL, *file_real = NULL;
    uint8_t *buf = NULL;
    int fd = -1;
    *data_out = NULL;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key) continue;
        if (strcmp(e->key, "location") == 0) {
            location = e->value;
        } else if (strcmp(e->key, "offset") == 0 || strcmp(e->key, "length") == 0) {
            if (!od_parse_size(e->value, e->key[0] == 'o' ? &offset : &length))
                return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                    "%s: external data %s \"%s\" is not a byte count", label,
                                    e->key, e->value ? e->value : "");
        }
    }
    if (!location || !*location)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: external data has no location",
                            label);
    if (!base_dir)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "%s keeps its data in external file \"%s\", which can only be read "
                            "when the model is loaded from a file",
                            label, location);
    if (location[0] == '/')
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: external data path \"%s\" is absolute", label, location);
    for (const char *c = location; *c;) {
        size_t cl = strcspn(c, "/");
        if (cl == 2 && c[0] == '.' && c[1] == '.')
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "%s: external data path \"%s\" leaves the model's folder", label,
                                location);
        c += cl;
        if (*c == '/') c++;
    }
    if (length >= 0 && (uint64_t)length != need)
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s holds %" PRId64 " bytes, its dims need %zu", label, length, need);
    size_t bl = strlen(base_dir), ll = strlen(location);
    full = malloc(bl + ll + 2);
    if (!full) return od_oom(err);
    snprintf(full, bl + ll + 2, "%s/%s", base_dir, location);
    base_real = realpath(base_dir, NULL);
    if (!base_real) {
        st = od_error_set(err, OD_STATUS_IO, "%s: model folder \"%s\": %s", label, base_dir,
                          strerror(errno));
        goto cleanup;
    }
    file_real = realpath(full, NULL);
    if (!file_real) {
        st = od_error_set(err, OD_STATUS_IO, "%s: external data file \"%s\": %s", label, full,
                          strerror(errno));
        goto cleanup;
    }
    size_t rl = strlen(base_real);
    bool inside = strcmp(base_real, "/") == 0 ||
                  (strncmp(file_real, base_real, rl) == 0 && file_real[rl] == '/');
    if (!inside) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                          "%s: external data path \"%s\" resolves outside the model's folder",
                          label, location);
        goto cleanup;
    }
    fd = open(file_real, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        st = od_error_set(err, OD_STATUS_IO, "%s: external data file \"%s\": %s", label, full,
                          strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                          "%s: external data \"%s\" is not a regular file", label, full);
        goto cleanup;
    }
    if ((uint64_t)sb.st_size < (uint64_t)offset || (uint64_t)sb.st_size - offset < need) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                          "%s: external data file \"%s\" holds %lld bytes, the tensor needs %zu "
                          "from offset %" PRId64,
                          label, full, (long long)sb.st_size, need, offset);
        goto cleanup;
    }
    buf = malloc(need ? need : 1);
    if (!buf) {
        st = od_oom(err);
        goto cleanup;
    }
    for (size_t got = 0; got < need;) {
        ssize_t r = pread(fd, buf + got, need - got, (off_t)(offset + (int64_t)got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            st = od_error_set(err, OD_STATUS_IO, "%s: external data file \"%s\": %s", label, full,
                              r < 0 ? strerror(errno) : "file shrank while reading");
            goto cleanup;
        }
        got += (size_t)r;
    }
    *data_out = buf;
    buf = NULL;
cleanup:
    if (fd >= 0) close(fd);
    free(buf);
    free(full);
    free(base_real);
    free(file_real);
    return st;
}

/* Fills out (zeroed first) from tp. label names the tensor in errors, e.g. `initializer "w"`.
 * A raw_data buffer of the right size is taken over rather than copied (tp loses it). */
static od_status od_dec_tensor(Onnx__TensorProto *tp, const char *label, const char *base_dir,
                               od_tensor *out, od_error *err) {
    od_status st = OD_STATUS_OK;
    memset(out, 0, sizeof *out);
    if (!tp->has_data_type || tp->data_type == 0)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s has no element type", label);
    if (!od_dtype_valid(tp->data_type))
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "%s has element type %d, which onnx-distill does not support", label,
                            (int)tp->data_type);
    if (tp->n_dims > OD_MAX_RANK)
        return od_error_set(err, OD_STATUS_UNSUPPORTED, "%s has rank %zu (at most %d)", label,
                            tp->n_dims, OD_MAX_RANK);
    for (size_t i = 0; i < tp->n_dims; i++)
        if (tp->dims[i] < 0)
            return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s has a negative dim (%" PRId64 ")",
                                label, tp->dims[i]);
    int64_t count = od_dims_count((int)tp->n_dims, tp->dims);
    if (count < 0)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: the product of its dims overflows",
                            label);
    if (tp->segment)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "%s is a segment of a larger tensor (not supported)", label);
    od_dtype dt = (od_dtype)tp->data_type;
    size_t esize = dt == OD_DTYPE_STRING ? sizeof(od_bytes) : od_dtype_size(dt);
    if ((uint64_t)count > SIZE_MAX / 2 / esize)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s is too large (%" PRId64 " elements)",
                            label, count);
    size_t need = (size_t)count * esize;
    bool external =
        tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;

    out->dtype = dt;
    out->rank = (int)tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++)
        out->dims[i] = tp->dims[i];
    out->name = od_dup0(tp->name);
    if (!out->name) goto oom;

    if (dt == OD_DTYPE_STRING) {
        if (external || (tp->has_raw_data && tp->raw_data.len > 0)) {
            st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                              "%s: string tensors keep their data in string_data", label);
            goto fail;
        }
        if (tp->n_string_data != (size_t)count) {
            st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                              "%s holds %zu strings, its dims need %" PRId64, label,
                              tp->n_string_data, count);
            goto fail;
        }
        od_bytes *s = calloc(count ? (size_t)count : 1, sizeof *s);
        if (!s) goto oom;
        out->data = s;
        out->nbytes = need;
        for (size_t i = 0; i < (size_t)count; i++) {
            const ProtobufCBinaryData *b = &tp->string_data[i];
            s[i].data = malloc(b->len ? b->len : 1);
            if (!s[i].data) goto oom;
            if (b->len) memcpy(s[i].data, b->data, b->len);
            s[i].len = b->len;
        }
        return OD_STATUS_OK;
    }
    if (external) {
        uint8_t *ext;
        st = od_read_external(tp, label, base_dir, need, &ext, err);
        if (st) goto fail;
        out->data = ext;
        out->nbytes = need;
        return OD_STATUS_OK;
    }
    if (tp->has_raw_data) {
        if (tp->raw_data.len != need) {
            st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s holds %zu bytes, its dims need %zu",
                              label, tp->raw_data.len, need);
            goto fail;
        }
        if (need && tp->raw_data.data) {
            out->data = tp->raw_data.data; /* both come from malloc: take it over */
            tp->raw_data.data = NULL;
            tp->raw_data.len = 0;
            tp->has_raw_data = 0;
        } else {
            out->data = malloc(1);
            if (!out->data) goto oom;
        }
        out->nbytes = need;
        return OD_STATUS_OK;
    }

    /* The typed fields: each dtype has one, at its own width or wider. Counts are checked
     * before allocating, so that dims claiming petabytes cost nothing. */
    size_t have, want = (size_t)count;
    switch (dt) {
    case OD_DTYPE_FLOAT:
        have = tp->n_float_data;
        break;
    case OD_DTYPE_COMPLEX64:
        have = tp->n_float_data, want *= 2;
        break;
    case OD_DTYPE_DOUBLE:
        have = tp->n_double_data;
        break;
    case OD_DTYPE_COMPLEX128:
        have = tp->n_double_data, want *= 2;
        break;
    case OD_DTYPE_INT64:
        have = tp->n_int64_data;
        break;
    case OD_DTYPE_UINT32:
    case OD_DTYPE_UINT64:
        have = tp->n_uint64_data;
        break;
    case OD_DTYPE_INT32:
    case OD_DTYPE_INT16:
    case OD_DTYPE_UINT16:
    case OD_DTYPE_FLOAT16: /* FLOAT16 and BFLOAT16 keep their bit patterns in int32_data */
    case OD_DTYPE_BFLOAT16:
    case OD_DTYPE_INT8:
    case OD_DTYPE_UINT8:
    case OD_DTYPE_BOOL:
        have = tp->n_int32_data;
        break;
    default:
        st = od_error_set(err, OD_STATUS_UNSUPPORTED, "%s has element type %s (not supported)",
                          label, od_dtype_name(dt));
        goto fail;
    }
    if (have != want) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s holds %zu values, its dims need %zu",
                          label, have, want);
        goto fail;
    }
    out->data = malloc(need ? need : 1);
    if (!out->data) goto oom;
    out->nbytes = need;
    uint8_t *d = out->data;
    switch (esize) {
    case 1:
        for (size_t i = 0; i < want; i++)
            d[i] = (uint8_t)(uint32_t)tp->int32_data[i];
        break;
    case 2:
        for (size_t i = 0; i < want; i++) {
            uint16_t v = (uint16_t)(uint32_t)tp->int32_data[i];
            memcpy(d + 2 * i, &v, 2);
        }
        break;
    default:
        if (dt == OD_DTYPE_UINT32) {
            for (size_t i = 0; i < want; i++) {
                uint32_t v = (uint32_t)tp->uint64_data[i];
                memcpy(d + 4 * i, &v, 4);
            }
        } else if (need) { /* the field has the element's width: copy as is */
            const void *src =
                dt == OD_DTYPE_FLOAT || dt == OD_DTYPE_COMPLEX64     ? (const void *)tp->float_data
                : dt == OD_DTYPE_DOUBLE || dt == OD_DTYPE_COMPLEX128 ? (const void *)tp->double_data
                : dt == OD_DTYPE_INT64                               ? (const void *)tp->int64_data
                : dt == OD_DTYPE_UINT64                              ? (const void *)tp->uint64_data
                                                                     : (const void *)tp->int32_data;
            memcpy(d, src, need);
        }
        break;
    }
    return OD_STATUS_OK;
oom:
    st = od_oom(err);
fail:
    od_tensor_clear(out);
    return st;
}

/* ---- decode: graphs ---------------------------------------------------------- */

static void od_value_clear_type(od_value *v) {
    for (int d = 0; d < OD_MAX_RANK; d++) {
        free(v->dims[d].param);
        v->dims[d].param = NULL;
        v->dims[d].value = -1;
    }
    od_bytes_free(&v->opaque_type);
    v->dtype = OD_DTYPE_UNDEFINED;
    v->rank = -1;
    v->has_type = false;
    v->is_sequence_or_map = false;
}

/* Sets v's declared type from a ValueInfoProto's type; what says where it was declared. */
static od_status od_dec_type(od_value *v, const Onnx__TypeProto *tp, const char *what,
                             od_error *err) {
    /* No type here keeps one declared elsewhere (an output named like an input, say). */
    if (!tp || tp->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET) return OD_STATUS_OK;
    od_value_clear_type(v);
    v->has_type = true;
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
        /* sequence, map, optional, sparse tensor: kept packed for encode to write back */
        size_t n = onnx__type_proto__get_packed_size(tp);
        v->opaque_type.data = malloc(n ? n : 1);
        if (!v->opaque_type.data) return od_oom(err);
        v->opaque_type.len = onnx__type_proto__pack(tp, v->opaque_type.data);
        v->is_sequence_or_map = true;
        return OD_STATUS_OK;
    }
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->has_elem_type && tt->elem_type != 0) {
        if (!od_dtype_valid(tt->elem_type))
            return od_error_set(err, OD_STATUS_UNSUPPORTED,
                                "%s \"%s\" has element type %d, which onnx-distill does not "
                                "support",
                                what, v->name, (int)tt->elem_type);
        v->dtype = (od_dtype)tt->elem_type;
    }
    if (!tt->shape) return OD_STATUS_OK;
    if (tt->shape->n_dim > OD_MAX_RANK)
        return od_error_set(err, OD_STATUS_UNSUPPORTED, "%s \"%s\" has rank %zu (at most %d)", what,
                            v->name, tt->shape->n_dim, OD_MAX_RANK);
    v->rank = (int)tt->shape->n_dim;
    for (int d = 0; d < v->rank; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
        if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            /* some exporters write -1 for unknown */
            v->dims[d].value = dim->dim_value >= 0 ? dim->dim_value : -1;
        } else if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                   dim->dim_param && *dim->dim_param) {
            v->dims[d].param = strdup(dim->dim_param);
            if (!v->dims[d].param) return od_oom(err);
        }
    }
    return OD_STATUS_OK;
}

/* Value names to indices while decoding, so that interning n names costs O(n), not O(n^2):
 * open addressing over g->values, sized for the file's names up front. */
typedef struct od_name_map {
    int *slot; /* value index + 1; 0 is empty */
    size_t mask;
} od_name_map;

static uint64_t od_name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static bool od_name_map_init(od_name_map *m, size_t names) {
    size_t cap = 64;
    while (cap < 2 * names + 2 && cap < ((size_t)1 << 40)) cap *= 2;
    m->mask = cap - 1;
    m->slot = calloc(cap, sizeof *m->slot);
    return m->slot != NULL;
}

/* The index of name, interned into g (and the map) if new; -1 when out of memory. */
static int od_name_map_intern(od_name_map *m, od_graph *g, const char *name) {
    size_t i = (size_t)od_name_hash(name) & m->mask;
    for (; m->slot[i]; i = (i + 1) & m->mask)
        if (strcmp(g->values[m->slot[i] - 1].name, name) == 0) return m->slot[i] - 1;
    int k = od_graph_add_value(g, name); /* new: the map has no such name */
    if (k >= 0) m->slot[i] = k + 1;
    return k;
}

/* Interns a ValueInfoProto's name and records its type; *index_out gets the value index. */
static od_status od_dec_value_info(od_graph *g, od_name_map *names, const Onnx__ValueInfoProto *vi,
                                   const char *what, size_t pos, int *index_out, od_error *err) {
    if (!vi->name || !*vi->name)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s #%zu has no name", what, pos);
    int k = od_name_map_intern(names, g, vi->name);
    if (k < 0) return od_oom(err);
    *index_out = k;
    return od_dec_type(&g->values[k], vi->type, what, err);
}

static od_attr_type od_attr_infer_type(const Onnx__AttributeProto *ap) {
    if (ap->has_f) return OD_ATTR_FLOAT;
    if (ap->has_i) return OD_ATTR_INT;
    if (ap->has_s) return OD_ATTR_STRING;
    if (ap->t) return OD_ATTR_TENSOR;
    if (ap->g) return OD_ATTR_GRAPH;
    if (ap->sparse_tensor) return OD_ATTR_SPARSE_TENSOR;
    if (ap->tp) return OD_ATTR_TYPE_PROTO;
    if (ap->n_floats) return OD_ATTR_FLOATS;
    if (ap->n_ints) return OD_ATTR_INTS;
    if (ap->n_strings) return OD_ATTR_STRINGS;
    if (ap->n_tensors) return OD_ATTR_TENSORS;
    if (ap->n_graphs) return OD_ATTR_GRAPHS;
    if (ap->n_sparse_tensors) return OD_ATTR_SPARSE_TENSORS;
    if (ap->n_type_protos) return OD_ATTR_TYPE_PROTOS;
    return OD_ATTR_UNDEFINED;
}

static od_status od_dec_attr(od_attr *a, Onnx__AttributeProto *ap, const char *node_label,
                             const char *base_dir, od_error *err) {
    char label[OD_ATTR_LABEL_SIZE];
    if (!ap->name || !*ap->name)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: an attribute has no name",
                            node_label);
    snprintf(label, sizeof label, "%s: attribute \"%s\"", node_label, ap->name);
    a->name = strdup(ap->name);
    if (!a->name) return od_oom(err);
    if (ap->ref_attr_name) {
        a->ref_attr_name = strdup(ap->ref_attr_name);
        if (!a->ref_attr_name) return od_oom(err);
    }
    /* IR version 1 files may leave the type out */
    int type = ap->has_type && ap->type != 0 ? (int)ap->type : (int)od_attr_infer_type(ap);
    if (type == OD_ATTR_UNDEFINED)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s has no type", label);
    a->type = (od_attr_type)type;
    if (a->ref_attr_name) return OD_STATUS_OK; /* a reference carries no value */
    switch (type) {
    case OD_ATTR_FLOAT:
        a->f = ap->f;
        break;
    case OD_ATTR_INT:
        a->i = ap->i;
        break;
    case OD_ATTR_STRING:
        a->s.data = malloc(ap->s.len ? ap->s.len : 1);
        if (!a->s.data) return od_oom(err);
        if (ap->s.len) memcpy(a->s.data, ap->s.data, ap->s.len);
        a->s.len = ap->s.len;
        break;
    case OD_ATTR_TENSOR:
        if (!ap->t) return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s has no tensor", label);
        a->t = malloc(sizeof *a->t);
        if (!a->t) return od_oom(err);
        return od_dec_tensor(ap->t, label, base_dir, a->t, err);
    case OD_ATTR_FLOATS:
        a->count = ap->n_floats;
        if (a->count) {
            a->floats = malloc(sizeof(float) * a->count);
            if (!a->floats) return od_oom(err);
            memcpy(a->floats, ap->floats, sizeof(float) * a->count);
        }
        break;
    case OD_ATTR_INTS:
        a->count = ap->n_ints;
        if (a->count) {
            a->ints = malloc(sizeof(int64_t) * a->count);
            if (!a->ints) return od_oom(err);
            memcpy(a->ints, ap->ints, sizeof(int64_t) * a->count);
        }
        break;
    case OD_ATTR_STRINGS:
        if (ap->n_strings) {
            a->strings = calloc(ap->n_strings, sizeof *a->strings);
            if (!a->strings) return od_oom(err);
            a->count = ap->n_strings;
            for (size_t i = 0; i < a->count; i++) {
                size_t n = ap->strings[i].len;
                a->strings[i].data = malloc(n ? n : 1);
                if (!a->strings[i].data) return od_oom(err);
                if (n) memcpy(a->strings[i].data, ap->strings[i].data, n);
                a->strings[i].len = n;
            }
        }
        break;
    case OD_ATTR_TENSORS:
        if (ap->n_tensors) {
            a->tensors = calloc(ap->n_tensors, sizeof *a->tensors);
            if (!a->tensors) return od_oom(err);
            a->count = ap->n_tensors;
            for (size_t i = 0; i < a->count; i++) {
                char tl[OD_ATTR_LABEL_SIZE + 32];
                snprintf(tl, sizeof tl, "%s tensor #%zu", label, i);
                od_status st = od_dec_tensor(ap->tensors[i], tl, base_dir, &a->tensors[i], err);
                if (st) return st;
            }
        }
        break;
    case OD_ATTR_GRAPH:
    case OD_ATTR_GRAPHS:
    case OD_ATTR_SPARSE_TENSOR:
    case OD_ATTR_SPARSE_TENSORS:
    case OD_ATTR_TYPE_PROTO:
    case OD_ATTR_TYPE_PROTOS: {
        /* Kept whole, so that encode writes back exactly what was read. */
        size_t n = onnx__attribute_proto__get_packed_size(ap);
        a->opaque.data = malloc(n ? n : 1);
        if (!a->opaque.data) return od_oom(err);
        a->opaque.len = onnx__attribute_proto__pack(ap, a->opaque.data);
        break;
    }
    default:
        return od_error_set(err, OD_STATUS_UNSUPPORTED, "%s has type %d, unknown to onnx-distill",
                            label, type);
    }
    return OD_STATUS_OK;
}

/* Interns a node's input or output name; "" is an omitted optional one (-1). */
static od_status od_dec_names(od_graph *g, od_name_map *map, size_t n, char **names, int **out,
                              od_error *err) {
    if (n == 0) return OD_STATUS_OK;
    if (n > INT_MAX) return od_error_set(err, OD_STATUS_UNSUPPORTED, "too many node inputs");
    *out = malloc(sizeof(int) * n);
    if (!*out) return od_oom(err);
    for (size_t i = 0; i < n; i++) {
        (*out)[i] = -1;
        if (!names[i] || !*names[i]) continue;
        (*out)[i] = od_name_map_intern(map, g, names[i]);
        if ((*out)[i] < 0) return od_oom(err);
    }
    return OD_STATUS_OK;
}

static od_status od_dec_node(od_graph *g, od_name_map *names, Onnx__NodeProto *np, size_t pos,
                             const char *base_dir, od_error *err) {
    od_status st;
    char label[OD_LABEL_SIZE];
    if (!np->op_type || !*np->op_type)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "node #%zu (\"%s\") has no op_type", pos,
                            np->name ? np->name : "");
    int k = od_graph_add_node(g);
    if (k < 0) return od_oom(err);
    od_node *n = &g->nodes[k];
    /* "ai.onnx" and "" are the same domain; the IR spells it "" */
    const char *domain = np->domain && strcmp(np->domain, "ai.onnx") != 0 ? np->domain : "";
    n->name = od_dup0(np->name);
    n->op_type = strdup(np->op_type);
    n->domain = strdup(domain);
    if (!n->name || !n->op_type || !n->domain) return od_oom(err);
    if (np->doc_string && !(n->doc_string = strdup(np->doc_string))) return od_oom(err);
    if ((st = od_dec_names(g, names, np->n_input, np->input, &n->inputs, err))) return st;
    n->n_inputs = (int)np->n_input;
    if ((st = od_dec_names(g, names, np->n_output, np->output, &n->outputs, err))) return st;
    n->n_outputs = (int)np->n_output;
    od_node_label(n, label, sizeof label);
    if (np->n_attribute) {
        if (np->n_attribute > INT_MAX)
            return od_error_set(err, OD_STATUS_UNSUPPORTED, "%s has too many attributes", label);
        n->attrs = calloc(np->n_attribute, sizeof *n->attrs);
        if (!n->attrs) return od_oom(err);
        n->n_attrs = (int)np->n_attribute; /* zeroed entries free cleanly on failure */
        for (size_t i = 0; i < np->n_attribute; i++) {
            if ((st = od_dec_attr(&n->attrs[i], np->attribute[i], label, base_dir, err))) return st;
            for (size_t j = 0; j < i; j++)
                if (strcmp(n->attrs[j].name, n->attrs[i].name) == 0)
                    return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                        "%s: attribute \"%s\" appears twice", label,
                                        n->attrs[i].name);
        }
    }
    return OD_STATUS_OK;
}

static od_status od_dec_graph_with(od_graph *g, od_name_map *names, Onnx__GraphProto *gp,
                                   const char *base_dir, od_error *err) {
    od_status st;
    if (!gp->name || !*gp->name)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "the graph has no name");
    if (!(g->name = strdup(gp->name))) return od_oom(err);
    if (gp->doc_string && !(g->doc_string = strdup(gp->doc_string))) return od_oom(err);
    if (gp->n_input > INT_MAX / 2 || gp->n_output > INT_MAX / 2 || gp->n_node > INT_MAX / 2 ||
        gp->n_initializer > INT_MAX / 2 || gp->n_value_info > INT_MAX / 2)
        return od_error_set(err, OD_STATUS_UNSUPPORTED, "the graph is too large");
    if (gp->n_sparse_initializer)
        return od_error_set(
            err, OD_STATUS_UNSUPPORTED, "sparse initializer \"%s\" is not supported",
            gp->sparse_initializer[0]->values && gp->sparse_initializer[0]->values->name
                ? gp->sparse_initializer[0]->values->name
                : "");

    if (gp->n_input && !(g->inputs = malloc(sizeof(int) * gp->n_input))) return od_oom(err);
    if (gp->n_output && !(g->outputs = malloc(sizeof(int) * gp->n_output))) return od_oom(err);
    if (gp->n_initializer && !(g->inits = malloc(sizeof(int) * gp->n_initializer)))
        return od_oom(err);
    if (gp->n_value_info && !(g->value_infos = malloc(sizeof(int) * gp->n_value_info)))
        return od_oom(err);

    for (size_t i = 0; i < gp->n_input; i++) {
        int k;
        if ((st = od_dec_value_info(g, names, gp->input[i], "graph input", i, &k, err))) return st;
        g->inputs[g->n_inputs++] = k;
    }
    for (size_t i = 0; i < gp->n_initializer; i++) {
        Onnx__TensorProto *tp = gp->initializer[i];
        char label[OD_LABEL_SIZE];
        if (!tp->name || !*tp->name)
            return od_error_set(err, OD_STATUS_INVALID_MODEL, "initializer #%zu has no name", i);
        snprintf(label, sizeof label, "initializer \"%s\"", tp->name);
        int k = od_name_map_intern(names, g, tp->name);
        if (k < 0) return od_oom(err);
        if (g->values[k].init)
            return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s appears twice", label);
        od_tensor *t = malloc(sizeof *t);
        if (!t) return od_oom(err);
        if ((st = od_dec_tensor(tp, label, base_dir, t, err))) {
            free(t);
            return st;
        }
        g->values[k].init = t;
        g->inits[g->n_inits++] = k;
    }
    for (size_t i = 0; i < gp->n_node; i++)
        if ((st = od_dec_node(g, names, gp->node[i], i, base_dir, err))) return st;
    for (size_t i = 0; i < gp->n_output; i++) {
        int k;
        if ((st = od_dec_value_info(g, names, gp->output[i], "graph output", i, &k, err))) return st;
        g->outputs[g->n_outputs++] = k;
    }
    for (size_t i = 0; i < gp->n_value_info; i++) {
        int k;
        if ((st = od_dec_value_info(g, names, gp->value_info[i], "value_info", i, &k, err))) return st;
        g->value_infos[g->n_value_infos++] = k;
    }
    return OD_STATUS_OK;
}

static od_status od_dec_graph(od_graph *g, Onnx__GraphProto *gp, const char *base_dir,
                              od_error *err) {
    size_t n_names = gp->n_input + gp->n_output + gp->n_initializer + gp->n_value_info;
    for (size_t i = 0; i < gp->n_node && i < (size_t)INT_MAX; i++)
        n_names += gp->node[i]->n_output + gp->node[i]->n_input;
    od_name_map names;
    if (!od_name_map_init(&names, n_names)) return od_oom(err);
    od_status st = od_dec_graph_with(g, &names, gp, base_dir, err);
    free(names.slot);
    return st;
}

/* IR versions and default-domain opsets outside what the ONNX schema this build was made from
 * defines (onnx.proto's Version enum; onnx.defs.onnx_opset_version() of the same release) are
 * refused: ONNX Runtime will not load them, and a student would copy the stamp. */
static od_status od_check_versions(const od_model *m, od_error *err) {
    if (m->ir_version < 1 || m->ir_version > ONNX__VERSION__IR_VERSION)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "IR version %lld is outside what ONNX defines here: 1 to %d",
                            (long long)m->ir_version, (int)ONNX__VERSION__IR_VERSION);
    for (int i = 0; i < m->n_opsets; i++) {
        const od_opset *o = &m->opsets[i];
        bool onnx = !*o->domain || strcmp(o->domain, "ai.onnx") == 0;
        if (o->version < 1 || (onnx && o->version > OD_ONNX_OPSET_MAX))
            return onnx ? od_error_set(err, OD_STATUS_UNSUPPORTED,
                                       "opset %lld of the default domain is outside what ONNX "
                                       "defines here: 1 to %d",
                                       (long long)o->version, OD_ONNX_OPSET_MAX)
                        : od_error_set(err, OD_STATUS_UNSUPPORTED,
                                       "opset %lld of domain \"%s\" is not a version (want 1 or more)",
                                       (long long)o->version, o->domain);
    }
    if (m->graph.opset == 0)
        for (int i = 0; i < m->graph.n_nodes; i++)
            if (!*m->graph.nodes[i].domain)
                return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                    "the model imports no default-domain opset, and node \"%s\" "
                                    "(%s) is in the default domain (want an opset 1 to %d)",
                                    m->graph.nodes[i].name, m->graph.nodes[i].op_type,
                                    OD_ONNX_OPSET_MAX);
    return OD_STATUS_OK;
}

od_status od_model_decode(const void *data, size_t len, const char *base_dir, od_model **out,
                          od_error *err) {
    od_status st = OD_STATUS_OK;
    Onnx__ModelProto *mp = NULL;
    od_model *m = NULL;
    *out = NULL;
    if (len == 0) return od_error_set(err, OD_STATUS_INVALID_MODEL, "file is empty");
    mp = onnx__model_proto__unpack(NULL, len, data);
    if (!mp)
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "not an ONNX model: the protobuf is malformed or truncated");
    if (!mp->graph) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "not an ONNX model: it has no graph");
        goto cleanup;
    }
    if (mp->n_functions) {
        st = od_error_set(err, OD_STATUS_UNSUPPORTED,
                          "the model defines local function \"%s\" (local functions are not "
                          "supported)",
                          mp->functions[0]->name ? mp->functions[0]->name : "");
        goto cleanup;
    }
    if (mp->n_opset_import > INT_MAX / 2 || mp->n_metadata_props > INT_MAX / 2) {
        st = od_error_set(err, OD_STATUS_UNSUPPORTED, "the model has too many opsets or metadata");
        goto cleanup;
    }
    m = od_model_create();
    if (!m) goto oom;
    m->ir_version = mp->has_ir_version ? mp->ir_version : 0;
    m->model_version = mp->has_model_version ? mp->model_version : 0;
    if ((mp->producer_name && !(m->producer_name = strdup(mp->producer_name))) ||
        (mp->producer_version && !(m->producer_version = strdup(mp->producer_version))) ||
        (mp->domain && !(m->domain = strdup(mp->domain))) ||
        (mp->doc_string && !(m->doc_string = strdup(mp->doc_string))))
        goto oom;
    if (mp->n_opset_import) {
        m->opsets = calloc(mp->n_opset_import, sizeof *m->opsets);
        if (!m->opsets) goto oom;
        for (size_t i = 0; i < mp->n_opset_import; i++) {
            const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
            m->opsets[i].version = o->has_version ? o->version : 0;
            m->opsets[i].domain = od_dup0(o->domain);
            m->n_opsets++;
            if (!m->opsets[i].domain) goto oom;
        }
    }
    if (mp->n_metadata_props) {
        m->meta = calloc(mp->n_metadata_props, sizeof *m->meta);
        if (!m->meta) goto oom;
        for (size_t i = 0; i < mp->n_metadata_props; i++) {
            m->meta[i].key = od_dup0(mp->metadata_props[i]->key);
            m->meta[i].value = od_dup0(mp->metadata_props[i]->value);
            m->n_meta++;
            if (!m->meta[i].key || !m->meta[i].value) goto oom;
        }
    }
    if ((st = od_dec_graph(&m->graph, mp->graph, base_dir, err))) goto cleanup;
    m->graph.opset = od_model_opset(m, "");
    if ((st = od_check_versions(m, err))) goto cleanup;
    *out = m;
    m = NULL;
    goto cleanup;
oom:
    st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory decoding the model");
cleanup:
    od_model_destroy(m);
    onnx__model_proto__free_unpacked(mp, NULL);
    return st;
}

od_status od_model_load(const char *path, od_model **out, od_error *err) {
    od_bytes b = {0};
    od_model *m = NULL;
    char *dir = NULL;
    *out = NULL;
    od_status st = od_file_read(path, &b, err); /* its errors already name the path */
    if (st) return st;
    dir = strdup(path);
    if (!dir) {
        st = od_oom(err);
        goto cleanup;
    }
    if ((st = od_model_decode(b.data, b.len, dirname(dir), &m, err))) goto cleanup;
    if ((st = od_graph_check(&m->graph, err))) goto cleanup;
    *out = m;
    m = NULL;
cleanup:
    if (st) od_error_prefix(err, "%s: ", path);
    od_model_destroy(m);
    free(dir);
    od_bytes_free(&b);
    return st;
}

od_status od_tensor_decode(const void *data, size_t len, od_tensor *out, od_error *err) {
    memset(out, 0, sizeof *out);
    if (len == 0) return od_error_set(err, OD_STATUS_INVALID_MODEL, "file is empty");
    Onnx__TensorProto *tp = onnx__tensor_proto__unpack(NULL, len, data);
    if (!tp)
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "not an ONNX TensorProto: the protobuf is malformed or truncated (a "
                            "sequence, map or optional?)");
    char label[OD_LABEL_SIZE];
    snprintf(label, sizeof label, "tensor \"%s\"", tp->name ? tp->name : "");
    od_status st;
    /* A SequenceProto or OptionalProto read as a TensorProto puts its elements in field 3,
     * the segment: say what it most likely is. */
    if (tp->segment)
        st = od_error_set(err, OD_STATUS_UNSUPPORTED,
                          "not a plain tensor (sequence or optional data, or a tensor segment): "
                          "not supported");
    else
        st = od_dec_tensor(tp, label, NULL, out, err);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return st;
}

/* ---- encode ------------------------------------------------------------------- */

/* Tensor data is lent to the TensorProtos being packed (no copy of the weights); lent[] lists
 * them so that the data is taken back before free_unpacked would free it. */
typedef struct od_enc {
    Onnx__TensorProto **lent;
    size_t n_lent, cap_lent;
    od_error *err;
} od_enc;

static void od_enc_take_back(od_enc *e) {
    for (size_t i = 0; i < e->n_lent; i++) {
        Onnx__TensorProto *tp = e->lent[i];
        tp->raw_data.data = NULL;
        tp->raw_data.len = 0;
        tp->has_raw_data = 0;
        free(tp->string_data); /* the array is ours; the strings are lent */
        tp->string_data = NULL;
        tp->n_string_data = 0;
    }
    free(e->lent);
    e->lent = NULL;
    e->n_lent = e->cap_lent = 0;
}

/* strdup that keeps NULL and records a failure in *failed, to check once after a batch. */
static char *od_enc_dup(const char *s, bool *failed) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *failed = true;
    return d;
}

/* Builds a TensorProto for t, named name (NULL or "": unnamed); NULL on error (e->err set). */
static Onnx__TensorProto *od_enc_tensor(od_enc *e, const od_tensor *t, const char *name,
                                        const char *label) {
    if (!t) {
        od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT, "%s has no tensor", label);
        return NULL;
    }
    if (t->rank < 0 || t->rank > OD_MAX_RANK || !od_dtype_valid(t->dtype)) {
        od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT, "%s has rank %d and element type %d",
                     label, t->rank, (int)t->dtype);
        return NULL;
    }
    int64_t count = od_dims_count(t->rank, t->dims);
    size_t esize = t->dtype == OD_DTYPE_STRING ? sizeof(od_bytes) : od_dtype_size(t->dtype);
    if (count < 0 || (uint64_t)count > SIZE_MAX / esize || (size_t)count * esize != t->nbytes ||
        (t->nbytes && !t->data)) {
        od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT,
                     "%s holds %zu bytes, its dims need %" PRId64 " elements of %zu", label,
                     t->nbytes, count, esize);
        return NULL;
    }
    if (e->n_lent == e->cap_lent) {
        size_t cap = e->cap_lent ? 2 * e->cap_lent : 64;
        Onnx__TensorProto **l = realloc(e->lent, sizeof *l * cap);
        if (!l) goto oom;
        e->lent = l;
        e->cap_lent = cap;
    }
    Onnx__TensorProto *tp = malloc(sizeof *tp);
    if (!tp) goto oom;
    onnx__tensor_proto__init(tp);
    bool failed = false;
    if (t->rank) {
        tp->dims = malloc(sizeof(int64_t) * t->rank);
        if (tp->dims) {
            memcpy(tp->dims, t->dims, sizeof(int64_t) * t->rank);
            tp->n_dims = (size_t)t->rank;
        } else {
            failed = true;
        }
    }
    tp->has_data_type = 1;
    tp->data_type = (int32_t)t->dtype;
    if (name && *name) tp->name = od_enc_dup(name, &failed);
    if (t->dtype == OD_DTYPE_STRING && count > 0) {
        tp->string_data = malloc(sizeof *tp->string_data * (size_t)count);
        if (!tp->string_data) failed = true;
    }
    if (failed) {
        onnx__tensor_proto__free_unpacked(tp, NULL);
        goto oom;
    }
    /* From here on nothing fails: lend the data. */
    e->lent[e->n_lent++] = tp;
    if (t->dtype == OD_DTYPE_STRING) {
        const od_bytes *s = t->data;
        for (int64_t i = 0; i < count; i++) {
            tp->string_data[i].len = s[i].len;
            tp->string_data[i].data = s[i].data;
        }
        tp->n_string_data = (size_t)count;
    } else {
        tp->has_raw_data = 1;
        tp->raw_data.len = t->nbytes;
        tp->raw_data.data = t->data;
    }
    return tp;
oom:
    od_error_set(e->err, OD_STATUS_OUT_OF_MEMORY, "out of memory encoding %s", label);
    return NULL;
}

/* NULL with *failed unset means no type to write. */
static Onnx__TypeProto *od_enc_type(od_enc *e, const od_value *v, bool *failed) {
    if (v->is_sequence_or_map) {
        Onnx__TypeProto *tp =
            onnx__type_proto__unpack(NULL, v->opaque_type.len, v->opaque_type.data);
        if (!tp) {
            *failed = true;
            od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT,
                         "value \"%s\": its kept type does not decode", v->name);
        }
        return tp;
    }
    if (!v->has_type) return NULL;
    if (v->rank > OD_MAX_RANK) {
        *failed = true;
        od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT, "value \"%s\" has rank %d", v->name,
                     v->rank);
        return NULL;
    }
    Onnx__TypeProto *tp = malloc(sizeof *tp);
    if (!tp) goto oom;
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = malloc(sizeof *tt);
    if (!tt) goto oom_tp;
    onnx__type_proto__tensor__init(tt);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    if (v->dtype != OD_DTYPE_UNDEFINED) {
        tt->has_elem_type = 1;
        tt->elem_type = (int32_t)v->dtype;
    }
    if (v->rank < 0) return tp;
    Onnx__TensorShapeProto *sp = malloc(sizeof *sp);
    if (!sp) goto oom_tp;
    onnx__tensor_shape_proto__init(sp);
    tt->shape = sp; /* a present, empty shape is a scalar: keep it even for rank 0 */
    if (v->rank == 0) return tp;
    sp->dim = malloc(sizeof *sp->dim * (size_t)v->rank);
    if (!sp->dim) goto oom_tp;
    for (int d = 0; d < v->rank; d++) {
        Onnx__TensorShapeProto__Dimension *dim = malloc(sizeof *dim);
        if (!dim) goto oom_tp;
        onnx__tensor_shape_proto__dimension__init(dim);
        sp->dim[sp->n_dim++] = dim;
        if (v->dims[d].value >= 0) {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim->dim_value = v->dims[d].value;
        } else if (v->dims[d].param) {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim->dim_param = strdup(v->dims[d].param);
            if (!dim->dim_param) {
                dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE__NOT_SET;
                goto oom_tp;
            }
        }
    }
    return tp;
oom_tp:
    onnx__type_proto__free_unpacked(tp, NULL);
oom:
    *failed = true;
    od_error_set(e->err, OD_STATUS_OUT_OF_MEMORY, "out of memory encoding value \"%s\"", v->name);
    return NULL;
}

static Onnx__ValueInfoProto *od_enc_value_info(od_enc *e, const od_graph *g, int index) {
    if (index < 0 || index >= g->n_values) {
        od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT, "value index %d out of range", index);
        return NULL;
    }
    const od_value *v = &g->values[index];
    Onnx__ValueInfoProto *vi = malloc(sizeof *vi);
    if (!vi) goto oom;
    onnx__value_info_proto__init(vi);
    bool failed = false;
    vi->name = od_enc_dup(v->name, &failed);
    if (failed) {
        onnx__value_info_proto__free_unpacked(vi, NULL);
        goto oom;
    }
    vi->type = od_enc_type(e, v, &failed);
    if (failed) {
        onnx__value_info_proto__free_unpacked(vi, NULL);
        return NULL; /* error already set */
    }
    return vi;
oom:
    od_error_set(e->err, OD_STATUS_OUT_OF_MEMORY, "out of memory encoding value \"%s\"", v->name);
    return NULL;
}

static Onnx__AttributeProto *od_enc_attr(od_enc *e, const od_attr *a, const char *node_label) {
    char label[OD_ATTR_LABEL_SIZE];
    snprintf(label, sizeof label, "%s: attribute \"%s\"", node_label, a->name ? a->name : "");
    Onnx__AttributeProto *ap = NULL;
    bool failed = false;
    switch (a->type) {
    case OD_ATTR_GRAPH:
    case OD_ATTR_GRAPHS:
    case OD_ATTR_SPARSE_TENSOR:
    case OD_ATTR_SPARSE_TENSORS:
    case OD_ATTR_TYPE_PROTO:
    case OD_ATTR_TYPE_PROTOS:
        ap = onnx__attribute_proto__unpack(NULL, a->opaque.len, a->opaque.data);
        if (!ap) {
            od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT, "%s: its kept value does not decode",
                         label);
            return NULL;
        }
        if (a->name && (!ap->name || strcmp(ap->name, a->name) != 0)) { /* renamed since */
            free(ap->name);
            ap->name = od_enc_dup(a->name, &failed);
            if (failed) goto oom;
        }
        return ap;
    default:
        break;
    }
    ap = malloc(sizeof *ap);
    if (!ap) goto oom;
    onnx__attribute_proto__init(ap);
    ap->name = od_enc_dup(a->name ? a->name : "", &failed);
    ap->ref_attr_name = od_enc_dup(a->ref_attr_name, &failed);
    ap->has_type = 1;
    ap->type = (Onnx__AttributeProto__AttributeType)a->type;
    if (failed) goto oom;
    if (a->ref_attr_name) return ap; /* a reference carries no value */
    switch (a->type) {
    case OD_ATTR_FLOAT:
        ap->has_f = 1;
        ap->f = a->f;
        break;
    case OD_ATTR_INT:
        ap->has_i = 1;
        ap->i = a->i;
        break;
    case OD_ATTR_STRING:
        ap->has_s = 1;
        if (a->s.len) {
            ap->s.data = malloc(a->s.len);
            if (!ap->s.data) goto oom;
            memcpy(ap->s.data, a->s.data, a->s.len);
            ap->s.len = a->s.len;
        }
        break;
    case OD_ATTR_TENSOR:
        ap->t = od_enc_tensor(e, a->t, a->t ? a->t->name : NULL, label);
        if (!ap->t) goto fail;
        break;
    case OD_ATTR_FLOATS:
        if (a->count) {
            ap->floats = malloc(sizeof(float) * a->count);
            if (!ap->floats) goto oom;
            memcpy(ap->floats, a->floats, sizeof(float) * a->count);
            ap->n_floats = a->count;
        }
        break;
    case OD_ATTR_INTS:
        if (a->count) {
            ap->ints = malloc(sizeof(int64_t) * a->count);
            if (!ap->ints) goto oom;
            memcpy(ap->ints, a->ints, sizeof(int64_t) * a->count);
            ap->n_ints = a->count;
        }
        break;
    case OD_ATTR_STRINGS:
        if (a->count) {
            ap->strings = malloc(sizeof *ap->strings * a->count);
            if (!ap->strings) goto oom;
            for (size_t i = 0; i < a->count; i++) {
                ProtobufCBinaryData *s = &ap->strings[ap->n_strings];
                s->len = a->strings[i].len;
                s->data = s->len ? malloc(s->len) : NULL;
                if (s->len && !s->data) goto oom;
                if (s->len) memcpy(s->data, a->strings[i].data, s->len);
                ap->n_strings++;
            }
        }
        break;
    case OD_ATTR_TENSORS:
        if (a->count) {
            ap->tensors = malloc(sizeof *ap->tensors * a->count);
            if (!ap->tensors) goto oom;
            for (size_t i = 0; i < a->count; i++) {
                Onnx__TensorProto *tp = od_enc_tensor(e, &a->tensors[i], a->tensors[i].name, label);
                if (!tp) goto fail;
                ap->tensors[ap->n_tensors++] = tp;
            }
        }
        break;
    default:
        od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT, "%s has unknown type %d", label,
                     (int)a->type);
        goto fail;
    }
    return ap;
oom:
    od_error_set(e->err, OD_STATUS_OUT_OF_MEMORY, "out of memory encoding %s", label);
fail:
    /* The encode fails as a whole: take back every lent buffer now, since this subtree may
     * hold some and free_unpacked would free them. */
    od_enc_take_back(e);
    onnx__attribute_proto__free_unpacked(ap, NULL);
    return NULL;
}

/* Node input and output names; -1 is written as "" (an omitted optional one). */
static bool od_enc_names(const od_graph *g, int n, const int *idx, char ***out, size_t *n_out) {
    if (n <= 0) return true;
    *out = malloc(sizeof **out * (size_t)n);
    if (!*out) return false;
    for (int i = 0; i < n; i++) {
        const char *name = "";
        if (idx[i] >= 0 && idx[i] < g->n_values) name = g->values[idx[i]].name;
        char *d = strdup(name);
        if (!d) return false;
        (*out)[(*n_out)++] = d;
    }
    return true;
}

static Onnx__NodeProto *od_enc_node(od_enc *e, const od_graph *g, const od_node *n) {
    char label[OD_LABEL_SIZE];
    od_node_label(n, label, sizeof label);
    for (int i = 0; i < n->n_inputs; i++)
        if (n->inputs[i] < -1 || n->inputs[i] >= g->n_values) {
            od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT, "%s: input %d is out of range", label,
                         i);
            return NULL;
        }
    for (int i = 0; i < n->n_outputs; i++)
        if (n->outputs[i] < -1 || n->outputs[i] >= g->n_values) {
            od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT, "%s: output %d is out of range", label,
                         i);
            return NULL;
        }
    Onnx__NodeProto *np = malloc(sizeof *np);
    if (!np) goto oom;
    onnx__node_proto__init(np);
    bool failed = false;
    if (n->name && *n->name) np->name = od_enc_dup(n->name, &failed);
    np->op_type = od_enc_dup(n->op_type ? n->op_type : "", &failed);
    if (n->domain && *n->domain) np->domain = od_enc_dup(n->domain, &failed);
    np->doc_string = od_enc_dup(n->doc_string, &failed);
    if (failed || !od_enc_names(g, n->n_inputs, n->inputs, &np->input, &np->n_input) ||
        !od_enc_names(g, n->n_outputs, n->outputs, &np->output, &np->n_output))
        goto oom;
    if (n->n_attrs > 0) {
        np->attribute = malloc(sizeof *np->attribute * (size_t)n->n_attrs);
        if (!np->attribute) goto oom;
        for (int i = 0; i < n->n_attrs; i++) {
            Onnx__AttributeProto *ap = od_enc_attr(e, &n->attrs[i], label);
            if (!ap) goto fail;
            np->attribute[np->n_attribute++] = ap;
        }
    }
    return np;
oom:
    od_error_set(e->err, OD_STATUS_OUT_OF_MEMORY, "out of memory encoding %s", label);
fail:
    od_enc_take_back(e); /* as in od_enc_attr */
    onnx__node_proto__free_unpacked(np, NULL);
    return NULL;
}

/* Fills gp (already init'ed and owned by the caller) from g. */
static od_status od_enc_graph(od_enc *e, const od_graph *g, Onnx__GraphProto *gp) {
    od_status st = OD_STATUS_OK;
    bool failed = false;
    bool *listed = NULL;
    /* ONNX requires a graph name: give one to graphs built in memory without */
    gp->name = od_enc_dup(g->name && *g->name ? g->name : "graph", &failed);
    gp->doc_string = od_enc_dup(g->doc_string, &failed);
    if (failed) goto oom;
    if (g->n_nodes > 0) {
        gp->node = malloc(sizeof *gp->node * (size_t)g->n_nodes);
        if (!gp->node) goto oom;
        for (int i = 0; i < g->n_nodes; i++) {
            Onnx__NodeProto *np = od_enc_node(e, g, &g->nodes[i]);
            if (!np) return e->err->status;
            gp->node[gp->n_node++] = np;
        }
    }
    /* Initializers in graph.inits order; a value with data missing from that list is a bug in
     * whoever built the graph, and writing it anyway would hide it. */
    listed = calloc(g->n_values ? (size_t)g->n_values : 1, sizeof *listed);
    if (!listed) goto oom;
    if (g->n_inits > 0) {
        gp->initializer = malloc(sizeof *gp->initializer * (size_t)g->n_inits);
        if (!gp->initializer) goto oom;
        for (int i = 0; i < g->n_inits; i++) {
            int k = g->inits[i];
            if (k < 0 || k >= g->n_values || !g->values[k].init || listed[k]) {
                st =
                    od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT,
                                 "initializer #%d (value %d) has no data or is listed twice", i, k);
                goto cleanup;
            }
            listed[k] = true;
            char label[OD_LABEL_SIZE];
            snprintf(label, sizeof label, "initializer \"%s\"", g->values[k].name);
            Onnx__TensorProto *tp = od_enc_tensor(e, g->values[k].init, g->values[k].name, label);
            if (!tp) {
                st = e->err->status;
                goto cleanup;
            }
            gp->initializer[gp->n_initializer++] = tp;
        }
    }
    for (int k = 0; k < g->n_values; k++)
        if (g->values[k].init && !listed[k]) {
            st = od_error_set(e->err, OD_STATUS_INVALID_ARGUMENT,
                              "value \"%s\" has initializer data but is not in the graph's "
                              "initializer list",
                              g->values[k].name);
            goto cleanup;
        }
    struct {
        int n;
        const int *idx;
        Onnx__ValueInfoProto ***out;
        size_t *n_out;
    } lists[] = {{g->n_inputs, g->inputs, &gp->input, &gp->n_input},
                 {g->n_outputs, g->outputs, &gp->output, &gp->n_output},
                 {g->n_value_infos, g->value_infos, &gp->value_info, &gp->n_value_info}};
    for (size_t l = 0; l < sizeof lists / sizeof *lists; l++) {
        if (lists[l].n <= 0) continue;
        *lists[l].out = malloc(sizeof **lists[l].out * (size_t)lists[l].n);
        if (!*lists[l].out) goto oom;
        for (int i = 0; i < lists[l].n; i++) {
            Onnx__ValueInfoProto *vi = od_enc_value_info(e, g, lists[l].idx[i]);
            if (!vi) {
                st = e->err->status;
                goto cleanup;
            }
            (*lists[l].out)[(*lists[l].n_out)++] = vi;
        }
    }
    goto cleanup;
oom:
    st = od_error_set(e->err, OD_STATUS_OUT_OF_MEMORY, "out of memory encoding the graph");
cleanup:
    free(listed);
    return st;
}

/* Packs msg into a new buffer. protobuf files over 2 GiB cannot be read back by most readers. */
static od_status od_enc_pack(const ProtobufCMessage *msg, od_bytes *out, od_error *err) {
    size_t size = protobuf_c_message_get_packed_size(msg);
    if (size > INT32_MAX)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "the encoding is %zu bytes, over protobuf's 2 GiB limit", size);
    out->data = malloc(size ? size : 1);
    if (!out->data)
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory packing %zu bytes", size);
    out->len = protobuf_c_message_pack(msg, out->data);
    return OD_STATUS_OK;
}

od_status od_model_encode(const od_model *m, od_bytes *out, od_error *err) {
    od_status st = OD_STATUS_OK;
    od_error local;
    if (!err) err = &local; /* the builders read the status back from it */
    od_enc e = {.err = err};
    bool failed = false;
    out->data = NULL;
    out->len = 0;
    Onnx__ModelProto *mp = malloc(sizeof *mp);
    if (!mp) return od_oom(err);
    onnx__model_proto__init(mp);
    if (m->ir_version > 0) {
        mp->has_ir_version = 1;
        mp->ir_version = m->ir_version;
    }
    if (m->model_version != 0) {
        mp->has_model_version = 1;
        mp->model_version = m->model_version;
    }
    mp->producer_name = od_enc_dup(m->producer_name, &failed);
    mp->producer_version = od_enc_dup(m->producer_version, &failed);
    mp->domain = od_enc_dup(m->domain, &failed);
    mp->doc_string = od_enc_dup(m->doc_string, &failed);
    if (failed) goto oom;
    /* A graph built in memory may carry its opset in graph.opset only: import it, since a
     * model without a default-domain opset is invalid. */
    bool add_default = m->graph.opset > 0 && od_model_opset(m, "") == 0;
    int n_opsets = m->n_opsets + (add_default ? 1 : 0);
    if (n_opsets > 0) {
        mp->opset_import = malloc(sizeof *mp->opset_import * (size_t)n_opsets);
        if (!mp->opset_import) goto oom;
        for (int i = 0; i < n_opsets; i++) {
            Onnx__OperatorSetIdProto *o = malloc(sizeof *o);
            if (!o) goto oom;
            onnx__operator_set_id_proto__init(o);
            mp->opset_import[mp->n_opset_import++] = o;
            const char *domain = i < m->n_opsets && m->opsets[i].domain ? m->opsets[i].domain : "";
            o->domain = od_enc_dup(domain, &failed);
            o->has_version = 1;
            o->version = i < m->n_opsets ? m->opsets[i].version : m->graph.opset;
            if (failed) goto oom;
        }
    }
    if (m->n_meta > 0) {
        mp->metadata_props = malloc(sizeof *mp->metadata_props * (size_t)m->n_meta);
        if (!mp->metadata_props) goto oom;
        for (int i = 0; i < m->n_meta; i++) {
            Onnx__StringStringEntryProto *kv = malloc(sizeof *kv);
            if (!kv) goto oom;
            onnx__string_string_entry_proto__init(kv);
            mp->metadata_props[mp->n_metadata_props++] = kv;
            kv->key = od_enc_dup(m->meta[i].key ? m->meta[i].key : "", &failed);
            kv->value = od_enc_dup(m->meta[i].value ? m->meta[i].value : "", &failed);
            if (failed) goto oom;
        }
    }
    mp->graph = malloc(sizeof *mp->graph);
    if (!mp->graph) goto oom;
    onnx__graph_proto__init(mp->graph);
    if ((st = od_enc_graph(&e, &m->graph, mp->graph))) goto cleanup;
    st = od_enc_pack(&mp->base, out, err);
    goto cleanup;
oom:
    st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory encoding the model");
cleanup:
    od_enc_take_back(&e);
    onnx__model_proto__free_unpacked(mp, NULL);
    return st;
}

od_status od_model_save(const od_model *m, const char *path, od_error *err) {
    od_bytes b = {0};
    od_status st = od_model_encode(m, &b, err);
    if (st) {
        od_error_prefix(err, "%s: ", path);
        return st;
    }
    st = od_file_write_atomic(path, b.data, b.len, err); /* its errors name the path */
    od_bytes_free(&b);
    return st;
}

od_status od_tensor_encode(const od_tensor *t, od_bytes *out, od_error *err) {
    od_error local;
    if (!err) err = &local;
    od_enc e = {.err = err};
    char label[OD_LABEL_SIZE];
    out->data = NULL;
    out->len = 0;
    snprintf(label, sizeof label, "tensor \"%s\"", t->name ? t->name : "");
    Onnx__TensorProto *tp = od_enc_tensor(&e, t, t->name, label);
    if (!tp) {
        od_enc_take_back(&e);
        return err->status;
    }
    od_status st = od_enc_pack(&tp->base, out, err);
    od_enc_take_back(&e);
    onnx__tensor_proto__free_unpacked(tp, NULL);
    return st;
}

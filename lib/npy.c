/* NumPy .npy files (format versions 1.0, 2.0 and 3.0), and tensor files by extension.
 *
 * Only what a teacher's inputs and outputs need: little-endian, C order, float32, float64,
 * int64, int32, uint8 and bool. The header is a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * which is parsed here by a small scanner rather than trusted to be in numpy's exact layout. */
#include "od_onnx.h"
#include "npy_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

static const char od_npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

static const struct {
    const char *code; /* descr without its byte-order character */
    od_dtype dtype;
} od_npy_types[] = {
    {"f4", OD_DTYPE_FLOAT}, {"f8", OD_DTYPE_DOUBLE}, {"i8", OD_DTYPE_INT64},
    {"i4", OD_DTYPE_INT32}, {"u1", OD_DTYPE_UINT8},  {"b1", OD_DTYPE_BOOL},
};

/* ---- header scanner ------------------------------------------------------------ */

typedef struct od_npy_scan {
    const char *p, *end;
} od_npy_scan;

static void od_npy_skip(od_npy_scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool od_npy_eat(od_npy_scan *s, char c) {
    od_npy_skip(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes (none of ours need them) into buf. */
static bool od_npy_string(od_npy_scan *s, char *buf, size_t size) {
    od_npy_skip(s);
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) return false;
    char q = *s->p++;
    size_t n = 0;
    while (s->p < s->end && *s->p != q) {
        if (*s->p == '\\' || n + 1 >= size) return false;
        buf[n++] = *s->p++;
    }
    if (s->p >= s->end) return false;
    s->p++;
    buf[n] = 0;
    return true;
}

static bool od_npy_word(od_npy_scan *s, const char *w) {
    od_npy_skip(s);
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) >= n && memcmp(s->p, w, n) == 0) {
        s->p += n;
        return true;
    }
    return false;
}

/* (), (n,), (a, b) and so on; Python 2 numpy may write 3L. */
static bool od_npy_shape(od_npy_scan *s, int *rank, int64_t *dims, bool *too_many) {
    *rank = 0;
    if (!od_npy_eat(s, '(')) return false;
    for (;;) {
        if (od_npy_eat(s, ')')) return true;
        od_npy_skip(s);
        if (s->p >= s->end || *s->p < '0' || *s->p > '9') return false;
        int64_t v = 0;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return false;
            v = v * 10 + (*s->p++ - '0');
        }
        if (s->p < s->end && *s->p == 'L') s->p++;
        if (*rank == OD_MAX_RANK) {
            *too_many = true;
            return false;
        }
        dims[(*rank)++] = v;
        if (!od_npy_eat(s, ',')) return od_npy_eat(s, ')');
    }
}

/* ---- the header, for this file's reader and dataset.c's .npz members ----------- */

od_npy_header_status od_npy_parse_header(const uint8_t *d, size_t len, od_npy_header *h) {
    memset(h, 0, sizeof *h);
    size_t hstart, hlen;
    if (len < 10 || memcmp(d, od_npy_magic, sizeof od_npy_magic) != 0) return OD_NPY_HEADER_NOT_NPY;
    h->version = d[6];
    if (d[6] == 1) {
        hstart = 10;
        hlen = (size_t)d[8] | (size_t)d[9] << 8;
    } else if ((d[6] == 2 || d[6] == 3) && len >= 12) {
        hstart = 12;
        hlen = (size_t)d[8] | (size_t)d[9] << 8 | (size_t)d[10] << 16 | (size_t)d[11] << 24;
    } else {
        return OD_NPY_HEADER_VERSION;
    }
    if (hlen > len - hstart) return OD_NPY_HEADER_TRUNCATED;
    char key[32];
    int fortran = -1;
    bool too_many = false;
    h->rank = -1;
    od_npy_scan s = {(const char *)d + hstart, (const char *)d + hstart + hlen};
    if (!od_npy_eat(&s, '{')) return OD_NPY_HEADER_MALFORMED;
    while (!od_npy_eat(&s, '}')) {
        if (!od_npy_string(&s, key, sizeof key) || !od_npy_eat(&s, ':')) return OD_NPY_HEADER_MALFORMED;
        if (strcmp(key, "descr") == 0) {
            if (!od_npy_string(&s, h->descr, sizeof h->descr)) return OD_NPY_HEADER_MALFORMED;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (od_npy_word(&s, "True"))
                fortran = 1;
            else if (od_npy_word(&s, "False"))
                fortran = 0;
            else
                return OD_NPY_HEADER_MALFORMED;
        } else if (strcmp(key, "shape") == 0) {
            if (!od_npy_shape(&s, &h->rank, h->dims, &too_many))
                return too_many ? OD_NPY_HEADER_TOO_MANY_DIMS : OD_NPY_HEADER_MALFORMED;
        } else {
            return OD_NPY_HEADER_MALFORMED; /* numpy writes exactly these three keys */
        }
        if (!od_npy_eat(&s, ',')) {
            if (!od_npy_eat(&s, '}')) return OD_NPY_HEADER_MALFORMED;
            break;
        }
    }
    if (!h->descr[0] || fortran < 0 || h->rank < 0) return OD_NPY_HEADER_MALFORMED;
    h->fortran = fortran == 1;
    h->data_offset = hstart + hlen;
    return OD_NPY_HEADER_OK;
}

/* ---- read ------------------------------------------------------------------------- */

od_status od_npy_read(const char *path, od_tensor *out, od_error *err) {
    od_status st;
    od_bytes b = {0};
    memset(out, 0, sizeof *out);
    if ((st = od_file_read(path, &b, err))) return st;
    const uint8_t *d = b.data;
    od_npy_header h;
    switch (od_npy_parse_header(d, b.len, &h)) {
    case OD_NPY_HEADER_OK: break;
    case OD_NPY_HEADER_NOT_NPY:
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: not a .npy file (no \\x93NUMPY magic)",
                          path);
        goto cleanup;
    case OD_NPY_HEADER_VERSION:
        st = od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: .npy format version %d.%d (want 1 to 3)",
                          path, d[6], d[7]);
        goto cleanup;
    case OD_NPY_HEADER_TRUNCATED:
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: truncated .npy header", path);
        goto cleanup;
    case OD_NPY_HEADER_TOO_MANY_DIMS:
        st = od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: the array has more than %d dims", path,
                          OD_MAX_RANK);
        goto cleanup;
    default:
        goto bad_header;
    }
    const char *descr = h.descr;
    int rank = h.rank;
    const int64_t *dims = h.dims;
    if (h.fortran) {
        st = od_error_set(err, OD_STATUS_UNSUPPORTED,
                          "%s: the array is in Fortran order (save it C-contiguous)", path);
        goto cleanup;
    }
    od_dtype dtype = OD_DTYPE_UNDEFINED;
    for (size_t i = 0; i < sizeof od_npy_types / sizeof *od_npy_types; i++) {
        if (strcmp(descr + 1, od_npy_types[i].code) != 0) continue;
        /* one-byte types carry '|'; wider ones must be little-endian */
        bool one = od_dtype_size(od_npy_types[i].dtype) == 1;
        if (descr[0] == '<' || descr[0] == '=' || (one && (descr[0] == '|' || descr[0] == '>')))
            dtype = od_npy_types[i].dtype;
    }
    if (dtype == OD_DTYPE_UNDEFINED) {
        st = od_error_set(err, OD_STATUS_UNSUPPORTED,
                          "%s: element type '%s' is not supported (want <f4, <f8, <i8, <i4, |u1 "
                          "or |b1)",
                          path, descr);
        goto cleanup;
    }
    int64_t count = od_dims_count(rank, dims);
    size_t esize = od_dtype_size(dtype);
    if (count < 0 || (uint64_t)count > SIZE_MAX / 2 / esize) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: the shape is too large", path);
        goto cleanup;
    }
    size_t need = (size_t)count * esize, have = b.len - h.data_offset;
    if (have != need) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                          "%s: %s: the file holds %zu bytes of data, its shape needs %zu", path,
                          have < need ? "truncated" : "trailing bytes", have, need);
        goto cleanup;
    }
    od_tensor *t = od_tensor_create("", dtype, rank, dims, err);
    if (!t) {
        st = err ? err->status : OD_STATUS_OUT_OF_MEMORY;
        od_error_prefix(err, "%s: ", path);
        goto cleanup;
    }
    if (need) memcpy(t->data, d + h.data_offset, need);
    *out = *t; /* move the contents, drop the shell */
    free(t);
    st = OD_STATUS_OK;
    goto cleanup;
bad_header:
    st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: malformed .npy header", path);
cleanup:
    od_bytes_free(&b);
    return st;
}

/* ---- write ------------------------------------------------------------------------ */

od_status od_npy_write(const char *path, const od_tensor *t, od_error *err) {
    const char *code = NULL;
    for (size_t i = 0; i < sizeof od_npy_types / sizeof *od_npy_types; i++)
        if (od_npy_types[i].dtype == t->dtype) code = od_npy_types[i].code;
    if (!code)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "%s: .npy output supports float, double, int64, int32, uint8 and "
                            "bool, not %s",
                            path, od_dtype_name(t->dtype));
    if (t->rank < 0 || t->rank > OD_MAX_RANK)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "%s: tensor rank %d", path, t->rank);
    int64_t count = od_dims_count(t->rank, t->dims);
    size_t esize = od_dtype_size(t->dtype);
    if (count < 0 || (uint64_t)count > SIZE_MAX / esize || (size_t)count * esize != t->nbytes)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "%s: tensor \"%s\" holds %zu bytes, its dims do not match", path,
                            t->name ? t->name : "", t->nbytes);

    char dict[64 + OD_MAX_RANK * 24];
    int n = snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, 'shape': (",
                     esize == 1 ? '|' : '<', code);
    for (int i = 0; i < t->rank; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%" PRId64, i ? ", " : "", t->dims[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", t->rank == 1 ? "," : "");
    /* Version 1.0; the header is padded with spaces and a newline so that the data starts on
     * a 64-byte boundary, as numpy does. */
    size_t hlen = ((10 + (size_t)n + 1 + 63) / 64) * 64 - 10;
    size_t total = 10 + hlen + t->nbytes;
    uint8_t *buf = malloc(total);
    if (!buf) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    memcpy(buf, od_npy_magic, 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (uint8_t)(hlen & 0xff);
    buf[9] = (uint8_t)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', hlen - (size_t)n - 1);
    buf[10 + hlen - 1] = '\n';
    if (t->nbytes) memcpy(buf + 10 + hlen, t->data, t->nbytes);
    od_status st = od_file_write_atomic(path, buf, total, err);
    free(buf);
    return st;
}

/* ---- by extension ------------------------------------------------------------------- */

static const char *od_ext(const char *path) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    return dot && (!slash || dot > slash) ? dot : "";
}

od_status od_tensor_file_read(const char *path, od_tensor *out, od_error *err) {
    const char *ext = od_ext(path);
    if (strcasecmp(ext, ".npy") == 0) return od_npy_read(path, out, err);
    if (strcasecmp(ext, ".pb") != 0) {
        memset(out, 0, sizeof *out);
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "%s: unknown tensor file type (want .npy or .pb)", path);
    }
    od_bytes b = {0};
    od_status st = od_file_read(path, &b, err);
    if (st) {
        memset(out, 0, sizeof *out);
        return st;
    }
    st = od_tensor_decode(b.data, b.len, out, err);
    if (st) od_error_prefix(err, "%s: ", path);
    od_bytes_free(&b);
    return st;
}

od_status od_tensor_file_write(const char *path, const od_tensor *t, od_error *err) {
    const char *ext = od_ext(path);
    if (strcasecmp(ext, ".npy") == 0) return od_npy_write(path, t, err);
    if (strcasecmp(ext, ".pb") != 0)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "%s: unknown tensor file type (want .npy or .pb)", path);
    od_bytes b = {0};
    od_status st = od_tensor_encode(t, &b, err);
    if (st) {
        od_error_prefix(err, "%s: ", path);
        return st;
    }
    st = od_file_write_atomic(path, b.data, b.len, err);
    od_bytes_free(&b);
    return st;
}

/* Helpers shared by the op files: attributes, constant inputs, shape checks, XNNPACK status. */
#include "op.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xnnpack.h>

od_status od_node_error(od_error *err, od_status status, const od_node *n, const char *fmt, ...) {
    if (!err) return status;
    char label[300], msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    od_error_set(err, status, "%s", msg);
    if (n) od_error_prefix(err, "%s: ", od_node_label(n, label, sizeof label));
    return status;
}

int64_t od_attr_int(const od_node *n, const char *name, int64_t dflt) {
    const od_attr *a = od_node_attr(n, name);
    return a && a->type == OD_ATTR_INT ? a->i : dflt;
}

float od_attr_float(const od_node *n, const char *name, float dflt) {
    const od_attr *a = od_node_attr(n, name);
    if (a && a->type == OD_ATTR_FLOAT) return a->f;
    if (a && a->type == OD_ATTR_INT) return (float)a->i;
    return dflt;
}

od_status od_attr_auto_pad(const od_node *n, od_auto_pad *out, od_error *err) {
    static const char *const names[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"};
    char buf[32];
    const char *ap = od_attr_string(n, "auto_pad", "NOTSET", buf, sizeof buf);
    for (int i = 0; i < 4; i++)
        if (strcmp(ap, names[i]) == 0) {
            *out = (od_auto_pad)i;
            return OD_STATUS_OK;
        }
    return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "auto_pad \"%s\" is not one ONNX defines", ap);
}

void od_pad_split(od_auto_pad ap, int64_t total, int64_t *begin, int64_t *end) {
    int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
    *begin = ap == OD_AUTO_PAD_SAME_UPPER ? half : total - half;
    *end = total - *begin;
}

bool od_auto_pad_window(od_auto_pad ap, int64_t in, int64_t k, int64_t stride, int64_t *begin,
                        int64_t *end) {
    if (ap == OD_AUTO_PAD_VALID) *begin = *end = 0;
    if (ap != OD_AUTO_PAD_SAME_UPPER && ap != OD_AUTO_PAD_SAME_LOWER) return false;
    int64_t out = (in + stride - 1) / stride, total = (out - 1) * stride + k - in;
    od_pad_split(ap, total > 0 ? total : 0, begin, end);
    return true;
}

const char *od_attr_string(const od_node *n, const char *name, const char *dflt, char *buf,
                           size_t size) {
    const od_attr *a = od_node_attr(n, name);
    if (!a || a->type != OD_ATTR_STRING) return dflt;
    size_t len = a->s.len < size - 1 ? a->s.len : size - 1;
    if (len) memcpy(buf, a->s.data, len);
    buf[len] = 0;
    return buf;
}

int od_attr_ints(const od_node *n, const char *name, int64_t *out, int max) {
    const od_attr *a = od_node_attr(n, name);
    if (!a || a->type != OD_ATTR_INTS) return -1;
    int count = (int)a->count;
    for (int i = 0; i < count && i < max; i++) out[i] = a->ints[i];
    return count;
}

int od_attr_floats(const od_node *n, const char *name, float *out, int max) {
    const od_attr *a = od_node_attr(n, name);
    if (!a || a->type != OD_ATTR_FLOATS) return -1;
    int count = (int)a->count;
    for (int i = 0; i < count && i < max; i++) out[i] = a->floats[i];
    return count;
}

int od_const_ints(const od_shape_info *in, int64_t *out, int max) {
    if (!in || !in->constant) return -1;
    const od_tensor *t = in->constant;
    int64_t n = od_tensor_count(t);
    if (n < 0 || n > max) return -1;
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == OD_DTYPE_INT64) out[i] = ((const int64_t *)t->data)[i];
        else if (t->dtype == OD_DTYPE_INT32) out[i] = ((const int32_t *)t->data)[i];
        else return -1;
    }
    return (int)n;
}

float od_const_float(const od_shape_info *in, float dflt) {
    if (!in || !in->constant || od_tensor_count(in->constant) != 1) return dflt;
    const od_tensor *t = in->constant;
    switch (t->dtype) {
    case OD_DTYPE_FLOAT: return *(const float *)t->data;
    case OD_DTYPE_DOUBLE: return (float)*(const double *)t->data;
    case OD_DTYPE_INT64: return (float)*(const int64_t *)t->data;
    case OD_DTYPE_INT32: return (float)*(const int32_t *)t->data;
    default: return dflt;
    }
}

od_status od_infer_expect(od_infer_ctx *c, int i, int min_rank, int max_rank) {
    if (i >= c->n_in || !c->in[i])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "input %d is missing", i);
    const od_shape_info *s = c->in[i];
    if (s->dtype != OD_DTYPE_FLOAT)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "input %d has element type %s; only float is supported", i,
                             od_dtype_name(s->dtype));
    if (s->rank < min_rank || s->rank > max_rank)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                             "input %d has rank %d; expected %d to %d", i, s->rank, min_rank,
                             max_rank);
    return OD_STATUS_OK;
}

void od_infer_same(od_infer_ctx *c, int out, int in) {
    c->out[out].dtype = c->in[in]->dtype;
    c->out[out].rank = c->in[in]->rank;
    memcpy(c->out[out].dims, c->in[in]->dims, sizeof c->out[out].dims);
}

od_status od_infer_two_alike(od_infer_ctx *c) {
    if (c->n_in != 2 || !c->in[0] || !c->in[1])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs two inputs");
    if (c->in[0]->dtype != c->in[1]->dtype)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "inputs have element types %s and %s", od_dtype_name(c->in[0]->dtype),
                             od_dtype_name(c->in[1]->dtype));
    return OD_STATUS_OK;
}

od_status od_infer_broadcast(od_infer_ctx *c) {
    int rank = 0;
    for (int i = 0; i < c->n_in; i++)
        if (c->in[i] && c->in[i]->rank > rank) rank = c->in[i]->rank;
    int64_t dims[OD_MAX_RANK];
    for (int d = 0; d < rank; d++) dims[d] = 1;
    for (int i = 0; i < c->n_in; i++) {
        const od_shape_info *s = c->in[i];
        if (!s) continue;
        for (int d = 0; d < s->rank; d++) {
            int64_t have = dims[rank - s->rank + d], want = s->dims[d];
            if (want == have || want == 1) continue;
            if (have == 1) {
                dims[rank - s->rank + d] = want;
                continue;
            }
            char a[128] = "", b[128] = "";
            for (int k = 0; k < c->in[0]->rank; k++)
                snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", k ? "," : "",
                         (long long)c->in[0]->dims[k]);
            for (int k = 0; k < s->rank; k++)
                snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", k ? "," : "",
                         (long long)s->dims[k]);
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                 "shapes [%s] and [%s] do not broadcast", a, b);
        }
    }
    c->out[0].dtype = c->in[0]->dtype;
    c->out[0].rank = rank;
    memcpy(c->out[0].dims, dims, sizeof(int64_t) * rank);
    return OD_STATUS_OK;
}

int64_t od_buf_count(const od_buf *b) { return od_dims_count(b->rank, b->dims); }

void od_phys_dims(int rank, const int64_t *dims, bool channels_last, int64_t *out) {
    if (channels_last && rank >= 3) {
        out[0] = dims[0];
        for (int d = 2; d < rank; d++) out[d - 1] = dims[d];
        out[rank - 1] = dims[1];
    } else {
        memcpy(out, dims, sizeof(int64_t) * (size_t)rank);
    }
}

void od_buf_phys_dims(const od_buf *b, int64_t *out) {
    od_phys_dims(b->rank, b->dims, b->layout == OD_LAYOUT_CHANNELS_LAST, out);
}

typedef struct transpose_args {
    const void *src;
    void *dst;
    size_t rows, cols; /* src is [rows, cols] per batch item, dst [cols, rows] */
    size_t span, spans; /* columns per task (a multiple of the tile), tasks per batch item */
    bool add;
} transpose_args;

#define TRANSPOSE_TILE 32
/* Elements per task at least: a batch-1 input is still split across threads. */
#define TRANSPOSE_TASK 4096

/* A span of columns of one batch item, in 32x32 tiles, so that both sides stay in cache. Copies
 * move bits (int32 too); add sums floats. Each element is written by one task only. */
static void transpose_task(void *ctx, size_t t) {
    const transpose_args *a = ctx;
    const size_t B = TRANSPOSE_TILE, rows = a->rows, cols = a->cols, plane = rows * cols;
    const size_t n = t / a->spans, first = t % a->spans * a->span;
    const size_t last = first + a->span < cols ? first + a->span : cols;
    const uint32_t *src = (const uint32_t *)a->src + n * plane;
    uint32_t *dst = (uint32_t *)a->dst + n * plane;
    const float *fsrc = (const float *)a->src + n * plane;
    float *fdst = (float *)a->dst + n * plane;
    if (rows == 3 && !a->add) { /* an RGB image to channels-last: three streams in, one out */
        const uint32_t *s0 = src, *s1 = src + cols, *s2 = src + 2 * cols;
        for (size_t c = first; c < last; c++) {
            dst[3 * c] = s0[c];
            dst[3 * c + 1] = s1[c];
            dst[3 * c + 2] = s2[c];
        }
        return;
    }
    for (size_t r0 = 0; r0 < rows; r0 += B)
        for (size_t c0 = first; c0 < last; c0 += B) {
            size_t r1 = r0 + B < rows ? r0 + B : rows, c1 = c0 + B < last ? c0 + B : last;
            if (a->add) {
                for (size_t r = r0; r < r1; r++)
                    for (size_t c = c0; c < c1; c++) fdst[c * rows + r] += fsrc[r * cols + c];
            } else {
                for (size_t r = r0; r < r1; r++)
                    for (size_t c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c];
            }
        }
}

void od_relayout(const void *src, void *dst, int rank, const int64_t *dims, bool to_last,
                 size_t esize, bool add, pthreadpool_t pool) {
    size_t batch = (size_t)dims[0], c = (size_t)dims[1], s = 1;
    for (int d = 2; d < rank; d++) s *= (size_t)dims[d];
    if (esize == 4) {
        transpose_args a = {src, dst, to_last ? c : s, to_last ? s : c, 0, 0, add};
        if (!a.rows || !a.cols) return;
        size_t tiles = (TRANSPOSE_TASK + a.rows * TRANSPOSE_TILE - 1) / (a.rows * TRANSPOSE_TILE);
        a.span = (pool ? tiles : (a.cols + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE) * TRANSPOSE_TILE;
        a.spans = (a.cols + a.span - 1) / a.span;
        od_parallel_for(pool, batch * a.spans, transpose_task, &a);
        return;
    }
    const uint8_t *in = src;
    uint8_t *out = dst;
    if (esize == 1) { /* int8 activations of quantized plans: a plain transpose per sample */
        size_t rows = to_last ? c : s, cols = to_last ? s : c;
        for (size_t n = 0; n < batch; n++) {
            const uint8_t *a = in + n * c * s;
            uint8_t *b = out + n * c * s;
            for (size_t r = 0; r < rows; r++)
                for (size_t k = 0; k < cols; k++) b[k * rows + r] = a[r * cols + k];
        }
        return;
    }
    for (size_t n = 0; n < batch; n++)
        for (size_t ci = 0; ci < c; ci++)
            for (size_t si = 0; si < s; si++) {
                size_t plain = (n * c + ci) * s + si, last = (n * s + si) * c + ci;
                memcpy(out + esize * (to_last ? last : plain), in + esize * (to_last ? plain : last),
                       esize);
            }
}

#define HUGE_PAGE ((size_t)2 << 20)
void *od_alloc_large(size_t bytes) {
    static int plain = -1; /* OD_NO_HUGEPAGES, read once; a race only reads it twice */
    if (plain < 0) {
        const char *e = getenv("OD_NO_HUGEPAGES");
        plain = e && *e && strcmp(e, "0") != 0;
    }
    bool huge = !plain && bytes >= HUGE_PAGE;
    void *p = NULL;
    if (posix_memalign(&p, huge ? HUGE_PAGE : 64, bytes ? bytes : 1)) return NULL;
    if (huge) (void)madvise(p, bytes / HUGE_PAGE * HUGE_PAGE, MADV_HUGEPAGE); /* a hint: ignore failure */
    return p;
}

void *od_calloc_large(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = od_alloc_large(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

static void *xnn_alloc(void *ctx, size_t size) { return (void)ctx, malloc(size); }
static void *xnn_realloc(void *ctx, void *p, size_t size) { return (void)ctx, realloc(p, size); }
static void xnn_free(void *ctx, void *p) { (void)ctx, free(p); }
static void *xnn_aligned_alloc(void *ctx, size_t alignment, size_t size) {
    (void)ctx;
    if (size >= HUGE_PAGE && alignment <= 64) return od_alloc_large(size);
    void *p = NULL;
    return posix_memalign(&p, alignment < sizeof(void *) ? sizeof(void *) : alignment, size ? size : 1) ? NULL : p;
}

static pthread_once_t xnn_once = PTHREAD_ONCE_INIT;
static enum xnn_status xnn_init_status;
void openblas_set_num_threads(int); /* cblas.h declares it; only this is needed here */
/* We split work across threads ourselves; OpenBLAS threads on top would oversubscribe. */
static void xnn_init(void) {
    static const struct xnn_allocator allocator = {NULL, xnn_alloc, xnn_realloc, xnn_free, xnn_aligned_alloc, xnn_free};
    xnn_init_status = xnn_initialize(&allocator);
    openblas_set_num_threads(1);
}

od_status od_backend_init(od_error *err) {
    pthread_once(&xnn_once, xnn_init);
    if (xnn_init_status != xnn_status_success)
        return od_error_set(err, OD_STATUS_BACKEND, "XNNPACK failed to initialise: %s",
                            od_xnn_status_name(xnn_init_status));
    return OD_STATUS_OK;
}

const char *od_xnn_status_name(int status) {
    switch (status) {
    case xnn_status_success: return "success";
    case xnn_status_uninitialized: return "XNNPACK is not initialized";
    case xnn_status_invalid_parameter: return "invalid parameter";
    case xnn_status_invalid_state: return "invalid state";
    case xnn_status_unsupported_parameter: return "unsupported parameter";
    case xnn_status_unsupported_hardware: return "unsupported hardware";
    case xnn_status_out_of_memory: return "out of memory";
    default: return "unknown XNNPACK status";
    }
}

od_status od_xnn_check(int status, od_error *err, const od_node *n, const char *what) {
    if (status == xnn_status_success) return OD_STATUS_OK;
    return od_node_error(err,
                         status == xnn_status_out_of_memory ? OD_STATUS_OUT_OF_MEMORY
                         : status == xnn_status_unsupported_parameter ? OD_STATUS_UNSUPPORTED
                                                                      : OD_STATUS_BACKEND,
                         n, "XNNPACK %s failed: %s", what, od_xnn_status_name(status));
}

void od_step_clamp(const od_step *s, float *data, int64_t count) {
    if (s->act_min == -INFINITY && s->act_max == INFINITY) return;
    for (int64_t i = 0; i < count; i++)
        data[i] = data[i] < s->act_min ? s->act_min : data[i] > s->act_max ? s->act_max : data[i];
}

int od_axis(int64_t axis, int rank) {
    if (axis < -rank || axis >= rank) return -1;
    return (int)(axis < 0 ? axis + rank : axis);
}

void od_parallel_for(pthreadpool_t pool, size_t n, void (*fn)(void *, size_t), void *ctx) {
    if (!pool || n < 2) {
        for (size_t i = 0; i < n; i++) fn(ctx, i);
        return;
    }
    pthreadpool_parallelize_1d(pool, (pthreadpool_task_1d_t)fn, ctx, n, 0);
}

bool od_per_sample_always(const od_node *n, int rank) { return true; }

bool od_per_sample_axis(const od_node *n, int rank, int64_t dflt) {
    return od_axis(od_attr_int(n, "axis", dflt), rank) > 0;
}

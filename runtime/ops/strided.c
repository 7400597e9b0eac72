/* n-d strided copies and shape checks shared by the data-movement ops (see strided.h). */
#include "strided.h"

#include <stdlib.h>
#include <string.h>

#define TILE 32
#define CHUNK 16384 /* elements per task when a copy is split across threads */

void od_strides(int rank, const int64_t *dims, int64_t *strides) {
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        strides[d] = s;
        s *= dims[d];
    }
}

typedef struct copy_job {
    char *dst;
    const char *src;
    size_t esize;
    int rank, n_outer; /* the last (rank - n_outer) dims are the inner loop: a row or a tile */
    int64_t dims[OD_STRIDED_MAX_RANK], ds[OD_STRIDED_MAX_RANK], ss[OD_STRIDED_MAX_RANK];
    int64_t outer, per_task;
} copy_job;

/* memcpy with a constant size compiles to one load and store, and says nothing of types. */
#define COPY_ROW(E)                                                                                \
    for (int64_t i = 0; i < n; i++) memcpy(dst + i * ds * (E), src + i * ss * (E), (E))

static void copy_row(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, size_t e) {
    if (ds == 1 && ss == 1) {
        memcpy(dst, src, (size_t)n * e);
        return;
    }
    switch (e) {
    case 1: COPY_ROW(1); break;
    case 2: COPY_ROW(2); break;
    case 4: COPY_ROW(4); break;
    case 8: COPY_ROW(8); break;
    default: COPY_ROW(e); break;
    }
}

/* A transpose-like pair of dims: a is contiguous in src, b in dst. */
#define COPY_TILE(E)                                                                               \
    for (int64_t a0 = 0; a0 < na; a0 += TILE)                                                      \
        for (int64_t b0 = 0; b0 < nb; b0 += TILE) {                                                \
            int64_t a1 = a0 + TILE < na ? a0 + TILE : na, b1 = b0 + TILE < nb ? b0 + TILE : nb;    \
            for (int64_t a = a0; a < a1; a++)                                                      \
                for (int64_t b = b0; b < b1; b++)                                                  \
                    memcpy(dst + (a * dsa + b) * (E), src + (a + b * ssb) * (E), (E));             \
        }

static void copy_tile(char *dst, int64_t dsa, const char *src, int64_t ssb, int64_t na,
                      int64_t nb, size_t e) {
    switch (e) {
    case 1: COPY_TILE(1); break;
    case 2: COPY_TILE(2); break;
    case 4: COPY_TILE(4); break;
    case 8: COPY_TILE(8); break;
    default: COPY_TILE(e); break;
    }
}

static void copy_inner(const copy_job *j, char *dst, const char *src) {
    int r = j->rank;
    if (r - j->n_outer == 2)
        copy_tile(dst, j->ds[r - 2], src, j->ss[r - 1], j->dims[r - 2], j->dims[r - 1], j->esize);
    else
        copy_row(dst, j->ds[r - 1], src, j->ss[r - 1], j->dims[r - 1], j->esize);
}

/* Outer indices [first, end). */
static void copy_range(const copy_job *j, int64_t first, int64_t end) {
    int64_t idx[OD_STRIDED_MAX_RANK], od = 0, os = 0, rem = first;
    for (int d = j->n_outer - 1; d >= 0; d--) {
        idx[d] = rem % j->dims[d];
        rem /= j->dims[d];
        od += idx[d] * j->ds[d];
        os += idx[d] * j->ss[d];
    }
    int64_t e = (int64_t)j->esize;
    for (int64_t o = first; o < end; o++) {
        copy_inner(j, j->dst + od * e, j->src + os * e);
        for (int d = j->n_outer - 1; d >= 0; d--) { /* next outer index */
            od += j->ds[d];
            os += j->ss[d];
            if (++idx[d] < j->dims[d]) break;
            od -= j->ds[d] * j->dims[d];
            os -= j->ss[d] * j->dims[d];
            idx[d] = 0;
        }
    }
}

static void copy_task(void *ctx, size_t t) {
    const copy_job *j = ctx;
    int64_t first = (int64_t)t * j->per_task, end = first + j->per_task;
    copy_range(j, first, end < j->outer ? end : j->outer);
}

void od_copy_strided(void *dst, const int64_t *dst_stride, const void *src,
                     const int64_t *src_stride, int rank, const int64_t *dims, size_t esize,
                     pthreadpool_t pool) {
    copy_job j = {.dst = dst, .src = src, .esize = esize};
    int r = 0;
    for (int d = 0; d < rank; d++) {
        if (dims[d] == 0) return;
        if (dims[d] == 1) continue;
        if (r > 0 && j.ds[r - 1] == dst_stride[d] * dims[d] &&
            j.ss[r - 1] == src_stride[d] * dims[d]) { /* continues the previous dim: merge */
            j.dims[r - 1] *= dims[d];
            j.ds[r - 1] = dst_stride[d];
            j.ss[r - 1] = src_stride[d];
            continue;
        }
        j.dims[r] = dims[d];
        j.ds[r] = dst_stride[d];
        j.ss[r] = src_stride[d];
        r++;
    }
    if (r == 0) {
        memcpy(dst, src, esize);
        return;
    }
    j.rank = r;
    j.n_outer = r - 1;
    /* A transpose: dst contiguous in the last dim, src in another. Move that one next to last
     * (the order of the outer loops is free) and copy the pair in tiles. */
    if (r >= 2 && j.ds[r - 1] == 1 && j.ss[r - 1] != 1 && j.dims[r - 1] >= 4) {
        for (int d = r - 2; d >= 0; d--) {
            if (j.ss[d] != 1 || j.dims[d] < 4) continue;
            int64_t t;
#define SWAP(a, b) (t = (a), (a) = (b), (b) = t)
            SWAP(j.dims[d], j.dims[r - 2]);
            SWAP(j.ds[d], j.ds[r - 2]);
            SWAP(j.ss[d], j.ss[r - 2]);
#undef SWAP
            j.n_outer = r - 2;
            break;
        }
    }
    int64_t inner = 1;
    j.outer = 1;
    for (int d = 0; d < j.n_outer; d++) j.outer *= j.dims[d];
    for (int d = j.n_outer; d < r; d++) inner *= j.dims[d];
    if (!pool || j.outer < 2 || j.outer * inner < 4 * CHUNK) {
        copy_range(&j, 0, j.outer);
        return;
    }
    j.per_task = inner >= CHUNK ? 1 : CHUNK / inner;
    od_parallel_for(pool, (size_t)((j.outer + j.per_task - 1) / j.per_task), copy_task, &j);
}

od_status od_expect_sized(od_infer_ctx *c, int i) {
    if (i >= c->n_in || !c->in[i])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "input %d is missing", i);
    if (od_dtype_size(c->in[i]->dtype) == 0)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "input %d has element type %s, which is not supported", i,
                             od_dtype_name(c->in[i]->dtype));
    return OD_STATUS_OK;
}

od_status od_const_ints_input(od_infer_ctx *c, int i, const char *what, int64_t *out, int max,
                              int *n_out) {
    const od_shape_info *s = i < c->n_in ? c->in[i] : NULL;
    if (!s) return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "%s is missing", what);
    if (s->dtype != OD_DTYPE_INT64 && s->dtype != OD_DTYPE_INT32)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "%s has element type %s; expected int64", what,
                             od_dtype_name(s->dtype));
    if (!s->constant)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "%s must be a constant (or fold to one): output shapes are fixed "
                             "when the plan is made",
                             what);
    if (s->rank > 1)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "%s must be 1-D, not rank %d",
                             what, s->rank);
    int n = od_const_ints(s, out, max);
    if (n < 0)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "%s has more than %d values", what,
                             max);
    *n_out = n;
    return OD_STATUS_OK;
}

od_status od_normalize_axes(od_infer_ctx *c, int64_t *axes, int n, int rank) {
    for (int i = 0; i < n; i++) {
        int a = od_axis(axes[i], rank);
        if (a < 0)
            return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                                 "axis %lld is out of range for rank %d", (long long)axes[i], rank);
        axes[i] = a;
        for (int k = 0; k < i; k++)
            if (axes[k] == a)
                return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                                     "axis %d is given twice", a);
    }
    return OD_STATUS_OK;
}

void *od_step_state_with_shapes(od_step *s, size_t size, od_step_shapes *sh, od_error *err) {
    int n = s->n_in < OD_STEP_MAX_IN ? s->n_in : OD_STEP_MAX_IN;
    for (int i = 0; i < n; i++) {
        sh->in[i] = NULL;
        if (!s->in[i]) continue;
        sh->info[i] = (od_shape_info){.dtype = s->in[i]->dtype, .rank = s->in[i]->rank,
                                      .constant = s->in[i]->constant};
        memcpy(sh->info[i].dims, s->in[i]->dims, sizeof sh->info[i].dims);
        sh->in[i] = &sh->info[i];
    }
    int n_out = s->n_out < OD_STEP_MAX_OUT ? s->n_out : OD_STEP_MAX_OUT;
    sh->c = (od_infer_ctx){s->node, s->opset, n, n_out, sh->in, sh->out, NULL, err};
    s->state = calloc(1, size);
    if (!s->state) od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return s->state;
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float od_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31, man = h & 1023;
    if (exp == 31) return bits_float(sign | 0x7f800000u | (man << 13)); /* inf, nan */
    if (exp == 0) {                                                     /* zero, subnormal */
        float v = (float)man * (1.0f / 16777216.0f);                    /* man * 2^-24 */
        return sign ? -v : v;
    }
    return bits_float(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t od_float_to_half(float f) {
    uint32_t u = float_bits(f), sign = (u >> 16) & 0x8000, abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf stays inf, nan stays a quiet nan */
        return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 | ((abs >> 13) & 0x3ff) : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds past 65504 */
    if (abs < 0x38800000u) { /* below 2^-14: subnormal half, in units of 2^-24 */
        float v = bits_float(abs) * 16777216.0f;
        uint32_t q = (uint32_t)v;
        float rest = v - (float)q;
        if (rest > 0.5f || (rest == 0.5f && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = ((abs >> 13) - (112u << 10)), rest = abs & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; /* may carry into the exponent */
    return (uint16_t)(sign | h);
}

float od_bfloat_to_float(uint16_t b) { return bits_float((uint32_t)b << 16); }

uint16_t od_float_to_bfloat(float f) { return (uint16_t)(float_bits(f) >> 16); }

/* ---- numeric conversions ------------------------------------------------------------ */

bool od_integral(od_dtype t) {
    switch (t) {
    case OD_DTYPE_UINT8: case OD_DTYPE_INT8: case OD_DTYPE_UINT16: case OD_DTYPE_INT16:
    case OD_DTYPE_INT32: case OD_DTYPE_INT64: case OD_DTYPE_UINT32: case OD_DTYPE_UINT64:
    case OD_DTYPE_BOOL: return true;
    default: return false;
    }
}

bool od_numeric(od_dtype t) {
    return od_integral(t) || t == OD_DTYPE_FLOAT || t == OD_DTYPE_DOUBLE ||
           t == OD_DTYPE_FLOAT16 || t == OD_DTYPE_BFLOAT16;
}

#define LOAD(T, EXPR)                                                                              \
    do {                                                                                           \
        const T *x = src;                                                                          \
        for (int64_t i = 0; i < n; i++) dst[i] = (EXPR);                                           \
    } while (0)

void od_load_doubles(const void *src, od_dtype t, int64_t n, double *dst) {
    switch (t) {
    case OD_DTYPE_FLOAT: LOAD(float, x[i]); break;
    case OD_DTYPE_DOUBLE: LOAD(double, x[i]); break;
    case OD_DTYPE_FLOAT16: LOAD(uint16_t, od_half_to_float(x[i])); break;
    case OD_DTYPE_BFLOAT16: LOAD(uint16_t, od_bfloat_to_float(x[i])); break;
    case OD_DTYPE_UINT64: LOAD(uint64_t, (double)x[i]); break;
    default:
        if (!od_integral(t)) return;
        for (int64_t k = 0; k < n; k += 256) { /* through int64, a block at a time */
            int64_t tmp[256], m = n - k < 256 ? n - k : 256;
            od_load_int64s((const char *)src + k * od_dtype_size(t), t, m, tmp);
            for (int64_t i = 0; i < m; i++) dst[k + i] = (double)tmp[i];
        }
    }
}

void od_load_int64s(const void *src, od_dtype t, int64_t n, int64_t *dst) {
    switch (t) {
    case OD_DTYPE_UINT8: LOAD(uint8_t, x[i]); break;
    case OD_DTYPE_BOOL: LOAD(uint8_t, x[i] != 0); break;
    case OD_DTYPE_INT8: LOAD(int8_t, x[i]); break;
    case OD_DTYPE_UINT16: LOAD(uint16_t, x[i]); break;
    case OD_DTYPE_INT16: LOAD(int16_t, x[i]); break;
    case OD_DTYPE_INT32: LOAD(int32_t, x[i]); break;
    case OD_DTYPE_UINT32: LOAD(uint32_t, x[i]); break;
    case OD_DTYPE_INT64: LOAD(int64_t, x[i]); break;
    case OD_DTYPE_UINT64: LOAD(uint64_t, (int64_t)x[i]); break;
    default: break;
    }
}

#define STORE(T, EXPR)                                                                             \
    do {                                                                                           \
        T *y = dst;                                                                                \
        for (int64_t i = 0; i < n; i++) y[i] = (EXPR);                                             \
    } while (0)

static int64_t double_to_int64(double v) {
    return v >= -9223372036854775808.0 && v < 9223372036854775808.0 ? (int64_t)v : INT64_MIN;
}

void od_store_doubles(const double *src, int64_t n, void *dst, od_dtype t) {
    switch (t) {
    case OD_DTYPE_FLOAT: STORE(float, (float)src[i]); break;
    case OD_DTYPE_DOUBLE: STORE(double, src[i]); break;
    case OD_DTYPE_FLOAT16: STORE(uint16_t, od_float_to_half((float)src[i])); break;
    case OD_DTYPE_BFLOAT16: STORE(uint16_t, od_float_to_bfloat((float)src[i])); break;
    case OD_DTYPE_BOOL: STORE(uint8_t, src[i] != 0); break;
    case OD_DTYPE_UINT64:
        STORE(uint64_t, src[i] >= 9223372036854775808.0 && src[i] < 18446744073709551616.0
                            ? (uint64_t)src[i]
                            : (uint64_t)double_to_int64(src[i]));
        break;
    default:
        if (!od_integral(t)) return;
        for (int64_t k = 0; k < n; k += 256) {
            int64_t tmp[256], m = n - k < 256 ? n - k : 256;
            for (int64_t i = 0; i < m; i++) tmp[i] = double_to_int64(src[k + i]);
            od_store_int64s(tmp, m, (char *)dst + k * od_dtype_size(t), t);
        }
    }
}

void od_store_int64s(const int64_t *src, int64_t n, void *dst, od_dtype t) {
    switch (t) {
    case OD_DTYPE_UINT8: STORE(uint8_t, (uint8_t)src[i]); break;
    case OD_DTYPE_BOOL: STORE(uint8_t, src[i] != 0); break;
    case OD_DTYPE_INT8: STORE(int8_t, (int8_t)src[i]); break;
    case OD_DTYPE_UINT16: STORE(uint16_t, (uint16_t)src[i]); break;
    case OD_DTYPE_INT16: STORE(int16_t, (int16_t)src[i]); break;
    case OD_DTYPE_INT32: STORE(int32_t, (int32_t)src[i]); break;
    case OD_DTYPE_UINT32: STORE(uint32_t, (uint32_t)src[i]); break;
    case OD_DTYPE_INT64: STORE(int64_t, src[i]); break;
    case OD_DTYPE_UINT64: STORE(uint64_t, (uint64_t)src[i]); break;
    default: break;
    }
}

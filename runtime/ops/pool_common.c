/* Pool attributes, output sizes and the generic pooling loop (see pool_common.h). */
#include "pool_common.h"
#include "../train_internal.h"

#include <stdlib.h>

#include <math.h>
#include <string.h>

#define CHUNK 4096 /* output pixels times channels per task */

static od_status read_ints(const od_node *n, const char *name, int count, int64_t dflt,
                           int64_t *out, od_error *err) {
    int64_t v[2 * OD_POOL_MAX_SPATIAL];
    int k = od_attr_ints(n, name, v, 2 * OD_POOL_MAX_SPATIAL);
    if (k < 0) {
        for (int i = 0; i < count; i++) out[i] = dflt;
        return OD_STATUS_OK;
    }
    if (k != count)
        return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "%s has %d values, expected %d",
                             name, k, count);
    memcpy(out, v, sizeof(int64_t) * count);
    return OD_STATUS_OK;
}

od_status od_pool_read(const od_node *n, int64_t opset, bool is_max, int rank, const int64_t *x,
                       od_pool *p, od_error *err) {
    memset(p, 0, sizeof *p);
    int sp = rank - 2;
    p->is_max = is_max;
    p->sp = sp;
    p->batch = x[0];
    p->channels = x[1];
    memcpy(p->in, x + 2, sizeof(int64_t) * sp);
    if (od_attr_ints(n, "kernel_shape", NULL, 0) < 0)
        return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "needs kernel_shape");
    int64_t pads[2 * OD_POOL_MAX_SPATIAL];
    od_status st = read_ints(n, "kernel_shape", sp, 1, p->kernel, err);
    if (!st) st = read_ints(n, "strides", sp, 1, p->stride, err);
    if (!st) st = read_ints(n, "dilations", sp, 1, p->dilation, err);
    if (!st) st = read_ints(n, "pads", 2 * sp, 0, pads, err);
    if (st) return st;
    p->count_include_pad = !is_max && od_attr_int(n, "count_include_pad", 0) != 0;
    bool ceil_mode = od_attr_int(n, "ceil_mode", 0) != 0;
    for (int d = 0; d < sp; d++) {
        if (!is_max && p->dilation[d] != 1)
            return od_node_error(err, OD_STATUS_UNSUPPORTED, n,
                                 "AveragePool with dilations is not supported");
        if (p->kernel[d] < 1 || p->stride[d] < 1 || p->dilation[d] < 1 || pads[d] < 0 ||
            pads[sp + d] < 0 || p->kernel[d] > INT32_MAX || p->stride[d] > INT32_MAX ||
            p->dilation[d] > INT32_MAX || pads[d] > INT32_MAX || pads[sp + d] > INT32_MAX)
            return od_node_error(err, OD_STATUS_INVALID_MODEL, n,
                                 "kernel_shape, strides and dilations must be positive, pads "
                                 "not negative (and all below 2^31)");
        p->pad_begin[d] = pads[d];
        p->pad_end[d] = pads[sp + d];
    }
    od_auto_pad ap;
    od_status ap_status = od_attr_auto_pad(n, &ap, err);
    if (ap_status) return ap_status;
    bool valid = ap == OD_AUTO_PAD_VALID;
    for (int d = 0; d < sp; d++) {
        int64_t in = p->in[d], k = p->dilation[d] * (p->kernel[d] - 1) + 1, s = p->stride[d];
        if (od_auto_pad_window(ap, in, k, s, &p->pad_begin[d], &p->pad_end[d])) {
            p->out[d] = (in + s - 1) / s;
            continue;
        }
        int64_t span = in + p->pad_begin[d] + p->pad_end[d] - k;
        if (span < 0)
            return od_node_error(err, OD_STATUS_SHAPE, n,
                                 "the window (%lld) is larger than the padded input (%lld) on "
                                 "spatial dim %d",
                                 (long long)k, (long long)(span + k), d);
        p->out[d] = (ceil_mode && !valid ? span + s - 1 : span) / s + 1;
        /* a last window starting in the end padding is dropped (PyTorch and later ONNX) */
        if (ceil_mode && p->out[d] > 1 && (p->out[d] - 1) * s >= in + p->pad_begin[d]) p->out[d]--;
    }
    return OD_STATUS_OK;
}

void od_pool_global(bool is_max, int rank, const int64_t *x, od_pool *p) {
    memset(p, 0, sizeof *p);
    p->is_max = is_max;
    p->sp = rank - 2;
    p->batch = x[0];
    p->channels = x[1];
    for (int d = 0; d < p->sp; d++) {
        p->in[d] = p->kernel[d] = x[2 + d];
        p->out[d] = p->stride[d] = p->dilation[d] = 1;
    }
}

od_status od_pool_infer(od_infer_ctx *c, bool is_max, bool global) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    const od_shape_info *x = c->in[0];
    od_dtype t = x->dtype;
    bool typed = t == OD_DTYPE_FLOAT || t == OD_DTYPE_DOUBLE ||
                 (is_max && (t == OD_DTYPE_INT8 || t == OD_DTYPE_UINT8));
    if (!typed)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "element type %s is not supported", od_dtype_name(t));
    if (x->rank < 3)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                             "input has rank %d; expected [N, C, spatial...]", x->rank);
    for (int k = 1; k < c->n_out; k++)
        if (c->node->outputs[k] >= 0)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "output %d (Indices) is not supported", k);
    od_pool p;
    if (global) {
        od_pool_global(is_max, x->rank, x->dims, &p);
    } else {
        od_status st = od_pool_read(c->node, c->opset, is_max, x->rank, x->dims, &p, c->err);
        if (st) return st;
    }
    od_shape_info *o = &c->out[0];
    *o = (od_shape_info){.dtype = t, .rank = x->rank};
    o->dims[0] = x->dims[0];
    o->dims[1] = x->dims[1];
    memcpy(o->dims + 2, p.out, sizeof(int64_t) * p.sp);
    return OD_STATUS_OK;
}

od_status od_pool_state_create(od_step *s, bool is_max, bool global, od_pool_state **out,
                               od_error *err) {
    const od_buf *x = s->in[0];
    od_pool_state *ps = calloc(1, sizeof *ps);
    if (!ps) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = *out = ps;
    if (!global) return od_pool_read(s->node, s->opset, is_max, x->rank, x->dims, &ps->pool, err);
    od_pool_global(is_max, x->rank, x->dims, &ps->pool);
    return OD_STATUS_OK;
}

od_status od_pool_state_run(od_step *s, const char *what, od_error *err) {
    od_pool_state *ps = s->state;
    if (ps->xnn) return od_xnn_check(xnn_run_operator(ps->xnn, s->pool), err, s->node, what);
    od_pool_run_loop(&ps->pool, s->in[0]->dtype, s->in[0]->data, s->out[0]->data, s->pool);
    return OD_STATUS_OK;
}

void od_pool_state_destroy(od_step *s) {
    od_pool_state *ps = s->state;
    if (ps && ps->xnn) xnn_delete_operator(ps->xnn);
    if (ps) free(ps->partial);
    free(ps);
    s->state = NULL;
}

int64_t od_pool_backend_pad_end(const od_pool *p, int d) {
    int64_t k = p->dilation[d] * (p->kernel[d] - 1) + 1;
    int64_t need = (p->out[d] - 1) * p->stride[d] + k - p->in[d] - p->pad_begin[d];
    return need > 0 ? need : 0;
}

/* ---- the loop ---------------------------------------------------------------------- */

typedef struct pool_job {
    const od_pool *p;
    const char *x;
    char *y;
    size_t esize;
    int64_t positions, per_task;       /* output pixels over the whole batch */
    int64_t xs[OD_POOL_MAX_SPATIAL + 1]; /* input strides in elements: batch, spatial */
    void (*pixel)(const struct pool_job *, const char *x, char *y, const int64_t *base,
                  const int64_t *count, int64_t divisor);
} pool_job;

/* One output pixel: base/count per spatial dim give the window's valid input indices
 * base[d] + i * dilation[d] for i < count[d] (x already offset to the batch item). */
#define POOL_PIXEL(NAME, T, INIT, ACC, FINISH)                                                     \
    static void NAME(const pool_job *j, const char *xb, char *yb, const int64_t *base,           \
                     const int64_t *count, int64_t divisor) {                                      \
        const od_pool *p = j->p;                                                                   \
        int64_t C = p->channels, idx[OD_POOL_MAX_SPATIAL] = {0}, off = 0;                          \
        const T *x = (const T *)xb;                                                                \
        T *y = (T *)yb;                                                                            \
        for (int64_t c = 0; c < C; c++) y[c] = (INIT);                                             \
        for (int d = 0; d < p->sp; d++) {                                                          \
            if (count[d] <= 0) goto done;                                                          \
            off += base[d] * j->xs[d + 1];                                                         \
        }                                                                                          \
        for (;;) {                                                                                 \
            const T *row = x + off;                                                                \
            for (int64_t c = 0; c < C; c++) ACC;                                                   \
            int d = p->sp - 1;                                                                     \
            for (; d >= 0; d--) {                                                                  \
                off += p->dilation[d] * j->xs[d + 1];                                              \
                if (++idx[d] < count[d]) break;                                                    \
                off -= count[d] * p->dilation[d] * j->xs[d + 1];                                   \
                idx[d] = 0;                                                                        \
            }                                                                                      \
            if (d < 0) break;                                                                      \
        }                                                                                          \
    done:                                                                                          \
        FINISH;                                                                                    \
    }

POOL_PIXEL(max_f32, float, -INFINITY, if (row[c] > y[c]) y[c] = row[c], (void)divisor)
POOL_PIXEL(max_f64, double, -INFINITY, if (row[c] > y[c]) y[c] = row[c], (void)divisor)
POOL_PIXEL(max_i8, int8_t, INT8_MIN, if (row[c] > y[c]) y[c] = row[c], (void)divisor)
POOL_PIXEL(max_u8, uint8_t, 0, if (row[c] > y[c]) y[c] = row[c], (void)divisor)
POOL_PIXEL(avg_f32, float, 0.0f, y[c] += row[c],
           if (divisor > 0) for (int64_t c = 0; c < C; c++) y[c] /= (float)divisor)
POOL_PIXEL(avg_f64, double, 0.0, y[c] += row[c],
           if (divisor > 0) for (int64_t c = 0; c < C; c++) y[c] /= (double)divisor)

/* The input cells of window o along dim d: base + i * dilation for i < count (count may be
 * 0 or negative: none). */
static void window_cells(const od_pool *p, int d, int64_t o, int64_t *base, int64_t *count) {
    int64_t start = o * p->stride[d] - p->pad_begin[d], dil = p->dilation[d];
    int64_t lo = start < 0 ? (-start + dil - 1) / dil : 0;
    int64_t hi = p->in[d] - 1 - start < 0 ? -1 : (p->in[d] - 1 - start) / dil;
    if (hi > p->kernel[d] - 1) hi = p->kernel[d] - 1;
    *base = start + lo * dil;
    *count = hi - lo + 1;
}

bool od_pool_windows_nonempty(const od_pool *p) {
    for (int d = 0; d < p->sp; d++)
        for (int64_t o = 0; o < p->out[d]; o++) {
            int64_t base, count;
            window_cells(p, d, o, &base, &count);
            if (count <= 0) return false;
        }
    return true;
}

static void pool_range(const pool_job *j, int64_t first, int64_t end) {
    const od_pool *p = j->p;
    int64_t per_item = j->positions / (p->batch ? p->batch : 1);
    for (int64_t o = first; o < end; o++) {
        int64_t rem = o % per_item, n = o / per_item;
        int64_t base[OD_POOL_MAX_SPATIAL], count[OD_POOL_MAX_SPATIAL], divisor = 1;
        for (int d = p->sp - 1; d >= 0; d--) {
            int64_t od = rem % p->out[d];
            rem /= p->out[d];
            window_cells(p, d, od, &base[d], &count[d]);
            if (p->count_include_pad) { /* the window clipped to the padded input */
                int64_t start = od * p->stride[d] - p->pad_begin[d];
                int64_t last = (p->in[d] + p->pad_end[d] - 1 - start) / p->dilation[d];
                divisor *= (last > p->kernel[d] - 1 ? p->kernel[d] - 1 : last) + 1;
            } else {
                divisor *= count[d] > 0 ? count[d] : 0;
            }
        }
        j->pixel(j, j->x + (size_t)(n * j->xs[0]) * j->esize,
                 j->y + (size_t)(o * p->channels) * j->esize, base, count, divisor);
    }
}

static void pool_task(void *ctx, size_t t) {
    const pool_job *j = ctx;
    int64_t first = (int64_t)t * j->per_task, end = first + j->per_task;
    pool_range(j, first, end < j->positions ? end : j->positions);
}

void od_pool_run_loop(const od_pool *p, od_dtype t, const void *x, void *y, pthreadpool_t pool) {
    pool_job j = {.p = p, .x = x, .y = y, .esize = od_dtype_size(t)};
    j.positions = p->batch;
    for (int d = 0; d < p->sp; d++) j.positions *= p->out[d];
    j.xs[p->sp] = p->channels;
    for (int d = p->sp - 1; d >= 0; d--) j.xs[d] = j.xs[d + 1] * p->in[d];
    if (p->is_max)
        j.pixel = t == OD_DTYPE_FLOAT    ? max_f32
                  : t == OD_DTYPE_DOUBLE ? max_f64
                  : t == OD_DTYPE_INT8   ? max_i8
                                         : max_u8;
    else
        j.pixel = t == OD_DTYPE_FLOAT ? avg_f32 : avg_f64;
    if (j.positions == 0 || p->channels == 0) return;
    int64_t window = 1;
    for (int d = 0; d < p->sp; d++) window *= p->kernel[d];
    int64_t work = p->channels * window;
    j.per_task = work >= CHUNK ? 1 : CHUNK / work;
    if (!pool || j.positions <= j.per_task) {
        pool_range(&j, 0, j.positions);
        return;
    }
    od_parallel_for(pool, (size_t)((j.positions + j.per_task - 1) / j.per_task), pool_task, &j);
}

/* ---- training kernels of the four pools: 2-D, channels-last -------------------------------------------------------- */

typedef struct pool_train {
    int64_t N, C, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
    int64_t ph_end, pw_end; /* padding after the input, for count_include_pad */
    bool max, include_pad, global;
    bool tiles;      /* max pool whose windows tile the input (stride = kernel, no pads or
                      * dilation): backward writes every dx (grad_written) */
    int32_t *argmax; /* max pool: the input pixel (y*W + x) of each output element */
} pool_train;

od_status od_pool_train_prepare(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0], *y = s->out[0];
    if (x->rank != 4 || !x->cl) return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training supports 2-D pooling only");
    if (s->n_out > 1 && s->out[1]) return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "the Indices output is not supported");
    pool_train *p = calloc(1, sizeof *p);
    if (!p) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = p;
    p->global = s->op == &od_op_GlobalAveragePool || s->op == &od_op_GlobalMaxPool;
    p->max = s->op == &od_op_MaxPool || s->op == &od_op_GlobalMaxPool;
    p->N = x->dims[0], p->C = x->dims[1], p->H = x->dims[2], p->W = x->dims[3];
    p->OH = y->dims[2], p->OW = y->dims[3];
    p->sh = p->sw = p->dh = p->dw = 1;
    if (p->global) {
        p->KH = p->H, p->KW = p->W;
    } else { /* the attributes as inference reads them */
        od_pool q;
        od_status st = od_pool_read(s->node, s->opset, p->max, x->rank, x->dims, &q, err);
        if (st) return st;
        p->KH = q.kernel[0], p->KW = q.kernel[1];
        p->sh = q.stride[0], p->sw = q.stride[1];
        p->dh = q.dilation[0], p->dw = q.dilation[1];
        p->ph = q.pad_begin[0], p->pw = q.pad_begin[1];
        p->ph_end = q.pad_end[0], p->pw_end = q.pad_end[1];
        p->include_pad = q.count_include_pad;
    }
    p->tiles = p->max && !p->global && p->sh == p->KH && p->sw == p->KW && p->dh == 1 && p->dw == 1 && p->ph == 0 &&
               p->pw == 0 && p->OH * p->KH == p->H && p->OW * p->KW == p->W;
    if (p->tiles) od_claim_grad(s, 0);
    if (p->max) {
        p->argmax = calloc((size_t)(p->N * p->OH * p->OW * p->C) + 1, sizeof(int32_t));
        if (!p->argmax) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    return OD_STATUS_OK;
}

/* The window of output (oy, ox): input rows/cols it covers and its divisor. */
static int64_t pool_count(const pool_train *p, int64_t oy, int64_t ox) {
    int64_t cnt = 0;
    for (int64_t i = 0; i < p->KH; i++) {
        int64_t iy = oy * p->sh - p->ph + i * p->dh;
        for (int64_t j = 0; j < p->KW; j++) {
            int64_t ix = ox * p->sw - p->pw + j * p->dw;
            bool inside = iy >= 0 && iy < p->H && ix >= 0 && ix < p->W;
            /* count_include_pad counts pads, but not cells past the padded edge */
            if (inside || (p->include_pad && iy < p->H + p->ph_end && ix < p->W + p->pw_end)) cnt++;
        }
    }
    return cnt;
}

/* Selects, not branches, on pointers that do not alias: the loop vectorises (cnn_bn w0.5: the
 * first MaxPool's forward took 9-11% of a step as a branchy scalar loop). */
static void max_into(float *restrict y, int32_t *restrict am, const float *restrict x, int32_t pix, int64_t C) {
    for (int64_t c = 0; c < C; c++) {
        float xv = x[c], yv = y[c];
        int32_t gt = -(int32_t)(xv > yv); /* a mask: SSE2 has no select of integers */
        y[c] = xv > yv ? xv : yv;
        am[c] = (pix & gt) | (am[c] & ~gt);
    }
}

static void pool_fwd_image(void *ctx, size_t n) {
    od_tstep *s = ctx;
    pool_train *p = s->state;
    int64_t C = p->C;
    const float *x = s->in[0]->data + (int64_t)n * p->H * p->W * C;
    float *y = s->out[0]->data + (int64_t)n * p->OH * p->OW * C;
    int32_t *am = p->argmax ? p->argmax + (int64_t)n * p->OH * p->OW * C : NULL;
    for (int64_t oy = 0; oy < p->OH; oy++)
        for (int64_t ox = 0; ox < p->OW; ox++) {
            float *yo = y + (oy * p->OW + ox) * C;
            int32_t *ao = am ? am + (oy * p->OW + ox) * C : NULL;
            bool first = true;
            if (!p->max) memset(yo, 0, sizeof(float) * (size_t)C);
            for (int64_t i = 0; i < p->KH; i++) {
                int64_t iy = oy * p->sh - p->ph + i * p->dh;
                if (iy < 0 || iy >= p->H) continue;
                for (int64_t j = 0; j < p->KW; j++) {
                    int64_t ix = ox * p->sw - p->pw + j * p->dw;
                    if (ix < 0 || ix >= p->W) continue;
                    const float *xi = x + (iy * p->W + ix) * C;
                    int32_t pix = (int32_t)(iy * p->W + ix);
                    if (!p->max) {
                        for (int64_t c = 0; c < C; c++) yo[c] += xi[c];
                    } else if (first) {
                        memcpy(yo, xi, sizeof(float) * (size_t)C);
                        for (int64_t c = 0; c < C; c++) ao[c] = pix;
                    } else {
                        max_into(yo, ao, xi, pix, C);
                    }
                    first = false;
                }
            }
            if (p->max && first) /* a window entirely in the padding */
                for (int64_t c = 0; c < C; c++) yo[c] = -INFINITY, ao[c] = -1;
            if (!p->max) {
                int64_t cnt = pool_count(p, oy, ox);
                float inv = cnt ? 1.0f / (float)cnt : 0.0f;
                for (int64_t c = 0; c < C; c++) yo[c] *= inv;
            }
        }
}

static void pool_fwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; n++) pool_fwd_image(ctx, (size_t)n);
}

od_status od_pool_train_forward(od_tstep *s, od_error *err) {
    pool_train *p = s->state;
    od_shards(s, p->N, pool_fwd_shard, s);
    return OD_STATUS_OK;
}

/* dx (=, or += unless set) dy where the window's max was pixel pix: a mask, so it vectorises. */
static void max_grad(float *restrict dx, const int32_t *restrict am, const float *restrict dy, int32_t pix, bool set,
                     int64_t C) {
    for (int64_t c = 0; c < C; c++) {
        float g = od_keep_if(dy[c], am[c] == pix);
        dx[c] = set ? g : dx[c] + g;
    }
}

static void pool_bwd_image(void *ctx, size_t n) {
    od_tstep *s = ctx;
    pool_train *p = s->state;
    int64_t C = p->C;
    float *dx = s->in[0]->grad + (int64_t)n * p->H * p->W * C;
    const float *dy = s->out[0]->grad + (int64_t)n * p->OH * p->OW * C;
    if (p->tiles) { /* each input pixel in one window: dy where it was the max, else 0 */
        const int32_t *am = p->argmax + (int64_t)n * p->OH * p->OW * C;
        bool set = s->writes_grad & 1;
        for (int64_t oy = 0; oy < p->OH; oy++)
            for (int64_t ox = 0; ox < p->OW; ox++) {
                int64_t o = (oy * p->OW + ox) * C;
                for (int64_t i = 0; i < p->KH; i++)
                    for (int64_t j = 0; j < p->KW; j++) {
                        int32_t pix = (int32_t)((oy * p->KH + i) * p->W + ox * p->KW + j);
                        max_grad(dx + (int64_t)pix * C, am + o, dy + o, pix, set, C);
                    }
            }
        return;
    }
    if (p->max) {
        const int32_t *am = p->argmax + (int64_t)n * p->OH * p->OW * C;
        for (int64_t o = 0; o < p->OH * p->OW; o++)
            for (int64_t c = 0; c < C; c++)
                if (am[o * C + c] >= 0) dx[am[o * C + c] * C + c] += dy[o * C + c];
        return;
    }
    for (int64_t oy = 0; oy < p->OH; oy++)
        for (int64_t ox = 0; ox < p->OW; ox++) {
            int64_t cnt = pool_count(p, oy, ox);
            float inv = cnt ? 1.0f / (float)cnt : 0.0f;
            const float *g = dy + (oy * p->OW + ox) * C;
            for (int64_t i = 0; i < p->KH; i++) {
                int64_t iy = oy * p->sh - p->ph + i * p->dh;
                if (iy < 0 || iy >= p->H) continue;
                for (int64_t j = 0; j < p->KW; j++) {
                    int64_t ix = ox * p->sw - p->pw + j * p->dw;
                    if (ix < 0 || ix >= p->W) continue;
                    float *d = dx + (iy * p->W + ix) * C;
                    for (int64_t c = 0; c < C; c++) d[c] += g[c] * inv;
                }
            }
        }
}

static void pool_bwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; n++) pool_bwd_image(ctx, (size_t)n);
}

od_status od_pool_train_backward(od_tstep *s, od_error *err) {
    pool_train *p = s->state;
    od_shards(s, p->N, pool_bwd_shard, s);
    return OD_STATUS_OK;
}

void od_pool_train_destroy(od_tstep *s) {
    pool_train *p = s->state;
    if (p) free(p->argmax);
    free(p);
    s->state = NULL;
}

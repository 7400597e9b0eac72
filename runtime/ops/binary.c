/* Add, Sub, Mul, Div with numpy broadcasting (opsets 7-14). They share this file because they
 * differ only in the XNNPACK operator and the scalar function. float32 runs on XNNPACK's
 * "nd" operators (up to 6 dims); int32/int64 (shape arithmetic, folded at plan time) and
 * anything above 6 dims run a plain loop. Layout: element-wise (channels-last passes through).
 * A following Relu or Clip is fused in by the planner (float32): XNNPACK's output clamp, or a
 * clamp after the loop.
 * Backward: Add, Sub, Mul, Div (the training kernels at the end), broadcasting either way; Div
 * trains an initializer numerator but holds an initializer divisor fixed (sqrt(2), sqrt(d)). */
#include "../train_internal.h"
#include "qs8_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

typedef enum binary_kind { BINARY_ADD, BINARY_SUB, BINARY_MUL, BINARY_DIV } binary_kind;

/* A channel gate: out[n][p][c] = full[n][p][c] (*|+) gate[n or 0][c] on data whose last
 * physical dim is the channels (squeeze-and-excitation's Mul on channels-last activations). */
typedef struct channel_gate {
    const float *full, *gate;
    float *out;
    int64_t N, P, C;
    bool per_sample, add, avx512;
    float lo, hi;
} channel_gate;

typedef struct binary_state {
    xnn_operator_t xnn;
    bool gated; /* runs gate, not XNNPACK */
    channel_gate gate;
} binary_state;

static binary_kind kind_of(const od_step *s);

enum { GATE_PIXELS = 64 }; /* pixels a task takes */

static void gate_pixels(const channel_gate *g, const float *x, const float *w, float *y, int64_t np) {
    for (int64_t p = 0; p < np; p++, x += g->C, y += g->C)
        for (int64_t c = 0; c < g->C; c++) {
            float v = g->add ? x[c] + w[c] : x[c] * w[c];
            v = v > g->lo ? v : g->lo; /* as _mm512_max_ps, then _mm512_min_ps */
            y[c] = v < g->hi ? v : g->hi;
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include "act_avx512.h"
/* The same 16 channels at a time (a masked tail): the build targets baseline x86-64. */
__attribute__((target("avx512f"))) static void gate_pixels_avx512(const channel_gate *g, const float *x,
                                                                   const float *w, float *y, int64_t np) {
    const __m512 lo = _mm512_set1_ps(g->lo), hi = _mm512_set1_ps(g->hi);
    for (int64_t p = 0; p < np; p++, x += g->C, y += g->C)
        for (int64_t c = 0; c < g->C; c += 16) {
            __mmask16 m = od_tail_mask16(g->C - c);
            __m512 a = _mm512_maskz_loadu_ps(m, x + c), b = _mm512_maskz_loadu_ps(m, w + c);
            __m512 v = g->add ? _mm512_add_ps(a, b) : _mm512_mul_ps(a, b);
            _mm512_mask_storeu_ps(y + c, m, _mm512_min_ps(_mm512_max_ps(v, lo), hi));
        }
}
#else
static void gate_pixels_avx512(const channel_gate *g, const float *x, const float *w, float *y, int64_t np) {
    gate_pixels(g, x, w, y, np);
}
#endif

static void gate_task(void *ctx, size_t n, size_t k) {
    const channel_gate *g = ctx;
    int64_t p0 = (int64_t)k * GATE_PIXELS, np = g->P - p0 < GATE_PIXELS ? g->P - p0 : GATE_PIXELS;
    int64_t at = ((int64_t)n * g->P + p0) * g->C;
    (g->avx512 ? gate_pixels_avx512 : gate_pixels)(g, g->full + at, g->gate + (g->per_sample ? (int64_t)n * g->C : 0),
                                                   g->out + at, np);
}

/* Whether out = a (*|+) b is a channel gate (see channel_gate): one input has the output's
 * physical dims (rank 3 or more), the other ones of 1 but the last (the channels) and perhaps
 * the first (per sample). Tasks of 64 pixels split it alike with the convolution before it
 * (rows), where XNNPACK's operator had made the second thread a loss at batch 1. */
static bool channel_gate_of(const od_step *s, channel_gate *g) {
    const od_buf *o = s->out[0];
    binary_kind k = kind_of(s);
    if ((k != BINARY_MUL && k != BINARY_ADD) || o->dtype != OD_DTYPE_FLOAT || o->rank < 3 || getenv("OD_NO_GATE"))
        return false;
    int64_t od[OD_MAX_RANK], dd[2][OD_MAX_RANK] = {{0}};
    od_buf_phys_dims(o, od);
    for (int full = 0; full < 2; full++) {
        const od_buf *f = s->in[full], *w = s->in[1 - full];
        if (f->rank != o->rank || w->rank > o->rank) continue;
        od_buf_phys_dims(f, dd[0]);
        od_buf_phys_dims(w, dd[1]);
        bool same = true;
        for (int d = 0; d < o->rank; d++) same = same && dd[0][d] == od[d];
        int pad = o->rank - w->rank;
        int64_t wd[OD_MAX_RANK] = {0};
        for (int d = 0; d < o->rank; d++) wd[d] = d < pad ? 1 : dd[1][d - pad];
        bool gate = wd[o->rank - 1] == od[o->rank - 1] && (wd[0] == 1 || wd[0] == od[0]);
        for (int d = 1; d < o->rank - 1; d++) gate = gate && wd[d] == 1;
        if (!same || !gate) continue;
        int64_t P = 1;
        for (int d = 1; d < o->rank - 1; d++) P *= od[d];
        *g = (channel_gate){.full = f->data, .gate = w->data, .out = o->data, .N = od[0], .P = P,
                            .C = od[o->rank - 1], .per_sample = wd[0] != 1, .add = k == BINARY_ADD,
                            .avx512 = od_avx512_on("OD_NO_AVX512_GATE"), .lo = s->act_min, .hi = s->act_max};
        return P > 1 && g->C > 1;
    }
    return false;
}

static od_status binary_infer(od_infer_ctx *c) {
    od_status two = od_infer_two_alike(c);
    if (two) return two;
    od_dtype t = c->in[0]->dtype;
    if (t != OD_DTYPE_FLOAT && t != OD_DTYPE_INT64 && t != OD_DTYPE_INT32)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "element type %s is not supported", od_dtype_name(t));
    return od_infer_broadcast(c);
}

static binary_kind kind_of(const od_step *s) {
    const char *n = s->op->name;
    return n[0] == 'A' ? BINARY_ADD : n[0] == 'S' ? BINARY_SUB : n[0] == 'M' ? BINARY_MUL : BINARY_DIV;
}

static od_status binary_prepare(od_step *s, od_error *err) {
    const od_buf *a = s->in[0], *b = s->in[1];
    channel_gate g;
    if (channel_gate_of(s, &g)) {
        binary_state *bs = calloc(1, sizeof *bs);
        if (!bs) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        bs->gated = true;
        bs->gate = g;
        s->state = bs;
        return OD_STATUS_OK;
    }
    if (a->dtype != OD_DTYPE_FLOAT || s->out[0]->rank > XNN_MAX_TENSOR_DIMS) return OD_STATUS_OK;
    int64_t da[OD_MAX_RANK], db[OD_MAX_RANK];
    od_buf_phys_dims(a, da);
    od_buf_phys_dims(b, db);
    size_t sa[OD_MAX_RANK], sb[OD_MAX_RANK];
    for (int d = 0; d < a->rank; d++) sa[d] = (size_t)da[d];
    for (int d = 0; d < b->rank; d++) sb[d] = (size_t)db[d];
    float lo = s->act_min, hi = s->act_max;
    if (!(lo < hi)) return OD_STATUS_OK; /* XNNPACK refuses an empty range: the loop clamps */
    xnn_operator_t op = NULL;
    enum xnn_status r;
    switch (kind_of(s)) {
    case BINARY_ADD: r = xnn_create_add_nd_f32(lo, hi, 0, &op); break;
    case BINARY_SUB: r = xnn_create_subtract_nd_f32(lo, hi, 0, &op); break;
    case BINARY_MUL: r = xnn_create_multiply_nd_f32(lo, hi, 0, &op); break;
    default: r = xnn_create_divide_nd_f32(lo, hi, 0, &op); break;
    }
    od_status st = od_xnn_check(r, err, s->node, "create");
    if (st) return st;
    binary_state *bs = calloc(1, sizeof *bs);
    if (!bs) {
        xnn_delete_operator(op);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    bs->xnn = op;
    s->state = bs;
    switch (kind_of(s)) {
    case BINARY_ADD:
        r = xnn_setup_add_nd_f32(op, a->rank, sa, b->rank, sb, a->data, b->data, s->out[0]->data, s->pool);
        break;
    case BINARY_SUB:
        r = xnn_setup_subtract_nd_f32(op, a->rank, sa, b->rank, sb, a->data, b->data, s->out[0]->data, s->pool);
        break;
    case BINARY_MUL:
        r = xnn_setup_multiply_nd_f32(op, a->rank, sa, b->rank, sb, a->data, b->data, s->out[0]->data, s->pool);
        break;
    default:
        r = xnn_setup_divide_nd_f32(op, a->rank, sa, b->rank, sb, a->data, b->data, s->out[0]->data, s->pool);
        break;
    }
    return od_xnn_check(r, err, s->node, "setup");
}

static void binary_destroy(od_step *s) {
    binary_state *bs = s->state;
    if (bs && bs->xnn) xnn_delete_operator(bs->xnn);
    free(bs);
    s->state = NULL;
}

/* Strides of an input broadcast to the output's physical dims (0 where it repeats). */
static void broadcast_strides(const od_buf *in, int out_rank, int64_t *strides) {
    int64_t dims[OD_MAX_RANK];
    od_buf_phys_dims(in, dims);
    int pad = out_rank - in->rank;
    int64_t stride = 1;
    for (int d = out_rank - 1; d >= 0; d--) {
        int64_t dim = d < pad ? 1 : dims[d - pad];
        strides[d] = dim == 1 ? 0 : stride;
        stride *= dim;
    }
}

#define BINARY_LOOP(T, EXPR)                                                                       \
    do {                                                                                           \
        const T *A = (const void *)a->data, *B = (const void *)b->data;                            \
        T *O = (void *)o->data;                                                                    \
        for (int64_t i = 0; i < count; i++) {                                                      \
            int64_t rem = i, ia = 0, ib = 0;                                                       \
            for (int d = rank - 1; d >= 0; d--) {                                                  \
                int64_t idx = rem % od[d];                                                         \
                rem /= od[d];                                                                      \
                ia += idx * sa[d];                                                                 \
                ib += idx * sb[d];                                                                 \
            }                                                                                      \
            T x = A[ia], y = B[ib];                                                                \
            O[i] = (EXPR);                                                                         \
        }                                                                                          \
    } while (0)

static od_status binary_run(od_step *s, od_error *err) {
    binary_state *bs = s->state;
    if (bs && bs->gated) {
        pthreadpool_parallelize_2d(s->pool, gate_task, &bs->gate, (size_t)bs->gate.N,
                                   (size_t)((bs->gate.P + GATE_PIXELS - 1) / GATE_PIXELS), 0);
        return OD_STATUS_OK;
    }
    if (bs) return od_xnn_check(xnn_run_operator(bs->xnn, s->pool), err, s->node, "run");
    const od_buf *a = s->in[0], *b = s->in[1];
    od_buf *o = s->out[0];
    int rank = o->rank;
    int64_t od[OD_MAX_RANK], sa[OD_MAX_RANK], sb[OD_MAX_RANK];
    od_buf_phys_dims(o, od);
    broadcast_strides(a, rank, sa);
    broadcast_strides(b, rank, sb);
    int64_t count = od_buf_count(o);
    binary_kind k = kind_of(s);
    if (o->dtype == OD_DTYPE_FLOAT) {
        if (k == BINARY_ADD) BINARY_LOOP(float, x + y);
        else if (k == BINARY_SUB) BINARY_LOOP(float, x - y);
        else if (k == BINARY_MUL) BINARY_LOOP(float, x * y);
        else BINARY_LOOP(float, x / y);
        od_step_clamp(s, o->data, count);
    } else if (o->dtype == OD_DTYPE_INT64) {
        if (k == BINARY_ADD) BINARY_LOOP(int64_t, (int64_t)((uint64_t)x + (uint64_t)y));
        else if (k == BINARY_SUB) BINARY_LOOP(int64_t, (int64_t)((uint64_t)x - (uint64_t)y));
        else if (k == BINARY_MUL) BINARY_LOOP(int64_t, (int64_t)((uint64_t)x * (uint64_t)y));
        else BINARY_LOOP(int64_t, y == 0 || (x == INT64_MIN && y == -1) ? 0 : x / y);
    } else {
        if (k == BINARY_ADD) BINARY_LOOP(int32_t, (int32_t)((uint32_t)x + (uint32_t)y));
        else if (k == BINARY_SUB) BINARY_LOOP(int32_t, (int32_t)((uint32_t)x - (uint32_t)y));
        else if (k == BINARY_MUL) BINARY_LOOP(int32_t, (int32_t)((uint32_t)x * (uint32_t)y));
        else BINARY_LOOP(int32_t, y == 0 || (x == INT32_MIN && y == -1) ? 0 : x / y);
    }
    return OD_STATUS_OK;
}

/* ---- training: Add, Sub, Mul, Div with broadcasting, any mix of layouts ---------------------------------- */

/* Strides of an input, per physical axis of the output: 0 where it repeats. */
static void bstrides(const od_tbuf *in, const od_tbuf *out, int64_t *st) {
    int r = out->rank, pad = r - in->rank;
    int64_t own[OD_MAX_RANK]; /* the input's stride of each of its logical dims */
    int64_t phys[OD_MAX_RANK], stride = 1;
    od_tbuf_phys_dims(in, phys);
    int64_t pst[OD_MAX_RANK];
    for (int d = in->rank - 1; d >= 0; d--) pst[d] = stride, stride *= phys[d];
    for (int d = 0; d < in->rank; d++) {
        /* logical dim d sits at physical position: channels-last moves 1 last, shifts the rest */
        int pos = !(in->cl && in->rank >= 3) ? d : d == 0 ? 0 : d == 1 ? in->rank - 1 : d - 1;
        own[d] = in->dims[d] == 1 ? 0 : pst[pos];
    }
    for (int k = 0; k < r; k++) {
        /* physical axis k of the output is its logical dim: */
        int ld = !(out->cl && r >= 3) ? k : k == 0 ? 0 : k == r - 1 ? 1 : k + 1;
        st[k] = ld < pad ? 0 : own[ld - pad];
    }
}

static bool same_layout_shape(const od_tbuf *a, const od_tbuf *o) {
    return a->count == o->count && a->rank == o->rank && (a->cl == o->cl || a->rank < 3);
}

/* gx (=, or += unless set) sign * dy, masked where a fused Relu clamped y: one pass (as a
 * select it ran scalar: 8% of a resnet w0.5 step). */
OD_VECTOR_CLONES static void add_grad(float *restrict gx, const float *restrict dy, const float *restrict y, float sign,
                                      bool set, bool relu, int64_t n) {
    if (!relu && set) for (int64_t i = 0; i < n; i++) gx[i] = sign * dy[i];
    else if (!relu) for (int64_t i = 0; i < n; i++) gx[i] += sign * dy[i];
    else if (set) for (int64_t i = 0; i < n; i++) gx[i] = od_keep_if(sign * dy[i], y[i] > 0);
    else for (int64_t i = 0; i < n; i++) gx[i] += od_keep_if(sign * dy[i], y[i] > 0);
}

/* Both inputs' gradients written (=) in one pass, gz with sign: the residual add's backward
 * reads dy and y once, not once per input. */
OD_VECTOR_CLONES static void add_grad_both(float *restrict gx, float *restrict gz, const float *restrict dy,
                                           const float *restrict y, float sign, bool relu, int64_t n) {
    if (relu)
        for (int64_t i = 0; i < n; i++) {
            float d = od_keep_if(dy[i], y[i] > 0);
            gx[i] = d, gz[i] = sign * d;
        }
    else
        for (int64_t i = 0; i < n; i++) gx[i] = dy[i], gz[i] = sign * dy[i];
}

/* Add and Sub of same-shape inputs write an input's gradient where they are the first to (the
 * residual adds of a resnet: no zeroing, no separate mask pass). */
static od_status binary_train_prepare(od_tstep *s, od_error *err) {
    int k = s->op->name[0];
    od_tbuf *a = s->in[0], *b = s->in[1], *o = s->out[0];
    if ((k != 'A' && k != 'S') || a == b || !same_layout_shape(a, o) || !same_layout_shape(b, o)) return OD_STATUS_OK;
    od_claim_grad(s, 0);
    od_claim_grad(s, 1);
    return OD_STATUS_OK;
}

typedef struct walk_ctx {
    od_tstep *s;
    bool backward;
} walk_ctx;

/* Elements [begin, end) of same-shape inputs, in loops that vectorise. */
OD_VECTOR_CLONES static void same_shape_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    const walk_ctx *w = ctx;
    od_tstep *s = w->s;
    const od_tbuf *a = s->in[0], *b = s->in[1], *o = s->out[0];
    int k = s->op->name[0]; /* 'A', 'S', 'M', 'D' */
    bool relu = s->fused_relu;
    const float *x = a->data + begin, *z = b->data + begin, *y = o->data + begin;
    int64_t n = end - begin;
    if (!w->backward) {
        float *out = o->data + begin;
        if (k == 'A' && relu) { /* a residual block's end: one pass */
            for (int64_t i = 0; i < n; i++) out[i] = od_keep_if(x[i] + z[i], x[i] + z[i] > 0);
            return;
        }
        if (k == 'A') for (int64_t i = 0; i < n; i++) out[i] = x[i] + z[i];
        else if (k == 'S') for (int64_t i = 0; i < n; i++) out[i] = x[i] - z[i];
        else if (k == 'M') for (int64_t i = 0; i < n; i++) out[i] = x[i] * z[i];
        else for (int64_t i = 0; i < n; i++) out[i] = x[i] / z[i];
        if (relu) od_relu_inplace(out, n);
        return;
    }
    float *dy = o->grad + begin, *gx = a->grad ? a->grad + begin : NULL, *gz = b->grad ? b->grad + begin : NULL;
    if (k == 'A' || k == 'S') { /* writes_grad: binary_train_prepare */
        if (gx && gz && (s->writes_grad & 3) == 3) {
            add_grad_both(gx, gz, dy, y, k == 'S' ? -1.0f : 1.0f, relu, n);
            return;
        }
        if (gx) add_grad(gx, dy, y, 1.0f, s->writes_grad & 1, relu, n);
        if (gz) add_grad(gz, dy, y, k == 'S' ? -1.0f : 1.0f, s->writes_grad >> 1 & 1, relu, n);
        return;
    }
    if (relu) od_relu_mask(y, dy, n);
    if (gx && k == 'M') for (int64_t i = 0; i < n; i++) gx[i] += dy[i] * z[i];
    else if (gx && k == 'D') for (int64_t i = 0; i < n; i++) gx[i] += dy[i] / z[i];
    else if (gx) od_add_into(gx, dy, n);
    if (gz && k == 'M') for (int64_t i = 0; i < n; i++) gz[i] += dy[i] * x[i];
    else if (gz && k == 'D') for (int64_t i = 0; i < n; i++) gz[i] -= dy[i] * x[i] / (z[i] * z[i]);
    else if (gz && k == 'S') for (int64_t i = 0; i < n; i++) gz[i] -= dy[i];
    else if (gz) od_add_into(gz, dy, n);
}

/* Same-shape steps this large split over the threads (resnet w0.5's residual adds: 400 k). */
#define SHARD_MIN_ELEMENTS 65536

/* A fused Relu (fuse_relus) clamps the output here and masks the gradient by it. */
static void binary_walk(od_tstep *s, bool backward) {
    const od_tbuf *a = s->in[0], *b = s->in[1], *o = s->out[0];
    int k = s->op->name[0]; /* 'A', 'S', 'M', 'D' */
    bool relu = s->fused_relu;
    const float *dy = o->grad;
    if (same_layout_shape(a, o) && same_layout_shape(b, o)) {
        walk_ctx w = {s, backward};
        if (o->count >= SHARD_MIN_ELEMENTS) od_shards(s, o->count, same_shape_shard, &w);
        else same_shape_shard(&w, 0, 0, o->count);
        return;
    }
    int64_t sa[OD_MAX_RANK], sb[OD_MAX_RANK], pd[OD_MAX_RANK];
    bstrides(a, o, sa);
    bstrides(b, o, sb);
    od_tbuf_phys_dims(o, pd);
    int r = o->rank;
    for (int64_t i = 0; i < o->count; i++) {
        int64_t rem = i, ia = 0, ib = 0;
        for (int d = r - 1; d >= 0; d--) {
            int64_t idx = rem % pd[d];
            rem /= pd[d];
            ia += idx * sa[d];
            ib += idx * sb[d];
        }
        if (!backward) {
            float x = a->data[ia], z = b->data[ib];
            float v = k == 'A' ? x + z : k == 'S' ? x - z : k == 'M' ? x * z : x / z;
            o->data[i] = relu && !(v > 0) ? 0 : v;
            continue;
        }
        float g = relu && !(o->data[i] > 0) ? 0 : dy[i];
        float x = a->data[ia], z = b->data[ib];
        if (a->grad) a->grad[ia] += k == 'M' ? g * z : k == 'D' ? g / z : g;
        if (b->grad) b->grad[ib] += k == 'M' ? g * x : k == 'D' ? -g * x / (z * z) : k == 'S' ? -g : g;
    }
}

static od_status binary_forward(od_tstep *s, od_error *err) {
    binary_walk(s, false);
    return OD_STATUS_OK;
}

static od_status binary_backward(od_tstep *s, od_error *err) {
    binary_walk(s, true);
    return OD_STATUS_OK;
}

/* int8 (quantized execution, plan_qs8.c): Add of two int8 activations on XNNPACK's QS8 add. */
static bool add_qs8_accepts(const od_node *n, const od_shape_info *const *in) {
    (void)n;
    return in[0] && in[1] && !in[0]->constant && !in[1]->constant && in[0]->rank <= XNN_MAX_TENSOR_DIMS &&
           in[1]->rank <= XNN_MAX_TENSOR_DIMS;
}

static od_status add_qs8_prepare(od_step *s, od_error *err) {
    const od_buf *a = s->in[0], *b = s->in[1];
    const od_qs8_params *q = s->qs8;
    int64_t da[OD_MAX_RANK], db[OD_MAX_RANK];
    od_buf_phys_dims(a, da);
    od_buf_phys_dims(b, db);
    size_t sa[OD_MAX_RANK], sb[OD_MAX_RANK];
    for (int d = 0; d < a->rank; d++) sa[d] = (size_t)da[d];
    for (int d = 0; d < b->rank; d++) sb[d] = (size_t)db[d];
    int8_t lo, hi;
    od_qs8_out_range(s, &lo, &hi);
    xnn_operator_t op = NULL;
    enum xnn_status r = xnn_create_add_nd_qs8((int8_t)q->in_zp[0], q->in_scale[0], (int8_t)q->in_zp[1],
                                              q->in_scale[1], (int8_t)q->out_zp, q->out_scale, lo, hi, 0, &op);
    od_status st = od_xnn_check(r, err, s->node, "create int8 add");
    if (st) return st;
    s->state = op;
    r = xnn_setup_add_nd_qs8(op, a->rank, sa, b->rank, sb, (const int8_t *)a->data, (const int8_t *)b->data,
                             (int8_t *)s->out[0]->data, s->pool);
    return od_xnn_check(r, err, s->node, "setup int8 add");
}

static const od_op_desc od_qs8_Add = {.name = "Add (int8)", .layout = OD_LAYOUT_POLICY_ELEMENTWISE,
                                      .fuses_activation = true, .prepare = add_qs8_prepare,
                                      .run = od_qs8_xnn_run, .destroy = od_qs8_xnn_destroy};

#define BINARY_DESC(NAME, TRAIN, SINCE, ...)                                                       \
    OD_OP_FACTS(NAME, SINCE, __VA_ARGS__);                                                         \
    const od_op_desc od_op_##NAME = {OD_OP_NAME(NAME), .channel_role = OD_CHANNELS_BROADCAST, .stable_since = 7, BINARY_QS8_##NAME,                          \
                                     .per_sample = od_per_sample_always, .layout = OD_LAYOUT_POLICY_ELEMENTWISE, \
                                     .fuses_activation = true,                                     \
                                     .infer = binary_infer, .prepare = binary_prepare,             \
                                     .run = binary_run, .destroy = binary_destroy, TRAIN};
/* trainable: both inputs (a bias or scale added by a student), Relu fused in training */
#define BINARY_TRAIN                                                                               \
    .trained_inputs = 0x3, .train_layout = OD_TRAIN_LAYOUT_SAME, .train_fuses_relu = true,        \
    .train_prepare = binary_train_prepare, .forward_train = binary_forward, .backward = binary_backward
/* Div: a constant divisor stays one (trained_inputs bit 1 clear) */
#define BINARY_TRAIN_DIV                                                                           \
    .trained_inputs = 0x1, .train_layout = OD_TRAIN_LAYOUT_SAME, .train_fuses_relu = true,        \
    .forward_train = binary_forward, .backward = binary_backward
#define BINARY_QS8_Add .qs8 = &od_qs8_Add, .qs8_accepts = add_qs8_accepts
#define BINARY_QS8_Sub .qs8 = NULL
#define BINARY_QS8_Mul .qs8 = NULL
#define BINARY_QS8_Div .qs8 = NULL
BINARY_DESC(Add, BINARY_TRAIN, 1, "axis", "broadcast", "consumed_inputs")
BINARY_DESC(Sub, BINARY_TRAIN, 1, "axis", "broadcast", "consumed_inputs")
BINARY_DESC(Mul, BINARY_TRAIN, 1, "axis", "broadcast", "consumed_inputs")
BINARY_DESC(Div, BINARY_TRAIN_DIV, 1, "axis", "broadcast", "consumed_inputs")

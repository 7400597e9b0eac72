/* Helpers shared by Conv and ConvTranspose (see conv_common.h). */
#include "conv_common.h"

#include <stdlib.h>
#include <string.h>

od_status od_conv_read_common(const od_node *n, int sp, const int64_t *wk, od_conv_params *p,
                              od_error *err) {
    memset(p, 0, sizeof *p);
    p->sp = sp;
    for (int d = 0; d < OD_CONV_MAX_SP; d++)
        p->kernel[d] = p->stride[d] = p->dilation[d] = p->in[d] = p->out[d] = 1;
    p->group = od_attr_int(n, "group", 1);
    if (p->group < 1)
        return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "group %lld is not positive",
                             (long long)p->group);
    int64_t v[2 * OD_MAX_RANK];
    int k = od_attr_ints(n, "kernel_shape", v, 2 * OD_MAX_RANK);
    if (k >= 0 && k != sp)
        return od_node_error(err, OD_STATUS_INVALID_MODEL, n,
                             "kernel_shape has %d values, the input %d spatial dims", k, sp);
    for (int d = 0; d < sp; d++) {
        if (k >= 0 && v[d] != wk[d])
            return od_node_error(err, OD_STATUS_INVALID_MODEL, n,
                                 "kernel_shape disagrees with the weights' shape");
        p->kernel[d] = wk[d];
    }
    static const char *const names[2] = {"strides", "dilations"};
    int64_t *dst[2] = {p->stride, p->dilation};
    for (int a = 0; a < 2; a++) {
        k = od_attr_ints(n, names[a], v, 2 * OD_MAX_RANK);
        if (k >= 0 && k != sp)
            return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "%s has %d values, expected %d",
                                 names[a], k, sp);
        for (int d = 0; d < k; d++) dst[a][d] = v[d];
    }
    k = od_attr_ints(n, "pads", v, 2 * OD_MAX_RANK);
    if (k >= 0 && k != 2 * sp)
        return od_node_error(err, OD_STATUS_INVALID_MODEL, n, "pads has %d values, expected %d", k,
                             2 * sp);
    for (int d = 0; d < sp && k > 0; d++) {
        p->pad_begin[d] = v[d];
        p->pad_end[d] = v[sp + d];
    }
    for (int d = 0; d < sp; d++)
        if (p->stride[d] < 1 || p->dilation[d] < 1 || p->kernel[d] < 1 || p->pad_begin[d] < 0 ||
            p->pad_end[d] < 0)
            return od_node_error(err, OD_STATUS_INVALID_MODEL, n,
                                 "strides, dilations and kernel must be positive, pads not "
                                 "negative");
    return OD_STATUS_OK;
}

od_status od_conv_infer(od_infer_ctx *c, od_conv_read_fn read) {
    od_status st = od_infer_expect(c, 0, 3, 5);
    if (!st) st = od_infer_expect(c, 1, 3, 5);
    if (st) return st;
    const od_shape_info *x = c->in[0], *w = c->in[1];
    if (x->rank != w->rank)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "input rank %d, weight rank %d",
                             x->rank, w->rank);
    od_conv_params p;
    st = read(c->node, x->dims, x->rank, w->dims, &p, c->err);
    if (st) return st;
    /* Conv weights are [C_out, C_in / group, k...], ConvTranspose's [C_in, C_out / group, k...] */
    if (w->dims[0] < 1 || w->dims[1] < 1 || w->dims[0] % p.group ||
        (p.transposed ? w->dims[0] != x->dims[1] : w->dims[1] * p.group != x->dims[1]))
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                             "input has %lld channels, weights [%lld, %lld, ...] with group %lld",
                             (long long)x->dims[1], (long long)w->dims[0], (long long)w->dims[1],
                             (long long)p.group);
    if (c->n_in > 2 && c->in[2]) {
        const od_shape_info *b = c->in[2];
        if (b->dtype != OD_DTYPE_FLOAT)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "bias has element type %s; only float is supported",
                                 od_dtype_name(b->dtype));
        if (b->rank != 1 || b->dims[0] != p.cout)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "bias must have shape [%lld]",
                                 (long long)p.cout);
    }
    od_shape_info *o = &c->out[0];
    o->dtype = OD_DTYPE_FLOAT;
    o->rank = x->rank;
    o->dims[0] = x->dims[0];
    o->dims[1] = p.cout;
    for (int d = 0; d < p.sp; d++) o->dims[2 + d] = p.out[d];
    return OD_STATUS_OK;
}

int64_t od_conv_kernel_size(const od_conv_params *p) {
    return p->kernel[0] * p->kernel[1] * p->kernel[2];
}

void od_conv_pack_weights(const od_conv_params *p, const float *w, float *packed) {
    size_t K = (size_t)od_conv_kernel_size(p), G = (size_t)p->group;
    size_t Cg = (size_t)p->cin / G, Mg = (size_t)p->cout / G;
    for (size_t g = 0; g < G; g++)
        for (size_t m = 0; m < Mg; m++)
            for (size_t c = 0; c < Cg; c++)
                for (size_t k = 0; k < K; k++) {
                    size_t src = p->transposed ? ((g * Cg + c) * Mg + m) * K + k
                                               : ((g * Mg + m) * Cg + c) * K + k;
                    packed[((g * Mg + m) * K + k) * Cg + c] = w[src];
                }
}

typedef struct direct_args {
    const od_conv_params *p;
    const float *x, *w, *b;
    float *y;
} direct_args;

/* Input index along one dim for output index o and kernel index k, or -1 when none. */
static inline int64_t in_index(const od_conv_params *p, int d, int64_t o, int64_t k) {
    if (!p->transposed) {
        int64_t i = o * p->stride[d] + k * p->dilation[d] - p->pad_begin[d];
        return i >= 0 && i < p->in[d] ? i : -1;
    }
    int64_t t = o + p->pad_begin[d] - k * p->dilation[d];
    if (t < 0 || t % p->stride[d]) return -1;
    t /= p->stride[d];
    return t < p->in[d] ? t : -1;
}

/* One task: batch item n, output index o0 along the first spatial dim. */
static void direct_task(void *ctx, size_t task) {
    const direct_args *a = ctx;
    const od_conv_params *p = a->p;
    const int64_t *in = p->in, *out = p->out, *ks = p->kernel;
    size_t C = (size_t)p->cin, M = (size_t)p->cout, G = (size_t)p->group;
    size_t Cg = C / G, Mg = M / G, K = (size_t)od_conv_kernel_size(p);
    int64_t n = (int64_t)task / out[0], o0 = (int64_t)task % out[0];
    for (int64_t o1 = 0; o1 < out[1]; o1++)
        for (int64_t o2 = 0; o2 < out[2]; o2++) {
            float *y = a->y + ((size_t)((n * out[0] + o0) * out[1] + o1) * out[2] + o2) * M;
            for (size_t m = 0; m < M; m++) y[m] = a->b ? a->b[m] : 0.0f;
            size_t kidx = 0;
            for (int64_t k0 = 0; k0 < ks[0]; k0++) {
                int64_t i0 = in_index(p, 0, o0, k0);
                for (int64_t k1 = 0; k1 < ks[1]; k1++) {
                    int64_t i1 = i0 < 0 ? -1 : in_index(p, 1, o1, k1);
                    for (int64_t k2 = 0; k2 < ks[2]; k2++, kidx++) {
                        int64_t i2 = i1 < 0 ? -1 : in_index(p, 2, o2, k2);
                        if (i2 < 0) continue;
                        size_t pix = (size_t)((n * in[0] + i0) * in[1] + i1) * in[2] + i2;
                        const float *x = a->x + pix * C;
                        for (size_t m = 0; m < M; m++) {
                            const float *xg = x + (m / Mg) * Cg, *w = a->w + (m * K + kidx) * Cg;
                            float acc = 0.0f;
                            for (size_t c = 0; c < Cg; c++) acc += xg[c] * w[c];
                            y[m] += acc;
                        }
                    }
                }
            }
        }
}

void od_conv_direct(const od_conv_params *p, int64_t batch, const float *x, const float *packed,
                    const float *bias, float *y, pthreadpool_t pool) {
    direct_args a = {p, x, packed, bias, y};
    od_parallel_for(pool, (size_t)(batch * p->out[0]), direct_task, &a);
}

void od_conv_pad_rows(const float *x, int64_t W, int64_t C, int64_t r0, int64_t r1, float *xp, int64_t HP,
                      int64_t WP, int64_t pt, int64_t pl) {
    int64_t w = W < WP - pl ? W : WP - pl; /* columns the taps read */
    for (int64_t r = r0; r < r1 && r + pt < HP && w > 0; r++)
        memcpy(xp + ((r + pt) * WP + pl) * C, x + r * W * C, sizeof(float) * (size_t)(w * C));
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* Three planes' rows (an RGB image's) interleaved into d, 16 pixels (48 floats) at a time, each
 * output register two permutes of the three inputs; returns the pixels done. Output float
 * j = 16 k + l is pixel j / 3's channel j % 3: lane l of register k takes a's or b's lane
 * (16 + lane for b) by AB[k][l], or c's lane CP[k][l] where FROM_C[k] has bit l (channel 2). */
static const int32_t AB[3][16] = {{0, 16, 0, 1, 17, 1, 2, 18, 2, 3, 19, 3, 4, 20, 4, 5},
                                  {21, 5, 6, 22, 6, 7, 23, 7, 8, 24, 8, 9, 25, 9, 10, 26},
                                  {10, 11, 27, 11, 12, 28, 12, 13, 29, 13, 14, 30, 14, 15, 31, 15}};
static const int32_t CP[3][16] = {{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5},
                                  {5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8, 9, 9, 9, 10, 10},
                                  {10, 11, 11, 11, 12, 12, 12, 13, 13, 13, 14, 14, 14, 15, 15, 15}};
static const __mmask16 FROM_C[3] = {0x4924, 0x2492, 0x9249};

__attribute__((target("avx512f"))) static int64_t interleave3(const float *s0, const float *s1, const float *s2, float *d,
                                                            int64_t w) {
    __m512i ab[3], cp[3];
    for (int k = 0; k < 3; k++) ab[k] = _mm512_loadu_si512(AB[k]), cp[k] = _mm512_loadu_si512(CP[k]);
    int64_t i = 0;
    for (; i + 16 <= w; i += 16) {
        __m512 a = _mm512_loadu_ps(s0 + i), b = _mm512_loadu_ps(s1 + i), cc = _mm512_loadu_ps(s2 + i);
        for (int k = 0; k < 3; k++) {
            __m512 v = _mm512_permutex2var_ps(a, ab[k], b);
            _mm512_storeu_ps(d + 3 * i + 16 * k, _mm512_mask_permutexvar_ps(v, FROM_C[k], cp[k], cc));
        }
    }
    return i;
}
#endif

void od_conv_pad_rows_planar(const float *x, int64_t H, int64_t W, int64_t C, int64_t r0, int64_t r1, float *xp,
                             int64_t HP, int64_t WP, int64_t pt, int64_t pl) {
    int64_t w = W < WP - pl ? W : WP - pl;
    for (int64_t r = r0; r < r1 && r + pt < HP && w > 0; r++) {
        float *d = xp + ((r + pt) * WP + pl) * C;
        const float *row = x + r * W;
        int64_t i = 0;
#if defined(__x86_64__) && defined(__GNUC__)
        if (C == 3 && __builtin_cpu_supports("avx512f")) i = interleave3(row, row + H * W, row + 2 * H * W, d, w);
#endif
        for (int64_t c = 0; c < C; c++) /* one plane's row into every C-th float of a cached row */
            for (int64_t k = i; k < w; k++) d[k * C + c] = row[c * H * W + k];
    }
}

void od_conv_pack_taps(const float *w, int64_t s_o, int64_t s_q, int64_t s_c, int64_t M, int64_t taps, int64_t C,
                       float *packed) {
    for (int64_t q = 0; q < taps; q++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t o = 0; o < M; o++) packed[(q * C + c) * M + o] = w[o * s_o + q * s_q + c * s_c];
}

od_status od_conv_state_create(od_step *s, od_conv_read_fn read, od_conv_state **out,
                               od_error *err) {
    const od_buf *x = s->in[0], *w = s->in[1];
    od_conv_state *cs = calloc(1, sizeof *cs);
    if (!cs) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = *out = cs;
    od_status st = read(s->node, x->dims, x->rank, w->dims, &cs->p, err);
    if (st) return st;
    cs->packed = od_alloc_large(sizeof(float) * (size_t)od_buf_count(w) + 1);
    if (!cs->packed) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    if (w->constant) od_conv_pack_weights(&cs->p, w->data, cs->packed);
    return OD_STATUS_OK;
}

od_status od_conv_state_created(od_conv_state *cs, const od_step *s, enum xnn_status r,
                                const char *what, od_error *err) {
    free(cs->packed);
    cs->packed = NULL;
    return od_xnn_check(r, err, s->node, what);
}

void od_conv_state_run_direct(od_step *s) {
    od_conv_state *cs = s->state;
    const od_buf *b = s->n_in > 2 ? s->in[2] : NULL;
    if (cs->repack) od_conv_pack_weights(&cs->p, s->in[1]->data, cs->packed);
    od_conv_direct(&cs->p, s->in[0]->dims[0], s->in[0]->data, cs->packed,
                   cs->bias ? cs->bias : b ? b->data : NULL, s->out[0]->data, s->pool);
}

od_status od_conv_state_use_direct(const od_step *s, od_conv_state *cs, od_error *err) {
    const od_buf *b = s->n_in > 2 ? s->in[2] : NULL;
    cs->repack = !s->in[1]->constant;
    if (b && b->constant) {
        cs->bias = malloc(sizeof(float) * (size_t)cs->p.cout);
        if (!cs->bias) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        memcpy(cs->bias, b->data, sizeof(float) * (size_t)cs->p.cout);
    }
    return OD_STATUS_OK;
}

void od_conv_state_destroy(od_step *s) {
    od_conv_state *cs = s->state;
    if (!cs) return;
    if (cs->xnn) xnn_delete_operator(cs->xnn);
    free(cs->packed);
    free(cs->bias);
    free(cs->xpad);
    free(cs->wino);
    free(cs->wino_busy);
    free(cs);
    s->state = NULL;
}

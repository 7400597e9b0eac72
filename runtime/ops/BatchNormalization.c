/* BatchNormalization, opsets 1-15: Y = (X - mean) / sqrt(var + epsilon) * scale
 * + B, per channel (dim 1), float32. Training (training_mode = 1, or any output beyond Y),
 * and opsets 7-8's spatial = 0 are refused as unsupported; opset 6's is_test and momentum do
 * not change inference. With constant parameters (the usual case) the per-channel factor
 * scale / sqrt(var + eps) and shift B - mean * factor are folded once in prepare; otherwise at
 * each run into memory allocated in prepare. Layout: spatial (channels-last, so a channel is
 * the last physical dim; a plain [N, C, ...] input also works). Backward: yes (training
 * kernels below, batch statistics; running mean and var updated with momentum). */
#include "../op.h"
#include "../train_internal.h"
#include "ew_common.h"

#include <math.h>
#include <stdlib.h>

static od_status bn_infer(od_infer_ctx *c) {
    if (c->n_in != 5)
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "takes 5 inputs, not %d",
                             c->n_in);
    for (int k = 1; k < c->n_out; k++)
        if (c->node->outputs[k] >= 0)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "training mode (outputs beyond Y) is not supported");
    if (od_attr_int(c->node, "training_mode", 0))
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "training_mode = 1 is not supported");
    if (c->opset < 9 && !od_attr_int(c->node, "spatial", 1))
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "spatial = 0 is not supported");
    od_status st = od_infer_expect(c, 0, 2, OD_MAX_RANK);
    if (st) return st;
    int64_t C = c->in[0]->dims[1];
    static const char *const names[] = {"", "scale", "B", "mean", "var"};
    for (int k = 1; k < 5; k++) {
        st = od_infer_expect(c, k, 1, 1);
        if (st) return st;
        if (c->in[k]->dims[0] != C)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                 "%s has %lld elements, the input %lld channels", names[k],
                                 (long long)c->in[k]->dims[0], (long long)C);
    }
    od_infer_same(c, 0, 0);
    return OD_STATUS_OK;
}

typedef struct bn_state {
    bool folded; /* factor and shift computed once */
    float epsilon;
    int64_t C, inner; /* inner: elements per channel run (1 when channels are last) */
    int64_t rows;     /* runs of C * inner elements */
    const float *x, *params[4];
    float *y, *factor, *shift;
} bn_state;

static void bn_fold(bn_state *b) {
    const float *scale = b->params[0], *bias = b->params[1], *mean = b->params[2],
                *var = b->params[3];
    for (int64_t c = 0; c < b->C; c++) {
        double f = scale[c] / sqrt((double)var[c] + b->epsilon);
        b->factor[c] = (float)f;
        b->shift[c] = (float)(bias[c] - mean[c] * f);
    }
}

bool od_bn_is_inference(const od_node *bn, int64_t opset) {
    if (bn->n_inputs != 5) return false;
    for (int k = 1; k < bn->n_outputs; k++)
        if (bn->outputs[k] >= 0) return false; /* training outputs */
    const od_attr *tm = od_node_attr(bn, "training_mode"), *sp = od_node_attr(bn, "spatial");
    if (tm && (tm->type != OD_ATTR_INT || tm->i)) return false;
    return !(opset < 9 && sp && sp->type == OD_ATTR_INT && !sp->i);
}

void od_bn_fold_into_conv(float *w, float *bias, int w_rank, const int64_t *w_dims, int64_t group,
                          bool transpose, const float *const bn[4], float epsilon) {
    const float *scale = bn[0], *shift = bn[1], *mean = bn[2], *var = bn[3];
    int64_t inner = od_dims_count(w_rank - 2, w_dims + 2);
    int64_t cout = transpose ? w_dims[1] * group : w_dims[0];
    if (!transpose) {
        int64_t per = w_dims[1] * inner;
        for (int64_t o = 0; o < cout; o++) {
            double f = scale[o] / sqrt((double)var[o] + epsilon);
            for (int64_t k = 0; k < per; k++) w[o * per + k] = (float)(w[o * per + k] * f);
        }
    } else { /* input channel ci feeds the outputs of its group */
        int64_t cin = w_dims[0], cpg_in = cin / group, cpg_out = w_dims[1];
        for (int64_t ci = 0; ci < cin; ci++)
            for (int64_t j = 0; j < cpg_out; j++) {
                int64_t o = (ci / cpg_in) * cpg_out + j;
                double f = scale[o] / sqrt((double)var[o] + epsilon);
                float *row = w + (ci * cpg_out + j) * inner;
                for (int64_t k = 0; k < inner; k++) row[k] = (float)(row[k] * f);
            }
    }
    for (int64_t o = 0; o < cout; o++) {
        double f = scale[o] / sqrt((double)var[o] + epsilon);
        bias[o] = (float)(((double)bias[o] - mean[o]) * f + shift[o]);
    }
}

static void bn_destroy(od_step *s) {
    bn_state *b = s->state;
    if (b) free(b->factor);
    free(b);
    s->state = NULL;
}

static od_status bn_prepare(od_step *s, od_error *err) {
    bn_state *b = calloc(1, sizeof *b);
    if (!b) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = b;
    const od_buf *x = s->in[0];
    b->epsilon = od_node_attr_float(s->node, "epsilon");
    b->C = x->dims[1];
    b->x = x->data;
    b->y = s->out[0]->data;
    bool last = x->rank == 2 || x->layout == OD_LAYOUT_CHANNELS_LAST;
    int64_t count = od_buf_count(x), spatial = od_dims_count(x->rank - 2, x->dims + 2);
    b->inner = last ? 1 : spatial;
    b->rows = b->C && b->inner ? count / (b->C * b->inner) : 0;
    b->folded = true;
    for (int k = 0; k < 4; k++) {
        b->params[k] = s->in[k + 1]->data;
        if (!s->in[k + 1]->constant) b->folded = false;
    }
    b->factor = malloc(sizeof(float) * 2 * (size_t)(b->C ? b->C : 1));
    if (!b->factor) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    b->shift = b->factor + b->C;
    if (b->folded) bn_fold(b);
    return OD_STATUS_OK;
}

/* Rows [first, end) of [rows, C, inner]. */
static void bn_rows(void *ctx, int64_t first, int64_t end) {
    const bn_state *b = ctx;
    int64_t C = b->C, inner = b->inner;
    for (int64_t r = first; r < end; r++) {
        const float *x = b->x + r * C * inner;
        float *y = b->y + r * C * inner;
        if (inner == 1) {
            for (int64_t c = 0; c < C; c++)
                y[c] = x[c] * b->factor[c] + b->shift[c];
            continue;
        }
        for (int64_t c = 0; c < C; c++) {
            float f = b->factor[c], sh = b->shift[c];
            for (int64_t i = 0; i < inner; i++)
                y[c * inner + i] = x[c * inner + i] * f + sh;
        }
    }
}

static od_status bn_run(od_step *s, od_error *err) {
    bn_state *b = s->state;
    if (!b->folded) bn_fold(b);
    ew_for_rows(s->pool, b->rows, b->C * b->inner, bn_rows, b);
    return OD_STATUS_OK;
}

/* ---- BatchNormalization: rows of C channels (channels-last, or [N, C]) --------------- */

/* The kernels walk a shard's rows as one run of floats, wd at a time: with C < 64 dividing 64,
 * wd = 64 floats are 64 / C rows, so the loops run long (resnet w0.5's 8 channels: 8-float
 * loops before, the BN passes 17% of a step). Lane k is channel k % C; per-channel values are
 * repeated over the wd lanes (bn_repeat). */
enum { BN_WIDE = 64, R_MEAN, R_ISTD, R_SCALE, R_SHIFT, R_K, R_A1, R_A2, R_N };

typedef struct bn_train {
    int64_t rows, C, wd;
    float eps, momentum;
    bool dx_set;           /* dx is written, not added (od_claim_grad) */
    bool dr_set;           /* likewise the gradient of a residual (input 5: an Add fused here) */
    bool fast;             /* the passes on bn_*64 (bn_fast) */
    float *mean, *inv_std; /* of the last forward */
    float *rep;            /* wd lanes for each R_ value (rep + (R - R_MEAN) * wd) */
    double *part;          /* per shard: 2*C partial sums */
} bn_train;

static float *bn_lanes(const bn_train *b, int r) { return b->rep + (size_t)(r - R_MEAN) * (size_t)b->wd; }

/* An Add fused in training (plan.c): input 5 is added to the output before the Relu. */
static bool bn_residual(const od_tstep *s) { return s->n_in > 5 && s->in[5]; }

/* Lanes r from per-channel src (NULL: already in the first C lanes). */
static void bn_repeat(bn_train *b, int r, const float *src) {
    float *d = bn_lanes(b, r);
    for (int64_t k = 0; k < b->wd; k++) d[k] = src && k < b->C ? src[k] : d[k % b->C];
}

/* With AVX-512 and wd == 64, the passes over whole wide rows keep the 64 lanes of each
 * per-channel value and of the sums in four registers each (GCC's own vectors of these loops
 * reload them every row); the same operations per element as the loops below, so the same bits.
 * Each returns where it stopped: the rest (a short last row) takes the loops below. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BN512 __attribute__((target("avx512f")))

static bool bn_fast(const bn_train *b) {
    return b->wd == BN_WIDE && od_avx512_on("OD_NO_AVX512_BN");
}

#define BN_LOAD4(v, p) for (int k = 0; k < 4; k++) v[k] = _mm512_loadu_ps((p) + 16 * k)

/* The forward's per-lane mean, inv_std, scale and shift, 4 registers each. */
typedef struct bn_affine {
    __m512 m[4], is[4], sc[4], sf[4];
} bn_affine;

BN512 static inline bn_affine bn_affine_load(const bn_train *b) {
    bn_affine a;
    BN_LOAD4(a.m, bn_lanes(b, R_MEAN));
    BN_LOAD4(a.is, bn_lanes(b, R_ISTD));
    BN_LOAD4(a.sc, bn_lanes(b, R_SCALE));
    BN_LOAD4(a.sf, bn_lanes(b, R_SHIFT));
    return a;
}

/* y = ((x - mean) * istd) * scale + shift in register k, as bn_apply_shard computes it */
BN512 static inline __m512 bn_y(__m512 x, const bn_affine *a, int k) {
    return _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(x, a->m[k]), a->is[k]), a->sc[k]), a->sf[k]);
}

/* Backward with a residual (Y non-NULL): the mask is the stored output's, and the masked dy is
 * the residual's gradient too (GR: written when b->dr_set, else added; NULL: none). */
BN512 static int64_t bn_sums64(const bn_train *b, const float *X, const float *G, const float *Y, float *GR, int64_t i,
                               int64_t end, bool backward, bool relu, float *acc) {
    __m512 s[4], q[4], zero = _mm512_setzero_ps();
    BN_LOAD4(s, acc);
    BN_LOAD4(q, acc + BN_WIDE);
    bn_affine a = bn_affine_load(b);
    for (; i + BN_WIDE <= end; i += BN_WIDE)
        for (int k = 0; k < 4; k++) {
            __m512 x = _mm512_loadu_ps(X + i + 16 * k);
            if (!backward) {
                s[k] = _mm512_add_ps(s[k], x), q[k] = _mm512_add_ps(q[k], _mm512_mul_ps(x, x));
                continue;
            }
            __m512 g = _mm512_loadu_ps(G + i + 16 * k);
            if (relu) {
                __m512 y = Y ? _mm512_loadu_ps(Y + i + 16 * k) : bn_y(x, &a, k);
                g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, zero, _CMP_GT_OQ), g);
            }
            if (GR) _mm512_storeu_ps(GR + i + 16 * k, b->dr_set ? g : _mm512_add_ps(_mm512_loadu_ps(GR + i + 16 * k), g));
            s[k] = _mm512_add_ps(s[k], g), q[k] = _mm512_add_ps(q[k], _mm512_mul_ps(g, _mm512_sub_ps(x, a.m[k])));
        }
    for (int k = 0; k < 4; k++) _mm512_storeu_ps(acc + 16 * k, s[k]), _mm512_storeu_ps(acc + BN_WIDE + 16 * k, q[k]);
    return i;
}

BN512 static int64_t bn_apply64(const bn_train *b, const float *X, const float *R, float *Y, int64_t i, int64_t end,
                                bool relu) {
    __m512 zero = _mm512_setzero_ps();
    bn_affine a = bn_affine_load(b);
    for (; i + BN_WIDE <= end; i += BN_WIDE)
        for (int k = 0; k < 4; k++) {
            __m512 v = bn_y(_mm512_loadu_ps(X + i + 16 * k), &a, k);
            if (R) v = _mm512_add_ps(v, _mm512_loadu_ps(R + i + 16 * k));
            if (relu) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), zero);
            _mm512_storeu_ps(Y + i + 16 * k, v);
        }
    return i;
}

BN512 static int64_t bn_dx64(const bn_train *b, const float *X, const float *G, const float *Y, float *DX, int64_t i,
                             int64_t end, bool relu) {
    __m512 kk[4], a1[4], a2[4], zero = _mm512_setzero_ps();
    bn_affine a = bn_affine_load(b);
    BN_LOAD4(kk, bn_lanes(b, R_K));
    BN_LOAD4(a1, bn_lanes(b, R_A1));
    BN_LOAD4(a2, bn_lanes(b, R_A2));
    for (; i + BN_WIDE <= end; i += BN_WIDE)
        for (int k = 0; k < 4; k++) {
            __m512 x = _mm512_loadu_ps(X + i + 16 * k), d = _mm512_loadu_ps(G + i + 16 * k);
            if (relu) {
                __m512 y = Y ? _mm512_loadu_ps(Y + i + 16 * k) : bn_y(x, &a, k);
                d = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, zero, _CMP_GT_OQ), d);
            }
            __m512 xh = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(x, a.m[k]), a.is[k]), a2[k]);
            __m512 v = _mm512_mul_ps(kk[k], _mm512_sub_ps(_mm512_sub_ps(d, a1[k]), xh));
            _mm512_storeu_ps(DX + i + 16 * k, b->dx_set ? v : _mm512_add_ps(_mm512_loadu_ps(DX + i + 16 * k), v));
        }
    return i;
}
#else
static bool bn_fast(const bn_train *b) { return false; }
static int64_t bn_sums64(const bn_train *b, const float *X, const float *G, const float *Y, float *GR, int64_t i,
                         int64_t end, bool backward, bool relu, float *acc) { return i; }
static int64_t bn_apply64(const bn_train *b, const float *X, const float *R, float *Y, int64_t i, int64_t end, bool relu) {
    return i;
}
static int64_t bn_dx64(const bn_train *b, const float *X, const float *G, const float *Y, float *DX, int64_t i, int64_t end,
                       bool relu) {
    return i;
}
#endif

static od_status bn_train_prepare(od_tstep *s, od_error *err) {
    for (int k = 1; k < 5; k++)
        if (k >= s->n_in || !s->in[k] || !s->in[k]->data)
            return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training needs float scale, B, mean and var");
    const od_tbuf *x = s->in[0];
    if (x->rank > 2 && !x->cl)
        return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training needs BatchNormalization on rank 2, 3 or 4");
    bn_train *b = calloc(1, sizeof *b);
    if (!b) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = b;
    b->C = x->rank > 1 ? x->dims[1] : 1;
    b->rows = b->C > 0 ? x->count / b->C : 0;
    b->wd = b->C > 0 && b->C < BN_WIDE && BN_WIDE % b->C == 0 ? BN_WIDE : b->C;
    b->eps = od_node_attr_float(s->node, "epsilon");
    b->momentum = od_node_attr_float(s->node, "momentum");
    int shards = s->threads > 0 ? s->threads : 1;
    b->mean = calloc((size_t)b->C * 2 + 1, sizeof(float));
    b->rep = calloc((size_t)b->wd * (R_N - R_MEAN) + 1, sizeof(float));
    b->part = calloc((size_t)b->C * 2 * (size_t)shards + 1, sizeof(double));
    if (!b->mean || !b->rep || !b->part) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    b->inv_std = b->mean + b->C;
    b->dx_set = od_claim_grad(s, 0);
    b->dr_set = s->n_in > 5 && od_claim_grad(s, 5);
    b->fast = bn_fast(b);
    return OD_STATUS_OK;
}

/* Per-shard sums over rows: of x and x^2 (forward), of dy and dy*(x - mean) (backward, dy
 * masked where a fused Relu clamped). The mask is the forward's output recomputed from x, the
 * same operations in the same order, so the same bits: y is not read, dy not rewritten. */
typedef struct bn_sums_ctx {
    od_tstep *s;
    bool backward;
} bn_sums_ctx;

OD_VECTOR_CLONES static void bn_sums_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    const bn_sums_ctx *bc = ctx;
    od_tstep *s = bc->s;
    bn_train *b = s->state;
    int64_t C = b->C, wd = b->wd, e = end * C;
    double *part = b->part + (size_t)shard * 2 * (size_t)C;
    float acc[2 * 1024];
    bool backward = bc->backward, relu = s->fused_relu, fast = b->fast;
    const float *Y = bn_residual(s) ? s->out[0]->data : NULL; /* the mask's source, with a residual */
    float *GR = backward && bn_residual(s) ? s->in[5]->grad : NULL;
    const float *X = s->in[0]->data, *G = s->out[0]->grad, *mean = bn_lanes(b, R_MEAN),
                *istd = bn_lanes(b, R_ISTD), *scale = bn_lanes(b, R_SCALE), *shift = bn_lanes(b, R_SHIFT);
    memset(part, 0, sizeof(double) * 2 * (size_t)C);
    for (int64_t c0 = 0; c0 < wd; c0 += 1024) {
        int64_t cn = wd - c0 < 1024 ? wd - c0 : 1024;
        for (int64_t i0 = begin * C; i0 < e; i0 += 256 * wd) { /* float sums of 256 rows, then double */
            int64_t i1 = i0 + 256 * wd < e ? i0 + 256 * wd : e;
            memset(acc, 0, sizeof(float) * 2 * (size_t)cn);
            int64_t i = i0 + c0;
            if (fast) i = bn_sums64(b, X, G, Y, GR, i, i1, backward, relu, acc);
            for (; i < i1; i += wd) {
                int64_t n = i1 - i < cn ? i1 - i : cn; /* the last wide row can be short */
                const float *x = X + i;
                if (!backward) {
                    for (int64_t c = 0; c < n; c++) acc[c] += x[c], acc[cn + c] += x[c] * x[c];
                } else if (Y) { /* a residual's: the mask from the output, the masked dy its gradient too */
                    const float *g = G + i, *y = Y + i, *m = mean + c0;
                    float *gr = GR ? GR + i : NULL;
                    for (int64_t c = 0; c < n; c++) {
                        float d = relu ? od_keep_if(g[c], y[c] > 0) : g[c];
                        if (gr) gr[c] = b->dr_set ? d : gr[c] + d;
                        acc[c] += d, acc[cn + c] += d * (x[c] - m[c]);
                    }
                } else if (!relu) {
                    const float *g = G + i, *m = mean + c0;
                    for (int64_t c = 0; c < n; c++) acc[c] += g[c], acc[cn + c] += g[c] * (x[c] - m[c]);
                } else {
                    const float *g = G + i, *m = mean + c0, *is = istd + c0, *sc = scale + c0, *sf = shift + c0;
                    for (int64_t c = 0; c < n; c++) {
                        float d = od_keep_if(g[c], (x[c] - m[c]) * is[c] * sc[c] + sf[c] > 0);
                        acc[c] += d, acc[cn + c] += d * (x[c] - m[c]);
                    }
                }
            }
            for (int64_t c = 0; c < cn; c++)
                part[(c0 + c) % C] += acc[c], part[C + (c0 + c) % C] += acc[cn + c];
        }
    }
}

/* Keep bn_sums_shard's mask the same expression. */
OD_VECTOR_CLONES static void bn_apply_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    bn_train *b = s->state;
    int64_t C = b->C, wd = b->wd, e = end * C;
    const float *mean = bn_lanes(b, R_MEAN), *istd = bn_lanes(b, R_ISTD), *scale = bn_lanes(b, R_SCALE),
                *shift = bn_lanes(b, R_SHIFT);
    bool relu = s->fused_relu;
    const float *R = bn_residual(s) ? s->in[5]->data : NULL;
    int64_t i = begin * C;
    if (b->fast) i = bn_apply64(b, s->in[0]->data, R, s->out[0]->data, i, e, relu);
    for (; i < e; i += wd) {
        int64_t n = e - i < wd ? e - i : wd;
        const float *x = s->in[0]->data + i, *r = R ? R + i : NULL;
        float *y = s->out[0]->data + i;
        for (int64_t c = 0; c < n; c++) {
            float v = (x[c] - mean[c]) * istd[c] * scale[c] + shift[c];
            if (r) v += r[c];
            y[c] = relu && v < 0 ? 0 : v;
        }
    }
}

static od_status bn_train_forward(od_tstep *s, od_error *err) {
    bn_train *b = s->state;
    int64_t C = b->C;
    float *rmean = s->in[3]->data, *rvar = s->in[4]->data;
    if (s->training) {
        bn_sums_ctx bc = {s, false};
        od_shards(s, b->rows, bn_sums_shard, &bc);
        int shards = od_shard_count(s, b->rows);
        for (int64_t c = 0; c < C; c++) {
            double sum = 0, sq = 0;
            for (int sh = 0; sh < shards; sh++) sum += b->part[(size_t)sh * 2 * C + c], sq += b->part[(size_t)sh * 2 * C + C + c];
            double cnt = (double)b->rows, mean = sum / cnt, dev = sq - sum * mean;
            if (dev < 0) dev = 0;
            double var = dev / cnt, unbiased = b->rows > 1 ? dev / (cnt - 1) : var;
            rmean[c] = (float)(b->momentum * rmean[c] + (1 - b->momentum) * mean);
            rvar[c] = (float)(b->momentum * rvar[c] + (1 - b->momentum) * unbiased);
            b->mean[c] = (float)mean;
            b->inv_std[c] = (float)(1.0 / sqrt(var + b->eps));
        }
    } else {
        for (int64_t c = 0; c < C; c++) b->mean[c] = rmean[c], b->inv_std[c] = (float)(1.0 / sqrt(rvar[c] + b->eps));
    }
    bn_repeat(b, R_MEAN, b->mean);
    bn_repeat(b, R_ISTD, b->inv_std);
    bn_repeat(b, R_SCALE, s->in[1]->data);
    bn_repeat(b, R_SHIFT, s->in[2]->data);
    od_shards(s, b->rows, bn_apply_shard, s);
    return OD_STATUS_OK;
}

/* dx = k (dy - a1 - xhat a2), per channel k = scale*inv_std, a1 = mean dy, a2 = mean dy*xhat
 * (training; 0 in eval mode). */
OD_VECTOR_CLONES static void bn_dx_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    bn_train *b = s->state;
    int64_t C = b->C, wd = b->wd, e = end * C;
    const float *k = bn_lanes(b, R_K), *a1 = bn_lanes(b, R_A1), *a2 = bn_lanes(b, R_A2), *mean = bn_lanes(b, R_MEAN),
                *istd = bn_lanes(b, R_ISTD), *scale = bn_lanes(b, R_SCALE), *shift = bn_lanes(b, R_SHIFT);
    bool relu = s->fused_relu;
    const float *Y = bn_residual(s) ? s->out[0]->data : NULL;
    int64_t i = begin * C;
    if (b->fast) i = bn_dx64(b, s->in[0]->data, s->out[0]->grad, Y, s->in[0]->grad, i, e, relu);
    for (; i < e; i += wd) {
        int64_t n = e - i < wd ? e - i : wd;
        const float *x = s->in[0]->data + i, *g = s->out[0]->grad + i, *y = Y ? Y + i : NULL;
        float *dx = s->in[0]->grad + i;
        for (int64_t c = 0; c < n; c++) { /* the mask as bn_sums_shard takes it */
            float d = !relu ? g[c]
                      : y   ? od_keep_if(g[c], y[c] > 0)
                            : od_keep_if(g[c], (x[c] - mean[c]) * istd[c] * scale[c] + shift[c] > 0);
            float v = k[c] * (d - a1[c] - (x[c] - mean[c]) * istd[c] * a2[c]);
            dx[c] = b->dx_set ? v : dx[c] + v;
        }
    }
}

static od_status bn_train_backward(od_tstep *s, od_error *err) {
    bn_train *b = s->state;
    int64_t C = b->C;
    bn_sums_ctx bc = {s, true};
    od_shards(s, b->rows, bn_sums_shard, &bc);
    int shards = od_shard_count(s, b->rows);
    float *k = bn_lanes(b, R_K), *a1 = bn_lanes(b, R_A1), *a2 = bn_lanes(b, R_A2);
    for (int64_t c = 0; c < C; c++) {
        double sdy = 0, sdyx = 0;
        for (int sh = 0; sh < shards; sh++) sdy += b->part[(size_t)sh * 2 * C + c], sdyx += b->part[(size_t)sh * 2 * C + C + c];
        sdyx *= b->inv_std[c];
        if (s->in[1]->grad) s->in[1]->grad[c] += (float)sdyx;
        if (s->in[2]->grad) s->in[2]->grad[c] += (float)sdy;
        k[c] = s->in[1]->data[c] * b->inv_std[c];
        a1[c] = s->training ? (float)(sdy / (double)b->rows) : 0.0f;
        a2[c] = s->training ? (float)(sdyx / (double)b->rows) : 0.0f;
    }
    if (s->in[0]->grad) {
        bn_repeat(b, R_K, NULL);
        bn_repeat(b, R_A1, NULL);
        bn_repeat(b, R_A2, NULL);
        od_shards(s, b->rows, bn_dx_shard, s);
    }
    return OD_STATUS_OK;
}

static void bn_train_destroy(od_tstep *s) {
    bn_train *b = s->state;
    if (b) free(b->mean), free(b->rep), free(b->part);
    free(b);
    s->state = NULL;
}

OD_OP_FACTS(BatchNormalization, 1,
            "consumed_inputs", "epsilon=1e-05", "is_test", "momentum=0.9", "spatial", "training_mode");
const od_op_desc od_op_BatchNormalization = {OD_OP_NAME(BatchNormalization), .channel_role = OD_CHANNELS_PER_CHANNEL, .stable_since = 9, .channel_inputs = 4, .per_sample = od_per_sample_always,
                                             .layout = OD_LAYOUT_POLICY_SPATIAL,
                                             .infer = bn_infer,
                                             .prepare = bn_prepare,
                                             .run = bn_run,
                                             .destroy = bn_destroy,
                                             .trained_inputs = 0x6, /* scale, B */
                                             .train_layout = OD_TRAIN_LAYOUT_SAME,
                                             .train_fuses_relu = true,
                                             .train_prepare = bn_train_prepare,
                                             .forward_train = bn_train_forward,
                                             .backward = bn_train_backward,
                                             .train_destroy = bn_train_destroy};

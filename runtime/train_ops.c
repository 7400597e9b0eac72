/* Training kernels: forward (keeping what backward needs) and backward, NCHW float32.
 * Convolutions and matrix products are im2col + OpenBLAS sgemm, split over the batch in
 * contiguous shards (one per thread) with per-shard weight-gradient buffers summed in a fixed
 * order, so that the same thread count gives the same bits. Every backward accumulates. */
#include "train_internal.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (beta == 0.0f)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, sizeof(float) * (size_t)N);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

static void add_into(float *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

static void relu_inplace(float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0;
}

/* dy = 0 where the fused Relu clamped (y == 0) */
static void relu_mask(const float *y, float *dy, int64_t n) {
    for (int64_t i = 0; i < n; i++) dy[i] = y[i] > 0 ? dy[i] : 0;
}

static void copy_forward(od_tstep *s) {
    if (s->out[0]->data != s->in[0]->data)
        memcpy(s->out[0]->data, s->in[0]->data, sizeof(float) * (size_t)s->out[0]->count);
}

static void copy_backward(od_tstep *s) {
    if (s->in[0]->grad) add_into(s->in[0]->grad, s->out[0]->grad, s->out[0]->count);
}

/* ---- Conv ------------------------------------------------------------------------------ */

typedef struct conv_train {
    int64_t C, H, W, M, KH, KW, OH, OW, G, Cg, Mg;
    int64_t sh, sw, dh, dw, ph, pw; /* begin pads; end pads follow from the output size */
    int64_t kk;      /* Cg * KH * KW */
    bool direct;     /* 1x1, stride 1, no pad: the input is its own column matrix */
    float *scratch;  /* per shard: cols [kk, OH*OW] and dW [M, kk] and db [M] */
    size_t shard_floats;
} conv_train;

static od_status conv_train_prepare(od_tstep *s, od_error *err) {
    const od_node *n = s->node;
    const od_tbuf *x = s->in[0], *w = s->in[1];
    if (x->rank != 4 && x->rank != 3)
        return od_node_error(err, OD_STATUS_UNSUPPORTED, n, "training supports 1-D and 2-D convolutions");
    conv_train *c = calloc(1, sizeof *c);
    if (!c) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = c;
    bool two = x->rank == 4;
    const od_tbuf *y = s->out[0];
    c->C = x->dims[1];
    c->H = two ? x->dims[2] : 1;
    c->W = x->dims[x->rank - 1];
    c->M = w->dims[0];
    c->KH = two ? w->dims[2] : 1;
    c->KW = w->dims[w->rank - 1];
    c->OH = two ? y->dims[2] : 1;
    c->OW = y->dims[y->rank - 1];
    c->G = od_attr_int(n, "group", 1);
    c->Cg = c->C / c->G;
    c->Mg = c->M / c->G;
    int64_t v[4] = {1, 1, 1, 1};
    int k = od_attr_ints(n, "strides", v, 4);
    c->sh = two && k > 0 ? v[0] : 1;
    c->sw = k > 0 ? v[k - 1] : 1;
    int64_t d[4] = {1, 1, 1, 1};
    k = od_attr_ints(n, "dilations", d, 4);
    c->dh = two && k > 0 ? d[0] : 1;
    c->dw = k > 0 ? d[k - 1] : 1;
    int64_t p[8] = {0};
    k = od_attr_ints(n, "pads", p, 8);
    c->ph = two && k > 0 ? p[0] : 0;
    c->pw = k > 0 ? p[two ? 1 : 0] : 0;
    char buf[32];
    const char *ap = od_attr_string(n, "auto_pad", "NOTSET", buf, sizeof buf);
    if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
        int64_t th = (c->OH - 1) * c->sh + c->dh * (c->KH - 1) + 1 - c->H;
        int64_t tw = (c->OW - 1) * c->sw + c->dw * (c->KW - 1) + 1 - c->W;
        if (th < 0) th = 0;
        if (tw < 0) tw = 0;
        bool upper = ap[5] == 'U';
        c->ph = upper ? th / 2 : th - th / 2;
        c->pw = upper ? tw / 2 : tw - tw / 2;
    } else if (strcmp(ap, "VALID") == 0) {
        c->ph = c->pw = 0;
    }
    c->kk = c->Cg * c->KH * c->KW;
    c->direct = c->KH == 1 && c->KW == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 && c->pw == 0;
    c->shard_floats = (size_t)(c->kk * c->OH * c->OW + c->M * c->kk + c->M);
    c->scratch = calloc(c->shard_floats * (size_t)(s->threads > 0 ? s->threads : 1) + 1, sizeof(float));
    if (!c->scratch) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

/* The outputs ox in [lo, hi) whose input column ox*sw - pw + j*dw lies inside [0, W). */
static void valid_range(const conv_train *c, int64_t j, int64_t *lo, int64_t *hi) {
    int64_t off = j * c->dw - c->pw; /* ix = ox*sw + off */
    int64_t a = off >= 0 ? 0 : (-off + c->sw - 1) / c->sw;
    int64_t b = c->W - off <= 0 ? 0 : (c->W - off + c->sw - 1) / c->sw;
    *lo = a < c->OW ? a : c->OW;
    *hi = b < c->OW ? b : c->OW;
    if (*hi < *lo) *hi = *lo;
}

/* cols[(c*KH + i)*KW + j][oy*OW + ox] = x[c][oy*sh - ph + i*dh][ox*sw - pw + j*dw] */
static void im2col(const conv_train *c, const float *x, float *cols) {
    int64_t ohw = c->OH * c->OW;
    for (int64_t ch = 0; ch < c->Cg; ch++)
        for (int64_t i = 0; i < c->KH; i++)
            for (int64_t j = 0; j < c->KW; j++) {
                float *row = cols + ((ch * c->KH + i) * c->KW + j) * ohw;
                const float *plane = x + ch * c->H * c->W;
                int64_t lo, hi, off = j * c->dw - c->pw;
                valid_range(c, j, &lo, &hi);
                for (int64_t oy = 0; oy < c->OH; oy++) {
                    int64_t iy = oy * c->sh - c->ph + i * c->dh;
                    float *r = row + oy * c->OW;
                    if (iy < 0 || iy >= c->H) {
                        memset(r, 0, sizeof(float) * (size_t)c->OW);
                        continue;
                    }
                    const float *line = plane + iy * c->W + off;
                    for (int64_t ox = 0; ox < lo; ox++) r[ox] = 0.0f;
                    if (c->sw == 1)
                        memcpy(r + lo, line + lo, sizeof(float) * (size_t)(hi - lo));
                    else
                        for (int64_t ox = lo; ox < hi; ox++) r[ox] = line[ox * c->sw];
                    for (int64_t ox = hi; ox < c->OW; ox++) r[ox] = 0.0f;
                }
            }
}

static void col2im_add(const conv_train *c, const float *cols, float *dx) {
    int64_t ohw = c->OH * c->OW;
    for (int64_t ch = 0; ch < c->Cg; ch++)
        for (int64_t i = 0; i < c->KH; i++)
            for (int64_t j = 0; j < c->KW; j++) {
                const float *row = cols + ((ch * c->KH + i) * c->KW + j) * ohw;
                float *plane = dx + ch * c->H * c->W;
                int64_t lo, hi, off = j * c->dw - c->pw;
                valid_range(c, j, &lo, &hi);
                for (int64_t oy = 0; oy < c->OH; oy++) {
                    int64_t iy = oy * c->sh - c->ph + i * c->dh;
                    if (iy < 0 || iy >= c->H) continue;
                    float *line = plane + iy * c->W + off;
                    const float *r = row + oy * c->OW;
                    if (c->sw == 1)
                        for (int64_t ox = lo; ox < hi; ox++) line[ox] += r[ox];
                    else
                        for (int64_t ox = lo; ox < hi; ox++) line[ox * c->sw] += r[ox];
                }
            }
}

static void conv_fwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    conv_train *c = s->state;
    const float *x = s->in[0]->data, *w = s->in[1]->data;
    const float *b = s->n_in > 2 && s->in[2] ? s->in[2]->data : NULL;
    float *y = s->out[0]->data, *cols = c->scratch + (size_t)shard * c->shard_floats;
    int64_t ohw = c->OH * c->OW;
    for (int64_t n = begin; n < end; n++)
        for (int64_t g = 0; g < c->G; g++) {
            const float *xg = x + (n * c->C + g * c->Cg) * c->H * c->W;
            float *yg = y + (n * c->M + g * c->Mg) * ohw;
            const float *src = xg;
            if (!c->direct) {
                im2col(c, xg, cols);
                src = cols;
            }
            sgemm(false, false, c->Mg, ohw, c->kk, 1.0f, w + g * c->Mg * c->kk, c->kk, src, ohw, 0.0f, yg, ohw);
            if (b)
                for (int64_t m = 0; m < c->Mg; m++) {
                    float bm = b[g * c->Mg + m], *row = yg + m * ohw;
                    for (int64_t i = 0; i < ohw; i++) row[i] += bm;
                }
            if (s->fused_relu) relu_inplace(yg, c->Mg * ohw);
        }
}

static void conv_train_forward(od_tstep *s) { od_shards(s, s->in[0]->dims[0], conv_fwd_shard, s); }

static void conv_bwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    conv_train *c = s->state;
    const float *x = s->in[0]->data, *w = s->in[1]->data, *dy = s->out[0]->grad;
    float *dx = s->in[0]->grad;
    bool want_w = s->in[1]->grad != NULL, want_b = s->n_in > 2 && s->in[2] && s->in[2]->grad;
    float *cols = c->scratch + (size_t)shard * c->shard_floats;
    float *dw = cols + c->kk * c->OH * c->OW, *db = dw + c->M * c->kk;
    int64_t ohw = c->OH * c->OW;
    memset(dw, 0, sizeof(float) * (size_t)(c->M * c->kk + c->M));
    if (s->fused_relu) relu_mask(s->out[0]->data + begin * c->M * ohw, s->out[0]->grad + begin * c->M * ohw, (end - begin) * c->M * ohw);
    for (int64_t n = begin; n < end; n++)
        for (int64_t g = 0; g < c->G; g++) {
            const float *xg = x + (n * c->C + g * c->Cg) * c->H * c->W;
            const float *dyg = dy + (n * c->M + g * c->Mg) * ohw;
            const float *wg = w + g * c->Mg * c->kk;
            if (want_w) {
                const float *src = xg;
                if (!c->direct) {
                    im2col(c, xg, cols);
                    src = cols;
                }
                sgemm(false, true, c->Mg, c->kk, ohw, 1.0f, dyg, ohw, src, ohw, 1.0f, dw + g * c->Mg * c->kk, c->kk);
            }
            if (want_b)
                for (int64_t m = 0; m < c->Mg; m++) {
                    const float *row = dyg + m * ohw;
                    float acc = 0;
                    for (int64_t i = 0; i < ohw; i++) acc += row[i];
                    db[g * c->Mg + m] += acc;
                }
            if (dx) {
                float *dxg = dx + (n * c->C + g * c->Cg) * c->H * c->W;
                if (c->direct) {
                    sgemm(true, false, c->kk, ohw, c->Mg, 1.0f, wg, c->kk, dyg, ohw, 1.0f, dxg, ohw);
                } else {
                    sgemm(true, false, c->kk, ohw, c->Mg, 1.0f, wg, c->kk, dyg, ohw, 0.0f, cols, ohw);
                    col2im_add(c, cols, dxg);
                }
            }
        }
}

static void conv_train_backward(od_tstep *s) {
    conv_train *c = s->state;
    int64_t batch = s->in[0]->dims[0];
    od_shards(s, batch, conv_bwd_shard, s);
    int shards = s->threads > 1 && batch > 1 ? (int)(batch < s->threads ? batch : s->threads) : 1;
    for (int sh = 0; sh < shards; sh++) {
        const float *dw = c->scratch + (size_t)sh * c->shard_floats + c->kk * c->OH * c->OW;
        if (s->in[1]->grad) add_into(s->in[1]->grad, dw, c->M * c->kk);
        if (s->n_in > 2 && s->in[2] && s->in[2]->grad) add_into(s->in[2]->grad, dw + c->M * c->kk, c->M);
    }
}

static void conv_train_destroy(od_tstep *s) {
    conv_train *c = s->state;
    if (c) free(c->scratch);
    free(c);
    s->state = NULL;
}

/* ---- Gemm and MatMul (2-D constant-shaped B) ---------------------------------------------- */

typedef struct gemm_train {
    bool ta, tb, matmul;
    float alpha, beta;
    int64_t M, N, K;
    float *scratch; /* per shard dB [K*N] */
} gemm_train;

static od_status gemm_train_prepare(od_tstep *s, od_error *err) {
    gemm_train *g = calloc(1, sizeof *g);
    if (!g) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = g;
    const od_tbuf *A = s->in[0], *B = s->in[1];
    g->matmul = strcmp(s->node->op_type, "MatMul") == 0;
    if (g->matmul) {
        if (B->rank != 2 || A->rank < 2)
            return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training MatMul needs A of rank >= 2 and a 2-D B");
        g->alpha = 1;
        g->K = A->dims[A->rank - 1];
        g->M = A->count / g->K;
        g->N = B->dims[1];
    } else {
        g->ta = od_attr_int(s->node, "transA", 0);
        g->tb = od_attr_int(s->node, "transB", 0);
        g->alpha = od_attr_float(s->node, "alpha", 1.0f);
        g->beta = od_attr_float(s->node, "beta", 1.0f);
        g->M = s->out[0]->dims[0];
        g->N = s->out[0]->dims[1];
        g->K = A->dims[g->ta ? 0 : 1];
        if (g->ta && s->threads > 1)
            return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training with transA needs one thread");
    }
    g->scratch = calloc((size_t)(g->K * g->N) * (size_t)(s->threads > 0 ? s->threads : 1) + 1, sizeof(float));
    if (!g->scratch) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

/* C of Gemm broadcast into rows [begin, end) of Y. */
static void gemm_add_c(const gemm_train *g, const od_tbuf *C, float *Y, int64_t begin, int64_t end) {
    int64_t rows = C->rank == 2 ? C->dims[0] : 1, cols = C->rank >= 1 ? C->dims[C->rank - 1] : 1;
    for (int64_t i = begin; i < end; i++)
        for (int64_t j = 0; j < g->N; j++)
            Y[i * g->N + j] += g->beta * C->data[(rows == 1 ? 0 : i) * cols + (cols == 1 ? 0 : j)];
}

static void gemm_fwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    gemm_train *g = s->state;
    const float *A = s->in[0]->data, *B = s->in[1]->data;
    float *Y = s->out[0]->data;
    int64_t lda = g->ta ? g->M : g->K, ldb = g->tb ? g->K : g->N;
    const float *a = g->ta ? A + begin : A + begin * g->K;
    sgemm(g->ta, g->tb, end - begin, g->N, g->K, g->alpha, a, lda, B, ldb, 0.0f, Y + begin * g->N, g->N);
    if (!g->matmul && s->n_in > 2 && s->in[2]) gemm_add_c(g, s->in[2], Y, begin, end);
    if (s->fused_relu) relu_inplace(Y + begin * g->N, (end - begin) * g->N);
}

static void gemm_train_forward(od_tstep *s) {
    gemm_train *g = s->state;
    od_shards(s, g->M, gemm_fwd_shard, s);
}

static void gemm_bwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    gemm_train *g = s->state;
    const float *A = s->in[0]->data, *B = s->in[1]->data, *dY = s->out[0]->grad + begin * g->N;
    float *dA = s->in[0]->grad;
    int64_t rows = end - begin;
    if (dA) { /* dA' = alpha dY B'^T */
        if (!g->ta)
            sgemm(false, !g->tb, rows, g->K, g->N, g->alpha, dY, g->N, B, g->tb ? g->K : g->N, 1.0f, dA + begin * g->K, g->K);
        else /* A is [K, M]: dA[:, rows] = alpha B' dY^T */
            sgemm(g->tb, true, g->K, rows, g->N, g->alpha, B, g->tb ? g->K : g->N, dY, g->N, 1.0f, dA + begin, g->M);
    }
    if (s->in[1]->grad) { /* dB' = alpha A'^T dY over these rows */
        float *dB = g->scratch + (size_t)shard * (size_t)(g->K * g->N);
        const float *a = g->ta ? A + begin : A + begin * g->K;
        int64_t lda = g->ta ? g->M : g->K;
        if (!g->tb) /* dB [K, N] = A'^T [K, rows] dY [rows, N] */
            sgemm(!g->ta, false, g->K, g->N, rows, g->alpha, a, lda, dY, g->N, 0.0f, dB, g->N);
        else /* dB [N, K] = dY^T [N, rows] A' [rows, K] */
            sgemm(true, g->ta, g->N, g->K, rows, g->alpha, dY, g->N, a, lda, 0.0f, dB, g->K);
    }
}

static void gemm_train_backward(od_tstep *s) {
    gemm_train *g = s->state;
    if (s->fused_relu) relu_mask(s->out[0]->data, s->out[0]->grad, s->out[0]->count);
    od_shards(s, g->M, gemm_bwd_shard, s);
    int shards = s->threads > 1 && g->M > 1 ? (int)(g->M < s->threads ? g->M : s->threads) : 1;
    if (s->in[1]->grad)
        for (int sh = 0; sh < shards; sh++) add_into(s->in[1]->grad, g->scratch + (size_t)sh * (size_t)(g->K * g->N), g->K * g->N);
    const od_tbuf *C = !g->matmul && s->n_in > 2 ? s->in[2] : NULL;
    if (C && C->grad) {
        const float *dY = s->out[0]->grad;
        int64_t rows = C->rank == 2 ? C->dims[0] : 1, cols = C->rank >= 1 ? C->dims[C->rank - 1] : 1;
        for (int64_t i = 0; i < g->M; i++)
            for (int64_t j = 0; j < g->N; j++)
                C->grad[(rows == 1 ? 0 : i) * cols + (cols == 1 ? 0 : j)] += g->beta * dY[i * g->N + j];
    }
}

static void gemm_train_destroy(od_tstep *s) {
    gemm_train *g = s->state;
    if (g) free(g->scratch);
    free(g);
    s->state = NULL;
}

/* ---- BatchNormalization (training: batch statistics; eval: running ones) --------------- */

typedef struct bn_train {
    int64_t N, C, S;
    float eps, momentum;
    float *mean, *inv_std; /* of the last forward */
} bn_train;

static od_status bn_train_prepare(od_tstep *s, od_error *err) {
    for (int k = 1; k < 5; k++)
        if (k >= s->n_in || !s->in[k] || !s->in[k]->data)
            return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training needs float scale, B, mean and var");
    bn_train *b = calloc(1, sizeof *b);
    if (!b) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = b;
    const od_tbuf *x = s->in[0];
    b->N = x->dims[0];
    b->C = x->rank > 1 ? x->dims[1] : 1;
    b->S = b->N * b->C > 0 ? x->count / (b->N * b->C) : 1;
    b->eps = od_attr_float(s->node, "epsilon", 1e-5f);
    b->momentum = od_attr_float(s->node, "momentum", 0.9f);
    b->mean = calloc((size_t)b->C * 2 + 1, sizeof(float));
    if (!b->mean) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    b->inv_std = b->mean + b->C;
    return OD_STATUS_OK;
}

static void bn_fwd_channel(void *ctx, size_t c) {
    od_tstep *s = ctx;
    bn_train *b = s->state;
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data, *rmean = s->in[3]->data, *rvar = s->in[4]->data;
    float scale = s->in[1]->data[c], shift = s->in[2]->data[c];
    double mean, var;
    if (s->training) {
        /* one pass: float partial sums per row, summed in double */
        double sum = 0, sq = 0;
        for (int64_t n = 0; n < b->N; n++) {
            const float *p = x + (n * b->C + (int64_t)c) * b->S;
            float s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
            for (int64_t i = 0; i < b->S; i++) s1 += p[i], s2 += p[i] * p[i];
            sum += s1;
            sq += s2;
        }
        int64_t cnt = b->N * b->S;
        mean = sum / (double)cnt;
        sq = sq - sum * mean; /* sum of squared deviations */
        if (sq < 0) sq = 0;
        var = sq / (double)cnt;
        double unbiased = cnt > 1 ? sq / (double)(cnt - 1) : var;
        rmean[c] = (float)(b->momentum * rmean[c] + (1 - b->momentum) * mean);
        rvar[c] = (float)(b->momentum * rvar[c] + (1 - b->momentum) * unbiased);
    } else {
        mean = rmean[c];
        var = rvar[c];
    }
    float inv = (float)(1.0 / sqrt(var + b->eps)), m = (float)mean;
    b->mean[c] = m;
    b->inv_std[c] = inv;
    for (int64_t n = 0; n < b->N; n++) {
        const float *p = x + (n * b->C + (int64_t)c) * b->S;
        float *q = y + (n * b->C + (int64_t)c) * b->S;
        float k = inv * scale, o = shift - m * inv * scale;
        if (s->fused_relu)
            for (int64_t i = 0; i < b->S; i++) {
                float v = p[i] * k + o;
                q[i] = v > 0 ? v : 0;
            }
        else
            for (int64_t i = 0; i < b->S; i++) q[i] = p[i] * k + o;
    }
}

static void bn_train_forward(od_tstep *s) {
    bn_train *b = s->state;
    od_parallel_for(s->pool, (size_t)b->C, bn_fwd_channel, s);
}

static void bn_bwd_channel(void *ctx, size_t c) {
    od_tstep *s = ctx;
    bn_train *b = s->state;
    const float *x = s->in[0]->data, *dy = s->out[0]->grad;
    float scale = s->in[1]->data[c], m = b->mean[c], inv = b->inv_std[c];
    if (s->fused_relu)
        for (int64_t n = 0; n < b->N; n++) {
            int64_t o = (n * b->C + (int64_t)c) * b->S;
            relu_mask(s->out[0]->data + o, s->out[0]->grad + o, b->S);
        }
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int64_t n = 0; n < b->N; n++) {
        const float *p = x + (n * b->C + (int64_t)c) * b->S, *g = dy + (n * b->C + (int64_t)c) * b->S;
        float s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
        for (int64_t i = 0; i < b->S; i++) {
            s1 += g[i];
            s2 += g[i] * (p[i] - m);
        }
        sum_dy += s1;
        sum_dy_xhat += (double)s2 * inv;
    }
    if (s->in[1]->grad) s->in[1]->grad[c] += (float)sum_dy_xhat;
    if (s->in[2]->grad) s->in[2]->grad[c] += (float)sum_dy;
    float *dx = s->in[0]->grad;
    if (!dx) return;
    int64_t cnt = b->N * b->S;
    float k = scale * inv;
    float a1 = s->training ? (float)(sum_dy / cnt) : 0.0f, a2 = s->training ? (float)(sum_dy_xhat / cnt) : 0.0f;
    for (int64_t n = 0; n < b->N; n++) {
        const float *p = x + (n * b->C + (int64_t)c) * b->S, *g = dy + (n * b->C + (int64_t)c) * b->S;
        float *q = dx + (n * b->C + (int64_t)c) * b->S;
        for (int64_t i = 0; i < b->S; i++) q[i] += k * (g[i] - a1 - (p[i] - m) * inv * a2);
    }
}

static void bn_train_backward(od_tstep *s) {
    bn_train *b = s->state;
    od_parallel_for(s->pool, (size_t)b->C, bn_bwd_channel, s);
}

static void bn_train_destroy(od_tstep *s) {
    bn_train *b = s->state;
    if (b) free(b->mean);
    free(b);
    s->state = NULL;
}

/* ---- element-wise activations -------------------------------------------------------- */

typedef enum act_kind { ACT_RELU, ACT_LEAKY, ACT_CLIP, ACT_HARDSWISH, ACT_SIGMOID, ACT_TANH, ACT_ELU } act_kind;

typedef struct act_train {
    act_kind kind;
    float a, b; /* LeakyRelu/Elu alpha; Clip min, max */
} act_train;

static od_status act_prepare(od_tstep *s, od_error *err) {
    act_train *a = calloc(1, sizeof *a);
    if (!a) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = a;
    const char *op = s->node->op_type;
    if (!strcmp(op, "Relu")) a->kind = ACT_RELU;
    else if (!strcmp(op, "LeakyRelu")) a->kind = ACT_LEAKY, a->a = od_attr_float(s->node, "alpha", 0.01f);
    else if (!strcmp(op, "Elu")) a->kind = ACT_ELU, a->a = od_attr_float(s->node, "alpha", 1.0f);
    else if (!strcmp(op, "HardSwish")) a->kind = ACT_HARDSWISH;
    else if (!strcmp(op, "Sigmoid")) a->kind = ACT_SIGMOID;
    else if (!strcmp(op, "Tanh")) a->kind = ACT_TANH;
    else {
        a->kind = ACT_CLIP;
        a->a = od_attr_float(s->node, "min", -FLT_MAX);
        a->b = od_attr_float(s->node, "max", FLT_MAX);
        for (int k = 1; k < 3 && k < s->n_in; k++) {
            if (!s->in[k]) continue;
            if (!s->in[k]->constant || s->in[k]->count != 1)
                return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "Clip bounds must be constant scalars");
            float v = s->in[k]->data ? s->in[k]->data[0] : 0.0f;
            if (k == 1) a->a = v;
            else a->b = v;
        }
    }
    return OD_STATUS_OK;
}

static void act_forward(od_tstep *s) {
    const act_train *a = s->state;
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data;
    int64_t n = s->out[0]->count;
    switch (a->kind) {
    case ACT_RELU: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0; break;
    case ACT_LEAKY: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : a->a * x[i]; break;
    case ACT_ELU: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : a->a * expm1f(x[i]); break;
    case ACT_CLIP: for (int64_t i = 0; i < n; i++) y[i] = x[i] < a->a ? a->a : x[i] > a->b ? a->b : x[i]; break;
    case ACT_HARDSWISH:
        for (int64_t i = 0; i < n; i++) {
            float t = x[i] + 3;
            t = t < 0 ? 0 : t > 6 ? 6 : t;
            y[i] = x[i] * t / 6;
        }
        break;
    case ACT_SIGMOID: for (int64_t i = 0; i < n; i++) y[i] = 1 / (1 + expf(-x[i])); break;
    case ACT_TANH: for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]); break;
    }
}

static void act_backward(od_tstep *s) {
    const act_train *a = s->state;
    const float *x = s->in[0]->data, *y = s->out[0]->data, *dy = s->out[0]->grad;
    float *dx = s->in[0]->grad;
    int64_t n = s->out[0]->count;
    switch (a->kind) {
    case ACT_RELU: for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : 0; break;
    case ACT_LEAKY: for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : a->a * dy[i]; break;
    case ACT_ELU: for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0 ? dy[i] : dy[i] * (y[i] + a->a); break;
    case ACT_CLIP: for (int64_t i = 0; i < n; i++) dx[i] += x[i] >= a->a && x[i] <= a->b ? dy[i] : 0; break;
    case ACT_HARDSWISH:
        for (int64_t i = 0; i < n; i++) dx[i] += x[i] < -3 ? 0 : x[i] > 3 ? dy[i] : dy[i] * (2 * x[i] + 3) / 6;
        break;
    case ACT_SIGMOID: for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1 - y[i]); break;
    case ACT_TANH: for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1 - y[i] * y[i]); break;
    }
}

/* ---- pooling ------------------------------------------------------------------------------ */

typedef struct pool_train {
    int64_t N, C, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
    bool max, include_pad, global;
    int32_t *argmax; /* max pool: input offset within the plane of each output */
} pool_train;

static od_status pool_prepare(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0], *y = s->out[0];
    if (x->rank != 4) return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training supports 2-D pooling only");
    if (s->n_out > 1 && s->out[1]) return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "the Indices output is not supported");
    pool_train *p = calloc(1, sizeof *p);
    if (!p) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = p;
    const char *op = s->node->op_type;
    p->global = !strncmp(op, "Global", 6);
    p->max = strstr(op, "Max") != NULL;
    p->N = x->dims[0], p->C = x->dims[1], p->H = x->dims[2], p->W = x->dims[3];
    p->OH = y->dims[2], p->OW = y->dims[3];
    p->sh = p->sw = p->dh = p->dw = 1;
    if (p->global) {
        p->KH = p->H, p->KW = p->W;
    } else {
        int64_t v[4];
        if (od_attr_ints(s->node, "kernel_shape", v, 4) != 2) return od_node_error(err, OD_STATUS_INVALID_MODEL, s->node, "kernel_shape needs 2 values");
        p->KH = v[0], p->KW = v[1];
        if (od_attr_ints(s->node, "strides", v, 4) == 2) p->sh = v[0], p->sw = v[1];
        if (od_attr_ints(s->node, "dilations", v, 4) == 2) p->dh = v[0], p->dw = v[1];
        int64_t pads[4] = {0};
        if (od_attr_ints(s->node, "pads", pads, 4) == 4) p->ph = pads[0], p->pw = pads[1];
        char buf[32];
        const char *ap = od_attr_string(s->node, "auto_pad", "NOTSET", buf, sizeof buf);
        if (!strncmp(ap, "SAME", 4)) {
            int64_t th = (p->OH - 1) * p->sh + p->dh * (p->KH - 1) + 1 - p->H;
            int64_t tw = (p->OW - 1) * p->sw + p->dw * (p->KW - 1) + 1 - p->W;
            th = th < 0 ? 0 : th, tw = tw < 0 ? 0 : tw;
            p->ph = ap[5] == 'U' ? th / 2 : th - th / 2;
            p->pw = ap[5] == 'U' ? tw / 2 : tw - tw / 2;
        }
        p->include_pad = od_attr_int(s->node, "count_include_pad", 0) != 0;
    }
    if (p->max) {
        p->argmax = calloc((size_t)(p->N * p->C * p->OH * p->OW) + 1, sizeof(int32_t));
        if (!p->argmax) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    return OD_STATUS_OK;
}

static void pool_fwd_plane(void *ctx, size_t plane) {
    od_tstep *s = ctx;
    pool_train *p = s->state;
    const float *x = s->in[0]->data + plane * p->H * p->W;
    float *y = s->out[0]->data + plane * p->OH * p->OW;
    int32_t *am = p->argmax ? p->argmax + plane * p->OH * p->OW : NULL;
    if (p->max && p->KH == 2 && p->KW == 2 && p->sh == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0 && p->dh == 1 &&
        p->dw == 1 && 2 * p->OH <= p->H && 2 * p->OW <= p->W) { /* the common 2x2 window, no edges */
        for (int64_t oy = 0; oy < p->OH; oy++)
            for (int64_t ox = 0; ox < p->OW; ox++) {
                int32_t i0 = (int32_t)(2 * oy * p->W + 2 * ox), best = i0;
                int32_t cand[3] = {i0 + 1, i0 + (int32_t)p->W, i0 + (int32_t)p->W + 1};
                for (int k = 0; k < 3; k++)
                    if (x[cand[k]] > x[best]) best = cand[k];
                y[oy * p->OW + ox] = x[best];
                am[oy * p->OW + ox] = best;
            }
        return;
    }
    for (int64_t oy = 0; oy < p->OH; oy++)
        for (int64_t ox = 0; ox < p->OW; ox++) {
            float best = -INFINITY, sum = 0;
            int32_t arg = -1;
            int64_t cnt = 0;
            for (int64_t i = 0; i < p->KH; i++) {
                int64_t iy = oy * p->sh - p->ph + i * p->dh;
                for (int64_t j = 0; j < p->KW; j++) {
                    int64_t ix = ox * p->sw - p->pw + j * p->dw;
                    bool inside = iy >= 0 && iy < p->H && ix >= 0 && ix < p->W;
                    if (!inside) {
                        /* count_include_pad counts pads, but not cells past the padded edge */
                        if (p->include_pad && iy < p->H + p->ph && ix < p->W + p->pw) cnt++;
                        continue;
                    }
                    float v = x[iy * p->W + ix];
                    cnt++;
                    sum += v;
                    if (v > best || arg < 0) best = v, arg = (int32_t)(iy * p->W + ix);
                }
            }
            if (p->max) {
                y[oy * p->OW + ox] = best;
                am[oy * p->OW + ox] = arg;
            } else {
                y[oy * p->OW + ox] = cnt ? sum / (float)cnt : 0;
            }
        }
}

static void pool_forward(od_tstep *s) {
    pool_train *p = s->state;
    od_parallel_for(s->pool, (size_t)(p->N * p->C), pool_fwd_plane, s);
}

static void pool_bwd_plane(void *ctx, size_t plane) {
    od_tstep *s = ctx;
    pool_train *p = s->state;
    float *dx = s->in[0]->grad + plane * p->H * p->W;
    const float *dy = s->out[0]->grad + plane * p->OH * p->OW;
    if (p->max) {
        const int32_t *am = p->argmax + plane * p->OH * p->OW;
        for (int64_t o = 0; o < p->OH * p->OW; o++)
            if (am[o] >= 0) dx[am[o]] += dy[o];
        return;
    }
    for (int64_t oy = 0; oy < p->OH; oy++)
        for (int64_t ox = 0; ox < p->OW; ox++) {
            int64_t cnt = 0;
            for (int pass = 0; pass < 2; pass++) {
                float g = pass ? dy[oy * p->OW + ox] / (float)(cnt ? cnt : 1) : 0;
                for (int64_t i = 0; i < p->KH; i++) {
                    int64_t iy = oy * p->sh - p->ph + i * p->dh;
                    for (int64_t j = 0; j < p->KW; j++) {
                        int64_t ix = ox * p->sw - p->pw + j * p->dw;
                        bool inside = iy >= 0 && iy < p->H && ix >= 0 && ix < p->W;
                        if (!pass) {
                            if (inside || (p->include_pad && iy < p->H + p->ph && ix < p->W + p->pw)) cnt++;
                        } else if (inside) {
                            dx[iy * p->W + ix] += g;
                        }
                    }
                }
            }
        }
}

static void pool_backward(od_tstep *s) {
    pool_train *p = s->state;
    od_parallel_for(s->pool, (size_t)(p->N * p->C), pool_bwd_plane, s);
}

static void pool_destroy(od_tstep *s) {
    pool_train *p = s->state;
    if (p) free(p->argmax);
    free(p);
    s->state = NULL;
}

/* ---- Add, Sub, Mul with broadcasting ---------------------------------------------------------- */

/* Strides of an input broadcast to the output's dims (0 where it repeats). */
static void bstrides(const od_tbuf *in, const od_tbuf *out, int64_t *st) {
    int pad = out->rank - in->rank;
    int64_t stride = 1;
    for (int d = out->rank - 1; d >= 0; d--) {
        int64_t dim = d < pad ? 1 : in->dims[d - pad];
        st[d] = dim == 1 ? 0 : stride;
        stride *= dim;
    }
}

static int binary_kind(const od_tstep *s) { return s->node->op_type[0]; } /* 'A', 'S', 'M' */

static void binary_forward(od_tstep *s) {
    const od_tbuf *a = s->in[0], *b = s->in[1], *o = s->out[0];
    int k = binary_kind(s);
    float *y = o->data;
    if (a->count == o->count && b->count == o->count) {
        for (int64_t i = 0; i < o->count; i++)
            y[i] = k == 'A' ? a->data[i] + b->data[i] : k == 'S' ? a->data[i] - b->data[i] : a->data[i] * b->data[i];
        return;
    }
    int64_t sa[OD_MAX_RANK], sb[OD_MAX_RANK];
    bstrides(a, o, sa);
    bstrides(b, o, sb);
    for (int64_t i = 0; i < o->count; i++) {
        int64_t rem = i, ia = 0, ib = 0;
        for (int d = o->rank - 1; d >= 0; d--) {
            int64_t idx = rem % o->dims[d];
            rem /= o->dims[d];
            ia += idx * sa[d];
            ib += idx * sb[d];
        }
        y[i] = k == 'A' ? a->data[ia] + b->data[ib] : k == 'S' ? a->data[ia] - b->data[ib] : a->data[ia] * b->data[ib];
    }
}

static void binary_backward(od_tstep *s) {
    const od_tbuf *a = s->in[0], *b = s->in[1], *o = s->out[0];
    int k = binary_kind(s);
    const float *dy = o->grad;
    int64_t sa[OD_MAX_RANK], sb[OD_MAX_RANK];
    bstrides(a, o, sa);
    bstrides(b, o, sb);
    bool same = a->count == o->count && b->count == o->count;
    for (int64_t i = 0; i < o->count; i++) {
        int64_t ia = i, ib = i;
        if (!same) {
            int64_t rem = i;
            ia = ib = 0;
            for (int d = o->rank - 1; d >= 0; d--) {
                int64_t idx = rem % o->dims[d];
                rem /= o->dims[d];
                ia += idx * sa[d];
                ib += idx * sb[d];
            }
        }
        if (a->grad) a->grad[ia] += k == 'M' ? dy[i] * b->data[ib] : dy[i];
        if (b->grad) b->grad[ib] += k == 'M' ? dy[i] * a->data[ia] : k == 'S' ? -dy[i] : dy[i];
    }
}

/* ---- Dropout ---------------------------------------------------------------------------- */

typedef struct dropout_train {
    float ratio;
    uint8_t *mask;
} dropout_train;

static od_status dropout_prepare(od_tstep *s, od_error *err) {
    dropout_train *d = calloc(1, sizeof *d);
    if (!d) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = d;
    d->ratio = od_attr_float(s->node, "ratio", 0.5f);
    if (s->n_in > 1 && s->in[1] && s->in[1]->data) d->ratio = s->in[1]->data[0];
    if (!(d->ratio >= 0 && d->ratio < 1)) return od_node_error(err, OD_STATUS_INVALID_MODEL, s->node, "ratio must be in [0, 1)");
    d->mask = calloc((size_t)s->out[0]->count + 1, 1);
    if (!d->mask) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

static uint64_t splitmix(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static void dropout_forward(od_tstep *s) {
    dropout_train *d = s->state;
    const float *x = s->in[0]->data;
    float *y = s->out[0]->data;
    int64_t n = s->out[0]->count;
    if (!s->training || d->ratio == 0) {
        memset(d->mask, 1, (size_t)n);
        memcpy(y, x, sizeof(float) * (size_t)n);
        return;
    }
    uint64_t base = splitmix(s->seed ^ splitmix(s->calls));
    float keep = 1 - d->ratio, scale = 1 / keep;
    uint64_t threshold = (uint64_t)(keep * 18446744073709551616.0);
    for (int64_t i = 0; i < n; i++) {
        d->mask[i] = splitmix(base + (uint64_t)i) < threshold;
        y[i] = d->mask[i] ? x[i] * scale : 0;
    }
}

static void dropout_backward(od_tstep *s) {
    dropout_train *d = s->state;
    float scale = s->training && d->ratio > 0 ? 1 / (1 - d->ratio) : 1;
    for (int64_t i = 0; i < s->out[0]->count; i++)
        if (d->mask[i]) s->in[0]->grad[i] += s->out[0]->grad[i] * scale;
}

static void dropout_destroy(od_tstep *s) {
    dropout_train *d = s->state;
    if (d) free(d->mask);
    free(d);
    s->state = NULL;
}

/* ---- Concat --------------------------------------------------------------------------------- */

static void concat_walk(od_tstep *s, bool backward) {
    const od_tbuf *o = s->out[0];
    int axis = od_axis(od_attr_int(s->node, "axis", 1), o->rank);
    int64_t outer = od_dims_count(axis, o->dims), inner = od_dims_count(o->rank - axis - 1, o->dims + axis + 1);
    int64_t offset = 0;
    for (int k = 0; k < s->n_in; k++) {
        od_tbuf *in = s->in[k];
        if (!in) continue;
        int64_t block = in->dims[axis] * inner;
        for (int64_t i = 0; i < outer; i++) {
            float *dst = o->data + i * o->dims[axis] * inner + offset;
            if (!backward) memcpy(dst, in->data + i * block, sizeof(float) * (size_t)block);
            else if (in->grad) add_into(in->grad + i * block, o->grad + i * o->dims[axis] * inner + offset, block);
        }
        offset += block;
    }
}

static void concat_forward(od_tstep *s) { concat_walk(s, false); }
static void concat_backward(od_tstep *s) { concat_walk(s, true); }

/* ---- the table --------------------------------------------------------------------------------- */

static const od_train_op train_ops[] = {
    {"Conv", 0x6, conv_train_prepare, conv_train_forward, conv_train_backward, conv_train_destroy},
    {"Gemm", 0x6, gemm_train_prepare, gemm_train_forward, gemm_train_backward, gemm_train_destroy},
    {"MatMul", 0x2, gemm_train_prepare, gemm_train_forward, gemm_train_backward, gemm_train_destroy},
    {"BatchNormalization", 0x6, bn_train_prepare, bn_train_forward, bn_train_backward, bn_train_destroy},
    {"Relu", 0, act_prepare, act_forward, act_backward, NULL},
    {"LeakyRelu", 0, act_prepare, act_forward, act_backward, NULL},
    {"Elu", 0, act_prepare, act_forward, act_backward, NULL},
    {"Clip", 0, act_prepare, act_forward, act_backward, NULL},
    {"HardSwish", 0, act_prepare, act_forward, act_backward, NULL},
    {"Sigmoid", 0, act_prepare, act_forward, act_backward, NULL},
    {"Tanh", 0, act_prepare, act_forward, act_backward, NULL},
    {"MaxPool", 0, pool_prepare, pool_forward, pool_backward, pool_destroy},
    {"AveragePool", 0, pool_prepare, pool_forward, pool_backward, pool_destroy},
    {"GlobalAveragePool", 0, pool_prepare, pool_forward, pool_backward, pool_destroy},
    {"GlobalMaxPool", 0, pool_prepare, pool_forward, pool_backward, pool_destroy},
    {"Add", 0x3, NULL, binary_forward, binary_backward, NULL},
    {"Sub", 0x3, NULL, binary_forward, binary_backward, NULL},
    {"Mul", 0x3, NULL, binary_forward, binary_backward, NULL},
    {"Flatten", 0, NULL, copy_forward, copy_backward, NULL},
    {"Reshape", 0, NULL, copy_forward, copy_backward, NULL},
    {"Squeeze", 0, NULL, copy_forward, copy_backward, NULL},
    {"Unsqueeze", 0, NULL, copy_forward, copy_backward, NULL},
    {"Identity", 0, NULL, copy_forward, copy_backward, NULL},
    {"Dropout", 0, dropout_prepare, dropout_forward, dropout_backward, dropout_destroy},
    {"Concat", 0, NULL, concat_forward, concat_backward, NULL},
};

const od_train_op *od_train_op_find(const char *op_type) {
    for (size_t i = 0; i < sizeof train_ops / sizeof *train_ops; i++)
        if (!strcmp(train_ops[i].name, op_type)) return &train_ops[i];
    return NULL;
}

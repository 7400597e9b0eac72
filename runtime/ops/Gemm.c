/* Gemm, opsets 1-13: Y = alpha * A' * B' + beta * C, transA, transB, C (optional from opset 11)
 * broadcast to [M, N] (the pre-7 `broadcast` attribute is not needed to read it).
 * A constant B (the usual Linear layer) runs on XNNPACK's fully-connected operator with alpha
 * folded into the weights and beta*C into its bias when C is per column; otherwise OpenBLAS's
 * sgemm. Backward: yes (training kernels at the end, shared with MatMul). Layout: plain. */
#include "../train_internal.h"
#include "qs8_common.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

extern const od_op_desc od_op_Gemm;

static od_status gemm_infer(od_infer_ctx *c) {
    od_status st = od_infer_expect(c, 0, 2, 2);
    if (!st) st = od_infer_expect(c, 1, 2, 2);
    if (st) return st;
    bool ta = od_attr_int(c->node, "transA", 0), tb = od_attr_int(c->node, "transB", 0);
    int64_t M = c->in[0]->dims[ta], K = c->in[0]->dims[!ta];
    int64_t K2 = c->in[1]->dims[tb], N = c->in[1]->dims[!tb];
    if (K != K2)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "A has %lld columns, B %lld rows",
                             (long long)K, (long long)K2);
    c->out[0].dtype = OD_DTYPE_FLOAT;
    c->out[0].rank = 2;
    c->out[0].dims[0] = M;
    c->out[0].dims[1] = N;
    if (c->n_in > 2 && c->in[2]) {
        const od_shape_info *C = c->in[2];
        if (C->dtype != OD_DTYPE_FLOAT)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "C has element type %s; only float is supported",
                                 od_dtype_name(C->dtype));
        if (C->rank > 2)
            return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "C has rank %d; at most 2",
                                 C->rank);
        int64_t want[2] = {M, N};
        for (int d = 0; d < C->rank; d++) {
            int64_t cd = C->dims[d], od = want[2 - C->rank + d];
            if (cd != 1 && cd != od)
                return od_node_error(c->err, OD_STATUS_SHAPE, c->node,
                                     "C does not broadcast to [%lld, %lld]", (long long)M,
                                     (long long)N);
        }
    }
    return OD_STATUS_OK;
}

static int64_t gemm_macs(const od_node *n, const od_shape_info *const *in,
                         const od_shape_info *out) {
    bool ta = od_attr_int(n, "transA", 0);
    return od_macs_mul(od_macs_mul(out->dims[0], out->dims[1]), in[0]->dims[!ta]);
}

typedef struct gemm_state {
    xnn_operator_t xnn;
    bool ta, tb;
    float alpha, beta;
    int64_t M, N, K;
} gemm_state;

static void gemm_destroy(od_step *s) {
    gemm_state *g = s->state;
    if (!g) return;
    if (g->xnn) xnn_delete_operator(g->xnn);
    free(g);
    s->state = NULL;
}

/* C is per column when every row is the same: shape [N], [1, N] or a scalar. */
static bool c_is_per_column(const od_buf *C) {
    return C->rank == 0 || (C->rank == 1) || (C->rank == 2 && C->dims[0] == 1);
}

static od_status gemm_prepare(od_step *s, od_error *err) {
    gemm_state *g = calloc(1, sizeof *g);
    if (!g) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = g;
    const od_node *n = s->node;
    g->ta = od_attr_int(n, "transA", 0);
    g->tb = od_attr_int(n, "transB", 0);
    g->alpha = od_attr_float(n, "alpha", 1.0f);
    g->beta = od_attr_float(n, "beta", 1.0f);
    const od_buf *A = s->in[0], *B = s->in[1], *C = s->n_in > 2 ? s->in[2] : NULL;
    g->M = s->out[0]->dims[0];
    g->N = s->out[0]->dims[1];
    g->K = A->dims[!g->ta];
    size_t M = (size_t)g->M, N = (size_t)g->N, K = (size_t)g->K;
    /* XNNPACK may read a little past A's end: only arena buffers leave room for that. */
    bool fc = B->constant && !A->constant && !g->ta && K > 0 && N > 0 &&
              (!C || (C->constant && c_is_per_column(C)));
    if (fc) {
        /* XNNPACK wants weights [N, K]: B' with alpha folded in. */
        float *w = malloc(sizeof(float) * N * K + 1), *bias = calloc(N + 1, sizeof(float));
        if (!w || !bias) {
            free(w);
            free(bias);
            return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        }
        const float *b = B->data;
        for (size_t j = 0; j < N; j++)
            for (size_t k = 0; k < K; k++)
                w[j * K + k] = g->alpha * (g->tb ? b[j * K + k] : b[k * N + j]);
        if (C) {
            const float *cd = C->data;
            size_t cn = (size_t)od_buf_count(C);
            for (size_t j = 0; j < N; j++)
                bias[j] = g->beta * cd[cn == 1 ? 0 : j];
        }
        enum xnn_status r =
            xnn_create_fully_connected_nc_f32(K, N, K, N, w, bias, s->act_min, s->act_max, 0, &g->xnn);
        free(w);
        free(bias);
        od_status st = od_xnn_check(r, err, n, "create fully connected");
        if (st) return st;
        r = xnn_setup_fully_connected_nc_f32(g->xnn, M, A->data, s->out[0]->data, s->pool);
        return od_xnn_check(r, err, n, "setup fully connected");
    }
    return OD_STATUS_OK;
}

/* out = beta * C broadcast to [M, N] */
static void fill_c(const od_buf *C, float beta, float *out, size_t M, size_t N) {
    const float *c = C->data;
    size_t r = C->rank == 2 ? (size_t)C->dims[0] : 1,
           k = C->rank >= 1 ? (size_t)C->dims[C->rank - 1] : 1;
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++)
            out[i * N + j] = beta * c[(r == 1 ? 0 : i) * k + (k == 1 ? 0 : j)];
}

static od_status gemm_blas(od_step *s);

static od_status gemm_run(od_step *s, od_error *err) {
    gemm_state *g = s->state;
    if (g->xnn)
        return od_xnn_check(xnn_run_operator(g->xnn, s->pool), err, s->node, "run fully connected");
    gemm_blas(s);
    od_step_clamp(s, s->out[0]->data, od_buf_count(s->out[0]));
    return OD_STATUS_OK;
}

static od_status gemm_blas(od_step *s) {
    gemm_state *g = s->state;
    const od_buf *A = s->in[0], *B = s->in[1], *C = s->n_in > 2 ? s->in[2] : NULL;
    float *Y = s->out[0]->data;
    int M = (int)g->M, N = (int)g->N, K = (int)g->K;
    float beta = 0.0f;
    if (C) {
        fill_c(C, g->beta, Y, (size_t)M, (size_t)N);
        beta = 1.0f;
    }
    if (K == 0 || M == 0 || N == 0) { /* sgemm refuses zero leading dims */
        if (!C) memset(Y, 0, sizeof(float) * (size_t)M * (size_t)N);
        return OD_STATUS_OK;
    }
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans,
                M, N, K, g->alpha, A->data, g->ta ? M : K, B->data, g->tb ? K : N, beta, Y, N);
    return OD_STATUS_OK;
}

/* ---- training: Gemm, and MatMul with a 2-D B (MatMul.c names these kernels) ---------------------------------------------- */

typedef struct gemm_train {
    bool ta, tb, matmul;
    float alpha, beta;
    int64_t M, N, K;
    float *scratch; /* per shard dB [K*N] */
} gemm_train;

od_status od_gemm_train_prepare(od_tstep *s, od_error *err) {
    gemm_train *g = calloc(1, sizeof *g);
    if (!g) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = g;
    const od_tbuf *A = s->in[0], *B = s->in[1];
    g->matmul = s->op != &od_op_Gemm;
    if (A->cl && A->rank >= 3)
        return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training a MatMul on a channels-last activation is not supported");
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
    od_sgemm(g->ta, g->tb, end - begin, g->N, g->K, g->alpha, a, lda, B, ldb, 0.0f, Y + begin * g->N, g->N);
    if (!g->matmul && s->n_in > 2 && s->in[2]) gemm_add_c(g, s->in[2], Y, begin, end);
    if (s->fused_relu) od_relu_inplace(Y + begin * g->N, (end - begin) * g->N);
}

od_status od_gemm_train_forward(od_tstep *s, od_error *err) {
    gemm_train *g = s->state;
    od_shards(s, g->M, gemm_fwd_shard, s);
    return OD_STATUS_OK;
}

static void gemm_bwd_shard(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    gemm_train *g = s->state;
    const float *A = s->in[0]->data, *B = s->in[1]->data, *dY = s->out[0]->grad + begin * g->N;
    float *dA = s->in[0]->grad;
    int64_t rows = end - begin;
    if (dA) { /* dA' = alpha dY B'^T */
        if (!g->ta)
            od_sgemm(false, !g->tb, rows, g->K, g->N, g->alpha, dY, g->N, B, g->tb ? g->K : g->N, 1.0f, dA + begin * g->K, g->K);
        else /* A is [K, M]: dA[:, rows] = alpha B' dY^T */
            od_sgemm(g->tb, true, g->K, rows, g->N, g->alpha, B, g->tb ? g->K : g->N, dY, g->N, 1.0f, dA + begin, g->M);
    }
    if (s->in[1]->grad) { /* dB' = alpha A'^T dY over these rows */
        float *dB = g->scratch + (size_t)shard * (size_t)(g->K * g->N);
        const float *a = g->ta ? A + begin : A + begin * g->K;
        int64_t lda = g->ta ? g->M : g->K;
        if (!g->tb) /* dB [K, N] = A'^T [K, rows] dY [rows, N] */
            od_sgemm(!g->ta, false, g->K, g->N, rows, g->alpha, a, lda, dY, g->N, 0.0f, dB, g->N);
        else /* dB [N, K] = dY^T [N, rows] A' [rows, K] */
            od_sgemm(true, g->ta, g->N, g->K, rows, g->alpha, dY, g->N, a, lda, 0.0f, dB, g->K);
    }
}

od_status od_gemm_train_backward(od_tstep *s, od_error *err) {
    gemm_train *g = s->state;
    if (s->fused_relu) od_relu_mask(s->out[0]->data, s->out[0]->grad, s->out[0]->count);
    od_shards(s, g->M, gemm_bwd_shard, s);
    int shards = od_shard_count(s, g->M);
    if (s->in[1]->grad)
        for (int sh = 0; sh < shards; sh++) od_add_into(s->in[1]->grad, g->scratch + (size_t)sh * (size_t)(g->K * g->N), g->K * g->N);
    const od_tbuf *C = !g->matmul && s->n_in > 2 ? s->in[2] : NULL;
    if (C && C->grad) {
        const float *dY = s->out[0]->grad;
        int64_t rows = C->rank == 2 ? C->dims[0] : 1, cols = C->rank >= 1 ? C->dims[C->rank - 1] : 1;
        for (int64_t i = 0; i < g->M; i++)
            for (int64_t j = 0; j < g->N; j++)
                C->grad[(rows == 1 ? 0 : i) * cols + (cols == 1 ? 0 : j)] += g->beta * dY[i * g->N + j];
    }
    return OD_STATUS_OK;
}

void od_gemm_train_destroy(od_tstep *s) {
    gemm_train *g = s->state;
    if (g) free(g->scratch);
    free(g);
    s->state = NULL;
}

OD_OP_FACTS(Gemm, 1, "alpha=1", "beta=1", "broadcast", "transA=0", "transB=0");
/* rows of A are samples unless A is transposed */
static bool gemm_per_sample(const od_node *n, int rank) { return od_attr_int(n, "transA", 0) == 0; }

/* B is [K, N], or [N, K] when transposed */
static int gemm_weight_axis(const od_node *n, int rank) {
    return rank == 2 ? (od_attr_int(n, "transB", 0) ? 0 : 1) : -1;
}

/* int8 (quantized execution, plan_qs8.c): A [N, K] untransposed, a constant B, alpha 1, and
 * beta 1 with a constant per-column C (or none): a QC8 1x1 convolution. */
static bool gemm_qs8_accepts(const od_node *n, const od_shape_info *const *in) {
    if (od_attr_int(n, "transA", 0) || od_attr_float(n, "alpha", 1.0f) != 1.0f) return false;
    if (!in[0] || in[0]->rank != 2 || !in[1] || !in[1]->constant || in[1]->rank != 2) return false;
    int64_t M = in[1]->dims[od_attr_int(n, "transB", 0) ? 0 : 1];
    const od_shape_info *c = n->n_inputs > 2 ? in[2] : NULL;
    return !c || (c->constant && c->dtype == OD_DTYPE_FLOAT && c->rank == 1 && c->dims[0] == M &&
                  od_attr_float(n, "beta", 1.0f) == 1.0f);
}

static od_status gemm_qs8_prepare(od_step *s, od_error *err) {
    bool tb = od_attr_int(s->node, "transB", 0);
    const od_buf *a = s->in[0], *c = s->n_in > 2 ? s->in[2] : NULL;
    int64_t K = a->dims[1], M = s->in[1]->dims[tb ? 0 : 1];
    return od_qs8_dense_prepare(s, a->dims[0], K, M, !tb, c ? c->data : NULL, err);
}

const od_op_desc od_qs8_Gemm = {.name = "Gemm (int8)", .fuses_activation = true, .prepare = gemm_qs8_prepare,
                                .run = od_qs8_xnn_run, .destroy = od_qs8_xnn_destroy};

const od_op_desc od_op_Gemm = {OD_OP_NAME(Gemm), .channel_role = OD_CHANNELS_MIXES, .stable_since = 7,
                               .per_sample = gemm_per_sample,
                               .weight_axis = gemm_weight_axis,
                               .infer = gemm_infer,
                               .prepare = gemm_prepare,
                               .run = gemm_run,
                               .destroy = gemm_destroy,
                               .macs = gemm_macs,
                               .fuses_activation = true,
                               .qs8 = &od_qs8_Gemm, .qs8_accepts = gemm_qs8_accepts,
                               .trained_inputs = 0x6, /* B, C */
                               .train_layout = OD_TRAIN_LAYOUT_PLAIN,
                               .train_fuses_relu = true,
                               .train_prepare = od_gemm_train_prepare,
                               .forward_train = od_gemm_train_forward,
                               .backward = od_gemm_train_backward,
                               .train_destroy = od_gemm_train_destroy};

/* MatMul, opsets 1-13: numpy.matmul semantics (a 1-D operand is promoted to a matrix and the
 * added dim removed from the result; batch dims broadcast). Float32. A constant 2-D B (the
 * usual projection) runs on XNNPACK's fully-connected operator over every leading row of A,
 * with the weights packed once; anything else runs OpenBLAS's sgemm per broadcast batch item.
 * Backward: with a 2-D B, through Gemm.c's training kernels; else (attention's activation x
 * activation products, [N, h, T, d] x [N, h, d, T], batch dims broadcasting) per batch item on
 * OpenBLAS, a broadcast operand's gradient summed over the items that share it. Both operands
 * need rank >= 2 in training. Layout: plain. */
#include "../train_internal.h"
#include "qs8_common.h"
#include "strided.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

/* The problem as matrices: out batch dims, and per operand its batch dims right-aligned to
 * them (1 where broadcast). */
typedef struct matmul_dims {
    int64_t M, K, N;
    int nb; /* batch rank */
    int64_t batch[OD_MAX_RANK], a_batch[OD_MAX_RANK], b_batch[OD_MAX_RANK];
} matmul_dims;

static od_status matmul_dims_read(const od_node *n, const int64_t *a, int ra, const int64_t *b,
                                  int rb, matmul_dims *m, od_error *err) {
    memset(m, 0, sizeof *m);
    m->M = ra == 1 ? 1 : a[ra - 2];
    m->K = a[ra - 1];
    int64_t kb = rb == 1 ? b[0] : b[rb - 2];
    m->N = rb == 1 ? 1 : b[rb - 1];
    if (m->K != kb)
        return od_node_error(err, OD_STATUS_SHAPE, n, "A has %lld columns, B %lld rows",
                             (long long)m->K, (long long)kb);
    int na = ra > 2 ? ra - 2 : 0, nbb = rb > 2 ? rb - 2 : 0;
    m->nb = na > nbb ? na : nbb;
    for (int d = 0; d < m->nb; d++) {
        int ia = d - (m->nb - na), ib = d - (m->nb - nbb);
        int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return od_node_error(err, OD_STATUS_SHAPE, n,
                                 "batch dims %lld and %lld do not broadcast", (long long)da,
                                 (long long)db);
        m->a_batch[d] = da;
        m->b_batch[d] = db;
        m->batch[d] = da == 1 ? db : da;
    }
    return OD_STATUS_OK;
}

static od_status matmul_infer(od_infer_ctx *c) {
    od_status st = od_infer_expect(c, 0, 1, OD_MAX_RANK);
    if (!st) st = od_infer_expect(c, 1, 1, OD_MAX_RANK);
    if (st) return st;
    const od_shape_info *a = c->in[0], *b = c->in[1];
    matmul_dims m;
    st = matmul_dims_read(c->node, a->dims, a->rank, b->dims, b->rank, &m, c->err);
    if (st) return st;
    od_shape_info *o = &c->out[0];
    o->dtype = OD_DTYPE_FLOAT;
    o->rank = 0;
    for (int d = 0; d < m.nb; d++) o->dims[o->rank++] = m.batch[d];
    if (a->rank > 1) o->dims[o->rank++] = m.M;
    if (b->rank > 1) o->dims[o->rank++] = m.N;
    return OD_STATUS_OK;
}

static int64_t matmul_macs(const od_node *n, const od_shape_info *const *in,
                           const od_shape_info *out) {
    const od_shape_info *a = in[0];
    return od_macs_mul(od_dims_count(out->rank, out->dims), a->dims[a->rank - 1]);
}

typedef struct matmul_state {
    xnn_operator_t xnn;
    matmul_dims m;
} matmul_state;

static void matmul_destroy(od_step *s) {
    matmul_state *ms = s->state;
    if (!ms) return;
    if (ms->xnn) xnn_delete_operator(ms->xnn);
    free(ms);
    s->state = NULL;
}

static od_status matmul_prepare(od_step *s, od_error *err) {
    const od_buf *A = s->in[0], *B = s->in[1];
    matmul_state *ms = calloc(1, sizeof *ms);
    if (!ms) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = ms;
    od_status st = matmul_dims_read(s->node, A->dims, A->rank, B->dims, B->rank, &ms->m, err);
    if (st) return st;
    /* XNNPACK may read a little past A's end: only arena buffers leave room for that. */
    if (!B->constant || B->rank != 2 || A->constant || ms->m.K < 1 || ms->m.N < 1)
        return OD_STATUS_OK;
    size_t K = (size_t)ms->m.K, N = (size_t)ms->m.N, rows = (size_t)(od_buf_count(A) / ms->m.K);
    enum xnn_status r = xnn_create_fully_connected_nc_f32(
        K, N, K, N, B->data, NULL, -INFINITY, INFINITY, XNN_FLAG_TRANSPOSE_WEIGHTS, &ms->xnn);
    st = od_xnn_check(r, err, s->node, "create fully connected");
    if (st) return st;
    r = xnn_setup_fully_connected_nc_f32(ms->xnn, rows, A->data, s->out[0]->data, s->pool);
    return od_xnn_check(r, err, s->node, "setup fully connected");
}

static od_status matmul_run(od_step *s, od_error *err) {
    matmul_state *ms = s->state;
    if (ms->xnn)
        return od_xnn_check(xnn_run_operator(ms->xnn, s->pool), err, s->node,
                            "run fully connected");
    const matmul_dims *m = &ms->m;
    const float *A = s->in[0]->data, *B = s->in[1]->data;
    float *Y = s->out[0]->data;
    int64_t items = od_dims_count(m->nb, m->batch), mn = m->M * m->N;
    if (m->K == 0) {
        memset(Y, 0, sizeof(float) * (size_t)(items * mn));
        return OD_STATUS_OK;
    }
    for (int64_t i = 0; i < items; i++) {
        /* decode the batch index, last dim fastest; broadcast dims add nothing */
        int64_t rest = i, ia = 0, ib = 0, sa = m->M * m->K, sb = m->K * m->N;
        for (int d = m->nb - 1; d >= 0; d--) {
            int64_t idx = rest % m->batch[d];
            rest /= m->batch[d];
            if (m->a_batch[d] > 1) ia += idx * sa;
            if (m->b_batch[d] > 1) ib += idx * sb;
            sa *= m->a_batch[d];
            sb *= m->b_batch[d];
        }
        if (mn)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m->M, (int)m->N,
                        (int)m->K, 1.0f, A + ia, (int)m->K, B + ib, (int)m->N, 0.0f, Y + i * mn,
                        (int)m->N);
    }
    return OD_STATUS_OK;
}

/* ---- training with B of rank other than 2 ---------------------------------------------------- */

/* Offsets of batch item i's matrices in A and B (broadcast dims add nothing). */
static void matmul_item(const matmul_dims *m, int64_t i, int64_t *ia, int64_t *ib) {
    int64_t rest = i, sa = m->M * m->K, sb = m->K * m->N;
    *ia = *ib = 0;
    for (int d = m->nb - 1; d >= 0; d--) {
        int64_t idx = rest % m->batch[d];
        rest /= m->batch[d];
        if (m->a_batch[d] > 1) *ia += idx * sa;
        if (m->b_batch[d] > 1) *ib += idx * sb;
        sa *= m->a_batch[d];
        sb *= m->b_batch[d];
    }
}

/* A 2-D B with A in ONNX order (a projection) runs on Gemm.c's kernels, whose state the step
 * then holds. */
static bool matmul_on_gemm(const od_tstep *s) { return s->in[1]->rank == 2 && !(s->in[0]->cl && s->in[0]->rank >= 3); }

/* Otherwise: a channels-last operand (a Reshape's 4-D
 * output) is multiplied from a copy in ONNX order, its gradient added back through strides. */
typedef struct matmul_train {
    matmul_dims m;
    bool broadcast;        /* some batch dim of A or B is broadcast: items share gradients */
    float *plain[2];       /* per operand: its copy in ONNX order when channels-last, else NULL */
    float *plain_grad[2];  /* and its gradient before it is added back */
    const float *x[2];     /* this pass's operands */
    float *dx[2];          /* and where their gradients go (NULL: none) */
} matmul_train;

static od_status matmul_train_prepare(od_tstep *s, od_error *err) {
    const od_tbuf *A = s->in[0], *B = s->in[1];
    if (matmul_on_gemm(s)) return od_gemm_train_prepare(s, err);
    matmul_train *t = calloc(1, sizeof *t);
    if (!t) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = t;
    if (A->rank < 2 || B->rank < 2)
        return od_node_error(err, OD_STATUS_UNSUPPORTED, s->node, "training MatMul needs operands of rank >= 2");
    od_status st = matmul_dims_read(s->node, A->dims, A->rank, B->dims, B->rank, &t->m, err);
    if (st) return st;
    for (int d = 0; d < t->m.nb; d++)
        t->broadcast |= t->m.a_batch[d] != t->m.batch[d] || t->m.b_batch[d] != t->m.batch[d];
    for (int k = 0; k < 2; k++) {
        if (!s->in[k]->cl) continue;
        t->plain[k] = malloc(sizeof(float) * (size_t)(s->in[k]->count + 1));
        t->plain_grad[k] = malloc(sizeof(float) * (size_t)(s->in[k]->count + 1));
        if (!t->plain[k] || !t->plain_grad[k]) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    return OD_STATUS_OK;
}

static void matmul_fwd_items(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    const matmul_train *t = s->state;
    const matmul_dims *m = &t->m;
    for (int64_t i = begin; i < end; i++) {
        int64_t ia, ib;
        matmul_item(m, i, &ia, &ib);
        od_sgemm(false, false, m->M, m->N, m->K, 1.0f, t->x[0] + ia, m->K, t->x[1] + ib, m->N, 0.0f,
                 s->out[0]->data + i * m->M * m->N, m->N);
    }
}

/* dA_i += dY_i B_i^T, dB_i += A_i^T dY_i */
static void matmul_bwd_items(void *ctx, int shard, int64_t begin, int64_t end) {
    od_tstep *s = ctx;
    const matmul_train *t = s->state;
    const matmul_dims *m = &t->m;
    for (int64_t i = begin; i < end; i++) {
        int64_t ia, ib;
        matmul_item(m, i, &ia, &ib);
        const float *dY = s->out[0]->grad + i * m->M * m->N;
        if (t->dx[0]) od_sgemm(false, true, m->M, m->K, m->N, 1.0f, dY, m->N, t->x[1] + ib, m->N, 1.0f, t->dx[0] + ia, m->K);
        if (t->dx[1]) od_sgemm(true, false, m->K, m->N, m->M, 1.0f, t->x[0] + ia, m->K, dY, m->N, 1.0f, t->dx[1] + ib, m->N);
    }
}

/* The operand's strides in its layout, and in ONNX order. */
static void matmul_views(const od_tbuf *x, int64_t *phys, int64_t *plain) {
    od_tbuf_strides(x, phys);
    od_strides(x->rank, x->dims, plain);
}

static od_status matmul_train_forward(od_tstep *s, od_error *err) {
    if (matmul_on_gemm(s)) return od_gemm_train_forward(s, err);
    matmul_train *t = s->state;
    for (int k = 0; k < 2; k++) {
        const od_tbuf *x = s->in[k];
        t->x[k] = x->data;
        if (!t->plain[k]) continue;
        int64_t phys[OD_MAX_RANK], plain[OD_MAX_RANK];
        matmul_views(x, phys, plain);
        od_copy_strided(t->plain[k], plain, x->data, phys, x->rank, x->dims, sizeof(float), NULL);
        t->x[k] = t->plain[k];
    }
    od_shards(s, od_dims_count(t->m.nb, t->m.batch), matmul_fwd_items, s);
    return OD_STATUS_OK;
}

static od_status matmul_train_backward(od_tstep *s, od_error *err) {
    if (matmul_on_gemm(s)) return od_gemm_train_backward(s, err);
    matmul_train *t = s->state;
    for (int k = 0; k < 2; k++) {
        t->dx[k] = s->in[k]->grad;
        if (t->dx[k] && t->plain_grad[k]) {
            memset(t->plain_grad[k], 0, sizeof(float) * (size_t)s->in[k]->count);
            t->dx[k] = t->plain_grad[k];
        }
    }
    int64_t items = od_dims_count(t->m.nb, t->m.batch);
    if (t->broadcast) matmul_bwd_items(s, 0, 0, items); /* items share gradients: one thread */
    else od_shards(s, items, matmul_bwd_items, s);
    for (int k = 0; k < 2; k++) {
        const od_tbuf *x = s->in[k];
        if (!x->grad || !t->plain_grad[k]) continue;
        int64_t phys[OD_MAX_RANK], plain[OD_MAX_RANK];
        matmul_views(x, phys, plain);
        od_add_strided(x->grad, phys, t->plain_grad[k], plain, x->rank, x->dims);
    }
    return OD_STATUS_OK;
}

static void matmul_train_destroy(od_tstep *s) {
    if (matmul_on_gemm(s)) {
        od_gemm_train_destroy(s);
        return;
    }
    matmul_train *t = s->state;
    if (t)
        for (int k = 0; k < 2; k++) free(t->plain[k]), free(t->plain_grad[k]);
    free(t);
    s->state = NULL;
}

OD_OP_FACTS(MatMul, 1, NULL);
static int matmul_weight_axis(const od_node *n, int rank) { return rank >= 2 ? rank - 1 : -1; } /* [..., K, N] */
/* int8 (quantized execution, plan_qs8.c): A [N, K] and a constant B [K, M], a QC8 1x1
 * convolution. */
static bool matmul_qs8_accepts(const od_node *n, const od_shape_info *const *in) {
    (void)n;
    return in[0] && in[0]->rank == 2 && in[1] && in[1]->constant && in[1]->rank == 2;
}

static od_status matmul_qs8_prepare(od_step *s, od_error *err) {
    const od_buf *a = s->in[0];
    return od_qs8_dense_prepare(s, a->dims[0], a->dims[1], s->in[1]->dims[1], true, NULL, err);
}

const od_op_desc od_qs8_MatMul = {.name = "MatMul (int8)", .prepare = matmul_qs8_prepare,
                                  .run = od_qs8_xnn_run, .destroy = od_qs8_xnn_destroy};

const od_op_desc od_op_MatMul = {OD_OP_NAME(MatMul), .channel_role = OD_CHANNELS_MIXES, .stable_since = 1, .per_sample = od_per_sample_always,
                                 .weight_axis = matmul_weight_axis,
                                 .infer = matmul_infer,
                                 .prepare = matmul_prepare, .run = matmul_run,
                                 .destroy = matmul_destroy, .macs = matmul_macs,
                                 .qs8 = &od_qs8_MatMul, .qs8_accepts = matmul_qs8_accepts,
                                 .trained_inputs = 0x2, /* B */
                                 .train_layout = OD_TRAIN_LAYOUT_PLAIN,
                                 /* a projection: Gemm.c's kernels */
                                 .train_prepare = matmul_train_prepare,
                                 .forward_train = matmul_train_forward,
                                 .backward = matmul_train_backward,
                                 .train_destroy = matmul_train_destroy};

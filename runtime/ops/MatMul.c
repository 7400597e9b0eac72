/* MatMul, opsets 1-13: numpy.matmul semantics (a 1-D operand is promoted to a matrix and the
 * added dim removed from the result; batch dims broadcast). Float32. A constant 2-D B (the
 * usual projection) runs on XNNPACK's fully-connected operator over every leading row of A,
 * with the weights packed once; anything else runs OpenBLAS's sgemm per broadcast batch item.
 * Backward: with a 2-D B, through Gemm.c's training kernels. Layout: plain. */
#include "../train_internal.h"

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

OD_OP_FACTS(MatMul, 1, NULL);
static int matmul_weight_axis(const od_node *n, int rank) { return rank >= 2 ? rank - 1 : -1; } /* [..., K, N] */
const od_op_desc od_op_MatMul = {OD_OP_NAME(MatMul), .channel_role = OD_CHANNELS_MIXES, .per_sample = od_per_sample_always,
                                 .weight_axis = matmul_weight_axis,
                                 .infer = matmul_infer,
                                 .prepare = matmul_prepare, .run = matmul_run,
                                 .destroy = matmul_destroy, .macs = matmul_macs,
                                 .trained_inputs = 0x2, /* B */
                                 .train_layout = OD_TRAIN_LAYOUT_PLAIN,
                                 /* a 2-D B only: Gemm.c's kernels */
                                 .train_prepare = od_gemm_train_prepare,
                                 .forward_train = od_gemm_train_forward,
                                 .backward = od_gemm_train_backward,
                                 .train_destroy = od_gemm_train_destroy};

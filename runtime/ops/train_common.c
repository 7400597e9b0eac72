/* Helpers shared by the training kernels of the op files (train_internal.h). */
#include "../train_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

typedef struct shard_call {
    void (*fn)(void *, int, int64_t, int64_t);
    void *ctx;
    int64_t n;
    int shards;
} shard_call;

static void shard_task(void *p, int who, int64_t i) {
    shard_call *c = p;
    int64_t begin = c->n * i / c->shards, end = c->n * (i + 1) / c->shards;
    if (end > begin) c->fn(c->ctx, (int)i, begin, end);
}

/* Shard i is always the same slice, whichever thread runs it: the same thread count gives
 * the same bits. */
int od_shard_count(const od_tstep *s, int64_t n) {
    return s->threads > 1 && n > 1 ? (int)(n < s->threads ? n : s->threads) : 1;
}

void od_shards(const od_tstep *s, int64_t n, void (*fn)(void *, int, int64_t, int64_t), void *ctx) {
    int shards = od_shard_count(s, n);
    shard_call c = {fn, ctx, n, shards};
    if (shards == 1) {
        fn(ctx, 0, 0, n);
        return;
    }
    od_workers_run(s->workers, shards, shard_task, &c);
}

void od_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
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

bool od_claim_grad(od_tstep *s, int k) {
    od_tbuf *b = k < s->n_in ? s->in[k] : NULL;
    if (!b || !b->grad || b->last_reader != s) return false;
    b->grad_written = true;
    s->writes_grad |= 1u << k;
    return true;
}

OD_VECTOR_CLONES void od_add_into(float *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

OD_VECTOR_CLONES void od_relu_inplace(float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0;
}

OD_VECTOR_CLONES void od_relu_mask(const float *y, float *dy, int64_t n) {
    for (int64_t i = 0; i < n; i++) dy[i] = y[i] > 0 ? dy[i] : 0;
}

/* Both sides channels-last (a 4-D reshape of a 4-D value): through ONNX order in a scratch
 * buffer, kept as the step's state. */
od_status od_train_plain_prepare(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0], *y = s->out[0];
    if (!(x->cl && x->rank >= 3 && y->cl && y->rank >= 3)) return OD_STATUS_OK;
    if (!(s->state = malloc(sizeof(float) * (size_t)x->count + 64)))
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

od_status od_train_plain_forward(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0];
    od_tbuf *y = s->out[0];
    bool xcl = x->cl && x->rank >= 3, ycl = y->cl && y->rank >= 3;
    const float *plain = x->data;
    if (xcl) {
        float *to = ycl ? s->state : y->data;
        od_relayout(x->data, to, x->rank, x->dims, false, sizeof(float), false, NULL);
        plain = to;
    }
    if (ycl) od_relayout(plain, y->data, y->rank, y->dims, true, sizeof(float), false, NULL);
    else if (y->data != plain) memcpy(y->data, plain, sizeof(float) * (size_t)y->count);
    return OD_STATUS_OK;
}

od_status od_train_plain_backward(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0], *y = s->out[0];
    bool xcl = x->cl && x->rank >= 3, ycl = y->cl && y->rank >= 3;
    if (!x->grad) return OD_STATUS_OK;
    if (xcl && ycl) {
        od_relayout(y->grad, s->state, y->rank, y->dims, false, sizeof(float), false, NULL);
        od_relayout(s->state, x->grad, x->rank, x->dims, true, sizeof(float), true, NULL);
    } else if (xcl) {
        od_relayout(y->grad, x->grad, x->rank, x->dims, true, sizeof(float), true, NULL);
    } else if (ycl) {
        od_relayout(y->grad, x->grad, y->rank, y->dims, false, sizeof(float), true, NULL);
    } else {
        od_add_into(x->grad, y->grad, y->count);
    }
    return OD_STATUS_OK;
}

void od_tbuf_strides(const od_tbuf *b, int64_t *strides) {
    int64_t phys[OD_MAX_RANK], ps[OD_MAX_RANK], stride = 1;
    od_tbuf_phys_dims(b, phys);
    for (int d = b->rank - 1; d >= 0; d--) {
        ps[d] = stride;
        stride *= phys[d];
    }
    bool cl = b->cl && b->rank >= 3;
    for (int d = 0; d < b->rank; d++) strides[d] = !cl || d == 0 ? ps[d] : d == 1 ? ps[b->rank - 1] : ps[d - 1];
}

void od_add_strided(float *dst, const int64_t *dst_stride, const float *src, const int64_t *src_stride, int rank,
                    const int64_t *dims) {
    int64_t idx[OD_MAX_RANK] = {0}, n = 1, di = 0, si = 0;
    for (int d = 0; d < rank; d++) n *= dims[d];
    for (int64_t i = 0; i < n; i++) {
        dst[di] += src[si];
        for (int d = rank - 1; d >= 0; d--) { /* next index, carrying */
            di += dst_stride[d];
            si += src_stride[d];
            if (++idx[d] < dims[d]) break;
            di -= dst_stride[d] * dims[d];
            si -= src_stride[d] * dims[d];
            idx[d] = 0;
        }
    }
}

od_infer_ctx od_tstep_infer_ctx(const od_tstep *s, od_shape_info *info, const od_shape_info **in,
                                od_shape_info *out, od_error *err) {
    int n = s->n_in < OD_TSTEP_MAX_IN ? s->n_in : OD_TSTEP_MAX_IN;
    for (int k = 0; k < n; k++) {
        const od_tbuf *b = s->in[k];
        in[k] = NULL;
        if (!b) continue;
        info[k] = (od_shape_info){.dtype = b->constant ? b->constant->dtype : OD_DTYPE_FLOAT, .rank = b->rank,
                                  .constant = b->constant};
        memcpy(info[k].dims, b->dims, sizeof b->dims);
        in[k] = &info[k];
    }
    *out = (od_shape_info){0};
    return (od_infer_ctx){s->node, s->opset, n, 1, in, out, NULL, err};
}

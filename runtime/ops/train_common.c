/* Helpers shared by the training kernels of the op files (train_internal.h). */
#include "../train_internal.h"

#include <cblas.h>
#include <string.h>

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

void od_add_into(float *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

void od_relu_inplace(float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = y[i] > 0 ? y[i] : 0;
}

void od_relu_mask(const float *y, float *dy, int64_t n) {
    for (int64_t i = 0; i < n; i++) dy[i] = y[i] > 0 ? dy[i] : 0;
}

od_status od_train_plain_forward(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0];
    od_tbuf *y = s->out[0];
    if (x->cl && x->rank >= 3)
        od_relayout(x->data, y->data, x->rank, x->dims, false, sizeof(float), false, NULL);
    else if (y->data != x->data)
        memcpy(y->data, x->data, sizeof(float) * (size_t)y->count);
    return OD_STATUS_OK;
}

od_status od_train_plain_backward(od_tstep *s, od_error *err) {
    const od_tbuf *x = s->in[0], *y = s->out[0];
    if (x->cl && x->rank >= 3)
        od_relayout(y->grad, x->grad, x->rank, x->dims, true, sizeof(float), true, NULL);
    else
        od_add_into(x->grad, y->grad, y->count);
    return OD_STATUS_OK;
}

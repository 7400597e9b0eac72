/* Internal: what a training kernel gets: a step of a plan in training mode (op.h's od_step and
 * od_buf, also named od_tstep and od_tbuf), float32 throughout. Activations of rank 3 and 4 are
 * channels-last (NHWC; a 1-D [N, C, L] as [N, L, C]) where the op's train_layout puts them, as
 * XNNPACK's convolutions want; other values, parameters and constants are in ONNX order. An
 * op's training kernels sit beside its forward in runtime/ops/<Op>.c and are named by its
 * descriptor (op.h: train_prepare, forward_train, backward, train_destroy). */
#ifndef OD_TRAIN_INTERNAL_H
#define OD_TRAIN_INTERNAL_H

#include "od_train.h"
#include "op.h"

#include <string.h>

/* Physical dims of a buffer (channels-last moves dim 1 last). */
static inline void od_tbuf_phys_dims(const od_tbuf *b, int64_t *out) {
    od_phys_dims(b->rank, b->dims, b->cl, out);
}

/* Splits [0, n) into s->threads contiguous shards and runs fn(ctx, shard, begin, end) on each,
 * in parallel. Shard boundaries depend only on n and the thread count: results are repeatable. */
void od_shards(const od_tstep *s, int64_t n, void (*fn)(void *ctx, int shard, int64_t begin, int64_t end),
               void *ctx);
/* The number of shards od_shards makes of n. */
int od_shard_count(const od_tstep *s, int64_t n);

/* ---- helpers for the kernels (runtime/ops/train_common.c) ---- */

/* The elementwise training kernels are built for the baseline x86-64 (4-float SSE vectors);
 * these clones of a hot loop run on AVX2 where the CPU has it (the choice is made once, at load;
 * AVX-512 clones of the same loops measured slower). No FMA contraction in ISO C: each element's
 * operations, and so its bits, are the same in every clone. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OD_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define OD_VECTOR_CLONES
#endif

/* g where on, else +0, as a bit mask: GCC vectorises this where it leaves a select of a
 * computed value (a product, a loaded gradient under a Relu's mask) scalar. */
static inline float od_keep_if(float g, bool on) {
    uint32_t u;
    memcpy(&u, &g, sizeof u);
    u &= -(uint32_t)on;
    memcpy(&g, &u, sizeof g);
    return g;
}

/* For a kernel whose backward can write all of input k's gradient with = : whether it may (it is
 * the input's last reader, so its backward is the first to write there); if so, marks it
 * (grad_written: the plan does not zero it; s->writes_grad bit k). Called from train_prepare. */
bool od_claim_grad(od_tstep *s, int k);

/* Row-major C = alpha op(A) op(B) + beta C on OpenBLAS; K <= 0 gives beta * C. */
void od_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void od_add_into(float *dst, const float *src, int64_t n);
void od_relu_inplace(float *y, int64_t n);
/* dy = 0 where a fused Relu clamped (y == 0) */
void od_relu_mask(const float *y, float *dy, int64_t n);
/* Flatten, Reshape, Squeeze, Unsqueeze: copy input 0 in ONNX order (reading and writing
 * either layout through od_relayout), and the gradient back. */
od_status od_train_plain_prepare(od_tstep *s, od_error *err);
od_status od_train_plain_forward(od_tstep *s, od_error *err);
od_status od_train_plain_backward(od_tstep *s, od_error *err);
#define OD_TRAIN_PLAIN_COPY                                                                        \
    .train_prepare = od_train_plain_prepare, .forward_train = od_train_plain_forward,              \
    .backward = od_train_plain_backward

/* Logical strides (per ONNX dim, in elements) of a buffer in its layout: a channels-last buffer
 * read as a strided view in ONNX order. */
void od_tbuf_strides(const od_tbuf *b, int64_t *strides);
/* For every index i < dims: dst[i . dst_stride] += src[i . src_stride] (a strided copy's
 * gradient). */
void od_add_strided(float *dst, const int64_t *dst_stride, const float *src, const int64_t *src_stride, int rank,
                    const int64_t *dims);
/* An infer context over a training step's inputs (shapes and constants), so that train_prepare
 * reads attributes and constant inputs with the inference reader. info and in hold up to
 * OD_TSTEP_MAX_IN entries; out one. */
#define OD_TSTEP_MAX_IN 8
od_infer_ctx od_tstep_infer_ctx(const od_tstep *s, od_shape_info *info, const od_shape_info **in,
                                od_shape_info *out, od_error *err);

/* Gemm.c's kernels, which MatMul (with a 2-D B) shares. */
od_status od_gemm_train_prepare(od_tstep *s, od_error *err);
od_status od_gemm_train_forward(od_tstep *s, od_error *err);
od_status od_gemm_train_backward(od_tstep *s, od_error *err);
void od_gemm_train_destroy(od_tstep *s);

#endif

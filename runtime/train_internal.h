/* Internal: what a training kernel gets. Activations are NCHW (ONNX order), float32. */
#ifndef OD_TRAIN_INTERNAL_H
#define OD_TRAIN_INTERNAL_H

#include "od_train.h"
#include "op.h"

typedef struct od_tbuf {
    int rank;
    int64_t dims[OD_MAX_RANK];
    int64_t count;
    float *data;               /* float values (NULL for non-float constants: see constant) */
    float *grad;               /* NULL when nothing upstream needs a gradient */
    const od_tensor *constant; /* plan-time data, for shape inputs and frozen tensors */
    bool is_param;
} od_tbuf;

typedef struct od_tstep {
    const od_node *node;
    int n_in, n_out;
    od_tbuf **in, **out; /* in[i] NULL for an omitted optional input */
    void *state;
    pthreadpool_t pool;
    int threads;
    bool training;
    /* A following Relu folded in by the trainer (Conv, Gemm, BatchNormalization): forward
     * clamps at 0, backward first zeroes out->grad where out->data is 0. */
    bool fused_relu;
    uint64_t seed, calls; /* dropout masks: a function of (seed, calls, element) */
} od_tstep;

typedef struct od_train_op {
    const char *name;
    uint32_t params; /* bit i: input i, when an initializer, is trained */
    od_status (*prepare)(od_tstep *s, od_error *err); /* may be NULL */
    void (*forward)(od_tstep *s);
    /* Adds dLoss/dInput into in[i]->grad for every input with a grad. */
    void (*backward)(od_tstep *s);
    void (*destroy)(od_tstep *s); /* may be NULL: frees s->state */
} od_train_op;

const od_train_op *od_train_op_find(const char *op_type);

/* Splits [0, n) into s->threads contiguous shards and runs fn(ctx, shard, begin, end) on each,
 * in parallel. Shard boundaries depend only on n and the thread count: results are repeatable. */
void od_shards(const od_tstep *s, int64_t n, void (*fn)(void *ctx, int shard, int64_t begin, int64_t end),
               void *ctx);

#endif

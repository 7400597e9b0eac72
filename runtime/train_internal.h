/* Internal: what a training kernel gets. float32 throughout. Activations of rank 3 and 4 are
 * channels-last (NHWC; a 1-D [N, C, L] as [N, L, C]), as XNNPACK's convolutions want; other
 * values, parameters and constants are in ONNX order. */
#ifndef OD_TRAIN_INTERNAL_H
#define OD_TRAIN_INTERNAL_H

#include "od_train.h"
#include "op.h"
#include "workers.h"

typedef struct od_tbuf {
    int rank;
    int64_t dims[OD_MAX_RANK];
    int64_t count;
    float *data;               /* float values (NULL for non-float constants: see constant) */
    float *grad;               /* NULL when nothing upstream needs a gradient */
    const od_tensor *constant; /* plan-time data, for shape inputs and frozen tensors */
    bool is_param;
    bool cl;        /* channels-last: physical dims [N, spatial..., C] */
    int consumers;  /* steps reading it */
} od_tbuf;

typedef struct od_tstep {
    const od_node *node;
    int n_in, n_out;
    od_tbuf **in, **out; /* in[i] NULL for an omitted optional input */
    void *state;
    od_workers *workers; /* NULL: one thread */
    int threads;
    bool training;
    /* A following Relu folded in by the trainer (Conv, Gemm, BatchNormalization): forward
     * clamps at 0, backward first zeroes out->grad where out->data is 0. */
    bool fused_relu;
    uint64_t seed, calls; /* dropout masks: a function of (seed, calls, element) */
} od_tstep;

/* The layout of an op's output 0: */
typedef enum od_train_layout {
    OD_TL_PLAIN = 0, /* ONNX order (the kernel reads channels-last inputs itself) */
    OD_TL_SPATIAL,   /* channels-last when rank 3 or 4 */
    OD_TL_SAME,      /* as input 0 */
} od_train_layout;

typedef struct od_train_op {
    const char *name;
    uint32_t params; /* bit i: input i, when an initializer, is trained */
    od_train_layout layout;
    od_status (*prepare)(od_tstep *s, od_error *err); /* may be NULL */
    void (*forward)(od_tstep *s);
    /* Adds dLoss/dInput into in[i]->grad for every input with a grad. */
    void (*backward)(od_tstep *s);
    void (*destroy)(od_tstep *s); /* may be NULL: frees s->state */
} od_train_op;

const od_train_op *od_train_op_find(const char *op_type);

/* Physical dims of a buffer (channels-last moves dim 1 last). */
void od_tbuf_phys_dims(const od_tbuf *b, int64_t *out);
/* NCHW <-> NHWC for a [N, C, S] block (S the spatial product); to_last picks the direction. */
void od_relayout_f32(const float *src, float *dst, int64_t n, int64_t c, int64_t s, bool to_last, bool add);

/* Splits [0, n) into s->threads contiguous shards and runs fn(ctx, shard, begin, end) on each,
 * in parallel. Shard boundaries depend only on n and the thread count: results are repeatable. */
void od_shards(const od_tstep *s, int64_t n, void (*fn)(void *ctx, int shard, int64_t begin, int64_t end),
               void *ctx);

#endif

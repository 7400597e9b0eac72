/* Shared by MaxPool.c, AveragePool.c, GlobalMaxPool.c and GlobalAveragePool.c: attribute
 * reading and the output-size rule (explicit pads, auto_pad, ceil_mode, dilations), and a
 * generic loop over channels-last data for what XNNPACK cannot do (3-D, dilations with
 * padding, count_include_pad, 1x1 windows, non-float types). */
#ifndef OD_POOL_COMMON_H
#define OD_POOL_COMMON_H

#include "../op.h"

#include <xnnpack.h>

#define OD_POOL_MAX_SPATIAL (OD_MAX_RANK - 2)

typedef struct od_pool {
    bool is_max, count_include_pad;
    int sp; /* spatial dims */
    int64_t batch, channels;
    int64_t in[OD_POOL_MAX_SPATIAL], out[OD_POOL_MAX_SPATIAL], kernel[OD_POOL_MAX_SPATIAL];
    int64_t stride[OD_POOL_MAX_SPATIAL], dilation[OD_POOL_MAX_SPATIAL];
    /* explicit (or auto_pad) padding; windows never start past in + pad_begin */
    int64_t pad_begin[OD_POOL_MAX_SPATIAL], pad_end[OD_POOL_MAX_SPATIAL];
} od_pool;

/* Reads MaxPool (is_max) or AveragePool attributes for input dims x ([N, C, spatial...]) and
 * computes the output size. */
od_status od_pool_read(const od_node *n, int64_t opset, bool is_max, int rank, const int64_t *x,
                       od_pool *p, od_error *err);

/* A global pool over all spatial dims of x. */
void od_pool_global(bool is_max, int rank, const int64_t *x, od_pool *p);

/* infer() for a pool of input 0; types: float, plus double, int8 and uint8 for MaxPool. */
od_status od_pool_infer(od_infer_ctx *c, bool is_max, bool global);

/* The padding at the end that makes a floor-rounding backend (XNNPACK) produce p->out. */
int64_t od_pool_backend_pad_end(const od_pool *p, int d);

/* True when every window holds at least one input cell (else a backend may see no data). */
bool od_pool_windows_nonempty(const od_pool *p);

/* The state of a MaxPool, AveragePool or GlobalAveragePool step: the pool, and the XNNPACK
 * operator that runs it (NULL: od_pool_run_loop). */
typedef struct od_pool_state {
    od_pool pool;
    xnn_operator_t xnn;
    float *partial; /* GlobalAveragePool's per-chunk sums (its own path), freed with the state */
    bool partial_avx512; /* ... summed on AVX-512 (chosen at prepare) */
} od_pool_state;
/* prepare()'s start: s->state = *out, its pool read from the node (global: over every spatial
 * dim). */
od_status od_pool_state_create(od_step *s, bool is_max, bool global, od_pool_state **out,
                               od_error *err);
/* run(): the operator (`what` names it in an error), else the loop. */
od_status od_pool_state_run(od_step *s, const char *what, od_error *err);
void od_pool_state_destroy(od_step *s);

/* The loop: x is [N, in..., C] and y [N, out..., C] (channels-last). */
void od_pool_run_loop(const od_pool *p, od_dtype t, const void *x, void *y, pthreadpool_t pool);

/* Training kernels shared by the four pools (2-D, channels-last; max pool keeps its argmax). */
extern const od_op_desc od_op_MaxPool, od_op_AveragePool, od_op_GlobalMaxPool, od_op_GlobalAveragePool;
od_status od_pool_train_prepare(od_tstep *s, od_error *err);
od_status od_pool_train_forward(od_tstep *s, od_error *err);
od_status od_pool_train_backward(od_tstep *s, od_error *err);
void od_pool_train_destroy(od_tstep *s);
#define OD_POOL_TRAIN                                                                              \
    .train_layout = OD_TRAIN_LAYOUT_SPATIAL, .train_prepare = od_pool_train_prepare,              \
    .forward_train = od_pool_train_forward, .backward = od_pool_train_backward,                   \
    .train_destroy = od_pool_train_destroy

#endif

/* Internal: what an op file implements, and what the planner gives it.
 *
 * An op is one `const od_op_desc od_op_<Name>` and one line OD_OP(Name) in ops/ops.def.
 * Lifecycle inside a plan: infer (shapes, also used by `inspect`) -> prepare (once per plan,
 * after every buffer has its layout, dims and arena pointer: create XNNPACK operators, pack
 * weights, call their setup) -> run (many times; allocates nothing) -> destroy.
 */
#ifndef OD_OP_H
#define OD_OP_H

#include "od_runtime.h"

#include "workers.h"

#include <pthreadpool.h>
#include <stdlib.h>

/* How a plan stores a 4-D (or 3-D, 5-D) activation. Channels-last puts dim 1 last:
 * physical dims [N, D2, ..., Dr-1, C], what XNNPACK's convolutions and pools want. */
typedef enum od_layout { OD_LAYOUT_PLAIN = 0, OD_LAYOUT_CHANNELS_LAST = 1 } od_layout;

/* How an op takes layouts:
 * PLAIN:       every input in ONNX order (the default; always correct);
 * SPATIAL:     input 0 channels-last when its rank is >= 3, outputs likewise, other inputs plain;
 * ELEMENTWISE: channels-last when any full-rank input already is (others are converted, after
 *              right-aligning their shapes), else plain. The op then works on physical dims. */
typedef enum od_layout_policy {
    OD_LAYOUT_POLICY_PLAIN = 0,
    OD_LAYOUT_POLICY_SPATIAL,
    OD_LAYOUT_POLICY_ELEMENTWISE,
} od_layout_policy;

/* A value as a plan holds it, in inference and in training mode. */
typedef struct od_buf {
    od_dtype dtype;
    int rank;
    int64_t dims[OD_MAX_RANK]; /* logical (ONNX) dims */
    od_layout layout;
    /* arena, constant data or the plan's own input/output memory. float * because training
     * kernels index it as floats; an op reading other dtypes casts ((char *), int64_t *). */
    float *data;
    size_t nbytes;
    const od_tensor *constant; /* plan-time data (in plain layout), or NULL */
    /* training mode: */
    float *grad;     /* dLoss/dValue in the gradient arena; NULL when nothing upstream needs it */
    int64_t count;   /* elements */
    bool cl;         /* layout == OD_LAYOUT_CHANNELS_LAST, for the kernels' brevity */
    bool is_param;   /* a trained initializer (its data is the graph's, updated in place) */
    int consumers;   /* steps reading it */
    bool grad_written; /* its first writer in backward writes all of grad (od_claim_grad): not zeroed */
    const struct od_step *last_reader; /* training: the last step reading it, whose backward runs
                                        * first among its readers' */
    /* planner bookkeeping */
    int alias_of; /* buffer index whose memory this one shares, or -1 */
    int first_step, last_step;
    size_t offset;
    bool in_arena;
} od_buf;

typedef struct od_plan od_plan;

/* Where the trainer puts an op's output 0: */
typedef enum od_train_layout {
    OD_TRAIN_LAYOUT_PLAIN = 0, /* ONNX order (the kernel reads channels-last inputs itself) */
    OD_TRAIN_LAYOUT_SPATIAL,   /* channels-last when rank 3 or 4 */
    OD_TRAIN_LAYOUT_SAME,      /* as its inputs */
} od_train_layout;

/* A quantized step's parameters (plan_qs8.c): an int8 activation q stands for
 * scale * (q - zero_point); weights are int8 with one scale per output channel (or one). */
typedef struct od_qs8_params {
    float in_scale[2]; /* activation inputs 0 and 1 (Add) */
    int in_zp[2];
    float out_scale;
    int out_zp;
    const int8_t *w;      /* input 1's int8 data ([M, ...] as ONNX stores it), NULL: no weight */
    const float *w_scale; /* n_w_scale scales: 1, or one per output channel */
    int64_t n_w_scale;
} od_qs8_params;

/* An activation an op applies to its output (od_step.act); values as act_avx512.h's od_act_ps. */
typedef enum od_activation { OD_ACT_NONE = 0, OD_ACT_SILU = 1, OD_ACT_HARDSWISH = 2 } od_activation;

typedef struct od_step {
    const od_node *node; /* NULL for the planner's own layout conversions */
    const struct od_op_desc *op;
    int64_t opset;
    int n_in, n_out;
    od_buf **in;  /* in[i] is NULL for an omitted optional input */
    od_buf **out; /* out[i] is NULL for an omitted optional output */
    void *state;  /* the op's own, freed by op->destroy */
    pthreadpool_t pool; /* the plan's threads for a parallel step, NULL for one */
    bool parallel;      /* large enough to split across threads when the plan uses its pool */
    int64_t macs;
    /* A following Relu or Clip fused in by the planner (ops with fuses_activation): the op
     * clamps its output to [act_min, act_max]; -inf, inf otherwise. */
    float act_min, act_max;
    /* An activation after it fused in by the planner (ops with fuses_act): the op applies it to
     * its output, after the clamp. */
    od_activation act;
    /* training mode: */
    od_workers *workers; /* the plan's training threads (od_shards); NULL: one thread */
    int threads;
    bool training; /* this forward pass trains: BN on batch statistics, Dropout drops */
    /* A following Relu done here (ops with train_fuses_relu): forward clamps at 0, backward
     * first zeroes out->grad where out->data is 0. */
    bool fused_relu;
    uint64_t seed, calls; /* dropout masks: a function of (seed, calls, element) */
    unsigned writes_grad; /* bit k: backward writes input k's whole gradient with = (od_claim_grad) */
    /* A quantized step (op is some op's qs8): activation inputs and output 0 are int8 buffers,
     * the other inputs (weights as float, bias) as the node has them. */
    const od_qs8_params *qs8;
} od_step;

/* Training kernels' names for the same structs (train_internal.h). Macros rather than typedefs
 * so that `struct od_tstep` in a kernel's header names the same type too. */
#define od_tbuf od_buf
#define od_tstep od_step

typedef struct od_infer_ctx {
    const od_node *node;
    int64_t opset;
    int n_in, n_out;
    const od_shape_info *const *in; /* in[i] NULL for an omitted optional input */
    od_shape_info *out;             /* to fill: dtype, rank, dims */
    od_tensor **out_constant;       /* may be set to a new tensor: output data known now */
    od_error *err;
} od_infer_ctx;

typedef struct od_op_desc {
    const char *name;
    int since_opset;          /* the first default-domain opset that defines the op */
    /* The first opset from which the op means (as it runs here) what it means at opset 13, the
     * opset int8 weights raise a model to; 0: defined after 13 (od_node_stable_since). */
    int stable_since;
    /* every attribute ONNX defines for the op in any opset, NULL-terminated: a node carrying
     * another is refused when shapes are inferred (od_graph_infer; a note for inspect) */
    const char *const *attrs;
    od_layout_policy layout;
    /* SPATIAL: whether the op reads input 0 as it is held when that is ONNX order (a graph
     * input), instead of a channels-last copy made first; its outputs stay channels-last.
     * NULL: never. */
    bool (*reads_plain_input)(const od_node *n, const struct od_buf *const *in, int n_in);
    bool alias_input0; /* output 0 shares input 0's memory (Reshape, Flatten, Identity, ...) */
    bool no_fold;      /* never evaluate at plan time even on constant inputs (random ops) */
    bool fuses_activation; /* honours od_step.act_min/act_max on every path */
    bool fuses_act;        /* honours od_step.act on every path */
    /* A later Add of its output and another tensor of the same shape is done here: input 3 (the
     * planner's) is added to the output before the clamp, on every path. */
    bool fuses_residual;
    /* Whether each sample's outputs depend on that sample alone, for a node whose input 0 has
     * the given rank (micro-batching splits the batch when every node's do); NULL: no. */
    bool (*per_sample)(const od_node *n, int rank);
    od_status (*infer)(od_infer_ctx *c);
    od_status (*prepare)(od_step *s, od_error *err); /* may be NULL */
    od_status (*run)(od_step *s, od_error *err);
    void (*destroy)(od_step *s); /* may be NULL: frees s->state when set */
    /* Input 1 is a weight whose output channels lie along the returned axis, for a weight of
     * this rank; -1 when it is not one (quantize's per-channel scales, the plan's BN folding).
     * NULL: the op has no weight input. */
    int (*weight_axis)(const od_node *n, int rank);
    od_channel_role channel_role; /* od_node_channel_role; every op sets it (test_op_table) */
    int channel_inputs;           /* od_node_channel_inputs */
    /* Quantized execution (plan_qs8.c): the op this one runs as on int8 activations when a
     * QDQ model wraps it (its float activations DequantizeLinear'd from int8, its output, or a
     * Relu/Clip's after it, QuantizeLinear'd to int8, its weight DequantizeLinear'd from an int8
     * initializer); NULL: none. qs8_accepts (NULL: always) says whether qs8 takes this node
     * with these inputs. qs8_same: input 0's scale and zero point must be the output's (max
     * pooling, reshapes: the int8 values pass through); else every activation has its own. */
    const struct od_op_desc *qs8;
    bool (*qs8_accepts)(const od_node *n, const od_shape_info *const *in);
    bool qs8_same;
    /* multiply-accumulates for the given shapes; NULL: none */
    int64_t (*macs)(const od_node *n, const od_shape_info *const *in, const od_shape_info *out);

    /* Training, beside inference. backward NULL: inference only, and a training plan refuses
     * a graph holding the op, naming the node. Kernels: train_internal.h. */
    uint32_t trained_inputs;     /* bit i: input i, when a float initializer, is trained */
    od_train_layout train_layout;
    bool train_fuses_relu;       /* a following Relu is done here (od_step.fused_relu) */
    od_status (*train_prepare)(od_step *s, od_error *err); /* may be NULL */
    /* Keeps what backward needs; a failure (e.g. of XNNPACK) names the node. */
    od_status (*forward_train)(od_step *s, od_error *err);
    /* Adds dLoss/dInput into in[i]->grad for every input with a grad: never overwrites. */
    od_status (*backward)(od_step *s, od_error *err);
    void (*train_destroy)(od_step *s); /* may be NULL: frees s->state */
} od_op_desc;

const od_op_desc *od_op_find(const char *domain, const char *op_type);

/* An op's facts, written just before its descriptor: OD_OP_FACTS(Conv, 1, "auto_pad", ...)
 * (NULL for an op without attributes) defines od_since_Conv and od_attrs_Conv, which
 * OD_OP_NAME(Conv) puts in the descriptor with its name. */
#define OD_OP_FACTS(OP, SINCE, ...)                                                                \
    enum { od_since_##OP = SINCE };                                                                \
    static const char *const od_attrs_##OP[] = {__VA_ARGS__, NULL}
#define OD_OP_NAME(OP) .name = #OP, .since_opset = od_since_##OP, .attrs = od_attrs_##OP

/* The first attribute of n that op does not define, or NULL. */
const char *od_op_unknown_attr(const od_op_desc *op, const od_node *n);
/* The default an op's table gives an attribute ("epsilon=1e-05": "1e-05"), or NULL. */
const char *od_op_attr_default(const od_op_desc *op, const char *name);

/* ---- helpers for op files --------------------------------------------------- */

/* Sets err with the node's label in front: `node "conv_3" (Conv): ...`. */
od_status od_node_error(od_error *err, od_status status, const od_node *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A kernel's hot loop of intrinsics over buffers it sizes itself (padded copies, packed
 * weights), its results checked against reference loops by the tests: left out of ASan and
 * UBSan instrumentation, whose check on every load made the sanitized suite 2.3x slower on
 * conv_wide.c (XNNPACK's kernels are not instrumented either). */
#define OD_UNSANITIZED __attribute__((no_sanitize("address", "undefined")))

/* Whether a kernel of our own on AVX-512 may run: the CPU has AVX-512F and the environment does
 * not set the kernel's off switch (off, e.g. "OD_NO_WINOGRAD"; the tests set it to run the
 * other path). False off x86-64. */
static inline bool od_avx512_on(const char *off) {
#if defined(__x86_64__) && defined(__GNUC__)
    return __builtin_cpu_supports("avx512f") && !getenv(off);
#else
    (void)off;
    return false;
#endif
}

/* a x b for MAC counts, saturating at OD_MACS_MAX (far beyond any real layer), 0 when either is
 * negative (unknown): absurd declared shapes must not overflow, nor their sum over a graph. */
#define OD_MACS_MAX ((int64_t)1 << 50)
static inline int64_t od_macs_mul(int64_t a, int64_t b) {
    int64_t r;
    if (a < 0 || b < 0) return 0;
    return __builtin_mul_overflow(a, b, &r) || r > OD_MACS_MAX ? OD_MACS_MAX : r;
}
float od_attr_float(const od_node *n, const char *name, float dflt);
/* NUL-terminated copy in buf; dflt when absent. */
const char *od_attr_string(const od_node *n, const char *name, const char *dflt, char *buf,
                           size_t size);
typedef enum od_auto_pad {
    OD_AUTO_PAD_NOTSET = 0,
    OD_AUTO_PAD_SAME_UPPER,
    OD_AUTO_PAD_SAME_LOWER,
    OD_AUTO_PAD_VALID,
} od_auto_pad;
/* auto_pad of a Conv, ConvTranspose or pool (NOTSET when absent); an error naming the node for a
 * value ONNX does not define. */
od_status od_attr_auto_pad(const od_node *n, od_auto_pad *out, od_error *err);
/* Splits a total padding (negative: a crop, as ConvTranspose's output_shape makes) over the two
 * ends of a spatial dim: SAME_UPPER puts the odd one at the end, anything else at the start;
 * rounds toward minus infinity. */
void od_pad_split(od_auto_pad ap, int64_t total, int64_t *begin, int64_t *end);
/* The padding auto_pad gives one spatial dim of a window op (Conv, MaxPool, AveragePool) with
 * input size in, dilated window k and stride: SAME_UPPER and SAME_LOWER pad (never negatively)
 * for an output of ceil(in / stride) and return true; VALID pads nothing; NOTSET keeps *begin
 * and *end (the pads attribute). */
bool od_auto_pad_window(od_auto_pad ap, int64_t in, int64_t k, int64_t stride, int64_t *begin,
                        int64_t *end);

/* Number of ints copied (at most max), -1 when absent. */
int od_attr_ints(const od_node *n, const char *name, int64_t *out, int max);
int od_attr_floats(const od_node *n, const char *name, float *out, int max);

/* Reads an int64 or int32 constant input as int64s; returns count or -1 (not constant). */
int od_const_ints(const od_shape_info *in, int64_t *out, int max);
float od_const_float(const od_shape_info *in, float dflt); /* a scalar constant, or dflt */

/* Checks input i is present, of dtype float (or one of the listed), and rank (min..max). */
od_status od_infer_expect(od_infer_ctx *c, int i, int min_rank, int max_rank);
/* Output i takes input j's dtype and shape. */
void od_infer_same(od_infer_ctx *c, int out, int in);
/* Numpy broadcasting of inputs into out[0] dims; error naming the node when shapes clash. */
od_status od_infer_broadcast(od_infer_ctx *c);
/* Exactly two inputs, both present, of one element type (arithmetic, comparisons); an error
 * naming the node otherwise. */
od_status od_infer_two_alike(od_infer_ctx *c);

int64_t od_buf_count(const od_buf *b);
/* Physical dims: dims permuted channels-last (dim 1 last) when channels_last and rank >= 3. */
void od_phys_dims(int rank, const int64_t *dims, bool channels_last, int64_t *out);
/* Physical dims: dims permuted channels-last when b->layout says so. */
void od_buf_phys_dims(const od_buf *b, int64_t *out);

/* The one NCHW <-> channels-last conversion, for every rank >= 3: moves dim 1 of dims (the
 * logical shape) last (to_last) or back, for elements of esize bytes. add (float only) adds into
 * dst instead of storing, for gradients. pool may be NULL (one thread). */
void od_relayout(const void *src, void *dst, int rank, const int64_t *dims, bool to_last,
                 size_t esize, bool add, pthreadpool_t pool);

/* Memory of 2 MiB or more (arenas, gradients, padded copies, XNNPACK's packed weights): aligned
 * to 2 MiB and marked for transparent huge pages, so that touching it costs a page fault per
 * 2 MiB instead of 512 (here 64 MiB took 172 ms to fault in as 4 KiB pages, 6 ms as huge pages,
 * and a pass over it once touched was 40% faster). Smaller sizes: 64-byte aligned. Released with
 * free(); NULL when out of memory. OD_NO_HUGEPAGES=1: always the plain kind. */
void *od_alloc_large(size_t bytes);
/* The same, zeroed, for n items of size bytes (NULL when n x size overflows), as calloc. */
void *od_calloc_large(size_t n, size_t size);

/* Initialises XNNPACK once per process (and keeps OpenBLAS to one thread): plans and trainers
 * call it before creating operators; XNNPACK allocates through od_alloc_large. */
od_status od_backend_init(od_error *err);
/* XNNPACK status in words (its own log is compiled out). */
const char *od_xnn_status_name(int status);
od_status od_xnn_check(int status, od_error *err, const od_node *n, const char *what);

/* Clamps a float buffer to the step's fused activation range (no-op when there is none). */
void od_step_clamp(const od_step *s, float *data, int64_t count);
/* Whether the planner may fuse an activation into a producing op (od_step.act): the vector
 * code of od_epilogue_inplace runs on this CPU (ops/fused.c). OD_NO_CONV_ACT=1 says no. */
bool od_act_fusable(void);
/* A fused op's epilogue after a kernel that did not do it, in one pass split across the pool:
 * y = act(clamp(y + r, lo, hi)) over n floats, r (a residual) may be NULL; nothing when there is
 * no r, no bound and no act. An act only when od_act_fusable(). */
void od_epilogue_inplace(pthreadpool_t pool, float *y, const float *r, float lo, float hi, od_activation act,
                         int64_t n);

/* per_sample for ops that never mix samples */
bool od_per_sample_always(const od_node *n, int rank);
/* per_sample for ops whose "axis" attribute (default dflt) must not be the batch */
bool od_per_sample_axis(const od_node *n, int rank, int64_t dflt);

/* Normalises a possibly negative axis into [0, rank); -1 when out of range. */
int od_axis(int64_t axis, int rank);

/* Run fn(ctx, i) for i in [0, n) across the plan's threads. */
void od_parallel_for(pthreadpool_t pool, size_t n, void (*fn)(void *, size_t), void *ctx);
/* A pthreadpool_t for XNNPACK's setup only (runtime/pthreadpool.c): it reports many threads, so
 * the setup cuts a matrix product's output channels into narrow tiles, and runs work serially. */
pthreadpool_t od_xnn_tiling_pool(void);

#endif

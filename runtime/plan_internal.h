/* Internal: the plan's own structure, shared by plan.c, plan_split.c and the trainer. */
#ifndef OD_PLAN_INTERNAL_H
#define OD_PLAN_INTERNAL_H

#include "od_train.h"
#include "op.h"

struct od_plan {
    const od_graph *graph;
    od_plan_options opt;
    od_graph_shapes shapes;
    int n_bufs, cap_bufs;
    od_buf *bufs; /* 0..n_values-1 mirror graph values; conversions follow */
    int n_steps, cap_steps;
    od_step *steps;
    od_buf **step_io; /* storage for every step's in/out pointer arrays */
    int n_owned, cap_owned;
    od_tensor **owned; /* constants the planner made (layout-converted copies) */
    int n_in, n_out;
    od_plan_io *inputs, *outputs;
    int *input_buf, *output_buf;
    void *arena;
    size_t arena_bytes;
    pthreadpool_t pool;
    od_step_profile *profile;
    struct plan_split *split; /* non-NULL: the batch runs as micro-batches (plan_split.c) */
    struct od_node_qs8 *qs8;  /* per node: its int8 step (plan_qs8.c), read by the steps */
    /* training mode (od_plan_create_training) */
    bool training;
    uint64_t seed;
    od_workers *workers; /* the kernels' threads (od_shards), NULL for one */
    float *grads;        /* the gradient arena: activations' gradients, then parameters' */
    size_t grads_count;
};

/* Exporters' spellings of one activation, found at plan time (plan_fuse.c):
 * Mul(x, HardSigmoid(x)) with alpha 1/6, beta 1/2 runs as HardSwish(x), Mul(x, Sigmoid(x)) as
 * SiLU(x) (ops/fused.c), when the HardSigmoid or Sigmoid output has no other use. */
typedef struct od_node_fusion {
    const od_op_desc *as_op; /* non-NULL: the node runs as this op on value as_input alone */
    int as_input;  /* also, for a node fused into its producer: the value its output shares */
    int residual;  /* a value added to the output before the clamp (od_op_desc.fuses_residual); -1: none */
    bool absorbed; /* computed inside a later node's step: no step of its own */
    od_activation act; /* applies a later node's activation to its output (od_step.act) */
} od_node_fusion;
void od_plan_find_activation_fusions(const od_graph *g, const od_graph_shapes *shapes,
                                     const int *uses, od_node_fusion *out);

/* Quantized execution (plan_qs8.c): node i of a QDQ model runs as the int8 op `op` on inputs
 * in[0..n_in) (its activations replaced by the int8 values their DequantizeLinear nodes read)
 * into out (the int8 output of the QuantizeLinear after it), clamped to [act_min, act_max] when
 * it absorbed a Relu; absorbed: a QuantizeLinear or Relu computed inside such a step. */
typedef struct od_node_qs8 {
    const od_op_desc *op;
    bool absorbed;
    int n_in, in[8], out;
    float act_min, act_max;
    od_qs8_params prm;
} od_node_qs8;
void od_plan_find_qs8(const od_graph *g, const od_graph_shapes *s, const int *uses, od_node_qs8 *out);

/* A plan for the whole batch at once, as od_plan_create makes when it does not split. */
od_status od_plan_create_whole(const od_graph *g, const od_plan_options *opt, od_plan **out,
                               od_error *err);
/* Training mode: the same planner (shape inference, constants, steps) with every activation
 * kept alive for the backward pass, gradients in their own arena (od_buf.grad), layouts by the
 * ops' train_layout, a Relu after an op with train_fuses_relu done by that op, and every op
 * without a backward refused, naming its node. Parameters (float initializers in an op's
 * trained_inputs) have is_param set and keep the graph's memory, so training updates g.
 * The first graph input and output may be channels-last (od_buf.cl). seed: dropout masks. */
od_status od_plan_create_training(const od_graph *g, const od_plan_options *opt, uint64_t seed,
                                  od_plan **out, od_error *err);
/* A training plan's forward pass; train: BN on batch statistics, Dropout drops. prof NULL, or
 * one entry per step whose forward_s grows by the step's time. */
od_status od_plan_run_forward(od_plan *p, bool train, od_train_profile *prof, od_error *err);
/* Zeroes every gradient but the first output's (the loss's), then runs the steps' backward in
 * reverse, accumulating into the gradients. */
od_status od_plan_run_backward(od_plan *p, od_train_profile *prof, od_error *err);

/* Arena offsets (offset[i]) for n buffers alive from step first[i] to last[i] (inclusive) of
 * nbytes[i] each, for a plan whose steps are split across threads: in lanes, each buffer centred
 * on its lane's middle, buffers on one lane never alive at once (plan.c says why). Returns the
 * arena's bytes, SIZE_MAX when out of memory. */
size_t od_arena_lanes(int n, const int *first, const int *last, const size_t *nbytes, size_t *offset);

/* plan_split.c: tries to make p run its batch as micro-batches; false when it does not apply. */
bool od_plan_split(od_plan *p, const od_graph *g, const od_plan_options *opt, od_error *err);
void od_plan_split_destroy(struct plan_split *s);
od_status od_plan_split_run(struct plan_split *s, od_error *err);
const od_plan *od_plan_split_first(const struct plan_split *s); /* the calling thread's plan */

/* Evaluates one node on constant inputs (plain layout) into new tensors in out[]. */
od_status od_eval_node(const od_node *n, int64_t opset, const od_op_desc *op,
                       const od_shape_info *const *in, const od_shape_info *outs,
                       od_tensor **out, od_error *err);

#endif

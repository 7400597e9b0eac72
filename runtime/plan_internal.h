/* Internal: the plan's own structure, shared by plan.c and the training code. */
#ifndef OD_PLAN_INTERNAL_H
#define OD_PLAN_INTERNAL_H

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
};

/* Evaluates one node on constant inputs (plain layout) into new tensors in out[]. */
od_status od_eval_node(const od_node *n, int64_t opset, const od_op_desc *op,
                       const od_shape_info *const *in, const od_shape_info *outs,
                       od_tensor **out, od_error *err);

#endif

/* Training: a graph's forward and backward pass for one batch size, losses and optimisers.
 *
 *   od_trainer *t;
 *   od_trainer_create(&student->graph, &(od_trainer_options){.batch = 64, .threads = 2}, &t, &err);
 *   od_optim *opt = od_optim_create(t, &(od_optim_options){.kind = OD_OPTIM_ADAM, .lr = 1e-3}, &err);
 *   for (each batch) {
 *       fill od_trainer_input(t) with 64 samples;
 *       od_trainer_forward(t, true, &err);
 *       float loss = od_loss_l2(od_trainer_output(t), teacher_logits, 64, classes,
 *                               od_trainer_output_grad(t));
 *       od_trainer_backward(t, &err);   // parameter gradients, zeroed first
 *       od_optim_step(opt, lr);
 *   }
 * Parameters are the graph's float initializers feeding trainable inputs (weights, biases, BN
 * scale and shift); they are updated in place, so the graph holds the trained model. BN running
 * statistics are updated in place too. Activations are NCHW (ONNX order) throughout. */
#ifndef OD_TRAIN_H
#define OD_TRAIN_H

#include "od_runtime.h"

typedef struct od_trainer od_trainer;

typedef struct od_trainer_options {
    int64_t batch;  /* 0 means 64 */
    int threads;    /* 0 means 1 */
    uint64_t seed;  /* dropout masks */
    bool profile;   /* time every step's forward and backward */
} od_trainer_options;

typedef struct od_param {
    const char *name;
    float *data; /* the initializer's data, updated in place */
    float *grad;
    int64_t count;
    bool decay; /* weight decay applies (weights, not biases or BN parameters) */
} od_param;

/* The threads worth asking od_trainer_create for: 1 when a step of g at this batch is too small
 * for a second thread to pay (under 32 M forward MACs), else threads. */
int od_trainer_useful_threads(const od_graph *g, int64_t batch, int threads);
/* Fails naming every node whose op cannot be trained, or whose parameters are not float. */
od_status od_trainer_create(od_graph *g, const od_trainer_options *opt, od_trainer **out, od_error *err);
void od_trainer_destroy(od_trainer *t);
int64_t od_trainer_batch(const od_trainer *t);
float *od_trainer_input(od_trainer *t);  /* [batch, ...] of the first graph input */
int64_t od_trainer_input_count(const od_trainer *t); /* elements per sample */
const float *od_trainer_output(const od_trainer *t); /* [batch, classes] of the first output */
int64_t od_trainer_classes(const od_trainer *t);
float *od_trainer_output_grad(od_trainer *t); /* dLoss/dOutput, to fill before backward */
/* training = true: BN uses batch statistics (and updates running ones), Dropout drops. */
od_status od_trainer_forward(od_trainer *t, bool training, od_error *err);
od_status od_trainer_backward(od_trainer *t, od_error *err);
int od_trainer_params(od_trainer *t, od_param **params_out);

typedef struct od_train_profile {
    const char *node_name, *op_type;
    double forward_s, backward_s; /* totals since creation */
} od_train_profile;
/* Per-step times when created with profile = true; returns the step count. */
int od_trainer_profile(const od_trainer *t, const od_train_profile **out);

/* ---- losses: return the mean loss over the batch, write dLoss/dOutput to grad ---------- */

/* The paper's regression on logits: 1/(2T) sum_i ||out_i - target_i||^2. */
float od_loss_l2(const float *out, const float *target, int64_t batch, int64_t classes, float *grad);
/* Hinton's soft targets at temperature T, scaled by T^2 (KL divergence, batch mean). */
float od_loss_kd(const float *out, const float *target, int64_t batch, int64_t classes, float T,
                 float *grad);
/* Adds weight * cross-entropy on labels (batch mean) to grad; returns that term. */
float od_loss_ce_add(const float *out, const int32_t *labels, int64_t batch, int64_t classes,
                     float weight, float *grad);

/* ---- optimisers ---------------------------------------------------------------------- */

typedef enum od_optim_kind { OD_OPTIM_SGD, OD_OPTIM_ADAM, OD_OPTIM_ADAMW } od_optim_kind;

typedef struct od_optim_options {
    od_optim_kind kind;
    float momentum;     /* SGD */
    bool nesterov;      /* SGD */
    float weight_decay; /* SGD/Adam: L2 added to the gradient; AdamW: decoupled */
    float beta1, beta2, eps; /* Adam(W); 0 means 0.9, 0.999, 1e-8 */
} od_optim_options;

typedef struct od_optim od_optim;
od_optim *od_optim_create(od_trainer *t, const od_optim_options *opt, od_error *err);
void od_optim_destroy(od_optim *o);
void od_optim_step(od_optim *o, float lr);
/* State for checkpoints: the flat float state and the step count. */
size_t od_optim_state(od_optim *o, float **state_out, int64_t **step_out);

#endif

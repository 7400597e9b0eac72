/* Data-parallel training steps: a global batch of B samples computed as K slices of B/K (slice s
 * always on a trainer seeded with seed + s, its BatchNormalization statistics its own), spread
 * over the communicator's ranks; the slices' parameter gradients summed and their BN running
 * statistics averaged, so every rank applies the same optimiser step.
 *  - K = ranks: one slice per rank, summed by MPI_Allreduce (the order is MPI's).
 *  - deterministic: K = 4 (or the rank count when it does not divide 4); every rank gathers
 *    all K slices and sums them in a fixed pairwise tree, so 1, 2 or 4 ranks give the same bytes.
 * The single-process, non-deterministic run does not come here (lib/distill.c steps itself). */
#ifndef OD_DISTILL_DP_H
#define OD_DISTILL_DP_H

#include "od_comm.h"
#include "od_train.h"

typedef struct od_dp od_dp;

/* The slice count a run with this communicator and mode uses. */
int od_dp_slices(const od_comm *comm, bool deterministic);
od_status od_dp_create(od_graph *g, od_comm *comm, int64_t batch, bool deterministic, int threads,
                       uint64_t seed, od_dp **out, od_error *err);
void od_dp_destroy(od_dp *dp);
/* The trainer whose gradients the optimiser reads (the reduced ones land there). */
od_trainer *od_dp_trainer(od_dp *dp);
int64_t od_dp_slice_batch(const od_dp *dp);

/* The caller's part of a step, for n samples from position first of the global batch: fill
 * writes their inputs; loss returns their mean loss and writes its gradient to grad. */
typedef struct od_dp_batch {
    void *ctx;
    void (*fill)(void *ctx, float *input, int64_t first, int64_t n);
    float (*loss)(void *ctx, const float *out, int64_t first, int64_t n, float *grad);
} od_dp_batch;

/* One global step: this rank's slices, forward, loss, backward, then the reduction. stop: this
 * rank wants to stop; *stop_out: some rank does (every rank gets the same answer). *loss_out:
 * the global batch's mean loss. */
od_status od_dp_step(od_dp *dp, const od_dp_batch *batch, bool stop, float *loss_out,
                     bool *stop_out, od_error *err);

/* OD_PHASES=1 in the environment: wall and thread-CPU seconds of each phase of the training
 * steps, accumulated per process and printed by od_phases_report (one line per rank, stderr).
 * od_phases_lap(phase) charges the time since the previous lap to phase; od_phases_lap(-1)
 * starts a lap without charging. Off (one branch) when the variable is unset. */
enum {
    OD_PH_TARGETS, OD_PH_FILL, OD_PH_FORWARD, OD_PH_LOSS, OD_PH_BACKWARD, OD_PH_PACK, OD_PH_REDUCE,
    OD_PH_UNPACK, OD_PH_OPTIM, OD_PH_N
};
void od_phases_lap(int phase);
void od_phases_report(const od_comm *comm);

#endif

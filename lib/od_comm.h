/* A communicator for data-parallel distillation: rank, size, all-reduce, all-gather,
 * broadcast, barrier. One process unless the program was started by Open MPI's mpirun (and
 * built with MPI): then every rank of MPI_COMM_WORLD.
 *
 *   od_comm *comm;
 *   od_comm_create(&comm, &err);              // reads the MPI environment; cheap without it
 *   if (od_comm_rank(comm) == 0) write files;
 *   od_comm_allreduce_sum(comm, grads, n, &err);
 *   od_comm_destroy(comm);                    // MPI_Finalize
 * runtime/ knows nothing of this: lib/distill.c calls it between steps. */
#ifndef OD_COMM_H
#define OD_COMM_H

#include "od_runtime.h"

typedef struct od_comm od_comm;

/* MPI when OMPI_COMM_WORLD_SIZE (or PMI_SIZE / PMIX_RANK) says mpirun started us and the
 * library was built with MPI; a launch under mpirun without MPI support is refused. */
od_status od_comm_create(od_comm **out, od_error *err);
void od_comm_destroy(od_comm *c); /* NULL: no-op */
int od_comm_rank(const od_comm *c);
int od_comm_size(const od_comm *c);
const char *od_comm_kind(const od_comm *c); /* "single" or "mpi" */
/* Element-wise sum over ranks, in place (MPI_Allreduce; summation order up to MPI). */
od_status od_comm_allreduce_sum(od_comm *c, float *buf, int64_t n, od_error *err);
/* Concatenation in rank order: rank r gives counts[r] floats, every rank gets them all. */
od_status od_comm_allgather(od_comm *c, const float *mine, const int64_t *counts, float *all,
                            od_error *err);
/* The same in bytes. */
od_status od_comm_allgather_bytes(od_comm *c, const void *mine, const int64_t *counts, void *all,
                                  od_error *err);
od_status od_comm_bcast(od_comm *c, void *buf, size_t bytes, int root, od_error *err);
od_status od_comm_barrier(od_comm *c, od_error *err);
/* Ends every rank's process at once (MPI_Abort), after this rank printed its message. */
void od_comm_abort(od_comm *c, int code);
/* Seconds spent inside the calls above since creation. */
double od_comm_seconds(const od_comm *c);

#endif

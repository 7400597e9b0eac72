/* The communicator's implementations: one process (lib/comm.c), Open MPI (lib/comm_mpi.c,
 * compiled only with -DOD_HAVE_MPI). */
#ifndef OD_COMM_INTERNAL_H
#define OD_COMM_INTERNAL_H

#include "od_comm.h"

struct od_comm {
    int rank, size;
    const char *kind;
    double seconds; /* in communication */
    bool mpi;
};

#ifdef OD_HAVE_MPI
od_status od_comm_mpi_init(od_comm *c, od_error *err);
void od_comm_mpi_finalize(od_comm *c);
od_status od_comm_mpi_allreduce_sum(od_comm *c, float *buf, int64_t n, od_error *err);
od_status od_comm_mpi_allgather(od_comm *c, const float *mine, const int64_t *counts, float *all,
                                od_error *err);
od_status od_comm_mpi_allgather_bytes(od_comm *c, const void *mine, const int64_t *counts,
                                      void *all, od_error *err);
od_status od_comm_mpi_bcast(od_comm *c, void *buf, size_t bytes, int root, od_error *err);
od_status od_comm_mpi_barrier(od_comm *c, od_error *err);
void od_comm_mpi_abort(od_comm *c, int code);
#endif

#endif

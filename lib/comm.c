/* The communicator: dispatch to MPI when launched by mpirun, else one process (every
 * collective is a copy or nothing). MPI_Init is called only under mpirun, so a plain run
 * never touches MPI. */
#include "comm_internal.h"

#include <stdlib.h>
#include <string.h>

static bool launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_SIZE");
}

od_status od_comm_create(od_comm **out, od_error *err) {
    *out = NULL;
    od_comm *c = calloc(1, sizeof *c);
    if (!c) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    c->size = 1;
    c->kind = "single";
    if (launched_by_mpirun()) {
#ifdef OD_HAVE_MPI
        od_status st = od_comm_mpi_init(c, err);
        if (st) {
            free(c);
            return st;
        }
#else
        const char *n = getenv("OMPI_COMM_WORLD_SIZE");
        if (n && atoi(n) > 1) {
            free(c);
            return od_error_set(
                err, OD_STATUS_UNSUPPORTED,
                "started by mpirun with %s ranks, but this onnx-distill was built without MPI "
                "(install libopenmpi-dev, e.g. `make deps`, and rebuild)",
                n);
        }
#endif
    }
    *out = c;
    return OD_STATUS_OK;
}

void od_comm_destroy(od_comm *c) {
    if (!c) return;
#ifdef OD_HAVE_MPI
    if (c->mpi) od_comm_mpi_finalize(c);
#endif
    free(c);
}

int od_comm_rank(const od_comm *c) {
    return c ? c->rank : 0;
}
int od_comm_size(const od_comm *c) {
    return c ? c->size : 1;
}
const char *od_comm_kind(const od_comm *c) {
    return c ? c->kind : "single";
}
double od_comm_seconds(const od_comm *c) {
    return c ? c->seconds : 0;
}

#ifdef OD_HAVE_MPI
#define IF_MPI(call)                                                                               \
    if (c && c->mpi) return call
#else
#define IF_MPI(call)
#endif

od_status od_comm_allreduce_sum(od_comm *c, float *buf, int64_t n, od_error *err) {
    IF_MPI(od_comm_mpi_allreduce_sum(c, buf, n, err));
    return OD_STATUS_OK;
}

od_status od_comm_allgather(od_comm *c, const float *mine, const int64_t *counts, float *all,
                            od_error *err) {
    IF_MPI(od_comm_mpi_allgather(c, mine, counts, all, err));
    if (all != mine) memmove(all, mine, sizeof(float) * (size_t)counts[0]);
    return OD_STATUS_OK;
}

od_status od_comm_allgather_bytes(od_comm *c, const void *mine, const int64_t *counts, void *all,
                                  od_error *err) {
    IF_MPI(od_comm_mpi_allgather_bytes(c, mine, counts, all, err));
    if (all != mine) memmove(all, mine, (size_t)counts[0]);
    return OD_STATUS_OK;
}

od_status od_comm_bcast(od_comm *c, void *buf, size_t bytes, int root, od_error *err) {
    IF_MPI(od_comm_mpi_bcast(c, buf, bytes, root, err));
    return OD_STATUS_OK;
}

od_status od_comm_barrier(od_comm *c, od_error *err) {
    IF_MPI(od_comm_mpi_barrier(c, err));
    return OD_STATUS_OK;
}

void od_comm_abort(od_comm *c, int code) {
#ifdef OD_HAVE_MPI
    if (c && c->mpi) od_comm_mpi_abort(c, code);
#endif
    (void)c;
    (void)code;
}

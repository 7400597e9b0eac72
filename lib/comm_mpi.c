/* The communicator over Open MPI (MPI_COMM_WORLD). Errors return instead of aborting
 * (MPI_ERRORS_RETURN), so a rank that died shows up as a message naming the call. */
#include "comm_internal.h"

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>

static od_status mpi_fail(od_comm *c, int rc, const char *call, od_error *err) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    return od_error_set(err, OD_STATUS_IO,
                        "rank %d of %d: %s failed (%s): another rank has probably died", c->rank,
                        c->size, call, text);
}

od_status od_comm_mpi_init(od_comm *c, od_error *err) {
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    /* the ranks' worker threads never call MPI: the main thread alone does */
    if (!inited && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return od_error_set(err, OD_STATUS_IO, "MPI_Init failed");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    c->kind = "mpi";
    c->mpi = true;
    return OD_STATUS_OK;
}

void od_comm_mpi_finalize(od_comm *c) {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
}

/* counts above INT_MAX go in pieces */
#define CHUNK (1 << 30)

od_status od_comm_mpi_allreduce_sum(od_comm *c, float *buf, int64_t n, od_error *err) {
    double t = od_seconds();
    for (int64_t at = 0; at < n; at += CHUNK) {
        int k = (int)(n - at < CHUNK ? n - at : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + at, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, "MPI_Allreduce", err);
    }
    c->seconds += od_seconds() - t;
    return OD_STATUS_OK;
}

static od_status allgather(od_comm *c, const void *mine, const int64_t *counts, void *all,
                           MPI_Datatype type, od_error *err) {
    double t = od_seconds();
    int *cnt = malloc(sizeof(int) * (size_t)c->size * 2);
    if (!cnt) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    int64_t total = 0;
    for (int r = 0; r < c->size; r++) {
        if (counts[r] > INT32_MAX / 2 || total > INT32_MAX / 2) {
            free(cnt);
            return od_error_set(err, OD_STATUS_UNSUPPORTED,
                                "MPI_Allgatherv: more than 2^30 elements");
        }
        cnt[r] = (int)counts[r];
        cnt[c->size + r] = (int)total;
        total += counts[r];
    }
    int rc = MPI_Allgatherv(mine, cnt[c->rank], type, all, cnt, cnt + c->size, type,
                            MPI_COMM_WORLD);
    free(cnt);
    if (rc != MPI_SUCCESS) return mpi_fail(c, rc, "MPI_Allgatherv", err);
    c->seconds += od_seconds() - t;
    return OD_STATUS_OK;
}

od_status od_comm_mpi_allgather(od_comm *c, const float *mine, const int64_t *counts, float *all,
                                od_error *err) {
    return allgather(c, mine, counts, all, MPI_FLOAT, err);
}

od_status od_comm_mpi_allgather_bytes(od_comm *c, const void *mine, const int64_t *counts,
                                      void *all, od_error *err) {
    return allgather(c, mine, counts, all, MPI_BYTE, err);
}

od_status od_comm_mpi_bcast(od_comm *c, void *buf, size_t bytes, int root, od_error *err) {
    double t = od_seconds();
    for (size_t at = 0; at < bytes; at += CHUNK) {
        int k = (int)(bytes - at < CHUNK ? bytes - at : CHUNK);
        int rc = MPI_Bcast((char *)buf + at, k, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(c, rc, "MPI_Bcast", err);
    }
    c->seconds += od_seconds() - t;
    return OD_STATUS_OK;
}

od_status od_comm_mpi_barrier(od_comm *c, od_error *err) {
    double t = od_seconds();
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) return mpi_fail(c, rc, "MPI_Barrier", err);
    c->seconds += od_seconds() - t;
    return OD_STATUS_OK;
}

void od_comm_mpi_abort(od_comm *c, int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
}

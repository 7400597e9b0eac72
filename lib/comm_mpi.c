/* The communicator over Open MPI (MPI_COMM_WORLD). Errors return instead of aborting
 * (MPI_ERRORS_RETURN), so a rank that died shows up as a message naming the call. */
#include "comm_internal.h"

#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Waits, sleeping, until every rank has reached this collective (MPI_Ibarrier polled with short
 * naps), so that the blocking collective after it finds them all there. A rank waiting on a
 * slower one thus leaves its core instead of spinning in Open MPI's progress loop: on a
 * machine shared with other work, the spinning took CPU time the scheduler then withheld from
 * the rank's own computation (a wait costs at most one nap of latency, 0.5 ms). The reduction itself, and so its result, is unchanged.
 * OD_MPI_WAIT=spin: Open MPI's busy wait alone. */
static od_status wait_for_all(od_comm *c, const char *call, od_error *err) {
    static int spin = -1;
    if (spin < 0) spin = getenv("OD_MPI_WAIT") && strcmp(getenv("OD_MPI_WAIT"), "spin") == 0;
    if (spin || c->size < 2) return OD_STATUS_OK;
    MPI_Request req;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &req), done = 0;
    long nap = 10000; /* ns: after 64 polls, naps from 10 us doubling to 0.5 ms */
    for (int k = 0; rc == MPI_SUCCESS; k++) {
        rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || done) break;
        if (k < 64) continue;
        nanosleep(&(struct timespec){0, nap}, NULL);
        if (nap < 500000) nap *= 2;
    }
    return rc == MPI_SUCCESS ? OD_STATUS_OK : mpi_fail(c, rc, call, err);
}

/* counts above INT_MAX go in pieces */
#define CHUNK (1 << 30)

od_status od_comm_mpi_allreduce_sum(od_comm *c, float *buf, int64_t n, od_error *err) {
    double t = od_seconds();
    od_status st = wait_for_all(c, "MPI_Allreduce", err);
    if (st) return st;
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
    od_status st = wait_for_all(c, "MPI_Allgatherv", err);
    if (st) return st;
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

/* Internal: a few threads that take tasks from a shared counter.
 *
 * Unlike a pool that hands each thread its share and waits for every thread, the calling thread
 * takes tasks too, and waits only for tasks that some thread has started: a worker the OS has
 * descheduled (on a shared machine) costs nothing but its share of the parallelism. Task
 * boundaries are the caller's, so results do not depend on which thread ran what.
 *
 * The same threads serve XNNPACK: runtime/pthreadpool.c implements the pthreadpool functions
 * XNNPACK calls over od_workers, so a plan's operators and our own kernels share one pool. */
#ifndef OD_WORKERS_H
#define OD_WORKERS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct od_workers od_workers;

/* threads - 1 background threads; threads == 1 gives a pool that runs everything on the caller.
 * NULL when threads < 1 or no thread could be started. */
od_workers *od_workers_create(int threads);
void od_workers_destroy(od_workers *w);
int od_workers_threads(const od_workers *w); /* 1 for NULL */
/* Runs fn(ctx, who, task) for every task in [0, n): who is the running thread (0 the caller),
 * for per-thread state. Returns when all tasks are done. A run from inside a task of the same
 * pool, or from another thread while a run is under way, runs serially on its thread. */
void od_workers_run(od_workers *w, int64_t n, void (*fn)(void *ctx, int who, int64_t task), void *ctx);
/* Runs fn(ctx, who, begin, end) over chunks that cover [0, n) once: a caller whose tasks are
 * cheap walks each chunk itself (pthreadpool's grids count coordinates instead of dividing).
 * flush_denormals sets flush-to-zero on every thread while it runs chunks (XNNPACK asks for this,
 * as pthreadpool's PTHREADPOOL_FLAG_DISABLE_DENORMALS, on the serial path too). */
void od_workers_run_ranges(od_workers *w, int64_t n,
                           void (*fn)(void *ctx, int who, int64_t begin, int64_t end), void *ctx,
                           bool flush_denormals);
/* Jobs handed to threads since the process started (all pools): tests prove with it that
 * XNNPACK's calls reach this pool. */
int64_t od_workers_jobs(void);

#endif

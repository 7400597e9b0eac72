/* Internal: a few threads that take tasks from a shared counter.
 *
 * Unlike a pool that hands each thread its share and waits for every thread, the calling thread
 * takes tasks too, and waits only for tasks that some thread has started: a worker the OS has
 * descheduled (on a shared machine) costs nothing but its share of the parallelism. Task
 * boundaries are the caller's, so results do not depend on which thread ran what. */
#ifndef OD_WORKERS_H
#define OD_WORKERS_H

#include <stdint.h>

typedef struct od_workers od_workers;

/* threads - 1 background threads; NULL (then run serially) when threads <= 1 or on failure. */
od_workers *od_workers_create(int threads);
void od_workers_destroy(od_workers *w);
int od_workers_threads(const od_workers *w); /* 1 for NULL */
/* Runs fn(ctx, who, task) for every task in [0, n): who is the running thread (0 the caller),
 * for per-thread state. Returns when all tasks are done. */
void od_workers_run(od_workers *w, int64_t n, void (*fn)(void *ctx, int who, int64_t task), void *ctx);

#endif

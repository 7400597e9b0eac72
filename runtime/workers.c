/* Threads that take tasks from a shared counter; see workers.h. */
#include "workers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define CLOSED (INT64_MAX / 2)
#define SPIN_SECONDS 200e-6 /* longer than most tasks take to finish, shorter than a time slice */

struct od_workers {
    int threads;
    pthread_t *tids;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a new job */
    pthread_cond_t idle_cv; /* busy fell to 0 */
    uint64_t gen;
    bool quit;
    /* the current job */
    void (*fn)(void *, int, int64_t);
    void *ctx;
    atomic_llong n, next, busy;
};

typedef struct worker_arg {
    od_workers *w;
    int who;
} worker_arg;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void drain(od_workers *w, int who) {
    atomic_fetch_add(&w->busy, 1);
    for (long long t; (t = atomic_fetch_add(&w->next, 1)) < atomic_load(&w->n);) w->fn(w->ctx, who, t);
    if (atomic_fetch_sub(&w->busy, 1) == 1 && who != 0) {
        /* the caller may be asleep waiting for this: wake it (under the lock, so that it cannot
         * miss the wake-up between its test of busy and its wait) */
        pthread_mutex_lock(&w->mu);
        pthread_cond_broadcast(&w->idle_cv);
        pthread_mutex_unlock(&w->mu);
    }
}

static void *worker_main(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    od_workers *w = wa.w;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->gen == seen && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        bool quit = w->quit;
        seen = w->gen;
        pthread_mutex_unlock(&w->mu);
        if (quit) return NULL;
        drain(w, wa.who);
    }
}

od_workers *od_workers_create(int threads) {
    if (threads <= 1) return NULL;
    od_workers *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->threads = threads;
    w->tids = calloc((size_t)threads, sizeof(pthread_t));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->idle_cv, NULL);
    atomic_store(&w->next, CLOSED);
    atomic_store(&w->n, 0); /* no job until the first run: a worker waking now finds nothing */
    for (int t = 1; w->tids && t < threads; t++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a) break;
        *a = (worker_arg){w, t};
        if (pthread_create(&w->tids[w->n_started], NULL, worker_main, a)) {
            free(a);
            break;
        }
        w->n_started++;
    }
    if (w->n_started == 0) {
        od_workers_destroy(w);
        return NULL;
    }
    w->threads = w->n_started + 1;
    return w;
}

void od_workers_destroy(od_workers *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n_started; i++) pthread_join(w->tids[i], NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->idle_cv);
    free(w->tids);
    free(w);
}

int od_workers_threads(const od_workers *w) { return w ? w->threads : 1; }

void od_workers_run(od_workers *w, int64_t n, void (*fn)(void *, int, int64_t), void *ctx) {
    if (!w || n <= 1) {
        for (int64_t t = 0; t < n; t++) fn(ctx, 0, t);
        return;
    }
    /* No worker is inside a task now (the last run waited for them), but one woken late may be
     * about to take from the counter: it stays closed while the job changes. */
    atomic_store(&w->next, CLOSED);
    w->fn = fn;
    w->ctx = ctx;
    atomic_store(&w->n, n);
    atomic_store(&w->next, 0);
    pthread_mutex_lock(&w->mu);
    w->gen++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    drain(w, 0);
    /* A worker still inside a task: usually it ends within microseconds, so spin a little; if
     * the OS has descheduled it (a shared machine), sleep rather than spin, so that the CPU
     * goes to it (or to whoever needs it) instead of to this loop. */
    double until = 0;
    for (int spin = 0; atomic_load(&w->busy) > 0; spin++) {
        if (spin % 64) continue;
        double t = now_seconds();
        if (until == 0) until = t + SPIN_SECONDS;
        else if (t > until) break;
    }
    if (atomic_load(&w->busy) > 0) {
        pthread_mutex_lock(&w->mu);
        while (atomic_load(&w->busy) > 0) pthread_cond_wait(&w->idle_cv, &w->mu);
        pthread_mutex_unlock(&w->mu);
    }
}

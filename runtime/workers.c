/* Threads that take tasks from a shared counter; see workers.h. */
#include "workers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#define CLOSED (INT64_MAX / 2)

struct od_workers {
    int threads;
    pthread_t *tids;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
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

static void drain(od_workers *w, int who) {
    atomic_fetch_add(&w->busy, 1);
    for (long long t; (t = atomic_fetch_add(&w->next, 1)) < atomic_load(&w->n);) w->fn(w->ctx, who, t);
    atomic_fetch_sub(&w->busy, 1);
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
    while (atomic_load(&w->busy) > 0) sched_yield();
}

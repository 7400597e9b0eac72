/* Threads that take tasks from a shared counter; see workers.h.
 *
 * A job is cut into chunks and published as one 64-bit claim word: its generation in the high
 * half, the unclaimed chunks [lo, hi) in the low half. The caller claims chunks from the front,
 * workers from the back, each with a compare-and-swap that also checks the generation, so a
 * worker that wakes late can never take tasks of a job it did not read. Claiming from both ends
 * keeps the caller's tasks the first ones of every job and a worker's the last: when one step
 * writes a tensor and the next reads it split alike (a convolution's rows, then the next one's),
 * each thread reads what it wrote, from its own core's cache. Taking chunks in turn from one end
 * spread each thread's part over the whole tensor, and moving it between cores made two threads
 * at batch 1 barely faster than one on mobilenet_v2 (0.79x of that time this way). A finished
 * job's word is closed (lo = hi = all ones) before the next job's fields are written.
 *
 * A worker runs its chunk from a slot of its own (next task, end) a few tasks at a time, so that
 * when every chunk is claimed the caller takes the unstarted half of a worker's chunk instead of
 * waiting: a worker descheduled in the middle of a chunk holds up only the tasks it started. */
#include "workers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#define GEN(c) ((uint32_t)((c) >> 32))
#define IDX(c) ((uint32_t)(c)) /* a slot's next task */
#define LO(c) ((uint32_t)(c)&0xFFFFu)
#define HI(c) ((uint32_t)(c) >> 16)
#define WORD(gen, lo, hi) ((uint64_t)(gen) << 32 | (uint64_t)(hi) << 16 | (uint64_t)(lo))
#define CLOSED UINT32_MAX /* lo = hi = 0xFFFF: nothing to claim */
#define MAX_TASKS INT32_MAX
/* An idle worker watches for the next job this long (pausing, then yielding the core) before it
 * sleeps: the steps of a plan come a few microseconds apart, and a wake-up costs tens. */
#define SPIN_PAUSE_NS 20000
#define SPIN_YIELD_NS 200000
/* Chunks per thread a job is cut into: fewer claims, but no thread holds much of the work. */
#define CHUNKS_PER_THREAD 16
/* A worker starts a quarter of its chunk at a time: what a thief can never take from it. */
#define STEPS_PER_CHUNK 4

typedef void (*range_fn)(void *, int, int64_t, int64_t);

struct od_workers {
    int threads;
    pthread_t *tids;
    int n_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int sleeping;
    atomic_bool quit;
    atomic_bool calling; /* a thread is running a job: another caller runs its own serially */
    uint32_t gen;        /* the caller's count of jobs */
    _Atomic uint64_t claim;
    /* the job of the claim word's generation, written (release) before the word is published */
    _Atomic(range_fn) fn;
    _Atomic(void *) ctx;
    atomic_llong n, per; /* tasks; tasks a chunk (the last may have fewer) */
    atomic_bool flush;
    atomic_llong done; /* tasks finished */
    struct slot *slots; /* per thread (0, the caller's, unused) */
};

/* A worker's unstarted tasks [next, end) of its chunk: end in the high half, next in the low. */
struct slot {
    _Alignas(64) _Atomic uint64_t range;
};
#define SLOT(next, end) ((uint64_t)(end) << 32 | (uint32_t)(next))

typedef struct worker_arg {
    od_workers *w;
    int who;
} worker_arg;

static atomic_llong jobs_total;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Flush-to-zero and denormals-are-zero on this thread; returns the state to restore. */
static unsigned flush_denormals(void) {
#if defined(__SSE__)
    unsigned saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040);
    return saved;
#else
    return 0;
#endif
}

static void restore_denormals(unsigned saved) {
#if defined(__SSE__)
    _mm_setcsr(saved);
#else
    (void)saved;
#endif
}

/* A worker's chunk [begin, end): published in its slot, then started a step at a time, each
 * step taken from the slot so that a thief can have taken the rest meanwhile. */
static void run_slot(od_workers *w, int who, range_fn fn, void *ctx, int64_t begin, int64_t end) {
    _Atomic uint64_t *slot = &w->slots[who].range;
    const int64_t step = (end - begin + STEPS_PER_CHUNK - 1) / STEPS_PER_CHUNK;
    atomic_store(slot, SLOT(begin, end));
    for (uint64_t v = atomic_load(slot);;) {
        int64_t next = IDX(v), stop = (int64_t)(v >> 32);
        if (next >= stop) break;
        int64_t to = next + step < stop ? next + step : stop;
        if (!atomic_compare_exchange_weak(slot, &v, SLOT(to, stop))) continue;
        fn(ctx, who, next, to);
        atomic_fetch_add_explicit(&w->done, to - next, memory_order_release);
        v = atomic_load(slot);
    }
}

/* The caller, every task claimed: takes the unstarted half (all of one task) of some worker's
 * chunk and runs it. False when no worker has unstarted tasks. */
static bool steal(od_workers *w, range_fn fn, void *ctx) {
    for (int k = 1; k < w->threads; k++) {
        _Atomic uint64_t *slot = &w->slots[k].range;
        uint64_t v = atomic_load(slot);
        int64_t next = IDX(v), stop = (int64_t)(v >> 32);
        if (next >= stop) continue;
        int64_t mid = next + (stop - next) / 2;
        if (!atomic_compare_exchange_strong(slot, &v, SLOT(next, mid))) return true; /* moved: look again */
        fn(ctx, 0, mid, stop);
        atomic_fetch_add_explicit(&w->done, stop - mid, memory_order_release);
        return true;
    }
    return false;
}

/* Claims and runs chunks of the job of c's generation until none is left or the job changed. */
static void help(od_workers *w, int who, uint64_t c) {
    const uint32_t gen = GEN(c);
    range_fn fn = atomic_load_explicit(&w->fn, memory_order_acquire);
    void *ctx = atomic_load_explicit(&w->ctx, memory_order_acquire);
    int64_t n = atomic_load_explicit(&w->n, memory_order_acquire);
    int64_t per = atomic_load_explicit(&w->per, memory_order_acquire);
    bool flush = atomic_load_explicit(&w->flush, memory_order_acquire);
    bool flushed = false;
    unsigned saved = 0;
    /* The fields above may belong to a later job if this one ended meanwhile; then the word was
     * closed before they were written and no compare-and-swap below can succeed. */
    while (GEN(c) == gen && LO(c) < HI(c)) {
        uint32_t lo = LO(c), hi = HI(c), chunk = who == 0 ? lo : hi - 1;
        uint64_t claimed = who == 0 ? WORD(gen, lo + 1, hi) : WORD(gen, lo, hi - 1);
        if (!atomic_compare_exchange_weak(&w->claim, &c, claimed)) continue;
        int64_t begin = (int64_t)chunk * per, end = begin + per < n ? begin + per : n;
        if (flush && !flushed && who != 0) { /* the caller flushes for its whole run */
            saved = flush_denormals();
            flushed = true;
        }
        if (who == 0) {
            fn(ctx, who, begin, end);
            atomic_fetch_add_explicit(&w->done, end - begin, memory_order_release);
        } else {
            run_slot(w, who, fn, ctx, begin, end);
        }
        c = atomic_load(&w->claim);
    }
    if (flushed) restore_denormals(saved);
}

/* Waits for a job of another generation than seen (or quit) and returns its claim word. */
static uint64_t wait_job(od_workers *w, uint32_t seen) {
    uint64_t c;
    int64_t start = 0;
    for (unsigned i = 0;; i++) {
        c = atomic_load_explicit(&w->claim, memory_order_acquire);
        if (GEN(c) != seen || atomic_load_explicit(&w->quit, memory_order_relaxed)) return c;
        if (i % 256 == 255) {
            int64_t t = now_ns();
            if (!start) start = t;
            if (t - start > SPIN_YIELD_NS) break;
            if (t - start > SPIN_PAUSE_NS) sched_yield();
        }
        cpu_relax();
    }
    pthread_mutex_lock(&w->mu);
    atomic_fetch_add(&w->sleeping, 1);
    while (GEN(c = atomic_load(&w->claim)) == seen && !atomic_load(&w->quit))
        pthread_cond_wait(&w->cv, &w->mu);
    atomic_fetch_sub(&w->sleeping, 1);
    pthread_mutex_unlock(&w->mu);
    return c;
}

static void *worker_main(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    od_workers *w = wa.w;
    uint32_t seen = 0;
    for (;;) {
        uint64_t c = wait_job(w, seen);
        if (atomic_load(&w->quit)) return NULL;
        seen = GEN(c);
        help(w, wa.who, c);
    }
}

od_workers *od_workers_create(int threads) {
    if (threads < 1) return NULL;
    od_workers *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->threads = threads;
    w->tids = calloc((size_t)threads, sizeof(pthread_t));
    w->slots = aligned_alloc(64, sizeof(struct slot) * (size_t)threads);
    if (!w->tids || !w->slots) {
        free(w->tids);
        free(w->slots);
        free(w);
        return NULL;
    }
    for (int t = 0; t < threads; t++) atomic_init(&w->slots[t].range, 0);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    atomic_store(&w->claim, (uint64_t)CLOSED); /* generation 0, closed: no job yet */
    for (int t = 1; t < threads; t++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a) break;
        *a = (worker_arg){w, t};
        if (pthread_create(&w->tids[w->n_started], NULL, worker_main, a)) {
            free(a);
            break;
        }
        w->n_started++;
    }
    if (threads > 1 && w->n_started == 0) {
        od_workers_destroy(w);
        return NULL;
    }
    w->threads = w->n_started + 1;
    return w;
}

void od_workers_destroy(od_workers *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->quit, true);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n_started; i++) pthread_join(w->tids[i], NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->tids);
    free(w->slots);
    free(w);
}

int od_workers_threads(const od_workers *w) { return w ? w->threads : 1; }

int64_t od_workers_jobs(void) { return atomic_load_explicit(&jobs_total, memory_order_relaxed); }

void od_workers_run_ranges(od_workers *w, int64_t n, range_fn fn, void *ctx, bool flush) {
    if (n < 1) return;
    /* A run from inside a task, or from a second thread while one runs, goes serially (as
     * pthreadpool serialises its callers, but without making anyone wait). */
    if (!w || w->threads < 2 || n < 2 || n > MAX_TASKS || atomic_exchange(&w->calling, true)) {
        unsigned saved = flush ? flush_denormals() : 0;
        fn(ctx, 0, 0, n);
        if (flush) restore_denormals(saved);
        return;
    }
    atomic_fetch_add_explicit(&jobs_total, 1, memory_order_relaxed);
    int64_t chunks = (int64_t)w->threads * CHUNKS_PER_THREAD, per;
    if (chunks > n) chunks = n;
    if (chunks > 0xFFFE) chunks = 0xFFFE; /* lo and hi are 16 bits */
    per = (n + chunks - 1) / chunks;
    chunks = (n + per - 1) / per;
    atomic_store_explicit(&w->fn, fn, memory_order_release);
    atomic_store_explicit(&w->ctx, ctx, memory_order_release);
    atomic_store_explicit(&w->n, n, memory_order_release);
    atomic_store_explicit(&w->per, per, memory_order_release);
    atomic_store_explicit(&w->flush, flush, memory_order_release);
    atomic_store_explicit(&w->done, 0, memory_order_release);
    uint64_t c = WORD(++w->gen, 0, chunks);
    atomic_store(&w->claim, c);
    if (atomic_load(&w->sleeping) > 0) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    unsigned saved = flush ? flush_denormals() : 0;
    help(w, 0, c);
    /* Every task is claimed: take what workers have not started, then wait for the rest. */
    for (unsigned i = 0; atomic_load_explicit(&w->done, memory_order_acquire) < n; i++) {
        if (steal(w, fn, ctx)) i = 0;
        else if (i < 4096) cpu_relax();
        else sched_yield();
    }
    if (flush) restore_denormals(saved);
    atomic_store(&w->claim, WORD(GEN(c), 0, 0) | CLOSED);
    atomic_store(&w->calling, false);
}

typedef struct each {
    void (*fn)(void *, int, int64_t);
    void *ctx;
} each;

static void run_each(void *ctx, int who, int64_t begin, int64_t end) {
    const each *e = ctx;
    for (int64_t t = begin; t < end; t++) e->fn(e->ctx, who, t);
}

void od_workers_run(od_workers *w, int64_t n, void (*fn)(void *, int, int64_t), void *ctx) {
    od_workers_run_ranges(w, n, run_each, &(each){fn, ctx}, false);
}

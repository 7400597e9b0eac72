/* The thread pool (runtime/workers.c) and the pthreadpool functions over it
 * (runtime/pthreadpool.c): every task runs exactly once, the caller takes a job's first tasks
 * and a worker its last, grids are tiled as pthreadpool tiles
 * them, a run inside a task of the same pool does not deadlock, denormals are flushed when asked,
 * XNNPACK's calls arrive in our pool, a plan's outputs with 2 threads equal 1 thread's bit
 * for bit, large buffers are advised to the kernel as huge pages, and a plan on the pool places its
 * buffers in lanes (buffers alive at once apart, any two sharing memory centred alike). */
#include "od_onnx.h"
#include "od_runtime.h"
#include "op.h"
#include "plan_internal.h"
#include "test_check.h"
#include "test_graph.h"
#include "workers.h"

#include <pthreadpool.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xnnpack.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

enum { MAX_TASKS = 5000 };

typedef struct counts {
    atomic_int hit[MAX_TASKS];
    atomic_int by_worker; /* tasks run by a thread other than the caller */
} counts;

static void count_task(void *ctx, int who, int64_t t) {
    counts *c = ctx;
    atomic_fetch_add(&c->hit[t], 1);
    if (who) atomic_fetch_add(&c->by_worker, 1);
}

static void test_every_task_once(void) {
    od_workers *w = od_workers_create(3);
    check(w && od_workers_threads(w) == 3, "create", "3 threads, got %d", od_workers_threads(w));
    counts *c = calloc(1, sizeof *c);
    int bad = 0, by_worker = 0;
    /* Many short jobs back to back: a worker that wakes late must never run a task twice or
     * take one of the next job. */
    for (int job = 0; job < 20000; job++) {
        int n = 1 + job * 7919 % (job % 10 == 0 ? MAX_TASKS : 40);
        for (int t = 0; t < n; t++) atomic_store(&c->hit[t], 0);
        atomic_store(&c->by_worker, 0);
        od_workers_run(w, n, count_task, c);
        for (int t = 0; t < n; t++) bad += atomic_load(&c->hit[t]) != 1;
        by_worker += atomic_load(&c->by_worker);
    }
    check(bad == 0, "every task once", "%d tasks run other than once", bad);
    check(by_worker > 0, "workers help", "no task ran on a worker in 20000 jobs");
    free(c);
    od_workers_destroy(w);
    check(od_workers_create(0) == NULL, "create 0", "0 threads must fail");
    od_workers *one = od_workers_create(1);
    check(one && od_workers_threads(one) == 1, "create 1", "a serial pool");
    od_workers_destroy(one);
    od_workers_destroy(NULL);
}

/* A worker that stops in the first task of its chunk holds up only that step of the chunk: the
 * caller takes the rest (2 threads, 3200 tasks: chunks of 100, steps of 25). */
enum { STEAL_N = 3200, STEAL_STEP = 25 };
typedef struct steal_check {
    atomic_int by_caller, worker_started, released;
} steal_check;

static void steal_task(void *ctx, int who, int64_t t) {
    steal_check *c = ctx;
    if (who == 0) {
        for (int i = 0; i < 100000 && !atomic_load(&c->worker_started); i++) sched_yield();
        atomic_fetch_add(&c->by_caller, 1);
    } else if (!atomic_exchange(&c->worker_started, 1)) {
        /* wait (at most ~2 s) for the caller to run every task but this step's */
        for (int i = 0; i < 2000 && atomic_load(&c->by_caller) < STEAL_N - STEAL_STEP; i++)
            usleep(1000);
        atomic_store(&c->released, atomic_load(&c->by_caller) >= STEAL_N - STEAL_STEP);
    }
}

static void test_steal(void) {
    od_workers *w = od_workers_create(2);
    steal_check c = {0};
    od_workers_run(w, STEAL_N, steal_task, &c);
    check(!atomic_load(&c.worker_started) || atomic_load(&c.released), "caller takes a stalled chunk",
          "the caller ran %d of %d tasks while the worker stood in its first", atomic_load(&c.by_caller),
          STEAL_N - STEAL_STEP);
    od_workers_destroy(w);
}

/* The caller claims chunks from the front of a job, workers from the back: 2 threads, 64 tasks
 * of ~100 us (32 chunks of 2), the caller runs task 0, and a worker that ran more than one chunk
 * (so it claimed the last before the caller could) ran task 63. */
typedef struct ends_check {
    atomic_int who[64];
} ends_check;

static void ends_task(void *ctx, int who, int64_t t) {
    ends_check *c = ctx;
    atomic_store(&c->who[t], who + 1);
    usleep(100);
}

static void test_ends(void) {
    od_workers *w = od_workers_create(2);
    for (int round = 0; round < 5; round++) {
        ends_check c = {0};
        od_workers_run(w, 64, ends_task, &c);
        int by_worker = 0;
        for (int t = 0; t < 64; t++) by_worker += atomic_load(&c.who[t]) == 2;
        check(atomic_load(&c.who[0]) == 1, "caller from the front", "task 0 ran on a worker");
        check(by_worker <= 2 || atomic_load(&c.who[63]) == 2, "worker from the back",
              "the worker ran %d tasks but not the last", by_worker);
    }
    od_workers_destroy(w);
}

typedef struct nest {
    od_workers *w;
    atomic_int hit[8][64];
} nest;

static void inner_task(void *ctx, int who, int64_t t) {
    atomic_int *row = ctx;
    atomic_fetch_add(&row[t], 1);
}

static void outer_task(void *ctx, int who, int64_t t) {
    nest *n = ctx;
    od_workers_run(n->w, 64, inner_task, n->hit[t]);
}

static void test_nested(void) {
    nest *n = calloc(1, sizeof *n);
    n->w = od_workers_create(2);
    od_workers_run(n->w, 8, outer_task, n);
    int bad = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 64; j++) bad += atomic_load(&n->hit[i][j]) != 1;
    check(bad == 0, "nested run", "%d inner tasks run other than once", bad);
    od_workers_destroy(n->w);
    free(n);
}

/* Two threads calling the same pool at once: each job still runs every task once. */
typedef struct caller_arg {
    od_workers *w;
    counts *c;
    int bad;
} caller_arg;

static void *caller_main(void *arg) {
    caller_arg *a = arg;
    for (int job = 0; job < 3000; job++) {
        int n = 1 + job % 200;
        for (int t = 0; t < n; t++) atomic_store(&a->c->hit[t], 0);
        od_workers_run(a->w, n, count_task, a->c);
        for (int t = 0; t < n; t++) a->bad += atomic_load(&a->c->hit[t]) != 1;
    }
    return NULL;
}

static void test_two_callers(void) {
    od_workers *w = od_workers_create(2);
    caller_arg a[2] = {{w, calloc(1, sizeof(counts)), 0}, {w, calloc(1, sizeof(counts)), 0}};
    pthread_t t;
    pthread_create(&t, NULL, caller_main, &a[1]);
    caller_main(&a[0]);
    pthread_join(t, NULL);
    check(a[0].bad == 0 && a[1].bad == 0, "two callers", "%d and %d tasks run other than once",
          a[0].bad, a[1].bad);
    free(a[0].c), free(a[1].c);
    od_workers_destroy(w);
}

/* 3-d grid with the last two dims tiled: each call covers a tile; every cell once. */
typedef struct grid_check {
    size_t I, J, K, tj, tk;
    atomic_int cell[5][13][17];
    atomic_int bad_tile;
} grid_check;

static void grid3_tile2(void *ctx, size_t i, size_t j, size_t k, size_t tj, size_t tk) {
    grid_check *g = ctx;
    if (j % g->tj || k % g->tk || tj == 0 || tk == 0 || tj > g->tj || tk > g->tk ||
        (tj < g->tj && j + tj != g->J) || (tk < g->tk && k + tk != g->K))
        atomic_fetch_add(&g->bad_tile, 1);
    for (size_t a = j; a < j + tj && a < g->J; a++)
        for (size_t b = k; b < k + tk && b < g->K; b++) atomic_fetch_add(&g->cell[i][a][b], 1);
}

static void test_grid(pthreadpool_t pool, const char *name) {
    grid_check *g = calloc(1, sizeof *g);
    *g = (grid_check){.I = 5, .J = 13, .K = 17, .tj = 4, .tk = 5};
    pthreadpool_parallelize_3d_tile_2d(pool, grid3_tile2, g, 5, 13, 17, 4, 5, 0);
    int bad = 0;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 13; j++)
            for (int k = 0; k < 17; k++) bad += atomic_load(&g->cell[i][j][k]) != 1;
    check(bad == 0 && atomic_load(&g->bad_tile) == 0, name, "%d cells not covered once, %d bad tiles",
          bad, atomic_load(&g->bad_tile));
    free(g);
}

/* 6-d grid, last two dims tiled, sizes that leave partial tiles: each call covers a tile, every
 * cell once; run serially, the calls come in pthreadpool's row-major order. Chunks of a job
 * start mid-row, so the walk that counts coordinates must carry between dimensions. */
enum { G0 = 2, G1 = 3, G2 = 2, G3 = 5, G4 = 7, G5 = 11, T4 = 3, T5 = 4 };
typedef struct grid6 {
    atomic_int cell[G0][G1][G2][G3][G4][G5];
    atomic_int bad_tile, calls, out_of_order;
    size_t last; /* serial run: the previous call's row-major cell index */
} grid6;

static void grid6_task(void *ctx, size_t a, size_t b, size_t c, size_t d, size_t e, size_t f,
                       size_t te, size_t tf) {
    grid6 *g = ctx;
    if (e % T4 || f % T5 || te != (G4 - e < T4 ? G4 - e : T4) || tf != (G5 - f < T5 ? G5 - f : T5))
        atomic_fetch_add(&g->bad_tile, 1);
    size_t at = ((((a * G1 + b) * G2 + c) * G3 + d) * G4 + e) * G5 + f;
    if (atomic_fetch_add(&g->calls, 1) > 0 && at <= g->last) atomic_fetch_add(&g->out_of_order, 1);
    g->last = at;
    for (size_t x = e; x < e + te && x < G4; x++)
        for (size_t y = f; y < f + tf && y < G5; y++) atomic_fetch_add(&g->cell[a][b][c][d][x][y], 1);
}

static void test_grid6(pthreadpool_t pool, const char *name) {
    grid6 *g = calloc(1, sizeof *g);
    pthreadpool_parallelize_6d_tile_2d(pool, grid6_task, g, G0, G1, G2, G3, G4, G5, T4, T5, 0);
    int bad = 0;
    for (size_t k = 0; k < sizeof g->cell / sizeof(atomic_int); k++)
        bad += atomic_load(&((atomic_int *)g->cell)[k]) != 1;
    check(bad == 0 && atomic_load(&g->bad_tile) == 0, name, "%d cells not covered once, %d bad tiles",
          bad, atomic_load(&g->bad_tile));
    if (!pool)
        check(atomic_load(&g->out_of_order) == 0, name, "%d calls out of row-major order",
              atomic_load(&g->out_of_order));
    free(g);
}

static atomic_int not_flushed, calls;
static void csr_task(void *ctx, size_t i) {
    atomic_fetch_add(&calls, 1);
#if defined(__SSE__)
    if ((_mm_getcsr() & 0x8040) != 0x8040) atomic_fetch_add(&not_flushed, 1);
#endif
}

static void test_denormals(pthreadpool_t pool, const char *name) {
#if defined(__SSE__)
    unsigned before = _mm_getcsr();
    atomic_store(&not_flushed, 0);
    atomic_store(&calls, 0);
    pthreadpool_parallelize_1d(pool, csr_task, NULL, 1000, PTHREADPOOL_FLAG_DISABLE_DENORMALS);
    check(atomic_load(&calls) == 1000 && atomic_load(&not_flushed) == 0, name,
          "%d of %d calls ran without flush-to-zero", atomic_load(&not_flushed), atomic_load(&calls));
    check(_mm_getcsr() == before, name, "the caller's MXCSR was not restored");
#endif
}

/* XNNPACK's own calls land in od_workers: a fully connected operator run on our pool. */
static void test_xnnpack_calls(void) {
    check(xnn_initialize(NULL) == xnn_status_success, "xnn_initialize", "failed");
    enum { IN = 256, OUT = 256, B = 64 };
    float *w = malloc(sizeof(float) * IN * OUT), *x = malloc(sizeof(float) * B * IN);
    float *y1 = malloc(sizeof(float) * B * OUT), *y2 = malloc(sizeof(float) * B * OUT);
    for (int i = 0; i < IN * OUT; i++) w[i] = (float)((i * 37 % 101) - 50) / 50.0f;
    for (int i = 0; i < B * IN; i++) x[i] = (float)((i * 13 % 71) - 35) / 35.0f;
    xnn_operator_t op = NULL;
    check(xnn_create_fully_connected_nc_f32(IN, OUT, IN, OUT, w, NULL, -INFINITY, INFINITY, 0, &op) ==
              xnn_status_success,
          "xnn fc create", "failed");
    pthreadpool_t pool = pthreadpool_create(2);
    check(pthreadpool_get_threads_count(pool) == 2, "threads count", "%zu",
          pthreadpool_get_threads_count(pool));
    xnn_setup_fully_connected_nc_f32(op, B, x, y1, NULL);
    xnn_run_operator(op, NULL);
    int64_t jobs = od_workers_jobs();
    xnn_setup_fully_connected_nc_f32(op, B, x, y2, pool);
    xnn_run_operator(op, pool);
    check(od_workers_jobs() > jobs, "XNNPACK calls our pool", "no job reached od_workers");
    check(memcmp(y1, y2, sizeof(float) * B * OUT) == 0, "XNNPACK bit-identical", "2 threads differ");
    xnn_delete_operator(op);
    pthreadpool_destroy(pool);
    free(w), free(x), free(y1), free(y2);
}

/* A model's outputs with 2 threads equal 1 thread's bit for bit, and (when it has steps large
 * enough) its steps went through our pool. */
static void test_plan_model(const char *path, od_model *m, bool uses_pool) {
    od_error err = {0};
    od_plan *p[2] = {NULL, NULL};
    float *out[2] = {NULL, NULL};
    size_t bytes = 0;
    int64_t jobs = 0;
    for (int k = 0; k < 2; k++) {
        if (od_plan_create(&m->graph, &(od_plan_options){.batch = 1, .threads = k + 1}, &p[k], &err)) {
            check(false, path, "%s", err.message);
            goto out;
        }
        for (int i = 0; i < od_plan_n_inputs(p[k]); i++) {
            const od_plan_io *io = od_plan_input(p[k], i);
            for (size_t j = 0; j < io->nbytes / sizeof(float); j++)
                ((float *)io->data)[j] = (float)((int)(j * 7919 % 1000) - 500) / 500.0f; /* [-1, 1) */
        }
        if (k == 1) jobs = od_workers_jobs();
        for (int r = 0; r < 4; r++) od_plan_run(p[k], &err);
        const od_plan_io *o = od_plan_output(p[k], 0);
        bytes = o->nbytes;
        out[k] = malloc(bytes);
        memcpy(out[k], o->data, bytes);
    }
    if (uses_pool) check(od_workers_jobs() > jobs, path, "2 threads: no step used the pool");
    else check(od_workers_jobs() == jobs, path, "2 threads: a step under the limits used the pool");
    check(memcmp(out[0], out[1], bytes) == 0, path, "2 threads differ from 1");
out:
    for (int k = 0; k < 2; k++) od_plan_destroy(p[k]), free(out[k]);
    od_model_destroy(m);
}

static void test_plan(const char *path, bool uses_pool) {
    od_error err = {0};
    od_model *m = NULL;
    if (od_model_load(path, &m, &err))
        check(false, path, "%s", err.message);
    else
        test_plan_model(path, m, uses_pool);
}

/* x[N,784] MatMul w[784,K]: a fully connected layer of 784 * K MACs at batch 1. */
static void test_plan_fc(int64_t k, bool uses_pool) {
    od_model *m = new_model(13);
    add_input(m, "x", 2, (int64_t[]){-1, 784});
    add_init(m, "w", 2, (int64_t[]){784, k}, -0.1f, 0.1f, NULL);
    add_node(m, "MatMul", "fc", "x,w", "y");
    add_output(m, "y");
    char what[64];
    snprintf(what, sizeof what, "batch-1 fully connected, %lld K MACs", (long long)(784 * k / 1024));
    test_plan_model(what, m, uses_pool);
}

/* od_relayout against the index formula, both ways, serial and on the pool: 3 channels (the RGB
 * path), 3 spatial positions (the same path the other way) and the general tiles. */
static void test_relayout(pthreadpool_t pool, const char *what) {
    const int64_t shapes[][4] = {{2, 3, 67, 31}, {1, 3, 224, 224}, {2, 5, 3, 1}, {3, 70, 9, 5}};
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        const int64_t *d = shapes[k];
        size_t n = (size_t)(d[0] * d[1] * d[2] * d[3]), c = (size_t)d[1], sp = (size_t)(d[2] * d[3]);
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *z = malloc(n * sizeof *z);
        for (size_t i = 0; i < n; i++) x[i] = (float)i;
        od_relayout(x, y, 4, d, true, sizeof(float), false, pool);
        bool ok = true;
        for (size_t b = 0; b < (size_t)d[0]; b++)
            for (size_t ci = 0; ci < c; ci++)
                for (size_t si = 0; si < sp; si++)
                    ok &= y[(b * sp + si) * c + ci] == x[(b * c + ci) * sp + si];
        od_relayout(y, z, 4, d, false, sizeof(float), false, pool);
        ok &= memcmp(x, z, n * sizeof *x) == 0;
        check(ok, what, "[%lld,%lld,%lld,%lld] moved an element to the wrong place", (long long)d[0],
              (long long)d[1], (long long)d[2], (long long)d[3]);
        free(x), free(y), free(z);
    }
}

/* Whether the mapping holding p carries VmFlag "hg" (madvise(MADV_HUGEPAGE)) in /proc/self/smaps:
 * 1 yes, 0 no, -1 unreadable. */
static int advised_huge(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int in = 0, found = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        } else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

static void test_alloc_large(void) {
    const size_t mib = (size_t)1 << 20;
    float *big = od_alloc_large(5 * mib + 12), *small = od_alloc_large(100 * 1024);
    check(big && small, "od_alloc_large", "allocations failed");
    if (!big || !small) return;
    memset(big, 1, 5 * mib + 12); /* all of it writable */
    memset(small, 1, 100 * 1024);
    const char *off = getenv("OD_NO_HUGEPAGES");
    bool plain = off && *off && strcmp(off, "0") != 0;
    check(plain || (uintptr_t)big % (2 * mib) == 0, "od_alloc_large: 5 MiB aligned to a huge page", "%p", (void *)big);
    check((uintptr_t)small % 64 == 0, "od_alloc_large: 100 KiB 64-byte aligned", "%p", (void *)small);
    int hg = advised_huge(big);
    check(hg < 0 || hg == !plain, "od_alloc_large: 5 MiB advised as huge pages (VmFlags hg), not with OD_NO_HUGEPAGES",
          "hg %d, OD_NO_HUGEPAGES %s", hg, off ? off : "unset");
    free(big);
    free(small);
}

/* od_arena_lanes on random lifetimes and sizes, and on a chain of steps (each buffer read by the
 * next step only, as a plain network's activations): two lanes, as wide as the two largest. */
static void test_arena_lanes(void) {
    enum { N = 80 };
    int first[N], last[N];
    size_t bytes[N], offset[N];
    uint32_t r = 12345;
    for (int round = 0; round < 200; round++) {
        int n = 1 + (int)((r = r * 1664525u + 1013904223u) >> 8) % N;
        for (int i = 0; i < n; i++) {
            first[i] = (int)((r = r * 1664525u + 1013904223u) >> 8) % 41 - 1;
            last[i] = first[i] + (int)((r = r * 1664525u + 1013904223u) >> 8) % 6;
            bytes[i] = ((r = r * 1664525u + 1013904223u) >> 8) % 300000;
        }
        size_t total = od_arena_lanes(n, first, last, bytes, offset);
        bool ok = total != SIZE_MAX;
        for (int i = 0; i < n && ok; i++) {
            ok = offset[i] % 64 == 0 && offset[i] + bytes[i] + 64 <= total;
            for (int j = 0; j < i && ok; j++) {
                bool alive = !(last[j] < first[i] || last[i] < first[j]);
                bool shared = offset[i] < offset[j] + bytes[j] + 64 && offset[j] < offset[i] + bytes[i] + 64;
                double ci = offset[i] + bytes[i] / 2.0, cj = offset[j] + bytes[j] / 2.0;
                if (alive && shared) ok = false;
                if (shared && (ci - cj > 128 || cj - ci > 128)) ok = false;
            }
        }
        if (!ok) {
            check(false, "arena lanes", "round %d: %d buffers misplaced (total %zu)", round, n, total);
            return;
        }
    }
    check(true, "arena lanes", "random lifetimes");
    int n = 12;
    for (int i = 0; i < n; i++) first[i] = i - 1, last[i] = i, bytes[i] = (size_t)(n - i) * 10000;
    size_t total = od_arena_lanes(n, first, last, bytes, offset);
    check(total <= bytes[0] + bytes[1] + 4 * 64, "arena lanes", "a chain of %d buffers: %zu bytes", n, total);
}

int main(void) {
    test_alloc_large();
    test_arena_lanes();
    test_every_task_once();
    test_nested();
    test_steal();
    test_ends();
    test_two_callers();
    pthreadpool_t pool = pthreadpool_create(2);
    test_grid(NULL, "grid serial");
    test_grid(pool, "grid 2 threads");
    /* the handle XNNPACK's setups get for narrow tiles: many threads reported, work run serially */
    check(pthreadpool_get_threads_count(od_xnn_tiling_pool()) > 2, "tiling handle", "%zu threads",
          pthreadpool_get_threads_count(od_xnn_tiling_pool()));
    test_grid(od_xnn_tiling_pool(), "grid on the tiling handle");
    test_grid6(NULL, "grid 6-d serial");
    test_grid6(pool, "grid 6-d 2 threads");
    test_denormals(NULL, "denormals serial");
    test_denormals(pool, "denormals 2 threads");
    test_relayout(NULL, "relayout serial");
    test_relayout(pool, "relayout 2 threads");
    pthreadpool_destroy(pool);
    test_xnnpack_calls();
    test_plan("models/cnn.onnx", true);
    test_plan("models/cnn_bn.onnx", true);
    test_plan("models/resnet.onnx", false); /* 1.8 M MACs a conv: under the limit, serial */
    test_plan("models/mlp.onnx", false); /* 200 K MACs a layer, under the FC limit: serial */
    test_plan_fc(256, false); /* 196 K MACs: serial */
    test_plan_fc(512, true);  /* 392 K MACs: weights streamed by both threads */
    /* torchvision exports at 224x224, when the bench has made them */
    const char *tv[] = {"build/torchvision_224/resnet18_224_op17.onnx",
                        "build/torchvision_224/mobilenet_v2_224_op17.onnx",
                        "build/torchvision_224/mobilenet_v3_small_224_op17.onnx",
                        "build/torchvision_224/efficientnet_b0_224_op17.onnx"};
    for (size_t i = 0; i < sizeof tv / sizeof *tv; i++)
        if (access(tv[i], R_OK) == 0) test_plan(tv[i], true);
    printf("test_pool: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

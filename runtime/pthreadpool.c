/* The pthreadpool functions XNNPACK calls, over od_workers (workers.h), so that XNNPACK's
 * operators and our own kernels share one pool that never waits for a descheduled worker.
 *
 * Debian's libXNNPACK.so leaves these symbols undefined and resolves them at load time in the
 * global scope, where the program (or libonnxdistill.so, which exports them and is loaded
 * before libpthreadpool.so, a dependency of libXNNPACK) comes first: so XNNPACK calls these,
 * never libpthreadpool's, and libpthreadpool is not linked at all. tests/t_pool.sh checks that
 * every pthreadpool symbol libXNNPACK needs is defined here; tests/test_pool.c counts XNNPACK's
 * calls arriving in od_workers.
 *
 * A pthreadpool_t made here is an od_workers. Tasks are the same calls as pthreadpool's serial
 * loops make (2-d tiled grids in another order), each writing its own outputs, so results match
 * the serial path bit for bit. */
#include "workers.h"

#include <pthreadpool.h>
#include <stddef.h>
#include <unistd.h>

/* The handle od_xnn_tiling_pool returns: it reports many threads to XNNPACK's setup, and runs
 * what it is given on the calling thread. */
static char tiling_handle;
#define TILING ((pthreadpool_t)(void *)&tiling_handle)
#define TILING_THREADS 64

pthreadpool_t od_xnn_tiling_pool(void) { return TILING; }

static od_workers *workers_of(pthreadpool_t pool) {
    return pool == TILING ? NULL : (od_workers *)(void *)pool;
}

pthreadpool_t pthreadpool_create(size_t threads) {
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (size_t)n : 1;
    }
    if (threads > 1024) threads = 1024;
    return (pthreadpool_t)(void *)od_workers_create((int)threads);
}

void pthreadpool_destroy(pthreadpool_t pool) { od_workers_destroy(workers_of(pool)); }

size_t pthreadpool_get_threads_count(pthreadpool_t pool) {
    if (pool == TILING) return TILING_THREADS;
    return (size_t)od_workers_threads(workers_of(pool));
}

/* A grid of up to 6 dimensions whose last `tiled` dimensions are cut into tiles; swapped: its
 * last two dimensions are walked in the other order (see run_grid). */
typedef struct grid {
    int rank, tiled, swapped;
    size_t range[6], tile[6], count[6];
    void *fn, *arg;
} grid;

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* Moves s (tile starts) and z (tile sizes) to the next task in row-major order. */
static inline void grid_next(const grid *g, size_t *s, size_t *z) {
    for (int d = g->rank - 1; d >= 0; d--) {
        s[d] += g->tile[d];
        if (s[d] < g->range[d]) {
            z[d] = min_size(g->range[d] - s[d], g->tile[d]);
            return;
        }
        s[d] = 0;
        z[d] = min_size(g->range[d], g->tile[d]);
    }
}

/* Runs tasks [begin, end) of the grid: the first one's coordinates by division, the next ones'
 * by counting (a division per dimension per task cost more than many of XNNPACK's tasks). */
static void grid_range(void *ctx, int who, int64_t begin, int64_t end) {
    const grid *g = ctx;
    size_t s[6] = {0}, z[6] = {0}, t = (size_t)begin;
    for (int d = g->rank - 1; d >= 0; d--) {
        s[d] = t % g->count[d] * g->tile[d];
        t /= g->count[d];
        z[d] = min_size(g->range[d] - s[d], g->tile[d]);
    }
    void *a = g->arg;
    typedef size_t Z;
#define WALK(call)                                                                                 \
    for (int64_t k = begin; k < end; k++, grid_next(g, s, z)) call;                                \
    break
    switch (g->swapped ? -(g->rank * 3 + g->tiled) : g->rank * 3 + g->tiled) {
    case -8: WALK(((void (*)(void *, Z, Z, Z, Z))g->fn)(a, s[1], s[0], z[1], z[0]));
    case -11: WALK(((void (*)(void *, Z, Z, Z, Z, Z))g->fn)(a, s[0], s[2], s[1], z[2], z[1]));
    case 3: WALK(((void (*)(void *, Z))g->fn)(a, s[0]));
    case 4: WALK(((void (*)(void *, Z, Z))g->fn)(a, s[0], z[0]));
    case 6: WALK(((void (*)(void *, Z, Z))g->fn)(a, s[0], s[1]));
    case 7: WALK(((void (*)(void *, Z, Z, Z))g->fn)(a, s[0], s[1], z[1]));
    case 8: WALK(((void (*)(void *, Z, Z, Z, Z))g->fn)(a, s[0], s[1], z[0], z[1]));
    case 9: WALK(((void (*)(void *, Z, Z, Z))g->fn)(a, s[0], s[1], s[2]));
    case 10: WALK(((void (*)(void *, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], z[2]));
    case 11: WALK(((void (*)(void *, Z, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], z[1], z[2]));
    case 12: WALK(((void (*)(void *, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], s[3]));
    case 13: WALK(((void (*)(void *, Z, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], s[3], z[3]));
    case 14:
        WALK(((void (*)(void *, Z, Z, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], s[3], z[2], z[3]));
    case 15: WALK(((void (*)(void *, Z, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], s[3], s[4]));
    case 16:
        WALK(((void (*)(void *, Z, Z, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], s[3], s[4], z[4]));
    case 17:
        WALK(((void (*)(void *, Z, Z, Z, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], s[3], s[4], z[3],
                                                             z[4]));
    case 18:
        WALK(((void (*)(void *, Z, Z, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], s[3], s[4], s[5]));
    case 19:
        WALK(((void (*)(void *, Z, Z, Z, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], s[3], s[4], s[5],
                                                             z[5]));
    case 20:
        WALK(((void (*)(void *, Z, Z, Z, Z, Z, Z, Z, Z))g->fn)(a, s[0], s[1], s[2], s[3], s[4],
                                                                s[5], z[4], z[5]));
    }
#undef WALK
}

/* Runs fn over the grid of the given ranges, the last `tiled` of them cut by tiles[]. */
static void run_grid(pthreadpool_t pool, void *fn, void *arg, uint32_t flags, int rank, int tiled,
                     const size_t *range, const size_t *tiles) {
    grid g = {.rank = rank, .tiled = tiled, .fn = fn, .arg = arg};
    int64_t n = 1;
    for (int d = 0; d < rank; d++) {
        if (range[d] == 0) return;
        g.range[d] = range[d];
        g.tile[d] = d >= rank - tiled && tiles[d - (rank - tiled)] ? tiles[d - (rank - tiled)] : 1;
        g.count[d] = (range[d] + g.tile[d] - 1) / g.tile[d];
        n *= (int64_t)g.count[d];
    }
    /* XNNPACK's matrix products are (rows, output channels) grids tiled both ways: walked with
     * the channel tile outside, consecutive tasks share a tile of weights, which stays in cache
     * (row-major, each row of tiles streams every weight). */
    if (tiled == 2 && (rank == 2 || rank == 3)) {
        int i = rank - 2, j = rank - 1;
        size_t t;
        t = g.range[i], g.range[i] = g.range[j], g.range[j] = t;
        t = g.tile[i], g.tile[i] = g.tile[j], g.tile[j] = t;
        t = g.count[i], g.count[i] = g.count[j], g.count[j] = t;
        g.swapped = 1;
    }
    od_workers_run_ranges(workers_of(pool), n, grid_range, &g,
                          (flags & PTHREADPOOL_FLAG_DISABLE_DENORMALS) != 0);
}

#define RANGES(...) (const size_t[]){__VA_ARGS__}

void pthreadpool_parallelize_1d(pthreadpool_t pool, pthreadpool_task_1d_t fn, void *arg, size_t i,
                                uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 1, 0, RANGES(i), NULL);
}

void pthreadpool_parallelize_1d_tile_1d(pthreadpool_t pool, pthreadpool_task_1d_tile_1d_t fn,
                                        void *arg, size_t i, size_t ti, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 1, 1, RANGES(i), RANGES(ti));
}

void pthreadpool_parallelize_2d(pthreadpool_t pool, pthreadpool_task_2d_t fn, void *arg, size_t i,
                                size_t j, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 2, 0, RANGES(i, j), NULL);
}

void pthreadpool_parallelize_2d_tile_1d(pthreadpool_t pool, pthreadpool_task_2d_tile_1d_t fn,
                                        void *arg, size_t i, size_t j, size_t tj, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 2, 1, RANGES(i, j), RANGES(tj));
}

void pthreadpool_parallelize_2d_tile_2d(pthreadpool_t pool, pthreadpool_task_2d_tile_2d_t fn,
                                        void *arg, size_t i, size_t j, size_t ti, size_t tj,
                                        uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 2, 2, RANGES(i, j), RANGES(ti, tj));
}

void pthreadpool_parallelize_3d(pthreadpool_t pool, pthreadpool_task_3d_t fn, void *arg, size_t i,
                                size_t j, size_t k, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 3, 0, RANGES(i, j, k), NULL);
}

void pthreadpool_parallelize_3d_tile_1d(pthreadpool_t pool, pthreadpool_task_3d_tile_1d_t fn,
                                        void *arg, size_t i, size_t j, size_t k, size_t tk,
                                        uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 3, 1, RANGES(i, j, k), RANGES(tk));
}

void pthreadpool_parallelize_3d_tile_2d(pthreadpool_t pool, pthreadpool_task_3d_tile_2d_t fn,
                                        void *arg, size_t i, size_t j, size_t k, size_t tj,
                                        size_t tk, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 3, 2, RANGES(i, j, k), RANGES(tj, tk));
}

void pthreadpool_parallelize_4d(pthreadpool_t pool, pthreadpool_task_4d_t fn, void *arg, size_t i,
                                size_t j, size_t k, size_t l, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 4, 0, RANGES(i, j, k, l), NULL);
}

void pthreadpool_parallelize_4d_tile_1d(pthreadpool_t pool, pthreadpool_task_4d_tile_1d_t fn,
                                        void *arg, size_t i, size_t j, size_t k, size_t l,
                                        size_t tl, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 4, 1, RANGES(i, j, k, l), RANGES(tl));
}

void pthreadpool_parallelize_4d_tile_2d(pthreadpool_t pool, pthreadpool_task_4d_tile_2d_t fn,
                                        void *arg, size_t i, size_t j, size_t k, size_t l,
                                        size_t tk, size_t tl, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 4, 2, RANGES(i, j, k, l), RANGES(tk, tl));
}

void pthreadpool_parallelize_5d(pthreadpool_t pool, pthreadpool_task_5d_t fn, void *arg, size_t i,
                                size_t j, size_t k, size_t l, size_t m, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 5, 0, RANGES(i, j, k, l, m), NULL);
}

void pthreadpool_parallelize_5d_tile_1d(pthreadpool_t pool, pthreadpool_task_5d_tile_1d_t fn,
                                        void *arg, size_t i, size_t j, size_t k, size_t l,
                                        size_t m, size_t tm, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 5, 1, RANGES(i, j, k, l, m), RANGES(tm));
}

void pthreadpool_parallelize_5d_tile_2d(pthreadpool_t pool, pthreadpool_task_5d_tile_2d_t fn,
                                        void *arg, size_t i, size_t j, size_t k, size_t l,
                                        size_t m, size_t tl, size_t tm, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 5, 2, RANGES(i, j, k, l, m), RANGES(tl, tm));
}

void pthreadpool_parallelize_6d(pthreadpool_t pool, pthreadpool_task_6d_t fn, void *arg, size_t i,
                                size_t j, size_t k, size_t l, size_t m, size_t n, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 6, 0, RANGES(i, j, k, l, m, n), NULL);
}

void pthreadpool_parallelize_6d_tile_1d(pthreadpool_t pool, pthreadpool_task_6d_tile_1d_t fn,
                                        void *arg, size_t i, size_t j, size_t k, size_t l,
                                        size_t m, size_t n, size_t tn, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 6, 1, RANGES(i, j, k, l, m, n), RANGES(tn));
}

void pthreadpool_parallelize_6d_tile_2d(pthreadpool_t pool, pthreadpool_task_6d_tile_2d_t fn,
                                        void *arg, size_t i, size_t j, size_t k, size_t l,
                                        size_t m, size_t n, size_t tm, size_t tn, uint32_t flags) {
    run_grid(pool, (void *)fn, arg, flags, 6, 2, RANGES(i, j, k, l, m, n), RANGES(tm, tn));
}

/* Cost per task of the pthreadpool grid functions over od_workers (runtime/pthreadpool.c), with
 * tasks that do almost nothing: what a grid walk and a job hand-out cost, not the work.
 *
 *     bench_pool [--threads 1,2] [--min-time S]
 *
 * Prints ns per task and µs per job for a few grid shapes XNNPACK uses. A measurement, not a test:
 * it checks nothing. */
#include <pthreadpool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Tasks that only take their arguments: the calls go through a pointer, so they are made. */
#define USE(x) __asm__ volatile("" : : "r"(x))
static void task_1d(void *ctx, size_t i) { USE(i); }
static void task_2d_tile_1d(void *ctx, size_t i, size_t j, size_t tj) { USE(i + j + tj); }
static void task_3d_tile_2d(void *ctx, size_t i, size_t j, size_t k, size_t tj, size_t tk) {
    USE(i + j + k + tj + tk);
}
static void task_5d(void *ctx, size_t i, size_t j, size_t k, size_t l, size_t m) {
    USE(i + j + k + l + m);
}

typedef struct shape {
    const char *name;
    size_t tasks; /* per job */
} shape;

/* One job of the given shape; the shapes are XNNPACK's (rows x channel tiles, and so on). */
static void run_shape(int which, pthreadpool_t pool) {
    switch (which) {
    case 0: pthreadpool_parallelize_1d(pool, task_1d, NULL, 4096, 0); break;
    case 1: pthreadpool_parallelize_2d_tile_1d(pool, task_2d_tile_1d, NULL, 64, 4096, 64, 0); break;
    case 2: pthreadpool_parallelize_3d_tile_2d(pool, task_3d_tile_2d, NULL, 4, 48, 2048, 3, 64, 0); break;
    case 3: pthreadpool_parallelize_5d(pool, task_5d, NULL, 2, 4, 8, 8, 8, 0); break;
    }
}

static const shape shapes[] = {
    {"1d 4096", 4096},
    {"2d_tile_1d 64x4096/64", 64 * 64},
    {"3d_tile_2d 4x48/3x2048/64", 4 * 16 * 32},
    {"5d 2x4x8x8x8", 2 * 4 * 8 * 8 * 8},
};

int main(int argc, char **argv) {
    const char *threads = "1,2";
    double min_time = 0.3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = argv[++i];
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_pool [--threads 1,2] [--min-time S]\n");
            return 2;
        }
    }
    for (const char *t = threads; *t;) {
        int n = atoi(t);
        /* 1 thread: no pool, the serial loop (the grid walk alone) */
        pthreadpool_t pool = n > 1 ? pthreadpool_create((size_t)n) : NULL;
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
            for (int w = 0; w < 20; w++) run_shape((int)k, pool);
            long jobs = 0;
            double t0 = now_s(), dt;
            do {
                for (int r = 0; r < 50; r++) run_shape((int)k, pool);
                jobs += 50;
            } while ((dt = now_s() - t0) < min_time);
            printf("threads %d  %-28s %7.2f ns/task  %7.2f us/job\n", n, shapes[k].name,
                   dt * 1e9 / ((double)jobs * (double)shapes[k].tasks), dt * 1e6 / (double)jobs);
        }
        pthreadpool_destroy(pool);
        t = strchr(t, ',');
        if (!t) break;
        t++;
    }
    return 0;
}

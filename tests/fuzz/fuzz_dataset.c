/* libFuzzer target: dataset files from arbitrary bytes, through od_data_load and what the
 * trainer does with a loaded set (preprocessing checks, the fit to a [N,1,28,28] input, a
 * shuffled first batch).
 *
 * The first byte picks the format; the rest is one file, or several separated by "IDXSPLIT":
 *   0: an .npz archive
 *   1: IDX files: train images, train labels, test images, test labels (plain names)
 *   2: the same, named *.gz (zlib reads both gzip and plain data)
 *   3: CIFAR-10 batches: data_batch_1.bin, test_batch.bin
 *   4: CIFAR-100: train.bin, test.bin
 *
 *   make fuzz SECONDS=60     (builds build-fuzz/fuzz_dataset, runs it on a seeded corpus) */
#include "fuzz_common.h"

#include <sys/stat.h>

#define SPLIT "IDXSPLIT"

static const char *const names[5][4] = {
    {"d.npz"},
    {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
    {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
     "t10k-labels-idx1-ubyte.gz"},
    {"data_batch_1.bin", "test_batch.bin"},
    {"train.bin", "test.bin"},
};

static void dataset_use(const od_dataset *d) {
    od_error err = {0};
    od_preprocess pre;
    od_preprocess_default(&pre);
    if (od_preprocess_check(&pre, d, &err)) {
        fuzz_check_error(&err);
        return;
    }
    const int64_t in[4] = {-1, 1, 28, 28};
    if (od_dataset_check_input(d, 4, in, &err)) fuzz_check_error(&err);
    int64_t sample = od_dataset_sample_size(d), n = d->n < 4 ? d->n : 4;
    if (n <= 0 || sample <= 0 || sample > (1 << 22)) return;
    int64_t idx[4] = {0, 0, 0, 0};
    od_rng rng;
    od_rng_seed(&rng, 1);
    for (int64_t i = 0; i < n; i++) idx[i] = (int64_t)od_rng_below(&rng, (uint64_t)d->n);
    float *x = malloc(sizeof(float) * (size_t)(n * sample));
    if (!x) return;
    od_dataset_fill(d, &pre, idx, n, x);
    free(x);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 5;
    data++, size--;
    char dir[128], path[256];
    snprintf(dir, sizeof dir, "%s/ds", fuzz_dir());
    mkdir(dir, 0700);
    for (int m = 0; m < 5; m++) /* only this input's files */
        for (int k = 0; k < 4 && names[m][k]; k++) {
            snprintf(path, sizeof path, "%s/%s", dir, names[m][k]);
            unlink(path);
        }
    for (int k = 0; k < 4 && names[mode][k]; k++) {
        const uint8_t *end = mode == 0 ? NULL : memmem(data, size, SPLIT, strlen(SPLIT));
        size_t part = end ? (size_t)(end - data) : size;
        char name[64];
        snprintf(name, sizeof name, "ds/%s", names[mode][k]);
        fuzz_write(name, data, part, path, sizeof path);
        if (!end) break;
        data += part + strlen(SPLIT);
        size -= part + strlen(SPLIT);
    }
    od_error err = {0};
    od_data_split split = {0};
    if (mode == 0) snprintf(dir, sizeof dir, "%s/ds/d.npz", fuzz_dir());
    if (od_data_load(dir, &split, &err) == OD_STATUS_OK) {
        dataset_use(&split.train);
        dataset_use(&split.test);
    } else {
        fuzz_check_error(&err);
    }
    od_data_split_clear(&split);
    return 0;
}

FUZZ_STANDALONE_MAIN

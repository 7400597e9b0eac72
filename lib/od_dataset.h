/* Datasets for distillation and evaluation: IDX (MNIST, Fashion-MNIST; gzip or plain), CIFAR-10
 * and CIFAR-100 binary batches, NumPy .npz archives; preprocessing; a seeded random generator.
 *
 *   od_error err = {0};
 *   od_data_split data;
 *   if (od_data_load("fashion-mnist", &data, &err)) { puts(err.message); return 1; }
 *   od_preprocess pre;
 *   if (od_preprocess_from_model(teacher, &pre, &err) ||
 *       od_preprocess_check(&pre, &data.train, &err) ||
 *       od_dataset_check_input(&data.train, in->rank, in->dims, &err)) { ... }
 *   od_rng rng;
 *   od_rng_seed(&rng, 42);
 *   int64_t *order = ...;                                  // 0 .. data.train.n - 1
 *   od_rng_shuffle(&rng, order, data.train.n);
 *   od_dataset_fill(&data.train, &pre, order, batch, in->data);   // first batch, float NCHW
 *   od_data_split_clear(&data);
 *
 * Errors from loading name the file (and the array, inside an .npz): a missing or unreadable
 * file is OD_STATUS_IO, malformed or inconsistent contents OD_STATUS_INVALID_MODEL (as for
 * .npy files), a valid but unhandled encoding OD_STATUS_UNSUPPORTED. */
#ifndef OD_DATASET_H
#define OD_DATASET_H

#include "od_runtime.h"

/* Labels are in 0 .. OD_DATASET_MAX_CLASSES - 1; anything else is an error when loading. */
#define OD_DATASET_MAX_CLASSES 65536
/* Where short names such as "fashion-mnist" are looked up (the dataset-* Debian packages). */
#define OD_DATASET_DIR "/usr/share/datasets"

typedef struct od_dataset {
    int64_t n;       /* samples */
    int rank;        /* rank of one sample, e.g. 3 for [C,H,W]; 1 for a flat [D] */
    int64_t dims[4]; /* one sample's dims in NCHW order: MNIST [1,28,28], CIFAR [3,32,32] */
    uint8_t *u8;     /* n * sample-size raw values when the source is uint8, else NULL */
    float *f32;      /* n * sample-size values when the source is float32/float64, else NULL */
    int32_t *labels; /* n labels, or NULL when the source has none */
    int n_classes;   /* 1 + the largest label over train and test; CIFAR: 10 or 100; 0: no labels */
} od_dataset;

typedef struct od_data_split {
    od_dataset train, test;
} od_data_split;

/* Loads a dataset from path:
 *  - a folder of IDX files: train-images-idx3-ubyte, train-labels-idx1-ubyte,
 *    t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (also spelt "train-images.idx3-ubyte"), each
 *    plain or with ".gz". Images must be unsigned bytes, [N,H,W] (sample [1,H,W]), [N,C,H,W] or
 *    [N,D]; labels files are optional (no file: labels NULL).
 *  - a folder of CIFAR-10 binary batches: data_batch_1.bin .. data_batch_5.bin (those present,
 *    from 1 without gaps) and test_batch.bin; or CIFAR-100's train.bin and test.bin (the fine
 *    label is kept). Also the folders that hold them: cifar-10-batches-bin, cifar-100-binary.
 *    ".gz" versions are read too.
 *  - an .npz file (zip, stored or deflated, zip64 read) holding x_train, x_test and optionally
 *    y_train, y_test. x: uint8, float32 or float64 of shape [N,D], [N,H,W] (sample [1,H,W]),
 *    [N,C,H,W] or [N,C,H,W,X]; Keras' [N,H,W,C] with C in 1, 3, 4 and H > 4 is transposed to
 *    NCHW. y: int64, int32 or uint8 of shape [N] or [N,1]. Float data must be finite.
 *  - a short name without '/' that is neither a file nor a folder here: OD_DATASET_DIR/name,
 *    e.g. "fashion-mnist".
 * The training set must hold at least one sample; the test set may be empty. On error out is
 * left empty (safe to clear). */
od_status od_data_load(const char *path, od_data_split *out, od_error *err);
void od_data_split_clear(od_data_split *s); /* frees both sets and zeroes the struct */
void od_dataset_clear(od_dataset *d);       /* frees and zeroes */

int64_t od_dataset_sample_size(const od_dataset *d); /* elements per sample */

/* ---- preprocessing ------------------------------------------------------------------------- */

/* x = (raw * scale - mean[c]) / std[c] for channel c, with n_channels values (1: broadcast).
 * raw is the stored value: 0..255 for uint8 sources, the value itself for float sources (so a
 * float dataset already in [0,1] wants scale 1). With n_channels > 1, element i of a sample of
 * S elements is in channel i / (S / n_channels): the leading C of [C,H,W], or of a flat NCHW
 * sample. */
typedef struct od_preprocess {
    float scale;
    int n_channels;
    float mean[16], std[16];
    bool from_model; /* od_preprocess_from_model found preprocess.* metadata */
} od_preprocess;

/* scale 1/255, one channel, mean 0, std 1. */
void od_preprocess_default(od_preprocess *p);
/* The default, overridden by model metadata "preprocess.scale" (one float), "preprocess.mean"
 * and "preprocess.std" (one float, or comma-separated floats, one per channel; "[...]" allowed)
 * when present. m may be NULL. Bad values (not numbers, not finite, std or scale 0, more than
 * 16 channels, mean and std counts that differ and are not 1) are an error naming the key; p
 * then holds the default. */
od_status od_preprocess_from_model(const od_model *m, od_preprocess *p, od_error *err);
/* Checks that p's channels fit d's samples (n_channels 1, the sample's C for [C,...], or a
 * divisor of a flat sample's size), and refuses float data already in [0, 1] (largest value
 * <= 1) with a scale of 1/255, which would divide it by 255 again: the error names --scale 1. */
od_status od_preprocess_check(const od_preprocess *p, const od_dataset *d, od_error *err);

/* "scale 0.00392157 (1/255), mean 0.286, std 0.353" into buf. */
const char *od_preprocess_describe(const od_preprocess *p, char *buf, size_t size);
/* Writes p as the metadata preprocess.scale, preprocess.mean, preprocess.std of m (replacing),
 * so that the student records the preprocessing it was trained with. */
od_status od_preprocess_to_model(od_model *m, const od_preprocess *p, od_error *err);
/* Per-channel values by name: "imagenet" (torchvision's RGB mean 0.485,0.456,0.406 and std
 * 0.229,0.224,0.225). Returns the count written to out (at most 16), 0 for an unknown name. */
int od_preprocess_named(const char *name, bool std, float *out);

/* Writes samples idx[0..count) of d, preprocessed, as float NCHW into out (count * sample-size
 * floats). Indices must be in 0 .. d->n - 1 and p must have passed od_preprocess_check. */
void od_dataset_fill(const od_dataset *d, const od_preprocess *p, const int64_t *idx, int64_t count,
                     float *out);

/* Checks that a sample fits a model input of dims in_dims[0..in_rank) = [N, ...] (the batch dim
 * in_dims[0] is not compared; negative dims match anything). Fits: the same dims; the same
 * dims but for leading 1s ([1,28,28] and [N,28,28]); a flat sample [D] into any shape of D
 * elements; any sample into [N,D] with D its size (row-major flattening). Otherwise
 * OD_STATUS_SHAPE naming both shapes. */
od_status od_dataset_check_input(const od_dataset *d, int in_rank, const int64_t *in_dims,
                                 od_error *err);

/* Checks that each of the first n labels is a class a model of `classes` outputs can predict;
 * OD_STATUS_SHAPE "sample I has label L, outside the model's C classes" otherwise (the dataset
 * is not the model's). No labels: nothing to check. */
od_status od_dataset_check_labels(const od_dataset *d, int64_t n, int64_t classes, od_error *err);

/* ---- deterministic random numbers ------------------------------------------------------------
 * One seed drives data order, noise and initialisation. xoshiro256** seeded by splitmix64; the
 * same seed gives the same sequence on every platform (normal() through libm's log/cos/sin). */
typedef struct od_rng {
    uint64_t s[4];
    bool has_spare; /* Box-Muller makes two normals; the second waits here */
    float spare;
} od_rng;

void od_rng_seed(od_rng *r, uint64_t seed);
uint64_t od_rng_next(od_rng *r);
uint64_t od_rng_below(od_rng *r, uint64_t bound); /* uniform in [0, bound), unbiased; 0 if 0 */
double od_rng_uniform(od_rng *r);                 /* [0, 1), 53 bits */
float od_rng_normal(od_rng *r);                   /* N(0, 1) */
void od_rng_shuffle(od_rng *r, int64_t *idx, int64_t n); /* Fisher-Yates */

#endif

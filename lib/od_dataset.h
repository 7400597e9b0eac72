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
    void *map_base;    /* non-NULL: u8 lies in this read-only file mapping (image folders' store on */
    size_t map_bytes;  /* disk); od_dataset_fill drops the pages it has read, bounding memory */
    int64_t first, held; /* held > 0: a shard, u8 holds only samples [first, first + held) of the n
                          * (labels all n); sample indices stay global. held 0: all n samples */
} od_dataset;

typedef struct od_data_split {
    od_dataset train, test;
    int n_class_names;   /* image folders: the class folders' names, label order; else 0 */
    char **class_names;
    int64_t n_skipped;   /* image files that did not decode (and were left out) */
    char skipped[1024];  /* why the first of them did not */
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

/* ---- image folders ----------------------------------------------------------------------------
 * torchvision's ImageFolder layout: DIR/CLASS/.../IMAGE, classes the sub-folders' names sorted
 * (byte order), labels their positions. DIR/train/ with DIR/val/ (or DIR/test/) are the two
 * splits when present; otherwise a seeded test_fraction of DIR's images is held out as test set.
 * Both sets are in a seeded random order (shuffle), not sorted by class as in torchvision.
 * Files ending in torchvision's image extensions (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff
 * .webp, any case) are samples; PNG and JPEG are decoded (libpng, libjpeg-turbo), other formats
 * and corrupt files are skipped and counted (n_skipped), or an error with strict.
 * Each image becomes what torchvision's Resize(resize) + CenterCrop((height, width)) + ToTensor
 * give from PIL's Image.open(f).convert("RGB") (or "L" for channels 1), as uint8 [C,H,W]; the
 * EXIF orientation of a JPEG is applied first (torchvision ignores it). The decoded store is in
 * RAM up to ram_limit bytes, above it in a file mapped read-only (bounded memory): cache_dir
 * keeps that file between runs, keyed by the files' names, sizes, times and these options. */
typedef struct od_image_options {
    int channels;          /* 1 (grey) or 3 (RGB; default) */
    int64_t height, width; /* center crop; 0: none (then all images must have one size) */
    int64_t resize;        /* the shorter side first becomes this (PIL's antialiased bilinear); 0: none */
    double test_fraction;  /* held out when there is no train/ folder (default 0.1) */
    uint64_t seed;         /* for that split and the order (default 1) */
    bool shuffle;          /* samples in a seeded random order, not by class (default true), so that
                            * the first N (--train-limit, --test-limit) hold every class */
    bool strict;           /* an image that does not decode is an error (default: skipped) */
    int threads;           /* decoding threads (default 2) */
    size_t ram_limit;      /* decoded stores above this go to a file (default 256 MiB) */
    const char *cache_dir; /* where that file is kept for the next run; NULL: $TMPDIR, removed */
    void (*progress)(const char *what, int64_t done, int64_t total, void *ctx);
    void *progress_ctx;
    /* shards > 1: keep only shard `shard` of the training samples' pixels, [L*shard/shards,
     * L*(shard+1)/shards) with L = min(shard_limit, n) (shard_limit 0: n); the rest is read and
     * dropped. IDX files only (the others load whole); distill on several ranks. */
    int shard, shards;
    int64_t shard_limit;
} od_image_options;

void od_image_options_default(od_image_options *o);
/* Channels, crop and resize for a model's input [N, C, H, W] (C 1 or 3; a flat [N, D] is taken
 * as square grey images when D is a square, else RGB when D / 3 is): crop H x W, resize
 * the metadata "preprocess.resize" when given (e.g. 256 for ImageNet's 224), else max(H, W).
 * Other inputs leave o as it is. */
void od_image_options_for_model(const od_model *m, od_image_options *o);
/* od_data_load, with img for image folders (NULL: the defaults). */
od_status od_data_load_ex(const char *path, const od_image_options *img, od_data_split *out, od_error *err);
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

/* ---- augmentation ---------------------------------------------------------------------------- */

/* In place on n preprocessed samples [C,H,W]: a random-resized crop (area 8% to 100%, aspect
 * 3/4 to 4/3, as torchvision's RandomResizedCrop) scaled back to H x W bilinearly, then a
 * horizontal flip with probability 1/2; all drawn from rng. See lib/augment.c. */
void od_augment_batch(float *x, int64_t n, int64_t C, int64_t H, int64_t W, od_rng *rng);

#endif

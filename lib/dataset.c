/* Datasets: IDX files (gzip or plain), CIFAR-10/100 binary batches and NumPy .npz archives read
 * into od_dataset; preprocessing into float NCHW batches; the seeded random generator.
 *
 * Nothing a file claims is trusted before it is checked. IDX and CIFAR data are read into
 * buffers that grow as the bytes arrive, so a header claiming more than the file holds is a
 * "truncated" error, never a huge allocation. Zip offsets and sizes are bounds-checked against
 * the archive, and every entry is checked against its CRC. Float data must be finite and labels
 * in 0 .. OD_DATASET_MAX_CLASSES - 1. */
#define ZLIB_CONST
#include "od_onnx.h"
#include "image_internal.h"
#include "npy_internal.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "dataset.c assumes a little-endian host (npz arrays are read in place)"
#endif

#define OD_PATH_MAX 4096
/* Largest raw data we accept from one file: far beyond any dataset this tool trains on, small
 * enough that sizes computed from it never overflow. */
#define OD_DATA_MAX ((uint64_t)1 << 40)

static od_status od_oom(od_error *err, const char *path) {
    return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
}

static bool od_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool od_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool od_join(char *buf, size_t size, const char *dir, const char *name, const char *suffix) {
    int n = snprintf(buf, size, "%s/%s%s", dir, name, suffix);
    return n > 0 && (size_t)n < size;
}

/* dir/name or dir/name.gz into out; false when neither is a file. */
static bool od_find(const char *dir, const char *name, char *out, size_t size) {
    return (od_join(out, size, dir, name, "") && od_is_file(out)) ||
           (od_join(out, size, dir, name, ".gz") && od_is_file(out));
}

/* "[1,28,28]"; with batch, the first dim prints as N; negative dims as ?. */
static const char *od_dims_str(char *buf, size_t size, int rank, const int64_t *dims, bool batch) {
    size_t n = 0;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, size - n, "[");
    for (int i = 0; i < rank && n < size; i++) {
        const char *sep = i ? "," : "";
        if (batch && i == 0)
            n += (size_t)snprintf(buf + n, size - n, "N");
        else if (dims[i] < 0)
            n += (size_t)snprintf(buf + n, size - n, "%s?", sep);
        else
            n += (size_t)snprintf(buf + n, size - n, "%s%" PRId64, sep, dims[i]);
    }
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

int64_t od_dataset_sample_size(const od_dataset *d) {
    int64_t s = 1;
    for (int i = 0; i < d->rank; i++)
        s *= d->dims[i];
    return d->rank > 0 ? s : 0;
}

void od_dataset_clear(od_dataset *d) {
    if (!d) return;
    if (d->map_base) munmap(d->map_base, d->map_bytes);
    else free(d->u8);
    free(d->f32);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

void od_data_split_clear(od_data_split *s) {
    if (!s) return;
    od_dataset_clear(&s->train);
    od_dataset_clear(&s->test);
    for (int i = 0; i < s->n_class_names; i++) free(s->class_names[i]);
    free(s->class_names);
    memset(s, 0, sizeof *s);
}

/* ---- gzip (and plain) streams ---------------------------------------------------------------- */

static od_status od_gz_error(gzFile f, const char *path, od_error *err) {
    int e = Z_OK;
    const char *msg = gzerror(f, &e);
    if (e == Z_ERRNO) return od_error_set(err, OD_STATUS_IO, "%s: %s", path, strerror(errno));
    if (e == Z_MEM_ERROR) return od_oom(err, path);
    if (e == Z_BUF_ERROR)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: truncated gzip data", path);
    return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: corrupt gzip data (%s)", path,
                        msg && *msg ? msg : "unknown error");
}

static od_status od_gz_open(const char *path, gzFile *out, od_error *err) {
    struct stat sb;
    *out = NULL;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) /* /dev/zero would never end */
        return od_error_set(err, OD_STATUS_IO, "%s: not a regular file (a device, FIFO or socket)", path);
    errno = 0;
    *out = gzopen(path, "rb");
    if (!*out)
        return od_error_set(err, OD_STATUS_IO, "%s: %s", path,
                            errno ? strerror(errno) : "cannot open");
    gzbuffer(*out, 1 << 17);
    return OD_STATUS_OK;
}

/* Reads up to n bytes, looping over short reads; *got < n only at the end of the data. */
static od_status od_gz_read_some(gzFile f, const char *path, void *buf, size_t n, size_t *got,
                                 od_error *err) {
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < (1u << 30) ? n - *got : (1u << 30);
        int r = gzread(f, (uint8_t *)buf + *got, (unsigned)want);
        if (r < 0) return od_gz_error(f, path, err);
        if (r == 0) break;
        *got += (size_t)r;
    }
    return OD_STATUS_OK;
}

/* Reads exactly n bytes into a new buffer that grows as the data arrives, so that a header
 * claiming more than the file holds costs no more memory than the file. what describes the
 * claim for the error message. */
static od_status od_gz_read_all(gzFile f, const char *path, size_t n, const char *what,
                                uint8_t **out, od_error *err) {
    *out = NULL;
    size_t cap = n < ((size_t)1 << 24) ? n : ((size_t)1 << 24), got = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return od_oom(err, path);
    while (got < n) {
        if (got == cap) {
            size_t nc = cap > n / 2 ? n : cap * 2;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                return od_oom(err, path);
            }
            buf = nb;
            cap = nc;
        }
        size_t k;
        od_status st = od_gz_read_some(f, path, buf + got, cap - got, &k, err);
        if (st) {
            free(buf);
            return st;
        }
        got += k;
        if (got < cap) {
            int e = Z_OK;
            gzerror(f, &e);
            free(buf);
            if (e != Z_OK && e != Z_BUF_ERROR) return od_gz_error(f, path, err);
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "%s: truncated: the header announces %s (%zu bytes), only %zu "
                                "follow it",
                                path, what, n, got);
        }
    }
    *out = buf;
    return OD_STATUS_OK;
}

/* Reads and drops n bytes (the samples outside a shard); what as for od_gz_read_all. */
static od_status od_gz_skip(gzFile f, const char *path, size_t n, const char *what, size_t total,
                            size_t done, od_error *err) {
    uint8_t buf[1 << 16];
    for (size_t left = n; left > 0;) {
        size_t k, want = left < sizeof buf ? left : sizeof buf;
        od_status st = od_gz_read_some(f, path, buf, want, &k, err);
        if (st) return st;
        if (k < want)
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "%s: truncated: the header announces %s (%zu bytes), only %zu "
                                "follow it",
                                path, what, total, done + (n - left) + k);
        left -= k;
    }
    return OD_STATUS_OK;
}

/* After the data a header announced: nothing more, and a clean end of the gzip stream. */
static od_status od_gz_check_end(gzFile f, const char *path, od_error *err) {
    if (gzgetc(f) != -1)
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: trailing bytes after the data its header announces", path);
    int e = Z_OK;
    gzerror(f, &e);
    return e == Z_OK ? OD_STATUS_OK : od_gz_error(f, path, err);
}

/* ---- IDX ----------------------------------------------------------------------------------------
 * Big-endian: 0x00 0x00, element type (0x08: unsigned byte), number of dims, then one uint32
 * per dim, then the data. */

static od_status od_idx_read(const char *path, bool labels, const od_image_options *shard,
                             int *rank_out, int64_t dims[4], int64_t *first, int64_t *held,
                             uint8_t **data, od_error *err) {
    *data = NULL;
    *first = *held = 0;
    gzFile f;
    od_status st = od_gz_open(path, &f, err);
    if (st) return st;
    uint8_t h[16];
    size_t got;
    if ((st = od_gz_read_some(f, path, h, 4, &got, err))) goto cleanup;
    if (got < 4) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                          "%s: not an IDX file (shorter than its 4-byte header)", path);
        goto cleanup;
    }
    if (h[0] || h[1] || h[3] == 0) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                          "%s: not an IDX file (it starts %02x %02x %02x %02x, want 00 00 08 0n)",
                          path, h[0], h[1], h[2], h[3]);
        goto cleanup;
    }
    if (h[2] != 0x08) {
        st = od_error_set(err, OD_STATUS_UNSUPPORTED,
                          "%s: IDX element type 0x%02x is not supported (want 0x08, unsigned "
                          "bytes)",
                          path, h[2]);
        goto cleanup;
    }
    int rank = h[3];
    if (labels ? rank != 1 : (rank < 2 || rank > 4)) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: an IDX %s file with %d dims (want %s)",
                          path, labels ? "labels" : "images", rank, labels ? "1" : "2 to 4");
        goto cleanup;
    }
    if ((st = od_gz_read_some(f, path, h, 4 * (size_t)rank, &got, err))) goto cleanup;
    if (got < 4 * (size_t)rank) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: truncated IDX header", path);
        goto cleanup;
    }
    uint64_t total = 1;
    char what[128];
    size_t wn = 0;
    for (int i = 0; i < rank; i++) {
        uint64_t v = (uint64_t)h[4 * i] << 24 | (uint64_t)h[4 * i + 1] << 16 |
                     (uint64_t)h[4 * i + 2] << 8 | h[4 * i + 3];
        dims[i] = (int64_t)v;
        if (i > 0 && v == 0) {
            st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: IDX dim %d is 0", path, i);
            goto cleanup;
        }
        if (v && total > OD_DATA_MAX / v) {
            st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                              "%s: the IDX header announces more data than we can hold", path);
            goto cleanup;
        }
        total *= v;
        /* "60000 images of 28x28", "60000 labels" */
        if (i == 0)
            wn += (size_t)snprintf(what, sizeof what, "%" PRIu64 " %s", v,
                                   labels ? "labels" : "images of ");
        else
            wn += (size_t)snprintf(what + wn, sizeof what - wn, "%s%" PRIu64, i > 1 ? "x" : "", v);
    }
    if (shard && shard->shards > 1 && dims[0] > 0) { /* only this shard's rows are kept */
        int64_t n = dims[0], row = (int64_t)(total / (uint64_t)n);
        int64_t L = shard->shard_limit > 0 && shard->shard_limit < n ? shard->shard_limit : n;
        int64_t lo = L * shard->shard / shard->shards, hi = L * (shard->shard + 1) / shard->shards;
        *first = lo, *held = hi - lo;
        if ((st = od_gz_skip(f, path, (size_t)(lo * row), what, (size_t)total, 0, err)) ||
            (st = od_gz_read_all(f, path, (size_t)((hi - lo) * row), what, data, err)))
            goto cleanup;
        if ((st = od_gz_skip(f, path, (size_t)((n - hi) * row), what, (size_t)total,
                             (size_t)(hi * row), err))) {
            free(*data);
            *data = NULL;
            goto cleanup;
        }
    } else if ((st = od_gz_read_all(f, path, (size_t)total, what, data, err)))
        goto cleanup;
    if ((st = od_gz_check_end(f, path, err))) {
        free(*data);
        *data = NULL;
        goto cleanup;
    }
    *rank_out = rank;
cleanup:
    gzclose(f);
    return st;
}

static od_status od_idx_images(const char *path, const od_image_options *shard, od_dataset *d,
                                od_error *err) {
    int rank = 0;
    int64_t dims[4];
    od_status st = od_idx_read(path, false, shard, &rank, dims, &d->first, &d->held, &d->u8, err);
    if (st) return st;
    d->n = dims[0];
    if (rank == 2) { /* [N, D]: flat samples */
        d->rank = 1;
        d->dims[0] = dims[1];
    } else if (rank == 3) { /* [N, H, W]: one channel */
        d->rank = 3;
        d->dims[0] = 1;
        d->dims[1] = dims[1];
        d->dims[2] = dims[2];
    } else {
        d->rank = 3;
        memcpy(d->dims, dims + 1, 3 * sizeof *dims);
    }
    return OD_STATUS_OK;
}

static od_status od_idx_labels(const char *path, od_dataset *d, od_error *err) {
    int rank = 0;
    int64_t dims[4];
    int64_t first, held;
    uint8_t *raw;
    od_status st = od_idx_read(path, true, NULL, &rank, dims, &first, &held, &raw, err);
    if (st) return st;
    if (dims[0] != d->n) {
        free(raw);
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: %" PRId64 " labels for %" PRId64 " images", path, dims[0], d->n);
    }
    d->labels = malloc(d->n ? (size_t)d->n * sizeof *d->labels : 1);
    if (!d->labels) {
        free(raw);
        return od_oom(err, path);
    }
    for (int64_t i = 0; i < d->n; i++)
        d->labels[i] = raw[i];
    free(raw);
    return OD_STATUS_OK;
}

static od_status od_idx_load(const char *dir, const od_image_options *io, od_data_split *out,
                              od_error *err) {
    static const char *const names[4][2] = {
        {"train-images-idx3-ubyte", "train-images.idx3-ubyte"},
        {"train-labels-idx1-ubyte", "train-labels.idx1-ubyte"},
        {"t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"},
        {"t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"},
    };
    char path[OD_PATH_MAX];
    od_status st;
    for (int split = 0; split < 2; split++) {
        od_dataset *d = split ? &out->test : &out->train;
        const char *const *img = names[2 * split], *const *lab = names[2 * split + 1];
        if (!od_find(dir, img[0], path, sizeof path) && !od_find(dir, img[1], path, sizeof path))
            return od_error_set(err, OD_STATUS_IO,
                                "%s/%s[.gz]: no such file (an IDX dataset needs "
                                "training and test images)",
                                dir, img[0]);
        if ((st = od_idx_images(path, split ? NULL : io, d, err))) return st;
        if (split &&
            (d->rank != out->train.rank || memcmp(d->dims, out->train.dims, sizeof d->dims) != 0)) {
            char a[96], b[96];
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "%s: test images are %s, training images %s", path,
                                od_dims_str(a, sizeof a, d->rank, d->dims, false),
                                od_dims_str(b, sizeof b, out->train.rank, out->train.dims, false));
        }
        if (od_find(dir, lab[0], path, sizeof path) || od_find(dir, lab[1], path, sizeof path))
            if ((st = od_idx_labels(path, d, err))) return st;
    }
    return OD_STATUS_OK;
}

/* ---- CIFAR binary batches -----------------------------------------------------------------------
 * Records of label byte(s) then 3072 pixel bytes (1024 red, 1024 green, 1024 blue: NCHW).
 * CIFAR-10: one label byte; CIFAR-100: a coarse byte (0..19) and a fine byte (0..99). */

enum { OD_CIFAR_PIXELS = 3 * 32 * 32, OD_CIFAR_BLOCK = 256 };

static od_status od_cifar_read(const char *path, bool hundred, od_dataset *d, int64_t *cap,
                               od_error *err) {
    const size_t lb = hundred ? 2 : 1, rec = lb + OD_CIFAR_PIXELS;
    gzFile f;
    od_status st = od_gz_open(path, &f, err);
    if (st) return st;
    uint8_t *buf = malloc(rec * OD_CIFAR_BLOCK);
    if (!buf) {
        st = od_oom(err, path);
        goto cleanup;
    }
    int64_t first = d->n;
    for (;;) {
        size_t got;
        if ((st = od_gz_read_some(f, path, buf, rec * OD_CIFAR_BLOCK, &got, err))) goto cleanup;
        if (got % rec) {
            int e = Z_OK;
            gzerror(f, &e);
            if (e != Z_OK && e != Z_BUF_ERROR)
                st = od_gz_error(f, path, err);
            else
                st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                                  "%s: truncated: %zu bytes after record %" PRId64
                                  " (records are %zu bytes)",
                                  path, got % rec, d->n - first + (int64_t)(got / rec), rec);
            goto cleanup;
        }
        int64_t k = (int64_t)(got / rec);
        if (d->n + k > *cap) {
            int64_t nc = *cap * 2 > d->n + k ? *cap * 2 : d->n + k;
            if (nc < 1024) nc = 1024;
            uint8_t *u = realloc(d->u8, (size_t)nc * OD_CIFAR_PIXELS);
            if (u) d->u8 = u;
            int32_t *l = realloc(d->labels, (size_t)nc * sizeof *l);
            if (l) d->labels = l;
            if (!u || !l) {
                st = od_oom(err, path);
                goto cleanup;
            }
            *cap = nc;
        }
        for (int64_t i = 0; i < k; i++) {
            const uint8_t *r = buf + (size_t)i * rec;
            int max = hundred ? 100 : 10;
            if (hundred && r[0] >= 20) {
                st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                                  "%s: coarse labels out of range: %d at sample %" PRId64
                                  " (CIFAR-100 has 20)",
                                  path, r[0], d->n - first);
                goto cleanup;
            }
            if (r[lb - 1] >= max) {
                st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                                  "%s: labels out of range: %d at sample %" PRId64
                                  " (CIFAR-%d has %d classes)",
                                  path, r[lb - 1], d->n - first, max, max);
                goto cleanup;
            }
            d->labels[d->n] = r[lb - 1];
            memcpy(d->u8 + (size_t)d->n * OD_CIFAR_PIXELS, r + lb, OD_CIFAR_PIXELS);
            d->n++;
        }
        if (got < rec * OD_CIFAR_BLOCK) break;
    }
    if ((st = od_gz_check_end(f, path, err))) goto cleanup;
    if (d->n == first)
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: holds no CIFAR records", path);
cleanup:
    free(buf);
    gzclose(f);
    return st;
}

/* Gives back the slack of the growing arrays. */
static void od_cifar_trim(od_dataset *d) {
    if (!d->n) return;
    uint8_t *u = realloc(d->u8, (size_t)d->n * OD_CIFAR_PIXELS);
    if (u) d->u8 = u;
    int32_t *l = realloc(d->labels, (size_t)d->n * sizeof *l);
    if (l) d->labels = l;
}

static od_status od_cifar_load(const char *dir, bool hundred, od_data_split *out, od_error *err) {
    char path[OD_PATH_MAX], name[64];
    od_status st;
    int64_t cap = 0;
    for (od_dataset *d = &out->train; d; d = d == &out->train ? &out->test : NULL) {
        d->rank = 3;
        d->dims[0] = 3;
        d->dims[1] = d->dims[2] = 32;
        d->n_classes = hundred ? 100 : 10;
    }
    if (hundred) {
        if (!od_find(dir, "train.bin", path, sizeof path))
            return od_error_set(err, OD_STATUS_IO, "%s/train.bin: no such file", dir);
        if ((st = od_cifar_read(path, true, &out->train, &cap, err))) return st;
    } else {
        int last = 0;
        for (int k = 1; k <= 5; k++) {
            snprintf(name, sizeof name, "data_batch_%d.bin", k);
            if (!od_find(dir, name, path, sizeof path)) continue;
            if (last != k - 1)
                return od_error_set(err, OD_STATUS_IO,
                                    "%s/data_batch_%d.bin: no such file, but "
                                    "data_batch_%d.bin is there",
                                    dir, last + 1, k);
            if ((st = od_cifar_read(path, false, &out->train, &cap, err))) return st;
            last = k;
        }
    }
    od_cifar_trim(&out->train);
    cap = 0;
    const char *test = hundred ? "test.bin" : "test_batch.bin";
    if (!od_find(dir, test, path, sizeof path))
        return od_error_set(err, OD_STATUS_IO, "%s/%s: no such file", dir, test);
    if ((st = od_cifar_read(path, hundred, &out->test, &cap, err))) return st;
    od_cifar_trim(&out->test);
    return OD_STATUS_OK;
}

/* ---- zip archives -------------------------------------------------------------------------------
 */

static uint16_t od_le16(const uint8_t *p) {
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t od_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t od_le64(const uint8_t *p) {
    return (uint64_t)od_le32(p) | (uint64_t)od_le32(p + 4) << 32;
}

typedef struct od_zip_entry {
    uint16_t flags, method;
    uint32_t crc;
    uint64_t csize, usize, offset; /* compressed and uncompressed sizes, local header offset */
} od_zip_entry;

/* The arrays an .npz may hold, in this order. */
enum { OD_NPZ_X_TRAIN, OD_NPZ_Y_TRAIN, OD_NPZ_X_TEST, OD_NPZ_Y_TEST, OD_NPZ_KEYS };
static const char *const od_npz_keys[OD_NPZ_KEYS] = {"x_train", "y_train", "x_test", "y_test"};

static od_status od_zip_corrupt(od_error *err, const char *path, const char *what) {
    return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: corrupt zip archive: %s", path, what);
}

/* Reads the central directory, keeping the entries named like an npz key (with or without
 * ".npy"). Sizes and offsets may come from zip64 records. */
static od_status od_zip_directory(const uint8_t *z, size_t len, const char *path,
                                  od_zip_entry ents[OD_NPZ_KEYS], bool have[OD_NPZ_KEYS],
                                  od_error *err) {
    if (len < 4 || (od_le32(z) != 0x04034b50 && od_le32(z) != 0x06054b50))
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: not an .npz file (no zip signature); a dataset is a folder of "
                            "IDX or CIFAR files, or an .npz",
                            path);
    if (len < 22) return od_zip_corrupt(err, path, "shorter than its end record (truncated?)");
    size_t eocd = SIZE_MAX, lo = len - 22 > 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (od_le32(z + i) == 0x06054b50 && i + 22 + od_le16(z + i + 20) <= len) {
            eocd = i;
            break;
        }
    if (eocd == SIZE_MAX) return od_zip_corrupt(err, path, "no end record (truncated?)");
    const uint8_t *e = z + eocd;
    if (od_le16(e + 4) || od_le16(e + 6))
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "%s: multi-part zip archives are not "
                            "supported",
                            path);
    uint64_t n_ent = od_le16(e + 10), cd_size = od_le32(e + 12), cd_off = od_le32(e + 16);
    if ((n_ent == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) && eocd >= 20 &&
        od_le32(e - 20) == 0x07064b50) {
        uint64_t z64 = od_le64(e - 20 + 8);
        if (z64 > eocd - 20 || eocd - 20 - z64 < 56 || od_le32(z + z64) != 0x06064b50)
            return od_zip_corrupt(err, path, "bad zip64 end record");
        n_ent = od_le64(z + z64 + 32);
        cd_size = od_le64(z + z64 + 40);
        cd_off = od_le64(z + z64 + 48);
    }
    if (cd_off > len || cd_size > len - cd_off)
        return od_zip_corrupt(err, path, "central directory beyond the end (truncated?)");
    size_t p = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (uint64_t k = 0; k < n_ent; k++) {
        if (end - p < 46 || od_le32(z + p) != 0x02014b50)
            return od_zip_corrupt(err, path, "bad central directory entry");
        const uint8_t *c = z + p;
        size_t nlen = od_le16(c + 28), elen = od_le16(c + 30), clen = od_le16(c + 32);
        if (end - p - 46 < nlen + elen + clen)
            return od_zip_corrupt(err, path, "central directory entry overruns the directory");
        od_zip_entry ent = {.flags = od_le16(c + 8),
                            .method = od_le16(c + 10),
                            .crc = od_le32(c + 16),
                            .csize = od_le32(c + 20),
                            .usize = od_le32(c + 24),
                            .offset = od_le32(c + 42)};
        /* zip64 extra field (id 1): 8-byte values for those of the three that are 0xffffffff */
        const uint8_t *x = c + 46 + nlen;
        for (size_t q = 0; q + 4 <= elen;) {
            size_t id = od_le16(x + q), sz = od_le16(x + q + 2);
            if (q + 4 + sz > elen) return od_zip_corrupt(err, path, "bad extra field");
            if (id == 1) {
                size_t at = q + 4, stop = q + 4 + sz;
                uint64_t *fields[3] = {&ent.usize, &ent.csize, &ent.offset};
                for (int i = 0; i < 3; i++) {
                    if (*fields[i] != 0xffffffff) continue;
                    if (stop - at < 8) return od_zip_corrupt(err, path, "short zip64 field");
                    *fields[i] = od_le64(x + at);
                    at += 8;
                }
            }
            q += 4 + sz;
        }
        const char *name = (const char *)c + 46;
        for (int i = 0; i < OD_NPZ_KEYS; i++) {
            size_t kl = strlen(od_npz_keys[i]);
            if (nlen < kl || memcmp(name, od_npz_keys[i], kl) != 0) continue;
            if (nlen != kl && (nlen != kl + 4 || memcmp(name + kl, ".npy", 4) != 0)) continue;
            if (have[i])
                return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: two entries named %s.npy",
                                    path, od_npz_keys[i]);
            have[i] = true;
            ents[i] = ent;
        }
        p += 46 + nlen + elen + clen;
    }
    return OD_STATUS_OK;
}

/* An entry's bytes: a pointer into the archive when stored, else a new buffer in *owned. */
static od_status od_zip_extract(const uint8_t *z, size_t len, const char *path, const char *key,
                                const od_zip_entry *e, const uint8_t **data, size_t *size,
                                uint8_t **owned, od_error *err) {
    *owned = NULL;
    if (e->flags & 1)
        return od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: %s.npy is encrypted", path, key);
    if (e->offset > len || len - e->offset < 30 || od_le32(z + e->offset) != 0x04034b50)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: %s.npy: bad local zip header", path,
                            key);
    const uint8_t *lh = z + e->offset;
    uint64_t at = e->offset + 30 + od_le16(lh + 26) + od_le16(lh + 28);
    if (at > len || e->csize > len - at)
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: %s.npy: the entry runs past the end of the archive (truncated?)",
                            path, key);
    if (od_le16(lh + 8) != e->method)
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: %s.npy: local and central zip headers disagree", path, key);
    const uint8_t *in = z + at;
    if (e->method == 0) {
        if (e->csize != e->usize)
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "%s: %s.npy: stored entry with different sizes", path, key);
        *data = in;
        *size = (size_t)e->usize;
    } else if (e->method == 8) {
        /* deflate expands at most about 1032:1; a larger claim is corruption, not a dataset */
        if (e->usize > OD_DATA_MAX || e->usize > e->csize * 1040 + 1024)
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "%s: %s.npy: implausible sizes (%" PRIu64 " bytes from %" PRIu64
                                ")",
                                path, key, e->usize, e->csize);
        uint8_t *buf = malloc(e->usize ? (size_t)e->usize : 1);
        if (!buf) return od_oom(err, path);
        z_stream s;
        memset(&s, 0, sizeof s);
        if (inflateInit2(&s, -MAX_WBITS) != Z_OK) {
            free(buf);
            return od_oom(err, path);
        }
        const uint8_t *ip = in;
        uint8_t *op = buf;
        size_t in_left = (size_t)e->csize, out_left = (size_t)e->usize;
        const size_t chunk = (size_t)1 << 30;
        int r = Z_OK;
        while (r == Z_OK) {
            if (s.avail_in == 0 && in_left) {
                size_t c = in_left < chunk ? in_left : chunk;
                s.next_in = ip;
                s.avail_in = (uInt)c;
                ip += c;
                in_left -= c;
            }
            if (s.avail_out == 0 && out_left) {
                size_t c = out_left < chunk ? out_left : chunk;
                s.next_out = op;
                s.avail_out = (uInt)c;
                op += c;
                out_left -= c;
            }
            r = inflate(&s, Z_NO_FLUSH);
        }
        bool whole = r == Z_STREAM_END && out_left == 0 && s.avail_out == 0;
        const char *msg = s.msg;
        inflateEnd(&s);
        if (!whole) {
            free(buf);
            if (r == Z_MEM_ERROR) return od_oom(err, path);
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "%s: %s.npy: corrupt deflate data (%s)", path, key,
                                r == Z_DATA_ERROR && msg ? msg
                                : r == Z_STREAM_END      ? "shorter than its declared size"
                                                    : "ends early or exceeds its declared size");
        }
        *data = buf;
        *size = (size_t)e->usize;
        *owned = buf;
    } else {
        return od_error_set(
            err, OD_STATUS_UNSUPPORTED,
            "%s: %s.npy: zip compression method %u (want 0, stored, or 8, deflated)", path, key,
            e->method);
    }
    if (crc32_z(0, *data, *size) != e->crc) {
        free(*owned);
        *owned = NULL;
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: %s.npy: CRC mismatch (corrupt data)",
                            path, key);
    }
    return OD_STATUS_OK;
}

/* ---- .npy inside the archive -------------------------------------------------------------------
 */

typedef struct od_npy_view {
    char descr[16];
    int rank;
    int64_t dims[OD_MAX_RANK];
    const uint8_t *data;
    size_t nbytes;
} od_npy_view;

/* The header parser is npy.c's; the messages name the .npz member. */
static od_status od_npy_view_parse(const uint8_t *d, size_t len, const char *path, const char *key,
                                   od_npy_view *v, od_error *err) {
    memset(v, 0, sizeof *v);
    od_npy_header h;
    switch (od_npy_parse_header(d, len, &h)) {
    case OD_NPY_HEADER_OK: break;
    case OD_NPY_HEADER_NOT_NPY:
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: %s.npy: not a .npy array", path,
                            key);
    case OD_NPY_HEADER_VERSION:
        return od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: %s.npy: .npy format version %d", path,
                            key, d[6]);
    case OD_NPY_HEADER_TRUNCATED:
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: %s.npy: truncated header", path,
                            key);
    default:
        goto bad;
    }
    if (strlen(h.descr) >= sizeof v->descr) goto bad;
    if (h.fortran)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "%s: %s.npy: Fortran order (save it C-contiguous)", path, key);
    memcpy(v->descr, h.descr, sizeof v->descr);
    v->rank = h.rank;
    memcpy(v->dims, h.dims, sizeof v->dims);
    v->data = d + h.data_offset;
    v->nbytes = len - h.data_offset;
    return OD_STATUS_OK;
bad:
    return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: %s.npy: malformed .npy header", path,
                        key);
}

/* Element size of a descr among those we read ('u1', 'i4', ...), 0 if not one of want. */
static size_t od_descr_size(const char *descr, const char *const *want) {
    if (strlen(descr) != 3) return 0;
    for (; *want; want++) {
        if (strcmp(descr + 1, *want) != 0) continue;
        size_t size = (size_t)(descr[2] - '0');
        if (descr[0] == '<' || descr[0] == '=' ||
            (size == 1 && (descr[0] == '|' || descr[0] == '>')))
            return size;
    }
    return 0;
}

/* The array's data must be exactly count elements of size bytes. */
static od_status od_npy_check_size(const od_npy_view *v, size_t esize, const char *path,
                                   const char *key, od_error *err) {
    int64_t count = od_dims_count(v->rank, v->dims);
    if (count < 0 || (uint64_t)count > OD_DATA_MAX / esize)
        return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: %s.npy: the shape is too large",
                            path, key);
    size_t need = (size_t)count * esize;
    if (v->nbytes != need)
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: %s.npy: %s: %zu bytes of data, the shape needs %zu", path, key,
                            v->nbytes < need ? "truncated" : "trailing bytes", v->nbytes, need);
    return OD_STATUS_OK;
}

/* [C,H,W] samples stored as [H,W,C] (Keras): to NCHW, one sample at a time. */
#define OD_DEFINE_HWC_TO_CHW(name, type)                                                           \
    static bool name(type *data, int64_t n, int64_t h, int64_t w, int64_t c) {                     \
        int64_t s = h * w * c;                                                                     \
        type *tmp = malloc((size_t)s * sizeof *tmp);                                               \
        if (!tmp) return false;                                                                    \
        for (int64_t i = 0; i < n; i++) {                                                          \
            type *x = data + i * s;                                                                \
            memcpy(tmp, x, (size_t)s * sizeof *tmp);                                               \
            for (int64_t p = 0; p < h * w; p++)                                                    \
                for (int64_t k = 0; k < c; k++)                                                    \
                    x[k * h * w + p] = tmp[p * c + k];                                             \
        }                                                                                          \
        free(tmp);                                                                                 \
        return true;                                                                               \
    }
OD_DEFINE_HWC_TO_CHW(od_hwc_to_chw_u8, uint8_t)
OD_DEFINE_HWC_TO_CHW(od_hwc_to_chw_f32, float)

static od_status od_npz_x(const od_npy_view *v, const char *path, const char *key, od_dataset *d,
                          od_error *err) {
    static const char *const kinds[] = {"u1", "f4", "f8", NULL};
    size_t esize = od_descr_size(v->descr, kinds);
    if (!esize)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "%s: %s.npy: element type '%s' is not supported (want |u1, <f4 or <f8)",
                            path, key, v->descr);
    if (v->rank < 2 || v->rank > 5) {
        char b[160];
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: %s.npy: shape %s (want [N, ...] with samples of 1 to 4 dims)",
                            path, key, od_dims_str(b, sizeof b, v->rank, v->dims, false));
    }
    od_status st = od_npy_check_size(v, esize, path, key, err);
    if (st) return st;
    for (int i = 1; i < v->rank; i++)
        if (v->dims[i] == 0)
            return od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: %s.npy: dim %d is 0", path, key,
                                i);
    d->n = v->dims[0];
    bool hwc = false;
    if (v->rank == 3) { /* [N,H,W]: one channel */
        d->rank = 3;
        d->dims[0] = 1;
        d->dims[1] = v->dims[1];
        d->dims[2] = v->dims[2];
    } else {
        d->rank = v->rank - 1;
        memcpy(d->dims, v->dims + 1, (size_t)d->rank * sizeof *d->dims);
        int64_t last = v->dims[3];
        hwc = v->rank == 4 && (last == 1 || last == 3 || last == 4) && v->dims[1] > 4;
        if (hwc) {
            d->dims[0] = last;
            d->dims[1] = v->dims[1];
            d->dims[2] = v->dims[2];
        }
    }
    int64_t ss = od_dataset_sample_size(d), count = d->n * ss;
    if (esize == 1) {
        d->u8 = malloc(count ? (size_t)count : 1);
        if (!d->u8) return od_oom(err, path);
        if (count) memcpy(d->u8, v->data, (size_t)count);
        if (hwc && !od_hwc_to_chw_u8(d->u8, d->n, v->dims[1], v->dims[2], v->dims[3]))
            return od_oom(err, path);
        return OD_STATUS_OK;
    }
    d->f32 = malloc(count ? (size_t)count * sizeof(float) : 1);
    if (!d->f32) return od_oom(err, path);
    for (int64_t i = 0; i < count; i++) {
        double x;
        if (esize == 4) {
            float f;
            memcpy(&f, v->data + 4 * i, 4);
            x = f;
        } else {
            memcpy(&x, v->data + 8 * i, 8);
        }
        if (!isfinite(x) || fabs(x) > FLT_MAX)
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "%s: %s.npy: %s at sample %" PRId64 " (element %" PRId64 ")", path,
                                key,
                                isnan(x)   ? "NaN"
                                : isinf(x) ? "infinity"
                                           : "a value beyond float range",
                                i / ss, i % ss);
        d->f32[i] = (float)x;
    }
    if (hwc && !od_hwc_to_chw_f32(d->f32, d->n, v->dims[1], v->dims[2], v->dims[3]))
        return od_oom(err, path);
    return OD_STATUS_OK;
}

static od_status od_npz_y(const od_npy_view *v, const char *path, const char *key, const char *xkey,
                          od_dataset *d, od_error *err) {
    static const char *const kinds[] = {"i8", "i4", "u1", NULL};
    size_t esize = od_descr_size(v->descr, kinds);
    if (!esize)
        return od_error_set(err, OD_STATUS_UNSUPPORTED,
                            "%s: %s.npy: element type '%s' is not supported for labels (want <i8, "
                            "<i4 or |u1)",
                            path, key, v->descr);
    if (v->rank < 1 || v->rank > 2 || (v->rank == 2 && v->dims[1] != 1)) {
        char b[160];
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: %s.npy: shape %s (want [N] or [N,1])", path, key,
                            od_dims_str(b, sizeof b, v->rank, v->dims, false));
    }
    od_status st = od_npy_check_size(v, esize, path, key, err);
    if (st) return st;
    if (v->dims[0] != d->n)
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: %s.npy: %" PRId64 " labels for %" PRId64 " samples in %s.npy",
                            path, key, v->dims[0], d->n, xkey);
    d->labels = malloc(d->n ? (size_t)d->n * sizeof *d->labels : 1);
    if (!d->labels) return od_oom(err, path);
    for (int64_t i = 0; i < d->n; i++) {
        int64_t y;
        if (esize == 8) {
            memcpy(&y, v->data + 8 * i, 8);
        } else if (esize == 4) {
            int32_t y32;
            memcpy(&y32, v->data + 4 * i, 4);
            y = y32;
        } else {
            y = v->data[i];
        }
        if (y < 0 || y >= OD_DATASET_MAX_CLASSES)
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "%s: %s.npy: labels out of range: %" PRId64 " at sample %" PRId64,
                                path, key, y, i);
        d->labels[i] = (int32_t)y;
    }
    return OD_STATUS_OK;
}

static od_status od_npz_load(const char *path, od_data_split *out, od_error *err) {
    od_bytes b = {0};
    od_status st = od_file_read(path, &b, err);
    if (st) return st;
    od_zip_entry ents[OD_NPZ_KEYS];
    bool have[OD_NPZ_KEYS] = {false};
    if ((st = od_zip_directory(b.data, b.len, path, ents, have, err))) goto cleanup;
    for (int i = 0; i < OD_NPZ_KEYS; i += 2)
        if (!have[i]) {
            st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                              "%s: no %s.npy in the archive (an .npz dataset holds x_train, "
                              "x_test and optionally y_train, y_test)",
                              path, od_npz_keys[i]);
            goto cleanup;
        }
    for (int i = 0; i < OD_NPZ_KEYS; i++) {
        if (!have[i]) continue;
        od_dataset *d = i < OD_NPZ_X_TEST ? &out->train : &out->test;
        const uint8_t *data = NULL;
        size_t size = 0;
        uint8_t *owned;
        if ((st = od_zip_extract(b.data, b.len, path, od_npz_keys[i], &ents[i], &data, &size,
                                 &owned, err)))
            goto cleanup;
        od_npy_view v;
        st = od_npy_view_parse(data, size, path, od_npz_keys[i], &v, err);
        if (!st) {
            if (i == OD_NPZ_X_TRAIN || i == OD_NPZ_X_TEST)
                st = od_npz_x(&v, path, od_npz_keys[i], d, err);
            else
                st = od_npz_y(&v, path, od_npz_keys[i], od_npz_keys[i - 1], d, err);
        }
        free(owned);
        if (st) goto cleanup;
    }
    if (out->test.rank != out->train.rank ||
        memcmp(out->test.dims, out->train.dims, sizeof out->test.dims) != 0) {
        char a[96], c[96];
        st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                          "%s: x_test samples are %s, x_train samples %s", path,
                          od_dims_str(a, sizeof a, out->test.rank, out->test.dims, false),
                          od_dims_str(c, sizeof c, out->train.rank, out->train.dims, false));
        goto cleanup;
    }
    if (!out->test.u8 != !out->train.u8) {
        st = od_error_set(err, OD_STATUS_INVALID_MODEL,
                          "%s: x_train and x_test differ in element type (uint8 and float)", path);
        goto cleanup;
    }
cleanup:
    od_bytes_free(&b);
    return st;
}

/* ---- loading ------------------------------------------------------------------------------------
 */

static od_status od_load_dir(const char *dir, const od_image_options *img, od_data_split *out, bool top, od_error *err) {
    char p[OD_PATH_MAX];
    if (od_find(dir, "train-images-idx3-ubyte", p, sizeof p) ||
        od_find(dir, "train-images.idx3-ubyte", p, sizeof p))
        return od_idx_load(dir, img, out, err);
    if (od_find(dir, "data_batch_1.bin", p, sizeof p)) return od_cifar_load(dir, false, out, err);
    if (od_find(dir, "train.bin", p, sizeof p)) return od_cifar_load(dir, true, out, err);
    static const char *const subs[] = {"cifar-10-batches-bin", "cifar-100-binary"};
    for (size_t i = 0; top && i < sizeof subs / sizeof *subs; i++)
        if (od_join(p, sizeof p, dir, subs[i], "") && od_is_dir(p))
            return od_load_dir(p, img, out, false, err);
    if (top && od_image_folder_detect(dir)) return od_image_folder_load(dir, img, out, err);
    return od_error_set(
        err, OD_STATUS_IO,
        "%s: no dataset in this folder (want IDX files train-images-idx3-ubyte[.gz] "
        "and t10k-images-idx3-ubyte[.gz], CIFAR-10 data_batch_1.bin .. and "
        "test_batch.bin, CIFAR-100 train.bin and test.bin, or one folder of images per class)",
        dir);
}

od_status od_data_load(const char *path, od_data_split *out, od_error *err) {
    return od_data_load_ex(path, NULL, out, err);
}

od_status od_data_load_ex(const char *path, const od_image_options *img, od_data_split *out, od_error *err) {
    memset(out, 0, sizeof *out);
    if (!path || !*path)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "no dataset path given");
    char resolved[OD_PATH_MAX];
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        if (strchr(path, '/') || !od_join(resolved, sizeof resolved, OD_DATASET_DIR, path, "") ||
            stat(resolved, &sb) != 0) {
            if (strchr(path, '/'))
                return od_error_set(err, OD_STATUS_IO, "%s: %s", path, strerror(e));
            return od_error_set(err, OD_STATUS_IO,
                                "%s: no such file or folder, nor is there %s/%s (where "
                                "dataset-* packages install)",
                                path, OD_DATASET_DIR, path);
        }
        path = resolved;
    }
    od_status st =
        S_ISDIR(sb.st_mode) ? od_load_dir(path, img, out, true, err) : od_npz_load(path, out, err);
    if (!st && out->train.n == 0)
        st = od_error_set(err, OD_STATUS_INVALID_MODEL, "%s: the training set holds no samples",
                          path);
    if (st) {
        od_data_split_clear(out);
        return st;
    }
    /* one class count for both sets, so that their labels mean the same */
    if (!out->train.n_classes) {
        int32_t max = -1;
        for (od_dataset *d = &out->train; d; d = d == &out->train ? &out->test : NULL)
            for (int64_t i = 0; d->labels && i < d->n; i++)
                if (d->labels[i] > max) max = d->labels[i];
        out->train.n_classes = out->train.labels ? max + 1 : 0;
        out->test.n_classes = out->test.labels ? max + 1 : 0;
    }
    return OD_STATUS_OK;
}

/* ---- preprocessing ------------------------------------------------------------------------------
 */

void od_preprocess_default(od_preprocess *p) {
    memset(p, 0, sizeof *p);
    p->scale = 1.0f / 255.0f;
    p->n_channels = 1;
    for (int i = 0; i < 16; i++)
        p->std[i] = 1.0f;
}

/* One float, or comma-separated floats, optionally in [] or (). */
static od_status od_parse_floats(const char *key, const char *text, float *v, int *n,
                                 od_error *err) {
    const char *s = text;
    *n = 0;
    while (*s == ' ' || *s == '\t')
        s++;
    char close = *s == '[' ? ']' : *s == '(' ? ')' : 0;
    if (close) s++;
    for (;;) {
        if (*n == 16)
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "model metadata \"%s\": more than 16 channels", key);
        char *end;
        double x = strtod(s, &end);
        if (end == s) { /* nothing, or nothing after a comma */
            *n = 0;
            break;
        }
        if (!isfinite(x) || fabs(x) > FLT_MAX)
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "model metadata \"%s\": \"%s\" holds a value that is not finite",
                                key, text);
        v[(*n)++] = (float)x;
        s = end;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s != ',') break;
        s++;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (close && *s == close) {
        s++;
        close = 0;
    }
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    if (*n == 0 || close || *s)
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "model metadata \"%s\": \"%s\" is not a number or a comma-separated "
                            "list of numbers",
                            key, text);
    return OD_STATUS_OK;
}

od_status od_preprocess_from_model(const od_model *m, od_preprocess *p, od_error *err) {
    od_preprocess_default(p);
    if (!m) return OD_STATUS_OK;
    od_preprocess q;
    od_preprocess_default(&q);
    float v[16];
    int n;
    od_status st;
    const char *text = od_model_meta(m, "preprocess.scale");
    if (text) {
        if ((st = od_parse_floats("preprocess.scale", text, v, &n, err))) return st;
        if (n != 1 || v[0] == 0)
            return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                "model metadata \"preprocess.scale\": \"%s\" (want one non-zero "
                                "number)",
                                text);
        q.scale = v[0];
    }
    int n_mean = 0, n_std = 0;
    float mean[16] = {0}, std[16] = {0};
    if ((text = od_model_meta(m, "preprocess.mean")) &&
        (st = od_parse_floats("preprocess.mean", text, mean, &n_mean, err)))
        return st;
    if ((text = od_model_meta(m, "preprocess.std"))) {
        if ((st = od_parse_floats("preprocess.std", text, std, &n_std, err))) return st;
        for (int i = 0; i < n_std; i++)
            if (std[i] == 0)
                return od_error_set(err, OD_STATUS_INVALID_MODEL,
                                    "model metadata \"preprocess.std\": \"%s\" holds a 0", text);
    }
    int nc = n_mean > n_std ? n_mean : n_std;
    if (nc > 1 && ((n_mean != nc && n_mean > 1) || (n_std != nc && n_std > 1)))
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "model metadata: \"preprocess.mean\" has %d values, \"preprocess.std\" "
                            "%d (want as many, or one)",
                            n_mean, n_std);
    q.n_channels = nc > 0 ? nc : 1;
    for (int c = 0; c < 16; c++) {
        q.mean[c] = n_mean == 0 ? 0.0f : n_mean == 1 ? mean[0] : c < n_mean ? mean[c] : 0.0f;
        q.std[c] = n_std == 0 ? 1.0f : n_std == 1 ? std[0] : c < n_std ? std[c] : 1.0f;
    }
    q.from_model = od_model_meta(m, "preprocess.scale") || od_model_meta(m, "preprocess.mean") ||
                   od_model_meta(m, "preprocess.std");
    *p = q;
    return OD_STATUS_OK;
}

/* Comma-separated, each in the fewest digits that read back as the same float. */
static void float_list(char *buf, size_t size, const float *v, int n) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < n && o < size; i++) {
        char one[32];
        for (int digits = 6; digits <= 9; digits++) {
            snprintf(one, sizeof one, "%.*g", digits, (double)v[i]);
            if (strtof(one, NULL) == v[i]) break;
        }
        o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? "," : "", one);
    }
}

const char *od_preprocess_describe(const od_preprocess *p, char *buf, size_t size) {
    char mean[200], std[200];
    int nc = p->n_channels < 1 ? 1 : p->n_channels > 16 ? 16 : p->n_channels;
    float_list(mean, sizeof mean, p->mean, nc);
    float_list(std, sizeof std, p->std, nc);
    char scale[32];
    float_list(scale, sizeof scale, &p->scale, 1);
    snprintf(buf, size, "scale %s%s, mean %s, std %s", scale,
             fabsf(p->scale * 255.0f - 1.0f) < 1e-6f ? " (1/255)" : "", mean, std);
    return buf;
}

od_status od_preprocess_to_model(od_model *m, const od_preprocess *p, od_error *err) {
    char buf[200];
    int nc = p->n_channels < 1 ? 1 : p->n_channels > 16 ? 16 : p->n_channels;
    od_status st;
    float_list(buf, sizeof buf, &p->scale, 1);
    if ((st = od_model_set_meta(m, "preprocess.scale", buf, err))) return st;
    float_list(buf, sizeof buf, p->mean, nc);
    if ((st = od_model_set_meta(m, "preprocess.mean", buf, err))) return st;
    float_list(buf, sizeof buf, p->std, nc);
    return od_model_set_meta(m, "preprocess.std", buf, err);
}

int od_preprocess_named(const char *name, bool std, float *out) {
    static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
    static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};
    if (!name || strcmp(name, "imagenet") != 0) return 0;
    memcpy(out, std ? imagenet_std : imagenet_mean, sizeof imagenet_mean);
    return 3;
}

od_status od_preprocess_check(const od_preprocess *p, const od_dataset *d, od_error *err) {
    int nc = p->n_channels;
    if (nc < 1 || nc > 16)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "preprocessing with %d channels (want 1 to 16)", nc);
    if (!isfinite(p->scale) || p->scale == 0)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "preprocessing scale %g", p->scale);
    for (int c = 0; c < nc; c++)
        if (!isfinite(p->mean[c]) || !isfinite(p->std[c]) || p->std[c] == 0)
            return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                                "preprocessing channel %d: mean %g, std %g", c, p->mean[c],
                                p->std[c]);
    if (d->f32 && fabsf(p->scale * 255.0f - 1.0f) < 1e-4f) {
        int64_t count = d->n * od_dataset_sample_size(d);
        float most = -INFINITY;
        for (int64_t i = 0; i < count; i++)
            most = d->f32[i] > most ? d->f32[i] : most;
        if (count > 0 && most <= 1.0f)
            return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                                "the dataset holds floats already in [0, 1] (largest %g) and the "
                                "preprocessing scale is 1/255%s: that divides them by 255 again; "
                                "pass --scale 1",
                                most, p->from_model ? " (from the teacher's metadata)" : " (the default)");
    }
    if (nc == 1) return OD_STATUS_OK;
    int64_t ss = od_dataset_sample_size(d);
    bool fits = d->rank >= 2 ? d->dims[0] == nc : ss % nc == 0;
    if (!fits) {
        char b[96];
        return od_error_set(err, OD_STATUS_SHAPE,
                            "preprocessing has %d channels but the dataset samples are %s", nc,
                            od_dims_str(b, sizeof b, d->rank, d->dims, false));
    }
    return OD_STATUS_OK;
}

/* A store mapped from disk: the pages of a sample just read leave this process (the page cache
 * keeps them), so reading the data set costs no resident memory however large it is. */
static void drop_pages(const uint8_t *p, size_t n) {
    static size_t page;
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p / page * page, b = ((uintptr_t)p + n + page - 1) / page * page;
    madvise((void *)a, b - a, MADV_DONTNEED);
}

void od_dataset_fill(const od_dataset *d, const od_preprocess *p, const int64_t *idx, int64_t count,
                     float *out) {
    int64_t ss = od_dataset_sample_size(d);
    int nc = p->n_channels < 1 ? 1 : p->n_channels > 16 ? 16 : p->n_channels;
    if (ss % nc) nc = 1; /* refused by od_preprocess_check; stay in bounds regardless */
    int64_t plane = ss / nc;
    if (d->u8) {
        /* one table per channel: the same float expression as for float data */
        float lut[16][256];
        for (int c = 0; c < nc; c++)
            for (int v = 0; v < 256; v++)
                lut[c][v] = ((float)v * p->scale - p->mean[c]) / p->std[c];
        for (int64_t i = 0; i < count; i++) {
            const uint8_t *src = d->u8 + (idx[i] - d->first) * ss;
            float *dst = out + i * ss;
            for (int c = 0; c < nc; c++) {
                const float *l = lut[c];
                for (int64_t j = c * plane; j < (c + 1) * plane; j++)
                    dst[j] = l[src[j]];
            }
            if (d->map_base) drop_pages(src, (size_t)ss);
        }
    } else if (d->f32) {
        for (int64_t i = 0; i < count; i++) {
            const float *src = d->f32 + idx[i] * ss;
            float *dst = out + i * ss;
            for (int c = 0; c < nc; c++) {
                const float scale = p->scale, mean = p->mean[c], std = p->std[c];
                for (int64_t j = c * plane; j < (c + 1) * plane; j++)
                    dst[j] = (src[j] * scale - mean) / std;
            }
        }
    }
}

od_status od_dataset_check_labels(const od_dataset *d, int64_t n, int64_t classes, od_error *err) {
    for (int64_t i = 0; d->labels && i < n; i++)
        if (d->labels[i] < 0 || d->labels[i] >= classes)
            return od_error_set(err, OD_STATUS_SHAPE, "sample %lld has label %d, outside the model's %lld classes",
                                (long long)i, (int)d->labels[i], (long long)classes);
    return OD_STATUS_OK;
}

od_status od_dataset_check_input(const od_dataset *d, int in_rank, const int64_t *in_dims,
                                 od_error *err) {
    char a[96], b[160];
    if (in_rank < 1 || in_rank > OD_MAX_RANK)
        return od_error_set(err, OD_STATUS_SHAPE,
                            "the model input has rank %d (want a batch dim and a sample's dims)",
                            in_rank);
    const int64_t *md = in_dims + 1;
    int mr = in_rank - 1;
    int64_t ss = od_dataset_sample_size(d), ms = 1;
    bool known = true;
    for (int i = 0; i < mr; i++) {
        if (md[i] < 0 || __builtin_mul_overflow(ms, md[i], &ms))
            known = false; /* unknown, or more than any dataset holds */
    }
    /* the same dims, after dropping leading 1s on both sides */
    int ia = 0, ib = 0;
    while (ia < d->rank - 1 && d->dims[ia] == 1)
        ia++;
    while (ib < mr - 1 && md[ib] == 1)
        ib++;
    bool fits = d->rank - ia == mr - ib && d->rank > 0;
    for (int i = 0; fits && i < d->rank - ia; i++)
        if (md[ib + i] >= 0 && md[ib + i] != d->dims[ia + i]) fits = false;
    if (!fits && d->rank == 1 && known && ms == ss) fits = true;     /* flat into any shape */
    if (!fits && mr == 1 && (md[0] < 0 || md[0] == ss)) fits = true; /* any sample into [N,D] */
    if (fits) return OD_STATUS_OK;
    return od_error_set(err, OD_STATUS_SHAPE,
                        "the dataset's samples are %s (%" PRId64
                        " values) but the model input is %s",
                        od_dims_str(a, sizeof a, d->rank, d->dims, false), ss,
                        od_dims_str(b, sizeof b, in_rank, in_dims, true));
}

/* ---- random numbers -----------------------------------------------------------------------------
 * xoshiro256** 1.0 (Blackman and Vigna), its state filled by splitmix64 from the seed. */

static uint64_t od_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t od_rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void od_rng_seed(od_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = od_splitmix64(&x);
    r->has_spare = false;
    r->spare = 0;
}

uint64_t od_rng_next(od_rng *r) {
    uint64_t *s = r->s;
    const uint64_t result = od_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = od_rotl(s[3], 45);
    return result;
}

uint64_t od_rng_below(od_rng *r, uint64_t bound) {
    if (bound == 0) return 0;
    /* reject the top 2^64 mod bound values so that every residue is equally likely */
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t x = od_rng_next(r);
        if (x >= threshold) return x % bound;
    }
}

double od_rng_uniform(od_rng *r) {
    return (double)(od_rng_next(r) >> 11) * 0x1.0p-53;
}

float od_rng_normal(od_rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double u1 = 1.0 - od_rng_uniform(r); /* (0, 1]: log is finite */
    double u2 = od_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586476925 * u2;
    r->spare = (float)(rad * sin(th));
    r->has_spare = true;
    return (float)(rad * cos(th));
}

void od_rng_shuffle(od_rng *r, int64_t *idx, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)od_rng_below(r, (uint64_t)i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

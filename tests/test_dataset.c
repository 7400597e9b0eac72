/* Datasets, preprocessing and the random generator.
 *
 * Loads the installed Fashion-MNIST (counts, dims, labels and pixel sums checked against values
 * computed independently with python3, gzip and numpy); writes small IDX (plain and gzip),
 * CIFAR-10, CIFAR-100 and .npz files (stored, deflated, zip64; made here with zlib, and by numpy
 * itself when python3 with numpy is installed) into a fresh folder and loads them back; checks
 * that corrupt, truncated and inconsistent files fail with a message naming the file and never
 * crash (every truncation and every flipped byte of a small archive); checks preprocessing,
 * input-shape checks and the generator's sequence, shuffle and normal distribution. */
#include "od_onnx.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "test_check.h"
#include "test_files.h"

static int n_skip;
static char tmp[] = "/tmp/od_dataset.XXXXXX";

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp, name);
    return buf[k];
}

/* A fresh empty folder under tmp. */
static const char *fresh_dir(const char *name) {
    const char *dir = tmp_path(name);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0) printf("FAIL cannot make %s\n", dir);
    return dir;
}

static bool write_gz(const char *path, const void *data, size_t len) {
    unlink(path);
    gzFile f = gzopen(path, "wb");
    if (!f) return false;
    bool ok = len == 0 || gzwrite(f, data, (unsigned)len) == (int)len;
    return gzclose(f) == Z_OK && ok;
}

static bool read_whole(const char *path, uint8_t **data, size_t *len) {
    od_bytes b = {0};
    if (od_file_read(path, &b, NULL)) return false;
    *data = b.data;
    *len = b.len;
    return true;
}

static bool contains(const char *s, const char *sub) {
    return strstr(s, sub) != NULL;
}

/* Loads path expecting failure with status want and a message holding text and the file. */
static void expect_fail(const char *name, const char *path, od_status want, const char *text,
                        const char *file) {
    od_data_split s;
    od_error err = {0};
    od_status st = od_data_load(path, &s, &err);
    check(st == want && contains(err.message, text) && (!file || contains(err.message, file)), name,
          "status %s, message \"%s\" (want %s with \"%s\")", od_status_name(st), err.message,
          od_status_name(want), text);
    check(s.train.n == 0 && !s.train.u8 && !s.test.labels, name, "output not left empty");
    od_data_split_clear(&s);
}

/* ---- Fashion-MNIST ----------------------------------------------------------------------------
 */

static void check_fashion_mnist(void) {
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0) {
        printf("SKIP fashion-mnist: /usr/share/datasets/fashion-mnist is not installed\n");
        n_skip++;
        return;
    }
    od_data_split s;
    od_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    od_status st = od_data_load("fashion-mnist", &s, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    check(!st, "fashion-mnist load", "%s", err.message);
    if (st) return;
    printf("fashion-mnist loaded in %.2f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    check(s.train.n == 60000 && s.test.n == 10000, "fashion-mnist counts", "%lld, %lld",
          (long long)s.train.n, (long long)s.test.n);
    check(s.train.rank == 3 && s.train.dims[0] == 1 && s.train.dims[1] == 28 &&
              s.train.dims[2] == 28 && s.test.rank == 3 && s.test.dims[1] == 28,
          "fashion-mnist dims", "rank %d", s.train.rank);
    check(od_dataset_sample_size(&s.train) == 784, "fashion-mnist sample size", "%lld",
          (long long)od_dataset_sample_size(&s.train));
    check(s.train.u8 && !s.train.f32 && s.train.labels && s.test.labels, "fashion-mnist arrays",
          "missing");
    check(s.train.n_classes == 10 && s.test.n_classes == 10, "fashion-mnist classes", "%d %d",
          s.train.n_classes, s.test.n_classes);
    if (!s.train.u8 || !s.train.labels || !s.test.labels || s.train.n != 60000 ||
        s.test.n != 10000) {
        od_data_split_clear(&s);
        return;
    }
    /* values computed with python3: gzip.open(...).read(), numpy.frombuffer */
    static const int train_first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    static const int test_first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    bool ok = true;
    for (int i = 0; i < 10; i++)
        ok = ok && s.train.labels[i] == train_first[i] && s.test.labels[i] == test_first[i];
    ok = ok && s.train.labels[59997] == 3 && s.train.labels[59998] == 0 &&
         s.train.labels[59999] == 5 && s.test.labels[9997] == 8 && s.test.labels[9998] == 1 &&
         s.test.labels[9999] == 5;
    check(ok, "fashion-mnist labels", "first or last labels differ");
    int64_t hist[10] = {0};
    for (int64_t i = 0; i < s.train.n; i++)
        hist[s.train.labels[i]]++;
    for (int c = 0; c < 10; c++)
        check(hist[c] == 6000, "fashion-mnist train histogram", "class %d: %lld", c,
              (long long)hist[c]);
    int64_t sum0 = 0, sum_last = 0, sum_test0 = 0, total_train = 0, total_test = 0;
    for (int i = 0; i < 784; i++) {
        sum0 += s.train.u8[i];
        sum_last += s.train.u8[59999 * 784 + i];
        sum_test0 += s.test.u8[i];
    }
    for (int64_t i = 0; i < 60000 * 784; i++)
        total_train += s.train.u8[i];
    for (int64_t i = 0; i < 10000 * 784; i++)
        total_test += s.test.u8[i];
    check(sum0 == 76247 && sum_last == 16684 && sum_test0 == 33456, "fashion-mnist image sums",
          "%lld %lld %lld", (long long)sum0, (long long)sum_last, (long long)sum_test0);
    check(total_train == 3431114169LL && total_test == 573469082LL, "fashion-mnist totals",
          "%lld %lld", (long long)total_train, (long long)total_test);
    check(s.train.u8[14 * 28 + 14] == 217 && s.train.u8[123 * 784 + 5 * 28 + 20] == 48 &&
              s.test.u8[9999 * 784 + 27 * 28] == 0 && s.test.u8[500 * 784 + 10 * 28 + 10] == 238,
          "fashion-mnist pixels", "differ");

    /* the same through the full path, and a batch through preprocessing */
    od_data_split s2;
    st = od_data_load("/usr/share/datasets/fashion-mnist", &s2, &err);
    check(!st && s2.train.n == 60000 && memcmp(s2.train.u8, s.train.u8, 784) == 0,
          "fashion-mnist full path", "%s", st ? err.message : "differs");
    od_data_split_clear(&s2);
    od_preprocess p;
    od_preprocess_default(&p);
    float out[2 * 784];
    int64_t idx[2] = {123, 0};
    od_dataset_fill(&s.train, &p, idx, 2, out);
    check(fabsf(out[5 * 28 + 20] - 48.0f / 255.0f) < 1e-7f &&
              fabsf(out[784 + 14 * 28 + 14] - 217.0f / 255.0f) < 1e-7f,
          "fashion-mnist fill", "%g %g", out[5 * 28 + 20], out[784 + 14 * 28 + 14]);
    od_data_split_clear(&s);
    check(s.train.u8 == NULL && s.train.n == 0, "split clear zeroes", "not zeroed");
}

/* ---- IDX
 * ----------------------------------------------------------------------------------------- */

/* An IDX file's bytes: header for type 0x08 and dims, then data. */
static size_t make_idx(uint8_t *buf, int type, int rank, const uint32_t *dims, const uint8_t *data,
                       size_t n) {
    buf[0] = buf[1] = 0;
    buf[2] = (uint8_t)type;
    buf[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        buf[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        buf[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        buf[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        buf[7 + 4 * i] = (uint8_t)dims[i];
    }
    memcpy(buf + 4 + 4 * rank, data, n);
    return 4 + 4 * (size_t)rank + n;
}

static uint8_t pix(int64_t sample, int64_t i) {
    return (uint8_t)(sample * 37 + i * 11 + 5);
}

/* Writes an IDX dataset of n_train/n_test images of h x w into dir. gz: 0 plain, 1 gzip,
 * 2 mixed (training files plain, test files gzip). */
static void write_idx_set(const char *dir, int n_train, int n_test, int h, int w, int gz,
                          bool labels, const char *const names[4]) {
    static const char *const std_names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    if (!names) names = std_names;
    uint8_t buf[4096], data[2048];
    for (int split = 0; split < 2; split++) {
        int n = split ? n_test : n_train, base = split ? 1000 : 0;
        bool z = gz == 1 || (gz == 2 && split);
        for (int i = 0; i < n * h * w; i++)
            data[i] = pix(base + i / (h * w), i % (h * w));
        uint32_t dims[3] = {(uint32_t)n, (uint32_t)h, (uint32_t)w};
        size_t len = make_idx(buf, 8, 3, dims, data, (size_t)(n * h * w));
        char name[256];
        snprintf(name, sizeof name, "%s%s", names[2 * split], z ? ".gz" : "");
        if (z)
            write_gz(in_dir(dir, name), buf, len);
        else
            write_file(in_dir(dir, name), buf, len);
        if (!labels) continue;
        for (int i = 0; i < n; i++)
            data[i] = (uint8_t)((base + i * 3) % 7);
        len = make_idx(buf, 8, 1, dims, data, (size_t)n);
        snprintf(name, sizeof name, "%s%s", names[2 * split + 1], z ? ".gz" : "");
        if (z)
            write_gz(in_dir(dir, name), buf, len);
        else
            write_file(in_dir(dir, name), buf, len);
    }
}

static bool idx_contents_ok(const od_data_split *s, int n_train, int n_test, int h, int w,
                            bool labels) {
    const od_dataset *ds[2] = {&s->train, &s->test};
    int max_label = -1;
    for (int split = 0; split < 2; split++) {
        const od_dataset *d = ds[split];
        int n = split ? n_test : n_train, base = split ? 1000 : 0;
        if (d->n != n || d->rank != 3 || d->dims[0] != 1 || d->dims[1] != h || d->dims[2] != w ||
            !d->u8 || d->f32)
            return false;
        for (int i = 0; i < n * h * w; i++)
            if (d->u8[i] != pix(base + i / (h * w), i % (h * w))) return false;
        if (!labels) {
            if (d->labels || d->n_classes) return false;
            continue;
        }
        if (!d->labels) return false;
        for (int i = 0; i < n; i++) {
            if (d->labels[i] != (base + i * 3) % 7) return false;
            if (d->labels[i] > max_label) max_label = d->labels[i];
        }
    }
    return !labels || (s->train.n_classes == max_label + 1 && s->test.n_classes == max_label + 1);
}

static void check_idx(void) {
    od_data_split s;
    od_error err = {0};
    static const char *const dotted[4] = {"train-images.idx3-ubyte", "train-labels.idx1-ubyte",
                                          "t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte"};
    struct {
        const char *name;
        int gz;
        bool labels;
        const char *const *names;
    } ok[] = {
        {"idx plain", 0, true, NULL},
        {"idx gzip", 1, true, NULL},
        {"idx mixed plain and gzip", 2, true, NULL},
        {"idx without labels", 1, false, NULL},
        {"idx dotted names", 0, true, dotted},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        const char *dir = fresh_dir("idx");
        write_idx_set(dir, 5, 3, 4, 3, ok[i].gz, ok[i].labels, ok[i].names);
        od_status st = od_data_load(dir, &s, &err);
        check(!st && idx_contents_ok(&s, 5, 3, 4, 3, ok[i].labels), ok[i].name, "%s",
              st ? err.message : "wrong contents");
        od_data_split_clear(&s);
    }

    /* [N, D] and [N, C, H, W] images */
    uint8_t buf[4096], data[1024];
    for (int i = 0; i < 1024; i++)
        data[i] = (uint8_t)i;
    const char *dir = fresh_dir("idx2");
    uint32_t d2[2] = {4, 6}, d2t[2] = {2, 6}, lab[1] = {4};
    write_file(in_dir(dir, "train-images-idx3-ubyte"), buf, make_idx(buf, 8, 2, d2, data, 24));
    write_file(in_dir(dir, "t10k-images-idx3-ubyte"), buf, make_idx(buf, 8, 2, d2t, data, 12));
    write_file(in_dir(dir, "train-labels-idx1-ubyte"), buf, make_idx(buf, 8, 1, lab, data, 4));
    od_status st = od_data_load(dir, &s, &err);
    check(!st && s.train.rank == 1 && s.train.dims[0] == 6 && s.train.n == 4 && s.test.n == 2 &&
              s.train.u8[23] == 23 && s.train.n_classes == 4 && !s.test.labels &&
              s.test.n_classes == 0,
          "idx flat samples", "%s", st ? err.message : "wrong");
    od_data_split_clear(&s);
    uint32_t d4[4] = {2, 3, 2, 2};
    write_file(in_dir(dir, "train-images-idx3-ubyte"), buf, make_idx(buf, 8, 4, d4, data, 24));
    write_file(in_dir(dir, "t10k-images-idx3-ubyte"), buf, make_idx(buf, 8, 4, d4, data, 24));
    unlink(in_dir(dir, "train-labels-idx1-ubyte"));
    st = od_data_load(dir, &s, &err);
    check(!st && s.train.rank == 3 && s.train.dims[0] == 3 && s.train.dims[1] == 2 &&
              s.train.dims[2] == 2 && s.train.n == 2 && s.train.u8[13] == 13,
          "idx [N,C,H,W]", "%s", st ? err.message : "wrong");
    od_data_split_clear(&s);

    /* broken files: each case rewrites one file of an otherwise good set */
    struct {
        const char *name;
        const char *file;
        int type, rank;
        uint32_t dims[4];
        size_t n; /* data bytes written */
        int gz;   /* 0 plain, 1 gzip */
        od_status want;
        const char *text;
    } bad[] = {
        {"idx claims more images (plain)",
         "train-images-idx3-ubyte",
         8,
         3,
         {1000000, 4, 3},
         60,
         0,
         OD_STATUS_INVALID_MODEL,
         "truncated"},
        {"idx claims more images (gzip)",
         "train-images-idx3-ubyte",
         8,
         3,
         {1000000, 4, 3},
         60,
         1,
         OD_STATUS_INVALID_MODEL,
         "truncated"},
        {"idx claims huge dims",
         "train-images-idx3-ubyte",
         8,
         3,
         {0xffffffffu, 0xffffffffu, 3},
         60,
         0,
         OD_STATUS_INVALID_MODEL,
         "more data"},
        {"idx claims 2^32-1 x 16 x 16",
         "train-images-idx3-ubyte",
         8,
         3,
         {0xffffffffu, 16, 16},
         60,
         1,
         OD_STATUS_INVALID_MODEL,
         "truncated"},
        {"idx trailing bytes",
         "train-images-idx3-ubyte",
         8,
         3,
         {4, 4, 3},
         60,
         0,
         OD_STATUS_INVALID_MODEL,
         "trailing"},
        {"idx label count",
         "train-labels-idx1-ubyte",
         8,
         1,
         {4},
         4,
         0,
         OD_STATUS_INVALID_MODEL,
         "4 labels for 5 images"},
        {"idx labels with 2 dims",
         "train-labels-idx1-ubyte",
         8,
         2,
         {5, 1},
         5,
         0,
         OD_STATUS_INVALID_MODEL,
         "2 dims"},
        {"idx float images",
         "train-images-idx3-ubyte",
         0x0d,
         3,
         {5, 4, 3},
         240,
         0,
         OD_STATUS_UNSUPPORTED,
         "0x0d"},
        {"idx images of 1 dim",
         "train-images-idx3-ubyte",
         8,
         1,
         {5},
         5,
         0,
         OD_STATUS_INVALID_MODEL,
         "1 dims"},
        {"idx images of 5 dims",
         "train-images-idx3-ubyte",
         8,
         5,
         {5, 1, 1, 1},
         5,
         0,
         OD_STATUS_INVALID_MODEL,
         "5 dims"},
        {"idx zero height",
         "train-images-idx3-ubyte",
         8,
         3,
         {5, 0, 3},
         0,
         0,
         OD_STATUS_INVALID_MODEL,
         "is 0"},
        {"idx no training samples",
         "train-images-idx3-ubyte",
         8,
         3,
         {0, 4, 3},
         0,
         0,
         OD_STATUS_INVALID_MODEL,
         "no samples"},
        {"idx test dims differ",
         "t10k-images-idx3-ubyte",
         8,
         3,
         {3, 3, 4},
         36,
         0,
         OD_STATUS_INVALID_MODEL,
         "test images are [1,3,4], training images [1,4,3]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dir = fresh_dir("idxbad");
        write_idx_set(dir, 5, 3, 4, 3, 0, true, NULL);
        if (strstr(bad[i].name, "no training samples"))
            unlink(in_dir(dir, "train-labels-idx1-ubyte"));
        unlink(in_dir(dir, bad[i].file));
        int rank = bad[i].rank > 4 ? 4 : bad[i].rank;
        size_t len = make_idx(buf, bad[i].type, rank, bad[i].dims, data, bad[i].n);
        buf[3] = (uint8_t)bad[i].rank;
        char name[128];
        snprintf(name, sizeof name, "%s%s", bad[i].file, bad[i].gz ? ".gz" : "");
        const char *path = in_dir(dir, name);
        if (bad[i].gz)
            write_gz(path, buf, len);
        else
            write_file(path, buf, len);
        expect_fail(bad[i].name, dir, bad[i].want, bad[i].text,
                    strstr(bad[i].name, "no training samples") ? dir : path);
    }

    /* magic, empty files, missing files */
    dir = fresh_dir("idxbad");
    write_idx_set(dir, 5, 3, 4, 3, 0, true, NULL);
    const char *img = in_dir(dir, "train-images-idx3-ubyte");
    write_file(img, "\x01\x02\x08\x03", 4);
    expect_fail("idx bad magic", dir, OD_STATUS_INVALID_MODEL, "not an IDX file", img);
    write_file(img, "", 0);
    expect_fail("idx empty file", dir, OD_STATUS_INVALID_MODEL, "not an IDX file", img);
    write_file(img, "\x00\x00\x08\x03\x00\x00", 6);
    expect_fail("idx truncated header", dir, OD_STATUS_INVALID_MODEL, "truncated IDX header", img);
    unlink(in_dir(dir, "t10k-images-idx3-ubyte"));
    write_idx_set(dir, 5, 3, 4, 3, 0, true, NULL);
    unlink(in_dir(dir, "t10k-images-idx3-ubyte"));
    expect_fail("idx missing test images", dir, OD_STATUS_IO, "t10k-images-idx3-ubyte", dir);
    expect_fail("missing folder", tmp_path("no/such/folder"), OD_STATUS_IO, "No such file",
                tmp_path("no/such/folder"));
    expect_fail("unknown short name", "no-such-dataset-xyz", OD_STATUS_IO,
                "/usr/share/datasets/no-such-dataset-xyz", "no-such-dataset-xyz");
    expect_fail("empty folder", fresh_dir("empty"), OD_STATUS_IO, "no dataset in this folder",
                tmp_path("empty"));

    /* gzip damage: every truncation of a gzip IDX file, and flipped bytes in its stream */
    dir = fresh_dir("idxgz");
    write_idx_set(dir, 5, 3, 4, 3, 1, true, NULL);
    const char *gzimg = in_dir(dir, "train-images-idx3-ubyte.gz");
    uint8_t *gzdata;
    size_t gzlen;
    if (read_whole(gzimg, &gzdata, &gzlen)) {
        int failed = 0;
        for (size_t cut = 0; cut < gzlen; cut++) {
            write_file(gzimg, gzdata, cut);
            st = od_data_load(dir, &s, &err);
            if (st == OD_STATUS_OK || !contains(err.message, gzimg)) failed++;
            od_data_split_clear(&s);
        }
        check(failed == 0, "idx gzip every truncation fails", "%d of %zu loaded", failed, gzlen);
        /* flipped bytes in the deflate data or the trailer's CRC: errors (a flip may still
         * decode to the same header, so only crashes and wrong successes count) */
        int wrong = 0;
        for (size_t at = 10; at < gzlen; at++) {
            gzdata[at] ^= 0x55;
            write_file(gzimg, gzdata, gzlen);
            st = od_data_load(dir, &s, &err);
            if (st == OD_STATUS_OK) wrong++;
            od_data_split_clear(&s);
            gzdata[at] ^= 0x55;
        }
        check(wrong == 0, "idx gzip flipped bytes fail", "%d flips loaded", wrong);
        free(gzdata);
    }
    /* every truncation of a plain file */
    dir = fresh_dir("idxcut");
    write_idx_set(dir, 5, 3, 4, 3, 0, true, NULL);
    const char *labp = in_dir(dir, "train-labels-idx1-ubyte");
    uint8_t *plain;
    size_t plen;
    if (read_whole(img = in_dir(dir, "train-images-idx3-ubyte"), &plain, &plen)) {
        int failed = 0;
        for (size_t cut = 0; cut < plen; cut++) {
            write_file(img, plain, cut);
            st = od_data_load(dir, &s, &err);
            if (st == OD_STATUS_OK || !contains(err.message, img)) failed++;
            od_data_split_clear(&s);
        }
        check(failed == 0, "idx plain every truncation fails", "%d of %zu loaded", failed, plen);
        write_file(img, plain, plen);
        free(plain);
    }
    write_file(labp, "\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", 10);
    expect_fail("idx truncated labels", dir, OD_STATUS_INVALID_MODEL, "truncated", labp);
}

/* ---- CIFAR
 * --------------------------------------------------------------------------------------- */

static void write_cifar(const char *path, int n, int lb, int first, int label_mod, bool gz) {
    size_t rec = (size_t)lb + 3072;
    uint8_t *buf = malloc(rec * (size_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t *r = buf + rec * (size_t)i;
        int s = first + i;
        if (lb == 2) r[0] = (uint8_t)(s % 20);
        r[lb - 1] = (uint8_t)(s % label_mod);
        for (int j = 0; j < 3072; j++)
            r[lb + j] = pix(s, j);
    }
    if (gz)
        write_gz(path, buf, rec * (size_t)n);
    else
        write_file(path, buf, rec * (size_t)n);
    free(buf);
}

static bool cifar_ok(const od_dataset *d, int n, int first, int label_mod, int classes) {
    if (d->n != n || d->rank != 3 || d->dims[0] != 3 || d->dims[1] != 32 || d->dims[2] != 32 ||
        !d->u8 || !d->labels || d->n_classes != classes)
        return false;
    for (int i = 0; i < n; i++) {
        if (d->labels[i] != (first + i) % label_mod) return false;
        for (int j = 0; j < 3072; j += 97)
            if (d->u8[(size_t)i * 3072 + j] != pix(first + i, j)) return false;
    }
    return true;
}

static void check_cifar(void) {
    od_data_split s;
    od_error err = {0};
    const char *dir = fresh_dir("cifar10");
    int counts[5] = {3, 1, 2, 1, 1}, first = 0;
    for (int k = 0; k < 5; k++) {
        char name[64];
        snprintf(name, sizeof name, "data_batch_%d.bin%s", k + 1, k == 2 ? ".gz" : "");
        write_cifar(in_dir(dir, name), counts[k], 1, first, 10, k == 2);
        first += counts[k];
    }
    write_cifar(in_dir(dir, "test_batch.bin"), 2, 1, 100, 10, false);
    od_status st = od_data_load(dir, &s, &err);
    check(!st && cifar_ok(&s.train, 8, 0, 10, 10) && cifar_ok(&s.test, 2, 100, 10, 10), "cifar-10",
          "%s", st ? err.message : "wrong contents");
    od_data_split_clear(&s);

    /* the folder above cifar-10-batches-bin */
    const char *parent = fresh_dir("cifar10p");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s/cifar-10-batches-bin'", dir, parent);
    if (system(cmd) == 0) {
        st = od_data_load(parent, &s, &err);
        check(!st && s.train.n == 8, "cifar-10 parent folder", "%s", err.message);
        od_data_split_clear(&s);
    }

    /* batches 1, 2 and 3 only */
    unlink(in_dir(dir, "data_batch_4.bin"));
    unlink(in_dir(dir, "data_batch_5.bin"));
    st = od_data_load(dir, &s, &err);
    check(!st && cifar_ok(&s.train, 6, 0, 10, 10), "cifar-10 three batches", "%s",
          st ? err.message : "wrong contents");
    od_data_split_clear(&s);
    write_cifar(in_dir(dir, "data_batch_5.bin"), 1, 1, 0, 10, false);
    expect_fail("cifar-10 gap", dir, OD_STATUS_IO, "data_batch_4.bin: no such file", dir);
    unlink(in_dir(dir, "data_batch_5.bin"));

    const char *bpath = in_dir(dir, "data_batch_2.bin");
    write_cifar(bpath, 6, 1, 5, 11, false); /* labels 5, 6, ...: sample 5 gets 10 */
    expect_fail("cifar-10 label 10", dir, OD_STATUS_INVALID_MODEL,
                "labels out of range: 10 at sample 5", bpath);
    write_cifar(bpath, 1, 1, 0, 10, false);
    FILE *fp = fopen(bpath, "ab");
    if (fp) {
        fwrite("abc", 1, 3, fp);
        fclose(fp);
    }
    expect_fail("cifar-10 partial record", dir, OD_STATUS_INVALID_MODEL,
                "truncated: 3 bytes after record 1", bpath);
    write_file(bpath, "", 0);
    expect_fail("cifar-10 empty batch", dir, OD_STATUS_INVALID_MODEL, "no CIFAR records", bpath);
    write_cifar(bpath, 1, 1, 0, 10, false);
    unlink(in_dir(dir, "test_batch.bin"));
    expect_fail("cifar-10 no test batch", dir, OD_STATUS_IO, "test_batch.bin", dir);

    dir = fresh_dir("cifar100");
    write_cifar(in_dir(dir, "train.bin"), 5, 2, 95, 100, false);
    write_cifar(in_dir(dir, "test.bin.gz"), 2, 2, 7, 100, true);
    st = od_data_load(dir, &s, &err);
    check(!st && cifar_ok(&s.train, 5, 95, 100, 100) && cifar_ok(&s.test, 2, 7, 100, 100),
          "cifar-100 fine labels", "%s", st ? err.message : "wrong contents");
    od_data_split_clear(&s);
    /* a coarse label of 20 */
    uint8_t rec[3074] = {20, 3};
    const char *tpath = in_dir(dir, "train.bin");
    write_file(tpath, rec, sizeof rec);
    expect_fail("cifar-100 coarse label", dir, OD_STATUS_INVALID_MODEL, "coarse labels", tpath);
    rec[0] = 1;
    rec[1] = 100;
    write_file(tpath, rec, sizeof rec);
    expect_fail("cifar-100 fine label", dir, OD_STATUS_INVALID_MODEL,
                "labels out of range: 100 at sample 0", tpath);
}

/* ---- .npz
 * ---------------------------------------------------------------------------------------- */

typedef struct bytes_buf {
    uint8_t *p;
    size_t len, cap;
} bytes_buf;

static void bb_put(bytes_buf *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void bb_u16(bytes_buf *b, unsigned v) {
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    bb_put(b, x, 2);
}

static void bb_u32(bytes_buf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    bb_put(b, x, 4);
}

static void bb_u64(bytes_buf *b, uint64_t v) {
    bb_u32(b, (uint32_t)v);
    bb_u32(b, (uint32_t)(v >> 32));
}

/* A .npy file in memory, as numpy writes version 1.0. */
static void make_npy(bytes_buf *b, const char *descr, int rank, const int64_t *dims,
                     const void *data, size_t n) {
    char dict[256];
    int k =
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < rank; i++)
        k += snprintf(dict + k, sizeof dict - (size_t)k, "%s%lld", i ? ", " : "",
                      (long long)dims[i]);
    k += snprintf(dict + k, sizeof dict - (size_t)k, "%s), }", rank == 1 ? "," : "");
    size_t hlen = ((10 + (size_t)k + 1 + 63) / 64) * 64 - 10;
    bb_put(b, "\x93NUMPY\x01\x00", 8);
    bb_u16(b, (unsigned)hlen);
    bb_put(b, dict, (size_t)k);
    for (size_t i = (size_t)k; i + 1 < hlen; i++)
        bb_put(b, " ", 1);
    bb_put(b, "\n", 1);
    bb_put(b, data, n);
}

typedef struct zentry {
    const char *name;
    bytes_buf data;
    int method; /* 0 stored, 8 deflated, or anything else written as stored bytes */
} zentry;

static void deflate_raw(const bytes_buf *in, bytes_buf *out) {
    z_stream s;
    memset(&s, 0, sizeof s);
    deflateInit2(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    out->cap = deflateBound(&s, in->len) + 16;
    out->p = malloc(out->cap);
    s.next_in = in->p;
    s.avail_in = (uInt)in->len;
    s.next_out = out->p;
    s.avail_out = (uInt)out->cap;
    deflate(&s, Z_FINISH);
    out->len = s.total_out;
    deflateEnd(&s);
}

/* A zip archive of the entries; zip64: central sizes and offsets in zip64 extra fields and a
 * zip64 end record, as writers do for big archives. flags: general purpose flags to write. */
static void make_zip(bytes_buf *z, zentry *e, int n, bool zip64, unsigned flags) {
    uint32_t offs[8], crcs[8];
    bytes_buf packed[8];
    memset(packed, 0, sizeof packed);
    for (int i = 0; i < n; i++) {
        crcs[i] = (uint32_t)crc32(0, e[i].data.p, (uInt)e[i].data.len);
        if (e[i].method == 8)
            deflate_raw(&e[i].data, &packed[i]);
        else
            bb_put(&packed[i], e[i].data.p, e[i].data.len);
        offs[i] = (uint32_t)z->len;
        bb_u32(z, 0x04034b50);
        bb_u16(z, 20);
        bb_u16(z, flags);
        bb_u16(z, (unsigned)e[i].method);
        bb_u16(z, 0);
        bb_u16(z, 0x21);
        bb_u32(z, crcs[i]);
        bb_u32(z, (uint32_t)packed[i].len);
        bb_u32(z, (uint32_t)e[i].data.len);
        bb_u16(z, (unsigned)strlen(e[i].name));
        bb_u16(z, 0);
        bb_put(z, e[i].name, strlen(e[i].name));
        bb_put(z, packed[i].p, packed[i].len);
    }
    size_t cd = z->len;
    for (int i = 0; i < n; i++) {
        bb_u32(z, 0x02014b50);
        bb_u16(z, 45);
        bb_u16(z, zip64 ? 45 : 20);
        bb_u16(z, flags);
        bb_u16(z, (unsigned)e[i].method);
        bb_u16(z, 0);
        bb_u16(z, 0x21);
        bb_u32(z, crcs[i]);
        bb_u32(z, zip64 ? 0xffffffffu : (uint32_t)packed[i].len);
        bb_u32(z, zip64 ? 0xffffffffu : (uint32_t)e[i].data.len);
        bb_u16(z, (unsigned)strlen(e[i].name));
        bb_u16(z, zip64 ? 8 + 28 : 0); /* an unknown extra field first, then zip64 */
        bb_u16(z, 0);
        bb_u16(z, 0);
        bb_u16(z, 0);
        bb_u32(z, 0);
        bb_u32(z, zip64 ? 0xffffffffu : offs[i]);
        bb_put(z, e[i].name, strlen(e[i].name));
        if (zip64) {
            bb_u16(z, 0x5455);
            bb_u16(z, 4);
            bb_u32(z, 0);
            bb_u16(z, 1);
            bb_u16(z, 24);
            bb_u64(z, e[i].data.len);
            bb_u64(z, packed[i].len);
            bb_u64(z, offs[i]);
        }
        free(packed[i].p);
    }
    size_t cd_size = z->len - cd;
    if (zip64) {
        size_t z64 = z->len;
        bb_u32(z, 0x06064b50);
        bb_u64(z, 44);
        bb_u16(z, 45);
        bb_u16(z, 45);
        bb_u32(z, 0);
        bb_u32(z, 0);
        bb_u64(z, (uint64_t)n);
        bb_u64(z, (uint64_t)n);
        bb_u64(z, cd_size);
        bb_u64(z, cd);
        bb_u32(z, 0x07064b50);
        bb_u32(z, 0);
        bb_u64(z, z64);
        bb_u32(z, 1);
    }
    bb_u32(z, 0x06054b50);
    bb_u16(z, 0);
    bb_u16(z, 0);
    bb_u16(z, zip64 ? 0xffff : (unsigned)n);
    bb_u16(z, zip64 ? 0xffff : (unsigned)n);
    bb_u32(z, zip64 ? 0xffffffffu : (uint32_t)cd_size);
    bb_u32(z, zip64 ? 0xffffffffu : (uint32_t)cd);
    bb_u16(z, 0);
}

/* Standard arrays: x_train uint8 [4,2,3] (samples [1,2,3]), y_train int64 [4], x_test uint8
 * [2,2,3], y_test int64 [2]. */
static const int64_t npz_y_train[4] = {3, 0, 7, 1}, npz_y_test[2] = {2, 5};

static int npz_std(zentry *e, int method) {
    uint8_t x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (uint8_t)(i * 9);
    memset(e, 0, 4 * sizeof *e);
    int64_t dx[3] = {4, 2, 3}, dy[1] = {4}, dxt[3] = {2, 2, 3}, dyt[1] = {2};
    e[0].name = "x_train.npy";
    make_npy(&e[0].data, "|u1", 3, dx, x, 24);
    e[1].name = "y_train.npy";
    make_npy(&e[1].data, "<i8", 1, dy, npz_y_train, sizeof npz_y_train);
    e[2].name = "x_test.npy";
    make_npy(&e[2].data, "|u1", 3, dxt, x + 6, 12);
    e[3].name = "y_test.npy";
    make_npy(&e[3].data, "<i8", 1, dyt, npz_y_test, sizeof npz_y_test);
    for (int i = 0; i < 4; i++)
        e[i].method = method;
    return 4;
}

static void free_entries(zentry *e, int n) {
    for (int i = 0; i < n; i++)
        free(e[i].data.p);
}

/* The standard archive's contents; some_labels: a label array may be missing (its entry renamed
 * by a flipped bit), the others must be right. */
static bool npz_std_ok_ex(const od_data_split *s, bool some_labels) {
    if (s->train.n != 4 || s->test.n != 2 || s->train.rank != 3 || s->train.dims[0] != 1 ||
        s->train.dims[1] != 2 || s->train.dims[2] != 3 || !s->train.u8 || s->train.f32 ||
        !s->test.u8 || s->test.f32)
        return false;
    if (!some_labels && (!s->train.labels || !s->test.labels)) return false;
    for (int i = 0; i < 24; i++)
        if (s->train.u8[i] != (uint8_t)(i * 9)) return false;
    for (int i = 0; i < 12; i++)
        if (s->test.u8[i] != (uint8_t)((i + 6) * 9)) return false;
    if (s->train.labels) {
        for (int i = 0; i < 4; i++)
            if (s->train.labels[i] != npz_y_train[i]) return false;
        if (s->train.n_classes != 8) return false;
    }
    if (s->test.labels) {
        if (s->test.labels[0] != 2 || s->test.labels[1] != 5) return false;
        if (s->test.n_classes != (s->train.labels ? 8 : 6)) return false;
    }
    return true;
}

static bool npz_std_ok(const od_data_split *s) {
    return npz_std_ok_ex(s, false);
}

static const char *write_zip(const char *name, zentry *e, int n, bool zip64, unsigned flags) {
    bytes_buf z = {0};
    make_zip(&z, e, n, zip64, flags);
    const char *path = tmp_path(name);
    write_file(path, z.p, z.len);
    free(z.p);
    return path;
}

/* The standard archive with entry k replaced by an array of descr, dims and data. */
static const char *npz_with(int method, int k, const char *descr, int rank, const int64_t *dims,
                            const void *data, size_t n) {
    zentry e[4];
    npz_std(e, method);
    free(e[k].data.p);
    memset(&e[k].data, 0, sizeof e[k].data);
    make_npy(&e[k].data, descr, rank, dims, data, n);
    const char *path = write_zip("case.npz", e, 4, false, 0);
    free_entries(e, 4);
    return path;
}

static void check_npz(void) {
    od_data_split s;
    od_error err = {0};
    zentry e[4];
    od_status st;
    struct {
        const char *name;
        int method;
        bool zip64;
    } variants[] = {{"npz stored", 0, false},
                    {"npz deflated", 8, false},
                    {"npz zip64 stored", 0, true},
                    {"npz zip64 deflated", 8, true}};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        int n = npz_std(e, variants[v].method);
        const char *path = write_zip("std.npz", e, n, variants[v].zip64, 0);
        free_entries(e, n);
        st = od_data_load(path, &s, &err);
        check(!st && npz_std_ok(&s), variants[v].name, "%s", st ? err.message : "wrong contents");
        od_data_split_clear(&s);
    }

    /* extra entries, other order, no labels */
    {
        zentry f[5];
        npz_std(f, 8);
        f[4] = f[0];
        f[0] = (zentry){.name = "notes.npy", .method = 0};
        bb_put(&f[0].data, "hello", 5);
        const char *path = write_zip("extra.npz", f, 5, false, 0);
        st = od_data_load(path, &s, &err);
        check(!st && npz_std_ok(&s), "npz extra entry", "%s", st ? err.message : "wrong");
        od_data_split_clear(&s);
        zentry g[2] = {f[4], f[2]}; /* x_train and x_test only */
        path = write_zip("nolabels.npz", g, 2, false, 0);
        st = od_data_load(path, &s, &err);
        check(!st && s.train.n == 4 && !s.train.labels && !s.test.labels && s.train.n_classes == 0,
              "npz without labels", "%s", st ? err.message : "wrong");
        od_data_split_clear(&s);
        zentry h[3] = {f[4], f[1], f[2]}; /* no y_test */
        path = write_zip("notestlabels.npz", h, 3, false, 0);
        st = od_data_load(path, &s, &err);
        check(!st && s.train.labels && !s.test.labels && s.train.n_classes == 8 &&
                  s.test.n_classes == 0,
              "npz without test labels", "%s", st ? err.message : "wrong");
        od_data_split_clear(&s);
        free_entries(f, 5);
    }

    /* float32 [N, D] with int32 labels; float64 with uint8 labels [N,1] */
    {
        float xf[4 * 5];
        for (int i = 0; i < 20; i++)
            xf[i] = (float)i / 7.0f - 1.0f;
        int64_t d[2] = {4, 5}, dt[2] = {2, 5};
        int32_t y32[4] = {1, 2, 3, 4};
        zentry f[4];
        npz_std(f, 8);
        for (int i = 0; i < 4; i++) {
            free(f[i].data.p);
            memset(&f[i].data, 0, sizeof f[i].data);
        }
        make_npy(&f[0].data, "<f4", 2, d, xf, sizeof xf);
        make_npy(&f[1].data, "<i4", 1, d, y32, sizeof y32);
        make_npy(&f[2].data, "<f4", 2, dt, xf, 40);
        make_npy(&f[3].data, "<i4", 1, dt, y32, 8);
        const char *path = write_zip("f32.npz", f, 4, false, 0);
        st = od_data_load(path, &s, &err);
        bool ok = !st && s.train.rank == 1 && s.train.dims[0] == 5 && s.train.f32 && !s.train.u8 &&
                  s.train.labels && s.train.labels[3] == 4 && s.train.n_classes == 5;
        for (int i = 0; ok && i < 20; i++)
            ok = s.train.f32[i] == xf[i];
        check(ok, "npz float32 [N,D]", "%s", st ? err.message : "wrong");
        od_data_split_clear(&s);
        free_entries(f, 4);

        double xd[2 * 3 * 2 * 2];
        for (int i = 0; i < 24; i++)
            xd[i] = i * 0.25;
        uint8_t yu[2] = {0, 9};
        int64_t d4[4] = {2, 3, 2, 2}, dy[2] = {2, 1};
        npz_std(f, 0);
        for (int i = 0; i < 4; i++) {
            free(f[i].data.p);
            memset(&f[i].data, 0, sizeof f[i].data);
        }
        make_npy(&f[0].data, "<f8", 4, d4, xd, sizeof xd);
        make_npy(&f[1].data, "|u1", 2, dy, yu, 2);
        make_npy(&f[2].data, "<f8", 4, d4, xd, sizeof xd);
        make_npy(&f[3].data, "|u1", 2, dy, yu, 2);
        path = write_zip("f64.npz", f, 4, false, 0);
        st = od_data_load(path, &s, &err);
        ok = !st && s.train.rank == 3 && s.train.dims[0] == 3 && s.train.f32 &&
             s.train.f32[23] == 5.75f && s.train.labels[1] == 9 && s.test.n_classes == 10;
        check(ok, "npz float64 [N,C,H,W], labels [N,1]", "%s", st ? err.message : "wrong");
        od_data_split_clear(&s);
        free_entries(f, 4);

        /* Keras layout [N,H,W,C]: transposed to NCHW */
        uint8_t xh[2 * 5 * 6 * 3];
        for (int i = 0; i < 180; i++)
            xh[i] = (uint8_t)i;
        int64_t dh[4] = {2, 5, 6, 3};
        npz_std(f, 8);
        for (int i = 0; i < 4; i += 2) {
            free(f[i].data.p);
            memset(&f[i].data, 0, sizeof f[i].data);
            make_npy(&f[i].data, "|u1", 4, dh, xh, sizeof xh);
        }
        free(f[1].data.p);
        memset(&f[1].data, 0, sizeof f[1].data);
        make_npy(&f[1].data, "<i8", 1, dh, npz_y_train, 16);
        path = write_zip("nhwc.npz", f, 4, false, 0);
        st = od_data_load(path, &s, &err);
        ok = !st && s.train.rank == 3 && s.train.dims[0] == 3 && s.train.dims[1] == 5 &&
             s.train.dims[2] == 6;
        for (int n = 0; ok && n < 2; n++)
            for (int h = 0; h < 5; h++)
                for (int w = 0; w < 6; w++)
                    for (int c = 0; c < 3; c++)
                        if (s.train.u8[n * 90 + c * 30 + h * 6 + w] !=
                            xh[n * 90 + (h * 6 + w) * 3 + c])
                            ok = false;
        check(ok, "npz [N,H,W,C] to NCHW", "%s", st ? err.message : "wrong");
        od_data_split_clear(&s);
        free_entries(f, 4);
    }

    /* bad contents */
    int64_t y20[20];
    for (int i = 0; i < 20; i++)
        y20[i] = i % 3;
    int64_t d20[1] = {20};
    uint8_t x20[20 * 6] = {0};
    int64_t dx20[3] = {20, 2, 3};
    {
        zentry f[4];
        npz_std(f, 8);
        for (int i = 0; i < 2; i++) {
            free(f[i].data.p);
            memset(&f[i].data, 0, sizeof f[i].data);
        }
        y20[17] = -3;
        make_npy(&f[0].data, "|u1", 3, dx20, x20, sizeof x20);
        make_npy(&f[1].data, "<i8", 1, d20, y20, sizeof y20);
        const char *path = write_zip("neg.npz", f, 4, false, 0);
        expect_fail("npz negative label", path, OD_STATUS_INVALID_MODEL,
                    "y_train.npy: labels out of range: -3 at sample 17", path);
        free(f[1].data.p);
        memset(&f[1].data, 0, sizeof f[1].data);
        y20[17] = 1;
        y20[4] = 1LL << 40;
        make_npy(&f[1].data, "<i8", 1, d20, y20, sizeof y20);
        path = write_zip("huge.npz", f, 4, false, 0);
        expect_fail("npz huge label", path, OD_STATUS_INVALID_MODEL,
                    "labels out of range: 1099511627776 at sample 4", path);
        free_entries(f, 4);
    }
    float xnan[4 * 6] = {0};
    xnan[2 * 6 + 4] = NAN;
    int64_t dx[3] = {4, 2, 3}, dy[1] = {4}, dbad[1] = {5};
    const char *path = npz_with(8, 0, "<f4", 3, dx, xnan, sizeof xnan);
    /* x_test is uint8 in the standard archive: the NaN must be found first */
    expect_fail("npz NaN", path, OD_STATUS_INVALID_MODEL, "x_train.npy: NaN at sample 2", path);
    double xinf[24] = {0};
    xinf[3 * 6] = -INFINITY;
    path = npz_with(0, 0, "<f8", 3, dx, xinf, sizeof xinf);
    expect_fail("npz infinity", path, OD_STATUS_INVALID_MODEL, "infinity at sample 3", path);
    xinf[3 * 6] = 1e300;
    path = npz_with(0, 0, "<f8", 3, dx, xinf, sizeof xinf);
    expect_fail("npz beyond float", path, OD_STATUS_INVALID_MODEL, "beyond float range at sample 3",
                path);
    float xf[24] = {0};
    path = npz_with(8, 0, "<f4", 3, dx, xf, sizeof xf);
    expect_fail("npz mixed element types", path, OD_STATUS_INVALID_MODEL, "differ in element type",
                path);
    path = npz_with(8, 1, "<i8", 1, dbad, y20, 40);
    expect_fail("npz label count", path, OD_STATUS_INVALID_MODEL,
                "5 labels for 4 samples in x_train.npy", path);
    path = npz_with(8, 0, "<i2", 3, dx, xf, 48);
    expect_fail("npz int16 x", path, OD_STATUS_UNSUPPORTED, "'<i2'", path);
    path = npz_with(8, 0, ">f4", 3, dx, xf, 96);
    expect_fail("npz big-endian x", path, OD_STATUS_UNSUPPORTED, "'>f4'", path);
    path = npz_with(8, 1, "<f4", 1, dy, xf, 16);
    expect_fail("npz float labels", path, OD_STATUS_UNSUPPORTED, "labels", path);
    path = npz_with(8, 0, "|u1", 3, dx, xf, 20);
    expect_fail("npz truncated array", path, OD_STATUS_INVALID_MODEL, "truncated", path);
    path = npz_with(8, 0, "|u1", 1, dy, xf, 4);
    expect_fail("npz x of one dim", path, OD_STATUS_INVALID_MODEL, "shape [4]", path);
    int64_t dt[3] = {2, 3, 2};
    path = npz_with(8, 2, "|u1", 3, dt, xf, 12);
    expect_fail("npz test dims differ", path, OD_STATUS_INVALID_MODEL,
                "x_test samples are [1,3,2], x_train samples [1,2,3]", path);
    int64_t d0[3] = {0, 2, 3};
    path = npz_with(0, 0, "|u1", 3, d0, xf, 0);
    expect_fail("npz no training samples", path, OD_STATUS_INVALID_MODEL, "4 labels for 0", path);

    /* archive structure */
    {
        zentry f[4];
        npz_std(f, 8);
        zentry g[3] = {f[0], f[1], f[3]};
        path = write_zip("notest.npz", g, 3, false, 0);
        expect_fail("npz without x_test", path, OD_STATUS_INVALID_MODEL, "no x_test.npy", path);
        zentry h[5] = {f[0], f[1], f[2], f[3], f[0]};
        path = write_zip("dup.npz", h, 5, false, 0);
        expect_fail("npz duplicate entry", path, OD_STATUS_INVALID_MODEL, "two entries", path);
        path = write_zip("enc.npz", f, 4, false, 1);
        expect_fail("npz encrypted", path, OD_STATUS_UNSUPPORTED, "encrypted", path);
        f[0].method = 12;
        path = write_zip("bzip2.npz", f, 4, false, 0);
        expect_fail("npz bzip2 entry", path, OD_STATUS_UNSUPPORTED, "method 12", path);
        free_entries(f, 4);
    }
    path = tmp_path("text.npz");
    write_file(path, "hello, world", 12);
    expect_fail("npz not a zip", path, OD_STATUS_INVALID_MODEL, "not an .npz file", path);
    write_file(path, "PK\x03\x04", 4);
    expect_fail("npz zip header only", path, OD_STATUS_INVALID_MODEL, "corrupt zip", path);

    /* a flipped data byte in a stored entry: the CRC catches it */
    int n = npz_std(e, 0);
    bytes_buf z = {0};
    make_zip(&z, e, n, false, 0);
    free_entries(e, n);
    path = tmp_path("crc.npz");
    z.p[30 + strlen("x_train.npy") + 128 + 5] ^= 1;
    write_file(path, z.p, z.len);
    expect_fail("npz stored CRC", path, OD_STATUS_INVALID_MODEL, "CRC mismatch", path);
    free(z.p);

    /* every truncation and every flipped byte of small archives: no crash; truncations fail */
    for (int method = 0; method <= 8; method += 8)
        for (int zip64 = 0; zip64 <= 1; zip64++) {
            n = npz_std(e, method);
            memset(&z, 0, sizeof z);
            make_zip(&z, e, n, zip64, 0);
            free_entries(e, n);
            path = tmp_path("fuzz.npz");
            int loaded = 0, wrong = 0;
            for (size_t cut = 0; cut < z.len; cut++) {
                write_file(path, z.p, cut);
                st = od_data_load(path, &s, &err);
                if (!st) loaded++;
                od_data_split_clear(&s);
            }
            char name[96];
            snprintf(name, sizeof name, "npz %s%s every truncation fails",
                     method ? "deflated" : "stored", zip64 ? " zip64" : "");
            check(loaded == 0, name, "%d of %zu loaded", loaded, z.len);
            for (size_t at = 0; at < z.len; at++) {
                uint8_t bit = (uint8_t)(1 << (at * 3 % 8)); /* one bit per byte, in turn */
                z.p[at] ^= bit;
                write_file(path, z.p, z.len);
                st = od_data_load(path, &s, &err);
                /* a flip in a field we ignore (times, versions) loads the same data */
                if (!st && !npz_std_ok_ex(&s, true)) wrong++;
                if (st && !contains(err.message, path)) wrong++;
                od_data_split_clear(&s);
                z.p[at] ^= bit;
            }
            snprintf(name, sizeof name, "npz %s%s flipped bits", method ? "deflated" : "stored",
                     zip64 ? " zip64" : "");
            check(wrong == 0, name, "%d flips loaded wrong data or lost the file name", wrong);
            free(z.p);
        }
}

/* Archives written by numpy itself: savez (stored, zip64 local headers) and savez_compressed. */
static void check_npz_numpy(void) {
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        printf("SKIP npz from numpy: python3 with numpy is not installed\n");
        n_skip++;
        return;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import numpy as np\n"
             "x = np.arange(3*2*4*4, dtype=np.float32).reshape(3, 2, 4, 4) / 7\n"
             "y = np.array([4, 0, 2], dtype=np.int64)\n"
             "np.savez_compressed('%s/c.npz', x_train=x, y_train=y, x_test=x[:2], y_test=y[:2])\n"
             "u = (np.arange(5*6*6*3) %% 251).astype(np.uint8).reshape(5, 6, 6, 3)\n"
             "v = np.array([[1], [9], [3], [0], [2]], dtype=np.int64)\n"
             "np.savez('%s/s.npz', x_train=u, y_train=v, x_test=u[1:], y_test=v[1:])\n"
             "\"",
             tmp, tmp);
    if (system(cmd) != 0) {
        check(false, "npz from numpy", "python3 failed to write the archives");
        return;
    }
    od_data_split s;
    od_error err = {0};
    od_status st = od_data_load(tmp_path("c.npz"), &s, &err);
    bool ok = !st && s.train.n == 3 && s.test.n == 2 && s.train.rank == 3 && s.train.dims[0] == 2 &&
              s.train.dims[1] == 4 && s.train.dims[2] == 4 && s.train.f32 &&
              s.train.labels[0] == 4 && s.test.labels[1] == 0 && s.train.n_classes == 5;
    for (int i = 0; ok && i < 96; i++)
        ok = s.train.f32[i] == (float)i / 7.0f;
    check(ok, "npz numpy savez_compressed", "%s", st ? err.message : "wrong contents");
    od_data_split_clear(&s);
    st = od_data_load(tmp_path("s.npz"), &s, &err);
    ok = !st && s.train.n == 5 && s.test.n == 4 && s.train.rank == 3 && s.train.dims[0] == 3 &&
         s.train.dims[1] == 6 && s.train.dims[2] == 6 && s.train.u8 && s.train.labels[1] == 9 &&
         s.test.labels[0] == 9 && s.train.n_classes == 10;
    for (int nn = 0; ok && nn < 5; nn++)
        for (int p = 0; p < 36; p++)
            for (int c = 0; c < 3; c++)
                if (s.train.u8[nn * 108 + c * 36 + p] != (nn * 108 + p * 3 + c) % 251) ok = false;
    check(ok, "npz numpy savez (NHWC uint8, labels [N,1])", "%s",
          st ? err.message : "wrong contents");
    od_data_split_clear(&s);
}

/* ---- preprocessing and input shapes ------------------------------------------------------------
 */

static od_model *model_with_meta(const char *scale, const char *mean, const char *std) {
    od_model *m = od_model_create();
    const char *keys[3] = {"preprocess.scale", "preprocess.mean", "preprocess.std"};
    const char *vals[3] = {scale, mean, std};
    m->meta = calloc(3, sizeof *m->meta);
    for (int i = 0; i < 3; i++) {
        if (!vals[i]) continue;
        m->meta[m->n_meta].key = strdup(keys[i]);
        m->meta[m->n_meta].value = strdup(vals[i]);
        m->n_meta++;
    }
    return m;
}

static void check_preprocess(void) {
    od_preprocess p;
    od_error err = {0};
    od_preprocess_default(&p);
    check(p.scale == 1.0f / 255.0f && p.n_channels == 1 && p.mean[0] == 0 && p.std[0] == 1,
          "preprocess default", "scale %g", p.scale);
    check(!od_preprocess_from_model(NULL, &p, &err) && p.n_channels == 1, "preprocess no model",
          "%s", err.message);
    od_model *m = model_with_meta(NULL, NULL, NULL);
    check(!od_preprocess_from_model(m, &p, &err) && p.scale == 1.0f / 255.0f, "preprocess no meta",
          "%s", err.message);
    od_model_destroy(m);

    struct {
        const char *name, *scale, *mean, *std;
        int nc;
        float s, m0, m2, s0, s2;
    } ok[] = {
        {"meta one value", "0.5", "0.2860", "0.3530", 1, 0.5f, 0.286f, 0, 0.353f, 1},
        {"meta three values", NULL, "0.485,0.456,0.406", "[0.229, 0.224, 0.225]", 3, 1 / 255.0f,
         0.485f, 0.406f, 0.229f, 0.225f},
        {"meta mean broadcast", "1", " 0.5 ", "(1, 2, 4)", 3, 1, 0.5f, 0.5f, 1, 4},
        {"meta std only", NULL, NULL, "2", 1, 1 / 255.0f, 0, 0, 2, 2},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        m = model_with_meta(ok[i].scale, ok[i].mean, ok[i].std);
        od_status st = od_preprocess_from_model(m, &p, &err);
        check(!st && p.n_channels == ok[i].nc && p.scale == ok[i].s && p.mean[0] == ok[i].m0 &&
                  p.std[0] == ok[i].s0 &&
                  (ok[i].nc < 3 || (p.mean[2] == ok[i].m2 && p.std[2] == ok[i].s2)),
              ok[i].name, "%s", st ? err.message : "wrong values");
        od_model_destroy(m);
    }
    struct {
        const char *name, *scale, *mean, *std, *text;
    } bad[] = {
        {"meta not a number", "abc", NULL, NULL, "preprocess.scale"},
        {"meta two scales", "1,2", NULL, NULL, "one non-zero"},
        {"meta zero scale", "0", NULL, NULL, "one non-zero"},
        {"meta trailing comma", NULL, "0.1,0.2,", NULL, "preprocess.mean"},
        {"meta trailing text", NULL, "0.1 x", NULL, "preprocess.mean"},
        {"meta open bracket", NULL, "[0.1, 0.2", NULL, "preprocess.mean"},
        {"meta nan", NULL, NULL, "nan", "not finite"},
        {"meta zero std", NULL, NULL, "1,0,1", "holds a 0"},
        {"meta counts differ", NULL, "1,2,3", "1,2", "3 values"},
        {"meta 17 channels", NULL, "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", NULL, "16 channels"},
        {"meta empty", NULL, "", NULL, "preprocess.mean"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        m = model_with_meta(bad[i].scale, bad[i].mean, bad[i].std);
        od_status st = od_preprocess_from_model(m, &p, &err);
        check(st == OD_STATUS_INVALID_MODEL && contains(err.message, bad[i].text) &&
                  p.scale == 1.0f / 255.0f && p.n_channels == 1,
              bad[i].name, "%s: %s", od_status_name(st), err.message);
        od_model_destroy(m);
    }

    /* fill: uint8 [3,2,2] with per-channel values, and float [D] */
    uint8_t u8[3 * 12];
    for (int i = 0; i < 36; i++)
        u8[i] = (uint8_t)(i * 7);
    od_dataset d = {.n = 3, .rank = 3, .dims = {3, 2, 2}, .u8 = u8};
    od_preprocess q = {.scale = 0.5f, .n_channels = 3, .mean = {1, 2, 3}, .std = {2, 4, 8}};
    check(!od_preprocess_check(&q, &d, &err), "preprocess check [3,2,2]", "%s", err.message);
    float out[24];
    int64_t idx[2] = {2, 0};
    od_dataset_fill(&d, &q, idx, 2, out);
    bool good = true;
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 12; j++) {
            int c = j / 4;
            float want = ((float)u8[idx[k] * 12 + j] * 0.5f - q.mean[c]) / q.std[c];
            if (out[k * 12 + j] != want) good = false;
        }
    check(good, "fill uint8 per channel", "differs");
    float f32[2 * 6] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    od_dataset df = {.n = 2, .rank = 1, .dims = {6}, .f32 = f32};
    q = (od_preprocess){.scale = 2, .n_channels = 2, .mean = {1, -1}, .std = {0.5f, 4}};
    check(!od_preprocess_check(&q, &df, &err), "preprocess check flat", "%s", err.message);
    int64_t idx1[1] = {1};
    od_dataset_fill(&df, &q, idx1, 1, out);
    good = true;
    for (int j = 0; j < 6; j++) {
        int c = j / 3;
        if (out[j] != (f32[6 + j] * 2 - q.mean[c]) / q.std[c]) good = false;
    }
    check(good, "fill float per channel", "differs");
    q.n_channels = 4;
    q.std[2] = q.std[3] = 1;
    check(od_preprocess_check(&q, &df, &err) == OD_STATUS_SHAPE, "preprocess check 4 into [6]",
          "%s", err.message);
    od_dataset dm = {.n = 1, .rank = 3, .dims = {1, 28, 28}};
    q.n_channels = 3;
    q.std[2] = 1;
    check(od_preprocess_check(&q, &dm, &err) == OD_STATUS_SHAPE &&
              contains(err.message, "3 channels") && contains(err.message, "[1,28,28]"),
          "preprocess check 3 into [1,28,28]", "%s", err.message);
    q.std[1] = 0;
    check(od_preprocess_check(&q, &d, &err) == OD_STATUS_INVALID_ARGUMENT,
          "preprocess check zero std", "%s", err.message);
}

static void check_input_shapes(void) {
    od_error err = {0};
    od_dataset m = {.rank = 3, .dims = {1, 28, 28}};
    od_dataset flat = {.rank = 1, .dims = {784}};
    od_dataset c = {.rank = 3, .dims = {3, 32, 32}};
    struct {
        const char *name;
        const od_dataset *d;
        int rank;
        int64_t dims[5];
        bool fits;
        const char *text;
    } cases[] = {
        {"[1,28,28] into [N,1,28,28]", &m, 4, {8, 1, 28, 28}, true, NULL},
        {"[1,28,28] into [N,784]", &m, 2, {8, 784}, true, NULL},
        {"[1,28,28] into [N,28,28]", &m, 3, {1, 28, 28}, true, NULL},
        {"[1,28,28] into [N,1,?,28]", &m, 4, {-1, 1, -1, 28}, true, NULL},
        {"[784] into [N,1,28,28]", &flat, 4, {8, 1, 28, 28}, true, NULL},
        {"[784] into [N,784]", &flat, 2, {1, 784}, true, NULL},
        {"[3,32,32] into [N,3,32,32]", &c, 4, {8, 3, 32, 32}, true, NULL},
        {"[1,28,28] into [N,3,32,32]",
         &m,
         4,
         {8, 3, 32, 32},
         false,
         "samples are [1,28,28] (784 values) but the model input is [N,3,32,32]"},
        {"[784] into [N,3,28,28]", &flat, 4, {8, 3, 28, 28}, false, "[N,3,28,28]"},
        {"[3,32,32] into [N,32,32,3]", &c, 4, {8, 32, 32, 3}, false, "[N,32,32,3]"},
        {"[1,28,28] into [N,785]", &m, 2, {8, 785}, false, "[N,785]"},
        {"[1,28,28] into [N]", &m, 1, {8}, false, "[N]"},
        {"rank 0 input", &m, 0, {0}, false, "rank 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        od_status st = od_dataset_check_input(cases[i].d, cases[i].rank, cases[i].dims, &err);
        check(cases[i].fits ? st == OD_STATUS_OK
                            : st == OD_STATUS_SHAPE && contains(err.message, cases[i].text),
              cases[i].name, "%s: %s", od_status_name(st), err.message);
    }
}

/* ---- random numbers
 * ------------------------------------------------------------------------------ */

static void check_rng(void) {
    /* reference values from an independent Python implementation of splitmix64 + xoshiro256** */
    static const uint64_t seq0[4] = {0x99ec5f36cb75f2b4ULL, 0xbf6e1f784956452aULL,
                                     0x1a5f849d4933e6e0ULL, 0x6aa594f1262d2d2cULL};
    static const uint64_t seq42[4] = {0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL,
                                      0xae17533239e499a1ULL, 0xecb8ad4703b360a1ULL};
    od_rng r, r2;
    od_rng_seed(&r, 0);
    od_rng_seed(&r2, 42);
    bool ok = true;
    for (int i = 0; i < 4; i++)
        ok = ok && od_rng_next(&r) == seq0[i] && od_rng_next(&r2) == seq42[i];
    check(ok, "rng reference sequence", "differs");

    od_rng_seed(&r, 123);
    od_rng_seed(&r2, 123);
    ok = true;
    for (int i = 0; i < 1000; i++) {
        ok = ok && od_rng_next(&r) == od_rng_next(&r2);
        ok = ok && od_rng_normal(&r) == od_rng_normal(&r2);
        ok = ok && od_rng_uniform(&r) == od_rng_uniform(&r2);
    }
    check(ok, "rng same seed, same sequence", "differs");
    od_rng_seed(&r, 123);
    od_rng_seed(&r2, 124);
    check(od_rng_next(&r) != od_rng_next(&r2), "rng seeds differ", "same first value");
    /* reseeding forgets a cached normal */
    od_rng_seed(&r, 5);
    float first = od_rng_normal(&r);
    od_rng_seed(&r, 5);
    check(od_rng_normal(&r) == first, "rng reseed resets normal", "cached value leaked");

    od_rng_seed(&r, 1);
    double sum = 0, sum2 = 0, umin = 1, umax = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        double u = od_rng_uniform(&r);
        if (u < umin) umin = u;
        if (u > umax) umax = u;
    }
    check(umin >= 0 && umax < 1 && umin < 1e-3 && umax > 1 - 1e-3, "rng uniform range", "[%g, %g]",
          umin, umax);
    int nonfinite = 0;
    for (int i = 0; i < n; i++) {
        double x = od_rng_normal(&r);
        if (!isfinite(x)) nonfinite++;
        sum += x;
        sum2 += x * x;
    }
    double mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    check(fabs(mean) < 0.02 && fabs(sd - 1) < 0.02 && !nonfinite, "rng normal mean and std",
          "mean %g, std %g, %d not finite", mean, sd, nonfinite);

    int64_t idx[10];
    for (int i = 0; i < 10; i++)
        idx[i] = i;
    od_rng_seed(&r, 7);
    od_rng_shuffle(&r, idx, 10);
    static const int64_t want[10] = {8, 3, 9, 0, 7, 2, 1, 6, 5, 4};
    check(memcmp(idx, want, sizeof want) == 0, "rng shuffle reference", "%lld %lld %lld ...",
          (long long)idx[0], (long long)idx[1], (long long)idx[2]);
    int64_t big[1000];
    for (int i = 0; i < 1000; i++)
        big[i] = i;
    od_rng_shuffle(&r, big, 1000);
    bool seen[1000] = {false};
    ok = true;
    int fixed = 0;
    for (int i = 0; i < 1000; i++) {
        if (big[i] < 0 || big[i] >= 1000 || seen[big[i]])
            ok = false;
        else
            seen[big[i]] = true;
        if (big[i] == i) fixed++;
    }
    check(ok && fixed < 10, "rng shuffle permutes", "%d fixed points", fixed);
    od_rng_shuffle(&r, big, 0);
    od_rng_shuffle(&r, big, 1);
    check(od_rng_below(&r, 0) == 0 && od_rng_below(&r, 1) == 0, "rng below 0 and 1", "nonzero");
    int counts[3] = {0};
    ok = true;
    for (int i = 0; i < 30000; i++) {
        uint64_t v = od_rng_below(&r, 3);
        if (v >= 3)
            ok = false;
        else
            counts[v]++;
    }
    check(ok && abs(counts[0] - 10000) < 400 && abs(counts[2] - 10000) < 400, "rng below 3",
          "%d %d %d", counts[0], counts[1], counts[2]);
}

/* ---- shards (od_image_options.shard: distill on several ranks) ----------------------------------
 * Every format keeps samples [L*s/S, L*(s+1)/S) of the training set, L = min(limit, n), with all
 * its labels; the test set whole. */

static bool shard_ok(const od_dataset *d, int64_t n, int s, int S, int64_t limit) {
    int64_t L = limit > 0 && limit < n ? limit : n, lo = L * s / S, hi = L * (s + 1) / S;
    return d->n == n && d->first == lo && d->held == hi - lo && d->labels;
}

static void check_shards(void) {
    od_error err = {0};
    od_data_split s;
    od_image_options io;
    /* CIFAR-10: 9 records over three batches, the middle one gzipped */
    const char *dir = fresh_dir("cifarshard");
    write_cifar(in_dir(dir, "data_batch_1.bin"), 3, 1, 0, 10, false);
    write_cifar(in_dir(dir, "data_batch_2.bin.gz"), 4, 1, 3, 10, true);
    write_cifar(in_dir(dir, "data_batch_3.bin"), 2, 1, 7, 10, false);
    write_cifar(in_dir(dir, "test_batch.bin"), 2, 1, 100, 10, false);
    int64_t limits[] = {0, 7, 50};
    for (int S = 2; S <= 3; S++)
        for (int li = 0; li < 3; li++)
            for (int sh = 0; sh < S; sh++) {
                od_image_options_default(&io);
                io.shard = sh, io.shards = S, io.shard_limit = limits[li];
                od_status st = od_data_load_ex(dir, &io, &s, &err);
                bool ok = !st && shard_ok(&s.train, 9, sh, S, limits[li]) && s.test.held == 0 &&
                          cifar_ok(&s.test, 2, 100, 10, 10);
                for (int64_t i = 0; ok && i < 9; i++) ok = s.train.labels[i] == i % 10;
                for (int64_t i = 0; ok && i < s.train.held; i++)
                    for (int j = 0; j < 3072; j += 31)
                        if (s.train.u8[i * 3072 + j] != pix(s.train.first + i, j)) ok = false;
                check(ok, "cifar shard", "shard %d of %d, limit %lld: %s", sh, S, (long long)limits[li],
                      st ? err.message : "wrong contents");
                od_data_split_clear(&s);
            }
    /* .npz of uint8 (stored and deflated) and of float32, shard 1 of 2 and 2 of 3 */
    float xf[24], xt[12];
    for (int i = 0; i < 24; i++) xf[i] = 0.5f * (float)i;
    for (int i = 0; i < 12; i++) xt[i] = -1.0f - (float)i;
    int64_t dx[3] = {4, 2, 3}, dxt[3] = {2, 2, 3};
    for (int kind = 0; kind < 3; kind++) {
        zentry e[4];
        int n = npz_std(e, kind == 1 ? 8 : 0);
        if (kind == 2) { /* float32 x_train and x_test */
            for (int k = 0; k < 3; k += 2) {
                free(e[k].data.p);
                memset(&e[k].data, 0, sizeof e[k].data);
            }
            make_npy(&e[0].data, "<f4", 3, dx, xf, sizeof xf);
            make_npy(&e[2].data, "<f4", 3, dxt, xt, sizeof xt);
        }
        const char *path = write_zip("shard.npz", e, n, false, 0);
        free_entries(e, n);
        for (int S = 2; S <= 3; S++) {
            od_image_options_default(&io);
            io.shard = 1, io.shards = S;
            od_status st = od_data_load_ex(path, &io, &s, &err);
            bool ok = !st && shard_ok(&s.train, 4, 1, S, 0) && s.test.held == 0 && s.test.n == 2;
            for (int i = 0; ok && i < 4; i++) ok = s.train.labels[i] == npz_y_train[i];
            for (int64_t i = 0; ok && i < s.train.held * 6; i++)
                ok = kind < 2 ? s.train.u8[i] == (uint8_t)((s.train.first * 6 + i) * 9)
                              : s.train.f32[i] == xf[s.train.first * 6 + i];
            /* float data: the largest value of all samples, not only the shard's */
            if (ok && kind == 2) ok = s.train.largest == 11.5f && s.test.f32[0] == -1.0f;
            check(ok, kind == 0 ? "npz uint8 shard" : kind == 1 ? "npz deflated shard" : "npz float32 shard",
                  "of %d: %s", S, st ? err.message : "wrong contents");
            od_data_split_clear(&s);
        }
    }
}

int main(void) {
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 1;
    }
    check_rng();
    check_input_shapes();
    check_preprocess();
    check_idx();
    check_cifar();
    check_npz();
    check_npz_numpy();
    check_shards();
    check_fashion_mnist();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmp);
    if (n_skip)
        printf("dataset: %d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
    else
        printf("dataset: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

/* .npy read and write, and tensor files chosen by extension.
 *
 * Writes tensors of every supported dtype and several shapes with od_npy_write into a fresh
 * folder and reads them back; reads hand-made files in format versions 1, 2 and 3; reads a
 * file numpy itself wrote, when python3 with numpy is installed (skipped otherwise); and checks
 * that Fortran order, truncation, bad magic, unknown dtypes and unknown extensions fail. */
#include "od_onnx.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_check.h"
#include "test_files.h"

static char tmp[] = "/tmp/od_npy.XXXXXX";

static bool same_tensor(const od_tensor *a, const od_tensor *b) {
    if (a->dtype != b->dtype || a->rank != b->rank || a->nbytes != b->nbytes) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return false;
    return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

/* A tensor whose bytes are a simple pattern, distinct per element. */
static od_tensor *pattern(od_dtype dtype, int rank, const int64_t *dims) {
    od_error err = {0};
    od_tensor *t = od_tensor_create("t", dtype, rank, dims, &err);
    if (!t) return NULL;
    uint8_t *p = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        p[i] = (uint8_t)(i * 7 + 3);
    if (dtype == OD_DTYPE_BOOL)
        for (size_t i = 0; i < t->nbytes; i++)
            p[i] &= 1;
    return t;
}

static void check_write_read(void) {
    static const od_dtype dtypes[] = {OD_DTYPE_FLOAT, OD_DTYPE_DOUBLE, OD_DTYPE_INT64,
                                      OD_DTYPE_INT32, OD_DTYPE_UINT8,  OD_DTYPE_BOOL};
    static const struct {
        int rank;
        int64_t dims[OD_MAX_RANK];
    } shapes[] = {{0, {0}},    {1, {5}},          {2, {2, 3}},
                  {2, {2, 0}}, {4, {1, 3, 2, 2}}, {OD_MAX_RANK, {1, 2, 1, 2, 1, 2, 1, 2}}};
    for (size_t d = 0; d < sizeof dtypes / sizeof *dtypes; d++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            char name[128];
            snprintf(name, sizeof name, "%s rank %d #%zu", od_dtype_name(dtypes[d]), shapes[s].rank,
                     s);
            od_tensor *t = pattern(dtypes[d], shapes[s].rank, shapes[s].dims);
            od_error err = {0};
            od_tensor back = {0};
            const char *path = in_dir(tmp, "t.npy");
            od_status st = od_npy_write(path, t, &err);
            if (!st) st = od_npy_read(path, &back, &err);
            check(!st && same_tensor(t, &back), name, "%s", st ? err.message : "differs");
            /* numpy pads the header so that the data starts on a 64-byte boundary */
            struct stat sb;
            if (!st && stat(path, &sb) == 0)
                check((size_t)sb.st_size - t->nbytes == 64 || (size_t)sb.st_size - t->nbytes == 128,
                      name, "header of %zu bytes", (size_t)sb.st_size - t->nbytes);
            od_tensor_clear(&back);
            od_tensor_destroy(t);
        }

    /* unsupported dtype on write */
    int64_t dims[1] = {3};
    od_tensor *t = pattern(OD_DTYPE_FLOAT16, 1, dims);
    od_error err = {0};
    od_status st = od_npy_write(in_dir(tmp, "h.npy"), t, &err);
    check(st == OD_STATUS_UNSUPPORTED, "float16 write refused", "%s", od_status_name(st));
    od_tensor_destroy(t);
}

/* Header bytes as numpy writes them: magic, version, length, dict, space padding, newline. */
static size_t make_npy(uint8_t *buf, int major, const char *dict, const void *data, size_t n) {
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t hlen = ((pre + dl + 1 + 63) / 64) * 64 - pre;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (uint8_t)major;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        buf[8 + i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hlen - dl - 1);
    buf[pre + hlen - 1] = '\n';
    memcpy(buf + pre + hlen, data, n);
    return pre + hlen + n;
}

static void check_read_variants(void) {
    uint8_t buf[1024];
    const float f6[6] = {0, 1, 2, 3, 4, 5};
    const int64_t i3[3] = {-1, 0, 1LL << 40};
    od_tensor t = {0};
    od_error err = {0};
    od_status st;

    struct {
        const char *name;
        int major;
        const char *dict;
        const void *data;
        size_t n;
        od_dtype dtype;
        int rank;
        int64_t d0, d1;
    } ok[] = {
        {"v1 float (2, 3)", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f6,
         24, OD_DTYPE_FLOAT, 2, 2, 3},
        {"v2 int64 (3,)", 2, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", i3, 24,
         OD_DTYPE_INT64, 1, 3, 0},
        {"v3 scalar", 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f6, 4,
         OD_DTYPE_FLOAT, 0, 0, 0},
        {"key order, double quotes", 1,
         "{\"shape\": (6,), \"fortran_order\": False, \"descr\": \"<f4\"}", f6, 24, OD_DTYPE_FLOAT,
         1, 6, 0},
        {"uint8 |u1", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", f6, 4,
         OD_DTYPE_UINT8, 1, 4, 0},
        {"empty (0, 3)", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 3), }", f6, 0,
         OD_DTYPE_DOUBLE, 2, 0, 3},
        {"python 2 long dims", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2L, 1L), }",
         f6, 8, OD_DTYPE_INT32, 2, 2, 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        size_t n = make_npy(buf, ok[i].major, ok[i].dict, ok[i].data, ok[i].n);
        const char *path = in_dir(tmp, "v.npy");
        write_file(path, buf, n);
        st = od_npy_read(path, &t, &err);
        bool good = !st && t.dtype == ok[i].dtype && t.rank == ok[i].rank && t.nbytes == ok[i].n &&
                    (ok[i].n == 0 || memcmp(t.data, ok[i].data, ok[i].n) == 0);
        if (good && ok[i].rank >= 1) good = t.dims[0] == ok[i].d0;
        if (good && ok[i].rank >= 2) good = t.dims[1] == ok[i].d1;
        check(good, ok[i].name, "%s", st ? err.message : "wrong contents");
        od_tensor_clear(&t);
    }

    struct {
        const char *name;
        const char *dict;
        size_t n; /* data bytes present */
        od_status want;
        const char *text;
    } bad[] = {
        {"fortran order", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24,
         OD_STATUS_UNSUPPORTED, "Fortran"},
        {"truncated data", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20,
         OD_STATUS_INVALID_MODEL, "truncated"},
        {"trailing data", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 20,
         OD_STATUS_INVALID_MODEL, "trailing"},
        {"big-endian", "{'descr': '>f4', 'fortran_order': False, 'shape': (6,), }", 24,
         OD_STATUS_UNSUPPORTED, ">f4"},
        {"complex", "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", 24,
         OD_STATUS_UNSUPPORTED, "<c8"},
        {"no shape", "{'descr': '<f4', 'fortran_order': False, }", 24, OD_STATUS_INVALID_MODEL,
         "malformed"},
        {"negative dim", "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 24,
         OD_STATUS_INVALID_MODEL, "malformed"},
        {"rank 9", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4,
         OD_STATUS_UNSUPPORTED, "dims"},
        {"not a dict", "['descr', '<f4']", 4, OD_STATUS_INVALID_MODEL, "malformed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t n = make_npy(buf, 1, bad[i].dict, f6, bad[i].n);
        const char *path = in_dir(tmp, "bad.npy");
        write_file(path, buf, n);
        st = od_npy_read(path, &t, &err);
        check(st == bad[i].want && strstr(err.message, bad[i].text) &&
                  strncmp(err.message, path, strlen(path)) == 0,
              bad[i].name, "got %s \"%s\"", od_status_name(st), err.message);
        od_tensor_clear(&t);
    }

    /* every truncation of a valid file fails cleanly */
    size_t n =
        make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f6, 24);
    int clean = 0;
    for (size_t len = 0; len < n; len++) {
        const char *path = in_dir(tmp, "cut.npy");
        write_file(path, buf, len);
        st = od_npy_read(path, &t, &err);
        clean += st != OD_STATUS_OK;
        od_tensor_clear(&t);
    }
    check(clean == (int)n, "every truncation fails", "%d of %zu", clean, n);

    static const char zip[] = "PK\x03\x04 not numpy";
    write_file(in_dir(tmp, "magic.npy"), zip, sizeof zip - 1);
    st = od_npy_read(in_dir(tmp, "magic.npy"), &t, &err);
    check(st == OD_STATUS_INVALID_MODEL && strstr(err.message, "not a .npy"), "bad magic", "%s",
          err.message);
    st = od_npy_read(in_dir(tmp, "missing.npy"), &t, &err);
    check(st == OD_STATUS_IO, "missing file", "%s", err.message);
}

static void check_by_extension(void) {
    int64_t dims[2] = {2, 2};
    od_tensor *t = pattern(OD_DTYPE_FLOAT, 2, dims);
    od_error err = {0};
    od_tensor back = {0};
    const char *names[] = {"x.npy", "x.pb", "X.NPY"};
    for (int i = 0; i < 3; i++) {
        od_status st = od_tensor_file_write(in_dir(tmp, names[i]), t, &err);
        if (!st) st = od_tensor_file_read(in_dir(tmp, names[i]), &back, &err);
        check(!st && same_tensor(t, &back), names[i], "%s", st ? err.message : "differs");
        od_tensor_clear(&back);
    }
    od_status st = od_tensor_file_write(in_dir(tmp, "x.txt"), t, &err);
    check(st && strstr(err.message, "x.txt"), "write .txt refused", "%s", err.message);
    st = od_tensor_file_read(in_dir(tmp, "x.npy.gz"), &back, &err);
    check(st && strstr(err.message, "x.npy.gz"), "read .gz refused", "%s", err.message);
    st = od_tensor_file_read(in_dir(tmp, "noext"), &back, &err);
    check(st && strstr(err.message, "noext"), "no extension refused", "%s", err.message);
    od_tensor_destroy(t);
}

/* od_npy_write goes through od_file_write_atomic: nothing but finished files in the folder,
 * and a failed write (missing folder) leaves nothing. */
static void check_atomic(void) {
    int64_t dims[1] = {4};
    od_tensor *t = pattern(OD_DTYPE_INT32, 1, dims);
    od_error err = {0};
    od_status st = od_npy_write(in_dir(tmp, "nodir/x.npy"), t, &err);
    check(st == OD_STATUS_IO, "write into a missing folder", "%s", err.message);
    od_tensor_destroy(t);
    DIR *d = opendir(tmp);
    int stray = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        stray += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    check(stray == 0, "no temporary files left", "%d", stray);
}

/* A file written by numpy itself, when python3 has numpy. */
static void check_numpy(void) {
    const char *path = in_dir(tmp, "np.npy");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import numpy as np; "
             "np.save('%s', np.arange(24, dtype='<f4').reshape(2, 3, 4) * 0.5)\" 2>/dev/null",
             path);
    int rc = system(cmd);
    if (rc != 0 || access(path, R_OK) != 0) {
        printf("skip: python3 with numpy not available, numpy-written file not checked\n");
        return;
    }
    od_tensor t = {0};
    od_error err = {0};
    od_status st = od_npy_read(path, &t, &err);
    bool good = !st && t.dtype == OD_DTYPE_FLOAT && t.rank == 3 && t.dims[0] == 2 &&
                t.dims[1] == 3 && t.dims[2] == 4;
    for (int i = 0; good && i < 24; i++)
        good = ((float *)t.data)[i] == 0.5f * (float)i;
    check(good, "numpy-written file", "%s", st ? err.message : "wrong contents");
    od_tensor_clear(&t);

    /* and numpy reads ours */
    int64_t dims[2] = {2, 3};
    od_tensor *ours = pattern(OD_DTYPE_INT64, 2, dims);
    int64_t *v = ours->data;
    for (int i = 0; i < 6; i++)
        v[i] = (int64_t)i * 1000000007LL - 3;
    st = od_npy_write(in_dir(tmp, "ours.npy"), ours, &err);
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import numpy as np, sys; a = np.load('%s'); "
             "sys.exit(0 if a.dtype == np.int64 and a.shape == (2, 3) and "
             "(a.ravel() == np.arange(6) * 1000000007 - 3).all() else 1)\"",
             in_dir(tmp, "ours.npy"));
    check(!st && system(cmd) == 0, "numpy reads our file", "%s", st ? err.message : "mismatch");
    od_tensor_destroy(ours);
}

static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    check_write_read();
    check_read_variants();
    check_by_extension();
    check_atomic();
    check_numpy();
    rm_dir(tmp);
    printf("npy: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

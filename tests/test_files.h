/* File helpers of the C suites that write their own fixtures (test_dataset.c, test_npy.c,
 * test_roundtrip.c). */
#ifndef OD_TEST_FILES_H
#define OD_TEST_FILES_H

#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

/* Writes len bytes to path. Unlinks first: rewriting a file in place makes ext4 flush it on
 * close (its replace-via-truncate heuristic), which turns thousands of rewrites into seconds. */
static inline bool write_file(const char *path, const void *data, size_t len) {
    unlink(path);
    FILE *fp = fopen(path, "wb");
    if (!fp) return false;
    bool ok = fwrite(data, 1, len, fp) == len;
    return fclose(fp) == 0 && ok;
}

/* "dir/name", in one of 8 buffers used in turn (a call may hold 8 such paths at once). */
static inline const char *in_dir(const char *dir, const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

#endif

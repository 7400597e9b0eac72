/* Shared by the fuzz targets: error checks, temporary files, and a main() for the builds
 * without libFuzzer that replay fixed inputs (tests/fuzz/regressions/). */
#ifndef OD_FUZZ_COMMON_H
#define OD_FUZZ_COMMON_H

#include "od_onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failing call must leave a one-line message with a known status: the CLI prints it as is. */
static inline void fuzz_check_error(const od_error *err) {
    static int verbose = -1; /* OD_FUZZ_VERBOSE=1: print every error (to see what a seed reaches) */
    if (verbose < 0) verbose = getenv("OD_FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "error: %s\n", err->message);
    if (err->status <= OD_STATUS_OK || err->status > OD_STATUS_INVALID_ARGUMENT || !err->message[0] ||
        strchr(err->message, '\n')) {
        fprintf(stderr, "bad error record: status %d, message \"%s\"\n", (int)err->status, err->message);
        abort();
    }
}

/* A private folder for the files a target writes (on /dev/shm when there is one), made once,
 * removed at exit. */
static char fuzz_dir_path[64];
static void fuzz_dir_remove(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
    if (fuzz_dir_path[0] && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", fuzz_dir_path);
}
static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/od-fuzz-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* Writes data to fuzz_dir()/name (replacing it); returns the path in buf. */
static inline const char *fuzz_write(const char *name, const void *data, size_t len, char *buf, size_t size) {
    snprintf(buf, size, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(buf, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(buf);
        abort();
    }
    return buf;
}

#ifdef OD_FUZZ_STANDALONE
/* Runs the target once on each file named, as libFuzzer would on a crash input. */
#define FUZZ_STANDALONE_MAIN                                                                       \
    int main(int argc, char **argv) {                                                              \
        for (int i = 1; i < argc; i++) {                                                           \
            od_bytes b = {0};                                                                      \
            od_error err = {0};                                                                    \
            if (od_file_read(argv[i], &b, &err)) {                                                 \
                fprintf(stderr, "%s\n", err.message);                                              \
                return 2;                                                                          \
            }                                                                                      \
            LLVMFuzzerTestOneInput(b.data ? b.data : (const uint8_t *)"", b.len);                  \
            od_bytes_free(&b);                                                                     \
            printf("ok %s\n", argv[i]);                                                            \
        }                                                                                          \
        return 0;                                                                                  \
    }
#else
#define FUZZ_STANDALONE_MAIN
#endif

#endif

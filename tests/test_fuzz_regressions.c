/* Replays every input in tests/fuzz/regressions/{model,tensor,dataset,spec,image}/ through the fuzz
 * target of that name (tests/fuzz/fuzz_*.c, the same entry point libFuzzer calls), each in a
 * child process: an input passes when the child exits 0 (no crash, no abort, no sanitizer
 * report under `make asan`). Inputs that once crashed the tool live there, one file each. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The five targets in one binary: each gets its own name for the libFuzzer entry point and
 * keeps its helpers static. */
#define LLVMFuzzerTestOneInput fuzz_model_one
#include "fuzz/fuzz_model.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tensor_one
int fuzz_tensor_one(const uint8_t *data, size_t size);
#include "fuzz/fuzz_tensor.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_dataset_one
int fuzz_dataset_one(const uint8_t *data, size_t size);
#include "fuzz/fuzz_dataset.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_spec_one
int fuzz_spec_one(const uint8_t *data, size_t size);
#include "fuzz/fuzz_spec.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_image_one
int fuzz_image_one(const uint8_t *data, size_t size);
#include "fuzz/fuzz_image.c"
#undef LLVMFuzzerTestOneInput

static int pass, fail;

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void replay(const char *target, int (*fn)(const uint8_t *, size_t)) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", target);
    DIR *d = opendir(dir);
    if (!d) return; /* no regressions for this target yet */
    char *files[4096];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 4096;)
        if (e->d_name[0] != '.') files[n++] = strdup(e->d_name);
    closedir(d);
    qsort(files, (size_t)n, sizeof *files, name_cmp);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        od_bytes b = {0};
        od_error err = {0};
        if (od_file_read(path, &b, &err)) {
            printf("FAIL %s: %s\n", path, err.message);
            fail++;
            free(files[i]);
            continue;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            fn(b.data ? b.data : (const uint8_t *)"", b.len);
            fflush(NULL);
            _exit(0); /* skips the atexit cleanup of the parent's temp folder */
        }
        int status = 0;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            printf("FAIL %s: %s %d\n", path, pid > 0 && WIFSIGNALED(status) ? "killed by signal" : "exit status",
                   pid > 0 && WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            fail++;
        } else {
            pass++;
        }
        od_bytes_free(&b);
        free(files[i]);
    }
}

int main(void) {
    fuzz_dir(); /* made by the parent, so that the children share it and it is removed once */
    replay("model", fuzz_model_one);
    replay("tensor", fuzz_tensor_one);
    replay("dataset", fuzz_dataset_one);
    replay("spec", fuzz_spec_one);
    replay("image", fuzz_image_one);
    printf("fuzz_regressions: %d passed, %d failed\n", pass, fail);
    return fail != 0;
}

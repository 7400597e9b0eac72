/* libFuzzer target: one tensor file from arbitrary bytes, read both ways the CLI reads
 * `run --input` files: as an ONNX TensorProto (.pb, from memory) and as a NumPy .npy (through a
 * file). What reads is converted to float, written back and read again.
 *
 *   make fuzz SECONDS=60     (builds build-fuzz/fuzz_tensor, runs it on a seeded corpus) */
#include "fuzz_common.h"

static void tensor_use(const od_tensor *t) {
    od_error err = {0};
    float *f = od_tensor_to_float(t, &err);
    if (!f) fuzz_check_error(&err);
    free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    od_error err = {0};
    od_tensor t;
    char path[128], back[128];
    /* TensorProto */
    if (od_tensor_decode(data, size, &t, &err) == OD_STATUS_OK) {
        tensor_use(&t);
        od_bytes enc = {0};
        if (od_tensor_encode(&t, &enc, &err) == OD_STATUS_OK) {
            od_tensor u;
            if (od_tensor_decode(enc.data, enc.len, &u, &err)) {
                fuzz_check_error(&err);
                abort(); /* what we encode must decode */
            }
            od_tensor_clear(&u);
            od_bytes_free(&enc);
        } else {
            fuzz_check_error(&err);
        }
        od_tensor_clear(&t);
    } else {
        fuzz_check_error(&err);
    }
    /* .npy */
    fuzz_write("t.npy", data, size, path, sizeof path);
    if (od_npy_read(path, &t, &err) == OD_STATUS_OK) {
        tensor_use(&t);
        snprintf(back, sizeof back, "%s/back.npy", fuzz_dir());
        if (od_npy_write(back, &t, &err) == OD_STATUS_OK) {
            od_tensor u;
            if (od_npy_read(back, &u, &err)) {
                fuzz_check_error(&err);
                abort(); /* what we write must read */
            }
            if (u.nbytes != t.nbytes || (t.nbytes && memcmp(u.data, t.data, t.nbytes))) abort();
            od_tensor_clear(&u);
        } else {
            fuzz_check_error(&err);
        }
        od_tensor_clear(&t);
    } else {
        fuzz_check_error(&err);
    }
    return 0;
}

FUZZ_STANDALONE_MAIN

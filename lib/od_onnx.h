/* onnx-distill's detailed API: ONNX files in and out, and (through the headers included below)
 * the workflow on top of the runtime. The short front door is onnx_distill.h.
 *
 *   od_error err = {0};
 *   od_model *teacher = NULL;
 *   if (od_model_load("models/cnn.onnx", &teacher, &err)) { puts(err.message); return 1; }
 *   ... plan, shrink, distill (see od_runtime.h and below) ...
 *   od_model_save(teacher, "out/copy.onnx", &err);   // atomic: temp file, then rename
 *   od_model_destroy(teacher);
 */
#ifndef OD_ONNX_H
#define OD_ONNX_H

#include "od_runtime.h"
#include "onnx_distill.h" /* the front door; OD_VERSION */

/* ---- files ------------------------------------------------------------------ */

/* Reads a whole regular file, or standard input for "-" (at most OD_STDIN_MAX bytes). Devices,
 * FIFOs and other non-regular files are refused: /dev/zero would never end. */
#define OD_STDIN_MAX ((size_t)2 << 30) /* protobuf's own limit on a message */
od_status od_file_read(const char *path, od_bytes *out, od_error *err);

/* Outputs (lib/output.c), one rule for every command. A regular file is written to a uniquely
 * named temporary beside it, then renamed over it: never a half-written file (through a
 * symlink, the file it names is replaced and the symlink kept). An existing character device or
 * FIFO (/dev/null, /dev/stdout) is written through, never renamed over; any other non-regular
 * target is refused. */
od_status od_file_write_atomic(const char *path, const void *data, size_t len, od_error *err);
/* Refuses, before any work, outputs that would destroy an input or each other: an empty path, a
 * folder, an output that is (through symlinks or "..") the same file as an input or an earlier
 * output, or one inside an input folder (a data set). Devices and FIFOs pass. NULLs are skipped. */
od_status od_outputs_check(const char *const *outputs, int n_outputs, const char *const *inputs,
                           int n_inputs, od_error *err);
/* True when path exists and is a character device or FIFO (written through). */
bool od_output_is_stream(const char *path);
/* An advisory lock (flock on OUTPUT.lock) held by a run that writes output for a while: a
 * second run on the same output is refused while the first holds it. *out is NULL, and the call
 * succeeds, for a device output. Release unlinks the lock file. */
typedef struct od_output_lock od_output_lock;
od_status od_output_lock_acquire(const char *output, od_output_lock **out, od_error *err);
void od_output_lock_release(od_output_lock *l);
void od_bytes_free(od_bytes *b);

/* ---- ONNX models (protobuf-c lives only behind these) ----------------------- */

/* The default-domain opsets ONNX defines, as the schema this build reads (ONNX 1.12):
 * onnx.defs.onnx_opset_version(). Models stamped outside 1..this are refused on load. */
#define OD_ONNX_OPSET_MAX 17
/* ONNX Runtime guarantees default-domain opsets from 7 on (and has no kernels for some older
 * op versions, Relu-1 among them): shrink and distill refuse to build a student below it. */
#define OD_ORT_OPSET_MIN 7

/* Decodes a ModelProto. base_dir resolves external data (NULL: external data is an error). */
od_status od_model_decode(const void *data, size_t len, const char *base_dir, od_model **out,
                          od_error *err);
/* Reads, decodes and checks (od_graph_check) a model file. Errors are prefixed with the path. */
od_status od_model_load(const char *path, od_model **out, od_error *err);
od_status od_model_encode(const od_model *m, od_bytes *out, od_error *err);
od_status od_model_save(const od_model *m, const char *path, od_error *err);

/* ONNX TensorProto files (.pb), as ONNX's test data stores them. */
od_status od_tensor_decode(const void *data, size_t len, od_tensor *out, od_error *err);
od_status od_tensor_encode(const od_tensor *t, od_bytes *out, od_error *err);

/* NumPy .npy files (little-endian, C order; float32, float64, int64, int32, uint8, bool). */
od_status od_npy_read(const char *path, od_tensor *out, od_error *err);
od_status od_npy_write(const char *path, const od_tensor *t, od_error *err);
/* Reads .npy or .pb by extension; writes likewise. */
od_status od_tensor_file_read(const char *path, od_tensor *out, od_error *err);
od_status od_tensor_file_write(const char *path, const od_tensor *t, od_error *err);

#include "od_dataset.h" /* datasets: IDX, CIFAR, NPZ */
#include "od_shrink.h"  /* the student builder */
#include "od_distill.h" /* distillation and evaluation */
#include "od_passes.h"  /* graph passes, weight storage, provenance */
#include "od_report.h"  /* reports, latency measurement, per-class evaluation */

#endif

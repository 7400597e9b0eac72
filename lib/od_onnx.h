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

od_status od_file_read(const char *path, od_bytes *out, od_error *err);
/* Writes to a temporary file beside path, then renames: never a half-written file. */
od_status od_file_write_atomic(const char *path, const void *data, size_t len, od_error *err);
void od_bytes_free(od_bytes *b);

/* ---- ONNX models (protobuf-c lives only behind these) ----------------------- */

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

/* onnx-distill: a small ONNX student from a big teacher, from C.
 *
 * The front door: twenty calls over an opaque model handle. The example below is compiled and
 * run by tests/t_install.sh against an installed copy (built with
 * `cc example.c $(pkg-config --cflags --libs onnx-distill)`):
 *
 *     #include <onnx_distill.h>
 *     #include <stdio.h>
 *
 *     int main(void) {
 *         od_model *teacher = od_open("models/cnn.onnx");
 *         if (!teacher) return fprintf(stderr, "%s\n", od_last_error()), 1;
 *         od_describe(teacher, stdout);
 *
 *         // half the channels; trained on the teacher's noisy logits (1 epoch, 2000 samples)
 *         od_model *student = od_make_student(teacher, 0.5, 1.0);
 *         if (!student || od_train_student(teacher, student, "fashion-mnist", 1, 2000) ||
 *             od_compress(student, "f16") || od_write(student, "student.onnx"))
 *             return fprintf(stderr, "%s\n", od_last_error()), 1;
 *
 *         float image[28 * 28] = {0}, logits[10];
 *         if (od_predict(student, image, 1, logits, 10)) return 1;
 *         double acc = 0;
 *         od_test_accuracy(student, "fashion-mnist", 1000, &acc);
 *         printf("student: %lld params, %.3f ms at batch 1, test accuracy %.1f%%\n",
 *                (long long)od_param_count(student), od_bench_ms(student, 1, 1),
 *                100 * acc);
 *         od_close(student);
 *         od_close(teacher);
 *         return 0;
 *     }
 *
 * Conventions: calls that can fail return 0 on success and non-zero (an od_status code) on
 * failure, or NULL for a handle; od_last_error() then says what failed, naming the file, node
 * and op. Models are not shared between threads while a call runs.
 *
 * Everything else (plans, training, passes, datasets, reports) is in the detailed headers:
 * od_runtime.h, od_train.h, od_onnx.h, od_shrink.h, od_distill.h, od_passes.h, od_report.h,
 * od_dataset.h. There od_model is a plain struct holding the graph; here it is opaque.
 */
#ifndef ONNX_DISTILL_H
#define ONNX_DISTILL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OD_VERSION "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct od_model od_model;

/* The library's version (OD_VERSION of the build), and the message of this thread's last
 * failed call ("" when none failed). */
const char *od_version(void);
const char *od_last_error(void);

/* ---- load, save ------------------------------------------------------------------------- */

/* Reads and checks an ONNX file. NULL on failure. */
od_model *od_open(const char *path);
/* Writes atomically (temporary file, then rename): never a half-written file. */
int od_write(const od_model *m, const char *path);
void od_close(od_model *m); /* NULL: nothing */

/* ---- inspect ---------------------------------------------------------------------------- */

int64_t od_param_count(const od_model *m); /* elements of float initializers; -1 on failure */
int64_t od_mac_count(const od_model *m);   /* multiply-accumulates per sample; -1 on failure */
int od_input_count(const od_model *m);     /* graph inputs that are not initializers */
int od_output_count(const od_model *m);
const char *od_input_name(const od_model *m, int i); /* NULL when i is out of range */
const char *od_output_name(const od_model *m, int i);
/* Dims of input i (a symbolic dim such as the batch is -1); returns the rank, -1 on failure. */
int od_input_shape(const od_model *m, int i, int64_t dims[8]);
/* Opsets, producer, inputs and outputs, node count, params and MACs, as `inspect` prints. */
int od_describe(const od_model *m, FILE *f);

/* ---- shrink, distill, optimize ---------------------------------------------------------- */

/* A student of the teacher's own graph: width in (0, 1] of every layer's channels (rounded to
 * multiples of 8), depth in (0, 1] of its removable blocks; initialised from the teacher. */
od_model *od_make_student(const od_model *teacher, double width, double depth);
/* Trains student in place on the teacher's noisy logits (the paper's L2 loss, sigma 0.1,
 * alpha 0.5) over a labelled dataset (IDX folder, CIFAR folder, .npz or "fashion-mnist"),
 * then readies it to ship (BatchNorm folded, provenance in its metadata). max_samples > 0 uses
 * only that many training and test samples. */
int od_train_student(const od_model *teacher, od_model *student, const char *data, int epochs,
                     int64_t max_samples);
/* The optimize passes (constants folded, BatchNorm folded, Dropout/Identity dropped, ...) and
 * weight storage: "f32", "f16" or "int8". */
int od_compress(od_model *m, const char *weights);

/* ---- run, measure, report --------------------------------------------------------------- */

/* Runs the model's first input and output as float32: input holds batch samples, output gets
 * up to output_count values (fewer is an error). Plans are built per call: for many runs, use
 * od_plan_create (od_runtime.h). */
int od_predict(const od_model *m, const float *input, int64_t batch, float *output,
               size_t output_count);
/* Median latency in milliseconds of one run at this batch and thread count; -1 on failure. */
double od_bench_ms(const od_model *m, int64_t batch, int threads);
/* Top-1 accuracy on a dataset's test split (its first max_samples if > 0), preprocessed as
 * the model's metadata says. */
int od_test_accuracy(const od_model *m, const char *data, int64_t max_samples, double *accuracy);
/* Teacher and student side by side (size, params, MACs, latency and, when data is given,
 * accuracy and agreement on up to max_samples test samples) written to path: .json, .md or
 * .html. */
int od_write_report(const od_model *teacher, const od_model *student, const char *data,
                    int64_t max_samples, const char *path);

#ifdef __cplusplus
}
#endif

#endif

/* Graph passes before writing a model, weight storage, and provenance metadata.
 *
 *   od_pass_stats stats;
 *   if (od_optimize(m, &stats, &err) ||                      // fold BN, drop Dropout, ...
 *       od_store_weights(m, OD_WEIGHTS_F16, &err) ||          // float16 weights + Cast
 *       od_model_set_meta(m, "onnx_distill.weights", "f16", &err) ||
 *       od_model_save(m, "student.onnx", &err))
 *       fprintf(stderr, "%s\n", err.message);
 *
 * Every pass keeps the graph's input and output names, their element types and the dynamic
 * batch dim, and leaves a checked graph (od_graph_check). On an error other than out of memory
 * the model is left unchanged.
 */
#ifndef OD_PASSES_H
#define OD_PASSES_H

#include "od_runtime.h"

typedef struct od_pass_stats {
    int folded_consts; /* nodes evaluated now: their outputs became initializers */
    int bn_folded;     /* BatchNormalization nodes folded into a Conv, ConvTranspose or Gemm */
    int dropped;       /* Dropout and Identity nodes removed */
    int dead_nodes;    /* nodes whose outputs nothing used */
    int unused_inits;  /* initializers nothing used (including BN parameters folded away) */
    int shared_inits;  /* initializers equal to another (dtype, dims, bytes), now sharing it */
    int unshared_inits; /* od_canonicalize: copies made of an initializer read by several nodes */
    int nodes_before, nodes_after, inits_before, inits_after;
} od_pass_stats;

/* All passes, in this order:
 *  1. initializers listed among the graph inputs (old exporters) stop being inputs, so that they
 *     count as constants, as in ONNX Runtime's advice (ir_version becomes at least 4);
 *  2. constant folding: nodes whose outputs are known without the graph inputs (shape chains
 *     included: Shape -> Gather -> Concat -> Reshape, but never a value that depends on the
 *     batch) become initializers, where that does not grow the file (a small output, or no
 *     bigger than the node's inputs); weight decompression (Cast from float16, DequantizeLinear
 *     on an initializer) is kept on purpose;
 *  3. Dropout (inference form) and Identity removed, consumers rewired; when the removed node
 *     wrote a graph output, its producer writes that name instead (or the node stays, when its
 *     input is itself a graph input, initializer or output);
 *  4. BatchNormalization folded into the Conv, ConvTranspose or Gemm before it, when that node
 *     feeds nothing else and the BN's parameters are constant;
 *  5. dead nodes and unused initializers removed;
 *  6. identical initializers (same dtype, dims and bytes) shared;
 *  7. doc strings stripped (model, graph, nodes);
 *  8. compact encoding: attributes at their ONNX default (Conv strides 1, pads 0, group 1, Gemm
 *     alpha 1, ...) and value_info (shape annotations runtimes infer again) dropped; the values
 *     between nodes renamed Op_k (e.g. Conv_3) where that is shorter. Graph input, output and
 *     initializer names, node names and the names of stored weights (od_store_weights) stay.
 * Running it twice gives the same model as running it once.
 * stats may be NULL. */
od_status od_optimize(od_model *m, od_pass_stats *stats, od_error *err);

/* The graph as the student builder wants it, whatever the exporter wrote: passes 1, 2, 3 and 5
 * above (initializers off the inputs, constants folded, Identity and Dropout gone, dead nodes
 * removed), then every initializer read by several nodes given one copy per reader, except a
 * weight of rank >= 2 tied between layers (the weight of several Conv, Gemm or MatMul, or a
 * Gather table), which stays one tensor. BatchNormalization is not folded. The function
 * computed is unchanged. stats may be NULL. */
od_status od_canonicalize(od_model *m, od_pass_stats *stats, od_error *err);

typedef enum od_weight_format { OD_WEIGHTS_F32, OD_WEIGHTS_F16, OD_WEIGHTS_INT8 } od_weight_format;

/* "f32", "f16", "int8" */
const char *od_weight_format_name(od_weight_format fmt);
/* Accepts the names above (and "float32", "float16"); INVALID_ARGUMENT otherwise. */
od_status od_weight_format_parse(const char *s, od_weight_format *out, od_error *err);

typedef struct od_weight_stats {
    int tensors;         /* weight initializers converted */
    size_t bytes_before; /* their float32 bytes */
    size_t bytes_after;  /* their stored bytes, scales included */
    int64_t opset_before, opset_after;
} od_weight_stats;

/* Stores the weights of Conv, ConvTranspose, Gemm (B) and MatMul (second input) initializers in
 * fmt; activations stay float and the value names stay (the weight's name becomes the output of
 * the new node):
 *  F32:  nothing to do;
 *  F16:  a float16 initializer followed by Cast(to = FLOAT);
 *  INT8: per-output-channel symmetric int8 (scale = max|w| / 127 per channel, no zero point)
 *        followed by DequantizeLinear (axis = the output-channel dim: 0 for Conv and Gemm with
 *        transB, 1 for ConvTranspose, the last for MatMul and Gemm without transB). Needs opset
 *        13: a lower default-domain opset is raised, converting the nodes whose meaning would
 *        change (Squeeze, Unsqueeze, ReduceSum, Split axes/split attributes to inputs; Dropout
 *        ratio and Clip min/max to inputs; Softmax, LogSoftmax, Hardmax when their axis is the
 *        last one). Any other change of meaning (an op not known to keep it, a Softmax over a
 *        non-last axis) is refused naming the node, before anything is modified.
 * Only float32 initializers used as such weights convert; one used by several nodes converts
 * once. stats may be NULL. */
od_status od_store_weights(od_model *m, od_weight_format fmt, od_error *err);
od_status od_store_weights_ex(od_model *m, od_weight_format fmt, od_weight_stats *stats,
                              od_error *err);

/* Static int8 quantization: calibration samples for od_quantize_static. */
typedef struct od_calibration {
    const float *x;      /* n samples of the model's one input, preprocessed, sample_size each */
    int64_t n, sample_size;
    double percentile;   /* each range keeps this share of the values seen: 100 min/max */
    int threads;
} od_calibration;

typedef struct od_quant_stats {
    od_weight_stats weights; /* int8 weights and int32 biases */
    int activations;         /* values given a QuantizeLinear -> DequantizeLinear pair */
    int nodes;               /* nodes that run on int8 activations (Conv, Gemm, MatMul, Add...) */
} od_quant_stats;

/* Rewrites m as a QDQ model (as ONNX Runtime's static quantizer writes them): weights as INT8
 * above; around every node quantized execution runs on int8 (od_node_qs8_kind: Conv, Gemm,
 * MatMul with constant weights, Add, GlobalAveragePool), each float activation it reads or
 * writes (a Relu after it: that one's output) gets QuantizeLinear -> DequantizeLinear
 * with int8 asymmetric parameters from the range it takes on the calibration samples (the float
 * model run over them; percentile < 100 clips the tails), and nodes that pass int8 values through
 * (MaxPool, Flatten, Reshape) keep their input's parameters. The bias of such a node becomes
 * int32 with scale input scale x weight scale. Names of graph inputs and outputs stay. */
od_status od_quantize_static(od_model *m, const od_calibration *cal, od_quant_stats *stats,
                             od_error *err);

/* Bytes of the model's float32 initializers (the raw parameter bytes). */
size_t od_model_float_param_bytes(const od_model *m);

/* ---- provenance (metadata_props) ------------------------------------------------ */

/* Sets key to value, replacing an existing entry of that key (order otherwise kept). */
od_status od_model_set_meta(od_model *m, const char *key, const char *value, od_error *err);
/* Copies src's entries whose key starts with prefix ("" for all) into dst (replacing). */
od_status od_model_copy_meta(od_model *dst, const od_model *src, const char *prefix, od_error *err);
/* SHA-256 of a file as 64 lower-case hex digits (and a NUL). */
od_status od_file_sha256(const char *path, char hex_out[65], od_error *err);
/* SHA-256 of bytes in memory. */
void od_sha256_hex(const void *data, size_t len, char hex_out[65]);

#endif

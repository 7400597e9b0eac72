/* onnx-distill runtime: the graph IR, shape inference and execution plans.
 *
 * Knows nothing of protobuf; lib/ decodes ONNX files into these structs.
 *
 *   od_error err = {0};
 *   od_model *m;  ... decoded by od_model_load() in lib/onnx_distill.h ...
 *   od_plan *plan;
 *   if (od_plan_create(&m->graph, &(od_plan_options){.batch = 1, .threads = 1}, &plan, &err))
 *       fprintf(stderr, "%s\n", err.message);
 *   memcpy(od_plan_input(plan, 0)->data, image, od_plan_input(plan, 0)->nbytes);
 *   od_plan_run(plan, &err);
 *   const float *logits = od_plan_output(plan, 0)->data;
 *   od_plan_destroy(plan);
 */
#ifndef OD_RUNTIME_H
#define OD_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OD_MAX_RANK 8

/* ---- status and errors ------------------------------------------------- */

typedef enum od_status {
    OD_STATUS_OK = 0,
    OD_STATUS_INVALID_MODEL,    /* the file or graph breaks ONNX's rules */
    OD_STATUS_UNSUPPORTED,      /* valid ONNX that we do not implement */
    OD_STATUS_SHAPE,            /* shapes that do not fit together */
    OD_STATUS_OUT_OF_MEMORY,
    OD_STATUS_IO,
    OD_STATUS_BACKEND,          /* XNNPACK or the thread pool failed */
    OD_STATUS_INVALID_ARGUMENT, /* a caller's value out of range */
} od_status;

typedef struct od_error {
    od_status status;
    char message[1024];
} od_error;

const char *od_status_name(od_status status);

/* Fills err (may be NULL) and returns status, so that `return od_error_set(...)` reads well. */
od_status od_error_set(od_error *err, od_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends a context such as `file.onnx: ` to an error already set. */
void od_error_prefix(od_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Seconds on the monotonic clock, for timing. */
double od_seconds(void);

/* ---- element types (ONNX TensorProto.DataType numbering) --------------- */

#define OD_DTYPE_LIST(X)                                                                           \
    X(UNDEFINED, 0, 0) X(FLOAT, 1, 4) X(UINT8, 2, 1) X(INT8, 3, 1) X(UINT16, 4, 2) X(INT16, 5, 2) \
    X(INT32, 6, 4) X(INT64, 7, 8) X(STRING, 8, 0) X(BOOL, 9, 1) X(FLOAT16, 10, 2)                \
    X(DOUBLE, 11, 8) X(UINT32, 12, 4) X(UINT64, 13, 8) X(COMPLEX64, 14, 8)                      \
    X(COMPLEX128, 15, 16) X(BFLOAT16, 16, 2)

typedef enum od_dtype {
#define OD_X(name, code, size) OD_DTYPE_##name = code,
    OD_DTYPE_LIST(OD_X)
#undef OD_X
        OD_DTYPE_COUNT
} od_dtype;

const char *od_dtype_name(od_dtype dtype); /* "float", "int64", ... as ONNX spells them */
size_t od_dtype_size(od_dtype dtype);      /* bytes per element; 0 for STRING and unknown */
bool od_dtype_valid(int code);

/* ---- tensors --------------------------------------------------------------- */

typedef struct od_bytes {
    size_t len;
    uint8_t *data;
} od_bytes;

/* A tensor with data: an initializer, a Constant's value, an attribute, a test input. */
typedef struct od_tensor {
    char *name;
    od_dtype dtype;
    int rank;
    int64_t dims[OD_MAX_RANK];
    /* Element data in row-major order, little-endian; od_bytes[count] for STRING. */
    void *data;
    size_t nbytes;
} od_tensor;

int64_t od_dims_count(int rank, const int64_t *dims); /* product; -1 on overflow or negative */
od_tensor *od_tensor_create(const char *name, od_dtype dtype, int rank, const int64_t *dims,
                            od_error *err); /* zero-filled */
od_status od_tensor_copy(od_tensor *dst, const od_tensor *src, od_error *err); /* deep */
void od_tensor_clear(od_tensor *t);   /* frees contents, keeps the struct */
void od_tensor_destroy(od_tensor *t); /* frees contents and the struct */
int64_t od_tensor_count(const od_tensor *t);
/* float view: converts FLOAT16/BFLOAT16/DOUBLE (and integer types) to a new float array. */
float *od_tensor_to_float(const od_tensor *t, od_error *err);

/* ---- graph IR ------------------------------------------------------------- */

typedef enum od_attr_type {
    OD_ATTR_UNDEFINED = 0,
    OD_ATTR_FLOAT = 1,
    OD_ATTR_INT = 2,
    OD_ATTR_STRING = 3,
    OD_ATTR_TENSOR = 4,
    OD_ATTR_GRAPH = 5,
    OD_ATTR_FLOATS = 6,
    OD_ATTR_INTS = 7,
    OD_ATTR_STRINGS = 8,
    OD_ATTR_TENSORS = 9,
    OD_ATTR_GRAPHS = 10,
    OD_ATTR_SPARSE_TENSOR = 11,
    OD_ATTR_SPARSE_TENSORS = 12,
    OD_ATTR_TYPE_PROTO = 13,
    OD_ATTR_TYPE_PROTOS = 14,
} od_attr_type;

typedef struct od_attr {
    char *name;
    od_attr_type type;
    float f;
    int64_t i;
    od_bytes s;
    od_tensor *t;
    size_t count; /* elements of the list below that the type uses */
    float *floats;
    int64_t *ints;
    od_bytes *strings;
    od_tensor *tensors;
    /* GRAPH(S), SPARSE_TENSOR(S), TYPE_PROTO(S): kept as the serialized AttributeProto, so that
     * they round-trip; the interpreter runs no op that needs them. */
    od_bytes opaque;
    char *ref_attr_name; /* inside functions only; kept for round trip */
} od_attr;

/* A symbolic or fixed dim. value >= 0: fixed; value < 0: unknown, named by param if any. */
typedef struct od_dim {
    int64_t value;
    char *param;
} od_dim;

/* Every named tensor of a graph: graph input, initializer, node output. */
typedef struct od_value {
    char *name;
    od_dtype dtype; /* UNDEFINED when not declared */
    int rank;       /* -1 when the shape is not declared */
    od_dim dims[OD_MAX_RANK];
    bool has_type;  /* declared in inputs/outputs/value_info */
    bool is_sequence_or_map; /* non-tensor type: kept opaquely, not run */
    od_bytes opaque_type;    /* serialized TypeProto for non-tensor types */
    od_tensor *init; /* initializer data, owned; NULL otherwise */
    int producer;    /* index of the node writing it, -1 for inputs and initializers */
} od_value;

typedef struct od_node {
    char *name;
    char *op_type;
    char *domain; /* "" for the default domain */
    int n_inputs, n_outputs;
    int *inputs;  /* value indices; -1 for an omitted optional input */
    int *outputs; /* value indices; -1 for an omitted optional output */
    int n_attrs;
    od_attr *attrs;
    char *doc_string;
} od_node;

typedef struct od_graph {
    char *name;
    char *doc_string;
    int n_values, cap_values;
    od_value *values;
    int n_nodes, cap_nodes;
    od_node *nodes;
    int n_inputs, n_outputs;
    int *inputs, *outputs; /* value indices, in declaration order */
    int n_inits;
    int *inits;      /* value indices of initializers, in file order */
    int n_value_infos;
    int *value_infos; /* value indices that had a value_info entry, in file order */
    int64_t opset;   /* default-domain opset the graph is read under (set by decode) */
} od_graph;

typedef struct od_opset {
    char *domain;
    int64_t version;
} od_opset;

typedef struct od_kv {
    char *key, *value;
} od_kv;

typedef struct od_model {
    int64_t ir_version;
    int n_opsets;
    od_opset *opsets;
    char *producer_name, *producer_version, *domain, *doc_string;
    int64_t model_version;
    int n_meta;
    od_kv *meta;
    od_graph graph;
} od_model;

od_model *od_model_create(void);
void od_model_destroy(od_model *m);
void od_graph_clear(od_graph *g);
/* Index of the value named name, or -1. */
int od_graph_find_value(const od_graph *g, const char *name);
/* Index of the value named name, adding an undeclared one if absent; -1 when out of memory. */
int od_graph_intern_value(od_graph *g, const char *name);
/* Appends an undeclared value named name, which the caller knows is new (decode, with its own
 * index of names); -1 when out of memory. */
int od_graph_add_value(od_graph *g, const char *name);
/* Appends an empty node; returns its index or -1 when out of memory. */
int od_graph_add_node(od_graph *g);
/* Free an attribute's or a node's contents and zero it (graph editing: a dropped node). */
void od_attr_clear(od_attr *a);
void od_node_clear(od_node *n);
const od_attr *od_node_attr(const od_node *n, const char *name);
/* An INT attribute of n, or dflt when absent or of another type: the one reader of the runtime,
 * the passes and the student builder. */
int64_t od_attr_int(const od_node *n, const char *name, int64_t dflt);
int64_t od_model_opset(const od_model *m, const char *domain); /* 0 when not imported */
const char *od_model_meta(const od_model *m, const char *key);   /* NULL when absent */

/* Orders nodes topologically (stable), sets producers and checks the graph: every input
 * produced once, by an earlier node, a graph input or an initializer; no cycles; no
 * duplicate outputs. Errors name the node. */
od_status od_graph_check(od_graph *g, od_error *err);
/* How often each value is read: node input slots plus graph output entries (so a value read by
 * one node and nothing else counts 1). The caller frees; NULL when out of memory. */
int *od_graph_count_uses(const od_graph *g);

/* Prefix for errors about a node: `node "conv_3" (Conv): `. */
const char *od_node_label(const od_node *n, char *buf, size_t size);

/* ---- shape inference ------------------------------------------------------ */

/* An inferred value: fixed dims (for a given batch), and its data when the planner knows it. */
typedef struct od_shape_info {
    od_dtype dtype;
    int rank; /* -1 unknown */
    int64_t dims[OD_MAX_RANK];
    const od_tensor *constant; /* known data (initializer or folded), or NULL */
} od_shape_info;

typedef struct od_graph_shapes {
    int n_values;
    od_shape_info *info;   /* per value */
    od_tensor **folded;    /* per value: constants computed at inference time, owned */
    int64_t batch;
} od_graph_shapes;

/* Infers every value's shape for a batch size (graph inputs' symbolic first dim = batch;
 * other symbolic dims are an error). Constant shape subgraphs are folded. */
od_status od_graph_infer(const od_graph *g, int64_t batch, od_graph_shapes *out, od_error *err);
/* partial = true: carry on past unsupported ops and unknown shapes (their outputs take the
 * declared value_info or stay unknown, rank -1); returns OK with the first problem in err. */
od_status od_graph_infer_ex(const od_graph *g, int64_t batch, bool partial, od_graph_shapes *out,
                            od_error *err);
void od_graph_shapes_clear(od_graph_shapes *s);
/* An error naming the first node that carries an attribute its (supported) op does not define,
 * e.g. Conv's "pad" for "pads": it would run with the default and give another result.
 * od_graph_infer refuses these too; with partial = true it reports them as its first problem. */
od_status od_graph_check_attrs(const od_graph *g, od_error *err);
/* A float attribute of n, or the default its op's descriptor gives (0 when it gives none). */
float od_node_attr_float(const od_node *n, const char *name);
/* True when attribute a of n holds the default its op's descriptor gives (ints: every element). */
bool od_attr_is_default(const od_node *n, const od_attr *a);

/* The output-channel axis of n's input 1 when it is a weight of this rank (Conv 0, ConvTranspose
 * 1, Gemm 1 or 0 with transB, MatMul rank - 1), else -1: the op's descriptor says. */
int od_node_weight_axis(const od_node *n, int rank);

/* How an op treats the channels (dim 1, or the dim a consumer tracks) of its input 0: a fact
 * of the op's descriptor, or of a short table for ONNX ops the runtime does not run (shrink
 * follows those too). OD_CHANNELS_UNKNOWN: another domain, or an op nobody describes. */
typedef enum od_channel_role {
    OD_CHANNELS_UNKNOWN = 0,
    OD_CHANNELS_NONE,         /* output not made of input 0's elements (Shape, Constant, ...) */
    OD_CHANNELS_ELEMENTWISE,  /* outputs shaped as input 0, channels passed through */
    OD_CHANNELS_BROADCAST,    /* elementwise with numpy broadcasting over every input */
    OD_CHANNELS_PER_CHANNEL,  /* channels on axis 1 in, the same channels out (pools, BN) */
    OD_CHANNELS_NORMALIZES,   /* normalises over the axes from attribute axis (LayerNorm) */
    OD_CHANNELS_MIXES,        /* output channels are a weight's (Conv, Gemm, MatMul) */
    OD_CHANNELS_CONCATENATES, /* joins inputs along an axis (Concat) */
    OD_CHANNELS_REDUCES,      /* reduces over axes (Reduce*, ArgMax) */
    OD_CHANNELS_MOVES,        /* moves or selects elements: reshapes, slices, pads, resizes */
} od_channel_role;
od_channel_role od_node_channel_role(const od_node *n);
/* Inputs 1..k of n are per-channel vectors (BN's 4, InstanceNormalization's and
 * LayerNormalization's scale and bias, PRelu's slope): k, 0 for none. */
int od_node_channel_inputs(const od_node *n);

/* The first opset from which n's op means what it means at opset 13 (what `optimize --weights
 * int8` raises a model to): Relu 6, Softmax 13, ...; from the descriptor or, for ONNX ops the
 * runtime does not run, the facts-only table. 0: defined after 13, another domain or unknown. */
int od_node_stable_since(const od_node *n);
/* How quantized execution treats a node whose inputs have these shapes (the op's qs8 facts;
 * plan_qs8.c runs it, optimize's QDQ writer decides where QuantizeLinear/DequantizeLinear go):
 * COMPUTE: runs on int8 activations, each with its own scale and zero point (Conv, Gemm, MatMul
 * with a constant weight, Add, GlobalAveragePool); SAME: passes int8 values through, the output
 * keeping input 0's scale and zero point (MaxPool, Flatten, Reshape); NONE: float only. */
typedef enum od_qs8_kind { OD_QS8_NONE = 0, OD_QS8_COMPUTE, OD_QS8_SAME } od_qs8_kind;
od_qs8_kind od_node_qs8_kind(const od_node *n, const od_shape_info *const *in);

/* Multiply-accumulates of a node for the shapes given, whole batch (0 for ops that do none). */
int64_t od_node_macs(const od_graph *g, int node, const od_graph_shapes *s);

/* Op registry. */
bool od_op_supported(const char *domain, const char *op_type);
/* OD_STATUS_UNSUPPORTED when some node's op is not in the registry (another domain's, such as
 * com.microsoft.Attention, or an op this engine lacks), naming each such op once with its first
 * node: `unsupported op: com.microsoft.Attention (node "attn0")`. What a plan checks first. */
od_status od_graph_check_supported(const od_graph *g, od_error *err);
/* Names of the supported ops, NULL-terminated. */
const char *const *od_op_names(void);

/* ---- BatchNormalization folding ------------------------------------------ */

/* Folds an inference BatchNormalization, bn = {scale, B, mean, var} ([cout] each) and epsilon,
 * into the Conv (w: [cout, cin / group, k...]) or ConvTranspose (w: [cin, cout / group, k...])
 * before it: w and bias ([cout]) become the weights of that conv followed by the BN, computed
 * in double. One formula for the plans (which fold at plan time, as ONNX Runtime does at load)
 * and lib's optimize pass, so both give the same bits. */
/* Whether BatchNormalization node bn is the inference form that can be folded: five inputs, only
 * Y used, training_mode absent or 0, and (before opset 9) spatial not 0. */
bool od_bn_is_inference(const od_node *bn, int64_t opset);
void od_bn_fold_into_conv(float *w, float *bias, int w_rank, const int64_t *w_dims, int64_t group,
                          bool transpose, const float *const bn[4], float epsilon);

/* ---- execution plans ------------------------------------------------------ */

typedef struct od_plan od_plan;

typedef struct od_plan_options {
    int64_t batch;   /* the batch dim of every graph input; 0 means 1 */
    int threads;     /* 0 means 1 */
    bool profile;    /* time each step */
    bool no_fusion;  /* every node its own step: no activation, Add + Relu or x * HardSigmoid(x)
                        fusions (BatchNormalization is still folded into a Conv); for tests */
    bool no_qs8;     /* a QDQ model's DequantizeLinear -> op -> QuantizeLinear run as they are
                        written, in float, instead of as one int8 step; for tests */
} od_plan_options;

/* A graph input or output as the plan holds it: ONNX (NCHW) layout, row-major. A run leaves the
 * inputs as they were: write them once to run the same data again. */
typedef struct od_plan_io {
    const char *name;
    od_dtype dtype;
    int rank;
    int64_t dims[OD_MAX_RANK];
    void *data;
    size_t nbytes;
} od_plan_io;

od_status od_plan_create(const od_graph *g, const od_plan_options *opt, od_plan **out, od_error *err);
void od_plan_destroy(od_plan *p);
int od_plan_n_inputs(const od_plan *p);
int od_plan_n_outputs(const od_plan *p);
const od_plan_io *od_plan_input(const od_plan *p, int i);
const od_plan_io *od_plan_output(const od_plan *p, int i);
od_status od_plan_run(od_plan *p, od_error *err);
size_t od_plan_arena_bytes(const od_plan *p);

typedef struct od_step_profile {
    const char *node_name, *op_type;
    double seconds; /* total over all runs since the plan was made */
    int64_t runs;
    int64_t macs;
} od_step_profile;
/* Per-step timing when created with profile = true. */
int od_plan_profile(const od_plan *p, const od_step_profile **steps_out);

#endif

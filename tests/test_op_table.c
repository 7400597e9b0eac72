/* Every op in runtime/ops/ops.def has the descriptor fields the rest of the code relies on:
 * a shape rule and a forward, the first opset that defines it and the one from which it means
 * what it means at opset 13 (stable_since), its channel facts, its attribute table (which refuses
 * unknown attributes), and consistent training fields (a backward with its forward, trained
 * inputs and Relu fusion only with a backward). Then the attribute check itself, on a node. */
#include "op.h"
#include "test_check.h"

#include <string.h>

static void check_desc(const char *name) {
    const od_op_desc *op = od_op_find("", name);
    check(op != NULL, name, "not found by od_op_find");
    if (!op) return;
    check(strcmp(op->name, name) == 0, name, "descriptor named \"%s\"", op->name);
    check(op->infer != NULL, name, "no shape function (infer)");
    check(op->run != NULL, name, "no forward (run)");
    check(op->since_opset >= 1 && op->since_opset <= 21, name, "since_opset %d", op->since_opset);
    check(op->attrs != NULL, name, "no attribute table (OD_OP_FACTS)");
    for (int i = 0; op->attrs && op->attrs[i]; i++) {
        check(op->attrs[i][0] != '\0', name, "empty attribute name");
        for (int j = 0; j < i; j++)
            check(strcmp(op->attrs[i], op->attrs[j]) != 0, name, "attribute \"%s\" listed twice", op->attrs[i]);
    }
    bool trains = op->backward != NULL;
    check(!trains || op->forward_train, name, "a backward without forward_train");
    check(trains || !op->forward_train, name, "forward_train without a backward");
    check(trains || (!op->trained_inputs && !op->train_fuses_relu && !op->train_prepare), name,
          "training facts on an op without a backward");
    check(!op->train_destroy || op->train_prepare, name, "train_destroy without train_prepare");
    check(op->channel_role > OD_CHANNELS_UNKNOWN && op->channel_role <= OD_CHANNELS_MOVES, name,
          "no channel_role (how it treats the channels of input 0)");
    check(op->channel_inputs >= 0 && op->channel_inputs < 8, name, "channel_inputs %d", op->channel_inputs);
    check(op->since_opset > 13 ? op->stable_since == 0
                               : op->stable_since >= op->since_opset && op->stable_since <= 13,
          name, "stable_since %d with since_opset %d (every op ONNX defines by opset 13 needs one)",
          op->stable_since, op->since_opset);
    check(!op->channel_inputs || op->channel_role == OD_CHANNELS_ELEMENTWISE ||
              op->channel_role == OD_CHANNELS_PER_CHANNEL || op->channel_role == OD_CHANNELS_NORMALIZES,
          name, "channel_inputs on an op that does not keep its channels");
}

/* The per-sample fact decides micro-batching (plan_split.c): the ops it always holds for, and
 * ops that mix samples or move the batch axis. */
static void check_per_sample(void) {
    static const char *const always[] = {
        "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
        "BatchNormalization", "Relu", "PRelu", "Sigmoid", "HardSigmoid", "Clip", "Sign", "Add", "Div",
        "Pow", "Sum", "Mean", "Identity", "Dropout", "Reshape", "Cast", "MatMul", "Constant", "Shape",
        "DequantizeLinear", "Gemm", "Flatten", "Softmax", "LogSoftmax", NULL};
    static const char *const never[] = {"Transpose", "ReduceMean", "Gather", "Slice", "Concat", "Split",
                                        "Tile", "Squeeze", "Where", "Equal", "ArgMax", NULL};
    od_node node = {.name = "n", .op_type = "x"};
    for (int i = 0; always[i]; i++) {
        const od_op_desc *op = od_op_find("", always[i]);
        check(op && op->per_sample && op->per_sample(&node, 4), always[i], "not per-sample");
    }
    for (int i = 0; never[i]; i++) {
        const od_op_desc *op = od_op_find("", never[i]);
        check(op && !(op->per_sample && op->per_sample(&node, 4)), never[i], "per-sample");
    }
    od_attr a = {.name = "transA", .type = OD_ATTR_INT, .i = 1};
    node.n_attrs = 1, node.attrs = &a;
    const od_op_desc *gemm = od_op_find("", "Gemm");
    check(gemm && !gemm->per_sample(&node, 2), "Gemm transA", "per-sample");
    a.name = "axis", a.i = 0;
    const od_op_desc *softmax = od_op_find("", "Softmax");
    check(softmax && !softmax->per_sample(&node, 2), "Softmax axis 0", "per-sample");
}

/* The weight fact (quantize's per-channel axis, the plan's BN folding): output channels of
 * input 1 for a weight of the given rank; -1 for ops without one, or a rank that is no weight. */
static void check_weight_axis(void) {
    static const struct {
        const char *op;
        int rank, axis;
    } cases[] = {{"Conv", 4, 0}, {"Conv", 3, 0}, {"Conv", 2, -1}, {"ConvTranspose", 4, 1}, {"Gemm", 2, 1},
                 {"Gemm", 3, -1}, {"MatMul", 2, 1}, {"MatMul", 3, 2}, {"Add", 2, -1}, {"BatchNormalization", 1, -1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        od_node node = {.name = "n", .op_type = (char *)cases[i].op};
        int axis = od_node_weight_axis(&node, cases[i].rank);
        check(axis == cases[i].axis, cases[i].op, "weight axis %d at rank %d, want %d", axis, cases[i].rank,
              cases[i].axis);
    }
    od_attr a = {.name = "transB", .type = OD_ATTR_INT, .i = 1};
    od_node gemm = {.name = "n", .op_type = "Gemm", .n_attrs = 1, .attrs = &a};
    check(od_node_weight_axis(&gemm, 2) == 0, "Gemm transB", "weight axis %d, want 0", od_node_weight_axis(&gemm, 2));
}

/* The channel facts shrink follows (od_node_channel_role, od_node_channel_inputs): ops the
 * runtime runs read their descriptor, a few it does not run read the facts-only table; another
 * domain or an unknown op is OD_CHANNELS_UNKNOWN (shrink pins its inputs). */
static void check_channel_facts(void) {
    static const struct {
        const char *domain, *op;
        od_channel_role role;
        int inputs;
    } cases[] = {{"", "Relu", OD_CHANNELS_ELEMENTWISE, 0},
                 {"", "Softmax", OD_CHANNELS_ELEMENTWISE, 0},
                 {"", "PRelu", OD_CHANNELS_ELEMENTWISE, 1},
                 {"", "Add", OD_CHANNELS_BROADCAST, 0},
                 {"", "Where", OD_CHANNELS_BROADCAST, 0},
                 {"", "Equal", OD_CHANNELS_BROADCAST, 0},
                 {"", "Sum", OD_CHANNELS_BROADCAST, 0},
                 {"", "MaxPool", OD_CHANNELS_PER_CHANNEL, 0},
                 {"", "BatchNormalization", OD_CHANNELS_PER_CHANNEL, 4},
                 {"", "LayerNormalization", OD_CHANNELS_NORMALIZES, 2},
                 {"", "Conv", OD_CHANNELS_MIXES, 0},
                 {"ai.onnx", "MatMul", OD_CHANNELS_MIXES, 0},
                 {"", "Concat", OD_CHANNELS_CONCATENATES, 0},
                 {"", "ReduceL2", OD_CHANNELS_REDUCES, 0},
                 {"", "ArgMin", OD_CHANNELS_REDUCES, 0},
                 {"", "Reshape", OD_CHANNELS_MOVES, 0},
                 {"", "Shape", OD_CHANNELS_NONE, 0},
                 {"", "InstanceNormalization", OD_CHANNELS_PER_CHANNEL, 2},
                 {"", "LRN", OD_CHANNELS_PER_CHANNEL, 0},
                 {"", "Gelu", OD_CHANNELS_ELEMENTWISE, 0},
                 {"", "Resize", OD_CHANNELS_MOVES, 0},
                 {"", "BitShift", OD_CHANNELS_BROADCAST, 0},
                 {"com.microsoft", "Relu", OD_CHANNELS_UNKNOWN, 0},
                 {"com.microsoft", "InstanceNormalization", OD_CHANNELS_UNKNOWN, 0},
                 {"", "NoSuchOp", OD_CHANNELS_UNKNOWN, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        od_node node = {.name = "n", .op_type = (char *)cases[i].op, .domain = (char *)cases[i].domain};
        od_channel_role role = od_node_channel_role(&node);
        int inputs = od_node_channel_inputs(&node);
        check(role == cases[i].role && inputs == cases[i].inputs, cases[i].op,
              "channel role %d with %d channel inputs, want %d with %d", (int)role, inputs,
              (int)cases[i].role, cases[i].inputs);
    }
}

/* The opset fact quantize raises int8 models to opset 13 by (od_node_stable_since): ops whose
 * meaning changed on the way (Relu's consumed_inputs went at 6, Softmax's axis at 13), ops the
 * runtime does not run (the facts-only table), and 0 for ops after 13, other domains, unknowns. */
static void check_stable_since(void) {
    static const struct {
        const char *domain, *op;
        int since;
    } cases[] = {{"", "Relu", 6},        {"", "Softplus", 1},           {"", "Clip", 11},
                 {"", "Softmax", 13},    {"", "LogSoftmax", 13},        {"", "ReduceSum", 13},
                 {"", "ReduceMean", 1},  {"", "Squeeze", 13},           {"", "Split", 13},
                 {"", "Dropout", 12},    {"", "Equal", 7},              {"", "LessOrEqual", 12},
                 {"", "Sum", 8},         {"", "Add", 7},                {"", "ArgMin", 1},
                 {"", "MaxPool", 8},     {"", "BatchNormalization", 9}, {"ai.onnx", "Conv", 1},
                 {"", "HardSwish", 0},   {"", "LayerNormalization", 0}, {"", "And", 7},
                 {"", "Hardmax", 13},    {"", "Size", 1},               {"", "QuantizeLinear", 10},
                 {"", "Gelu", 0},        {"com.microsoft", "Relu", 0},  {"", "NoSuchOp", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        od_node node = {.name = "n", .op_type = (char *)cases[i].op, .domain = (char *)cases[i].domain};
        int since = od_node_stable_since(&node);
        check(since == cases[i].since, cases[i].op, "stable since opset %d, want %d", since, cases[i].since);
    }
}

/* auto_pad means the same in every op that has it (one reader, od_attr_auto_pad, and one rule,
 * od_auto_pad_window / od_pad_split): on a [1, 2, 7, 5] input with a 3x3 window and stride 2,
 * SAME_UPPER and SAME_LOWER give ceil(in / 2) (ConvTranspose: in * 2), VALID and NOTSET no
 * padding, and a value ONNX does not define is one error naming the node and the value. */
static void check_auto_pad(void) {
    static const char *const values[] = {"SAME_UPPER", "SAME_LOWER", "VALID", NULL, "SAME"};
    int64_t k3[2] = {3, 3}, s2[2] = {2, 2};
    int n_ops = 0;
    for (const char *const *name = od_op_names(); *name; name++) {
        const od_op_desc *op = od_op_find("", *name);
        bool has = false;
        for (int i = 0; op && op->attrs && op->attrs[i]; i++)
            has |= strncmp(op->attrs[i], "auto_pad", 8) == 0;
        if (!has) continue;
        n_ops++;
        bool transposed = strcmp(*name, "ConvTranspose") == 0;
        bool weights = transposed || strcmp(*name, "Conv") == 0;
        for (int v = 0; v < 5; v++) {
            const char *ap = values[v];
            od_attr attrs[3] = {{.name = "kernel_shape", .type = OD_ATTR_INTS, .ints = k3, .count = 2},
                                {.name = "strides", .type = OD_ATTR_INTS, .ints = s2, .count = 2},
                                {.name = "auto_pad", .type = OD_ATTR_STRING,
                                 .s = {ap ? strlen(ap) : 0, (uint8_t *)(ap ? ap : "")}}};
            int outputs[1] = {1};
            od_node node = {.name = "n_7", .op_type = (char *)*name, .domain = "", .n_inputs = weights ? 2 : 1,
                            .n_outputs = 1, .outputs = outputs, .n_attrs = ap ? 3 : 2, .attrs = attrs};
            od_shape_info x = {.dtype = OD_DTYPE_FLOAT, .rank = 4, .dims = {1, 2, 7, 5}};
            od_shape_info w = {.dtype = OD_DTYPE_FLOAT, .rank = 4, .dims = {2, 2, 3, 3}};
            const od_shape_info *in[2] = {&x, &w};
            od_shape_info out = {0};
            od_tensor *folded = NULL;
            od_error err = {0};
            od_infer_ctx c = {&node, 13, weights ? 2 : 1, 1, in, &out, &folded, &err};
            od_status st = op->infer(&c);
            const char *label = ap ? ap : "NOTSET";
            if (v == 4) {
                check(st == OD_STATUS_INVALID_MODEL && strstr(err.message, "n_7") &&
                          strstr(err.message, "auto_pad \"SAME\""),
                      *name, "auto_pad SAME: status %d, \"%s\"", st, err.message);
                continue;
            }
            bool same = v < 2;
            int64_t h = transposed ? (same ? 14 : 15) : same ? 4 : 3;
            int64_t wd = transposed ? (same ? 10 : 11) : same ? 3 : 2;
            check(st == OD_STATUS_OK && out.rank == 4 && out.dims[2] == h && out.dims[3] == wd, *name,
                  "auto_pad %s: status %d (%s), output [.., %lld, %lld], expected [.., %lld, %lld]", label, st,
                  err.message, (long long)out.dims[2], (long long)out.dims[3], (long long)h, (long long)wd);
        }
    }
    check(n_ops >= 4, "auto_pad", "only %d ops list auto_pad (Conv, ConvTranspose, MaxPool, AveragePool)", n_ops);
}

int main(void) {
    check_auto_pad();
    check_per_sample();
    check_stable_since();
    check_weight_axis();
    check_channel_facts();
    int n = 0;
    for (const char *const *name = od_op_names(); *name; name++, n++) check_desc(*name);
    check(n >= 80, "op table", "only %d ops", n);

    /* attribute check: Conv with "pad" for "pads" is refused naming node, op and attribute */
    const od_op_desc *conv = od_op_find("", "Conv");
    od_attr attrs[2] = {{.name = "strides", .type = OD_ATTR_INTS}, {.name = "pad", .type = OD_ATTR_INTS}};
    od_node node = {.name = "conv_3", .op_type = "Conv", .n_attrs = 2, .attrs = attrs};
    const char *bad = conv ? od_op_unknown_attr(conv, &node) : NULL;
    check(bad && strcmp(bad, "pad") == 0, "Conv pad", "unknown attribute found: %s", bad ? bad : "none");
    node.n_attrs = 1;
    check(conv && !od_op_unknown_attr(conv, &node), "Conv strides", "strides refused");
    attrs[1].name = "pads";
    node.n_attrs = 2;
    check(conv && !od_op_unknown_attr(conv, &node), "Conv pads", "pads refused");

    /* defaults come from the attribute table: BN's epsilon, Conv's group and strides */
    od_node bn = {.name = "bn", .op_type = "BatchNormalization"};
    check(od_node_attr_float(&bn, "epsilon") == 1e-5f, "BN epsilon default", "%g", od_node_attr_float(&bn, "epsilon"));
    int64_t ones[2] = {1, 1}, twos[2] = {2, 1};
    od_attr group = {.name = "group", .type = OD_ATTR_INT, .i = 1};
    od_attr strides = {.name = "strides", .type = OD_ATTR_INTS, .ints = ones, .count = 2};
    node.n_attrs = 0;
    check(od_attr_is_default(&node, &group) && od_attr_is_default(&node, &strides), "Conv defaults",
          "group 1 or strides [1, 1] not seen as defaults");
    strides.ints = twos;
    group.i = 2;
    check(!od_attr_is_default(&node, &group) && !od_attr_is_default(&node, &strides), "Conv non-defaults",
          "group 2 or strides [2, 1] seen as defaults");

    printf("op_table: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}

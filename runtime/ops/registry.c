/* The op table, generated from ops.def. */
#include "../op.h"

#include <stdlib.h>
#include <string.h>

#define OD_OP(name) extern const od_op_desc od_op_##name;
#include "ops.def"
#undef OD_OP

static const od_op_desc *const op_table[] = {
#define OD_OP(name) &od_op_##name,
#include "ops.def"
#undef OD_OP
};

static const char *const op_names[] = {
#define OD_OP(name) #name,
#include "ops.def"
#undef OD_OP
    NULL};

const od_op_desc *od_op_find(const char *domain, const char *op_type) {
    if (domain && *domain && strcmp(domain, "ai.onnx") != 0) return NULL;
    for (size_t i = 0; i < sizeof op_table / sizeof *op_table; i++)
        if (strcmp(op_table[i]->name, op_type) == 0) return op_table[i];
    return NULL;
}

bool od_op_supported(const char *domain, const char *op_type) {
    return od_op_find(domain, op_type) != NULL;
}

const char *const *od_op_names(void) { return op_names; }

/* "epsilon=1e-05" names epsilon; its default, when given, follows the '=' */
static bool attr_entry_is(const char *entry, const char *name) {
    size_t len = strcspn(entry, "=");
    return strncmp(entry, name, len) == 0 && name[len] == '\0';
}

const char *od_op_unknown_attr(const od_op_desc *op, const od_node *n) {
    for (int i = 0; i < n->n_attrs; i++) {
        const char *name = n->attrs[i].name ? n->attrs[i].name : "";
        bool known = false;
        for (const char *const *a = op->attrs; a && *a && !known; a++) known = attr_entry_is(*a, name);
        if (!known) return name;
    }
    return NULL;
}

const char *od_op_attr_default(const od_op_desc *op, const char *name) {
    for (const char *const *a = op && name ? op->attrs : NULL; a && *a; a++)
        if (attr_entry_is(*a, name)) return strchr(*a, '=') ? strchr(*a, '=') + 1 : NULL;
    return NULL;
}

float od_node_attr_float(const od_node *n, const char *name) {
    const char *d = od_op_attr_default(od_op_find(n->domain, n->op_type), name);
    return od_attr_float(n, name, d ? strtof(d, NULL) : 0.0f);
}

int od_node_weight_axis(const od_node *n, int rank) {
    const od_op_desc *op = od_op_find(n->domain, n->op_type);
    return op && op->weight_axis ? op->weight_axis(n, rank) : -1;
}

/* Facts of ONNX ops the runtime does not run: the channel facts shrink follows them by, and the
 * opset quantize may raise them from (stable_since, 0 for not known); role UNKNOWN: shrink pins
 * their channels. */
static const struct {
    const char *name;
    od_channel_role role;
    int channel_inputs, stable_since;
} facts_only[] = {
    {"Gelu", OD_CHANNELS_ELEMENTWISE, 0, 0},     {"Mish", OD_CHANNELS_ELEMENTWISE, 0, 0},
    {"Round", OD_CHANNELS_ELEMENTWISE, 0, 0},    {"Tan", OD_CHANNELS_ELEMENTWISE, 0, 0},
    {"IsNaN", OD_CHANNELS_ELEMENTWISE, 0, 0},    {"IsInf", OD_CHANNELS_ELEMENTWISE, 0, 0},
    {"Hardmax", OD_CHANNELS_ELEMENTWISE, 0, 13}, {"Shrink", OD_CHANNELS_ELEMENTWISE, 0, 0},
    {"CastLike", OD_CHANNELS_ELEMENTWISE, 0, 0}, {"And", OD_CHANNELS_BROADCAST, 0, 7},
    {"Or", OD_CHANNELS_BROADCAST, 0, 7},         {"Xor", OD_CHANNELS_BROADCAST, 0, 7},
    {"Mod", OD_CHANNELS_BROADCAST, 0, 0},        {"BitShift", OD_CHANNELS_BROADCAST, 0, 0},
    {"LpPool", OD_CHANNELS_PER_CHANNEL, 0, 0},   {"GlobalLpPool", OD_CHANNELS_PER_CHANNEL, 0, 0},
    {"LRN", OD_CHANNELS_PER_CHANNEL, 0, 0},      {"InstanceNormalization", OD_CHANNELS_PER_CHANNEL, 2, 0},
    {"Resize", OD_CHANNELS_MOVES, 0, 0},         {"Upsample", OD_CHANNELS_MOVES, 0, 0},
    {"Size", OD_CHANNELS_UNKNOWN, 0, 1},
};

static int facts_only_index(const od_node *n) {
    if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") != 0) return -1;
    for (size_t i = 0; i < sizeof facts_only / sizeof *facts_only; i++)
        if (strcmp(facts_only[i].name, n->op_type) == 0) return (int)i;
    return -1;
}

od_channel_role od_node_channel_role(const od_node *n) {
    const od_op_desc *op = od_op_find(n->domain, n->op_type);
    int i = op ? -1 : facts_only_index(n);
    return op ? op->channel_role : i >= 0 ? facts_only[i].role : OD_CHANNELS_UNKNOWN;
}

int od_node_channel_inputs(const od_node *n) {
    const od_op_desc *op = od_op_find(n->domain, n->op_type);
    int i = op ? -1 : facts_only_index(n);
    return op ? op->channel_inputs : i >= 0 ? facts_only[i].channel_inputs : 0;
}

int od_node_stable_since(const od_node *n) {
    const od_op_desc *op = od_op_find(n->domain, n->op_type);
    int i = op ? -1 : facts_only_index(n);
    return op ? op->stable_since : i >= 0 ? facts_only[i].stable_since : 0;
}

bool od_attr_is_default(const od_node *n, const od_attr *a) {
    const char *d = od_op_attr_default(od_op_find(n->domain, n->op_type), a->name);
    if (!d) return false;
    switch (a->type) {
    case OD_ATTR_INT: return d[0] != '[' && a->i == strtoll(d, NULL, 10);
    case OD_ATTR_FLOAT: return d[0] != '[' && a->f == strtof(d, NULL);
    case OD_ATTR_STRING: return a->s.len == strlen(d) && memcmp(a->s.data, d, a->s.len) == 0;
    case OD_ATTR_INTS: /* "[v]": every element v */
        if (d[0] != '[' || !a->count) return false;
        for (size_t j = 0; j < a->count; j++)
            if (a->ints[j] != strtoll(d + 1, NULL, 10)) return false;
        return true;
    default: return false;
    }
}

od_qs8_kind od_node_qs8_kind(const od_node *n, const od_shape_info *const *in) {
    const od_op_desc *op = od_op_find(n->domain, n->op_type);
    if (!op || !op->qs8 || (op->qs8_accepts && !op->qs8_accepts(n, in))) return OD_QS8_NONE;
    return op->qs8_same ? OD_QS8_SAME : OD_QS8_COMPUTE;
}

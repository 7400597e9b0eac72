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

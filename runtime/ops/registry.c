/* The op table, generated from ops.def. */
#include "../op.h"

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

const char *od_op_unknown_attr(const od_op_desc *op, const od_node *n) {
    for (int i = 0; i < n->n_attrs; i++) {
        const char *name = n->attrs[i].name;
        bool known = false;
        for (const char *const *a = op->attrs; a && *a && !known; a++) known = strcmp(*a, name) == 0;
        if (!known) return name ? name : "";
    }
    return NULL;
}

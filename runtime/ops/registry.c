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

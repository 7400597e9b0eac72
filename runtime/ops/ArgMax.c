/* ArgMax and ArgMin, opsets 1-17: axis (negative from 11), keepdims, select_last_index (12);
 * float, double, float16 and the integer types; int64 indices out. They share this file
 * because they differ only in the comparison. The first NaN wins, as in numpy. Backward: none.
 * Layout: plain. */
#include "strided.h"

#include <stdlib.h>
#include <string.h>

static od_status arg_infer(od_infer_ctx *c) {
    if (c->n_in < 1 || !c->in[0])
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node, "needs an input");
    const od_shape_info *x = c->in[0];
    if (!od_numeric(x->dtype) || x->dtype == OD_DTYPE_BOOL)
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "element type %s is not supported", od_dtype_name(x->dtype));
    int64_t a = od_attr_int(c->node, "axis", 0);
    int axis = od_axis(a, x->rank);
    if (axis < 0 || (a < 0 && c->opset < 11))
        return od_node_error(c->err, OD_STATUS_INVALID_MODEL, c->node,
                             "axis %lld is out of range for rank %d", (long long)a, x->rank);
    if (x->dims[axis] == 0)
        return od_node_error(c->err, OD_STATUS_SHAPE, c->node, "dim %d is empty", axis);
    bool keep = od_attr_int(c->node, "keepdims", 1) != 0;
    od_shape_info *o = &c->out[0];
    *o = (od_shape_info){.dtype = OD_DTYPE_INT64, .rank = 0};
    for (int d = 0; d < x->rank; d++)
        if (d != axis) o->dims[o->rank++] = x->dims[d];
        else if (keep) o->dims[o->rank++] = 1;
    return OD_STATUS_OK;
}

typedef struct arg_state {
    char *raw;    /* one input row along the axis, gathered */
    int64_t *row; /* the same as int64s (integer types) or doubles */
} arg_state;

static od_status arg_prepare(od_step *s, od_error *err) {
    const od_buf *x = s->in[0];
    size_t n = (size_t)x->dims[od_axis(od_attr_int(s->node, "axis", 0), x->rank)];
    arg_state *a = calloc(1, sizeof *a);
    s->state = a;
    if (a) {
        a->raw = malloc(n * od_dtype_size(x->dtype));
        a->row = malloc(n * 8);
    }
    if (!a || !a->raw || !a->row)
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    return OD_STATUS_OK;
}

static void arg_destroy(od_step *s) {
    arg_state *a = s->state;
    if (a) {
        free(a->raw);
        free(a->row);
    }
    free(a);
    s->state = NULL;
}

#define ARG_SCAN(T)                                                                                \
    do {                                                                                           \
        const T *v = (const T *)a->row;                                                            \
        for (int64_t k = 1; k < n && v[best] == v[best]; k++)                                      \
            if (v[k] != v[k] || (is_max ? v[k] > v[best] : v[k] < v[best]) ||                      \
                (last && v[k] == v[best]))                                                         \
                best = k;                                                                          \
    } while (0)

static od_status arg_run(od_step *s, od_error *err) {
    const arg_state *a = s->state;
    const od_buf *x = s->in[0];
    int axis = od_axis(od_attr_int(s->node, "axis", 0), x->rank);
    bool is_max = strcmp(s->op->name, "ArgMax") == 0;
    bool last = od_attr_int(s->node, "select_last_index", 0) != 0;
    bool exact = od_integral(x->dtype); /* int64 compares exactly as int64 */
    int64_t outer = od_dims_count(axis, x->dims), n = x->dims[axis];
    int64_t inner = od_dims_count(x->rank - axis - 1, x->dims + axis + 1), *y = (void *)s->out[0]->data;
    size_t e = od_dtype_size(x->dtype);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            const char *src = (const char *)x->data + (size_t)(o * n * inner + i) * e;
            for (int64_t k = 0; k < n; k++)
                memcpy(a->raw + k * e, src + (size_t)(k * inner) * e, e);
            int64_t best = 0;
            if (exact) {
                od_load_int64s(a->raw, x->dtype, n, a->row);
                ARG_SCAN(int64_t);
            } else {
                od_load_doubles(a->raw, x->dtype, n, (double *)a->row);
                ARG_SCAN(double);
            }
            y[o * inner + i] = best;
        }
    return OD_STATUS_OK;
}

#define ARG_DESC(NAME, SINCE, ...)                                                                 \
    OD_OP_FACTS(NAME, SINCE, __VA_ARGS__);                                                         \
    const od_op_desc od_op_##NAME = {OD_OP_NAME(NAME), .channel_role = OD_CHANNELS_REDUCES, .stable_since = 1, .infer = arg_infer, .prepare = arg_prepare, \
                                     .run = arg_run, .destroy = arg_destroy};
ARG_DESC(ArgMax, 1, "axis", "keepdims", "select_last_index")
ARG_DESC(ArgMin, 1, "axis", "keepdims", "select_last_index")

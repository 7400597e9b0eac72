/* Equal, Less, Greater (opsets 1-17) and LessOrEqual, GreaterOrEqual (12-17): numpy
 * broadcasting into bool. They share this file because they differ only in the comparison.
 * Any numeric type (float16 and bfloat16 compared as float; Equal also on bool). Opsets
 * before 7 broadcast the second input only onto the trailing dims (`broadcast`, `axis`): other
 * axes are refused. Backward: none (not differentiable). Layout: element-wise. */
#include "ew_common.h"
#include "strided.h"

#include <stdlib.h>

typedef enum cmp_kind { CMP_EQ, CMP_LT, CMP_GT, CMP_LE, CMP_GE } cmp_kind;

static cmp_kind kind_of(const char *name) {
    if (name[0] == 'E') return CMP_EQ;
    if (name[0] == 'L') return name[4] ? CMP_LE : CMP_LT;
    return name[7] ? CMP_GE : CMP_GT;
}

static od_status cmp_infer(od_infer_ctx *c) {
    od_status two = od_infer_two_alike(c);
    if (two) return two;
    od_dtype t = c->in[0]->dtype;
    if (!od_numeric(t))
        return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                             "element type %s is not supported", od_dtype_name(t));
    if (c->opset < 7 && od_attr_int(c->node, "broadcast", 0)) {
        const od_attr *axis = od_node_attr(c->node, "axis");
        if (axis && axis->i != c->in[0]->rank - c->in[1]->rank && axis->i != -c->in[1]->rank)
            return od_node_error(c->err, OD_STATUS_UNSUPPORTED, c->node,
                                 "legacy broadcasting at axis %lld is not supported",
                                 (long long)axis->i);
    }
    od_status st = od_infer_broadcast(c);
    if (st) return st;
    c->out[0].dtype = OD_DTYPE_BOOL;
    return OD_STATUS_OK;
}

#define CMP_LOOP(T, V)                                                                             \
    do {                                                                                           \
        const T *A = (const T *)j->in[0] + off[0], *B = (const T *)j->in[1] + off[1];                      \
        switch (j->kind) {                                                                         \
        case CMP_EQ: for (int64_t i = 0; i < n; i++) y[i] = V(A[i * sa]) == V(B[i * sb]); break;   \
        case CMP_LT: for (int64_t i = 0; i < n; i++) y[i] = V(A[i * sa]) < V(B[i * sb]); break;    \
        case CMP_GT: for (int64_t i = 0; i < n; i++) y[i] = V(A[i * sa]) > V(B[i * sb]); break;    \
        case CMP_LE: for (int64_t i = 0; i < n; i++) y[i] = V(A[i * sa]) <= V(B[i * sb]); break;   \
        case CMP_GE: for (int64_t i = 0; i < n; i++) y[i] = V(A[i * sa]) >= V(B[i * sb]); break;   \
        }                                                                                          \
    } while (0)
#define AS_IS(x) (x)

static void cmp_rows(void *ctx, int64_t first, int64_t end) {
    const ew_job *j = ctx;
    int r = j->b.rank;
    int64_t n = j->b.dims[r - 1], sa = j->b.strides[0][r - 1], sb = j->b.strides[1][r - 1];
    for (int64_t row = first; row < end; row++) {
        int64_t off[2];
        ew_bcast_offsets(&j->b, row, off);
        uint8_t *y = (uint8_t *)j->out + row * n;
        switch (j->t) {
        case OD_DTYPE_FLOAT: CMP_LOOP(float, AS_IS); break;
        case OD_DTYPE_DOUBLE: CMP_LOOP(double, AS_IS); break;
        case OD_DTYPE_INT8: CMP_LOOP(int8_t, AS_IS); break;
        case OD_DTYPE_UINT8: case OD_DTYPE_BOOL: CMP_LOOP(uint8_t, AS_IS); break;
        case OD_DTYPE_INT16: CMP_LOOP(int16_t, AS_IS); break;
        case OD_DTYPE_UINT16: CMP_LOOP(uint16_t, AS_IS); break;
        case OD_DTYPE_INT32: CMP_LOOP(int32_t, AS_IS); break;
        case OD_DTYPE_UINT32: CMP_LOOP(uint32_t, AS_IS); break;
        case OD_DTYPE_INT64: CMP_LOOP(int64_t, AS_IS); break;
        case OD_DTYPE_UINT64: CMP_LOOP(uint64_t, AS_IS); break;
        case OD_DTYPE_FLOAT16: CMP_LOOP(uint16_t, od_half_to_float); break;
        case OD_DTYPE_BFLOAT16: CMP_LOOP(uint16_t, od_bfloat_to_float); break;
        default: break;
        }
    }
}

static od_status cmp_prepare(od_step *s, od_error *err) {
    ew_job *j = NULL;
    od_status st = ew_job_create(s, 2, NULL, s->in[0]->dtype, &j, err);
    if (!st) j->kind = kind_of(s->op->name);
    return st;
}

static od_status cmp_run(od_step *s, od_error *err) { return ew_job_run(s, cmp_rows, err); }

#define CMP_DESC(NAME, SINCE, STABLE, ...)                                                               \
    OD_OP_FACTS(NAME, SINCE, __VA_ARGS__);                                                         \
    const od_op_desc od_op_##NAME = {OD_OP_NAME(NAME), .channel_role = OD_CHANNELS_BROADCAST, .stable_since = STABLE, .layout = OD_LAYOUT_POLICY_ELEMENTWISE,     \
                                     .infer = cmp_infer, .prepare = cmp_prepare, .run = cmp_run, .destroy = ew_job_destroy};
CMP_DESC(Equal, 1, 7, "axis", "broadcast")
CMP_DESC(Less, 1, 7, "axis", "broadcast")
CMP_DESC(Greater, 1, 7, "axis", "broadcast")
CMP_DESC(LessOrEqual, 12, 12, NULL)
CMP_DESC(GreaterOrEqual, 12, 12, NULL)

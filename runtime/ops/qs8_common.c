/* What the int8 (QS8) steps share (qs8_common.h). */
#include "qs8_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int8_t qs8_quantize(float v, float scale, int zp) {
    float r = nearbyintf(v / scale) + (float)zp;
    return r <= -128.0f ? -128 : r >= 127.0f ? 127 : (int8_t)r;
}

void od_qs8_out_range(const od_step *s, int8_t *lo, int8_t *hi) {
    const od_qs8_params *q = s->qs8;
    *lo = s->act_min > -INFINITY ? qs8_quantize(s->act_min, q->out_scale, q->out_zp) : -128;
    *hi = s->act_max < INFINITY ? qs8_quantize(s->act_max, q->out_scale, q->out_zp) : 127;
}

od_status od_qs8_conv_create(od_step *s, const od_qs8_conv_geom *c, const int8_t *kernel,
                             const float *bias, const int8_t *input, xnn_operator_t *out,
                             od_error *err) {
    const od_qs8_params *q = s->qs8;
    size_t M = c->cout;
    float *ks = malloc(sizeof(float) * M);
    int32_t *b = bias ? malloc(sizeof(int32_t) * M) : NULL;
    if (!ks || (bias && !b)) {
        free(ks);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    for (size_t m = 0; m < M; m++) {
        ks[m] = q->w_scale[q->n_w_scale == 1 ? 0 : m];
        if (!b) continue;
        /* the int32 the QDQ file stores, back from its dequantized float: exact */
        double r = nearbyint((double)bias[m] / (double)(q->in_scale[0] * ks[m]));
        b[m] = r > 2147483647.0 ? INT32_MAX : r < -2147483647.0 ? -INT32_MAX : (int32_t)r;
    }
    int8_t lo, hi;
    od_qs8_out_range(s, &lo, &hi);
    xnn_operator_t op = NULL;
    enum xnn_status r = xnn_create_convolution2d_nhwc_qc8(
        c->pad_top, c->pad_right, c->pad_bottom, c->pad_left, c->kh, c->kw, c->sh, c->sw, c->dh,
        c->dw, c->groups, c->cg, c->mg, c->cin, c->cout, (int8_t)q->in_zp[0], q->in_scale[0], ks,
        kernel, b, (int8_t)q->out_zp, q->out_scale, lo, hi, 0, &op);
    free(ks);
    free(b);
    od_status st = od_xnn_check(r, err, s->node, "create int8 convolution");
    if (st) return st;
    *out = op;
    r = xnn_setup_convolution2d_nhwc_qc8(op, c->batch, c->h, c->w, input, (int8_t *)s->out[0]->data,
                                         s->pool);
    return od_xnn_check(r, err, s->node, "setup int8 convolution");
}

od_status od_qs8_xnn_run(od_step *s, od_error *err) {
    return od_xnn_check(xnn_run_operator((xnn_operator_t)s->state, s->pool), err, s->node,
                        "run int8 operator");
}

void od_qs8_xnn_destroy(od_step *s) {
    if (s->state) xnn_delete_operator((xnn_operator_t)s->state);
    s->state = NULL;
}

od_status od_qs8_dense_prepare(od_step *s, int64_t N, int64_t K, int64_t M, bool km,
                               const float *bias, od_error *err) {
    int8_t *k = malloc((size_t)(K * M) + 1);
    if (!k) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    const int8_t *w = s->qs8->w;
    for (int64_t m = 0; m < M; m++)
        for (int64_t i = 0; i < K; i++) k[m * K + i] = km ? w[i * M + m] : w[m * K + i];
    /* the rows as a 1 x N image of K channels */
    od_qs8_conv_geom c = {.kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1,
                          .cg = (size_t)K, .mg = (size_t)M, .cin = (size_t)K, .cout = (size_t)M,
                          .batch = 1, .h = 1, .w = (size_t)N};
    xnn_operator_t op = NULL;
    od_status st = od_qs8_conv_create(s, &c, k, bias, (const int8_t *)s->in[0]->data, &op, err);
    s->state = op;
    free(k);
    return st;
}

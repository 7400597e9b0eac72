/* Losses on logits and the optimisers. Optimisers keep their own state (momentum, Adam
 * moments, step) and walk the trainer's parameter list; the ops know nothing of them. */
#include "train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float od_loss_l2(const float *out, const float *target, int64_t batch, int64_t classes, float *grad) {
    double loss = 0;
    float inv = 1.0f / (float)batch;
    for (int64_t i = 0; i < batch * classes; i++) {
        float d = out[i] - target[i];
        loss += (double)d * d;
        grad[i] = d * inv;
    }
    return (float)(loss / (2.0 * (double)batch));
}

/* softmax of x/T into p; returns log-sum-exp of x/T */
static double softmax_t(const float *x, int64_t n, float T, double *p) {
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < n; j++) m = fmax(m, x[j] / T);
    for (int64_t j = 0; j < n; j++) s += p[j] = exp(x[j] / T - m);
    for (int64_t j = 0; j < n; j++) p[j] /= s;
    return m + log(s);
}

float od_loss_kd(const float *out, const float *target, int64_t batch, int64_t classes, float T, float *grad) {
    double loss = 0, ps[1024], pt[1024];
    if (classes > 1024) return NAN;
    for (int64_t i = 0; i < batch; i++) {
        const float *o = out + i * classes, *t = target + i * classes;
        double lo = softmax_t(o, classes, T, ps), lt = softmax_t(t, classes, T, pt);
        for (int64_t j = 0; j < classes; j++) {
            if (pt[j] > 0) loss += pt[j] * ((t[j] / T - lt) - (o[j] / T - lo));
            /* d/do of T^2 KL = T (ps - pt), batch mean */
            grad[i * classes + j] = (float)(T * (ps[j] - pt[j]) / (double)batch);
        }
    }
    return (float)(loss * T * T / (double)batch);
}

float od_loss_ce_add(const float *out, const int32_t *labels, int64_t batch, int64_t classes, float weight,
                     float *grad) {
    double loss = 0, p[1024];
    if (classes > 1024) return NAN;
    for (int64_t i = 0; i < batch; i++) {
        double lse = softmax_t(out + i * classes, classes, 1.0f, p);
        int32_t y = labels[i];
        if (y < 0 || y >= classes) continue;
        loss += lse - out[i * classes + y];
        for (int64_t j = 0; j < classes; j++)
            grad[i * classes + j] += (float)(weight * (p[j] - (j == y)) / (double)batch);
    }
    return (float)(weight * loss / (double)batch);
}

struct od_optim {
    od_optim_options opt;
    int n;
    od_param *params;
    float *state; /* SGD: velocity; Adam: m then v, per parameter element */
    size_t state_count;
    int64_t step;
};

od_optim *od_optim_create(od_trainer *t, const od_optim_options *opt, od_error *err) {
    od_optim *o = calloc(1, sizeof *o);
    if (!o) {
        od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        return NULL;
    }
    o->opt = *opt;
    if (o->opt.beta1 == 0) o->opt.beta1 = 0.9f;
    if (o->opt.beta2 == 0) o->opt.beta2 = 0.999f;
    if (o->opt.eps == 0) o->opt.eps = 1e-8f;
    o->n = od_trainer_params(t, &o->params);
    size_t total = 0;
    for (int i = 0; i < o->n; i++) total += (size_t)o->params[i].count;
    o->state_count = opt->kind == OD_OPTIM_SGD ? total : 2 * total;
    o->state = calloc(o->state_count + 1, sizeof(float));
    if (!o->state) {
        free(o);
        od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for optimiser state");
        return NULL;
    }
    return o;
}

void od_optim_destroy(od_optim *o) {
    if (!o) return;
    free(o->state);
    free(o);
}

/* The inner loops are written for the vectoriser: one kind per loop, float math, no aliasing. */
static void sgd_update(float *restrict w, const float *restrict g, float *restrict v, int64_t n, float lr, float mom,
                       float wd, bool nesterov) {
    for (int64_t j = 0; j < n; j++) {
        float gj = g[j] + wd * w[j], vj = mom * v[j] + gj;
        v[j] = vj;
        w[j] -= lr * (nesterov ? gj + mom * vj : vj);
    }
}

static void adam_update(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, int64_t n,
                        float lr, float b1, float b2, float eps, float inv_bc1, float inv_sqrt_bc2, float l2, float decoupled) {
    float step = lr * inv_bc1;
    for (int64_t j = 0; j < n; j++) {
        float gj = g[j] + l2 * w[j];
        float mj = b1 * m[j] + (1 - b1) * gj, vj = b2 * v[j] + (1 - b2) * gj * gj;
        m[j] = mj;
        v[j] = vj;
        /* w - lr * mhat / (sqrt(vhat) + eps), vhat = v / bc2, mhat = m / bc1 */
        w[j] = w[j] * (1 - decoupled) - step * mj / (sqrtf(vj) * inv_sqrt_bc2 + eps);
    }
}

void od_optim_step(od_optim *o, float lr) {
    const od_optim_options *p = &o->opt;
    o->step++;
    float *st = o->state;
    size_t total = o->opt.kind == OD_OPTIM_SGD ? o->state_count : o->state_count / 2;
    double bc1 = 1 - pow(p->beta1, (double)o->step), bc2 = 1 - pow(p->beta2, (double)o->step);
    for (int i = 0; i < o->n; i++) {
        od_param *q = &o->params[i];
        float wd = q->decay ? p->weight_decay : 0.0f;
        if (p->kind == OD_OPTIM_SGD)
            sgd_update(q->data, q->grad, st, q->count, lr, p->momentum, wd, p->nesterov);
        else /* Adam: L2 added to the gradient; AdamW: decoupled decay */
            adam_update(q->data, q->grad, st, st + total, q->count, lr, p->beta1, p->beta2, p->eps, (float)(1 / bc1),
                        (float)(1 / sqrt(bc2)), p->kind == OD_OPTIM_ADAM ? wd : 0.0f, p->kind == OD_OPTIM_ADAMW ? lr * wd : 0.0f);
        st += q->count;
    }
}

size_t od_optim_state(od_optim *o, float **state_out, int64_t **step_out) {
    *state_out = o->state;
    *step_out = &o->step;
    return o->state_count;
}

/* Data-parallel steps over a communicator (see distill_dp.h). */
#include "distill_dp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OD_DP_DETERMINISTIC_SLICES 4

struct od_dp {
    od_comm *comm;
    bool deterministic;
    int slices, local, first; /* slices in all, this rank's, its first */
    int64_t batch, slice_batch;
    od_trainer **tr; /* one per local slice */
    int n_params;
    od_param *params; /* the first trainer's: the optimiser's */
    int64_t n_grad;   /* floats of parameter gradient */
    int n_bufs;
    float **buf; /* float initializers that are not parameters: BN running statistics */
    int64_t *buf_count, n_buf;
    float *snapshot; /* the buffers before a step: every slice starts from them */
    int64_t len;     /* one slice's vector: gradients, buffers, loss, stop */
    float *vec;      /* [slices (deterministic) or 1, len] */
};

int od_dp_slices(const od_comm *comm, bool deterministic) {
    int n = od_comm_size(comm);
    if (deterministic && OD_DP_DETERMINISTIC_SLICES % n == 0) return OD_DP_DETERMINISTIC_SLICES;
    return n;
}

od_status od_dp_create(od_graph *g, od_comm *comm, int64_t batch, bool deterministic, int threads,
                       uint64_t seed, od_dp **out, od_error *err) {
    *out = NULL;
    od_status st = OD_STATUS_OK;
    od_dp *dp = calloc(1, sizeof *dp);
    if (!dp) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    int n = od_comm_size(comm), r = od_comm_rank(comm);
    dp->comm = comm;
    dp->deterministic = deterministic;
    dp->slices = od_dp_slices(comm, deterministic);
    dp->local = dp->slices / n;
    dp->first = r * dp->local;
    dp->batch = batch;
    if (batch % dp->slices != 0) {
        st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                          "distill: --batch %lld does not split into %d equal slices (%d ranks%s): "
                          "use a multiple of %d",
                          (long long)batch, dp->slices, n, deterministic ? ", --deterministic" : "",
                          dp->slices);
        goto fail;
    }
    dp->slice_batch = batch / dp->slices;
    dp->tr = calloc((size_t)dp->local, sizeof *dp->tr);
    if (!dp->tr) goto oom;
    int useful = od_trainer_useful_threads(g, dp->slice_batch, threads);
    for (int j = 0; j < dp->local; j++)
        if ((st = od_trainer_create(g,
                                    &(od_trainer_options){.batch = dp->slice_batch,
                                                          .threads = useful,
                                                          .seed = seed + (uint64_t)(dp->first + j)},
                                    &dp->tr[j], err)))
            goto fail;
    dp->n_params = od_trainer_params(dp->tr[0], &dp->params);
    for (int i = 0; i < dp->n_params; i++)
        dp->n_grad += dp->params[i].count;
    /* buffers: the float initializers no parameter points at */
    dp->buf = calloc((size_t)g->n_inits + 1, sizeof *dp->buf);
    dp->buf_count = calloc((size_t)g->n_inits + 1, sizeof *dp->buf_count);
    if (!dp->buf || !dp->buf_count) goto oom;
    for (int i = 0; i < g->n_inits; i++) {
        od_tensor *t = g->values[g->inits[i]].init;
        if (!t || t->dtype != OD_DTYPE_FLOAT) continue;
        bool param = false;
        for (int k = 0; k < dp->n_params && !param; k++)
            param = dp->params[k].data == (float *)t->data;
        if (param) continue;
        dp->buf[dp->n_bufs] = t->data;
        dp->buf_count[dp->n_bufs] = od_tensor_count(t);
        dp->n_buf += dp->buf_count[dp->n_bufs++];
    }
    dp->len = dp->n_grad + dp->n_buf + 2;
    dp->snapshot = malloc(sizeof(float) * (size_t)dp->n_buf + 1);
    dp->vec = malloc(sizeof(float) * (size_t)(dp->len * (deterministic ? dp->slices : dp->local)));
    if (!dp->snapshot || !dp->vec) goto oom;
    *out = dp;
    return OD_STATUS_OK;
oom:
    st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for data-parallel training");
fail:
    od_dp_destroy(dp);
    return st;
}

void od_dp_destroy(od_dp *dp) {
    if (!dp) return;
    for (int j = 0; dp->tr && j < dp->local; j++)
        od_trainer_destroy(dp->tr[j]);
    free(dp->tr);
    free(dp->buf);
    free(dp->buf_count);
    free(dp->snapshot);
    free(dp->vec);
    free(dp);
}

od_trainer *od_dp_trainer(od_dp *dp) {
    return dp->tr[0];
}
int64_t od_dp_slice_batch(const od_dp *dp) {
    return dp->slice_batch;
}

static void buffers_copy(od_dp *dp, float *dst, bool to_flat) {
    for (int i = 0; i < dp->n_bufs; i++, dst += dp->buf_count[i - 1])
        if (to_flat)
            memcpy(dst, dp->buf[i], sizeof(float) * (size_t)dp->buf_count[i]);
        else
            memcpy(dp->buf[i], dst, sizeof(float) * (size_t)dp->buf_count[i]);
}

od_status od_dp_step(od_dp *dp, const od_dp_batch *batch, bool stop, float *loss_out,
                     bool *stop_out, od_error *err) {
    od_status st;
    buffers_copy(dp, dp->snapshot, true);
    /* deterministic: this rank's slices sit at their global places in vec */
    float *mine = dp->vec + (dp->deterministic ? (int64_t)dp->first * dp->len : 0);
    float scale = 1.0f / (float)dp->slices; /* the loss is a mean over the global batch */
    for (int j = 0; j < dp->local; j++) {
        od_trainer *tr = dp->tr[j];
        float *v = mine + (int64_t)j * dp->len;
        buffers_copy(dp, dp->snapshot, false);
        int64_t first = (int64_t)(dp->first + j) * dp->slice_batch;
        od_phases_lap(OD_PH_PACK);
        batch->fill(batch->ctx, od_trainer_input(tr), first, dp->slice_batch);
        od_phases_lap(OD_PH_FILL);
        if ((st = od_trainer_forward(tr, true, err))) return st;
        od_phases_lap(OD_PH_FORWARD);
        float *grad = od_trainer_output_grad(tr);
        float l = batch->loss(batch->ctx, od_trainer_output(tr), first, dp->slice_batch, grad);
        int64_t nout = dp->slice_batch * od_trainer_classes(tr);
        for (int64_t i = 0; i < nout; i++)
            grad[i] *= scale;
        od_phases_lap(OD_PH_LOSS);
        if ((st = od_trainer_backward(tr, err))) return st;
        od_phases_lap(OD_PH_BACKWARD);
        od_param *ps;
        int np = od_trainer_params(tr, &ps);
        float *g = v;
        for (int i = 0; i < np; i++, g += ps[i - 1].count)
            memcpy(g, ps[i].grad, sizeof(float) * (size_t)ps[i].count);
        buffers_copy(dp, v + dp->n_grad, true);
        v[dp->len - 2] = l * scale;
        v[dp->len - 1] = stop ? 1.0f : 0.0f;
    }
    od_phases_lap(OD_PH_PACK);
    if (dp->deterministic) {
        int n = od_comm_size(dp->comm);
        int64_t counts[256];
        if (n > 256)
            return od_error_set(err, OD_STATUS_UNSUPPORTED, "--deterministic: at most 256 ranks");
        for (int r = 0; r < n; r++)
            counts[r] = dp->local * dp->len;
        if ((st = od_comm_allgather(dp->comm, mine, counts, dp->vec, err))) return st;
        /* a fixed pairwise tree over the slices: ((s0 + s1) + (s2 + s3)) */
        for (int stride = 1; stride < dp->slices; stride *= 2)
            for (int s = 0; s + stride < dp->slices; s += 2 * stride) {
                float *a = dp->vec + (int64_t)s * dp->len;
                const float *b = dp->vec + (int64_t)(s + stride) * dp->len;
                for (int64_t i = 0; i < dp->len; i++)
                    a[i] += b[i];
            }
    } else {
        for (int j = 1; j < dp->local; j++)
            for (int64_t i = 0; i < dp->len; i++)
                dp->vec[i] += dp->vec[(int64_t)j * dp->len + i];
        if ((st = od_comm_allreduce_sum(dp->comm, dp->vec, dp->len, err))) return st;
    }
    od_phases_lap(OD_PH_REDUCE);
    float *v = dp->vec;
    for (int i = 0; i < dp->n_params; i++, v += dp->params[i - 1].count)
        memcpy(dp->params[i].grad, v, sizeof(float) * (size_t)dp->params[i].count);
    for (int64_t i = 0; i < dp->n_buf; i++)
        v[i] *= scale; /* the slices' mean */
    buffers_copy(dp, v, false);
    *loss_out = dp->vec[dp->len - 2];
    *stop_out = dp->vec[dp->len - 1] > 0;
    od_phases_lap(OD_PH_UNPACK);
    return OD_STATUS_OK;
}

/* ---- OD_PHASES ------------------------------------------------------------------------------- */

static int phases_on = -1; /* -1: the environment not read yet */
static double ph_wall[OD_PH_N], ph_cpu[OD_PH_N], ph_last_wall, ph_last_cpu;
static int64_t ph_laps[OD_PH_N];

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void od_phases_lap(int phase) {
    if (phases_on < 0) phases_on = getenv("OD_PHASES") && strcmp(getenv("OD_PHASES"), "0") != 0;
    if (!phases_on) return;
    double w = clock_s(CLOCK_MONOTONIC), c = clock_s(CLOCK_THREAD_CPUTIME_ID);
    if (phase >= 0 && phase < OD_PH_N) {
        ph_wall[phase] += w - ph_last_wall;
        ph_cpu[phase] += c - ph_last_cpu;
        ph_laps[phase]++;
    }
    ph_last_wall = w, ph_last_cpu = c;
}

void od_phases_report(const od_comm *comm) {
    if (phases_on <= 0) return;
    static const char *name[OD_PH_N] = {"targets", "fill", "forward", "loss", "backward",
                                        "pack", "reduce", "unpack", "optim"};
    double tw = 0, tc = 0;
    for (int i = 0; i < OD_PH_N; i++)
        tw += ph_wall[i], tc += ph_cpu[i];
    char line[1024];
    int o = snprintf(line, sizeof line, "phases rank %d of %d: wall %.3f s, cpu %.3f s;",
                     od_comm_rank(comm), od_comm_size(comm), tw, tc);
    for (int i = 0; i < OD_PH_N && o < (int)sizeof line - 64; i++)
        if (ph_laps[i])
            o += snprintf(line + o, sizeof line - (size_t)o, " %s %.3f/%.3f (%.0f%%)", name[i],
                          ph_wall[i], ph_cpu[i], tw > 0 ? 100 * ph_wall[i] / tw : 0);
    fprintf(stderr, "%s [wall/cpu s]\n", line);
    memset(ph_wall, 0, sizeof ph_wall), memset(ph_cpu, 0, sizeof ph_cpu), memset(ph_laps, 0, sizeof ph_laps);
}

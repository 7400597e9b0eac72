/* Helpers for element-wise ops with numpy broadcasting (PRelu.c, Pow.c, Where.c, compare.c,
 * variadic.c, unary.c): the output's physical dims with each input's strides, adjacent dims
 * merged where every input walks them alike, a row walker that splits the work across the
 * plan's threads, and the one step state (ew_job) of the ops that walk rows of up to 3 inputs. */
#ifndef OD_EW_COMMON_H
#define OD_EW_COMMON_H

#include "../op.h"

#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

#define EW_MAX_IN 64
#define EW_CHUNK 4096 /* elements per task when splitting work across threads */

typedef struct ew_bcast {
    int rank, n_in;                          /* rank >= 1 after merging */
    int64_t dims[OD_MAX_RANK];               /* output's physical dims, merged */
    int64_t rows;                            /* product of all dims but the last */
    int64_t strides[EW_MAX_IN][OD_MAX_RANK]; /* in elements; 0 where an input repeats */
} ew_bcast;

/* Right-aligns every input (NULL inputs are skipped: their strides stay 0) against the
 * output's physical dims. Assumes shapes were checked to broadcast. */
static inline void ew_bcast_init(ew_bcast *b, const od_buf *out, int n_in, od_buf *const *in) {
    memset(b, 0, sizeof *b);
    int rank = out->rank, r = 0;
    int64_t od[OD_MAX_RANK], st[EW_MAX_IN][OD_MAX_RANK];
    od_buf_phys_dims(out, od);
    b->n_in = n_in;
    for (int k = 0; k < n_in; k++) {
        int64_t dims[OD_MAX_RANK], stride = 1;
        if (!in[k]) {
            for (int d = 0; d < rank; d++)
                st[k][d] = 0;
            continue;
        }
        od_buf_phys_dims(in[k], dims);
        int pad = rank - in[k]->rank;
        for (int d = rank - 1; d >= 0; d--) {
            int64_t dim = d < pad ? 1 : dims[d - pad];
            st[k][d] = dim == 1 ? 0 : stride;
            stride *= dim;
        }
    }
    /* merge dim d into the previous kept one when every input continues contiguously */
    for (int d = 0; d < rank; d++) {
        if (od[d] == 1 && rank > 1) continue; /* size-1 dims carry nothing */
        bool merge = r > 0;
        for (int k = 0; k < n_in && merge; k++) {
            int64_t prev = b->strides[k][r - 1];
            merge = (prev == 0 && st[k][d] == 0) || (prev != 0 && prev == st[k][d] * od[d]);
        }
        if (merge) {
            b->dims[r - 1] *= od[d];
            for (int k = 0; k < n_in; k++)
                b->strides[k][r - 1] = st[k][d];
        } else {
            b->dims[r] = od[d];
            for (int k = 0; k < n_in; k++)
                b->strides[k][r] = st[k][d];
            r++;
        }
    }
    if (r == 0) { /* a scalar, or all dims 1 */
        b->dims[0] = od_buf_count(out) ? 1 : 0;
        for (int k = 0; k < n_in; k++)
            b->strides[k][0] = 0;
        r = 1;
    }
    b->rank = r;
    b->rows = 1;
    for (int d = 0; d < r - 1; d++)
        b->rows *= b->dims[d];
    if (b->dims[r - 1] == 0) b->rows = 0;
}

/* Offset of each input's first element in output row `row`. */
static inline void ew_bcast_offsets(const ew_bcast *b, int64_t row, int64_t *off) {
    for (int k = 0; k < b->n_in; k++)
        off[k] = 0;
    for (int d = b->rank - 2; d >= 0; d--) {
        int64_t i = row % b->dims[d];
        row /= b->dims[d];
        for (int k = 0; k < b->n_in; k++)
            off[k] += i * b->strides[k][d];
    }
}

/* fn(ctx, first_row, end_row) over all rows, in chunks of about EW_CHUNK elements. */
typedef void (*ew_rows_fn)(void *ctx, int64_t first, int64_t end);

typedef struct ew_rows_task {
    ew_rows_fn fn;
    void *ctx;
    int64_t rows, per_task;
} ew_rows_task;

static void ew_rows_chunk(void *p, size_t i) {
    const ew_rows_task *t = p;
    int64_t first = (int64_t)i * t->per_task, end = first + t->per_task;
    t->fn(t->ctx, first, end < t->rows ? end : t->rows);
}

static inline void ew_for_rows(pthreadpool_t pool, int64_t rows, int64_t row_len, ew_rows_fn fn,
                               void *ctx) {
    if (rows <= 0) return;
    int64_t per = row_len >= EW_CHUNK ? 1 : EW_CHUNK / (row_len > 0 ? row_len : 1);
    if (!pool || per >= rows) {
        fn(ctx, 0, rows);
        return;
    }
    ew_rows_task t = {fn, ctx, rows, per};
    od_parallel_for(pool, (size_t)((rows + per - 1) / per), ew_rows_chunk, &t);
}

/* The state of a Where, comparison, PRelu or Pow step: the walk of its inputs broadcast onto
 * its output, their data, the element type its rows read, which variant of the op it is (the
 * comparison), and the XNNPACK operator that runs it instead of the rows when one can. */
typedef struct ew_job {
    ew_bcast b;
    const void *in[3];
    void *out;
    od_dtype t;
    int kind;
    xnn_operator_t xnn;
} ew_job;

/* prepare()'s start: s->state (and *out unless NULL) = a job over s's n_in inputs broadcast onto its output as
 * the buffers in (s->in when NULL: PRelu passes its opset-6 slope reshaped) say. */
static inline od_status ew_job_create(od_step *s, int n_in, od_buf *const *in, od_dtype t,
                                      ew_job **out, od_error *err) {
    ew_job *j = calloc(1, sizeof *j);
    if (!j) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    s->state = j;
    if (out) *out = j;
    ew_bcast_init(&j->b, s->out[0], n_in, in ? in : s->in);
    for (int k = 0; k < n_in; k++)
        j->in[k] = s->in[k]->data;
    j->out = s->out[0]->data;
    j->t = t;
    return OD_STATUS_OK;
}

/* run(): the XNNPACK operator, or rows(job, first, end) over all rows. */
static inline od_status ew_job_run(od_step *s, ew_rows_fn rows, od_error *err) {
    ew_job *j = s->state;
    if (j->xnn) return od_xnn_check(xnn_run_operator(j->xnn, s->pool), err, s->node, "run");
    ew_for_rows(s->pool, j->b.rows, j->b.dims[j->b.rank - 1], rows, j);
    return OD_STATUS_OK;
}

static inline void ew_job_destroy(od_step *s) {
    ew_job *j = s->state;
    if (j && j->xnn) xnn_delete_operator(j->xnn);
    free(j);
    s->state = NULL;
}

/* True when in's shape right-aligns onto out's (unidirectional broadcasting). */
static inline bool ew_unidirectional(const od_shape_info *in, const od_shape_info *out) {
    if (in->rank > out->rank) return false;
    for (int d = 0; d < in->rank; d++) {
        int64_t a = in->dims[d], o = out->dims[out->rank - in->rank + d];
        if (a != 1 && a != o) return false;
    }
    return true;
}

#endif

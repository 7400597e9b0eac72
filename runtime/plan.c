/* Plans: a checked graph compiled for one batch size and thread count.
 *
 * Planning walks the graph once: skips nodes folded to constants and nodes no output needs,
 * picks each value's layout (channels-last around convolutions, ONNX order elsewhere) and
 * inserts the conversions between them, lets Reshape-like ops share their input's memory,
 * then places every buffer in one arena by lifetime and prepares each step. Running is a
 * walk over the steps that allocates nothing. In training mode (od_plan_create_training, for
 * the trainer) the same walk keeps every activation and adds a gradient arena: see
 * "training mode" below. */
#include "plan_internal.h"
#include "ops/strided.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

/* XNNPACK may read a little past the end of a buffer (XNN_EXTRA_BYTES). */
#define ARENA_ALIGN 64
#define ARENA_TAIL 64
/* Below both, a step is not worth splitting across threads: on a quiet machine, 256 K / 16 K made
 * the second thread cost the small conv models 6-69% at batch 1 (README, Threads at batch 1), and
 * 8 K elements the students 18%. Elements are the larger of the step's first input and output: a
 * step kept on one thread between two split ones first pulls the half of its input the other
 * core wrote (a cache line takes ~240 ns between this VM's cores), then the next step's worker
 * pulls half of its output back; mobilenet_v2's depthwise layers at 14x14 and 7x7 and at stride
 * 2 (under 128 K outputs, 0.3-1 M MACs) had cost more on one thread after a split step than their
 * work (batch 1, 2 threads, 128 K outputs -> 32 K inputs or outputs: mobilenet_v2 224 0.91x,
 * mobilenet_v3_small 0.90x, the bundled models and students unchanged). */
#define PARALLEL_MIN_MACS (1 << 21)
#define PARALLEL_MIN_ELEMENTS (1 << 15)
/* A fully connected layer at a small batch streams its weights once per run: two cores each read
 * half (their own L2, twice the bandwidth), so it pays from a lower size than a convolution. */
#define PARALLEL_MIN_FC_MACS (1 << 18)


/* ---- layout conversions (the planner's own steps) ------------------------- */

static od_status convert_run(od_step *s, od_error *err) {
    const od_buf *in = s->in[0];
    od_buf *out = s->out[0];
    od_relayout(in->data, out->data, out->rank, out->dims, out->layout == OD_LAYOUT_CHANNELS_LAST,
                od_dtype_size(out->dtype), false, s->pool);
    return OD_STATUS_OK;
}

static const od_op_desc convert_op = {.name = "Transpose", .run = convert_run};

/* True when moving dim 1 keeps memory order: C == 1 or every spatial dim is 1. */
static bool relayout_is_trivial(int rank, const int64_t *dims) {
    int64_t s = 1;
    for (int d = 2; d < rank; d++) s *= dims[d];
    return dims[1] == 1 || s == 1;
}

/* ---- planning ---------------------------------------------------------------- */

typedef struct plan_step_idx {
    int n_in, n_out;
    int in[64], out[16];
} plan_step_idx;

typedef struct planner {
    od_plan *p;
    plan_step_idx *idx; /* parallel to p->steps while planning */
    int cap_idx;
    struct conv_cache {
        int src, rank, dst;
        od_layout layout;
    } *cache;
    int n_cache, cap_cache;
    od_error *err;
} planner;

static int root_of(const od_plan *p, int b) {
    while (p->bufs[b].alias_of >= 0) b = p->bufs[b].alias_of;
    return b;
}

static int add_buf(planner *pl) {
    od_plan *p = pl->p;
    if (p->n_bufs == p->cap_bufs) {
        int cap = p->cap_bufs ? 2 * p->cap_bufs : 64;
        od_buf *b = realloc(p->bufs, sizeof *b * cap);
        if (!b) return -1;
        p->bufs = b;
        p->cap_bufs = cap;
    }
    od_buf *b = &p->bufs[p->n_bufs];
    memset(b, 0, sizeof *b);
    b->alias_of = -1;
    return p->n_bufs++;
}

static int add_step(planner *pl, const od_node *n, const od_op_desc *op, int64_t opset) {
    od_plan *p = pl->p;
    if (p->n_steps == p->cap_steps) {
        int cap = p->cap_steps ? 2 * p->cap_steps : 32;
        od_step *s = realloc(p->steps, sizeof *s * cap);
        plan_step_idx *x = s ? realloc(pl->idx, sizeof *x * cap) : NULL;
        if (s) p->steps = s;
        if (!s || !x) return -1;
        pl->idx = x;
        p->cap_steps = cap;
    }
    od_step *s = &p->steps[p->n_steps];
    memset(s, 0, sizeof *s);
    s->node = n;
    s->op = op;
    s->opset = opset;
    s->act_min = -INFINITY;
    s->act_max = INFINITY;
    memset(&pl->idx[p->n_steps], 0, sizeof *pl->idx);
    return p->n_steps++;
}

static od_status own_tensor(od_plan *p, od_tensor *t, od_error *err) {
    if (p->n_owned == p->cap_owned) {
        int cap = p->cap_owned ? 2 * p->cap_owned : 16;
        od_tensor **o = realloc(p->owned, sizeof *o * cap);
        if (!o) {
            od_tensor_destroy(t);
            return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory while planning");
        }
        p->owned = o;
        p->cap_owned = cap;
    }
    p->owned[p->n_owned++] = t;
    return OD_STATUS_OK;
}

/* The buffer holding b's value in layout want, right-aligned to rank (>= b's rank);
 * adds a conversion step or a constant copy when needed. Returns -1 on error. */
static int convert(planner *pl, int b, od_layout want, int rank) {
    od_plan *p = pl->p;
    if (p->bufs[b].layout == want && p->bufs[b].rank == rank) return b;
    for (int i = 0; i < pl->n_cache; i++)
        if (pl->cache[i].src == b && pl->cache[i].layout == want && pl->cache[i].rank == rank)
            return pl->cache[i].dst;
    const od_buf src = p->bufs[b];
    int64_t dims[OD_MAX_RANK];
    int pad = rank - src.rank;
    for (int d = 0; d < rank; d++) dims[d] = d < pad ? 1 : src.dims[d - pad];
    int nb = add_buf(pl);
    if (nb < 0) goto oom;
    od_buf *dst = &p->bufs[nb];
    dst->dtype = src.dtype;
    dst->rank = rank;
    memcpy(dst->dims, dims, sizeof dims);
    dst->layout = want;
    dst->nbytes = src.nbytes;
    size_t esize = od_dtype_size(src.dtype);
    if (src.layout != want && rank >= 3 && esize == 0) {
        od_error_set(pl->err, OD_STATUS_UNSUPPORTED, "cannot change the layout of %s data",
                     od_dtype_name(src.dtype));
        return -1;
    }
    if (src.constant) { /* constants are plain: convert now */
        od_tensor *t = od_tensor_create(NULL, src.dtype, rank, dims, pl->err);
        if (!t) return -1;
        if (want == OD_LAYOUT_CHANNELS_LAST && rank >= 3 && !relayout_is_trivial(rank, dims))
            od_relayout(src.constant->data, t->data, rank, dims, true, esize, false, NULL);
        else
            memcpy(t->data, src.constant->data, src.nbytes);
        if (own_tensor(p, t, pl->err)) return -1;
        dst = &p->bufs[nb];
        dst->constant = t;
        dst->data = t->data;
    } else if (src.layout == want || rank < 3 || relayout_is_trivial(rank, dims)) {
        dst->alias_of = b;
    } else {
        int s = add_step(pl, NULL, &convert_op, 0);
        if (s < 0) goto oom;
        pl->idx[s].n_in = pl->idx[s].n_out = 1;
        pl->idx[s].in[0] = b;
        pl->idx[s].out[0] = nb;
    }
    if (pl->n_cache == pl->cap_cache) {
        int cap = pl->cap_cache ? 2 * pl->cap_cache : 16;
        struct conv_cache *c = realloc(pl->cache, sizeof *c * cap);
        if (!c) goto oom;
        pl->cache = c;
        pl->cap_cache = cap;
    }
    pl->cache[pl->n_cache++] = (struct conv_cache){b, rank, nb, want};
    return nb;
oom:
    od_error_set(pl->err, OD_STATUS_OUT_OF_MEMORY, "out of memory while planning");
    return -1;
}

/* Which layout each input of a node gets, and the layout of its outputs. */
static void choose_layouts(const od_plan *p, const od_node *n, const od_op_desc *op, const plan_step_idx *x,
                           od_layout *in_want, int *in_rank, od_layout *out_layout) {
    int out_rank = p->bufs[x->out[0]].rank;
    for (int k = 0; k < x->n_in; k++) {
        in_want[k] = OD_LAYOUT_PLAIN;
        in_rank[k] = x->in[k] >= 0 ? p->bufs[x->in[k]].rank : 0;
    }
    *out_layout = OD_LAYOUT_PLAIN;
    if (op->layout == OD_LAYOUT_POLICY_SPATIAL) {
        if (x->n_in > 0 && x->in[0] >= 0 && p->bufs[x->in[0]].rank >= 3) {
            const od_buf *in[64];
            for (int k = 0; k < x->n_in; k++) in[k] = x->in[k] >= 0 ? &p->bufs[x->in[k]] : NULL;
            bool plain = p->bufs[x->in[0]].layout == OD_LAYOUT_PLAIN && op->reads_plain_input &&
                         op->reads_plain_input(n, in, x->n_in);
            in_want[0] = plain ? OD_LAYOUT_PLAIN : OD_LAYOUT_CHANNELS_LAST;
            *out_layout = OD_LAYOUT_CHANNELS_LAST;
            if (x->n_in > 3 && x->in[3] >= 0) in_want[3] = OD_LAYOUT_CHANNELS_LAST; /* a residual, as the output */
        }
    } else if (op->layout == OD_LAYOUT_POLICY_ELEMENTWISE && out_rank >= 3) {
        bool last = false;
        for (int k = 0; k < x->n_in; k++) {
            if (x->in[k] < 0) continue;
            const od_buf *b = &p->bufs[x->in[k]];
            if (b->rank == out_rank && b->layout == OD_LAYOUT_CHANNELS_LAST) last = true;
        }
        if (last) {
            *out_layout = OD_LAYOUT_CHANNELS_LAST;
            for (int k = 0; k < x->n_in; k++) {
                in_want[k] = OD_LAYOUT_CHANNELS_LAST;
                in_rank[k] = out_rank;
            }
        }
    }
}

od_status od_graph_check_supported(const od_graph *g, od_error *err) {
    char list[800] = "";
    int missing = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (od_op_find(n->domain, n->op_type)) continue;
        bool seen = false; /* list each op type once, with its first node */
        for (int j = 0; j < i && !seen; j++)
            seen = !od_op_find(g->nodes[j].domain, g->nodes[j].op_type) &&
                   strcmp(g->nodes[j].op_type, n->op_type) == 0 &&
                   strcmp(g->nodes[j].domain ? g->nodes[j].domain : "",
                          n->domain ? n->domain : "") == 0;
        if (seen) continue;
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s%s%s (node \"%s\")", missing ? ", " : "",
                 n->domain && *n->domain ? n->domain : "", n->domain && *n->domain ? "." : "",
                 n->op_type, n->name ? n->name : "");
        missing++;
    }
    if (!missing) return OD_STATUS_OK;
    return od_error_set(err, OD_STATUS_UNSUPPORTED, "unsupported op%s: %s", missing > 1 ? "s" : "",
                        list);
}

static const od_tensor *float_constant(const od_plan *p, const od_node *n, int k, int rank) {
    if (k >= n->n_inputs || n->inputs[k] < 0) return NULL;
    const od_tensor *t = p->shapes.info[n->inputs[k]].constant;
    return t && t->dtype == OD_DTYPE_FLOAT && t->rank >= rank ? t : NULL;
}

/* A constant buffer, plain layout, holding t (which the plan owns). Returns -1 on error. */
static int add_constant(planner *pl, od_tensor *t) {
    if (own_tensor(pl->p, t, pl->err)) return -1;
    int b = add_buf(pl);
    if (b < 0) {
        od_error_set(pl->err, OD_STATUS_OUT_OF_MEMORY, "out of memory while planning");
        return -1;
    }
    od_buf *x = &pl->p->bufs[b];
    x->dtype = t->dtype;
    x->rank = t->rank;
    memcpy(x->dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
    x->data = t->data;
    x->nbytes = t->nbytes;
    x->constant = t;
    return b;
}

extern const od_op_desc od_op_BatchNormalization, od_op_Relu, od_op_Clip, od_op_HardSwish, od_op_Add, od_fused_SiLU;

/* An inference BatchNormalization with constant parameters whose input is the only use of a
 * Conv's or ConvTranspose's output folds into that node's weights and bias, as ONNX Runtime
 * does at load time (students from `shrink` carry one after every conv): the step reads
 * folded copies, and the BN's output shares the conv's buffer. bn_into[j] names the node
 * absorbing BN node j (-1: none); that node's new weights and bias are buffers
 * folded_wb[2 i] and folded_wb[2 i + 1]. */
static od_status find_bn_folds(planner *pl, const int *uses, int *bn_into, int *folded_wb) {
    const od_plan *p = pl->p;
    const od_graph *g = p->graph;
    for (int j = 0; j < g->n_nodes; j++) {
        const od_node *bn = &g->nodes[j];
        if (od_op_find(bn->domain, bn->op_type) != &od_op_BatchNormalization || !od_bn_is_inference(bn, g->opset) ||
            bn->inputs[0] < 0)
            continue;
        int v = bn->inputs[0], c = g->values[v].producer;
        if (c < 0 || uses[v] != 1 || p->bufs[v].dtype != OD_DTYPE_FLOAT || folded_wb[2 * c] >= 0) continue;
        const od_node *conv = &g->nodes[c];
        if (conv->outputs[0] != v) continue;
        const od_tensor *w = float_constant(p, conv, 1, 3), *b = float_constant(p, conv, 2, 1), *prm[4];
        /* a convolution's weight: output channels along axis 0, or 1 when transposed */
        int axis = w ? od_node_weight_axis(conv, w->rank) : -1;
        bool transpose = axis == 1;
        int64_t group = od_attr_int(conv, "group", 1);
        if (axis < 0 || axis > 1 || group < 1 || w->dims[0] % group) continue;
        int64_t cout = transpose ? w->dims[1] * group : w->dims[0];
        bool ok = (conv->n_inputs < 3 || conv->inputs[2] < 0) || (b && b->rank == 1 && b->dims[0] == cout);
        for (int k = 0; k < 4; k++) {
            prm[k] = float_constant(p, bn, k + 1, 1);
            ok = ok && prm[k] && prm[k]->rank == 1 && prm[k]->dims[0] == cout;
        }
        if (!ok) continue;
        od_tensor *wt = od_tensor_create(NULL, OD_DTYPE_FLOAT, w->rank, w->dims, pl->err);
        if (!wt) return pl->err ? pl->err->status : OD_STATUS_OUT_OF_MEMORY;
        memcpy(wt->data, w->data, w->nbytes);
        int wb = add_constant(pl, wt);
        od_tensor *bt = wb < 0 ? NULL : od_tensor_create(NULL, OD_DTYPE_FLOAT, 1, &cout, pl->err);
        if (!bt) return pl->err ? pl->err->status : OD_STATUS_OUT_OF_MEMORY;
        if (b) memcpy(bt->data, b->data, b->nbytes);
        else memset(bt->data, 0, bt->nbytes);
        int bb = add_constant(pl, bt);
        if (bb < 0) return pl->err ? pl->err->status : OD_STATUS_OUT_OF_MEMORY;
        const float *bnp[4] = {prm[0]->data, prm[1]->data, prm[2]->data, prm[3]->data};
        od_bn_fold_into_conv(wt->data, bt->data, wt->rank, wt->dims, group, transpose, bnp,
                             od_node_attr_float(bn, "epsilon"));
        bn_into[j] = c;
        folded_wb[2 * c] = wb;
        folded_wb[2 * c + 1] = bb;
    }
    return OD_STATUS_OK;
}

/* The node producing value v when v is its output 0 and only `uses` nodes read v: a BN folded
 * into a conv gives the conv; -1 when there is none, or it runs as int8. */
static int sole_producer(const od_plan *p, const int *uses, const int *bn_into, int v, int want_uses) {
    const od_graph *g = p->graph;
    int prod = v < 0 ? -1 : g->values[v].producer;
    if (prod < 0 || uses[v] != want_uses || g->nodes[prod].n_outputs < 1 || g->nodes[prod].outputs[0] != v) return -1;
    if (bn_into[prod] >= 0) prod = bn_into[prod];
    return p->qs8[prod].op ? -1 : prod;
}

/* An Add of a conv's output (its only use, no activation fused yet) and a tensor of the same
 * shape computed before the conv (a residual connection): the conv adds it (fuses_residual),
 * the Add's output shares the conv's, and a Relu after the Add becomes the conv's clamp. */
static bool find_residual(const od_plan *p, const int *uses, const int *bn_into, od_node_fusion *fz, int i,
                          int *fused_into, const float *range) {
    const od_graph *g = p->graph;
    const od_node *n = &g->nodes[i];
    if (n->n_inputs != 2 || n->n_outputs != 1 || n->inputs[0] < 0 || n->inputs[1] < 0) return false;
    const od_shape_info *yi = &p->shapes.info[n->outputs[0]];
    for (int k = 0; k < 2; k++) {
        int v = n->inputs[k], skip = n->inputs[1 - k], prod = sole_producer(p, uses, bn_into, v, 1);
        if (prod < 0 || skip == v || fused_into[prod] >= 0 || fz[prod].act || fz[prod].residual >= 0) continue;
        if (range[2 * prod] > -INFINITY || range[2 * prod + 1] < INFINITY) continue;
        const od_op_desc *pop = od_op_find(g->nodes[prod].domain, g->nodes[prod].op_type);
        int sp = g->values[skip].producer; /* the skip must exist when the conv runs */
        if (!pop || !pop->fuses_residual || sp >= prod || p->bufs[skip].constant) continue;
        if (sp >= 0 && (fz[sp].absorbed || p->qs8[sp].absorbed)) continue; /* never computed in float */
        const od_shape_info *vi = &p->shapes.info[v], *si = &p->shapes.info[skip];
        bool same = vi->dtype == OD_DTYPE_FLOAT && si->dtype == OD_DTYPE_FLOAT && vi->rank >= 3 &&
                    vi->rank == si->rank && vi->rank == yi->rank;
        for (int d = 0; same && d < vi->rank; d++) same = vi->dims[d] == si->dims[d] && vi->dims[d] == yi->dims[d];
        if (!same) continue;
        fused_into[i] = prod;
        fz[i].as_input = v;
        fz[prod].residual = skip;
        return true;
    }
    return false;
}

/* A Relu or Clip whose input is the only use of a Conv's or Gemm's output (or of a BN folded
 * into one) becomes that op's output clamp: one step and one buffer fewer. Likewise, into an op
 * with fuses_act (fz[producer].act set), a HardSwish node, or a SiLU or HardSwish step
 * (x * Sigmoid(x), x * HardSigmoid(x): od_plan_find_activation_fusions) whose x only it and
 * its gate read. fused_into[i] names the op node absorbing node i (-1: none); range[2 * j] and
 * range[2 * j + 1] bound node j's output. Residual Adds first (find_residual). */
static void find_fusions(const od_plan *p, const int *uses, const int *bn_into, od_node_fusion *fz,
                         int *fused_into, float *range) {
    const od_graph *g = p->graph;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (p->qs8[i].absorbed) continue; /* done inside an int8 step */
        const od_op_desc *op = od_op_find(n->domain, n->op_type);
        if (op == &od_op_Add && !fz[i].as_op && !getenv("OD_NO_CONV_ADD") &&
            find_residual(p, uses, bn_into, fz, i, fused_into, range))
            continue;
        bool relu = op == &od_op_Relu, clip = op == &od_op_Clip, gated = fz[i].as_op != NULL;
        od_activation act = fz[i].as_op == &od_fused_SiLU                        ? OD_ACT_SILU
                            : fz[i].as_op == &od_op_HardSwish || op == &od_op_HardSwish ? OD_ACT_HARDSWISH
                                                                                   : OD_ACT_NONE;
        if ((!relu && !clip && !act) || n->n_inputs < 1 || n->inputs[0] < 0) continue;
        int v = gated ? fz[i].as_input : n->inputs[0], prod = sole_producer(p, uses, bn_into, v, gated ? 2 : 1);
        if (prod < 0) continue;
        if (fused_into[prod] >= 0 && fz[fused_into[prod]].residual >= 0) prod = fused_into[prod]; /* an Add done in a conv */
        const od_op_desc *pop =
            fz[prod].as_op ? fz[prod].as_op : od_op_find(g->nodes[prod].domain, g->nodes[prod].op_type);
        if (!pop || p->bufs[v].dtype != OD_DTYPE_FLOAT || fused_into[prod] >= 0) continue;
        if (act) {
            if (!pop->fuses_act || !od_act_fusable()) continue;
            fused_into[i] = prod;
            fz[prod].act = act;
            continue;
        }
        if (!pop->fuses_activation) continue;
        float lo = 0.0f, hi = INFINITY;
        if (clip) {
            lo = od_attr_float(n, "min", -FLT_MAX);
            hi = od_attr_float(n, "max", FLT_MAX);
            bool ok = true;
            for (int k = 1; k < 3 && k < n->n_inputs; k++) {
                if (n->inputs[k] < 0) continue;
                const od_tensor *c = p->shapes.info[n->inputs[k]].constant;
                if (!c || c->dtype != OD_DTYPE_FLOAT || od_tensor_count(c) != 1) ok = false;
                else if (k == 1) lo = *(const float *)c->data;
                else hi = *(const float *)c->data;
            }
            if (!ok || !(lo <= hi)) continue;
        }
        fused_into[i] = prod;
        range[2 * prod] = lo;
        range[2 * prod + 1] = hi;
    }
}

static od_status plan_nodes(planner *pl) {
    od_plan *p = pl->p;
    const od_graph *g = p->graph;
    od_status st = OD_STATUS_OK;
    int nn = g->n_nodes ? g->n_nodes : 1;
    bool *needed = calloc(g->n_values ? g->n_values : 1, sizeof(bool));
    int *fused_into = malloc(sizeof(int) * nn), *bn_into = malloc(sizeof(int) * nn);
    int *folded_wb = malloc(sizeof(int) * 2 * nn), *uses = od_graph_count_uses(g);
    float *range = malloc(sizeof(float) * 2 * nn);
    od_node_fusion *fz = calloc((size_t)nn, sizeof *fz);
    if (!needed || !fused_into || !bn_into || !folded_wb || !uses || !range || !fz) {
        st = od_error_set(pl->err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        fz[i] = (od_node_fusion){.as_input = -1, .residual = -1}; /* no fusion (no_fusion plans too) */
        fused_into[i] = bn_into[i] = folded_wb[2 * i] = folded_wb[2 * i + 1] = -1;
        range[2 * i] = -INFINITY;
        range[2 * i + 1] = INFINITY;
    }
    p->qs8 = calloc((size_t)nn, sizeof *p->qs8);
    if (!p->qs8) {
        st = od_error_set(pl->err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    if (!p->opt.no_qs8) od_plan_find_qs8(g, &p->shapes, uses, p->qs8);
    if ((st = find_bn_folds(pl, uses, bn_into, folded_wb))) goto done;
    if (!p->opt.no_fusion) {
        od_plan_find_activation_fusions(g, &p->shapes, uses, fz);
        find_fusions(p, uses, bn_into, fz, fused_into, range);
    }
    for (int i = 0; i < g->n_outputs; i++) needed[g->outputs[i]] = true;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const od_node *n = &g->nodes[i];
        const od_node_qs8 *q = &p->qs8[i];
        if (q->absorbed) continue;
        bool any = false;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && needed[n->outputs[k]] && !p->bufs[n->outputs[k]].constant)
                any = true;
        if (q->op) any = needed[q->out];
        if (!any) continue;
        for (int k = 0; k < (q->op ? q->n_in : n->n_inputs); k++) {
            int v = q->op ? q->in[k] : n->inputs[k];
            if (v >= 0) needed[v] = true;
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        const od_node_qs8 *q = &p->qs8[i];
        bool run = false;
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0 && needed[n->outputs[k]] && !p->bufs[n->outputs[k]].constant)
                run = true;
        if (q->op) run = needed[q->out];
        if (!run || fz[i].absorbed || q->absorbed) continue;
        if (fused_into[i] >= 0 || bn_into[i] >= 0) { /* its producer clamps or scales: share that buffer */
            int src = fz[i].as_input >= 0 ? fz[i].as_input : n->inputs[0], dst = n->outputs[0];
            p->bufs[dst].alias_of = src;
            p->bufs[dst].layout = p->bufs[src].layout;
            continue;
        }
        const od_op_desc *op = q->op ? q->op : fz[i].as_op ? fz[i].as_op : od_op_find(n->domain, n->op_type);
        if (n->n_inputs > 64 || n->n_outputs > 16) {
            st = od_node_error(pl->err, OD_STATUS_UNSUPPORTED, n, "too many inputs or outputs");
            break;
        }
        plan_step_idx x = {.n_in = n->n_inputs, .n_out = n->n_outputs};
        memcpy(x.in, n->inputs, sizeof(int) * n->n_inputs);
        memcpy(x.out, n->outputs, sizeof(int) * n->n_outputs);
        if (fz[i].as_op) x.n_in = 1, x.in[0] = fz[i].as_input;
        if (q->op) { /* int8 in, int8 out */
            x.n_in = q->n_in;
            memcpy(x.in, q->in, sizeof(int) * (size_t)q->n_in);
            x.n_out = 1;
            x.out[0] = q->out;
        }
        if (folded_wb[2 * i] >= 0) { /* a BN folded in: its weights and bias instead */
            x.in[1] = folded_wb[2 * i];
            x.in[2] = folded_wb[2 * i + 1];
            if (x.n_in < 3) x.n_in = 3;
        }
        if (fz[i].residual >= 0) { /* an Add done here: its other input as input 3 */
            for (int k = x.n_in; k < 3; k++) x.in[k] = -1;
            x.in[3] = fz[i].residual;
            x.n_in = 4;
        }
        if (x.n_out == 0 || x.out[0] < 0) {
            st = od_node_error(pl->err, OD_STATUS_UNSUPPORTED, n, "first output is omitted");
            break;
        }
        od_layout in_want[64], out_layout;
        int in_rank[64];
        choose_layouts(p, n, op, &x, in_want, in_rank, &out_layout);
        for (int k = 0; k < x.n_in; k++) {
            if (x.in[k] < 0) continue;
            x.in[k] = convert(pl, x.in[k], in_want[k], in_rank[k]);
            if (x.in[k] < 0) {
                od_error_prefix(pl->err, "%s", "");
                st = pl->err ? pl->err->status : OD_STATUS_OUT_OF_MEMORY;
                goto done;
            }
        }
        for (int k = 0; k < x.n_out; k++)
            if (x.out[k] >= 0 && p->bufs[x.out[k]].rank >= 3) p->bufs[x.out[k]].layout = out_layout;
        if (op->alias_input0 && x.in[0] >= 0 && !p->bufs[x.in[0]].constant)
            p->bufs[x.out[0]].alias_of = x.in[0];
        if (op->alias_input0 && x.in[0] >= 0 && p->bufs[x.out[0]].layout != p->bufs[x.in[0]].layout)
            p->bufs[x.out[0]].layout = p->bufs[x.in[0]].layout;
        int s = add_step(pl, n, op, g->opset ? g->opset : 17);
        if (s < 0) {
            st = od_error_set(pl->err, OD_STATUS_OUT_OF_MEMORY, "out of memory while planning");
            break;
        }
        pl->idx[s] = x;
        p->steps[s].act_min = q->op ? q->act_min : range[2 * i];
        p->steps[s].act_max = q->op ? q->act_max : range[2 * i + 1];
        p->steps[s].act = fz[i].act;
        if (q->op) p->steps[s].qs8 = &q->prm;
    }
done:
    free(needed);
    free(fused_into);
    free(bn_into);
    free(folded_wb);
    free(uses);
    free(range);
    free(fz);
    return st;
}

static size_t arena_bytes_of(size_t nbytes) { return (nbytes + ARENA_TAIL + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }
/* What a buffer takes on each side of its lane's middle. */
static size_t lane_half(size_t nbytes) { return (arena_bytes_of(nbytes) / 2 + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

/* Why lanes: this VM's two cores keep separate caches (a cache line takes ~240 ns from one to the
 * other), and a step on the pool splits its output by rows, the caller taking the first ones
 * (workers.c). Packed greedily, a buffer reuses memory that earlier buffers of other sizes held,
 * so half of what a thread writes was last written by the other core, and each such line is
 * fetched from it first (mobilenet_v2's 112x112x96 expansion at 2 threads: 0.21 ms in the model,
 * 0.14 alone). Centred on a shared middle, every buffer's first half lies below it and its
 * second above, where the earlier ones' halves were: each core rewrites lines it already holds.
 * Buffers on one lane are never live at once; each lane is as wide as its widest buffer (mobilenet_v2
 * 224: 3 lanes, 8.4 MB). Batch 1, 2 threads, 21 interleaved rounds: mobilenet_v2, efficientnet_b0
 * and cnn 0.98x of the greedy placement's time, resnet18 0.99x, mobilenet_v3_small 1.00x
 * (OD_NO_LANES=1 places greedily). */
size_t od_arena_lanes(int n, const int *first, const int *last, const size_t *nbytes, size_t *offset) {
    int *order = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1)), *lane = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    int *busy = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1)); /* per lane: the last step of its latest buffer */
    size_t *half = calloc((size_t)(n > 0 ? n : 1), sizeof(size_t)), total = 0;
    if (!order || !lane || !busy || !half) {
        free(order), free(lane), free(busy), free(half);
        return SIZE_MAX;
    }
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) /* by first step (insertion sort) */
        for (int j = i; j > 0 && first[order[j]] < first[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int lanes = 0;
    for (int i = 0; i < n; i++) {
        int b = order[i], best = -1;
        size_t h = lane_half(nbytes[b]);
        for (int k = 0; k < lanes; k++) { /* a free lane: the narrowest that holds it, else the widest */
            if (busy[k] >= first[b]) continue;
            bool fits = half[k] >= h, best_fits = best >= 0 && half[best] >= h;
            if (best < 0 || (fits && (!best_fits || half[k] < half[best])) || (!fits && !best_fits && half[k] > half[best]))
                best = k;
        }
        if (best < 0) best = lanes++;
        lane[b] = best;
        busy[best] = last[b];
        if (half[best] < h) half[best] = h;
    }
    for (int k = 0; k < lanes; k++) { /* from here half[k] is lane k's middle */
        size_t middle = total + half[k];
        total += 2 * half[k];
        half[k] = middle;
    }
    for (int b = 0; b < n; b++)
        offset[b] = half[lane[b]] - lane_half(nbytes[b]);
    free(order), free(lane), free(busy), free(half);
    return total;
}

/* Buffers order[0..n) placed by od_arena_lanes; returns the arena's bytes, SIZE_MAX when out of
 * memory. */
static size_t place_in_lanes(od_plan *p, const int *order, int n) {
    size_t m = (size_t)(n > 0 ? n : 1), total = SIZE_MAX;
    int *first = calloc(m, sizeof(int)), *last = calloc(m, sizeof(int)); /* calloc: GCC cannot see n = 0 reads none */
    size_t *bytes = calloc(m, sizeof(size_t)), *offset = calloc(m, sizeof(size_t));
    if (first && last && bytes && offset) {
        for (int i = 0; i < n; i++) {
            const od_buf *x = &p->bufs[order[i]];
            first[i] = x->first_step, last[i] = x->last_step, bytes[i] = x->nbytes;
        }
        total = od_arena_lanes(n, first, last, bytes, offset);
        for (int i = 0; i < n && total != SIZE_MAX; i++) p->bufs[order[i]].offset = offset[i];
    }
    free(first), free(last), free(bytes), free(offset);
    return total;
}

/* Places every buffer that needs arena memory, no two live at once overlapping: greedy by size
 * (largest first, lowest free offset), or in lanes (od_arena_lanes) for a plan run on a pool. */
static od_status place_buffers(od_plan *p, od_error *err) {
    int nb = p->n_bufs;
    int *order = malloc(sizeof(int) * (nb ? nb : 1));
    if (!order) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int b = 0; b < nb; b++) {
        p->bufs[b].first_step = p->n_steps + 1;
        p->bufs[b].last_step = -2;
    }
    for (int s = 0; s < p->n_steps; s++) {
        od_step *st = &p->steps[s];
        for (int k = 0; k < st->n_in; k++)
            if (st->in[k]) {
                od_buf *r = &p->bufs[root_of(p, (int)(st->in[k] - p->bufs))];
                if (r->last_step < s) r->last_step = s;
                if (r->first_step > s) r->first_step = s;
            }
        for (int k = 0; k < st->n_out; k++)
            if (st->out[k]) {
                od_buf *r = &p->bufs[root_of(p, (int)(st->out[k] - p->bufs))];
                if (r->first_step > s) r->first_step = s;
                if (r->last_step < s) r->last_step = s;
            }
    }
    for (int i = 0; i < p->n_in; i++) { /* written by the caller before the first step, and kept
                                          * whole for the next run (a bench writes them once) */
        od_buf *r = &p->bufs[root_of(p, p->input_buf[i])];
        r->first_step = -1;
        r->last_step = p->n_steps;
    }
    for (int i = 0; i < p->n_out; i++) p->bufs[root_of(p, p->output_buf[i])].last_step = p->n_steps;
    for (int b = 0; b < nb && p->training; b++) /* the backward pass reads every activation */
        if (p->bufs[b].last_step >= -1) {
            p->bufs[b].first_step = -1;
            p->bufs[b].last_step = p->n_steps;
        }
    int n = 0;
    size_t total = 0;
    for (int b = 0; b < nb; b++) {
        od_buf *x = &p->bufs[b];
        x->in_arena = x->alias_of < 0 && !x->constant && x->last_step >= -1;
        if (x->in_arena) order[n++] = b;
    }
    if (p->pool && !p->training && !getenv("OD_NO_LANES")) { /* steps split across threads: see od_arena_lanes */
        total = place_in_lanes(p, order, n);
        n = 0; /* placed */
    }
    if (total == SIZE_MAX) {
        free(order);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    for (int i = 1; i < n; i++) /* insertion sort, largest first */
        for (int j = i; j > 0 && p->bufs[order[j]].nbytes > p->bufs[order[j - 1]].nbytes; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        od_buf *x = &p->bufs[order[i]];
        size_t size = arena_bytes_of(x->nbytes);
        size_t offset = 0;
        for (bool moved = true; moved;) {
            moved = false;
            for (int j = 0; j < i; j++) {
                od_buf *y = &p->bufs[order[j]];
                bool overlap_time = !(y->last_step < x->first_step || x->last_step < y->first_step);
                size_t ysize = arena_bytes_of(y->nbytes);
                if (overlap_time && offset < y->offset + ysize && y->offset < offset + size) {
                    offset = y->offset + ysize;
                    moved = true;
                }
            }
        }
        x->offset = offset;
        if (offset + size > total) total = offset + size;
    }
    free(order);
    p->arena_bytes = total;
    if (!(p->arena = od_calloc_large(total ? total : ARENA_ALIGN, 1)))
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for a %zu-byte arena",
                            total);
    for (int b = 0; b < nb; b++)
        if (p->bufs[b].in_arena) p->bufs[b].data = (void *)((char *)p->arena + p->bufs[b].offset);
    for (int b = 0; b < nb; b++)
        if (!p->bufs[b].data && p->bufs[b].alias_of >= 0)
            p->bufs[b].data = p->bufs[root_of(p, b)].data;
    return OD_STATUS_OK;
}

/* ---- training mode ------------------------------------------------------------ */

/* Whether every output of n is known from shapes alone (a constant shape chain such as
 * Shape -> Gather -> Concat -> Reshape's shape, with the batch fixed): it never runs. */
static bool node_folded(const od_node *n, const od_shape_info *info) {
    for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] >= 0 && !info[n->outputs[k]].constant) return false;
    return true;
}

/* Whether input k of node n is a parameter: a float initializer in one of the op's
 * trained_inputs, except a single value read by an element-wise op (Add, Sub, Mul, Div, Pow).
 * Such a scalar is a constant of a formula, not a weight: the eps of a decomposed LayerNorm
 * (trained, it can go negative and the Sqrt gives NaN), GELU's 0.5 and 1, the attention's
 * 1/sqrt(d) scale. Exporters write them as Constant nodes, which the student builder turns into
 * initializers like any other, so their count is what tells them apart. A per-channel scale
 * (ConvNeXt's layer-scale gamma [C]) still trains, and so does a layer's one-value weight
 * (the bias of a Conv or Gemm with one output, the Scale of a BatchNormalization over one
 * channel, LayerNormalization's one Scale): those ops are not element-wise. Integer
 * initializers (shape constants) are never parameters; other dtypes are refused by
 * place_gradients. */
static bool is_parameter(const od_graph *g, const od_node *n, const od_op_desc *op, int k) {
    int v = k < n->n_inputs ? n->inputs[k] : -1;
    if (v < 0 || k >= 32 || !(op->trained_inputs >> k & 1)) return false;
    const od_tensor *t = g->values[v].init;
    if (!t || od_integral(t->dtype)) return false;
    return !(op->layout == OD_LAYOUT_POLICY_ELEMENTWISE && od_tensor_count(t) == 1);
}

/* Training: a float value that a parameter (is_parameter: a float initializer in a trained
 * input of some node) reaches is computed by its node at every step even when shape folding made it a
 * constant (a class token Expand-ed over the fixed batch): the node must run, and have a
 * backward, for the gradient to reach the parameter. Integer values (shape chains) stay folded. */
static void unfold_parameter_paths(const od_graph *g, od_graph_shapes *shapes) {
    bool *reach = calloc(g->n_values ? g->n_values : 1, sizeof(bool));
    if (!reach) return; /* nothing unfolded: the parameter then stays constant */
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        const od_op_desc *op = od_op_find(n->domain, n->op_type);
        for (int k = 0; op && k < n->n_inputs; k++)
            if (is_parameter(g, n, op, k) && g->values[n->inputs[k]].init->dtype == OD_DTYPE_FLOAT)
                reach[n->inputs[k]] = true;
    }
    for (int i = 0; i < g->n_nodes; i++) { /* nodes are in topological order */
        const od_node *n = &g->nodes[i];
        bool any = false;
        for (int k = 0; k < n->n_inputs; k++) any |= n->inputs[k] >= 0 && reach[n->inputs[k]];
        for (int k = 0; any && k < n->n_outputs; k++) {
            int v = n->outputs[k];
            if (v < 0 || shapes->info[v].dtype != OD_DTYPE_FLOAT) continue;
            reach[v] = true;
            shapes->info[v].constant = NULL; /* the tensor stays in shapes->folded, freed with it */
        }
    }
    free(reach);
}

/* Refuses the graph's ops without a backward, naming one node of each. info NULL (before shape
 * inference): only when some op is unknown to the engine, listing all; else nodes that fold
 * to constants are skipped. */
static od_status refuse_untrainable(const od_graph *g, const od_shape_info *info, od_error *err) {
    char list[600] = "";
    int bad = 0;
    bool unknown = false;
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        const od_op_desc *op = od_op_find(n->domain, n->op_type);
        if (op && op->backward) continue;
        if (info && node_folded(n, info)) continue;
        unknown |= !op;
        if (strstr(list, n->op_type)) continue;
        size_t len = strlen(list);
        snprintf(list + len, sizeof list - len, "%s%s (node \"%s\")", bad++ ? ", " : "", n->op_type,
                 n->name ? n->name : "");
    }
    if (!bad || (!info && !unknown)) return OD_STATUS_OK;
    return od_error_set(err, OD_STATUS_UNSUPPORTED, "cannot train through op%s %s", bad > 1 ? "s" : "", list);
}

/* A Relu whose input is the only use of output 0 of an op with train_fuses_relu (Conv, Gemm,
 * BatchNormalization, Add, Sub, Mul) is done by that op, in the same pass over memory (what
 * bounds these kernels): it gets no step, and its output shares the op's buffers.
 * fused[i]: FUSED_RELU when node i is such a Relu, FUSES_RELU when it is such an op.
 * Likewise an Add of a BatchNormalization's output (its only use) and another tensor of the same
 * shape, a residual block's end: the BN adds that tensor (its input 5) before its Relu, and
 * writes its gradient (FUSED_ADD on the Add, FUSES_ADD on the BN, add_of[bn] the Add). */
enum { FUSED_RELU = 1, FUSES_RELU = 2, FUSED_ADD = 4, FUSES_ADD = 8 };
static void find_train_fusions(const od_plan *p, const int *uses, char *fused, int *add_of /* -1s */) {
    const od_graph *g = p->graph;
    memset(fused, 0, (size_t)g->n_nodes);
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *r = &g->nodes[i];
        if (od_op_find(r->domain, r->op_type) != &od_op_Relu || r->n_inputs < 1 || r->inputs[0] < 0 ||
            node_folded(r, p->shapes.info))
            continue;
        int v = r->inputs[0], prod = g->values[v].producer;
        if (prod < 0 || uses[v] != 1 || node_folded(&g->nodes[prod], p->shapes.info)) continue;
        const od_node *pn = &g->nodes[prod];
        if (!od_op_find(pn->domain, pn->op_type)->train_fuses_relu || pn->outputs[0] != v) continue;
        bool is_output = false;
        for (int k = 0; k < g->n_outputs; k++) is_output |= g->outputs[k] == r->outputs[0];
        if (is_output) continue;
        fused[i] = FUSED_RELU;
        fused[prod] = FUSES_RELU;
    }
    bool bn_add = !getenv("OD_NO_BN_ADD");
    for (int i = 0; i < g->n_nodes && bn_add; i++) {
        const od_node *a = &g->nodes[i];
        if (od_op_find(a->domain, a->op_type) != &od_op_Add || a->n_inputs != 2 || node_folded(a, p->shapes.info))
            continue;
        bool is_output = false;
        for (int k = 0; k < g->n_outputs; k++) is_output |= g->outputs[k] == a->outputs[0];
        for (int k = 0; k < 2 && !is_output; k++) {
            int v = a->inputs[k], r = a->inputs[1 - k], prod = v >= 0 ? g->values[v].producer : -1;
            /* r must be computed before the BN's step (graph order: steps run so) */
            if (prod < 0 || r < 0 || r == v || uses[v] != 1 || fused[prod] || g->values[r].producer > prod) continue;
            const od_node *bn = &g->nodes[prod];
            const od_shape_info *sv = &p->shapes.info[v], *sr = &p->shapes.info[r];
            if (od_op_find(bn->domain, bn->op_type) != &od_op_BatchNormalization || bn->outputs[0] != v ||
                bn->n_inputs != 5 || node_folded(bn, p->shapes.info) || sv->rank != sr->rank || sr->rank < 2 ||
                memcmp(sv->dims, sr->dims, sizeof(int64_t) * (size_t)sv->rank) != 0)
                continue;
            fused[i] |= FUSED_ADD;
            fused[prod] |= FUSES_ADD;
            add_of[prod] = i;
            break;
        }
    }
}

/* Channels-last where the ops' train_layout allows (convolutions, pools, BN and element-wise
 * ops between them) for activations of rank 3 and 4; parameters and constants stay plain. */
static void set_train_layout(od_buf *b, bool cl) {
    b->cl = cl;
    b->layout = cl ? OD_LAYOUT_CHANNELS_LAST : OD_LAYOUT_PLAIN;
}

/* Training mode's steps: every node that does not fold to constants, in graph order, on the
 * graph's own values (no conversions: the kernels read either layout). */
static od_status plan_train_nodes(planner *pl) {
    od_plan *p = pl->p;
    const od_graph *g = p->graph;
    od_status st = OD_STATUS_OK;
    int *uses = od_graph_count_uses(g);
    char *fused = malloc(g->n_nodes ? g->n_nodes : 1);
    int *add_of = malloc(sizeof(int) * (size_t)(g->n_nodes ? g->n_nodes : 1));
    if (!uses || !fused || !add_of) {
        st = od_error_set(pl->err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    for (int i = 0; i < g->n_nodes; i++) add_of[i] = -1;
    find_train_fusions(p, uses, fused, add_of);
    od_buf *in = &p->bufs[p->input_buf[0]];
    bool in_cl = in->rank == 4;
    for (int i = 0; i < g->n_nodes && in->rank == 3; i++) /* [N, C, L] into a 1-D conv or pool */
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] == p->input_buf[0] && !node_folded(&g->nodes[i], p->shapes.info) &&
                od_op_find(g->nodes[i].domain, g->nodes[i].op_type)->train_layout == OD_TRAIN_LAYOUT_SPATIAL)
                in_cl = true;
    set_train_layout(in, in_cl);
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (node_folded(n, p->shapes.info)) continue;
        if (fused[i] & (FUSED_RELU | FUSED_ADD)) { /* its producer clamps or adds: share that buffer */
            int from = n->inputs[0];
            if (fused[i] & FUSED_ADD) /* the BN's output: the input its producer is that BN */
                from = g->values[n->inputs[0]].producer >= 0 && add_of[g->values[n->inputs[0]].producer] == i ? n->inputs[0]
                                                                                                          : n->inputs[1];
            od_buf *o = &p->bufs[n->outputs[0]];
            o->alias_of = from;
            set_train_layout(o, p->bufs[from].cl);
            continue;
        }
        const od_op_desc *op = od_op_find(n->domain, n->op_type);
        if (n->n_inputs > 64 || n->n_outputs > 16) {
            st = od_node_error(pl->err, OD_STATUS_UNSUPPORTED, n, "too many inputs or outputs");
            break;
        }
        for (int k = 0; k < n->n_outputs; k++) {
            if (n->outputs[k] < 0) continue;
            od_buf *o = &p->bufs[n->outputs[k]];
            if (o->dtype != OD_DTYPE_FLOAT) {
                st = od_node_error(pl->err, OD_STATUS_UNSUPPORTED, n, "output %d is %s; training needs float", k,
                                   od_dtype_name(o->dtype));
                goto done;
            }
            bool spatial = o->rank == 3 || o->rank == 4, cl = false;
            if (op->train_layout == OD_TRAIN_LAYOUT_SPATIAL) cl = spatial;
            for (int j = 0; j < n->n_inputs && op->train_layout == OD_TRAIN_LAYOUT_SAME; j++)
                if (n->inputs[j] >= 0 && p->bufs[n->inputs[j]].cl && p->bufs[n->inputs[j]].rank == o->rank)
                    cl = spatial;
            set_train_layout(o, cl);
        }
        int s = add_step(pl, n, op, g->opset ? g->opset : 17);
        if (s < 0) {
            st = od_error_set(pl->err, OD_STATUS_OUT_OF_MEMORY, "out of memory while planning");
            break;
        }
        plan_step_idx *x = &pl->idx[s];
        x->n_in = n->n_inputs;
        x->n_out = n->n_outputs;
        memcpy(x->in, n->inputs, sizeof(int) * n->n_inputs);
        memcpy(x->out, n->outputs, sizeof(int) * n->n_outputs);
        for (int k = 0; k < n->n_inputs; k++)
            if (n->inputs[k] >= 0) p->bufs[n->inputs[k]].consumers++;
        int r = -1;
        if (fused[i] & FUSES_ADD) { /* the Add's other input, in the BN output's layout */
            const od_node *a = &g->nodes[add_of[i]];
            r = a->inputs[0] == n->outputs[0] ? a->inputs[1] : a->inputs[0];
            if (p->bufs[r].cl != p->bufs[n->outputs[0]].cl || p->bufs[r].count != p->bufs[n->outputs[0]].count) {
                fused[i] &= (char)~FUSES_ADD; /* else the Add runs as it is */
                fused[add_of[i]] &= (char)~FUSED_ADD;
            }
        }
        if (fused[i] & FUSES_ADD) { /* as input 5; the Add's Relu done here too */
            for (int k = x->n_in; k < 5; k++) x->in[k] = -1;
            x->in[5] = r;
            x->n_in = 6;
            p->bufs[r].consumers++;
        }
        od_step *stp = &p->steps[s];
        stp->fused_relu = fused[i] & FUSES_ADD ? (fused[add_of[i]] & FUSES_RELU) != 0 : (fused[i] & FUSES_RELU) != 0;
        stp->seed = p->seed * 0x9E3779B97F4A7C15ull + (uint64_t)i;
    }
done:
    free(uses);
    free(fused);
    free(add_of);
    return st;
}

/* Marks the parameters, and places a gradient for every value downstream of one (and for the
 * first output, which the loss writes) in the gradient arena: activations' first, then the
 * parameters', so the optimiser's and all-reduce's share is one contiguous block. */
static od_status place_gradients(od_plan *p, od_error *err) {
    const od_graph *g = p->graph;
    od_status st = OD_STATUS_OK;
    bool *needs = calloc(g->n_values ? g->n_values : 1, sizeof(bool));
    if (!needs) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        const od_op_desc *op = od_op_find(n->domain, n->op_type);
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            /* a folded node (a Mul in a shape chain) never runs: its inputs are not trained */
            if (!is_parameter(g, n, op, k) || node_folded(n, p->shapes.info)) continue;
            if (g->values[v].init->dtype != OD_DTYPE_FLOAT) {
                st = od_node_error(err, OD_STATUS_UNSUPPORTED, n, "parameter \"%s\" is %s; training needs float",
                                   g->values[v].name, od_dtype_name(g->values[v].init->dtype));
                goto done;
            }
            p->bufs[v].is_param = needs[v] = true;
        }
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (node_folded(n, p->shapes.info)) continue;
        bool grad = false;
        for (int k = 0; k < n->n_inputs; k++) grad |= n->inputs[k] >= 0 && needs[n->inputs[k]];
        for (int k = 0; k < n->n_outputs; k++)
            if (n->outputs[k] >= 0) needs[n->outputs[k]] = grad;
    }
    needs[g->outputs[0]] = true;
    size_t total = 0;
    for (int v = 0; v < g->n_values; v++)
        if (needs[v] && p->bufs[v].alias_of < 0 && p->shapes.info[v].rank >= 0) total += (size_t)p->bufs[v].count;
    if (!(p->grads = od_calloc_large(total + 1, sizeof(float)))) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory for gradients");
        goto done;
    }
    p->grads_count = total;
    float *next = p->grads;
    for (int params = 0; params < 2; params++)
        for (int v = 0; v < g->n_values; v++) {
            od_buf *b = &p->bufs[v];
            if (!needs[v] || b->is_param != params || b->alias_of >= 0 || p->shapes.info[v].rank < 0) continue;
            b->grad = next;
            next += b->count;
        }
    for (int v = 0; v < g->n_values; v++) /* a fused Relu's output */
        if (needs[v] && p->bufs[v].alias_of >= 0) p->bufs[v].grad = p->bufs[root_of(p, v)].grad;
done:
    free(needs);
    return st;
}

static void fill_io(od_plan_io *io, const char *name, const od_buf *b) {
    io->name = name;
    io->dtype = b->dtype;
    io->rank = b->rank;
    memcpy(io->dims, b->dims, sizeof io->dims);
    io->data = b->data;
    io->nbytes = b->nbytes;
}

od_status od_plan_create(const od_graph *g, const od_plan_options *opt, od_plan **out,
                         od_error *err) {
    *out = NULL;
    od_plan *p = calloc(1, sizeof *p);
    if (!p) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    od_error split_err = {0};
    if (od_plan_split(p, g, opt, &split_err)) {
        *out = p;
        return OD_STATUS_OK;
    }
    free(p);
    if (split_err.status == OD_STATUS_OUT_OF_MEMORY) {
        if (err) *err = split_err;
        return split_err.status;
    }
    return od_plan_create_whole(g, opt, out, err);
}

/* Inference (training false) or training mode: one planner. */
static od_status plan_create(const od_graph *g, const od_plan_options *opt, bool training, uint64_t seed,
                             od_plan **out, od_error *err) {
    od_status st;
    *out = NULL;
    st = od_backend_init(err);
    if (st) return st;
    /* training: every op we cannot train is refused at once, those unknown to the engine
     * before shapes are inferred, then every op without a backward outside constant chains */
    st = training ? refuse_untrainable(g, NULL, err) : od_graph_check_supported(g, err);
    if (st) return st;
    od_plan *p = calloc(1, sizeof *p);
    if (!p) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    planner pl = {.p = p, .err = err};
    p->graph = g;
    p->training = training;
    p->seed = seed;
    if (opt) p->opt = *opt;
    if (p->opt.batch <= 0) p->opt.batch = 1;
    if (p->opt.threads <= 0) p->opt.threads = 1;
    /* A batch that is not split into micro-batches (plan_split.c), batch 1 included, runs each
     * large step across this pool; small steps stay on the calling thread (below). Training
     * kernels split their work in fixed shards over od_workers instead: the same thread count
     * gives the same bits. */
    if (p->opt.threads > 1) {
        if (training) p->workers = od_workers_create(p->opt.threads);
        else p->pool = pthreadpool_create((size_t)p->opt.threads);
        if (!p->pool && !p->workers) {
            st = od_error_set(err, OD_STATUS_BACKEND, "cannot start %d threads", p->opt.threads);
            goto fail;
        }
    }
    st = od_graph_infer(g, p->opt.batch, &p->shapes, err);
    if (st) goto fail;
    if (training) unfold_parameter_paths(g, &p->shapes);
    if (training && (st = refuse_untrainable(g, p->shapes.info, err))) goto fail;
    for (int v = 0; v < g->n_values; v++) {
        int b = add_buf(&pl);
        if (b < 0) goto oom;
        const od_shape_info *info = &p->shapes.info[v];
        od_buf *x = &p->bufs[b];
        x->dtype = info->dtype;
        x->rank = info->rank < 0 ? 0 : info->rank;
        memcpy(x->dims, info->dims, sizeof x->dims);
        int64_t count = od_dims_count(x->rank, x->dims);
        size_t esize = od_dtype_size(x->dtype);
        x->nbytes = count > 0 ? (size_t)count * esize : 0;
        x->count = count;
        if (info->constant) {
            x->constant = info->constant;
            x->data = info->constant->data;
            x->nbytes = info->constant->nbytes;
        }
    }
    for (int i = 0; i < g->n_inputs; i++)
        if (!g->values[g->inputs[i]].init) p->n_in++;
    p->n_out = g->n_outputs;
    p->inputs = calloc(p->n_in + 1, sizeof *p->inputs);
    p->outputs = calloc(p->n_out + 1, sizeof *p->outputs);
    p->input_buf = calloc(p->n_in + 1, sizeof(int));
    p->output_buf = calloc(p->n_out + 1, sizeof(int));
    if (!p->inputs || !p->outputs || !p->input_buf || !p->output_buf) goto oom;
    for (int i = 0, k = 0; i < g->n_inputs; i++)
        if (!g->values[g->inputs[i]].init) p->input_buf[k++] = g->inputs[i];
    for (int i = 0; i < p->n_in; i++)
        if (od_dtype_size(p->bufs[p->input_buf[i]].dtype) == 0) {
            st = od_error_set(err, OD_STATUS_UNSUPPORTED, "graph input \"%s\" has element type %s",
                              g->values[p->input_buf[i]].name,
                              od_dtype_name(p->bufs[p->input_buf[i]].dtype));
            goto fail;
        }
    if (training) {
        if (p->n_in < 1 || p->n_out < 1) {
            st = od_error_set(err, OD_STATUS_INVALID_MODEL, "the graph needs an input and an output to train");
            goto fail;
        }
        if (p->bufs[p->input_buf[0]].dtype != OD_DTYPE_FLOAT) {
            st = od_error_set(err, OD_STATUS_UNSUPPORTED, "graph input \"%s\" is %s; training needs float",
                              g->values[p->input_buf[0]].name, od_dtype_name(p->bufs[p->input_buf[0]].dtype));
            goto fail;
        }
    }
    st = training ? plan_train_nodes(&pl) : plan_nodes(&pl);
    if (st) goto fail;
    for (int i = 0; i < p->n_out; i++) {
        /* a training plan's outputs stay in their layout: the trainer converts */
        int b = training ? g->outputs[i] : convert(&pl, g->outputs[i], OD_LAYOUT_PLAIN, p->bufs[g->outputs[i]].rank);
        if (b < 0) {
            st = err ? err->status : OD_STATUS_OUT_OF_MEMORY;
            goto fail;
        }
        p->output_buf[i] = b;
    }
    /* pointer arrays for every step */
    size_t total = 0;
    for (int s = 0; s < p->n_steps; s++) total += pl.idx[s].n_in + pl.idx[s].n_out;
    p->step_io = calloc(total + 1, sizeof(od_buf *));
    if (!p->step_io) goto oom;
    od_buf **io = p->step_io;
    for (int s = 0; s < p->n_steps; s++) {
        od_step *stp = &p->steps[s];
        stp->n_in = pl.idx[s].n_in;
        stp->n_out = pl.idx[s].n_out;
        stp->in = io;
        io += stp->n_in;
        stp->out = io;
        io += stp->n_out;
        for (int k = 0; k < stp->n_in; k++)
            stp->in[k] = pl.idx[s].in[k] >= 0 ? &p->bufs[pl.idx[s].in[k]] : NULL;
        for (int k = 0; k < stp->n_out; k++)
            stp->out[k] = pl.idx[s].out[k] >= 0 ? &p->bufs[pl.idx[s].out[k]] : NULL;
        stp->pool = p->pool;
        stp->workers = p->workers;
        stp->threads = p->opt.threads;
    }
    st = place_buffers(p, err);
    if (st) goto fail;
    if (training && (st = place_gradients(p, err))) goto fail;
    for (int b = 0; b < p->n_bufs; b++) p->bufs[b].cl = p->bufs[b].layout == OD_LAYOUT_CHANNELS_LAST;
    for (int s = 0; training && s < p->n_steps; s++) /* before prepare: od_claim_grad reads it */
        for (int k = 0; k < p->steps[s].n_in; k++)
            if (p->steps[s].in[k]) p->bufs[root_of(p, (int)(p->steps[s].in[k] - p->bufs))].last_reader = &p->steps[s];
    for (int b = 0; training && b < p->n_bufs; b++) /* the loss writes output 0's gradient: no one else */
        p->bufs[b].last_reader = root_of(p, b) == root_of(p, p->output_buf[0]) ? NULL : p->bufs[root_of(p, b)].last_reader;
    for (int s = 0; s < p->n_steps; s++) {
        od_step *stp = &p->steps[s];
        if (stp->node) {
            const od_node *n = stp->node;
            int ni = (int)(n - g->nodes);
            stp->macs = od_node_macs(g, ni, &p->shapes);
        }
        /* Small steps run on the calling thread: waking a worker costs more than it saves. */
        int64_t elems = stp->n_out && stp->out[0] ? od_buf_count(stp->out[0]) : 0;
        if (stp->n_in && stp->in[0] && od_buf_count(stp->in[0]) > elems) elems = od_buf_count(stp->in[0]);
        bool fc = stp->node && (!strcmp(stp->op->name, "Gemm") || !strcmp(stp->op->name, "MatMul"));
        stp->parallel = stp->pool && (stp->macs >= PARALLEL_MIN_MACS || elems >= PARALLEL_MIN_ELEMENTS ||
                                      (fc && stp->macs >= PARALLEL_MIN_FC_MACS));
        /* A parallel step is prepared for the pool it always runs on, so that XNNPACK cuts its
         * output channels into tiles enough for every thread: prepared for one thread, a fully
         * connected layer at batch 1 is one task, a 7x7 convolution a few. */
        if (!stp->parallel) stp->pool = NULL;
        od_status (*prepare)(od_step *, od_error *) = training ? stp->op->train_prepare : stp->op->prepare;
        if (prepare && (st = prepare(stp, err))) goto fail;
    }
    for (int b = 0; training && b < p->n_bufs; b++) /* a fused Relu's output shares its gradient */
        if (p->bufs[b].grad_written) p->bufs[root_of(p, b)].grad_written = true;
    for (int i = 0; i < p->n_in; i++)
        fill_io(&p->inputs[i], g->values[p->input_buf[i]].name, &p->bufs[p->input_buf[i]]);
    for (int i = 0; i < p->n_out; i++)
        fill_io(&p->outputs[i], g->values[g->outputs[i]].name, &p->bufs[p->output_buf[i]]);
    if (p->opt.profile) {
        p->profile = calloc(p->n_steps + 1, sizeof *p->profile);
        if (!p->profile) goto oom;
        for (int s = 0; s < p->n_steps; s++) {
            p->profile[s].node_name = p->steps[s].node ? p->steps[s].node->name : "(layout)";
            /* the op run: a fused step's (HardSwish for x * HardSigmoid(x)), not the node's */
            p->profile[s].op_type = p->steps[s].node ? p->steps[s].op->name : "Transpose";
            p->profile[s].macs = p->steps[s].macs;
        }
    }
    free(pl.idx);
    free(pl.cache);
    *out = p;
    return OD_STATUS_OK;
oom:
    st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory while planning");
fail:
    free(pl.idx);
    free(pl.cache);
    od_plan_destroy(p);
    return st;
}

od_status od_plan_create_whole(const od_graph *g, const od_plan_options *opt, od_plan **out,
                               od_error *err) {
    return plan_create(g, opt, false, 0, out, err);
}

od_status od_plan_create_training(const od_graph *g, const od_plan_options *opt, uint64_t seed,
                                  od_plan **out, od_error *err) {
    return plan_create(g, opt, true, seed, out, err);
}

void od_plan_destroy(od_plan *p) {
    if (!p) return;
    if (p->split) od_plan_split_destroy(p->split); /* owns the io buffers below */
    for (int s = 0; s < p->n_steps; s++) {
        void (*destroy)(od_step *) = p->training ? p->steps[s].op->train_destroy : p->steps[s].op->destroy;
        if (destroy) destroy(&p->steps[s]);
        else free(p->steps[s].state);
    }
    free(p->steps);
    free(p->step_io);
    for (int i = 0; i < p->n_owned; i++) od_tensor_destroy(p->owned[i]);
    free(p->owned);
    free(p->bufs);
    free(p->inputs);
    free(p->outputs);
    free(p->input_buf);
    free(p->output_buf);
    free(p->arena);
    free(p->profile);
    od_graph_shapes_clear(&p->shapes);
    if (p->pool) pthreadpool_destroy(p->pool);
    od_workers_destroy(p->workers);
    free(p->grads);
    free(p->qs8);
    free(p);
}

int od_plan_n_inputs(const od_plan *p) { return p->n_in; }
int od_plan_n_outputs(const od_plan *p) { return p->n_out; }
const od_plan_io *od_plan_input(const od_plan *p, int i) {
    return i >= 0 && i < p->n_in ? &p->inputs[i] : NULL;
}
const od_plan_io *od_plan_output(const od_plan *p, int i) {
    return i >= 0 && i < p->n_out ? &p->outputs[i] : NULL;
}
size_t od_plan_arena_bytes(const od_plan *p) { return p->arena_bytes; }

od_status od_plan_run(od_plan *p, od_error *err) {
    if (p->split) return od_plan_split_run(p->split, err);
    if (p->training) return od_plan_run_forward(p, false, NULL, err);
    /* Every parallel step holds the pool (planning set it): the pool (runtime/workers.c)
     * never waits for a worker that has not started, so a descheduled worker costs only its
     * share, on any load. */
    for (int s = 0; s < p->n_steps; s++) {
        od_step *stp = &p->steps[s];
        double t0 = p->profile ? od_seconds() : 0;
        od_status st = stp->op->run(stp, err);
        if (st) return st;
        if (p->profile) {
            p->profile[s].seconds += od_seconds() - t0;
            p->profile[s].runs++;
        }
    }
    return OD_STATUS_OK;
}

od_status od_plan_run_forward(od_plan *p, bool train, od_train_profile *prof, od_error *err) {
    for (int s = 0; s < p->n_steps; s++) {
        od_step *stp = &p->steps[s];
        stp->training = train;
        double t0 = prof ? od_seconds() : 0;
        od_status st = stp->op->forward_train(stp, err);
        if (st) return st;
        if (prof) prof[s].forward_s += od_seconds() - t0;
        stp->calls++;
    }
    return OD_STATUS_OK;
}

od_status od_plan_run_backward(od_plan *p, od_train_profile *prof, od_error *err) {
    /* zero every gradient but the output's, which the loss just wrote, and those their one
     * consumer overwrites (resnet w0.5: the zeroing was 6% of a step) */
    const od_buf *out = &p->bufs[p->output_buf[0]];
    for (int v = 0; v < p->n_bufs; v++) {
        const od_buf *b = &p->bufs[v];
        if (b->grad && b->alias_of < 0 && b->grad != out->grad && !b->grad_written)
            memset(b->grad, 0, sizeof(float) * (size_t)b->count);
    }
    for (int s = p->n_steps - 1; s >= 0; s--) {
        od_step *stp = &p->steps[s];
        bool any = false;
        for (int k = 0; k < stp->n_in; k++) any |= stp->in[k] && stp->in[k]->grad;
        if (!any) continue;
        double t0 = prof ? od_seconds() : 0;
        od_status st = stp->op->backward(stp, err);
        if (st) return st;
        if (prof) prof[s].backward_s += od_seconds() - t0;
    }
    return OD_STATUS_OK;
}

int od_plan_profile(const od_plan *p, const od_step_profile **steps_out) {
    if (p->split) return od_plan_profile(od_plan_split_first(p->split), steps_out);
    *steps_out = p->profile;
    return p->profile ? p->n_steps : 0;
}

/* ---- constant folding --------------------------------------------------------- */

od_status od_eval_node(const od_node *n, int64_t opset, const od_op_desc *op,
                       const od_shape_info *const *in, const od_shape_info *outs,
                       od_tensor **out, od_error *err) {
    od_status st = OD_STATUS_OK;
    od_buf bufs[80];
    od_buf *in_p[64], *out_p[16];
    memset(bufs, 0, sizeof bufs);
    for (int k = 0; k < n->n_inputs; k++) {
        in_p[k] = NULL;
        if (!in[k]) continue;
        od_buf *b = &bufs[k];
        b->dtype = in[k]->dtype;
        b->rank = in[k]->rank;
        memcpy(b->dims, in[k]->dims, sizeof b->dims);
        b->constant = in[k]->constant;
        b->data = in[k]->constant->data;
        b->nbytes = in[k]->constant->nbytes;
        b->alias_of = -1;
        in_p[k] = b;
    }
    for (int k = 0; k < n->n_outputs; k++) {
        out_p[k] = NULL;
        if (n->outputs[k] < 0) continue;
        if (od_dtype_size(outs[k].dtype) == 0)
            return od_node_error(err, OD_STATUS_UNSUPPORTED, n, "output %d has element type %s",
                                 k, od_dtype_name(outs[k].dtype));
        out[k] = od_tensor_create(NULL, outs[k].dtype, outs[k].rank, outs[k].dims, err);
        if (!out[k]) {
            st = err ? err->status : OD_STATUS_OUT_OF_MEMORY;
            goto fail;
        }
        od_buf *b = &bufs[64 + k];
        b->dtype = outs[k].dtype;
        b->rank = outs[k].rank;
        memcpy(b->dims, outs[k].dims, sizeof b->dims);
        b->data = out[k]->data;
        b->nbytes = out[k]->nbytes;
        b->alias_of = -1;
        out_p[k] = b;
    }
    od_step s = {.node = n, .op = op, .opset = opset, .n_in = n->n_inputs, .n_out = n->n_outputs,
                 .in = in_p, .out = out_p, .act_min = -INFINITY, .act_max = INFINITY};
    if (op->prepare) st = op->prepare(&s, err);
    if (!st && op->alias_input0) {
        memcpy(out_p[0]->data, in_p[0]->data, out_p[0]->nbytes);
    } else if (!st) {
        st = op->run(&s, err);
    }
    if (op->destroy) op->destroy(&s);
    else free(s.state);
    if (!st) return OD_STATUS_OK;
fail:
    for (int k = 0; k < n->n_outputs; k++) {
        od_tensor_destroy(out[k]);
        out[k] = NULL;
    }
    return st;
}

/* Students chosen by a budget: parse "0.5ms@b1t2", "200KB", "2M-macs"; bisect the uniform width
 * until the student built from the teacher meets it. */
#include "od_onnx.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIN_WIDTH 0.001 /* --width's lower bound: every layer keeps --round channels */

static bool parse_int_after(const char **p, char c, long long *out) {
    if (tolower((unsigned char)**p) != c) return false;
    char *end;
    long long v = strtoll(*p + 1, &end, 10);
    if (end == *p + 1 || v < 1) return false;
    *out = v, *p = end;
    return true;
}

od_status od_budget_parse(const char *text, od_budget *out, od_error *err) {
    memset(out, 0, sizeof *out);
    out->batch = 1, out->threads = 1, out->margin_auto = true;
    if (!text || !*text) return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "--budget: empty");
    char *end;
    double v = strtod(text, &end);
    if (end == text || !isfinite(v))
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "--budget %s: expected a number and a unit, e.g. 0.5ms, 0.5ms@b1t2, 200KB, 2M-macs", text);
    if (v <= 0) return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "--budget %s: must be above 0", text);
    const char *u = end, *at = strchr(u, '@');
    size_t ulen = at ? (size_t)(at - u) : strlen(u);
    static const struct { const char *unit; od_budget_kind kind; double scale; } units[] = {
        {"s", OD_BUDGET_LATENCY, 1}, {"ms", OD_BUDGET_LATENCY, 1e-3}, {"us", OD_BUDGET_LATENCY, 1e-6},
        {"B", OD_BUDGET_SIZE, 1}, {"KB", OD_BUDGET_SIZE, 1e3}, {"MB", OD_BUDGET_SIZE, 1e6},
        {"GB", OD_BUDGET_SIZE, 1e9}, {"KiB", OD_BUDGET_SIZE, 1024}, {"MiB", OD_BUDGET_SIZE, 1048576},
        {"-macs", OD_BUDGET_MACS, 1}, {"K-macs", OD_BUDGET_MACS, 1e3}, {"M-macs", OD_BUDGET_MACS, 1e6},
        {"G-macs", OD_BUDGET_MACS, 1e9}, {"macs", OD_BUDGET_MACS, 1}, {"Kmacs", OD_BUDGET_MACS, 1e3},
        {"Mmacs", OD_BUDGET_MACS, 1e6}, {"Gmacs", OD_BUDGET_MACS, 1e9},
    };
    int k = -1;
    for (int i = 0; i < (int)(sizeof units / sizeof *units); i++)
        if (strlen(units[i].unit) == ulen &&
            (units[i].kind == OD_BUDGET_SIZE ? strncmp(u, units[i].unit, ulen) == 0
                                             : strncasecmp(u, units[i].unit, ulen) == 0))
            k = i;
    if (k < 0)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "--budget %s: unknown unit \"%.*s\" (latency: s, ms, us; size: B, KB, MB, GB, KiB, MiB; "
                            "MACs: -macs, K-macs, M-macs, G-macs)", text, (int)ulen, u);
    out->kind = units[k].kind;
    out->limit = v * units[k].scale;
    if (at) {
        const char *p = at + 1;
        long long b = 1, t = 1;
        bool ok = out->kind == OD_BUDGET_LATENCY && *p;
        if (ok && tolower((unsigned char)*p) == 'b') ok = parse_int_after(&p, 'b', &b) && b <= (1 << 20);
        if (ok && *p) ok = parse_int_after(&p, 't', &t) && t <= 256 && !*p;
        if (!ok)
            return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                                "--budget %s: \"@%s\" must follow a latency and read bN, tM or bNtM "
                                "(batch 1..1048576, threads 1..256)", text, at + 1);
        out->batch = b, out->threads = (int)t;
    }
    if (out->kind == OD_BUDGET_MACS && out->limit < 1)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "--budget %s: below one MAC", text);
    return OD_STATUS_OK;
}

const char *od_budget_describe(const od_budget *b, double value, char *buf, size_t size) {
    if (b->kind == OD_BUDGET_LATENCY)
        snprintf(buf, size, "%.4g ms", value * 1e3);
    else if (b->kind == OD_BUDGET_SIZE)
        snprintf(buf, size, "%.0f bytes", value);
    else
        snprintf(buf, size, "%.0f MACs", value);
    return buf;
}

double od_budget_margin_auto(double spread) {
    return spread < OD_BUDGET_MARGIN_MIN ? OD_BUDGET_MARGIN_MIN : spread > OD_BUDGET_MARGIN_MAX ? OD_BUDGET_MARGIN_MAX : spread;
}

/* What the student at this width gives: MACs, encoded bytes, or latency. */
static od_status measure(const od_model *m, const od_budget *b, double min_time, double *value, double *p90,
                         od_error *err) {
    *p90 = 0;
    if (b->kind == OD_BUDGET_MACS) {
        int64_t macs;
        od_status st = od_model_count(m, NULL, &macs, err);
        *value = (double)macs;
        return st;
    }
    if (b->kind == OD_BUDGET_SIZE) {
        od_bytes bytes = {0};
        od_status st = od_model_encode(m, &bytes, err);
        *value = (double)bytes.len;
        od_bytes_free(&bytes);
        return st;
    }
    if (b->timer) return b->timer(m, b->batch, b->threads, min_time, value, p90, b->timer_ctx, err);
    od_latency lat;
    od_status st = od_measure_latency(&m->graph, b->batch, b->threads, min_time, &lat, err);
    *value = lat.median, *p90 = lat.p90;
    return st;
}

/* A fresh measurement of a choice: MACs and size are exact; a latency is measured on VERIFY_PLANS
 * fresh plans (or runtime processes), each at least VERIFY_MIN_TIME seconds of runs, and the
 * slowest median (and p90) decides, so that a choice that fit by luck once does not pass. */
#define VERIFY_PLANS 3
#define VERIFY_MIN_TIME 0.3

/* m's latency on `plans` fresh plans (or runtime processes), each of min_time: the slowest median
 * and p90; *spread (may be NULL): the relative spread of the medians, (slowest - fastest) / fastest. */
static od_status measure_repeated(const od_model *m, const od_budget *b, double min_time, int plans, double *value,
                                  double *p90, double *spread, od_error *err) {
    double fastest = 0;
    *value = 0, *p90 = 0;
    for (int i = 0; i < plans; i++) {
        double v, q;
        od_status st = measure(m, b, min_time, &v, &q, err);
        if (st) return st;
        if (v > *value) *value = v;
        if (q > *p90) *p90 = q;
        if (!i || v < fastest) fastest = v;
    }
    if (spread) *spread = fastest > 0 ? (*value - fastest) / fastest : 0;
    return OD_STATUS_OK;
}

/* The fresh measurement times the model as the user will load it: encoded, decoded and checked as
 * od_model_load does (the same plan as the in-memory student today: this keeps it so). */
static od_status measure_fresh(const od_model *m, const od_budget *b, double min_time, double *value, double *p90,
                               od_error *err) {
    if (b->kind != OD_BUDGET_LATENCY) return measure(m, b, min_time, value, p90, err);
    od_bytes bytes = {0};
    od_model *file = NULL;
    od_status st = od_model_encode(m, &bytes, err);
    if (!st) st = od_model_decode(bytes.data, bytes.len, ".", &file, err);
    if (!st) st = od_graph_check(&file->graph, err);
    od_bytes_free(&bytes);
    if (!st)
        st = measure_repeated(file, b, min_time > VERIFY_MIN_TIME ? min_time : VERIFY_MIN_TIME, VERIFY_PLANS, value, p90,
                              NULL, err);
    od_model_destroy(file);
    return st;
}

/* Appends c to the candidates (when the list is full, the last entry stands for the latest). */
static void add_candidate(od_budget_result *res, od_budget_candidate c) {
    if (res->n_candidates < OD_BUDGET_MAX_CANDIDATES) res->n_candidates++;
    res->candidates[res->n_candidates - 1] = c;
}

/* Builds the student at this width (and the spec's depth) and measures it as a candidate
 * (verify: afresh); *fits set. The candidate is the last in res. */
static od_status try_width(const od_model *teacher, od_shrink_spec *spec, const od_budget *b, double min_time,
                           double width, bool verify, od_budget_result *res, bool *fits, od_error *err) {
    spec->width = width;
    od_model *m = NULL;
    od_status st = od_shrink(teacher, spec, &m, err);
    double value = 0, p90 = 0;
    if (!st) st = verify ? measure_fresh(m, b, min_time, &value, &p90, err) : measure(m, b, min_time, &value, &p90, err);
    od_model_destroy(m);
    if (st) return st;
    *fits = value <= b->limit;
    add_candidate(res, (od_budget_candidate){
        .width = width, .depth = spec->depth, .value = value, .p90 = p90, .fits = *fits, .verify = verify});
    return OD_STATUS_OK;
}

/* ---- per-layer refinement (MACs, size) ------------------------------------------------------ */

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

/* The teacher layer's channels' L1 norms as shares of the layer's L1 weight mass, largest first
 * (the order in which the builder keeps them); NULL when the node or its float weight is not
 * found. An approximation of the builder's choice: BatchNormalization scaling and groups are
 * ignored. *count gets the channel count. */
static double *sorted_shares(const od_graph *g, const char *name, int64_t *count) {
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (strcmp(n->name, name) || n->n_inputs < 2 || n->inputs[1] < 0) continue;
        const od_tensor *w = g->values[n->inputs[1]].init;
        if (!w || w->dtype != OD_DTYPE_FLOAT || w->rank < 2) return NULL;
        int axis = od_node_weight_axis(n, w->rank);
        if (axis < 0) axis = w->rank - 1;
        int64_t c = w->dims[axis], inner = 1, outer = 1;
        for (int d = axis + 1; d < w->rank; d++) inner *= w->dims[d];
        for (int d = 0; d < axis; d++) outer *= w->dims[d];
        double *norm = calloc((size_t)c + 1, sizeof *norm), total = 0;
        if (!norm) return NULL;
        const float *x = w->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < c; k++)
                for (int64_t j = 0; j < inner; j++) norm[k] += fabs(x[(o * c + k) * inner + j]);
        qsort(norm, (size_t)c, sizeof *norm, cmp_desc);
        for (int64_t k = 0; k < c; k++) total += norm[k];
        for (int64_t k = 0; k < c; k++) norm[k] = total > 0 ? norm[k] / total : 1.0 / (double)c;
        *count = c;
        return norm;
    }
    return NULL;
}

/* The share of the layer's L1 mass in its channels of rank [from, to): what the builder adds
 * going from `from` to `to` channels (uniform shares when the weight is not found). */
static double share_range(const double *share, int64_t count, int64_t teacher, int64_t from, int64_t to) {
    if (!share) return teacher > 0 ? (double)(to - from) / (double)teacher : 0;
    double part = 0;
    for (int64_t k = from; k < to && k < count; k++) part += share[k];
    return part;
}

static double saliency(const od_graph *g, const char *name, int64_t from, int64_t to) {
    int64_t c = 0;
    double *share = sorted_shares(g, name, &c);
    double part = share ? share_range(share, c, c, from, to) : 0;
    free(share);
    return part;
}

static int find_rule(const od_shrink_spec *spec, const char *node) {
    for (int i = 0; i < spec->n_channels; i++)
        if (!strcmp(spec->channels[i].pattern, node)) return i;
    return -1;
}

/* Sets node's rule to channels (adding it); -1 on no memory. Returns the rule's index. */
static int set_rule(od_shrink_spec *spec, const char *node, int64_t channels) {
    int i = find_rule(spec, node);
    if (i < 0) {
        od_shrink_rule *r = realloc(spec->channels, sizeof *r * (size_t)(spec->n_channels + 1));
        if (!r) return -1;
        spec->channels = r;
        if (!(r[spec->n_channels].pattern = strdup(node))) return -1;
        i = spec->n_channels++;
    }
    spec->channels[i].channels = channels;
    return i;
}

static void drop_rule(od_shrink_spec *spec, int i) {
    free(spec->channels[i].pattern);
    spec->channels[i] = spec->channels[--spec->n_channels];
}

static od_status refine(const od_model *teacher, od_shrink_spec *spec, const od_budget *b, od_budget_result *res,
                        od_error *err) {
    od_shrink_report rep = {0};
    od_model *m = NULL;
    od_status st = OD_STATUS_OK;
    for (int step = 0; step < OD_BUDGET_MAX_STEPS; step++) {
        od_shrink_report_clear(&rep);
        memset(&rep, 0, sizeof rep);
        if ((st = od_shrink_ex(teacher, spec, &m, &rep, err))) break;
        od_model_destroy(m);
        m = NULL;
        int best = -1;
        double best_gain = 0, best_value = 0, best_sal = 0;
        for (int i = 0; i < rep.n_layers; i++) {
            const od_shrink_layer *l = &rep.layers[i];
            if (l->pinned || !l->node[0] || strpbrk(l->node, "*?[\\") || strlen(l->node) >= sizeof res->steps[0].node ||
                l->student_channels >= l->teacher_channels)
                continue;
            int64_t want = l->student_channels + spec->round_to;
            if (want > l->teacher_channels) want = l->teacher_channels;
            int prev = find_rule(spec, l->node);
            int64_t prev_ch = prev >= 0 ? spec->channels[prev].channels : 0;
            int k = set_rule(spec, l->node, want);
            if (k < 0) {
                st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
                break;
            }
            double value = 0, p90;
            st = od_shrink(teacher, spec, &m, err);
            if (!st) st = measure(m, b, 0, &value, &p90, err);
            od_model_destroy(m);
            m = NULL;
            if (prev >= 0)
                spec->channels[k].channels = prev_ch;
            else
                drop_rule(spec, k);
            if (st) break;
            if (value > b->limit) continue;
            double sal = saliency(&teacher->graph, l->node, l->student_channels, want);
            double gain = sal / (value - res->value > 1 ? value - res->value : 1);
            if (best < 0 || gain > best_gain) best = i, best_gain = gain, best_value = value, best_sal = sal;
        }
        if (st || best < 0) break;
        const od_shrink_layer *l = &rep.layers[best];
        int64_t want = l->student_channels + spec->round_to;
        if (want > l->teacher_channels) want = l->teacher_channels;
        if (set_rule(spec, l->node, want) < 0) {
            st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
            break;
        }
        od_budget_step *s = &res->steps[res->n_steps++];
        snprintf(s->node, sizeof s->node, "%s", l->node);
        s->from = l->student_channels, s->to = want, s->saliency = best_sal, s->value = best_value;
        res->value = best_value;
    }
    od_shrink_report_clear(&rep);
    return st;
}

/* ---- per-layer search (latency) ------------------------------------------------------------
 * From the teacher's width, channels are cut one --round step at a time from the layer group
 * (layers whose channels must stay equal) that loses the least L1 weight mass per second saved,
 * until a latency model says the budget holds; the student is then built and measured, and the
 * model recalibrated there (channels may be given back) for a few rounds. The model: every step
 * of our plan, profiled on the current student, costs its time times its MACs' ratio; a group's
 * seconds per channel are the time saved by cutting it alone, computed from the MACs of the
 * student built with that cut (the same builder, so Flatten blocks, depthwise and residual
 * groups follow), scaled by the measured latency over the profiled sum. */

typedef struct layer_info {
    const char *node; /* the builder's report owns it */
    int group;        /* index into the groups */
    int64_t count;    /* channels the shares cover */
    double *share;    /* sorted L1 shares; NULL: unknown (uniform) */
} layer_info;

typedef struct group_info {
    int64_t teacher, cur, best, last; /* last: as the previous round measured it */
    int64_t floor; /* never cut below: half the uniform answer's channels (no bottleneck of a few) */
    double slope; /* seconds per channel */
    int n_members;
} group_info;

/* A student's nodes by name: MACs per sample and profiled seconds per run on our plans. */
typedef struct profile {
    int n_nodes;
    char **names;
    double *macs, *secs, profiled; /* profiled: the sum over the plan's steps */
} profile;

static void profile_clear(profile *f) {
    for (int i = 0; i < f->n_nodes; i++) free(f->names[i]);
    free(f->names), free(f->macs), free(f->secs);
    memset(f, 0, sizeof *f);
}

typedef struct per_layer {
    const od_model *teacher;
    const od_budget *b;
    od_shrink_spec work; /* width 1, the spec's depth, round, init, bn; rules for every member */
    od_shrink_report rep;
    int n_layers, n_groups;
    layer_info *layers;
    group_info *groups;
    profile ref;    /* the current student */
    profile narrow; /* every layer at --round channels: each step's time at (nearly) no MACs */
    double *per_mac; /* seconds per MAC of each node of ref */
    double scale, real; /* measured latency over ref's profiled sum; ref's measured latency */
} per_layer;

static void per_layer_clear(per_layer *p) {
    for (int i = 0; i < p->n_layers; i++) free(p->layers[i].share);
    free(p->layers), free(p->groups), free(p->per_mac);
    profile_clear(&p->ref), profile_clear(&p->narrow);
    od_shrink_report_clear(&p->rep);
    od_shrink_spec_clear(&p->work);
}

/* The geometric mean over the teacher's shrinkable layers of the L1 share their kept channels
 * carry: the proxy for accuracy the search keeps (1 for the teacher). Geometric, so that a layer
 * cut to a bottleneck costs more than the same share taken from several layers. */
static double kept_share(const od_graph *teacher, const od_shrink_report *r) {
    double sum = 0;
    int n = 0;
    for (int i = 0; i < r->n_layers; i++) {
        const od_shrink_layer *l = &r->layers[i];
        if (l->pinned || l->teacher_channels <= 0) continue;
        int64_t c = 0;
        double *share = sorted_shares(teacher, l->node, &c);
        double kept = share_range(share, c, l->teacher_channels, 0, l->student_channels);
        sum += log(kept > 1e-12 ? kept : 1e-12);
        free(share);
        n++;
    }
    return n ? exp(sum / n) : 1;
}

/* What moving the group from `from` to `to` channels changes in the log of the proxy, summed
 * over the group's members (each layer counts once in the mean). */
static double group_share(const per_layer *p, int g, int64_t from, int64_t to) {
    double sum = 0;
    for (int i = 0; i < p->n_layers; i++) {
        const layer_info *l = &p->layers[i];
        if (l->group != g) continue;
        double a = share_range(l->share, l->count, p->groups[g].teacher, 0, from < to ? from : to);
        double b = share_range(l->share, l->count, p->groups[g].teacher, 0, from < to ? to : from);
        sum += log(b > 1e-12 ? b : 1e-12) - log(a > 1e-12 ? a : 1e-12);
    }
    return sum;
}

/* The work spec's rules: every member of every group at its group's `cur` (or `best`). */
static od_status set_rules(per_layer *p, bool best, od_error *err) {
    for (int i = 0; i < p->n_layers; i++) {
        const group_info *g = &p->groups[p->layers[i].group];
        if (set_rule(&p->work, p->layers[i].node, best ? g->best : g->cur) < 0)
            return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    return OD_STATUS_OK;
}

/* MACs of m's nodes, by the names in f (-1: not in m). */
static od_status node_macs(const od_model *m, double *macs, const profile *f, od_error *err) {
    od_graph_shapes s;
    od_error ignored = {0};
    const od_graph *g = &m->graph;
    if (od_graph_infer_ex(g, 1, true, &s, &ignored)) return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "%s", ignored.message);
    for (int k = 0; k < f->n_nodes; k++) macs[k] = -1;
    for (int i = 0; i < g->n_nodes; i++) {
        const char *name = g->nodes[i].name;
        if (!name || !*name) continue;
        int k = i < f->n_nodes && !strcmp(f->names[i], name) ? i : -1; /* usually in the same place */
        for (int j = 0; k < 0 && j < f->n_nodes; j++)
            if (!strcmp(f->names[j], name)) k = j;
        if (k >= 0) macs[k] = (double)od_node_macs(g, i, &s);
    }
    od_graph_shapes_clear(&s);
    return OD_STATUS_OK;
}

/* Profiles m on our plans at the budget's batch and threads. */
static od_status profile_model(const od_model *m, const od_budget *b, double min_time, profile *f, od_error *err) {
    const od_graph *g = &m->graph;
    profile_clear(f);
    f->names = calloc((size_t)g->n_nodes + 1, sizeof *f->names);
    f->macs = calloc((size_t)g->n_nodes + 1, sizeof *f->macs);
    f->secs = calloc((size_t)g->n_nodes + 1, sizeof *f->secs);
    if (!f->names || !f->macs || !f->secs) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < g->n_nodes; i++, f->n_nodes++)
        if (!(f->names[i] = strdup(g->nodes[i].name ? g->nodes[i].name : "")))
            return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    od_plan *plan = NULL;
    od_status st = node_macs(m, f->macs, f, err);
    if (!st) st = od_plan_create(g, &(od_plan_options){.batch = b->batch, .threads = b->threads, .profile = true}, &plan, err);
    if (st) return st;
    od_plan_fill_bench_inputs(plan);
    od_latency lat;
    if (!(st = od_measure_latency_plan(plan, min_time, &lat, err))) {
        const od_step_profile *steps;
        int n_steps = od_plan_profile(plan, &steps);
        for (int s = 0; s < n_steps; s++) {
            double t = steps[s].runs ? steps[s].seconds / (double)steps[s].runs : 0;
            f->profiled += t;
            for (int k = 0; k < f->n_nodes; k++)
                if (!strcmp(f->names[k], steps[s].node_name)) {
                    f->secs[k] += t;
                    break;
                }
        }
    }
    od_plan_destroy(plan);
    return st;
}

/* Profiles the reference student m (measured at `real` seconds by the budget's timer): each
 * step's time is taken as linear in its MACs between the narrow student's and this one's (a
 * per-op model calibrated in context), the whole scaled to the measured latency. */
static od_status calibrate(per_layer *p, const od_model *m, double real, double min_time, od_error *err) {
    od_status st = profile_model(m, p->b, min_time, &p->ref, err);
    if (st) return st;
    const profile *r = &p->ref;
    free(p->per_mac);
    if (!(p->per_mac = calloc((size_t)r->n_nodes + 1, sizeof *p->per_mac)))
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int k = 0; k < r->n_nodes; k++) {
        double t0 = 0, m0 = 0;
        for (int j = 0; j < p->narrow.n_nodes; j++)
            if (!strcmp(p->narrow.names[j], r->names[k])) {
                t0 = p->narrow.secs[j], m0 = p->narrow.macs[j] > 0 ? p->narrow.macs[j] : 0;
                break;
            }
        if (r->macs[k] > m0 && r->secs[k] > t0)
            p->per_mac[k] = (r->secs[k] - t0) / (r->macs[k] - m0);
        else if (r->macs[k] > 0) /* noise put the narrow step above this one: proportional instead */
            p->per_mac[k] = r->secs[k] / r->macs[k];
    }
    p->scale = r->profiled > 0 ? real / r->profiled : 1;
    p->real = real;
    return OD_STATUS_OK;
}

/* The model's latency for the work spec's student (built to count its MACs). */
static od_status predict(per_layer *p, double *macs, double *out, od_error *err) {
    od_model *c = NULL;
    od_status st = od_shrink(p->teacher, &p->work, &c, err);
    if (!st) st = node_macs(c, macs, &p->ref, err);
    od_model_destroy(c);
    if (st) return st;
    double dt = 0;
    for (int k = 0; k < p->ref.n_nodes; k++)
        if (macs[k] >= 0) dt += p->per_mac[k] * (macs[k] - p->ref.macs[k]);
    *out = p->real + p->scale * dt;
    return OD_STATUS_OK;
}

/* The model's latency at the groups' `cur` and every group's seconds per channel there, from the
 * student built with that group alone cut by a quarter (or --round channels). */
static od_status slopes(per_layer *p, double *predicted, od_error *err) {
    double *macs = calloc((size_t)p->ref.n_nodes + 1, sizeof *macs);
    if (!macs) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    od_status st = set_rules(p, false, err);
    if (!st) st = predict(p, macs, predicted, err);
    for (int gi = 0; !st && gi < p->n_groups; gi++) {
        group_info *gr = &p->groups[gi];
        int64_t d = gr->cur / 4 / p->work.round_to * p->work.round_to;
        if (d < p->work.round_to) d = p->work.round_to;
        int64_t to = gr->cur - d >= p->work.round_to ? gr->cur - d : gr->cur + d <= gr->teacher ? gr->cur + d : gr->cur;
        gr->slope = 0;
        if (to == gr->cur) continue;
        int64_t keep = gr->cur;
        double there = 0;
        gr->cur = to;
        st = set_rules(p, false, err);
        gr->cur = keep;
        if (!st) st = predict(p, macs, &there, err);
        gr->slope = fabs(*predicted - there) / (double)llabs(keep - to);
    }
    if (!st) st = set_rules(p, false, err);
    free(macs);
    return st;
}

/* Moves channels by the model until the predicted latency is at most target: cuts first (the
 * least L1 share per second saved), then gives back (the most per second spent) while it holds. */
static void allocate(per_layer *p, double predicted, double target) {
    int r = p->work.round_to;
    while (predicted > target) {
        int best = -1;
        double best_ratio = 0;
        for (int gi = 0; gi < p->n_groups; gi++) {
            group_info *g = &p->groups[gi];
            int64_t chunk = g->cur - g->floor < r ? g->cur - g->floor : r;
            if (chunk <= 0 || g->slope <= 0) continue;
            double ratio = group_share(p, gi, g->cur - chunk, g->cur) / (g->slope * (double)chunk);
            if (best < 0 || ratio < best_ratio) best = gi, best_ratio = ratio;
        }
        if (best < 0) break;
        group_info *g = &p->groups[best];
        int64_t chunk = g->cur - g->floor < r ? g->cur - g->floor : r;
        g->cur -= chunk, predicted -= g->slope * (double)chunk;
    }
    for (;;) {
        int best = -1;
        double best_ratio = 0;
        for (int gi = 0; gi < p->n_groups; gi++) {
            group_info *g = &p->groups[gi];
            int64_t chunk = g->teacher - g->cur < r ? g->teacher - g->cur : r;
            if (chunk <= 0 || g->slope <= 0 || predicted + g->slope * (double)chunk > target) continue;
            double ratio = group_share(p, gi, g->cur, g->cur + chunk) / (g->slope * (double)chunk);
            if (best < 0 || ratio > best_ratio) best = gi, best_ratio = ratio;
        }
        if (best < 0) break;
        group_info *g = &p->groups[best];
        int64_t chunk = g->teacher - g->cur < r ? g->teacher - g->cur : r;
        g->cur += chunk, predicted += g->slope * (double)chunk;
    }
}

#define PER_LAYER_ROUNDS 4
#define PER_LAYER_WIN 1.05    /* the per-layer student wins when it keeps 5% more of the proxy */
#define PER_LAYER_MARGIN 0.95 /* the model aims this far under the budget: noise and model error */
#define PER_LAYER_RECUTS 3    /* cuts after a fresh measurement of the choice missed */

/* Builds the work spec's student and measures it as a candidate; *fits and *kept set. */
static od_status per_layer_candidate(per_layer *p, double min_time, int round, bool verify, od_budget_result *res,
                                     bool *fits, double *value, od_error *err) {
    od_model *m = NULL;
    od_shrink_report rep = {0};
    double p90 = 0;
    od_status st = od_shrink_ex(p->teacher, &p->work, &m, &rep, err);
    if (!st) st = verify ? measure_fresh(m, p->b, min_time, value, &p90, err) : measure(m, p->b, min_time, value, &p90, err);
    double kept = st ? 0 : kept_share(&p->teacher->graph, &rep);
    od_shrink_report_clear(&rep);
    od_model_destroy(m);
    if (st) return st;
    *fits = *value <= p->b->limit;
    add_candidate(res, (od_budget_candidate){.width = 1, .depth = p->work.depth, .per_layer = true, .round = round,
                                             .kept = kept, .value = *value, .p90 = p90, .fits = *fits, .verify = verify});
    return OD_STATUS_OK;
}

/* The per-layer search; on success with a verified fit, spec->channels and spec->width (1) hold
 * it and *found is set. */
static od_status per_layer_search(const od_model *teacher, od_shrink_spec *spec, const od_budget *b, double min_time,
                                  od_budget_result *res, bool *found, od_error *err) {
    per_layer p = {.teacher = teacher, .b = b};
    *found = false;
    p.work = *spec;
    p.work.width = 1, p.work.spec_path = NULL, p.work.n_channels = 0, p.work.channels = NULL, p.work.n_drop = 0,
    p.work.drop = NULL;
    od_model *m = NULL;
    od_status st = od_shrink_ex(teacher, &p.work, &m, &p.rep, err);
    if (st) goto done;
    od_model_destroy(m); /* only its report is needed */
    m = NULL;
    p.layers = calloc((size_t)p.rep.n_layers + 1, sizeof *p.layers);
    p.groups = calloc((size_t)p.rep.n_layers + 1, sizeof *p.groups);
    int *group_of = calloc((size_t)p.rep.n_layers + 1, sizeof *group_of);
    if (!p.layers || !p.groups || !group_of) {
        free(group_of);
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    /* groups with a pinned member or a name a rule cannot say exactly stay whole */
    for (int i = 0; i < p.rep.n_layers; i++) {
        const od_shrink_layer *l = &p.rep.layers[i];
        bool ok = !l->pinned && l->node[0] && !strpbrk(l->node, "*?[\\") && l->teacher_channels > spec->round_to;
        for (int j = 0; ok && j < p.rep.n_layers; j++)
            if (p.rep.layers[j].group == l->group && (p.rep.layers[j].pinned || !p.rep.layers[j].node[0] ||
                                                        strpbrk(p.rep.layers[j].node, "*?[\\")))
                ok = false;
        if (!ok) continue;
        int g = -1;
        for (int k = 0; k < p.n_layers && g < 0; k++)
            if (group_of[k] == l->group) g = p.layers[k].group;
        if (g < 0) {
            g = p.n_groups++;
            int64_t floor = (int64_t)ceil(0.5 * res->width * (double)l->teacher_channels / spec->round_to) * spec->round_to;
            p.groups[g] = (group_info){.teacher = l->teacher_channels, .cur = l->teacher_channels,
                                       .floor = floor > spec->round_to ? floor : spec->round_to};
        }
        p.groups[g].n_members++;
        group_of[p.n_layers] = l->group;
        layer_info *li = &p.layers[p.n_layers++];
        li->node = l->node, li->group = g;
        li->share = sorted_shares(&teacher->graph, l->node, &li->count);
    }
    free(group_of);
    if (!p.n_groups) goto done;
    double real = res->teacher_value, best_kept = -1;
    double p90;
    for (int g = 0; g < p.n_groups; g++) p.groups[g].cur = spec->round_to;
    if ((st = set_rules(&p, false, err)) || (st = od_shrink(teacher, &p.work, &m, err)) ||
        (st = profile_model(m, b, min_time * 0.5, &p.narrow, err)))
        goto done;
    od_model_destroy(m);
    m = NULL;
    for (int g = 0; g < p.n_groups; g++) p.groups[g].cur = p.groups[g].teacher;
    if ((st = set_rules(&p, false, err)) || (st = od_shrink(teacher, &p.work, &m, err)) || (st = measure(m, b, min_time, &real, &p90, err)))
        goto done;
    for (int round = 1; round <= PER_LAYER_ROUNDS; round++) {
        if ((st = calibrate(&p, m, real, min_time * 0.5, err))) goto done;
        od_model_destroy(m);
        m = NULL;
        /* the model is linear in each group's channels only near where its slopes were taken:
         * move, take them again there, a few times (MACs counted, nothing measured) */
        for (int it = 0; it < 4; it++) {
            double predicted;
            if ((st = slopes(&p, &predicted, err))) goto done;
            if (it > 0 && predicted <= b->limit * PER_LAYER_MARGIN && predicted >= 0.97 * b->limit * PER_LAYER_MARGIN) break;
            allocate(&p, predicted, b->limit * PER_LAYER_MARGIN);
        }
        bool moved = false; /* the same student as the last round would measure the same: stop */
        for (int g = 0; g < p.n_groups; g++) moved |= p.groups[g].cur != p.groups[g].last;
        if (round > 1 && !moved) break;
        for (int g = 0; g < p.n_groups; g++) p.groups[g].last = p.groups[g].cur;
        if ((st = set_rules(&p, false, err))) goto done;
        bool fits;
        if ((st = per_layer_candidate(&p, min_time, round, false, res, &fits, &real, err))) goto done;
        double kept = res->candidates[res->n_candidates - 1].kept;
        if (fits && kept > best_kept) {
            best_kept = kept;
            for (int g = 0; g < p.n_groups; g++) p.groups[g].best = p.groups[g].cur;
        }
        if (fits && real >= 0.9 * b->limit) break;
        if (round < PER_LAYER_ROUNDS && (st = od_shrink(teacher, &p.work, &m, err))) goto done;
    }
    if (best_kept < 0) goto done;
    /* a fresh measurement of the best that fit decides; a miss cuts per layer by the model,
     * recalibrated on the student that missed and aimed lower by the miss, and measures afresh
     * again (PER_LAYER_RECUTS times at most) */
    double aim = b->limit * PER_LAYER_MARGIN;
    bool fits = false;
    for (int tries = 0;; tries++) {
        if ((st = set_rules(&p, true, err))) goto done;
        if ((st = per_layer_candidate(&p, min_time, 0, true, res, &fits, &real, err))) goto done;
        if (fits || tries == PER_LAYER_RECUTS) break;
        for (int g = 0; g < p.n_groups; g++) p.groups[g].cur = p.groups[g].best;
        if ((st = set_rules(&p, false, err)) || (st = od_shrink(teacher, &p.work, &m, err)) ||
            (st = calibrate(&p, m, real, min_time * 0.5, err)))
            goto done;
        od_model_destroy(m);
        m = NULL;
        aim *= b->limit / real;
        for (int it = 0; it < 4; it++) {
            double predicted;
            if ((st = slopes(&p, &predicted, err))) goto done;
            if (it > 0 && predicted <= aim && predicted >= 0.97 * aim) break;
            allocate(&p, predicted, aim);
        }
        bool moved = false; /* nothing left to cut above the floors: the per-layer search gives up */
        for (int g = 0; g < p.n_groups; g++) {
            moved |= p.groups[g].cur != p.groups[g].best;
            p.groups[g].best = p.groups[g].cur;
        }
        if (!moved) break;
    }
    if (!fits) goto done;
    od_shrink_spec_clear(spec);
    spec->width = 1;
    spec->channels = p.work.channels, spec->n_channels = p.work.n_channels;
    p.work.channels = NULL, p.work.n_channels = 0;
    res->kept = res->candidates[res->n_candidates - 1].kept;
    res->value = real, res->p90 = res->candidates[res->n_candidates - 1].p90;
    *found = true;
done:
    od_model_destroy(m);
    per_layer_clear(&p);
    return st;
}

/* ---- the search ------------------------------------------------------------------------------ */

#define VERIFY_TRIES 8     /* fresh measurements of the uniform choice, cutting after each miss */
#define USELESS_KEPT 0.25  /* a choice keeping less of the teacher's L1 mass per layer is warned about */
#define DROPPED_SHARE 0.25 /* the depth-aware proxy: what a layer of a dropped block counts as keeping */
#define DEPTH_WIN 1.05     /* blocks are dropped for width when the proxy gains over 5% by it (it is rough:
                            * the cnn at 1/2 of its latency, 68.2% against 65.9% at full depth, distilled
                            * to 88.3% against 91.6%) */

/* Blocks kept of n at a depth (as the builder rounds), and the depth that keeps k of them. */
static int blocks_kept(double depth, int n) { return (int)lround(depth * n); }
static double depth_keeping(int k, int n) { return k >= n ? 1 : k > 0 ? (double)k / n : 0.25 / n; }

/* The proxy (kept L1 share) of the spec's student and the teacher's removable blocks. */
static od_status spec_facts(const od_model *teacher, const od_shrink_spec *spec, double *kept, int *n_blocks,
                            od_error *err) {
    od_shrink_report rep = {0};
    od_model *m = NULL;
    od_status st = od_shrink_ex(teacher, spec, &m, &rep, err);
    od_model_destroy(m);
    if (!st && kept) *kept = kept_share(&teacher->graph, &rep);
    if (!st && n_blocks) *n_blocks = rep.n_blocks;
    od_shrink_report_clear(&rep);
    return st;
}

/* The depth-aware proxy for accuracy of the spec's student: the geometric mean, over the teacher's
 * layers (`full`: the report of the teacher built at width 1, depth 1), of the share of each
 * layer's L1 weight mass its kept channels carry, where a layer of a dropped block counts
 * DROPPED_SHARE and a layer whose width is tied to an earlier one (the rest of its channel group:
 * a residual trunk, a depthwise conv and its producer) is left out, so that a group counts once.
 * Unlike kept_share, dropping blocks costs in it: width and depth are compared on one scale. */
static double depth_proxy(const od_graph *teacher, const od_shrink_report *full, const od_shrink_report *r) {
    double sum = 0;
    int n = 0;
    for (int i = 0; i < full->n_layers; i++) {
        const od_shrink_layer *l = &full->layers[i];
        bool tied = false;
        for (int j = 0; j < i && !tied; j++) tied = full->layers[j].group == l->group;
        if (tied || l->pinned || l->teacher_channels <= 0 || !l->node) continue;
        const od_shrink_layer *s = NULL;
        for (int j = 0; j < r->n_layers && !s; j++)
            if (r->layers[j].node && !strcmp(r->layers[j].node, l->node)) s = &r->layers[j];
        double kept = DROPPED_SHARE;
        if (s) {
            int64_t c = 0;
            double *share = sorted_shares(teacher, l->node, &c);
            kept = share_range(share, c, l->teacher_channels, 0, s->student_channels);
            free(share);
        }
        sum += log(kept > 1e-12 ? kept : 1e-12);
        n++;
    }
    return n ? exp(sum / n) : 1;
}

/* The teacher's layers as the proxy reads them: the teacher built at width 1, depth 1 with the
 * spec's other rules. */
static od_status teacher_layers(const od_model *teacher, const od_shrink_spec *spec, od_shrink_report *full, od_error *err) {
    od_shrink_spec whole = *spec;
    whole.width = 1, whole.depth = 1, whole.spec_path = NULL, whole.channels = NULL, whole.n_channels = 0,
    whole.drop = NULL, whole.n_drop = 0;
    od_model *m = NULL;
    od_status st = od_shrink_ex(teacher, &whole, &m, full, err);
    od_model_destroy(m);
    return st;
}

/* The depth-aware proxy of the spec's student, against the teacher's layers `full`. */
static od_status spec_proxy(const od_model *teacher, const od_shrink_report *full, const od_shrink_spec *spec,
                            double *proxy, od_error *err) {
    od_shrink_report rep = {0};
    od_model *m = NULL;
    od_status st = od_shrink_ex(teacher, spec, &m, &rep, err);
    od_model_destroy(m);
    if (!st) *proxy = depth_proxy(&teacher->graph, full, &rep);
    od_shrink_report_clear(&rep);
    return st;
}

od_status od_budget_depth_proxy(const od_model *teacher, const od_shrink_spec *spec, double *proxy, od_error *err) {
    od_shrink_report full = {0};
    od_status st = teacher_layers(teacher, spec, &full, err);
    if (!st) st = spec_proxy(teacher, &full, spec, proxy, err);
    od_shrink_report_clear(&full);
    return st;
}

/* The widest uniform width at the spec's depth that fits by the search's measurements (*width 0:
 * none; *narrowest: width 0.001's value): the narrowest first, width 1, then the bisection. MACs
 * and size are exact, so 12 halvings (widths to 1/4096); a latency is noisy and slow to measure,
 * so 7 (1/128). */
static od_status bisect_width(const od_model *teacher, od_shrink_spec *spec, const od_budget *b, double min_time,
                              od_budget_result *res, double *width, double *value, double *narrowest,
                              od_error *err) {
    bool fits;
    *width = 0;
    od_status st = try_width(teacher, spec, b, min_time, MIN_WIDTH, false, res, &fits, err);
    if (st) return st;
    *narrowest = *value = res->candidates[res->n_candidates - 1].value;
    if (!fits) return OD_STATUS_OK;
    *width = MIN_WIDTH;
    if ((st = try_width(teacher, spec, b, min_time, 1, false, res, &fits, err))) return st;
    if (fits) {
        *width = 1, *value = res->candidates[res->n_candidates - 1].value;
        return OD_STATUS_OK;
    }
    double lo = 0, hi = 1; /* dyadic widths; below MIN_WIDTH every width builds the same student */
    for (int i = 0; i < (b->kind == OD_BUDGET_LATENCY ? 7 : 12); i++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= MIN_WIDTH) break;
        if ((st = try_width(teacher, spec, b, min_time, mid, false, res, &fits, err))) return st;
        if (fits)
            lo = *width = mid, *value = res->candidates[res->n_candidates - 1].value;
        else
            hi = mid;
    }
    return OD_STATUS_OK;
}

/* "the fastest: 0.61 ms (width 0.0078, depth 1)" over the fresh measurements of a and b (b may be NULL). */
static const char *fastest_fresh(const od_budget *bud, const od_budget_result *a, const od_budget_result *b,
                                 char *buf, size_t size) {
    const od_budget_candidate *best = NULL;
    for (int r = 0; r < 2; r++) {
        const od_budget_result *x = r ? b : a;
        for (int i = 0; x && i < x->n_candidates; i++)
            if (x->candidates[i].verify && (!best || x->candidates[i].value < best->value)) best = &x->candidates[i];
    }
    char v[64];
    if (!best)
        snprintf(buf, size, "none measured");
    else if (best->per_layer)
        snprintf(buf, size, "%s (per-layer channels, depth %.4g)", od_budget_describe(bud, best->value, v, sizeof v),
                 best->depth);
    else
        snprintf(buf, size, "%s (width %.6g, depth %.4g)", od_budget_describe(bud, best->value, v, sizeof v), best->width,
                 best->depth);
    return buf;
}

/* The margin of a latency search: the asked one, or (auto) the largest relative spread of the
 * teacher's and the narrowest student's repeated measurements, clamped; the teacher's value is
 * the slowest of its medians. */
static od_status search_margin(const od_model *teacher, const od_shrink_spec *spec, const od_budget *b,
                               double min_time, od_budget_result *res, od_error *err) {
    if (b->kind != OD_BUDGET_LATENCY) return measure(teacher, b, min_time, &res->teacher_value, &res->teacher_p90, err);
    double spread = 0, p90, narrow;
    od_status st = measure_repeated(teacher, b, min_time, OD_BUDGET_MARGIN_RUNS, &res->teacher_value, &res->teacher_p90,
                                    &res->spread, err);
    if (st || !b->margin_auto) {
        res->margin = b->margin;
        return st;
    }
    od_shrink_spec s = *spec;
    s.width = MIN_WIDTH;
    od_model *m = NULL;
    if (!(st = od_shrink(teacher, &s, &m, err)))
        st = measure_repeated(m, b, min_time, OD_BUDGET_MARGIN_RUNS, &narrow, &p90, &spread, err);
    od_model_destroy(m);
    if (spread > res->spread) res->spread = spread;
    res->margin = od_budget_margin_auto(res->spread);
    return st;
}

od_status od_budget_search(const od_model *teacher, od_shrink_spec *spec, const od_budget *asked,
                           double min_time, od_budget_result *res, od_model **student_out,
                           od_error *err) {
    memset(res, 0, sizeof *res);
    res->min_time = min_time;
    char v[64], l[64], u2[64], f[160];
    bool lat = asked->kind == OD_BUDGET_LATENCY;
    int n = 0;
    od_status st = search_margin(teacher, spec, asked, min_time, res, err);
    if (!st) st = spec_facts(teacher, spec, NULL, &n, err);
    if (st) return st;
    /* the search, its verification included, aims under the budget by the margin */
    od_budget aimed = *asked;
    aimed.limit = asked->limit * (1 - res->margin);
    const od_budget *b = &aimed;
    res->n_blocks = n;
    int k = blocks_kept(spec->depth, n), k_asked = k;
    double width = 0, value = 0, narrowest = 0, kept = 1;
    const char *dropped_why = NULL; /* why blocks were dropped, when they were */
    char depth_why[200];
    /* width first; when even the narrowest student is over, blocks go one at a time until it is not
     * (an unreachable budget is said before any bisection) */
    if ((st = bisect_width(teacher, spec, b, min_time, res, &width, &value, &narrowest, err))) return st;
    while (!width && k > 0) {
        dropped_why = "width alone could not meet the budget";
        spec->depth = depth_keeping(--k, n);
        if ((st = bisect_width(teacher, spec, b, min_time, res, &width, &value, &narrowest, err))) return st;
    }
    if (!width) {
        char blocks[64] = "";
        if (n) snprintf(blocks, sizeof blocks, " with all %d removable blocks dropped", n);
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "--budget: even width %g (round %d) gives %s%s, over the budget of %s",
                            MIN_WIDTH, spec->round_to, od_budget_describe(b, narrowest, v, sizeof v), blocks,
                            od_budget_describe(b, asked->limit, l, sizeof l));
    }
    spec->width = width;
    if (width < 1 && (st = spec_facts(teacher, spec, &kept, NULL, err))) return st;
    /* latency: width against depth. Every lower block count is bisected too, and the candidate with
     * the highest depth-aware proxy wins (small models spend much of their time in per-operator
     * costs that width cannot remove: dropping blocks can buy back more width than it costs) */
    if (lat && width < 1 && k > 0) {
        double best = 0, at_k = 0;
        int best_k = k;
        double best_width = width, best_value = value;
        od_shrink_report full = {0}; /* the teacher's layers, built once for every proxy below */
        st = teacher_layers(teacher, spec, &full, err);
        if (!st) st = spec_proxy(teacher, &full, spec, &best, err);
        at_k = best;
        for (int kk = k - 1; !st && kk >= 0; kk--) {
            double w, val, proxy = 0;
            spec->depth = depth_keeping(kk, n);
            if ((st = bisect_width(teacher, spec, b, min_time, res, &w, &val, &narrowest, err))) break;
            if (w <= 0) continue;
            spec->width = w;
            if ((st = spec_proxy(teacher, &full, spec, &proxy, err))) break;
            if (proxy > best) best = proxy, best_k = kk, best_width = w, best_value = val;
        }
        od_shrink_report_clear(&full);
        if (st) return st;
        if (best_k < k && best > DEPTH_WIN * at_k) {
            snprintf(depth_why, sizeof depth_why,
                     "the depth-aware proxy (dropped blocks' layers counting %.0f%%) keeps %.1f%% there, over 5%% more than "
                     "the %.1f%% with them",
                     100 * DROPPED_SHARE, 100 * best, 100 * at_k);
            dropped_why = depth_why;
            k = best_k, width = best_width, value = best_value;
        }
        spec->depth = depth_keeping(k, n), spec->width = width;
        if (width < 1 && (st = spec_facts(teacher, spec, &kept, NULL, err))) return st;
    }
    res->width = width, res->value = res->uniform_value = value;

    /* latency: the choice measured afresh (several fresh plans, the slowest decides); a miss cuts
     * the width by the miss (a latency grows about as the width squared over a floor), by 1/16 at
     * least, and at the narrowest width drops a block */
    bool uniform_ok = !lat;
    for (int i = 0; lat && i < VERIFY_TRIES; i++) {
        bool fits;
        if ((st = try_width(teacher, spec, b, min_time, width, true, res, &fits, err))) return st;
        const od_budget_candidate *c = &res->candidates[res->n_candidates - 1];
        if (fits) {
            uniform_ok = true;
            res->width = width, res->value = res->uniform_value = c->value, res->p90 = c->p90;
            break;
        }
        double down = width * fmin(15.0 / 16, sqrt(b->limit / c->value));
        if (width > MIN_WIDTH && down < MIN_WIDTH) down = MIN_WIDTH;
        if (down < MIN_WIDTH) {
            if (k == 0) break;
            dropped_why = "the narrowest width missed the budget when measured afresh";
            spec->depth = depth_keeping(--k, n);
            down = MIN_WIDTH;
        }
        width = down;
    }
    spec->width = width;
    res->uniform_kept = res->kept = 1;
    if (width < 1 && (st = spec_facts(teacher, spec, &res->uniform_kept, NULL, err))) return st;
    res->kept = res->uniform_kept;
    if (!uniform_ok) res->width = width;

    if (lat && width < 1 && spec->init == OD_SHRINK_INIT_TEACHER) {
        od_shrink_spec trial = *spec; /* the per-layer search replaces trial's rules when it finds one */
        trial.channels = NULL, trial.n_channels = 0, trial.drop = NULL, trial.n_drop = 0;
        od_budget_result pl = *res;
        bool found = false;
        if ((st = per_layer_search(teacher, &trial, b, min_time, &pl, &found, err))) {
            od_shrink_spec_clear(&trial);
            return st;
        }
        /* the proxy is rough: the uniform student, the safer default, stays unless the per-layer one
         * clearly keeps more (or the uniform widths missed when measured afresh) */
        if (found && (!uniform_ok || pl.kept > PER_LAYER_WIN * res->uniform_kept)) {
            if (uniform_ok)
                snprintf(pl.why, sizeof pl.why,
                         "the per-layer student met the budget when measured afresh (%s) and keeps %.1f%% of the teacher's "
                         "L1 weight mass per layer (geometric mean), over 5%% more than the widest uniform width that meets it (%.6g: %.1f%% at %s)",
                         od_budget_describe(b, pl.value, v, sizeof v), 100 * pl.kept, res->width, 100 * res->uniform_kept,
                         od_budget_describe(b, res->uniform_value, u2, sizeof u2));
            else
                snprintf(pl.why, sizeof pl.why,
                         "the per-layer student met the budget when measured afresh (%s, keeping %.1f%% of the teacher's "
                         "L1 weight mass per layer) and no uniform width did",
                         od_budget_describe(b, pl.value, v, sizeof v), 100 * pl.kept);
            *res = pl;
            res->per_layer = true;
            od_shrink_spec_clear(spec);
            spec->width = trial.width, spec->channels = trial.channels, spec->n_channels = trial.n_channels;
            trial.channels = NULL, trial.n_channels = 0;
        } else if (uniform_ok) {
            snprintf(res->why, sizeof res->why,
                     "the widest uniform width that meets the budget (%.1f%% of the teacher's L1 weight mass per layer, geometric mean) %s",
                     100 * res->uniform_kept,
                     !found ? "won: no per-layer candidate met the budget when measured afresh"
                            : "won: the per-layer student did not keep 5% more of it");
            for (int i = res->n_candidates; i < pl.n_candidates; i++) /* the per-layer candidates are listed all the same */
                add_candidate(res, pl.candidates[i]);
        } else {
            od_shrink_spec_clear(&trial);
            return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                                "--budget: no student met the budget of %s (with a margin of %.1f%%) when measured "
                                "afresh; the fastest: %s",
                                od_budget_describe(b, asked->limit, l, sizeof l), 100 * res->margin,
                                fastest_fresh(b, res, &pl, f, sizeof f));
        }
        od_shrink_spec_clear(&trial);
    }
    if (!uniform_ok && !res->per_layer)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "--budget: no student met the budget of %s (with a margin of %.1f%%) when measured afresh; "
                            "the fastest: %s",
                            od_budget_describe(b, asked->limit, l, sizeof l), 100 * res->margin,
                            fastest_fresh(b, res, NULL, f, sizeof f));
    if (!lat && width < 1 && spec->init == OD_SHRINK_INIT_TEACHER && (st = refine(teacher, spec, b, res, err))) return st;
    res->depth = spec->depth;
    res->kept_blocks = blocks_kept(spec->depth, n);
    if (res->kept_blocks < k_asked) {
        size_t len = strlen(res->why);
        snprintf(res->why + len, sizeof res->why - len, "%s%d of the %d removable blocks dropped: %s", len ? "; " : "",
                 k_asked - res->kept_blocks, n, dropped_why ? dropped_why : "");
    }
    double final_kept = 1;
    if ((res->width < 1 || res->per_layer || res->n_steps) && (st = spec_facts(teacher, spec, &final_kept, NULL, err)))
        return st;
    if (final_kept < USELESS_KEPT)
        snprintf(res->warning, sizeof res->warning,
                 "--budget %s: the student that meets it keeps only %.1f%% of the teacher's L1 weight mass per layer "
                 "(geometric mean; width %.6g, %d of %d removable blocks): expect a large loss of accuracy",
                 od_budget_describe(b, asked->limit, l, sizeof l), 100 * final_kept, res->per_layer ? 1 : res->width,
                 res->kept_blocks, n);
    return student_out ? od_shrink(teacher, spec, student_out, err) : OD_STATUS_OK;
}

static const char *runtime_name(const od_budget *b) {
    return b->runtime ? b->runtime : "onnx-distill's own plans";
}

/* "width 0.42" or "per-layer r2" (r0: the fresh measurement of the per-layer choice) */
static const char *candidate_name(const od_budget_candidate *c, char *buf, size_t size) {
    if (c->per_layer)
        snprintf(buf, size, c->verify ? "per-layer" : "per-layer r%d", c->round);
    else
        snprintf(buf, size, "width %.6g", c->width);
    if (c->depth < 1) {
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, " depth %.4g", c->depth);
    }
    return buf;
}

/* " at depth 0.5 (2 of 4 removable blocks)" when the choice dropped blocks, else "" */
static const char *depth_text(const od_budget_result *res, char *buf, size_t size) {
    if (res->kept_blocks < res->n_blocks)
        snprintf(buf, size, " at depth %.4g (%d of %d removable blocks)", res->depth, res->kept_blocks, res->n_blocks);
    else
        buf[0] = 0;
    return buf;
}

void od_budget_print(const od_budget *b, const od_budget_result *res, FILE *out) {
    char v[64], p[64], l[64], name[64], d[96];
    bool lat = b->kind == OD_BUDGET_LATENCY;
    fprintf(out, "budget: %s", od_budget_describe(b, b->limit, l, sizeof l));
    if (lat)
        fprintf(out, " per run at batch %lld, %d thread%s (median of %g s of timed runs on %s)", (long long)b->batch,
                b->threads, b->threads == 1 ? "" : "s", res->min_time, runtime_name(b));
    fprintf(out, "; teacher: %s", od_budget_describe(b, res->teacher_value, v, sizeof v));
    if (lat) {
        fprintf(out, " (p90 %s)", od_budget_describe(b, res->teacher_p90, p, sizeof p));
        fprintf(out, "\nmargin: %.1f%%, the search aims at %s (%s; the largest relative spread of its repeated "
                     "measurements: %.1f%%)",
                100 * res->margin, od_budget_describe(b, b->limit * (1 - res->margin), v, sizeof v),
                b->margin_auto ? "auto: that spread, clamped to 2-10%" : "--budget-margin", 100 * res->spread);
    }
    fprintf(out, "\n%-16s %s\n", "candidate", lat ? "median (p90 ms)" : "value");
    for (int i = 0; i < res->n_candidates; i++) {
        const od_budget_candidate *c = &res->candidates[i];
        od_budget_describe(b, c->value, v, sizeof v);
        if (lat) {
            size_t n = strlen(v);
            snprintf(v + n, sizeof v - n, " (%.4g)", c->p90 * 1e3);
        }
        fprintf(out, "%-16s %-24s %s", candidate_name(c, name, sizeof name), v, c->fits ? "fits" : "over");
        if (c->per_layer) fprintf(out, "   %.1f%% kept", 100 * c->kept);
        fprintf(out, "%s\n", c->verify ? " (fresh measurement of the choice)" : "");
    }
    for (int i = 0; i < res->n_steps; i++) {
        const od_budget_step *st = &res->steps[i];
        fprintf(out, "per layer: %s %lld -> %lld channels (%.2f%% of its L1 mass), %s\n", st->node, (long long)st->from,
                (long long)st->to, 100 * st->saliency, od_budget_describe(b, st->value, v, sizeof v));
    }
    if (res->per_layer)
        fprintf(out, "chosen: per-layer channels (the spec below)%s, %s", depth_text(res, d, sizeof d),
                od_budget_describe(b, res->value, v, sizeof v));
    else
        fprintf(out, "chosen: width %.6g%s%s, %s", res->width, depth_text(res, d, sizeof d),
                res->n_steps ? " and the layers above" : "", od_budget_describe(b, res->value, v, sizeof v));
    if (lat)
        fprintf(out, " (p90 %s), margin %.1f%% (%s)", od_budget_describe(b, res->p90, p, sizeof p), 100 * res->margin,
                b->margin_auto ? "auto" : "asked");
    fprintf(out, ": %s\n", res->width >= 1 && !d[0] ? "the teacher's width already meets the budget"
                           : res->why[0] ? res->why
                           : res->n_steps ? "the widest uniform width tried that meets the budget, then channels given back where they carry the most L1 weight mass per unit of budget spent"
                                          : "the widest width tried that meets the budget (channels kept by L1 norm)");
}

const char *od_budget_summary(const od_budget *b, const od_budget_result *res, char *buf, size_t size) {
    char l[64], v[64], p[64], name[64], d[96];
    bool lat = b->kind == OD_BUDGET_LATENCY;
    size_t n = (size_t)snprintf(buf, size, "budget %s", od_budget_describe(b, b->limit, l, sizeof l));
    if (lat && n < size)
        n += (size_t)snprintf(buf + n, size - n, " at batch %lld, %d thread%s, measured on %s", (long long)b->batch,
                              b->threads, b->threads == 1 ? "" : "s", runtime_name(b));
    if (n < size) {
        if (res->per_layer)
            n += (size_t)snprintf(buf + n, size - n, ": per-layer channels%s chosen: %s", depth_text(res, d, sizeof d),
                                  od_budget_describe(b, res->value, v, sizeof v));
        else
            n += (size_t)snprintf(buf + n, size - n, ": width %.6g%s chosen: %s", res->width, depth_text(res, d, sizeof d),
                                  od_budget_describe(b, res->n_steps ? res->uniform_value : res->value, v, sizeof v));
    }
    if (lat && n < size)
        n += (size_t)snprintf(buf + n, size - n, " median, %s p90 (fresh measurement); margin %.1f%% (%s)",
                              od_budget_describe(b, res->p90, p, sizeof p), 100 * res->margin,
                              b->margin_auto ? "auto" : "asked");
    if (res->why[0] && n < size) n += (size_t)snprintf(buf + n, size - n, "; why: %s", res->why);
    if (n < size) n += (size_t)snprintf(buf + n, size - n, "; candidates");
    for (int i = 0; i < res->n_candidates && n < size; i++) {
        const od_budget_candidate *c = &res->candidates[i];
        n += (size_t)snprintf(buf + n, size - n, "%s %s: %s", i ? "," : "", candidate_name(c, name, sizeof name),
                              od_budget_describe(b, c->value, v, sizeof v));
        if (lat && n < size) n += (size_t)snprintf(buf + n, size - n, " (p90 %.4g)", c->p90 * 1e3);
        if (n < size) n += (size_t)snprintf(buf + n, size - n, " %s", c->fits ? "fits" : "over");
    }
    for (int i = 0; i < res->n_steps && n < size; i++) /* the per-layer refinement, in order */
        n += (size_t)snprintf(buf + n, size - n, "%s %s %lld -> %lld channels", i ? "," : "; then per layer:",
                              res->steps[i].node, (long long)res->steps[i].from, (long long)res->steps[i].to);
    if (res->n_steps && n < size)
        snprintf(buf + n, size - n, " (%s)", od_budget_describe(b, res->value, v, sizeof v));
    return buf;
}

const char *od_budget_spec_json(const od_shrink_spec *spec, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "{\"width\": %.17g, \"depth\": %.17g", spec->width, spec->depth);
    for (int i = 0; i < spec->n_channels && n < size; i++) {
        n += (size_t)snprintf(buf + n, size - n, "%s\"", i ? ", " : ", \"channels\": {");
        for (const char *p = spec->channels[i].pattern; *p && n < size; p++)
            n += (size_t)snprintf(buf + n, size - n, *p == '"' || *p == '\\' ? "\\%c" : (unsigned char)*p < 0x20 ? "\\u%04x" : "%c",
                                  *p == '"' || *p == '\\' ? *p : (unsigned char)*p);
        if (n < size) n += (size_t)snprintf(buf + n, size - n, "\": %lld", (long long)spec->channels[i].channels);
    }
    if (n < size) snprintf(buf + n, size - n, "%s}\n", spec->n_channels ? "}" : "");
    return buf;
}

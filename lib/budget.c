/* Students chosen by a budget: parse "0.5ms@b1t2", "200KB", "2M-macs"; bisect the uniform width
 * until the student built from the teacher meets it. */
#include "od_onnx.h"
#include "op.h" /* od_attr_int */

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
    out->batch = 1, out->threads = 1;
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
    od_latency lat;
    od_status st = od_measure_latency(&m->graph, b->batch, b->threads, min_time, &lat, err);
    *value = lat.median, *p90 = lat.p90;
    return st;
}

static od_status try_width(const od_model *teacher, od_shrink_spec *spec, const od_budget *b, double min_time,
                           double width, bool verify, od_budget_result *res, od_model **student,
                           od_error *err) {
    spec->width = width;
    od_model *m = NULL;
    od_status st = od_shrink(teacher, spec, &m, err);
    double value = 0, p90 = 0;
    if (!st) st = measure(m, b, min_time, &value, &p90, err);
    if (st) {
        od_model_destroy(m);
        return st;
    }
    bool fits = value <= b->limit;
    if (res->n_candidates < OD_BUDGET_MAX_CANDIDATES)
        res->candidates[res->n_candidates++] =
            (od_budget_candidate){.width = width, .value = value, .p90 = p90, .fits = fits, .verify = verify};
    if (fits && (res->width == 0 || width >= res->width || verify)) {
        res->width = width, res->value = value, res->p90 = p90;
        if (student) {
            od_model_destroy(*student);
            *student = m;
            m = NULL;
        }
    }
    od_model_destroy(m);
    return OD_STATUS_OK;
}

/* ---- per-layer refinement (MACs, size) ------------------------------------------------------ */

static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

/* The share of the teacher layer's L1 weight mass in its channels of rank [from, to) by L1 norm
 * (the channels the builder would add); 0 when the node or its float weight is not found. An
 * approximation of the builder's choice: BatchNormalization scaling and groups are ignored. */
static double saliency(const od_graph *g, const char *name, int64_t from, int64_t to) {
    for (int i = 0; i < g->n_nodes; i++) {
        const od_node *n = &g->nodes[i];
        if (strcmp(n->name, name) || n->n_inputs < 2 || n->inputs[1] < 0) continue;
        const od_tensor *w = g->values[n->inputs[1]].init;
        if (!w || w->dtype != OD_DTYPE_FLOAT || w->rank < 2) return 0;
        int axis = !strcmp(n->op_type, "Conv") ? 0
                   : !strcmp(n->op_type, "ConvTranspose") ? 1
                   : !strcmp(n->op_type, "Gemm") ? (od_attr_int(n, "transB", 0) ? 0 : 1)
                                                 : w->rank - 1;
        int64_t c = w->dims[axis], inner = 1, outer = 1;
        for (int d = axis + 1; d < w->rank; d++) inner *= w->dims[d];
        for (int d = 0; d < axis; d++) outer *= w->dims[d];
        double *norm = calloc((size_t)c + 1, sizeof *norm), total = 0, part = 0;
        if (!norm) return 0;
        const float *x = w->data;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t k = 0; k < c; k++)
                for (int64_t j = 0; j < inner; j++) norm[k] += fabs(x[(o * c + k) * inner + j]);
        qsort(norm, (size_t)c, sizeof *norm, cmp_desc);
        for (int64_t k = 0; k < c; k++) {
            total += norm[k];
            if (k >= from && k < to) part += norm[k];
        }
        free(norm);
        return total > 0 ? part / total : 0;
    }
    return 0;
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

od_status od_budget_search(const od_model *teacher, od_shrink_spec *spec, const od_budget *b,
                           double min_time, od_budget_result *res, od_model **student_out,
                           od_error *err) {
    memset(res, 0, sizeof *res);
    od_model *best = NULL;
    od_status st = measure(teacher, b, min_time, &res->teacher_value, &res->teacher_p90, err);
    /* the narrowest student first: an unreachable budget is said before any search */
    if (!st) st = try_width(teacher, spec, b, min_time, MIN_WIDTH, false, res, &best, err);
    if (st) goto fail;
    if (!res->width) {
        char v[64], l[64];
        st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "--budget: even width %g (round %d) gives %s, over the budget of %s",
                          MIN_WIDTH, spec->round_to, od_budget_describe(b, res->candidates[0].value, v, sizeof v),
                          od_budget_describe(b, b->limit, l, sizeof l));
        goto fail;
    }
    if ((st = try_width(teacher, spec, b, min_time, 1, false, res, &best, err))) goto fail;
    /* bisection: lo fits, hi does not. MACs and size are exact, so 12 steps (widths to 1/4096);
     * latency is noisy and slow to measure, so 7 (1/128). */
    double lo = 0, hi = 1; /* dyadic widths; below MIN_WIDTH every width builds the same student */
    int steps = b->kind == OD_BUDGET_LATENCY ? 7 : 12;
    for (int i = 0; res->width < 1 && i < steps; i++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= MIN_WIDTH) break;
        int before = res->n_candidates;
        if ((st = try_width(teacher, spec, b, min_time, mid, false, res, &best, err))) goto fail;
        if (res->candidates[before].fits)
            lo = mid;
        else
            hi = mid;
    }
    spec->width = res->width;
    /* latency: a fresh measurement of the choice; a miss steps down by 1/16 of the width */
    for (int i = 0; b->kind == OD_BUDGET_LATENCY && i < 8; i++) {
        int before = res->n_candidates;
        double w = res->width;
        res->width = 0;
        if ((st = try_width(teacher, spec, b, min_time, w, true, res, &best, err))) goto fail;
        if (res->candidates[before].fits) break;
        double down = w - w / 16;
        if (down < MIN_WIDTH) {
            char v[64], l[64];
            st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                              "--budget: remeasured, even width %g gives %s, over the budget of %s", w,
                              od_budget_describe(b, res->candidates[before].value, v, sizeof v),
                              od_budget_describe(b, b->limit, l, sizeof l));
            goto fail;
        }
        res->width = down;
        if (i == 7) {
            st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "--budget: latency too noisy to meet the budget");
            goto fail;
        }
    }
    spec->width = res->width;
    res->uniform_value = res->value;
    if (b->kind != OD_BUDGET_LATENCY && res->width < 1 && spec->init == OD_SHRINK_INIT_TEACHER) {
        if ((st = refine(teacher, spec, b, res, err))) goto fail;
        if (res->n_steps && student_out) {
            od_model_destroy(best);
            best = NULL;
            if ((st = od_shrink(teacher, spec, &best, err))) goto fail;
        }
    }
    if (student_out)
        *student_out = best;
    else
        od_model_destroy(best);
    return OD_STATUS_OK;
fail:
    od_model_destroy(best);
    return st;
}

void od_budget_print(const od_budget *b, const od_budget_result *res, FILE *out) {
    char v[64], p[64], l[64];
    fprintf(out, "budget: %s", od_budget_describe(b, b->limit, l, sizeof l));
    if (b->kind == OD_BUDGET_LATENCY)
        fprintf(out, " per run at batch %lld, %d thread%s (median of the timed runs)", (long long)b->batch,
                b->threads, b->threads == 1 ? "" : "s");
    fprintf(out, "; teacher: %s", od_budget_describe(b, res->teacher_value, v, sizeof v));
    if (b->kind == OD_BUDGET_LATENCY) fprintf(out, " (p90 %s)", od_budget_describe(b, res->teacher_p90, p, sizeof p));
    fprintf(out, "\n%-10s %-18s %s\n", "width", b->kind == OD_BUDGET_LATENCY ? "median (p90)" : "value", "");
    for (int i = 0; i < res->n_candidates; i++) {
        const od_budget_candidate *c = &res->candidates[i];
        od_budget_describe(b, c->value, v, sizeof v);
        if (b->kind == OD_BUDGET_LATENCY) {
            size_t n = strlen(v);
            snprintf(v + n, sizeof v - n, " (%.4g)", c->p90 * 1e3);
        }
        fprintf(out, "%-10.6g %-24s %s%s\n", c->width, v, c->fits ? "fits" : "over",
                c->verify ? " (fresh measurement of the choice)" : "");
    }
    for (int i = 0; i < res->n_steps; i++) {
        const od_budget_step *st = &res->steps[i];
        fprintf(out, "per layer: %s %lld -> %lld channels (%.2f%% of its L1 mass), %s\n", st->node, (long long)st->from,
                (long long)st->to, 100 * st->saliency, od_budget_describe(b, st->value, v, sizeof v));
    }
    fprintf(out, "chosen: width %.6g%s, %s", res->width, res->n_steps ? " and the layers above" : "",
            od_budget_describe(b, res->value, v, sizeof v));
    if (b->kind == OD_BUDGET_LATENCY) fprintf(out, " (p90 %s)", od_budget_describe(b, res->p90, p, sizeof p));
    fprintf(out, ": %s\n", res->width >= 1 ? "the teacher's width already meets the budget"
                                           : res->n_steps ? "the widest uniform width tried that meets the budget, then channels given back where they carry the most L1 weight mass per unit of budget" : "the widest width tried that meets the budget (channels kept by L1 norm)");
}

const char *od_budget_summary(const od_budget *b, const od_budget_result *res, char *buf, size_t size) {
    char l[64], v[64], p[64];
    size_t n = (size_t)snprintf(buf, size, "budget %s", od_budget_describe(b, b->limit, l, sizeof l));
    if (b->kind == OD_BUDGET_LATENCY && n < size)
        n += (size_t)snprintf(buf + n, size - n, " at batch %lld, %d thread%s", (long long)b->batch, b->threads,
                              b->threads == 1 ? "" : "s");
    if (n < size)
        n += (size_t)snprintf(buf + n, size - n, ": width %.6g chosen, the widest tried that meets it: %s",
                              res->width,
                              od_budget_describe(b, res->uniform_value, v, sizeof v));
    if (b->kind == OD_BUDGET_LATENCY && n < size)
        n += (size_t)snprintf(buf + n, size - n, " median, %s p90 (fresh measurement)",
                              od_budget_describe(b, res->p90, p, sizeof p));
    if (n < size) n += (size_t)snprintf(buf + n, size - n, "; candidates (width: value)");
    for (int i = 0; i < res->n_candidates && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s %.6g: %s %s", i ? "," : "", res->candidates[i].width,
                              od_budget_describe(b, res->candidates[i].value, v, sizeof v),
                              res->candidates[i].fits ? "fits" : "over");
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

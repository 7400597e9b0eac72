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
    fprintf(out, "chosen: width %.6g, %s", res->width, od_budget_describe(b, res->value, v, sizeof v));
    if (b->kind == OD_BUDGET_LATENCY) fprintf(out, " (p90 %s)", od_budget_describe(b, res->p90, p, sizeof p));
    fprintf(out, ": %s\n", res->width >= 1 ? "the teacher's width already meets the budget"
                                           : "the widest width tried that meets the budget (channels kept by L1 norm)");
}

const char *od_budget_summary(const od_budget *b, const od_budget_result *res, char *buf, size_t size) {
    char l[64], v[64], p[64];
    size_t n = (size_t)snprintf(buf, size, "budget %s", od_budget_describe(b, b->limit, l, sizeof l));
    if (b->kind == OD_BUDGET_LATENCY && n < size)
        n += (size_t)snprintf(buf + n, size - n, " at batch %lld, %d thread%s", (long long)b->batch, b->threads,
                              b->threads == 1 ? "" : "s");
    if (n < size)
        n += (size_t)snprintf(buf + n, size - n, ": width %.6g chosen, the widest tried that meets it: %s",
                              res->width, od_budget_describe(b, res->value, v, sizeof v));
    if (b->kind == OD_BUDGET_LATENCY && n < size)
        n += (size_t)snprintf(buf + n, size - n, " median, %s p90 (fresh measurement)",
                              od_budget_describe(b, res->p90, p, sizeof p));
    if (n < size) n += (size_t)snprintf(buf + n, size - n, "; candidates (width: value)");
    for (int i = 0; i < res->n_candidates && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s %.6g: %s %s", i ? "," : "", res->candidates[i].width,
                              od_budget_describe(b, res->candidates[i].value, v, sizeof v),
                              res->candidates[i].fits ? "fits" : "over");
    return buf;
}

const char *od_budget_spec_json(const od_shrink_spec *spec, char *buf, size_t size) {
    snprintf(buf, size, "{\"width\": %.17g, \"depth\": %.17g}\n", spec->width, spec->depth);
    return buf;
}

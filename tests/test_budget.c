/* Students chosen by a budget (lib/budget.c), with a deterministic timer in place of a runtime:
 * a latency is a model's MACs and node count priced by fixed constants, so what the search does
 * with a fresh measurement that misses can be asserted without timing anything.
 *
 * - Fresh measurements (the timer is asked for at least 0.3 s: the search's verification) run
 *   1.5x slower than the search's quick ones (a machine that throttles under sustained load):
 *   the search keeps cutting until a fresh measurement meets the budget, and the value it reports
 *   is that fresh measurement's, never a quick one's.
 * - Fresh measurements always over (a constant added): the search fails with one message naming the
 * fastest fresh value, after a bounded number of fresh measurements.
 * - A per-node overhead that width cannot remove (the floor of a small model's latency): a budget
 *   just above the narrowest full-depth student's is met by dropping removable blocks for width,
 *   and the depth is in the result.
 * - MACs below what width 0.001 gives: blocks are dropped; below what every block dropped gives:
 *   an error. (The per-layer search profiles real plans to calibrate its model, so its choices
 *   may vary; what is asserted holds for any of them.) */
#include "od_onnx.h"
#include "test_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fake {
    double per_mac, per_node; /* seconds */
    double fresh_factor;      /* applied when the timer is asked for >= 0.3 s */
    double fresh_add;         /* seconds added then */
    double jitter;            /* every other call is this much slower (relative): repeated measurements spread */
    int n_calls, n_fresh;
} fake;

static od_status fake_timer(const od_model *m, int64_t batch, int threads, double min_time,
                            double *median, double *p90, void *ctx, od_error *err) {
    (void)batch, (void)threads;
    fake *f = ctx;
    int64_t macs = 0;
    od_status st = od_model_count(m, NULL, &macs, err);
    if (st) return st;
    double t = f->per_mac * (double)macs + f->per_node * m->graph.n_nodes;
    bool fresh = min_time >= 0.3;
    f->n_calls++, f->n_fresh += fresh;
    if (f->n_calls % 2 == 0) t *= 1 + f->jitter;
    *median = fresh ? t * f->fresh_factor + f->fresh_add : t;
    *p90 = *median * 1.1;
    return OD_STATUS_OK;
}

static double fake_value(fake *f, const od_model *m, bool fresh) {
    double v = 0, p;
    od_error err = {0};
    fake_timer(m, 1, 1, fresh ? 1 : 0.01, &v, &p, f, &err);
    return v;
}

static od_budget latency_budget(fake *f, double limit) {
    return (od_budget){.kind = OD_BUDGET_LATENCY,
                       .limit = limit,
                       .batch = 1,
                       .threads = 1,
                       .timer = fake_timer,
                       .timer_ctx = f,
                       .runtime = "a fake timer"};
}

/* The chosen spec's student, built again. */
static od_model *rebuild(const od_model *teacher, const od_shrink_spec *spec) {
    od_model *m = NULL;
    od_error err = {0};
    if (od_shrink(teacher, spec, &m, &err)) printf("rebuild: %s\n", err.message);
    return m;
}

static void fresh_slower(const od_model *teacher, const char *name) {
    fake f = {.per_mac = 1e-9, .fresh_factor = 1.5};
    double teacher_v = fake_value(&f, teacher, false);
    od_budget b = latency_budget(&f, teacher_v / 4);
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    od_budget_result *res = calloc(1, sizeof *res);
    od_error err = {0};
    od_status st = od_budget_search(teacher, &spec, &b, 0.01, res, NULL, &err);
    check(!st, name, "fresh 1.5x slower: %s", err.message);
    if (!st) {
        int misses = 0, last_verify = -1;
        for (int i = 0; i < res->n_candidates; i++)
            if (res->candidates[i].verify) {
                misses += !res->candidates[i].fits;
                last_verify = i;
            }
        check(misses >= 1, name, "fresh 1.5x slower: a fresh measurement missed (%d misses)",
              misses);
        check(res->value <= b.limit, name, "fresh 1.5x slower: the reported value %g <= budget %g",
              res->value, b.limit);
        bool from_fresh = false; /* the reported value is a fresh measurement's */
        for (int i = 0; i < res->n_candidates; i++)
            from_fresh |= res->candidates[i].verify && res->candidates[i].fits &&
                          res->candidates[i].value == res->value;
        check(from_fresh && last_verify >= 0, name,
              "fresh 1.5x slower: the reported value %g is a fresh measurement's", res->value);
        od_model *m = rebuild(teacher, &spec);
        double again = m ? fake_value(&f, m, true) : INFINITY;
        check(again <= b.limit, name,
              "fresh 1.5x slower: the chosen spec measured afresh again: %g <= %g (%s)", again,
              b.limit, res->per_layer ? "per-layer" : "uniform");
        od_model_destroy(m);
    }
    od_shrink_spec_clear(&spec);
    free(res);
}

static void fresh_always_over(const od_model *teacher, const char *name) {
    fake f = {.per_mac = 1e-9, .fresh_factor = 1};
    double teacher_v = fake_value(&f, teacher, false);
    od_budget b = latency_budget(&f, teacher_v / 2);
    f.fresh_add = b.limit; /* every fresh measurement is over */
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    od_budget_result *res = calloc(1, sizeof *res);
    od_error err = {0};
    od_status st = od_budget_search(teacher, &spec, &b, 0.01, res, NULL, &err);
    check(st == OD_STATUS_INVALID_ARGUMENT, name, "fresh always over: fails (status %d)", (int)st);
    check(strstr(err.message, "when measured afresh; the fastest: ") != NULL &&
              !strchr(err.message, '\n'),
          name, "fresh always over: one line naming the fastest: %s", err.message);
    /* the uniform tries, the per-layer search's fresh measurement and its re-cuts, each
     * VERIFY_PLANS plans */
    check(f.n_fresh > 0 && f.n_fresh <= 3 * (8 + 1 + 3), name,
          "fresh always over: %d fresh measurements (bounded)", f.n_fresh);
    od_shrink_spec_clear(&spec);
    free(res);
}

/* resnet.onnx: a per-node overhead width cannot remove; the budget just above the narrowest
 * full-depth student's (any full-depth width meeting it keeps little): blocks go for width. */
static void depth_for_width(const od_model *teacher) {
    fake f = {.per_mac = 1e-11, .per_node = 1.4e-6, .fresh_factor = 1};
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    spec.width = 0.001;
    od_model *narrow = rebuild(teacher, &spec);
    double floor_v = narrow ? fake_value(&f, narrow, false) : 1;
    od_model_destroy(narrow);
    od_budget b = latency_budget(&f, floor_v * 1.1);
    od_shrink_spec_default(&spec);
    od_budget_result *res = calloc(1, sizeof *res);
    od_error err = {0};
    od_status st = od_budget_search(teacher, &spec, &b, 0.01, res, NULL, &err);
    check(!st, "resnet per-node floor", "%s", err.message);
    if (!st) {
        check(res->n_blocks > 0 && res->kept_blocks < res->n_blocks && spec.depth < 1,
              "resnet per-node floor", "blocks dropped (%d of %d kept, depth %g)", res->kept_blocks,
              res->n_blocks, spec.depth);
        check(res->depth == spec.depth, "resnet per-node floor",
              "the result's depth %g is the spec's %g", res->depth, spec.depth);
        check(strstr(res->why, "removable blocks dropped") != NULL, "resnet per-node floor",
              "why says so: %s", res->why);
        od_model *m = rebuild(teacher, &spec);
        double again = m ? fake_value(&f, m, true) : INFINITY;
        check(again <= b.limit, "resnet per-node floor",
              "the chosen spec meets the budget: %g <= %g", again, b.limit);
        od_model_destroy(m);
        char json[4096];
        od_budget_spec_json(&spec, json, sizeof json);
        check(strstr(json, "\"depth\": 1,") == NULL && strstr(json, "\"depth\": 0.") != NULL,
              "resnet per-node floor", "the spec JSON carries the depth: %s", json);
    }
    od_shrink_spec_clear(&spec);
    free(res);
}

static int64_t macs_of(const od_model *teacher, double width, double depth) {
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    spec.width = width, spec.depth = depth;
    od_model *m = rebuild(teacher, &spec);
    int64_t macs = -1;
    od_error err = {0};
    if (m) od_model_count(m, NULL, &macs, &err);
    od_model_destroy(m);
    return macs;
}

static void macs_depth(const od_model *teacher) {
    int64_t narrow = macs_of(teacher, 0.001, 1), none = macs_of(teacher, 0.001, 0.01);
    check(narrow > 0 && none > 0 && none < narrow, "resnet MACs",
          "width 0.001 %lld, no block kept %lld", (long long)narrow, (long long)none);
    od_budget b = {
        .kind = OD_BUDGET_MACS, .limit = (double)(narrow + none) / 2, .batch = 1, .threads = 1};
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    od_budget_result *res = calloc(1, sizeof *res);
    od_error err = {0};
    od_model *student = NULL;
    od_status st = od_budget_search(teacher, &spec, &b, 0.01, res, &student, &err);
    check(!st, "resnet MACs below width 0.001's", "%s", err.message);
    if (!st) {
        int64_t macs = -1;
        od_model_count(student, NULL, &macs, &err);
        check(macs > 0 && macs <= b.limit && spec.depth < 1, "resnet MACs below width 0.001's",
              "%lld <= %g at depth %g", (long long)macs, b.limit, spec.depth);
    }
    od_model_destroy(student);
    od_shrink_spec_clear(&spec);
    od_shrink_spec_default(&spec);
    b.limit = (double)none - 1;
    memset(res, 0, sizeof *res);
    st = od_budget_search(teacher, &spec, &b, 0.01, res, NULL, &err);
    check(st == OD_STATUS_INVALID_ARGUMENT &&
              strstr(err.message, "removable blocks dropped, over the budget"),
          "resnet MACs below every block dropped", "%s", err.message);
    od_shrink_spec_clear(&spec);
    free(res);
}

/* --budget-margin: parsed as auto by default, clamped to 2-10%; the search aims under the budget by
 * it (auto: the spread of its repeated measurements), and the choice meets the aim. */
static void margin(const od_model *teacher) {
    od_budget b;
    od_error err = {0};
    check(!od_budget_parse("0.5ms", &b, &err) && b.margin_auto, "margin", "auto by default after od_budget_parse");
    check(od_budget_margin_auto(0.001) == OD_BUDGET_MARGIN_MIN && od_budget_margin_auto(0.05) == 0.05 &&
              od_budget_margin_auto(0.5) == OD_BUDGET_MARGIN_MAX,
          "margin", "auto clamped to [2%%, 10%%]: %g %g %g", od_budget_margin_auto(0.001), od_budget_margin_auto(0.05),
          od_budget_margin_auto(0.5));
    static const struct { double jitter, asked; bool is_auto; double want; } cases[] = {
        {0.06, 0, true, 0.06},   /* auto: the spread of the repeated measurements */
        {0, 0, true, 0.02},      /* auto, no spread: the floor */
        {0.5, 0, true, 0.10},    /* auto, a wild spread: the ceiling */
        {0.06, 0.15, false, 0.15}, /* asked: taken as is */
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof *cases); i++) {
        fake f = {.per_mac = 1e-9, .fresh_factor = 1, .jitter = cases[i].jitter};
        double teacher_v = fake_value(&f, teacher, false);
        f.n_calls = 0;
        b = latency_budget(&f, teacher_v / 3);
        b.margin_auto = cases[i].is_auto, b.margin = cases[i].asked;
        od_shrink_spec spec;
        od_shrink_spec_default(&spec);
        od_budget_result *res = calloc(1, sizeof *res);
        od_status st = od_budget_search(teacher, &spec, &b, 0.01, res, NULL, &err);
        check(!st, "margin", "case %d: %s", i, err.message);
        check(!st && fabs(res->margin - cases[i].want) < 1e-9, "margin", "case %d: margin %g, want %g", i, res->margin,
              cases[i].want);
        check(!st && res->value <= b.limit * (1 - cases[i].want) * (1 + 1e-12),
              "margin", "case %d: the choice %g meets the aim %g", i, res->value, b.limit * (1 - cases[i].want));
        char line[4096];
        od_budget_summary(&b, res, line, sizeof line);
        char want[64];
        snprintf(want, sizeof want, "margin %.1f%% (%s)", 100 * cases[i].want, cases[i].is_auto ? "auto" : "asked");
        check(!st && strstr(line, want), "margin", "case %d: the summary says \"%s\": %s", i, want, line);
        od_shrink_spec_clear(&spec);
        free(res);
    }
}

/* The depth-aware proxy on the ResNet (stem, 6 residual blocks of two convs, 2 with a shortcut,
 * the classifier pinned): its counted layers are the stem, every conv1, and the conv2 and shortcut
 * group of the 2 downsampling blocks (the other conv2s are tied to the trunk): 9. With every
 * removable block (4 of them) dropped at width 1, 4 counted layers go: 0.25^(4/9). */
static void depth_proxy(const od_model *resnet) {
    od_shrink_spec spec;
    od_shrink_spec_default(&spec);
    od_error err = {0};
    double full = 0, dropped = 0, half = 0, quarter = 0, half_dropped = 0;
    od_status st = od_budget_depth_proxy(resnet, &spec, &full, &err);
    spec.depth = 0.0625;
    if (!st) st = od_budget_depth_proxy(resnet, &spec, &dropped, &err);
    spec.width = 0.5;
    if (!st) st = od_budget_depth_proxy(resnet, &spec, &half_dropped, &err);
    spec.depth = 1;
    if (!st) st = od_budget_depth_proxy(resnet, &spec, &half, &err);
    spec.width = 0.25;
    if (!st) st = od_budget_depth_proxy(resnet, &spec, &quarter, &err);
    check(!st, "depth proxy", "%s", err.message);
    check(fabs(full - 1) < 1e-12, "depth proxy", "the teacher keeps 1 (%g)", full);
    check(fabs(dropped - pow(0.25, 4.0 / 9)) < 1e-9, "depth proxy", "every block dropped at width 1: %g, want 0.25^(4/9) = %g",
          dropped, pow(0.25, 4.0 / 9));
    check(half < 1 && quarter < half, "depth proxy", "narrower keeps less (%g, %g)", half, quarter);
    check(half_dropped < half && half_dropped < dropped, "depth proxy", "dropping blocks costs at a width (%g < %g, %g)",
          half_dropped, half, dropped);
    od_shrink_spec_clear(&spec);
}

int main(void) {
    od_model *cnn = NULL, *resnet = NULL;
    od_error err = {0};
    if (od_model_load("models/cnn.onnx", &cnn, &err) ||
        od_model_load("models/resnet.onnx", &resnet, &err)) {
        printf("FAIL %s\nbudget: 0 passed, 1 failed\n", err.message);
        return 1;
    }
    fresh_slower(cnn, "cnn");
    fresh_slower(resnet, "resnet");
    fresh_always_over(cnn, "cnn");
    depth_for_width(resnet);
    macs_depth(resnet);
    margin(cnn);
    depth_proxy(resnet);
    od_model_destroy(cnn);
    od_model_destroy(resnet);
    printf("test_budget: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}

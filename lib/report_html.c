/* The HTML report: one self-contained page (inline CSS and SVG; no scripts, fonts or anything
 * fetched), readable offline and printable. Charts: bars for size and latency, training
 * curves, per-class accuracy, confusion heat maps. */
#include "report_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One colour per model: the reference first (Tableau 10). */
static const char *const colors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                     "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
#define N_COLORS (int)(sizeof colors / sizeof *colors)

static void esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

static const char css[] =
    "body{margin:0;background:#f5f6f8;color:#1f2328;font:14px/1.45 system-ui,-apple-system,'Segoe UI',"
    "Roboto,'Helvetica Neue',Arial,sans-serif}\n"
    "main{max-width:1120px;margin:0 auto;padding:24px 32px 56px}\n"
    "h1{font-size:22px;margin:0 0 2px}h2{font-size:17px;margin:34px 0 12px;padding-bottom:4px;"
    "border-bottom:1px solid #d8dbe0}h3{font-size:15px;margin:20px 0 8px}\n"
    ".sub{color:#5c6370;margin:0}\n"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin:18px 0}\n"
    ".card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:10px 16px;min-width:130px}\n"
    ".card .v{font-size:22px;font-weight:600}.card .k{color:#5c6370;font-size:12px}\n"
    ".good{color:#2f7d32}.bad{color:#b3261e}\n"
    "table{border-collapse:collapse;background:#fff;border:1px solid #e1e4e8;margin:4px 0 8px}\n"
    "th,td{padding:4px 10px;border-bottom:1px solid #eceef1;text-align:right;"
    "font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "th{background:#f0f2f5;font-weight:600}th:first-child,td:first-child{text-align:left}\n"
    "td.l{text-align:left;white-space:normal}\n"
    ".charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(500px,1fr));gap:16px;align-items:start}\n"
    "figure{margin:0;background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:12px 14px}\n"
    "figcaption{font-weight:600;margin-bottom:6px}figcaption span{font-weight:400;color:#5c6370}\n"
    "svg{display:block;max-width:100%;height:auto}\n"
    "svg text{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;font-size:11px;fill:#30363d}\n"
    ".key{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 12px}\n"
    ".note{color:#5c6370;font-size:12px}\n"
    "footer{margin-top:40px;color:#8b929c;font-size:12px}\n";

/* ---- charts -------------------------------------------------------------------------------- */

static void legend(FILE *f, const od_report *r) {
    fputs("<div class=\"note\">", f);
    for (int i = 0; i < r->n_models; i++) {
        fprintf(f, "<span class=\"key\" style=\"background:%s\"></span>", colors[i % N_COLORS]);
        esc(f, r->models[i].label);
    }
    fputs("</div>\n", f);
}

/* Horizontal bars, one group per quantity, one bar per model. Each group has its own scale
 * (its largest value fills the width) unless fixed_max > 0. whisker (may be NULL) draws a
 * tick at a second value, e.g. p90 beside the median. */
typedef struct hbars {
    const char *id, *desc;
    int n_groups;
    const char *const *group; /* n_groups names */
    const double *value;      /* [g * n_models + i]; negative: no bar */
    const double *whisker;    /* same layout, or NULL */
    char (*text)[48];         /* the label beside each bar */
    double fixed_max;
} hbars;

static void hbar_chart(FILE *f, const od_report *r, const hbars *c) {
    const int n = r->n_models, label_w = 124, bar_w = 290, text_w = 146, bar_h = 15, gap = 12;
    int width = label_w + bar_w + text_w, height = 8 + c->n_groups * (n * (bar_h + 3) + gap);
    fprintf(f, "<svg id=\"%s\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\"><title>", c->id, width, height,
            width, height);
    esc(f, c->desc);
    fputs("</title>\n", f);
    int y = 6;
    for (int g = 0; g < c->n_groups; g++) {
        double max = c->fixed_max;
        for (int i = 0; max <= 0 && i < n; i++) {
            double v = c->value[g * n + i], w = c->whisker ? c->whisker[g * n + i] : 0;
            if (v > max) max = v;
            if (w > max) max = w;
        }
        int group_h = n * (bar_h + 3);
        fprintf(f, "<text x=\"0\" y=\"%d\" dominant-baseline=\"middle\">", y + group_h / 2);
        esc(f, c->group[g]);
        fputs("</text>\n", f);
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#c9ced6\"/>\n", label_w, y - 2, label_w, y + group_h);
        for (int i = 0; i < n; i++) {
            double v = c->value[g * n + i];
            int by = y + i * (bar_h + 3);
            double len = max > 0 && v > 0 ? v / max * bar_w : 0;
            if (v >= 0)
                fprintf(f, "<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\" rx=\"2\"/>\n", label_w, by,
                        len, bar_h, colors[i % N_COLORS]);
            double end = len;
            if (c->whisker && c->whisker[g * n + i] > 0 && max > 0) {
                double wx = label_w + c->whisker[g * n + i] / max * bar_w;
                fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#30363d\" stroke-width=\"1.2\"/>"
                           "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#30363d\" stroke-width=\"1.2\"/>\n",
                        label_w + len, by + bar_h / 2, wx, by + bar_h / 2, wx, by + 3, wx, by + bar_h - 3);
                if (wx - label_w > end) end = wx - label_w;
            }
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" dominant-baseline=\"middle\">", label_w + end + 6, by + bar_h / 2 + 1);
            esc(f, c->text[g * n + i]);
            fputs("</text>\n", f);
        }
        y += group_h + gap;
    }
    fputs("</svg>\n", f);
}

/* 1, 2 or 5 times a power of ten, about range / 5. */
static double nice_step(double range) {
    if (!(range > 0)) return 1;
    double p = pow(10, floor(log10(range / 5))), s = range / 5 / p;
    return p * (s < 1.5 ? 1 : s < 3.5 ? 2 : s < 7.5 ? 5 : 10);
}

typedef struct line_series {
    const char *name, *color;
    const double *y; /* n points; negative or not finite: missing */
    bool dashed;
} line_series;

/* y against epoch 1..n; percent: y in [0,1] shown as %. ref >= 0: a horizontal reference. */
static void line_chart(FILE *f, const char *id, const char *desc, int n, const line_series *s, int n_series, bool percent,
                       double ref, const char *ref_name, int mark_x) {
    /* legend entries along the top, wrapped into rows */
    int legend_rows = 1;
    double lw = 52;
    for (int k = 0; k <= n_series; k++) {
        const char *name = k < n_series ? s[k].name : ref >= 0 ? ref_name : NULL;
        if (!name) break;
        double w = 20 + 6.2 * (double)strlen(name) + 16;
        if (lw + w > 520 && lw > 52) legend_rows++, lw = 52;
        lw += w;
    }
    const int width = 520, l = 52, rgt = 16, top = 12 + 16 * legend_rows, bot = 34, height = top + 190 + bot;
    const int pw = width - l - rgt, ph = height - top - bot;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < n; i++)
            if (isfinite(s[k].y[i]) && s[k].y[i] >= 0) lo = fmin(lo, s[k].y[i]), hi = fmax(hi, s[k].y[i]);
    if (ref >= 0) lo = fmin(lo, ref), hi = fmax(hi, ref);
    if (!isfinite(lo)) lo = 0, hi = 1;
    double span = hi - lo;
    if (span < (percent ? 0.02 : fabs(hi) * 0.05 + 1e-6)) span = percent ? 0.02 : fabs(hi) * 0.05 + 1e-6;
    lo -= span * 0.15, hi += span * 0.15;
    if (percent) lo = fmax(lo, 0), hi = fmin(hi, 1);
    if (!percent && lo < 0 && hi > 0 && lo > -span) lo = fmax(lo, 0);
    double step = nice_step(hi - lo);
    lo = floor(lo / step) * step, hi = ceil(hi / step) * step;
    if (!(hi > lo)) hi = lo + step;
#define X(i) (n > 1 ? l + (double)(i) / (n - 1) * pw : l + pw / 2.0)
#define Y(v) (top + (1 - ((v) - lo) / (hi - lo)) * ph)
    fprintf(f, "<svg id=\"%s\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\"><title>", id, width, height, width,
            height);
    esc(f, desc);
    fputs("</title>\n", f);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#fbfbfc\" stroke=\"#e1e4e8\"/>\n", l, top, pw, ph);
    for (double v = lo; v <= hi + step * 0.01; v += step) {
        double y = Y(v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e6e8eb\"/>", l, y, l + pw, y);
        if (percent) fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">%.*f%%</text>\n", l - 6,
                             y, step * 100 < 1 ? 1 : 0, v * 100);
        else fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">%.4g</text>\n", l - 6, y, v);
    }
    int xstep = n <= 12 ? 1 : (int)ceil(n / 10.0);
    for (int i = 0; i < n; i += xstep)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>", X(i), top + ph + 14, i + 1);
    fprintf(f, "\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n", l + pw / 2, height - 4);
    if (mark_x >= 1 && mark_x <= n)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#9aa1ab\" stroke-dasharray=\"2 3\"/>"
                   "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\" style=\"fill:#5c6370\">kept</text>\n",
                X(mark_x - 1), top, X(mark_x - 1), top + ph, X(mark_x - 1) - 4, top + 12);
    if (ref >= 0) {
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n",
                l, Y(ref), l + pw, Y(ref), colors[0]);
    }
    for (int k = 0; k < n_series; k++) {
        fprintf(f, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", s[k].color,
                s[k].dashed ? " stroke-dasharray=\"5 3\"" : "");
        for (int i = 0; i < n; i++)
            if (isfinite(s[k].y[i]) && s[k].y[i] >= 0) fprintf(f, "%.1f,%.1f ", X(i), Y(s[k].y[i]));
        fputs("\"/>\n", f);
        for (int i = 0; i < n; i++)
            if (isfinite(s[k].y[i]) && s[k].y[i] >= 0)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", X(i), Y(s[k].y[i]), s[k].color);
        fputc('\n', f);
    }
    double lx = l;
    int ly = 10;
    for (int k = 0; k <= n_series; k++) {
        const char *name = k < n_series ? s[k].name : ref >= 0 ? ref_name : NULL;
        const char *color = k < n_series ? s[k].color : colors[0];
        if (!name) break;
        bool dashed = k < n_series ? s[k].dashed : true;
        double w = 20 + 6.2 * (double)strlen(name) + 16;
        if (lx + w > width && lx > l) lx = l, ly += 16;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/>", lx, ly, lx + 16, ly,
                color, dashed ? " stroke-dasharray=\"5 3\"" : "");
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" dominant-baseline=\"middle\">", lx + 20, ly);
        esc(f, name);
        fputs("</text>\n", f);
        lx += w;
    }
#undef X
#undef Y
    fputs("</svg>\n", f);
}

/* Mixes white with a colour: t = 0 white, 1 the colour. */
static void shade(char *buf, size_t size, int r, int g, int b, double t) {
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    snprintf(buf, size, "#%02x%02x%02x", (int)lround(255 + (r - 255) * t), (int)lround(255 + (g - 255) * t),
             (int)lround(255 + (b - 255) * t));
}

static void heatmap(FILE *f, const od_report *r, int model) {
    const od_class_eval *e = &r->models[model].eval;
    int64_t K = e->classes;
    int cell = K <= 10 ? 40 : K <= 20 ? 26 : (int)fmax(4, 520 / (double)K);
    bool names = K <= 40, numbers = cell >= 24;
    int left = names ? 96 : 30, top = names ? 84 : 20;
    int width = left + (int)K * cell + (names ? 48 : 12), height = top + (int)K * cell + 30;
    char nb[24], col[16];
    fprintf(f, "<svg id=\"chart-confusion-%d\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\"><title>", model, width,
            height, width, height);
    fputs("Confusion matrix of ", f);
    esc(f, r->models[model].label);
    fputs(": rows true class, columns predicted class</title>\n", f);
    for (int64_t j = 0; j < K && names; j++) {
        double x = left + (j + 0.5) * cell;
        fprintf(f, "<text transform=\"translate(%.1f %d) rotate(-50)\">", x, top - 6);
        esc(f, od_report_class_name(r, j, nb, sizeof nb));
        fputs("</text>\n", f);
    }
    for (int64_t c = 0; c < K; c++) {
        if (names) {
            fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" dominant-baseline=\"middle\">", left - 6, top + (c + 0.5) * cell);
            esc(f, od_report_class_name(r, c, nb, sizeof nb));
            fputs("</text>\n", f);
        }
        int64_t row = e->support[c];
        for (int64_t j = 0; j < K; j++) {
            int64_t v = e->confusion[c * K + j];
            double frac = row ? (double)v / (double)row : 0;
            /* the diagonal in blue by its share; confusions in red, small shares made visible */
            if (c == j) shade(col, sizeof col, 0x2b, 0x6c, 0xb0, frac);
            else shade(col, sizeof col, 0xc8, 0x3a, 0x2e, v ? 0.08 + 0.92 * sqrt(frac) : 0);
            fprintf(f, "<rect class=\"cell\" x=\"%lld\" y=\"%lld\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#ffffff\" "
                       "stroke-width=\"%s\"><title>true ",
                    (long long)(left + j * cell), (long long)(top + c * cell), cell, cell, col, cell >= 10 ? "1" : "0");
            esc(f, od_report_class_name(r, c, nb, sizeof nb));
            fputs(", predicted ", f);
            esc(f, od_report_class_name(r, j, nb, sizeof nb));
            fprintf(f, ": %lld</title></rect>", (long long)v);
            if (numbers && v)
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" dominant-baseline=\"middle\" style=\"fill:%s;font-size:%dpx\">%lld</text>",
                        left + (j + 0.5) * cell, top + (c + 0.5) * cell + 1, (c == j ? frac : sqrt(frac)) > 0.55 ? "#fff" : "#30363d",
                        cell >= 36 ? 11 : 9, (long long)v);
        }
        fputc('\n', f);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" style=\"fill:#5c6370\">predicted class \u2192 (rows: true class)</text>\n",
            left + K * cell / 2.0, height - 8);
    fputs("</svg>\n", f);
}

/* Above OD_REPORT_MATRIX_MAX_CLASSES: the most confused pairs instead of a K x K heat map. */
static void top_pairs(FILE *f, const od_report *r, int model) {
    const od_class_eval *e = &r->models[model].eval;
    od_report_pair top[OD_REPORT_TOP];
    int n = od_report_top_pairs(e, top, OD_REPORT_TOP);
    char nb[24];
    fprintf(f, "<table id=\"confused-%d\"><tr><th>true class</th><th>predicted</th><th>samples</th><th>share of the class</th></tr>\n",
            model);
    for (int k = 0; k < n; k++) {
        int64_t sup = e->support[top[k].label];
        fputs("<tr><td class=\"l\">", f);
        esc(f, od_report_class_name(r, top[k].label, nb, sizeof nb));
        fputs("</td><td class=\"l\">", f);
        esc(f, od_report_class_name(r, top[k].pred, nb, sizeof nb));
        fprintf(f, "</td><td>%lld</td><td>%.1f%%</td></tr>\n", (long long)top[k].count,
                sup ? 100.0 * (double)top[k].count / (double)sup : 0);
    }
    fputs("</table>\n", f);
}

/* ---- sections ------------------------------------------------------------------------------ */

static void card(FILE *f, const char *value, const char *key, int tone) {
    fprintf(f, "<div class=\"card\"><div class=\"v%s\">", tone > 0 ? " good" : tone < 0 ? " bad" : "");
    esc(f, value);
    fputs("</div><div class=\"k\">", f);
    esc(f, key);
    fputs("</div></div>\n", f);
}

static void cards(FILE *f, const od_report *r) {
    if (r->n_models != 2) return; /* the headline numbers: one model against the other */
    const od_report_model *a = &r->models[0], *b = &r->models[1];
    char v[64], k[128], t[32];
    fputs("<div class=\"cards\">\n", f);
    snprintf(k, sizeof k, "file size, %s / %s", b->label, a->label);
    card(f, od_report_ratio((double)b->bytes, (double)a->bytes, v, sizeof v), k, b->bytes < a->bytes ? 1 : 0);
    snprintf(k, sizeof k, "gzip size, %s / %s", b->label, a->label);
    card(f, od_report_ratio((double)b->gzip_bytes, (double)a->gzip_bytes, v, sizeof v), k, b->gzip_bytes < a->gzip_bytes ? 1 : 0);
    snprintf(k, sizeof k, "MACs per sample, %s / %s", b->label, a->label);
    card(f, od_report_ratio((double)b->macs, (double)a->macs, v, sizeof v), k, b->macs < a->macs ? 1 : 0);
    if (a->n_latency && b->n_latency) {
        snprintf(k, sizeof k, "latency (median), %s", od_report_latency_name(&a->latency[0], t, sizeof t));
        card(f, od_report_ratio(b->latency[0].median, a->latency[0].median, v, sizeof v), k,
             b->latency[0].median < a->latency[0].median ? 1 : 0);
    }
    if (a->accuracy >= 0 && b->accuracy >= 0) {
        snprintf(v, sizeof v, "%.2f%%", 100 * b->accuracy);
        snprintf(k, sizeof k, "%s test accuracy (%+.2f pt vs %s)", b->label, 100 * (b->accuracy - a->accuracy), a->label);
        card(f, v, k, b->accuracy >= a->accuracy ? 1 : b->accuracy < a->accuracy - 0.02 ? -1 : 0);
    }
    if (b->agreement >= 0) {
        snprintf(v, sizeof v, "%.2f%%", 100 * b->agreement);
        snprintf(k, sizeof k, "agreement with %s", a->label);
        card(f, v, k, 0);
    }
    if (r->has_distill) {
        snprintf(v, sizeof v, "%.1f s", r->distill.total_seconds);
        card(f, v, "training time, all phases", 0);
    }
    fputs("</div>\n", f);
}

static void th_models(FILE *f, const od_report *r, const char *first, bool ratios) {
    fprintf(f, "<tr><th>%s</th>", first);
    for (int i = 0; i < r->n_models; i++) {
        fputs("<th>", f);
        esc(f, r->models[i].label);
        fputs("</th>", f);
        if (ratios && i) fputs("<th>ratio</th>", f);
    }
    fputs("</tr>\n", f);
}

static void html_cell(FILE *f, const char *text) { fprintf(f, "<td>%s</td>", text); }

static void summary_table(FILE *f, const od_report *r) {
    const od_report_model *m0 = &r->models[0];
    char nb[48];
    fputs("<table id=\"summary\">\n", f);
    th_models(f, r, "", true);
    static const od_report_table_syntax html = {"<tr><td>", "</td>", "</tr>\n", " <span class=\"note\">",
                                                 "</span>", esc, html_cell};
    od_report_summary_rows(f, r, &html);
    fputs("</table>\n<p class=\"note\">Ratios divide each model's value by the ", f);
    esc(f, m0->label);
    fputs("'s. Latency: milliseconds per run of the whole batch", f);
    int64_t runs = -1;
    for (int i = 0; i < r->n_models; i++)
        for (int k = 0; k < r->models[i].n_latency; k++)
            if (runs < 0 || r->models[i].latency[k].runs < runs) runs = r->models[i].latency[k].runs;
    if (runs > 0) fprintf(f, " (median and 90th percentile over at least %lld timed runs after a warm-up)", (long long)runs);
    fputs(".", f);
    if (r->n_test) {
        fprintf(f, " Accuracy on %s test samples", od_format_count(r->n_test, nb, sizeof nb));
        od_report_data_phrase(f, r, esc);
        fputs(".", f);
    }
    fputs("</p>\n", f);
}

static void size_latency_charts(FILE *f, const od_report *r) {
    int n = r->n_models;
    double *value = calloc((size_t)(n * (4 + OD_REPORT_MAX_LATENCY)), sizeof(double));
    double *whisker = calloc((size_t)(n * OD_REPORT_MAX_LATENCY), sizeof(double));
    char(*text)[48] = calloc((size_t)(n * (4 + OD_REPORT_MAX_LATENCY)), sizeof *text);
    if (!value || !whisker || !text) goto done;
    static const char *const groups[] = {"file bytes", "gzip bytes", "params", "MACs per sample"};
    char nb[40], rb[24];
    for (int i = 0; i < n; i++) {
        const od_report_model *m = &r->models[i], *m0 = &r->models[0];
        int64_t v[4] = {(int64_t)m->bytes, (int64_t)m->gzip_bytes, m->params, m->macs};
        int64_t v0[4] = {(int64_t)m0->bytes, (int64_t)m0->gzip_bytes, m0->params, m0->macs};
        for (int g = 0; g < 4; g++) {
            value[g * n + i] = (double)v[g];
            if (i) snprintf(text[g * n + i], 48, "%s (%s)", od_format_count(v[g], nb, sizeof nb), od_report_ratio((double)v[g], (double)v0[g], rb, sizeof rb));
            else snprintf(text[g * n + i], 48, "%s", od_format_count(v[g], nb, sizeof nb));
        }
    }
    fputs("<div class=\"charts\">\n<figure><figcaption>Size <span>(each row scaled to its largest)</span></figcaption>\n", f);
    hbar_chart(f, r, &(hbars){"chart-size", "File bytes, compressed bytes, parameters and MACs per model", 4, groups, value, NULL, text, 0});
    legend(f, r);
    fputs("</figure>\n", f);
    const od_report_model *m0 = &r->models[0];
    int L = m0->n_latency;
    if (L > 0) {
        char(*gnames)[40] = calloc((size_t)L, sizeof *gnames);
        const char **gp = calloc((size_t)L, sizeof *gp);
        if (gnames && gp) {
            for (int k = 0; k < L; k++) {
                od_report_latency_name(&m0->latency[k], gnames[k], sizeof gnames[k]);
                gp[k] = gnames[k];
                for (int i = 0; i < n; i++) {
                    const od_report_model *m = &r->models[i];
                    char a[24], b[24];
                    if (k >= m->n_latency) {
                        value[k * n + i] = -1;
                        snprintf(text[k * n + i], 48, "not measured");
                        continue;
                    }
                    value[k * n + i] = m->latency[k].median;
                    whisker[k * n + i] = m->latency[k].p90;
                    snprintf(text[k * n + i], 48, "%s ms (p90 %s)", od_report_ms(m->latency[k].median, a, sizeof a),
                             od_report_ms(m->latency[k].p90, b, sizeof b));
                }
            }
            fputs("<figure><figcaption>Inference latency <span>(median, whisker to p90; each row scaled to its largest)</span>"
                  "</figcaption>\n", f);
            hbar_chart(f, r, &(hbars){"chart-latency", "Median and p90 latency per batch size and thread count", L, gp, value, whisker, text, 0});
            legend(f, r);
            fputs("</figure>\n", f);
        }
        free(gnames);
        free(gp);
    }
    fputs("</div>\n", f);
done:
    free(value);
    free(whisker);
    free(text);
}

/* The search's trials: one column per candidate (labels alone, then by sigma, alpha, label
 * weight), validation score up, one colour per rung, the winner ringed; then the table. */
static int trial_key_cmp(const od_search_trial *a, const od_search_trial *b) {
    if (a->labels_only != b->labels_only) return a->labels_only ? -1 : 1;
    if (a->sigma != b->sigma) return a->sigma < b->sigma ? -1 : 1;
    if (a->sigma > 0 && a->alpha != b->alpha) return a->alpha < b->alpha ? -1 : 1;
    if (a->label_weight != b->label_weight) return a->label_weight < b->label_weight ? -1 : 1;
    return 0;
}

static int trial_sort(const void *a, const void *b) {
    return trial_key_cmp(*(const od_search_trial *const *)a, *(const od_search_trial *const *)b);
}

static void search_section(FILE *f, const od_report *r) {
    const od_search_result *sr = &r->distill.search;
    if (sr->n_trials <= 0) return;
    char a[32];
    fprintf(f, "<h3 id=\"search\">Noise search</h3>\n<p>Successive halving over %d candidates in %d rung%s on the %s-sample validation "
               "split: %.2f of %.3g budget epochs, %.1f s. The student written is the winning finalist's own %d-epoch run. ",
            sr->n_candidates, sr->n_rungs, sr->n_rungs == 1 ? "" : "s", od_format_count(sr->n_val, a, sizeof a), sr->search_epochs, sr->budget_epochs, sr->seconds,
            r->distill.options.epochs);
    esc(f, sr->why);
    char untried[320];
    od_search_untried_text(sr, untried, sizeof untried);
    if (*untried) fputs(" ", f), esc(f, untried), fputs(".", f);
    fputs("</p>\n", f);
    const od_search_trial **cand = malloc(sizeof *cand * (size_t)sr->n_trials);
    int nc = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int t = 0; cand && t < sr->n_trials; t++) {
        const od_search_trial *x = &sr->trials[t];
        if (x->val_acc >= 0) lo = fmin(lo, x->val_acc), hi = fmax(hi, x->val_acc);
        bool seen = false;
        for (int c = 0; c < nc && !seen; c++) seen = trial_key_cmp(cand[c], x) == 0;
        if (!seen) cand[nc++] = x;
    }
    if (cand && nc > 0 && isfinite(lo)) {
        qsort(cand, (size_t)nc, sizeof *cand, trial_sort);
        if (hi - lo < 0.02) lo -= 0.01, hi += 0.01;
        double pad = (hi - lo) * 0.1;
        lo = fmax(0, lo - pad), hi = fmin(1, hi + pad);
        const int width = 560, l = 52, rgt = 12, top = 26, bot = 96, height = top + 180 + bot, pw = width - l - rgt, ph = height - top - bot;
        fprintf(f, "<figure><figcaption>Validation %s per candidate <span>(one colour per rung; the winner ringed)</span></figcaption>\n"
                   "<svg id=\"chart-search\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"validation score of every trial of the search\">\n",
                sr->val_is_agreement ? "agreement" : "accuracy", width, height);
        for (int k = 0; k <= 4; k++) {
            double v = lo + (hi - lo) * k / 4, y = top + ph - (v - lo) / (hi - lo) * ph;
            fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.1f%%</text>\n",
                    l, width - rgt, y, y, l - 4, y + 4, 100 * v);
        }
        for (int c = 0; c < nc; c++) {
            char name[96];
            od_search_trial_name(cand[c], name, sizeof name);
            double x = l + (c + 0.5) * pw / nc;
            fprintf(f, "<text font-size=\"10\" text-anchor=\"end\" transform=\"translate(%.1f,%d) rotate(-40)\">", x + 3, top + ph + 12);
            esc(f, name);
            fputs("</text>\n", f);
        }
        for (int t = 0; t < sr->n_trials; t++) {
            const od_search_trial *x = &sr->trials[t];
            if (x->val_acc < 0) continue;
            int c = 0;
            while (c < nc && trial_key_cmp(cand[c], x) != 0) c++;
            double cx = l + (c + 0.5) * pw / nc + (x->rung - (sr->n_rungs + 1) / 2.0) * 3, cy = top + ph - (x->val_acc - lo) / (hi - lo) * ph;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"><title>rung %d: %.2f%%</title></circle>\n", cx, cy,
                    colors[(x->rung - 1 + N_COLORS) % N_COLORS], x->rung, 100 * x->val_acc);
            if (t == sr->winner)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"8\" fill=\"none\" stroke=\"#1f2328\" stroke-width=\"1.5\"/>\n", cx, cy);
        }
        for (int k = 0; k < sr->n_rungs && k < N_COLORS; k++)
            fprintf(f, "<circle cx=\"%d\" cy=\"12\" r=\"4\" fill=\"%s\"/><text x=\"%d\" y=\"16\" font-size=\"11\">rung %d</text>\n", l + 8 + 64 * k,
                    colors[k], l + 16 + 64 * k, k + 1);
        fputs("</svg>\n</figure>\n", f);
    }
    free(cand);
    fprintf(f, "<table id=\"search-trials\"><tr><th>rung</th><th>candidate</th><th>lr</th><th>epochs</th><th>validation %s</th><th></th></tr>\n",
            sr->val_is_agreement ? "agreement" : "accuracy");
    for (int t = 0; t < sr->n_trials; t++) {
        const od_search_trial *x = &sr->trials[t];
        char name[96];
        od_search_trial_name(x, name, sizeof name);
        fprintf(f, "<tr><td>%d</td><td class=\"l\">", x->rung);
        esc(f, name);
        fprintf(f, "</td><td>%g</td><td>%.2f</td><td>", x->lr, x->epochs);
        if (x->val_acc >= 0) fprintf(f, "%.2f%%", 100 * x->val_acc);
        else fputs("failed", f);
        fprintf(f, "</td><td class=\"l\">%s</td></tr>\n", t == sr->winner ? "<b>winner</b>" : x->promoted ? "next rung" : "");
    }
    fputs("</table>\n", f);
}

static void training_section(FILE *f, const od_report *r) {
    const od_report_distill *d = &r->distill;
    int n = d->n_epochs;
    char a[32], b[32], c[32];
    fputs("<h2 id=\"training\">Training</h2>\n", f);
    fprintf(f, "<p>Epoch %d of %d kept (best on %s validation samples); %s training samples, %s test samples.</p>\n", d->best_epoch, n,
            od_format_count(d->n_val, a, sizeof a), od_format_count(d->n_train, b, sizeof b), od_format_count(d->n_test, c, sizeof c));
    double *y = calloc((size_t)(5 * (n > 0 ? n : 1)), sizeof(double));
    if (y && n > 0) {
        double *loss = y, *tacc = y + n, *tagree = y + 2 * n, *vacc = y + 3 * n, *vagree = y + 4 * n;
        for (int e = 0; e < n; e++) {
            loss[e] = d->epochs[e].loss;
            tacc[e] = d->epochs[e].test_acc;
            tagree[e] = d->epochs[e].test_agree;
            vacc[e] = d->epochs[e].val_acc;
            vagree[e] = d->epochs[e].val_agree;
        }
        const char *student = r->n_models > 1 ? colors[1] : colors[0];
        fputs("<div class=\"charts\">\n<figure><figcaption>Training loss <span>(mean over each epoch)</span></figcaption>\n", f);
        line_chart(f, "chart-loss", "Mean training loss per epoch", n, (line_series[]){{"loss", student, loss, false}}, 1, false, -1,
                   NULL, d->best_epoch);
        fputs("</figure>\n<figure><figcaption>Accuracy and agreement <span>(student, per epoch)</span></figcaption>\n", f);
        line_series s[4];
        int ns = 0;
        bool any_test = false, any_val = false;
        for (int e = 0; e < n; e++) any_test |= tacc[e] >= 0 || tagree[e] >= 0, any_val |= vacc[e] >= 0 || vagree[e] >= 0;
        if (any_test) {
            s[ns++] = (line_series){"test accuracy", student, tacc, false};
            s[ns++] = (line_series){"test agreement", "#59a14f", tagree, false};
        }
        if (any_val) s[ns++] = (line_series){"validation accuracy", "#b07aa1", vacc, true};
        line_chart(f, "chart-accuracy", "Test accuracy, agreement with the teacher and validation accuracy per epoch", n, s, ns, true,
                   d->teacher_test_acc, "teacher test accuracy", d->best_epoch);
        fputs("</figure>\n</div>\n", f);
    }
    free(y);
    fputs("<h3>Time</h3>\n<table id=\"time\"><tr><th>phase</th><th>seconds</th><th>samples/s</th></tr>\n", f);
    const od_report_phase *ph[] = {&d->loading, &d->teacher_logits, &d->training, &d->writing};
    static const char *const names[] = {"loading", "teacher logits", "epochs", "writing"};
    for (int k = 0; k < 4; k++) {
        fprintf(f, "<tr><td>%s</td><td>%.2f</td><td>", names[k], ph[k]->seconds);
        if (ph[k]->samples > 0 && ph[k]->seconds > 0) fputs(od_format_count((int64_t)llround((double)ph[k]->samples / ph[k]->seconds), a, sizeof a), f);
        fputs("</td></tr>\n", f);
    }
    fprintf(f, "<tr><th>total</th><th>%.2f</th><th></th></tr>\n</table>\n", d->total_seconds);
    if (d->measuring.seconds > 0)
        fprintf(f, "<p class=\"note\">Measuring latency and accuracy for this report took another %.1f s.</p>\n", d->measuring.seconds);
    fputs("<h3>Per epoch</h3>\n<table id=\"epochs\"><tr><th>epoch</th><th>loss</th><th>val accuracy</th><th>val agreement</th>"
          "<th>test accuracy</th><th>test agreement</th><th>seconds</th><th>samples/s</th></tr>\n", f);
    for (int e = 0; e < n; e++) {
        const od_epoch_stats *s = &d->epochs[e];
        fprintf(f, "<tr><td>%d%s</td><td>%.4f</td>", s->epoch, s->epoch == d->best_epoch ? " <b>(kept)</b>" : "", s->loss);
        const double v[4] = {s->val_acc, s->val_agree, s->test_acc, s->test_agree};
        for (int k = 0; k < 4; k++)
            if (v[k] >= 0) fprintf(f, "<td>%.2f%%</td>", 100 * v[k]);
            else fputs("<td>-</td>", f);
        fprintf(f, "<td>%.1f</td><td>%s</td></tr>\n", s->seconds, od_format_count((int64_t)llround(s->samples_per_s), a, sizeof a));
    }
    fputs("</table>\n", f);
    search_section(f, r);
    fputs("<h3>Hyper-parameters</h3>\n<table id=\"options\"><tr><th>option</th><th>value</th></tr>\n", f);
    char names2[32][32], values[32][96];
    int rows = od_report_option_rows(r, names2, values);
    for (int k = 0; k < rows; k++) {
        fprintf(f, "<tr><td>%s</td><td class=\"l\">", names2[k]);
        esc(f, values[k]);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    if (d->spec && strlen(d->spec) >= 96) { /* the table cuts it short (a --budget's candidates, say) */
        fputs("<p id=\"student-spec\"><b>student, in full:</b> ", f);
        esc(f, d->spec);
        fputs("</p>\n", f);
    }
}

static void per_class_section(FILE *f, const od_report *r) {
    const od_report_model *m0 = &r->models[0];
    int64_t K = m0->eval.classes;
    int n = r->n_models;
    char nb[24], pb[24];
    fputs("<h2 id=\"classes\">Accuracy per class</h2>\n", f);
    bool chart = K <= OD_REPORT_MATRIX_MAX_CLASSES;
    if (chart) {
        fputs("<div class=\"charts\">\n", f);
        double *value = calloc((size_t)(K * n), sizeof(double));
        char(*text)[48] = calloc((size_t)(K * n), sizeof *text);
        char(*gnames)[48] = calloc((size_t)K, sizeof *gnames);
        const char **gp = calloc((size_t)K, sizeof *gp);
        if (value && text && gnames && gp) {
            for (int64_t c = 0; c < K; c++) {
                snprintf(gnames[c], sizeof gnames[c], "%s", od_report_class_name(r, c, nb, sizeof nb));
                gp[c] = gnames[c];
                for (int i = 0; i < n; i++) {
                    const od_class_eval *e = &r->models[i].eval;
                    double v = c < e->classes ? e->per_class[c] : -1;
                    value[c * n + i] = v;
                    if (v >= 0) snprintf(text[c * n + i], 48, "%.1f%%", 100 * v);
                    else snprintf(text[c * n + i], 48, "-");
                }
            }
            fputs("<figure><figcaption>Test accuracy per true class</figcaption>\n", f);
            hbar_chart(f, r, &(hbars){"chart-per-class", "Test accuracy per true class and model", (int)K, gp, value, NULL, text, 1.0});
            legend(f, r);
            fputs("</figure>\n", f);
        }
        free(value);
        free(text);
        free(gnames);
        free(gp);
    }
    if (chart) fputs("<figure><figcaption>Per class</figcaption>\n", f);
    fputs("<table id=\"per-class\">\n", f);
    fputs("<tr><th>class</th><th>samples</th>", f);
    for (int i = 0; i < n; i++) {
        fputs("<th>", f);
        esc(f, r->models[i].label);
        fputs("</th>", f);
    }
    fputs("</tr>\n", f);
    int64_t shown[OD_REPORT_MATRIX_MAX_CLASSES + 1];
    int64_t n_shown = od_report_shown_classes(r, shown, OD_REPORT_MATRIX_MAX_CLASSES + 1);
    for (int64_t s = 0; s < n_shown; s++) {
        int64_t c = shown[s];
        fputs("<tr><td>", f);
        esc(f, od_report_class_name(r, c, nb, sizeof nb));
        fprintf(f, "</td><td>%s</td>", od_format_count(m0->eval.support[c], pb, sizeof pb));
        for (int i = 0; i < n; i++) {
            const od_class_eval *e = &r->models[i].eval;
            if (c < e->classes && e->per_class[c] >= 0) fprintf(f, "<td>%.2f%%</td>", 100 * e->per_class[c]);
            else fputs("<td>-</td>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    if (n_shown < K) {
        fprintf(f, "<p class=\"note\">The %lld of %lld classes with the lowest accuracy for ", (long long)n_shown, (long long)K);
        esc(f, r->models[n - 1].label);
        fputs("; every class is in the JSON report (--report FILE.json).</p>\n", f);
    }
    if (chart) fputs("</figure>\n</div>\n", f);
}

static void diff_table(FILE *f, const od_report *r, const od_report_model *m, const od_report_diff *d, const char *id,
                       const char *what) {
    char nb[24];
    fputs("<h3>", f);
    esc(f, what);
    fprintf(f, ": %lld samples</h3>\n", (long long)d->count);
    if (!d->count) return;
    fprintf(f, "<div class=\"charts\">\n<figure><figcaption>By true class</figcaption>\n<table id=\"%s-classes\">"
               "<tr><th>true class</th><th>samples</th></tr>\n", id);
    int64_t top[OD_REPORT_TOP];
    int n_top = od_report_top_diff_classes(d, top, OD_REPORT_TOP);
    for (int t = 0; t < n_top; t++) {
        int64_t c = top[t];
        fputs("<tr><td>", f);
        esc(f, od_report_class_name(r, c, nb, sizeof nb));
        fprintf(f, "</td><td>%lld</td></tr>\n", (long long)d->per_class[c]);
    }
    fprintf(f, "</table>\n</figure>\n<figure><figcaption>The first %d</figcaption>\n<table id=\"%s-samples\">"
               "<tr><th>test sample</th><th>true class</th><th>", d->n_samples, id);
    esc(f, m->label);
    fputs("</th><th>", f);
    esc(f, r->models[0].label);
    fputs("</th></tr>\n", f);
    for (int k = 0; k < d->n_samples; k++) {
        const od_report_sample *s = &d->samples[k];
        fprintf(f, "<tr><td>%lld</td><td class=\"l\">", (long long)s->index);
        esc(f, od_report_class_name(r, s->label, nb, sizeof nb));
        fprintf(f, "</td><td class=\"l%s\">", s->pred == s->label ? " good" : " bad");
        esc(f, od_report_class_name(r, s->pred, nb, sizeof nb));
        fprintf(f, "</td><td class=\"l%s\">", s->ref_pred == s->label ? " good" : " bad");
        esc(f, od_report_class_name(r, s->ref_pred, nb, sizeof nb));
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n</figure>\n</div>\n", f);
}

void od_report_write_html(const od_report *r, FILE *f) {
    char title[1024];
    od_report_title(r, title, sizeof title);
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", f);
    esc(f, title);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<main>\n<h1>", css);
    esc(f, title);
    fputs("</h1>\n<p class=\"sub\">", f);
    fputs(r->has_distill ? "Distillation report" : "Model comparison", f);
    if (r->data) {
        fputs(" on ", f);
        esc(f, r->data);
    }
    fputs(". ", f);
    for (int i = 0; i < r->n_models; i++) {
        fputs(i ? ", " : "", f);
        esc(f, r->models[i].label);
        if (r->models[i].path && strcmp(r->models[i].path, r->models[i].label)) {
            fputs(": <code>", f);
            esc(f, r->models[i].path);
            fputs("</code>", f);
        }
    }
    fputs(".</p>\n", f);
    if (r->n_models == 0) goto end;
    cards(f, r);
    fputs("<h2 id=\"summary-title\">Summary</h2>\n", f);
    summary_table(f, r);
    size_latency_charts(f, r);
    if (r->has_distill) training_section(f, r);
    if (r->n_test && r->models[0].eval.classes > 0) {
        per_class_section(f, r);
        bool matrix = r->models[0].eval.classes <= OD_REPORT_MATRIX_MAX_CLASSES;
        if (matrix)
            fputs("<h2 id=\"confusion\">Confusion matrices</h2>\n<p class=\"note\">Rows: true class; columns: predicted class; "
                  "blue: correct, red: confusions (shade by share of the row); numbers: samples.</p>\n<div class=\"charts\">\n", f);
        else
            fprintf(f, "<h2 id=\"confusion\">Most confused classes</h2>\n<p class=\"note\">%lld classes: instead of the matrices, "
                       "the %d largest off-diagonal cells (the full matrices are in the JSON report).</p>\n<div class=\"charts\">\n",
                    (long long)r->models[0].eval.classes, OD_REPORT_TOP);
        for (int i = 0; i < r->n_models; i++) {
            if (r->models[i].eval.classes <= 0) continue;
            fputs("<figure><figcaption>", f);
            esc(f, r->models[i].label);
            fprintf(f, " <span>(%.2f%% correct)</span></figcaption>\n", 100 * r->models[i].accuracy);
            if (r->models[i].eval.classes <= OD_REPORT_MATRIX_MAX_CLASSES) heatmap(f, r, i);
            else top_pairs(f, r, i);
            fputs("</figure>\n", f);
        }
        fputs("</div>\n", f);
        for (int i = 1; i < r->n_models; i++) {
            const od_report_model *m = &r->models[i], *m0 = &r->models[0];
            if (!m->wrong_ref_right.per_class) continue;
            char what[512], id[64];
            fprintf(f, "<h2 id=\"differences-%d\">Where ", i);
            esc(f, m->label);
            fputs(" and ", f);
            esc(f, m0->label);
            fputs(" differ</h2>\n", f);
            snprintf(what, sizeof what, "%s wrong, %s right", m->label, m0->label);
            snprintf(id, sizeof id, "wrong-%d", i);
            diff_table(f, r, m, &m->wrong_ref_right, id, what);
            snprintf(what, sizeof what, "%s right, %s wrong", m->label, m0->label);
            snprintf(id, sizeof id, "right-%d", i);
            diff_table(f, r, m, &m->right_ref_wrong, id, what);
        }
    }
end:
    fprintf(f, "<footer>onnx-distill %s</footer>\n</main>\n</body>\n</html>\n", OD_VERSION);
}

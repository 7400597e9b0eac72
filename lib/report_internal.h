/* Shared by the report writers (report.c: text, JSON, Markdown; report_html.c: HTML). */
#ifndef OD_REPORT_INTERNAL_H
#define OD_REPORT_INTERNAL_H

#include "od_onnx.h"

/* The class's name, or its number. */
const char *od_report_class_name(const od_report *r, int64_t c, char *buf, size_t size);
/* Milliseconds with 3 significant digits or more: "0.0512", "1.23", "145". */
const char *od_report_ms(double seconds, char *buf, size_t size);
/* a / b as "0.126x" (or "-" when b is 0). */
const char *od_report_ratio(double a, double b, char *buf, size_t size);
/* The (batch, threads) pair as "batch 1, 2 threads". */
const char *od_report_latency_name(const od_latency *l, char *buf, size_t size);
/* The title: "teacher.onnx -> student.onnx" for a distillation, file names otherwise. */
const char *od_report_title(const od_report *r, char *buf, size_t size);

/* The rows of the summary table every format prints (text, Markdown, HTML), in order: the four
 * counts (*sub 0-3: file bytes, gzip bytes, params, MACs; labels od_report_count_labels), one
 * per latency of the first model (*sub: its index), then with test samples accuracy and
 * agreement with the first model. */
typedef enum od_report_row_kind {
    OD_REPORT_ROW_COUNT,
    OD_REPORT_ROW_LATENCY,
    OD_REPORT_ROW_ACCURACY,
    OD_REPORT_ROW_AGREEMENT,
    OD_REPORT_ROW_END,
} od_report_row_kind;
extern const char *const od_report_count_labels[4];
/* Row `row`'s kind (OD_REPORT_ROW_END past the last) with each model's cell and its ratio to
 * the first model ("-" where unknown, "" for agreement) in cells[i] and ratios[i]. */
od_report_row_kind od_report_summary_row(const od_report *r, int row, int *sub, char (*cells)[40],
                                         char (*ratios)[24]);

/* How a format writes the summary table's rows (Markdown, HTML): a row is row_open, the label,
 * label_close, every cell (cell(f, text); a ratio cell after every model but the first) and
 * row_close; the latency rows' "median / p90" goes between note_open and note_close; names
 * are written by text (the format's escaping). */
typedef struct od_report_table_syntax {
    const char *row_open, *label_close, *row_close, *note_open, *note_close;
    void (*text)(FILE *f, const char *s);
    void (*cell)(FILE *f, const char *s);
} od_report_table_syntax;
/* Every row of the summary table (od_report_summary_row) in that syntax. */
void od_report_summary_rows(FILE *f, const od_report *r, const od_report_table_syntax *syn);

/* " of DATA, preprocessing: P" (each part when known) after "N test samples", the names
 * written by text (the format's escaping). */
void od_report_data_phrase(FILE *f, const od_report *r, void (*text)(FILE *f, const char *s));

/* Options as (name, value) rows, for tables; returns the count (at most 32). */
int od_report_option_rows(const od_report *r, char names[][32], char values[][96]);

void od_report_write_html(const od_report *r, FILE *f);

/* Above this many classes the HTML and Markdown reports summarise: the most confused pairs
 * instead of a matrix, the classes with the lowest accuracy instead of all of them (a 1000-class
 * HTML report stays under a few hundred kB; the JSON report keeps everything). */
#define OD_REPORT_MATRIX_MAX_CLASSES 30
#define OD_REPORT_TOP 25

typedef struct od_report_pair {
    int64_t label, pred, count;
} od_report_pair;

/* The off-diagonal cells of e with the most samples, most first (ties: by true then predicted
 * class), at most max; returns the count. */
int od_report_top_pairs(const od_class_eval *e, od_report_pair *out, int max);
/* The classes a per-class table shows: all of them up to OD_REPORT_MATRIX_MAX_CLASSES, else
 * the OD_REPORT_TOP with the lowest accuracy for the last model (then by class). Writes up to
 * OD_REPORT_TOP or K indices to out (which must hold that many); returns the count. */
int64_t od_report_shown_classes(const od_report *r, int64_t *out, int64_t cap);
/* The true classes of a difference list with the most samples, most first, at most max. */
int od_report_top_diff_classes(const od_report_diff *d, int64_t *out, int max);

#endif

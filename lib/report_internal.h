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

/* Options as (name, value) rows, for tables; returns the count (at most 32). */
int od_report_option_rows(const od_report *r, char names[][32], char values[][96]);

void od_report_write_html(const od_report *r, FILE *f);

#endif

/* Helpers shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("onnx-distill: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail_err(const od_error *err) { return cli_fail("%s", err->message); }

bool cli_flag(const char *arg, const char *name) { return strcmp(arg, name) == 0; }

bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return false;
    if (a[n] == '=') {
        *value = a + n + 1;
        return true;
    }
    if (a[n] != 0) return false;
    if (*i + 1 >= argc) {
        cli_fail("%s needs a value", name);
        *value = NULL;
        return true;
    }
    *value = argv[++*i];
    return true;
}

bool cli_int(const char *opt, const char *s, long lo, long hi, long *out) {
    if (!s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_fail("%s: \"%s\" is not a whole number from %ld to %ld", opt, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_double(const char *opt, const char *s, double lo, double hi, double *out) {
    if (!s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        cli_fail("%s: \"%s\" is not a number from %g to %g", opt, s, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

int cli_int_list(const char *opt, const char *s, long lo, long hi, long *out, int max) {
    if (!s) return -1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == max) {
            cli_fail("%s: at most %d values", opt, max);
            return -1;
        }
        if (!cli_int(opt, tok, lo, hi, &out[n++])) return -1;
    }
    if (!n) cli_fail("%s: no values", opt);
    return n ? n : -1;
}

od_status model_facts_get(const char *path, const od_model *m, model_facts *f, od_error *err) {
    memset(f, 0, sizeof *f);
    struct stat st;
    if (path && stat(path, &st) == 0) f->bytes = (size_t)st.st_size;
    return od_model_count_ex(m, &f->params, &f->macs, &f->macs_unknown, err);
}

static int parse_floats(const char *opt, const char *s, double lo, float *out, int *n_out) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        double d;
        if (n == 16) return cli_fail("%s: at most 16 values", opt);
        if (!cli_double(opt, t, lo, 1e9, &d)) return 1;
        out[n++] = (float)d;
    }
    if (!n) return cli_fail("%s: no values", opt);
    *n_out = n;
    return 0;
}

int cli_preprocess_option(int argc, char **argv, int *i, cli_preprocess *p) {
    const char *v;
    if (cli_opt(argc, argv, i, "--scale", &v)) {
        double d;
        if (!cli_double("--scale", v, 1e-12, 1e12, &d)) return 1;
        p->has_scale = true;
        p->scale = (float)d;
        return 0;
    }
    if (cli_opt(argc, argv, i, "--mean", &v)) {
        if (v && (p->n_mean = od_preprocess_named(v, false, p->mean))) return 0;
        return v ? parse_floats("--mean", v, -1e9, p->mean, &p->n_mean) : 1;
    }
    if (cli_opt(argc, argv, i, "--std", &v)) {
        if (v && (p->n_std = od_preprocess_named(v, true, p->std))) return 0;
        return v ? parse_floats("--std", v, 1e-12, p->std, &p->n_std) : 1;
    }
    return -1;
}

void cli_preprocess_apply(const cli_preprocess *p, od_preprocess *pre) {
    if (p->has_scale) pre->scale = p->scale;
    if (!p->n_mean && !p->n_std) return;
    int n = p->n_mean > p->n_std ? p->n_mean : p->n_std;
    float mean[16], std[16];
    for (int c = 0; c < n; c++) {
        mean[c] = p->n_mean ? p->mean[c < p->n_mean ? c : p->n_mean - 1] : pre->mean[pre->n_channels > 1 ? c : 0];
        std[c] = p->n_std ? p->std[c < p->n_std ? c : p->n_std - 1] : pre->std[pre->n_channels > 1 ? c : 0];
    }
    pre->n_channels = n;
    memcpy(pre->mean, mean, sizeof(float) * (size_t)n);
    memcpy(pre->std, std, sizeof(float) * (size_t)n);
}

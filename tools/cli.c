/* The one option parser, the help and man page printers, and helpers shared by the commands. */
#include "cli.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- messages ------------------------------------------------------------------------------ */

static void vmessage(const char *fmt, va_list ap) {
    fputs("onnx-distill: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap);
    va_end(ap);
    return CLI_EXIT_FAILURE;
}

int cli_fail_err(const od_error *err) {
    return cli_fail("%s", err->message);
}

/* One line: the message, then where to read more. */
int cli_usage(const cli_command *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cli_fail("%s (see onnx-distill %s --help)", msg, cmd->name), CLI_EXIT_USAGE;
}

/* ---- values -------------------------------------------------------------------------------- */

static const char *range_text(const cli_option *o, char *buf, size_t size) {
    if (o->kind == CLI_INT || o->kind == CLI_INT_LIST) {
        if (o->hi == 0)
            snprintf(buf, size, "a whole number from %lld up", (long long)o->lo);
        else
            snprintf(buf, size, "a whole number from %lld to %lld", (long long)o->lo,
                     (long long)o->hi);
    } else {
        snprintf(buf, size, "a number in %c%g, %g]", o->lo_open ? '(' : '[', o->lo, o->hi);
    }
    return buf;
}

/* Checks one number against the option; the message is the same for every command. */
static bool number_ok(const cli_option *o, const char *s) {
    char *end;
    errno = 0;
    bool ok;
    if (o->kind == CLI_INT || o->kind == CLI_INT_LIST) {
        bool negative = s[0] == '-';
        if (negative || o->lo >= 0) {
            unsigned long long u = 0;
            long long v = 0;
            if (negative)
                v = strtoll(s, &end, 10);
            else
                u = strtoull(s, &end, 10);
            ok = !errno && end != s && !*end && s[0] != '+' && s[0] != ' ';
            if (ok && negative)
                ok = (double)v >= o->lo && (o->hi == 0 || (double)v <= o->hi);
            else if (ok)
                ok = (double)u >= o->lo && (o->hi == 0 || (double)u <= o->hi);
        } else {
            long long v = strtoll(s, &end, 10);
            ok = !errno && end != s && !*end && (double)v >= o->lo &&
                 (o->hi == 0 || (double)v <= o->hi);
        }
    } else {
        double d = strtod(s, &end);
        ok = !errno && end != s && !*end && isfinite(d) && (o->lo_open ? d > o->lo : d >= o->lo) &&
             d <= o->hi;
    }
    if (!ok) {
        char range[128];
        cli_fail("%s: \"%s\" is not %s", o->name, s, range_text(o, range, sizeof range));
    }
    return ok;
}

static int choice_index(const char *choices, const char *s) {
    size_t n = strlen(s);
    int k = 0;
    for (const char *c = choices; c; c = strchr(c, '|'), c = c ? c + 1 : NULL, k++)
        if (strncmp(c, s, n) == 0 && (c[n] == '|' || c[n] == 0) && n) return k;
    return -1;
}

/* Splits a list into items (buf keeps them); returns the count, or -1 after a message. */
static int split_list(const cli_option *o, const char *s, char *buf, size_t size, char **items,
                      int max) {
    int lo = o->min_items ? o->min_items : 1, hi = o->max_items ? o->max_items : 16, n = 0;
    snprintf(buf, size, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == hi || n == max) {
            cli_fail("%s: \"%s\" has more than %d values", o->name, s, hi);
            return -1;
        }
        items[n++] = t;
    }
    if (n < lo) {
        if (lo == hi)
            cli_fail("%s: \"%s\" is not %d comma-separated values", o->name, s, lo);
        else
            cli_fail("%s: \"%s\" has fewer than %d values", o->name, s, lo);
        return -1;
    }
    return n;
}

static bool value_ok(const cli_option *o, const char *v) {
    switch (o->kind) {
    case CLI_INT:
    case CLI_REAL:
        if (o->choices && choice_index(o->choices, v) >= 0) return true; /* a named value: "auto" */
        return number_ok(o, v);
    case CLI_CHOICE:
        if (choice_index(o->choices, v) >= 0) return true;
        char list[256];
        size_t len = 0;
        for (const char *c = o->choices; *c && len + 3 < sizeof list; c++)
            len += (size_t)snprintf(list + len, sizeof list - len, *c == '|' ? ", " : "%c", *c);
        list[len] = 0;
        cli_fail("%s: \"%s\" is not one of %s", o->name, v, list);
        return false;
    case CLI_INT_LIST:
    case CLI_REAL_LIST: {
        if (o->choices && choice_index(o->choices, v) >= 0) return true; /* a named list */
        char buf[1024], *items[64];
        int n = split_list(o, v, buf, sizeof buf, items, 64);
        for (int i = 0; i < n; i++)
            if (!number_ok(o, items[i])) return false;
        return n > 0;
    }
    default:
        return true;
    }
}

/* ---- parsing ------------------------------------------------------------------------------- */

static const cli_option *find_long(const cli_command *cmd, const char *arg, size_t len) {
    for (const cli_option *o = cmd->options; o->kind; o++)
        if (o->name && strlen(o->name) == len && strncmp(o->name, arg, len) == 0) return o;
    return NULL;
}

static const cli_option *find_short(const cli_command *cmd, char c) {
    for (const cli_option *o = cmd->options; o->kind; o++)
        if (o->name && o->short_name == c) return o;
    return NULL;
}

void cli_args_clear(cli_args *a) {
    free(a->operands);
    free(a->given);
    memset(a, 0, sizeof *a);
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_args *a) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    /* --help wins over anything else before "--" */
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cli_print_help(cmd, stdout);
            return 0;
        }
    a->operands = calloc((size_t)argc + 1, sizeof *a->operands);
    a->given = calloc((size_t)argc + 1, sizeof *a->given);
    if (!a->operands || !a->given)
        return cli_fail("out of memory"), cli_args_clear(a), CLI_EXIT_FAILURE;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL;
        const cli_option *o = NULL;
        if (options_done || arg[0] != '-' || !arg[1]) {
            if (cmd->max_operands >= 0 && a->n_operands == cmd->max_operands) {
                int rc = a->n_operands == 1
                             ? cli_usage(cmd, "one %s at a time (%s and %s given)", cmd->operand,
                                         a->operands[0], arg)
                             : cli_usage(cmd, "at most %d %ss", cmd->max_operands, cmd->operand);
                return cli_args_clear(a), rc;
            }
            a->operands[a->n_operands++] = arg;
            continue;
        }
        if (!strcmp(arg, "--")) {
            options_done = true;
            continue;
        }
        if (arg[1] == '-') { /* --name, --name=value */
            const char *eq = strchr(arg, '=');
            o = find_long(cmd, arg, eq ? (size_t)(eq - arg) : strlen(arg));
            if (o && eq) value = eq + 1;
        } else if ((o = find_short(cmd, arg[1]))) { /* -o value, -ovalue */
            if (arg[2] && o->kind == CLI_FLAG)
                o = NULL;
            else if (arg[2])
                value = arg + 2;
        }
        if (!o) return cli_args_clear(a), cli_usage(cmd, "%s: unknown option %s", cmd->name, arg);
        if (o->kind == CLI_FLAG && value)
            return cli_args_clear(a), cli_usage(cmd, "%s takes no value", o->name);
        if (o->kind != CLI_FLAG && !value) {
            if (i + 1 >= argc)
                return cli_args_clear(a), cli_usage(cmd, "%s needs a value", o->name);
            value = argv[++i];
        }
        if (o->kind != CLI_FLAG && !value_ok(o, value)) return cli_args_clear(a), CLI_EXIT_USAGE;
        a->given[a->n_given++] = (struct cli_given){o, value};
    }
    if (a->n_operands < cmd->min_operands)
        return cli_args_clear(a), cli_usage(cmd, "%s: no %s given", cmd->name, cmd->operand);
    return -1;
}

/* ---- getters ------------------------------------------------------------------------------- */

static const cli_option *option_named(const cli_args *a, const char *name) {
    const cli_option *o = find_long(a->cmd, name, strlen(name));
    assert(o && "a command asked for an option its table lacks");
    return o;
}

static const char *last_value(const cli_args *a, const char *name) {
    const cli_option *o = option_named(a, name);
    for (int i = a->n_given - 1; i >= 0; i--)
        if (a->given[i].opt == o) return a->given[i].value ? a->given[i].value : "";
    return NULL;
}

bool cli_given(const cli_args *a, const char *name) {
    return last_value(a, name) != NULL;
}

const char *cli_text(const cli_args *a, const char *name, const char *dflt) {
    const char *v = last_value(a, name);
    return v ? v : dflt;
}

long long cli_int(const cli_args *a, const char *name, long long dflt) {
    const char *v = last_value(a, name);
    return v ? (v[0] == '-' ? strtoll(v, NULL, 10) : (long long)strtoull(v, NULL, 10)) : dflt;
}

double cli_real(const cli_args *a, const char *name, double dflt) {
    const char *v = last_value(a, name);
    return v ? strtod(v, NULL) : dflt;
}

int cli_choice(const cli_args *a, const char *name, int dflt) {
    const char *v = last_value(a, name);
    return v ? choice_index(option_named(a, name)->choices, v) : dflt;
}

static int list_items(const cli_args *a, const char *name, char *buf, size_t size, char **items,
                      int max) {
    const char *v = last_value(a, name);
    return v ? split_list(option_named(a, name), v, buf, size, items, max) : 0;
}

int cli_int_list(const cli_args *a, const char *name, long long *out, int max) {
    char buf[1024], *items[64];
    int n = list_items(a, name, buf, sizeof buf, items, max < 64 ? max : 64);
    for (int i = 0; i < n; i++)
        out[i] = strtoll(items[i], NULL, 10);
    return n;
}

int cli_real_list(const cli_args *a, const char *name, double *out, int max) {
    char buf[1024], *items[64];
    int n = list_items(a, name, buf, sizeof buf, items, max < 64 ? max : 64);
    for (int i = 0; i < n; i++)
        out[i] = strtod(items[i], NULL);
    return n;
}

int cli_count(const cli_args *a, const char *name) {
    const cli_option *o = option_named(a, name);
    int n = 0;
    for (int i = 0; i < a->n_given; i++)
        n += a->given[i].opt == o;
    return n;
}

const char *cli_nth(const cli_args *a, const char *name, int k) {
    const cli_option *o = option_named(a, name);
    for (int i = 0; i < a->n_given; i++)
        if (a->given[i].opt == o && k-- == 0) return a->given[i].value;
    return NULL;
}

/* ---- help and man page --------------------------------------------------------------------- */

enum { HELP_WIDTH = 98, HELP_COLUMN = 24 };

/* Prints text wrapped to HELP_WIDTH, continuation lines indented by indent; col is where the
 * cursor is. "\n" breaks the line; spaces after it are kept (for examples). */
static void wrap(FILE *f, const char *text, int col, int indent) {
    const char *p = text;
    bool space = false;
    while (*p) {
        if (*p == '\n') {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
            space = false;
            for (p++; *p == ' '; p++)
                fputc(' ', f), col++;
            continue;
        }
        if (*p == ' ') {
            space = true;
            p++;
            continue;
        }
        size_t n = strcspn(p, " \n");
        if (col > indent && col + 1 + (int)n > HELP_WIDTH) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (space && col > indent) {
            fputc(' ', f);
            col++;
        }
        space = false;
        fwrite(p, 1, n, f);
        col += (int)n;
        p += n;
    }
    fputc('\n', f);
}

static const char *arg_name(const cli_option *o) {
    if (o->arg) return o->arg;
    return o->kind == CLI_CHOICE ? o->choices : o->kind == CLI_FLAG ? NULL : "VALUE";
}

/* The help text, then its range and default from the table: "help (1 to 256; default 2)". */
static void option_full_help(const cli_option *o, char *buf, size_t size) {
    char range[128] = "";
    bool is_int = o->kind == CLI_INT || o->kind == CLI_INT_LIST,
         is_list = o->kind == CLI_INT_LIST || o->kind == CLI_REAL_LIST;
    if (is_int && (o->hi == 0 || o->hi >= 1e12))
        snprintf(range, sizeof range, "%s%lld or more", is_list ? "each " : "", (long long)o->lo);
    else if (is_int)
        snprintf(range, sizeof range, "%s%lld to %lld", is_list ? "each " : "", (long long)o->lo,
                 (long long)o->hi);
    else if (o->kind == CLI_REAL || o->kind == CLI_REAL_LIST)
        snprintf(range, sizeof range, "%sin %c%g, %g]", is_list ? "each " : "",
                 o->lo_open ? '(' : '[', o->lo, o->hi);
    if (o->kind == CLI_INT && o->lo == 0 && o->hi == 0)
        range[0] = 0; /* any whole number: say nothing */
    snprintf(buf, size, "%s%s%s%s%s%s%s", o->help ? o->help : "",
             o->help && (range[0] || o->dflt) ? " ("
             : range[0] || o->dflt            ? "("
                                              : "",
             range, range[0] && o->dflt ? "; " : "", o->dflt ? "default " : "",
             o->dflt ? o->dflt : "", range[0] || o->dflt ? ")" : "");
}

void cli_print_help(const cli_command *cmd, FILE *f) {
    fprintf(f, "usage: onnx-distill %s %s\n\n", cmd->name, cmd->synopsis);
    wrap(f, cmd->about, 0, 0);
    for (const cli_option *o = cmd->options; o->kind; o++) {
        if (o->kind == CLI_HEADING) {
            fprintf(f, "\n%s\n", o->help);
            continue;
        }
        if (o == cmd->options) fputc('\n', f);
        char left[128], text[2048];
        const char *arg = arg_name(o);
        int n = snprintf(left, sizeof left, "  %s%s%s%s%s",
                         o->short_name ? (char[]){'-', o->short_name, ',', ' ', 0} : "", o->name,
                         arg ? " " : "", arg ? arg : "", o->repeat ? " ..." : "");
        option_full_help(o, text, sizeof text);
        if (n >= HELP_COLUMN - 1) {
            fprintf(f, "%s\n%*s", left, HELP_COLUMN, "");
        } else {
            fprintf(f, "%-*s", HELP_COLUMN, left);
        }
        wrap(f, text, HELP_COLUMN, HELP_COLUMN);
    }
    if (cmd->notes) {
        fputc('\n', f);
        wrap(f, cmd->notes, 0, 0);
    }
    fputs("\nExit status: 0 success, 1 runtime error (bad model, data or file), 2 usage error.\n",
          f);
}

/* roff text: backslashes doubled, a leading dot or quote escaped, hyphens in option names. */
static void roff(FILE *f, const char *s) {
    bool line_start = true;
    for (; *s; s++) {
        if (line_start && (*s == '.' || *s == '\'')) fputs("\\&", f);
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
        line_start = *s == '\n';
    }
}

static void roff_paragraphs(FILE *f, const char *text) {
    /* "\n" followed by spaces is an example: keep its lines as they are */
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char line[2048];
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        if (line[0] == ' ') fputs(".br\n\\&", f);
        roff(f, line[0] == ' ' ? line : line);
        fputc('\n', f);
        if (nl && nl[1] == '\n') fputs(".PP\n", f);
        p = nl ? nl + 1 : p + n;
    }
}

void cli_print_man(const cli_command *const *cmds, int n, FILE *f) {
    fprintf(f, ".TH ONNX\\-DISTILL 1 \"\" \"onnx-distill %s\" \"User Commands\"\n", OD_VERSION);
    fputs(".SH NAME\nonnx\\-distill \\- compress an ONNX teacher into a small student\n", f);
    fputs(".SH SYNOPSIS\n", f);
    for (int i = 0; i < n; i++) {
        fprintf(f, ".B onnx\\-distill %s\n", cmds[i]->name);
        roff(f, cmds[i]->synopsis);
        fputs("\n.br\n", f);
    }
    fputs(".B onnx\\-distill help\n.I COMMAND\n.br\n.B onnx\\-distill \\-\\-version\n", f);
    fputs(".SH DESCRIPTION\nonnx\\-distill reads a teacher ONNX model, builds a shrunk student "
          "from its graph, "
          "distils it with noisy teacher logits on its own interpreter, and writes the student as "
          "ONNX, "
          "with reports. Each command below takes its options in any order; "
          "\\fB\\-\\-name value\\fR, \\fB\\-\\-name=value\\fR, \\fB\\-o value\\fR and "
          "\\fB\\-ovalue\\fR are the same; "
          "\\fB\\-\\-\\fR ends the options, so that a file name may start with a dash.\n",
          f);
    fputs(".SH COMMANDS\n", f);
    for (int i = 0; i < n; i++) {
        const cli_command *c = cmds[i];
        fprintf(f, ".SS %s\n", c->name);
        fputs(".B onnx\\-distill ", f);
        roff(f, c->name);
        fputc(' ', f);
        roff(f, c->synopsis);
        fputs("\n.PP\n", f);
        roff_paragraphs(f, c->about);
        for (const cli_option *o = c->options; o->kind; o++) {
            if (o->kind == CLI_HEADING) {
                fputs(".PP\n.I ", f);
                roff(f, o->help);
                fputc('\n', f);
                continue;
            }
            char text[2048];
            const char *arg = arg_name(o);
            fputs(".TP\n.B ", f);
            if (o->short_name) fprintf(f, "\\-%c, ", o->short_name);
            roff(f, o->name);
            if (arg) {
                fputs(" \\fI", f);
                roff(f, arg);
                fputs("\\fR", f);
            }
            fputc('\n', f);
            option_full_help(o, text, sizeof text);
            roff_paragraphs(f, text);
        }
        if (c->notes) {
            fputs(".PP\n", f);
            roff_paragraphs(f, c->notes);
        }
    }
    fputs(".SH EXIT STATUS\n.TP\n0\nsuccess\n.TP\n1\na runtime error: a bad model, dataset or "
          "file, or a failed write; "
          "one line on stderr names the file, node and op\n.TP\n2\na usage error: an unknown "
          "option, a value out of "
          "range, a missing operand (the same option is checked the same way in every "
          "command)\n.TP\n130\n"
          "distill interrupted (Ctrl\\-C); the checkpoint is kept for \\-\\-resume\n",
          f);
    fputs(".SH SEE ALSO\nThe library: onnx_distill.h (the front door) and the detailed headers it "
          "names; "
          "\\fBpkg\\-config \\-\\-cflags \\-\\-libs onnx\\-distill\\fR.\n",
          f);
}

/* ---- shared helpers ------------------------------------------------------------------------ */

od_status model_facts_get(const char *path, const od_model *m, model_facts *f, od_error *err) {
    memset(f, 0, sizeof *f);
    struct stat st;
    if (path && stat(path, &st) == 0) f->bytes = (size_t)st.st_size;
    return od_model_count_ex(m, &f->params, &f->macs, &f->macs_unknown, err);
}

void cli_preprocess_apply(const cli_args *a, od_preprocess *pre) {
    double m[16], s[16];
    float named[16];
    int n_mean = cli_real_list(a, "--mean", m, 16), n_std = cli_real_list(a, "--std", s, 16);
    for (int k = 0, n; k < 2; k++) /* --mean imagenet, --std imagenet */
        if ((n = od_preprocess_named(cli_text(a, k ? "--std" : "--mean", NULL), k == 1, named)) > 0) {
            for (int i = 0; i < n; i++)
                (k ? s : m)[i] = named[i];
            *(k ? &n_std : &n_mean) = n;
        }
    if (cli_given(a, "--scale")) pre->scale = (float)cli_real(a, "--scale", 1);
    if (!n_mean && !n_std) return;
    int n = n_mean > n_std ? n_mean : n_std;
    float mean[16], std[16];
    for (int c = 0; c < n; c++) {
        mean[c] =
            n_mean ? (float)m[c < n_mean ? c : n_mean - 1] : pre->mean[pre->n_channels > 1 ? c : 0];
        std[c] =
            n_std ? (float)s[c < n_std ? c : n_std - 1] : pre->std[pre->n_channels > 1 ? c : 0];
    }
    pre->n_channels = n;
    memcpy(pre->mean, mean, sizeof(float) * (size_t)n);
    memcpy(pre->std, std, sizeof(float) * (size_t)n);
}

typedef struct load_progress {
    bool tty;
} load_progress;

static void show_load(const char *what, int64_t done, int64_t total, void *ctx) {
    const load_progress *lp = ctx;
    if (lp->tty) fprintf(stderr, "\r\033[K%s %lld/%lld", what, (long long)done, (long long)total);
    if (lp->tty && done == total) fputc('\n', stderr);
}

od_status cli_data_load(const cli_args *a, const char *path, const od_model *model, int threads, bool quiet,
                        od_data_split *out, od_error *err) {
    return cli_data_load_shard(a, path, model, threads, quiet, 0, 1, 0, out, err);
}

od_status cli_data_load_shard(const cli_args *a, const char *path, const od_model *model, int threads, bool quiet,
                              int shard, int shards, int64_t shard_limit, od_data_split *out, od_error *err) {
    od_image_options io;
    od_image_options_default(&io);
    io.shard = shard, io.shards = shards, io.shard_limit = shard_limit;
    if (model) od_image_options_for_model(model, &io);
    io.resize = cli_int(a, "--resize", io.resize);
    const char *crop = cli_text(a, "--crop", NULL);
    if (crop) {
        char *end;
        long h = strtol(crop, &end, 10), w = h;
        if (*end == 'x') w = strtol(end + 1, &end, 10);
        if (*end || h < 1 || w < 1 || h > 65536 || w > 65536)
            return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "--crop %s: want H or HxW, each 1 to 65536", crop);
        io.height = h, io.width = w;
    }
    io.strict = cli_given(a, "--strict");
    io.cache_dir = cli_text(a, "--cache", NULL);
    io.threads = threads;
    load_progress lp = {isatty(2)};
    if (!quiet) io.progress = show_load, io.progress_ctx = &lp;
    od_status st = od_data_load_ex(path, &io, out, err);
    if (!st && out->n_skipped && !quiet)
        fprintf(stderr,
                "onnx-distill: warning: %lld image file%s skipped (not PNG or JPEG, or corrupt; --strict makes this an "
                "error), the first: %s\n",
                (long long)out->n_skipped, out->n_skipped == 1 ? "" : "s", out->skipped);
    return st;
}

od_status cli_budget_target(const cli_args *a, od_budget *b, double *min_time, od_error *err) {
    *min_time = cli_real(a, "--budget-time", 0.2);
    if (cli_given(a, "--budget-margin") && cli_choice(a, "--budget-margin", -1) != 0)
        b->margin_auto = false, b->margin = cli_real(a, "--budget-margin", 0) / 100;
    const char *target = cli_text(a, "--target", "ours");
    if (strcmp(target, "ort")) return OD_STATUS_OK;
    if (b->kind != OD_BUDGET_LATENCY)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "--target ort: only a latency budget is measured");
    static char version[128];
    od_status st = cli_ort_check(version, sizeof version, err);
    if (st) return st;
    b->timer = cli_ort_timer, b->runtime = version;
    return OD_STATUS_OK;
}

od_status cli_budget_choose(const od_model *teacher, const od_budget *b, double min_time, const char *spec_out,
                            od_shrink_spec *spec, od_budget_result *res, od_model **student, od_error *err) {
    od_status st = od_budget_search(teacher, spec, b, min_time, res, student, err);
    if (st) return st;
    od_budget_print(b, res, stdout);
    if (res->warning[0]) fprintf(stderr, "onnx-distill: warning: %s\n", res->warning);
    char json[8192];
    od_budget_spec_json(spec, json, sizeof json);
    printf("spec: %s", json);
    if (spec->round_to != 8) printf("(keep --round %d with this spec)\n", spec->round_to);
    return spec_out ? od_file_write_atomic(spec_out, json, strlen(json), err) : OD_STATUS_OK;
}

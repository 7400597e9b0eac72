/* The student builder's spec file: a small JSON reader for
 *   {"width": 0.5, "depth": 1, "channels": {"NODE or GLOB": 24}, "drop": ["BLOCK or GLOB"]}
 * Strict JSON (no comments, no trailing commas); errors give line and column. */
#include "od_onnx.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void od_shrink_spec_default(od_shrink_spec *s) {
    memset(s, 0, sizeof *s);
    s->width = 1;
    s->depth = 1;
    s->round_to = 8;
    s->init = OD_SHRINK_INIT_TEACHER;
    s->bn = OD_SHRINK_BN_AUTO;
    s->seed = 1;
}

void od_shrink_spec_clear(od_shrink_spec *s) {
    if (!s) return;
    for (int i = 0; i < s->n_channels; i++)
        free(s->channels[i].pattern);
    free(s->channels);
    for (int i = 0; i < s->n_drop; i++)
        free(s->drop[i]);
    free(s->drop);
    s->channels = NULL;
    s->drop = NULL;
    s->n_channels = s->n_drop = 0;
}

typedef struct json_in {
    const char *p, *start, *end;
    const char *name;
    od_error *err;
} json_in;

static od_status json_fail(json_in *in, const char *fmt, const char *arg) {
    int line = 1, col = 1;
    for (const char *q = in->start; q < in->p && q < in->end; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    return od_error_set(in->err, OD_STATUS_INVALID_ARGUMENT, "%s:%d:%d: %s", in->name, line, col,
                        msg);
}

static void json_space(json_in *in) {
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
        in->p++;
}

static bool json_peek(json_in *in, char c) {
    json_space(in);
    return in->p < in->end && *in->p == c;
}

static od_status json_expect(json_in *in, char c) {
    if (!json_peek(in, c)) {
        char what[4] = {c, 0};
        return json_fail(in, in->p < in->end ? "expected '%s'" : "expected '%s' before the end",
                         what);
    }
    in->p++;
    return OD_STATUS_OK;
}

static void utf8_put(char **o, unsigned cp) {
    char *q = *o;
    if (cp < 0x80) {
        *q++ = (char)cp;
    } else if (cp < 0x800) {
        *q++ = (char)(0xc0 | cp >> 6);
        *q++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *q++ = (char)(0xe0 | cp >> 12);
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *q++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *q++ = (char)(0xf0 | cp >> 18);
        *q++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *q++ = (char)(0x80 | (cp & 0x3f));
    }
    *o = q;
}

static bool hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return false;
    }
    *out = v;
    return true;
}

/* A string into a new buffer (*out, NUL-terminated). */
static od_status json_string(json_in *in, char **out) {
    *out = NULL;
    json_space(in);
    if (in->p >= in->end || *in->p != '"') return json_fail(in, "expected a string", NULL);
    const char *q = ++in->p;
    while (q < in->end && *q != '"')
        q += *q == '\\' ? 2 : 1;
    if (q >= in->end) return json_fail(in, "unterminated string", NULL);
    char *buf = malloc((size_t)(q - in->p) * 2 + 1), *o = buf;
    if (!buf) return od_error_set(in->err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    while (*in->p != '"') {
        unsigned char c = (unsigned char)*in->p;
        if (c < 0x20) {
            free(buf);
            return json_fail(in, "control character in a string", NULL);
        }
        if (c != '\\') {
            *o++ = (char)c;
            in->p++;
            continue;
        }
        char e = in->p[1];
        in->p += 2;
        switch (e) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '/':
            *o++ = '/';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            unsigned cp;
            if (in->end - in->p < 4 || !hex4(in->p, &cp) || cp == 0) {
                in->p -= 2;
                free(buf);
                return json_fail(in, "bad \\u escape", NULL);
            }
            in->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && in->end - in->p >= 6 && in->p[0] == '\\' &&
                in->p[1] == 'u') {
                unsigned lo;
                if (hex4(in->p + 2, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    in->p += 6;
                }
            }
            utf8_put(&o, cp);
        } break;
        default:
            in->p -= 2;
            free(buf);
            return json_fail(in, "bad escape in a string", NULL);
        }
    }
    in->p++;
    *o = 0;
    *out = buf;
    return OD_STATUS_OK;
}

static od_status json_number(json_in *in, const char *what, double *out) {
    json_space(in);
    const char *s = in->p;
    if (s < in->end && *s == '-') s++;
    if (s >= in->end || !(*s >= '0' && *s <= '9'))
        return json_fail(in, "%s: expected a number", what);
    char buf[64];
    size_t n = 0;
    for (const char *q = in->p; q < in->end && n + 1 < sizeof buf && strchr("+-.eE0123456789", *q);
         q++)
        buf[n++] = *q;
    buf[n] = 0;
    char *endp;
    errno = 0;
    double v = strtod(buf, &endp);
    if (endp == buf || errno || !isfinite(v)) return json_fail(in, "%s: bad number", what);
    in->p += endp - buf;
    *out = v;
    return OD_STATUS_OK;
}

static od_status parse_channels(json_in *in, od_shrink_spec *s) {
    od_status st;
    if ((st = json_expect(in, '{'))) return st;
    if (json_peek(in, '}')) {
        in->p++;
        return OD_STATUS_OK;
    }
    for (;;) {
        char *key;
        if ((st = json_string(in, &key))) return st;
        if ((st = json_expect(in, ':'))) {
            free(key);
            return st;
        }
        double v;
        const char *at = in->p;
        if ((st = json_number(in, "channels", &v))) {
            free(key);
            return st;
        }
        if (v < 1 || v > (double)INT32_MAX || v != floor(v)) {
            in->p = at;
            json_space(in);
            od_status r = json_fail(in, "channels for \"%s\" must be a whole number >= 1", key);
            free(key);
            return r;
        }
        od_shrink_rule *r = realloc(s->channels, sizeof *r * (size_t)(s->n_channels + 1));
        if (!r) {
            free(key);
            return od_error_set(in->err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        }
        s->channels = r;
        r[s->n_channels].pattern = key;
        r[s->n_channels].channels = (int64_t)v;
        s->n_channels++;
        if (json_peek(in, ',')) {
            in->p++;
            continue;
        }
        return json_expect(in, '}');
    }
}

static od_status parse_drop(json_in *in, od_shrink_spec *s) {
    od_status st;
    if ((st = json_expect(in, '['))) return st;
    if (json_peek(in, ']')) {
        in->p++;
        return OD_STATUS_OK;
    }
    for (;;) {
        char *name;
        if ((st = json_string(in, &name))) return st;
        char **d = realloc(s->drop, sizeof *d * (size_t)(s->n_drop + 1));
        if (!d) {
            free(name);
            return od_error_set(in->err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        }
        s->drop = d;
        d[s->n_drop++] = name;
        if (json_peek(in, ',')) {
            in->p++;
            continue;
        }
        return json_expect(in, ']');
    }
}

od_status od_shrink_spec_parse(od_shrink_spec *s, const char *text, size_t len, const char *name,
                               od_error *err) {
    json_in in = {text, text, text + len, name ? name : "spec", err};
    od_status st;
    if ((st = json_expect(&in, '{'))) return st;
    bool seen[4] = {false};
    static const char *const keys[] = {"width", "depth", "channels", "drop"};
    if (!json_peek(&in, '}')) {
        for (;;) {
            const char *at = (json_space(&in), in.p);
            char *key;
            if ((st = json_string(&in, &key))) return st;
            int k = 0;
            while (k < 4 && strcmp(key, keys[k]) != 0)
                k++;
            if (k == 4 || seen[k]) {
                in.p = at;
                st = json_fail(&in,
                               k == 4 ? "unknown key \"%s\" (expected width, depth, channels, drop)"
                                      : "key \"%s\" appears twice",
                               key);
                free(key);
                return st;
            }
            free(key);
            seen[k] = true;
            if ((st = json_expect(&in, ':'))) return st;
            if (k <= 1) {
                double v;
                const char *vat = (json_space(&in), in.p);
                if ((st = json_number(&in, keys[k], &v))) return st;
                if (!(v > 0 && v <= 1)) {
                    in.p = vat;
                    return json_fail(&in, "%s must be in (0, 1]", keys[k]);
                }
                if (k == 0)
                    s->width = v;
                else
                    s->depth = v;
            } else if (k == 2) {
                if ((st = parse_channels(&in, s))) return st;
            } else {
                if ((st = parse_drop(&in, s))) return st;
            }
            if (json_peek(&in, ',')) {
                in.p++;
                continue;
            }
            break;
        }
    }
    if ((st = json_expect(&in, '}'))) return st;
    json_space(&in);
    if (in.p != in.end) return json_fail(&in, "text after the closing '}'", NULL);
    return OD_STATUS_OK;
}

od_status od_shrink_spec_load(od_shrink_spec *s, const char *path, od_error *err) {
    od_bytes b = {0};
    od_status st = od_file_read(path, &b, err);
    if (st) return st;
    st = od_shrink_spec_parse(s, (const char *)b.data, b.len, path, err);
    od_bytes_free(&b);
    return st;
}

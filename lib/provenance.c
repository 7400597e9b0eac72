/* Provenance: metadata_props entries and SHA-256 (FIPS 180-4) of the teacher file. */
#include "od_onnx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

od_status od_model_set_meta(od_model *m, const char *key, const char *value, od_error *err) {
    if (!key || !*key)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "a metadata key must not be empty");
    char *v = strdup(value ? value : "");
    if (!v) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < m->n_meta; i++)
        if (m->meta[i].key && strcmp(m->meta[i].key, key) == 0) {
            free(m->meta[i].value);
            m->meta[i].value = v;
            return OD_STATUS_OK;
        }
    char *k = strdup(key);
    od_kv *meta = k ? realloc(m->meta, sizeof *meta * (size_t)(m->n_meta + 1)) : NULL;
    if (!meta) {
        free(k);
        free(v);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    m->meta = meta;
    meta[m->n_meta].key = k;
    meta[m->n_meta].value = v;
    m->n_meta++;
    return OD_STATUS_OK;
}

od_status od_model_copy_meta(od_model *dst, const od_model *src, const char *prefix,
                             od_error *err) {
    size_t n = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < src->n_meta; i++) {
        const od_kv *kv = &src->meta[i];
        if (!kv->key || (n && strncmp(kv->key, prefix, n) != 0)) continue;
        od_status st = od_model_set_meta(dst, kv->key, kv->value, err);
        if (st) return st;
    }
    return OD_STATUS_OK;
}

/* ---- SHA-256 ---------------------------------------------------------------------------- */

typedef struct sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t used;
} sha256;

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256 *s, const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5],
             g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
    s->h[5] += f;
    s->h[6] += g;
    s->h[7] += h;
}

static void sha256_init(sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->used = 0;
}

static void sha256_update(sha256 *s, const void *data, size_t len) {
    const uint8_t *p = data;
    s->len += len;
    while (len) {
        size_t take = 64 - s->used < len ? 64 - s->used : len;
        memcpy(s->buf + s->used, p, take);
        s->used += take;
        p += take;
        len -= take;
        if (s->used == 64) {
            sha256_block(s, s->buf);
            s->used = 0;
        }
    }
}

static void sha256_hex(sha256 *s, char hex_out[65]) {
    uint64_t bits = s->len * 8;
    uint8_t pad[72] = {0x80};
    size_t n = (s->used < 56 ? 56 : 120) - s->used;
    for (int i = 0; i < 8; i++)
        pad[n + i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(s, pad, n + 8);
    for (int i = 0; i < 8; i++)
        snprintf(hex_out + 8 * i, 9, "%08x", (unsigned)s->h[i]);
}

void od_sha256_hex(const void *data, size_t len, char hex_out[65]) {
    sha256 s;
    sha256_init(&s);
    sha256_update(&s, data, len);
    sha256_hex(&s, hex_out);
}

od_status od_file_sha256(const char *path, char hex_out[65], od_error *err) {
    hex_out[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return od_error_set(err, OD_STATUS_IO, "%s: cannot open: %s", path, strerror(errno));
    sha256 s;
    sha256_init(&s);
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(&s, buf, n);
    bool bad = ferror(f);
    fclose(f);
    if (bad) return od_error_set(err, OD_STATUS_IO, "%s: cannot read", path);
    sha256_hex(&s, hex_out);
    return OD_STATUS_OK;
}

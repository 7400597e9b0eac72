/* Image folders (torchvision's ImageFolder layout) into od_dataset: the listing, the splits, the
 * decoded uint8 store (RAM, or a file mapped read-only) and the threads that decode into it. */
#include "image_internal.h"
#include "od_onnx.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_MAX_LEN 4096
#define MAX_DEPTH 16

void od_image_options_default(od_image_options *o) {
    memset(o, 0, sizeof *o);
    o->channels = 3;
    o->test_fraction = 0.1;
    o->seed = 1;
    o->shuffle = true;
    o->threads = 2;
    o->ram_limit = (size_t)256 << 20;
}

/* ---- the listing --------------------------------------------------------------------------- */

typedef struct entry {
    char *path;
    int32_t label;
    int64_t size, mtime;
} entry;

typedef struct listing {
    entry *e;
    int64_t n, cap;
} listing;

static void listing_clear(listing *l) {
    for (int64_t i = 0; i < l->n; i++)
        free(l->e[i].path);
    free(l->e);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The names in dir, sorted; dirs selects sub-folders (true) or regular files (false). */
static od_status list_names(const char *dir, bool dirs, char ***out, int *n_out, od_error *err) {
    *out = NULL, *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return od_error_set(err, OD_STATUS_IO, "%s: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    od_status st = OD_STATUS_OK;
    for (struct dirent *de; (de = readdir(d));) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[PATH_MAX_LEN];
        struct stat sb;
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p || stat(p, &sb) != 0)
            continue;
        if (dirs ? !S_ISDIR(sb.st_mode) : !S_ISREG(sb.st_mode)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **g = realloc(names, sizeof *g * (size_t)cap);
            if (!g) goto oom;
            names = g;
        }
        if (!(names[n] = strdup(de->d_name))) goto oom;
        n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out = names, *n_out = n;
    return st;
oom:
    closedir(d);
    names_free(names, n);
    return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory listing the folder", dir);
}

static bool image_extension(const char *name) {
    static const char *const ext[] = {".jpg", ".jpeg", ".png",  ".ppm", ".bmp",
                                      ".pgm", ".tif",  ".tiff", ".webp"};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(dot, ext[i])) return true;
    return false;
}

/* Images under dir (files first, then sub-folders, each sorted) with this label. */
static od_status list_images(const char *dir, int32_t label, int depth, listing *l, od_error *err) {
    char **files, **subs;
    int nf, ns;
    od_status st = list_names(dir, false, &files, &nf, err);
    if (st) return st;
    for (int i = 0; i < nf && !st; i++) {
        if (!image_extension(files[i])) continue;
        char p[PATH_MAX_LEN];
        struct stat sb;
        if (snprintf(p, sizeof p, "%s/%s", dir, files[i]) >= (int)sizeof p || stat(p, &sb) != 0)
            continue;
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 256;
            entry *g = realloc(l->e, sizeof *g * (size_t)l->cap);
            if (!g) {
                st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory", dir);
                break;
            }
            l->e = g;
        }
        entry *e = &l->e[l->n];
        if (!(e->path = strdup(p))) {
            st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory", dir);
            break;
        }
        e->label = label, e->size = sb.st_size,
        e->mtime = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        l->n++;
    }
    names_free(files, nf);
    if (st || depth >= MAX_DEPTH) return st;
    if ((st = list_names(dir, true, &subs, &ns, err))) return st;
    for (int i = 0; i < ns && !st; i++) {
        char p[PATH_MAX_LEN];
        if (snprintf(p, sizeof p, "%s/%s", dir, subs[i]) < (int)sizeof p)
            st = list_images(p, label, depth + 1, l, err);
    }
    names_free(subs, ns);
    return st;
}

/* Every class folder of root; classes (may be NULL: root's own folders define them) maps
 * folder names to labels. */
static od_status list_split(const char *root, char **classes, int n_classes, listing *l,
                            od_error *err) {
    char **subs;
    int ns;
    od_status st = list_names(root, true, &subs, &ns, err);
    if (st) return st;
    for (int i = 0; i < ns && !st; i++) {
        int label = i;
        if (classes) {
            char **hit = bsearch(&subs[i], classes, (size_t)n_classes, sizeof *classes, cmp_str);
            if (!hit) {
                st =
                    od_error_set(err, OD_STATUS_INVALID_MODEL,
                                 "%s/%s: a class the training folder does not have", root, subs[i]);
                break;
            }
            label = (int)(hit - classes);
        }
        char p[PATH_MAX_LEN];
        if (snprintf(p, sizeof p, "%s/%s", root, subs[i]) < (int)sizeof p)
            st = list_images(p, label, 1, l, err);
    }
    names_free(subs, ns);
    return st;
}

/* ---- decoding into the store ---------------------------------------------------------------- */

typedef struct store {
    int fd; /* >= 0: the store is this file; else mem */
    uint8_t *mem;
    size_t offset;  /* of sample 0 in the file */
    int64_t sample; /* bytes per sample */
} store;

typedef struct job {
    const od_image_options *o;
    const listing *l;
    int64_t h, w; /* sample size (from the crop, or the first image) */
    store *s;
    od_status *status;
    _Atomic int64_t next, done;
    atomic_bool stop;
    pthread_mutex_t lock;
    int64_t first_bad;
    od_error bad; /* the error of sample first_bad */
    const char *what;
} job;

static od_status read_file(const char *path, uint8_t **data, size_t *size, od_error *err) {
    *data = NULL, *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return od_error_set(err, OD_STATUS_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size > ((int64_t)1 << 31)) {
        fclose(f);
        return od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: larger than 2 GiB", path);
    }
    uint8_t *b = malloc((size_t)sb.st_size + 1);
    if (!b) {
        fclose(f);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    size_t n = fread(b, 1, (size_t)sb.st_size, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return od_error_set(err, OD_STATUS_IO, "%s: read error", path);
    }
    *data = b, *size = n;
    return OD_STATUS_OK;
}

/* One file to a [C,H,W] sample in out; h and w 0: the decoded (resized) size, returned. */
static od_status load_one(const char *path, const od_image_options *o, int64_t *h, int64_t *w,
                          uint8_t *out, od_error *err) {
    uint8_t *data;
    size_t size;
    od_image im = {0}, rs = {0};
    od_status st = read_file(path, &data, &size, err);
    if (st) return st;
    st = od_image_decode(data, size, path, o->channels, &im, err);
    free(data);
    if (st) return st;
    const od_image *src = &im;
    if (o->resize > 0) {
        int64_t rw, rh;
        od_image_resized_size(im.w, im.h, o->resize, &rw, &rh);
        if ((st = od_image_resize(&im, rw, rh, &rs, err))) goto done;
        src = &rs;
    }
    int64_t ch = o->height > 0 ? o->height : src->h, cw = o->width > 0 ? o->width : src->w;
    if (!*h) *h = ch, *w = cw;
    if (ch != *h || cw != *w) {
        st = od_error_set(
            err, OD_STATUS_SHAPE,
            "%s: %lldx%lld pixels where the images before are %lldx%lld (give a crop size)", path,
            (long long)cw, (long long)ch, (long long)*w, (long long)*h);
        goto done;
    }
    if (out) od_image_center_crop_chw(src, ch, cw, out);
done:
    od_image_free(&im);
    od_image_free(&rs);
    return st;
}

static void *worker(void *arg) {
    job *j = arg;
    int64_t sample = j->s->sample;
    uint8_t *buf = j->s->fd >= 0 ? malloc((size_t)sample) : NULL;
    for (;;) {
        int64_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->l->n || atomic_load(&j->stop)) break;
        od_error e = {0};
        uint8_t *out = j->s->fd >= 0 ? buf : j->s->mem + i * sample;
        int64_t h = j->h, w = j->w;
        od_status st = out ? load_one(j->l->e[i].path, j->o, &h, &w, out, &e)
                           : od_error_set(&e, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        if (!st && j->s->fd >= 0) {
            off_t at = (off_t)(j->s->offset + (size_t)(i * sample));
            if (pwrite(j->s->fd, buf, (size_t)sample, at) != (ssize_t)sample)
                st = od_error_set(&e, OD_STATUS_IO, "writing the decoded images: %s",
                                  strerror(errno));
        }
        j->status[i] = st;
        if (st) {
            pthread_mutex_lock(&j->lock);
            if (j->first_bad < 0 || i < j->first_bad) j->first_bad = i, j->bad = e;
            pthread_mutex_unlock(&j->lock);
            /* a write error or strict mode ends the job */
            if (j->o->strict || st == OD_STATUS_IO || st == OD_STATUS_OUT_OF_MEMORY ||
                st == OD_STATUS_SHAPE)
                atomic_store(&j->stop, true);
        }
        int64_t done = atomic_fetch_add(&j->done, 1) + 1;
        if (j->o->progress && (done % 256 == 0 || done == j->l->n)) {
            pthread_mutex_lock(&j->lock);
            j->o->progress(j->what, done, j->l->n, j->o->progress_ctx);
            pthread_mutex_unlock(&j->lock);
        }
    }
    free(buf);
    return NULL;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The identity of a decoded store: every file's name, size and time, its label, the options. */
static uint64_t store_key(const listing *l, const od_image_options *o, int64_t h, int64_t w) {
    uint64_t k = 0xcbf29ce484222325ull;
    int64_t opts[] = {o->channels, h, w, o->resize, l->n};
    k = fnv(k, opts, sizeof opts);
    for (int64_t i = 0; i < l->n; i++) {
        k = fnv(k, l->e[i].path, strlen(l->e[i].path) + 1);
        int64_t f[] = {l->e[i].size, l->e[i].mtime, l->e[i].label};
        k = fnv(k, f, sizeof f);
    }
    return k;
}

#define STORE_MAGIC "ODIMG001"
typedef struct store_header {
    char magic[8];
    uint64_t key;
    int64_t n, c, h, w, n_skipped;
    int64_t offset; /* of the pixels; the labels follow the header */
} store_header;

static size_t page_up(size_t n) {
    size_t p = (size_t)sysconf(_SC_PAGESIZE);
    return (n + p - 1) / p * p;
}

/* Maps a finished store file into d (labels from the file). */
static od_status store_map(int fd, const char *name, const store_header *hd, od_dataset *d,
                           od_error *err) {
    size_t offset = (size_t)hd->offset;
    size_t bytes = offset + (size_t)(hd->n * hd->c * hd->h * hd->w);
    struct stat sb;
    if (offset < sizeof *hd + sizeof(int32_t) * (size_t)hd->n || fstat(fd, &sb) != 0 ||
        (size_t)sb.st_size != bytes)
        return od_error_set(err, OD_STATUS_IO, "%s: the decoded-image store has the wrong size",
                            name);
    void *map = mmap(NULL, bytes ? bytes : 1, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        return od_error_set(err, OD_STATUS_IO, "%s: cannot map the decoded images: %s", name,
                            strerror(errno));
    d->labels = malloc(sizeof(int32_t) * (size_t)(hd->n + 1));
    if (!d->labels) {
        munmap(map, bytes);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    memcpy(d->labels, (uint8_t *)map + sizeof *hd, sizeof(int32_t) * (size_t)hd->n);
    madvise(map, bytes, MADV_RANDOM);
    d->map_base = map, d->map_bytes = bytes;
    d->u8 = (uint8_t *)map + offset;
    d->n = hd->n, d->rank = 3;
    d->dims[0] = hd->c, d->dims[1] = hd->h, d->dims[2] = hd->w;
    return OD_STATUS_OK;
}

/* A shard's store of samples [lo, hi) of all made into d: indices stay global, labels all. */
static od_status shard_labels(const listing *all, int64_t lo, int64_t hi, od_dataset *d,
                              od_error *err) {
    if (d->n != hi - lo) /* a store from a run that skipped files */
        return od_error_set(err, OD_STATUS_INVALID_MODEL,
                            "%s: %lld of the shard's %lld images decoded (several ranks: every "
                            "training image must decode)",
                            hi > lo ? all->e[lo].path : "image folder", (long long)d->n,
                            (long long)(hi - lo));
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)(all->n + 1));
    if (!labels) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < all->n; i++)
        labels[i] = all->e[i].label;
    free(d->labels);
    d->labels = labels;
    d->first = lo, d->held = hi - lo, d->n = all->n;
    return OD_STATUS_OK;
}

/* Decodes all into d; skipped files counted in out. shard (the training set): with o's shard,
 * only its part of the listing is decoded, and d holds that part (first, held) with every label;
 * a file of the part that does not decode is then an error, as with strict: the ranks decoding
 * the other parts could not know to skip it. */
static od_status decode_all(const listing *all, const od_image_options *opt, bool shard,
                            const char *what, od_dataset *d, od_data_split *out, od_error *err) {
    int64_t h = opt->height, w = opt->width, lo = 0, hi = all->n;
    bool part = shard && od_shard_range(opt, all->n, &lo, &hi);
    od_image_options part_o = *opt;
    part_o.strict = opt->strict || part;
    const od_image_options *o = &part_o;
    if (all->n == 0) {
        d->rank = 3, d->dims[0] = o->channels, d->dims[1] = h, d->dims[2] = w;
        return OD_STATUS_OK;
    }
    /* without a crop the first image that decodes gives the size (the whole listing's first,
     * so that every shard agrees) */
    for (int64_t i = 0; (!h || !w) && i < all->n; i++) {
        od_error e = {0};
        h = w = 0;
        if (load_one(all->e[i].path, o, &h, &w, NULL, &e)) {
            if (o->strict) return *err = e, e.status;
            h = w = 0;
        }
    }
    if (!h || !w) h = w = 1; /* nothing decodes: every file is skipped below */
    listing sub = {.e = all->e + lo, .n = hi - lo}; /* what is decoded */
    const listing *l = &sub;
    int64_t sample = o->channels * h * w;
    store s = {.fd = -1, .sample = sample};
    store_header hd = {.key = store_key(l, o, h, w), .n = l->n, .c = o->channels, .h = h, .w = w};
    memcpy(hd.magic, STORE_MAGIC, 8);
    size_t total = (size_t)(l->n * sample);
    char path[PATH_MAX_LEN] = "", tmp[PATH_MAX_LEN] = "";
    od_status st = OD_STATUS_OK;
    od_status *status = calloc((size_t)l->n + 1, sizeof *status);
    if (!status) return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    if (total > o->ram_limit || o->cache_dir) {
        if (o->cache_dir) {
            snprintf(path, sizeof path, "%s/od-images-%016llx.u8", o->cache_dir,
                     (unsigned long long)hd.key);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            store_header old;
            if (fd >= 0 && pread(fd, &old, sizeof old, 0) == (ssize_t)sizeof old &&
                !memcmp(old.magic, STORE_MAGIC, 8) && old.key == hd.key && old.n >= 0 &&
                old.n <= l->n && old.c == hd.c && old.h == h && old.w == w) {
                st = store_map(fd, path, &old, d, err);
                close(fd);
                if (!st) out->n_skipped += old.n_skipped;
                if (!st && old.n_skipped && !out->skipped[0])
                    snprintf(out->skipped, sizeof out->skipped, "(decoded earlier, see %s)", path);
                goto done;
            }
            if (fd >= 0) close(fd);
            snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
            s.fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        } else {
            const char *t = getenv("TMPDIR");
            snprintf(tmp, sizeof tmp, "%s/od-images-XXXXXX", t && *t ? t : "/tmp");
            s.fd = mkstemp(tmp);
            if (s.fd >= 0) unlink(tmp), tmp[0] = 0; /* gone when closed and unmapped */
        }
        if (s.fd < 0) {
            st = od_error_set(err, OD_STATUS_IO, "%s: cannot create the decoded-image store: %s",
                              o->cache_dir ? tmp : "$TMPDIR", strerror(errno));
            goto done;
        }
        s.offset = page_up(sizeof hd + sizeof(int32_t) * (size_t)l->n);
        hd.offset = (int64_t)s.offset;
    } else if (!(s.mem = malloc(total ? total : 1))) {
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY,
                          "out of memory for %lld decoded images (%zu MiB)", (long long)l->n,
                          total >> 20);
        goto done;
    }
    job j = {
        .o = o, .l = l, .h = h, .w = w, .s = &s, .status = status, .first_bad = -1, .what = what};
    pthread_mutex_init(&j.lock, NULL);
    int nt = o->threads < 1 ? 1 : o->threads > 64 ? 64 : o->threads;
    pthread_t th[64];
    int started = 0;
    for (; started < nt - 1; started++)
        if (pthread_create(&th[started], NULL, worker, &j)) break;
    worker(&j);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    pthread_mutex_destroy(&j.lock);
    /* failures: a strict run, or anything but a file that does not decode, ends here */
    if (j.first_bad >= 0) {
        od_status bst = j.bad.status;
        if (o->strict || bst == OD_STATUS_IO || bst == OD_STATUS_OUT_OF_MEMORY ||
            bst == OD_STATUS_SHAPE) {
            *err = j.bad;
            if (o->strict && bst != OD_STATUS_IO && bst != OD_STATUS_OUT_OF_MEMORY)
                od_error_prefix(err, opt->strict ? "(--strict) "
                                                 : "(several ranks: each decodes its shard of the "
                                                   "training images, and every one must decode) ");
            st = bst;
            goto done;
        }
        if (!out->skipped[0]) snprintf(out->skipped, sizeof out->skipped, "%s", j.bad.message);
    }
    /* keep the samples that decoded, in listing order */
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)(l->n + 1));
    uint8_t *buf = s.fd >= 0 ? malloc((size_t)sample) : NULL;
    if (!labels || (s.fd >= 0 && !buf)) {
        free(labels), free(buf);
        st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
        goto done;
    }
    int64_t kept = 0;
    for (int64_t i = 0; i < l->n; i++) {
        if (status[i]) continue;
        if (kept != i) {
            if (s.fd < 0) {
                memmove(s.mem + kept * sample, s.mem + i * sample, (size_t)sample);
            } else if (pread(s.fd, buf, (size_t)sample, (off_t)(s.offset + (size_t)(i * sample))) !=
                           (ssize_t)sample ||
                       pwrite(s.fd, buf, (size_t)sample,
                              (off_t)(s.offset + (size_t)(kept * sample))) != (ssize_t)sample) {
                free(labels), free(buf);
                st = od_error_set(err, OD_STATUS_IO, "rewriting the decoded images: %s",
                                  strerror(errno));
                goto done;
            }
        }
        labels[kept++] = l->e[i].label;
    }
    free(buf);
    out->n_skipped += l->n - kept;
    hd.n_skipped = l->n - kept;
    hd.n = kept;
    if (s.fd < 0) {
        d->u8 = s.mem, s.mem = NULL;
        d->labels = labels;
        d->n = kept, d->rank = 3;
        d->dims[0] = o->channels, d->dims[1] = h, d->dims[2] = w;
        goto done;
    }
    /* the file: header and labels before the pixels, so a later run can map it as it is */
    size_t label_bytes = sizeof(int32_t) * (size_t)kept;
    if (pwrite(s.fd, &hd, sizeof hd, 0) != (ssize_t)sizeof hd ||
        pwrite(s.fd, labels, label_bytes, sizeof hd) != (ssize_t)label_bytes ||
        ftruncate(s.fd, (off_t)(s.offset + (size_t)(kept * sample))) != 0) {
        free(labels);
        st = od_error_set(err, OD_STATUS_IO, "writing the decoded images: %s", strerror(errno));
        goto done;
    }
    free(labels);
    st = store_map(s.fd, tmp[0] ? tmp : "the decoded-image store", &hd, d, err);
    if (!st && tmp[0] && rename(tmp, path) != 0)
        st = od_error_set(err, OD_STATUS_IO, "%s: %s", path, strerror(errno));
    if (!st) tmp[0] = 0;
done:
    if (s.fd >= 0) close(s.fd);
    if (tmp[0]) unlink(tmp);
    free(s.mem);
    free(status);
    if (!st && part) st = shard_labels(all, lo, hi, d, err);
    return st;
}

/* ---- the folder ------------------------------------------------------------------------------ */

static bool is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool od_image_folder_detect(const char *dir) {
    char **subs;
    int n;
    od_error e = {0};
    if (list_names(dir, true, &subs, &n, &e)) return false;
    names_free(subs, n);
    return n > 0;
}

od_status od_image_folder_load(const char *dir, const od_image_options *opt, od_data_split *out,
                               od_error *err) {
    od_image_options o;
    if (opt)
        o = *opt;
    else
        od_image_options_default(&o);
    if (o.channels != 1 && o.channels != 3)
        return od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                            "%s: images are read with 1 or 3 channels, not %d", dir, o.channels);
    char train_dir[PATH_MAX_LEN], test_dir[PATH_MAX_LEN] = "";
    snprintf(train_dir, sizeof train_dir, "%s/train", dir);
    bool split_given = is_dir(train_dir);
    if (split_given) {
        static const char *const names[] = {"val", "test"};
        for (int i = 0; i < 2 && !test_dir[0]; i++) {
            snprintf(test_dir, sizeof test_dir, "%s/%s", dir, names[i]);
            if (!is_dir(test_dir)) test_dir[0] = 0;
        }
    } else {
        snprintf(train_dir, sizeof train_dir, "%s", dir);
    }
    listing all = {0}, train = {0}, test = {0};
    char **classes = NULL;
    int n_classes = 0;
    od_status st = list_names(train_dir, true, &classes, &n_classes, err);
    if (st) goto done;
    if (n_classes == 0) {
        st = od_error_set(
            err, OD_STATUS_IO,
            "%s: no class folders (an image folder holds one folder of images per class)",
            train_dir);
        goto done;
    }
    if (n_classes > OD_DATASET_MAX_CLASSES) {
        st = od_error_set(err, OD_STATUS_UNSUPPORTED, "%s: %d class folders (at most %d)",
                          train_dir, n_classes, OD_DATASET_MAX_CLASSES);
        goto done;
    }
    if ((st = list_split(train_dir, NULL, 0, split_given ? &train : &all, err))) goto done;
    if (split_given && test_dir[0] && (st = list_split(test_dir, classes, n_classes, &test, err)))
        goto done;
    if (!split_given) {
        /* a seeded test_fraction held out; both parts keep the listing order */
        int64_t n_test = (int64_t)(o.test_fraction * (double)all.n + 0.5);
        if (n_test >= all.n) n_test = all.n - 1;
        if (n_test < 0) n_test = 0;
        int64_t *order = malloc(sizeof(int64_t) * (size_t)(all.n + 1));
        bool *held = calloc((size_t)all.n + 1, 1);
        train.e = malloc(sizeof(entry) * (size_t)(all.n + 1));
        test.e = malloc(sizeof(entry) * (size_t)(all.n + 1));
        if (!order || !held || !train.e || !test.e) {
            free(order), free(held);
            st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
            goto done;
        }
        for (int64_t i = 0; i < all.n; i++)
            order[i] = i;
        od_rng rng;
        od_rng_seed(&rng, o.seed);
        od_rng_shuffle(&rng, order, all.n);
        for (int64_t i = 0; i < n_test; i++)
            held[order[i]] = true;
        for (int64_t i = 0; i < all.n; i++) {
            listing *l = held[i] ? &test : &train;
            l->e[l->n++] = all.e[i];
        }
        train.cap = test.cap = all.n + 1;
        free(all.e);
        all = (listing){0};
        free(order), free(held);
    }
    if (o.shuffle) {
        /* a seeded order for each set, drawn after the split so the split does not depend on it */
        od_rng rng;
        od_rng_seed(&rng, o.seed ^ 0x5eed5eedull);
        listing *sets[2] = {&train, &test};
        for (int k = 0; k < 2; k++) {
            listing *l = sets[k];
            int64_t *order = malloc(sizeof(int64_t) * (size_t)(l->n + 1));
            entry *e = malloc(sizeof(entry) * (size_t)(l->n + 1));
            if (!order || !e) {
                free(order), free(e);
                st = od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
                goto done;
            }
            for (int64_t i = 0; i < l->n; i++)
                order[i] = i;
            od_rng_shuffle(&rng, order, l->n);
            for (int64_t i = 0; i < l->n; i++)
                e[i] = l->e[order[i]];
            free(l->e);
            l->e = e, l->cap = l->n + 1;
            free(order);
        }
    }
    if ((st = decode_all(&train, &o, true, "decoding training images", &out->train, out, err)) ||
        (st = decode_all(&test, &o, false, "decoding test images", &out->test, out, err)))
        goto done;
    out->train.n_classes = out->test.n_classes = n_classes;
    out->class_names = classes, out->n_class_names = n_classes;
    classes = NULL, n_classes = 0;
done:
    names_free(classes, n_classes);
    listing_clear(&all);
    listing_clear(&train);
    listing_clear(&test);
    return st;
}

void od_image_options_for_model(const od_model *m, od_image_options *o) {
    const od_graph *g = &m->graph;
    const od_value *in = NULL;
    for (int i = 0; i < g->n_inputs && !in; i++)
        if (!g->values[g->inputs[i]].init) in = &g->values[g->inputs[i]];
    if (!in || (in->rank != 4 && in->rank != 2)) return;
    int64_t c, h, w;
    if (in->rank == 2) {
        /* a flat [N, D] input: square images of D (grey) or D / 3 (RGB) pixels */
        int64_t d = in->dims[1].value;
        c = h = w = 0;
        for (int64_t ch = 1; ch <= 3 && !c; ch += 2) {
            int64_t side = (int64_t)llround(sqrt((double)d / (double)ch));
            if (d > 0 && side * side * ch == d) c = ch, h = w = side;
        }
    } else {
        c = in->dims[1].value, h = in->dims[2].value, w = in->dims[3].value;
    }
    if ((c != 1 && c != 3) || h <= 0 || w <= 0) return;
    o->channels = (int)c, o->height = h, o->width = w;
    o->resize = h > w ? h : w;
    const char *r = od_model_meta(m, "preprocess.resize");
    char *end;
    long v = r ? strtol(r, &end, 10) : 0;
    if (r && end != r && !*end && v > 0 && v <= 65536) o->resize = v;
}

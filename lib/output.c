/* The one rule for every file a command writes (issue 19): an output never destroys an input,
 * a device is written through instead of renamed over, a regular file is replaced atomically
 * through a uniquely named temporary beside it, and a run that writes for a while (distill)
 * holds a lock on its output so that a second run on the same output is refused.
 *
 *   od_outputs_check(outputs, n_out, inputs, n_in, &err);   // before any work
 *   od_file_write_atomic(path, data, len, &err);             // every write
 */
#include "od_onnx.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- which file a path names ---------------------------------------------------------------- */

/* The path with symlinks and ".." resolved; for a file that does not exist yet, its folder
 * resolved plus its name. NULL when the folder does not resolve either. Malloc'd. */
static char *od_resolve(const char *path) {
    char *r = realpath(path, NULL);
    if (r) return r;
    char *d = strdup(path), *b = strdup(path);
    char *rd = d && b ? realpath(dirname(d), NULL) : NULL;
    if (rd) {
        const char *base = basename(b);
        size_t n = strlen(rd) + strlen(base) + 2;
        r = malloc(n);
        if (r) snprintf(r, n, "%s/%s", strcmp(rd, "/") ? rd : "", base);
    }
    free(rd);
    free(d);
    free(b);
    return r;
}

/* An existing character device or FIFO: written through, never renamed over. */
static bool od_is_stream(const struct stat *sb) {
    return S_ISCHR(sb->st_mode) || S_ISFIFO(sb->st_mode);
}

bool od_output_is_stream(const char *path) {
    struct stat sb;
    return path && stat(path, &sb) == 0 && od_is_stream(&sb);
}

/* Same file: same device and inode when both exist, else the same resolved path. */
static bool od_same_file(const char *a, const char *ra, const char *b, const char *rb) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return ra && rb && strcmp(ra, rb) == 0;
}

static bool od_inside(const char *dir, const char *path) {
    if (!dir || !path) return false;
    size_t n = strlen(dir);
    return strncmp(dir, path, n) == 0 && (path[n] == '/' || (n == 1 && dir[0] == '/'));
}

od_status od_outputs_check(const char *const *outputs, int n_outputs, const char *const *inputs, int n_inputs,
                           od_error *err) {
    od_status st = OD_STATUS_OK;
    for (int i = 0; i < n_outputs && !st; i++) {
        const char *o = outputs[i];
        if (!o) continue;
        struct stat so;
        if (!*o) {
            st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "an output path is empty");
            break;
        }
        bool exists = stat(o, &so) == 0;
        if (exists && S_ISDIR(so.st_mode)) {
            st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "%s: is a folder; an output must be a file", o);
            break;
        }
        if (exists && od_is_stream(&so)) continue; /* /dev/null, /dev/stdout, a FIFO: written through */
        if (exists && !S_ISREG(so.st_mode)) {
            st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                              "%s: is not a regular file, a character device or a FIFO; nothing written there", o);
            break;
        }
        char *ro = od_resolve(o);
        for (int k = 0; k < n_inputs && !st; k++) {
            const char *in = inputs[k];
            if (!in || !*in) continue;
            char *ri = realpath(in, NULL);
            struct stat si;
            bool folder = stat(in, &si) == 0 && S_ISDIR(si.st_mode);
            if (folder ? od_inside(ri, ro) : od_same_file(o, ro, in, ri))
                st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT,
                                  folder ? "%s: is inside the input folder %s; refusing to write into an input"
                                         : "%s: is the input %s; refusing to overwrite an input (choose another output)",
                                  o, in);
            free(ri);
        }
        for (int k = 0; k < i && !st; k++) {
            if (!outputs[k] || od_output_is_stream(outputs[k])) continue;
            char *rk = od_resolve(outputs[k]);
            if (od_same_file(o, ro, outputs[k], rk))
                st = od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "%s: is also the output %s; give each output its own file",
                                  o, outputs[k]);
            free(rk);
        }
        free(ro);
    }
    return st;
}

/* ---- a lock per output ---------------------------------------------------------------------- */

struct od_output_lock {
    int fd;
    char *path;
};

od_status od_output_lock_acquire(const char *output, od_output_lock **out, od_error *err) {
    *out = NULL;
    if (od_output_is_stream(output)) return OD_STATUS_OK; /* nothing to share on a device */
    od_output_lock *l = calloc(1, sizeof *l);
    size_t n = strlen(output) + sizeof ".lock";
    if (!l || !(l->path = malloc(n))) {
        free(l);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "out of memory");
    }
    snprintf(l->path, n, "%s.lock", output);
    /* A lock file that a finishing run unlinks between our open and our flock is no lock:
     * retry until the locked file is still the one the path names. */
    for (int attempt = 0; attempt < 100; attempt++) {
        l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (l->fd < 0) {
            od_status st = od_error_set(err, OD_STATUS_IO, "%s: cannot create the lock file: %s", l->path, strerror(errno));
            free(l->path);
            free(l);
            return st;
        }
        if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(l->fd);
            free(l->path);
            free(l);
            return e == EWOULDBLOCK
                       ? od_error_set(err, OD_STATUS_IO, "%s: another run is writing this output (it holds %s.lock); wait for it or choose another -o",
                                      output, output)
                       : od_error_set(err, OD_STATUS_IO, "%s.lock: cannot lock: %s", output, strerror(e));
        }
        struct stat a, b;
        if (fstat(l->fd, &a) == 0 && stat(l->path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            *out = l;
            return OD_STATUS_OK;
        }
        close(l->fd);
    }
    free(l->path);
    free(l);
    return od_error_set(err, OD_STATUS_IO, "%s.lock: cannot lock: it keeps being replaced", output);
}

void od_output_lock_release(od_output_lock *l) {
    if (!l) return;
    unlink(l->path); /* before the unlock: a waiting run then finds the file gone and retries */
    close(l->fd);
    free(l->path);
    free(l);
}

/* ---- writing -------------------------------------------------------------------------------- */

/* The mode a plain open(O_CREAT, 0666) would give: mkstemp makes 0600 files. A file being
 * replaced keeps its mode. umask() can only be read by changing it, which races with other
 * threads, so read it from /proc. */
static mode_t od_new_file_mode(const char *path) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) return sb.st_mode & 07777;
    unsigned mask = 022;
    FILE *f = fopen("/proc/self/status", "re");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Umask: %o", &mask) == 1) break;
        fclose(f);
    }
    return 0666 & ~(mode_t)mask;
}

/* Writes all of data to fd; false with errno set on failure. */
static bool od_write_all(int fd, const void *data, size_t len) {
    const uint8_t *p = data;
    for (size_t left = len; left > 0;) {
        ssize_t w = write(fd, p, left < ((size_t)1 << 30) ? left : ((size_t)1 << 30));
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        left -= (size_t)w;
    }
    return true;
}

#ifdef O_TMPFILE
/* Gives the unnamed (O_TMPFILE) file fd the name tmp, which ends in XXXXXX: tries fresh
 * suffixes while the name is taken. */
static bool od_link_unnamed(int fd, char *tmp) {
    static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    size_t n = strlen(tmp);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    for (int attempt = 0; attempt < 100; attempt++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        for (int k = 0; k < 6; k++) tmp[n - 6 + k] = digits[(x >> (16 + 7 * k)) % 36];
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) return true;
        if (errno != EEXIST) return false;
    }
    return false;
}
#endif

/* The data goes to a file without a name (O_TMPFILE), which is named only once complete,
 * right before the rename: a process killed while writing (even by SIGKILL) leaves nothing
 * behind. Where the file system has no O_TMPFILE, a named temporary (mkstemp) beside path
 * does the same but for SIGKILL. Either way path is untouched until the rename. */
static od_status od_replace_file(const char *path, const void *data, size_t len, od_error *err) {
    static const char suffix[] = ".tmp.XXXXXX";
    size_t n = strlen(path);
    char *tmp = malloc(n + sizeof suffix), *dir = strdup(path);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        return od_error_set(err, OD_STATUS_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    memcpy(tmp, path, n);
    memcpy(tmp + n, suffix, sizeof suffix);
    const char *what = "cannot create a temporary file beside it";
    bool made = false;
    mode_t mode = od_new_file_mode(path);
    int fd = -1;
#ifdef O_TMPFILE
    fd = open(dirname(dir), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        what = "cannot write";
        if (!od_write_all(fd, data, len) || fchmod(fd, mode) != 0 || fsync(fd) != 0) goto fail;
        what = "cannot name the temporary file";
        if (od_link_unnamed(fd, tmp)) {
            made = true;
        } else { /* e.g. no /proc: start again with a named temporary */
            close(fd);
            fd = -1;
        }
    }
#endif
    if (!made) {
        what = "cannot create a temporary file beside it";
        memcpy(tmp + n, suffix, sizeof suffix);
        fd = mkstemp(tmp);
        if (fd < 0) goto fail;
        made = true;
        what = "cannot write";
        if (!od_write_all(fd, data, len) || fchmod(fd, mode) != 0 || fsync(fd) != 0) goto fail;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) goto fail;
    what = "cannot rename the temporary file onto it";
    if (rename(tmp, path) != 0) goto fail;
    /* Make the rename itself durable; best effort, the data is already safe. */
    memcpy(dir, path, n + 1);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(dir);
    free(tmp);
    return OD_STATUS_OK;
fail:;
    int e = errno;
    if (fd >= 0) close(fd);
    if (made) unlink(tmp);
    free(dir);
    free(tmp);
    return od_error_set(err, OD_STATUS_IO, "%s: %s: %s", path, what, strerror(e));
}


/* A character device or FIFO (/dev/null, /dev/stdout, a pipe): written in place, never
 * renamed over, so the node stays what it was. */
static od_status od_write_through(const char *path, const void *data, size_t len, od_error *err) {
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return od_error_set(err, OD_STATUS_IO, "%s: %s", path, strerror(errno));
    bool ok = od_write_all(fd, data, len);
    int e = errno;
    if (close(fd) != 0 && ok) ok = false, e = errno;
    return ok ? OD_STATUS_OK : od_error_set(err, OD_STATUS_IO, "%s: cannot write: %s", path, strerror(e));
}

od_status od_file_write_atomic(const char *path, const void *data, size_t len, od_error *err) {
    if (!path || !*path) return od_error_set(err, OD_STATUS_INVALID_ARGUMENT, "an output path is empty");
    struct stat sb, lb;
    if (stat(path, &sb) == 0) {
        if (od_is_stream(&sb)) return od_write_through(path, data, len, err);
        if (!S_ISREG(sb.st_mode))
            return od_error_set(err, OD_STATUS_IO, "%s: is not a regular file, a character device or a FIFO; nothing written",
                                path);
        /* a symlink stays a symlink: the file it names is replaced, beside itself */
        if (lstat(path, &lb) == 0 && S_ISLNK(lb.st_mode)) {
            char *real = realpath(path, NULL);
            if (!real) return od_error_set(err, OD_STATUS_IO, "%s: %s", path, strerror(errno));
            od_status st = od_replace_file(real, data, len, err);
            free(real);
            return st;
        }
    } else if (lstat(path, &lb) == 0 && S_ISLNK(lb.st_mode)) {
        return od_error_set(err, OD_STATUS_IO, "%s: is a symlink to a missing file; nothing written", path);
    }
    return od_replace_file(path, data, len, err);
}

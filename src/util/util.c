/* util.c: fatal errors, rank-0 printing, checked allocation, clocks.
 * Does not know about MPI: the dist module installs the abort hook. */
#define _GNU_SOURCE
#include "prefer/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

static int g_rank = 0;
static int g_size = 1;
static void (*g_abort)(int) = NULL;

void util_set_rank(int rank, int size, void (*abort_fn)(int code))
{
    g_rank = rank;
    g_size = size;
    g_abort = abort_fn;
}

int util_rank(void) { return g_rank; }
int util_size(void) { return g_size; }

PREFER_NORETURN static void finish(int code)
{
    fflush(stdout);
    fflush(stderr);
    if (g_abort)
        g_abort(code); /* does not return */
    exit(code);
}

void util_die(const char *file, int line, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "prefer: [rank %d] %s:%d: %s\n", g_rank, file, line, msg);
    finish(PREFER_EXIT_ERROR);
}

void die_user(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "prefer: [rank %d] %s\n", g_rank, msg);
    finish(PREFER_EXIT_ERROR);
}

void warn(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "prefer: [rank %d] warning: %s\n", g_rank, msg);
}

void say(const char *fmt, ...)
{
    if (g_rank != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fflush(stdout);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory allocating %zu bytes", n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        die("out of memory reallocating to %zu bytes", n);
    return q;
}

void *xmalloc_aligned(size_t n)
{
    size_t sz = (n + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, sz ? sz : 64) != 0)
        die("out of memory allocating %zu bytes (aligned)", n);
    memset(p, 0, sz);
    return p;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("out of memory formatting a string");
    return s;
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int all_finite(const float *x, size_t n)
{
    /* Sum of x*0 is NaN iff some x is Inf or NaN; branch-free so it vectorises. */
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++)
        acc += x[i] * 0.0f;
    return acc == 0.0f;
}

uint64_t util_hash(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void util_mkdir_p(const char *dir)
{
    if (!dir || !*dir)
        return;
    char *p = xstrdup(dir);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != 0)
            continue;
        char c = *s;
        *s = 0;
        if (*p && mkdir(p, 0755) != 0 && errno != EEXIST)
            die_user("cannot create directory %s: %s", p, strerror(errno));
        *s = c;
        if (!c)
            break;
    }
    free(p);
}

void util_mkdir_parent(const char *path)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        util_mkdir_p(dir);
    }
    free(dir);
}

/* write all n bytes, retrying after signals and short writes */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, buf, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

void util_copy_file(const char *src, const char *dst, int atomic)
{
    int in = open(src, O_RDONLY);
    if (in < 0)
        die_user("%s: cannot open: %s", src, strerror(errno));
    char *tmp = atomic ? xasprintf("%s.tmp", dst) : xstrdup(dst);
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0)
        die_user("%s: cannot create: %s", tmp, strerror(errno));
    char buf[1 << 16];
    for (;;) {
        ssize_t k = read(in, buf, sizeof buf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            die_user("%s: read failed: %s", src, strerror(errno));
        if (k == 0)
            break;
        if (write_all(out, buf, (size_t)k) != 0)
            die_user("%s: write failed: %s", tmp, errno ? strerror(errno) : "no space left?");
    }
    close(in);
    if ((atomic && fsync(out) != 0) || close(out) != 0)
        die_user("%s: write failed: %s", tmp, strerror(errno));
    if (atomic) {
        if (rename(tmp, dst) != 0)
            die_user("%s: cannot rename to %s: %s", tmp, dst, strerror(errno));
        /* the rename itself is durable once the directory is synced */
        char *dir = xstrdup(dst), *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        int dfd = open(slash ? (slash == dir ? "/" : dir) : ".", O_RDONLY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(tmp);
}

int util_file_exists(const char *path) { return access(path, F_OK) == 0; }

int util_seterr(char *err, int errlen, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, (size_t)errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

char *util_read_file(const char *path, size_t max, size_t *len, char *err, int errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        util_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    size_t cap = 1 << 16, n = 0;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
        if ((uint64_t)st.st_size > (uint64_t)max) {
            util_seterr(err, errlen, "%s: %lld bytes, more than the %zu expected of it", path, (long long)st.st_size,
                        max);
            fclose(f);
            return NULL;
        }
        cap = (size_t)st.st_size + 1; /* one read, and one more to see the end */
    }
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                util_seterr(err, errlen, "%s: more than the %zu bytes expected of it", path, max);
                fclose(f);
                free(buf);
                return NULL;
            }
            cap *= 2;
            buf = xrealloc(buf, cap + 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || n > max) {
        util_seterr(err, errlen, bad ? "%s: read failed" : "%s: more than the bytes expected of it", path);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

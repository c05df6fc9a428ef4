/* util.h: errors, logging, checked allocation, timing.
 *
 * Errors are fatal and collective: die() prints
 *   "prefer: [rank r] file:line: message"
 * and ends the whole job (MPI_Abort when MPI is up, exit(1) otherwise). The MPI wrapper
 * installs the abort hook, so modules above it never include mpi.h.
 */
#ifndef PREFER_UTIL_H
#define PREFER_UTIL_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define PREFER_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define PREFER_NORETURN __attribute__((noreturn))
#else
#define PREFER_PRINTF(a, b)
#define PREFER_NORETURN
#endif

/* Exit codes that job scripts may rely on (documented in README). */
#define PREFER_EXIT_ERROR 1
#define PREFER_EXIT_USAGE 2
/* Stopped by SIGTERM/SIGUSR1/SIGINT after writing a checkpoint: resubmit with
 * train.resume = "auto" (EX_TEMPFAIL of sysexits.h). */
#define PREFER_EXIT_PREEMPTED 75

/* Called by the MPI wrapper once MPI is up: rank for messages, abort for die(). */
void util_set_rank(int rank, int size, void (*abort_fn)(int code));
int util_rank(void);
int util_size(void);

/* Print the message and end the job. Use the die() macro. */
PREFER_NORETURN void util_die(const char *file, int line, const char *fmt, ...) PREFER_PRINTF(3, 4);
#define die(...) util_die(__FILE__, __LINE__, __VA_ARGS__)

/* Message without file:line, for user errors where the location in our source is noise
 * (config file line, bad command-line option). Ends the job like die(). */
PREFER_NORETURN void die_user(const char *fmt, ...) PREFER_PRINTF(1, 2);

/* Warning on stderr from any rank, prefixed "prefer: [rank r] warning:". */
void warn(const char *fmt, ...) PREFER_PRINTF(1, 2);
/* Message on stdout from rank 0 only; flushed. */
void say(const char *fmt, ...) PREFER_PRINTF(1, 2);

/* Checked allocation: die() with the size on failure. xmalloc_aligned gives 64-byte
 * alignment, zero-filled, free with free(). */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
void *xmalloc_aligned(size_t n);
char *xstrdup(const char *s);
/* printf into a freshly allocated string; caller frees. */
char *xasprintf(const char *fmt, ...) PREFER_PRINTF(1, 2);

/* mkdir -p dir; dies (die_user) naming the directory on failure. */
void util_mkdir_p(const char *dir);
/* mkdir -p of the directory part of a file path (nothing for a bare file name). */
void util_mkdir_parent(const char *path);

/* Format a message into err (size errlen; nothing when err is NULL or errlen <= 0) and return
 * -1: the error path of the functions that report instead of dying. */
int util_seterr(char *err, int errlen, const char *fmt, ...) PREFER_PRINTF(3, 4);

/* The whole file at path in a malloc'd buffer with a NUL after its *len bytes (regular files,
 * pipes and devices alike). Returns NULL with a message naming the file in err when it cannot
 * be opened or read, or holds more than max bytes. */
char *util_read_file(const char *path, size_t max, size_t *len, char *err, int errlen);

/* Copy the file src to dst; atomic = 1 writes dst.tmp, fsyncs and renames it (a reader sees
 * the old dst or the whole new one). Dies (die_user) naming the file on any error. */
void util_copy_file(const char *src, const char *dst, int atomic);
/* 1 if path exists. */
int util_file_exists(const char *path);

/* Wall-clock seconds (monotonic). */
double now_s(void);

/* 1 if every one of n floats is finite. */
int all_finite(const float *x, size_t n);

/* FNV-1a 64-bit hash of bytes, chained through h (start with UTIL_HASH_INIT). */
#define UTIL_HASH_INIT 0xcbf29ce484222325ULL
uint64_t util_hash(uint64_t h, const void *data, size_t n);

#endif

/* test_runlog.c: the run log: rows appended over several flushes read back exactly, late
 * columns NaN-back-filled, missing values NaN, resume appends and records the resume, an
 * existing log is never overwritten, foreign files are refused, a crash loses only the
 * unflushed rows, and another process (a plain HDF5 reader and h5py) reads the rows while
 * the writer still holds the file open. Runs without MPI; main() returns non-zero on failure.
 *
 * Death tests fork while the parent holds no HDF5 file open: a child that exits runs
 * HDF5's atexit handler, which would flush any inherited open file.
 */
#define _GNU_SOURCE
#include "prefer/h5util.h"
#include "prefer/runlog.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PY "/usr/bin/python3"

static char g_dir[64];
static int g_file_no;

static char *new_path(const char *tag) { return xasprintf("%s/%s-%d.h5", g_dir, tag, g_file_no++); }

/* Whole 1-D float64 dataset at dset of the file at path (NULL if missing); *n its length. */
static double *read_col(const char *path, const char *dset, int64_t *n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return NULL;
    char err[512];
    double *v = h5u_read_array(f, dset, H5T_NATIVE_DOUBLE, 1, NULL, n, err, sizeof err);
    if (!v && getenv("PREFER_TEST_VERBOSE"))
        printf("\n    %s\n", err);
    H5Fclose(f);
    return v;
}

/* 1 if a and b agree element by element, NaN matching NaN. */
static int same(const double *a, const double *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i]))))
            return 0;
    return 1;
}

static void row3(RunLog *rl, double step, double loss, double rc)
{
    const char *names[3] = {"step", "loss", "rewards/chosen"};
    double v[3] = {step, loss, rc};
    runlog_row(rl, "steps", 3, names, v);
}

/* Run fn(arg) in a child with stderr captured into msg; returns the wait status. */
static int in_child(void (*fn)(void *), void *arg, char *msg, size_t msglen)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    while (len < msglen - 1 && (r = read(fds[0], msg + len, msglen - 1 - len)) > 0)
        len += (size_t)r;
    msg[len] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (getenv("PREFER_TEST_VERBOSE"))
        printf("\n    child said: %s", msg);
    return status;
}

static int died(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == PREFER_EXIT_ERROR; }

/* Run argv (argv[0] a path) in a child without HDF5_USE_FILE_LOCKING, so the reader takes
 * HDF5's default lock; returns its exit code, or -1. */
static int run_prog(char *const argv[], int quiet)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        unsetenv("HDF5_USE_FILE_LOCKING");
        if (quiet) {
            FILE *nul = freopen("/dev/null", "w", stderr);
            (void)nul;
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = xmalloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    fclose(f);
    return b;
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_rows_roundtrip(void)
{
    char *p = new_path("rows");
    RunLog *rl = runlog_open(p, "train: { lr = 0.1; };", 0, 3);
    double step[10], loss[10], rc[10];
    for (int i = 0; i < 10; i++) {
        step[i] = i;
        loss[i] = 1.0 / (i + 1) + 1e-17 * i; /* values that only survive a bit-exact path */
        rc[i] = i % 2 ? 1e-300 : -3.5;
        row3(rl, step[i], loss[i], rc[i]);
    }
    CU_ASSERT_EQUAL(runlog_rows(rl, "steps"), 10);
    CU_ASSERT_EQUAL(runlog_rows(rl, "nothing"), 0);
    runlog_close(rl);

    int64_t n = -1;
    double *v = read_col(p, "steps/step", &n);
    CU_ASSERT_FATAL(v != NULL);
    CU_ASSERT(n == 10 && same(v, step, 10));
    free(v);
    v = read_col(p, "steps/loss", &n);
    CU_ASSERT(v && n == 10 && memcmp(v, loss, sizeof loss) == 0);
    free(v);
    v = read_col(p, "steps/rewards/chosen", &n);
    CU_ASSERT(v && n == 10 && memcmp(v, rc, sizeof rc) == 0);
    free(v);

    /* header, chunking and the NaN fill value */
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    char err[512] = "";
    CU_ASSERT(h5u_check_header(f, p, RUNLOG_FORMAT, RUNLOG_VERSION, err, sizeof err) == 0);
    char *cfg = h5u_read_attr_str(f, "config");
    CU_ASSERT(cfg && !strcmp(cfg, "train: { lr = 0.1; };"));
    free(cfg);
    hid_t ds = H5Dopen2(f, "steps/loss", H5P_DEFAULT);
    CU_ASSERT_FATAL(ds >= 0);
    hid_t dcpl = H5Dget_create_plist(ds);
    hsize_t chunk = 0;
    CU_ASSERT(H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 1, &chunk) == 1 &&
              chunk == RUNLOG_CHUNK_ROWS);
    double fill = 0;
    CU_ASSERT(H5Pget_fill_value(dcpl, H5T_NATIVE_DOUBLE, &fill) >= 0 && isnan(fill));
    hid_t sp = H5Dget_space(ds);
    hsize_t dim, maxdim;
    H5Sget_simple_extent_dims(sp, &dim, &maxdim);
    CU_ASSERT(dim == 10 && maxdim == H5S_UNLIMITED);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Dclose(ds);
    char *kind = h5u_read_attr_str(f, "kind");
    CU_ASSERT(kind == NULL); /* root is not a table */
    hid_t g = H5Gopen2(f, "steps", H5P_DEFAULT);
    kind = h5u_read_attr_str(g, "kind");
    CU_ASSERT(kind && !strcmp(kind, "table"));
    free(kind);
    H5Gclose(g);
    H5Fclose(f);
    free(p);
}

static void test_late_and_missing_columns(void)
{
    char *p = new_path("late");
    RunLog *rl = runlog_open(p, NULL, 0, 4);
    const char *ab[2] = {"a", "b/x"};
    for (int i = 0; i < 10; i++) {
        double v[2] = {i, 100 + i};
        if (i == 7)
            runlog_row(rl, "steps", 1, ab + 1, v + 1); /* "a" missing */
        else
            runlog_row(rl, "steps", i < 5 ? 1 : 2, ab, v); /* "b/x" from row 5 on */
        if (i == 3) {
            const char *en[1] = {"epoch"};
            double ev[1] = {1};
            runlog_row(rl, "epochs", 1, en, ev);
        }
    }
    runlog_close(rl);

    double wa[10], wb[10];
    for (int i = 0; i < 10; i++) {
        wa[i] = i == 7 ? NAN : i;
        wb[i] = i < 5 ? NAN : 100 + i; /* rows 0-3 were in the file, row 4 in the buffer */
    }
    int64_t n;
    double *v = read_col(p, "steps/a", &n);
    CU_ASSERT(v && n == 10 && same(v, wa, 10));
    free(v);
    v = read_col(p, "steps/b/x", &n);
    CU_ASSERT(v && n == 10 && same(v, wb, 10));
    free(v);
    v = read_col(p, "epochs/epoch", &n);
    CU_ASSERT(v && n == 1 && v[0] == 1);
    free(v);
    free(p);
}

static void test_arrays_and_attrs(void)
{
    char *p = new_path("arr");
    RunLog *rl = runlog_open(p, NULL, 0, 10);
    float pv[5] = {0.5f, 0.25f, 0, 1, 2};
    hsize_t d5 = 5, d3 = 3, d23[2] = {2, 3};
    runlog_array(rl, "curriculum/epoch_0/pvar", H5T_NATIVE_FLOAT, 1, &d5, pv);
    runlog_array(rl, "/curriculum/epoch_0/pvar", H5T_NATIVE_FLOAT, 1, &d3, pv + 2); /* replace */
    int64_t sel[6] = {1, 2, 3, 4, 5, 6};
    runlog_array(rl, "curriculum/epoch_0/selected", H5T_NATIVE_INT64, 2, d23, sel);
    runlog_attr_str(rl, "commit", "abc123");
    runlog_attr_i64(rl, "world_size", 4);
    runlog_attr_i64(rl, "world_size", 2); /* replace */
    runlog_attr_f64(rl, "seconds_forward", 1.25);
    runlog_close(rl);

    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    char err[512];
    int64_t n;
    float *got = h5u_read_array(f, "curriculum/epoch_0/pvar", H5T_NATIVE_FLOAT, 1, NULL, &n, err,
                                sizeof err);
    CU_ASSERT(got && n == 3 && memcmp(got, pv + 2, 3 * sizeof(float)) == 0);
    free(got);
    hsize_t dims[2];
    int64_t *gs = h5u_read_array(f, "curriculum/epoch_0/selected", H5T_NATIVE_INT64, 2, dims, &n,
                                 err, sizeof err);
    CU_ASSERT(gs && n == 6 && dims[0] == 2 && dims[1] == 3 && memcmp(gs, sel, sizeof sel) == 0);
    free(gs);
    char *c = h5u_read_attr_str(f, "commit");
    CU_ASSERT(c && !strcmp(c, "abc123"));
    free(c);
    int64_t ws = 0;
    CU_ASSERT(h5u_read_attr_i64(f, "world_size", &ws) == 0 && ws == 2);
    double fw = 0;
    CU_ASSERT(h5u_read_attr_f64(f, "seconds_forward", &fw) == 0 && fw == 1.25);
    H5Fclose(f);
    free(p);
}

static void test_resume(void)
{
    char *p = new_path("resume");
    RunLog *rl = runlog_open(p, "first config", 0, 2);
    for (int i = 1; i <= 5; i++)
        row3(rl, i, 10 - i, 0.5);
    const char *en[1] = {"epoch"};
    double ev[1] = {0};
    runlog_row(rl, "epochs", 1, en, ev);
    runlog_close(rl);

    double t0 = (double)time(NULL);
    rl = runlog_open(p, "ignored on resume", 1, 2);
    CU_ASSERT_EQUAL(runlog_rows(rl, "steps"), 5);
    for (int i = 4; i <= 7; i++) { /* the checkpoint was at step 3: steps 4, 5 come again */
        const char *names[2] = {"step", "kl"};
        double v[2] = {i, 0.01 * i};
        runlog_row(rl, "steps", 2, names, v);
    }
    CU_ASSERT_EQUAL(runlog_rows(rl, "steps"), 9);
    runlog_close(rl);

    int64_t n;
    double want_step[9] = {1, 2, 3, 4, 5, 4, 5, 6, 7};
    double want_kl[9] = {NAN, NAN, NAN, NAN, NAN, 0.04, 0.05, 0.06, 0.07};
    double want_loss[9] = {9, 8, 7, 6, 5, NAN, NAN, NAN, NAN};
    double *v = read_col(p, "steps/step", &n);
    CU_ASSERT(v && n == 9 && same(v, want_step, 9));
    free(v);
    v = read_col(p, "steps/kl", &n);
    CU_ASSERT(v && n == 9 && same(v, want_kl, 9));
    free(v);
    v = read_col(p, "steps/loss", &n);
    CU_ASSERT(v && n == 9 && same(v, want_loss, 9));
    free(v);
    v = read_col(p, "resumes/time", &n);
    CU_ASSERT(v && n == 1 && fabs(v[0] - t0) < 5);
    free(v);
    v = read_col(p, "resumes/step", &n);
    CU_ASSERT(v && n == 1 && v[0] == 4);
    free(v);
    v = read_col(p, "resumes/rows/steps", &n);
    CU_ASSERT(v && n == 1 && v[0] == 5);
    free(v);
    v = read_col(p, "resumes/rows/epochs", &n);
    CU_ASSERT(v && n == 1 && v[0] == 1);
    free(v);

    /* A second resume that logs nothing still records itself (step NaN); the header is
     * the original one. */
    rl = runlog_open(p, NULL, 1, 2);
    runlog_close(rl);
    v = read_col(p, "resumes/step", &n);
    CU_ASSERT(v && n == 2 && v[0] == 4 && isnan(v[1]));
    free(v);
    v = read_col(p, "resumes/rows/steps", &n);
    CU_ASSERT(v && n == 2 && v[1] == 9);
    free(v);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    char *cfg = h5u_read_attr_str(f, "config");
    CU_ASSERT(cfg && !strcmp(cfg, "first config"));
    free(cfg);
    H5Fclose(f);

    /* resume = 1 without an existing file simply starts a new log, with no resume row */
    char *q = new_path("resume-fresh");
    rl = runlog_open(q, NULL, 1, 2);
    row3(rl, 1, 1, 1);
    runlog_close(rl);
    f = H5Fopen(q, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT(f >= 0 && H5Lexists(f, "resumes", H5P_DEFAULT) == 0);
    H5Fclose(f);
    free(q);
    free(p);
}

/* Columns left uneven by a crash in mid-flush: info reports it, resuming pads with NaN. */
static void test_uneven_columns(void)
{
    char *p = new_path("uneven");
    RunLog *rl = runlog_open(p, NULL, 0, 100);
    for (int i = 0; i < 6; i++)
        row3(rl, i, i, i);
    runlog_close(rl);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "steps/loss", H5P_DEFAULT);
    hsize_t four = 4;
    CU_ASSERT(H5Dset_extent(ds, &four) >= 0);
    H5Dclose(ds);
    H5Fclose(f);

    f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT(runlog_info(p, f) == PREFER_EXIT_ERROR);
    H5Fclose(f);

    rl = runlog_open(p, NULL, 1, 100);
    CU_ASSERT_EQUAL(runlog_rows(rl, "steps"), 6);
    row3(rl, 6, 6, 6);
    runlog_close(rl);
    int64_t n;
    double want[7] = {0, 1, 2, 3, NAN, NAN, 6};
    double *v = read_col(p, "steps/loss", &n);
    CU_ASSERT(v && n == 7 && same(v, want, 7));
    free(v);
    f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT(runlog_info(p, f) == 0);
    H5Fclose(f);
    free(p);
}

typedef struct {
    const char *path;
    int resume;
} OpenArgs;

static void child_open(void *arg)
{
    OpenArgs *a = arg;
    RunLog *rl = runlog_open(a->path, NULL, a->resume, 1);
    runlog_close(rl);
}

static void test_existing_not_overwritten(void)
{
    char *p = new_path("keep");
    RunLog *rl = runlog_open(p, NULL, 0, 1);
    row3(rl, 1, 2, 3);
    runlog_close(rl);
    size_t n0 = 0, n1 = 0;
    char *before = read_file(p, &n0);
    CU_ASSERT_FATAL(before != NULL);

    char msg[4096];
    OpenArgs a = {p, 0};
    int st = in_child(child_open, &a, msg, sizeof msg);
    CU_ASSERT(died(st));
    CU_ASSERT(strstr(msg, p) != NULL);
    CU_ASSERT(strstr(msg, "out_dir") != NULL && strstr(msg, "resume") != NULL);
    char *after = read_file(p, &n1);
    CU_ASSERT(after && n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);

    /* any existing file, run log or not */
    char *q = xasprintf("%s/notes.txt", g_dir);
    FILE *fp = fopen(q, "w");
    fputs("precious\n", fp);
    fclose(fp);
    a.path = q;
    st = in_child(child_open, &a, msg, sizeof msg);
    CU_ASSERT(died(st) && strstr(msg, q) != NULL);
    free(q);
    free(p);
}

/* Write an HDF5 file with the given format attribute (NULL: none) and version. */
static void make_foreign(const char *path, const char *format, int64_t version)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (format)
        h5u_attr_str(f, "format", format);
    h5u_attr_i64(f, "version", version);
    hsize_t d = 2;
    int x[2] = {1, 2};
    h5u_write_array(f, "data", H5T_NATIVE_INT, 1, &d, x);
    H5Fclose(f);
}

static void test_foreign_refused(void)
{
    struct {
        const char *format;
        int64_t version;
        const char *expect;
    } cases[] = {
        {"prefer.checkpoint", 1, "prefer.checkpoint"},
        {NULL, 1, "no format attribute"},
        {RUNLOG_FORMAT, 99, "upgrade prefer"},
    };
    char msg[4096];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *p = new_path("foreign");
        make_foreign(p, cases[i].format, cases[i].version);
        size_t n0 = 0, n1 = 0;
        char *before = read_file(p, &n0);
        OpenArgs a = {p, 1};
        int st = in_child(child_open, &a, msg, sizeof msg);
        CU_ASSERT(died(st));
        CU_ASSERT(strstr(msg, p) != NULL);
        CU_ASSERT(strstr(msg, cases[i].expect) != NULL);
        char *after = read_file(p, &n1);
        CU_ASSERT(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
        free(before);
        free(after);
        free(p);
    }
    /* not HDF5 at all */
    char *q = xasprintf("%s/text.h5", g_dir);
    FILE *fp = fopen(q, "w");
    fputs("not hdf5\n", fp);
    fclose(fp);
    OpenArgs a = {q, 1};
    int st = in_child(child_open, &a, msg, sizeof msg);
    CU_ASSERT(died(st) && strstr(msg, q) != NULL && strstr(msg, "not an HDF5 file") != NULL);
    free(q);
}

/* Misuse dies with a message naming the column. */
static void child_dup(void *arg)
{
    RunLog *rl = runlog_open(arg, NULL, 0, 1);
    const char *names[2] = {"loss", "loss"};
    double v[2] = {1, 2};
    runlog_row(rl, "steps", 2, names, v);
}

static void child_clash(void *arg)
{
    RunLog *rl = runlog_open(arg, NULL, 0, 1);
    const char *n1[1] = {"rewards/chosen"}, *n2[1] = {"rewards"};
    double v = 1;
    runlog_row(rl, "steps", 1, n1, &v);
    runlog_row(rl, "steps", 1, n2, &v);
}

static void child_badname(void *arg)
{
    RunLog *rl = runlog_open(arg, NULL, 0, 1);
    const char *n1[1] = {"a//b"};
    double v = 1;
    runlog_row(rl, "steps", 1, n1, &v);
}

static void child_array_in_table(void *arg)
{
    RunLog *rl = runlog_open(arg, NULL, 0, 1);
    const char *n1[1] = {"loss"};
    double v = 1;
    runlog_row(rl, "steps", 1, n1, &v);
    hsize_t d = 1;
    runlog_array(rl, "steps/extra", H5T_NATIVE_DOUBLE, 1, &d, &v);
}

static void test_misuse_dies(void)
{
    struct {
        void (*fn)(void *);
        const char *expect;
    } cases[] = {
        {child_dup, "'loss' given twice"},
        {child_clash, "clash"},
        {child_badname, "a//b"},
        {child_array_in_table, "inside the table"},
    };
    char msg[4096];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *p = new_path("misuse");
        int st = in_child(cases[i].fn, p, msg, sizeof msg);
        CU_ASSERT(died(st));
        CU_ASSERT(strstr(msg, cases[i].expect) != NULL);
        free(p);
    }
}

/* A writer killed between flushes: the flushed rows are there, the file is readable. */
static void child_crash(void *arg)
{
    RunLog *rl = runlog_open(arg, NULL, 0, 4);
    for (int i = 0; i < 10; i++)
        row3(rl, i, i, i);
    _exit(0); /* no runlog_close, no atexit handlers: as if killed */
}

static void test_crash_keeps_flushed_rows(void)
{
    char *p = new_path("crash");
    char msg[1024];
    int st = in_child(child_crash, p, msg, sizeof msg);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    int64_t n;
    double *v = read_col(p, "steps/step", &n);
    double want[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    CU_ASSERT(v && n == 8 && same(v, want, 8));
    free(v);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT(f >= 0 && runlog_info(p, f) == 0);
    H5Fclose(f);
    /* and it resumes */
    RunLog *rl = runlog_open(p, NULL, 1, 4);
    CU_ASSERT_EQUAL(runlog_rows(rl, "steps"), 8);
    runlog_close(rl);
    free(p);
}

static char g_self[4096];

static const char *py_check =
    "import sys, h5py\n"
    "with h5py.File(sys.argv[1], 'r') as f:\n"
    "    s = f['steps/step'][:]\n"
    "    assert f.attrs['format'] == 'prefer.runlog', f.attrs['format']\n"
    "    assert list(s) == list(range(int(sys.argv[2]))), list(s)\n";

/* A second process reads the rows flushed so far while this one holds the log open. */
static void test_reader_while_open(void)
{
    char *p = new_path("live");
    RunLog *rl = runlog_open(p, NULL, 0, 1000);
    for (int i = 0; i < 25; i++)
        row3(rl, i, 0, 0);
    runlog_flush(rl);
    char *args[] = {g_self, "--read", p, "25", NULL};
    CU_ASSERT_EQUAL(run_prog(args, 0), 0);

    char *pyargs[] = {PY, "-c", (char *)py_check, p, "25", NULL};
    char *probe[] = {PY, "-c", "import h5py", NULL};
    int have_h5py = access(PY, X_OK) == 0 && run_prog(probe, 1) == 0;
    if (have_h5py) {
        CU_ASSERT_EQUAL(run_prog(pyargs, 0), 0);
    }

    for (int i = 25; i < 30; i++)
        row3(rl, i, 0, 0);
    /* not flushed yet: readers still see 25 */
    CU_ASSERT_EQUAL(run_prog(args, 0), 0);
    runlog_flush(rl);
    args[3] = pyargs[4] = "30";
    CU_ASSERT_EQUAL(run_prog(args, 0), 0);
    if (have_h5py) {
        CU_ASSERT_EQUAL(run_prog(pyargs, 0), 0);
    } else {
        printf("\n    note: %s has no h5py: the h5py reader check is skipped "
               "(apt-get install python3-h5py)\n", PY);
        CU_PASS("h5py reader skipped");
    }
    runlog_close(rl);
    free(p);
}

/* Child mode: open path read-only with default properties (file locking on) and check
 * that /steps/step is 0..n-1. Exit 0 if so. */
static int reader_main(const char *path, int want)
{
    h5u_init();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "reader: cannot open %s\n", path);
        return 1;
    }
    char err[512];
    int64_t n = -1;
    double *v = h5u_read_array(f, "steps/step", H5T_NATIVE_DOUBLE, 1, NULL, &n, err, sizeof err);
    int ok = v && n == want;
    for (int64_t i = 0; ok && i < n; i++)
        ok = v[i] == (double)i;
    if (!ok)
        fprintf(stderr, "reader: %s: got %lld rows, want %d %s\n", path, (long long)n, want,
                v ? "" : err);
    free(v);
    H5Fclose(f);
    return ok ? 0 : 1;
}

static void test_no_open_handles(void)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    CU_ASSERT_EQUAL(n, 0);
    if (n != 0)
        printf("\n  %zd HDF5 objects still open\n", n);
}

static void rm_dir(void)
{
    char *cmd = xasprintf("rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    free(cmd);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--read"))
        return reader_main(argv[2], atoi(argv[3]));
    ssize_t len = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (len <= 0) {
        perror("readlink /proc/self/exe");
        return 1;
    }
    g_self[len] = 0;
    snprintf(g_dir, sizeof g_dir, "/tmp/prefer-test-runlog-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    h5u_init();
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("runlog", NULL, NULL);
    CU_add_test(s, "rows over several flushes read back exactly", test_rows_roundtrip);
    CU_add_test(s, "late columns back-filled, missing values NaN", test_late_and_missing_columns);
    CU_add_test(s, "arrays and attributes", test_arrays_and_attrs);
    CU_add_test(s, "resume appends and records the resume", test_resume);
    CU_add_test(s, "uneven columns reported and padded", test_uneven_columns);
    CU_add_test(s, "an existing file is never overwritten", test_existing_not_overwritten);
    CU_add_test(s, "foreign files refused on resume", test_foreign_refused);
    CU_add_test(s, "misuse dies naming the column", test_misuse_dies);
    CU_add_test(s, "a crash keeps the flushed rows", test_crash_keeps_flushed_rows);
    CU_add_test(s, "another process reads while the writer is open", test_reader_while_open);
    CU_add_test(s, "no HDF5 handles left open", test_no_open_handles);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    rm_dir();
    return fails ? 1 : 0;
}

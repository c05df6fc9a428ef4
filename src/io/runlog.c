/* runlog.c: the run log (format "prefer.runlog", docs/formats.md; the why of the design is
 * in runlog.h).
 *
 * Does: tables of float64 columns (one extendible chunked dataset per metric), buffered in
 * memory and appended with H5Dset_extent + a hyperslab write every flush_every rows; columns
 * created on first use and NaN-filled for the rows before (the datasets' fill value is NaN,
 * so back-filling costs nothing); whole datasets (runlog_array); root attributes; resuming
 * an existing log, recording when and from which step; the `prefer info` summary.
 * Does not: MPI. Rank 0 calls it alone; other ranks never open the file.
 *
 * Invariant that keeps the file readable by others while we run: HDF5 is called only inside
 * runlog_open, runlog_flush, runlog_attr_*, runlog_array and runlog_close, and each of them
 * ends with H5Fflush. Between those calls the file on disk is complete; rows wait in memory.
 */
#define _GNU_SOURCE
#include "prefer/runlog.h"
#include "prefer/h5util.h"
#include "prefer/util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
    char *name;    /* column name relative to its table; may contain '/' */
    hid_t ds;      /* open dataset, -1 until the first flush creates it */
    double *buf;   /* the table's buffered rows, cap_buf entries */
    int64_t stamp; /* row index last given a value, to catch a name twice in one row */
} RlColumn;

typedef struct {
    char *name;
    hid_t group;     /* /<name>, -1 until the first flush creates it */
    RlColumn *cols;
    int n_cols, cap_cols;
    int64_t n_file;  /* rows in the file */
    int64_t n_buf;   /* rows buffered after them */
    int64_t cap_buf; /* capacity of every column's buf */
} RlTable;

struct RunLog {
    char *path;
    hid_t file;
    int flush_every;
    int64_t pending; /* rows appended since the last flush, all tables */
    RlTable *tables;
    int n_tables, cap_tables;
    /* resume event waiting for the first "steps" row (or close) */
    int resume_pending;
    double resume_time;
    int n_resume_rows;
    char **resume_names;  /* "rows/<table>" */
    double *resume_rows;  /* rows of that table when the log was reopened */
};

#define RL_TABLE_KIND "table"
/* prefer info lists at most this many datasets outside the tables. */
#define INFO_MAX_OTHERS 50

/* Like CHECK_H5 but names the run log and what was being done. */
#define CHECK_RL(rl, what, call)                                                              \
    ({                                                                                        \
        __typeof__(call) r_ = (call);                                                         \
        if (r_ < 0)                                                                           \
            die("%s: %s: HDF5 call failed: %s (disk full or file removed?)", (rl)->path,       \
                (what), #call);                                                               \
        r_;                                                                                   \
    })

static double unix_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 1 if s is a usable object path: non-empty components separated by single '/', none of
 * them "." or "..", no leading or trailing '/' (slash_ok = 0: a single component). */
static int valid_name(const char *s, int slash_ok)
{
    if (!s || !*s)
        return 0;
    const char *c = s; /* start of the current component */
    for (const char *p = s;; p++) {
        if (*p == '/' || *p == 0) {
            size_t len = (size_t)(p - c);
            if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
                return 0;
            if (*p == 0)
                return 1;
            if (!slash_ok)
                return 0;
            c = p + 1;
        }
    }
}

/* 1 if a names a group that would hold b ("a" and "a/b"). */
static int is_parent(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && b[n] == '/';
}

/* Group creation property list that tracks link creation order, so h5py, h5ls and
 * `prefer info` list columns in the order the trainer first logged them. */
static hid_t gcpl_ordered(RunLog *rl)
{
    hid_t p = CHECK_RL(rl, "group properties", H5Pcreate(H5P_GROUP_CREATE));
    CHECK_RL(rl, "group properties",
             H5Pset_link_creation_order(p, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
    return p;
}

/* Create the groups of every component of rel but the last, under loc. */
static void make_parents(RunLog *rl, hid_t loc, const char *rel)
{
    char *buf = xstrdup(rel);
    for (char *p = buf; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) {
            hid_t gcpl = gcpl_ordered(rl);
            hid_t g = H5Gcreate2(loc, buf, H5P_DEFAULT, gcpl, H5P_DEFAULT);
            if (g < 0)
                die("%s: cannot create group %s for %s", rl->path, buf, rel);
            H5Gclose(g);
            H5Pclose(gcpl);
        }
        *p = '/';
    }
    free(buf);
}

/* 1 if every component of the path exists (H5Lexists("a/b") fails when a is missing). */
static int link_exists(hid_t loc, const char *path)
{
    char *buf = xstrdup(path);
    int ok = 1;
    for (char *p = buf;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) {
                ok = 0;
                break;
            }
            if (c == 0)
                break;
            *p = c;
        }
    }
    free(buf);
    return ok;
}

/* ---- tables in memory ---------------------------------------------------------------- */

static RlTable *table_find(const RunLog *rl, const char *name)
{
    for (int i = 0; i < rl->n_tables; i++)
        if (!strcmp(rl->tables[i].name, name))
            return &rl->tables[i];
    return NULL;
}

static RlTable *table_add(RunLog *rl, const char *name)
{
    if (rl->n_tables == rl->cap_tables) {
        rl->cap_tables = rl->cap_tables ? 2 * rl->cap_tables : 4;
        rl->tables = xrealloc(rl->tables, (size_t)rl->cap_tables * sizeof *rl->tables);
    }
    RlTable *t = &rl->tables[rl->n_tables++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->group = -1;
    return t;
}

/* Column named name in t, trying index hint first (rows usually repeat one order). */
static RlColumn *col_find(RlTable *t, const char *name, int hint)
{
    if (hint < t->n_cols && !strcmp(t->cols[hint].name, name))
        return &t->cols[hint];
    for (int i = 0; i < t->n_cols; i++)
        if (!strcmp(t->cols[i].name, name))
            return &t->cols[i];
    return NULL;
}

/* New column, NaN for the n_nan buffered rows it has missed; ds as given (-1: not yet in
 * the file). Dies on a name that clashes with a group of another column. */
static RlColumn *col_add(RunLog *rl, RlTable *t, const char *name, hid_t ds, int64_t n_nan)
{
    for (int i = 0; i < t->n_cols; i++)
        if (is_parent(t->cols[i].name, name) || is_parent(name, t->cols[i].name))
            die("%s: run log columns '%s' and '%s' of table '%s' clash: one would be a group "
                "holding the other (rename one)",
                rl->path, t->cols[i].name, name, t->name);
    if (t->n_cols == t->cap_cols) {
        t->cap_cols = t->cap_cols ? 2 * t->cap_cols : 16;
        t->cols = xrealloc(t->cols, (size_t)t->cap_cols * sizeof *t->cols);
    }
    RlColumn *c = &t->cols[t->n_cols++];
    c->name = xstrdup(name);
    c->ds = ds;
    c->stamp = -1;
    c->buf = xmalloc((size_t)(t->cap_buf ? t->cap_buf : 1) * sizeof *c->buf);
    for (int64_t i = 0; i < n_nan; i++)
        c->buf[i] = NAN;
    return c;
}

/* Room for one more buffered row in every column of t. */
static void table_grow(RlTable *t)
{
    if (t->n_buf < t->cap_buf)
        return;
    t->cap_buf = t->cap_buf ? 2 * t->cap_buf : 64;
    for (int i = 0; i < t->n_cols; i++)
        t->cols[i].buf = xrealloc(t->cols[i].buf, (size_t)t->cap_buf * sizeof(double));
}

/* ---- writing ------------------------------------------------------------------------- */

static hid_t column_create(RunLog *rl, RlTable *t, const char *name, hsize_t rows)
{
    make_parents(rl, t->group, name);
    hsize_t maxdims = H5S_UNLIMITED, chunk = RUNLOG_CHUNK_ROWS;
    double nan = NAN;
    hid_t sp = CHECK_RL(rl, name, H5Screate_simple(1, &rows, &maxdims));
    hid_t dcpl = CHECK_RL(rl, name, H5Pcreate(H5P_DATASET_CREATE));
    CHECK_RL(rl, name, H5Pset_chunk(dcpl, 1, &chunk));
    CHECK_RL(rl, name, H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &nan));
    hid_t ds = H5Dcreate2(t->group, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0)
        die("%s: cannot create column /%s/%s (an object of that name already exists?)", rl->path,
            t->name, name);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return ds;
}

static void table_flush(RunLog *rl, RlTable *t)
{
    if (t->n_buf == 0)
        return;
    if (t->group < 0) {
        hid_t gcpl = gcpl_ordered(rl);
        t->group = H5Gcreate2(rl->file, t->name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
        if (t->group < 0)
            die("%s: cannot create table /%s", rl->path, t->name);
        H5Pclose(gcpl);
        h5u_attr_str(t->group, "kind", RL_TABLE_KIND);
    }
    hsize_t total = (hsize_t)(t->n_file + t->n_buf);
    hsize_t start = (hsize_t)t->n_file, count = (hsize_t)t->n_buf;
    hid_t ms = CHECK_RL(rl, t->name, H5Screate_simple(1, &count, NULL));
    for (int i = 0; i < t->n_cols; i++) {
        RlColumn *c = &t->cols[i];
        if (c->ds < 0)
            c->ds = column_create(rl, t, c->name, total);
        else
            CHECK_RL(rl, c->name, H5Dset_extent(c->ds, &total));
        hid_t fs = CHECK_RL(rl, c->name, H5Dget_space(c->ds));
        CHECK_RL(rl, c->name, H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL));
        CHECK_RL(rl, c->name, H5Dwrite(c->ds, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, c->buf));
        H5Sclose(fs);
    }
    H5Sclose(ms);
    t->n_file += t->n_buf;
    t->n_buf = 0;
}

void runlog_flush(RunLog *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < rl->n_tables; i++)
        table_flush(rl, &rl->tables[i]);
    CHECK_RL(rl, "flush", H5Fflush(rl->file, H5F_SCOPE_LOCAL));
    rl->pending = 0;
}

/* Buffer one row (no resume bookkeeping); flush when flush_every rows are waiting. */
static void row_append(RunLog *rl, const char *table, int n, const char *const *names,
                       const double *values)
{
    if (!valid_name(table, 0))
        die("%s: bad run log table name '%s' (one non-empty component, no '/')", rl->path,
            table ? table : "(null)");
    if (n < 0 || (n > 0 && (!names || !values)))
        die("%s: runlog_row('%s'): %d columns but no names or values", rl->path, table, n);
    RlTable *t = table_find(rl, table);
    if (!t) {
        if (H5Lexists(rl->file, table, H5P_DEFAULT) > 0)
            die("%s: /%s already exists and is not a table (written by runlog_array?)", rl->path,
                table);
        t = table_add(rl, table);
    }
    table_grow(t);
    int64_t r = t->n_buf, row_id = t->n_file + t->n_buf;
    for (int i = 0; i < t->n_cols; i++)
        t->cols[i].buf[r] = NAN;
    for (int i = 0; i < n; i++) {
        if (!names[i])
            die("%s: runlog_row('%s'): column %d has no name", rl->path, table, i);
        RlColumn *c = col_find(t, names[i], i);
        if (!c) {
            if (!valid_name(names[i], 1))
                die("%s: bad run log column name '%s' in table '%s' (non-empty components "
                    "separated by single '/', none of them '.' or '..')",
                    rl->path, names[i], table);
            c = col_add(rl, t, names[i], -1, r + 1);
        }
        if (c->stamp == row_id)
            die("%s: column '%s' given twice in one row of table '%s'", rl->path, names[i], table);
        c->stamp = row_id;
        c->buf[r] = values[i];
    }
    t->n_buf++;
    if (++rl->pending >= rl->flush_every)
        runlog_flush(rl);
}

/* The /resumes row: when, the "step" of the first row appended after the resume (NaN if
 * none), and how many rows each table had before. */
static void resume_record(RunLog *rl, double step)
{
    int n = 2 + rl->n_resume_rows;
    const char **names = xmalloc((size_t)n * sizeof *names);
    double *vals = xmalloc((size_t)n * sizeof *vals);
    names[0] = "time";
    vals[0] = rl->resume_time;
    names[1] = "step";
    vals[1] = step;
    for (int i = 0; i < rl->n_resume_rows; i++) {
        names[2 + i] = rl->resume_names[i];
        vals[2 + i] = rl->resume_rows[i];
    }
    rl->resume_pending = 0;
    row_append(rl, "resumes", n, names, vals);
    free(names);
    free(vals);
}

void runlog_row(RunLog *rl, const char *table, int n, const char *const *names,
                const double *values)
{
    if (rl->resume_pending && table && !strcmp(table, "steps") && names && values) {
        double step = NAN;
        for (int i = 0; i < n; i++)
            if (names && names[i] && !strcmp(names[i], "step"))
                step = values[i];
        resume_record(rl, step);
    }
    row_append(rl, table, n, names, values);
}

int64_t runlog_rows(const RunLog *rl, const char *table)
{
    const RlTable *t = rl && table ? table_find(rl, table) : NULL;
    return t ? t->n_file + t->n_buf : 0;
}

/* ---- attributes and whole arrays ---------------------------------------------------- */

static void attr_check(RunLog *rl, const char *name)
{
    static const char *const fixed[] = {"format", "version", "producer", "created"};
    if (!name || !*name)
        die("%s: run log attribute without a name", rl->path);
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (!strcmp(name, fixed[i]))
            die("%s: the run log attribute '%s' is fixed when the file is created", rl->path, name);
}

void runlog_attr_str(RunLog *rl, const char *name, const char *value)
{
    attr_check(rl, name);
    h5u_attr_str(rl->file, name, value);
    CHECK_RL(rl, name, H5Fflush(rl->file, H5F_SCOPE_LOCAL));
}

void runlog_attr_i64(RunLog *rl, const char *name, int64_t value)
{
    attr_check(rl, name);
    h5u_attr_i64(rl->file, name, value);
    CHECK_RL(rl, name, H5Fflush(rl->file, H5F_SCOPE_LOCAL));
}

void runlog_attr_f64(RunLog *rl, const char *name, double value)
{
    attr_check(rl, name);
    h5u_attr_f64(rl->file, name, value);
    CHECK_RL(rl, name, H5Fflush(rl->file, H5F_SCOPE_LOCAL));
}

void runlog_array(RunLog *rl, const char *path, hid_t type, int ndim, const hsize_t *dims,
                  const void *data)
{
    while (path && *path == '/')
        path++;
    if (!valid_name(path, 1))
        die("%s: bad run log array path '%s'", rl->path, path ? path : "(null)");
    size_t first = strcspn(path, "/");
    for (int i = 0; i < rl->n_tables; i++)
        if (strlen(rl->tables[i].name) == first && !strncmp(rl->tables[i].name, path, first))
            die("%s: runlog_array: /%s lies inside the table /%s (choose another path)", rl->path,
                path, rl->tables[i].name);
    if (link_exists(rl->file, path))
        CHECK_RL(rl, path, H5Ldelete(rl->file, path, H5P_DEFAULT));
    h5u_write_array(rl->file, path, type, ndim, dims, data);
    CHECK_RL(rl, path, H5Fflush(rl->file, H5F_SCOPE_LOCAL));
}

/* ---- reopening an existing log -------------------------------------------------------- */

typedef struct {
    char **names;
    int n, cap;
} NameList;

static void names_push(NameList *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->names = xrealloc(l->names, (size_t)l->cap * sizeof *l->names);
    }
    l->names[l->n++] = xstrdup(s);
}

static void names_free(NameList *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->names[i]);
    free(l->names);
    l->names = NULL;
    l->n = l->cap = 0;
}

/* Link iteration callback: collect the names of groups carrying kind = "table". */
static herr_t table_link_cb(hid_t g, const char *name, const H5L_info_t *li, void *op)
{
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0)
        return 0;
    if (H5Iget_type(o) == H5I_GROUP) {
        char *kind = h5u_read_attr_str(o, "kind");
        if (kind && !strcmp(kind, RL_TABLE_KIND))
            names_push(op, name);
        free(kind);
    }
    H5Oclose(o);
    return 0;
}

/* Link visit callback: collect the relative paths of every dataset below a table. */
static herr_t column_link_cb(hid_t g, const char *name, const H5L_info_t *li, void *op)
{
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0)
        return 0;
    if (H5Iget_type(o) == H5I_DATASET)
        names_push(op, name);
    H5Oclose(o);
    return 0;
}

/* Iterate (recurse = 1: visit) links of g in creation order, or by name when g does not
 * track creation order (a file written by other tools). */
static void list_links(hid_t g, int recurse, H5L_iterate_t cb, NameList *out)
{
    H5_index_t idx[2] = {H5_INDEX_CRT_ORDER, H5_INDEX_NAME};
    for (int k = 0; k < 2; k++) {
        hsize_t pos = 0;
        herr_t r = recurse ? H5Lvisit(g, idx[k], H5_ITER_INC, cb, out)
                           : H5Literate(g, idx[k], H5_ITER_INC, &pos, cb, out);
        if (r >= 0)
            return;
        names_free(out);
    }
}

/* Open the table name of the file with all its columns; pad columns left shorter than
 * the others by a crash in the middle of a flush. */
static void table_load(RunLog *rl, const char *name)
{
    RlTable *t = table_add(rl, name);
    t->group = CHECK_RL(rl, name, H5Gopen2(rl->file, name, H5P_DEFAULT));
    NameList cols = {0};
    list_links(t->group, 1, column_link_cb, &cols);
    hsize_t *len = xcalloc((size_t)cols.n + 1, sizeof *len);
    hsize_t longest = 0;
    for (int i = 0; i < cols.n; i++) {
        hid_t ds = CHECK_RL(rl, cols.names[i], H5Dopen2(t->group, cols.names[i], H5P_DEFAULT));
        hid_t ty = CHECK_RL(rl, cols.names[i], H5Dget_type(ds));
        hid_t sp = CHECK_RL(rl, cols.names[i], H5Dget_space(ds));
        int ok = H5Tget_class(ty) == H5T_FLOAT && H5Sget_simple_extent_ndims(sp) == 1;
        if (ok)
            H5Sget_simple_extent_dims(sp, &len[i], NULL);
        H5Sclose(sp);
        H5Tclose(ty);
        if (!ok) {
            H5Dclose(ds);
            die_user("%s: /%s/%s is not a run log column (expected 1-D float data); refusing to "
                     "append to this run log",
                     rl->path, name, cols.names[i]);
        }
        longest = len[i] > longest ? len[i] : longest;
        col_add(rl, t, cols.names[i], ds, 0);
    }
    for (int i = 0; i < cols.n; i++) {
        if (len[i] == longest)
            continue;
        warn("%s: column /%s/%s has %llu rows, the table %llu (a crash during a flush?): "
             "padding it with NaN",
             rl->path, name, cols.names[i], (unsigned long long)len[i],
             (unsigned long long)longest);
        CHECK_RL(rl, cols.names[i], H5Dset_extent(t->cols[i].ds, &longest));
    }
    t->n_file = (int64_t)longest;
    free(len);
    names_free(&cols);
}

static void load_tables(RunLog *rl)
{
    NameList tabs = {0};
    list_links(rl->file, 0, table_link_cb, &tabs);
    for (int i = 0; i < tabs.n; i++)
        table_load(rl, tabs.names[i]);
    names_free(&tabs);
}

/* ---- open and close ------------------------------------------------------------------ */

RunLog *runlog_open(const char *path, const char *config_text, int resume, int flush_every)
{
    h5u_init();
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (exists && !resume)
        die_user("%s already exists and prefer never overwrites a run log: use a new "
                 "train.out_dir, or continue that run with train.resume (its run log is then "
                 "appended to)",
                 path);
    if (exists && !S_ISREG(st.st_mode))
        die_user("%s is not a regular file, so not a prefer run log", path);

    RunLog *rl = xcalloc(1, sizeof *rl);
    rl->path = xstrdup(path);
    rl->flush_every = flush_every < 1 ? 1 : flush_every;

    /* No HDF5 file lock: readers may open the file while we write (see runlog.h). */
    hid_t fapl = CHECK_RL(rl, "file access properties", H5Pcreate(H5P_FILE_ACCESS));
    CHECK_RL(rl, "file access properties", H5Pset_file_locking(fapl, 0, 1));

    if (!exists) {
        hid_t fcpl = CHECK_RL(rl, "file properties", H5Pcreate(H5P_FILE_CREATE));
        CHECK_RL(rl, "file properties",
                 H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
        rl->file = H5Fcreate(path, H5F_ACC_EXCL, fcpl, fapl);
        if (rl->file < 0)
            die_user("cannot create the run log %s (does its directory exist and is it "
                     "writable? another process may have just created it)",
                     path);
        H5Pclose(fcpl);
        h5u_write_header(rl->file, RUNLOG_FORMAT, RUNLOG_VERSION, config_text);
        CHECK_RL(rl, "flush", H5Fflush(rl->file, H5F_SCOPE_LOCAL));
        H5Pclose(fapl);
        return rl;
    }

    if (!h5u_is_hdf5(path))
        die_user("%s exists but is not an HDF5 file, so not a prefer run log: refusing to "
                 "append to it (move it away or use a new train.out_dir)",
                 path);
    rl->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (rl->file < 0)
        die_user("cannot open the run log %s for appending (is it writable?)", path);
    /* Name what the file is before h5u_check_header judges the version. */
    char *fmt = h5u_read_attr_str(rl->file, "format");
    if (!fmt || strcmp(fmt, RUNLOG_FORMAT) != 0) {
        char what[256];
        if (fmt)
            snprintf(what, sizeof what, "its format attribute is '%.200s'", fmt);
        else
            snprintf(what, sizeof what, "it has no format attribute");
        free(fmt);
        H5Fclose(rl->file);
        die_user("%s is not a prefer run log (%s, expected '%s'): refusing to append to it "
                 "(move it away or use a new train.out_dir)",
                 path, what, RUNLOG_FORMAT);
    }
    free(fmt);
    char err[1024];
    if (h5u_check_header(rl->file, path, RUNLOG_FORMAT, RUNLOG_VERSION, err, sizeof err) != 0) {
        H5Fclose(rl->file);
        die_user("%s; refusing to append to this run log", err);
    }
    load_tables(rl);
    if (resume == RUNLOG_APPEND)
        return rl; /* another writer (prefer eval) adding rows: not a resume of training */
    rl->resume_pending = 1;
    rl->resume_time = unix_time();
    rl->resume_names = xmalloc(((size_t)rl->n_tables + 1) * sizeof *rl->resume_names);
    rl->resume_rows = xmalloc(((size_t)rl->n_tables + 1) * sizeof *rl->resume_rows);
    for (int i = 0; i < rl->n_tables; i++) {
        if (!strcmp(rl->tables[i].name, "resumes"))
            continue;
        rl->resume_names[rl->n_resume_rows] = xasprintf("rows/%s", rl->tables[i].name);
        rl->resume_rows[rl->n_resume_rows++] = (double)rl->tables[i].n_file;
    }
    return rl;
}

void runlog_close(RunLog *rl)
{
    if (!rl)
        return;
    if (rl->resume_pending)
        resume_record(rl, NAN);
    runlog_flush(rl);
    for (int i = 0; i < rl->n_tables; i++) {
        RlTable *t = &rl->tables[i];
        for (int j = 0; j < t->n_cols; j++) {
            if (t->cols[j].ds >= 0)
                H5Dclose(t->cols[j].ds);
            free(t->cols[j].name);
            free(t->cols[j].buf);
        }
        if (t->group >= 0)
            H5Gclose(t->group);
        free(t->cols);
        free(t->name);
    }
    free(rl->tables);
    if (H5Fclose(rl->file) < 0)
        die("%s: closing the run log failed (disk full?)", rl->path);
    for (int i = 0; i < rl->n_resume_rows; i++)
        free(rl->resume_names[i]);
    free(rl->resume_names);
    free(rl->resume_rows);
    free(rl->path);
    free(rl);
}

/* ---- prefer info ---------------------------------------------------------------------- */

static herr_t info_attr_cb(hid_t loc, const char *name, const H5A_info_t *ai, void *op)
{
    static const char *const skip[] = {"format", "version", "producer", "created", "config"};
    for (size_t i = 0; i < sizeof skip / sizeof *skip; i++)
        if (!strcmp(name, skip[i]))
            return 0;
    char *s = h5u_read_attr_str(loc, name);
    int64_t iv;
    double fv;
    if (s) {
        size_t len = strcspn(s, "\n");
        say("    %-20s %.*s%s\n", name, len > 70 ? 70 : (int)len, s,
            len > 70 || s[len] ? " ..." : "");
        free(s);
    } else if (h5u_read_attr_i64(loc, name, &iv) == 0) {
        say("    %-20s %" PRId64 "\n", name, iv);
    } else if (h5u_read_attr_f64(loc, name, &fv) == 0) {
        say("    %-20s %.10g\n", name, fv);
    } else {
        say("    %-20s (not a scalar string or number)\n", name);
    }
    ++*(int *)op;
    return 0;
}

/* Value of the last element of a 1-D dataset of n rows (NaN if unreadable). */
static double last_value(hid_t ds, hsize_t n)
{
    double v = NAN;
    if (n == 0)
        return v;
    hsize_t start = n - 1, one = 1;
    hid_t fs = H5Dget_space(ds);
    hid_t ms = H5Screate_simple(1, &one, NULL);
    if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &one, NULL) >= 0)
        if (H5Dread(ds, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, &v) < 0)
            v = NAN;
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    return v;
}

/* Summary of one table; returns the number of problems found. */
static int info_table(const char *path, hid_t f, const char *name)
{
    hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
    if (g < 0)
        return 1;
    NameList cols = {0};
    list_links(g, 1, column_link_cb, &cols);
    hsize_t *len = xcalloc((size_t)cols.n + 1, sizeof *len);
    double *last = xcalloc((size_t)cols.n + 1, sizeof *last);
    int bad = 0, uneven = 0;
    for (int i = 0; i < cols.n; i++) {
        hid_t ds = H5Dopen2(g, cols.names[i], H5P_DEFAULT);
        hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
        hid_t ty = ds >= 0 ? H5Dget_type(ds) : -1;
        if (sp < 0 || ty < 0 || H5Sget_simple_extent_ndims(sp) != 1 ||
            H5Tget_class(ty) != H5T_FLOAT) {
            fprintf(stderr, "prefer info: %s: /%s/%s is not a 1-D float column\n", path, name,
                    cols.names[i]);
            bad++;
        } else {
            H5Sget_simple_extent_dims(sp, &len[i], NULL);
            last[i] = last_value(ds, len[i]);
            uneven += len[i] != len[0];
        }
        if (ty >= 0)
            H5Tclose(ty);
        if (sp >= 0)
            H5Sclose(sp);
        if (ds >= 0)
            H5Dclose(ds);
    }
    hsize_t rows = 0;
    for (int i = 0; i < cols.n; i++)
        rows = len[i] > rows ? len[i] : rows;
    say("  table /%-12s %llu rows, %d column%s\n", name, (unsigned long long)rows, cols.n,
        cols.n == 1 ? "" : "s");
    if (uneven) {
        for (int i = 0; i < cols.n; i++)
            say("      %-28s %llu rows\n", cols.names[i], (unsigned long long)len[i]);
        fprintf(stderr,
                "prefer info: %s: the columns of /%s differ in length (a crash during a flush?); "
                "resuming the run pads them with NaN\n",
                path, name);
        bad++;
    } else if (!strcmp(name, "steps") && rows > 0) {
        say("    last row (index %llu):\n", (unsigned long long)rows - 1);
        for (int i = 0; i < cols.n; i++)
            say("      %-28s %.6g\n", cols.names[i], last[i]);
    } else if (cols.n) {
        char line[96];
        int k = 0;
        for (int i = 0; i < cols.n; i++) {
            int need = (int)strlen(cols.names[i]) + 2;
            if (k > 0 && k + need > 84) {
                say("    %s\n", line);
                k = 0;
            }
            k += snprintf(line + k, sizeof line - (size_t)k, "%s%s", cols.names[i],
                          i + 1 < cols.n ? ", " : "");
            if (k >= (int)sizeof line)
                k = (int)sizeof line - 1;
        }
        if (k > 0)
            say("    %s\n", line);
    }
    free(len);
    free(last);
    names_free(&cols);
    H5Gclose(g);
    return bad;
}

/* One line for a dataset outside the tables (runlog_array): path and shape. */
static void info_dataset(hid_t f, const char *name)
{
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    char shape[96] = "scalar";
    if (nd >= 1 && nd <= 8) {
        hsize_t dims[8];
        H5Sget_simple_extent_dims(sp, dims, NULL);
        int k = snprintf(shape, sizeof shape, "(");
        for (int i = 0; i < nd; i++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%llu", i ? ", " : "",
                          (unsigned long long)dims[i]);
        snprintf(shape + k, sizeof shape - (size_t)k, ")");
    }
    if (sp >= 0)
        H5Sclose(sp);
    if (ds >= 0)
        H5Dclose(ds);
    say("    /%-34s %s\n", name, shape);
}

int runlog_info(const char *path, hid_t f)
{
    char err[1024];
    if (h5u_check_header(f, path, RUNLOG_FORMAT, RUNLOG_VERSION, err, sizeof err) != 0) {
        fprintf(stderr, "prefer info: %s\n", err);
        return PREFER_EXIT_ERROR;
    }
    int64_t version = 0;
    h5u_read_attr_i64(f, "version", &version);
    say("%s: run log (%s version %" PRId64 ")\n", path, RUNLOG_FORMAT, version);
    char *prod = h5u_read_attr_str(f, "producer");
    char *when = h5u_read_attr_str(f, "created");
    say("  written by    %s%s%s\n", prod ? prod : "(unknown producer)", when ? ", created " : "",
        when ? when : "");
    free(prod);
    free(when);
    char *cfg = h5u_read_attr_str(f, "config");
    int lines = 0;
    for (const char *p = cfg ? cfg : ""; *p; p++)
        lines += *p == '\n' || p[1] == 0;
    say("  config        %d line%s%s\n", lines, lines == 1 ? "" : "s",
        lines ? " (h5dump -a /config FILE)" : "");
    free(cfg);
    say("  attributes:\n");
    hsize_t aidx = 0;
    int n_attrs = 0;
    H5Aiterate2(f, H5_INDEX_NAME, H5_ITER_INC, &aidx, info_attr_cb, &n_attrs);
    if (n_attrs == 0)
        say("    (none besides the common ones)\n");

    NameList tabs = {0};
    list_links(f, 0, table_link_cb, &tabs);
    int bad = 0;
    if (tabs.n == 0)
        say("  tables        none yet\n");
    for (int i = 0; i < tabs.n; i++)
        bad += info_table(path, f, tabs.names[i]);

    /* Everything else, skipping the tables. */
    NameList all = {0};
    list_links(f, 1, column_link_cb, &all);
    int others = 0;
    for (int i = 0; i < all.n; i++) {
        size_t first = strcspn(all.names[i], "/");
        int in_table = 0;
        for (int j = 0; j < tabs.n && !in_table; j++)
            in_table = strlen(tabs.names[j]) == first && !strncmp(tabs.names[j], all.names[i], first);
        if (in_table)
            continue;
        if (others == 0)
            say("  other datasets:\n");
        if (others++ < INFO_MAX_OTHERS)
            info_dataset(f, all.names[i]);
    }
    if (others > INFO_MAX_OTHERS)
        say("    ... and %d more (h5ls -r FILE)\n", others - INFO_MAX_OTHERS);
    names_free(&all);
    names_free(&tabs);
    if (bad) {
        fprintf(stderr, "prefer info: %s: %d problem(s) in the run log's tables (above)\n", path,
                bad);
        return PREFER_EXIT_ERROR;
    }
    say("  valid         yes\n");
    return 0;
}

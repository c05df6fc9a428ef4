/* h5util.c: the HDF5 helpers every prefer file goes through.
 *
 * Does: the root attributes (format, version, producer, created, config), scalar
 * attributes, whole 1-D/N-D datasets (chunked and deflated when large, contiguous when
 * small or empty), checked whole-dataset reads that report a foreign or corrupt file as a
 * message instead of a crash, and the write-to-tmp / fsync / rename commit.
 * Does not: parallel (MPI-IO) access. Our files are written by rank 0 alone with the
 * default sec2 driver and read independently by whoever needs them.
 *
 * String attributes are written as scalar variable-length UTF-8 strings (what h5py writes
 * for `attrs[k] = "text"`); reading accepts fixed-length strings too.
 */
#define _GNU_SOURCE
#include "prefer/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Datasets with at least this many elements are chunked and compressed. */
#define H5U_CHUNK_MIN 4096
/* Target elements per chunk (16 KB of int32 or float32). Small, because training reads
 * scattered token ranges: measured on a 16M-token file, a 64-sequence gather took 20-35 ms
 * with 64Ki-element deflated chunks (one whole chunk decompressed per range) and 2.5 ms
 * with 4096-element ones, for a file 3% larger. */
#define H5U_CHUNK_ELEMS 4096
/* A dataset claiming more than this many bytes is treated as corrupt rather than
 * allocated (prefer's largest arrays are far below it). */
#define H5U_MAX_READ_BYTES ((size_t)1 << 40)

void h5u_init(void)
{
    static int done = 0;
    if (done)
        return;
    CHECK_H5(H5open());
    CHECK_H5(H5Eset_auto2(H5E_DEFAULT, NULL, NULL));
    done = 1;
}

/* Name of the file holding obj, for messages; caller frees. Never NULL. */
static char *file_name(hid_t obj)
{
    ssize_t n = H5Fget_name(obj, NULL, 0);
    if (n <= 0)
        return xstrdup("(unknown file)");
    char *s = xmalloc((size_t)n + 1);
    if (H5Fget_name(obj, s, (size_t)n + 1) < 0) {
        free(s);
        return xstrdup("(unknown file)");
    }
    return s;
}

PREFER_NORETURN static void die_obj(hid_t obj, const char *what, const char *call)
{
    char *f = file_name(obj);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s: HDF5 call failed: %s", f, what, call);
    free(f);
    die("%s", msg);
}

/* Like CHECK_H5 but names the file and the object being written. */
#define CHECK_W(obj, what, call)                                          \
    ({                                                                    \
        __typeof__(call) r_ = (call);                                     \
        if (r_ < 0)                                                       \
            die_obj((obj), (what), #call);                                \
        r_;                                                               \
    })

/* 1 if every component of path exists as a link (H5Lexists on "a/b" errors out when
 * "a" is missing, so walk the components). */
static int path_exists(hid_t loc, const char *path)
{
    while (*path == '/')
        path++;
    if (!*path)
        return 1;
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

/* "/a/b" for messages whether or not path has the leading slash. */
static const char *slash(const char *path) { return path[0] == '/' ? "" : "/"; }

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "floating-point";
    case H5T_STRING: return "string";
    case H5T_BITFIELD: return "bitfield";
    case H5T_OPAQUE: return "opaque";
    case H5T_COMPOUND: return "compound";
    case H5T_REFERENCE: return "reference";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "variable-length";
    case H5T_ARRAY: return "array";
    default: return "unknown";
    }
}

/* ---- attributes ------------------------------------------------------------------- */

static hid_t attr_create(hid_t obj, const char *name, hid_t ftype)
{
    if (H5Aexists(obj, name) > 0)
        CHECK_W(obj, name, H5Adelete(obj, name));
    hid_t sp = CHECK_W(obj, name, H5Screate(H5S_SCALAR));
    hid_t a = CHECK_W(obj, name, H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(sp);
    return a;
}

void h5u_attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = CHECK_W(obj, name, H5Tcopy(H5T_C_S1));
    CHECK_W(obj, name, H5Tset_size(t, H5T_VARIABLE));
    CHECK_W(obj, name, H5Tset_cset(t, H5T_CSET_UTF8));
    hid_t a = attr_create(obj, name, t);
    const char *v = value ? value : "";
    CHECK_W(obj, name, H5Awrite(a, t, &v));
    H5Aclose(a);
    H5Tclose(t);
}

void h5u_attr_i64(hid_t obj, const char *name, int64_t value)
{
    hid_t a = attr_create(obj, name, H5T_STD_I64LE);
    CHECK_W(obj, name, H5Awrite(a, H5T_NATIVE_INT64, &value));
    H5Aclose(a);
}

void h5u_attr_f64(hid_t obj, const char *name, double value)
{
    hid_t a = attr_create(obj, name, H5T_IEEE_F64LE);
    CHECK_W(obj, name, H5Awrite(a, H5T_NATIVE_DOUBLE, &value));
    H5Aclose(a);
}

/* Open attribute name of obj if it exists and holds exactly one value of class want
 * (or want2); -1 otherwise. *type gets its file type (caller closes). */
static hid_t attr_open_scalar(hid_t obj, const char *name, H5T_class_t want, H5T_class_t want2,
                              hid_t *type)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    hid_t t = H5Aget_type(a);
    hid_t sp = H5Aget_space(a);
    H5T_class_t c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (sp >= 0)
        H5Sclose(sp);
    if ((c != want && c != want2) || np != 1) {
        if (t >= 0)
            H5Tclose(t);
        H5Aclose(a);
        return -1;
    }
    *type = t;
    return a;
}

char *h5u_read_attr_str(hid_t obj, const char *name)
{
    hid_t t;
    hid_t a = attr_open_scalar(obj, name, H5T_STRING, H5T_STRING, &t);
    if (a < 0)
        return NULL;
    char *out = NULL;
    htri_t vl = H5Tis_variable_str(t);
    if (vl > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        char *s = NULL;
        if (mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 &&
            H5Tset_cset(mt, H5Tget_cset(t)) >= 0 && H5Aread(a, mt, &s) >= 0) {
            out = xstrdup(s ? s : "");
            H5free_memory(s);
        }
        if (mt >= 0)
            H5Tclose(mt);
    } else if (vl == 0) {
        size_t n = H5Tget_size(t);
        if (n > 0 && n < ((size_t)1 << 30)) {
            char *s = xcalloc(n + 1, 1);
            if (H5Aread(a, t, s) >= 0) {
                if (H5Tget_strpad(t) == H5T_STR_SPACEPAD)
                    for (size_t i = n; i > 0 && s[i - 1] == ' '; i--)
                        s[i - 1] = 0;
                out = s;
            } else {
                free(s);
            }
        }
    }
    H5Tclose(t);
    H5Aclose(a);
    return out;
}

int h5u_read_attr_i64(hid_t obj, const char *name, int64_t *out)
{
    hid_t t;
    hid_t a = attr_open_scalar(obj, name, H5T_INTEGER, H5T_INTEGER, &t);
    if (a < 0)
        return -1;
    int64_t v = 0;
    herr_t r = H5Aread(a, H5T_NATIVE_INT64, &v);
    H5Tclose(t);
    H5Aclose(a);
    if (r < 0)
        return -1;
    *out = v;
    return 0;
}

int h5u_read_attr_f64(hid_t obj, const char *name, double *out)
{
    hid_t t;
    hid_t a = attr_open_scalar(obj, name, H5T_FLOAT, H5T_INTEGER, &t);
    if (a < 0)
        return -1;
    double v = 0;
    herr_t r = H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Tclose(t);
    H5Aclose(a);
    if (r < 0)
        return -1;
    *out = v;
    return 0;
}

/* ---- the root header --------------------------------------------------------------- */

void h5u_write_header(hid_t file, const char *format, int version, const char *config_text)
{
    char when[32] = "";
    time_t t = time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    h5u_attr_str(file, "format", format);
    h5u_attr_i64(file, "version", version);
    h5u_attr_str(file, "producer", "prefer " PREFER_VERSION);
    h5u_attr_str(file, "created", when);
    h5u_attr_str(file, "config", config_text ? config_text : "");
}

/* What to call a file of a given format, and how to get one, for messages. */
static void format_words(const char *format, const char **noun, const char **hint)
{
    if (!strcmp(format, "prefer.prefdata")) {
        *noun = "prefer dataset";
        *hint = "make one with `prefer synth` or see docs/formats.md";
    } else if (!strcmp(format, "prefer.checkpoint")) {
        *noun = "prefer checkpoint";
        *hint = "checkpoints are written by `prefer train`; see docs/formats.md";
    } else {
        *noun = format;
        *hint = "see docs/formats.md";
    }
}

int h5u_check_header(hid_t file, const char *path, const char *format, int max_version,
                     char *err, int errlen)
{
    const char *noun, *hint;
    format_words(format, &noun, &hint);
    char *got = h5u_read_attr_str(file, "format");
    if (!got) {
        if (H5Aexists(file, "format") > 0)
            util_seterr(err, errlen, "%s: not a %s (format attribute is not a string; %s)", path, noun,
                   hint);
        else
            util_seterr(err, errlen, "%s: not a %s (format attribute missing; %s)", path, noun, hint);
        return -1;
    }
    if (strcmp(got, format) != 0) {
        const char *gnoun, *ghint;
        format_words(got, &gnoun, &ghint);
        util_seterr(err, errlen, "%s: format attribute is '%s' (a %s), expected '%s' (a %s)", path, got,
               gnoun, format, noun);
        free(got);
        return -1;
    }
    free(got);
    int64_t v;
    if (h5u_read_attr_i64(file, "version", &v) != 0) {
        util_seterr(err, errlen, "%s: version attribute missing or not an integer (a %s needs one)",
               path, noun);
        return -1;
    }
    if (v > max_version) {
        util_seterr(err, errlen,
               "%s: version attribute is %lld but this prefer (%s) reads %s version <= %d "
               "(upgrade prefer)",
               path, (long long)v, PREFER_VERSION, format, max_version);
        return -1;
    }
    if (v < 1) {
        util_seterr(err, errlen, "%s: version attribute is %lld, expected 1..%d", path, (long long)v,
               max_version);
        return -1;
    }
    return 0;
}

/* ---- datasets ---------------------------------------------------------------------- */

void h5u_write_array(hid_t file, const char *path, hid_t type, int ndim, const hsize_t *dims,
                     const void *data)
{
    if (ndim < 1 || ndim > 4)
        die("h5u_write_array %s: rank %d not supported", path, ndim);
    hsize_t numel = 1;
    for (int i = 0; i < ndim; i++)
        numel *= dims[i];
    if (numel > 0 && !data)
        die("h5u_write_array %s: %llu elements but no data", path, (unsigned long long)numel);

    hid_t sp = CHECK_W(file, path, H5Screate_simple(ndim, dims, NULL));
    hid_t lcpl = CHECK_W(file, path, H5Pcreate(H5P_LINK_CREATE));
    CHECK_W(file, path, H5Pset_create_intermediate_group(lcpl, 1));
    hid_t dcpl = CHECK_W(file, path, H5Pcreate(H5P_DATASET_CREATE));
    /* Integers (token ids, offsets, indices) compress well; floats (weights, moments,
     * log-probs) by a few percent only, while deflating them made a GPT-2 124M checkpoint
     * take ~27 s to write: those stay contiguous. */
    if (numel >= H5U_CHUNK_MIN && H5Tget_class(type) == H5T_INTEGER) {
        /* Chunks of whole trailing rows, about H5U_CHUNK_ELEMS elements each. */
        hsize_t chunk[4], row = 1;
        for (int i = 1; i < ndim; i++) {
            chunk[i] = dims[i];
            row *= dims[i];
        }
        hsize_t rows = row >= H5U_CHUNK_ELEMS ? 1 : H5U_CHUNK_ELEMS / row;
        chunk[0] = rows < dims[0] ? rows : dims[0];
        CHECK_W(file, path, H5Pset_chunk(dcpl, ndim, chunk));
        if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
            CHECK_W(file, path, H5Pset_shuffle(dcpl));
            CHECK_W(file, path, H5Pset_deflate(dcpl, 4));
        }
    }
    hid_t ds = CHECK_W(file, path, H5Dcreate2(file, path, type, sp, lcpl, dcpl, H5P_DEFAULT));
    if (numel > 0)
        CHECK_W(file, path, H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    CHECK_W(file, path, H5Dclose(ds));
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(sp);
}

void *h5u_read_array(hid_t file, const char *path, hid_t memtype, int want_ndim, hsize_t *dims_out,
                     int64_t *n, char *err, int errlen)
{
    if (want_ndim < 1 || want_ndim > 4)
        die("h5u_read_array %s: rank %d not supported", path, want_ndim);
    *n = 0;
    char *fname = file_name(file);
    const char *sl = slash(path);
    hid_t ds = -1, ft = -1, sp = -1;
    void *buf = NULL;

    if (!path_exists(file, path)) {
        util_seterr(err, errlen, "%s: missing %s%s", fname, sl, path);
        goto fail;
    }
    ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0) {
        util_seterr(err, errlen, "%s: %s%s is not a dataset", fname, sl, path);
        goto fail;
    }
    ft = H5Dget_type(ds);
    H5T_class_t want = H5Tget_class(memtype);
    H5T_class_t got = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    if (got != want) {
        util_seterr(err, errlen, "%s: %s%s holds %s values, expected %s", fname, sl, path,
               class_name(got), class_name(want));
        goto fail;
    }
    sp = H5Dget_space(ds);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (nd < 0) {
        util_seterr(err, errlen, "%s: cannot read the shape of %s%s (corrupt file?)", fname, sl, path);
        goto fail;
    }
    if (nd != want_ndim) {
        util_seterr(err, errlen, "%s: %s%s has rank %d, expected %d", fname, sl, path, nd, want_ndim);
        goto fail;
    }
    hsize_t dims[4];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    size_t esize = H5Tget_size(memtype);
    size_t total = 1;
    for (int i = 0; i < nd; i++) {
        if (dims[i] != 0 && total > H5U_MAX_READ_BYTES / esize / dims[i]) {
            util_seterr(err, errlen, "%s: %s%s claims an absurd size (corrupt file?)", fname, sl, path);
            goto fail;
        }
        total *= (size_t)dims[i];
    }
    buf = malloc(total ? total * esize : 1);
    if (!buf) {
        util_seterr(err, errlen, "%s: out of memory reading %s%s (%zu bytes)", fname, sl, path,
               total * esize);
        goto fail;
    }
    if (total > 0 && H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        util_seterr(err, errlen, "%s: cannot read %s%s (corrupt file or unsupported filter?)", fname,
               sl, path);
        goto fail;
    }
    if (dims_out)
        for (int i = 0; i < nd; i++)
            dims_out[i] = dims[i];
    *n = (int64_t)total;
    H5Sclose(sp);
    H5Tclose(ft);
    H5Dclose(ds);
    free(fname);
    return buf;

fail:
    free(buf);
    if (sp >= 0)
        H5Sclose(sp);
    if (ft >= 0)
        H5Tclose(ft);
    if (ds >= 0)
        H5Dclose(ds);
    free(fname);
    return NULL;
}

/* ---- atomic replacement -------------------------------------------------------------- */

char *h5u_tmp_name(const char *path) { return xasprintf("%s.tmp", path); }

hid_t h5u_create_tmp(const char *path, const char *what, const char *format, int version, const char *config_text,
                     char **tmp)
{
    h5u_init();
    *tmp = h5u_tmp_name(path);
    hid_t f = H5Fcreate(*tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        die_user("%s: cannot create %s (directory missing or not writable?)", what, *tmp);
    h5u_write_header(f, format, version, config_text);
    return f;
}

void h5u_commit(const char *tmp, const char *path)
{
    int fd = open(tmp, O_RDONLY);
    if (fd < 0)
        die("cannot open %s to sync it: %s", tmp, strerror(errno));
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        die("fsync %s: %s (disk full or I/O error?)", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0)
        die("cannot rename %s to %s: %s", tmp, path, strerror(errno));

    /* Make the rename itself durable: fsync the directory entry. Some file systems
     * cannot sync a directory (EINVAL); the data is in place either way. */
    char *dir = xstrdup(path);
    char *s = strrchr(dir, '/');
    if (!s)
        strcpy(dir, ".");
    else if (s == dir)
        dir[1] = 0;
    else
        *s = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) {
        warn("cannot open directory %s to sync it: %s", dir, strerror(errno));
    } else {
        if (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)
            warn("fsync of directory %s: %s", dir, strerror(errno));
        close(dfd);
    }
    free(dir);
}

int h5u_is_hdf5(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    h5u_init();
    return H5Fis_hdf5(path) > 0;
}

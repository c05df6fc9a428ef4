/* h5util.h: shared HDF5 helpers: checked calls, attributes, 1-D datasets, file checks.
 *
 * CHECK_H5(call) dies naming the call when it returns a negative value. HDF5's own error
 * stack printing is switched off by h5u_init(); our messages name the file and object.
 */
#ifndef PREFER_H5UTIL_H
#define PREFER_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "prefer/util.h"

#ifndef PREFER_VERSION
#define PREFER_VERSION "0.1.0"
#endif

#define CHECK_H5(call)                                                    \
    ({                                                                    \
        __typeof__(call) r_ = (call);                                     \
        if (r_ < 0)                                                       \
            die("HDF5 call failed: %s", #call);                           \
        r_;                                                               \
    })

/* Silence HDF5's automatic error printing (once per process). */
void h5u_init(void);

/* Root attributes every prefer file carries. */
void h5u_write_header(hid_t file, const char *format, int version, const char *config_text);
/* Check format and version attributes; returns 0 or -1 with a message naming path. */
int h5u_check_header(hid_t file, const char *path, const char *format, int max_version,
                     char *err, int errlen);

void h5u_attr_str(hid_t obj, const char *name, const char *value);
void h5u_attr_i64(hid_t obj, const char *name, int64_t value);
void h5u_attr_f64(hid_t obj, const char *name, double value);
/* Read a string attribute into a fresh string (caller frees); NULL if absent/wrong type. */
char *h5u_read_attr_str(hid_t obj, const char *name);
/* Read an integer attribute; returns 0 or -1 if absent/not integer. */
int h5u_read_attr_i64(hid_t obj, const char *name, int64_t *out);
int h5u_read_attr_f64(hid_t obj, const char *name, double *out);

/* Create a 1-D (or N-D with dims) dataset at path (intermediate groups created) and write
 * data: integer datasets chunked, shuffled and deflate-compressed when large enough, float
 * ones contiguous. type: H5T_NATIVE_FLOAT etc. */
void h5u_write_array(hid_t file, const char *path, hid_t type, int ndim, const hsize_t *dims,
                     const void *data);
/* Read a whole dataset at path; checks it has the expected class (H5T_INTEGER/H5T_FLOAT)
 * and rank 1 (or ndim); returns a malloc'd buffer converted to memtype and its element
 * count in *n (dims in dims_out if non-NULL, up to 4). NULL + err message if missing/bad. */
void *h5u_read_array(hid_t file, const char *path, hid_t memtype, int want_ndim, hsize_t *dims_out,
                     int64_t *n, char *err, int errlen);

/* Write into path.tmp, then h5u_commit renames it to path after fsync. */
char *h5u_tmp_name(const char *path);
/* Create path.tmp (a leftover one is truncated) with the root header (h5u_write_header), to
 * be filled, closed and h5u_commit-ed to path: *tmp gets its name (caller frees). Dies
 * naming `what` (e.g. "checkpoint") and the file if it cannot be created. */
hid_t h5u_create_tmp(const char *path, const char *what, const char *format, int version, const char *config_text,
                     char **tmp);
void h5u_commit(const char *tmp, const char *path);

/* 1 if the file exists and is HDF5. */
int h5u_is_hdf5(const char *path);

#endif

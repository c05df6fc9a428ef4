/* runlog.h: the run log, an HDF5 file of training metrics (format "prefer.runlog",
 * docs/formats.md). Written by rank 0 alone, with the default sec2 driver (no MPI-IO).
 *
 *   /<table>/<column>       float64[rows], extendible, chunked 1024 rows, fill value NaN;
 *                           one dataset per metric; every column of a table has the same
 *                           length. "rewards/chosen" is the dataset /steps/rewards/chosen.
 *   /resumes/...            one row per resume (time, step, rows/<table>)
 *   /<anything else>        whole datasets from runlog_array (eval results, per-epoch PVar)
 *   root attributes: format, version, producer, created, config, and whatever the trainer
 *                    sets (commit, world_size, hosts, start and end time, ...)
 *
 * Rows are buffered in memory and written every flush_every rows (counted over all tables),
 * by runlog_flush and by runlog_close; each write ends with H5Fflush. The HDF5 file on disk changes only inside
 * those calls, so between them it is complete and consistent: a crash loses at most the
 * buffered rows.
 *
 * Reading while training runs: the writer keeps the file open between flushes WITHOUT
 * HDF5's file lock (H5Pset_file_locking off). Measured with HDF5 1.10.8 and h5py 3.7: a
 * locking writer makes every default reader (h5py.File(path, "r"), h5dump, prefer info)
 * fail with "unable to lock file, errno = 11" until it exits; without the lock they all
 * read the rows flushed so far. SWMR was rejected: it needs libver "latest" (not readable
 * by HDF5 1.8), all datasets created before SWMR starts (our columns appear on first use),
 * a reader without swmr=True is refused ("file is already open for write"), and a writer
 * killed mid-run leaves the file unreadable until `h5clear -s`. A reader sees the file as
 * of the moment it opened it: reopen to see newer rows. Nothing stops two processes from
 * writing one run log at once; the trainer must not be started twice on one out_dir.
 */
#ifndef PREFER_RUNLOG_H
#define PREFER_RUNLOG_H

#include <hdf5.h>
#include <stdint.h>

#define RUNLOG_FORMAT "prefer.runlog"
#define RUNLOG_VERSION 1
/* Rows per chunk of every column dataset. */
#define RUNLOG_CHUNK_ROWS 1024

typedef struct RunLog RunLog;

/* Create the run log at path with the common root attributes (config_text may be NULL)
 * and return it (caller closes with runlog_close). flush_every < 1 means 1.
 *   - path absent: create it (resume or not).
 *   - path exists, resume = 0: die_user; a run log is never truncated or overwritten.
 *   - path exists, resume = 1: it must be a prefer run log (else die_user naming the file
 *     and what it is); it is reopened for appending and a resume event is recorded: one
 *     row of /resumes, written with the first "steps" row appended (or at close).
 * Any I/O failure dies naming the file. */
RunLog *runlog_open(const char *path, const char *config_text, int resume, int flush_every);
/* resume = RUNLOG_APPEND: append to an existing run log without recording a resume (for
 * other writers, e.g. prefer eval adding a row to the "eval" table after training). */
#define RUNLOG_APPEND 2

/* Root attributes, written at once (replacing one of the same name) and flushed. */
void runlog_attr_str(RunLog *rl, const char *name, const char *value);
void runlog_attr_i64(RunLog *rl, const char *name, int64_t value);
void runlog_attr_f64(RunLog *rl, const char *name, double value);

/* Append one row to table (created on first use; a plain name, no '/'): values[i] is
 * the value of column names[i] (i < n). Column names may contain '/' (intermediate
 * groups); each component non-empty and not "." or "..". A column first seen now is
 * NaN for every earlier row; a known column absent from this row gets NaN. Repeating a
 * name within a row, or a name that is a group of another column ("a" and "a/b"), dies.
 * Copies the values; may write (every flush_every rows). */
void runlog_row(RunLog *rl, const char *table, int n, const char *const *names,
                const double *values);

/* Write a whole dataset at path ("curriculum/epoch_3/pvar"; intermediate groups made),
 * replacing any existing object at that path, then flush. type is the HDF5 type of data in
 * memory and in the file (H5T_NATIVE_FLOAT, H5T_NATIVE_INT64, ...); dims has ndim (1..4)
 * entries. path may not lie inside a table. */
void runlog_array(RunLog *rl, const char *path, hid_t type, int ndim, const hsize_t *dims,
                  const void *data);

/* Write the buffered rows of every table and H5Fflush. NULL is harmless. */
void runlog_flush(RunLog *rl);

/* Flush, record a pending resume event, close every handle and free rl. NULL is harmless. */
void runlog_close(RunLog *rl);

/* Rows of table so far (written + buffered); 0 for an unknown table. */
int64_t runlog_rows(const RunLog *rl, const char *table);

/* `prefer info` for a run log already opened read-only as f: header, root attributes,
 * every table with its columns and row count, the last row of "steps", other objects.
 * Prints with say(). Returns 0, or 1 (PREFER_EXIT_ERROR) after printing to stderr why the
 * file is not a valid run log. */
int runlog_info(const char *path, hid_t f);

#endif

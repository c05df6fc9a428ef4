/* dist.h: the MPI wrapper. The only module that includes mpi.h.
 *
 * Everything above it gets a rank, a size and these calls. Every MPI call is checked and
 * a failure ends the job through die(), naming the rank. Reductions are split into chunks
 * of at most DIST_MAX_CHUNK_BYTES: on Open MPI 4.1 one MPI_Allreduce of 32 MB or more is
 * ~20x slower than the same data in 16 MB pieces (shared/PLATFORM.md).
 */
#ifndef PREFER_DIST_H
#define PREFER_DIST_H

#include <stddef.h>
#include <stdint.h>

#define DIST_MAX_CHUNK_BYTES (16u << 20)

/* Initialise MPI (works with no launcher: one rank) and install die()'s abort hook. */
void dist_init(int *argc, char ***argv);
/* Finalise MPI if it was initialised. Harmless twice. */
void dist_finalize(void);
int dist_rank(void);
int dist_size(void);
/* Ranks on this node (for choosing threads per rank). */
int dist_local_size(void);
void dist_barrier(void);
/* In-place sums over all ranks. */
void dist_allreduce_sum_f32(float *buf, size_t n);
void dist_allreduce_sum_f64(double *buf, size_t n);
void dist_allreduce_sum_i64(int64_t *buf, size_t n);
/* In-place max / min over all ranks. */
void dist_allreduce_max_f64(double *buf, size_t n);
void dist_allreduce_min_i64(int64_t *buf, size_t n);
/* Broadcast bytes from root. */
void dist_bcast(void *buf, size_t bytes, int root);
/* Gather each rank's n elements to rank 0, concatenated in rank order (counts may differ,
 * may be 0). Collective. Rank 0 gets a fresh array (caller frees; never NULL) and the total
 * in *total; the other ranks get NULL and *total = 0. Sent in rounds of at most
 * DIST_MAX_CHUNK_BYTES over all ranks. At one rank (or without dist_init): a copy. */
int32_t *dist_gatherv_i32(const int32_t *buf, size_t n, size_t *total);
int64_t *dist_gatherv_i64(const int64_t *buf, size_t n, size_t *total);
float *dist_gatherv_f32(const float *buf, size_t n, size_t *total);

/* Bucketed, overlapped gradient allreduce (in-place float sum over all ranks).
 *
 * The buffer is cut into nb buckets [bounds[i], bounds[i+1]) (bounds[0] = 0 <= ... <=
 * bounds[nb] = n), each at most DIST_MAX_CHUNK_BYTES, identical on every rank. During
 * backward the caller reports runs of final gradients with dist_reducer_ready (in any
 * order, any run sizes, each element at most once per step); a bucket's MPI_Iallreduce
 * starts once it is wholly final. Buckets start in one fixed order on every rank -
 * decreasing index, the order backward finishes them - and a bucket never starts before
 * every higher-indexed one has, so the collectives match across ranks whatever the
 * readiness. dist_reducer_ready also tests the requests in flight, which is what drives
 * Open MPI's nonblocking collectives (no progress thread): progress happens only inside
 * MPI calls. dist_reducer_finish starts whatever is left, waits, and rearms for the next
 * step. The buffer must not be written between a bucket's readiness and finish. MPI
 * matches collectives by the order they are called in: between a step's first
 * dist_reducer_ready and dist_reducer_finish, other collectives on the world (dist_*) are
 * allowed only at the same point of the sequence of ready calls on every rank (backward's
 * callbacks are such a sequence; a rank-dependent one is not).
 * At one rank every call is a no-op apart from argument checks. */
typedef struct DistReducer DistReducer;

/* New reducer over buf[0..n) (not owned; must outlive the reducer). bounds has nb + 1
 * entries and is copied. Dies on bad bounds or a bucket > DIST_MAX_CHUNK_BYTES. Free with
 * dist_reducer_free. Not collective, but every rank must pass the same n and bounds. */
DistReducer *dist_reducer_new(float *buf, size_t n, const size_t *bounds, int nb);
/* buf[off, off+count) is final for this step. Starts every bucket now startable in the
 * fixed order, then tests the requests in flight. Dies if a bucket is readied beyond its
 * size (the same gradients reported twice in one step). count = 0 only tests: a caller
 * with long stretches between readiness reports may call it to drive progress. */
void dist_reducer_ready(DistReducer *r, size_t off, size_t count);
/* Start the buckets not yet started (readied or not), wait for all; afterwards buf holds
 * the sums. Collective. Returns the seconds spent in here (blocked). */
double dist_reducer_finish(DistReducer *r);
/* Totals since creation: steps finished, bytes reduced, seconds blocked in finish and spent
 * in ready, buckets started and completed early. */
typedef struct {
    int64_t steps;
    double bytes;
    double blocked_s;
    double ready_s;          /* seconds inside dist_reducer_ready: starting and driving the
                              * reductions, work that a single core per rank does in backward's time */
    int64_t started_early;   /* buckets started by dist_reducer_ready (not by finish) */
    int64_t completed_early; /* buckets already reduced when finish was called (0 at one rank) */
} DistReducerStats;
void dist_reducer_stats(const DistReducer *r, DistReducerStats *st);
void dist_reducer_free(DistReducer *r); /* NULL harmless */

/* Abort the whole job with a code (die() uses this). */
void dist_abort(int code);
/* Host name of this rank (static storage). */
const char *dist_hostname(void);

#endif

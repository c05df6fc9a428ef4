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
/* Abort the whole job with a code (die() uses this). */
void dist_abort(int code);
/* Host name of this rank (static storage). */
const char *dist_hostname(void);

#endif

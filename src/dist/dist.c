/* dist.c: MPI wrapper: init, checked collectives in <= 16 MB pieces, abort.
 *
 * All MPI in prefer goes through here. A rank that fails calls MPI_Abort on
 * MPI_COMM_WORLD, which takes every other rank down with it: no rank is left blocked in
 * a collective. */
#define _GNU_SOURCE
#include "prefer/dist.h"
#include "prefer/util.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_inited = 0;
static int g_rank = 0, g_size = 1, g_local = 1;
static char g_host[MPI_MAX_PROCESSOR_NAME + 1] = "localhost";

#define CHECK_MPI(call)                                                                   \
    do {                                                                                  \
        int rc_ = (call);                                                                 \
        if (rc_ != MPI_SUCCESS) {                                                         \
            char es_[MPI_MAX_ERROR_STRING];                                               \
            int el_ = 0;                                                                  \
            MPI_Error_string(rc_, es_, &el_);                                             \
            die("%s failed: %s", #call, es_);                                             \
        }                                                                                 \
    } while (0)

void dist_abort(int code)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (g_inited && !fin)
        MPI_Abort(MPI_COMM_WORLD, code);
    _exit(code);
}

static void abort_hook(int code) { dist_abort(code); }

void dist_init(int *argc, char ***argv)
{
    if (g_inited)
        return;
    /* Open MPI's libnbc runs an in-place MPI_Iallreduce on fewer than 4 ranks as a binomial
     * reduce-then-broadcast, in which one rank works while the other waits: measured here
     * (2 ranks, the bench model's 7 buckets, 81 MB, best of 40) 31-36 ms, against 20-24 ms
     * for Rabenseifner's reduce-scatter + allgather and 19-21 ms for the blocking
     * MPI_Allreduce. Ask for Rabenseifner unless the user chose (for a bucket of fewer
     * elements than ranks it falls back to ring; both give every rank the same bits, and
     * tests/test_mpi_reducer.c checks both at 2, 3 ranks). Read by MPI_Init; other MPIs
     * ignore it. */
    setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "prefer: MPI_Init failed (under Slurm use srun --mpi=pmix)\n");
        _exit(PREFER_EXIT_ERROR);
    }
    g_inited = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank));
    CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &g_size));
    util_set_rank(g_rank, g_size, abort_hook);
    int len = 0;
    CHECK_MPI(MPI_Get_processor_name(g_host, &len));
    g_host[len] = 0;
    MPI_Comm node;
    CHECK_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &node));
    CHECK_MPI(MPI_Comm_size(node, &g_local));
    MPI_Comm_free(&node);
}

void dist_finalize(void)
{
    int fin = 0;
    if (!g_inited)
        return;
    MPI_Finalized(&fin);
    if (!fin)
        MPI_Finalize();
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_size(void) { return g_local; }
const char *dist_hostname(void) { return g_host; }

void dist_barrier(void)
{
    if (g_size > 1)
        CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
}

static void allreduce_chunked(void *buf, size_t n, size_t esize, MPI_Datatype t, MPI_Op op)
{
    if (g_size == 1 || n == 0)
        return;
    size_t per = DIST_MAX_CHUNK_BYTES / esize;
    char *p = buf;
    for (size_t off = 0; off < n; off += per) {
        size_t cnt = n - off < per ? n - off : per;
        CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, p + off * esize, (int)cnt, t, op, MPI_COMM_WORLD));
    }
}

void dist_allreduce_sum_f32(float *buf, size_t n) { allreduce_chunked(buf, n, 4, MPI_FLOAT, MPI_SUM); }
void dist_allreduce_sum_f64(double *buf, size_t n) { allreduce_chunked(buf, n, 8, MPI_DOUBLE, MPI_SUM); }
void dist_allreduce_sum_i64(int64_t *buf, size_t n) { allreduce_chunked(buf, n, 8, MPI_INT64_T, MPI_SUM); }
void dist_allreduce_max_f64(double *buf, size_t n) { allreduce_chunked(buf, n, 8, MPI_DOUBLE, MPI_MAX); }
void dist_allreduce_min_i64(int64_t *buf, size_t n) { allreduce_chunked(buf, n, 8, MPI_INT64_T, MPI_MIN); }

void dist_bcast(void *buf, size_t bytes, int root)
{
    if (g_size == 1 || bytes == 0)
        return;
    char *p = buf;
    for (size_t off = 0; off < bytes; off += DIST_MAX_CHUNK_BYTES) {
        size_t cnt = bytes - off < DIST_MAX_CHUNK_BYTES ? bytes - off : DIST_MAX_CHUNK_BYTES;
        CHECK_MPI(MPI_Bcast(p + off, (int)cnt, MPI_BYTE, root, MPI_COMM_WORLD));
    }
}

/* Variable-length gather to rank 0 in rounds: in round j every rank sends elements
 * [j*per, (j+1)*per) of its own (fewer or none near its end), with per chosen so that a
 * round's total stays within DIST_MAX_CHUNK_BYTES; rank 0 copies each round into place. */
static void *gatherv_chunked(const void *buf, size_t n, size_t esize, MPI_Datatype t, size_t *total)
{
    *total = 0;
    if (g_size == 1) {
        void *out = xmalloc(n * esize);
        if (n)
            memcpy(out, buf, n * esize);
        *total = n;
        return out;
    }
    int64_t mine = (int64_t)n;
    int64_t *cnt = xmalloc(sizeof(int64_t) * (size_t)g_size);
    CHECK_MPI(MPI_Allgather(&mine, 1, MPI_INT64_T, cnt, 1, MPI_INT64_T, MPI_COMM_WORLD));
    size_t per = DIST_MAX_CHUNK_BYTES / esize / (size_t)g_size;
    per = per ? per : 1;
    size_t rounds = 0, sum = 0;
    for (int r = 0; r < g_size; r++) {
        size_t nr = (size_t)cnt[r], need = (nr + per - 1) / per;
        rounds = need > rounds ? need : rounds;
        sum += nr;
    }
    char *out = NULL, *stage = NULL;
    int *rc = NULL, *displ = NULL;
    if (g_rank == 0) {
        out = xmalloc(sum * esize);
        stage = xmalloc(per * (size_t)g_size * esize);
        rc = xmalloc(sizeof(int) * (size_t)g_size);
        displ = xmalloc(sizeof(int) * (size_t)g_size);
    }
    for (size_t j = 0; j < rounds; j++) {
        size_t lo = j * per;
        int send = n > lo ? (int)(n - lo < per ? n - lo : per) : 0;
        if (g_rank == 0)
            for (int r = 0; r < g_size; r++) {
                size_t nr = (size_t)cnt[r];
                rc[r] = nr > lo ? (int)(nr - lo < per ? nr - lo : per) : 0;
                displ[r] = (int)((size_t)r * per);
            }
        CHECK_MPI(MPI_Gatherv(send ? (const char *)buf + lo * esize : NULL, send, t, stage, rc, displ, t, 0,
                              MPI_COMM_WORLD));
        if (g_rank == 0) {
            size_t at = 0;
            for (int r = 0; r < g_size; r++) {
                if (rc[r])
                    memcpy(out + (at + lo) * esize, stage + (size_t)displ[r] * esize, (size_t)rc[r] * esize);
                at += (size_t)cnt[r];
            }
        }
    }
    free(cnt);
    free(stage);
    free(rc);
    free(displ);
    if (g_rank == 0)
        *total = sum;
    return out;
}

int32_t *dist_gatherv_i32(const int32_t *buf, size_t n, size_t *total)
{
    return gatherv_chunked(buf, n, sizeof(int32_t), MPI_INT32_T, total);
}
int64_t *dist_gatherv_i64(const int64_t *buf, size_t n, size_t *total)
{
    return gatherv_chunked(buf, n, sizeof(int64_t), MPI_INT64_T, total);
}
float *dist_gatherv_f32(const float *buf, size_t n, size_t *total)
{
    return gatherv_chunked(buf, n, sizeof(float), MPI_FLOAT, total);
}

/* ---------------- bucketed, overlapped allreduce ---------------- */

struct DistReducer {
    float *buf;
    size_t n;
    int nb;
    size_t *bounds;   /* [nb + 1] */
    size_t *ready;    /* [nb] elements of each bucket readied this step */
    MPI_Request *req; /* [nb]; MPI_REQUEST_NULL once complete */
    int *idx;         /* [nb] MPI_Testsome's scratch */
    int next;         /* the next bucket to start: nb - 1 down to -1 (all started) */
    int mpi;          /* world > 1: make MPI calls */
    DistReducerStats st;
};

DistReducer *dist_reducer_new(float *buf, size_t n, const size_t *bounds, int nb)
{
    if (nb < 1 || !bounds)
        die("dist_reducer_new: %d buckets (need at least one)", nb);
    if (bounds[0] != 0 || bounds[nb] != n)
        die("dist_reducer_new: bounds run from %zu to %zu, not 0 to n = %zu", bounds[0], bounds[nb], n);
    if (n && !buf)
        die("dist_reducer_new: NULL buffer of %zu floats", n);
    for (int i = 0; i < nb; i++) {
        if (bounds[i + 1] < bounds[i])
            die("dist_reducer_new: bounds[%d] = %zu > bounds[%d] = %zu (bounds must not decrease)", i, bounds[i],
                i + 1, bounds[i + 1]);
        size_t bytes = (bounds[i + 1] - bounds[i]) * sizeof(float);
        if (bytes > DIST_MAX_CHUNK_BYTES)
            die("dist_reducer_new: bucket %d is %zu bytes, more than DIST_MAX_CHUNK_BYTES = %u (one reduction of "
                "32 MB or more is ~20x slower on Open MPI 4.1: split it)",
                i, bytes, (unsigned)DIST_MAX_CHUNK_BYTES);
    }
    DistReducer *r = xcalloc(1, sizeof *r);
    r->buf = buf;
    r->n = n;
    r->nb = nb;
    r->bounds = xmalloc(sizeof(size_t) * (size_t)(nb + 1));
    memcpy(r->bounds, bounds, sizeof(size_t) * (size_t)(nb + 1));
    r->ready = xcalloc((size_t)nb, sizeof(size_t));
    r->req = xmalloc(sizeof(MPI_Request) * (size_t)nb);
    r->idx = xmalloc(sizeof(int) * (size_t)nb);
    for (int i = 0; i < nb; i++)
        r->req[i] = MPI_REQUEST_NULL;
    r->next = nb - 1;
    r->mpi = g_size > 1;
    return r;
}

void dist_reducer_free(DistReducer *r)
{
    if (!r)
        return;
    if (r->mpi)
        for (int i = 0; i < r->nb; i++)
            if (r->req[i] != MPI_REQUEST_NULL)
                die("dist_reducer_free: a reduction is still in flight (call dist_reducer_finish first)");
    free(r->bounds);
    free(r->ready);
    free(r->req);
    free(r->idx);
    free(r);
}

static void reducer_start(DistReducer *r, int i)
{
    size_t cnt = r->bounds[i + 1] - r->bounds[i];
    if (r->mpi && cnt)
        CHECK_MPI(MPI_Iallreduce(MPI_IN_PLACE, r->buf + r->bounds[i], (int)cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                                 &r->req[i]));
    r->st.bytes += (double)cnt * sizeof(float);
}

/* Drive the reductions in flight (buckets next+1 .. nb-1): Open MPI's nonblocking collectives
 * advance only inside MPI calls. MPI_Testsome (unlike a failed MPI_Testall) sets the
 * completed ones to MPI_REQUEST_NULL, which finish counts. */
static void reducer_test(DistReducer *r)
{
    int first = r->next + 1, nd = 0;
    if (r->mpi && first < r->nb)
        CHECK_MPI(MPI_Testsome(r->nb - first, r->req + first, &nd, r->idx, MPI_STATUSES_IGNORE));
}

void dist_reducer_ready(DistReducer *r, size_t off, size_t count)
{
    double t0 = r->mpi ? now_s() : 0;
    if (off > r->n || count > r->n - off)
        die("dist_reducer_ready: [%zu, %zu) is outside the buffer of %zu floats", off, off + count, r->n);
    size_t end = off + count;
    if (count) {
        /* the last bucket starting at or before off (empty buckets skipped by the overlap test) */
        int lo = 0, hi = r->nb - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (r->bounds[mid] <= off)
                lo = mid;
            else
                hi = mid - 1;
        }
        for (int i = lo; i < r->nb && r->bounds[i] < end; i++) {
            size_t a = off > r->bounds[i] ? off : r->bounds[i];
            size_t b = end < r->bounds[i + 1] ? end : r->bounds[i + 1];
            if (b <= a)
                continue;
            r->ready[i] += b - a;
            if (r->ready[i] > r->bounds[i + 1] - r->bounds[i] || i > r->next)
                die("dist_reducer_ready: bucket %d [%zu, %zu) readied twice in one step (report each gradient "
                    "once per step: on the last micro-step only)",
                    i, r->bounds[i], r->bounds[i + 1]);
        }
    }
    while (r->next >= 0 && r->ready[r->next] == r->bounds[r->next + 1] - r->bounds[r->next]) {
        reducer_start(r, r->next);
        r->st.started_early++;
        r->next--;
    }
    reducer_test(r);
    if (r->mpi)
        r->st.ready_s += now_s() - t0;
}

double dist_reducer_finish(DistReducer *r)
{
    double t0 = now_s();
    if (r->mpi)
        for (int i = r->next + 1; i < r->nb; i++)
            r->st.completed_early += r->req[i] == MPI_REQUEST_NULL;
    for (; r->next >= 0; r->next--)
        reducer_start(r, r->next);
    if (r->mpi)
        CHECK_MPI(MPI_Waitall(r->nb, r->req, MPI_STATUSES_IGNORE));
    memset(r->ready, 0, sizeof(size_t) * (size_t)r->nb);
    r->next = r->nb - 1;
    double dt = now_s() - t0;
    r->st.steps++;
    r->st.blocked_s += dt;
    return dt;
}

void dist_reducer_stats(const DistReducer *r, DistReducerStats *st) { *st = r->st; }

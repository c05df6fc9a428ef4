/* test_mpi_reducer.c: the bucketed, overlapped gradient allreduce (DistReducer) against
 * the blocking dist_allreduce_sum_f32, at whatever world size it is started with.
 *
 * Alone it runs at one rank without MPI (the reducer must leave the buffer as it is); the
 * CLI test tests/cli/test_reducer.sh runs it under mpirun -np 2 and -np 3. Every rank checks its
 * own results; the failure counts are summed over ranks before rank 0 reports, and every
 * rank exits non-zero if any rank failed. Exact equality at 2 ranks (a float sum of two
 * values does not depend on the order), 1e-6 of the sum of magnitudes at 3 and more; the
 * same bits on every rank always (replicas must not drift apart).
 *
 * With an argument it instead exercises one refusal, which must end the job (exit != 0):
 *   --oversize  a bucket of DIST_MAX_CHUNK_BYTES + 4 bytes
 *   --twice     the same gradients readied twice in one step
 */
#include "prefer/dist.h"
#include "prefer/gpt.h"
#include "prefer/rng.h"
#include "prefer/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_checks, g_fails;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        g_checks++;                                                                       \
        if (!(cond)) {                                                                    \
            if (g_fails++ < 20) {                                                         \
                fprintf(stderr, "FAIL [rank %d] %s:%d: ", dist_rank(), __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);                                             \
                fputc('\n', stderr);                                                      \
            }                                                                             \
        }                                                                                 \
    } while (0)

/* got == want exactly at <= 2 ranks; within 1e-6 * sum of |contributions| beyond. */
static void compare(const char *what, const float *got, const float *want, const float *absum, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        int ok = dist_size() <= 2 ? got[i] == want[i] : fabsf(got[i] - want[i]) <= 1e-6f * absum[i] + 1e-30f;
        if (!ok && bad++ == 0)
            first = i;
    }
    CHECK(bad == 0, "%s: %zu of %zu values differ from MPI_Allreduce's sum, first at %zu: %.9g vs %.9g", what, bad,
          n, first, bad ? got[first] : 0.0f, bad ? want[first] : 0.0f);
    /* replicas must stay bit-identical: the same sums on every rank (min = max of a hash) */
    int64_t h = (int64_t)(util_hash(UTIL_HASH_INIT, got, sizeof(float) * n) >> 1), mm[2] = {h, INT64_MAX - h};
    dist_allreduce_min_i64(mm, 2);
    CHECK(mm[0] == INT64_MAX - mm[1], "%s: the sums differ between ranks", what);
}

/* Reference sums (and sums of magnitudes) of x through the blocking allreduce. */
static void reference(const float *x, float *ref, float *absum, size_t n)
{
    memcpy(ref, x, sizeof(float) * n);
    dist_allreduce_sum_f32(ref, n);
    for (size_t i = 0; i < n; i++)
        absum[i] = fabsf(x[i]);
    dist_allreduce_sum_f32(absum, n);
}

/* Ready buf[from, n) from the top down in random-sized runs (different on every rank, so
 * buckets become final at different moments on different ranks), with progress-only calls
 * sprinkled in. */
static void ready_downward(DistReducer *r, size_t from, size_t n, size_t max_run, Rng *rng)
{
    size_t hi = n;
    while (hi > from) {
        size_t len = 1 + (size_t)rng_below(rng, (uint64_t)max_run);
        len = len > hi - from ? hi - from : len;
        dist_reducer_ready(r, hi - len, len);
        hi -= len;
        if (rng_below(rng, 4) == 0)
            dist_reducer_ready(r, 0, 0);
    }
}

/* Random buckets of 0 .. max_floats floats (one exactly max_floats, one empty) over n. */
static int random_bounds(size_t *bounds, int cap, size_t n, size_t max_floats, Rng *rng)
{
    int nb = 0;
    bounds[0] = 0;
    size_t at = 0;
    while (at < n) {
        if (nb + 1 >= cap)
            die("random_bounds: more than %d buckets", cap);
        size_t len;
        if (nb == 1)
            len = max_floats;
        else if (nb == 2)
            len = 0;
        else
            len = 1 + (size_t)rng_below(rng, (uint64_t)max_floats);
        len = len > n - at ? n - at : len;
        at += len;
        bounds[++nb] = at;
    }
    return nb;
}

/* Several steps on one random bucket layout: full readiness, partial readiness (finish
 * starts the rest), none at all. */
static void test_random(size_t n, size_t max_floats, size_t max_run, uint64_t seed)
{
    int world = dist_size(), rank = dist_rank();
    Rng shared, mine;
    rng_init(&shared, seed, 1); /* identical on every rank: the layout */
    rng_init(&mine, seed, 100 + (uint64_t)rank);
    int cap = (int)(n + 4 < 100000 ? n + 4 : 100000);
    size_t *bounds = xmalloc(sizeof(size_t) * (size_t)cap);
    int nb = random_bounds(bounds, cap, n, max_floats, &shared);
    float *x = xmalloc(sizeof(float) * n), *ref = xmalloc(sizeof(float) * n), *absum = xmalloc(sizeof(float) * n);
    DistReducer *r = dist_reducer_new(x, n, bounds, nb);
    const char *modes[] = {"all readied", "all readied", "lower half not readied", "nothing readied"};
    int nmodes = (int)(sizeof modes / sizeof modes[0]);
    int64_t early = 0;
    for (int step = 0; step < nmodes; step++) {
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(rng_uniform(&mine) * 2.0 - 1.0) * (float)(1 + rank);
        reference(x, ref, absum, n);
        /* a bucket straddling n/2 is readied only in part: finish must start it anyway */
        ready_downward(r, step < 2 ? 0 : step == 2 ? n / 2 : n, n, max_run, &mine);
        DistReducerStats st;
        dist_reducer_stats(r, &st);
        if (step < 2)
            CHECK(st.started_early - early == nb, "step %d (%s): %lld of %d buckets started before finish", step,
                  modes[step], (long long)(st.started_early - early), nb);
        early = st.started_early;
        double blocked = dist_reducer_finish(r);
        CHECK(blocked >= 0, "blocked time %g", blocked);
        char what[160];
        snprintf(what, sizeof what, "n=%zu nb=%d step %d (%s) at %d ranks", n, nb, step, modes[step], world);
        compare(what, x, ref, absum, n);
    }
    DistReducerStats st;
    dist_reducer_stats(r, &st);
    CHECK(st.steps == nmodes, "steps %lld", (long long)st.steps);
    CHECK(st.bytes == (double)n * sizeof(float) * nmodes, "bytes %.0f, want %.0f", st.bytes,
          (double)n * sizeof(float) * nmodes);
    CHECK(st.blocked_s >= 0, "blocked_s %g", st.blocked_s);
    dist_reducer_free(r);
    free(bounds);
    free(x);
    free(ref);
    free(absum);
}

/* Buckets of the ready runs of a small model. */
static void check_buckets(const Gpt *m, size_t max_bytes, const size_t *b, int nb)
{
    CHECK(gpt_grad_buckets(m, max_bytes, NULL, 0) == nb, "count without bounds differs");
    CHECK(b[0] == 0 && b[nb] == m->num_params, "bounds run %zu..%zu, want 0..%zu", b[0], b[nb], m->num_params);
    int L = m->d.n_layer;
    for (int i = 0; i < nb; i++)
        CHECK(b[i] < b[i + 1] && (b[i + 1] - b[i]) * sizeof(float) <= max_bytes, "bucket %d [%zu, %zu) max %zu", i,
              b[i], b[i + 1], max_bytes);
    /* every run boundary is a bucket boundary */
    for (int l = 0; l < L; l++) {
        size_t edge = m->layer_offset0 + (size_t)l * m->layer_stride;
        int found = 0;
        for (int i = 0; i <= nb; i++)
            found |= b[i] == edge;
        CHECK(found, "layer %d starts at %zu: not a bucket boundary (max_bytes %zu)", l, edge, max_bytes);
    }
    /* lnf shares the last layer's run: no boundary inside [layer L-1, end) at one piece */
    if (max_bytes >= (m->num_params - m->layer_offset0 - (size_t)(L - 1) * m->layer_stride) * sizeof(float))
        CHECK(b[nb - 1] == m->layer_offset0 + (size_t)(L - 1) * m->layer_stride,
              "the last bucket is not layer L-1 + lnf");
}

typedef struct {
    DistReducer *r;
    int calls;
} ReadyCtx;

static void on_ready(void *ctx, size_t off, size_t count)
{
    ReadyCtx *c = ctx;
    c->calls += count > 0; /* count 0: a progress call between a layer's products */
    dist_reducer_ready(c->r, off, count);
}

/* The reducer fed by gpt_backward's ready callback gives the blocking allreduce's sums. */
static void test_gpt(size_t max_bytes)
{
    GptDims d = {64, 16, 3, 2, 16};
    Gpt m;
    int B = 2, T = 16, N = B * T;
    gpt_init(&m, &d, B);
    gpt_init_weights(&m, 7, 0.1);
    int nb = gpt_grad_buckets(&m, max_bytes, NULL, 0);
    size_t *b = xmalloc(sizeof(size_t) * (size_t)(nb + 1));
    CHECK(gpt_grad_buckets(&m, max_bytes, b, nb) == nb, "bucket count");
    check_buckets(&m, max_bytes, b, nb);
    if (max_bytes >= DIST_MAX_CHUNK_BYTES)
        CHECK(nb == d.n_layer + 1, "%d buckets for %d layers at 16 MB", nb, d.n_layer);
    Rng rng;
    rng_init(&rng, 9, (uint64_t)dist_rank());
    int32_t *tok = xmalloc(sizeof(int32_t) * N), *tgt = xmalloc(sizeof(int32_t) * N);
    uint8_t *mask = xmalloc((size_t)N);
    float *dlogp = xmalloc(sizeof(float) * N);
    float *ref = xmalloc(sizeof(float) * m.num_params), *absum = xmalloc(sizeof(float) * m.num_params);
    DistReducer *r = dist_reducer_new(m.grads, m.num_params, b, nb);
    ReadyCtx c = {r, 0};
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < N; i++) {
            tok[i] = (int32_t)rng_below(&rng, (uint64_t)d.vocab_size);
            tgt[i] = (int32_t)rng_below(&rng, (uint64_t)d.vocab_size);
            mask[i] = rng_below(&rng, 4) != 0;
            dlogp[i] = -1.0f / N;
        }
        gpt_zero_grad(&m);
        gpt_forward(&m, tok, tgt, mask, B, T, NULL, NULL, NULL);
        gpt_backward(&m, dlogp, NULL, NULL);
        reference(m.grads, ref, absum, m.num_params);
        gpt_zero_grad(&m);
        gpt_forward(&m, tok, tgt, mask, B, T, NULL, NULL, NULL);
        c.calls = 0;
        gpt_backward(&m, dlogp, on_ready, &c);
        CHECK(c.calls == d.n_layer + 2, "%d ready calls with gradients, want %d", c.calls, d.n_layer + 2);
        DistReducerStats st;
        dist_reducer_stats(r, &st);
        CHECK(st.started_early == (int64_t)nb * (step + 1), "only %lld of %d buckets started during backward",
              (long long)(st.started_early - (int64_t)nb * step), nb);
        dist_reducer_finish(r);
        char what[128];
        snprintf(what, sizeof what, "gpt grads, buckets of <= %zu bytes, step %d", max_bytes, step);
        compare(what, m.grads, ref, absum, m.num_params);
    }
    dist_reducer_free(r);
    free(b);
    free(tok);
    free(tgt);
    free(mask);
    free(dlogp);
    free(ref);
    free(absum);
    gpt_free(&m);
}

int main(int argc, char **argv)
{
    /* Started by a launcher (mpirun, srun --mpi=pmix): MPI. Alone (make check's unit-test
     * pass, with LeakSanitizer on): no MPI at all, which also shows that the reducer makes no
     * MPI call at one rank; Open MPI's own allocations would trip LeakSanitizer. */
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK"))
        dist_init(&argc, &argv);
    if (argc > 1 && !strcmp(argv[1], "--oversize")) {
        size_t n = DIST_MAX_CHUNK_BYTES / sizeof(float) + 1, bounds[2] = {0, n};
        float dummy = 0;
        dist_reducer_new(&dummy, n, bounds, 1); /* must die */
        fprintf(stderr, "test_mpi_reducer: a bucket of %zu bytes was accepted\n", n * sizeof(float));
        return 1;
    }
    if (argc > 1 && !strcmp(argv[1], "--twice")) {
        float x[8] = {0};
        size_t bounds[3] = {0, 4, 8};
        DistReducer *r = dist_reducer_new(x, 8, bounds, 2);
        dist_reducer_ready(r, 4, 4);
        dist_reducer_ready(r, 6, 2); /* must die */
        fprintf(stderr, "test_mpi_reducer: gradients readied twice were accepted\n");
        return 1;
    }
    if (argc > 1)
        die("usage: test_mpi_reducer [--oversize | --twice]");

    /* big buckets: one of exactly 16 MB, runs crossing bucket edges */
    test_random((size_t)5 << 20, DIST_MAX_CHUNK_BYTES / sizeof(float), (size_t)3 << 20, 1);
    /* many small buckets, runs of a few elements to many buckets */
    test_random(20000, 50, 300, 2);
    test_random(1000, 3, 2, 3);
    test_gpt(DIST_MAX_CHUNK_BYTES);
    test_gpt(1000);
    test_gpt(7 * sizeof(float) + 3);

    int64_t tot[2] = {g_checks, g_fails};
    dist_allreduce_sum_i64(tot, 2);
    if (dist_rank() == 0)
        printf("test_mpi_reducer: %lld checks at %d rank%s, %lld failed\n", (long long)tot[0], dist_size(),
               dist_size() > 1 ? "s" : "", (long long)tot[1]);
    dist_finalize();
    return tot[1] != 0;
}

/* bench_scaling.c: `prefer bench-scaling CONFIG`: the data-parallel step at the current
 * world size, one thread per rank.
 *
 * Times, on the config's model (batch train.micro_batch x model.context per rank, every
 * position scored, different tokens on every rank):
 *   compute   forward + backward alone;
 *   step      forward + backward + the gradient allreduce through a DistReducer fed by
 *             backward's ready callback, as the trainer does it; of which `blocked` is the
 *             time spent waiting in dist_reducer_finish and `in_ready` the time spent in
 *             dist_reducer_ready during backward (starting and driving the reductions: on
 *             shared memory the receiving rank's core does the copies and sums there);
 *   allreduce the whole gradient alone through the blocking dist_allreduce_sum_f32 (in
 *             <= 16 MB pieces), and through the reducer with nothing overlapped.
 * scripts/bench-scaling.sh runs it at 1 and 2 ranks and derives the weak-scaling
 * efficiency and the share of the allreduce hidden behind backward.
 * Does not: train (no optimizer, no data files), or change the thread count it is told
 * (it forces runtime.threads = 1). */
#include "prefer/cli.h"
#include "prefer/config.h"
#include "prefer/dist.h"
#include "prefer/gpt.h"
#include "prefer/rng.h"
#include "prefer/runtime.h"
#include "prefer/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("usage: prefer bench-scaling CONFIG [--set k=v ...] [--quick]\n\n"
           "Run under mpirun -np P --bind-to core (or alone). One thread per rank. Times on\n"
           "the model in CONFIG, batch train.micro_batch x model.context per rank:\n"
           "  compute    forward+backward alone\n"
           "  step       forward+backward+bucketed gradient allreduce overlapped with backward\n"
           "  blocked    the part of step spent waiting for the allreduce to end\n"
           "  in_ready   the part of step spent in dist_reducer_ready (starting and driving the\n"
           "             reductions during backward: with one core per rank, not free)\n"
           "  allreduce  the whole gradient alone, blocking, in <= 16 MB pieces\n"
           "  reducer    the whole gradient alone through the bucketed reducer\n"
           "Last line: bench-scaling: world=P step_ms=S compute_ms=C allreduce_ms=A\n"
           "           reducer_ms=R blocked_ms=B blocked_max_ms=M in_ready_ms=Y buckets=K grad_mb=G\n"
           "(ms, medians over iterations: step and compute of the slowest rank; blocked_ms on the\n"
           "rank that waited least - the last to end backward, so the allreduce left exposed -\n"
           "blocked_max_ms on the one that waited most, which adds waiting for the slower rank).\n"
           "PREFER_BUCKET_BYTES sets the bucket size (default and maximum 16 MB).\n"
           "scripts/bench-scaling.sh (make bench-scaling) combines 1 and 2 ranks.\n"
           "--quick: fewer repetitions (for tests).\n");
}

typedef struct {
    DistReducer *r;
} ReadyCtx;

static void on_ready(void *ctx, size_t off, size_t count) { dist_reducer_ready(((ReadyCtx *)ctx)->r, off, count); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median of v[0..n) (reorders v) */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* min and max over ranks of a per-rank value (collective) */
static void over_ranks(double v, double *min, double *max)
{
    double hi = v, neg = -v;
    dist_allreduce_max_f64(&hi, 1);
    dist_allreduce_max_f64(&neg, 1);
    *min = -neg;
    *max = hi;
}

int cmd_bench_scaling(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    if (a.help) {
        usage();
        return 0;
    }
    static const char *const flags[] = {"--quick", NULL};
    cli_check_flags(&a, "bench-scaling", flags);
    int quick = cli_has_flag(&a, "--quick");
    PreferConfig cfg;
    cli_load_config(&a, &cfg);
    cfg.runtime.threads = 1;
    runtime_setup(&cfg.runtime, 1);
    int rank = dist_rank(), world = dist_size();

    size_t bucket_bytes = DIST_MAX_CHUNK_BYTES;
    const char *env = getenv("PREFER_BUCKET_BYTES");
    if (env && *env) {
        char *end;
        unsigned long long v = strtoull(env, &end, 10);
        if (*end || v < sizeof(float) || v > DIST_MAX_CHUNK_BYTES)
            die_user("PREFER_BUCKET_BYTES=%s: want a byte count from 4 to %u", env, (unsigned)DIST_MAX_CHUNK_BYTES);
        bucket_bytes = (size_t)v;
    }

    GptDims d = {cfg.model.vocab_size, cfg.model.context, cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd};
    int B = cfg.train.micro_batch, T = d.context, N = B * T;
    Gpt m;
    gpt_init(&m, &d, B);
    gpt_init_weights(&m, 1, cfg.model.init_std);
    int nb = gpt_grad_buckets(&m, bucket_bytes, NULL, 0);
    size_t *bounds = xmalloc(sizeof(size_t) * (size_t)(nb + 1));
    gpt_grad_buckets(&m, bucket_bytes, bounds, nb);
    ReadyCtx ctx = {dist_reducer_new(m.grads, m.num_params, bounds, nb)};

    int32_t *tok = xmalloc(sizeof(int32_t) * N), *tgt = xmalloc(sizeof(int32_t) * N);
    uint8_t *mask = xmalloc((size_t)N);
    float *dlogp = xmalloc(sizeof(float) * N);
    Rng r;
    rng_init(&r, 5, (uint64_t)rank);
    for (int i = 0; i < N; i++) {
        tok[i] = (int32_t)rng_below(&r, (uint64_t)d.vocab_size);
        tgt[i] = (int32_t)rng_below(&r, (uint64_t)d.vocab_size);
        mask[i] = 1;
        dlogp[i] = -1.0f / N;
    }
    double grad_mb = (double)m.num_params * sizeof(float) / (1 << 20);
    say("bench-scaling: model L=%d C=%d NH=%d T=%d V=%d, %zu parameters (%.1f MB of gradients in %d buckets of "
        "<= %.1f MB); per rank batch %d x %d; %d rank%s x 1 thread\n",
        d.n_layer, d.n_embd, d.n_head, T, d.vocab_size, m.num_params, grad_mb, nb, bucket_bytes / 1048576.0, B, T,
        world, world > 1 ? "s" : "");

    /* Per iteration: the slowest rank's compute and step; blocked in finish on the rank that
     * waited least (the last to end backward: its wait is the allreduce left exposed) and
     * on the rank that waited most (that plus waiting for the slower rank). Medians over
     * iterations: a shared machine's hiccups hit single iterations. */
    int warm = quick ? 1 : 2, iters = quick ? 2 : 8, comm_reps = quick ? 3 : 15;
    double *v = xmalloc(sizeof(double) * 5 * (size_t)(iters > comm_reps ? iters : comm_reps));
    double *v_c = v, *v_s = v + iters, *v_b = v + 2 * iters, *v_bh = v + 3 * iters, *v_rd = v + 4 * iters;
    DistReducerStats rs;
    for (int it = 0; it < warm + iters; it++) {
        /* forward + backward alone */
        dist_barrier();
        double t0 = now_s();
        gpt_zero_grad(&m);
        gpt_forward(&m, tok, tgt, mask, B, T, NULL, NULL, NULL);
        gpt_backward(&m, dlogp, NULL, NULL);
        double tc = now_s() - t0;
        /* the data-parallel step */
        dist_reducer_stats(ctx.r, &rs);
        double ready0 = rs.ready_s;
        dist_barrier();
        t0 = now_s();
        gpt_zero_grad(&m);
        gpt_forward(&m, tok, tgt, mask, B, T, NULL, NULL, NULL);
        gpt_backward(&m, dlogp, on_ready, &ctx);
        double tb = dist_reducer_finish(ctx.r);
        double ts = now_s() - t0;
        dist_reducer_stats(ctx.r, &rs);
        double lo, hi, c_lo, c_hi, s_lo, s_hi, rd_lo, rd_hi;
        over_ranks(tb, &lo, &hi);
        over_ranks(tc, &c_lo, &c_hi);
        over_ranks(ts, &s_lo, &s_hi);
        over_ranks(rs.ready_s - ready0, &rd_lo, &rd_hi);
        if (getenv("PREFER_BENCH_VERBOSE"))
            say("bench-scaling: iteration %d: compute %.1f-%.1f ms, step %.1f-%.1f ms, blocked %.2f-%.2f ms, "
                "in ready %.2f-%.2f ms (range over ranks)\n",
                it, c_lo * 1e3, c_hi * 1e3, s_lo * 1e3, s_hi * 1e3, lo * 1e3, hi * 1e3, rd_lo * 1e3, rd_hi * 1e3);
        if (it >= warm) {
            v_c[it - warm] = c_hi;
            v_s[it - warm] = s_hi;
            v_b[it - warm] = lo;
            v_bh[it - warm] = hi;
            v_rd[it - warm] = rd_hi;
        }
    }
    double compute = median(v_c, iters), step = median(v_s, iters), blocked = median(v_b, iters),
           blocked_hi = median(v_bh, iters), in_ready = median(v_rd, iters);

    /* the allreduce alone: blocking in <= 16 MB pieces, and the reducer with nothing to overlap */
    double *v_a = v, *v_r = v + comm_reps;
    for (int it = 0; it < 1 + comm_reps; it++) {
        dist_barrier();
        double t0 = now_s();
        dist_allreduce_sum_f32(m.grads, m.num_params);
        double t1 = now_s();
        dist_barrier();
        double t2 = now_s();
        dist_reducer_finish(ctx.r);
        double t3 = now_s(), lo, a_hi, r_hi;
        over_ranks(t1 - t0, &lo, &a_hi);
        over_ranks(t3 - t2, &lo, &r_hi);
        if (it > 0) {
            v_a[it - 1] = a_hi;
            v_r[it - 1] = r_hi;
        }
    }
    double ar = median(v_a, comm_reps), red = median(v_r, comm_reps);
    free(v);

    say("bench-scaling: %d rank%s: compute %.1f ms, step %.1f ms (slowest rank, median of %d); blocked in finish "
        "%.2f ms (least-waiting rank; most-waiting %.2f); inside dist_reducer_ready during backward %.2f ms; "
        "allreduce alone %.2f ms blocking, %.2f ms through the reducer; buckets started during backward %.0f%%, "
        "done by its end %.0f%%\n",
        world, world > 1 ? "s" : "", compute * 1e3, step * 1e3, iters, blocked * 1e3, blocked_hi * 1e3,
        in_ready * 1e3, ar * 1e3, red * 1e3, 100.0 * (double)rs.started_early / ((double)rs.steps * nb),
        100.0 * (double)rs.completed_early / ((double)rs.steps * nb));
    say("bench-scaling: world=%d step_ms=%.2f compute_ms=%.2f allreduce_ms=%.3f reducer_ms=%.3f blocked_ms=%.3f "
        "blocked_max_ms=%.3f in_ready_ms=%.3f buckets=%d grad_mb=%.1f\n",
        world, step * 1e3, compute * 1e3, ar * 1e3, red * 1e3, blocked * 1e3, blocked_hi * 1e3, in_ready * 1e3, nb,
        grad_mb);

    dist_reducer_free(ctx.r);
    free(bounds);
    free(tok);
    free(tgt);
    free(mask);
    free(dlogp);
    gpt_free(&m);
    config_free(&cfg);
    return 0;
}

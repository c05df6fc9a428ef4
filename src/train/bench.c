/* bench.c: `prefer bench CONFIG`: time policy forward+backward on the config's model and,
 * in the same run, OpenBLAS sgemm on exactly the matrix products of one step; report the
 * model's FLOP rate as a share of that ceiling.
 *
 * The ceiling is the FLOP-weighted rate of the step's own sgemm calls (same shapes, same
 * transposes, same kernel, same threads), so ratio = 1 would mean every non-GEMM cost
 * (LayerNorm, GELU, softmax, attention's small products, copies) were free. The same
 * measurement (bench_model) serves the config's model and, with --gpt2, the GPT-2 124M
 * shape. */
#include "prefer/cli.h"
#include "prefer/config.h"
#include "prefer/gpt.h"
#include "prefer/prefdata.h"
#include "prefer/reflogp.h"
#include "prefer/train.h"
#include "prefer/rng.h"
#include "prefer/runtime.h"
#include "prefer/util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int ta, tb, M, N, K;
    int lda, ldb;
} Shape;

/* The sgemm calls of one forward+backward (attention products excluded: they are small
 * and counted in the model FLOPs, so they count against the ratio). */
static int step_shapes(Shape *s, int N, int C, int V)
{
    int n = 0;
    int oc[4] = {3 * C, C, 4 * C, C}, ic[4] = {C, C, C, 4 * C};
    for (int i = 0; i < 4; i++) {
        /* forward: out(N,OC) = x(N,IC) W^T */
        s[n++] = (Shape){0, 1, N, oc[i], ic[i], ic[i], ic[i]};
        /* backward dinp(N,IC) = dout(N,OC) W(OC,IC) */
        s[n++] = (Shape){0, 0, N, ic[i], oc[i], oc[i], ic[i]};
        /* backward dW(OC,IC) = dout^T x */
        s[n++] = (Shape){1, 0, oc[i], ic[i], N, oc[i], ic[i]};
    }
    /* LM head, counted once per step (not per layer): marked by K/N pattern below */
    s[n++] = (Shape){0, 1, N, V, C, C, C};
    s[n++] = (Shape){0, 0, N, C, V, V, C};
    s[n++] = (Shape){1, 0, V, C, N, V, C};
    return n;
}

static double time_shape(const Shape *s, float *A, float *B, float *Cm, int reps)
{
    double t0 = now_s();
    for (int r = 0; r < reps; r++)
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans, s->M,
                    s->N, s->K, 1.0f, A, s->lda, B, s->ldb, 1.0f, Cm, s->N);
    return (now_s() - t0) / reps;
}


/* P prompts of lp tokens with K responses of lr tokens each (random tokens), pairs (0,1),
 * (2,3), ... of each prompt. With `alone`, every response gets its own copy of its prompt
 * (P*K prompts): the same log-probs without sharing a prompt. */
static void bench_data(PrefData *d, int64_t P, int K, int lp, int lr, int V, int alone)
{
    memset(d, 0, sizeof *d);
    int64_t R = P * K, NP = alone ? R : P;
    d->vocab_size = V;
    d->n_prompts = NP;
    d->n_responses = R;
    d->n_pairs = P * (K / 2);
    d->prompt_offsets = xmalloc(sizeof(int64_t) * (size_t)(NP + 1));
    d->prompt_tokens = xmalloc(sizeof(int32_t) * (size_t)(NP * lp));
    d->response_offsets = xmalloc(sizeof(int64_t) * (size_t)(R + 1));
    d->response_tokens = xmalloc(sizeof(int32_t) * (size_t)(R * lr));
    d->response_prompt = xmalloc(sizeof(int64_t) * (size_t)R);
    d->pair_chosen = xmalloc(sizeof(int64_t) * (size_t)(d->n_pairs ? d->n_pairs : 1));
    d->pair_rejected = xmalloc(sizeof(int64_t) * (size_t)(d->n_pairs ? d->n_pairs : 1));
    Rng r;
    rng_init(&r, 13, 0);
    int32_t *pt = xmalloc(sizeof(int32_t) * (size_t)(P * lp));
    for (int64_t i = 0; i < P * lp; i++)
        pt[i] = (int32_t)rng_below(&r, (uint64_t)V);
    for (int64_t q = 0; q <= NP; q++)
        d->prompt_offsets[q] = q * lp;
    for (int64_t q = 0; q < NP; q++)
        memcpy(d->prompt_tokens + q * lp, pt + (alone ? q / K : q) * lp, sizeof(int32_t) * (size_t)lp);
    for (int64_t i = 0; i < R * lr; i++)
        d->response_tokens[i] = (int32_t)rng_below(&r, (uint64_t)V);
    for (int64_t e = 0; e <= R; e++)
        d->response_offsets[e] = e * lr;
    for (int64_t e = 0; e < R; e++)
        d->response_prompt[e] = alone ? e : e / K;
    for (int64_t p = 0, k = 0; p < P; p++)
        for (int j = 0; j + 1 < K; j += 2, k++) {
            d->pair_chosen[k] = p * K + j;
            d->pair_rejected[k] = p * K + j + 1;
        }
    free(pt);
}

/* DPO step throughput with and without prefix sharing: pairs whose prompt is as long as
 * each response (half the context each), micro_batch pairs per step, reference log-probs
 * fixed (the cache makes them free in training). Returns pairs/s; *tok_s counts the
 * distinct tokens of the pairs (prompt + chosen + rejected) per second. */
static double bench_dpo(const PreferConfig *base, int share, int iters, double *tok_s)
{
    PreferConfig cfg = *base; /* shallow: strings stay owned by base */
    cfg.train.objective = (char *)"dpo";
    cfg.train.loss_weights = (char *)"";
    cfg.train.prefix_sharing = share;
    cfg.train.grad_accum = 1;
    int B = cfg.train.micro_batch, half = cfg.model.context / 2, V = cfg.model.vocab_size;
    PrefData d;
    int64_t P = B * 4;
    bench_data(&d, P, 2, half, half, V, 0); /* pairs (2p, 2p+1) */
    double *ref = xcalloc((size_t)2 * P, sizeof(double));
    int mb, ms;
    trainer_model_shape(&cfg, &d, &mb, &ms);
    GptDims dims = {cfg.model.vocab_size, cfg.model.context, cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd};
    Gpt m;
    gpt_init_seq(&m, &dims, mb, ms);
    gpt_init_weights(&m, 1, cfg.model.init_std);
    Trainer t;
    trainer_init(&t, &cfg, &d, &m, 0, 1);
    trainer_set_ref(&t, ref);
    StepStats st;
    trainer_grad(&t, &st); /* warm */
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        t.step = i;
        trainer_grad(&t, &st);
    }
    double dt = (now_s() - t0) / iters;
    *tok_s = (double)B * 3 * half / dt;
    trainer_free(&t);
    gpt_free(&m);
    free(ref);
    prefdata_free(&d);
    return B / dt;
}

/* One measurement: forward+backward of a fresh model against sgemm on the step's shapes. */
typedef struct {
    size_t num_params;
    int tokens;        /* B * T per step */
    double step, best; /* mean and fastest step, seconds */
    double model_rate; /* model FLOPs per second */
    double ceiling;    /* sgemm FLOPs per second on the step's shapes */
    double gemm_share; /* sgemm FLOPs / model FLOPs */
} BenchResult;

/* Time forward+backward of a model of dims d (weights N(0, init_std), every position of B x
 * d->context random tokens scored): warm + iters steps; then, in the same process and with
 * the same threads, OpenBLAS sgemm on exactly the step's matrix products (each shape once
 * to warm, then reps times). */
static void bench_model(const GptDims *d, int B, double init_std, int threads, int warm, int iters, int reps,
                        BenchResult *res)
{
    int T = d->context, N = B * T;
    Gpt m;
    gpt_init(&m, d, B);
    gpt_init_weights(&m, 1, init_std);
    int32_t *tok = xmalloc(sizeof(int32_t) * N), *tgt = xmalloc(sizeof(int32_t) * N);
    uint8_t *mask = xmalloc(N);
    float *dlogp = xmalloc(sizeof(float) * N);
    Rng r;
    rng_init(&r, 5, 0);
    for (int i = 0; i < N; i++) {
        tok[i] = (int32_t)rng_below(&r, d->vocab_size);
        tgt[i] = (int32_t)rng_below(&r, d->vocab_size);
        mask[i] = 1;
        dlogp[i] = -1.0f / N;
    }
    say("bench: model L=%d C=%d NH=%d T=%d V=%d, %zu parameters, batch %d x %d = %d tokens, %d thread%s\n",
        d->n_layer, d->n_embd, d->n_head, T, d->vocab_size, m.num_params, B, T, N, threads, threads > 1 ? "s" : "");

    double best = 1e30, total = 0;
    for (int it = 0; it < warm + iters; it++) {
        double t0 = now_s();
        gpt_zero_grad(&m);
        gpt_forward(&m, tok, tgt, mask, B, T, NULL, NULL, NULL);
        gpt_backward(&m, dlogp, NULL, NULL);
        double dt = now_s() - t0;
        if (getenv("PREFER_BENCH_VERBOSE"))
            say("bench: iteration %d: %.1f ms\n", it, dt * 1e3);
        if (it >= warm) {
            total += dt;
            best = dt < best ? dt : best;
        }
    }
    double step = total / iters;
    double flops = gpt_flops_fwdbwd(&m, N, T);
    res->num_params = m.num_params;
    gpt_free(&m);

    /* sgemm ceiling on the same shapes */
    int C = d->n_embd, V = d->vocab_size;
    size_t big = (size_t)N * 4 * C;
    if ((size_t)N * V > big)
        big = (size_t)N * V;
    if ((size_t)V * C > big)
        big = (size_t)V * C;
    float *A = xmalloc_aligned(sizeof(float) * big), *Bm = xmalloc_aligned(sizeof(float) * big),
          *Cm = xmalloc_aligned(sizeof(float) * big);
    for (size_t i = 0; i < big; i++) {
        A[i] = (float)(rng_uniform(&r) - 0.5);
        Bm[i] = (float)(rng_uniform(&r) - 0.5);
    }
    /* The ceiling: OpenBLAS's own threading over the same threads (the model instead splits
     * products over OpenMP threads with OpenBLAS single-threaded, see ops_sgemm). */
    openblas_set_num_threads(threads);
    Shape s[16];
    int ns = step_shapes(s, N, C, V);
    double gemm_flops = 0, gemm_time = 0;
    for (int i = 0; i < ns; i++) {
        time_shape(&s[i], A, Bm, Cm, 1); /* warm */
        double t = time_shape(&s[i], A, Bm, Cm, reps);
        double f = 2.0 * s[i].M * s[i].N * s[i].K;
        int per_layer = i < 12;
        gemm_flops += per_layer ? f * d->n_layer : f;
        gemm_time += per_layer ? t * d->n_layer : t;
    }
    gpt_set_threads(threads);
    free(A);
    free(Bm);
    free(Cm);
    free(tok);
    free(tgt);
    free(mask);
    free(dlogp);
    res->tokens = N;
    res->step = step;
    res->best = best;
    res->model_rate = flops / step;
    res->ceiling = gemm_flops / gemm_time;
    res->gemm_share = gemm_flops / flops;
}

/* Seconds per reflogp_compute over d (the PVar pass of a model-based curriculum selection:
 * a forward-only model, ~2048 tokens per forward as in training), mean of iters after a warm
 * one. */
static double time_pass(const GptDims *dims, const Gpt *src, const PrefData *d, int iters)
{
    int T = reflogp_seq_len(d), B = 2048 / T > 0 ? 2048 / T : 1;
    Gpt m;
    gpt_init_infer(&m, dims, B, T);
    memcpy(m.params, src->params, sizeof(float) * src->num_params);
    double *out = xmalloc(sizeof(double) * (size_t)d->n_responses);
    reflogp_compute(&m, d, 0, 1, B, out);
    double t0 = now_s();
    for (int i = 0; i < iters; i++)
        reflogp_compute(&m, d, 0, 1, B, out);
    double dt = (now_s() - t0) / iters;
    free(out);
    gpt_free(&m);
    return dt;
}

/* The cost of a model-based curriculum selection (a forward pass over every response of
 * every prompt) against DPO training steps, on data shaped like the config's synthetic task
 * (synth.n_prompts x synth.k responses, synth.prompt_len, synth.response_len; random
 * tokens): measured, and predicted from model FLOPs as curriculum.max_share does. */
static void bench_pvar(const PreferConfig *base, int quick)
{
    PreferConfig cfg = *base; /* shallow: strings stay owned by base */
    cfg.train.objective = (char *)"dpo";
    cfg.train.loss_weights = (char *)"";
    cfg.train.prefix_sharing = 1;
    cfg.train.grad_accum = 1;
    int64_t P = quick ? 64 : cfg.synth.n_prompts;
    int K = cfg.synth.k, lp = cfg.synth.prompt_len, lr = cfg.synth.response_len, B = cfg.train.micro_batch;
    GptDims dims = {cfg.model.vocab_size, cfg.model.context, cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd};
    if (lp + lr - 1 > dims.context || K < 2 || P * (K / 2) < B)
        die_user("bench --pvar: synth.prompt_len + synth.response_len must fit model.context, synth.k >= 2 and "
                 "synth.n_prompts * (synth.k / 2) >= train.micro_batch");
    PrefData shared, alone;
    bench_data(&shared, P, K, lp, lr, dims.vocab_size, 0);
    bench_data(&alone, P, K, lp, lr, dims.vocab_size, 1);
    int mb, ms;
    trainer_model_shape(&cfg, &shared, &mb, &ms);
    Gpt m;
    gpt_init_seq(&m, &dims, mb, ms);
    gpt_init_weights(&m, 1, cfg.model.init_std);
    int iters = quick ? 1 : 3;
    double pass = time_pass(&dims, &m, &shared, iters), pass_alone = time_pass(&dims, &m, &alone, iters);
    /* a DPO step on micro_batch pairs of these shapes (forward + backward, no optimizer) */
    double *ref = xcalloc((size_t)shared.n_responses, sizeof(double));
    Trainer t;
    trainer_init(&t, &cfg, &shared, &m, 0, 1);
    trainer_set_ref(&t, ref);
    StepStats st;
    trainer_grad(&t, &st);
    int steps = quick ? 2 : 10;
    double t0 = now_s();
    for (int i = 0; i < steps; i++) {
        t.step = i;
        trainer_grad(&t, &st);
    }
    double step = (now_s() - t0) / steps;
    /* predicted: the pass's FLOPs over a step's (3 x forward of B pairs) */
    double in = (double)(lp + 2 * (lr - 1)), scored = 2.0 * lr;
    double step_flops = 3 * gpt_flops_forward(&m, B * in, B * in * in, B * scored);
    double pass_flops = reflogp_pass_flops(&shared, 2048 / reflogp_seq_len(&shared) > 0 ? 2048 / reflogp_seq_len(&shared) : 1, &m);
    say("bench-pvar: %lld prompts x %d responses (prompt %d, response %d tokens), model L=%d C=%d V=%d; DPO step of %d "
        "pairs %.2f ms; pass without prompt sharing %.3f s\n",
        (long long)P, K, lp, lr, dims.n_layer, dims.n_embd, dims.vocab_size, B, step * 1e3, pass_alone);
    say("bench-pvar: pass_s=%.3f share_speedup=%.3f selection_in_steps=%.1f predicted_steps=%.1f ratio=%.3f\n", pass,
        pass_alone / pass, pass / step, pass_flops / step_flops, (pass / step) / (pass_flops / step_flops));
    trainer_free(&t);
    gpt_free(&m);
    free(ref);
    prefdata_free(&shared);
    prefdata_free(&alone);
}

static void usage(void)
{
    printf("usage: prefer bench [CONFIG] [--set k=v ...] [--quick] [--gpt2 | --pvar]\n\n"
           "Times forward+backward of the model in CONFIG (model.*, batch train.micro_batch x\n"
           "model.context tokens, every position scored) and OpenBLAS sgemm on the same shapes.\n"
           "Then a DPO step with and without prefix sharing (prompt as long as each response):\n"
           "  bench-dpo: pairs_per_s=X tokens_per_s=Y prefix_speedup=S\n"
           "Last line: bench: tokens_per_s=X model_gflops=Y sgemm_gflops=Z ratio=R kernel=K\n"
           "--gpt2: instead the GPT-2 124M shape (V=50257, T=1024, C=768, L=12, NH=12; random\n"
           "weights, batch 1 x 1024; model.* and train.micro_batch are ignored), no DPO step:\n"
           "  bench-gpt2: tokens_per_s=X model_gflops=Y ratio=R\n"
           "--pvar: instead the PVar pass of a model-based curriculum selection (log-probs of every\n"
           "response, a prompt forwarded once for its responses) on random data shaped like the\n"
           "config's synthetic task (synth.n_prompts x synth.k, synth.prompt_len, synth.response_len),\n"
           "against a DPO step of train.micro_batch pairs of the same shapes; the selection's cost\n"
           "in steps, measured and predicted from model FLOPs (as curriculum.max_share predicts it):\n"
           "  bench-pvar: pass_s=X share_speedup=S selection_in_steps=M predicted_steps=P ratio=M/P\n"
           "Threads: runtime.threads (0 = auto; OPENBLAS_NUM_THREADS is honoured).\n"
           "--quick: fewer repetitions (for tests).\n");
}

/* The GPT-2 124M shape at batch 1 (make bench): one warm step, then 3 timed (1 with --quick). */
static void bench_gpt2(const PreferConfig *cfg, int threads, int quick)
{
    GptDims d = {50257, 1024, 12, 12, 768};
    BenchResult r;
    bench_model(&d, 1, cfg->model.init_std, threads, 1, quick ? 1 : 3, 1, &r);
    say("bench-gpt2: step %.2f s (best %.2f s); sgemm %.1f GFLOP/s on the step's shapes; sgemm share of model "
        "FLOPs %.1f%%; kernel %s\n",
        r.step, r.best, r.ceiling * 1e-9, 100.0 * r.gemm_share, runtime_blas_core());
    say("bench-gpt2: tokens_per_s=%.0f model_gflops=%.1f ratio=%.3f\n", r.tokens / r.step, r.model_rate * 1e-9,
        r.model_rate / r.ceiling);
}

int cmd_bench(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    if (a.help) {
        usage();
        return 0;
    }
    static const char *const flags[] = {"--quick", "--gpt2", "--pvar", NULL};
    cli_check_flags(&a, "bench", flags);
    int quick = cli_has_flag(&a, "--quick");
    PreferConfig cfg;
    cli_load_config(&a, &cfg);
    int threads = runtime_setup(&cfg.runtime, 1);
    if (cli_has_flag(&a, "--gpt2")) {
        bench_gpt2(&cfg, threads, quick);
        config_free(&cfg);
        return 0;
    }
    if (cli_has_flag(&a, "--pvar")) {
        bench_pvar(&cfg, quick);
        config_free(&cfg);
        return 0;
    }

    GptDims d = {cfg.model.vocab_size, cfg.model.context, cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd};
    BenchResult r;
    bench_model(&d, cfg.train.micro_batch, cfg.model.init_std, threads, quick ? 1 : 2, quick ? 2 : 6, quick ? 1 : 3,
                &r);
    /* DPO pairs, with and without prefix sharing */
    double tok_sh = 0, tok_un = 0;
    double pps_sh = bench_dpo(&cfg, 1, quick ? 1 : 3, &tok_sh);
    double pps_un = bench_dpo(&cfg, 0, quick ? 1 : 3, &tok_un);
    say("bench: step %.1f ms (best %.1f ms) over %d iterations; sgemm share of model FLOPs %.1f%%\n", r.step * 1e3,
        r.best * 1e3, quick ? 2 : 6, 100.0 * r.gemm_share);
    say("bench-dpo: %d pairs per step, prompt = chosen = rejected = %d tokens; without prefix sharing %.2f pairs/s\n",
        cfg.train.micro_batch, d.context / 2, pps_un);
    say("bench-dpo: pairs_per_s=%.2f tokens_per_s=%.0f prefix_speedup=%.3f\n", pps_sh, tok_sh, pps_sh / pps_un);
    say("bench: tokens_per_s=%.0f model_gflops=%.1f sgemm_gflops=%.1f ratio=%.3f kernel=%s\n", r.tokens / r.step,
        r.model_rate * 1e-9, r.ceiling * 1e-9, r.model_rate / r.ceiling, runtime_blas_core());
    config_free(&cfg);
    return 0;
}

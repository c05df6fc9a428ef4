/* iterate_cmd.c: `prefer iterate`: iterative alignment on the transformer (papers.md section 6).
 *
 * Round t = 0 .. R-1 turns the policy pi_t into pi_{t+1}:
 *   1. sample iterate.k responses per prompt of iterate.data from the sampler
 *      mu_t = lambda pi_t + (1 - lambda) pi_0: K responses from pi_t and K from pi_0 (`prefer
 *      sample`), then response k of prompt p is taken from pi_t when a coin, a pure function of
 *      (iterate.seed, t, p, k), falls below lambda;
 *   2. label every pair of a prompt's responses with the oracle: Bradley-Terry on the task's true
 *      reward (`prefer label`), or the cyclic one (rock-paper-scissors among response classes,
 *      class = first response token mod iterate.classes, P from dyn_cyclic);
 *   3. train (`prefer train`, train.objective: dpo or ipo) from pi_t for iterate.steps steps with
 *      the geometric-mixture reference log pi_ref_t = alpha log pi_t + (1 - alpha) log pi_0
 *      (train.ref = pi_0, train.ref_mix = pi_t, train.ref_alpha = alpha; exact for DPO/IPO, as
 *      the mixture's normaliser cancels within a pair);
 *   4. record pi_t's statistics, estimated from its K samples per prompt: class shares, mean true
 *      reward, entropy -E log pi_t(y) (its own log-probs of its samples), and the step
 *      ||shares_t - shares_{t-1}||_1; on an enumerable task (at most iterate.exact_max responses
 *      per prompt) also exactly, over every response (exact.h): entropy, ||pi_t - pi_{t-1}||_1
 *      and class shares, means over the prompts; then pi_{t+1} = round_t/policy.h5.
 * After the last round pi_R is sampled once more for its row. Rows go to the "rounds" table of
 * iterate.out_dir/iterate.h5 (a prefer run log).
 *
 * Every stage writes its file atomically and is skipped when the file is already there, and
 * training runs with train.resume = auto: a preempted run (exit 75) resubmitted with the same
 * command resumes at the round and step it stopped at, with identical results.
 *
 * The stages are the commands themselves, run in this process with --set overrides on top of
 * the user's config and --set list: what iterate trains is what `prefer train` trains.
 */
#include "prefer/ckpt.h"
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/dynamics.h"
#include "prefer/exact.h"
#include "prefer/h5util.h"
#include "prefer/prefdata.h"
#include "prefer/reflogp.h"
#include "prefer/rng.h"
#include "prefer/runlog.h"
#include "prefer/runtime.h"
#include "prefer/synth.h"
#include "prefer/train.h"
#include "prefer/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITER_MAX_CLASSES 64
#define ITER_LOGP_BATCH 16

static void usage(void)
{
    printf("usage: prefer iterate CONFIG [--set section.key=value ...]\n\n"
           "Iterative alignment: iterate.rounds rounds of sample -> label -> train, where round t samples\n"
           "iterate.k responses per prompt of iterate.data from mu_t = lambda pi_t + (1 - lambda) pi_0,\n"
           "labels every pair with the oracle (iterate.oracle = bt: Bradley-Terry on the synthetic task's\n"
           "true reward; cyclic: rock-paper-scissors among response classes, class = first response\n"
           "token mod iterate.classes, class c beats c+1 with probability 1/2 + iterate.cyclic_a), and\n"
           "trains train.objective (dpo or ipo) from pi_t for iterate.steps steps against the reference\n"
           "log pi_ref_t = alpha log pi_t + (1 - alpha) log pi_0 (exact for DPO and IPO: the mixture's\n"
           "normaliser cancels within a pair). pi_0 = iterate.init (or model.init_from).\n\n"
           "Writes iterate.out_dir/round_T/ (samples, pairs, train/, policy.h5 = pi_{T+1}) and the run\n"
           "log iterate.out_dir/iterate.h5, table \"rounds\": per policy pi_t its class shares, entropy\n"
           "and mean true reward estimated from its samples, the step ||shares_t - shares_{t-1}||_1,\n"
           "alpha, beta, lambda and (cyclic oracle) the contraction constant\n"
           "alpha + (beta_tab lambda / 2) ||P - 11^T/2||_2 with beta_tab = 1 / loss.beta (IPO's tau).\n"
           "Rerun the same command after a preemption (exit 75): finished stages are kept and\n"
           "training resumes at its step. docs/iterate.md.\n");
}

/* argv for a stage: NAME [CONFIG] the user's --set list, then ours. */
typedef struct {
    char *v[2 + 2 * (CLI_MAX_SETS + 24)];
    int n;
    char *own[24];
    int n_own;
} StageArgs;

static void stage_begin(StageArgs *s, const char *name, const CliArgs *a)
{
    memset(s, 0, sizeof *s);
    s->v[s->n++] = (char *)name;
    if (a->n_pos > 0)
        s->v[s->n++] = (char *)a->pos[0];
    for (int i = 0; i < a->n_sets; i++) {
        s->v[s->n++] = "--set";
        s->v[s->n++] = (char *)a->sets[i];
    }
}

static void PREFER_PRINTF(2, 3) stage_set(StageArgs *s, const char *fmt, ...)
{
    if (s->n_own >= 24)
        die("iterate: too many stage settings");
    va_list ap;
    va_start(ap, fmt);
    char buf[4096];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *x = xstrdup(buf);
    s->own[s->n_own++] = x;
    s->v[s->n++] = "--set";
    s->v[s->n++] = x;
}

static int stage_run(StageArgs *s, int (*fn)(int, char **))
{
    s->v[s->n] = NULL;
    int rc = fn(s->n, s->v);
    for (int i = 0; i < s->n_own; i++)
        free(s->own[i]);
    /* a stage's file is written by rank 0: every rank waits for it, and for one verdict */
    dist_barrier();
    int64_t r = rc;
    dist_bcast(&r, sizeof r, 0);
    return (int)r;
}

/* The same answer on every rank: rank 0 looks. */
static int exists_all(const char *path)
{
    int64_t e = dist_rank() == 0 ? util_file_exists(path) : 0;
    dist_bcast(&e, sizeof e, 0);
    return (int)e;
}

static int run_sample(const CliArgs *a, const char *ckpt, const char *data, const char *out, int k, uint64_t seed)
{
    if (exists_all(out))
        return 0;
    StageArgs s;
    stage_begin(&s, "sample", a);
    stage_set(&s, "sample.checkpoint=%s", ckpt);
    stage_set(&s, "sample.data=%s", data);
    stage_set(&s, "sample.out=%s", out);
    stage_set(&s, "sample.n=%d", k);
    stage_set(&s, "sample.seed=%llu", (unsigned long long)seed);
    return stage_run(&s, cmd_sample);
}

static int response_class(const PrefData *d, int64_t r, int n)
{
    int64_t o = d->response_offsets[r];
    if (d->response_offsets[r + 1] == o)
        return 0;
    return (int)(d->response_tokens[o] % n);
}

/* Write d to out with the synthetic task's attributes of task_from (when it has them), both
 * into out.tmp, then renamed: a stage's file is whole or absent, as the skip logic needs. */
static void write_with_task(const char *out, const PrefData *d, const char *task_from, const char *kind)
{
    char *tmp = h5u_tmp_name(out);
    prefdata_write(tmp, d, NULL);
    SynthTask t;
    char err[1024];
    if (synth_task_from_file(task_from, &t, err, sizeof err) == 0) {
        synth_write_task_attrs(tmp, &t, kind);
        synth_task_free(&t);
    }
    h5u_commit(tmp, out);
    free(tmp);
}

/* Rank 0: the sampler's mixture of the two sample files, response by response. */
static void mix_samples(const char *from_pi, const char *from_0, const char *out, double lambda, uint64_t key)
{
    PrefData a, b;
    prefdata_read(from_pi, 0, &a);
    prefdata_read(from_0, 0, &b);
    if (a.n_prompts != b.n_prompts || a.n_responses != b.n_responses)
        die_user("iterate: %s and %s have different prompts or response counts", from_pi, from_0);
    int64_t R = a.n_responses, total = 0;
    uint8_t *take_a = xmalloc((size_t)(R ? R : 1));
    for (int64_t r = 0; r < R; r++) {
        take_a[r] = (double)(rng_at(key, (uint64_t)r) >> 11) * 0x1.0p-53 < lambda;
        const PrefData *s = take_a[r] ? &a : &b;
        total += s->response_offsets[r + 1] - s->response_offsets[r];
    }
    PrefData m = a;
    m.response_tokens = xmalloc(sizeof(int32_t) * (size_t)(total ? total : 1));
    m.response_offsets = xmalloc(sizeof(int64_t) * (size_t)(R + 1));
    m.response_score = a.response_score && b.response_score ? xmalloc(sizeof(float) * (size_t)(R ? R : 1)) : NULL;
    m.n_pairs = 0;
    m.pair_chosen = m.pair_rejected = NULL;
    m.response_offsets[0] = 0;
    for (int64_t r = 0; r < R; r++) {
        const PrefData *s = take_a[r] ? &a : &b;
        int64_t o = s->response_offsets[r], n = s->response_offsets[r + 1] - o;
        memcpy(m.response_tokens + m.response_offsets[r], s->response_tokens + o, sizeof(int32_t) * (size_t)n);
        m.response_offsets[r + 1] = m.response_offsets[r] + n;
        if (m.response_score)
            m.response_score[r] = s->response_score[r];
    }
    write_with_task(out, &m, from_pi, "samples");
    free(m.response_tokens);
    free(m.response_offsets);
    free(m.response_score);
    free(take_a);
    prefdata_free(&a);
    prefdata_free(&b);
}

/* Rank 0: every pair of a prompt's responses labelled by the cyclic oracle. */
static void label_cyclic(const char *in, const char *out, const double *P, int n, uint64_t key)
{
    PrefData d;
    prefdata_read(in, 0, &d);
    int64_t cap = 0;
    for (int64_t p = 0, r = 0; p < d.n_prompts; p++) {
        int64_t k = 0;
        while (r + k < d.n_responses && d.response_prompt[r + k] == p)
            k++;
        cap += k * (k - 1) / 2;
        r += k;
    }
    free(d.pair_chosen);
    free(d.pair_rejected);
    d.pair_chosen = xmalloc(sizeof(int64_t) * (size_t)(cap ? cap : 1));
    d.pair_rejected = xmalloc(sizeof(int64_t) * (size_t)(cap ? cap : 1));
    d.n_pairs = 0;
    for (int64_t r0 = 0; r0 < d.n_responses;) {
        int64_t r1 = r0;
        while (r1 < d.n_responses && d.response_prompt[r1] == d.response_prompt[r0])
            r1++;
        for (int64_t i = r0; i < r1; i++)
            for (int64_t j = i + 1; j < r1; j++) {
                double p = P[response_class(&d, i, n) * n + response_class(&d, j, n)];
                double u = (double)(rng_at(key, (uint64_t)d.n_pairs) >> 11) * 0x1.0p-53;
                d.pair_chosen[d.n_pairs] = u < p ? i : j;
                d.pair_rejected[d.n_pairs] = u < p ? j : i;
                d.n_pairs++;
            }
        r0 = r1;
    }
    write_with_task(out, &d, in, "preferences");
    say("iterate: %s: %lld pairs labelled by the cyclic oracle\n", out, (long long)d.n_pairs);
    prefdata_free(&d);
}

typedef struct {
    double share[ITER_MAX_CLASSES];
    double entropy, reward;
} PolicyStats;

/* Statistics of a policy from its own samples (collective: every rank calls). */
static void policy_stats(const char *ckpt, const char *samples, int n_classes, PolicyStats *ps)
{
    PrefData d;
    prefdata_read(samples, 0, &d);
    memset(ps, 0, sizeof *ps);
    int64_t R = d.n_responses;
    for (int64_t r = 0; r < R; r++)
        ps->share[response_class(&d, r, n_classes)] += 1.0 / (double)(R ? R : 1);
    double rsum = 0;
    for (int64_t r = 0; r < R && d.response_score; r++)
        rsum += d.response_score[r];
    ps->reward = d.response_score && R ? rsum / (double)R : NAN;
    int longest = 1;
    for (int64_t r = 0; r < R; r++) {
        int64_t p = d.response_prompt[r];
        int n = (int)(d.prompt_offsets[p + 1] - d.prompt_offsets[p] + d.response_offsets[r + 1] - d.response_offsets[r]);
        longest = n > longest ? n : longest;
    }
    Gpt m;
    int seq = reflogp_seq_len(&d);
    ckpt_load_model(ckpt, ITER_LOGP_BATCH, longest, seq, &m);
    double *lp = xmalloc(sizeof(double) * (size_t)(R ? R : 1)), s = 0;
    reflogp_compute(&m, &d, dist_rank(), dist_size(), ITER_LOGP_BATCH, lp);
    for (int64_t r = 0; r < R; r++)
        s -= lp[r];
    ps->entropy = R ? s / (double)R : NAN;
    free(lp);
    gpt_free(&m);
    prefdata_free(&d);
}

/* Exact statistics of a policy on an enumerable task (rank 0): its distribution over every
 * response of every prompt of the data, normalised over the space (exact.h). */
typedef struct {
    int on;
    SynthTask task;
    EnumSpace space;
    PrefData d;     /* the prompts */
    double *lp;     /* [n_prompts * space.n] this policy's log-probs */
    double *prev;   /* the previous policy's */
    int have_prev;
    double entropy, step, mass, share[ITER_MAX_CLASSES];
} ExactStats;

static void exact_stats_init(ExactStats *x, const IterateConfig *ic)
{
    memset(x, 0, sizeof *x);
    if (ic->exact_max <= 0 || dist_rank() != 0)
        return;
    char err[1024];
    if (synth_task_from_file(ic->data, &x->task, err, sizeof err) != 0)
        return;
    double n = pow((double)(x->task.vocab - 1), (double)(x->task.response_len - 1));
    if (x->task.response_len < 2 || n > (double)ic->exact_max) {
        synth_task_free(&x->task);
        return;
    }
    enum_space_init(&x->space, &x->task, ic->exact_max);
    prefdata_read(ic->data, 0, &x->d);
    size_t m = (size_t)x->d.n_prompts * (size_t)x->space.n;
    x->lp = xmalloc(sizeof(double) * (m ? m : 1));
    x->prev = xmalloc(sizeof(double) * (m ? m : 1));
    x->on = 1;
    say("iterate: the task is enumerable (%lld responses per prompt): exact entropy, step and class shares too\n",
        (long long)x->space.n);
}

static void exact_stats_free(ExactStats *x)
{
    if (!x->on)
        return;
    synth_task_free(&x->task);
    prefdata_free(&x->d);
    free(x->lp);
    free(x->prev);
}

static void exact_stats(ExactStats *x, const char *ckpt, int n_classes)
{
    if (!x->on)
        return;
    int nt = enum_tokens(&x->space), P = (int)(x->d.prompt_offsets[1] - x->d.prompt_offsets[0]);
    Gpt m;
    ckpt_load_model(ckpt, 1, P + nt, 0, &m);
    double *t = x->prev;
    x->prev = x->lp;
    x->lp = t;
    int64_t N = x->space.n, NP = x->d.n_prompts;
    int32_t *y = xmalloc(sizeof(int32_t) * (size_t)nt);
    x->entropy = x->step = x->mass = 0;
    memset(x->share, 0, sizeof x->share);
    for (int64_t p = 0; p < NP; p++) {
        int64_t o = x->d.prompt_offsets[p];
        int pl = (int)(x->d.prompt_offsets[p + 1] - o);
        double *lp = x->lp + p * N;
        exact_logp_all(&m, x->d.prompt_tokens + o, pl, &x->space, lp);
        x->mass += exp(exact_normalize(lp, N)) / (double)NP;
        x->entropy += exact_entropy(lp, N) / (double)NP;
        if (x->have_prev)
            x->step += exact_l1(lp, x->prev + p * N, N) / (double)NP;
        for (int64_t i = 0; i < N; i++) {
            enum_response(&x->space, i, y);
            x->share[y[0] % n_classes] += exp(lp[i]) / (double)NP;
        }
    }
    if (!x->have_prev)
        x->step = NAN;
    x->have_prev = 1;
    free(y);
    gpt_free(&m);
}

static void log_round(RunLog *rl, int64_t round, const IterateConfig *ic, double beta_tab, double contraction,
                      const PolicyStats *ps, const PolicyStats *prev, const ExactStats *x)
{
    int n = ic->classes;
    double step = NAN;
    if (prev) {
        step = 0;
        for (int c = 0; c < n; c++)
            step += fabs(ps->share[c] - prev->share[c]);
    }
    say("iterate: pi_%lld: entropy %.4f nats (estimate)  reward %.4f  class shares", (long long)round, ps->entropy,
        ps->reward);
    for (int c = 0; c < n && c < 8; c++)
        say(" %.3f", ps->share[c]);
    say("  step %.4f\n", step);
    if (x->on) {
        say("iterate: pi_%lld exact: entropy %.4f nats  step %.4f  mass %.4f  class shares", (long long)round,
            x->entropy, x->step, x->mass);
        for (int c = 0; c < n && c < 8; c++)
            say(" %.3f", x->share[c]);
        say("\n");
    }
    if (!rl || runlog_rows(rl, "rounds") > round)
        return; /* rank != 0, or logged before a preemption */
    const char *names[12 + 2 * ITER_MAX_CLASSES];
    double v[12 + 2 * ITER_MAX_CLASSES];
    char cname[ITER_MAX_CLASSES][24], xname[ITER_MAX_CLASSES][24];
    int k = 0;
    names[k] = "round", v[k++] = (double)round;
    names[k] = "alpha", v[k++] = ic->alpha;
    names[k] = "beta_tab", v[k++] = beta_tab;
    names[k] = "lambda", v[k++] = ic->lambda;
    names[k] = "contraction", v[k++] = contraction;
    names[k] = "entropy_est", v[k++] = ps->entropy;
    names[k] = "reward_mean", v[k++] = ps->reward;
    names[k] = "step_l1", v[k++] = step;
    for (int c = 0; c < n; c++) {
        snprintf(cname[c], sizeof cname[c], "share/%d", c);
        names[k] = cname[c], v[k++] = ps->share[c];
    }
    if (x->on) {
        names[k] = "entropy_exact", v[k++] = x->entropy;
        names[k] = "step_l1_exact", v[k++] = x->step;
        names[k] = "mass_exact", v[k++] = x->mass;
        for (int c = 0; c < n; c++) {
            snprintf(xname[c], sizeof xname[c], "share_exact/%d", c);
            names[k] = xname[c], v[k++] = x->share[c];
        }
    }
    runlog_row(rl, "rounds", k, names, v);
    runlog_flush(rl);
}

/* 1 on every rank if any rank has received a stop signal (SIGTERM, SIGUSR1, SIGINT). */
static int stop_requested(void)
{
    int64_t any = -(int64_t)train_stop_signal();
    dist_allreduce_min_i64(&any, 1);
    return any != 0;
}

/* A hash of every setting that shapes the rounds' results (all but iterate.rounds,
 * iterate.exact_max and iterate.out_dir): a rerun in the same directory must match it. */
static void settings_hash(const PreferConfig *cfg, char out[17])
{
    PreferConfig c = *cfg;
    c.iterate.rounds = 0;
    c.iterate.exact_max = 0;
    c.iterate.out_dir = "";
    char *text = config_to_text(&c);
    snprintf(out, 17, "%016llx", (unsigned long long)util_hash(UTIL_HASH_INIT, text, strlen(text)));
    free(text);
}

/* Rank 0: refuse to continue a run of other settings in the same directory. */
static void check_settings(const char *path, const char *hash)
{
    if (!util_file_exists(path))
        return;
    h5u_init();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char *old = f >= 0 ? h5u_read_attr_str(f, "settings_hash") : NULL;
    if (f >= 0)
        H5Fclose(f);
    if (old && strcmp(old, hash) != 0)
        die_user("%s: this directory holds rounds made with other settings (hash %s, now %s); finished stages "
                 "would be reused: use a new iterate.out_dir (only iterate.rounds may change on a rerun)",
                 path, old, hash);
    free(old);
}

int cmd_iterate(int argc, char **argv)
{
    CliArgs a;
    PreferConfig cfg;
    if (cli_start(argc, argv, "iterate", usage, NULL, &a, &cfg))
        return 0;
    const IterateConfig *ic = &cfg.iterate;
    const char *init = *ic->init ? ic->init : cfg.model.init_from;
    if (!init || !*init)
        die_user("iterate: set iterate.init (or model.init_from) to the initial policy pi_0, e.g. the SFT model");
    if (strcmp(cfg.train.objective, "dpo") && strcmp(cfg.train.objective, "ipo"))
        die_user("iterate: train.objective = \"%s\": the geometric-mixture reference is exact only for dpo and ipo",
                 cfg.train.objective);
    if (ic->classes > ITER_MAX_CLASSES)
        die_user("iterate.classes = %d: at most %d", ic->classes, ITER_MAX_CLASSES);
    int n = ic->classes, rank = dist_rank();
    double *P = xmalloc(sizeof(double) * (size_t)n * n);
    double contraction = NAN, beta_tab = 1.0 / cfg.loss.beta;
    if (!strcmp(ic->oracle, "cyclic")) {
        if (dyn_cyclic(n, ic->cyclic_a, P) != 0)
            die_user("iterate.cyclic_a = %g, iterate.classes = %d: not a cyclic preference matrix", ic->cyclic_a, n);
        contraction = dyn_contraction(ic->alpha, beta_tab, ic->lambda, dyn_centered_norm(P, n));
    }
    util_mkdir_p(ic->out_dir);
    train_install_stop_handlers();
    RunLog *rl = NULL;
    if (rank == 0) {
        char *text = config_to_text(&cfg), *path = xasprintf("%s/iterate.h5", ic->out_dir), hash[17];
        settings_hash(&cfg, hash);
        check_settings(path, hash);
        rl = runlog_open(path, text, util_file_exists(path), 1);
        runlog_attr_str(rl, "settings_hash", hash);
        runlog_attr_str(rl, "oracle", ic->oracle);
        runlog_attr_str(rl, "objective", cfg.train.objective);
        free(text);
        free(path);
    }
    say("iterate: %d rounds, %s oracle, %s, alpha %g, beta %g (beta_tab %g), lambda %g, K %d, %d steps per round\n",
        ic->rounds, ic->oracle, cfg.train.objective, ic->alpha, cfg.loss.beta, beta_tab, ic->lambda, ic->k,
        ic->steps);
    if (!isnan(contraction))
        say("iterate: contraction constant alpha + (beta_tab lambda / 2) ||P - 11^T/2|| = %.4f (%s 1)\n", contraction,
            contraction < 1 ? "<" : ">=");
    int rc = 0;
    ExactStats xs;
    exact_stats_init(&xs, ic);
    PolicyStats prev, cur;
    int have_prev = 0;
    char *pol = xstrdup(init);
    for (int t = 0; t <= ic->rounds && rc == 0; t++) {
        double t0 = now_s();
        char *dir = xasprintf("%s/round_%d", ic->out_dir, t);
        util_mkdir_p(dir);
        char *s_pi = xasprintf("%s/samples_pi.h5", dir), *s_0 = xasprintf("%s/samples_pi0.h5", dir);
        char *s_mu = xasprintf("%s/samples.h5", dir), *prefs = xasprintf("%s/prefs.h5", dir);
        char *tdir = xasprintf("%s/train", dir), *next = xasprintf("%s/policy.h5", dir);
        uint64_t seed = (uint64_t)ic->seed * 1000003ULL + 4ULL * (uint64_t)t;
        /* pi_t's own samples: its statistics, and the on-policy part of the sampler */
        rc = run_sample(&a, pol, ic->data, s_pi, ic->k, seed);
        if (rc == 0) {
            policy_stats(pol, s_pi, n, &cur);
            exact_stats(&xs, pol, n);
            log_round(rl, t, ic, beta_tab, contraction, &cur, have_prev ? &prev : NULL, &xs);
            prev = cur;
            have_prev = 1;
        }
        if (rc == 0 && stop_requested())
            rc = PREFER_EXIT_PREEMPTED;
        if (t == ic->rounds || rc != 0)
            goto next_round;
        say("iterate: round %d/%d from %s\n", t + 1, ic->rounds, pol);
        const char *mu = s_pi;
        if (ic->lambda < 1.0 && t > 0) {
            rc = run_sample(&a, init, ic->data, s_0, ic->k, seed + 1);
            if (rc == 0 && !exists_all(s_mu)) {
                if (rank == 0)
                    mix_samples(s_pi, s_0, s_mu, ic->lambda, rng_at((uint64_t)ic->seed, 0x1717000000ULL + (uint64_t)t));
                dist_barrier();
            }
            mu = s_mu;
        }
        if (rc == 0 && !exists_all(prefs)) {
            if (!strcmp(ic->oracle, "cyclic")) {
                if (rank == 0)
                    label_cyclic(mu, prefs, P, n, rng_at((uint64_t)ic->seed, 0x2727000000ULL + (uint64_t)t));
                dist_barrier();
            } else {
                StageArgs s;
                stage_begin(&s, "label", &a);
                stage_set(&s, "label.in=%s", mu);
                stage_set(&s, "label.out=%s", prefs);
                stage_set(&s, "synth.pairs=all");
                stage_set(&s, "synth.seed=%llu", (unsigned long long)(seed + 2));
                rc = stage_run(&s, cmd_label);
                dist_barrier();
            }
        }
        if (rc == 0 && stop_requested())
            rc = PREFER_EXIT_PREEMPTED;
        if (rc == 0 && !exists_all(next)) {
            StageArgs s;
            stage_begin(&s, "train", &a);
            stage_set(&s, "train.data=%s", prefs);
            stage_set(&s, "train.out_dir=%s", tdir);
            stage_set(&s, "train.steps=%d", ic->steps);
            stage_set(&s, "train.resume=auto");
            stage_set(&s, "model.init_from=%s", pol);
            stage_set(&s, "train.ref=%s", init);
            stage_set(&s, "train.ref_mix=%s", ic->alpha > 0 ? pol : "");
            stage_set(&s, "train.ref_alpha=%.17g", ic->alpha);
            rc = stage_run(&s, cmd_train);
            if (rc == 0) {
                char *latest = xasprintf("%s/latest.h5", tdir);
                if (rank == 0)
                    util_copy_file(latest, next, 1);
                dist_barrier();
                free(latest);
            }
        }
        if (rc == 0) {
            free(pol);
            pol = xstrdup(next);
            say("iterate: round %d/%d done in %.1f s\n", t + 1, ic->rounds, now_s() - t0);
        }
    next_round:
        free(dir);
        free(s_pi);
        free(s_0);
        free(s_mu);
        free(prefs);
        free(tdir);
        free(next);
    }
    if (rc == 0)
        say("iterate: done; final policy %s, run log %s/iterate.h5\n", pol, ic->out_dir);
    else if (rc == PREFER_EXIT_PREEMPTED)
        say("iterate: stopped by a signal: rerun the same command to continue (exit code %d)\n", rc);
    runlog_close(rl);
    exact_stats_free(&xs);
    free(pol);
    free(P);
    config_free(&cfg);
    return rc;
}

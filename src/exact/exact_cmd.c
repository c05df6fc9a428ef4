/* exact_cmd.c: `prefer exact`: every distribution the DPO / DID papers talk about, exactly,
 * on the enumerable synthetic task (exact.h, docs/exact.md).
 *
 * Does: for each prompt of exact.data (a file of the synthetic task), log pi(y) and
 * log pi_ref(y) of every response y of the space (exact_logp_all), the true rewards and the
 * teacher's log-probs; from them, on the distributions normalised over the space, the masses,
 * entropies, KL(pi || pi_ref), KL(pi || pi*), KL(pi* || pi_ref), the DID entropy, expected
 * rewards, and the dataset's chosen/rejected log-likelihoods (the training forward's
 * unnormalised values, as in the trainer's logps/chosen); the means over prompts. Prompts are
 * split over the ranks in contiguous blocks and gathered to rank 0 bit for bit, so the file
 * is the same for any number of ranks (at a fixed thread count per rank: kv.h).
 * Does not: train, sample, or change exact.data.
 *
 * Results file, format "prefer.exact" version 1 (docs/formats.md): /<column> float64[P] for
 * every column of COLS, root attributes mean_<column> and the run's parameters, and with
 * exact.save_distributions /distributions/{logp_policy, logp_ref, reward} float64[P, n].
 */
#include "prefer/ckpt.h"
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/exact.h"
#include "prefer/gpt.h"
#include "prefer/h5util.h"
#include "prefer/prefdata.h"
#include "prefer/reflogp.h"
#include "prefer/runlog.h"
#include "prefer/runtime.h"
#include "prefer/synth.h"
#include "prefer/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXACT_FORMAT "prefer.exact"
#define EXACT_VERSION 1
/* Sequences per forward pass of the chosen/rejected log-likelihoods. */
#define EXACT_PAIR_BATCH 64

/* Per-prompt columns, in file and print order. */
enum {
    C_CARE, C_MASS, C_MASS_REF, C_ENTROPY, C_ENTROPY_REF, C_ENTROPY_OPT, C_KL_REF, C_KL_OPT, C_KL_OPT_REF,
    C_KL_TEACHER, C_KL_REF_TEACHER, C_L1_REF, C_DID_ENTROPY, C_REWARD, C_REWARD_REF, C_REWARD_OPT,
    C_LOGP_CHOSEN, C_LOGP_REJECTED, C_LOGP_CHOSEN_REF, C_LOGP_REJECTED_REF, C_N_PAIRS, NCOL
};
static const char *const COLS[NCOL] = {
    "care", "mass", "mass_ref", "entropy", "entropy_ref", "entropy_opt", "kl_ref", "kl_opt", "kl_opt_ref",
    "kl_teacher", "kl_ref_teacher", "l1_ref", "did_entropy", "reward", "reward_ref", "reward_opt",
    "logp_chosen", "logp_rejected", "logp_chosen_ref", "logp_rejected_ref", "n_pairs"};

static void usage(void)
{
    printf("usage: prefer exact CONFIG [--set section.key=value ...]\n\n"
           "Exact distributions on the enumerable synthetic task: with A = synth.vocab_size - 1 and\n"
           "n = synth.response_len - 1 every response is n tokens from 1..A then EOS, A^n of them per\n"
           "prompt (at most exact.max_responses). For each prompt of exact.data (a file of the task),\n"
           "log pi(y) of exact.policy and log pi_ref(y) of exact.ref for every response y, by KV-cache\n"
           "passes over the prefix tree; then, on the distributions normalised over the space:\n"
           "  mass, mass_ref      the models' probability of the space before normalising\n"
           "  entropy[_ref|_opt]  H(pi), H(pi_ref), H(pi*)   with pi* ~ pi_ref exp(r / exact.beta)\n"
           "  kl_ref kl_opt kl_opt_ref   KL(pi||pi_ref), KL(pi||pi*), KL(pi*||pi_ref)\n"
           "  kl_teacher kl_ref_teacher  KL(pi||teacher), KL(pi_ref||teacher)\n"
           "  l1_ref              ||pi - pi_ref||_1\n"
           "  did_entropy         H(q), the differential information q ~ pi / pi_ref\n"
           "  reward[_ref|_opt]   E[r] under pi, pi_ref, pi* (the task's true reward)\n"
           "  logp_chosen ...     mean log pi (and log pi_ref) of the dataset's chosen and rejected\n"
           "                      responses of the prompt (the models' own values, unnormalised)\n"
           "Writes exact.out (format prefer.exact: one float64[P] per quantity, mean_<name>\n"
           "attributes; with exact.save_distributions the whole log-prob arrays) and, if exact.runlog\n"
           "is set, a row of means in its \"exact\" table. Prompts are split over MPI ranks; the\n"
           "results do not depend on their number. Last line:\n"
           "  exact: kl_ref=K kl_opt=K did_entropy=H entropy=H mass=M\n");
}

/* The chosen and rejected log-likelihoods of every pair, mean per prompt, under one model:
 * out_c[P], out_r[P] (NaN without pairs), npairs[P]. Collective (reflogp_compute). */
static void pair_means(Gpt *m, const PrefData *d, int64_t P, double *out_c, double *out_r, double *npairs)
{
    double *lp = xmalloc(sizeof(double) * (size_t)(d->n_responses > 0 ? d->n_responses : 1));
    reflogp_compute(m, d, dist_rank(), dist_size(), EXACT_PAIR_BATCH, lp);
    for (int64_t p = 0; p < P; p++)
        out_c[p] = out_r[p] = npairs[p] = 0.0;
    for (int64_t i = 0; i < d->n_pairs; i++) {
        int64_t c = d->pair_chosen[i], p = d->response_prompt[c];
        if (p >= P)
            continue;
        out_c[p] += lp[c];
        out_r[p] += lp[d->pair_rejected[i]];
        npairs[p] += 1.0;
    }
    for (int64_t p = 0; p < P; p++) {
        out_c[p] = npairs[p] > 0 ? out_c[p] / npairs[p] : NAN;
        out_r[p] = npairs[p] > 0 ? out_r[p] / npairs[p] : NAN;
    }
    free(lp);
}

/* Work arrays of one prompt over the space (n each). */
typedef struct {
    double *pol, *ref, *rew, *teach, *tmp;
} PromptBufs;

/* Every column of prompt p (pair columns excluded) into row; raw log-probs and rewards kept
 * in b->pol/ref/rew until normalised here: the caller saves them first if it wants them. */
static void prompt_stats(PromptBufs *b, int64_t n, double beta, double *row)
{
    row[C_MASS] = exp(exact_normalize(b->pol, n));
    row[C_MASS_REF] = exp(exact_normalize(b->ref, n));
    row[C_ENTROPY] = exact_entropy(b->pol, n);
    row[C_ENTROPY_REF] = exact_entropy(b->ref, n);
    row[C_KL_REF] = exact_kl(b->pol, b->ref, n);
    row[C_L1_REF] = exact_l1(b->pol, b->ref, n);
    row[C_KL_TEACHER] = exact_kl(b->pol, b->teach, n);
    row[C_KL_REF_TEACHER] = exact_kl(b->ref, b->teach, n);
    row[C_REWARD] = exact_expect(b->pol, b->rew, n);
    row[C_REWARD_REF] = exact_expect(b->ref, b->rew, n);
    exact_did(b->pol, b->ref, n, b->tmp);
    row[C_DID_ENTROPY] = exact_entropy(b->tmp, n);
    exact_optimum(b->ref, b->rew, beta, n, b->tmp);
    row[C_ENTROPY_OPT] = exact_entropy(b->tmp, n);
    row[C_KL_OPT] = exact_kl(b->pol, b->tmp, n);
    row[C_KL_OPT_REF] = exact_kl(b->tmp, b->ref, n);
    row[C_REWARD_OPT] = exact_expect(b->tmp, b->rew, n);
}

/* Gather each rank's rows (count doubles each, prompts in rank order) to rank 0 bit for bit:
 * a fresh array there, NULL elsewhere. */
static double *gather_f64(const double *local, size_t count)
{
    size_t total = 0;
    int64_t *bits = dist_gatherv_i64((const int64_t *)(const void *)local, count, &total);
    return (double *)(void *)bits;
}

/* Mean over prompts of a column, skipping NaN (prompts without pairs); NaN if none. */
static double col_mean(const double *rows, int64_t P, int c)
{
    double s = 0.0;
    int64_t k = 0;
    for (int64_t p = 0; p < P; p++) {
        double v = rows[(size_t)p * NCOL + c];
        if (!isnan(v)) {
            s += v;
            k++;
        }
    }
    return k ? s / (double)k : NAN;
}

static int64_t ckpt_step(const char *path)
{
    int64_t step = -1;
    h5u_init();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
        h5u_read_attr_i64(f, "step", &step);
        H5Fclose(f);
    }
    return step;
}

static void write_results(const PreferConfig *cfg, const EnumSpace *s, double beta, int64_t P, const double *rows,
                          const double *means, double *const dists[3])
{
    const ExactConfig *ec = &cfg->exact;
    util_mkdir_parent(ec->out);
    char *tmp, *text = config_to_text(cfg);
    hid_t f = h5u_create_tmp(ec->out, "exact results (exact.out)", EXACT_FORMAT, EXACT_VERSION, text, &tmp);
    free(text);
    h5u_attr_str(f, "policy", ec->policy);
    h5u_attr_str(f, "ref", ec->ref);
    h5u_attr_str(f, "data", ec->data);
    h5u_attr_i64(f, "policy_step", ckpt_step(ec->policy));
    h5u_attr_f64(f, "beta", beta);
    h5u_attr_i64(f, "alphabet", s->alphabet);
    h5u_attr_i64(f, "free_tokens", s->len);
    h5u_attr_i64(f, "n_responses", s->n);
    h5u_attr_i64(f, "n_prompts", P);
    double *col = xmalloc(sizeof(double) * (size_t)(P > 0 ? P : 1));
    hsize_t dp[1] = {(hsize_t)P};
    for (int c = 0; c < NCOL; c++) {
        char name[64];
        for (int64_t p = 0; p < P; p++)
            col[p] = rows[(size_t)p * NCOL + c];
        snprintf(name, sizeof name, "/%s", COLS[c]);
        h5u_write_array(f, name, H5T_NATIVE_DOUBLE, 1, dp, col);
        snprintf(name, sizeof name, "mean_%s", COLS[c]);
        h5u_attr_f64(f, name, means[c]);
    }
    free(col);
    if (dists[0]) {
        static const char *const dn[3] = {"/distributions/logp_policy", "/distributions/logp_ref",
                                          "/distributions/reward"};
        hsize_t dd[2] = {(hsize_t)P, (hsize_t)s->n};
        for (int k = 0; k < 3; k++)
            h5u_write_array(f, dn[k], H5T_NATIVE_DOUBLE, 2, dd, dists[k]);
    }
    if (H5Fclose(f) < 0)
        die_user("%s: closing the exact results file failed", tmp);
    h5u_commit(tmp, ec->out);
    free(tmp);
}

static void append_runlog(const ExactConfig *ec, double beta, int64_t P, const double *means)
{
    const char *names[NCOL + 3];
    double vals[NCOL + 3];
    names[0] = "step";
    vals[0] = (double)ckpt_step(ec->policy);
    names[1] = "beta";
    vals[1] = beta;
    names[2] = "n_prompts";
    vals[2] = (double)P;
    for (int c = 0; c < NCOL; c++) {
        names[3 + c] = COLS[c];
        vals[3 + c] = means[c];
    }
    RunLog *rl = runlog_open(ec->runlog, NULL, RUNLOG_APPEND, 1);
    runlog_row(rl, "exact", NCOL + 3, names, vals);
    runlog_close(rl);
    say("exact: means appended to the \"exact\" table of %s\n", ec->runlog);
}

/* Load a checkpoint for exact_logp_all and the pairs' forward passes; checks its vocabulary
 * and context against the task. */
static void load_model(const char *path, const SynthTask *t, const EnumSpace *s, int longest, Gpt *m)
{
    ckpt_load_model(path, EXACT_PAIR_BATCH, longest, longest, m);
    if (m->d.vocab_size < t->vocab)
        die_user("%s: the model's vocabulary (%d) is smaller than the task's (synth_vocab_size %d)", path,
                 m->d.vocab_size, t->vocab);
    if (m->d.context < t->prompt_len + s->len)
        die_user("%s: the model's context (%d) cannot hold a prompt (%d) and a response's %d free tokens", path,
                 m->d.context, t->prompt_len, s->len);
}

int cmd_exact(int argc, char **argv)
{
    CliArgs a;
    PreferConfig cfg;
    if (cli_start(argc, argv, "exact", usage, NULL, &a, &cfg))
        return 0;
    runtime_setup(&cfg.runtime, 1);
    const ExactConfig *ec = &cfg.exact;
    int rank = dist_rank(), world = dist_size();
    double beta = ec->beta > 0 ? ec->beta : cfg.loss.beta, t0 = now_s();
    if (*ec->runlog && !h5u_is_hdf5(ec->runlog))
        die_user("exact.runlog = \"%s\": not an existing run log (give a run.h5 written by prefer train, or \"\")",
                 ec->runlog);

    PrefData data;
    prefdata_read(ec->data, 0, &data);
    SynthTask task;
    char err[1024];
    int trc = synth_task_from_file(ec->data, &task, err, sizeof err);
    if (trc != 0)
        die_user("exact.data: %s (prefer exact needs a file of the synthetic task, written by prefer synth)", err);
    if (synth_check_prompts(&task, &data, err, sizeof err) != 0)
        die_user("exact.data: %s", err);
    say("exact: %s: synthetic task with synth.vocab_size = %d, synth.prompt_len = %d, synth.response_len = %d\n",
        ec->data, task.vocab, task.prompt_len, task.response_len);
    EnumSpace s;
    enum_space_init(&s, &task, ec->max_responses);
    int64_t P = data.n_prompts;
    if (ec->n_prompts > 0 && ec->n_prompts < P)
        P = ec->n_prompts;
    if (P < 1)
        die_user("exact.data = %s has no prompts", ec->data);

    int longest = 2;
    for (int64_t r = 0; r < data.n_responses; r++) {
        int64_t p = data.response_prompt[r];
        int len = (int)((data.prompt_offsets[p + 1] - data.prompt_offsets[p]) +
                        (data.response_offsets[r + 1] - data.response_offsets[r]));
        longest = len > longest ? len : longest;
    }
    Gpt pol, ref;
    int seq = reflogp_seq_len(&data);
    longest = seq > longest ? seq : longest;
    load_model(ec->policy, &task, &s, longest, &pol);
    load_model(ec->ref, &task, &s, longest, &ref);
    say("exact: %lld prompts of %s, %d^%d = %lld responses each; policy %s, reference %s, beta %g, %d rank(s)\n",
        (long long)P, ec->data, s.alphabet, s.len, (long long)s.n, ec->policy, ec->ref, beta, world);

    /* the pairs' log-likelihoods (collective), then this rank's block of prompts */
    double *pc = xmalloc(sizeof(double) * (size_t)P), *pr = xmalloc(sizeof(double) * (size_t)P),
           *rc = xmalloc(sizeof(double) * (size_t)P), *rr = xmalloc(sizeof(double) * (size_t)P),
           *np = xmalloc(sizeof(double) * (size_t)P);
    pair_means(&pol, &data, P, pc, pr, np);
    pair_means(&ref, &data, P, rc, rr, np);
    int64_t p0 = P * rank / world, p1 = P * (rank + 1) / world, mine = p1 - p0;
    size_t n = (size_t)s.n;
    PromptBufs b;
    b.pol = xmalloc(sizeof(double) * n);
    b.ref = xmalloc(sizeof(double) * n);
    b.rew = xmalloc(sizeof(double) * n);
    b.teach = xmalloc(sizeof(double) * n);
    b.tmp = xmalloc(sizeof(double) * n);
    double *rows = xmalloc(sizeof(double) * NCOL * (size_t)(mine > 0 ? mine : 1));
    double *local_d[3] = {NULL, NULL, NULL};
    if (ec->save_distributions)
        for (int k = 0; k < 3; k++)
            local_d[k] = xmalloc(sizeof(double) * n * (size_t)(mine > 0 ? mine : 1));
    double t_start = now_s(), t_say = t_start;
    for (int64_t p = p0; p < p1; p++) {
        const int32_t *prompt = data.prompt_tokens + data.prompt_offsets[p];
        int lp = (int)(data.prompt_offsets[p + 1] - data.prompt_offsets[p]);
        double *row = rows + (size_t)(p - p0) * NCOL;
        exact_logp_all(&pol, prompt, lp, &s, b.pol);
        exact_logp_all(&ref, prompt, lp, &s, b.ref);
        exact_rewards(&task, p, &s, b.rew);
        exact_teacher_logp_all(&task, p, &s, b.teach);
        if (ec->save_distributions) {
            memcpy(local_d[0] + (size_t)(p - p0) * n, b.pol, sizeof(double) * n);
            memcpy(local_d[1] + (size_t)(p - p0) * n, b.ref, sizeof(double) * n);
            memcpy(local_d[2] + (size_t)(p - p0) * n, b.rew, sizeof(double) * n);
        }
        prompt_stats(&b, s.n, beta, row);
        row[C_CARE] = synth_care(&task, p);
        row[C_LOGP_CHOSEN] = pc[p];
        row[C_LOGP_REJECTED] = pr[p];
        row[C_LOGP_CHOSEN_REF] = rc[p];
        row[C_LOGP_REJECTED_REF] = rr[p];
        row[C_N_PAIRS] = np[p];
        double now = now_s();
        int64_t k = p - p0 + 1;
        if (now - t_say >= 5.0 || k == mine) {
            double rate = 2.0 * (double)k * (double)s.n / (now - t_start);
            say("exact: prompt %lld/%lld of rank 0 (%lld in all), %.0f responses/s per model, ETA %.0f s\n",
                (long long)k, (long long)mine, (long long)P, rate, (double)(mine - k) * (now - t_start) / (double)k);
            t_say = now;
        }
    }
    double t_enum = now_s() - t_start;
    double *all = gather_f64(rows, NCOL * (size_t)mine), *dists[3] = {NULL, NULL, NULL};
    for (int k = 0; k < 3; k++)
        if (local_d[k])
            dists[k] = gather_f64(local_d[k], n * (size_t)mine);
    if (rank == 0) {
        double means[NCOL];
        for (int c = 0; c < NCOL; c++)
            means[c] = col_mean(all, P, c);
        write_results(&cfg, &s, beta, P, all, means, dists);
        say("exact: %lld prompts x %lld responses x 2 models in %.1f s on rank 0 (%.0f responses/s per model); "
            "%.1f s in all\n",
            (long long)mine, (long long)s.n, t_enum, t_enum > 0 ? 2.0 * (double)mine * (double)s.n / t_enum : 0.0,
            now_s() - t0);
        say("exact: means over %lld prompts (distributions normalised over the space):\n", (long long)P);
        for (int c = 0; c < NCOL; c++)
            say("  %-18s %.6g\n", COLS[c], means[c]);
        say("exact: results in %s\n", ec->out);
        if (*ec->runlog)
            append_runlog(ec, beta, P, means);
        say("exact: kl_ref=%.6g kl_opt=%.6g did_entropy=%.6g entropy=%.6g mass=%.6g\n", means[C_KL_REF],
            means[C_KL_OPT], means[C_DID_ENTROPY], means[C_ENTROPY], means[C_MASS]);
    }
    free(all);
    for (int k = 0; k < 3; k++) {
        free(dists[k]);
        free(local_d[k]);
    }
    free(rows);
    free(b.pol);
    free(b.ref);
    free(b.rew);
    free(b.teach);
    free(b.tmp);
    free(pc);
    free(pr);
    free(rc);
    free(rr);
    free(np);
    gpt_free(&pol);
    gpt_free(&ref);
    synth_task_free(&task);
    prefdata_free(&data);
    config_free(&cfg);
    return 0;
}

/* eval.c: `prefer eval`: score a policy against its reference on held-out prompts.
 *
 * For every held-out prompt, eval.n_samples responses from the policy and from the
 * reference (the same sampling streams for both). Reported:
 *   reward      mean true reward of the policy's samples (synthetic task), with the standard
 *               error over prompts
 *   reward_ref  the same for the reference's samples
 *   kl          sequence KL(policy || reference): along each policy sample, the sum over its
 *               tokens of the full-vocabulary KL of the next-token distributions; mean over
 *               samples
 *   win_rate    P(policy sample k beats reference sample k on the true reward), ties 1/2
 *   pref_acc    share of held-out pairs whose implicit reward margin
 *               (log pi/ref of chosen minus of rejected) is positive
 * and, on the synthetic task, the exact optimum's reward at the policy's KL (synth.h).
 * With eval.reward = lexicon the reward is instead the AFINN sentiment score of each sample
 * decoded with eval.tokenizer (lexicon.h, docs/sentiment.md); no exact optimum then.
 * Prompts are split across ranks; the numbers do not depend on the number of ranks (up to
 * the order of floating-point sums). */
#include "prefer/bpe.h"
#include "prefer/ckpt.h"
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/gpt.h"
#include "prefer/h5util.h"
#include "prefer/lexicon.h"
#include "prefer/prefdata.h"
#include "prefer/reflogp.h"
#include "prefer/runlog.h"
#include "prefer/runtime.h"
#include "prefer/sample.h"
#include "prefer/synth.h"
#include "prefer/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Teacher-forced pass over prompt+response sequences: for each response token, the full
 * KL(p || q) of the two models' next-token distributions, summed per response into kl[i],
 * and the log-probs under both. */
static void kl_along(Gpt *pol, Gpt *ref, const PrefData *pr, int64_t p_begin, const SampleOut *so, int batch,
                     double *kl, double *lp_pol, double *lp_ref)
{
    int V = pol->d.vocab_size, T = pol->max_seq;
    batch = batch < pol->max_batch ? batch : pol->max_batch;
    batch = batch < ref->max_batch ? batch : ref->max_batch;
    size_t NT = (size_t)batch * T;
    int32_t *tok = xmalloc(sizeof(int32_t) * NT), *row = xmalloc(sizeof(int32_t) * NT),
            *tgt = xmalloc(sizeof(int32_t) * NT), *owner = xmalloc(sizeof(int32_t) * NT);
    double *lp1 = xmalloc(sizeof(double) * NT), *lp2 = xmalloc(sizeof(double) * NT);
    float *p1 = xmalloc(sizeof(float) * NT * V);
    for (int64_t i0 = 0; i0 < so->n; i0 += batch) {
        int B = (int)(so->n - i0 < batch ? so->n - i0 : batch), Tb = 1, nr = 0;
        for (int b = 0; b < B; b++) {
            int64_t i = i0 + b, p = p_begin + i / so->K;
            int lp = (int)(pr->prompt_offsets[p + 1] - pr->prompt_offsets[p]);
            int n = lp + so->len[i] - 1;
            Tb = n > Tb ? n : Tb;
        }
        memset(tok, 0, sizeof(int32_t) * (size_t)B * Tb);
        for (int b = 0; b < B; b++) {
            int64_t i = i0 + b, p = p_begin + i / so->K;
            const int32_t *pt = pr->prompt_tokens + pr->prompt_offsets[p], *rt = so->tokens + i * so->stride;
            int lp = (int)(pr->prompt_offsets[p + 1] - pr->prompt_offsets[p]), lr = so->len[i];
            for (int t = 0; t + 1 < lp + lr; t++)
                tok[(size_t)b * Tb + t] = t < lp ? pt[t] : rt[t - lp];
            for (int k = 0; k < lr; k++) {
                row[nr] = b * Tb + lp - 1 + k;
                tgt[nr] = rt[k];
                owner[nr++] = b;
            }
        }
        gpt_forward_rows(pol, tok, NULL, NULL, B, Tb, nr, row, tgt, lp1);
        memcpy(p1, gpt_row_probs(pol), sizeof(float) * (size_t)nr * V);
        gpt_forward_rows(ref, tok, NULL, NULL, B, Tb, nr, row, tgt, lp2);
        const float *p2 = gpt_row_probs(ref);
        for (int b = 0; b < B; b++) {
            kl[i0 + b] = 0;
            lp_pol[i0 + b] = 0;
            lp_ref[i0 + b] = 0;
        }
        for (int r = 0; r < nr; r++) {
            const float *a = p1 + (size_t)r * V, *q = p2 + (size_t)r * V;
            double s = 0;
            for (int v = 0; v < V; v++)
                if (a[v] > 0)
                    s += (double)a[v] * (log((double)a[v]) - log(q[v] > 1e-38f ? (double)q[v] : 1e-38));
            kl[i0 + owner[r]] += s > 0 ? s : 0;
            lp_pol[i0 + owner[r]] += lp1[r];
            lp_ref[i0 + owner[r]] += lp2[r];
        }
    }
    free(tok);
    free(row);
    free(tgt);
    free(owner);
    free(lp1);
    free(lp2);
    free(p1);
}


/* The results file: every printed number as a root attribute, the policy's own config
 * (from its checkpoint), and the exact optimum's reward/KL curve over these prompts. */
static void write_results(const PreferConfig *cfg, const SynthTask *task, int64_t P, const double *num,
                          const char *const *names, int n)
{
    const EvalConfig *ec = &cfg->eval;
    char *tmp, *text = config_to_text(cfg);
    hid_t f = h5u_create_tmp(ec->out, "eval results (eval.out)", "prefer.eval", 1, text, &tmp);
    free(text);
    h5u_attr_str(f, "policy", ec->policy);
    h5u_attr_str(f, "ref", ec->ref);
    h5u_attr_str(f, "data", ec->data);
    for (int i = 0; i < n; i++)
        h5u_attr_f64(f, names[i], num[i]);
    hid_t pf = H5Fopen(ec->policy, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (pf >= 0) {
        char *pc = h5u_read_attr_str(pf, "config");
        h5u_attr_str(f, "policy_config", pc ? pc : "");
        free(pc);
        H5Fclose(pf);
    }
    if (task && ec->frontier_points > 0) {
        int k = ec->frontier_points;
        double *b = xmalloc(sizeof(double) * k), *kl = xmalloc(sizeof(double) * k), *rw = xmalloc(sizeof(double) * k);
        for (int j = 0; j < k; j++) {
            /* beta from 100 down to 0.01 times the reward scale, log-spaced */
            b[j] = task->reward_scale * pow(10.0, 2.0 - 4.0 * j / (k > 1 ? k - 1 : 1));
            kl[j] = rw[j] = 0;
            for (int64_t p = 0; p < P; p++) {
                double r, d;
                synth_optimum(task, p, b[j], &r, &d);
                rw[j] += r / P;
                kl[j] += d / P;
            }
        }
        hsize_t dims[1] = {(hsize_t)k};
        h5u_write_array(f, "/frontier/beta", H5T_NATIVE_DOUBLE, 1, dims, b);
        h5u_write_array(f, "/frontier/kl", H5T_NATIVE_DOUBLE, 1, dims, kl);
        h5u_write_array(f, "/frontier/reward", H5T_NATIVE_DOUBLE, 1, dims, rw);
        free(b);
        free(kl);
        free(rw);
    }
    if (H5Fclose(f) < 0)
        die_user("%s: closing the eval results file failed", tmp);
    h5u_commit(tmp, ec->out);
    free(tmp);
    say("eval: results in %s\n", ec->out);
}

static void usage(void)
{
    printf("usage: prefer eval CONFIG [--set section.key=value ...]\n\n"
           "Samples eval.n_samples responses per held-out prompt (eval.data) from the policy\n"
           "(eval.policy) and the reference (eval.ref) and reports the mean true reward of each\n"
           "(synthetic task; standard error over prompts), the sequence KL(policy || reference)\n"
           "(full-vocabulary per-token KLs summed along the policy's samples), the policy's win\n"
           "rate over the reference under the true reward, the preference accuracy of the\n"
           "policy's implicit reward on the held-out pairs, and the exact optimum's reward at\n"
           "the policy's KL. With eval.reward = lexicon the reward is the AFINN sentiment of\n"
           "the samples decoded with eval.tokenizer (docs/sentiment.md). Last line:\n"
           "  eval: reward=R reward_ref=R0 kl=K win_rate=W pref_acc=A\n");
}

int cmd_eval(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    if (a.help) {
        usage();
        return 0;
    }
    cli_check_flags(&a, "eval", NULL);
    PreferConfig cfg;
    cli_load_config(&a, &cfg);
    runtime_setup(&cfg.runtime, 1);
    const EvalConfig *ec = &cfg.eval;
    int rank = dist_rank(), world = dist_size();
    double t0 = now_s();

    PrefData data;
    prefdata_read(ec->data, 0, &data);
    SynthTask task;
    char err[1024];
    int have_task = synth_task_from_file(ec->data, &task, err, sizeof err);
    if (have_task < 0)
        die_user("%s", err);
    have_task = have_task == 0;
    if (have_task && synth_check_prompts(&task, &data, err, sizeof err) != 0)
        die_user("%s", err);
    /* eval.reward = lexicon: the sentiment of the decoded samples replaces the true reward */
    Lexicon *lx = NULL;
    Bpe *bpe = NULL;
    if (!strcmp(ec->reward, "lexicon")) {
        if (!ec->lexicon[0] || !ec->tokenizer[0])
            die_user("eval: eval.reward = lexicon needs eval.lexicon (a file) and eval.tokenizer (a directory)");
        lx = lexicon_load_or_die(ec->lexicon);
        bpe = bpe_load_or_die(ec->tokenizer);
        if (have_task)
            synth_task_free(&task);
        have_task = 0;
    }

    int longest = 1;
    for (int64_t p = 0; p < data.n_prompts; p++) {
        int lp = (int)(data.prompt_offsets[p + 1] - data.prompt_offsets[p]);
        longest = lp + ec->max_len > longest ? lp + ec->max_len : longest;
    }
    for (int64_t r = 0; r < data.n_responses; r++) {
        int64_t p = data.response_prompt[r];
        int n = (int)((data.prompt_offsets[p + 1] - data.prompt_offsets[p]) + (data.response_offsets[r + 1] - data.response_offsets[r]));
        longest = n > longest ? n : longest;
    }
    Gpt pol, ref;
    int seq = reflogp_seq_len(&data);
    ckpt_load_model(ec->policy, ec->batch, longest, seq, &pol);
    ckpt_load_model(ec->ref, ec->batch, longest, seq, &ref);
    if (pol.d.vocab_size != ref.d.vocab_size)
        die_user("%s and %s have different vocabularies (%d, %d)", ec->policy, ec->ref, pol.d.vocab_size,
                 ref.d.vocab_size);
    if (data.vocab_size > pol.d.vocab_size)
        die_user("%s: vocab_size %lld exceeds the model's %d", ec->data, (long long)data.vocab_size, pol.d.vocab_size);

    /* this rank's prompts */
    int64_t P = data.n_prompts, p0 = P * rank / world, p1 = P * (rank + 1) / world;
    int K = ec->n_samples;
    SampleParams sp = {.temperature = ec->temperature, .top_k = 0, .top_p = 1.0, .max_len = ec->max_len, .eos = ec->eos,
                       .seed = (uint64_t)ec->seed};
    SampleOut so_pol, so_ref;
    memset(&so_pol, 0, sizeof so_pol);
    memset(&so_ref, 0, sizeof so_ref);
    /* sums: [0] reward, [1] reward^2 over prompts of per-prompt mean, [2] ref reward, [3] ref^2,
     * [4] kl, [5] wins, [6] responses, [7] prompts, [8] pairs correct, [9] pairs,
     * [10] logratio (log pi - log ref) along samples */
    double s[11] = {0};
    if (p1 > p0) {
        sample_responses(&pol, &data, p0, p1, K, &sp, ec->batch, &so_pol);
        sample_responses(&ref, &data, p0, p1, K, &sp, ec->batch, &so_ref);
        int64_t n = so_pol.n;
        double *kl = xmalloc(sizeof(double) * n), *l1 = xmalloc(sizeof(double) * n), *l2 = xmalloc(sizeof(double) * n);
        kl_along(&pol, &ref, &data, p0, &so_pol, ec->batch, kl, l1, l2);
        for (int64_t p = p0; p < p1; p++) {
            double mp = 0, mr = 0;
            for (int k = 0; k < K; k++) {
                int64_t i = (p - p0) * K + k;
                double rp = 0, rr = 0;
                if (have_task) {
                    rp = synth_reward(&task, p, so_pol.tokens + i * so_pol.stride, so_pol.len[i]);
                    rr = synth_reward(&task, p, so_ref.tokens + i * so_ref.stride, so_ref.len[i]);
                } else if (lx) {
                    rp = lexicon_score_ids(lx, bpe, so_pol.tokens + i * so_pol.stride, (size_t)so_pol.len[i], bpe_eot(bpe));
                    rr = lexicon_score_ids(lx, bpe, so_ref.tokens + i * so_ref.stride, (size_t)so_ref.len[i], bpe_eot(bpe));
                }
                mp += rp / K;
                mr += rr / K;
                s[4] += kl[i];
                s[5] += rp > rr ? 1.0 : rp == rr ? 0.5 : 0.0;
                s[6] += 1;
                s[10] += l1[i] - l2[i];
            }
            s[0] += mp;
            s[1] += mp * mp;
            s[2] += mr;
            s[3] += mr * mr;
            s[7] += 1;
        }
        free(kl);
        free(l1);
        free(l2);
    }
    /* preference accuracy on the held-out pairs: each rank takes a share of the responses */
    if (data.n_pairs > 0) {
        double *lp_pol = xmalloc(sizeof(double) * data.n_responses), *lp_ref = xmalloc(sizeof(double) * data.n_responses);
        reflogp_compute(&pol, &data, rank, world, ec->batch, lp_pol);
        reflogp_compute(&ref, &data, rank, world, ec->batch, lp_ref);
        if (rank == 0)
            for (int64_t i = 0; i < data.n_pairs; i++) {
                int64_t c = data.pair_chosen[i], r = data.pair_rejected[i];
                double h = (lp_pol[c] - lp_ref[c]) - (lp_pol[r] - lp_ref[r]);
                s[8] += h > 0 ? 1.0 : h == 0 ? 0.5 : 0.0;
                s[9] += 1;
            }
        free(lp_pol);
        free(lp_ref);
    }
    dist_allreduce_sum_f64(s, 11);
    double np = s[7] > 0 ? s[7] : 1, nr = s[6] > 0 ? s[6] : 1;
    double reward = s[0] / np, reward_ref = s[2] / np;
    double se = np > 1 ? sqrt(fmax(0, (s[1] / np - reward * reward)) / (np - 1)) : 0;
    double se_ref = np > 1 ? sqrt(fmax(0, (s[3] / np - reward_ref * reward_ref)) / (np - 1)) : 0;
    double kl = s[4] / nr, win = s[5] / nr, acc = s[9] > 0 ? s[8] / s[9] : NAN;
    say("eval: %s against %s on %lld prompts of %s, %d samples each (%.1f s)\n", ec->policy, ec->ref, (long long)P,
        ec->data, K, now_s() - t0);
    double opt = NAN, beta = NAN, teacher = NAN;
    if (have_task) {
        say("eval: true reward   policy %.4f +- %.4f   reference %.4f +- %.4f   (difference %.2f standard errors)\n",
            reward, se, reward_ref, se_ref, (reward - reward_ref) / sqrt(se * se + se_ref * se_ref + 1e-300));
        opt = NAN;
        beta = NAN;
        teacher = NAN;
        int frc = synth_frontier(&task, NULL, P, kl, &opt, &beta);
        synth_frontier(&task, NULL, P, 0, &teacher, NULL);
        say("eval: exact optimum at the policy's KL %.4f: reward %.4f (beta %.4g%s); teacher's reward %.4f\n", kl, opt,
            beta, frc == 1 ? ", KL beyond the reachable maximum" : "", teacher);
    } else if (lx) {
        say("eval: lexicon reward (%s)   policy %.4f +- %.4f   reference %.4f +- %.4f   (difference %.2f standard errors)\n",
            ec->lexicon, reward, se, reward_ref, se_ref, (reward - reward_ref) / sqrt(se * se + se_ref * se_ref + 1e-300));
    } else {
        say("eval: %s is not a file of the synthetic task: no true reward (%s)\n", ec->data, err);
    }
    say("eval: sample log-ratio E[log pi - log ref] = %.4f (a Monte Carlo estimate of the same KL)\n", s[10] / nr);
    if (ec->out && *ec->out && rank == 0) {
        static const char *const names[] = {"reward", "reward_se", "reward_ref", "reward_ref_se", "kl", "kl_mc",
                                            "win_rate", "pref_acc", "optimum_reward", "optimum_beta",
                                            "teacher_reward", "n_prompts", "n_samples"};
        double num[] = {reward, se, reward_ref, se_ref, kl, s[10] / nr, win, acc, opt, beta, teacher, (double)P, K};
        write_results(&cfg, have_task ? &task : NULL, P, num, names, (int)(sizeof num / sizeof num[0]));
    }
    if (ec->log && rank == 0) {
        /* a row in the "eval" table of the policy's run log (out_dir/run.h5 beside it) */
        char *dir = xstrdup(ec->policy), *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        char *path = xasprintf("%s/run.h5", slash ? dir : ".");
        if (h5u_is_hdf5(path)) {
            int64_t step = -1;
            hid_t pf = H5Fopen(ec->policy, H5F_ACC_RDONLY, H5P_DEFAULT);
            if (pf >= 0) {
                h5u_read_attr_i64(pf, "step", &step);
                H5Fclose(pf);
            }
            static const char *const en[] = {"step", "reward", "reward_se", "reward_ref", "reward_ref_se", "kl", "kl_mc",
                                             "win_rate", "pref_acc", "optimum_reward", "n_prompts", "n_samples"};
            double ev[] = {(double)step, reward, se, reward_ref, se_ref, kl, s[10] / nr, win, acc, opt, (double)P, K};
            RunLog *rl = runlog_open(path, NULL, RUNLOG_APPEND, 1);
            runlog_row(rl, "eval", 12, en, ev);
            runlog_close(rl);
            say("eval: results appended to the \"eval\" table of %s\n", path);
        }
        free(path);
        free(dir);
    }
    say("eval: reward=%.4f reward_ref=%.4f kl=%.4f win_rate=%.4f pref_acc=%.4f\n", reward, reward_ref, kl, win, acc);
    sample_out_free(&so_pol);
    sample_out_free(&so_ref);
    if (have_task)
        synth_task_free(&task);
    lexicon_free(lx);
    bpe_free(bpe);
    gpt_free(&pol);
    gpt_free(&ref);
    prefdata_free(&data);
    config_free(&cfg);
    return 0;
}

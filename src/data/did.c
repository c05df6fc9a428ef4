/* did.c: DID preference data on an enumerable synthetic task (papers.md section 5, docs/did.md).
 *
 * For each prompt, over every response y of the enumerable space (exact.h):
 *   pi_ref   the reference: a checkpoint's exact distribution (synth.did_ref), or the teacher's
 *   pi*      ~ pi_ref exp(r / beta), the KL-regularised optimum of the true reward at loss.beta
 *   pi_l     ~ pi_ref^(1+beta) / pi*^beta, the DID-optimal rejected sampler (the power-law
 *            condition); algebraically pi_l ~ pi_ref exp(-r): it does not depend on beta
 * and synth.did_pairs pairs (chosen, rejected), each response drawn exactly (inverse CDF):
 *   chosen   from pi* (optimum), pi_ref (reference), or the best by true reward of synth.k
 *            draws from pi_ref (reference_best)
 *   rejected from pi_ref (reference), pi_l (did), or pi_l with probability did_mix and else
 *            pi_ref (mix).
 * Every pair gets its own two responses. The file records the choices and, per prompt and on
 * average, the entropy of the data's differential information q ~ pi_c / pi_rej (the chosen
 * distribution over the rejected one), exactly.
 *
 * What DPO should learn from it: with pairs always ordered (chosen from pi_c, rejected from
 * pi_rej), the population DPO loss over a tabular policy is a Bradley-Terry fit with
 * beta (log pi/pi_ref)(y) = log pi_c(y)/pi_rej(y) + const, so DPO's optimum is
 *   pi_dpo ~ pi_ref (pi_c / pi_rej)^(1/beta).
 * It equals pi* for (chosen reference, rejected did): then pi_ref/pi_l ~ (pi* / pi_ref)^beta, the
 * power-law condition. The file stores KL(pi_dpo || pi*) (mean over prompts) as did_kl_dpo_star:
 * the divergence a perfectly trained DPO policy keeps from pi* on this kind of data.
 *
 * Randomness: pair j of prompt i draws from its own key rng_at(rng_at(k, i), j), k the key of
 * (synth.seed, split): counter 0 the chosen, 1 the rejected, 2.. reference_best's extra draws,
 * so the file is a pure function of the seed, the prompt and the pair.
 */
#include "prefer/did.h"

#include "prefer/ckpt.h"
#include "prefer/exact.h"
#include "prefer/rng.h"
#include "prefer/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DID_STREAM 13

static double u01(uint64_t key, uint64_t i) { return (double)(rng_at(key, i) >> 11) * 0x1.0p-53; }

int did_enabled(const SynthConfig *sc) { return strcmp(sc->rejected_from, "teacher") != 0; }

void did_make_prefs(SynthTask *t, const SynthConfig *sc, double beta, int split, int64_t n_prompts, PrefData *out,
                    DidStats *st)
{
    if (!(beta > 0))
        die_user("synth: DID data needs loss.beta > 0 (got %g)", beta);
    synth_task_bind(t, split, 0);
    EnumSpace s;
    enum_space_init(&s, t, sc->did_max_responses);
    int nt = enum_tokens(&s), P = t->prompt_len, K = sc->did_pairs;
    Gpt ref;
    int use_model = sc->did_ref && *sc->did_ref;
    if (use_model)
        ckpt_load_model(sc->did_ref, 1, P + nt, 0, &ref);
    int64_t N = s.n, R = 2 * (int64_t)K * n_prompts;
    double *lref = xmalloc(sizeof(double) * (size_t)N), *r = xmalloc(sizeof(double) * (size_t)N);
    double *lstar = xmalloc(sizeof(double) * (size_t)N), *ll = xmalloc(sizeof(double) * (size_t)N);
    double *lq = xmalloc(sizeof(double) * (size_t)N), *ldpo = xmalloc(sizeof(double) * (size_t)N);
    double *lmix = xmalloc(sizeof(double) * (size_t)N);
    memset(out, 0, sizeof *out);
    out->n_prompts = n_prompts;
    out->n_responses = R;
    out->n_pairs = (int64_t)K * n_prompts;
    out->vocab_size = t->vocab;
    out->prompt_tokens = xmalloc(sizeof(int32_t) * (size_t)(n_prompts * P));
    out->prompt_offsets = xmalloc(sizeof(int64_t) * (size_t)(n_prompts + 1));
    out->response_tokens = xmalloc(sizeof(int32_t) * (size_t)(R * nt));
    out->response_offsets = xmalloc(sizeof(int64_t) * (size_t)(R + 1));
    out->response_prompt = xmalloc(sizeof(int64_t) * (size_t)R);
    out->response_score = xmalloc(sizeof(float) * (size_t)R);
    out->pair_chosen = xmalloc(sizeof(int64_t) * (size_t)out->n_pairs);
    out->pair_rejected = xmalloc(sizeof(int64_t) * (size_t)out->n_pairs);
    memset(st, 0, sizeof *st);
    st->n_responses = N;
    uint64_t key = rng_at((uint64_t)sc->seed, (uint64_t)(DID_STREAM + split));
    int chosen_opt = !strcmp(sc->chosen_from, "optimum"), chosen_best = !strcmp(sc->chosen_from, "reference_best");
    double mixw = !strcmp(sc->rejected_from, "did") ? 1.0 : !strcmp(sc->rejected_from, "mix") ? sc->did_mix : 0.0;
    double t0 = now_s();
    for (int64_t i = 0; i < n_prompts; i++) {
        int32_t *prompt = out->prompt_tokens + i * P;
        synth_prompt(t, i, prompt);
        out->prompt_offsets[i] = i * P;
        if (use_model) {
            exact_logp_all(&ref, prompt, P, &s, lref);
            exact_normalize(lref, N);
        } else {
            exact_teacher_logp_all(t, i, &s, lref);
        }
        exact_rewards(t, i, &s, r);
        exact_optimum(lref, r, beta, N, lstar);
        for (int64_t y = 0; y < N; y++)
            ll[y] = (1.0 + beta) * lref[y] - beta * lstar[y];
        exact_normalize(ll, N);
        /* the rejected distribution: the mixture (1 - w) pi_ref + w pi_l */
        for (int64_t y = 0; y < N; y++) {
            double a = mixw > 0 ? log(mixw) + ll[y] : -INFINITY, b = mixw < 1 ? log1p(-mixw) + lref[y] : -INFINITY;
            double m = a > b ? a : b;
            lmix[y] = m == -INFINITY ? -INFINITY : m + log(exp(a - m) + exp(b - m));
        }
        /* the chosen distribution (reference_best has none in closed form: its DID entropy and
         * DPO optimum are left out) */
        const double *lc = chosen_opt ? lstar : chosen_best ? NULL : lref;
        if (lc) {
            for (int64_t y = 0; y < N; y++)
                lq[y] = lc[y] - lmix[y];
            exact_normalize(lq, N);
            st->did_entropy += exact_entropy(lq, N) / (double)n_prompts;
            for (int64_t y = 0; y < N; y++)
                ldpo[y] = lref[y] + (lc[y] - lmix[y]) / beta;
            exact_normalize(ldpo, N);
            st->kl_dpo_star += exact_kl(ldpo, lstar, N) / (double)n_prompts;
        } else {
            st->did_entropy = st->kl_dpo_star = NAN;
        }
        st->kl_star_ref += exact_kl(lstar, lref, N) / (double)n_prompts;
        st->reward_star += exact_expect(lstar, r, N) / (double)n_prompts;
        st->reward_ref += exact_expect(lref, r, N) / (double)n_prompts;
        for (int j = 0; j < K; j++) {
            uint64_t kp = rng_at(rng_at(key, (uint64_t)i), (uint64_t)j);
            int64_t yc;
            if (chosen_best) {
                yc = exact_sample_index(lref, N, u01(kp, 0));
                for (int k = 1; k < sc->k; k++) {
                    int64_t y = exact_sample_index(lref, N, u01(kp, 1 + (uint64_t)k));
                    yc = r[y] > r[yc] ? y : yc;
                }
            } else {
                yc = exact_sample_index(lc, N, u01(kp, 0));
            }
            int64_t yr = exact_sample_index(lmix, N, u01(kp, 1));
            int64_t e = (int64_t)i * K + j, rc = 2 * e, rr = 2 * e + 1;
            enum_response(&s, yc, out->response_tokens + rc * nt);
            enum_response(&s, yr, out->response_tokens + rr * nt);
            out->response_score[rc] = (float)r[yc];
            out->response_score[rr] = (float)r[yr];
            out->response_prompt[rc] = out->response_prompt[rr] = i;
            out->pair_chosen[e] = rc;
            out->pair_rejected[e] = rr;
            st->n_same += yc == yr;
            st->n_chosen_better += r[yc] > r[yr];
        }
        if (n_prompts >= 8 && (i + 1) % (n_prompts / 8) == 0)
            say("synth: DID data: prompt %lld/%lld (%.1f s)\n", (long long)(i + 1), (long long)n_prompts,
                now_s() - t0);
    }
    out->prompt_offsets[n_prompts] = n_prompts * P;
    for (int64_t e = 0; e <= R; e++)
        out->response_offsets[e] = e * nt;
    free(lref);
    free(r);
    free(lstar);
    free(ll);
    free(lq);
    free(ldpo);
    free(lmix);
    if (use_model)
        gpt_free(&ref);
}

void did_put_attrs(hid_t f, const SynthConfig *sc, double beta, const DidStats *st)
{
    h5u_attr_str(f, "did_chosen_from", sc->chosen_from);
    h5u_attr_str(f, "did_rejected_from", sc->rejected_from);
    h5u_attr_f64(f, "did_mix", sc->did_mix);
    h5u_attr_f64(f, "did_beta", beta);
    h5u_attr_str(f, "did_ref", sc->did_ref && *sc->did_ref ? sc->did_ref : "teacher");
    h5u_attr_f64(f, "did_entropy", st->did_entropy);
    h5u_attr_f64(f, "did_kl_dpo_star", st->kl_dpo_star);
    h5u_attr_f64(f, "did_kl_star_ref", st->kl_star_ref);
    h5u_attr_f64(f, "did_reward_star", st->reward_star);
    h5u_attr_f64(f, "did_reward_ref", st->reward_ref);
    h5u_attr_f64(f, "did_space", (double)st->n_responses);
}

/* test_did.c: DID preference data (did.h) on a tiny enumerable task.
 *
 * Over a space of 3^2 = 9 responses (vocab 4, response_len 3) with the teacher as reference:
 * the rejected draws of rejected_from = did follow the power-law sampler's formula
 * pi_l ~ pi_ref^(1+beta) / pi*^beta, computed here from the teacher's and the reward's
 * definitions (chi-square over 9 cells at 40000 draws); reference draws follow pi_ref; mix
 * draws follow (1-w) pi_ref + w pi_l; chosen = optimum draws follow pi*; the stored DPO
 * optimum divergence is 0 exactly for (chosen reference, rejected did) and > 0 otherwise;
 * the DID entropy of (reference, reference) is log 9. Runs without MPI.
 */
#include "prefer/did.h"
#include "prefer/config.h"
#include "prefer/exact.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NP 1
#define PAIRS 40000

static PreferConfig cfg;
static SynthTask task;

static void setup(void)
{
    config_defaults(&cfg);
    cfg.synth.vocab_size = 4;
    cfg.synth.prompt_len = 3;
    cfg.synth.response_len = 3;
    cfg.synth.seed = 11;
    cfg.synth.did_pairs = PAIRS;
    cfg.synth.care_sigma = 0.3;
    cfg.synth.care_indifferent = 0;
    synth_task_init(&task, &cfg.synth);
}

/* index of response r of d in the space */
static int64_t idx(const EnumSpace *s, const PrefData *d, int64_t r)
{
    return enum_index(s, d->response_tokens + d->response_offsets[r], d->response_offsets[r + 1] - d->response_offsets[r]);
}

/* chi-square of the draws (chosen or rejected) against probabilities p[9] */
static double chi2(const PrefData *d, const EnumSpace *s, int rejected, const double *p)
{
    double cnt[16] = {0};
    for (int64_t e = 0; e < d->n_pairs; e++) {
        int64_t y = idx(s, d, rejected ? d->pair_rejected[e] : d->pair_chosen[e]);
        CU_ASSERT_FATAL(y >= 0 && y < s->n);
        cnt[y] += 1;
    }
    double x = 0;
    for (int64_t y = 0; y < s->n; y++) {
        double ex = p[y] * (double)d->n_pairs;
        x += (cnt[y] - ex) * (cnt[y] - ex) / ex;
    }
    return x;
}

/* The formulas, from the definitions: pi_ref(y) = prod teacher P(y_t | y_{t-1}), r = care * sum w */
static void formulas(const EnumSpace *s, double beta, double w, double *pref, double *pstar, double *pl, double *pmix)
{
    int32_t prompt[8], y[8];
    synth_prompt(&task, 0, prompt);
    double zs = 0, zl = 0, zr = 0;
    for (int64_t i = 0; i < s->n; i++) {
        enum_response(s, i, y);
        double lp = 0;
        int prev = prompt[task.prompt_len - 1];
        for (int t = 0; t < s->len; t++) {
            lp += synth_teacher_logprob(&task.teacher, prev, y[t]);
            prev = y[t];
        }
        double r = synth_reward(&task, 0, y, s->len + 1);
        pref[i] = exp(lp);
        zr += pref[i];
        pstar[i] = pref[i] * exp(r / beta);
        zs += pstar[i];
    }
    for (int64_t i = 0; i < s->n; i++) {
        pref[i] /= zr;
        pstar[i] /= zs;
        pl[i] = pow(pref[i], 1 + beta) / pow(pstar[i], beta);
        zl += pl[i];
    }
    for (int64_t i = 0; i < s->n; i++) {
        pl[i] /= zl;
        pmix[i] = (1 - w) * pref[i] + w * pl[i];
    }
}

static void make(const char *chosen, const char *rejected, PrefData *d, DidStats *st)
{
    free(cfg.synth.chosen_from);
    free(cfg.synth.rejected_from);
    cfg.synth.chosen_from = xstrdup(chosen);
    cfg.synth.rejected_from = xstrdup(rejected);
    did_make_prefs(&task, &cfg.synth, 0.7, SYNTH_SPLIT_TRAIN, NP, d, st);
}

static void test_samplers(void)
{
    EnumSpace s;
    enum_space_init(&s, &task, 100);
    CU_ASSERT_EQUAL(s.n, 9);
    double pref[9], pstar[9], pl[9], pmix[9];
    cfg.synth.did_mix = 0.3;
    formulas(&s, 0.7, 0.3, pref, pstar, pl, pmix);
    /* pi_l must differ from pi_ref noticeably, else the test could not tell them apart */
    double tv = 0;
    for (int i = 0; i < 9; i++)
        tv += fabs(pl[i] - pref[i]);
    CU_ASSERT(tv > 0.1);
    PrefData d;
    DidStats st;
    /* chi-square, 8 degrees of freedom: P(X > 26.1) = 0.001 */
    make("optimum", "did", &d, &st);
    CU_ASSERT_EQUAL(d.n_pairs, PAIRS);
    CU_ASSERT(chi2(&d, &s, 1, pl) < 26.1);
    CU_ASSERT(chi2(&d, &s, 1, pref) > 200); /* and not the reference */
    CU_ASSERT(chi2(&d, &s, 0, pstar) < 26.1);
    CU_ASSERT(st.kl_dpo_star > 1e-3);
    char err[256];
    CU_ASSERT_EQUAL(prefdata_validate(&d, err, sizeof err), 0);
    prefdata_free(&d);
    make("reference", "reference", &d, &st);
    CU_ASSERT(chi2(&d, &s, 1, pref) < 26.1);
    CU_ASSERT(chi2(&d, &s, 0, pref) < 26.1);
    CU_ASSERT(fabs(st.did_entropy - log(9.0)) < 1e-9);
    prefdata_free(&d);
    make("reference", "mix", &d, &st);
    CU_ASSERT(chi2(&d, &s, 1, pmix) < 26.1);
    prefdata_free(&d);
    /* the power-law condition: DPO's population optimum is pi* itself */
    make("reference", "did", &d, &st);
    CU_ASSERT(fabs(st.kl_dpo_star) < 1e-9);
    prefdata_free(&d);
}

int main(void)
{
    setup();
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite su = CU_add_suite("did", NULL, NULL);
    CU_add_test(su, "DID samplers against their formulas", test_samplers);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int f = (int)CU_get_number_of_failures();
    CU_cleanup_registry();
    synth_task_free(&task);
    config_free(&cfg);
    return f != 0;
}

/* test_mixref.c: the geometric-mixture reference of iterative alignment (train.ref_mix,
 * docs/iterate.md) on enumerated distributions.
 *
 * Two random tiny models over the space of every token string of length 3 over 4 tokens
 * (64 responses; exact.h): the explicit geometric mixture pi_mix ~ pi_1^alpha pi_2^(1-alpha),
 * normalised by enumeration, sums to 1; and for every pair of responses the DPO and IPO losses
 * (and their gradients) with the explicit mixture as reference equal those with the trainer's
 * unnormalised alpha log pi_1 + (1 - alpha) log pi_2 (the normaliser cancels in a pair), to
 * 1e-12. The same losses with the arithmetic mixture as reference differ (so the check can
 * fail). Runs without MPI.
 */
#include "prefer/config.h"
#include "prefer/exact.h"
#include "prefer/gpt.h"
#include "prefer/losses.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define V 4
#define LEN 3

static void model(Gpt *m, uint64_t seed)
{
    GptDims d = {V, 8, 1, 2, 8};
    gpt_init(m, &d, 16);
    gpt_init_weights(m, seed, 0.5); /* large weights: distributions far from uniform */
}

static void test_mixture(void)
{
    Gpt a, b, pol;
    model(&a, 1);
    model(&b, 2);
    model(&pol, 3);
    EnumSpace s;
    enum_space_init_all(&s, V, LEN, 1000);
    int64_t N = s.n;
    CU_ASSERT_EQUAL_FATAL(N, 64);
    int32_t prompt[2] = {1, 2};
    double *la = xmalloc(sizeof(double) * N), *lb = xmalloc(sizeof(double) * N), *lp = xmalloc(sizeof(double) * N);
    double *mix = xmalloc(sizeof(double) * N), *unn = xmalloc(sizeof(double) * N), *ari = xmalloc(sizeof(double) * N);
    exact_logp_all(&a, prompt, 2, &s, la);
    exact_logp_all(&b, prompt, 2, &s, lb);
    exact_logp_all(&pol, prompt, 2, &s, lp);
    /* a model's probabilities over every string sum to 1: the space is complete */
    CU_ASSERT(fabs(exact_logsumexp(la, N)) < 1e-9);
    double alpha = 0.35, sum = 0;
    for (int64_t y = 0; y < N; y++) {
        unn[y] = alpha * la[y] + (1 - alpha) * lb[y];
        mix[y] = unn[y];
        ari[y] = log(alpha * exp(la[y]) + (1 - alpha) * exp(lb[y]));
    }
    double logz = exact_normalize(mix, N);
    for (int64_t y = 0; y < N; y++)
        sum += exp(mix[y]);
    CU_ASSERT(fabs(sum - 1) < 1e-12);
    CU_ASSERT(logz < -1e-3); /* Hoelder: the geometric mixture's mass is below 1, so Z matters */
    PreferConfig cfg;
    config_defaults(&cfg);
    for (int obj = 0; obj < 2; obj++) {
        free(cfg.train.objective);
        cfg.train.objective = xstrdup(obj ? "ipo" : "dpo");
        LossSpec ls;
        char err[256];
        CU_ASSERT_EQUAL_FATAL(loss_spec_parse(&ls, &cfg, err, sizeof err), 0);
        double maxd = 0, maxg = 0, maxa = 0;
        for (int64_t c = 0; c < N; c++)
            for (int64_t r = 0; r < N; r += 7) {
                if (c == r)
                    continue;
                PairLogps p[3] = {{lp[c], lp[r], mix[c], mix[r], LEN, LEN},
                                  {lp[c], lp[r], unn[c], unn[r], LEN, LEN},
                                  {lp[c], lp[r], ari[c], ari[r], LEN, LEN}};
                double l[3], dc[3], dr[3];
                for (int k = 0; k < 3; k++)
                    loss_batch(&ls, 1, &p[k], &l[k], &dc[k], &dr[k], NULL);
                maxd = fmax(maxd, fabs(l[0] - l[1]));
                maxg = fmax(maxg, fmax(fabs(dc[0] - dc[1]), fabs(dr[0] - dr[1])));
                maxa = fmax(maxa, fabs(l[0] - l[2]));
            }
        CU_ASSERT(maxd < 1e-12);
        CU_ASSERT(maxg < 1e-12);
        CU_ASSERT(maxa > 1e-3);
    }
    config_free(&cfg);
    free(la);
    free(lb);
    free(lp);
    free(mix);
    free(unn);
    free(ari);
    gpt_free(&a);
    gpt_free(&b);
    gpt_free(&pol);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite su = CU_add_suite("mixref", NULL, NULL);
    CU_add_test(su, "geometric-mixture reference = explicit mixing (DPO, IPO)", test_mixture);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int f = (int)CU_get_number_of_failures();
    CU_cleanup_registry();
    return f != 0;
}

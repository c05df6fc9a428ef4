/* test_exact.c: the enumerable space and exact distributions (exact.h).
 *
 * (a) over every token string of a tiny random model (V = 3 and 4, 2-3 tokens) the
 *     enumerated probabilities sum to 1;
 * (b) exact_logp_all equals, for every response, a direct token-by-token computation of
 *     that response alone (KV cache, one slot: the same arithmetic, so equal to 1e-12
 *     relative; in fact bit for bit), and the training forward gpt_forward to float
 *     rounding; the result is the same bits for every slot depth, chunking and thread count;
 * (c) entropy, KL, L1, expectation, DID, optimum, normalisation and the CDF inversion
 *     against hand values on 3-4 element distributions; the space's order and index;
 * (d) the optimum pi* ~ teacher exp(r / beta) by enumeration agrees with synth_optimum's
 *     dynamic programme (reward and KL, 1e-9) on a small task, for several betas.
 */
#include "prefer/config.h"
#include "prefer/exact.h"
#include "prefer/gpt.h"
#include "prefer/kv.h"
#include "prefer/rng.h"
#include "prefer/synth.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A random model far from uniform (std 0.3: a mistake in a prefix shows in the log-probs). */
static void tiny_model(Gpt *m, int V, int T, uint64_t seed)
{
    GptDims d = {.vocab_size = V, .context = T, .n_layer = 2, .n_head = 2, .n_embd = 8};
    gpt_init(m, &d, 64);
    gpt_init_weights(m, seed, 0.3);
    Rng r;
    rng_init(&r, seed, 7);
    for (int l = 0; l < d.n_layer; l++)
        for (int c = 0; c < 3 * d.n_embd; c++)
            m->p.layer[l].qkvb[c] = (float)(0.2 * rng_normal(&r));
}

/* log softmax(row)[tok] in double, as exact.c computes it (max-shifted log-sum-exp). */
static double row_logp(const float *row, int V, int tok)
{
    double mx = -INFINITY, sum = 0.0;
    for (int v = 0; v < V; v++)
        mx = row[v] > mx ? row[v] : mx;
    for (int v = 0; v < V; v++)
        sum += exp((double)row[v] - mx);
    return (double)row[tok] - (mx + log(sum));
}

/* log pi(y | prompt) of one response by itself: one KV slot, token by token. */
static double direct_kv(const Gpt *m, const int32_t *prompt, int lp, const int32_t *y, int ny)
{
    int V = m->d.vocab_size;
    GptKV *kv = gpt_kv_new(m, 1);
    float *lg = malloc(sizeof(float) * V);
    double s = 0.0;
    for (int t = 0; t < lp + ny - 1; t++) {
        int32_t tok = t < lp ? prompt[t] : y[t - lp];
        int pos = t;
        gpt_kv_step(m, kv, &tok, &pos, NULL, lg);
        if (t >= lp - 1)
            s += row_logp(lg, V, y[t - lp + 1]);
    }
    free(lg);
    gpt_kv_free(kv);
    return s;
}

/* The same through the training forward (gpt_forward, one sequence). */
static double direct_forward(Gpt *m, const int32_t *prompt, int lp, const int32_t *y, int ny)
{
    int T = lp + ny - 1;
    int32_t tok[64], tgt[64];
    uint8_t mask[64];
    for (int t = 0; t < T; t++) {
        tok[t] = t < lp ? prompt[t] : y[t - lp];
        tgt[t] = t + 1 < lp ? prompt[t + 1] : y[t + 1 - lp];
        mask[t] = t + 1 >= lp;
    }
    double s;
    gpt_forward(m, tok, tgt, mask, 1, T, NULL, &s, NULL);
    return s;
}

/* ---------------------------------------------------------------- (a) */

static void test_sums_to_one(void)
{
    int cases[][2] = {{3, 2}, {3, 3}, {4, 2}, {4, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int V = cases[c][0], len = cases[c][1];
        Gpt m;
        tiny_model(&m, V, 8, 11 + c);
        EnumSpace s;
        enum_space_init_all(&s, V, len, 1000);
        CU_ASSERT(s.n == (int64_t)pow(V, len));
        CU_ASSERT(enum_tokens(&s) == len);
        double *lp = malloc(sizeof(double) * s.n);
        int32_t prompt[3] = {1, V - 1, 0};
        exact_logp_all(&m, prompt, 3, &s, lp);
        double sum = 0.0, mn = 1.0;
        for (int64_t i = 0; i < s.n; i++) {
            sum += exp(lp[i]);
            mn = exp(lp[i]) < mn ? exp(lp[i]) : mn;
        }
        /* each node's softmax is normalised in double: far inside the 1e-6 of the brief */
        CU_ASSERT(fabs(sum - 1.0) < 1e-9);
        CU_ASSERT(mn > 0.0);
        /* and exact_normalize agrees: the log of the mass is ~0 */
        CU_ASSERT(fabs(exact_normalize(lp, s.n)) < 1e-9);
        if (fabs(sum - 1.0) >= 1e-9)
            printf("\n  V=%d len=%d: sum %.15f\n", V, len, sum);
        free(lp);
        gpt_free(&m);
    }
}

/* ---------------------------------------------------------------- (b) */

/* Every response of s against the direct computations; then the same bits for every slot
 * depth and for chunks of a few slots. */
static void check_direct(const EnumSpace *s, int V, uint64_t seed)
{
    Gpt m;
    tiny_model(&m, V, 8, seed);
    int32_t prompt[2] = {V - 1, 1};
    double *lp = malloc(sizeof(double) * s->n), *lp2 = malloc(sizeof(double) * s->n);
    exact_logp_all(&m, prompt, 2, s, lp);
    int nt = enum_tokens(s), bad_kv = 0, bad_fw = 0;
    double worst_fw = 0.0;
    int32_t y[16];
    for (int64_t i = 0; i < s->n; i++) {
        enum_response(s, i, y);
        double a = direct_kv(&m, prompt, 2, y, nt), b = direct_forward(&m, prompt, 2, y, nt);
        if (!(fabs(lp[i] - a) <= 1e-12 * fabs(a)))
            bad_kv++;
        worst_fw = fabs(lp[i] - b) > worst_fw ? fabs(lp[i] - b) : worst_fw;
        bad_fw += !(fabs(lp[i] - b) <= 1e-5);
    }
    CU_ASSERT(bad_kv == 0);
    CU_ASSERT(bad_fw == 0);
    if (bad_kv || bad_fw)
        printf("\n  %d responses differ from the KV pass, %d from gpt_forward (worst %g)\n", bad_kv, bad_fw, worst_fw);
    /* every slot depth, a budget of a few slots per chunk, 1-3 threads: the same bits */
    int nthr = omp_get_max_threads();
    for (int d = 0; d <= s->len; d++)
        for (int small = 0; small < 2; small++)
            for (int th = 1; th <= 3; th++) {
                omp_set_num_threads(th);
                exact_set_limits(small ? 3000 : 0, d);
                memset(lp2, 0, sizeof(double) * s->n);
                exact_logp_all(&m, prompt, 2, s, lp2);
                CU_ASSERT(memcmp(lp, lp2, sizeof(double) * s->n) == 0);
            }
    exact_set_limits(0, -1);
    omp_set_num_threads(nthr);
    free(lp);
    free(lp2);
    gpt_free(&m);
}

static void test_equals_direct(void)
{
    EnumSpace s;
    enum_space_init_all(&s, 3, 3, 1000); /* every string, token 0 included */
    check_direct(&s, 3, 5);
    /* the task's space: tokens 1..A then EOS, in a model with more tokens (mass < 1) */
    s = (EnumSpace){.alphabet = 3, .len = 2, .n = 9, .all_tokens = 0};
    check_direct(&s, 6, 6);
    s = (EnumSpace){.alphabet = 2, .len = 4, .n = 16, .all_tokens = 0};
    check_direct(&s, 4, 7);
}

/* ---------------------------------------------------------------- (c) */

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

static void test_helpers(void)
{
    double p[3] = {log(0.5), log(0.25), log(0.25)}, q[3] = {log(0.25), log(0.25), log(0.5)};
    CU_ASSERT(NEAR(exact_entropy(p, 3), 1.5 * log(2.0)));
    CU_ASSERT(NEAR(exact_kl(p, q, 3), 0.25 * log(2.0)));
    CU_ASSERT(NEAR(exact_kl(q, p, 3), 0.25 * log(2.0)));
    CU_ASSERT(NEAR(exact_kl(p, p, 3), 0.0));
    CU_ASSERT(NEAR(exact_l1(p, q, 3), 0.5));
    double f[3] = {1.0, 2.0, 4.0};
    CU_ASSERT(NEAR(exact_expect(p, f, 3), 0.5 + 0.5 + 1.0));
    /* DID: pi / pi_ref = (2, 1, 1/2), sum 3.5 -> (4/7, 2/7, 1/7) */
    double did[3];
    double z = exact_did(p, q, 3, did);
    CU_ASSERT(NEAR(exp(did[0]), 4.0 / 7) && NEAR(exp(did[1]), 2.0 / 7) && NEAR(exp(did[2]), 1.0 / 7));
    CU_ASSERT(NEAR(z, log(3.5)));
    CU_ASSERT(NEAR(exact_entropy(did, 3), -(4.0 / 7 * log(4.0 / 7) + 2.0 / 7 * log(2.0 / 7) + 1.0 / 7 * log(1.0 / 7))));
    /* normalisers of either side cancel */
    double p2[3] = {p[0] - 3, p[1] - 3, p[2] - 3}, did2[3];
    exact_did(p2, q, 3, did2);
    CU_ASSERT(NEAR(did2[0], did[0]) && NEAR(did2[2], did[2]));
    /* optimum: pi_ref (1/2, 1/4, 1/4), exp(r / beta) = (1, 2, 4) -> (1/2, 1/2, 1) / 2 */
    double beta = 0.5, r[3] = {0.0, beta * log(2.0), beta * log(4.0)}, opt[3];
    z = exact_optimum(p, r, beta, 3, opt);
    CU_ASSERT(NEAR(exp(opt[0]), 0.25) && NEAR(exp(opt[1]), 0.25) && NEAR(exp(opt[2]), 0.5));
    CU_ASSERT(NEAR(z, log(2.0)));
    exact_optimum(p, r, INFINITY, 3, opt);
    CU_ASSERT(NEAR(opt[0], p[0]) && NEAR(opt[2], p[2]));
    /* normalize: (1, 2, 3, 2) -> mass 8 */
    double x[4] = {log(1.0), log(2.0), log(3.0), log(2.0)};
    CU_ASSERT(NEAR(exact_normalize(x, 4), log(8.0)));
    CU_ASSERT(NEAR(exp(x[2]), 3.0 / 8));
    CU_ASSERT(NEAR(exact_logsumexp(x, 4), 0.0));
    /* zero probabilities */
    double a[4] = {log(0.5), -INFINITY, log(0.5), -INFINITY}, b[4] = {log(0.25), log(0.25), log(0.25), log(0.25)};
    CU_ASSERT(NEAR(exact_entropy(a, 4), log(2.0)));
    CU_ASSERT(NEAR(exact_kl(a, b, 4), log(2.0)));
    CU_ASSERT(exact_kl(b, a, 4) == INFINITY);
    CU_ASSERT(NEAR(exact_l1(a, b, 4), 1.0));
    /* CDF inversion: (0.2, 0.3, 0, 0.5) */
    double c[4] = {log(0.2), log(0.3), -INFINITY, log(0.5)};
    CU_ASSERT(exact_sample_index(c, 4, 0.0) == 0);
    CU_ASSERT(exact_sample_index(c, 4, 0.19) == 0);
    CU_ASSERT(exact_sample_index(c, 4, 0.21) == 1);
    CU_ASSERT(exact_sample_index(c, 4, 0.49) == 1);
    CU_ASSERT(exact_sample_index(c, 4, 0.51) == 3);
    CU_ASSERT(exact_sample_index(c, 4, 0.9999999) == 3);
}

static void test_space(void)
{
    EnumSpace s = {.alphabet = 3, .len = 2, .n = 9, .all_tokens = 0};
    int32_t y[3];
    enum_response(&s, 0, y);
    CU_ASSERT(y[0] == 1 && y[1] == 1 && y[2] == SYNTH_EOS);
    enum_response(&s, 1, y);
    CU_ASSERT(y[0] == 1 && y[1] == 2 && y[2] == SYNTH_EOS);
    enum_response(&s, 5, y); /* 5 = 1*3 + 2 */
    CU_ASSERT(y[0] == 2 && y[1] == 3 && y[2] == SYNTH_EOS);
    for (int64_t i = 0; i < s.n; i++) {
        enum_response(&s, i, y);
        CU_ASSERT(enum_index(&s, y, 3) == i);
    }
    int32_t bad1[3] = {1, 4, 0}, bad2[3] = {1, 2, 3}, bad3[2] = {1, 0}, bad4[3] = {0, 2, 0};
    CU_ASSERT(enum_index(&s, bad1, 3) == -1);
    CU_ASSERT(enum_index(&s, bad2, 3) == -1);
    CU_ASSERT(enum_index(&s, bad3, 2) == -1);
    CU_ASSERT(enum_index(&s, bad4, 3) == -1);
    EnumSpace a;
    enum_space_init_all(&a, 2, 3, 8);
    enum_response(&a, 6, y); /* 110 */
    CU_ASSERT(y[0] == 1 && y[1] == 1 && y[2] == 0);
    CU_ASSERT(enum_index(&a, y, 3) == 6);
    /* the task's space and its size limit */
    static PreferConfig pc;
    config_defaults(&pc);
    SynthConfig c = pc.synth;
    c.vocab_size = 13;
    c.response_len = 5;
    c.prompt_len = 4;
    SynthTask t;
    synth_task_init(&t, &c);
    enum_space_init(&s, &t, EXACT_DEFAULT_MAX_RESPONSES);
    CU_ASSERT(s.alphabet == 12 && s.len == 4 && s.n == 20736 && !s.all_tokens);
    enum_space_init(&s, &t, 20736); /* exactly at the limit */
    CU_ASSERT(s.n == 20736);
    synth_task_free(&t);
    config_free(&pc);
}

/* ---------------------------------------------------------------- (d) */

static void test_optimum_vs_dp(void)
{
    static PreferConfig pc;
    config_defaults(&pc);
    SynthConfig c = pc.synth;
    c.vocab_size = 7;
    c.response_len = 5;
    c.prompt_len = 3;
    c.seed = 19;
    SynthTask t;
    synth_task_init(&t, &c);
    EnumSpace s;
    enum_space_init(&s, &t, EXACT_DEFAULT_MAX_RESPONSES);
    CU_ASSERT(s.n == 6 * 6 * 6 * 6);
    double *ref = malloc(sizeof(double) * s.n), *r = malloc(sizeof(double) * s.n), *opt = malloc(sizeof(double) * s.n);
    double betas[] = {0.05, 0.3, 1.0, 7.0, INFINITY};
    int bad = 0, checked = 0;
    for (int64_t i = 0; i < 6; i++) {
        exact_teacher_logp_all(&t, i, &s, ref);
        /* the teacher's distribution over the space is a distribution */
        CU_ASSERT(fabs(exact_logsumexp(ref, s.n)) < 1e-12);
        exact_rewards(&t, i, &s, r);
        int32_t y[8];
        enum_response(&s, 777, y);
        CU_ASSERT(r[777] == synth_reward(&t, i, y, s.len + 1));
        CU_ASSERT(fabs(exact_expect(ref, r, s.n) - synth_teacher_reward(&t, i)) < 1e-9);
        for (size_t k = 0; k < sizeof betas / sizeof betas[0]; k++) {
            exact_optimum(ref, r, betas[k], s.n, opt);
            double er = exact_expect(opt, r, s.n), kl = exact_kl(opt, ref, s.n), dr, dkl;
            synth_optimum(&t, i, betas[k], &dr, &dkl);
            checked++;
            if (!(fabs(er - dr) <= 1e-9 * fmax(1.0, fabs(dr)) && fabs(kl - dkl) <= 1e-9 * fmax(1.0, dkl))) {
                bad++;
                printf("\n  prompt %lld beta %g: reward %.15g vs %.15g, KL %.15g vs %.15g\n", (long long)i, betas[k], er,
                       dr, kl, dkl);
            }
        }
    }
    CU_ASSERT(bad == 0);
    CU_ASSERT(checked == 30);
    free(ref);
    free(r);
    free(opt);
    synth_task_free(&t);
    config_free(&pc);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("exact", NULL, NULL);
    if (!s || !CU_add_test(s, "(a) every token string: probabilities sum to 1", test_sums_to_one) ||
        !CU_add_test(s, "(b) exact_logp_all equals per-response computations", test_equals_direct) ||
        !CU_add_test(s, "(c) distribution helpers by hand", test_helpers) ||
        !CU_add_test(s, "space order, index, size limit", test_space) ||
        !CU_add_test(s, "(d) optimum by enumeration = synth_optimum's DP", test_optimum_vs_dp)) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    int err = CU_get_error() != CUE_SUCCESS;
    CU_cleanup_registry();
    return (failed || err) ? 1 : 0;
}

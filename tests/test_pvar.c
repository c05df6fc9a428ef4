/* test_pvar.c: preference variance and prompt selection (pvar.h).
 *
 * PVar against hand-computed values (K = 2, K = 3), its limits (all equal -> 0, huge
 * differences -> 1/4 from below, NaN for K < 2), beta scaling and a brute-force sum over
 * ordered pairs with an explicit sigmoid; pvar_all on a small dataset with interleaved
 * responses and a lone response; every selection mode: sizes, contents, ties, determinism
 * in the seed, independence from everything else, proportional frequencies over many
 * seeds, and NaN prompts never selected. Runs without MPI; main() returns non-zero on any
 * failure.
 */
#include "prefer/pvar.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEAR(a, b, tol) CU_ASSERT(fabs((a) - (b)) <= (tol))

static double sigmoid(double z) { return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)); }

/* The definition, literally: mean over ordered pairs of (sigma(beta dh) - 1/2)^2. */
static double brute(const double *h, int K, double beta)
{
    double s = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            if (i != j) {
                double p = sigmoid(beta * (h[i] - h[j])) - 0.5;
                s += p * p;
            }
    return s / (K * (K - 1));
}

static void test_hand_values(void)
{
    /* K = 2, h = (0, ln 3)/beta: p_12 = 1/4, p_21 = 3/4 -> (1/4)^2 each -> 1/16 */
    for (double beta = 0.05; beta < 20; beta *= 3.7) {
        double h[2] = {0, log(3.0) / beta};
        NEAR(pvar_of(h, 2, beta), 1.0 / 16, 1e-15);
    }
    /* K = 3, h = (0, ln 3, ln 3): pairs with 0 give 1/16, the equal pair 0 -> (4/16) / 6 = 1/24 */
    double h3[3] = {0, log(3.0), log(3.0)};
    NEAR(pvar_of(h3, 3, 1.0), 1.0 / 24, 1e-15);
    /* K = 3, h = (0, ln 3, 2 ln 3): sigma(2 ln 3) = 9/10 -> (1/16 + 1/16 + 0.16) / 3 = 0.095 */
    double h4[3] = {0, log(3.0), 2 * log(3.0)};
    NEAR(pvar_of(h4, 3, 1.0), 0.095, 1e-15);
    /* order does not matter */
    double h5[3] = {2 * log(3.0), 0, log(3.0)};
    NEAR(pvar_of(h5, 3, 1.0), 0.095, 1e-15);
}

static void test_limits(void)
{
    double eq[5] = {1.5, 1.5, 1.5, 1.5, 1.5};
    CU_ASSERT_EQUAL(pvar_of(eq, 5, 0.1), 0.0);
    CU_ASSERT_EQUAL(pvar_of(eq, 5, 1e6), 0.0);
    double zero[2] = {0, 0};
    CU_ASSERT_EQUAL(pvar_of(zero, 2, 0.1), 0.0);
    /* huge differences: 1/4 - PVar = sech(15)^2 / 4 ~ e^-30, still representable */
    double big[2] = {0, 30};
    double v = pvar_of(big, 2, 1.0);
    CU_ASSERT(v < 0.25);
    NEAR((0.25 - v) / exp(-30.0), 1.0, 1e-3);
    /* beyond ~37 it rounds to 1/4 but never exceeds it, never NaN */
    double huge[3] = {-1e300, 0, 1e300};
    v = pvar_of(huge, 3, 1e6);
    CU_ASSERT(isfinite(v) && v <= 0.25 && v > 0.2499);
    double h2[2] = {0, 1e6};
    v = pvar_of(h2, 2, 1.0);
    CU_ASSERT(isfinite(v) && v <= 0.25 && v > 0.2499);
    /* monotone towards 1/4 */
    double prev = 0;
    for (double d = 0.5; d < 40; d += 0.5) {
        double hh[2] = {0, d};
        double x = pvar_of(hh, 2, 1.0);
        CU_ASSERT(x >= prev && x <= 0.25);
        prev = x;
    }
    /* tiny differences: relative precision (PVar ~ (beta dh)^2 / 16) */
    double tiny[2] = {0, 1e-9};
    NEAR(pvar_of(tiny, 2, 1.0) / (1e-18 / 16), 1.0, 1e-9);
    /* undefined cases */
    CU_ASSERT(isnan(pvar_of(eq, 1, 1.0)));
    CU_ASSERT(isnan(pvar_of(eq, 0, 1.0)));
    double hn[3] = {0, NAN, 1};
    CU_ASSERT(isnan(pvar_of(hn, 3, 1.0)));
}

static void test_scaling_and_brute(void)
{
    double h[6] = {0.3, -1.2, 2.5, 0.0, 0.7, -0.4};
    /* only beta * h matters */
    for (double c = 0.1; c < 100; c *= 4.3) {
        double hc[6];
        for (int i = 0; i < 6; i++)
            hc[i] = h[i] * c;
        NEAR(pvar_of(hc, 6, 0.5 / c), pvar_of(h, 6, 0.5), 1e-14);
    }
    /* grows with beta */
    double prev = 0;
    for (double beta = 0.01; beta < 100; beta *= 1.5) {
        double x = pvar_of(h, 6, beta);
        CU_ASSERT(x > prev);
        prev = x;
    }
    for (int K = 2; K <= 6; K++)
        for (double beta = 0.1; beta < 30; beta *= 2.2)
            NEAR(pvar_of(h, K, beta), brute(h, K, beta), 1e-14);
}

static void test_all(void)
{
    /* prompt 0: responses 0, 3; prompt 1: response 1 only; prompt 2: responses 2, 4, 5
     * (interleaved); prompt 3: none */
    int64_t rp[6] = {0, 1, 2, 0, 2, 2};
    double h[6] = {0, 7, 0, log(3.0) / 0.1, log(3.0) / 0.1, 2 * log(3.0) / 0.1};
    PrefData d;
    memset(&d, 0, sizeof d);
    d.n_prompts = 4;
    d.n_responses = 6;
    d.response_prompt = rp;
    double pv[4];
    pvar_all(&d, h, 0.1, pv);
    NEAR(pv[0], 1.0 / 16, 1e-14);
    CU_ASSERT(isnan(pv[1]));
    NEAR(pv[2], 0.095, 1e-14);
    CU_ASSERT(isnan(pv[3]));
}

/* ---------------------------------------------------------------- selection */

static const double PV[10] = {0.1, 0.2, NAN, 0.2, 0.05, 0.0, 0.24, 0.1, 0.15, 0.2};

static int same(const int64_t *a, const int64_t *b, int64_t n) { return memcmp(a, b, sizeof(int64_t) * (size_t)n) == 0; }

static void test_top_bottom(void)
{
    int64_t out[10];
    /* 9 valid prompts, frac 0.3 -> ceil(2.7) = 3 */
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "top", 0.3, 1, 1, 0, out), 3);
    int64_t top[3] = {1, 3, 6}; /* 0.24, then the 0.2 tie (1, 3, 9) goes to 1 and 3 */
    CU_ASSERT(same(out, top, 3));
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "bottom", 0.3, 1, 1, 0, out), 3);
    int64_t bot[3] = {0, 4, 5}; /* 0.0, 0.05, then the 0.1 tie (0, 7) goes to 0 */
    CU_ASSERT(same(out, bot, 3));
    /* seed and round do not matter */
    int64_t o2[10];
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "top", 0.3, 1, 99, 5, o2), 3);
    CU_ASSERT(same(o2, top, 3));
    /* frac 1: every valid prompt, never the NaN one, sorted */
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "top", 1.0, 1, 1, 0, out), 9);
    int64_t all[9] = {0, 1, 3, 4, 5, 6, 7, 8, 9};
    CU_ASSERT(same(out, all, 9));
    /* tiny frac: at least one */
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "top", 1e-6, 1, 1, 0, out), 1);
    CU_ASSERT_EQUAL(out[0], 6);
    /* ceil, with products that round just above an integer kept exact */
    double ten[10] = {0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
    CU_ASSERT_EQUAL(pvar_select(ten, 10, "top", 0.7, 1, 1, 0, out), 7);
    CU_ASSERT_EQUAL(pvar_select(ten, 10, "top", 0.1, 1, 1, 0, out), 1);
    CU_ASSERT_EQUAL(pvar_select(ten, 10, "top", 0.11, 1, 1, 0, out), 2);
    /* all ties: the lowest indices */
    int64_t first[7] = {0, 1, 2, 3, 4, 5, 6};
    CU_ASSERT_EQUAL(pvar_select(ten, 10, "top", 0.7, 1, 1, 0, out), 7);
    CU_ASSERT(same(out, first, 7));
    CU_ASSERT_EQUAL(pvar_select(ten, 10, "bottom", 0.7, 1, 1, 0, out), 7);
    CU_ASSERT(same(out, first, 7));
}

static void test_bad_args_and_nan(void)
{
    int64_t out[10] = {0};
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "none", 0.5, 1, 1, 0, out), -1);
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "Top", 0.5, 1, 1, 0, out), -1);
    CU_ASSERT_EQUAL(pvar_select(PV, 10, NULL, 0.5, 1, 1, 0, out), -1);
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "top", 0.0, 1, 1, 0, out), -1);
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "top", 1.5, 1, 1, 0, out), -1);
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "random", NAN, 1, 1, 0, out), -1);
    CU_ASSERT_EQUAL(pvar_select(PV, 10, "proportional", 0.5, 0.0, 1, 0, out), -1);
    CU_ASSERT_EQUAL(pvar_select(PV, -1, "top", 0.5, 1, 1, 0, out), -1);
    /* no prompt valid: nothing selected, in every mode */
    double nan3[3] = {NAN, NAN, NAN};
    static const char *modes[] = {"top", "bottom", "random", "proportional"};
    for (int m = 0; m < 4; m++) {
        CU_ASSERT_EQUAL(pvar_select(nan3, 3, modes[m], 1.0, 1, 1, 0, out), 0);
        CU_ASSERT_EQUAL(pvar_select(nan3, 0, modes[m], 1.0, 1, 1, 0, out), 0);
        /* NaN never chosen, whatever the frac and the seed */
        for (uint64_t seed = 0; seed < 50; seed++) {
            int64_t k = pvar_select(PV, 10, modes[m], 1.0, 0.5, seed, seed % 3, out);
            CU_ASSERT_EQUAL(k, 9);
            for (int64_t j = 0; j < k; j++)
                CU_ASSERT(out[j] != 2);
        }
    }
}

static void test_random(void)
{
    enum { N = 200 };
    double pv[N], pv2[N];
    for (int i = 0; i < N; i++) {
        pv[i] = (i % 17 == 3) ? NAN : 0.25 * (double)((i * 37) % 101) / 101;
        pv2[i] = isnan(pv[i]) ? NAN : 0.01; /* other values, the same valid set */
    }
    int nv = 0;
    for (int i = 0; i < N; i++)
        nv += !isnan(pv[i]);
    int64_t a[N], b[N], c[N];
    int64_t k = pvar_select(pv, N, "random", 0.25, 1, 42, 0, a);
    CU_ASSERT_EQUAL(k, (int64_t)ceil(0.25 * nv));
    for (int64_t j = 0; j < k; j++) {
        CU_ASSERT(!isnan(pv[a[j]]));
        if (j)
            CU_ASSERT(a[j] > a[j - 1]);
    }
    /* deterministic; independent of the PVar values and the temperature */
    CU_ASSERT_EQUAL(pvar_select(pv, N, "random", 0.25, 1, 42, 0, b), k);
    CU_ASSERT(same(a, b, k));
    CU_ASSERT_EQUAL(pvar_select(pv2, N, "random", 0.25, 7.5, 42, 0, b), k);
    CU_ASSERT(same(a, b, k));
    /* seed and round change it */
    CU_ASSERT_EQUAL(pvar_select(pv, N, "random", 0.25, 1, 43, 0, b), k);
    CU_ASSERT(!same(a, b, k));
    CU_ASSERT_EQUAL(pvar_select(pv, N, "random", 0.25, 1, 42, 1, c), k);
    CU_ASSERT(!same(a, c, k));
    CU_ASSERT(!same(b, c, k));
    /* not the top or the lowest indices */
    int64_t t[N];
    pvar_select(pv, N, "top", 0.25, 1, 42, 0, t);
    CU_ASSERT(!same(a, t, k));
    CU_ASSERT(a[k - 1] > k + 20);
    /* a smaller frac gives a subset */
    int64_t k2 = pvar_select(pv, N, "random", 0.1, 1, 42, 0, b);
    for (int64_t j = 0; j < k2; j++) {
        int found = 0;
        for (int64_t i = 0; i < k; i++)
            found |= a[i] == b[j];
        CU_ASSERT(found);
    }
    /* every prompt is chosen about equally often over seeds */
    int cnt[N] = {0};
    for (uint64_t s = 0; s < 2000; s++) {
        int64_t n = pvar_select(pv, N, "random", 0.25, 1, s, 0, b);
        for (int64_t j = 0; j < n; j++)
            cnt[b[j]]++;
    }
    double want = 2000.0 * (double)k / nv;
    for (int i = 0; i < N; i++)
        if (!isnan(pv[i]))
            CU_ASSERT(fabs(cnt[i] - want) < 5 * sqrt(want));
}

static void test_proportional(void)
{
    int64_t out[8];
    /* k = 1 of four: P(i) = w_i / sum w, w = PVar^(1/temperature) */
    double pv[4] = {0.01, 0.02, 0.03, 0.04};
    double temps[2] = {1.0, 0.5};
    for (int ti = 0; ti < 2; ti++) {
        double w[4], sw = 0;
        for (int i = 0; i < 4; i++)
            sw += w[i] = pow(pv[i], 1 / temps[ti]);
        int cnt[4] = {0};
        const int S = 20000;
        for (uint64_t s = 0; s < (uint64_t)S; s++) {
            CU_ASSERT_EQUAL_FATAL(pvar_select(pv, 4, "proportional", 0.25, temps[ti], s, 0, out), 1);
            cnt[out[0]]++;
        }
        for (int i = 0; i < 4; i++) {
            double p = w[i] / sw, sd = sqrt(p * (1 - p) / S);
            CU_ASSERT(fabs((double)cnt[i] / S - p) < 5 * sd);
        }
    }
    /* temperature -> 0: the top */
    double pv8[8] = {0.05, 0.2, 0.1, 0.21, 0.0, 0.19, 0.11, 0.02};
    int64_t top[8];
    pvar_select(pv8, 8, "top", 0.5, 1, 0, 0, top);
    for (uint64_t s = 0; s < 50; s++) {
        CU_ASSERT_EQUAL(pvar_select(pv8, 8, "proportional", 0.5, 1e-4, s, 0, out), 4);
        CU_ASSERT(same(out, top, 4));
    }
    /* deterministic in (seed, round) */
    int64_t a[8], b[8];
    pvar_select(pv8, 8, "proportional", 0.5, 1, 9, 3, a);
    pvar_select(pv8, 8, "proportional", 0.5, 1, 9, 3, b);
    CU_ASSERT(same(a, b, 4));
    /* PVar 0: only after every positive one */
    for (uint64_t s = 0; s < 100; s++) {
        CU_ASSERT_EQUAL(pvar_select(pv8, 8, "proportional", 7.0 / 8, 1, s, 0, out), 7);
        int has4 = 0;
        for (int j = 0; j < 7; j++)
            has4 |= out[j] == 4;
        CU_ASSERT(!has4);
    }
    double z[4] = {0, 0.1, 0, 0.2};
    int c0 = 0, c2 = 0;
    for (uint64_t s = 0; s < 400; s++) {
        CU_ASSERT_EQUAL(pvar_select(z, 4, "proportional", 0.75, 1, s, 0, out), 3);
        CU_ASSERT(out[0] == 0 || out[0] == 1); /* sorted: 1 and 3 always in */
        int h1 = 0, h3 = 0;
        for (int j = 0; j < 3; j++) {
            h1 |= out[j] == 1;
            h3 |= out[j] == 3;
            c0 += out[j] == 0;
            c2 += out[j] == 2;
        }
        CU_ASSERT(h1 && h3);
    }
    CU_ASSERT(c0 > 140 && c2 > 140); /* the zero-weight fill is random, not by index */
}

static void test_rank(void)
{
    int64_t rk[10];
    CU_ASSERT_EQUAL(pvar_rank(PV, 10, rk), 9);
    /* 0.24 (6) > 0.2 (1, 3, 9) > 0.15 (8) > 0.1 (0, 7) > 0.05 (4) > 0 (5) */
    int64_t want[10] = {5, 1, -1, 2, 7, 8, 0, 6, 4, 3};
    CU_ASSERT(same(rk, want, 10));
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("pvar", NULL, NULL);
    CU_add_test(s, "hand-computed PVar (K = 2, 3)", test_hand_values);
    CU_add_test(s, "limits: equal, huge, tiny, K < 2, NaN", test_limits);
    CU_add_test(s, "beta scaling and the literal definition", test_scaling_and_brute);
    CU_add_test(s, "pvar_all: interleaved responses, lone response", test_all);
    CU_add_test(s, "top and bottom: sizes, ties, frac", test_top_bottom);
    CU_add_test(s, "bad arguments, NaN never selected", test_bad_args_and_nan);
    CU_add_test(s, "random: deterministic, seeded, uniform", test_random);
    CU_add_test(s, "proportional: frequencies, temperature, zero weights", test_proportional);
    CU_add_test(s, "rank", test_rank);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}

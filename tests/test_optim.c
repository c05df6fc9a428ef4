/* test_optim.c: AdamW against hand-computed steps, the schedule, gradient norm and clip. */
#include "prefer/optim.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdlib.h>

static int rel_close(double got, double want, double rtol)
{
    return fabs(got - want) <= rtol * fmax(fabs(want), 1e-30);
}

#define CHECK_REL(got, want, rtol)                                                          \
    do {                                                                                    \
        double g_ = (got), w_ = (want);                                                     \
        if (!rel_close(g_, w_, (rtol)))                                                     \
            fprintf(stderr, "\n  %s:%d: %s = %.12g, want %.12g\n", __FILE__, __LINE__, #got, \
                    g_, w_);                                                                \
        CU_ASSERT(rel_close(g_, w_, (rtol)));                                               \
    } while (0)

/* Two elements, lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1; element 0 decays
 * (mask 1), element 1 does not (mask 0). p0 = (1, -2).
 *
 * Step 1, g = (0.5, 0.1), bc1 = 0.1, bc2 = 0.001:
 *   m = (0.05, 0.01)            v = (0.00025, 0.00001)
 *   mhat = (0.5, 0.1)           vhat = (0.25, 0.01)     sqrt(vhat) = (0.5, 0.1)
 *   u = mhat/(sqrt(vhat)+eps) = (0.5/0.50000001, 0.1/0.10000001) = (0.99999998, 0.9999999)
 *   p0 = 1  - 0.1*(0.99999998 + 0.1*1) = 0.890000002
 *   p1 = -2 - 0.1*(0.9999999)          = -2.09999999
 * Step 2, g = (-0.2, 0.3), bc1 = 1-0.81 = 0.19, bc2 = 1-0.998001 = 0.001999:
 *   m = (0.9*0.05 - 0.02, 0.9*0.01 + 0.03) = (0.025, 0.039)
 *   v = (0.999*0.00025 + 0.001*0.04, 0.999*0.00001 + 0.001*0.09) = (0.00028975, 0.00009999)
 *   mhat = (0.025/0.19, 0.039/0.19) = (0.131578947, 0.205263158)
 *   vhat = (0.00028975/0.001999, 0.00009999/0.001999) = (0.144947474, 0.050020010)
 *   sqrt(vhat) = (0.380719676, 0.223651537)
 *   u = (0.345605839, 0.917781078)
 *   p0 = 0.890000002 - 0.1*(0.345605839 + 0.1*0.890000002) = 0.846539418
 *   p1 = -2.09999999 - 0.1*0.917781078                      = -2.191778098 */
static void test_adamw_hand(void)
{
    uint8_t mask[2] = {1, 0};
    AdamW o;
    adamw_init(&o, 2, mask, 0.9, 0.999, 1e-8, 0.1);
    CU_ASSERT_EQUAL(o.t, 0);
    CU_ASSERT_EQUAL(o.m[0], 0.0f);
    CU_ASSERT_EQUAL(o.v[1], 0.0f);
    mask[0] = 0; /* copied: changing ours must not matter */
    float p[2] = {1.0f, -2.0f};
    float g1[2] = {0.5f, 0.1f};
    adamw_step(&o, p, g1, 0.1);
    CU_ASSERT_EQUAL(o.t, 1);
    CHECK_REL(o.m[0], 0.05, 1e-6);
    CHECK_REL(o.m[1], 0.01, 1e-6);
    CHECK_REL(o.v[0], 0.00025, 1e-6);
    CHECK_REL(o.v[1], 0.00001, 1e-6);
    CHECK_REL(p[0], 0.890000002, 1e-6);
    CHECK_REL(p[1], -2.09999999, 1e-6);
    float g2[2] = {-0.2f, 0.3f};
    adamw_step(&o, p, g2, 0.1);
    CU_ASSERT_EQUAL(o.t, 2);
    CHECK_REL(o.m[0], 0.025, 1e-6);
    CHECK_REL(o.m[1], 0.039, 1e-6);
    CHECK_REL(o.v[0], 0.00028975, 1e-6);
    CHECK_REL(o.v[1], 0.00009999, 1e-6);
    CHECK_REL(p[0], 0.846539418, 1e-6);
    CHECK_REL(p[1], -2.191778098, 1e-6);
    adamw_free(&o);
    adamw_free(&o); /* zeroed: harmless twice */
    adamw_free(NULL);
}

/* Decay only: zero gradient keeps m = v = 0, so the Adam part is 0/(0+eps) = 0 and
 * p = p*(1 - lr*wd) exactly where the mask is 1. */
static void test_adamw_decay_only(void)
{
    enum { N = 37 }; /* not a multiple of any vector width */
    uint8_t mask[N];
    float p[N], g[N] = {0};
    for (int i = 0; i < N; i++) {
        mask[i] = (uint8_t)(i % 3 == 0);
        p[i] = (float)(i - 18) * 0.25f;
    }
    AdamW o;
    adamw_init(&o, N, mask, 0.9, 0.95, 1e-8, 0.5);
    adamw_step(&o, p, g, 0.01);
    for (int i = 0; i < N; i++) {
        double p0 = (double)(i - 18) * 0.25;
        double want = mask[i] ? p0 * (1.0 - 0.01 * 0.5) : p0;
        CU_ASSERT(fabs(p[i] - want) <= 1e-6 * fmax(1.0, fabs(want)));
    }
    adamw_free(&o);
}

/* A NULL mask means no element decays. Sign-only first step: |update| = lr for g != 0. */
static void test_adamw_null_mask(void)
{
    AdamW o;
    adamw_init(&o, 3, NULL, 0.9, 0.999, 1e-8, 1.0);
    float p[3] = {1.0f, 1.0f, 1.0f}, g[3] = {3.0f, -1e-3f, 0.0f};
    adamw_step(&o, p, g, 0.01);
    CHECK_REL(p[0], 0.99, 1e-5);
    CHECK_REL(p[1], 1.01, 1e-5);
    CHECK_REL(p[2], 1.0, 1e-7);
    adamw_free(&o);
}

static void test_sched_parse(void)
{
    CU_ASSERT_EQUAL(sched_parse("cosine"), SCHED_COSINE);
    CU_ASSERT_EQUAL(sched_parse("linear"), SCHED_LINEAR);
    CU_ASSERT_EQUAL(sched_parse("constant"), SCHED_CONSTANT);
    CU_ASSERT_EQUAL(sched_parse("Cosine"), -1);
    CU_ASSERT_EQUAL(sched_parse(""), -1);
    CU_ASSERT_EQUAL(sched_parse(NULL), -1);
}

/* lr = 1e-3, min_frac = 0.1, warmup 10, total 110: decay over steps 10..109 (99 intervals). */
static void test_sched_cosine(void)
{
    const double lr = 1e-3, mf = 0.1;
    CHECK_REL(sched_lr(SCHED_COSINE, lr, mf, 10, 110, 0), lr / 10, 1e-12);
    CHECK_REL(sched_lr(SCHED_COSINE, lr, mf, 10, 110, 4), lr * 5 / 10, 1e-12);
    CHECK_REL(sched_lr(SCHED_COSINE, lr, mf, 10, 110, 9), lr, 1e-12);  /* warmup end */
    CHECK_REL(sched_lr(SCHED_COSINE, lr, mf, 10, 110, 10), lr, 1e-12); /* decay start */
    /* total 109: decay steps 10..108 (98 intervals), step 59 is exactly half way,
     * where cosine gives (lr + lr*mf)/2 */
    CHECK_REL(sched_lr(SCHED_COSINE, lr, mf, 10, 109, 59), (lr + lr * mf) / 2, 1e-12);
    CU_ASSERT_EQUAL(sched_lr(SCHED_COSINE, lr, mf, 10, 110, 109), lr * mf); /* exact */
    CU_ASSERT_EQUAL(sched_lr(SCHED_COSINE, lr, mf, 10, 110, 200), lr * mf);  /* past end */
    /* monotone non-increasing after warmup */
    double prev = sched_lr(SCHED_COSINE, lr, mf, 10, 110, 10);
    for (int s = 11; s < 110; s++) {
        double cur = sched_lr(SCHED_COSINE, lr, mf, 10, 110, s);
        CU_ASSERT(cur <= prev);
        prev = cur;
    }
    /* no warmup: step 0 is lr */
    CHECK_REL(sched_lr(SCHED_COSINE, lr, 0.0, 0, 101, 0), lr, 1e-12);
    CHECK_REL(sched_lr(SCHED_COSINE, lr, 0.0, 0, 101, 50), lr / 2, 1e-12);
    CU_ASSERT_EQUAL(sched_lr(SCHED_COSINE, lr, 0.0, 0, 101, 100), 0.0);
    /* a quarter of the way: min + (lr-min)*(1+cos(pi/4))/2 */
    CHECK_REL(sched_lr(SCHED_COSINE, 2.0, 0.0, 0, 5, 1), 2.0 * (1 + sqrt(0.5)) / 2, 1e-12);
}

static void test_sched_linear(void)
{
    const double lr = 0.5, mf = 0.2;
    CHECK_REL(sched_lr(SCHED_LINEAR, lr, mf, 4, 15, 0), lr / 4, 1e-12);
    CHECK_REL(sched_lr(SCHED_LINEAR, lr, mf, 4, 15, 3), lr, 1e-12);
    CHECK_REL(sched_lr(SCHED_LINEAR, lr, mf, 4, 15, 4), lr, 1e-12);
    /* decay steps 4..14, 10 intervals: step 9 is half way, step 6 is 20% */
    CHECK_REL(sched_lr(SCHED_LINEAR, lr, mf, 4, 15, 9), (lr + lr * mf) / 2, 1e-12);
    CHECK_REL(sched_lr(SCHED_LINEAR, lr, mf, 4, 15, 6), lr + (lr * mf - lr) * 0.2, 1e-12);
    CU_ASSERT_EQUAL(sched_lr(SCHED_LINEAR, lr, mf, 4, 15, 14), lr * mf);
}

static void test_sched_constant(void)
{
    CHECK_REL(sched_lr(SCHED_CONSTANT, 3e-4, 0.1, 5, 100, 0), 3e-4 / 5, 1e-12);
    CHECK_REL(sched_lr(SCHED_CONSTANT, 3e-4, 0.1, 5, 100, 4), 3e-4, 1e-12);
    CU_ASSERT_EQUAL(sched_lr(SCHED_CONSTANT, 3e-4, 0.1, 5, 100, 5), 3e-4);
    CU_ASSERT_EQUAL(sched_lr(SCHED_CONSTANT, 3e-4, 0.1, 5, 100, 99), 3e-4);
    CU_ASSERT_EQUAL(sched_lr(SCHED_CONSTANT, 3e-4, 0.1, 0, 1, 0), 3e-4);
}

/* Degenerate lengths must not divide by zero and must stay finite and within [0, lr]. */
static void test_sched_edges(void)
{
    const double lr = 1e-3, mf = 0.1;
    const int kinds[3] = {SCHED_COSINE, SCHED_LINEAR, SCHED_CONSTANT};
    /* total == 1, no warmup: the only step is the last one */
    CU_ASSERT_EQUAL(sched_lr(SCHED_COSINE, lr, mf, 0, 1, 0), lr * mf);
    CU_ASSERT_EQUAL(sched_lr(SCHED_LINEAR, lr, mf, 0, 1, 0), lr * mf);
    /* warmup == total - 1: ramp, then the last step at the floor */
    CHECK_REL(sched_lr(SCHED_COSINE, lr, mf, 3, 4, 2), lr, 1e-12);
    CU_ASSERT_EQUAL(sched_lr(SCHED_COSINE, lr, mf, 3, 4, 3), lr * mf);
    /* warmup >= total: all ramp */
    CHECK_REL(sched_lr(SCHED_COSINE, lr, mf, 10, 5, 0), lr / 10, 1e-12);
    CHECK_REL(sched_lr(SCHED_COSINE, lr, mf, 10, 5, 4), lr / 2, 1e-12);
    CHECK_REL(sched_lr(SCHED_LINEAR, lr, mf, 1, 1, 0), lr, 1e-12);
    /* negative step / warmup are clamped */
    CHECK_REL(sched_lr(SCHED_COSINE, lr, mf, 10, 100, -3), lr / 10, 1e-12);
    CHECK_REL(sched_lr(SCHED_COSINE, lr, mf, -1, 100, 0), lr, 1e-12);
    for (int k = 0; k < 3; k++)
        for (int total = 0; total <= 4; total++)
            for (int w = 0; w <= 5; w++)
                for (int s = -1; s <= 5; s++) {
                    double x = sched_lr(kinds[k], lr, mf, w, total, s);
                    CU_ASSERT(isfinite(x) && x >= 0.0 && x <= lr * (1 + 1e-12));
                }
}

static void test_grad_norm(void)
{
    float g[5] = {3.0f, 4.0f, 0.0f, -12.0f, 0.0f}; /* norm sqrt(9+16+144) = 13 */
    CU_ASSERT_DOUBLE_EQUAL(grad_norm(g, 5), 13.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(grad_norm(g, 0), 0.0, 0.0);
    /* many small elements: double accumulation keeps sqrt(n)*x accurate */
    size_t n = 1000003;
    float *big = malloc(n * sizeof(float));
    CU_ASSERT_FATAL(big != NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = 1e-3f;
    CHECK_REL(grad_norm(big, n), sqrt((double)n) * (double)1e-3f, 1e-10);
    free(big);
}

static void test_grad_clip(void)
{
    float g[4] = {3.0f, 0.0f, -4.0f, 0.0f}; /* norm 5 */
    /* no-op below, at, and when off */
    CU_ASSERT_DOUBLE_EQUAL(grad_clip(g, 4, 10.0), 5.0, 1e-12);
    CU_ASSERT_EQUAL(g[0], 3.0f);
    CU_ASSERT_DOUBLE_EQUAL(grad_clip(g, 4, 5.0), 5.0, 1e-12);
    CU_ASSERT_EQUAL(g[2], -4.0f);
    CU_ASSERT_DOUBLE_EQUAL(grad_clip(g, 4, 0.0), 5.0, 1e-12);
    CU_ASSERT_EQUAL(g[0], 3.0f);
    /* clip: returns the old norm, new norm is max, direction kept */
    CU_ASSERT_DOUBLE_EQUAL(grad_clip(g, 4, 1.0), 5.0, 1e-12);
    CHECK_REL(grad_norm(g, 4), 1.0, 1e-6);
    CHECK_REL(g[0], 0.6, 1e-6);
    CHECK_REL(g[2], -0.8, 1e-6);
    CU_ASSERT_EQUAL(g[1], 0.0f);
    /* larger array */
    enum { N = 1001 };
    float h[N];
    for (int i = 0; i < N; i++)
        h[i] = (float)((i * 37) % 11) - 5.0f;
    double before = grad_norm(h, N);
    CU_ASSERT_DOUBLE_EQUAL(grad_clip(h, N, 2.5), before, 1e-9);
    CHECK_REL(grad_norm(h, N), 2.5, 1e-6);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("optim", NULL, NULL);
    if (!s || !CU_add_test(s, "adamw two steps by hand", test_adamw_hand) ||
        !CU_add_test(s, "adamw decay only", test_adamw_decay_only) ||
        !CU_add_test(s, "adamw null mask", test_adamw_null_mask) ||
        !CU_add_test(s, "sched_parse", test_sched_parse) ||
        !CU_add_test(s, "sched cosine", test_sched_cosine) ||
        !CU_add_test(s, "sched linear", test_sched_linear) ||
        !CU_add_test(s, "sched constant", test_sched_constant) ||
        !CU_add_test(s, "sched edges", test_sched_edges) ||
        !CU_add_test(s, "grad_norm", test_grad_norm) ||
        !CU_add_test(s, "grad_clip", test_grad_clip)) {
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

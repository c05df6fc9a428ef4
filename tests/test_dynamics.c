/* test_dynamics.c: the tabular iterative-alignment dynamics (dynamics.h).
 *
 * One update against hand-computed values (2 x 2 Bradley-Terry, 3 x 3 rock-paper-scissors,
 * and alpha = lambda = 0 where pi_t must not matter); log-softmax normalisation on extreme
 * logits; the spectral norm ||P - 11^T/2||_2 against hand values, the cyclic closed form and
 * an independent power iteration; the contraction constant and the n = 3 radius against the
 * paper's formulas; on the 3 x 3 cyclic P: oscillation well above and just above the boundary
 * alpha^2 + a^2 beta^2 lambda^2 / 3 = 1, convergence well below, just below and between the
 * contraction line and the boundary; transitive P at alpha = 1 and 0.99 collapsing onto the
 * best class, and staying spread at alpha = 0; dyn_run's trajectory and cycle strength against
 * a direct computation; matrix checks and regimes. Runs without MPI; main() returns non-zero
 * on any failure.
 */
#include "prefer/dynamics.h"
#include "prefer/exact.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEAR(a, b, tol) CU_ASSERT(fabs((a) - (b)) <= (tol))

static const double U3[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3};

static void uniform_log(double *lp, int n)
{
    for (int i = 0; i < n; i++)
        lp[i] = -log((double)n);
}

/* ---------------------------------------------------------------- one step */

static void test_step_2x2(void)
{
    /* P = [[1/2, 3/4], [1/4, 1/2]], pi_t = (0.8, 0.2), pi_0 = pi_ref = (1/2, 1/2),
     * alpha = 1/2, beta = 2, lambda = 1/2:
     *   mu = (0.65, 0.35), P mu = (0.5875, 0.3375), logit gap = (1/2) ln 4 + 2 * 0.25 = ln 2 + 1/2
     *   pi_{t+1}(0) = sigma(ln 2 + 1/2) = 2 sqrt(e) / (2 sqrt(e) + 1) */
    double P[4] = {0.5, 0.75, 0.25, 0.5}, pi0[2] = {0.5, 0.5}, lref[2] = {log(0.5), log(0.5)};
    DynModel m = {2, P, pi0, lref, 0.5, 2.0, 0.5};
    double lp[2] = {log(0.8), log(0.2)}, out[2], work[4];
    dyn_step(&m, lp, out, work);
    double want = 2 * sqrt(M_E) / (2 * sqrt(M_E) + 1);
    NEAR(exp(out[0]), want, 1e-15);
    NEAR(exp(out[1]), 1 - want, 1e-15);
    NEAR(out[0] - out[1], log(2.0) + 0.5, 1e-14);
}

static void test_step_3x3_cyclic(void)
{
    /* rock-paper-scissors a = 1/2: P = [[.5, 1, 0], [0, .5, 1], [1, 0, .5]].
     * pi_t = (.5, .3, .2), uniform pi_0 = pi_ref, alpha = 1/2, beta = 1, lambda = 1:
     * P mu = (.55, .35, .6) and pi_{t+1} ~ sqrt(pi_t) exp(P mu). */
    double P[9];
    CU_ASSERT_EQUAL_FATAL(dyn_cyclic(3, 0.5, P), 0);
    double want_P[9] = {0.5, 1, 0, 0, 0.5, 1, 1, 0, 0.5};
    for (int k = 0; k < 9; k++)
        CU_ASSERT_EQUAL(P[k], want_P[k]);
    double lref[3], lp[3] = {log(0.5), log(0.3), log(0.2)}, out[3], work[6];
    uniform_log(lref, 3);
    DynModel m = {3, P, U3, lref, 0.5, 1.0, 1.0};
    dyn_step(&m, lp, out, work);
    double w[3] = {sqrt(0.5) * exp(0.55), sqrt(0.3) * exp(0.35), sqrt(0.2) * exp(0.6)};
    double s = w[0] + w[1] + w[2];
    for (int i = 0; i < 3; i++)
        NEAR(exp(out[i]), w[i] / s, 1e-15);
}

static void test_step_reference_and_sampler(void)
{
    /* alpha = 0, lambda = 0: pi_{t+1} = softmax(log pi_ref + beta P pi_0), whatever pi_t is;
     * pi_ref differs from pi_0 here. */
    double P[9], pi0[3] = {0.6, 0.3, 0.1}, ref[3] = {0.2, 0.2, 0.6}, lref[3], work[6];
    dyn_cyclic(3, 0.3, P);
    for (int i = 0; i < 3; i++)
        lref[i] = log(ref[i]);
    DynModel m = {3, P, pi0, lref, 0.0, 3.0, 0.0};
    double a[3] = {log(0.98), log(0.01), log(0.01)}, b[3] = {-700, -700, 0}, oa[3], ob[3];
    dyn_log_softmax(b, 3, b);
    dyn_step(&m, a, oa, work);
    dyn_step(&m, b, ob, work);
    double w[3], s = 0;
    for (int i = 0; i < 3; i++) {
        double pm = 0;
        for (int j = 0; j < 3; j++)
            pm += P[i * 3 + j] * pi0[j];
        w[i] = ref[i] * exp(3.0 * pm);
        s += w[i];
    }
    for (int i = 0; i < 3; i++) {
        NEAR(exp(oa[i]), w[i] / s, 1e-15);
        CU_ASSERT_EQUAL(oa[i], ob[i]);
    }
    /* the geometric mixture: alpha = 0.3, lambda = 0, beta = 0 -> pi ~ pi_t^0.3 ref^0.7 */
    DynModel g = {3, P, pi0, lref, 0.3, 0.0, 0.0};
    dyn_step(&g, a, oa, work);
    s = 0;
    for (int i = 0; i < 3; i++)
        s += w[i] = pow(exp(a[i]), 0.3) * pow(ref[i], 0.7);
    for (int i = 0; i < 3; i++)
        NEAR(exp(oa[i]), w[i] / s, 1e-15);
}

static void test_softmax(void)
{
    double z[5] = {1000, -1000, 0, 999, -1e300}, lp[5];
    dyn_log_softmax(z, 5, lp);
    double s = 0;
    for (int i = 0; i < 5; i++) {
        CU_ASSERT(isfinite(lp[i]));
        CU_ASSERT(lp[i] <= 0);
        s += exp(lp[i]);
    }
    NEAR(s, 1.0, 1e-15);
    NEAR(exp(lp[0]), 1 / (1 + exp(-1.0)), 1e-15);
    /* shift invariance, in place */
    double y[3] = {0.1, -2.0, 3.5}, y2[3] = {1e4 + 0.1, 1e4 - 2.0, 1e4 + 3.5}, ly[3];
    dyn_log_softmax(y, 3, ly);
    dyn_log_softmax(y2, 3, y2);
    for (int i = 0; i < 3; i++)
        NEAR(ly[i], y2[i], 1e-12);
    /* entropy and L1 */
    double lu[4];
    uniform_log(lu, 4);
    NEAR(exact_entropy(lu, 4), log(4.0), 1e-15);
    double lq[4] = {0, -INFINITY, -INFINITY, -INFINITY};
    CU_ASSERT_EQUAL(exact_entropy(lq, 4), 0.0);
    NEAR(exact_l1(lu, lq, 4), 1.5, 1e-15);
}

/* ---------------------------------------------------------------- norms, contraction, radius */

/* ||M||_2 by power iteration on M^T M, as an independent check of the Jacobi one. */
static double power_norm(const double *P, int n)
{
    double *v = malloc(sizeof(double) * n), *w = malloc(sizeof(double) * n), *u = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++)
        v[i] = 1 + 0.37 * i + 0.11 * i * i;
    double lam = 0;
    for (int it = 0; it < 20000; it++) {
        for (int i = 0; i < n; i++) { /* u = M v */
            u[i] = 0;
            for (int j = 0; j < n; j++)
                u[i] += (P[i * n + j] - 0.5) * v[j];
        }
        for (int j = 0; j < n; j++) { /* w = M^T u */
            w[j] = 0;
            for (int i = 0; i < n; i++)
                w[j] += (P[i * n + j] - 0.5) * u[i];
        }
        double nw = 0, nv = 0, dot = 0;
        for (int i = 0; i < n; i++) {
            nw += w[i] * w[i];
            nv += v[i] * v[i];
            dot += v[i] * w[i];
        }
        lam = dot / nv;
        nw = sqrt(nw);
        for (int i = 0; i < n; i++)
            v[i] = w[i] / nw;
    }
    free(v);
    free(w);
    free(u);
    return sqrt(lam);
}

static void test_norm_and_contraction(void)
{
    /* 2 x 2: P - 11^T/2 = [[0, .3], [-.3, 0]] -> 0.3 */
    double P2[4] = {0.5, 0.8, 0.2, 0.5};
    NEAR(dyn_centered_norm(P2, 2), 0.3, 1e-15);
    /* transitive n = 2, r = (ln 3, 0): P_01 = 3/4 -> 1/4 */
    double r2[2] = {log(3.0), 0}, T2[4];
    dyn_transitive(2, r2, T2);
    NEAR(T2[1], 0.75, 1e-15);
    NEAR(dyn_centered_norm(T2, 2), 0.25, 1e-15);
    /* cyclic n = 3, a = 1/2: a sqrt(3) = 0.8660...; contraction at (0.2, 2, 0.5) = 0.2 + 0.5 * 0.866 */
    double P3[9];
    dyn_cyclic(3, 0.5, P3);
    NEAR(dyn_centered_norm(P3, 3), sqrt(3.0) / 2, 1e-14);
    NEAR(dyn_contraction(0.2, 2.0, 0.5, sqrt(3.0) / 2), 0.2 + sqrt(3.0) / 4, 1e-15);
    NEAR(dyn_contraction(0.2, 2.0, 0.5, dyn_centered_norm(P3, 3)), 0.6330127018922193, 1e-13);
    /* cyclic n = 3..9: a max_k 2 |sin(2 pi k / n)| (C is normal: singular values = |eigenvalues|) */
    for (int n = 3; n <= 9; n++) {
        double *P = malloc(sizeof(double) * n * n), mx = 0;
        CU_ASSERT_EQUAL(dyn_cyclic(n, 0.3, P), 0);
        for (int k = 1; k < n; k++)
            mx = fmax(mx, 2 * fabs(sin(2 * M_PI * k / n)));
        NEAR(dyn_centered_norm(P, n), 0.3 * mx, 1e-13);
        free(P);
    }
    /* transitive n = 7 with uneven rewards: Jacobi against power iteration */
    double r7[7] = {2.0, 1.3, 1.1, 0.2, -0.4, -0.5, -3.0}, T7[49];
    dyn_transitive(7, r7, T7);
    double jn = dyn_centered_norm(T7, 7), pn = power_norm(T7, 7);
    CU_ASSERT(jn > 0.5);
    NEAR(jn, pn, 1e-12);
    char err[128];
    CU_ASSERT_EQUAL(dyn_check_matrix(T7, 7, 1e-12, err, sizeof err), 0);
    /* bad arguments of the cyclic family */
    CU_ASSERT_EQUAL(dyn_cyclic(2, 0.3, P2), -1);
    CU_ASSERT_EQUAL(dyn_cyclic(3, 0.6, P3), -1);
}

static void test_radius(void)
{
    double pts[][3] = {{0, 1, 1}, {0.5, 2, 0.5}, {0.9, 3, 0.7}, {1, 0.1, 1}, {0.3, 10, 0.2}};
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        double al = pts[i][0], b = pts[i][1], l = pts[i][2];
        for (double a = 0.1; a <= 0.5; a += 0.2) {
            double want = sqrt(al * al + a * a * b * b * l * l / 3);
            NEAR(dyn_cyclic_radius(3, a, al, b, l), want, 1e-14);
        }
    }
    /* n = 4: max |sin| = 1 -> sqrt(alpha^2 + (a beta lambda / 2)^2) */
    NEAR(dyn_cyclic_radius(4, 0.5, 0.6, 2, 1), sqrt(0.36 + 0.25), 1e-14);
    /* regimes */
    CU_ASSERT_EQUAL(dyn_regime(0.9, 0.5, 0, 0.3, 1), DYN_REGIME_CONTRACTION);
    CU_ASSERT_EQUAL(dyn_regime(1.2, 0.9, 0, 0.3, 1), DYN_REGIME_STABLE);
    CU_ASSERT_EQUAL(dyn_regime(1.2, 1.1, 0, 0.3, 1), DYN_REGIME_OSCILLATION);
    CU_ASSERT_EQUAL(dyn_regime(1.2, NAN, 1, 1.0, 1), DYN_REGIME_COLLAPSE);
    CU_ASSERT_EQUAL(dyn_regime(1.2, NAN, 1, 0.9, 1), DYN_REGIME_UNKNOWN);
    CU_ASSERT_EQUAL(dyn_regime(1.2, NAN, 0, 1.0, 1), DYN_REGIME_UNKNOWN);
    CU_ASSERT_STRING_EQUAL(dyn_regime_name(DYN_REGIME_OSCILLATION), "oscillation");
    CU_ASSERT_STRING_EQUAL(dyn_outcome_name(DYN_COLLAPSED), "collapsed");
}

/* ---------------------------------------------------------------- runs on the 3 x 3 cyclic P */

static const DynRunOpts OPTS = {3000, 300, 1e-8, 0.01, 1e-4};

/* A run of the 3 x 3 cyclic family (a = 1/2, uniform pi_0 = pi_ref) started from uniform with
 * +0.1 on class 0's log-probability, at alpha and beta lambda = bl (lambda = 1). */
static void cyclic_run(double alpha, double bl, DynResult *r, double *final_lp)
{
    double P[9], lref[3], start[3];
    dyn_cyclic(3, 0.5, P);
    uniform_log(lref, 3);
    uniform_log(start, 3);
    start[0] += 0.1;
    dyn_log_softmax(start, 3, start);
    DynModel m = {3, P, U3, lref, alpha, bl, 1.0};
    dyn_run(&m, start, &OPTS, r, NULL, final_lp);
}

/* beta lambda on the n = 3 boundary times f, for a = 1/2 */
static double bl_at(double alpha, double f)
{
    return f * sqrt(3 * (1 - alpha * alpha)) / 0.5;
}

static void test_cyclic_oscillates_above(void)
{
    double pts[][2] = {{0.5, 6.0}, {0.0, 5.0}, {0.9, 3.0}, {0.5, bl_at(0.5, 1.05)}, {0.2, bl_at(0.2, 1.02)}};
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        double al = pts[i][0], bl = pts[i][1];
        CU_ASSERT(dyn_cyclic_radius(3, 0.5, al, bl, 1) > 1);
        DynResult r;
        cyclic_run(al, bl, &r, NULL);
        if (!(r.cycle > 1e-3 && !r.converged && r.outcome == DYN_OSCILLATING))
            printf("\n  alpha %g bl %g: cycle %g max_step %g outcome %s\n", al, bl, r.cycle, r.max_step,
                   dyn_outcome_name(r.outcome));
        CU_ASSERT(r.cycle > 1e-3);
        CU_ASSERT(r.max_step > 1e-2);
        CU_ASSERT_FALSE(r.converged);
        CU_ASSERT_EQUAL(r.outcome, DYN_OSCILLATING);
    }
    /* alpha = 1: any beta lambda > 0 is outside the ellipse */
    DynResult r;
    cyclic_run(1.0, 0.5, &r, NULL);
    CU_ASSERT_EQUAL(r.outcome, DYN_OSCILLATING);
}

static void test_cyclic_converges_below(void)
{
    /* well below; between the contraction line and the boundary (contraction 1.58, radius 0.88);
     * just below the boundary */
    double pts[][2] = {{0.3, 1.0}, {0.0, 2.0}, {0.5, 2.5}, {0.5, bl_at(0.5, 0.95)}, {0.2, bl_at(0.2, 0.98)}};
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++) {
        double al = pts[i][0], bl = pts[i][1], lp[3];
        CU_ASSERT(dyn_cyclic_radius(3, 0.5, al, bl, 1) < 1);
        DynResult r;
        cyclic_run(al, bl, &r, lp);
        if (!(r.converged && r.outcome == DYN_CONVERGED))
            printf("\n  alpha %g bl %g: cycle %g max_step %g outcome %s\n", al, bl, r.cycle, r.max_step,
                   dyn_outcome_name(r.outcome));
        CU_ASSERT(r.converged);
        CU_ASSERT(r.max_step < 1e-8);
        CU_ASSERT_EQUAL(r.outcome, DYN_CONVERGED);
        CU_ASSERT(r.cycle < 1e-12);
        for (int k = 0; k < 3; k++) /* the fixed point is the uniform policy */
            NEAR(exp(lp[k]), 1.0 / 3, 1e-9);
        NEAR(r.entropy, log(3.0), 1e-9);
    }
    CU_ASSERT(dyn_contraction(0.5, 2.5, 1, sqrt(3.0) / 2) > 1.5);
}

/* ---------------------------------------------------------------- transitive collapse */

static void transitive_run(double alpha, double beta, DynResult *r)
{
    double rw[4] = {3, 2, 1, 0}, P[16], pi0[4], lref[4], start[4];
    dyn_transitive(4, rw, P);
    for (int i = 0; i < 4; i++) {
        pi0[i] = 0.25;
        lref[i] = start[i] = log(0.25);
    }
    start[0] += 0.1;
    dyn_log_softmax(start, 4, start);
    DynModel m = {4, P, pi0, lref, alpha, beta, 1.0};
    DynRunOpts o = {2000, 200, 1e-8, 0.01, 1e-4};
    dyn_run(&m, start, &o, r, NULL, NULL);
}

static void test_transitive_collapse(void)
{
    DynResult r;
    transitive_run(1.0, 1.0, &r);
    CU_ASSERT(r.entropy < 1e-3);
    CU_ASSERT_EQUAL(r.argmax, 0);
    CU_ASSERT(r.pmax > 0.9999);
    CU_ASSERT_EQUAL(r.outcome, DYN_COLLAPSED);
    transitive_run(0.99, 1.0, &r);
    CU_ASSERT(r.entropy < 1e-3);
    CU_ASSERT_EQUAL(r.argmax, 0);
    CU_ASSERT_EQUAL(r.outcome, DYN_COLLAPSED);
    /* alpha = 0, same beta: a contraction, a spread-out fixed point with the best class on top */
    transitive_run(0.0, 1.0, &r);
    CU_ASSERT(r.entropy > 1.0);
    CU_ASSERT_EQUAL(r.argmax, 0);
    CU_ASSERT(r.converged);
    CU_ASSERT_EQUAL(r.outcome, DYN_CONVERGED);
}

/* ---------------------------------------------------------------- run bookkeeping */

static void test_run_trajectory(void)
{
    double P[9], lref[3], start[3] = {0.3, -0.2, 0.0};
    dyn_cyclic(3, 0.5, P);
    uniform_log(lref, 3);
    dyn_log_softmax(start, 3, start);
    DynModel m = {3, P, U3, lref, 0.4, 5.0, 1.0};
    DynRunOpts o = {200, 50, 1e-8, 0.01, 1e-4};
    double *traj = malloc(sizeof(double) * 201 * 3), fl[3], cur[3], next[3], work[6];
    DynResult r;
    dyn_run(&m, start, &o, &r, traj, fl);
    /* row 0 is the start; each row is one step of the previous one */
    memcpy(cur, start, sizeof cur);
    double last_step = 0, max_step = 0;
    for (int t = 0; t <= 200; t++) {
        for (int i = 0; i < 3; i++)
            NEAR(traj[t * 3 + i], exp(cur[i]), 1e-15);
        if (t == 200)
            break;
        dyn_step(&m, cur, next, work);
        last_step = exact_l1(next, cur, 3);
        if (t + 1 >= 151)
            max_step = fmax(max_step, last_step);
        memcpy(cur, next, sizeof cur);
    }
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(fl[i], cur[i]);
    NEAR(r.step, last_step, 1e-15);
    NEAR(r.max_step, max_step, 1e-15);
    /* cycle strength: mean over classes of the population variance of rows 151..200 */
    double cyc = 0;
    for (int i = 0; i < 3; i++) {
        double s = 0, s2 = 0;
        for (int t = 151; t <= 200; t++) {
            s += traj[t * 3 + i];
            s2 += traj[t * 3 + i] * traj[t * 3 + i];
        }
        cyc += s2 / 50 - (s / 50) * (s / 50);
    }
    NEAR(r.cycle, cyc / 3, 1e-12);
    CU_ASSERT(r.cycle > 1e-3); /* radius 1.48 here: it oscillates */
    NEAR(r.entropy, exact_entropy(cur, 3), 1e-15);
    free(traj);
}

static void test_check_matrix(void)
{
    char err[256];
    double ok[4] = {0.5, 0.7, 0.3, 0.5};
    CU_ASSERT_EQUAL(dyn_check_matrix(ok, 2, 1e-9, err, sizeof err), 0);
    double diag[4] = {0.4, 0.7, 0.3, 0.5};
    CU_ASSERT_EQUAL(dyn_check_matrix(diag, 2, 1e-9, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "P[0][0]") != NULL);
    double anti[4] = {0.5, 0.7, 0.4, 0.5};
    CU_ASSERT_EQUAL(dyn_check_matrix(anti, 2, 1e-9, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "P[0][1] + P[1][0]") != NULL);
    double range[4] = {0.5, 1.2, -0.2, 0.5};
    CU_ASSERT_EQUAL(dyn_check_matrix(range, 2, 1e-9, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "P[0][1] = 1.2") != NULL);
    double nan[4] = {0.5, NAN, 0.5, 0.5};
    CU_ASSERT_EQUAL(dyn_check_matrix(nan, 2, 1e-9, err, sizeof err), -1);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("dynamics", NULL, NULL);
    CU_add_test(s, "one step, 2 x 2 by hand", test_step_2x2);
    CU_add_test(s, "one step, 3 x 3 rock-paper-scissors by hand", test_step_3x3_cyclic);
    CU_add_test(s, "reference and sampler mixtures (alpha, lambda)", test_step_reference_and_sampler);
    CU_add_test(s, "log-softmax normalisation, entropy, L1", test_softmax);
    CU_add_test(s, "spectral norm and contraction constant", test_norm_and_contraction);
    CU_add_test(s, "cyclic radius and regimes", test_radius);
    CU_add_test(s, "cyclic 3 x 3: oscillation above the boundary", test_cyclic_oscillates_above);
    CU_add_test(s, "cyclic 3 x 3: convergence below the boundary", test_cyclic_converges_below);
    CU_add_test(s, "transitive: collapse at alpha near 1", test_transitive_collapse);
    CU_add_test(s, "run: trajectory, steps, cycle strength", test_run_trajectory);
    CU_add_test(s, "matrix checks", test_check_matrix);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}

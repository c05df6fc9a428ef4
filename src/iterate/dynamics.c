/* dynamics.c: the tabular iterative-alignment dynamics (dynamics.h), exactly.
 *
 * Where the equations come from: ../shared/papers.md, section 6 (Chen, He, Jordan, Yao 2026):
 *   reference  pi_ref_t ~ pi_t^alpha pi_ref^(1-alpha)      (geometric mixture)
 *   sampler    mu_t = lambda pi_t + (1-lambda) pi_0
 *   update     pi_{t+1} = softmax(log pi_ref_t + beta P mu_t)
 *   stable when alpha + (beta lambda / 2) ||P - 11^T/2||_2 < 1;
 *   cyclic P: oscillation when alpha^2 + a^2 beta^2 lambda^2 / 3 > 1.
 * The paper writes the reference's fixed share as pi_ref; it is a separate argument here
 * (DynModel.logref), equal to log pi_0 when the iteration starts from the reference.
 * The normaliser of pi_ref_t is a constant shift of the logits, which softmax removes, so
 * log pi_ref_t = alpha log pi_t + (1 - alpha) log pi_ref is used unnormalised.
 *
 * Why the cyclic family is P = 11^T/2 + a C (not 11^T/2 + (a/2) C): linearising the update
 * at the uniform fixed point (pi_0 = pi_ref uniform) in logit space gives the map
 * alpha I + (beta lambda / n) (P - 11^T/2) on the directions that change the policy (the
 * softmax Jacobian there is (I - 11^T/n)/n, and 11^T annihilates it). With P - 11^T/2 = a C,
 * C's eigenvalues are 2 i sin(2 pi k / n), +-i sqrt(3) for n = 3, so the radius is
 * sqrt(alpha^2 + a^2 beta^2 lambda^2 / 3): the paper's boundary exactly. With (a/2) C the
 * boundary would be a^2 beta^2 lambda^2 / 12. So "advantage a" is Pr(i beats i+1) - 1/2.
 *
 * Does not: read files, parse configs, or know about grids (dynamics_cmd.c does), or use
 * LAPACK (the spectral norm is a Jacobi eigenvalue iteration on the small M^T M).
 */
#include "prefer/dynamics.h"
#include "prefer/exact.h"
#include "prefer/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const OUTCOME_NAMES[] = {"converged", "oscillating", "collapsed", "undecided"};
static const char *const REGIME_NAMES[] = {"contraction", "stable", "oscillation", "collapse", "unknown"};

const char *dyn_outcome_name(int outcome)
{
    return outcome >= 0 && outcome < 4 ? OUTCOME_NAMES[outcome] : "?";
}

const char *dyn_regime_name(int regime)
{
    return regime >= 0 && regime < 5 ? REGIME_NAMES[regime] : "?";
}

/* ---------------------------------------------------------------- one round */

void dyn_log_softmax(const double *z, int n, double *logp)
{
    double mx = z[0];
    for (int i = 1; i < n; i++)
        mx = z[i] > mx ? z[i] : mx;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += exp(z[i] - mx);
    /* (z - max) - log s, not z - (max + log s): keeps the leader's log-probability exact
     * when the logits are large */
    double ls = log(s);
    for (int i = 0; i < n; i++)
        logp[i] = (z[i] - mx) - ls;
}

void dyn_step(const DynModel *m, const double *logpi, double *logpi_next, double *work)
{
    int n = m->n;
    double *mu = work, *z = work + n;
    for (int j = 0; j < n; j++)
        mu[j] = m->lambda * exp(logpi[j]) + (1 - m->lambda) * m->pi0[j];
    for (int i = 0; i < n; i++) {
        const double *Pi = m->P + (size_t)i * (size_t)n;
        double pm = 0;
        for (int j = 0; j < n; j++)
            pm += Pi[j] * mu[j];
        /* alpha = 0 must not touch logpi (it may be very negative, never -inf here) */
        double ref = m->alpha == 0 ? m->logref[i]
                                   : m->alpha * logpi[i] + (1 - m->alpha) * m->logref[i];
        z[i] = ref + m->beta * pm;
    }
    dyn_log_softmax(z, n, logpi_next);
}

/* ---------------------------------------------------------------- a run */

DynOutcome dyn_classify(const DynResult *r, const DynRunOpts *o)
{
    if (!r->converged && r->cycle > o->cycle_tol)
        return DYN_OSCILLATING;
    if (r->entropy < o->collapse_entropy)
        return DYN_COLLAPSED;
    if (r->converged)
        return DYN_CONVERGED;
    return DYN_UNDECIDED;
}

void dyn_run(const DynModel *m, const double *logpi_init, const DynRunOpts *o, DynResult *res,
             double *traj, double *final_logpi)
{
    int n = m->n, R = o->rounds, W = o->window;
    if (R < 1 || W < 1 || W > R)
        die("dyn_run: window %d must lie in [1, rounds = %d]", W, R);
    double *buf = xmalloc(sizeof(double) * (size_t)n * 4);
    double *cur = buf, *next = buf + n, *work = buf + 2 * (size_t)n;
    double *win = xmalloc(sizeof(double) * (size_t)W * (size_t)n); /* (W, n) ring of pi_t */
    memcpy(cur, logpi_init, sizeof(double) * (size_t)n);
    if (traj)
        for (int i = 0; i < n; i++)
            traj[i] = exp(cur[i]);
    double step = 0, max_step = 0;
    for (int t = 1; t <= R; t++) {
        dyn_step(m, cur, next, work);
        step = exact_l1(next, cur, n);
        int k = t - (R - W + 1); /* position in the window, >= 0 inside it */
        if (k >= 0) {
            max_step = step > max_step ? step : max_step;
            for (int i = 0; i < n; i++)
                win[(size_t)k * (size_t)n + (size_t)i] = exp(next[i]);
        }
        if (traj)
            for (int i = 0; i < n; i++)
                traj[(size_t)t * (size_t)n + (size_t)i] = exp(next[i]);
        double *sw = cur;
        cur = next;
        next = sw;
    }
    /* cycle strength: two-pass variance over the window of each coordinate, averaged */
    double cyc = 0;
    for (int i = 0; i < n; i++) {
        double mean = 0, var = 0;
        for (int k = 0; k < W; k++)
            mean += win[(size_t)k * (size_t)n + (size_t)i];
        mean /= W;
        for (int k = 0; k < W; k++) {
            double d = win[(size_t)k * (size_t)n + (size_t)i] - mean;
            var += d * d;
        }
        cyc += var / W;
    }
    memset(res, 0, sizeof *res);
    res->cycle = cyc / n;
    res->entropy = exact_entropy(cur, n);
    res->step = step;
    res->max_step = max_step;
    res->converged = max_step < o->tol;
    res->argmax = 0;
    for (int i = 1; i < n; i++)
        if (cur[i] > cur[res->argmax])
            res->argmax = i;
    res->pmax = exp(cur[res->argmax]);
    res->outcome = dyn_classify(res, o);
    if (final_logpi)
        memcpy(final_logpi, cur, sizeof(double) * (size_t)n);
    free(buf);
    free(win);
}

/* ---------------------------------------------------------------- matrices */

int dyn_cyclic(int n, double a, double *P)
{
    if (n < 3 || !(a >= 0 && a <= 0.5))
        return -1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double c = j == (i + 1) % n ? 1 : j == (i + n - 1) % n ? -1 : 0;
            P[(size_t)i * (size_t)n + (size_t)j] = 0.5 + a * c;
        }
    return 0;
}

static double sigmoid(double z)
{
    return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
}

void dyn_transitive(int n, const double *r, double *P)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            P[(size_t)i * (size_t)n + (size_t)j] = i == j ? 0.5 : sigmoid(r[i] - r[j]);
}

int dyn_check_matrix(const double *P, int n, double tol, char *err, int errlen)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double p = P[(size_t)i * (size_t)n + (size_t)j], q = P[(size_t)j * (size_t)n + (size_t)i];
            if (!isfinite(p) || p < 0 || p > 1) {
                snprintf(err, (size_t)errlen, "P[%d][%d] = %g is not a probability in [0, 1]", i, j, p);
                return -1;
            }
            if (i == j && fabs(p - 0.5) > tol) {
                snprintf(err, (size_t)errlen, "P[%d][%d] = %g: the diagonal must be 1/2", i, j, p);
                return -1;
            }
            if (i < j && fabs(p + q - 1) > tol) {
                snprintf(err, (size_t)errlen, "P[%d][%d] + P[%d][%d] = %g + %g = %.17g, not 1", i, j, j, i, p,
                         q, p + q);
                return -1;
            }
        }
    return 0;
}

/* Largest eigenvalue of the symmetric A (n, n), destroyed, by cyclic Jacobi rotations until
 * the off-diagonal mass is negligible against the diagonal's. */
static double jacobi_max_eig(double *A, int n)
{
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, diag = 0;
        for (int i = 0; i < n; i++) {
            diag += A[(size_t)i * n + i] * A[(size_t)i * n + i];
            for (int j = i + 1; j < n; j++)
                off += A[(size_t)i * n + j] * A[(size_t)i * n + j];
        }
        if (off <= 1e-30 * diag || off == 0)
            break;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = A[(size_t)p * n + q];
                if (apq == 0)
                    continue;
                double app = A[(size_t)p * n + p], aqq = A[(size_t)q * n + q];
                double theta = (aqq - app) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* A <- A J (columns p, q) */
                    double akp = A[(size_t)k * n + p], akq = A[(size_t)k * n + q];
                    A[(size_t)k * n + p] = c * akp - s * akq;
                    A[(size_t)k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* A <- J^T A (rows p, q) */
                    double apk = A[(size_t)p * n + k], aqk = A[(size_t)q * n + k];
                    A[(size_t)p * n + k] = c * apk - s * aqk;
                    A[(size_t)q * n + k] = s * apk + c * aqk;
                }
                A[(size_t)p * n + q] = A[(size_t)q * n + p] = 0;
            }
    }
    double mx = A[0];
    for (int i = 1; i < n; i++)
        mx = A[(size_t)i * n + i] > mx ? A[(size_t)i * n + i] : mx;
    return mx;
}

double dyn_centered_norm(const double *P, int n)
{
    size_t nn = (size_t)n * (size_t)n;
    double *M = xmalloc(sizeof(double) * nn * 2), *A = M + nn;
    for (size_t k = 0; k < nn; k++)
        M[k] = P[k] - 0.5;
    for (int i = 0; i < n; i++) /* A = M^T M */
        for (int j = i; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++)
                s += M[(size_t)k * n + i] * M[(size_t)k * n + j];
            A[(size_t)i * n + j] = A[(size_t)j * n + i] = s;
        }
    double e = jacobi_max_eig(A, n);
    free(M);
    return e > 0 ? sqrt(e) : 0;
}

double dyn_contraction(double alpha, double beta, double lambda, double norm)
{
    return alpha + 0.5 * beta * lambda * norm;
}

double dyn_cyclic_radius(int n, double a, double alpha, double beta, double lambda)
{
    double best = 0;
    for (int k = 1; k < n; k++) {
        double im = beta * lambda * a / n * 2 * sin(2 * M_PI * k / n);
        double r = sqrt(alpha * alpha + im * im);
        best = r > best ? r : best;
    }
    return best;
}

DynRegime dyn_regime(double contraction, double cyclic_radius, int transitive_unique_top, double alpha,
                     double beta)
{
    if (contraction < 1)
        return DYN_REGIME_CONTRACTION;
    if (!isnan(cyclic_radius)) {
        if (cyclic_radius < 1)
            return DYN_REGIME_STABLE;
        if (cyclic_radius > 1)
            return DYN_REGIME_OSCILLATION;
        return DYN_REGIME_UNKNOWN;
    }
    if (transitive_unique_top && alpha == 1 && beta > 0)
        return DYN_REGIME_COLLAPSE;
    return DYN_REGIME_UNKNOWN;
}

/* dynamics.h: the tabular iterative-alignment dynamics of Chen, He, Jordan, Yao (2026),
 * computed exactly over n response classes (../shared/papers.md, section 6).
 *
 * With P the (n, n) preference matrix, P[i][j] = Pr(class i preferred over class j), the
 * initial policy pi_0 and the base reference pi_ref, one round is
 *
 *     mu_t           = lambda pi_t + (1 - lambda) pi_0                 (the sampler)
 *     log pi_ref_t   = alpha log pi_t + (1 - alpha) log pi_ref + c     (geometric mixture)
 *     pi_{t+1}       = softmax(log pi_ref_t + beta P mu_t)             (the IPO optimum)
 *
 * Policies are carried as log-probabilities (log-softmax, so nothing underflows to log 0
 * when a policy collapses or cycles close to a vertex of the simplex).
 *
 * The contraction constant is alpha + (beta lambda / 2) ||P - 11^T/2||_2: below 1 the map
 * (in logit space, modulo constants) is a contraction with a unique, globally attracting
 * fixed point. For the cyclic family with pi_0 = pi_ref uniform, the uniform policy is a
 * fixed point and its linearisation has spectral radius dyn_cyclic_radius(): for n = 3,
 * radius^2 = alpha^2 + a^2 beta^2 lambda^2 / 3, the paper's boundary.
 *
 * Everything here is pure arithmetic on caller-owned arrays: no files, no config, no MPI.
 * Only dyn_run allocates (its own window buffer, freed before it returns). Matrices are
 * row-major, (n, n); vectors (n).
 */
#ifndef PREFER_DYNAMICS_H
#define PREFER_DYNAMICS_H

#include <stddef.h>

/* One point of the dynamics. All pointers are borrowed. */
typedef struct {
    int n;                /* classes */
    const double *P;      /* (n, n) P[i*n+j] = Pr(i preferred over j) */
    const double *pi0;    /* (n) initial policy: the sampler's fixed share (sums to 1) */
    const double *logref; /* (n) log pi_ref: the reference's fixed share (finite) */
    double alpha;         /* weight of the current policy in the reference, [0, 1] */
    double beta;          /* 1/tau, >= 0 */
    double lambda;        /* on-policy share of the sampler, [0, 1] */
} DynModel;

/* What a run is judged by. */
typedef struct {
    int rounds;              /* R >= 1 updates */
    int window;              /* W in [1, R]: the last W policies pi_{R-W+1} .. pi_R */
    double tol;              /* converged: every step in the window has ||.||_1 < tol */
    double collapse_entropy; /* collapsed: final entropy (nats) below this */
    double cycle_tol;        /* oscillating: cycle strength above this (and not converged) */
} DynRunOpts;

typedef enum {
    DYN_CONVERGED = 0,   /* steps in the window all below tol, entropy not collapsed */
    DYN_OSCILLATING = 1, /* not converged, cycle strength > cycle_tol */
    DYN_COLLAPSED = 2,   /* final entropy < collapse_entropy (and not oscillating) */
    DYN_UNDECIDED = 3    /* none of these after R rounds (slow, near a boundary) */
} DynOutcome;

typedef enum {
    DYN_REGIME_CONTRACTION = 0, /* contraction constant < 1: unique stable fixed point */
    DYN_REGIME_STABLE = 1,      /* cyclic: not a contraction, but radius < 1 (linearly stable) */
    DYN_REGIME_OSCILLATION = 2, /* cyclic: radius > 1 (uniform fixed point unstable) */
    DYN_REGIME_COLLAPSE = 3,    /* transitive with a unique best class, alpha = 1, beta > 0 */
    DYN_REGIME_UNKNOWN = 4      /* no theorem applies */
} DynRegime;

typedef struct {
    double entropy;   /* H(pi_R), nats */
    double cycle;     /* cycle strength: mean over classes i of the variance over t of pi_t(i),
                         t in the last W rounds (population variance, 1/W) */
    double step;      /* ||pi_R - pi_{R-1}||_1 */
    double max_step;  /* largest ||pi_{t+1} - pi_t||_1 with pi_{t+1} in the window */
    int converged;    /* max_step < tol */
    double pmax;      /* largest class probability of pi_R ... */
    int argmax;       /* ... and its class (lowest index on ties) */
    DynOutcome outcome;
} DynResult;

/* Names of the enums ("converged", ...; "contraction", ...); "?" when out of range. */
const char *dyn_outcome_name(int outcome);
const char *dyn_regime_name(int regime);

/* logp[n] = z - logsumexp(z): finite z gives finite logp summing (in exp) to 1 within
 * rounding; z may alias logp. */
void dyn_log_softmax(const double *z, int n, double *logp);

/* One round: logpi_next[n] from logpi[n] (may not alias). work: 2n doubles. */
void dyn_step(const DynModel *m, const double *logpi, double *logpi_next, double *work);

/* (Entropy and ||pi - pi'||_1 of log-probability arrays: exact_entropy, exact_l1 in exact.h.) */

/* R rounds from logpi_init[n] (the policy before the first update). Fills *res; if traj is
 * non-NULL it receives the probabilities pi_0' = exp(logpi_init), pi_1 .. pi_R as an
 * (R+1, n) array; if final_logpi is non-NULL it receives log pi_R (n). Allocates a W x n
 * window (freed on return); dies only on allocation failure or bad options (window outside
 * [1, rounds]). */
void dyn_run(const DynModel *m, const double *logpi_init, const DynRunOpts *o, DynResult *res,
             double *traj, double *final_logpi);

/* The outcome of a result under o (the rule documented in DynOutcome). */
DynOutcome dyn_classify(const DynResult *r, const DynRunOpts *o);

/* ---------------------------------------------------------------- preference matrices */

/* Cyclic family (rock-paper-scissors with advantage a), n >= 3, 0 <= a <= 1/2:
 *   P = 11^T/2 + a C,   C[i][j] = +1 if j = i+1 (mod n), -1 if j = i-1 (mod n), else 0,
 * so class i beats class i+1 with probability 1/2 + a and ties every class that is not a
 * neighbour. For n = 3 this is the full rock-paper-scissors matrix. Returns 0, or -1 for
 * bad n or a. */
int dyn_cyclic(int n, double a, double *P);

/* Transitive family (Bradley-Terry): P[i][j] = sigma(r_i - r_j). */
void dyn_transitive(int n, const double *r, double *P);

/* Check P: finite entries in [0, 1], |P_ii - 1/2| <= tol, |P_ij + P_ji - 1| <= tol.
 * Returns 0, or -1 with the first offending entry named (0-based "P[i][j]") in err. */
int dyn_check_matrix(const double *P, int n, double tol, char *err, int errlen);

/* ||P - 11^T/2||_2, the largest singular value: square root of the largest eigenvalue of
 * M^T M (M = P - 11^T/2), by cyclic Jacobi rotations (exact to rounding; O(n^3) per sweep,
 * meant for n up to a few hundred). Allocates 2 n^2 doubles. */
double dyn_centered_norm(const double *P, int n);

/* alpha + (beta lambda / 2) norm, norm = dyn_centered_norm(P). */
double dyn_contraction(double alpha, double beta, double lambda, double norm);

/* Spectral radius of the linearised map at the uniform fixed point of the cyclic family
 * (pi_0 = pi_ref uniform), on the directions that change the policy:
 *   max over k = 1..n-1 of |alpha + i (beta lambda a / n) 2 sin(2 pi k / n)|.
 * n = 3: sqrt(alpha^2 + a^2 beta^2 lambda^2 / 3). */
double dyn_cyclic_radius(int n, double a, double alpha, double beta, double lambda);

/* The theoretical regime of a point. cyclic_radius: dyn_cyclic_radius for the cyclic family
 * with uniform pi_0 and pi_ref, NaN otherwise. transitive_unique_top: 1 for a transitive P
 * whose best class is unique, else 0. */
DynRegime dyn_regime(double contraction, double cyclic_radius, int transitive_unique_top, double alpha,
                     double beta);

#endif

/* test_losses.c: every preference loss against hand-computed values (literals worked out in
 * the comments, and a naive formula written here from TRL's definitions, not losses.c's code
 * path), every derivative against central finite differences of loss_batch, weighted
 * combinations, metrics, the bco baseline, finiteness at extreme inputs, parse errors. */
#include "prefer/config.h"
#include "prefer/losses.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rel_close(double got, double want, double rtol)
{
    return fabs(got - want) <= rtol * fmax(fabs(want), 1e-30);
}

#define CHECK_REL(got, want, rtol)                                                           \
    do {                                                                                     \
        double g_ = (got), w_ = (want);                                                      \
        if (!rel_close(g_, w_, (rtol)))                                                      \
            fprintf(stderr, "\n  %s:%d: %s = %.17g, want %.17g\n", __FILE__, __LINE__, #got,  \
                    g_, w_);                                                                 \
        CU_ASSERT(rel_close(g_, w_, (rtol)));                                                \
    } while (0)

/* ---------------------------------------------------------------- fixtures */

/* The three hand-picked pairs: {logp_c, logp_r, ref_c, ref_r, len_c, len_r}.
 *   P0: a = -10+11 = 1,     b = -12+11 = -1,     h = 2     logp_c-logp_r = 2,   ref diff = 0
 *   P1: a = -20+18 = -2,    b = -15+16 = 1,      h = -3    logp_c-logp_r = -5,  ref diff = -2
 *   P2: a = -7.5+8 = 0.5,   b = -9+8.25 = -0.75, h = 1.25  logp_c-logp_r = 1.5, ref diff = 0.25 */
static const PairLogps PAIRS[3] = {
    {-10, -12, -11, -11, 4, 5},
    {-20, -15, -18, -16, 10, 8},
    {-7.5, -9, -8, -8.25, 3, 6},
};

/* Coefficients of the value tests. */
#define BETA 0.1
#define EPS 0.1
#define GAMMA 0.5
#define TAU 0.05
#define DELTA 0.3 /* bco baseline, set through loss_bco_update(0.2), (0.4) */

/* A spec from train.objective / train.loss_weights and the coefficients, through the config
 * defaults and loss_spec_parse (the strings are swapped in and out, so config_free stays
 * right). Returns loss_spec_parse's result; err gets its message. */
static int parse_with(LossSpec *s, const char *obj, const char *wts, double beta, double eps,
                      const char *ipo, char *err, int errlen)
{
    PreferConfig c;
    config_defaults(&c);
    char *o = c.train.objective, *w = c.train.loss_weights, *ip = c.loss.ipo_normalize;
    c.train.objective = (char *)obj;
    c.train.loss_weights = (char *)wts;
    c.loss.ipo_normalize = (char *)ipo;
    c.loss.beta = beta;
    c.loss.label_smoothing = eps;
    c.loss.simpo_gamma = GAMMA;
    c.loss.discopop_tau = TAU;
    int rc = loss_spec_parse(s, &c, err, errlen);
    c.train.objective = o;
    c.train.loss_weights = w;
    c.loss.ipo_normalize = ip;
    config_free(&c);
    return rc;
}

static LossSpec spec(const char *obj, const char *wts, double beta, double eps, const char *ipo)
{
    LossSpec s;
    char err[512];
    int rc = parse_with(&s, obj, wts, beta, eps, ipo, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\n  parse of \"%s\" / \"%s\" failed: %s\n", obj, wts, err);
    CU_ASSERT_FATAL(rc == 0);
    return s;
}

/* ---------------------------------------------------------------- naive formulas */

/* Straight from the definitions, no care for overflow (the inputs here are moderate). */
static double nsig(double x) { return 1.0 / (1.0 + exp(-x)); }
static double nls(double x) { return log(nsig(x)); }

static double naive(const char *name, const PairLogps *q, double beta, double eps, int tok)
{
    double a = q->logp_c - q->ref_c, b = q->logp_r - q->ref_r, h = a - b, z = beta * h;
    if (!strcmp(name, "sft"))
        return -q->logp_c / q->len_c;
    if (!strcmp(name, "dpo"))
        return -nls(z);
    if (!strcmp(name, "ipo")) {
        double d = tok ? a / q->len_c - b / q->len_r : h;
        return (d - 1 / (2 * beta)) * (d - 1 / (2 * beta));
    }
    if (!strcmp(name, "hinge"))
        return fmax(0.0, 1 - z);
    if (!strcmp(name, "robust"))
        return (-(1 - eps) * nls(z) + eps * nls(-z)) / (1 - 2 * eps);
    if (!strcmp(name, "cdpo"))
        return -(1 - eps) * nls(z) - eps * nls(-z);
    if (!strcmp(name, "exo_pair")) {
        double e = eps == 0 ? 1e-3 : eps;
        return nsig(z) * (nls(z) - log(1 - e)) + nsig(-z) * (nls(-z) - log(e));
    }
    if (!strcmp(name, "nca_pair"))
        return -nls(beta * a) - 0.5 * nls(-beta * a) - 0.5 * nls(-beta * b);
    if (!strcmp(name, "bco_pair"))
        return -nls(beta * a - DELTA) - nls(-(beta * b - DELTA));
    if (!strcmp(name, "sppo_hard"))
        return pow(a - 0.5 / beta, 2) + pow(b + 0.5 / beta, 2);
    if (!strcmp(name, "apo_zero"))
        return (1 - nsig(beta * a)) + nsig(beta * b);
    if (!strcmp(name, "apo_down"))
        return nsig(beta * a) + (1 - nsig(z));
    if (!strcmp(name, "discopop")) {
        double m = nsig(z / TAU);
        return -nls(z) * (1 - m) + exp(-z) * m;
    }
    if (!strcmp(name, "sigmoid_norm"))
        return -nls(beta * (a / q->len_c - b / q->len_r));
    if (!strcmp(name, "simpo"))
        return -nls(beta * (q->logp_c / q->len_c - q->logp_r / q->len_r) - GAMMA);
    CU_FAIL("naive: unknown name");
    return NAN;
}

/* ---------------------------------------------------------------- values by hand */

/* Values of the three pairs at beta = 0.1, eps = 0.1, gamma = 0.5, tau = 0.05, delta = 0.3,
 * worked out in 30-digit arithmetic. The arithmetic for P0 (a = 1, b = -1, h = 2, z = beta h
 * = 0.2; sigma(0.2) = 0.549833997312478, ls(0.2) = -0.598138869381592, ls(-0.2) =
 * -0.798138869381592):
 *   sft          -logp_c/len_c = 10/4 = 2.5
 *   dpo          -ls(0.2) = 0.598138869381592
 *   ipo (sum)    (2 - 1/0.2)^2 = (-3)^2 = 9
 *   ipo (token)  (1/4 - (-1)/5 - 5)^2 = (0.45 - 5)^2 = 20.7025
 *   hinge        max(0, 1 - 0.2) = 0.8
 *   robust       (0.9*0.598138869 - 0.1*0.798138869) / 0.8 = 0.573138869381592
 *   cdpo         0.9*0.598138869 + 0.1*0.798138869 = 0.618138869381592
 *   exo_pair     0.549834*(-0.598139 - log 0.9) + 0.450166*(-0.798139 - log 0.1)
 *                = 0.549834*(-0.492778) + 0.450166*(1.504446) = 0.406304250724956
 *   exo_pair e=0 uses e = 1e-3: 0.549834*(-0.598139+0.0010005) + 0.450166*(-0.798139+6.907755)
 *                = 2.42201462066165
 *   nca_pair     -ls(0.1) - ls(-0.1)/2 - ls(0.1)/2 = 0.644397 + 0.372198 + 0.322198 = 1.33879332014714
 *   bco_pair     -ls(0.1 - 0.3) - ls(-(-0.1 - 0.3)) = -ls(-0.2) - ls(0.4) = 0.798139 + 0.513015
 *                = 1.31115412178154
 *   sppo_hard    (1 - 5)^2 + (-1 + 5)^2 = 16 + 16 = 32
 *   apo_zero     1 - sigma(0.1) + sigma(-0.1) = 1 - 0.524979 + 0.475021 = 0.95004162504212
 *   apo_down     sigma(0.1) + 1 - sigma(0.2) = 0.524979 + 0.450166 = 0.975145190166462
 *   discopop     m = sigma(0.2/0.05) = sigma(4) = 0.982014; 0.598139*0.017986 + e^-0.2*0.982014
 *                = 0.010758 + 0.804005 = 0.814763141141885
 *   sigmoid_norm -ls(0.1*(1/4 + 1/5)) = -ls(0.045) = 0.670900284205406
 *   simpo        -ls(0.1*(-10/4 + 12/5) - 0.5) = -ls(-0.51) = 0.980313318044875 */
typedef struct {
    const char *name;
    const char *ipo;
    double eps;
    double v[3];
} Hand;

static const Hand HAND[] = {
    {"sft", "sum", EPS, {2.5, 2.0, 2.5}},
    {"dpo", "sum", EPS, {0.59813886938159184, 0.85435524446852712, 0.63259903531716907}},
    {"ipo", "sum", EPS, {9.0, 64.0, 14.0625}},
    {"ipo", "token_mean", EPS, {20.7025, 28.355625, 22.168402777777778}},
    {"hinge", "sum", EPS, {0.8, 1.3, 0.875}},
    {"robust", "sum", EPS, {0.57313886938159184, 0.89185524446852712, 0.61697403531716907}},
    {"cdpo", "sum", EPS, {0.61813886938159184, 0.82435524446852712, 0.64509903531716907}},
    {"exo_pair", "sum", EPS, {0.40630425072495617, 0.68551724243824839, 0.44420093846040661}},
    {"exo_pair", "sum", 0.0, {2.4220146206616481, 3.2865116089563819, 2.5476245373245928}},
    {"nca_pair", "sum", EPS, {1.3387933201471418, 1.4694066341091732, 1.355864542433327}},
    {"bco_pair", "sum", EPS, {1.3111541217815445, 1.5722158535616985, 1.3490626840186836}},
    {"sppo_hard", "sum", EPS, {32.0, 85.0, 38.3125}},
    {"apo_zero", "sum", EPS, {0.95004162504212003, 1.0748131847914179, 0.96876138763725442}},
    {"apo_down", "sum", EPS, {0.97514519016646208, 1.0246085194991811, 0.98128802311045409}},
    {"discopop", "sum", EPS, {0.81476314114188531, 0.8555804380528617, 0.86354010518249815}},
    {"sigmoid_norm", "sum", EPS, {0.67090028420540624, 0.70952920599960412, 0.67867018026320921}},
    {"simpo", "sum", EPS, {0.980313318044875, 0.98187606665145775, 1.0374879504858856}},
};
#define NHAND ((int)(sizeof HAND / sizeof HAND[0]))

static void set_bco(LossSpec *s)
{
    loss_bco_update(s, 0.2);
    loss_bco_update(s, 0.4); /* mean of the batch means: (0.2 + 0.4)/2 = 0.3 */
}

static void test_values_pairwise(void)
{
    for (int t = 0; t < NHAND; t++) {
        const Hand *H = &HAND[t];
        LossSpec s = spec(H->name, "", BETA, H->eps, H->ipo);
        set_bco(&s);
        double loss[3];
        loss_batch(&s, 3, PAIRS, loss, NULL, NULL, NULL);
        for (int i = 0; i < 3; i++) {
            double nv = naive(H->name, &PAIRS[i], BETA, H->eps, !strcmp(H->ipo, "token_mean"));
            if (!rel_close(loss[i], H->v[i], 1e-12) || !rel_close(loss[i], nv, 1e-12))
                fprintf(stderr, "\n  %s (ipo %s, eps %g) pair %d: got %.17g, hand %.17g, naive %.17g",
                        H->name, H->ipo, H->eps, i, loss[i], H->v[i], nv);
            CHECK_REL(loss[i], H->v[i], 1e-12);
            CHECK_REL(loss[i], nv, 1e-12);
        }
    }
}

/* aot sorts x = logp_c - logp_r = (2, -5, 1.5) -> (-5 [P1], 1.5 [P2], 2 [P0]) and
 * y = ref_c - ref_r = (0, -2, 0.25) -> (-2, 0, 0.25); d = (-3, 1.5, 1.75), each through
 * the cdpo form with eps = 0.1 at beta = 0.1:
 *   d = -3:   0.9*(-ls(-0.3)) + 0.1*(-ls(0.3))   = 0.9*0.854355 + 0.1*0.554355 = 0.824355244468527 -> P1
 *   d = 1.5:  0.9*(-ls(0.15)) + 0.1*(-ls(-0.15)) = 0.635957047789532 -> P2
 *   d = 1.75: 0.9*(-ls(0.175)) + 0.1*(-ls(-0.175)) = 0.626970430663047 -> P0
 * aot_unpaired sorts a = (1, -2, 0.5) -> (-2 [P1], 0.5 [P2], 1 [P0]) and b = (-1, 1, -0.75)
 * -> (-1, -0.75, 1); d = (-1, 1.25, 0):
 *   d = -1:   0.9*(-ls(-0.1)) + 0.1*(-ls(0.1)) = 0.9*0.744397 + 0.1*0.644397 = 0.734396660073571 -> P1
 *   d = 1.25: 0.645099035317169 -> P2;    d = 0: log 2 = 0.693147180559945 -> P0 */
static void test_values_sorted(void)
{
    const double want_aot[3] = {0.62697043066304682, 0.82435524446852712, 0.63595704778953208};
    const double want_un[3] = {0.69314718055994531, 0.73439666007357089, 0.64509903531716907};
    double loss[3];
    LossSpec s = spec("aot", "", BETA, EPS, "sum");
    loss_batch(&s, 3, PAIRS, loss, NULL, NULL, NULL);
    for (int i = 0; i < 3; i++)
        CHECK_REL(loss[i], want_aot[i], 1e-12);
    s = spec("aot_unpaired", "", BETA, EPS, "sum");
    loss_batch(&s, 3, PAIRS, loss, NULL, NULL, NULL);
    for (int i = 0; i < 3; i++)
        CHECK_REL(loss[i], want_un[i], 1e-12);

    /* a naive sort-and-sum here, on a permuted batch: the sum does not depend on the order */
    const PairLogps perm[3] = {PAIRS[2], PAIRS[0], PAIRS[1]};
    for (int un = 0; un < 2; un++) {
        double x[3], y[3];
        for (int i = 0; i < 3; i++) {
            x[i] = un ? perm[i].logp_c - perm[i].ref_c : perm[i].logp_c - perm[i].logp_r;
            y[i] = un ? perm[i].logp_r - perm[i].ref_r : perm[i].ref_c - perm[i].ref_r;
        }
        for (int i = 1; i < 3; i++) /* insertion sort */
            for (int j = i; j > 0 && x[j - 1] > x[j]; j--) {
                double t = x[j]; x[j] = x[j - 1]; x[j - 1] = t;
            }
        for (int i = 1; i < 3; i++)
            for (int j = i; j > 0 && y[j - 1] > y[j]; j--) {
                double t = y[j]; y[j] = y[j - 1]; y[j - 1] = t;
            }
        double want = 0;
        for (int k = 0; k < 3; k++) {
            double z = BETA * (x[k] - y[k]);
            want += -(1 - EPS) * nls(z) - EPS * nls(-z);
        }
        s = spec(un ? "aot_unpaired" : "aot", "", BETA, EPS, "sum");
        LossMetrics m;
        loss_batch(&s, 3, perm, loss, NULL, NULL, &m);
        CHECK_REL(loss[0] + loss[1] + loss[2], want, 1e-12);
        CHECK_REL(m.loss, want, 1e-12);
        CHECK_REL(m.term[0], want, 1e-12);
    }
}

/* ---------------------------------------------------------------- derivatives */

/* Five pairs with distinct x, y, a, b (no ties for the sorting terms) and beta h away from
 * hinge's kink at 1 for both betas used. */
static const PairLogps FD_PAIRS[5] = {
    {-10, -12, -11, -11, 4, 5},
    {-20, -15, -18, -16, 10, 8},
    {-7.5, -9, -8, -8.25, 3, 6},
    {-30, -45, -33, -40, 12, 20},
    {-5, -4, -6.5, -2, 2, 1},
};

static double total_loss(const LossSpec *s, int n, const PairLogps *p)
{
    double loss[8], sum = 0;
    loss_batch(s, n, p, loss, NULL, NULL, NULL);
    for (int i = 0; i < n; i++)
        sum += loss[i];
    return sum;
}

/* Central differences of sum_j loss[j] in every logp_c[i] and logp_r[i], step 1e-4: the
 * truncation error f''' h^2 / 6 and the rounding error 1e-16 |f| / h are both far below
 * 1e-6 relative. Returns the number of mismatches. */
static int fd_check(const LossSpec *s, const char *what)
{
    const int n = 5;
    const double step = 1e-4;
    double loss[5], dlc[5], dlr[5];
    int bad = 0;
    loss_batch(s, n, FD_PAIRS, loss, dlc, dlr, NULL);
    for (int i = 0; i < n; i++)
        for (int side = 0; side < 2; side++) {
            PairLogps p[5];
            memcpy(p, FD_PAIRS, sizeof p);
            double *x = side ? &p[i].logp_r : &p[i].logp_c, x0 = *x;
            *x = x0 + step;
            double fp = total_loss(s, n, p);
            *x = x0 - step;
            double fm = total_loss(s, n, p);
            double fd = (fp - fm) / (2 * step), an = side ? dlr[i] : dlc[i];
            if (!(fabs(an - fd) <= 1e-6 * fabs(fd) + 1e-9)) {
                fprintf(stderr, "\n  %s: d/d%s[%d] = %.12g, finite difference %.12g", what,
                        side ? "logp_r" : "logp_c", i, an, fd);
                bad++;
            }
        }
    return bad;
}

static void test_derivatives(void)
{
    const double betas[2] = {0.1, 1.0};
    for (int k = 0; k < LOSS_NKINDS; k++)
        for (int bi = 0; bi < 2; bi++)
            for (int variant = 0; variant < 2; variant++) {
                /* variant 1: ipo per-token, exo / cdpo / robust / aot with eps = 0 */
                const char *ipo = variant ? "token_mean" : "sum";
                double eps = variant ? 0.0 : 0.2;
                LossSpec s = spec(loss_name(k), "", betas[bi], eps, ipo);
                set_bco(&s);
                char what[96];
                snprintf(what, sizeof what, "%s beta %g eps %g ipo %s", loss_name(k), betas[bi],
                         eps, ipo);
                CU_ASSERT_EQUAL(fd_check(&s, what), 0);
            }
    /* a weighted mixture of everything at once, including both sorting terms */
    LossSpec s = spec("dpo,aot,aot_unpaired,sft,simpo,discopop,bco_pair,ipo", "1,0.5,2,0.1,3,0.7,1,0.01",
                      0.1, 0.2, "token_mean");
    set_bco(&s);
    CU_ASSERT_EQUAL(fd_check(&s, "mixture"), 0);
}

/* Spot values of the derivatives in closed form, P0 at beta 0.1 (z = 0.2):
 *   dpo: dL/dlogp_c = -beta sigma(-z) = -0.1 * 0.450166002687522 = -0.0450166002687522, dlr = +
 *   sft: dlc = -1/len_c = -0.25, dlr = 0
 *   ipo (sum): 2 (h - 5) = -6 on logp_c, +6 on logp_r
 *   simpo: z = -0.51, dlc = -beta sigma(0.51) / 4 = -0.1 * 0.624806474 / 4 = -0.0156201618... */
static void test_derivative_values(void)
{
    double loss[3], dlc[3], dlr[3];
    LossSpec s = spec("dpo", "", BETA, 0, "sum");
    loss_batch(&s, 3, PAIRS, loss, dlc, dlr, NULL);
    CHECK_REL(dlc[0], -0.1 * nsig(-0.2), 1e-12);
    CHECK_REL(dlc[0], -0.0450166002687522, 1e-12);
    CHECK_REL(dlr[0], 0.0450166002687522, 1e-12);
    s = spec("sft", "", BETA, 0, "sum");
    loss_batch(&s, 3, PAIRS, loss, dlc, dlr, NULL);
    CHECK_REL(dlc[0], -0.25, 1e-15);
    CU_ASSERT_EQUAL(dlr[0], 0.0);
    s = spec("ipo", "", BETA, 0, "sum");
    loss_batch(&s, 3, PAIRS, loss, dlc, dlr, NULL);
    CHECK_REL(dlc[0], -6.0, 1e-12);
    CHECK_REL(dlr[0], 6.0, 1e-12);
    s = spec("simpo", "", BETA, 0, "sum");
    loss_batch(&s, 3, PAIRS, loss, dlc, dlr, NULL);
    CHECK_REL(dlc[0], -0.1 * nsig(0.51) / 4, 1e-12);
    CHECK_REL(dlr[0], 0.1 * nsig(0.51) / 5, 1e-12);
}

/* ---------------------------------------------------------------- combinations */

static void test_combinations(void)
{
    const char *objs[] = {"dpo,sft", "ipo,aot,simpo", "sppo_hard , apo_down,nca_pair"};
    const char *wts[] = {"1,0.5", "0.25, 2 ,1", "0,3,1e-1"};
    for (int c = 0; c < 3; c++) {
        LossSpec s = spec(objs[c], wts[c], BETA, EPS, "sum");
        double loss[5], dlc[5], dlr[5];
        LossMetrics m;
        loss_batch(&s, 5, FD_PAIRS, loss, dlc, dlr, &m);
        double want_l[5] = {0}, want_c[5] = {0}, want_r[5] = {0};
        for (int t = 0; t < s.n; t++) {
            LossSpec one = spec(loss_name(s.kind[t]), "", BETA, EPS, "sum");
            double l1[5], c1[5], r1[5];
            LossMetrics m1;
            loss_batch(&one, 5, FD_PAIRS, l1, c1, r1, &m1);
            for (int i = 0; i < 5; i++) {
                want_l[i] += s.weight[t] * l1[i];
                want_c[i] += s.weight[t] * c1[i];
                want_r[i] += s.weight[t] * r1[i];
            }
            CHECK_REL(m.term[t], m1.loss, 1e-12);
        }
        double sum = 0;
        for (int i = 0; i < 5; i++) {
            CHECK_REL(loss[i], want_l[i], 1e-12);
            CHECK_REL(dlc[i], want_c[i], 1e-12);
            CHECK_REL(dlr[i], want_r[i], 1e-12);
            sum += loss[i];
        }
        CHECK_REL(m.loss, sum, 1e-12);
    }
    /* rpo = dpo,sft: P0 at weights 1, 0.5 is 0.598138869381592 + 0.5 * 2.5 */
    LossSpec s = spec("dpo,sft", "1,0.5", BETA, EPS, "sum");
    double loss[3];
    loss_batch(&s, 3, PAIRS, loss, NULL, NULL, NULL);
    CHECK_REL(loss[0], 0.59813886938159184 + 1.25, 1e-12);
}

/* ---------------------------------------------------------------- metrics */

/* PAIRS plus a tie (a = b = 0), beta 0.1:
 *   rewards_chosen   = 0.1 * (1 - 2 + 0.5 + 0)       = -0.05
 *   rewards_rejected = 0.1 * (-1 + 1 - 0.75 + 0)     = -0.075
 *   margins = 0.025; accuracies: P0 yes, P1 no, P2 yes, tie no = 2
 *   logps_chosen = -10 - 20 - 7.5 - 5 = -42.5; logps_rejected = -12 - 15 - 9 - 6 = -42
 *   logratio = 2 - 3 + 1.25 + 0 = 0.25; dpo loss sum = P0 + P1 + P2 + log 2 */
static void test_metrics(void)
{
    PairLogps p[4] = {PAIRS[0], PAIRS[1], PAIRS[2], {-5, -6, -5, -6, 1, 1}};
    LossSpec s = spec("dpo", "", BETA, EPS, "sum");
    LossMetrics m;
    memset(&m, 0x7f, sizeof m); /* overwritten, not added to */
    loss_batch(&s, 4, p, NULL, NULL, NULL, &m);
    CU_ASSERT_EQUAL(m.n, 4.0);
    CHECK_REL(m.rewards_chosen, -0.05, 1e-12);
    CHECK_REL(m.rewards_rejected, -0.075, 1e-12);
    CHECK_REL(m.rewards_margins, 0.025, 1e-12);
    CU_ASSERT_EQUAL(m.rewards_accuracies, 2.0);
    CHECK_REL(m.logps_chosen, -42.5, 1e-15);
    CHECK_REL(m.logps_rejected, -42.0, 1e-15);
    CHECK_REL(m.logratio, 0.25, 1e-12);
    double want = 0.59813886938159184 + 0.85435524446852712 + 0.63259903531716907 + log(2.0);
    CHECK_REL(m.loss, want, 1e-12);
    CHECK_REL(m.term[0], want, 1e-12);
    CU_ASSERT_EQUAL(m.term[1], 0.0);
    /* mean reward over chosen and rejected: (-0.05 - 0.075) / 8 */
    CHECK_REL(loss_metrics_mean_reward(&m), -0.015625, 1e-12);

    /* two micro-batches add up to the whole batch */
    LossMetrics m1, m2;
    loss_batch(&s, 1, p, NULL, NULL, NULL, &m1);
    loss_batch(&s, 3, p + 1, NULL, NULL, NULL, &m2);
    loss_metrics_add(&m1, &m2);
    CU_ASSERT_EQUAL(m1.n, 4.0);
    CHECK_REL(m1.loss, m.loss, 1e-12);
    CHECK_REL(m1.rewards_margins, m.rewards_margins, 1e-12);
    CU_ASSERT_EQUAL(m1.rewards_accuracies, 2.0);
    CHECK_REL(m1.logratio, m.logratio, 1e-12);

    /* an empty batch */
    loss_batch(&s, 0, p, NULL, NULL, NULL, &m);
    CU_ASSERT_EQUAL(m.n, 0.0);
    CU_ASSERT_EQUAL(m.loss, 0.0);
    CU_ASSERT_EQUAL(loss_metrics_mean_reward(&m), 0.0);
}

/* ---------------------------------------------------------------- state and extremes */

static void test_bco_state(void)
{
    LossSpec s = spec("bco_pair", "", BETA, EPS, "sum");
    CU_ASSERT_EQUAL(s.bco_delta, 0.0);
    CU_ASSERT_EQUAL(s.bco_count, 0.0);
    /* delta 0 for P0: -ls(0.1) - ls(0.1) = 2 * 0.644396660073571 */
    double loss[1];
    loss_batch(&s, 1, PAIRS, loss, NULL, NULL, NULL);
    CHECK_REL(loss[0], 2 * 0.64439666007357089, 1e-12);
    CU_ASSERT_EQUAL(s.bco_count, 0.0); /* loss_batch does not move it */
    loss_bco_update(&s, 0.2);
    CHECK_REL(s.bco_delta, 0.2, 1e-15);
    loss_bco_update(&s, 0.4);
    CHECK_REL(s.bco_delta, 0.3, 1e-15);
    loss_bco_update(&s, -0.9);
    CHECK_REL(s.bco_delta, -0.1, 1e-12); /* (0.2 + 0.4 - 0.9) / 3 */
    CU_ASSERT_EQUAL(s.bco_count, 3.0);
}

/* Log-ratio differences of +-10000 at beta 1: every term, value and derivative stays finite. */
static void test_extremes(void)
{
    const PairLogps p[4] = {
        {0, -5000, -5000, 0, 1, 1},
        {-5000, 0, 0, -5000, 1, 1},
        {-1e4, -1, -1, -1e4, 100, 3},
        {-3, -3, -3, -3, 0, 0}, /* zero lengths count as 1 */
    };
    for (int k = 0; k < LOSS_NKINDS; k++)
        for (int e = 0; e < 2; e++) {
            LossSpec s = spec(loss_name(k), "", 1.0, e ? 0.0 : 0.49, e ? "token_mean" : "sum");
            double loss[4], dlc[4], dlr[4];
            loss_batch(&s, 4, p, loss, dlc, dlr, NULL);
            for (int i = 0; i < 4; i++) {
                int ok = isfinite(loss[i]) && isfinite(dlc[i]) && isfinite(dlr[i]);
                if (!ok)
                    fprintf(stderr, "\n  %s pair %d: loss %g dlc %g dlr %g", loss_name(k), i,
                            loss[i], dlc[i], dlr[i]);
                CU_ASSERT(ok);
            }
        }
    /* the saturated dpo branch: -ls(-1e4) = 1e4 exactly in double, gradient -beta */
    LossSpec s = spec("dpo", "", 1.0, 0, "sum");
    double loss[4], dlc[4], dlr[4];
    loss_batch(&s, 4, p, loss, dlc, dlr, NULL);
    CHECK_REL(loss[1], 1e4, 1e-12);
    CHECK_REL(dlc[1], -1.0, 1e-12);
    CU_ASSERT(loss[0] >= 0 && loss[0] < 1e-300);
}

/* ---------------------------------------------------------------- parsing */

static int parse_fails(const char *obj, const char *wts, const char *frag1, const char *frag2)
{
    LossSpec s;
    char err[512];
    int rc = parse_with(&s, obj, wts, BETA, EPS, "sum", err, sizeof err);
    int ok = rc == -1 && strstr(err, frag1) && (!frag2 || strstr(err, frag2));
    if (!ok)
        fprintf(stderr, "\n  \"%s\" / \"%s\": rc %d, message \"%s\" (wanted \"%s\", \"%s\")", obj,
                wts, rc, err, frag1, frag2 ? frag2 : "");
    return ok;
}

static void test_parse(void)
{
    /* every name round-trips */
    for (int k = 0; k < LOSS_NKINDS; k++) {
        LossSpec s = spec(loss_name(k), "", BETA, EPS, "sum");
        CU_ASSERT_EQUAL(s.n, 1);
        CU_ASSERT_EQUAL(s.kind[0], k);
        CU_ASSERT_EQUAL(s.weight[0], 1.0);
    }
    CU_ASSERT_STRING_EQUAL(loss_name(-1), "?");
    CU_ASSERT_STRING_EQUAL(loss_name(LOSS_NKINDS), "?");

    LossSpec s = spec(" dpo , sft ", " 1 , 0.25 ", 0.5, 0.1, "token_mean");
    CU_ASSERT_EQUAL(s.n, 2);
    CU_ASSERT_EQUAL(s.kind[0], LOSS_DPO);
    CU_ASSERT_EQUAL(s.kind[1], LOSS_SFT);
    CU_ASSERT_EQUAL(s.weight[1], 0.25);
    CU_ASSERT_EQUAL(s.beta, 0.5);
    CU_ASSERT_EQUAL(s.label_smoothing, 0.1);
    CU_ASSERT_EQUAL(s.ipo_token_mean, 1);
    CU_ASSERT_EQUAL(s.simpo_gamma, GAMMA);
    CU_ASSERT_EQUAL(s.discopop_tau, TAU);
    CU_ASSERT_EQUAL(loss_needs_ref(&s), 1);
    s = spec("simpo,sft", "", BETA, EPS, "sum");
    CU_ASSERT_EQUAL(loss_needs_ref(&s), 0);
    s = spec("dpo,sft", "0,1", BETA, EPS, "sum"); /* a zero weight is allowed */
    CU_ASSERT_EQUAL(s.weight[0], 0.0);

    char buf[256];
    s = spec("dpo,sft", "1,0.5", BETA, EPS, "sum");
    loss_spec_describe(&s, buf, sizeof buf);
    CU_ASSERT(strstr(buf, "dpo*1 + sft*0.5") == buf);
    CU_ASSERT(strstr(buf, "beta 0.1") != NULL);
    CU_ASSERT(strstr(buf, "ipo_normalize sum") != NULL);
    loss_spec_describe(&s, buf, 8); /* truncates, stays terminated */
    CU_ASSERT_EQUAL(strlen(buf), 7);

    CU_ASSERT(parse_fails("dpx", "", "train.objective", "unknown objective 'dpx'"));
    CU_ASSERT(parse_fails("dpo,sigmoid", "", "unknown objective 'sigmoid'",
                          "valid: sft, dpo, ipo, hinge, robust, cdpo, exo_pair"));
    CU_ASSERT(parse_fails("", "", "train.objective", "empty name"));
    CU_ASSERT(parse_fails("dpo,,sft", "", "train.objective", "empty name"));
    CU_ASSERT(parse_fails("dpo,", "", "train.objective", "empty name"));
    CU_ASSERT(parse_fails("dpo,dpo", "", "train.objective", "'dpo' appears twice"));
    CU_ASSERT(parse_fails("dpo,sft,ipo,hinge,robust,cdpo,exo_pair,nca_pair,simpo", "",
                          "train.objective", "more than 8 terms"));
    CU_ASSERT(parse_fails("dpo,sft", "1", "train.loss_weights", "has 1 weight but"));
    CU_ASSERT(parse_fails("dpo", "1,2,3", "train.loss_weights", "has 3 weights but"));
    CU_ASSERT(parse_fails("dpo,sft", "1,-0.5", "train.loss_weights", "weight -0.5 is negative"));
    CU_ASSERT(parse_fails("dpo,sft", "1,abc", "train.loss_weights", "'abc' is not a finite number"));
    CU_ASSERT(parse_fails("dpo,sft", "1,inf", "train.loss_weights", "not a finite number"));
    CU_ASSERT(parse_fails("dpo,sft", "1,", "train.loss_weights", "comma list of numbers"));
    CU_ASSERT(parse_fails("dpo,sft", "0,0", "train.loss_weights", "every weight is 0"));

    /* the coefficient guards (the config table's ranges normally catch these first) */
    char err[512];
    CU_ASSERT_EQUAL(parse_with(&s, "dpo", "", 0.0, 0.1, "sum", err, sizeof err), -1);
    CU_ASSERT(strstr(err, "loss.beta") != NULL);
    CU_ASSERT_EQUAL(parse_with(&s, "dpo", "", 0.1, 0.5, "sum", err, sizeof err), -1);
    CU_ASSERT(strstr(err, "loss.label_smoothing") != NULL);
    CU_ASSERT_EQUAL(parse_with(&s, "dpo", "", 0.1, 0.1, "mean", err, sizeof err), -1);
    CU_ASSERT(strstr(err, "loss.ipo_normalize") != NULL);
    CU_ASSERT_EQUAL(parse_with(&s, "dpo", "", 0.1, 0.1, "sum", NULL, 0), 0);
}

/* Through the config: the loss keys, their defaults and ranges, and the objective checked at
 * load time. */
static void test_config_keys(void)
{
    PreferConfig c;
    config_defaults(&c);
    CU_ASSERT_EQUAL(c.loss.beta, 0.1);
    CU_ASSERT_EQUAL(c.loss.label_smoothing, 0.0);
    CU_ASSERT_STRING_EQUAL(c.loss.ipo_normalize, "sum");
    CU_ASSERT_EQUAL(c.loss.simpo_gamma, 0.5);
    CU_ASSERT_EQUAL(c.loss.discopop_tau, 0.05);
    CU_ASSERT_STRING_EQUAL(c.train.loss_weights, "");
    const char *ok[] = {"train.objective=dpo,sft", "train.loss_weights=1,0.1",
                        "loss.ipo_normalize=token_mean", "loss.beta=0.5"};
    char err[1024];
    CU_ASSERT_EQUAL(config_load_checked(&c, NULL, ok, 4, err, sizeof err), 0);
    LossSpec s;
    CU_ASSERT_EQUAL(loss_spec_parse(&s, &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(s.n, 2);
    CU_ASSERT_EQUAL(s.weight[1], 0.1);
    CU_ASSERT_EQUAL(s.ipo_token_mean, 1);
    CU_ASSERT_EQUAL(s.beta, 0.5);
    const char *bad1[] = {"train.objective=dpo,sfx"};
    CU_ASSERT_EQUAL(config_load_checked(&c, NULL, bad1, 1, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "unknown objective 'sfx'") != NULL);
    CU_ASSERT(strstr(err, "--set train.objective=dpo,sfx") != NULL);
    const char *bad2[] = {"loss.label_smoothing=0.5"};
    CU_ASSERT_EQUAL(config_load_checked(&c, NULL, bad2, 1, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "out of range [0, 0.5)") != NULL);
    const char *bad3[] = {"loss.beta=0"};
    CU_ASSERT_EQUAL(config_load_checked(&c, NULL, bad3, 1, err, sizeof err), -1);
    const char *bad4[] = {"loss.ipo_normalize=mean"};
    CU_ASSERT_EQUAL(config_load_checked(&c, NULL, bad4, 1, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "sum|token_mean") != NULL);
    CU_ASSERT_STRING_EQUAL(c.train.objective, "dpo,sft"); /* failed loads left it */
    config_free(&c);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("losses", NULL, NULL);
    if (!s || !CU_add_test(s, "values of the pair-local terms by hand", test_values_pairwise) ||
        !CU_add_test(s, "values of aot and aot_unpaired by hand", test_values_sorted) ||
        !CU_add_test(s, "derivatives against finite differences", test_derivatives) ||
        !CU_add_test(s, "derivative spot values", test_derivative_values) ||
        !CU_add_test(s, "weighted combinations", test_combinations) ||
        !CU_add_test(s, "metrics", test_metrics) ||
        !CU_add_test(s, "bco baseline", test_bco_state) ||
        !CU_add_test(s, "extreme inputs stay finite", test_extremes) ||
        !CU_add_test(s, "parse", test_parse) ||
        !CU_add_test(s, "config keys", test_config_keys)) {
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

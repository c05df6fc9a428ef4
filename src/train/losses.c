/* losses.c: the preference loss family as pure functions of summed log-probs.
 *
 * Each term is one static function that, given a pair, returns the loss and its derivatives
 * with respect to the policy's summed log-probs of the chosen and rejected responses; the
 * objective is a weighted sum of terms. Formulas follow TRL's DPOTrainer definitions (written
 * out in losses.h); derivatives are closed forms in double, checked against finite differences
 * in tests/test_losses.c. log sigma and sigma are evaluated in forms that do not overflow.
 *
 * Does not: see tokens, models or ranks (the trainer turns the derivatives into token
 * gradients and sums metrics across ranks), or move the bco_pair baseline by itself
 * (loss_bco_update does, when the trainer says so).
 */
#include "prefer/losses.h"
#include "prefer/util.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Indexed by LossKind. */
static const char *const NAMES[LOSS_NKINDS] = {
    [LOSS_SFT] = "sft",
    [LOSS_DPO] = "dpo",
    [LOSS_IPO] = "ipo",
    [LOSS_HINGE] = "hinge",
    [LOSS_ROBUST] = "robust",
    [LOSS_CDPO] = "cdpo",
    [LOSS_EXO_PAIR] = "exo_pair",
    [LOSS_NCA_PAIR] = "nca_pair",
    [LOSS_BCO_PAIR] = "bco_pair",
    [LOSS_SPPO_HARD] = "sppo_hard",
    [LOSS_AOT] = "aot",
    [LOSS_AOT_UNPAIRED] = "aot_unpaired",
    [LOSS_APO_ZERO] = "apo_zero",
    [LOSS_APO_DOWN] = "apo_down",
    [LOSS_DISCOPOP] = "discopop",
    [LOSS_SIGMOID_NORM] = "sigmoid_norm",
    [LOSS_SIMPO] = "simpo",
};

/* EXO divides by log(eps): TRL's original code uses this eps when label_smoothing is 0. */
#define EXO_EPS_DEFAULT 1e-3

_Static_assert(sizeof(LossMetrics) == LOSS_METRICS_NDOUBLE * sizeof(double),
               "LossMetrics must be doubles only (it is allreduced as an array)");

/* ---------------------------------------------------------------- scalar helpers */

static double sigm(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* log sigma(x) without overflow: -log(1 + e^-x). */
static double logsig(double x)
{
    return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}

static double len1(double len) { return len < 1.0 ? 1.0 : len; }

/* The cdpo form -(1-eps) ls(z) - eps ls(-z) and its derivative in z. */
static double cdpo_form(double z, double eps, double *dz)
{
    /* d/dz -ls(z) = -sigma(-z); d/dz -ls(-z) = sigma(z) */
    *dz = -(1.0 - eps) * sigm(-z) + eps * sigm(z);
    return -(1.0 - eps) * logsig(z) - eps * logsig(-z);
}

/* ---------------------------------------------------------------- per-pair terms */

/* One pair-local term: returns the loss, *dc and *dr the derivatives w.r.t. logp_c, logp_r. */
static double term_pair(const LossSpec *s, int kind, const PairLogps *q, double *dc, double *dr)
{
    const double beta = s->beta, eps = s->label_smoothing;
    const double a = q->logp_c - q->ref_c, b = q->logp_r - q->ref_r, h = a - b;
    double z, g, L;
    switch (kind) {
    case LOSS_SFT: {
        double lc = len1(q->len_c);
        *dc = -1.0 / lc;
        *dr = 0;
        return -q->logp_c / lc;
    }
    case LOSS_DPO:
        z = beta * h;
        g = -beta * sigm(-z); /* dL/dh */
        *dc = g, *dr = -g;
        return -logsig(z);
    case LOSS_IPO: {
        double lc = s->ipo_token_mean ? len1(q->len_c) : 1.0;
        double lr = s->ipo_token_mean ? len1(q->len_r) : 1.0;
        double u = a / lc - b / lr - 1.0 / (2.0 * beta);
        *dc = 2.0 * u / lc;
        *dr = -2.0 * u / lr;
        return u * u;
    }
    case LOSS_HINGE:
        z = 1.0 - beta * h;
        g = z > 0 ? -beta : 0.0;
        *dc = g, *dr = -g;
        return z > 0 ? z : 0.0;
    case LOSS_ROBUST:
        /* ((1-eps)(-ls(z)) - eps(-ls(-z))) / (1 - 2 eps) */
        z = beta * h;
        g = (-(1.0 - eps) * sigm(-z) - eps * sigm(z)) / (1.0 - 2.0 * eps) * beta;
        *dc = g, *dr = -g;
        return (-(1.0 - eps) * logsig(z) + eps * logsig(-z)) / (1.0 - 2.0 * eps);
    case LOSS_CDPO:
        L = cdpo_form(beta * h, eps, &g);
        *dc = beta * g, *dr = -beta * g;
        return L;
    case LOSS_EXO_PAIR: {
        /* qw (ls(z) - log(1-e)) + ql (ls(-z) - log e); dL/dz = qw ql (z - log((1-e)/e)),
         * since d qw/dz = qw ql and ls(z) - ls(-z) = z. */
        double e = eps > 0 ? eps : EXO_EPS_DEFAULT;
        z = beta * h;
        double qw = sigm(z), ql = sigm(-z);
        g = beta * qw * ql * (z - log1p(-e) + log(e));
        *dc = g, *dr = -g;
        return qw * (logsig(z) - log1p(-e)) + ql * (logsig(-z) - log(e));
    }
    case LOSS_NCA_PAIR: {
        double rc = beta * a, rr = beta * b;
        *dc = beta * (-sigm(-rc) + 0.5 * sigm(rc));
        *dr = beta * 0.5 * sigm(rr);
        return -logsig(rc) - 0.5 * logsig(-rc) - 0.5 * logsig(-rr);
    }
    case LOSS_BCO_PAIR: {
        double uc = beta * a - s->bco_delta, ur = beta * b - s->bco_delta;
        *dc = -beta * sigm(-uc);
        *dr = beta * sigm(ur);
        return -logsig(uc) - logsig(-ur);
    }
    case LOSS_SPPO_HARD: {
        double uc = a - 0.5 / beta, ur = b + 0.5 / beta;
        *dc = 2.0 * uc;
        *dr = 2.0 * ur;
        return uc * uc + ur * ur;
    }
    case LOSS_APO_ZERO: {
        double sc = sigm(beta * a), sr = sigm(beta * b);
        *dc = -beta * sc * (1.0 - sc);
        *dr = beta * sr * (1.0 - sr);
        return (1.0 - sc) + sr;
    }
    case LOSS_APO_DOWN: {
        double sc = sigm(beta * a), sh = sigm(beta * h);
        double gh = -beta * sh * (1.0 - sh); /* d(1 - sigma(beta h))/dh */
        *dc = beta * sc * (1.0 - sc) + gh;
        *dr = -gh;
        return sc + (1.0 - sh);
    }
    case LOSS_DISCOPOP: {
        /* m = sigma(z/tau), L = -ls(z)(1-m) + e^-z m. e^-z m and e^-z m' are formed in the
         * log domain: e^-z alone overflows for z < -709 while m underflows to 0. */
        double tau = s->discopop_tau;
        z = beta * h;
        double m = sigm(z / tau);
        double mp = m * (1.0 - m) / tau; /* dm/dz */
        double em = exp(-z + logsig(z / tau));
        double emp = exp(-z + logsig(z / tau) + logsig(-z / tau)) / tau; /* e^-z m' */
        L = -logsig(z) * (1.0 - m) + em;
        g = -sigm(-z) * (1.0 - m) + logsig(z) * mp - em + emp;
        *dc = beta * g, *dr = -beta * g;
        return L;
    }
    case LOSS_SIGMOID_NORM: {
        double lc = len1(q->len_c), lr = len1(q->len_r);
        z = beta * (a / lc - b / lr);
        g = -beta * sigm(-z);
        *dc = g / lc;
        *dr = -g / lr;
        return -logsig(z);
    }
    case LOSS_SIMPO: {
        double lc = len1(q->len_c), lr = len1(q->len_r);
        z = beta * (q->logp_c / lc - q->logp_r / lr) - s->simpo_gamma;
        g = -beta * sigm(-z);
        *dc = g / lc;
        *dr = -g / lr;
        return -logsig(z);
    }
    }
    die("losses: term kind %d is not pair-local", kind);
}

/* ---------------------------------------------------------------- sorting terms */

typedef struct {
    double v;
    int i;
} Ranked;

/* Ascending by value, ties by index, so the order is the same on every run. */
static int ranked_cmp(const void *pa, const void *pb)
{
    const Ranked *x = pa, *y = pb;
    if (x->v < y->v)
        return -1;
    if (x->v > y->v)
        return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* aot: x = policy logp_c - logp_r, y = ref_c - ref_r; aot_unpaired: x = a, y = b. Both
 * sorted; the term at position k is the cdpo form of beta (x_(k) - y_(k)). The derivative
 * reaches the pairs at position k of each sort: x's pair through +, y's through -. For aot
 * y holds no policy quantity, so only x's pair gets a gradient (+ on logp_c, - on logp_r).
 * Adds w * term to lossv[] and the derivatives to dc[], dr[]; returns the unweighted sum. */
static double term_sorted(const LossSpec *s, int kind, double w, int n, const PairLogps *p,
                          double *lossv, double *dc, double *dr, Ranked *rx, Ranked *ry)
{
    for (int i = 0; i < n; i++) {
        const PairLogps *q = &p[i];
        rx[i].i = ry[i].i = i;
        if (kind == LOSS_AOT) {
            rx[i].v = q->logp_c - q->logp_r;
            ry[i].v = q->ref_c - q->ref_r;
        } else {
            rx[i].v = q->logp_c - q->ref_c;
            ry[i].v = q->logp_r - q->ref_r;
        }
    }
    qsort(rx, (size_t)n, sizeof *rx, ranked_cmp);
    qsort(ry, (size_t)n, sizeof *ry, ranked_cmp);
    double sum = 0;
    for (int k = 0; k < n; k++) {
        double g, L = cdpo_form(s->beta * (rx[k].v - ry[k].v), s->label_smoothing, &g);
        g *= s->beta;
        int ix = rx[k].i, iy = ry[k].i;
        lossv[ix] += w * L;
        sum += L;
        if (kind == LOSS_AOT) {
            dc[ix] += w * g;
            dr[ix] -= w * g;
        } else {
            dc[ix] += w * g;
            dr[iy] -= w * g;
        }
    }
    return sum;
}

/* ---------------------------------------------------------------- public */

const char *loss_name(int kind)
{
    return kind >= 0 && kind < LOSS_NKINDS ? NAMES[kind] : "?";
}

int loss_needs_ref(const LossSpec *s)
{
    for (int t = 0; t < s->n; t++)
        if (s->kind[t] != LOSS_SFT && s->kind[t] != LOSS_SIMPO)
            return 1;
    return 0;
}

/* [*p, end) with surrounding blanks dropped. */
static void trim(const char **p, const char **end)
{
    while (*p < *end && isspace((unsigned char)**p))
        (*p)++;
    while (*end > *p && isspace((unsigned char)(*end)[-1]))
        (*end)--;
}

static void valid_names(char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = 0;
    for (int k = 0; k < LOSS_NKINDS && used < n; k++) {
        int w = snprintf(buf + used, n - used, "%s%s", k ? ", " : "", NAMES[k]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

int loss_spec_parse(LossSpec *s, const PreferConfig *cfg, char *err, int errlen)
{
    LossSpec t;
    memset(&t, 0, sizeof t);
    if (err && errlen > 0)
        err[0] = 0;
    const char *obj = cfg->train.objective ? cfg->train.objective : "";
    const char *wts = cfg->train.loss_weights ? cfg->train.loss_weights : "";
    char names[256];
    valid_names(names, sizeof names);

    /* names */
    for (const char *p = obj;;) {
        const char *comma = strchr(p, ',');
        const char *b = p, *e = comma ? comma : p + strlen(p);
        trim(&b, &e);
        if (b == e)
            return util_seterr(err, errlen,
                        "train.objective = \"%s\": empty name (want one name or a comma list "
                        "such as \"dpo,sft\"; valid names: %s)",
                        obj, names);
        int kind = -1;
        for (int k = 0; k < LOSS_NKINDS; k++)
            if (strlen(NAMES[k]) == (size_t)(e - b) && !strncmp(NAMES[k], b, (size_t)(e - b)))
                kind = k;
        if (kind < 0)
            return util_seterr(err, errlen, "train.objective = \"%s\": unknown objective '%.*s' (valid: %s)",
                        obj, (int)(e - b), b, names);
        for (int i = 0; i < t.n; i++)
            if (t.kind[i] == kind)
                return util_seterr(err, errlen, "train.objective = \"%s\": '%s' appears twice", obj,
                            NAMES[kind]);
        if (t.n == LOSS_MAX_TERMS)
            return util_seterr(err, errlen, "train.objective = \"%s\": more than %d terms", obj,
                        LOSS_MAX_TERMS);
        t.kind[t.n] = kind;
        t.weight[t.n] = 1.0;
        t.n++;
        if (!comma)
            break;
        p = comma + 1;
    }

    /* weights */
    const char *wb = wts, *we = wts + strlen(wts);
    trim(&wb, &we);
    if (wb != we) {
        int nw = 0;
        double sum = 0;
        for (const char *p = wts;;) {
            const char *comma = strchr(p, ',');
            const char *b = p, *e = comma ? comma : p + strlen(p);
            trim(&b, &e);
            char num[64];
            if (b == e || (size_t)(e - b) >= sizeof num)
                return util_seterr(err, errlen, "train.loss_weights = \"%s\": expected a comma list of "
                            "numbers, one per train.objective term", wts);
            memcpy(num, b, (size_t)(e - b));
            num[e - b] = 0;
            char *end;
            double w = strtod(num, &end);
            if (*end || end == num || !isfinite(w))
                return util_seterr(err, errlen, "train.loss_weights = \"%s\": '%s' is not a finite number",
                            wts, num);
            if (w < 0)
                return util_seterr(err, errlen, "train.loss_weights = \"%s\": weight %s is negative "
                            "(weights must be >= 0)", wts, num);
            if (nw < LOSS_MAX_TERMS)
                t.weight[nw] = w;
            nw++;
            sum += w;
            if (!comma)
                break;
            p = comma + 1;
        }
        if (nw != t.n)
            return util_seterr(err, errlen, "train.loss_weights = \"%s\" has %d weight%s but "
                        "train.objective = \"%s\" has %d term%s", wts, nw, nw == 1 ? "" : "s",
                        obj, t.n, t.n == 1 ? "" : "s");
        if (!(sum > 0))
            return util_seterr(err, errlen, "train.loss_weights = \"%s\": every weight is 0", wts);
    }

    /* coefficients; ranges are checked by the config table, these guard direct callers */
    const LossConfig *lc = &cfg->loss;
    if (!(lc->beta > 0))
        return util_seterr(err, errlen, "loss.beta = %g: must be > 0", lc->beta);
    if (!(lc->label_smoothing >= 0 && lc->label_smoothing < 0.5))
        return util_seterr(err, errlen, "loss.label_smoothing = %g: must be in [0, 0.5)",
                    lc->label_smoothing);
    if (!(lc->discopop_tau > 0))
        return util_seterr(err, errlen, "loss.discopop_tau = %g: must be > 0", lc->discopop_tau);
    const char *ipo = lc->ipo_normalize ? lc->ipo_normalize : "sum";
    if (!strcmp(ipo, "sum"))
        t.ipo_token_mean = 0;
    else if (!strcmp(ipo, "token_mean"))
        t.ipo_token_mean = 1;
    else
        return util_seterr(err, errlen, "loss.ipo_normalize = \"%s\": not one of sum|token_mean", ipo);
    t.beta = lc->beta;
    t.label_smoothing = lc->label_smoothing;
    t.simpo_gamma = lc->simpo_gamma;
    t.discopop_tau = lc->discopop_tau;
    *s = t;
    return 0;
}

void loss_spec_describe(const LossSpec *s, char *buf, size_t n)
{
    size_t used = 0;
    int w;
    if (n == 0)
        return;
    buf[0] = 0;
    for (int t = 0; t < s->n && used < n; t++) {
        w = snprintf(buf + used, n - used, "%s%s*%g", t ? " + " : "", loss_name(s->kind[t]),
                     s->weight[t]);
        if (w < 0)
            return;
        used += (size_t)w;
    }
    if (used < n)
        snprintf(buf + used, n - used,
                 " (beta %g, label_smoothing %g, ipo_normalize %s, simpo_gamma %g, "
                 "discopop_tau %g)",
                 s->beta, s->label_smoothing, s->ipo_token_mean ? "token_mean" : "sum",
                 s->simpo_gamma, s->discopop_tau);
}

void loss_batch(const LossSpec *s, int n, const PairLogps *p, double *loss, double *dlc,
                double *dlr, LossMetrics *m)
{
    LossMetrics mm;
    memset(&mm, 0, sizeof mm);
    if (n < 0)
        die("loss_batch: n = %d pairs", n);
    int sorted = 0;
    for (int t = 0; t < s->n; t++)
        sorted |= s->kind[t] == LOSS_AOT || s->kind[t] == LOSS_AOT_UNPAIRED;

    /* Outputs the caller did not ask for still need somewhere to go. */
    double *own = NULL;
    if (n > 0 && (!loss || !dlc || !dlr))
        own = xmalloc(3 * (size_t)n * sizeof *own);
    double *L = loss ? loss : own, *dc = dlc ? dlc : own + n, *dr = dlr ? dlr : own + 2 * (size_t)n;
    for (int i = 0; i < n; i++)
        L[i] = dc[i] = dr[i] = 0;

    for (int t = 0; t < s->n; t++) {
        const int kind = s->kind[t];
        const double w = s->weight[t];
        if (kind == LOSS_AOT || kind == LOSS_AOT_UNPAIRED)
            continue;
        for (int i = 0; i < n; i++) {
            double gc, gr, Li = term_pair(s, kind, &p[i], &gc, &gr);
            L[i] += w * Li;
            dc[i] += w * gc;
            dr[i] += w * gr;
            mm.term[t] += Li;
        }
    }
    if (sorted && n > 0) {
        Ranked *rk = xmalloc(2 * (size_t)n * sizeof *rk);
        for (int t = 0; t < s->n; t++)
            if (s->kind[t] == LOSS_AOT || s->kind[t] == LOSS_AOT_UNPAIRED)
                mm.term[t] = term_sorted(s, s->kind[t], s->weight[t], n, p, L, dc, dr, rk, rk + n);
        free(rk);
    }

    for (int i = 0; i < n; i++) {
        const PairLogps *q = &p[i];
        double rc = s->beta * (q->logp_c - q->ref_c), rr = s->beta * (q->logp_r - q->ref_r);
        mm.loss += L[i];
        mm.rewards_chosen += rc;
        mm.rewards_rejected += rr;
        mm.rewards_margins += rc - rr;
        mm.rewards_accuracies += rc > rr ? 1.0 : 0.0;
        mm.logps_chosen += q->logp_c;
        mm.logps_rejected += q->logp_r;
        mm.logratio += (q->logp_c - q->ref_c) - (q->logp_r - q->ref_r);
    }
    mm.n = n;
    free(own);
    if (m)
        *m = mm;
}

void loss_bco_update(LossSpec *s, double mean_reward)
{
    /* running mean of the batch means: delta += (x - delta) / count */
    s->bco_count += 1.0;
    s->bco_delta += (mean_reward - s->bco_delta) / s->bco_count;
}

double loss_metrics_mean_reward(const LossMetrics *m)
{
    return m->n > 0 ? (m->rewards_chosen + m->rewards_rejected) / (2.0 * m->n) : 0.0;
}

void loss_metrics_add(LossMetrics *acc, const LossMetrics *m)
{
    double *a = (double *)acc;
    const double *b = (const double *)m;
    for (int i = 0; i < LOSS_METRICS_NDOUBLE; i++)
        a[i] += b[i];
}

/* dynamics_cmd.c: `prefer dynamics`: the paper's tabular iterative-alignment dynamics over a
 * grid of (alpha, beta, lambda), exactly (dynamics.h; Chen, He, Jordan, Yao 2026, as in
 * ../shared/papers.md section 6).
 *
 * Does: builds P (the cyclic or transitive family, or a matrix from an HDF5 or text file),
 * pi_0 and pi_ref from dynamics.*; runs R rounds at every grid point (points dealt round-
 * robin to the ranks, results summed to rank 0: the same file at any number of ranks); for
 * each point records the final entropy, cycle strength, step sizes, convergence, the
 * contraction constant, the cyclic family's linear radius, the theoretical regime and the
 * simulated outcome; saves whole trajectories of the points in dynamics.trajectories;
 * writes the results file (format prefer.dynamics, atomically) and prints a table, a phase
 * map per lambda and the agreement of theory and simulation.
 * Does not: train anything (`prefer iterate` runs the transformer), or draw (analysis/phase.py).
 *
 * Results file, format "prefer.dynamics" version 1 (common root attributes as docs/formats.md):
 *   /P float64[n, n], /pi0 float64[n], /pi_ref float64[n], /rewards float64[n] (transitive)
 *   /grid/alpha, /grid/beta, /grid/lambda float64[G]      point g = (ia, ib, il), il fastest
 *   /results/{entropy, cycle_strength, step, max_step, contraction, radius, pmax} float64[G]
 *   /results/{converged uint8, outcome int64, regime int64, argmax int64}[G]
 *   /results/final_pi float64[G, n]
 *   /trajectories/<k>/pi float64[R+1, n] with attributes alpha, beta, lambda, outcome
 * root attributes: family, n, advantage (cyclic), p_file (file), norm, rounds, window, tol,
 * cycle_tol, collapse_entropy, perturb, n_points, n_alpha, n_beta, n_lambda, outcome_names,
 * regime_names.
 */
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/dynamics.h"
#include "prefer/h5util.h"
#include "prefer/util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DYN_FORMAT "prefer.dynamics"
#define DYN_VERSION 1
#define DYN_MAX_POINTS 10000000
#define DYN_MAX_TRAJ 64
#define DYN_MAX_PRINT 1000   /* grid points printed one per line */
#define DYN_MAX_MAP_COLS 40 /* beta values of the printed phase map */

static void usage(void)
{
    printf("usage: prefer dynamics CONFIG [--set section.key=value ...]\n\n"
           "The tabular dynamics of iterative alignment (Chen, He, Jordan, Yao 2026), exactly, over n\n"
           "response classes with preference matrix P:\n"
           "  mu_t      = lambda pi_t + (1 - lambda) pi_0\n"
           "  pi_{t+1}  = softmax(alpha log pi_t + (1 - alpha) log pi_ref + beta P mu_t)\n"
           "for every (alpha, beta, lambda) of the grid dynamics.alpha x dynamics.beta x dynamics.lambda\n"
           "(comma lists and lo:hi:count ranges), dynamics.rounds rounds each, starting from pi_0 with\n"
           "dynamics.perturb added to class 0's log-probability. P: dynamics.family = cyclic\n"
           "(rock-paper-scissors, Pr(i beats i+1) = 1/2 + dynamics.advantage), transitive (Bradley-Terry\n"
           "on dynamics.rewards) or file (dynamics.p_file: HDF5 /P or a text matrix).\n"
           "Per point: final entropy, cycle strength (mean variance of pi_t(i) over the last\n"
           "dynamics.window rounds), convergence (every step ||pi_{t+1} - pi_t||_1 there < dynamics.tol),\n"
           "the contraction constant alpha + (beta lambda / 2) ||P - 11^T/2||_2, for the cyclic family\n"
           "the linear radius at the uniform policy (n = 3: sqrt(alpha^2 + a^2 beta^2 lambda^2 / 3)), the\n"
           "theoretical regime and the outcome (converged, oscillating, collapsed, undecided).\n"
           "Writes dynamics.out (format prefer.dynamics; analysis/phase.py draws the phase diagram)\n"
           "and prints the table and a phase map. Grid points are split across ranks under mpirun;\n"
           "the results do not depend on the number of ranks. Keys: `prefer config --reference`.\n");
}

/* ---------------------------------------------------------------- parsing config strings */

typedef struct {
    const char *key;    /* "dynamics.alpha" */
    const char *text;   /* its value */
    const char *source; /* the config file ("" = defaults / --set) */
} KeyText;

PREFER_NORETURN PREFER_PRINTF(2, 3) static void bad_key(const KeyText *k, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    die_user("dynamics: %s = \"%s\"%s%s: %s", k->key, k->text, *k->source ? " in " : "", k->source, msg);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

/* A finite number, the whole of s; 0 or -1. */
static int parse_num(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    if (end == s || errno == ERANGE || !isfinite(*v))
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    return *end ? -1 : 0;
}

static void push(double **v, int *n, int *cap, double x)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *v = xrealloc(*v, sizeof(double) * (size_t)*cap);
    }
    (*v)[(*n)++] = x;
}

/* "0, 0.5, 1:2:5" -> numbers in [lo, hi]. allow_range: lo:hi:count items. Dies naming the key. */
static double *parse_list(const KeyText *k, double lo, double hi, int allow_range, int *count)
{
    char *copy = xstrdup(k->text), *rest = copy;
    double *v = NULL;
    int n = 0, cap = 0, item = 0;
    for (char *tok = strsep(&rest, ","); tok; tok = strsep(&rest, ",")) {
        char *t = trim(tok);
        item++;
        if (!*t)
            bad_key(k, "item %d is empty (stray comma?)", item);
        char *c1 = strchr(t, ':');
        if (c1 && allow_range) {
            char *c2 = strchr(c1 + 1, ':');
            if (!c2 || strchr(c2 + 1, ':'))
                bad_key(k, "item %d '%s': a range is lo:hi:count", item, t);
            *c1 = *c2 = 0;
            double a, b, cnt;
            if (parse_num(t, &a) || parse_num(c1 + 1, &b) || parse_num(c2 + 1, &cnt) || cnt != floor(cnt) || cnt < 1 ||
                cnt > DYN_MAX_POINTS)
                bad_key(k, "item %d: a range is lo:hi:count with numbers lo, hi and a whole count >= 1", item);
            if (cnt == 1 && a != b)
                bad_key(k, "item %d: a range of 1 point needs lo = hi", item);
            for (int i = 0; i < (int)cnt; i++)
                push(&v, &n, &cap, cnt == 1 ? a : a + (b - a) * i / (cnt - 1));
        } else {
            double x;
            if (parse_num(t, &x))
                bad_key(k, "item %d '%s' is not a number", item, t);
            push(&v, &n, &cap, x);
        }
        if (n > DYN_MAX_POINTS)
            bad_key(k, "more than %d values", DYN_MAX_POINTS);
    }
    free(copy);
    if (n == 0)
        bad_key(k, "no values");
    for (int i = 0; i < n; i++)
        if (v[i] < lo || v[i] > hi)
            bad_key(k, "value %g is outside [%g, %g]", v[i], lo, hi);
    *count = n;
    return v;
}

/* n positive weights from key, normalised; "" = uniform. */
static double *parse_dist(const KeyText *k, int n)
{
    double *p = xmalloc(sizeof(double) * (size_t)n);
    if (!*k->text) {
        for (int i = 0; i < n; i++)
            p[i] = 1.0 / n;
        return p;
    }
    int m;
    double *w = parse_list(k, 0, INFINITY, 0, &m);
    if (m != n)
        bad_key(k, "%d weights for %d classes", m, n);
    double s = 0;
    for (int i = 0; i < n; i++) {
        if (!(w[i] > 0))
            bad_key(k, "weight %d is %g: every class needs a positive weight (log pi must be finite)", i, w[i]);
        s += w[i];
    }
    for (int i = 0; i < n; i++)
        p[i] = w[i] / s;
    free(w);
    return p;
}

/* ---------------------------------------------------------------- P from a file */

/* A square matrix from an HDF5 file (dataset /P) or a text file; *n its size. Dies naming
 * the file (and key) on any problem. */
static double *read_matrix(const char *path, int *n)
{
    char err[512];
    if (h5u_is_hdf5(path)) {
        h5u_init();
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f < 0)
            die_user("dynamics: dynamics.p_file = %s: cannot open the HDF5 file", path);
        hsize_t dims[4] = {0};
        int64_t cnt = 0;
        double *P = h5u_read_array(f, "/P", H5T_NATIVE_DOUBLE, 2, dims, &cnt, err, sizeof err);
        H5Fclose(f);
        if (!P)
            die_user("dynamics: dynamics.p_file = %s: %s (want a float dataset /P of shape (n, n))", path, err);
        if (dims[0] != dims[1] || dims[0] < 2 || dims[0] > 1024)
            die_user("dynamics: dynamics.p_file = %s: /P has shape (%llu, %llu); want (n, n) with 2 <= n <= 1024",
                     path, (unsigned long long)dims[0], (unsigned long long)dims[1]);
        *n = (int)dims[0];
        return P;
    }
    FILE *fp = fopen(path, "r");
    if (!fp)
        die_user("dynamics: dynamics.p_file = %s: cannot open (%s)", path, strerror(errno));
    double *v = NULL;
    int nv = 0, cap = 0, cols = -1, rows = 0, lineno = 0;
    char *line = NULL;
    size_t lcap = 0;
    while (getline(&line, &lcap, fp) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        int c = 0;
        char *save = NULL;
        for (char *tok = strtok_r(line, " \t\r\n,;", &save); tok; tok = strtok_r(NULL, " \t\r\n,;", &save)) {
            double x;
            if (parse_num(tok, &x))
                die_user("dynamics: dynamics.p_file = %s: line %d: '%s' is not a number", path, lineno, tok);
            push(&v, &nv, &cap, x);
            c++;
        }
        if (c == 0)
            continue;
        if (cols < 0)
            cols = c;
        else if (c != cols)
            die_user("dynamics: dynamics.p_file = %s: line %d has %d numbers, the first row %d", path, lineno, c, cols);
        rows++;
    }
    free(line);
    fclose(fp);
    if (rows == 0)
        die_user("dynamics: dynamics.p_file = %s: no numbers (want n lines of n numbers, or HDF5 with /P)", path);
    if (rows != cols || rows < 2 || rows > 1024)
        die_user("dynamics: dynamics.p_file = %s: %d rows of %d numbers; want a square matrix, 2 <= n <= 1024", path,
                 rows, cols);
    *n = rows;
    return v;
}

/* ---------------------------------------------------------------- the problem */

typedef struct {
    int n;
    double *P, *pi0, *pi_ref, *logref, *logstart, *rewards; /* rewards: transitive only */
    double norm;          /* ||P - 11^T/2||_2 */
    int cyclic_uniform;   /* cyclic family with uniform pi_0 and pi_ref: the radius applies */
    int unique_top;       /* transitive with a unique best class */
    double *alpha, *beta, *lambda;
    int na, nb, nl;
} Problem;

static int is_uniform(const double *p, int n)
{
    for (int i = 0; i < n; i++)
        if (fabs(p[i] - 1.0 / n) > 1e-12)
            return 0;
    return 1;
}

static void problem_build(const PreferConfig *cfg, Problem *pb)
{
    const DynamicsConfig *dc = &cfg->dynamics;
    const char *src = cfg->source ? cfg->source : "";
    memset(pb, 0, sizeof *pb);
    char err[512];
    if (!strcmp(dc->family, "file")) {
        if (!*dc->p_file)
            die_user("dynamics: dynamics.family = \"file\" needs dynamics.p_file%s%s", *src ? " in " : "", src);
        pb->P = read_matrix(dc->p_file, &pb->n);
        if (dyn_check_matrix(pb->P, pb->n, 1e-6, err, sizeof err) != 0)
            die_user("dynamics: dynamics.p_file = %s: %s", dc->p_file, err);
    } else {
        int n = pb->n = dc->n;
        pb->P = xmalloc(sizeof(double) * (size_t)n * (size_t)n);
        if (!strcmp(dc->family, "cyclic")) {
            if (dyn_cyclic(n, dc->advantage, pb->P) != 0)
                die_user("dynamics: the cyclic family needs dynamics.n >= 3 (got %d)%s%s", n, *src ? " in " : "", src);
        } else {
            pb->rewards = xmalloc(sizeof(double) * (size_t)n);
            if (*dc->rewards) {
                KeyText k = {"dynamics.rewards", dc->rewards, src};
                int m;
                double *r = parse_list(&k, -1e6, 1e6, 0, &m);
                if (m != n)
                    bad_key(&k, "%d rewards for dynamics.n = %d classes", m, n);
                memcpy(pb->rewards, r, sizeof(double) * (size_t)n);
                free(r);
            } else {
                for (int i = 0; i < n; i++)
                    pb->rewards[i] = dc->reward_gap * (n - 1 - i);
            }
            dyn_transitive(n, pb->rewards, pb->P);
            int top = 0, ties = 0;
            for (int i = 1; i < n; i++)
                if (pb->rewards[i] > pb->rewards[top])
                    top = i;
            for (int i = 0; i < n; i++)
                ties += pb->rewards[i] == pb->rewards[top];
            pb->unique_top = ties == 1;
        }
    }
    int n = pb->n;
    KeyText k0 = {"dynamics.pi0", dc->pi0, src}, kr = {"dynamics.pi_ref", dc->pi_ref, src};
    pb->pi0 = parse_dist(&k0, n);
    if (*dc->pi_ref) {
        pb->pi_ref = parse_dist(&kr, n);
    } else {
        pb->pi_ref = xmalloc(sizeof(double) * (size_t)n);
        memcpy(pb->pi_ref, pb->pi0, sizeof(double) * (size_t)n);
    }
    pb->logref = xmalloc(sizeof(double) * (size_t)n);
    pb->logstart = xmalloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        pb->logref[i] = log(pb->pi_ref[i]);
        pb->logstart[i] = log(pb->pi0[i]) + (i == 0 ? dc->perturb : 0);
    }
    dyn_log_softmax(pb->logstart, n, pb->logstart);
    pb->norm = dyn_centered_norm(pb->P, n);
    pb->cyclic_uniform = !strcmp(dc->family, "cyclic") && is_uniform(pb->pi0, n) && is_uniform(pb->pi_ref, n);
    KeyText ka = {"dynamics.alpha", dc->alpha, src}, kb = {"dynamics.beta", dc->beta, src},
            kl = {"dynamics.lambda", dc->lambda, src};
    pb->alpha = parse_list(&ka, 0, 1, 1, &pb->na);
    pb->beta = parse_list(&kb, 0, 1e6, 1, &pb->nb);
    pb->lambda = parse_list(&kl, 0, 1, 1, &pb->nl);
    if ((double)pb->na * pb->nb * pb->nl > DYN_MAX_POINTS)
        die_user("dynamics: the grid has %d x %d x %d points, more than %d", pb->na, pb->nb, pb->nl, DYN_MAX_POINTS);
}

static void problem_free(Problem *pb)
{
    free(pb->P);
    free(pb->pi0);
    free(pb->pi_ref);
    free(pb->logref);
    free(pb->logstart);
    free(pb->rewards);
    free(pb->alpha);
    free(pb->beta);
    free(pb->lambda);
}

/* ---------------------------------------------------------------- the grid */

/* Per-point results, as doubles so that one sum over ranks gathers them. */
enum { R_ENT, R_CYC, R_STEP, R_MAXSTEP, R_CONV, R_OUTCOME, R_CONTR, R_RADIUS, R_REGIME, R_PMAX, R_ARGMAX, R_NCOL };

typedef struct {
    int G, n;
    double *a, *b, *l; /* (G) */
    double *col;       /* (R_NCOL, G) */
    double *final_pi;  /* (G, n) */
} Grid;

static DynRunOpts run_opts(const DynamicsConfig *dc)
{
    return (DynRunOpts){dc->rounds, dc->window, dc->tol, dc->collapse_entropy, dc->cycle_tol};
}

/* Theory of one point. */
static void theory(const Problem *pb, const DynamicsConfig *dc, double a, double b, double l, double *contr,
                   double *radius, int *regime)
{
    *contr = dyn_contraction(a, b, l, pb->norm);
    *radius = pb->cyclic_uniform ? dyn_cyclic_radius(pb->n, dc->advantage, a, b, l) : NAN;
    *regime = (int)dyn_regime(*contr, *radius, pb->unique_top, a, b);
}

static void grid_run(const Problem *pb, const DynamicsConfig *dc, Grid *g)
{
    int n = pb->n, G = pb->na * pb->nb * pb->nl, rank = dist_rank(), world = dist_size();
    g->G = G;
    g->n = n;
    g->a = xmalloc(sizeof(double) * (size_t)G);
    g->b = xmalloc(sizeof(double) * (size_t)G);
    g->l = xmalloc(sizeof(double) * (size_t)G);
    g->col = xcalloc((size_t)R_NCOL * (size_t)G, sizeof(double));
    g->final_pi = xcalloc((size_t)G * (size_t)n, sizeof(double));
    DynRunOpts o = run_opts(dc);
    double *fl = xmalloc(sizeof(double) * (size_t)n);
    for (int ia = 0, k = 0; ia < pb->na; ia++)
        for (int ib = 0; ib < pb->nb; ib++)
            for (int il = 0; il < pb->nl; il++, k++) {
                g->a[k] = pb->alpha[ia];
                g->b[k] = pb->beta[ib];
                g->l[k] = pb->lambda[il];
                if (k % world != rank)
                    continue;
                DynModel m = {n, pb->P, pb->pi0, pb->logref, g->a[k], g->b[k], g->l[k]};
                DynResult r;
                dyn_run(&m, pb->logstart, &o, &r, NULL, fl);
                double contr, radius;
                int regime;
                theory(pb, dc, g->a[k], g->b[k], g->l[k], &contr, &radius, &regime);
                double *c = g->col;
                c[R_ENT * G + k] = r.entropy;
                c[R_CYC * G + k] = r.cycle;
                c[R_STEP * G + k] = r.step;
                c[R_MAXSTEP * G + k] = r.max_step;
                c[R_CONV * G + k] = r.converged;
                c[R_OUTCOME * G + k] = r.outcome;
                c[R_CONTR * G + k] = contr;
                c[R_RADIUS * G + k] = radius;
                c[R_REGIME * G + k] = regime;
                c[R_PMAX * G + k] = r.pmax;
                c[R_ARGMAX * G + k] = r.argmax;
                for (int i = 0; i < n; i++)
                    g->final_pi[(size_t)k * n + i] = exp(fl[i]);
            }
    free(fl);
    if (world > 1) { /* every value has one owner, the others hold 0 (a NaN stays NaN) */
        dist_allreduce_sum_f64(g->col, (size_t)R_NCOL * (size_t)G);
        dist_allreduce_sum_f64(g->final_pi, (size_t)G * (size_t)n);
    }
}

static void grid_free(Grid *g)
{
    free(g->a);
    free(g->b);
    free(g->l);
    free(g->col);
    free(g->final_pi);
}

/* ---------------------------------------------------------------- trajectories */

typedef struct {
    int count;
    double a[DYN_MAX_TRAJ], b[DYN_MAX_TRAJ], l[DYN_MAX_TRAJ];
} TrajSpec;

static void parse_traj(const PreferConfig *cfg, TrajSpec *t)
{
    const char *text = cfg->dynamics.trajectories, *src = cfg->source ? cfg->source : "";
    t->count = 0;
    char *copy = xstrdup(text), *save = NULL;
    for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        char *s = trim(tok);
        if (!*s)
            continue;
        KeyText k = {"dynamics.trajectories", text, src};
        if (t->count == DYN_MAX_TRAJ)
            bad_key(&k, "more than %d points", DYN_MAX_TRAJ);
        KeyText kp = {"dynamics.trajectories", s, src};
        int m;
        double *v = parse_list(&kp, 0, 1e6, 0, &m);
        if (m != 3)
            bad_key(&k, "point %d has %d numbers; want alpha,beta,lambda", t->count + 1, m);
        if (v[0] > 1 || v[2] > 1)
            bad_key(&k, "point %d: alpha and lambda must lie in [0, 1]", t->count + 1);
        t->a[t->count] = v[0];
        t->b[t->count] = v[1];
        t->l[t->count] = v[2];
        t->count++;
        free(v);
    }
    free(copy);
}

/* ---------------------------------------------------------------- output */

static void write_col(hid_t f, const char *path, const Grid *g, int c, hid_t type)
{
    hsize_t d[1] = {(hsize_t)g->G};
    const double *v = g->col + (size_t)c * g->G;
    if (type == H5T_NATIVE_DOUBLE) {
        h5u_write_array(f, path, type, 1, d, v);
    } else if (type == H5T_NATIVE_UINT8) {
        uint8_t *u = xmalloc((size_t)g->G + 1);
        for (int k = 0; k < g->G; k++)
            u[k] = (uint8_t)v[k];
        h5u_write_array(f, path, type, 1, d, u);
        free(u);
    } else {
        int64_t *u = xmalloc(sizeof(int64_t) * ((size_t)g->G + 1));
        for (int k = 0; k < g->G; k++)
            u[k] = (int64_t)v[k];
        h5u_write_array(f, path, H5T_NATIVE_INT64, 1, d, u);
        free(u);
    }
}

static void write_results(const PreferConfig *cfg, const Problem *pb, const Grid *g, const TrajSpec *ts,
                          double *const *traj, const int *traj_outcome)
{
    const DynamicsConfig *dc = &cfg->dynamics;
    int n = pb->n;
    util_mkdir_parent(dc->out);
    char *tmp, *text = config_to_text(cfg);
    hid_t f = h5u_create_tmp(dc->out, "dynamics results (dynamics.out)", DYN_FORMAT, DYN_VERSION, text, &tmp);
    free(text);
    h5u_attr_str(f, "family", dc->family);
    h5u_attr_i64(f, "n", n);
    if (!strcmp(dc->family, "cyclic"))
        h5u_attr_f64(f, "advantage", dc->advantage);
    if (!strcmp(dc->family, "file"))
        h5u_attr_str(f, "p_file", dc->p_file);
    h5u_attr_f64(f, "norm", pb->norm);
    h5u_attr_i64(f, "rounds", dc->rounds);
    h5u_attr_i64(f, "window", dc->window);
    h5u_attr_f64(f, "tol", dc->tol);
    h5u_attr_f64(f, "cycle_tol", dc->cycle_tol);
    h5u_attr_f64(f, "collapse_entropy", dc->collapse_entropy);
    h5u_attr_f64(f, "perturb", dc->perturb);
    h5u_attr_i64(f, "cyclic_uniform", pb->cyclic_uniform);
    h5u_attr_i64(f, "n_points", g->G);
    h5u_attr_i64(f, "n_alpha", pb->na);
    h5u_attr_i64(f, "n_beta", pb->nb);
    h5u_attr_i64(f, "n_lambda", pb->nl);
    h5u_attr_str(f, "outcome_names", "converged,oscillating,collapsed,undecided");
    h5u_attr_str(f, "regime_names", "contraction,stable,oscillation,collapse,unknown");
    hsize_t dnn[2] = {(hsize_t)n, (hsize_t)n}, dn[1] = {(hsize_t)n}, dg[1] = {(hsize_t)g->G},
            dgn[2] = {(hsize_t)g->G, (hsize_t)n};
    h5u_write_array(f, "/P", H5T_NATIVE_DOUBLE, 2, dnn, pb->P);
    h5u_write_array(f, "/pi0", H5T_NATIVE_DOUBLE, 1, dn, pb->pi0);
    h5u_write_array(f, "/pi_ref", H5T_NATIVE_DOUBLE, 1, dn, pb->pi_ref);
    if (pb->rewards)
        h5u_write_array(f, "/rewards", H5T_NATIVE_DOUBLE, 1, dn, pb->rewards);
    h5u_write_array(f, "/grid/alpha", H5T_NATIVE_DOUBLE, 1, dg, g->a);
    h5u_write_array(f, "/grid/beta", H5T_NATIVE_DOUBLE, 1, dg, g->b);
    h5u_write_array(f, "/grid/lambda", H5T_NATIVE_DOUBLE, 1, dg, g->l);
    write_col(f, "/results/entropy", g, R_ENT, H5T_NATIVE_DOUBLE);
    write_col(f, "/results/cycle_strength", g, R_CYC, H5T_NATIVE_DOUBLE);
    write_col(f, "/results/step", g, R_STEP, H5T_NATIVE_DOUBLE);
    write_col(f, "/results/max_step", g, R_MAXSTEP, H5T_NATIVE_DOUBLE);
    write_col(f, "/results/converged", g, R_CONV, H5T_NATIVE_UINT8);
    write_col(f, "/results/outcome", g, R_OUTCOME, H5T_NATIVE_INT64);
    write_col(f, "/results/contraction", g, R_CONTR, H5T_NATIVE_DOUBLE);
    write_col(f, "/results/radius", g, R_RADIUS, H5T_NATIVE_DOUBLE);
    write_col(f, "/results/regime", g, R_REGIME, H5T_NATIVE_INT64);
    write_col(f, "/results/pmax", g, R_PMAX, H5T_NATIVE_DOUBLE);
    write_col(f, "/results/argmax", g, R_ARGMAX, H5T_NATIVE_INT64);
    h5u_write_array(f, "/results/final_pi", H5T_NATIVE_DOUBLE, 2, dgn, g->final_pi);
    for (int t = 0; t < ts->count; t++) {
        char path[64];
        snprintf(path, sizeof path, "/trajectories/%d/pi", t);
        hsize_t dt[2] = {(hsize_t)dc->rounds + 1, (hsize_t)n};
        h5u_write_array(f, path, H5T_NATIVE_DOUBLE, 2, dt, traj[t]);
        snprintf(path, sizeof path, "/trajectories/%d", t);
        hid_t gr = CHECK_H5(H5Gopen2(f, path, H5P_DEFAULT));
        h5u_attr_f64(gr, "alpha", ts->a[t]);
        h5u_attr_f64(gr, "beta", ts->b[t]);
        h5u_attr_f64(gr, "lambda", ts->l[t]);
        h5u_attr_str(gr, "outcome", dyn_outcome_name(traj_outcome[t]));
        CHECK_H5(H5Gclose(gr));
    }
    if (H5Fclose(f) < 0)
        die_user("dynamics: closing %s failed (disk full?)", tmp);
    h5u_commit(tmp, dc->out);
    free(tmp);
}

/* ---------------------------------------------------------------- printing */

static const char OUTCOME_LETTER[] = "co.?"; /* converged, oscillating, collapsed, undecided */
static const char REGIME_LETTER[] = "CSOX?";

static void print_table(const Grid *g)
{
    const double *c = g->col;
    int G = g->G;
    say("%6s %8s %6s %8s %11s %8s %-11s %-11s %8s %10s %10s %6s\n", "alpha", "beta", "lambda", "b*l", "contraction",
        "radius", "theory", "outcome", "entropy", "cycle", "max_step", "pmax");
    for (int k = 0; k < G; k++)
        say("%6.3f %8.4g %6.3f %8.4g %11.4f %8.4f %-11s %-11s %8.4f %10.3e %10.3e %6.3f\n", g->a[k], g->b[k], g->l[k],
            g->b[k] * g->l[k], c[R_CONTR * G + k], c[R_RADIUS * G + k], dyn_regime_name((int)c[R_REGIME * G + k]),
            dyn_outcome_name((int)c[R_OUTCOME * G + k]), c[R_ENT * G + k], c[R_CYC * G + k], c[R_MAXSTEP * G + k],
            c[R_PMAX * G + k]);
}

/* Per lambda: rows alpha (top = largest), columns beta; each cell theory letter + outcome letter. */
static void print_map(const Problem *pb, const Grid *g)
{
    const double *c = g->col;
    int G = g->G;
    say("\nphase map: theory (C contraction, S stable, O oscillation, X collapse, ? none) + outcome (c converged, "
        "o oscillating, . collapsed, ? undecided)\n");
    for (int il = 0; il < pb->nl; il++) {
        say("lambda = %g; columns beta:", pb->lambda[il]);
        for (int ib = 0; ib < pb->nb; ib++)
            say(" %6.4g", pb->beta[ib]);
        say("\n");
        for (int ia = pb->na - 1; ia >= 0; ia--) {
            say("alpha %6.3f            ", pb->alpha[ia]);
            for (int ib = 0; ib < pb->nb; ib++) {
                int k = (ia * pb->nb + ib) * pb->nl + il;
                say("     %c%c", REGIME_LETTER[(int)c[R_REGIME * G + k]], OUTCOME_LETTER[(int)c[R_OUTCOME * G + k]]);
            }
            say("\n");
        }
    }
}

/* Theory against simulation: predicted stable -> converged flag; oscillation -> oscillating;
 * collapse -> collapsed. Returns the number of disagreements. */
static int print_agreement(const Grid *g)
{
    const double *c = g->col;
    int G = g->G, checked = 0, bad = 0, shown = 0;
    for (int k = 0; k < G; k++) {
        int reg = (int)c[R_REGIME * G + k], out = (int)c[R_OUTCOME * G + k], conv = c[R_CONV * G + k] != 0, agree;
        if (reg == DYN_REGIME_CONTRACTION || reg == DYN_REGIME_STABLE)
            agree = conv;
        else if (reg == DYN_REGIME_OSCILLATION)
            agree = out == DYN_OSCILLATING;
        else if (reg == DYN_REGIME_COLLAPSE)
            agree = out == DYN_COLLAPSED;
        else
            continue;
        checked++;
        if (!agree) {
            bad++;
            if (shown++ < 20)
                say("dynamics: disagreement at alpha %g beta %g lambda %g: theory %s, outcome %s (contraction %.4f, "
                    "radius %.4f, cycle %.3e, max step %.3e)\n",
                    g->a[k], g->b[k], g->l[k], dyn_regime_name(reg), dyn_outcome_name(out), c[R_CONTR * G + k],
                    c[R_RADIUS * G + k], c[R_CYC * G + k], c[R_MAXSTEP * G + k]);
        }
    }
    int counts[4] = {0};
    for (int k = 0; k < G; k++)
        counts[(int)c[R_OUTCOME * G + k]]++;
    say("dynamics: outcomes: %d converged, %d oscillating, %d collapsed, %d undecided\n", counts[0], counts[1],
        counts[2], counts[3]);
    say("dynamics: theory and simulation agree at %d of %d points with a prediction\n", checked - bad, checked);
    return bad;
}

/* ---------------------------------------------------------------- the command */

int cmd_dynamics(int argc, char **argv)
{
    CliArgs a;
    PreferConfig cfg;
    if (cli_start(argc, argv, "dynamics", usage, NULL, &a, &cfg))
        return 0;
    const DynamicsConfig *dc = &cfg.dynamics;
    double t0 = now_s();
    Problem pb;
    problem_build(&cfg, &pb);
    TrajSpec ts;
    parse_traj(&cfg, &ts);
    int G = pb.na * pb.nb * pb.nl;
    say("dynamics: family %s, n = %d, ||P - 11^T/2||_2 = %.6f%s; grid %d alpha x %d beta x %d lambda = %d points, "
        "%d rounds each (window %d); %d rank%s\n",
        dc->family, pb.n, pb.norm, pb.cyclic_uniform ? " (cyclic, uniform pi_0 and pi_ref: radius applies)" : "",
        pb.na, pb.nb, pb.nl, G, dc->rounds, dc->window, dist_size(), dist_size() > 1 ? "s" : "");
    if (!strcmp(dc->family, "cyclic") && !pb.cyclic_uniform)
        say("dynamics: pi_0 or pi_ref is not uniform: the uniform policy is not a fixed point, so no linear radius "
            "(only the contraction constant)\n");
    Grid g;
    grid_run(&pb, dc, &g);

    if (dist_rank() == 0) {
        double *traj[DYN_MAX_TRAJ];
        int tout[DYN_MAX_TRAJ];
        DynRunOpts o = run_opts(dc);
        for (int t = 0; t < ts.count; t++) {
            traj[t] = xmalloc(sizeof(double) * ((size_t)dc->rounds + 1) * (size_t)pb.n);
            DynModel m = {pb.n, pb.P, pb.pi0, pb.logref, ts.a[t], ts.b[t], ts.l[t]};
            DynResult r;
            dyn_run(&m, pb.logstart, &o, &r, traj[t], NULL);
            tout[t] = r.outcome;
        }
        write_results(&cfg, &pb, &g, &ts, traj, tout);
        if (G <= DYN_MAX_PRINT)
            print_table(&g);
        else
            say("dynamics: %d points: the per-point table is left out (over %d); the file has every value\n", G,
                DYN_MAX_PRINT);
        if (pb.nb <= DYN_MAX_MAP_COLS)
            print_map(&pb, &g);
        else
            say("dynamics: %d beta values: no phase map (over %d columns); analysis/phase.py draws it\n", pb.nb,
                DYN_MAX_MAP_COLS);
        print_agreement(&g);
        for (int t = 0; t < ts.count; t++)
            free(traj[t]);
        say("dynamics: wrote %s (%d points, %d trajectories; %.2f s)\n", dc->out, G, ts.count, now_s() - t0);
    }
    grid_free(&g);
    problem_free(&pb);
    config_free(&cfg);
    return 0;
}

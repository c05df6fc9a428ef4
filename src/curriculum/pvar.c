/* pvar.c: preference variance per prompt and the selection of prompts from it (pvar.h).
 *
 * Does: the arithmetic of PVar from per-response values, the ranking, and the four selection
 * modes, each a pure function of its arguments (the same on every rank).
 * Does not: compute log-probs (reflogp.c), read or write files, or talk MPI: the command
 * `prefer pvar` (pvar_cmd.c) and the trainer do that around it.
 */
#include "prefer/pvar.h"
#include "prefer/rng.h"
#include "prefer/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double pvar_of(const double *h, int K, double beta)
{
    if (K < 2)
        return NAN;
    /* (sigma(z) - 1/2)^2 = tanh(z/2)^2 / 4: no exp to overflow, full relative precision for
     * small z (where the 1/4 - sigma(z) sigma(-z) form would cancel). The ordered pairs (i, j)
     * and (j, i) contribute the same, so the mean over unordered pairs is the same number. */
    double s = 0;
    for (int i = 0; i < K; i++)
        for (int j = i + 1; j < K; j++) {
            double t = tanh(0.5 * beta * (h[i] - h[j]));
            s += t * t;
        }
    return 0.25 * s / (0.5 * (double)K * (double)(K - 1));
}

void pvar_all(const PrefData *d, const double *h, double beta, double *pvar)
{
    int64_t P = d->n_prompts, R = d->n_responses;
    /* counting sort of the responses by prompt, stable (file order within a prompt) */
    int64_t *start = xcalloc((size_t)P + 1, sizeof(int64_t));
    int64_t *order = xmalloc(sizeof(int64_t) * (size_t)(R > 0 ? R : 1));
    for (int64_t r = 0; r < R; r++)
        start[d->response_prompt[r] + 1]++;
    for (int64_t p = 0; p < P; p++)
        start[p + 1] += start[p];
    int kmax = 0;
    for (int64_t p = 0; p < P; p++)
        if (start[p + 1] - start[p] > kmax)
            kmax = (int)(start[p + 1] - start[p]);
    int64_t *fill = xmalloc(sizeof(int64_t) * (size_t)(P > 0 ? P : 1));
    memcpy(fill, start, sizeof(int64_t) * (size_t)P);
    for (int64_t r = 0; r < R; r++)
        order[fill[d->response_prompt[r]]++] = r;
    double *v = xmalloc(sizeof(double) * (size_t)(kmax > 0 ? kmax : 1));
    for (int64_t p = 0; p < P; p++) {
        int K = (int)(start[p + 1] - start[p]);
        for (int k = 0; k < K; k++)
            v[k] = h[order[start[p] + k]];
        pvar[p] = pvar_of(v, K, beta);
    }
    free(v);
    free(fill);
    free(order);
    free(start);
}

/* ---------------------------------------------------------------- selection */

typedef struct {
    double key;  /* smaller first */
    int tier;    /* smaller tier first (proportional: 0 positive weight, 1 zero weight) */
    int64_t idx; /* prompt index: the tie-break */
} Keyed;

static int keyed_cmp(const void *pa, const void *pb)
{
    const Keyed *a = pa, *b = pb;
    if (a->tier != b->tier)
        return a->tier < b->tier ? -1 : 1;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int i64_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return a < b ? -1 : a > b;
}

/* ceil(frac * n), but an exact product that rounding pushed just above an integer stays it */
static int64_t take_count(double frac, int64_t n)
{
    double x = frac * (double)n, r = nearbyint(x);
    int64_t k = fabs(x - r) <= 1e-9 * fmax(1.0, x) ? (int64_t)r : (int64_t)ceil(x);
    if (n > 0 && k < 1)
        k = 1;
    return k > n ? n : k;
}

/* Uniform in (0, 1), never 0 or 1, so log(-log u) is finite. */
static double open_uniform(uint64_t key, uint64_t i)
{
    return ((double)(rng_at(key, i) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

int64_t pvar_select(const double *pvar, int64_t n, const char *mode, double frac, double temperature, uint64_t seed,
                    uint64_t round, int64_t *out_prompts)
{
    enum { TOP, BOTTOM, RANDOM, PROP } m;
    if (!mode)
        return -1;
    if (!strcmp(mode, "top"))
        m = TOP;
    else if (!strcmp(mode, "bottom"))
        m = BOTTOM;
    else if (!strcmp(mode, "random"))
        m = RANDOM;
    else if (!strcmp(mode, "proportional"))
        m = PROP;
    else
        return -1;
    if (n < 0 || !(frac > 0 && frac <= 1) || (m == PROP && !(temperature > 0)))
        return -1;
    Rng r;
    rng_init(&r, seed, PVAR_RNG_STREAM);
    uint64_t key = rng_at(r.key, round);
    Keyed *a = xmalloc(sizeof(Keyed) * (size_t)(n > 0 ? n : 1));
    int64_t nv = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(pvar[i]))
            continue;
        Keyed e = {0, 0, i};
        switch (m) {
        case TOP: e.key = -pvar[i]; break;
        case BOTTOM: e.key = pvar[i]; break;
        case RANDOM: e.key = open_uniform(key, (uint64_t)i); break;
        case PROP: {
            /* largest u^(1/w) = smallest log(-log u) - log w, w = PVar^(1/temperature) */
            double g = log(-log(open_uniform(key, (uint64_t)i)));
            if (pvar[i] > 0) {
                e.key = g - log(pvar[i]) / temperature;
            } else {
                e.tier = 1;
                e.key = g;
            }
            break;
        }
        }
        a[nv++] = e;
    }
    int64_t k = take_count(frac, nv);
    qsort(a, (size_t)nv, sizeof(Keyed), keyed_cmp);
    for (int64_t j = 0; j < k; j++)
        out_prompts[j] = a[j].idx;
    qsort(out_prompts, (size_t)k, sizeof(int64_t), i64_cmp);
    free(a);
    return k;
}

int64_t pvar_rank(const double *pvar, int64_t n, int64_t *rank)
{
    Keyed *a = xmalloc(sizeof(Keyed) * (size_t)(n > 0 ? n : 1));
    int64_t nv = 0;
    for (int64_t i = 0; i < n; i++) {
        rank[i] = -1;
        if (isfinite(pvar[i]))
            a[nv++] = (Keyed){-pvar[i], 0, i};
    }
    qsort(a, (size_t)nv, sizeof(Keyed), keyed_cmp);
    for (int64_t j = 0; j < nv; j++)
        rank[a[j].idx] = j;
    free(a);
    return nv;
}

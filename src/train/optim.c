/* optim.c: AdamW, the learning-rate schedule, global-norm gradient clipping.
 *
 * Works on flat float arrays in the model's parameter layout; knows nothing of tensors,
 * ranks or MPI (the trainer allreduces gradients before calling adamw_step, so every rank
 * applies the same update). Scalars that depend on the step count (bias corrections,
 * schedule) are computed in double once per step; the per-element loop is plain float so
 * it vectorises, and is split over OpenMP threads.
 */
#include "prefer/optim.h"
#include "prefer/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void adamw_init(AdamW *o, size_t n, const uint8_t *decay_mask, double beta1, double beta2,
                double eps, double weight_decay)
{
    memset(o, 0, sizeof *o);
    o->n = n;
    o->m = xmalloc_aligned(n * sizeof(float)); /* zero-filled */
    o->v = xmalloc_aligned(n * sizeof(float));
    o->decay_mask = xmalloc_aligned(n);
    if (decay_mask)
        memcpy(o->decay_mask, decay_mask, n);
    o->t = 0;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
}

void adamw_free(AdamW *o)
{
    if (!o)
        return;
    free(o->m);
    free(o->v);
    free(o->decay_mask);
    memset(o, 0, sizeof *o);
}

/* params [n] in/out, grads [n] in, o->m, o->v [n] in/out.
 * The loop vectorises only with -fno-math-errno (GCC keeps a branch to sqrtf for errno
 * otherwise, and ignores the flag given as a pragma or function attribute).
 * PyTorch's AdamW: p *= 1 - lr*wd (masked), then p -= lr * mhat / (sqrt(vhat) + eps).
 * Both use the pre-update p, so this equals the single expression in optim.h. */
void adamw_step(AdamW *o, float *params, const float *grads, double lr)
{
    o->t++;
    /* 1 - beta^t loses nothing in double even for beta2 = 0.999 at small t. */
    const double bc1 = 1.0 - pow(o->beta1, (double)o->t);
    const double bc2 = 1.0 - pow(o->beta2, (double)o->t);
    const float b1 = (float)o->beta1, b2 = (float)o->beta2;
    const float one_m_b1 = (float)(1.0 - o->beta1), one_m_b2 = (float)(1.0 - o->beta2);
    const float inv_bc1 = (float)(1.0 / bc1), inv_bc2 = (float)(1.0 / bc2);
    const float eps = (float)o->eps, flr = (float)lr;
    const float lr_wd = (float)(lr * o->weight_decay);
    float *restrict m = o->m, *restrict v = o->v;
    float *restrict p = params;
    const float *restrict g = grads;
    const uint8_t *restrict mask = o->decay_mask;
    const long n = (long)o->n;

#pragma omp parallel for simd schedule(static)
    for (long i = 0; i < n; i++) {
        float gi = g[i];
        float mi = b1 * m[i] + one_m_b1 * gi;
        float vi = b2 * v[i] + one_m_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi * inv_bc1, vhat = vi * inv_bc2;
        float pi = p[i];
        p[i] = pi - flr * (mhat / (sqrtf(vhat) + eps)) - lr_wd * (float)mask[i] * pi;
    }
}

int sched_parse(const char *s)
{
    if (!s)
        return -1;
    if (!strcmp(s, "cosine"))
        return SCHED_COSINE;
    if (!strcmp(s, "linear"))
        return SCHED_LINEAR;
    if (!strcmp(s, "constant"))
        return SCHED_CONSTANT;
    return -1;
}

/* Steps 0..warmup-1 ramp lr*(step+1)/warmup (so the ramp ends at lr, never starts at 0).
 * The decay phase covers steps warmup..total-1 and is pinned at both ends: lr at its first
 * step, exactly lr*min_frac at total-1. If warmup >= total the run is all ramp. A decay phase
 * of one step (warmup == total-1, or total == 1 with no warmup) is its own last step and
 * gets lr*min_frac. Steps past the end stay at the final value. */
double sched_lr(int kind, double lr, double min_frac, int warmup, int total, int step)
{
    if (step < 0)
        step = 0;
    if (warmup < 0)
        warmup = 0;
    if (step < warmup)
        return lr * (double)(step + 1) / (double)warmup;
    if (kind == SCHED_CONSTANT)
        return lr;
    const double lr_min = lr * min_frac;
    const int last = total - 1;
    if (step >= last)
        return lr_min;
    /* here warmup <= step < last, so span >= 1 */
    const double frac = (double)(step - warmup) / (double)(last - warmup);
    if (kind == SCHED_LINEAR)
        return lr + (lr_min - lr) * frac;
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + cos(M_PI * frac));
}

double grad_norm(const float *g, size_t n)
{
    double s = 0.0;
    const long nn = (long)n;
#pragma omp parallel for simd reduction(+ : s) schedule(static)
    for (long i = 0; i < nn; i++)
        s += (double)g[i] * (double)g[i];
    return sqrt(s);
}

double grad_clip(float *g, size_t n, double max_norm)
{
    double norm = grad_norm(g, n);
    if (max_norm > 0.0 && norm > max_norm) {
        const float scale = (float)(max_norm / norm);
        const long nn = (long)n;
#pragma omp parallel for simd schedule(static)
        for (long i = 0; i < nn; i++)
            g[i] *= scale;
    }
    return norm;
}

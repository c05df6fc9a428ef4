/* optim.h: AdamW with decoupled weight decay, learning-rate schedule, gradient clipping.
 *
 * Moments m and v are one contiguous float array each, in the model's parameter layout.
 * Decay is applied per element through a mask built from the model's tensor table.
 */
#ifndef PREFER_OPTIM_H
#define PREFER_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;
    float *m, *v;        /* [n] first and second moments */
    uint8_t *decay_mask; /* [n] 1 where weight decay applies */
    int64_t t;           /* updates done (bias correction) */
    double beta1, beta2, eps, weight_decay;
} AdamW;

/* decay_mask is copied. */
void adamw_init(AdamW *o, size_t n, const uint8_t *decay_mask, double beta1, double beta2,
                double eps, double weight_decay);
void adamw_free(AdamW *o);
/* One update of params from grads at learning rate lr:
 *   m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2
 *   p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p * mask)   (decoupled decay) */
void adamw_step(AdamW *o, float *params, const float *grads, double lr);

typedef enum { SCHED_COSINE, SCHED_LINEAR, SCHED_CONSTANT } SchedKind;
/* "cosine" | "linear" | "constant" -> kind; -1 if unknown. */
int sched_parse(const char *s);
/* Learning rate at step (0-based) of total: linear warmup from lr/warmup to lr over the
 * first `warmup` steps, then decay to lr*min_frac at the last step. */
double sched_lr(int kind, double lr, double min_frac, int warmup, int total, int step);

/* Global L2 norm of g (double accumulation). */
double grad_norm(const float *g, size_t n);
/* Scale g so its norm is at most max_norm (if max_norm > 0 and norm > max_norm);
 * returns the norm before clipping. */
double grad_clip(float *g, size_t n, double max_norm);

#endif

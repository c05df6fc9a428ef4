/* train.h: the training loop: sampler, micro-batches, loss, allreduce, clip, AdamW, logs.
 *
 * Objective "sft": mean negative log-likelihood over the response tokens of the global
 * batch (prompt tokens are context, not targets). The global batch is
 * world_size x micro_batch x grad_accum examples, taken in order from a seeded
 * permutation of the dataset per epoch; rank r takes its slice, so the examples of a
 * step do not depend on the number of ranks.
 */
#ifndef PREFER_TRAIN_H
#define PREFER_TRAIN_H

#include <stdint.h>

#include "prefer/config.h"
#include "prefer/gpt.h"
#include "prefer/optim.h"
#include "prefer/prefdata.h"

typedef struct {
    double loss;       /* mean over the global batch */
    double grad_norm;  /* before clipping */
    double lr;
    double tokens;     /* non-pad input tokens processed in the step, all ranks */
    double targets;    /* scored tokens, all ranks */
    double seconds;
} StepStats;

typedef struct {
    const PreferConfig *cfg;
    const PrefData *data;
    Gpt *model;
    AdamW opt;
    int sched;
    int64_t step;        /* optimizer steps done */
    int64_t n_examples;  /* SFT: one per response */
    int64_t global_batch;
    int rank, world;
    /* sampler: permutation of the current epoch */
    int64_t perm_epoch;
    int64_t *perm;
    /* batch buffers (micro_batch x context) */
    int32_t *tok, *tgt;
    uint8_t *mask;
    float *dlogp;
    double *seq_logp, *seq_ntok;
} Trainer;

/* model must be initialised (weights set); the trainer does not own cfg, data or model.
 * Dies if an example does not fit model.context or the data's vocabulary exceeds the model's. */
void trainer_init(Trainer *t, const PreferConfig *cfg, const PrefData *data, Gpt *model, int rank, int world);
void trainer_free(Trainer *t);
/* One optimizer step. Dies (naming the step) if the loss or gradient is not finite. */
void trainer_step(Trainer *t, StepStats *st);
/* Dataset index of the example at global position q of the example stream. */
int64_t trainer_example_at(Trainer *t, int64_t q);

/* Save / restore everything needed to continue identically (rank 0 saves). */
void trainer_save(const Trainer *t, const char *path);
void trainer_load(Trainer *t, const char *path);

#endif

/* train.h: the training loop: sampler, micro-batches, loss, allreduce, clip, AdamW.
 *
 * Two kinds of example:
 *  - train.objective = "sft": every response of the dataset with its prompt; the loss is
 *    the mean negative log-likelihood over the response tokens of the global batch.
 *  - any preference objective (losses.h; "dpo", "ipo", "dpo,sft", ...): every pair; the
 *    loss is the sum of per-pair losses over the global batch divided by the global number
 *    of pairs, whatever the micro-batch and accumulation split. With prefix sharing a pair
 *    is one packed sequence prompt|chosen|rejected in which the rejected branch skips the
 *    chosen one, so the prompt is computed once.
 * The global batch is world x micro_batch x grad_accum examples taken in order from a
 * seeded permutation of the examples per epoch; rank r takes its slice, so a step's
 * examples do not depend on the number of ranks.
 */
#ifndef PREFER_TRAIN_H
#define PREFER_TRAIN_H

#include <stdint.h>

#include "prefer/config.h"
#include "prefer/dist.h"
#include "prefer/gpt.h"
#include "prefer/losses.h"
#include "prefer/optim.h"
#include "prefer/prefdata.h"
#include "prefer/prefshard.h"

typedef struct {
    double loss;       /* mean over the global batch */
    double grad_norm;  /* before clipping */
    double lr;
    double tokens;     /* non-pad input tokens processed in the step, all ranks */
    double targets;    /* scored tokens, all ranks */
    double seconds;
    double examples;   /* sequences (sft) or pairs in the global batch */
    /* preference objectives: means over the pairs of the global batch (TRL's names) */
    double rewards_chosen, rewards_rejected, rewards_margins, rewards_accuracies;
    double logps_chosen, logps_rejected, logits_chosen, logits_rejected;
    /* where the step's time went (this rank): building batches and reading data, forward,
     * backward, waiting for the gradient allreduce */
    double t_data, t_forward, t_backward, t_allreduce;
} StepStats;

typedef struct {
    const PreferConfig *cfg;
    const PrefData *data;
    Gpt *model;
    AdamW opt;
    LossSpec loss;
    int pref;            /* 1: pairs and a preference objective; 0: sft over responses */
    int share;           /* prefix sharing (pairs) */
    int sched;
    int64_t step;        /* optimizer steps done */
    int64_t n_examples;  /* responses (sft) or pairs */
    int64_t global_batch;
    int rank, world;
    const double *ref_logp; /* [n_responses] reference log-probs (pairs), not owned */
    /* sampler: permutation of the current epoch */
    int64_t perm_epoch;
    int64_t *perm;
    /* batch buffers */
    int32_t *tok, *pos, *skip, *row, *tgt;
    int32_t *row_pair;   /* pair index within the micro-batch, negative (-1-i) for the rejected branch */
    float *drow;
    double *row_logp;
    PairLogps *pairs;
    double *pl_loss, *dlc, *dlr;
    /* sharded reading: data is shard->meta (no tokens); each micro-step reads its tokens */
    PrefShard *shard;
    PrefData local;      /* the tokens gathered for the current micro-step */
    int64_t *ids, *iota; /* (2 micro_batch) response ids of the micro-step; 0, 1, 2, ... */
    DistReducer *red;    /* bucketed, overlapped gradient allreduce (NULL at one rank) */
    /* PVar curriculum (curriculum.select != "none"): the current epoch trains on the pairs
     * of the selected prompts, shuffled; epochs are whole steps long */
    int cur_on;
    int64_t cur_epoch;       /* -1 before the first selection */
    int64_t cur_start;       /* step at which the current epoch began */
    int64_t cur_steps;       /* steps in it: ceil(pairs / global batch) */
    int64_t n_sel;           /* selected prompts */
    int64_t *sel;            /* [n_prompts] selected prompt ids (sorted), first n_sel used */
    int64_t n_cur;           /* pairs of the selected prompts */
    int64_t *cur_pairs;      /* [n_pairs] their pair ids, shuffled for the epoch */
    double *pvar;            /* [n_prompts] PVar at the last selection (NaN: < 2 responses) */
    int cur_new;             /* set when a selection was just made (for the run log) */
    double cur_seconds;      /* time the last selection took */
    int cur_period;          /* reselect every this many epochs: curriculum.every, lengthened to keep
                              * model-based selections within curriculum.max_share (0 = once) */
    const char *cur_mode;    /* the last selection's mode: curriculum.select, or random when PVar was 0 */
    int cur_start_is_ref;    /* the policy at step 0 is the reference itself: PVar 0, no pass */
    double cur_sel_flops;    /* predicted cost of a selection: model FLOPs of its forward pass */
    double cur_epoch_flops;  /* and of an epoch: forward + backward over frac of the pairs, whole steps */
    double cur_step_flops;   /* and of a step: a global batch of pairs */
    int64_t n_gn;            /* curriculum.grad_norm_sample: prompts whose gradient norm ... */
    int64_t *gn_prompt;      /* ... was measured at the last selection, and */
    double *gn;              /* ... the norm of the mean loss gradient over each one's pairs */
    Gpt *infer;              /* forward-only copy of the model for the PVar pass (big batches) */
} Trainer;

/* The activations a model needs for this config and data: sequences per forward and their
 * longest length (packed pairs are longer than one response). Dies if an example does not
 * fit model.context. */
void trainer_model_shape(const PreferConfig *cfg, const PrefData *data, int *max_batch, int *max_seq);

/* model must be initialised with trainer_model_shape's sizes (weights set); the trainer
 * does not own cfg, data or model. Dies on bad objectives or data that does not fit. */
void trainer_init(Trainer *t, const PreferConfig *cfg, const PrefData *data, Gpt *model, int rank, int world);
void trainer_free(Trainer *t);
/* Read each micro-step's tokens from this shard (data must be &shard->meta); not owned. */
void trainer_set_shard(Trainer *t, PrefShard *s);
/* Reference log-probs for the preference losses (not copied: keep alive). */
void trainer_set_ref(Trainer *t, const double *ref_logp);
/* The loss and gradient (summed over ranks, unclipped, in model->grads) of the batch of
 * step t->step, without updating anything. */
void trainer_grad(Trainer *t, StepStats *st);
/* One optimizer step: trainer_grad, clip, AdamW. Dies (naming the step) if the loss or gradient is not finite. */
void trainer_step(Trainer *t, StepStats *st);
/* Start a new curriculum epoch if the current one is over (collective: every rank calls
 * it before each step; trainer_step does). Computes PVar and selects when due. */
void trainer_curriculum(Trainer *t);
/* Whether epoch e, starting at start_step, begins with a selection: epoch 0, then every
 * t->cur_period epochs, except, under curriculum.max_share < 1, when the steps left are too
 * few to keep that selection within the share. For the model source when the policy starts
 * as its reference (t->cur_start_is_ref: epoch 0 selects at random), epoch 1 always selects
 * and the period counts from it (also with every = 0: epochs 0 and 1). */
int trainer_curriculum_selects(const Trainer *t, int64_t epoch, int64_t start_step);
/* Dataset index (response or pair) of the example at global position q of the stream. */
int64_t trainer_example_at(Trainer *t, int64_t q);

/* Preemption: install the handlers of SIGTERM, SIGUSR1 (Slurm's --signal) and SIGINT, which
 * only record the signal (`prefer train` installs them itself; a driver running several
 * stages, like `prefer iterate`, installs them once and checks between stages); and the
 * signal received so far, 0 if none. */
void train_install_stop_handlers(void);
int train_stop_signal(void);

/* Save / restore everything needed to continue identically (rank 0 saves). */
void trainer_save(const Trainer *t, const char *path);
void trainer_load(Trainer *t, const char *path);

#endif

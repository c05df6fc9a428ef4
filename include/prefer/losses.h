/* losses.h: the preference loss family (DPO, IPO, SimPO, ...) as pure scalar functions.
 *
 * Input per pair: the policy's and the reference's summed log-probs of the chosen (c) and
 * rejected (r) response tokens, and the response lengths. Output per pair: the loss and its
 * derivatives with respect to the POLICY summed log-probs; the trainer chains those into the
 * model by giving every response token of the sequence that derivative as its d(logp).
 *
 * Notation below: a = logp_c - ref_c, b = logp_r - ref_r (log-ratios), h = a - b,
 * sigma(z) = 1/(1+e^-z), ls(z) = log sigma(z), eps = loss.label_smoothing.
 *
 * An objective is a weighted sum of up to LOSS_MAX_TERMS terms (train.objective = "dpo,sft",
 * train.loss_weights = "1,0.5" is RPO). No model, no MPI, no allocation except a small index
 * buffer for the sorting terms (aot, aot_unpaired).
 */
#ifndef PREFER_LOSSES_H
#define PREFER_LOSSES_H

#include "prefer/config.h"

#include <stddef.h>

#define LOSS_MAX_TERMS 8

/* Term kinds; loss_name() gives the train.objective spelling. */
typedef enum {
    LOSS_SFT,           /* -logp_c / len_c (per-token NLL of the chosen response) */
    LOSS_DPO,           /* -ls(beta h)                                         (TRL "sigmoid") */
    LOSS_IPO,           /* (h - 1/(2 beta))^2; h per-token when ipo_normalize = token_mean */
    LOSS_HINGE,         /* relu(1 - beta h)                                    (SLiC) */
    LOSS_ROBUST,        /* ((1-eps)(-ls(beta h)) - eps(-ls(-beta h))) / (1 - 2 eps) */
    LOSS_CDPO,          /* (1-eps)(-ls(beta h)) + eps(-ls(-beta h))           (TRL sigmoid + label_smoothing) */
    LOSS_EXO_PAIR,      /* q_w (log q_w - log(1-e)) + q_l (log q_l - log e), q_w = sigma(beta h),
                           q_l = sigma(-beta h), e = eps (1e-3 when eps = 0) */
    LOSS_NCA_PAIR,      /* -ls(beta a) - ls(-beta a)/2 - ls(-beta b)/2 */
    LOSS_BCO_PAIR,      /* -ls(beta a - delta) - ls(-(beta b - delta)), delta = running mean reward */
    LOSS_SPPO_HARD,     /* (a - 1/(2 beta))^2 + (b + 1/(2 beta))^2 */
    LOSS_AOT,           /* cdpo form on d_k = sort(logp_c - logp_r)_k - sort(ref_c - ref_r)_k */
    LOSS_AOT_UNPAIRED,  /* cdpo form on d_k = sort(a)_k - sort(b)_k */
    LOSS_APO_ZERO,      /* (1 - sigma(beta a)) + sigma(beta b) */
    LOSS_APO_DOWN,      /* sigma(beta a) + (1 - sigma(beta h)) */
    LOSS_DISCOPOP,      /* z = beta h, m = sigma(z / tau): -ls(z)(1 - m) + e^-z m */
    LOSS_SIGMOID_NORM,  /* -ls(beta (a/len_c - b/len_r)) */
    LOSS_SIMPO,         /* -ls(beta (logp_c/len_c - logp_r/len_r) - gamma), reference-free */
    LOSS_NKINDS
} LossKind;

/* One pair. Lengths are response token counts; a length below 1 is used as 1 (as TRL clamps). */
typedef struct {
    double logp_c, logp_r; /* policy: summed log-probs of the chosen / rejected response */
    double ref_c, ref_r;   /* reference model, the same (ignored by sft and simpo) */
    double len_c, len_r;   /* response token counts */
} PairLogps;

/* A parsed objective. Plain data: copy it freely. */
typedef struct {
    int n;                          /* terms */
    int kind[LOSS_MAX_TERMS];       /* LossKind */
    double weight[LOSS_MAX_TERMS];  /* >= 0 */
    double beta;                    /* loss.beta */
    double label_smoothing;         /* loss.label_smoothing (cdpo, robust, exo_pair, aot*) */
    int ipo_token_mean;             /* loss.ipo_normalize: 0 = sum, 1 = token_mean */
    double simpo_gamma;             /* loss.simpo_gamma: the margin gamma itself */
    double discopop_tau;            /* loss.discopop_tau */
    /* bco_pair baseline: the mean of the batch-mean rewards given to loss_bco_update so far
     * (each call weighs the same, as TRL's RunningMoments fed one batch mean per step).
     * Per-rank state: it stays equal across ranks only if every rank passes the same (global)
     * mean. Save both fields in a checkpoint for an exact resume. */
    double bco_delta;
    double bco_count;
} LossSpec;

/* Sums over the pairs of a batch: add them over micro-batches and ranks (every field is a
 * double, so an allreduce of LOSS_METRICS_NDOUBLE doubles at &m works), then divide by n. */
typedef struct {
    double n;                  /* pairs */
    double loss;               /* sum of loss[i] (weighted over the terms) */
    double term[LOSS_MAX_TERMS]; /* sum of each term's unweighted per-pair loss */
    double rewards_chosen;     /* beta (logp_c - ref_c) */
    double rewards_rejected;   /* beta (logp_r - ref_r) */
    double rewards_margins;    /* rewards_chosen - rewards_rejected */
    double rewards_accuracies; /* 1 when reward_c > reward_r (ties count 0) */
    double logps_chosen;       /* logp_c */
    double logps_rejected;     /* logp_r */
    double logratio;           /* h = (logp_c - ref_c) - (logp_r - ref_r) */
} LossMetrics;

#define LOSS_METRICS_NDOUBLE ((int)(sizeof(LossMetrics) / sizeof(double)))

/* Fill s from cfg: train.objective (one name or a comma list, spaces around names allowed),
 * train.loss_weights ("" = every weight 1, else a comma list of as many numbers >= 0, not
 * all 0) and the loss.* keys. bco state starts at 0. Returns 0, or -1 with a message that
 * names the key and, for a bad name, lists the valid ones in err (size errlen; may be NULL). */
int loss_spec_parse(LossSpec *s, const PreferConfig *cfg, char *err, int errlen);

/* "dpo", "ipo", ...; "?" for an unknown kind. */
const char *loss_name(int kind);

/* 1 if some term reads ref_c / ref_r (all but sft and simpo): else the caller may skip the
 * reference forward pass and pass 0 for them. */
int loss_needs_ref(const LossSpec *s);

/* One line for the run log, e.g. "dpo*1 + sft*0.5 (beta 0.1, ipo_normalize sum, ...)". */
void loss_spec_describe(const LossSpec *s, char *buf, size_t n);

/* The loss of n pairs p[0..n-1]:
 *   loss[i]  per-pair loss, the weighted sum over the terms (NOT divided by n: the trainer
 *            divides the sums by the global number of pairs);
 *   dlc[i], dlr[i]  d(sum_j loss[j]) / d logp_c[i] and / d logp_r[i]. For every term but the
 *            sorting ones this is d loss[i] / d logp[i]. aot and aot_unpaired sort across the
 *            n pairs given (one micro-batch on one rank, like TRL's per-device batch): the term
 *            at sorted position k is stored in loss[] of the pair whose chosen (aot: policy
 *            log-ratio logp_c - logp_r; aot_unpaired: a) value sits at position k.
 *   m        filled (overwritten) with the batch sums.
 * Any of loss, dlc, dlr, m may be NULL. s is not changed (see loss_bco_update). */
void loss_batch(const LossSpec *s, int n, const PairLogps *p, double *loss, double *dlc,
                double *dlr, LossMetrics *m);

/* Fold one batch's mean reward (over chosen and rejected: see loss_metrics_mean_reward) into
 * the bco_pair baseline. Call once per optimizer step, after the batch; loss_batch uses the
 * baseline of the batches before (TRL folds the current batch in first: a one-step lag). */
void loss_bco_update(LossSpec *s, double mean_reward);

/* (rewards_chosen + rewards_rejected) / (2 n): what TRL's bco_pair feeds its baseline; 0 for
 * an empty batch. */
double loss_metrics_mean_reward(const LossMetrics *m);

/* acc += m, field by field. */
void loss_metrics_add(LossMetrics *acc, const LossMetrics *m);

#endif

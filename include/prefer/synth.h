/* synth.h: the synthetic preference task: a seeded random Markov "teacher" language, a hidden
 * true reward for any response, Bradley-Terry labels, and the exact KL-regularised optimum.
 * docs/synthetic-task.md describes the task, the files and the keys.
 *
 * The teacher is first-order over V tokens. Token 0 (SYNTH_EOS) is reserved: the teacher
 * never emits it, it only ends responses. Row a of the transition matrix (a >= 1) is the
 * softmax of SYNTH_LOGIT_SCALE * N(0,1) logits over tokens 1..V-1, so each token has a few
 * likely successors (learnable, far from uniform). Row 0 is the start state: uniform over
 * 1..V-1, which is how every prompt's first token is drawn.
 *
 * Prompts come in two splits (train, held-out) of prompt_len tokens each, a chain from the
 * start state; prompt i of a split is a pure function of (seed, split, i). A response is
 * response_len tokens: response_len-1 tokens continuing the chain from the prompt's last
 * token, then SYNTH_EOS.
 *
 * True reward: token v carries a hidden weight w[v] ~ N(0,1) (w[SYNTH_EOS] = 0); prompt x a
 * care c(x) >= 0; r(x, y) = c(x) * sum_t w[y_t]. The care is
 *     c = reward_scale * exp(care_sigma * z) * (u < care_indifferent ? care_indifferent_scale : 1)
 * with z ~ N(0,1), u ~ U[0,1) drawn from (seed, split, i): a share of prompts barely care.
 *
 * The SFT corpus: n_prompts train prompts and one teacher response each. The preference
 * files: K teacher responses per prompt, their true rewards as scores, and labelled pairs.
 */
#ifndef PREFER_SYNTH_H
#define PREFER_SYNTH_H

#include <stdint.h>

#include <hdf5.h>

#include "prefer/config.h"
#include "prefer/prefdata.h"
#include "prefer/rng.h"

#define SYNTH_EOS 0
/* Logit scale (inverse temperature) of the teacher's Gaussian logits. */
#define SYNTH_LOGIT_SCALE 3.0
/* The teacher is a dense V x V table (two of them in double): at most this many tokens. */
#define SYNTH_MAX_VOCAB 4096
/* Rng streams under synth.seed. */
#define SYNTH_STREAM_TEACHER 1
#define SYNTH_STREAM_CORPUS 2        /* train prompts (and their SFT responses) */
#define SYNTH_STREAM_HELDOUT 3       /* held-out prompts */
#define SYNTH_STREAM_WEIGHTS 4       /* token weights: token v uses draws 2v, 2v+1 */
#define SYNTH_STREAM_CARE 5          /* + split: prompt i uses draws 4i .. 4i+2 */
#define SYNTH_STREAM_RESPONSES 7     /* + split: K responses of the preference files */
#define SYNTH_STREAM_LABELS 9        /* + split: labels of the preference files */
#define SYNTH_STREAM_RELABEL 11      /* `prefer label` (mixed with a hash of the input) */

/* Task identity stored in every file `prefer synth` writes (root attribute synth_task). */
#define SYNTH_TASK_NAME "synthetic-markov"
#define SYNTH_TASK_VERSION 1
/* Prompt splits. */
#define SYNTH_SPLIT_TRAIN 0
#define SYNTH_SPLIT_HELDOUT 1
/* Most responses per prompt in the preference files (synth.k). Response k of prompt i uses
 * draws from (i * SYNTH_MAX_K + k) * (response_len - 1) on, so the first K responses do
 * not change when K grows. */
#define SYNTH_MAX_K 64

typedef struct {
    int vocab;           /* V >= 2 */
    double *prob;        /* [V*V] prob[a*V + b] = P(next = b | current = a); prob[a*V + 0] = 0 */
    double *cdf;         /* [V*V] running sums of each row of prob; cdf[a*V + V-1] = 1 */
    double *row_entropy; /* [V] entropy of row a in nats */
} SynthTeacher;

/* Build the teacher for (vocab, seed); deterministic in both. Dies (die_user) if vocab is
 * outside [2, SYNTH_MAX_VOCAB].
 * Free with synth_teacher_free. */
void synth_teacher_init(SynthTeacher *t, int vocab, uint64_t seed);
/* Free the arrays and zero *t; NULL and zeroed structs are harmless. */
void synth_teacher_free(SynthTeacher *t);

/* Next token after prev (0 = start state), in [1, V); uses exactly one rng_uniform draw. */
int32_t synth_teacher_sample(const SynthTeacher *t, int prev, Rng *r);
/* log P(next | prev) in nats; -INFINITY for next == SYNTH_EOS. */
double synth_teacher_logprob(const SynthTeacher *t, int prev, int next);
/* Entropy rate of the chain in nats/token: sum over the stationary distribution pi of
 * tokens 1..V-1 of pi(a) * H(row a). Lies in (0, log(V-1)]. */
double synth_teacher_entropy_rate(const SynthTeacher *t);

/* Sample the SFT corpus described by cfg (n_prompts, prompt_len, response_len, vocab_size,
 * seed) with the teacher synth_teacher_init(t, cfg->vocab_size, cfg->seed) into *out:
 * n_responses = n_prompts, response i belongs to prompt i, n_pairs = 0, no scores,
 * vocab_size = cfg->vocab_size. The caller frees *out with prefdata_free. Deterministic in
 * cfg. Dies (die_user) on sizes below 1 or vocab below 2.
 * If entropy is non-NULL it receives the lowest achievable expected SFT loss of this corpus
 * in nats per response token: the mean over every response token (EOS included) of the
 * teacher's entropy at that position given the previous token; EOS is certain (entropy 0)
 * for a model that knows the position. */
void synth_make_corpus(const SynthConfig *cfg, PrefData *out, double *entropy);

/* Store the lowest achievable loss as the root attribute "teacher_entropy" (float64) of an
 * existing prefer file. Dies naming the file on any HDF5 error. */
void synth_write_entropy_attr(const char *path, double entropy);

/* ---------------------------------------------------------------- the task */

typedef struct {
    SynthTeacher teacher;
    double *weight;      /* [V] hidden token weights; weight[SYNTH_EOS] = 0 */
    uint64_t seed;
    int vocab, prompt_len, response_len;
    double logit_scale;  /* of the teacher's logits (SYNTH_LOGIT_SCALE for version 1) */
    double reward_scale, care_sigma, care_indifferent, care_indifferent_scale;
    /* Which prompts the prompt indices of the functions below refer to: index i is prompt
     * prompt_base + i of split `split`. synth_task_init binds the train split, base 0;
     * synth_task_from_file binds the file's split and base; synth_task_bind changes it. */
    int split;
    int64_t prompt_base;
} SynthTask;

/* Build the task of cfg (vocab_size, seed, prompt_len, response_len, reward_scale and the
 * care_* keys), bound to the train split, base 0. Deterministic in cfg. Dies (die_user) on
 * a vocab outside [2, SYNTH_MAX_VOCAB] or lengths below 1. Free with synth_task_free. */
void synth_task_init(SynthTask *t, const SynthConfig *cfg);
/* Free the arrays and zero *t; NULL and zeroed structs are harmless. */
void synth_task_free(SynthTask *t);
/* Bind prompt indices to prompts base, base+1, ... of split (SYNTH_SPLIT_*). */
void synth_task_bind(SynthTask *t, int split, int64_t base);

/* Care c >= 0 of prompt i (see the top of this file); a pure function of the task's seed
 * and care parameters, the bound split and prompt_base + i. */
double synth_care(const SynthTask *t, int64_t i);
/* The prompt_len tokens of prompt i into out[prompt_len] (regenerated from the seed). */
void synth_prompt(const SynthTask *t, int64_t i, int32_t *out);
/* True reward c(x_i) * sum_{j < len} w[tokens[j]] of a response to prompt i. Tokens outside
 * [0, vocab) (a model with a larger vocabulary) have weight 0. */
double synth_reward(const SynthTask *t, int64_t i, const int32_t *tokens, int64_t len);

/* Score every response of d with the true reward: d->response_score (allocated if NULL,
 * owned by d) gets synth_reward(t, response_prompt[r], ...) as float. Prompt p of d must be
 * prompt p of the bound split (synth_check_prompts). */
void synth_score_file_responses(const SynthTask *t, PrefData *d);
/* 0 if every prompt p of d equals synth_prompt(t, p); -1 with a message naming the first
 * mismatch in err otherwise (then cares and optima would belong to other prompts). */
int synth_check_prompts(const SynthTask *t, const PrefData *d, char *err, int errlen);

/* ---------------------------------------------------------------- labels */

typedef struct {
    int best_worst;      /* 0: every pair of a prompt's responses; 1: best against worst */
    double temp;         /* P(i over j) = sigma((r_i - r_j) / temp) */
    double noise;        /* then flipped with this probability */
} SynthLabelSpec;

typedef struct {
    int64_t n_pairs;
    int64_t n_agree;     /* pairs whose chosen response has the strictly higher reward */
    int64_t n_ties;      /* pairs of equal rewards (labelled by a coin flip) */
    int64_t n_flipped;   /* labels flipped by the noise */
    int64_t n_lonely;    /* prompts with fewer than 2 responses: no pairs */
} SynthLabelStats;

/* The label keys of cfg (synth.pairs, synth.label_temp, synth.label_noise). */
SynthLabelSpec synth_label_spec(const SynthConfig *cfg);

/* Replace d's pairs (old ones freed) by pairs drawn from reward[n_responses]: per prompt,
 * its responses (in file order) paired all (i < j, lexicographic) or best vs worst (first
 * argmax, first argmin; if all rewards are equal, the first against the last); each pair
 * labelled by Bradley-Terry on the rewards, then flipped with probability spec->noise.
 * Pairs are grouped by prompt, prompts in order. Randomness: pair j of prompt p uses draws
 * 2j, 2j+1 of the key rng_at(stream key of (seed, stream), p): a pure function of
 * (seed, stream, p, j). st may be NULL. */
void synth_draw_pairs(PrefData *d, const double *reward, const SynthLabelSpec *spec, uint64_t seed,
                      uint64_t stream, SynthLabelStats *st);

/* The preference file of n prompts of `split` (base 0): prompts, K = cfg->k teacher
 * responses each, true rewards as scores, pairs by synth_draw_pairs (stream
 * SYNTH_STREAM_LABELS + split). t is rebound to (split, 0). The caller frees *out. If
 * reward is non-NULL it receives a malloc'd double[n * K] of the exact rewards (caller
 * frees). st may be NULL. */
void synth_make_prefs(SynthTask *t, const SynthConfig *cfg, int split, int64_t n, PrefData *out,
                      double **reward, SynthLabelStats *st);

/* ---------------------------------------------------------------- files */

/* Write the task's root attributes (synth_task, synth_version, synth_seed, synth_vocab_size,
 * synth_logit_scale, synth_prompt_len, synth_response_len, synth_reward_scale,
 * synth_care_sigma, synth_care_indifferent, synth_care_indifferent_scale, synth_split
 * ("train" | "heldout"), synth_prompt_base, synth_kind = kind) to an open file. For
 * writers that copy the task into files of their own (`prefer sample`). */
void synth_put_task_attrs(hid_t file, const SynthTask *t, const char *kind);
/* The same on an existing file (reopened read-write). Dies naming the file on errors. */
void synth_write_task_attrs(const char *path, const SynthTask *t, const char *kind);
/* Rebuild the task from the root attributes of a file made by `prefer synth` (or copied
 * from one), bound to the file's split and prompt base. Returns 0 on success (free *t with
 * synth_task_free); 1 if the file does not carry the synthetic task (no synth_task
 * attribute; *t zeroed, message in err); -1 if it cannot be read or its attributes are
 * malformed or of a newer version (*t zeroed, message in err naming the file). */
int synth_task_from_file(const char *path, SynthTask *t, char *err, int errlen);

/* ---------------------------------------------------------------- the exact optimum */

/* The KL-regularised optimum pi*_beta(y|x) ~ teacher(y|x) exp(r(x,y)/beta) for prompt i, by
 * backward dynamic programming over the response_len-1 free tokens (the last one is EOS):
 *   V_n(a) = 0, V_t(a) = log sum_b P(b|a) exp(c w_b / beta + V_{t+1}(b)),
 *   pi*(b | a, t) = P(b|a) exp(c w_b / beta + V_{t+1}(b) - V_t(a)),
 * then a forward pass over the state distribution from the prompt's last token gives
 * *reward = E_{pi*}[r] and *kl = KL(pi* || teacher) (sequence level, nats). beta > 0;
 * beta = INFINITY gives the teacher (reward = synth_teacher_reward, kl = 0). */
void synth_optimum(const SynthTask *t, int64_t i, double beta, double *reward, double *kl);
/* The teacher's expected true reward on prompt i. */
double synth_teacher_reward(const SynthTask *t, int64_t i);

/* The optimal reward/KL frontier over a set of prompts: with one beta for all of them (the
 * Lagrange multiplier of the mean-KL constraint), find the beta at which the mean KL of
 * pi*_beta equals target_kl (mean KL falls monotonically in beta: bracket it in steps of 8,
 * then the Illinois method, a regula falsi that keeps the bracket, on log KL against
 * log beta), and return the mean reward there. prompts[n] are prompt indices (NULL: 0 .. n-1), n >= 1.
 * Returns 0 when the target was met (|KL - target| <= 1e-9 * max(1, target));
 * target_kl <= 0 gives the teacher (*beta_found = INFINITY, *reward its mean reward);
 * returns 1 when target_kl exceeds the largest mean KL reachable (beta -> 0: the reward
 * maximisers), then *reward and *beta_found are those of the smallest beta tried (1e-12 of
 * the reward scale), the unconstrained maximum. beta_found may be NULL. */
int synth_frontier(const SynthTask *t, const int64_t *prompts, int64_t n, double target_kl,
                   double *reward, double *beta_found);

#endif

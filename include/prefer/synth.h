/* synth.h: the synthetic task: a seeded random Markov "teacher" language and the corpora
 * sampled from it.
 *
 * The teacher is first-order over V tokens. Token 0 (SYNTH_EOS) is reserved: the teacher
 * never emits it, it only ends responses. Row a of the transition matrix (a >= 1) is the
 * softmax of SYNTH_LOGIT_SCALE * N(0,1) logits over tokens 1..V-1, so each token has a few
 * likely successors (learnable, far from uniform). Row 0 is the start state: uniform over
 * 1..V-1, which is how every prompt's first token is drawn.
 *
 * The SFT corpus: n_prompts prompts of prompt_len tokens (a chain from the start state) and
 * one response each of response_len tokens: response_len-1 teacher tokens continuing the
 * chain from the prompt's last token, then SYNTH_EOS.
 */
#ifndef PREFER_SYNTH_H
#define PREFER_SYNTH_H

#include <stdint.h>

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
#define SYNTH_STREAM_CORPUS 2

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

#endif

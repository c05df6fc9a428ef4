/* sample.h: drawing responses from a model: one token (sample_next) and K responses for
 * each of a range of prompts (sample_responses), batched through a KV cache (kv.h).
 *
 * Reproducibility: response k of prompt p (p its index in the dataset) draws its tokens from
 * its own stream, rng_init(&r, seed, p * K + k), one rng_uniform per token (none when greedy),
 * and a sequence's logits do not depend on the rest of the batch (kv.h). So the responses are
 * the same whatever the batch size, the order in which prompts are processed, or the number
 * of MPI ranks the prompts are split over.
 */
#ifndef PREFER_SAMPLE_H
#define PREFER_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "prefer/gpt.h"
#include "prefer/prefdata.h"
#include "prefer/rng.h"

typedef struct {
    double temperature; /* 0 = greedy (argmax; lowest id on ties); else logits / temperature */
    int top_k;          /* keep the top_k largest logits (and ties with the k-th); 0 = off */
    double top_p;       /* then keep the smallest set of most likely tokens with mass >= top_p
                         * (ties with its least likely member kept too); 1 = off */
    int max_len;        /* most tokens per response (also bounded by the context, see below) */
    int eos;            /* token that ends a response (included in it); -1 = none */
    uint64_t seed;
} SampleParams;

/* Floats of scratch that sample_next needs for a vocabulary of V. */
#define SAMPLE_WORK_FLOATS(V) (2 * (size_t)(V))

/* One token from a row of logits (V), as Hugging Face's sampling does it: temperature, then
 * top-k, then top-p (nucleus) filtering, then a draw from the renormalised distribution with
 * one rng_uniform(r) (greedy draws nothing). work: SAMPLE_WORK_FLOATS(V) floats of scratch.
 * Returns a token id in [0, V). Dies on a non-finite logit. */
int sample_next(const float *logits, int V, const SampleParams *sp, Rng *r, float *work);

/* log softmax(logits)[token] at temperature 1, in double. */
double sample_logprob(const float *logits, int V, int token);

/* Called after token t (0-based) of response k of prompt `prompt` has been chosen and stored
 * in the SampleOut, with the raw logits row (V) it was drawn from (the model's, before
 * temperature and filtering): enough for an evaluator to compute full-vocabulary statistics
 * such as KL against a reference model fed the same tokens. The row is only valid during the
 * call. */
typedef void (*SampleTokenHook)(void *ctx, int64_t prompt, int k, int t, const float *logits_row);
/* Called each time a response is complete, with totals of this call so far. */
typedef void (*SampleProgressHook)(void *ctx, int64_t responses_done, int64_t tokens_done);

/* Responses of sample_responses. Response i = (prompt - p_begin) * K + k. Tokens are stored
 * with a fixed stride so that a hook can read them while sampling runs. */
typedef struct {
    /* set by the caller (zero = none) */
    SampleTokenHook on_token;
    SampleProgressHook on_progress;
    void *ctx;            /* passed to both hooks */
    /* filled by sample_responses; free with sample_out_free */
    int64_t p_begin;      /* first prompt */
    int64_t n;            /* responses: (p_end - p_begin) * K */
    int K;
    int stride;           /* sp->max_len: tokens of response i start at tokens[i * stride] */
    int32_t *tokens;      /* (n, stride) */
    float *logp;          /* (n, stride): log p(token) under the model at temperature 1 */
    int32_t *len;         /* (n) tokens in response i, >= 1 */
    int64_t n_tokens;     /* sum of len */
} SampleOut;

/* K responses for each prompt p in [p_begin, p_end) of `prompts` (only its prompts are read),
 * `batch` sequences at a time through one KV cache (slots refilled as responses finish).
 * A response ends with sp->eos (included) or after max(1, min(sp->max_len, context + 1 -
 * prompt length)) tokens: the last token is never fed back, so prompt + response - 1 <=
 * context, as training requires. Dies (die_user) if a prompt is empty or longer than the
 * context, or if eos is not a token of the model. out's hooks are used as set; the rest of
 * *out is overwritten. */
void sample_responses(const Gpt *m, const PrefData *prompts, int64_t p_begin, int64_t p_end, int K,
                      const SampleParams *sp, int batch, SampleOut *out);

/* Free the arrays; keeps the hooks. NULL harmless. */
void sample_out_free(SampleOut *out);

#endif

/* exact.h: exact distributions over an enumerable response space (docs/exact.md).
 *
 * The enumerable mode of the synthetic task (synth.h): with A = synth.vocab_size - 1 and
 * n = synth.response_len - 1, every response is n "free" tokens from 1..A followed by EOS
 * (token 0), so a prompt has exactly A^n responses. Small A and n (e.g. 13 tokens, n = 4:
 * 28561 responses) make every distribution the DPO/DID/iterative-alignment papers talk
 * about computable exactly:
 *   - enum_space_* / enum_response / enum_index: the space and its lexicographic order;
 *   - exact_logp_all: log pi(y | x) of a model for every y, by KV-cache passes over the
 *     prefix tree of the responses (each prefix computed once);
 *   - exact_rewards / exact_teacher_logp_all: the task's true reward and its teacher;
 *   - exact_normalize ... exact_optimum: distribution helpers on arrays of log-probs.
 *
 * The mass caveat: a model's sequence probabilities restricted to the space can sum to less
 * than 1 (EOS too early, tokens outside 1..A, EOS late). exact_logp_all returns the model's
 * own (unnormalised) sequence log-probs; exact_normalize gives the distribution over the
 * space and the log of the mass it had. Every divergence here is between distributions
 * normalised over the space.
 *
 * Does not: read files, talk MPI, or sample (exact_sample_index inverts a CDF for a caller's
 * uniform draw). `prefer exact` (src/exact/exact_cmd.c) is the command built on this.
 */
#ifndef PREFER_EXACT_H
#define PREFER_EXACT_H

#include <stdint.h>

#include "prefer/gpt.h"
#include "prefer/synth.h"

/* Default of exact.max_responses: most responses per prompt the space may have. */
#define EXACT_DEFAULT_MAX_RESPONSES 100000

typedef struct {
    int alphabet;   /* A: the free tokens are 1..A (0..A-1 when all_tokens) */
    int len;        /* n: free tokens per response, then EOS */
    int64_t n;      /* A^len responses */
    int all_tokens; /* 0 (enum_space_init): tokens 1..A, then EOS. 1 (enum_space_init_all,
                     * for tests): tokens 0..A-1 and no final EOS, so that the space is every
                     * token string of length len and a model's probabilities sum to 1 */
} EnumSpace;

/* The enumerable space of task t: alphabet = t->vocab - 1, len = t->response_len - 1.
 * Dies (die_user, naming synth.vocab_size, synth.response_len and exact.max_responses) if
 * A^len > max_responses or the task cannot be enumerated (vocab < 2). */
void enum_space_init(EnumSpace *s, const SynthTask *t, int64_t max_responses);
/* Test-only space: every string of len tokens over 0..vocab-1 (all_tokens = 1, no EOS).
 * Dies like enum_space_init when vocab^len > max_responses. */
void enum_space_init_all(EnumSpace *s, int vocab, int len, int64_t max_responses);
/* Tokens of one response: len + 1 (the final EOS), or len when all_tokens. */
int enum_tokens(const EnumSpace *s);
/* Response idx (in [0, n), lexicographic: the first token is the most significant digit)
 * into out[enum_tokens(s)]. Dies on an index out of range. */
void enum_response(const EnumSpace *s, int64_t idx, int32_t *out);
/* The index of a response of ntok tokens, or -1 if it is not in the space (wrong length,
 * a token outside the alphabet, no final EOS). */
int64_t enum_index(const EnumSpace *s, const int32_t *tokens, int64_t ntok);

/* ---------------------------------------------------------------- model and task */

/* log pi(y | prompt) for every y of the space into out[s->n] (double: the sum over y's
 * tokens, the final EOS included, of log softmax of the model's logits, each in double,
 * added in token order). Computed with KV-cache steps (kv.h) over the prefix tree of the
 * space: each prefix of the first d tokens is one cache slot (d from the cost model of
 * EXACT_STEP_ROWS; slots in chunks within EXACT_WORK_BYTES), and all slots walk the rest of
 * the tree depth-first in lockstep, so every node of the tree is computed once. With
 * several OpenMP threads each walks its own block of prefixes with its own cache (the
 * kernels inside run single-threaded: no barrier per step). kv.h makes each slot's logits
 * bit-identical whatever the other slots, their number and the thread count: out is
 * deterministic and independent of the batching and the threads; it equals a
 * token-by-token KV pass over each response alone bit for bit, and gpt_forward to float
 * rounding. prompt_len >= 1; the model's context must hold prompt_len + s->len positions
 * (dies otherwise). Allocates its own work memory (about EXACT_WORK_BYTES at most). m is
 * only read (its training activations are not used). */
void exact_logp_all(Gpt *m, const int32_t *prompt, int prompt_len, const EnumSpace *s, double *out);
/* exact_logp_all's estimate of the fixed cost of one cache step, in rows of work: it picks the
 * slot depth d that minimises rows / threads + EXACT_STEP_ROWS * steps (measured on the enum-base model,
 * 2 layers, C = 64: a step costs ~18 us beyond its rows, a row ~11 us; docs/exact.md). */
#define EXACT_STEP_ROWS 2.0
/* Memory budget of exact_logp_all's cache and buffers. */
#define EXACT_WORK_BYTES ((size_t)256 << 20)
/* For tests (process-wide, not thread-safe): exact_logp_all's memory budget (0 = the
 * default EXACT_WORK_BYTES; a small one forces several chunks of slots) and slot depth (-1 =
 * the cost model's; values above the response length are ignored). */
void exact_set_limits(size_t work_bytes, int slot_depth);

/* True rewards r(x_i, y) = care(x_i) * sum_t w[y_t] of every y of the space into out[s->n]
 * (the values synth_reward gives). */
void exact_rewards(const SynthTask *t, int64_t i, const EnumSpace *s, double *out);
/* The teacher's log-probability of every y of the space after prompt i (sum over the free
 * tokens of synth_teacher_logprob from the prompt's last token; the final EOS, which the task
 * appends, costs nothing). Over the standard space it sums to 1: the teacher's distribution. */
void exact_teacher_logp_all(const SynthTask *t, int64_t i, const EnumSpace *s, double *out);

/* ---------------------------------------------------------------- distributions
 * Arrays of n log-probabilities, n >= 1. -INFINITY entries are zero probabilities.
 * "normalised" means logsumexp = 0; the helpers do not check it. All sums are sequential in
 * index order (deterministic). */

/* log sum_y exp(x[y]) (max-shifted). -INFINITY if every entry is. */
double exact_logsumexp(const double *x, int64_t n);
/* In place: x -= logsumexp(x). Returns the logsumexp before (the log of the mass).
 * Dies if every entry is -INFINITY or any is NaN or +INFINITY. */
double exact_normalize(double *x, int64_t n);
/* Entropy -sum p log p of normalised lp, in nats. */
double exact_entropy(const double *lp, int64_t n);
/* KL(p || q) = sum p (log p - log q) of normalised lp, lq: +INFINITY where q = 0 < p. Tiny
 * negative values from rounding are returned as they are. */
double exact_kl(const double *lp, const double *lq, int64_t n);
/* ||p - q||_1 of normalised lp, lq (in [0, 2]). */
double exact_l1(const double *lp, const double *lq, int64_t n);
/* E_p[f] of normalised lp. */
double exact_expect(const double *lp, const double *f, int64_t n);
/* The differential information distribution q ~ pi / pi_ref: out = normalised(lp - lp_ref)
 * (lp, lp_ref need not be normalised: their normalisers cancel). out may alias lp. Returns
 * the logsumexp before normalising. y with pi_ref(y) = 0 < pi(y) make it die. */
double exact_did(const double *lp, const double *lp_ref, int64_t n, double *out);
/* The KL-regularised optimum pi* ~ pi_ref exp(r / beta): out = normalised(lp_ref + r/beta)
 * (lp_ref need not be normalised). beta > 0; INFINITY gives pi_ref normalised. out may
 * alias lp_ref. Returns the logsumexp before normalising. */
double exact_optimum(const double *lp_ref, const double *r, double beta, int64_t n, double *out);
/* Index drawn from normalised lp by inverting its CDF at u in [0, 1): the first y with
 * cumulative probability > u (the last y with p > 0 if rounding leaves u beyond the sum). */
int64_t exact_sample_index(const double *lp, int64_t n, double u);

#endif

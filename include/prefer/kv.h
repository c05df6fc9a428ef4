/* kv.h: incremental (KV-cache) inference for the GPT-2 model of gpt.h.
 *
 * A GptKV holds, for each of B sequence slots, the keys and values of every layer at every
 * position fed so far, so that one more token costs one position's work: the block's
 * matrix products on one row and attention of that row against the cached positions.
 * The arithmetic is GPT-2's, as in gpt_forward (its LayerNorm, GELU and residual kernels from
 * ops.h on the gathered rows), so the logits agree with the full forward to float rounding
 * (tested to 1e-5 in log-probability).
 *
 * Slots are independent: each has its own position, any subset may step at once, and a
 * slot's logits are bit-identical whatever the other slots hold, how many there are, and the
 * thread count (the matrix products are kv.c's own, not cblas_sgemm, whose rows change with
 * M: see kv.c). A step at position p of a slot
 * forgets that slot's positions >= p (so a new sequence starts by stepping at position 0).
 *
 * Memory: the cache is 2 * L * B * Tmax * C floats plus per-step scratch for B rows, all
 * allocated by gpt_kv_new; gpt_kv_step never allocates. The GptKV does not keep a pointer
 * to the model's parameters: pass the same (or a same-shaped) model to every step.
 */
#ifndef PREFER_KV_H
#define PREFER_KV_H

#include <stdint.h>

#include "prefer/gpt.h"

typedef struct GptKV GptKV; /* private */

/* Cache and scratch for B sequences of up to m->d.context tokens each, all slots empty.
 * Dies on B < 1 or out of memory. Free with gpt_kv_free. */
GptKV *gpt_kv_new(const Gpt *m, int B);
void gpt_kv_free(GptKV *kv); /* NULL harmless */

/* Empty every slot (the next step of each slot must be at position 0). */
void gpt_kv_reset(GptKV *kv);

/* Slots B and the number of positions slot b holds (its next position). */
int gpt_kv_batch(const GptKV *kv);
int gpt_kv_len(const GptKV *kv, int b);

/* Feed one token to every active slot.
 *   tokens (B) int32 in [0, V): the token of slot b
 *   pos    (B): its position, 0 <= pos[b] <= gpt_kv_len(kv, b) and pos[b] < Tmax
 *   active (B) uint8: 0 skips slot b (its cache, length and logits row are not touched);
 *          NULL = all active
 *   out logits (B, V): next-token logits (before softmax) for the active slots; rows of
 *          inactive slots are left as they were. May be NULL to skip the LM head (e.g.
 *          while feeding a prompt).
 * Dies on a token or position out of range. */
void gpt_kv_step(const Gpt *m, GptKV *kv, const int32_t *tokens, const int *pos, const uint8_t *active,
                 float *logits);

#endif

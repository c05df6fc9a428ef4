/* rng.h: a seeded, counter-based random number generator.
 *
 * A stream is (seed, stream id); draw i of a stream is a pure function of (seed, stream, i)
 * (SplitMix64 finaliser over the mixed triple), so a run is reproducible, a stream can be
 * saved as two integers in a checkpoint, and any draw can be recomputed without replaying.
 */
#ifndef PREFER_RNG_H
#define PREFER_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t key;     /* seed mixed with the stream id */
    uint64_t counter; /* index of the next draw */
} Rng;

void rng_init(Rng *r, uint64_t seed, uint64_t stream);
/* Draw i of the stream keyed by key, without touching any state. */
uint64_t rng_at(uint64_t key, uint64_t i);
uint64_t rng_u64(Rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform(Rng *r);
/* Uniform integer in [0, n); n > 0. Unbiased (rejection). */
uint64_t rng_below(Rng *r, uint64_t n);
/* Standard normal (Box-Muller, both halves derived from one counter value pair). */
double rng_normal(Rng *r);
/* Fisher-Yates shuffle of n int64 values. */
void rng_shuffle_i64(Rng *r, int64_t *a, int64_t n);

#endif

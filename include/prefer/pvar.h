/* pvar.h: preference variance (PVar, Guo et al. 2025) of each prompt, and prompt selection.
 *
 * A prompt with K >= 2 responses and a value h_i per response has
 *     p_ij = sigma(c (h_i - h_j)),   PVar = mean over the K(K-1) ordered pairs i != j of (p_ij - 1/2)^2,
 * where c is the coefficient: beta with model-based values (implicit rewards
 * h_i = log pi(y_i) - log pi_ref(y_i)), or a scale with offline scores (h_i = s_i).
 * Mathematically PVar lies in [0, 1/4); it is computed as tanh(c dh / 2)^2 / 4 per pair,
 * which is exact near 0 and never overflows, and rounds to exactly 1/4 in double once every
 * |c (h_i - h_j)| exceeds about 37. A policy equal to its reference has h = 0: PVar 0 for
 * every prompt (correct: it has no preference yet).
 *
 * Selection picks a subset of the prompts from their PVar, deterministically: the result is
 * a pure function of the arguments, so every rank computes the same set whatever the number
 * of ranks. No MPI, no model, no files.
 */
#ifndef PREFER_PVAR_H
#define PREFER_PVAR_H

#include <stdint.h>

#include "prefer/prefdata.h"

/* Rng stream (under the seed) of the random and proportional selections. */
#define PVAR_RNG_STREAM 0x50566172u /* "PVar" */

/* PVar of one prompt from the values h[K] of its responses and the coefficient beta (see
 * above). K < 2 gives NaN; a NaN in h gives NaN. */
double pvar_of(const double *h, int K, double beta);

/* PVar of every prompt of d: h[d->n_responses] holds one value per response (responses of a
 * prompt need not be adjacent; a prompt's responses are taken in file order), pvar[d->n_prompts]
 * is written: NaN for prompts with fewer than 2 responses. Allocates a scratch index of
 * n_responses + n_prompts + 1 integers (freed before returning). */
void pvar_all(const PrefData *d, const double *h, double beta, double *pvar);

/* Select prompts from pvar[n]. Only valid prompts, those with a finite PVar, are ever
 * selected (NaN marks a prompt with fewer than 2 responses). With n_valid of them, every mode
 * but proportional's fill-up below picks k = ceil(frac * n_valid) (k = round(frac * n_valid)
 * when frac * n_valid is within 1e-9 relative of an integer, so 0.7 * 10 gives 7, not 8):
 *   "top"          the k largest PVar; ties go to the lower prompt index
 *   "bottom"       the k smallest PVar; ties go to the lower prompt index
 *   "random"       a uniformly random k-subset of the valid prompts: prompt i draws
 *                  u_i = rng_at(rng_at(key, round), i) (key of rng stream (seed,
 *                  PVAR_RNG_STREAM)) and the k smallest draws win; the PVar values do not
 *                  matter, and a smaller frac gives a subset of a larger one
 *   "proportional" sampling without replacement with weights w_i = PVar_i^(1/temperature)
 *                  (Efraimidis-Spirakis: the k largest u_i^(1/w_i), compared in log space as
 *                  log(-log u_i) - log(PVar_i)/temperature, smallest first; the same u_i as
 *                  random). temperature -> 0 approaches top, temperature -> inf random. Prompts
 *                  with PVar 0 have weight 0 and come after every positive one, in the random
 *                  order of their draws.
 * seed and round are used by random and proportional only (round: e.g. the epoch of a
 * curriculum that reselects). frac must be in (0, 1]; temperature > 0 (proportional).
 * Writes the selected prompt indices to out_prompts (room for n), sorted ascending, and
 * returns how many (0 when no prompt is valid); -1 on a bad mode, frac, temperature or n < 0
 * (nothing written). Allocates scratch of n entries (freed before returning). */
int64_t pvar_select(const double *pvar, int64_t n, const char *mode, double frac, double temperature, uint64_t seed,
                    uint64_t round, int64_t *out_prompts);

/* Rank of every prompt by PVar: rank[i] = 0 for the largest, ties to the lower index; prompts
 * with a non-finite PVar get -1. Returns the number of valid prompts. Allocates scratch of n. */
int64_t pvar_rank(const double *pvar, int64_t n, int64_t *rank);

#endif

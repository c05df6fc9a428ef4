/* reflogp.h: reference log-probabilities, computed once and cached in the dataset file.
 *
 * For every response y of a dataset: log pi_ref(y | x), the sum over y's tokens, in double.
 * The cache lives in the dataset file as /ref_logp/<hash> (float64[R]), where <hash> is the
 * content hash of the reference model's parameters (reflogp_model_hash). Each entry
 * carries attributes data_hash (hash of the prompts and responses it was computed on),
 * n_responses and reference (the checkpoint path, for humans). A cache whose data_hash
 * does not match the file's current contents is refused.
 */
#ifndef PREFER_REFLOGP_H
#define PREFER_REFLOGP_H

#include <stdint.h>

#include "prefer/gpt.h"
#include "prefer/prefdata.h"
#include "prefer/prefshard.h"

/* Hex content hash (16 hex digits + NUL) of the model's dimensions and parameters. */
void reflogp_model_hash(const Gpt *m, char out[17]);
/* Hex hash of a dataset's prompts, responses and their links. */
void reflogp_data_hash(const PrefData *d, char out[17]);

/* log pi(y_i | x_i) for responses [0, R). The responses of a prompt are forwarded together,
 * the prompt once: packs prompt | y_1 | ... | y_k, each branch hiding the ones before it
 * (at most max(128, the longest prompt + response - 1) tokens). This rank computes whole
 * batches of `batch` packs (the same batches for any number of ranks, so the values are
 * too), a contiguous run holding ~1/world of the tokens; the full array is then summed over
 * ranks so every rank holds all of it (out is overwritten). The model needs max_batch >=
 * batch and max_seq >= reflogp_seq_len(d). Dies on a response that does not fit the
 * model's context. */
void reflogp_compute(Gpt *m, const PrefData *d, int rank, int world, int batch, double *out);

/* The sequence length (max_seq) a model needs for reflogp_compute on d: its longest pack. */
int reflogp_seq_len(const PrefData *d);

/* Model FLOPs of reflogp_compute over the whole dataset with m's shape (over all ranks,
 * padding included; gpt_flops_forward): the cost of a pass, for estimates. */
double reflogp_pass_flops(const PrefData *d, int batch, const Gpt *m);

/* The same for a sharded dataset: each rank reads only the tokens of its responses. */
void reflogp_compute_shard(Gpt *m, PrefShard *s, int rank, int world, int batch, double *out);

/* Look up /ref_logp/<model_hash> in path. Returns 1 and fills out[R] when present and
 * valid; 0 when absent (names of other entries present are listed in err); -1 when present
 * but unusable (wrong length, data_hash mismatch, non-finite values), with the reason in err. */
int reflogp_cache_read(const char *path, const char *model_hash, const PrefData *d, double *out, char *err,
                       int errlen);

/* Add (or replace) /ref_logp/<model_hash> in path without ever leaving a half-written
 * dataset file: the file is copied to path.tmp, the entry added there, fsynced, renamed.
 * Rank 0 only. Dies naming the file on failure. */
void reflogp_cache_write(const char *path, const char *model_hash, const PrefData *d, const double *v,
                         const char *reference);

#endif

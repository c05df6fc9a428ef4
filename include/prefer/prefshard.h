/* prefshard.h: sharded reading of a preference dataset: every rank reads only the tokens
 * of its own part of each global batch, with one hyperslab read per token dataset.
 *
 * prefshard_open is collective: rank 0 validates the whole file (prefdata_read_checked,
 * the only full read), and the verdict, the message and the small metadata arrays
 * (offsets, response prompts, scores, pairs) are broadcast, so every rank fails or
 * succeeds together with the same message and sees the metadata that was validated.
 * Then every rank opens the file read-only (sec2 driver) and keeps the two token
 * datasets open. prefshard_gather is per rank (not collective): it reads the tokens of
 * the prompts and responses it is given into a small self-contained PrefData.
 *
 * Memory per rank: the metadata (8 bytes per prompt, 20-24 per response, 16 per pair), the
 * chunks HDF5 decompressed (cached up to 32 MiB per token dataset) and the largest
 * gather's scratch. Rank 0 holds the whole file for the duration of the validation.
 *
 * Typical use (the trainer):
 *   PrefShard s;  PrefData local = {0};  char err[1024];
 *   if (prefshard_open(path, vocab, &s, err, sizeof err)) die_user("%s", err); // all ranks
 *   ... s.meta.pair_chosen etc. decide each rank's pairs ...
 *   if (prefshard_gather_responses(&s, n, ids, &local, err, sizeof err)) die_user("%s", err);
 *   ... local.response_prompt[j] is the local prompt of local response j ...
 *   prefdata_free(&local);  prefshard_close(&s);
 */
#ifndef PREFER_PREFSHARD_H
#define PREFER_PREFSHARD_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "prefer/prefdata.h"

/* Size-and-pointer of one of the caller's local arrays, so that gathering into the same
 * PrefData again reuses (grows, never shrinks) its buffers. Private to prefshard.c. */
typedef struct {
    void *ptr;
    size_t cap;
} PrefShardBuf;

typedef struct {
    /* Every array of the file except the tokens: counts, vocab_size, prompt_offsets,
     * response_offsets, response_prompt, response_score (NULL if the file has none),
     * pair_chosen, pair_rejected. prompt_tokens and response_tokens are NULL. Owned. */
    PrefData meta;
    hid_t file, prompt_ds, response_ds; /* open for hyperslab reads */
    char *path;                         /* owned copy, for messages */
    /* Token bytes this rank transferred from the file in gathers: 4 bytes per distinct
     * token of each call (a token requested twice in one call is read once). The
     * validation read in prefshard_open is not counted. On disk HDF5 reads whole
     * compressed chunks (64 Ki tokens in prefer's files); chunks are cached. */
    int64_t bytes_read;
    int64_t gathers;       /* calls of prefshard_gather (and _responses) */
    double gather_seconds; /* wall time inside those calls */
    /* Private scratch, grow-only. */
    int64_t *sorted;       /* the requested ids, sorted */
    size_t sorted_cap;
    int64_t *rng;          /* merged token runs: begin, end, position in tok */
    size_t rng_cap;
    int32_t *tok;          /* the union of the runs, as read */
    size_t tok_cap;
    int64_t *look;         /* (id, index) pairs for prompt lookups */
    size_t look_cap;
    int64_t *pid;          /* prompt ids built by prefshard_gather_responses */
    size_t pid_cap;
    PrefShardBuf lbuf[6];  /* the local PrefData's arrays of the last gather */
} PrefShard;

/* Collective over all ranks (dist.h; at one rank, or without dist_init, just local).
 * Rank 0 reads and validates the whole file; if vocab_limit > 0 the file's vocab_size must
 * be <= vocab_limit. Every rank then opens the file read-only and checks that the token
 * datasets have the validated lengths (a rank on a node that cannot see the file fails
 * here). Returns 0 on every rank, or -1 on every rank with the same message in err (naming
 * the file, the dataset and, for a failure on another rank than 0, the rank and host), *s
 * then holds nothing to free. Dies only on MPI failure or out of memory. */
int prefshard_open(const char *path, int64_t vocab_limit, PrefShard *s, char *err, int errlen);

/* Not collective. Read the tokens of n_p prompts and n_r responses (ids into the file;
 * duplicates and n = 0 allowed; ids may be NULL when n is 0) with one selection per
 * token dataset, into local, renumbered:
 *   local prompt i   = file prompt prompt_ids[i],     i in [0, n_p)
 *   local response j = file response response_ids[j], j in [0, n_r)
 * local->n_prompts = n_p, n_responses = n_r, n_pairs = 0 (pair arrays NULL), vocab_size
 * and response_score (NULL if the file has none) as in the file; offsets start at 0.
 * local->response_prompt[j] is the local index of the first i with prompt_ids[i] equal to
 * response j's file prompt, or -1 if that prompt is not among prompt_ids (then local is
 * not a valid PrefData for prefdata_validate; use prefshard_gather_responses).
 * local must be zeroed before its first use, or hold a previous gather or a PrefData
 * from prefdata_read; its arrays are reused (grown with realloc, never shrunk). Caller
 * frees it with prefdata_free. An id out of range dies (a bug of the caller). Returns 0,
 * or -1 with a message naming the file and dataset if HDF5 cannot read the tokens or a
 * token read is out of [0, vocab_size) (the file changed after validation); local is then
 * left with n_prompts = n_responses = 0 (its buffers kept). */
int prefshard_gather(PrefShard *s, int64_t n_p, const int64_t *prompt_ids, int64_t n_r,
                     const int64_t *response_ids, PrefData *local, char *err, int errlen);

/* As prefshard_gather, with the prompts those responses answer: local prompt i is the
 * i-th distinct prompt in order of first appearance among the responses, so local is a
 * valid PrefData (every response_prompt in [0, local->n_prompts)). */
int prefshard_gather_responses(PrefShard *s, int64_t n_r, const int64_t *response_ids,
                               PrefData *local, char *err, int errlen);

/* Close the file and free everything; NULL and a zeroed or closed shard are harmless.
 * Not collective. */
void prefshard_close(PrefShard *s);

#endif

/* prefdata.h: preference datasets in HDF5 (format "prefer.prefdata", docs/formats.md).
 *
 *   /prompts/tokens int32[Tp]   /prompts/offsets int64[P+1]
 *   /responses/tokens int32[Tr] /responses/offsets int64[R+1] /responses/prompt int64[R]
 *   /responses/score float32[R]           optional
 *   /pairs/chosen int64[N] /pairs/rejected int64[N]   indices into /responses (N may be 0)
 * Root attributes: format="prefer.prefdata", version=1, producer, vocab_size (int64),
 * config (the effective config text, may be empty), tokenizer (optional: the identity of the
 * tokenizer that made the token ids, bpe_identity; absent for token-level data).
 *
 * A supervised (SFT) corpus is the same format with one response per prompt and no pairs.
 */
#ifndef PREFER_PREFDATA_H
#define PREFER_PREFDATA_H

#include <stdint.h>

#define PREFDATA_FORMAT "prefer.prefdata"
#define PREFDATA_VERSION 1

typedef struct {
    int64_t n_prompts, n_responses, n_pairs;
    int64_t vocab_size;
    int32_t *prompt_tokens;   /* [prompt_offsets[n_prompts]] */
    int64_t *prompt_offsets;  /* [n_prompts+1], starts at 0, non-decreasing */
    int32_t *response_tokens; /* [response_offsets[n_responses]] */
    int64_t *response_offsets;/* [n_responses+1] */
    int64_t *response_prompt; /* [n_responses] in [0, n_prompts) */
    float *response_score;    /* [n_responses] or NULL */
    int64_t *pair_chosen;     /* [n_pairs] in [0, n_responses) */
    int64_t *pair_rejected;   /* [n_pairs] */
    char *tokenizer;          /* malloc'd tokenizer identity ("gpt2-bpe:..."), or NULL = none */
} PrefData;

/* Check that d is consistent (offsets monotone from 0, ids < vocab_size, indices in
 * range, chosen != rejected and same prompt). Returns 0, or -1 with a message in err. */
int prefdata_validate(const PrefData *d, char *err, int errlen);

/* Write d to path (created or truncated), chunked and deflate-compressed, with the
 * format/version/producer attributes, config_text (may be NULL) and, if d->tokenizer is not
 * NULL, the "tokenizer" attribute. Validates first and
 * dies on invalid data or any HDF5 error, naming the file. Writes to path.tmp, fsyncs,
 * renames, so a reader never sees a half-written file. */
void prefdata_write(const char *path, const PrefData *d, const char *config_text);

/* Read and validate the whole file (with its "tokenizer" attribute into d->tokenizer, if
 * present as a string). If vocab_limit > 0 the file's vocab_size must be
 * <= vocab_limit (the model's). Returns 0, or -1 with a message naming the file and the
 * dataset or attribute in err (nothing leaks; *d is zeroed). */
int prefdata_read_checked(const char *path, int64_t vocab_limit, PrefData *d, char *err, int errlen);
/* As above but dies (die_user) with the message. */
void prefdata_read(const char *path, int64_t vocab_limit, PrefData *d);

/* Free arrays and the tokenizer string; NULL and zeroed structs are harmless. A PrefData
 * built by hand must start zeroed (memset or = {0}) so that unused fields are NULL. */
void prefdata_free(PrefData *d);

#endif

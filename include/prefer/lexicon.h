/* lexicon.h: a word-list sentiment reward (AFINN-165, as the npm package `sentiment` ships it).
 *
 * A Lexicon maps words to scores (AFINN: integers -5..5) and optionally holds a set of
 * negators. lexicon_score reproduces the `score` of `sentiment`'s analyze() (lib/tokenize.js,
 * lib/index.js, languages/en/scoring-strategy.js of sentiment 5.0.2):
 *   1. lowercase (ASCII A-Z and Latin-1 U+00C0..U+00DE except U+00D7; JavaScript lowercases
 *      all of Unicode, which differs only on words that are not in AFINN but for "naive"
 *      with a diaeresis, the one non-ASCII entry);
 *   2. replace "\n" and each of  . , / # ! ? $ % ^ & * ; : { } = _ ` " ~ ( )  by a space;
 *   3. replace every run of two or more whitespace characters (JavaScript's \s, Unicode
 *      spaces included) by one space, trim whitespace at both ends, split on the space
 *      character (a lone tab between two words stays inside one token, as in the package);
 *   4. score = sum over tokens found in the word list of their score, negated when the
 *      token before is a negator ("not", "don't", ...).
 * The score is a raw sum, not normalised by length (the package's `comparative` is score /
 * tokens; lexicon_score returns the token count so a caller can form it).
 * Does not: stem, handle emoji (not in labels.json), or match multi-word entries (the
 * package cannot either: its tokens never contain a space).
 */
#ifndef PREFER_LEXICON_H
#define PREFER_LEXICON_H

#include <stddef.h>
#include <stdint.h>

typedef struct Lexicon Lexicon;

/* Load a lexicon. path is either a JSON file {"word": score, ...} (no negators), or a
 * directory holding labels.json (the word list) and, if present, negators.json
 * ({"not": 1, ...}: the keys with a true or non-zero value negate the next word): the
 * layout of the package's languages/en folder. Returns 0 and *out, or -1 with a message in
 * err naming the file and the problem (missing, malformed JSON at line:column, a score that
 * is not a number). Nothing leaks on failure. */
int lexicon_load(const char *path, Lexicon **out, char *err, int errlen);
/* The same, dying (die_user) with the message. */
Lexicon *lexicon_load_or_die(const char *path);
/* From JSON texts in memory (no NUL needed); negators may be NULL. names are only used in
 * messages. Same returns as lexicon_load. */
int lexicon_load_json(const char *labels, size_t labels_len, const char *labels_name, const char *negators,
                      size_t negators_len, const char *negators_name, Lexicon **out, char *err, int errlen);
void lexicon_free(Lexicon *lx); /* NULL harmless */

/* Number of words, and of negators. */
size_t lexicon_n_words(const Lexicon *lx);
size_t lexicon_n_negators(const Lexicon *lx);
/* Score of one word exactly as given (no lowercasing); 0 and *found = 0 if absent. found may
 * be NULL. */
double lexicon_word(const Lexicon *lx, const char *word, size_t n, int *found);

/* The sentiment score of text[0..n) (any bytes; see the header comment). If n_tokens is not
 * NULL it receives the package's token count (1 for an empty text, as "".split(" ")). */
double lexicon_score(const Lexicon *lx, const char *text, size_t n, size_t *n_tokens);

/* The score of token ids decoded with a GPT-2 BPE tokenizer (bpe.h), tokens equal to eot
 * (>= 0) left out, so "<|endoftext|>" is not text. An id outside the tokenizer's vocabulary
 * dies naming what. */
struct Bpe;
double lexicon_score_ids(const Lexicon *lx, const struct Bpe *bpe, const int32_t *ids, size_t n, int eot);
/* The decoded text of ids (eot left out), malloc'd and NUL-terminated, *len bytes (len may be
 * NULL). */
char *lexicon_decode(const struct Bpe *bpe, const int32_t *ids, size_t n, int eot, size_t *len);

#endif

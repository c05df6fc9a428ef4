/* lexicon.c: the AFINN word-list sentiment score of the npm package `sentiment` (lexicon.h).
 *
 * Does: load {word: score} (and optional negators) with jansson into an open-addressing hash
 * table of byte strings; tokenize a text the way sentiment's lib/tokenize.js does and sum the
 * scores, negating a word that follows a negator (its English scoring strategy).
 * Does not: run JavaScript, normalise by length, or know any other language's rules.
 */
#include "prefer/lexicon.h"
#include "prefer/bpe.h"
#include "prefer/util.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char *word; /* NULL = empty slot */
    size_t len;
    double score;
} LexSlot;

typedef struct {
    LexSlot *slot;
    size_t cap, n; /* cap a power of two, n <= cap / 2 */
} LexTable;

struct Lexicon {
    LexTable words, negators;
};

static uint64_t lex_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static LexSlot *table_find(const LexTable *t, const char *s, size_t n)
{
    if (!t->cap)
        return NULL;
    for (size_t i = lex_hash(s, n) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        LexSlot *e = &t->slot[i];
        if (!e->word)
            return NULL;
        if (e->len == n && !memcmp(e->word, s, n))
            return e;
    }
}

static void table_init(LexTable *t, size_t n)
{
    t->cap = 16;
    while (t->cap < 2 * n + 2)
        t->cap *= 2;
    t->slot = xcalloc(t->cap, sizeof(LexSlot));
    t->n = 0;
}

/* keys are unique (jansson objects), so a plain insert */
static void table_put(LexTable *t, const char *s, size_t n, double score)
{
    size_t i = lex_hash(s, n) & (t->cap - 1);
    while (t->slot[i].word)
        i = (i + 1) & (t->cap - 1);
    t->slot[i].word = xmalloc(n + 1);
    memcpy(t->slot[i].word, s, n);
    t->slot[i].word[n] = 0;
    t->slot[i].len = n;
    t->slot[i].score = score;
    t->n++;
}

static void table_free(LexTable *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slot[i].word);
    free(t->slot);
    t->slot = NULL;
    t->cap = t->n = 0;
}

void lexicon_free(Lexicon *lx)
{
    if (!lx)
        return;
    table_free(&lx->words);
    table_free(&lx->negators);
    free(lx);
}

/* Parse an object of word -> number (negators: a number or a boolean; kept if true/non-zero). */
static int parse_table(const char *buf, size_t n, const char *name, int negators, LexTable *t, char *err, int errlen)
{
    json_error_t je;
    json_t *j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        snprintf(err, (size_t)errlen, "%s:%d:%d: %s", name, je.line, je.column, je.text);
        return -1;
    }
    if (!json_is_object(j)) {
        snprintf(err, (size_t)errlen, "%s: expected a JSON object {\"word\": %s, ...}", name,
                 negators ? "1" : "score");
        json_decref(j);
        return -1;
    }
    table_init(t, json_object_size(j));
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        double s;
        if (json_is_number(v))
            s = json_number_value(v);
        else if (negators && json_is_boolean(v))
            s = json_is_true(v);
        else {
            snprintf(err, (size_t)errlen, "%s: the value of \"%s\" is not a number", name, k);
            json_decref(j);
            table_free(t);
            return -1;
        }
        if (negators && s == 0)
            continue;
        table_put(t, k, strlen(k), s);
    }
    json_decref(j);
    return 0;
}

int lexicon_load_json(const char *labels, size_t labels_len, const char *labels_name, const char *negators,
                      size_t negators_len, const char *negators_name, Lexicon **out, char *err, int errlen)
{
    Lexicon *lx = xcalloc(1, sizeof *lx);
    if (parse_table(labels, labels_len, labels_name, 0, &lx->words, err, errlen) != 0) {
        lexicon_free(lx);
        return -1;
    }
    if (negators && parse_table(negators, negators_len, negators_name, 1, &lx->negators, err, errlen) != 0) {
        lexicon_free(lx);
        return -1;
    }
    *out = lx;
    return 0;
}

int lexicon_load(const char *path, Lexicon **out, char *err, int errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, (size_t)errlen, "%s: %s (a lexicon is labels.json of the npm package sentiment, or its "
                 "languages/en folder; scripts/sentiment-data.sh fetches it)", path, strerror(errno));
        return -1;
    }
    char *lpath, *npath = NULL;
    if (S_ISDIR(st.st_mode)) {
        lpath = xasprintf("%s/labels.json", path);
        npath = xasprintf("%s/negators.json", path);
        if (!util_file_exists(npath)) {
            free(npath);
            npath = NULL;
        }
    } else {
        lpath = xstrdup(path);
    }
    size_t ln = 0, nn = 0;
    char *lb = util_read_file(lpath, (size_t)1 << 30, &ln, err, errlen), *nb = NULL;
    int rc = -1;
    if (lb && (!npath || (nb = util_read_file(npath, (size_t)1 << 30, &nn, err, errlen))))
        rc = lexicon_load_json(lb, ln, lpath, nb, nn, npath, out, err, errlen);
    free(lb);
    free(nb);
    free(lpath);
    free(npath);
    return rc;
}

Lexicon *lexicon_load_or_die(const char *path)
{
    Lexicon *lx;
    char err[1024];
    if (lexicon_load(path, &lx, err, sizeof err) != 0)
        die_user("lexicon: %s", err);
    return lx;
}

size_t lexicon_n_words(const Lexicon *lx) { return lx->words.n; }
size_t lexicon_n_negators(const Lexicon *lx) { return lx->negators.n; }

double lexicon_word(const Lexicon *lx, const char *word, size_t n, int *found)
{
    const LexSlot *e = table_find(&lx->words, word, n);
    if (found)
        *found = e != NULL;
    return e ? e->score : 0.0;
}

/* Length in bytes of the JavaScript \s character starting at s[0..n), or 0 if none:
 * \t \n \v \f \r space, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000, U+FEFF. */
static size_t js_space(const unsigned char *s, size_t n)
{
    if (n >= 1 && (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r')))
        return 1;
    if (n >= 2 && s[0] == 0xC2 && s[1] == 0xA0)
        return 2;
    if (n >= 3) {
        unsigned c = ((unsigned)(s[0] & 0x0F) << 12) | ((unsigned)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if ((s[0] & 0xF0) != 0xE0 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
            c == 0x205F || c == 0x3000 || c == 0xFEFF)
            return 3;
    }
    return 0;
}

/* Steps 1 and 2 of lexicon.h: lowercase, punctuation and "\n" to spaces. Same length. */
static void lower_and_blank(const char *text, size_t n, char *b)
{
    static const char punct[] = ".,/#!?$%^&*;:{}=_`\"~()\n";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        else if (c && strchr(punct, c))
            c = ' ';
        else if (c == 0xC3 && i + 1 < n && ((unsigned char)text[i + 1] & 0xC0) == 0x80) {
            unsigned char d = (unsigned char)text[i + 1];
            /* U+00C0..U+00DE but U+00D7 (multiplication sign): lowercase is +0x20 */
            b[i++] = (char)c;
            c = (d <= 0x9E && d != 0x97) ? (unsigned char)(d + 0x20) : d;
        }
        b[i] = (char)c;
    }
}

/* Step 3: runs of >= 2 whitespace characters become one space; returns the new length. */
static size_t collapse_runs(char *b, size_t n)
{
    const unsigned char *u = (const unsigned char *)b;
    size_t w = 0, i = 0;
    while (i < n) {
        size_t k = js_space(u + i, n - i);
        if (!k) {
            b[w++] = b[i++];
            continue;
        }
        size_t j = i, count = 0;
        while (j < n && (k = js_space(u + j, n - j)) > 0) {
            j += k;
            count++;
        }
        if (count >= 2)
            b[w++] = ' ';
        else
            while (i < j)
                b[w++] = b[i++];
        i = j;
    }
    return w;
}

double lexicon_score(const Lexicon *lx, const char *text, size_t n, size_t *n_tokens)
{
    char *b = xmalloc(n + 1);
    lower_and_blank(text, n, b);
    n = collapse_runs(b, n);
    const unsigned char *u = (const unsigned char *)b;
    size_t lo = 0, hi = n, k;
    while (lo < hi && (k = js_space(u + lo, hi - lo)) > 0)
        lo += k;
    /* trailing whitespace: step back over one character at a time */
    for (;;) {
        size_t back = 0;
        for (size_t l = 1; l <= 3 && l <= hi - lo; l++)
            if (js_space(u + hi - l, l) == l) {
                back = l;
                break;
            }
        if (!back)
            break;
        hi -= back;
    }
    double score = 0;
    size_t ntok = 0;
    const char *prev = NULL;
    size_t prev_len = 0;
    for (size_t s = lo;;) {
        size_t e = s;
        while (e < hi && b[e] != ' ')
            e++;
        ntok++;
        const LexSlot *w = table_find(&lx->words, b + s, e - s);
        if (w) {
            int neg = prev && table_find(&lx->negators, prev, prev_len) != NULL;
            score += neg ? -w->score : w->score;
        }
        prev = b + s;
        prev_len = e - s;
        if (e >= hi)
            break;
        s = e + 1;
    }
    free(b);
    if (n_tokens)
        *n_tokens = ntok;
    return score;
}

char *lexicon_decode(const Bpe *bpe, const int32_t *ids, size_t n, int eot, size_t *len_out)
{
    int32_t *keep = xmalloc(sizeof(int32_t) * (n ? n : 1));
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] != eot || eot < 0)
            keep[m++] = ids[i];
    char err[256];
    size_t len;
    char *text = bpe_decode(bpe, keep, m, &len, err, sizeof err);
    free(keep);
    if (!text)
        die_user("lexicon: decoding a response: %s (is the tokenizer the model's?)", err);
    if (len_out)
        *len_out = len;
    return text;
}

double lexicon_score_ids(const Lexicon *lx, const Bpe *bpe, const int32_t *ids, size_t n, int eot)
{
    size_t len;
    char *text = lexicon_decode(bpe, ids, n, eot, &len);
    double s = lexicon_score(lx, text, len, NULL);
    free(text);
    return s;
}

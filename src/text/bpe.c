/* bpe.c: GPT-2's byte-level BPE tokenizer: loading, encoding, decoding (bpe.h).
 *
 * Does: read vocab.json + merges.txt, encoder.json + vocab.bpe, or tokenizer.json (jansson);
 * map tokens through GPT-2's byte <-> unicode table to raw bytes; keep the merge ranks in an
 * open-addressing hash table keyed by the pair of token ids; split text with GPT-2's regex
 * (PCRE2, UTF + UCP, JIT when available); merge each pre-token exactly as OpenAI's encoder.py
 * does (lowest-ranked bigram first, all its occurrences left to right in one pass), with a
 * heap so that long pre-tokens cost O(n log n); cache pre-token -> ids (bounded: cleared
 * when full). Text that is not valid UTF-8 is cut into maximal valid runs, each pre-
 * tokenized on its own, and maximal runs of invalid bytes, each one pre-token.
 * Does not: normalise text, add prefix spaces, or know any special token but the ones the
 * files declare (<|endoftext|> if the vocabulary has it, plus tokenizer.json's special
 * added_tokens).
 *
 * GPT-2's regex uses \s as Python's `regex` module defines it: Unicode White_Space (U+0085
 * included; U+180E and U+FEFF not). PCRE2 10.42's \s under UCP also matches U+180E, which
 * was White_Space only before Unicode 6.3, so the pattern spells the class out
 * (docs/tokenizer.md).
 */
#define _GNU_SOURCE
#define PCRE2_CODE_UNIT_WIDTH 8
#include "prefer/bpe.h"
#include "prefer/util.h"

#include <errno.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Largest token id accepted (ids index arrays: a hostile file must not make us allocate
 * gigabytes), and the longest token in bytes. */
#define BPE_MAX_ID (1 << 24)
#define BPE_MAX_TOKEN_BYTES 4096
/* Largest tokenizer file read (GPT-2's are 1-2 MB). */
#define BPE_MAX_FILE_BYTES ((size_t)1 << 30)
/* Pre-tokens at most this long are cached; the cache is cleared when it holds
 * BPE_CACHE_MAX entries or BPE_CACHE_MAX_BYTES of keys and ids. */
#define BPE_CACHE_KEY_MAX 128
#define BPE_CACHE_MAX (1 << 17)
#define BPE_CACHE_MAX_BYTES ((size_t)32 << 20)

#define WS "\\t\\n\\x0b\\f\\r\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
static const char *const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS
                                        "]+(?![^" WS "])|[" WS "]+";

typedef struct {
    uint64_t key; /* (left id << 32) | right id; UINT64_MAX = empty */
    int32_t rank, result;
} MergeSlot;

/* A cached pre-token, in one 32-byte slot. A key of at most CACHE_INLINE bytes is kept in
 * the slot, and so is the first id: most lookups (a short word, one token) touch nothing
 * else. Otherwise the record at off in the cache arena holds the n_ids ids followed by the
 * key_len bytes of the pre-token. */
#define CACHE_INLINE 12
typedef struct {
    uint64_t hash; /* 0 = empty */
    uint32_t off;  /* record offset in int32 units (unused for short one-token entries) */
    uint16_t key_len, n_ids;
    int32_t id0;
    char key[CACHE_INLINE];
} CacheSlot;

typedef struct {
    uint64_t key; /* (rank << 32) | position of the left symbol */
    int32_t right, a, b, result;
} HeapEntry;

typedef struct {
    char *bytes;
    size_t len;
    int32_t id;
} Special;

struct Bpe {
    int vocab;          /* largest id + 1 */
    uint32_t *tok_off;  /* [vocab + 1] offsets into tok_bytes */
    uint8_t *tok_has;   /* [vocab] 1 if the id names a token */
    char *tok_bytes;
    int32_t *vmap;      /* bytes -> id hash: slot holds an id or -1 */
    size_t vmap_mask;
    int32_t byte_id[256];
    MergeSlot *merges;
    size_t merge_mask;
    int n_merges;
    int32_t eot;
    Special *specials;
    int n_specials;
    char identity[32];

    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit_stack;

    CacheSlot *cache;
    size_t cache_mask, cache_n;
    int32_t *crec; /* the records, in int32 units */
    size_t crec_n, crec_cap;

    /* scratch for one pre-token's merges */
    int32_t *sid, *snext, *sprev;
    HeapEntry *heap, *pend;
    size_t scap, hcap, pcap;
};

/* ---------------------------------------------------------------- errors and hashing */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Hash of a short byte string, 8 bytes at a time; never 0 (0 marks an empty cache slot). */
static inline uint64_t bytes_hash(const char *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = mix64(h ^ w);
    return h ? h : 1;
}

/* A printable form of a token for messages: at most 40 bytes, non-printing bytes as \xNN. */
static const char *show(const char *p, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)p[i];
        if (i >= 40) {
            o += (size_t)snprintf(buf + o, cap - o, "...");
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    buf[o < cap ? o : cap - 1] = 0;
    return buf;
}

/* ---------------------------------------------------------------- GPT-2's byte <-> unicode table */

/* bytes_to_unicode() of GPT-2's encoder.py: printable Latin-1 bytes map to themselves, the
 * other 68 bytes to U+0100 + n in byte order. unicode_to_byte[cp] for cp < 324, -1 if none. */
static void byte_tables(uint32_t byte_to_cp[256], int16_t cp_to_byte[324])
{
    for (int i = 0; i < 324; i++)
        cp_to_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_to_cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        cp_to_byte[byte_to_cp[b]] = (int16_t)b;
    }
}

/* Decode one UTF-8 character of the (valid, jansson-checked) string s[0..n) at *i. */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i)
{
    unsigned c = s[*i];
    int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (*i + (size_t)len > n) {
        *i = n;
        return 0xFFFFFFFF;
    }
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len; k++)
        cp = (cp << 6) | (s[*i + (size_t)k] & 0x3F);
    *i += (size_t)len;
    return cp;
}

/* The raw bytes of a token written in GPT-2's unicode alphabet, into out (cap bytes).
 * Returns the length, or -1 if a character is outside the alphabet or it is too long. */
static int token_bytes(const char *s, size_t n, const int16_t cp_to_byte[324], char *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp = utf8_next((const unsigned char *)s, n, &i);
        if (cp >= 324 || cp_to_byte[cp] < 0 || o >= cap)
            return -1;
        out[o++] = (char)cp_to_byte[cp];
    }
    return (int)o;
}

/* ---------------------------------------------------------------- strict UTF-8 */

/* Length of the valid UTF-8 character at s[0..n) (RFC 3629: no overlongs, no surrogates,
 * at most U+10FFFF), or 0 if none starts there. PCRE2 runs with PCRE2_NO_UTF_CHECK on what
 * this accepts, so it must be at least as strict as PCRE2's own check. */
static inline int utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* Length of the longest valid UTF-8 prefix of s[0..n). */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) { /* ASCII fast path */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        int l = utf8_char_len(s + i, n - i);
        if (!l)
            break;
        i += (size_t)l;
    }
    return i;
}

/* Length of the run of bytes at s[0..n) where no valid character starts (at least 1). */
static size_t utf8_invalid_run(const unsigned char *s, size_t n)
{
    size_t i = 1;
    while (i < n && !utf8_char_len(s + i, n - i))
        i++;
    return i;
}

/* ---------------------------------------------------------------- vocabulary hash (bytes -> id) */

static int32_t vmap_find(const Bpe *b, const char *p, size_t n)
{
    for (size_t h = bytes_hash(p, n) & b->vmap_mask;; h = (h + 1) & b->vmap_mask) {
        int32_t id = b->vmap[h];
        if (id < 0)
            return -1;
        size_t len = b->tok_off[id + 1] - b->tok_off[id];
        if (len == n && !memcmp(b->tok_bytes + b->tok_off[id], p, n))
            return id;
    }
}

/* Insert id (whose bytes are already in tok_bytes). Returns the id already holding the same
 * bytes, or -1 if inserted. */
static int32_t vmap_insert(Bpe *b, int32_t id)
{
    const char *p = b->tok_bytes + b->tok_off[id];
    size_t n = b->tok_off[id + 1] - b->tok_off[id];
    for (size_t h = bytes_hash(p, n) & b->vmap_mask;; h = (h + 1) & b->vmap_mask) {
        int32_t o = b->vmap[h];
        if (o < 0) {
            b->vmap[h] = id;
            return -1;
        }
        size_t len = b->tok_off[o + 1] - b->tok_off[o];
        if (len == n && !memcmp(b->tok_bytes + b->tok_off[o], p, n))
            return o;
    }
}

/* ---------------------------------------------------------------- merge table */

static inline uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static inline const MergeSlot *merge_find(const Bpe *b, int32_t x, int32_t y)
{
    uint64_t k = pair_key(x, y);
    for (size_t h = mix64(k) & b->merge_mask;; h = (h + 1) & b->merge_mask) {
        const MergeSlot *s = &b->merges[h];
        if (s->key == k)
            return s;
        if (s->key == UINT64_MAX)
            return NULL;
    }
}

/* Insert (x, y) -> rank, result. Returns the existing slot's rank if the pair is already
 * there, else -1. */
static int merge_insert(Bpe *b, int32_t x, int32_t y, int32_t rank, int32_t result)
{
    uint64_t k = pair_key(x, y);
    for (size_t h = mix64(k) & b->merge_mask;; h = (h + 1) & b->merge_mask) {
        MergeSlot *s = &b->merges[h];
        if (s->key == k)
            return s->rank;
        if (s->key == UINT64_MAX) {
            *s = (MergeSlot){k, rank, result};
            return -1;
        }
    }
}

/* ---------------------------------------------------------------- loading */

void bpe_free(Bpe *b)
{
    if (!b)
        return;
    free(b->tok_off);
    free(b->tok_has);
    free(b->tok_bytes);
    free(b->vmap);
    free(b->merges);
    for (int i = 0; i < b->n_specials; i++)
        free(b->specials[i].bytes);
    free(b->specials);
    if (b->md)
        pcre2_match_data_free(b->md);
    if (b->mctx)
        pcre2_match_context_free(b->mctx);
    if (b->jit_stack)
        pcre2_jit_stack_free(b->jit_stack);
    if (b->re)
        pcre2_code_free(b->re);
    free(b->cache);
    free(b->crec);
    free(b->sid);
    free(b->snext);
    free(b->sprev);
    free(b->heap);
    free(b->pend);
    free(b);
}

/* One merge as two slices of the file (GPT-2 unicode alphabet), with where it came from. */
typedef struct {
    const char *a, *b;
    size_t na, nb;
    long line; /* line in merges.txt, or index in tokenizer.json's model.merges */
} MergeText;

/* Vocabulary input: a JSON object token -> id, plus raw-text added tokens (tokenizer.json). */
typedef struct {
    const char *text;
    int32_t id;
    int special;
} Added;

static size_t next_pow2(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

/* Fill the token arrays of b from the vocab object (and added tokens). */
static int build_vocab(Bpe *b, json_t *vocab, const char *vname, const Added *added, int n_added,
                       const int16_t cp_to_byte[324], char *err, int errlen)
{
    size_t n = json_object_size(vocab);
    if (n == 0)
        return util_seterr(err, errlen, "%s: the vocabulary is empty", vname);
    int64_t max_id = -1;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val)
    {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= BPE_MAX_ID) {
            char sb[200];
            return util_seterr(err, errlen, "%s: token \"%s\": id must be an integer in [0, %d)", vname,
                        show(key, strlen(key), sb, sizeof sb), BPE_MAX_ID);
        }
        if (json_integer_value(val) > max_id)
            max_id = json_integer_value(val);
    }
    for (int i = 0; i < n_added; i++)
        if (added[i].id > max_id)
            max_id = added[i].id;
    if (max_id >= 2 * (int64_t)(n + (size_t)n_added) + 1024)
        return util_seterr(err, errlen, "%s: largest id %lld for only %zu tokens (ids must be dense)", vname,
                    (long long)max_id, n + (size_t)n_added);
    b->vocab = (int)max_id + 1;
    size_t V = (size_t)b->vocab;
    /* first pass: lengths; every id gets its bytes once */
    uint32_t *len = xcalloc(V, sizeof(uint32_t));
    const char **src = xcalloc(V, sizeof(char *));
    uint8_t *raw = xcalloc(V, 1);
    char tmp[BPE_MAX_TOKEN_BYTES];
    char sb[200], sb2[200];
    int rc = 0;
    json_object_foreach(vocab, key, val)
    {
        int32_t id = (int32_t)json_integer_value(val);
        if (src[id]) {
            rc = util_seterr(err, errlen, "%s: id %d is given to both \"%s\" and \"%s\"", vname, id,
                      show(src[id], strlen(src[id]), sb, sizeof sb), show(key, strlen(key), sb2, sizeof sb2));
            goto out;
        }
        src[id] = key;
        int l = token_bytes(key, strlen(key), cp_to_byte, tmp, sizeof tmp);
        if (l < 0) {
            /* raw text is allowed for tokens that tokenizer.json declares as added */
            for (int i = 0; i < n_added && l < 0; i++)
                if (added[i].id == id && !strcmp(added[i].text, key))
                    l = (int)strlen(key), raw[id] = 1;
        }
        if (l < 0 || l > BPE_MAX_TOKEN_BYTES) {
            rc = util_seterr(err, errlen, "%s: token \"%s\" (id %d) has a character outside GPT-2's byte alphabet, or is "
                      "longer than %d bytes", vname, show(key, strlen(key), sb, sizeof sb), id, BPE_MAX_TOKEN_BYTES);
            goto out;
        }
        if (l == 0) {
            rc = util_seterr(err, errlen, "%s: empty token (id %d)", vname, id);
            goto out;
        }
        len[id] = (uint32_t)l;
    }
    for (int i = 0; i < n_added; i++) {
        int32_t id = added[i].id;
        size_t l = strlen(added[i].text);
        if (src[id]) {
            if (strcmp(src[id], added[i].text)) {
                rc = util_seterr(err, errlen, "%s: added token \"%s\" has id %d, which model.vocab gives to \"%s\"", vname,
                          show(added[i].text, l, sb, sizeof sb), id, show(src[id], strlen(src[id]), sb2, sizeof sb2));
                goto out;
            }
            continue;
        }
        if (l == 0 || l > BPE_MAX_TOKEN_BYTES) {
            rc = util_seterr(err, errlen, "%s: added token %d is empty or longer than %d bytes", vname, id,
                      BPE_MAX_TOKEN_BYTES);
            goto out;
        }
        src[id] = added[i].text;
        raw[id] = 1;
        len[id] = (uint32_t)l;
    }
    b->tok_off = xmalloc(sizeof(uint32_t) * (V + 1));
    b->tok_has = xcalloc(V, 1);
    size_t total = 0;
    for (size_t id = 0; id < V; id++) {
        b->tok_off[id] = (uint32_t)total;
        total += len[id];
        b->tok_has[id] = src[id] != NULL;
    }
    b->tok_off[V] = (uint32_t)total;
    b->tok_bytes = xmalloc(total ? total : 1);
    for (size_t id = 0; id < V; id++) {
        if (!src[id])
            continue;
        if (raw[id])
            memcpy(b->tok_bytes + b->tok_off[id], src[id], len[id]);
        else
            token_bytes(src[id], strlen(src[id]), cp_to_byte, b->tok_bytes + b->tok_off[id], len[id]);
    }
    b->vmap_mask = next_pow2(2 * V) - 1;
    b->vmap = xmalloc(sizeof(int32_t) * (b->vmap_mask + 1));
    memset(b->vmap, 0xff, sizeof(int32_t) * (b->vmap_mask + 1));
    for (size_t id = 0; id < V; id++) {
        if (!src[id])
            continue;
        int32_t o = vmap_insert(b, (int32_t)id);
        if (o >= 0) {
            rc = util_seterr(err, errlen, "%s: tokens %d \"%s\" and %zu \"%s\" stand for the same bytes", vname, o,
                      show(src[o], strlen(src[o]), sb, sizeof sb), id, show(src[id], strlen(src[id]), sb2, sizeof sb2));
            goto out;
        }
    }
    uint32_t byte_to_cp[256];
    int16_t unused[324];
    byte_tables(byte_to_cp, unused);
    for (int c = 0; c < 256; c++) {
        char ch = (char)c;
        b->byte_id[c] = vmap_find(b, &ch, 1);
        if (b->byte_id[c] < 0) {
            rc = util_seterr(err, errlen, "%s: no token for byte 0x%02x (U+%04X in GPT-2's alphabet): a byte-level "
                      "vocabulary needs all 256", vname, (unsigned)c, (unsigned)byte_to_cp[c]);
            goto out;
        }
    }
out:
    free(len);
    free(src);
    free(raw);
    return rc;
}

static int build_merges(Bpe *b, const MergeText *m, size_t nm, const char *mname, const char *where,
                        const int16_t cp_to_byte[324], char *err, int errlen)
{
    if (nm > (size_t)BPE_MAX_ID)
        return util_seterr(err, errlen, "%s: %zu merges (at most %d)", mname, nm, BPE_MAX_ID);
    b->n_merges = (int)nm;
    b->merge_mask = next_pow2(2 * nm + 2) - 1;
    b->merges = xmalloc(sizeof(MergeSlot) * (b->merge_mask + 1));
    for (size_t i = 0; i <= b->merge_mask; i++)
        b->merges[i].key = UINT64_MAX;
    char x[BPE_MAX_TOKEN_BYTES], y[BPE_MAX_TOKEN_BYTES], xy[2 * BPE_MAX_TOKEN_BYTES];
    char sb[200];
    for (size_t r = 0; r < nm; r++) {
        int lx = token_bytes(m[r].a, m[r].na, cp_to_byte, x, sizeof x);
        int ly = token_bytes(m[r].b, m[r].nb, cp_to_byte, y, sizeof y);
        int32_t ix = lx > 0 ? vmap_find(b, x, (size_t)lx) : -1, iy = ly > 0 ? vmap_find(b, y, (size_t)ly) : -1;
        if (ix < 0 || iy < 0) {
            const char *t = ix < 0 ? m[r].a : m[r].b;
            size_t tn = ix < 0 ? m[r].na : m[r].nb;
            return util_seterr(err, errlen, "%s: %s %ld: \"%s\" is not a token of the vocabulary", mname, where, m[r].line,
                        show(t, tn, sb, sizeof sb));
        }
        memcpy(xy, x, (size_t)lx);
        memcpy(xy + lx, y, (size_t)ly);
        int32_t ixy = vmap_find(b, xy, (size_t)(lx + ly));
        if (ixy < 0)
            return util_seterr(err, errlen, "%s: %s %ld: the merge of \"%.*s\" and \"%.*s\" is not a token of the vocabulary",
                        mname, where, m[r].line, (int)(m[r].na < 60 ? m[r].na : 60), m[r].a,
                        (int)(m[r].nb < 60 ? m[r].nb : 60), m[r].b);
        int prev = merge_insert(b, ix, iy, (int32_t)r, ixy);
        if (prev >= 0)
            return util_seterr(err, errlen, "%s: %s %ld: duplicate merge \"%.*s %.*s\" (already %s %ld)", mname, where,
                        m[r].line, (int)(m[r].na < 60 ? m[r].na : 60), m[r].a, (int)(m[r].nb < 60 ? m[r].nb : 60),
                        m[r].b, where, m[prev].line);
    }
    return 0;
}

static void add_special(Bpe *b, int32_t id)
{
    for (int i = 0; i < b->n_specials; i++)
        if (b->specials[i].id == id)
            return;
    b->specials = xrealloc(b->specials, sizeof(Special) * (size_t)(b->n_specials + 1));
    size_t n = b->tok_off[id + 1] - b->tok_off[id];
    Special *s = &b->specials[b->n_specials++];
    s->bytes = xmalloc(n + 1);
    memcpy(s->bytes, b->tok_bytes + b->tok_off[id], n);
    s->bytes[n] = 0;
    s->len = n;
    s->id = id;
}

static int compile_regex(Bpe *b, char *err, int errlen)
{
    int ec;
    PCRE2_SIZE eo;
    b->re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!b->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return util_seterr(err, errlen, "PCRE2 rejects GPT-2's pattern at offset %zu: %s", (size_t)eo, (char *)msg);
    }
    if (pcre2_jit_compile(b->re, PCRE2_JIT_COMPLETE) == 0) {
        b->jit_stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
        b->mctx = pcre2_match_context_create(NULL);
        if (!b->jit_stack || !b->mctx)
            die("pcre2: out of memory");
        pcre2_jit_stack_assign(b->mctx, NULL, b->jit_stack);
    }
    b->md = pcre2_match_data_create_from_pattern(b->re, NULL);
    if (!b->md)
        die("pcre2: out of memory");
    return 0;
}

/* FNV-1a over the vocabulary (by id) and the merges (by rank): equal for the same
 * tokenizer in any of the file layouts. */
static void make_identity(Bpe *b)
{
    uint64_t h = UTIL_HASH_INIT;
    int32_t v = b->vocab;
    h = util_hash(h, &v, sizeof v);
    for (int id = 0; id < b->vocab; id++) {
        uint32_t len = b->tok_has[id] ? b->tok_off[id + 1] - b->tok_off[id] + 1 : 0;
        h = util_hash(h, &len, sizeof len);
        h = util_hash(h, b->tok_bytes + b->tok_off[id], b->tok_off[id + 1] - b->tok_off[id]);
    }
    int32_t *byrank = xcalloc((size_t)b->n_merges * 2 + 1, sizeof(int32_t));
    for (size_t i = 0; i <= b->merge_mask; i++)
        if (b->merges[i].key != UINT64_MAX) {
            byrank[2 * b->merges[i].rank] = (int32_t)(b->merges[i].key >> 32);
            byrank[2 * b->merges[i].rank + 1] = (int32_t)(uint32_t)b->merges[i].key;
        }
    h = util_hash(h, &b->n_merges, sizeof b->n_merges);
    h = util_hash(h, byrank, sizeof(int32_t) * 2 * (size_t)b->n_merges);
    free(byrank);
    snprintf(b->identity, sizeof b->identity, "gpt2-bpe:%016llx", (unsigned long long)h);
}

/* Everything after the vocabulary and merges are read. */
static int finish_load(Bpe *b, json_t *vocab, const char *vname, const Added *added, int n_added, const MergeText *m,
                       size_t nm, const char *mname, const char *where, char *err, int errlen)
{
    uint32_t byte_to_cp[256];
    int16_t cp_to_byte[324];
    byte_tables(byte_to_cp, cp_to_byte);
    if (build_vocab(b, vocab, vname, added, n_added, cp_to_byte, err, errlen) ||
        build_merges(b, m, nm, mname, where, cp_to_byte, err, errlen))
        return -1;
    b->eot = vmap_find(b, "<|endoftext|>", 13);
    if (b->eot >= 0)
        add_special(b, b->eot);
    for (int i = 0; i < n_added; i++)
        if (added[i].special)
            add_special(b, added[i].id);
    make_identity(b);
    return compile_regex(b, err, errlen);
}

static json_t *parse_json(const char *buf, size_t n, const char *name, char *err, int errlen)
{
    json_error_t je;
    json_t *j = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        util_seterr(err, errlen, "%s: line %d column %d: %s", name, je.line, je.column, je.text);
    return j;
}

int bpe_load_vocab_merges(const char *vocab, size_t vocab_len, const char *vocab_name, const char *merges,
                          size_t merges_len, const char *merges_name, Bpe **out, char *err, int errlen)
{
    *out = NULL;
    json_t *v = parse_json(vocab, vocab_len, vocab_name, err, errlen);
    if (!v)
        return -1;
    if (!json_is_object(v)) {
        json_decref(v);
        return util_seterr(err, errlen, "%s: expected a JSON object of token: id", vocab_name);
    }
    /* merges: lines "A B"; a first line "#version..." is a comment; \r\n accepted */
    size_t cap = 1024, nm = 0;
    MergeText *m = xmalloc(sizeof(MergeText) * cap);
    int rc = 0;
    long line = 0;
    for (size_t i = 0; i < merges_len;) {
        const char *s = merges + i;
        const char *nl = memchr(s, '\n', merges_len - i);
        size_t len = nl ? (size_t)(nl - s) : merges_len - i;
        i += len + (nl != NULL);
        line++;
        if (len && s[len - 1] == '\r')
            len--;
        if (line == 1 && len >= 8 && !memcmp(s, "#version", 8))
            continue;
        if (len == 0 && i >= merges_len)
            break; /* the final newline */
        const char *sp = memchr(s, ' ', len);
        if (!sp || sp == s || sp == s + len - 1 || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)) ||
            memchr(s, 0, len)) {
            char sb[200];
            rc = util_seterr(err, errlen, "%s: line %ld: expected two tokens separated by one space, got \"%s\"",
                      merges_name, line, show(s, len, sb, sizeof sb));
            goto out;
        }
        if (nm == cap)
            m = xrealloc(m, sizeof(MergeText) * (cap *= 2));
        m[nm++] = (MergeText){s, sp + 1, (size_t)(sp - s), len - (size_t)(sp + 1 - s), line};
    }
    Bpe *b = xcalloc(1, sizeof(Bpe));
    rc = finish_load(b, v, vocab_name, NULL, 0, m, nm, merges_name, "line", err, errlen);
    if (rc)
        bpe_free(b);
    else
        *out = b;
out:
    free(m);
    json_decref(v);
    return rc;
}

int bpe_load_tokenizer_json(const char *json, size_t len, const char *name, Bpe **out, char *err, int errlen)
{
    *out = NULL;
    json_t *root = parse_json(json, len, name, err, errlen);
    if (!root)
        return -1;
    int rc = -1;
    MergeText *m = NULL;
    Added *added = NULL;
    json_t *model = json_object_get(root, "model");
    json_t *vocab = model ? json_object_get(model, "vocab") : NULL;
    json_t *merges = model ? json_object_get(model, "merges") : NULL;
    json_t *type = model ? json_object_get(model, "type") : NULL;
    if (!json_is_object(model)) {
        util_seterr(err, errlen, "%s: no object \"model\"", name);
        goto out;
    }
    if (type && !(json_is_string(type) && !strcmp(json_string_value(type), "BPE"))) {
        util_seterr(err, errlen, "%s: model.type is not \"BPE\"", name);
        goto out;
    }
    if (!json_is_object(vocab) || !json_is_array(merges)) {
        util_seterr(err, errlen, "%s: model.vocab must be an object and model.merges an array", name);
        goto out;
    }
    size_t nm = json_array_size(merges);
    m = xmalloc(sizeof(MergeText) * (nm ? nm : 1));
    for (size_t i = 0; i < nm; i++) {
        json_t *e = json_array_get(merges, i);
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (json_is_string(e)) { /* "A B" */
            const char *s = json_string_value(e);
            size_t l = json_string_length(e);
            const char *sp = memchr(s, ' ', l);
            if (sp && sp != s && sp != s + l - 1 && !memchr(sp + 1, ' ', l - (size_t)(sp + 1 - s)) && !memchr(s, 0, l)) {
                a = s, na = (size_t)(sp - s), b = sp + 1, nb = l - na - 1;
            }
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1))) { /* ["A", "B"] */
            a = json_string_value(json_array_get(e, 0)), na = json_string_length(json_array_get(e, 0));
            b = json_string_value(json_array_get(e, 1)), nb = json_string_length(json_array_get(e, 1));
            if (!na || !nb || memchr(a, 0, na) || memchr(b, 0, nb))
                a = NULL;
        }
        if (!a) {
            util_seterr(err, errlen, "%s: model.merges[%zu]: expected \"A B\" or [\"A\", \"B\"]", name, i);
            goto out;
        }
        m[i] = (MergeText){a, b, na, nb, (long)i};
    }
    json_t *at = json_object_get(root, "added_tokens");
    size_t na = json_is_array(at) ? json_array_size(at) : 0;
    if (at && !json_is_array(at) && !json_is_null(at)) {
        util_seterr(err, errlen, "%s: added_tokens must be an array", name);
        goto out;
    }
    added = xmalloc(sizeof(Added) * (na ? na : 1));
    for (size_t i = 0; i < na; i++) {
        json_t *e = json_array_get(at, i), *id = json_object_get(e, "id"), *c = json_object_get(e, "content");
        json_t *sp = json_object_get(e, "special");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= BPE_MAX_ID ||
            !json_is_string(c) || strlen(json_string_value(c)) != json_string_length(c)) {
            util_seterr(err, errlen, "%s: added_tokens[%zu]: needs an integer \"id\" in [0, %d) and a string \"content\"",
                 name, i, BPE_MAX_ID);
            goto out;
        }
        added[i] = (Added){json_string_value(c), (int32_t)json_integer_value(id), json_is_true(sp)};
    }
    Bpe *b = xcalloc(1, sizeof(Bpe));
    rc = finish_load(b, vocab, name, added, (int)na, m, nm, name, "model.merges index", err, errlen);
    if (rc)
        bpe_free(b);
    else
        *out = b;
out:
    free(m);
    free(added);
    json_decref(root);
    return rc;
}

/* Read a whole file. Returns NULL (errno kept) if it cannot be opened; sets *too_big. */
int bpe_load(const char *dir, Bpe **out, char *err, int errlen)
{
    static const char *const pairs[][2] = {{"vocab.json", "merges.txt"}, {"encoder.json", "vocab.bpe"}};
    *out = NULL;
    for (int k = 0; k < 3; k++) {
        char *p1 = xasprintf("%s/%s", dir, k < 2 ? pairs[k][0] : "tokenizer.json");
        char *p2 = k < 2 ? xasprintf("%s/%s", dir, pairs[k][1]) : NULL;
        if (!util_file_exists(p1) || (p2 && !util_file_exists(p2))) {
            free(p1);
            free(p2);
            continue;
        }
        size_t n1 = 0, n2 = 0;
        char *b1 = util_read_file(p1, BPE_MAX_FILE_BYTES, &n1, err, errlen);
        char *b2 = b1 && p2 ? util_read_file(p2, BPE_MAX_FILE_BYTES, &n2, err, errlen) : NULL;
        int rc;
        if (!b1 || (p2 && !b2)) {
            rc = -1; /* err names the file */
        } else if (p2) {
            rc = bpe_load_vocab_merges(b1, n1, p1, b2, n2, p2, out, err, errlen);
        } else {
            rc = bpe_load_tokenizer_json(b1, n1, p1, out, err, errlen);
        }
        free(b1);
        free(b2);
        free(p1);
        free(p2);
        return rc;
    }
    return util_seterr(err, errlen, "%s: no tokenizer files (vocab.json + merges.txt, encoder.json + vocab.bpe, or "
                "tokenizer.json); scripts/fetch-gpt2-tokenizer.sh fetches GPT-2's", dir);
}

Bpe *bpe_load_or_die(const char *dir)
{
    char err[1024];
    Bpe *b = NULL;
    if (bpe_load(dir, &b, err, sizeof err))
        die_user("tokenizer: %s", err);
    return b;
}

int bpe_vocab_size(const Bpe *b) { return b->vocab; }
int32_t bpe_eot(const Bpe *b) { return b->eot; }
const char *bpe_identity(const Bpe *b) { return b->identity; }
int bpe_n_merges(const Bpe *b) { return b->n_merges; }

int32_t bpe_token_id(const Bpe *b, const char *bytes, size_t n)
{
    return n ? vmap_find(b, bytes, n) : -1;
}

int bpe_pcre2_jit(const Bpe *b) { return b->jit_stack != NULL; }

/* ---------------------------------------------------------------- encoding */

void bpe_ids_free(BpeIds *v)
{
    if (!v)
        return;
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

static inline void ids_reserve(BpeIds *v, size_t more)
{
    if (v->n + more <= v->cap)
        return;
    size_t c = v->cap ? v->cap : 64;
    while (c < v->n + more)
        c *= 2;
    v->ids = xrealloc(v->ids, sizeof(int32_t) * c);
    v->cap = c;
}

void bpe_cache_clear(Bpe *b)
{
    if (b->cache)
        memset(b->cache, 0, sizeof(CacheSlot) * (b->cache_mask + 1));
    b->cache_n = 0;
    b->crec_n = 0;
}

/* memcmp(a, b, n) == 0 for the short keys of the cache, without a library call. */
static inline int same_bytes(const void *a, const void *b, size_t n)
{
    const char *x = a, *y = b;
    while (n >= 8) {
        uint64_t u, v;
        memcpy(&u, x, 8);
        memcpy(&v, y, 8);
        if (u != v)
            return 0;
        x += 8, y += 8, n -= 8;
    }
    while (n--)
        if (*x++ != *y++)
            return 0;
    return 1;
}

static const CacheSlot *cache_find(const Bpe *b, const char *p, size_t n, uint64_t h)
{
    if (!b->cache)
        return NULL;
    for (size_t i = h & b->cache_mask;; i = (i + 1) & b->cache_mask) {
        const CacheSlot *s = &b->cache[i];
        if (!s->hash)
            return NULL;
        if (s->hash == h && s->key_len == n &&
            same_bytes(n <= CACHE_INLINE ? (const void *)s->key : (const void *)(b->crec + s->off + s->n_ids), p, n))
            return s;
    }
}

static void cache_put_slot(Bpe *b, CacheSlot s)
{
    for (size_t i = s.hash & b->cache_mask;; i = (i + 1) & b->cache_mask)
        if (!b->cache[i].hash) {
            b->cache[i] = s;
            return;
        }
}

static void cache_add(Bpe *b, const char *p, size_t n, uint64_t h, const int32_t *ids, size_t k)
{
    size_t words = n <= CACHE_INLINE && k == 1 ? 0 : k + (n + 3) / 4; /* record size in int32 units */
    if (b->cache_n >= BPE_CACHE_MAX || (b->crec_n + words) * sizeof(int32_t) > BPE_CACHE_MAX_BYTES)
        bpe_cache_clear(b); /* full: start over rather than track recency */
    if (!b->cache || 2 * (b->cache_n + 1) > b->cache_mask + 1) {
        size_t ncap = b->cache ? 2 * (b->cache_mask + 1) : 4096;
        CacheSlot *old = b->cache;
        size_t old_cap = b->cache ? b->cache_mask + 1 : 0;
        b->cache = xcalloc(ncap, sizeof(CacheSlot));
        b->cache_mask = ncap - 1;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].hash)
                cache_put_slot(b, old[i]);
        free(old);
    }
    if (b->crec_n + words > b->crec_cap) {
        b->crec_cap = next_pow2(b->crec_n + words + 4096);
        b->crec = xrealloc(b->crec, sizeof(int32_t) * b->crec_cap);
    }
    CacheSlot s = {h, (uint32_t)b->crec_n, (uint16_t)n, (uint16_t)k, ids[0], {0}};
    memcpy(s.key, p, n < CACHE_INLINE ? n : CACHE_INLINE);
    if (words) {
        memcpy(b->crec + b->crec_n, ids, sizeof(int32_t) * k);
        memcpy(b->crec + b->crec_n + k, p, n);
    }
    cache_put_slot(b, s);
    b->crec_n += words;
    b->cache_n++;
}

/* Min-heap on key (rank, position). */
static void heap_push(HeapEntry *h, size_t *n, HeapEntry e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].key <= e.key)
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static HeapEntry heap_pop(HeapEntry *h, size_t *n)
{
    HeapEntry top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && h[c + 1].key < h[c].key)
            c++;
        if (last.key <= h[c].key)
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = last;
    return top;
}

static void scratch_reserve(Bpe *b, size_t n)
{
    if (n > b->scap) {
        size_t c = next_pow2(n);
        b->sid = xrealloc(b->sid, sizeof(int32_t) * c);
        b->snext = xrealloc(b->snext, sizeof(int32_t) * c);
        b->sprev = xrealloc(b->sprev, sizeof(int32_t) * c);
        b->scap = c;
    }
}

/* A candidate merge of the adjacent symbols at positions p < q, if their pair has a rank. */
static int candidate(const Bpe *b, int32_t p, int32_t q, HeapEntry *e)
{
    const MergeSlot *s = merge_find(b, b->sid[p], b->sid[q]);
    if (!s)
        return 0;
    *e = (HeapEntry){((uint64_t)(uint32_t)s->rank << 32) | (uint32_t)p, q, b->sid[p], b->sid[q], s->result};
    return 1;
}

static void push_candidate(Bpe *b, HeapEntry **h, size_t *n, size_t *cap, int32_t p, int32_t q)
{
    HeapEntry e;
    if (p < 0 || q < 0 || !candidate(b, p, q, &e))
        return;
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *h = xrealloc(*h, sizeof(HeapEntry) * *cap);
    }
    if (h == &b->pend)
        (*h)[(*n)++] = e;
    else
        heap_push(*h, n, e);
}

/* The ids of one pre-token p[0..n), n >= 1, appended to out. encoder.py's bpe(): while some
 * adjacent pair has a rank, take the lowest-ranked pair and merge all its occurrences, left
 * to right without overlap; new pairs formed meanwhile wait for the next round. Symbols live
 * at the byte position where they start, in a linked list. */
static void bpe_word(Bpe *b, const char *p, size_t n, BpeIds *out)
{
    if (n == 1) {
        ids_reserve(out, 1);
        out->ids[out->n++] = b->byte_id[(unsigned char)p[0]];
        return;
    }
    scratch_reserve(b, n);
    for (size_t i = 0; i < n; i++) {
        b->sid[i] = b->byte_id[(unsigned char)p[i]];
        b->snext[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        b->sprev[i] = (int32_t)i - 1;
    }
    size_t hn = 0, pn = 0;
    for (size_t i = 0; i + 1 < n; i++)
        push_candidate(b, &b->heap, &hn, &b->hcap, (int32_t)i, (int32_t)(i + 1));
    while (hn) {
        uint64_t rank = b->heap[0].key >> 32;
        while (hn && (b->heap[0].key >> 32) == rank) {
            HeapEntry e = heap_pop(b->heap, &hn);
            int32_t l = (int32_t)(uint32_t)e.key, r = e.right;
            /* stale: a symbol merged since, or no longer adjacent (dead symbols have sid -1) */
            if (b->snext[l] != r || b->sid[l] != e.a || b->sid[r] != e.b)
                continue;
            b->sid[l] = e.result;
            b->sid[r] = -1;
            int32_t nx = b->snext[r];
            b->snext[l] = nx;
            if (nx >= 0)
                b->sprev[nx] = l;
            push_candidate(b, &b->pend, &pn, &b->pcap, b->sprev[l], l);
            push_candidate(b, &b->pend, &pn, &b->pcap, l, nx);
        }
        for (size_t i = 0; i < pn; i++) {
            if (hn == b->hcap) {
                b->hcap = b->hcap ? 2 * b->hcap : 64;
                b->heap = xrealloc(b->heap, sizeof(HeapEntry) * b->hcap);
            }
            heap_push(b->heap, &hn, b->pend[i]);
        }
        pn = 0;
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = b->snext[i])
        k++;
    ids_reserve(out, k);
    for (int32_t i = 0; i >= 0; i = b->snext[i])
        out->ids[out->n++] = b->sid[i];
}

/* One pre-token, through the cache. */
static void encode_piece(Bpe *b, const char *p, size_t n, BpeIds *out)
{
    if (n > BPE_CACHE_KEY_MAX) {
        bpe_word(b, p, n, out);
        return;
    }
    uint64_t h = bytes_hash(p, n);
    const CacheSlot *s = cache_find(b, p, n, h);
    if (s) {
        ids_reserve(out, s->n_ids);
        if (s->n_ids == 1 && s->key_len <= CACHE_INLINE)
            out->ids[out->n] = s->id0;
        else
            memcpy(out->ids + out->n, b->crec + s->off, sizeof(int32_t) * s->n_ids);
        out->n += s->n_ids;
        return;
    }
    size_t before = out->n;
    bpe_word(b, p, n, out);
    cache_add(b, p, n, h, out->ids + before, out->n - before);
}

/* A valid UTF-8 run s[0..n), pre-tokenized by the regex on its own. */
static void encode_run(Bpe *b, const char *s, size_t n, BpeIds *out)
{
    size_t off = 0;
    while (off < n) {
        int rc = b->jit_stack ? pcre2_jit_match(b->re, (PCRE2_SPTR)s, n, off, 0, b->md, b->mctx)
                              : pcre2_match(b->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, b->md, b->mctx);
        size_t st, en;
        if (rc < 0) {
            if (rc != PCRE2_ERROR_NOMATCH) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                die("tokenizer: pcre2_match failed at byte %zu of a %zu-byte run: %s", off, n, (char *)msg);
            }
            st = en = n; /* cannot happen: every character matches some alternative */
        } else {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(b->md);
            st = ov[0];
            en = ov[1];
        }
        if (st > off) /* a gap the pattern skipped (cannot happen): its own pre-token */
            encode_piece(b, s + off, st - off, out);
        if (en <= st) { /* empty match (cannot happen): step one character */
            if (st >= n)
                break;
            en = st + (size_t)utf8_char_len((const unsigned char *)s + st, n - st);
        } else {
            encode_piece(b, s + st, en - st, out);
        }
        off = en;
    }
}

/* Text without special tokens: valid UTF-8 runs through the regex, invalid runs whole. */
static void encode_ordinary(Bpe *b, const char *s, size_t n, BpeIds *out)
{
    size_t i = 0;
    while (i < n) {
        size_t v = utf8_valid_prefix((const unsigned char *)s + i, n - i);
        if (v) {
            encode_run(b, s + i, v, out);
            i += v;
        }
        if (i < n) {
            size_t bad = utf8_invalid_run((const unsigned char *)s + i, n - i);
            encode_piece(b, s + i, bad, out);
            i += bad;
        }
    }
}

int bpe_encode(Bpe *b, const char *text, size_t n, int allow_special, BpeIds *out)
{
    if (!allow_special || b->n_specials == 0) {
        encode_ordinary(b, text, n, out);
        return 0;
    }
    /* next[k]: where special k next occurs at or after i (n if nowhere), so that each is
     * searched for once per occurrence rather than once per segment */
    size_t next_small[8], *next = b->n_specials <= 8 ? next_small : xmalloc(sizeof(size_t) * (size_t)b->n_specials);
    for (int k = 0; k < b->n_specials; k++)
        next[k] = (size_t)-1; /* not searched yet */
    size_t i = 0;
    while (i < n) {
        int bi = -1;
        for (int k = 0; k < b->n_specials; k++) {
            if (next[k] == (size_t)-1 || (next[k] < i && next[k] != n)) {
                const char *hit = memmem(text + i, n - i, b->specials[k].bytes, b->specials[k].len);
                next[k] = hit ? (size_t)(hit - text) : n;
            }
            if (next[k] < n && (bi < 0 || next[k] < next[bi] ||
                                (next[k] == next[bi] && b->specials[k].len > b->specials[bi].len)))
                bi = k;
        }
        size_t end = bi >= 0 ? next[bi] : n;
        encode_ordinary(b, text + i, end - i, out);
        if (bi < 0)
            break;
        ids_reserve(out, 1);
        out->ids[out->n++] = b->specials[bi].id;
        i = end + b->specials[bi].len;
    }
    if (next != next_small)
        free(next);
    return 0;
}

/* ---------------------------------------------------------------- decoding */

char *bpe_decode(const Bpe *b, const int32_t *ids, size_t n, size_t *len, char *err, int errlen)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= b->vocab || !b->tok_has[ids[i]]) {
            util_seterr(err, errlen, "token id %d (at position %zu) is not in the vocabulary [0, %d)", ids[i], i, b->vocab);
            return NULL;
        }
        total += b->tok_off[ids[i] + 1] - b->tok_off[ids[i]];
    }
    char *s = xmalloc(total + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = b->tok_off[ids[i] + 1] - b->tok_off[ids[i]];
        memcpy(s + o, b->tok_bytes + b->tok_off[ids[i]], l);
        o += l;
    }
    s[o] = 0;
    if (len)
        *len = o;
    return s;
}

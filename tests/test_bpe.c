/* test_bpe.c: the GPT-2 byte-level BPE tokenizer (bpe.h) on a tiny hand-made vocabulary.
 *
 * A vocabulary of the 256 byte tokens (id = byte) plus a dozen merges is written to a temp
 * dir as vocab.json + merges.txt, encoder.json + vocab.bpe and tokenizer.json (both merge
 * spellings); ids worked out by hand for a few strings, including the regex's whitespace
 * rule, contractions, digits, U+0085, invalid UTF-8, left-to-right merging of "aaaaa" and
 * encoder.py's one-bigram-per-round rule on a merge list whose ranks are out of order;
 * <|endoftext|> on and off; a naive transcription of encoder.py's bpe() against ours on
 * random words (longer than the cache's limit too); decode(encode(s)) == s on random bytes;
 * the cache cleared or not gives the same ids; malformed files give -1 with the file named;
 * truncated and mutated files never crash (run it under SANITIZE=1). No MPI.
 */
#define _GNU_SOURCE
#include "prefer/bpe.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[256];

/* ---------------------------------------------------------------- the tiny tokenizer */

/* GPT-2's bytes_to_unicode, written out again for the test. */
static unsigned byte_cp(int b)
{
    int n = 0;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255);
        if (c == b)
            return printable ? (unsigned)c : 256u + (unsigned)n;
        if (!printable)
            n++;
    }
    return 0;
}

/* Append the UTF-8 of code point cp (< 0x800), JSON-escaped if asked. */
static void put_cp(char **o, unsigned cp, int json)
{
    if (json && (cp == '"' || cp == '\\'))
        *(*o)++ = '\\';
    if (cp < 0x80) {
        *(*o)++ = (char)cp;
    } else {
        *(*o)++ = (char)(0xC0 | (cp >> 6));
        *(*o)++ = (char)(0x80 | (cp & 0x3F));
    }
}

/* Bytes -> GPT-2 alphabet (UTF-8), into a static buffer of the caller. */
static void to_alpha(const char *s, char *out, int json)
{
    char *o = out;
    for (; *s; s++)
        put_cp(&o, byte_cp((unsigned char)*s), json);
    *o = 0;
}

/* The merges, as raw bytes, in rank order; the result's id is 256 + index in EXTRA. */
static const char *const MERGES[][2] = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}, {"o", "r"}, {" w", "or"},
    {"a", "a"}, {"b", "c"}, {"ab", "a"}, /* rank 9 < rank 12, which makes "ab" */
    {" ", "\xc2"}, {" ", "\xe1"}, {"a", "b"},
};
#define N_MERGES 13
/* Tokens after the 256 bytes, ids 256... */
static const char *const EXTRA[] = {"he", "ll", "hell", "hello", " w", "or", " wor", "aa", "<|endoftext|>", "bc", "ab", "aba", " \xc2", " \xe1"};
#define N_EXTRA 14
enum { HE = 256, LL, HELL, HELLO, SP_W, OR, SP_WOR, AA, EOT, BC, AB, ABA, SP_C2, SP_E1 };

/* vocab.json text (caller frees). skip_byte >= 0 leaves that byte out; dup makes id 300 twice. */
static char *vocab_json(int skip_byte, int dup)
{
    char *buf = xmalloc(64 * 1024), *o = buf;
    o += sprintf(o, "{");
    char key[64];
    for (int b = 0; b < 256; b++) {
        if (b == skip_byte)
            continue;
        char *k = key;
        put_cp(&k, byte_cp(b), 1);
        *k = 0;
        o += sprintf(o, "%s\"%s\": %d", o == buf + 1 ? "" : ", ", key, b);
    }
    for (int i = 0; i < N_EXTRA; i++) {
        to_alpha(EXTRA[i], key, 1);
        o += sprintf(o, ", \"%s\": %d", key, 256 + i);
    }
    if (dup)
        o += sprintf(o, ", \"xq\": 300, \"qx\": 300");
    sprintf(o, "}\n");
    return buf;
}

/* merges.txt text (caller frees), with a #version line if asked. */
static char *merges_txt(int version)
{
    char *buf = xmalloc(4096), *o = buf;
    *o = 0;
    if (version)
        o += sprintf(o, "#version: 0.2\n");
    for (int i = 0; i < N_MERGES; i++) {
        char a[64], b[64];
        to_alpha(MERGES[i][0], a, 0);
        to_alpha(MERGES[i][1], b, 0);
        o += sprintf(o, "%s %s\n", a, b);
    }
    return buf;
}

/* tokenizer.json text; pairs = 1 spells merges as ["A", "B"]. */
static char *tokenizer_json(int pairs)
{
    char *v = vocab_json(-1, 0);
    v[strlen(v) - 1] = 0; /* the newline */
    char *buf = xmalloc(128 * 1024), *o = buf;
    o += sprintf(o, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": %d, \"content\": \"<|endoftext|>\", \"special\": "
                    "true}], \"model\": {\"type\": \"BPE\", \"vocab\": %s, \"merges\": [", EOT, v);
    for (int i = 0; i < N_MERGES; i++) {
        char a[64], b[64];
        to_alpha(MERGES[i][0], a, 1);
        to_alpha(MERGES[i][1], b, 1);
        o += sprintf(o, pairs ? "%s[\"%s\", \"%s\"]" : "%s\"%s %s\"", i ? ", " : "", a, b);
    }
    sprintf(o, "]}}\n");
    free(v);
    return buf;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static char *subdir(const char *name)
{
    char *d = xasprintf("%s/%s", g_dir, name);
    util_mkdir_p(d);
    return d;
}

static void rm_dir(const char *d)
{
    static const char *const names[] = {"vocab.json", "merges.txt", "encoder.json", "vocab.bpe", "tokenizer.json"};
    for (int i = 0; i < 5; i++) {
        char *p = xasprintf("%s/%s", d, names[i]);
        unlink(p);
        free(p);
    }
    rmdir(d);
}

/* The tiny tokenizer in the Hugging Face layout. */
static Bpe *load_tiny(void)
{
    char *d = subdir("hf");
    char *v = vocab_json(-1, 0), *m = merges_txt(1);
    write_text(d, "vocab.json", v);
    write_text(d, "merges.txt", m);
    free(v);
    free(m);
    char err[512] = "";
    Bpe *b = NULL;
    int rc = bpe_load(d, &b, err, sizeof err);
    if (rc)
        printf("\nload: %s\n", err);
    CU_ASSERT_EQUAL(rc, 0);
    free(d);
    return b;
}

/* ids of s (with special tokens if allow) equal want[0..n)? Prints both on a mismatch. */
static int enc_is(Bpe *b, const char *s, size_t len, int allow, const int32_t *want, size_t n)
{
    BpeIds v = {0};
    bpe_encode(b, s, len, allow, &v);
    int same = v.n == n && (n == 0 || !memcmp(v.ids, want, sizeof(int32_t) * n));
    if (!same) {
        printf("\nencode(\"%.*s\"): got", (int)len, s);
        for (size_t i = 0; i < v.n; i++)
            printf(" %d", v.ids[i]);
        printf(", want");
        for (size_t i = 0; i < n; i++)
            printf(" %d", want[i]);
        printf("\n");
    }
    bpe_ids_free(&v);
    return same;
}

#define ENC(b, s, allow, ...)                                                                         \
    do {                                                                                              \
        static const int32_t w_[] = {__VA_ARGS__};                                                    \
        CU_ASSERT(enc_is(b, s, sizeof(s) - 1, allow, w_, sizeof w_ / sizeof w_[0]));                  \
    } while (0)

/* ---------------------------------------------------------------- tests */

static void test_hand_ids(void)
{
    Bpe *b = load_tiny();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(bpe_vocab_size(b), 270);
    CU_ASSERT_EQUAL(bpe_n_merges(b), N_MERGES);
    CU_ASSERT_EQUAL(bpe_eot(b), EOT);
    CU_ASSERT_EQUAL(strncmp(bpe_identity(b), "gpt2-bpe:", 9), 0);
    CU_ASSERT_EQUAL(strlen(bpe_identity(b)), 9 + 16);
    /* he, ll, he+ll, hell+o */
    ENC(b, "hello", 1, HELLO);
    /* "hello" | " world": " w", "or", " w"+"or", then l, d */
    ENC(b, "hello world", 1, HELLO, SP_WOR, 'l', 'd');
    /* one pre-token: every "he" first, then every "ll", ... */
    ENC(b, "hellohello", 1, HELLO, HELLO);
    /* left to right without overlap */
    ENC(b, "aaaaa", 1, AA, AA, 'a');
    /* "bc" (rank 8) before "ab" (rank 12) */
    ENC(b, "abc", 1, 'a', BC);
    /* encoder.py merges every "a b" in one round before looking at the new pair "ab a"
     * (rank 9): [ab, ab], not [aba, b] */
    ENC(b, "abab", 1, AB, AB);
    ENC(b, "ababa", 1, AB, ABA);
    /* \s+(?!\S): two spaces before a word are " " then " b" */
    ENC(b, "a  b", 1, 'a', ' ', ' ', 'b');
    ENC(b, "a  ", 1, 'a', ' ', ' ');
    /* contractions and digits; " 12" is one pre-token */
    ENC(b, "it's 12", 1, 'i', 't', '\'', 's', ' ', '1', '2');
    /* U+0085 (\xc2\x85) is whitespace to GPT-2: " ", "\xc2\x85", "w", so the merge " \xc2"
     * cannot form; where it is not whitespace (PCRE2's or JavaScript's \s) " \xc2\x85" is one
     * pre-token and gives SP_C2 0x85 */
    ENC(b, " \xc2\x85w", 1, ' ', 0xc2, 0x85, 'w');
    ENC(b, " \xc2\xa9w", 1, SP_C2, 0xa9, 'w'); /* U+00A9 is punctuation: " \xc2\xa9" one pre-token */
    /* U+180E (\xe1\xa0\x8e) is not whitespace to GPT-2 (it is to PCRE2's \s): " \xe1\xa0\x8e" is
     * one pre-token */
    ENC(b, " \xe1\xa0\x8ew", 1, SP_E1, 0xa0, 0x8e, 'w');
    ENC(b, "x w", 1, 'x', SP_W);
    /* invalid UTF-8 is its own pre-token, bytes kept */
    ENC(b, "\xff\xfe he", 1, 0xff, 0xfe, ' ', HE);
    bpe_free(b);
}

/* ENC with an empty expectation cannot use the macro's array; check it separately. */
static void test_empty(void)
{
    Bpe *b = load_tiny();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    BpeIds v = {0};
    bpe_encode(b, "", 0, 1, &v);
    CU_ASSERT_EQUAL(v.n, 0);
    bpe_encode(b, "he", 2, 1, &v);
    bpe_encode(b, "he", 2, 1, &v); /* appends */
    CU_ASSERT_EQUAL(v.n, 2);
    CU_ASSERT(v.n == 2 && v.ids[0] == HE && v.ids[1] == HE);
    bpe_ids_free(&v);
    bpe_free(b);
}

static void test_special(void)
{
    Bpe *b = load_tiny();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    ENC(b, "<|endoftext|>", 1, EOT);
    ENC(b, "he<|endoftext|>he<|endoftext|><|endoftext|>", 1, HE, EOT, HE, EOT, EOT);
    /* off: "<|" "endoftext" "|>" as text */
    ENC(b, "<|endoftext|>", 0, '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|', '>');
    /* not quite the token */
    ENC(b, "<|endoftext|", 1, '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|');
    size_t len = 0;
    char err[256];
    int32_t ids[] = {HE, EOT, 'x'};
    char *s = bpe_decode(b, ids, 3, &len, err, sizeof err);
    CU_ASSERT(s && len == 16 && !strcmp(s, "he<|endoftext|>x"));
    free(s);
    bpe_free(b);
}

static void test_decode(void)
{
    Bpe *b = load_tiny();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    char err[256] = "";
    size_t len = 99;
    int32_t bad[] = {HELLO, 270};
    CU_ASSERT_PTR_NULL(bpe_decode(b, bad, 2, &len, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "270"));
    int32_t neg[] = {-1};
    CU_ASSERT_PTR_NULL(bpe_decode(b, neg, 1, &len, err, sizeof err));
    char *s = bpe_decode(b, NULL, 0, &len, err, sizeof err);
    CU_ASSERT(s && len == 0 && s[0] == 0);
    free(s);
    /* random bytes, valid UTF-8 or not: decode(encode(s)) == s, cache cold or warm */
    uint64_t r = 12345;
    char buf[700];
    static const char pick[] = "aabchelo wr'sd1 \t\n\r<|>";
    for (int it = 0; it < 3000; it++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t n = (r >> 33) % 600;
        for (size_t i = 0; i < n; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            unsigned x = (unsigned)(r >> 40);
            buf[i] = (x & 3) ? pick[(x >> 2) % (sizeof pick - 1)] : (char)(x >> 8);
        }
        BpeIds v = {0}, w = {0};
        bpe_encode(b, buf, n, it & 1, &v);
        if (it % 7 == 0)
            bpe_cache_clear(b);
        bpe_encode(b, buf, n, it & 1, &w);
        CU_ASSERT(v.n == w.n && (v.n == 0 || !memcmp(v.ids, w.ids, sizeof(int32_t) * v.n)));
        char *back = bpe_decode(b, v.ids, v.n, &len, err, sizeof err);
        CU_ASSERT_FATAL(back != NULL);
        CU_ASSERT(len == n && !memcmp(back, buf, n));
        free(back);
        bpe_ids_free(&v);
        bpe_ids_free(&w);
    }
    bpe_free(b);
}

/* encoder.py's bpe(), transcribed naively on byte strings: the lowest-ranked adjacent pair,
 * all its occurrences left to right, until no pair has a rank. Returns the symbol count. */
static int naive_bpe(const char *w, int n, char sym[][1024])
{
    int k = n;
    for (int i = 0; i < n; i++)
        sym[i][0] = w[i], sym[i][1] = 0;
    while (k > 1) {
        int best = -1;
        for (int i = 0; i + 1 < k; i++)
            for (int r = 0; r < N_MERGES; r++)
                if (!strcmp(sym[i], MERGES[r][0]) && !strcmp(sym[i + 1], MERGES[r][1]) && (best < 0 || r < best))
                    best = r;
        if (best < 0)
            break;
        int o = 0;
        for (int i = 0; i < k;) {
            if (i + 1 < k && !strcmp(sym[i], MERGES[best][0]) && !strcmp(sym[i + 1], MERGES[best][1])) {
                char t[1024];
                snprintf(t, sizeof t, "%s%s", sym[i], sym[i + 1]);
                strcpy(sym[o++], t);
                i += 2;
            } else {
                if (o != i)
                    memmove(sym[o], sym[i], strlen(sym[i]) + 1);
                o++, i++;
            }
        }
        k = o;
    }
    return k;
}

static void test_against_naive(void)
{
    Bpe *b = load_tiny();
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    static char sym[400][1024];
    static const char letters[] = "abcheloabaab";
    uint64_t r = 777;
    int checked = 0;
    for (int it = 0; it < 2000; it++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        int n = 1 + (int)((r >> 33) % (it % 10 == 0 ? 399 : 40)); /* some longer than the cache's 128 */
        char w[400];
        for (int i = 0; i < n; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            w[i] = letters[(r >> 40) % (sizeof letters - 1)];
        }
        int k = naive_bpe(w, n, sym);
        int32_t want[400];
        int ok = 1;
        for (int i = 0; i < k; i++) {
            want[i] = bpe_token_id(b, sym[i], strlen(sym[i]));
            ok &= want[i] >= 0;
        }
        CU_ASSERT(ok);
        /* letters only: the whole word is one pre-token */
        CU_ASSERT(enc_is(b, w, (size_t)n, 1, want, (size_t)k));
        checked++;
    }
    CU_ASSERT_EQUAL(checked, 2000);
    bpe_free(b);
}

/* Every layout of the same tokenizer loads, with the same identity and ids. */
static void test_layouts(void)
{
    Bpe *hf = load_tiny();
    CU_ASSERT_PTR_NOT_NULL_FATAL(hf);
    char err[512] = "";
    char *d = subdir("oa");
    char *v = vocab_json(-1, 0), *m = merges_txt(0); /* vocab.bpe without the #version line */
    write_text(d, "encoder.json", v);
    write_text(d, "vocab.bpe", m);
    free(v);
    free(m);
    Bpe *oa = NULL;
    CU_ASSERT_EQUAL(bpe_load(d, &oa, err, sizeof err), 0);
    free(d);
    for (int pairs = 0; pairs < 2; pairs++) {
        d = subdir(pairs ? "tj2" : "tj1");
        char *t = tokenizer_json(pairs);
        write_text(d, "tokenizer.json", t);
        free(t);
        Bpe *tj = NULL;
        int rc = bpe_load(d, &tj, err, sizeof err);
        if (rc)
            printf("\n%s\n", err);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(bpe_identity(tj), bpe_identity(hf));
        ENC(tj, "hello world<|endoftext|>abab", 1, HELLO, SP_WOR, 'l', 'd', EOT, AB, AB);
        bpe_free(tj);
        free(d);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(oa);
    CU_ASSERT_STRING_EQUAL(bpe_identity(oa), bpe_identity(hf));
    ENC(oa, "hello world", 1, HELLO, SP_WOR, 'l', 'd');
    /* a different merge list is a different tokenizer */
    d = subdir("other");
    v = vocab_json(-1, 0);
    m = merges_txt(1);
    m[strlen(m) - 5] = 0; /* drop the last merge ("a b") */
    strcat(m, "\n");
    write_text(d, "vocab.json", v);
    write_text(d, "merges.txt", m);
    free(v);
    free(m);
    Bpe *other = NULL;
    CU_ASSERT_EQUAL(bpe_load(d, &other, err, sizeof err), 0);
    if (other) {
        CU_ASSERT_EQUAL(bpe_n_merges(other), N_MERGES - 1);
        CU_ASSERT(strcmp(bpe_identity(other), bpe_identity(hf)) != 0);
        ENC(other, "abab", 1, 'a', 'b', 'a', 'b');
    }
    bpe_free(other);
    free(d);
    bpe_free(oa);
    bpe_free(hf);
}

/* bpe_load on vocab/merges text must fail, naming file (and what) in the message. */
static void expect_error(const char *name, const char *vocab, const char *merges, const char *file, const char *what)
{
    char *d = subdir(name);
    write_text(d, "vocab.json", vocab);
    write_text(d, "merges.txt", merges);
    char err[512] = "";
    Bpe *b = (Bpe *)1;
    int rc = bpe_load(d, &b, err, sizeof err);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_PTR_NULL(b);
    int named = strstr(err, file) != NULL && (!what || strstr(err, what) != NULL);
    if (rc != -1 || !named)
        printf("\n%s: rc %d, message \"%s\" (want %s and %s)\n", name, rc, err, file, what ? what : "-");
    CU_ASSERT(named);
    if (rc == 0)
        bpe_free(b);
    rm_dir(d);
    free(d);
}

static void test_malformed(void)
{
    char *v = vocab_json(-1, 0), *m = merges_txt(1);
    char *vf = xasprintf("%s/%s/vocab.json", g_dir, "e_json");
    expect_error("e_json", "{\"a\": 1,\n \"b\" 2}", m, vf, "line 2");
    free(vf);
    expect_error("e_notobj", "[1, 2]", m, "vocab.json", "object");
    expect_error("e_id", "{\"a\": \"one\"}", m, "vocab.json", "\"a\"");
    expect_error("e_negid", "{\"a\": -3}", m, "vocab.json", "\"a\"");
    expect_error("e_hugeid", "{\"a\": 99999999999}", m, "vocab.json", "\"a\"");
    expect_error("e_empty", "{}", m, "vocab.json", "empty");
    expect_error("e_sparse", "{\"a\": 1000000}", m, "vocab.json", "dense");
    char *dup = vocab_json(-1, 1);
    expect_error("e_dupid", dup, m, "vocab.json", "id 300");
    free(dup);
    char *nobyte = vocab_json(0, 0);
    expect_error("e_nobyte", nobyte, m, "vocab.json", "byte 0x00");
    free(nobyte);
    expect_error("e_alpha", "{\"\\u4e2d\": 0}", m, "vocab.json", "alphabet");
    expect_error("e_dupkey", "{\"a\": 0, \"a\": 1}", m, "vocab.json", "duplicate");
    /* merges */
    char *mm = xasprintf("%s/%s/merges.txt", g_dir, "e_one");
    expect_error("e_one", v, "#version: 0.2\nh e\nll\n", mm, "line 3");
    free(mm);
    expect_error("e_three", v, "h e l\n", "merges.txt", "line 1");
    expect_error("e_blank", v, "h e\n\nl l\n", "merges.txt", "line 2");
    expect_error("e_unknown", v, "h e\nhe zz\n", "merges.txt", "\"zz\"");
    expect_error("e_result", v, "a c\n", "merges.txt", "line 1");
    expect_error("e_dupmerge", v, "h e\nl l\nh e\n", "merges.txt", "duplicate");
    /* no files at all */
    char *d = subdir("e_nothing");
    char err[512] = "";
    Bpe *b = NULL;
    CU_ASSERT_EQUAL(bpe_load(d, &b, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, d));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no tokenizer files"));
    rm_dir(d);
    free(d);
    /* tokenizer.json */
    const char *bad_tj[][2] = {
        {"{\"model\": 3}", "model"},
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}, \"merges\": []}}", "BPE"},
        {"{\"model\": {\"vocab\": {}, \"merges\": {}}}", "merges"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [\"a\"]}}", "model.merges[0]"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": [[\"a\"]]}}", "model.merges[0]"},
        {"{\"model\": {\"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": \"x\"}]}", "added_tokens[0]"},
    };
    for (size_t i = 0; i < sizeof bad_tj / sizeof bad_tj[0]; i++) {
        b = (Bpe *)1;
        CU_ASSERT_EQUAL(bpe_load_tokenizer_json(bad_tj[i][0], strlen(bad_tj[i][0]), "t.json", &b, err, sizeof err), -1);
        CU_ASSERT_PTR_NULL(b);
        CU_ASSERT(strstr(err, "t.json") && strstr(err, bad_tj[i][1]));
    }
    free(v);
    free(m);
}

/* Truncations and byte flips of valid files: each load succeeds or fails cleanly. */
static void test_mutations(void)
{
    char *v = vocab_json(-1, 0), *m = merges_txt(1), *t = tokenizer_json(1);
    size_t nv = strlen(v), nm = strlen(m), nt = strlen(t);
    char err[512];
    int loaded = 0, failed = 0;
    for (size_t cut = 0; cut <= nm; cut++) { /* every prefix of merges.txt (no NUL: length-bound) */
        Bpe *b = NULL;
        char *copy = xmalloc(cut ? cut : 1);
        memcpy(copy, m, cut);
        if (bpe_load_vocab_merges(v, nv, "v", copy, cut, "m", &b, err, sizeof err) == 0) {
            loaded++;
            BpeIds ids = {0};
            bpe_encode(b, "hello world abab", 16, 1, &ids);
            CU_ASSERT(ids.n > 0);
            bpe_ids_free(&ids);
            bpe_free(b);
        } else {
            failed++;
            CU_ASSERT_PTR_NULL(b);
        }
        free(copy);
    }
    CU_ASSERT(loaded > 5 && failed > 5);
    uint64_t r = 99;
    for (int it = 0; it < 600; it++) {
        int which = it % 3;
        const char *src = which == 0 ? v : which == 1 ? m : t;
        size_t n = which == 0 ? nv : which == 1 ? nm : nt;
        char *c = xmalloc(n);
        memcpy(c, src, n);
        for (int k = 0; k < 1 + it % 4; k++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            c[(r >> 33) % n] = (char)(r >> 20);
        }
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t len = it % 5 == 0 ? (r >> 33) % n : n;
        Bpe *b = NULL;
        int rc = which == 2 ? bpe_load_tokenizer_json(c, len, "t", &b, err, sizeof err)
                 : which == 0 ? bpe_load_vocab_merges(c, len, "v", m, nm, "m", &b, err, sizeof err)
                              : bpe_load_vocab_merges(v, nv, "v", c, len, "m", &b, err, sizeof err);
        CU_ASSERT((rc == 0) == (b != NULL));
        if (b) {
            BpeIds ids = {0};
            bpe_encode(b, c, len, 1, &ids);
            size_t dl = 0;
            char *back = bpe_decode(b, ids.ids, ids.n, &dl, err, sizeof err);
            CU_ASSERT(back && dl == len && !memcmp(back, c, len));
            free(back);
            bpe_ids_free(&ids);
        }
        bpe_free(b);
        free(c);
    }
    free(v);
    free(m);
    free(t);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/prefer-test-bpe.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("bpe", NULL, NULL);
    CU_add_test(s, "hand-worked ids", test_hand_ids);
    CU_add_test(s, "empty input, appending", test_empty);
    CU_add_test(s, "<|endoftext|> on and off", test_special);
    CU_add_test(s, "decode: bad ids, random bytes round trip, cache", test_decode);
    CU_add_test(s, "encoder.py's bpe() transcribed, on random words", test_against_naive);
    CU_add_test(s, "vocab.json, encoder.json, tokenizer.json: same identity", test_layouts);
    CU_add_test(s, "malformed files: -1 naming the file", test_malformed);
    CU_add_test(s, "truncated and mutated files", test_mutations);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    static const char *const dirs[] = {"hf", "oa", "tj1", "tj2", "other"};
    for (int i = 0; i < 5; i++) {
        char *d = xasprintf("%s/%s", g_dir, dirs[i]);
        rm_dir(d);
        free(d);
    }
    rmdir(g_dir);
    return fails ? 1 : 0;
}

/* test_fuzz_regressions.c: the readers of untrusted input on the fuzzers' inputs, without
 * clang or libFuzzer (runs in `make check`; under `make SANITIZE=1` with ASan and UBSan).
 *
 * 1. The seeds of fuzz/corpus/ are valid inputs and each reader accepts them with the
 *    expected result: the safetensors seeds load into the fuzzer's tiny GPT-2 with known
 *    values, the JSONL lines parse in their layout, the tokenizer seeds load and encode a
 *    text to known ids, the config seeds load.
 * 2. Hostile inputs written here are refused with a message and, for safetensors, leave the
 *    parameters untouched: header lengths past the file or near 2^64, data_offsets past the
 *    data, reversed, negative or overlapping, shapes whose byte size overflows, a truncated
 *    file; deeply nested and NUL-holding JSONL; vocabularies missing a byte or with a merge
 *    of unknown tokens; bad config syntax and values.
 * 3. Every file of fuzz/corpus/T/ and fuzz/regressions/T/ (inputs that once crashed a
 *    target, kept as they were found) goes through the fuzz target's own
 *    LLVMFuzzerTestOneInput (fuzz/fuzz_T.c, included here under another name).
 * Paths are relative to the top of the tree (make check runs there). Runs without MPI.
 */
#define LLVMFuzzerTestOneInput fuzz_config_one
#include "../fuzz/fuzz_config.c" /* first: it defines _GNU_SOURCE */
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_safetensors_one
#include "../fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_jsonl_one
#include "../fuzz/fuzz_jsonl.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_one
#include "../fuzz/fuzz_tokenizer.c"
#undef LLVMFuzzerTestOneInput

#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *p;
    size_t n;
} Buf;

static Buf read_all(const char *path)
{
    Buf b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return b;
    }
    size_t cap = 4096;
    b.p = xmalloc(cap);
    size_t r;
    while ((r = fread(b.p + b.n, 1, cap - b.n, f)) > 0) {
        b.n += r;
        if (b.n == cap)
            b.p = xrealloc(b.p, cap *= 2);
    }
    fclose(f);
    return b;
}

/* Call fn on every regular file of dir (sorted by readdir order); returns the count, -1 if
 * the directory is missing. */
static int each_file(const char *dir, void (*fn)(const char *path, const Buf *b, void *ctx), void *ctx)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        Buf b = read_all(path);
        if (!b.p)
            continue;
        fn(path, &b, ctx);
        free(b.p);
        count++;
    }
    closedir(d);
    return count;
}

/* ---------------------------------------------------------------- safetensors */

static Gpt tiny;

static void tiny_init(void)
{
    if (!tiny.params) {
        GptDims d = {.vocab_size = 5, .context = 4, .n_layer = 1, .n_head = 2, .n_embd = 4};
        gpt_init_seq(&tiny, &d, 1, 1);
    }
}

static void st_seed(const char *path, const Buf *b, void *ctx)
{
    char err[512] = "";
    memset(tiny.params, 0, tiny.num_params * sizeof(float));
    int rc = hf_parse_safetensors(b->p, b->n, &tiny, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", path, err);
    CU_ASSERT_EQUAL(rc, 0);
    /* make_seeds.py: value k of the file is ((k % 7) - 3) / 8, wte first */
    CU_ASSERT_EQUAL(tiny.p.wte[0], -0.375f);
    CU_ASSERT_EQUAL(tiny.p.wte[1], -0.25f);
    CU_ASSERT_EQUAL(tiny.p.wte[6], 0.375f);
    ++*(int *)ctx;
}

static void test_safetensors_seeds(void)
{
    tiny_init();
    int n = 0;
    CU_ASSERT_EQUAL(each_file("fuzz/corpus/safetensors", st_seed, &n), 2);
    CU_ASSERT_EQUAL(n, 2);
}

/* A safetensors image: 8-byte length, header, ndata zero bytes. */
static Buf st_image(const char *header, size_t ndata)
{
    size_t h = strlen(header);
    Buf b = {xcalloc(8 + h + ndata + 1, 1), 8 + h + ndata};
    for (int i = 0; i < 8; i++)
        b.p[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b.p + 8, header, h);
    return b;
}

/* hf_parse_safetensors on b must fail with a message containing want, params untouched. */
static void st_refused(Buf b, const char *want)
{
    tiny_init();
    for (size_t i = 0; i < tiny.num_params; i++)
        tiny.params[i] = 0.5f;
    char err[512] = "";
    int rc = hf_parse_safetensors(b.p, b.n, &tiny, err, sizeof err);
    CU_ASSERT_EQUAL(rc, -1);
    if (!strstr(err, want)) {
        fprintf(stderr, "expected \"%s\" in \"%s\"\n", want, err);
        CU_FAIL("message");
    }
    size_t changed = 0;
    for (size_t i = 0; i < tiny.num_params; i++)
        changed += tiny.params[i] != 0.5f;
    CU_ASSERT_EQUAL(changed, 0);
    free(b.p);
}

static void test_safetensors_hostile(void)
{
    Buf b = {xcalloc(4, 1), 4};
    st_refused(b, "too short");
    b = st_image("{}", 0);
    for (int i = 0; i < 8; i++)
        b.p[i] = 0xff; /* header length 2^64 - 1 */
    st_refused(b, "larger than the rest of the file");
    b = st_image("{\"a\":1}  ", 0);
    b.p[0]++; /* one byte past the end */
    st_refused(b, "larger than the rest of the file");
    st_refused(st_image("{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[5,4],\"data_offsets\":[0,1000]}}", 80),
               "wte.weight");
    st_refused(st_image("{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8), "wte.weight");
    st_refused(st_image("{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8),
               "wte.weight");
    st_refused(st_image("{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                        "\"data_offsets\":[0,0]}}",
                        0),
               "wte.weight");
    st_refused(st_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[20],\"data_offsets\":[0,80]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[20],\"data_offsets\":[40,120]}}",
                        120),
               "tile");
    st_refused(st_image("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 16), "the file has");
    Buf seed = read_all("fuzz/corpus/safetensors/f32_buffers");
    CU_ASSERT_PTR_NOT_NULL_FATAL(seed.p);
    seed.n--; /* truncated by one byte */
    st_refused(seed, "");
}

/* ---------------------------------------------------------------- JSONL */

static void jsonl_seed(const char *path, const Buf *b, void *ctx)
{
    const char *base = strrchr(path, '/') + 1;
    JsonlFormat want = !strncmp(base, "explicit", 8)         ? JSONL_EXPLICIT
                       : !strncmp(base, "hh", 2)             ? JSONL_IMPLICIT
                       : !strncmp(base, "conversational", 14) ? JSONL_CONVERSATIONAL
                                                              : JSONL_SCORED;
    CU_ASSERT_EQUAL(jsonl_detect_line((const char *)b->p, b->n), want);
    JsonlParseOptions o = {.format = want, .tmpl = JSONL_TEMPLATE_HH, .score_key = "auto"};
    JsonlRecord rec;
    char err[512] = "";
    int rc = jsonl_parse_line((const char *)b->p, b->n, &o, &rec, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", path, err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(rec.n >= 1 && rec.prompt && rec.prompt[0]);
    jsonl_record_free(&rec);
    ++*(int *)ctx;
}

static void test_jsonl_seeds(void)
{
    int n = 0;
    CU_ASSERT_EQUAL(each_file("fuzz/corpus/jsonl", jsonl_seed, &n), 8);
    CU_ASSERT_EQUAL(n, 8);
}

static void jsonl_refused(const char *line, size_t len, const char *want)
{
    JsonlParseOptions o = {.format = JSONL_EXPLICIT, .tmpl = JSONL_TEMPLATE_HH, .score_key = "auto"};
    JsonlRecord rec;
    char err[512] = "";
    CU_ASSERT_EQUAL(jsonl_parse_line(line, len, &o, &rec, err, sizeof err), -1);
    if (!strstr(err, want)) {
        fprintf(stderr, "expected \"%s\" in \"%s\"\n", want, err);
        CU_FAIL("message");
    }
    CU_ASSERT_PTR_NULL(rec.prompt);
}

static void test_jsonl_hostile(void)
{
    size_t depth = 100000;
    char *deep = xmalloc(depth + 1);
    memset(deep, '[', depth);
    deep[depth] = 0;
    jsonl_refused(deep, depth, "invalid JSON");
    CU_ASSERT_EQUAL(jsonl_detect_line(deep, depth), JSONL_AUTO);
    free(deep);
    static const char nul[] = "{\"prompt\": \"a\", \"chosen\": \"b\0c\", \"rejected\": \"d\"}";
    jsonl_refused(nul, sizeof nul - 1, "");
    static const char bad_utf8[] = "{\"prompt\": \"\xff\xfe\", \"chosen\": \"b\", \"rejected\": \"d\"}";
    jsonl_refused(bad_utf8, sizeof bad_utf8 - 1, "invalid JSON");
    static const char no_rejected[] = "{\"prompt\": \"a\", \"chosen\": \"b\"}";
    jsonl_refused(no_rejected, sizeof no_rejected - 1, "\"rejected\"");
    jsonl_refused("", 0, "");
}

/* ---------------------------------------------------------------- tokenizer */

static void tok_seed(const char *path, const Buf *b, void *ctx)
{
    const char *p = (const char *)b->p + 1;
    size_t n = b->n - 1;
    Bpe *t = NULL;
    char err[512] = "";
    int rc;
    if (b->p[0] == 0) {
        rc = bpe_load_tokenizer_json(p, n, "tokenizer.json", &t, err, sizeof err);
    } else {
        const char *nul = memchr(p, 0, n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(nul);
        rc = bpe_load_vocab_merges(p, (size_t)(nul - p), "vocab.json", nul + 1, n - (size_t)(nul - p) - 1,
                                   "merges.txt", &t, err, sizeof err);
    }
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", path, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    /* make_seeds.py: bytes 0..255, then "Ġw" "or" "Ġwor" "ld" "He" "Hel", <|endoftext|> */
    static const int32_t want[] = {261, 108, 111, 258, 259, 32, 262};
    static const char text[] = "Hello world <|endoftext|>";
    BpeIds ids = {0};
    bpe_encode(t, text, sizeof text - 1, 1, &ids);
    CU_ASSERT_EQUAL(ids.n, sizeof want / sizeof want[0]);
    CU_ASSERT(ids.n == sizeof want / sizeof want[0] && !memcmp(ids.ids, want, sizeof want));
    bpe_ids_free(&ids);
    bpe_free(t);
    ++*(int *)ctx;
}

static void test_tokenizer_seeds(void)
{
    int n = 0;
    CU_ASSERT_EQUAL(each_file("fuzz/corpus/tokenizer", tok_seed, &n), 3);
    CU_ASSERT_EQUAL(n, 3);
}

static void test_tokenizer_hostile(void)
{
    Bpe *t = NULL;
    char err[512] = "";
    /* a vocabulary without the 256 byte tokens */
    static const char v1[] = "{\"a\": 0, \"b\": 1}";
    CU_ASSERT_EQUAL(bpe_load_vocab_merges(v1, sizeof v1 - 1, "vocab.json", "", 0, "merges.txt", &t, err, sizeof err),
                    -1);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT(strstr(err, "vocab.json") != NULL);
    /* the seed's vocabulary with a merge of a token it does not have, and with a bad id */
    Buf b = read_all("fuzz/corpus/tokenizer/vocab_merges");
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.p);
    const char *p = (const char *)b.p + 1, *nul = memchr(p, 0, b.n - 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nul);
    static const char m[] = "#version: 0.2\nzz qq\n";
    err[0] = 0;
    CU_ASSERT_EQUAL(bpe_load_vocab_merges(p, (size_t)(nul - p), "vocab.json", m, sizeof m - 1, "merges.txt", &t, err,
                                          sizeof err),
                    -1);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT(strstr(err, "merges.txt") != NULL);
    free(b.p);
    static const char tj[] = "{\"model\": {\"vocab\": {\"a\": -7}, \"merges\": [[\"a\"]]}}";
    err[0] = 0;
    CU_ASSERT_EQUAL(bpe_load_tokenizer_json(tj, sizeof tj - 1, "tokenizer.json", &t, err, sizeof err), -1);
    CU_ASSERT_PTR_NULL(t);
    CU_ASSERT(strstr(err, "tokenizer.json") != NULL);
}

/* ---------------------------------------------------------------- config */

static void cfg_seed(const char *path, const Buf *b, void *ctx)
{
    PreferConfig cfg;
    config_defaults(&cfg);
    char err[1024] = "";
    int rc = config_load_checked(&cfg, path, NULL, 0, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", path, err);
    CU_ASSERT_EQUAL(rc, 0);
    config_free(&cfg);
    ++*(int *)ctx;
}

static void test_config_seeds(void)
{
    int n = 0;
    CU_ASSERT_EQUAL(each_file("fuzz/corpus/config", cfg_seed, &n), 3);
    CU_ASSERT_EQUAL(n, 3);
}

/* The text through a file, as the fuzz target does: must fail naming want. */
static void cfg_refused(const char *text, const char *want)
{
    char path[] = "/tmp/prefer-fuzzreg-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    PreferConfig cfg;
    config_defaults(&cfg);
    char err[1024] = "";
    CU_ASSERT_EQUAL(config_load_checked(&cfg, path, NULL, 0, err, sizeof err), -1);
    if (!strstr(err, want)) {
        fprintf(stderr, "expected \"%s\" in \"%s\"\n", want, err);
        CU_FAIL("message");
    }
    config_free(&cfg);
    unlink(path);
}

static void test_config_hostile(void)
{
    cfg_refused("model: { n_layer = ; };", "syntax error");
    cfg_refused("model: { n_layer = 99999999999999999999; };", "");
    cfg_refused("model: { n_layer = \"six\"; };", "model.n_layer");
    cfg_refused("model: { n_layer = 3; n_layer = 4; };", "");
    cfg_refused("model = 3;", "model");
    cfg_refused("model: { a: { b: { c: { d = 1; }; }; }; };", "model.a");
}

/* ---------------------------------------------------------------- replay through the targets */

typedef int (*TargetFn)(const uint8_t *, size_t);

static void replay_one(const char *path, const Buf *b, void *ctx)
{
    (*(TargetFn *)ctx)(b->p, b->n);
}

static void test_replay(void)
{
    static const struct {
        const char *name;
        TargetFn fn;
    } t[] = {{"safetensors", fuzz_safetensors_one},
             {"jsonl", fuzz_jsonl_one},
             {"tokenizer", fuzz_tokenizer_one},
             {"config", fuzz_config_one}};
    int total = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char dir[256];
        TargetFn fn = t[i].fn;
        snprintf(dir, sizeof dir, "fuzz/corpus/%s", t[i].name);
        int n = each_file(dir, replay_one, &fn);
        CU_ASSERT(n > 0);
        total += n > 0 ? n : 0;
        snprintf(dir, sizeof dir, "fuzz/regressions/%s", t[i].name);
        n = each_file(dir, replay_one, &fn); /* may not exist: nothing found yet */
        total += n > 0 ? n : 0;
    }
    printf("\n  replayed %d inputs through the fuzz targets\n", total);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("fuzz_regressions", NULL, NULL);
    CU_add_test(s, "safetensors seeds", test_safetensors_seeds);
    CU_add_test(s, "safetensors hostile", test_safetensors_hostile);
    CU_add_test(s, "jsonl seeds", test_jsonl_seeds);
    CU_add_test(s, "jsonl hostile", test_jsonl_hostile);
    CU_add_test(s, "tokenizer seeds", test_tokenizer_seeds);
    CU_add_test(s, "tokenizer hostile", test_tokenizer_hostile);
    CU_add_test(s, "config seeds", test_config_seeds);
    CU_add_test(s, "config hostile", test_config_hostile);
    CU_add_test(s, "replay", test_replay);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    gpt_free(&tiny);
    gpt_free(&model); /* fuzz_safetensors.c's */
    CU_cleanup_registry();
    return fails != 0;
}

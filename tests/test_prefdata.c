/* test_prefdata.c: preference dataset files: round trips and every validation error.
 *
 * Corrupt files are made by writing a valid file and then replacing one dataset or
 * attribute with raw HDF5 calls, so each test breaks exactly one rule. Every failure must
 * return -1, leave the PrefData zeroed, and name the file and the dataset at fault.
 * Runs without MPI. main() returns non-zero on any failure.
 */
#define _GNU_SOURCE
#include "prefer/h5util.h"
#include "prefer/prefdata.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64];
static int g_file_no;

/* A fresh file name in the test directory; caller frees. */
static char *new_path(const char *tag)
{
    return xasprintf("%s/%s-%d.h5", g_dir, tag, g_file_no++);
}

/* 3 prompts (lengths 2, 3, 1), 6 responses (2 per prompt), pairs (0,1) (3,2) (4,5). */
static void make_small(PrefData *d, int with_scores, int with_pairs)
{
    memset(d, 0, sizeof *d);
    d->vocab_size = 16;
    d->n_prompts = 3;
    d->n_responses = 6;
    d->n_pairs = with_pairs ? 3 : 0;
    static const int64_t po[4] = {0, 2, 5, 6};
    static const int64_t ro[7] = {0, 1, 3, 6, 7, 9, 10};
    d->prompt_offsets = xmalloc(sizeof po);
    memcpy(d->prompt_offsets, po, sizeof po);
    d->response_offsets = xmalloc(sizeof ro);
    memcpy(d->response_offsets, ro, sizeof ro);
    d->prompt_tokens = xmalloc(6 * sizeof(int32_t));
    for (int i = 0; i < 6; i++)
        d->prompt_tokens[i] = (i * 5 + 1) % 16;
    d->response_tokens = xmalloc(10 * sizeof(int32_t));
    for (int i = 0; i < 10; i++)
        d->response_tokens[i] = (i * 7 + 3) % 16;
    d->response_tokens[9] = 15; /* the largest valid id */
    d->response_prompt = xmalloc(6 * sizeof(int64_t));
    for (int i = 0; i < 6; i++)
        d->response_prompt[i] = i / 2;
    if (with_scores) {
        d->response_score = xmalloc(6 * sizeof(float));
        for (int i = 0; i < 6; i++)
            d->response_score[i] = 0.25f * (float)i - 0.5f;
    }
    if (with_pairs) {
        static const int64_t ch[3] = {0, 3, 4}, rj[3] = {1, 2, 5};
        d->pair_chosen = xmalloc(sizeof ch);
        d->pair_rejected = xmalloc(sizeof rj);
        memcpy(d->pair_chosen, ch, sizeof ch);
        memcpy(d->pair_rejected, rj, sizeof rj);
    }
}

/* Large enough to be chunked and compressed (> 4096 elements per token array). */
static void make_big(PrefData *d)
{
    memset(d, 0, sizeof *d);
    int64_t P = 500, K = 4, Lp = 10, Lr = 7;
    d->vocab_size = 4096;
    d->n_prompts = P;
    d->n_responses = P * K;
    d->n_pairs = P * 2;
    d->prompt_offsets = xmalloc((size_t)(P + 1) * sizeof(int64_t));
    d->prompt_tokens = xmalloc((size_t)(P * Lp) * sizeof(int32_t));
    d->response_offsets = xmalloc((size_t)(P * K + 1) * sizeof(int64_t));
    d->response_tokens = xmalloc((size_t)(P * K * Lr) * sizeof(int32_t));
    d->response_prompt = xmalloc((size_t)(P * K) * sizeof(int64_t));
    d->response_score = xmalloc((size_t)(P * K) * sizeof(float));
    d->pair_chosen = xmalloc((size_t)d->n_pairs * sizeof(int64_t));
    d->pair_rejected = xmalloc((size_t)d->n_pairs * sizeof(int64_t));
    for (int64_t i = 0; i <= P; i++)
        d->prompt_offsets[i] = i * Lp;
    for (int64_t i = 0; i < P * Lp; i++)
        d->prompt_tokens[i] = (int32_t)((i * 2654435761u) % 4096);
    for (int64_t i = 0; i <= P * K; i++)
        d->response_offsets[i] = i * Lr;
    for (int64_t i = 0; i < P * K * Lr; i++)
        d->response_tokens[i] = (int32_t)((i * 40503u + 7) % 4096);
    for (int64_t i = 0; i < P * K; i++) {
        d->response_prompt[i] = i / K;
        d->response_score[i] = sinf((float)i);
    }
    for (int64_t p = 0; p < P; p++) {
        d->pair_chosen[2 * p] = p * K;
        d->pair_rejected[2 * p] = p * K + 1;
        d->pair_chosen[2 * p + 1] = p * K + 3;
        d->pair_rejected[2 * p + 1] = p * K + 2;
    }
}

static int same_i64(const int64_t *a, const int64_t *b, int64_t n)
{
    return n == 0 || (a && b && memcmp(a, b, (size_t)n * sizeof *a) == 0);
}

static void assert_same(const PrefData *a, const PrefData *b)
{
    CU_ASSERT_EQUAL(a->n_prompts, b->n_prompts);
    CU_ASSERT_EQUAL(a->n_responses, b->n_responses);
    CU_ASSERT_EQUAL(a->n_pairs, b->n_pairs);
    CU_ASSERT_EQUAL(a->vocab_size, b->vocab_size);
    if (a->n_prompts != b->n_prompts || a->n_responses != b->n_responses || a->n_pairs != b->n_pairs)
        return;
    CU_ASSERT(same_i64(a->prompt_offsets, b->prompt_offsets, a->n_prompts + 1));
    CU_ASSERT(same_i64(a->response_offsets, b->response_offsets, a->n_responses + 1));
    CU_ASSERT(same_i64(a->response_prompt, b->response_prompt, a->n_responses));
    CU_ASSERT(same_i64(a->pair_chosen, b->pair_chosen, a->n_pairs));
    CU_ASSERT(same_i64(a->pair_rejected, b->pair_rejected, a->n_pairs));
    int64_t tp = a->prompt_offsets[a->n_prompts], tr = a->response_offsets[a->n_responses];
    CU_ASSERT(tp == 0 || memcmp(a->prompt_tokens, b->prompt_tokens, (size_t)tp * 4) == 0);
    CU_ASSERT(tr == 0 || memcmp(a->response_tokens, b->response_tokens, (size_t)tr * 4) == 0);
    CU_ASSERT_EQUAL(a->response_score == NULL, b->response_score == NULL);
    if (a->response_score && b->response_score)
        CU_ASSERT(a->n_responses == 0 ||
                  memcmp(a->response_score, b->response_score, (size_t)a->n_responses * 4) == 0);
}

static void roundtrip(const PrefData *d, const char *cfg)
{
    char *p = new_path("rt");
    prefdata_write(p, d, cfg);
    char *tmp = h5u_tmp_name(p);
    CU_ASSERT(access(tmp, F_OK) != 0); /* the temporary name is gone */
    free(tmp);
    PrefData r;
    char err[1024] = "";
    int rc = prefdata_read_checked(p, d->vocab_size, &r, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        printf("\n  unexpected error: %s\n", err);
    else
        assert_same(d, &r);
    prefdata_free(&r);
    free(p);
}

static void test_roundtrip(void)
{
    PrefData d;
    make_small(&d, 1, 1);
    roundtrip(&d, "model: { vocab_size = 16; };\n");
    prefdata_free(&d);
    make_small(&d, 0, 1);
    roundtrip(&d, NULL);
    prefdata_free(&d);
    make_small(&d, 1, 0); /* N = 0 pairs: a supervised corpus */
    roundtrip(&d, "");
    prefdata_free(&d);
    make_big(&d);
    roundtrip(&d, "big");
    prefdata_free(&d);

    /* Completely empty: 0 prompts, 0 responses, 0 pairs. */
    PrefData e = {0};
    int64_t zero = 0;
    e.vocab_size = 3;
    e.prompt_offsets = &zero;
    e.response_offsets = &zero;
    roundtrip(&e, NULL);
}

static void test_attributes(void)
{
    PrefData d;
    make_small(&d, 1, 1);
    char *p = new_path("attrs");
    prefdata_write(p, &d, "a = 1;\nb = \"x\";\n");
    prefdata_free(&d);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    char *s = h5u_read_attr_str(f, "format");
    CU_ASSERT(s && !strcmp(s, PREFDATA_FORMAT));
    free(s);
    s = h5u_read_attr_str(f, "producer");
    CU_ASSERT(s && !strcmp(s, "prefer " PREFER_VERSION));
    free(s);
    s = h5u_read_attr_str(f, "config");
    CU_ASSERT(s && !strcmp(s, "a = 1;\nb = \"x\";\n"));
    free(s);
    s = h5u_read_attr_str(f, "created");
    CU_ASSERT(s && strlen(s) == 20 && s[10] == 'T' && s[19] == 'Z');
    free(s);
    int64_t v = 0;
    CU_ASSERT(h5u_read_attr_i64(f, "version", &v) == 0 && v == PREFDATA_VERSION);
    CU_ASSERT(h5u_read_attr_i64(f, "vocab_size", &v) == 0 && v == 16);
    CU_ASSERT(h5u_read_attr_i64(f, "format", &v) == -1);    /* string, not integer */
    CU_ASSERT(h5u_read_attr_str(f, "vocab_size") == NULL);  /* integer, not string */
    CU_ASSERT(h5u_read_attr_str(f, "no_such_attr") == NULL);
    double x = 0;
    CU_ASSERT(h5u_read_attr_f64(f, "vocab_size", &x) == 0 && x == 16.0);
    H5Fclose(f);
    free(p);
}

/* ---- raw HDF5 surgery ---------------------------------------------------------------- */

static void replace_ds(const char *path, const char *ds, hid_t type, int ndim, const hsize_t *dims,
                       const void *data)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    if (H5Lexists(f, ds, H5P_DEFAULT) > 0)
        CU_ASSERT(H5Ldelete(f, ds, H5P_DEFAULT) >= 0);
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(f, ds, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(d >= 0);
    hsize_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= dims[i];
    if (n > 0)
        CU_ASSERT(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

static void replace_i64(const char *path, const char *ds, const int64_t *v, hsize_t n)
{
    replace_ds(path, ds, H5T_NATIVE_INT64, 1, &n, v);
}

static void replace_i32(const char *path, const char *ds, const int32_t *v, hsize_t n)
{
    replace_ds(path, ds, H5T_NATIVE_INT32, 1, &n, v);
}

static void delete_link(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    H5Fclose(f);
}

static void delete_attr(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(H5Adelete(f, name) >= 0);
    H5Fclose(f);
}

static void set_attr_str(const char *path, const char *name, const char *v)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    h5u_attr_str(f, name, v);
    H5Fclose(f);
}

static void set_attr_i64(const char *path, const char *name, int64_t v)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    h5u_attr_i64(f, name, v);
    H5Fclose(f);
}

/* A valid small file (scores and pairs) under a fresh name; caller frees. */
static char *valid_file(const char *tag)
{
    PrefData d;
    make_small(&d, 1, 1);
    char *p = new_path(tag);
    prefdata_write(p, &d, "x = 1;");
    prefdata_free(&d);
    return p;
}

static int is_zeroed(const PrefData *d)
{
    PrefData z;
    memset(&z, 0, sizeof z);
    return memcmp(d, &z, sizeof z) == 0;
}

/* Reading path must fail naming the file and containing each non-NULL needle. */
static void expect_fail(const char *path, int64_t limit, const char *n1, const char *n2)
{
    PrefData d;
    char err[1024] = "";
    int rc = prefdata_read_checked(path, limit, &d, err, sizeof err);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT(is_zeroed(&d));
    int ok = rc == -1 && strstr(err, path) && (!n1 || strstr(err, n1)) && (!n2 || strstr(err, n2));
    CU_ASSERT(ok);
    if (getenv("PREFER_TEST_VERBOSE"))
        printf("\n    %s", err);
    if (!ok)
        printf("\n  %s: message '%s' lacks '%s' / '%s'\n", path, err, n1 ? n1 : "",
               n2 ? n2 : "");
    if (rc == 0)
        prefdata_free(&d);
}

static void test_foreign_files(void)
{
    char *p = new_path("missing");
    expect_fail(p, 0, "cannot open", NULL);
    free(p);

    p = new_path("text");
    FILE *fp = fopen(p, "w");
    fputs("prompt,response\nhello,world\n", fp);
    fclose(fp);
    expect_fail(p, 0, "not an HDF5 file", NULL);
    free(p);

    p = new_path("empty");
    fp = fopen(p, "w");
    fclose(fp);
    expect_fail(p, 0, "not an HDF5 file", NULL);
    free(p);

    expect_fail(g_dir, 0, "directory", NULL);

    /* HDF5 but not ours: no format attribute. */
    p = new_path("foreign");
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
    expect_fail(p, 0, "not a prefer dataset (format attribute missing; make one with `prefer synth`",
                "docs/formats.md");
    free(p);

    p = valid_file("fmt");
    set_attr_str(p, "format", "prefer.checkpoint");
    expect_fail(p, 0, "format attribute is 'prefer.checkpoint'", PREFDATA_FORMAT);
    free(p);

    p = valid_file("fmtint");
    delete_attr(p, "format");
    set_attr_i64(p, "format", 7);
    expect_fail(p, 0, "format attribute", NULL);
    free(p);

    p = valid_file("ver");
    set_attr_i64(p, "version", PREFDATA_VERSION + 1);
    expect_fail(p, 0, "version attribute is 2", "upgrade");
    free(p);

    p = valid_file("nover");
    delete_attr(p, "version");
    expect_fail(p, 0, "version attribute missing", NULL);
    free(p);

    /* Fixed-length string attributes (some writers use them) are accepted. */
    p = valid_file("fixedstr");
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "format");
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(PREFDATA_FORMAT));
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "format", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, PREFDATA_FORMAT);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    H5Fclose(f);
    PrefData d;
    char err[1024] = "";
    CU_ASSERT_EQUAL(prefdata_read_checked(p, 0, &d, err, sizeof err), 0);
    prefdata_free(&d);
    free(p);
}

static void test_missing_and_types(void)
{
    static const char *dsets[] = {"prompts/tokens",    "prompts/offsets", "responses/tokens",
                                  "responses/offsets", "responses/prompt", "pairs/chosen",
                                  "pairs/rejected"};
    for (size_t i = 0; i < sizeof dsets / sizeof *dsets; i++) {
        char *p = valid_file("missing");
        delete_link(p, dsets[i]);
        char want[64];
        snprintf(want, sizeof want, "missing /%s", dsets[i]);
        expect_fail(p, 0, want, NULL);
        free(p);
    }
    char *p = valid_file("nogroup");
    delete_link(p, "pairs");
    expect_fail(p, 0, "missing /pairs/", NULL);
    free(p);

    /* A group where a dataset should be. */
    p = valid_file("group");
    delete_link(p, "responses/prompt");
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "responses/prompt", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(g);
    H5Fclose(f);
    expect_fail(p, 0, "/responses/prompt is not a dataset", NULL);
    free(p);

    /* Float tokens. */
    p = valid_file("ftok");
    float ft[6] = {1, 2, 3, 4, 5, 6};
    hsize_t n6 = 6;
    replace_ds(p, "prompts/tokens", H5T_NATIVE_FLOAT, 1, &n6, ft);
    expect_fail(p, 0, "/prompts/tokens holds floating-point values, expected integer", NULL);
    free(p);

    /* Integer scores. */
    p = valid_file("iscore");
    int32_t is[6] = {0};
    replace_i32(p, "responses/score", is, 6);
    expect_fail(p, 0, "/responses/score holds integer values", NULL);
    free(p);

    /* Rank 2 where rank 1 is expected. */
    p = valid_file("rank");
    int64_t rp[6] = {0, 0, 1, 1, 2, 2};
    hsize_t d2[2] = {3, 2};
    replace_ds(p, "responses/prompt", H5T_NATIVE_INT64, 2, d2, rp);
    expect_fail(p, 0, "/responses/prompt has rank 2, expected 1", NULL);
    free(p);

    /* Wider integer types on disk are accepted (h5py writes int64 by default). */
    p = valid_file("i64tok");
    int64_t t64[6] = {1, 2, 3, 4, 5, 15};
    hsize_t n = 6;
    replace_ds(p, "prompts/tokens", H5T_NATIVE_INT64, 1, &n, t64);
    PrefData d;
    char err[1024] = "";
    CU_ASSERT_EQUAL(prefdata_read_checked(p, 16, &d, err, sizeof err), 0);
    if (d.prompt_tokens)
        CU_ASSERT_EQUAL(d.prompt_tokens[5], 15);
    prefdata_free(&d);
    free(p);

    /* Out of int32 range on disk saturates and is then caught by the range check. */
    p = valid_file("hugetok");
    t64[2] = (int64_t)1 << 40;
    replace_ds(p, "prompts/tokens", H5T_NATIVE_INT64, 1, &n, t64);
    expect_fail(p, 0, "/prompts/tokens[2]", "out of range [0, 16)");
    free(p);
}

static void test_offsets(void)
{
    char *p = valid_file("off0");
    int64_t a[4] = {1, 2, 5, 6};
    replace_i64(p, "prompts/offsets", a, 4);
    expect_fail(p, 0, "/prompts/offsets[0] = 1, expected 0", NULL);
    free(p);

    p = valid_file("offdec");
    int64_t b[7] = {0, 3, 1, 6, 7, 9, 10};
    replace_i64(p, "responses/offsets", b, 7);
    expect_fail(p, 0, "/responses/offsets[2] = 1 is less than /responses/offsets[1] = 3", NULL);
    free(p);

    p = valid_file("offlast");
    int64_t c[4] = {0, 2, 5, 5};
    replace_i64(p, "prompts/offsets", c, 4);
    expect_fail(p, 0, "/prompts/offsets ends at 5 but /prompts/tokens holds 6 tokens", NULL);
    free(p);

    p = valid_file("offbeyond");
    int64_t c2[7] = {0, 1, 3, 6, 7, 9, 11};
    replace_i64(p, "responses/offsets", c2, 7);
    expect_fail(p, 0, "/responses/offsets ends at 11 but /responses/tokens holds 10", NULL);
    free(p);

    p = valid_file("offempty");
    replace_i64(p, "prompts/offsets", NULL, 0);
    expect_fail(p, 0, "/prompts/offsets is empty", NULL);
    free(p);

    /* Changing the number of responses breaks /responses/prompt's length. */
    p = valid_file("rpnum");
    int64_t e[6] = {0, 1, 3, 6, 7, 10};
    replace_i64(p, "responses/offsets", e, 6);
    expect_fail(p, 0, "/responses/prompt has 6 entries, expected 5", NULL);
    free(p);
}

static void test_tokens_and_vocab(void)
{
    char *p = valid_file("tokhi");
    int32_t t[6] = {1, 2, 3, 4, 5, 6};
    t[4] = 5000;
    replace_i32(p, "prompts/tokens", t, 6);
    set_attr_i64(p, "vocab_size", 4096);
    expect_fail(p, 0, "/prompts/tokens[4] = 5000 is out of range [0, 4096)", NULL);
    free(p);

    p = valid_file("tokneg");
    int32_t r[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    r[7] = -1;
    replace_i32(p, "responses/tokens", r, 10);
    expect_fail(p, 0, "/responses/tokens[7] = -1 is out of range [0, 16)", NULL);
    free(p);

    p = valid_file("tokeq");
    r[7] = 16; /* == vocab_size */
    replace_i32(p, "responses/tokens", r, 10);
    expect_fail(p, 0, "/responses/tokens[7] = 16 is out of range [0, 16)", NULL);
    free(p);

    p = valid_file("vlimit");
    expect_fail(p, 8, "vocab_size attribute is 16", "the model's vocab_size is 8");
    PrefData d;
    char err[1024] = "";
    CU_ASSERT_EQUAL(prefdata_read_checked(p, 16, &d, err, sizeof err), 0); /* equal is fine */
    prefdata_free(&d);
    CU_ASSERT_EQUAL(prefdata_read_checked(p, 0, &d, err, sizeof err), 0); /* 0: no limit */
    prefdata_free(&d);
    free(p);

    p = valid_file("novocab");
    delete_attr(p, "vocab_size");
    expect_fail(p, 0, "vocab_size attribute missing", NULL);
    free(p);

    p = valid_file("badvocab");
    set_attr_i64(p, "vocab_size", 0);
    expect_fail(p, 0, "vocab_size attribute is 0", NULL);
    free(p);
}

static void test_indices_and_scores(void)
{
    char *p = valid_file("rprange");
    int64_t rp[6] = {0, 0, 1, 1, 2, 3};
    replace_i64(p, "responses/prompt", rp, 6);
    expect_fail(p, 0, "/responses/prompt[5] = 3 is out of range [0, 3)", NULL);
    free(p);

    p = valid_file("chrange");
    int64_t ch[3] = {0, 6, 4};
    replace_i64(p, "pairs/chosen", ch, 3);
    expect_fail(p, 0, "/pairs/chosen[1] = 6 is out of range [0, 6)", NULL);
    free(p);

    p = valid_file("rjneg");
    int64_t rj[3] = {1, 2, -1};
    replace_i64(p, "pairs/rejected", rj, 3);
    expect_fail(p, 0, "/pairs/rejected[2] = -1 is out of range [0, 6)", NULL);
    free(p);

    p = valid_file("same");
    int64_t rj2[3] = {1, 3, 5};
    replace_i64(p, "pairs/rejected", rj2, 3);
    expect_fail(p, 0, "/pairs/chosen[1] = /pairs/rejected[1] = 3", NULL);
    free(p);

    p = valid_file("crossprompt");
    int64_t rj3[3] = {2, 2, 5};
    replace_i64(p, "pairs/rejected", rj3, 3);
    expect_fail(p, 0, "/pairs/chosen[0] = 0 answers prompt 0 but /pairs/rejected[0] = 2", "/responses/prompt");
    free(p);

    p = valid_file("pairlen");
    int64_t rj4[2] = {1, 2};
    replace_i64(p, "pairs/rejected", rj4, 2);
    expect_fail(p, 0, "/pairs/rejected has 2 entries but /pairs/chosen has 3", NULL);
    free(p);

    p = valid_file("scorelen");
    float sc[5] = {0, 1, 2, 3, 4};
    hsize_t n5 = 5;
    replace_ds(p, "responses/score", H5T_NATIVE_FLOAT, 1, &n5, sc);
    expect_fail(p, 0, "/responses/score has 5 entries, expected 6", NULL);
    free(p);

    p = valid_file("scorenan");
    float sc6[6] = {0, 1, 2, NAN, 4, 5};
    hsize_t n6 = 6;
    replace_ds(p, "responses/score", H5T_NATIVE_FLOAT, 1, &n6, sc6);
    expect_fail(p, 0, "/responses/score[3] = nan is not finite", NULL);
    free(p);

    p = valid_file("scoreinf");
    sc6[3] = 0;
    sc6[5] = INFINITY;
    replace_ds(p, "responses/score", H5T_NATIVE_FLOAT, 1, &n6, sc6);
    expect_fail(p, 0, "/responses/score[5] = inf is not finite", NULL);
    free(p);

    /* float64 scores on disk are accepted and converted. */
    p = valid_file("score64");
    double s64[6] = {0.5, 1, 2, 3, 4, 5};
    replace_ds(p, "responses/score", H5T_NATIVE_DOUBLE, 1, &n6, s64);
    PrefData d;
    char err[1024] = "";
    CU_ASSERT_EQUAL(prefdata_read_checked(p, 0, &d, err, sizeof err), 0);
    if (d.response_score)
        CU_ASSERT_EQUAL(d.response_score[0], 0.5f);
    prefdata_free(&d);
    free(p);
}

/* A file cut short (a crash mid-copy) or with garbage bytes must give -1 or a valid read,
 * never a crash. */
static void test_damaged(void)
{
    PrefData d;
    make_big(&d);
    char *p = new_path("damaged");
    prefdata_write(p, &d, NULL);
    prefdata_free(&d);
    FILE *fp = fopen(p, "rb");
    CU_ASSERT_FATAL(fp != NULL);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *bytes = xmalloc((size_t)size);
    CU_ASSERT_FATAL(fread(bytes, 1, (size_t)size, fp) == (size_t)size);
    fclose(fp);

    /* Truncated to half. */
    char *q = new_path("truncated");
    fp = fopen(q, "wb");
    fwrite(bytes, 1, (size_t)size / 2, fp);
    fclose(fp);
    expect_fail(q, 0, NULL, NULL);
    free(q);

    /* Garbage at a few places in the raw data (past the metadata at the start): the
     * deflate stream or its checks break, or the values fail validation. */
    for (int k = 1; k <= 4; k++) {
        q = new_path("garbage");
        unsigned char *b = xmalloc((size_t)size);
        memcpy(b, bytes, (size_t)size);
        long at = size * k / 5;
        for (long i = at; i < at + 64 && i < size; i++)
            b[i] ^= 0x5a;
        fp = fopen(q, "wb");
        fwrite(b, 1, (size_t)size, fp);
        fclose(fp);
        char err[1024] = "";
        int rc = prefdata_read_checked(q, 0, &d, err, sizeof err);
        CU_ASSERT(rc == 0 || (rc == -1 && strstr(err, q) && is_zeroed(&d)));
        if (getenv("PREFER_TEST_VERBOSE"))
            printf("\n    garbage at %ld: rc %d %s", at, rc, err);
        prefdata_free(&d);
        free(b);
        free(q);
    }
    free(bytes);
    free(p);
}

/* prefdata_validate on in-memory data (no file name in these messages). */
static void test_validate_memory(void)
{
    PrefData d;
    char err[512];
    make_small(&d, 1, 1);
    CU_ASSERT_EQUAL(prefdata_validate(&d, err, sizeof err), 0);
    d.prompt_tokens[0] = 16;
    CU_ASSERT_EQUAL(prefdata_validate(&d, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "/prompts/tokens[0] = 16 is out of range [0, 16)") != NULL);
    d.prompt_tokens[0] = 0;
    d.pair_rejected[2] = 4;
    CU_ASSERT_EQUAL(prefdata_validate(&d, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "/pairs/rejected[2]") != NULL);
    d.pair_rejected[2] = 5;
    d.response_offsets[0] = -1;
    CU_ASSERT_EQUAL(prefdata_validate(&d, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "/responses/offsets[0] = -1") != NULL);
    d.response_offsets[0] = 0;
    d.response_score[1] = NAN;
    CU_ASSERT_EQUAL(prefdata_validate(&d, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "/responses/score[1]") != NULL);
    d.response_score[1] = 0;
    d.n_pairs = -1;
    CU_ASSERT_EQUAL(prefdata_validate(&d, err, sizeof err), -1);
    d.n_pairs = 3;
    CU_ASSERT_EQUAL(prefdata_validate(&d, err, sizeof err), 0);
    prefdata_free(&d);
    prefdata_free(&d); /* twice: harmless */
    prefdata_free(NULL);
}

/* Every error path closed what it opened: no file, dataset, group, type, space or attribute
 * handle is left (a leaked handle keeps the file open). Runs last. */
static void test_no_open_handles(void)
{
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    CU_ASSERT_EQUAL(n, 0);
    if (n != 0)
        printf("\n  %zd HDF5 objects still open\n", n);
}

static void rm_dir(void)
{
    char *cmd = xasprintf("rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    free(cmd);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/prefer-test-prefdata-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    h5u_init();
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("prefdata", NULL, NULL);
    CU_add_test(s, "write/read round trip", test_roundtrip);
    CU_add_test(s, "root attributes", test_attributes);
    CU_add_test(s, "foreign and missing files", test_foreign_files);
    CU_add_test(s, "missing datasets, wrong types and ranks", test_missing_and_types);
    CU_add_test(s, "offsets", test_offsets);
    CU_add_test(s, "token range and vocab limit", test_tokens_and_vocab);
    CU_add_test(s, "indices, pairs and scores", test_indices_and_scores);
    CU_add_test(s, "validate in memory", test_validate_memory);
    CU_add_test(s, "truncated and damaged files", test_damaged);
    CU_add_test(s, "no HDF5 handles left open", test_no_open_handles);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    rm_dir();
    return fails ? 1 : 0;
}

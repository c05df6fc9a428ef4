/* test_prefshard.c: sharded reads of a preference dataset against the full read.
 *
 * Random datasets (random lengths, empty sequences included, scores and pairs) are written
 * with prefdata_write, opened as a shard and gathered with random id lists (duplicates,
 * empty lists, single ids); every token, offset, remapped prompt index and score must equal
 * what prefdata_read gives, and bytes_read must grow by exactly 4 bytes per distinct
 * requested token. Corrupt and foreign files must fail at open, naming file and dataset.
 * Runs without MPI (one rank); tests/test_mpi_prefshard.c covers several ranks.
 * main() returns non-zero on any failure.
 */
#define _GNU_SOURCE
#include "prefer/h5util.h"
#include "prefer/prefdata.h"
#include "prefer/prefshard.h"
#include "prefer/rng.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64];
static int g_file_no;

static char *new_path(const char *tag) { return xasprintf("%s/%s-%d.h5", g_dir, tag, g_file_no++); }

/* P prompts of 0..maxp tokens, K responses each of 0..maxr tokens (about 1 in 20 empty),
 * scores, and pairs (2k, 2k+1) within each prompt. */
static void make_random(PrefData *d, uint64_t seed, int64_t P, int64_t K, int maxp, int maxr, int scores)
{
    Rng r;
    rng_init(&r, seed, 0);
    memset(d, 0, sizeof *d);
    d->vocab_size = 1000;
    d->n_prompts = P;
    d->n_responses = P * K;
    d->n_pairs = P * (K / 2);
    d->prompt_offsets = xmalloc(sizeof(int64_t) * (size_t)(P + 1));
    d->response_offsets = xmalloc(sizeof(int64_t) * (size_t)(P * K + 1));
    d->prompt_offsets[0] = d->response_offsets[0] = 0;
    for (int64_t i = 0; i < P; i++)
        d->prompt_offsets[i + 1] =
            d->prompt_offsets[i] + (rng_below(&r, 20) == 0 ? 0 : (int64_t)rng_below(&r, (uint64_t)maxp + 1));
    for (int64_t i = 0; i < P * K; i++)
        d->response_offsets[i + 1] =
            d->response_offsets[i] + (rng_below(&r, 20) == 0 ? 0 : (int64_t)rng_below(&r, (uint64_t)maxr + 1));
    int64_t tp = d->prompt_offsets[P], tr = d->response_offsets[P * K];
    d->prompt_tokens = xmalloc(sizeof(int32_t) * (size_t)(tp ? tp : 1));
    d->response_tokens = xmalloc(sizeof(int32_t) * (size_t)(tr ? tr : 1));
    for (int64_t i = 0; i < tp; i++)
        d->prompt_tokens[i] = (int32_t)rng_below(&r, 1000);
    for (int64_t i = 0; i < tr; i++)
        d->response_tokens[i] = (int32_t)rng_below(&r, 1000);
    d->response_prompt = xmalloc(sizeof(int64_t) * (size_t)(P * K));
    for (int64_t i = 0; i < P * K; i++)
        d->response_prompt[i] = i / K;
    if (scores) {
        d->response_score = xmalloc(sizeof(float) * (size_t)(P * K));
        for (int64_t i = 0; i < P * K; i++)
            d->response_score[i] = (float)(rng_uniform(&r) * 10.0 - 5.0);
    }
    d->pair_chosen = xmalloc(sizeof(int64_t) * (size_t)(d->n_pairs ? d->n_pairs : 1));
    d->pair_rejected = xmalloc(sizeof(int64_t) * (size_t)(d->n_pairs ? d->n_pairs : 1));
    for (int64_t p = 0, k = 0; p < P; p++)
        for (int64_t j = 0; j + 1 < K; j += 2, k++) {
            d->pair_chosen[k] = p * K + j;
            d->pair_rejected[k] = p * K + j + 1;
        }
}

static int same(const void *a, const void *b, size_t bytes) { return bytes == 0 || (a && b && !memcmp(a, b, bytes)); }

/* The shard's metadata equals the full read, without tokens. */
static void check_meta(const PrefShard *s, const PrefData *full)
{
    const PrefData *m = &s->meta;
    CU_ASSERT_EQUAL(m->n_prompts, full->n_prompts);
    CU_ASSERT_EQUAL(m->n_responses, full->n_responses);
    CU_ASSERT_EQUAL(m->n_pairs, full->n_pairs);
    CU_ASSERT_EQUAL(m->vocab_size, full->vocab_size);
    CU_ASSERT_PTR_NULL(m->prompt_tokens);
    CU_ASSERT_PTR_NULL(m->response_tokens);
    size_t np = (size_t)full->n_prompts, nr = (size_t)full->n_responses, nn = (size_t)full->n_pairs;
    CU_ASSERT(same(m->prompt_offsets, full->prompt_offsets, (np + 1) * 8));
    CU_ASSERT(same(m->response_offsets, full->response_offsets, (nr + 1) * 8));
    CU_ASSERT(same(m->response_prompt, full->response_prompt, nr * 8));
    CU_ASSERT(same(m->pair_chosen, full->pair_chosen, nn * 8));
    CU_ASSERT(same(m->pair_rejected, full->pair_rejected, nn * 8));
    CU_ASSERT_EQUAL(m->response_score == NULL, full->response_score == NULL);
    if (m->response_score && full->response_score)
        CU_ASSERT(same(m->response_score, full->response_score, nr * 4));
}

/* Tokens of n distinct ids among ids (the bytes a gather must read, / 4). */
static int64_t distinct_tokens(const int64_t *off, int64_t n, const int64_t *ids, int64_t limit)
{
    char *seen = xcalloc((size_t)limit + 1, 1);
    int64_t t = 0;
    for (int64_t i = 0; i < n; i++)
        if (!seen[ids[i]]) {
            seen[ids[i]] = 1;
            t += off[ids[i] + 1] - off[ids[i]];
        }
    free(seen);
    return t;
}

/* local holds exactly prompts pids and responses rids of full; response_prompt points at
 * the first matching local prompt or is -1. Returns the number of mismatches. */
static int compare_local(const PrefData *full, const PrefData *local, int64_t np, const int64_t *pids, int64_t nr,
                         const int64_t *rids)
{
    int bad = 0;
    bad += local->n_prompts != np || local->n_responses != nr || local->n_pairs != 0;
    bad += local->vocab_size != full->vocab_size;
    bad += local->pair_chosen != NULL || local->pair_rejected != NULL;
    if (bad)
        return bad;
    bad += local->prompt_offsets[0] != 0 || local->response_offsets[0] != 0;
    for (int64_t i = 0; i < np; i++) {
        int64_t b = full->prompt_offsets[pids[i]], len = full->prompt_offsets[pids[i] + 1] - b;
        bad += local->prompt_offsets[i + 1] - local->prompt_offsets[i] != len;
        bad += !same(local->prompt_tokens + local->prompt_offsets[i], full->prompt_tokens + b, (size_t)len * 4);
    }
    for (int64_t j = 0; j < nr; j++) {
        int64_t b = full->response_offsets[rids[j]], len = full->response_offsets[rids[j] + 1] - b;
        bad += local->response_offsets[j + 1] - local->response_offsets[j] != len;
        bad += !same(local->response_tokens + local->response_offsets[j], full->response_tokens + b, (size_t)len * 4);
        int64_t want = -1, p = full->response_prompt[rids[j]];
        for (int64_t i = 0; i < np && want < 0; i++)
            if (pids[i] == p)
                want = i;
        bad += local->response_prompt[j] != want;
        if (full->response_score)
            bad += !local->response_score || local->response_score[j] != full->response_score[rids[j]];
        else
            bad += local->response_score != NULL;
    }
    return bad;
}

/* Gather (np, nr) random ids (drawn from a small range when dups, so ids repeat) and
 * compare with the full read; bytes_read grows by the distinct tokens. */
static void gather_and_check(PrefShard *s, const PrefData *full, PrefData *local, Rng *r, int64_t np, int64_t nr,
                             int dups)
{
    int64_t *pids = xmalloc(sizeof(int64_t) * (size_t)(np + 1)), *rids = xmalloc(sizeof(int64_t) * (size_t)(nr + 1));
    uint64_t prange = (uint64_t)full->n_prompts, rrange = (uint64_t)full->n_responses;
    if (dups) {
        prange = prange < 8 ? prange : 8;
        rrange = rrange < 12 ? rrange : 12;
    }
    for (int64_t i = 0; i < np; i++)
        pids[i] = (int64_t)rng_below(r, prange);
    for (int64_t j = 0; j < nr; j++)
        rids[j] = (int64_t)rng_below(r, rrange);
    int64_t before = s->bytes_read;
    char err[1024] = "";
    int rc = prefshard_gather(s, np, np ? pids : NULL, nr, nr ? rids : NULL, local, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        printf("\n  gather failed: %s\n", err);
    } else {
        int bad = compare_local(full, local, np, pids, nr, rids);
        CU_ASSERT_EQUAL(bad, 0);
        if (bad)
            printf("\n  %d mismatches gathering %lld prompts, %lld responses\n", bad, (long long)np, (long long)nr);
        int64_t want = 4 * (distinct_tokens(full->prompt_offsets, np, pids, full->n_prompts) +
                            distinct_tokens(full->response_offsets, nr, rids, full->n_responses));
        CU_ASSERT_EQUAL(s->bytes_read - before, want);
    }
    free(pids);
    free(rids);
}

static void roundtrip_file(const PrefData *d, uint64_t seed, int rounds)
{
    char *path = new_path("rt");
    prefdata_write(path, d, NULL);
    PrefData full;
    prefdata_read(path, 0, &full);
    PrefShard s;
    char err[1024] = "";
    int rc = prefshard_open(path, d->vocab_size, &s, err, sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    check_meta(&s, &full);
    CU_ASSERT_EQUAL(s.bytes_read, 0); /* open's validation read is not counted */
    PrefData local = {0};
    Rng r;
    rng_init(&r, seed, 1);
    gather_and_check(&s, &full, &local, &r, 0, 0, 0); /* nothing */
    if (full.n_prompts > 0)
        gather_and_check(&s, &full, &local, &r, 1, 0, 0); /* one prompt */
    if (full.n_responses > 0)
        gather_and_check(&s, &full, &local, &r, 0, 1, 0); /* one response */
    for (int k = 0; k < rounds; k++) {
        int64_t np = (int64_t)rng_below(&r, 70), nr = (int64_t)rng_below(&r, 140);
        if (full.n_prompts == 0)
            np = 0;
        if (full.n_responses == 0)
            nr = 0;
        gather_and_check(&s, &full, &local, &r, np, nr, k % 3 == 0);
    }
    /* Every response of the file, in order, and all prompts: the whole file. */
    int64_t *all_p = xmalloc(sizeof(int64_t) * (size_t)(full.n_prompts + 1)),
            *all_r = xmalloc(sizeof(int64_t) * (size_t)(full.n_responses + 1));
    for (int64_t i = 0; i < full.n_prompts; i++)
        all_p[i] = i;
    for (int64_t i = 0; i < full.n_responses; i++)
        all_r[i] = i;
    int64_t before = s.bytes_read;
    rc = prefshard_gather(&s, full.n_prompts, all_p, full.n_responses, all_r, &local, err, sizeof err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(compare_local(&full, &local, full.n_prompts, all_p, full.n_responses, all_r), 0);
    CU_ASSERT_EQUAL(s.bytes_read - before,
                    4 * (full.prompt_offsets[full.n_prompts] + full.response_offsets[full.n_responses]));
    CU_ASSERT_EQUAL(prefdata_validate(&local, err, sizeof err), 0);
    free(all_p);
    free(all_r);
    prefdata_free(&local);
    prefshard_close(&s);
    prefshard_close(&s); /* twice: harmless */
    prefdata_free(&full);
    free(path);
}

static void test_small_files(void)
{
    PrefData d;
    make_random(&d, 1, 5, 3, 6, 9, 1); /* contiguous datasets */
    roundtrip_file(&d, 11, 30);
    prefdata_free(&d);
    make_random(&d, 2, 7, 2, 4, 4, 0); /* no scores */
    roundtrip_file(&d, 12, 30);
    prefdata_free(&d);

    PrefData e = {0}; /* 0 prompts, 0 responses, 0 pairs */
    int64_t zero = 0;
    e.vocab_size = 3;
    e.prompt_offsets = &zero;
    e.response_offsets = &zero;
    roundtrip_file(&e, 13, 1);
}

/* Chunked and deflated token arrays (tens of thousands of tokens, lengths up to 300). */
static void test_big_file(void)
{
    PrefData d;
    make_random(&d, 3, 400, 4, 120, 300, 1);
    CU_ASSERT(d.response_offsets[d.n_responses] > 3 * 65536); /* several chunks */
    roundtrip_file(&d, 14, 60);
    prefdata_free(&d);
}

/* Responses with their prompts: a valid PrefData, prompts in order of first appearance. */
static void test_gather_responses(void)
{
    PrefData d, full;
    make_random(&d, 4, 50, 4, 20, 30, 1);
    char *path = new_path("resp");
    prefdata_write(path, &d, NULL);
    prefdata_free(&d);
    prefdata_read(path, 0, &full);
    PrefShard s;
    char err[1024] = "";
    CU_ASSERT_FATAL(prefshard_open(path, 0, &s, err, sizeof err) == 0);
    PrefData local = {0};
    /* Pairs 7, 3, 7 (a duplicate pair), 40: chosen, rejected, ... */
    int64_t pairs[4] = {7, 3, 7, 40}, rids[8];
    for (int k = 0; k < 4; k++) {
        rids[2 * k] = full.pair_chosen[pairs[k]];
        rids[2 * k + 1] = full.pair_rejected[pairs[k]];
    }
    CU_ASSERT_EQUAL_FATAL(prefshard_gather_responses(&s, 8, rids, &local, err, sizeof err), 0);
    CU_ASSERT_EQUAL(local.n_prompts, 3);
    CU_ASSERT_EQUAL(local.n_responses, 8);
    CU_ASSERT_EQUAL(prefdata_validate(&local, err, sizeof err), 0);
    int64_t want_p[3] = {full.response_prompt[rids[0]], full.response_prompt[rids[2]], full.response_prompt[rids[6]]};
    CU_ASSERT_EQUAL(compare_local(&full, &local, 3, want_p, 8, rids), 0);
    static const int64_t want_rp[8] = {0, 0, 1, 1, 0, 0, 2, 2};
    CU_ASSERT(same(local.response_prompt, want_rp, sizeof want_rp));

    /* Buffers are reused: a smaller gather keeps every array where it was. */
    int32_t *pt = local.prompt_tokens, *rt = local.response_tokens;
    int64_t *po = local.prompt_offsets, *ro = local.response_offsets, *rp = local.response_prompt;
    float *sc = local.response_score;
    CU_ASSERT_EQUAL(prefshard_gather_responses(&s, 2, rids + 2, &local, err, sizeof err), 0);
    CU_ASSERT(local.prompt_tokens == pt && local.response_tokens == rt && local.prompt_offsets == po &&
              local.response_offsets == ro && local.response_prompt == rp && local.response_score == sc);
    CU_ASSERT_EQUAL(compare_local(&full, &local, 1, want_p + 1, 2, rids + 2), 0);
    CU_ASSERT_EQUAL(prefshard_gather_responses(&s, 0, NULL, &local, err, sizeof err), 0);
    CU_ASSERT(local.n_prompts == 0 && local.n_responses == 0);
    CU_ASSERT_EQUAL(s.gathers, 3);

    /* A PrefData from prefdata_read as the target: its pairs go, its arrays are reused. */
    PrefData other;
    prefdata_read(path, 0, &other);
    CU_ASSERT_EQUAL(prefshard_gather_responses(&s, 8, rids, &other, err, sizeof err), 0);
    CU_ASSERT(other.n_pairs == 0 && other.pair_chosen == NULL);
    CU_ASSERT_EQUAL(compare_local(&full, &other, 3, want_p, 8, rids), 0);
    prefdata_free(&other);

    prefdata_free(&local);
    prefshard_close(&s);
    prefdata_free(&full);
    free(path);
}

/* Tokens stored as int64 (h5py's default) are converted in the partial reads too. */
static void test_int64_tokens(void)
{
    PrefData d, full;
    make_random(&d, 5, 30, 2, 10, 40, 0);
    char *path = new_path("i64");
    prefdata_write(path, &d, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(H5Ldelete(f, "responses/tokens", H5P_DEFAULT) >= 0);
    hsize_t n = (hsize_t)d.response_offsets[d.n_responses];
    int64_t *t64 = xmalloc(sizeof(int64_t) * (size_t)n);
    for (hsize_t i = 0; i < n; i++)
        t64[i] = d.response_tokens[i];
    h5u_write_array(f, "responses/tokens", H5T_STD_I64LE, 1, &n, t64);
    free(t64);
    H5Fclose(f);
    prefdata_free(&d);
    prefdata_read(path, 0, &full);
    PrefShard s;
    char err[1024] = "";
    CU_ASSERT_FATAL(prefshard_open(path, 0, &s, err, sizeof err) == 0);
    PrefData local = {0};
    Rng r;
    rng_init(&r, 15, 0);
    for (int k = 0; k < 10; k++)
        gather_and_check(&s, &full, &local, &r, 5, 20, k & 1);
    prefdata_free(&local);
    prefshard_close(&s);
    prefdata_free(&full);
    free(path);
}

/* Open must fail with rc -1, the shard closed, and msg containing every needle. */
static void expect_open_fail(const char *path, int64_t vocab_limit, const char *n1, const char *n2)
{
    PrefShard s;
    char err[1024] = "";
    int rc = prefshard_open(path, vocab_limit, &s, err, sizeof err);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT(strstr(err, n1) != NULL);
    CU_ASSERT(!n2 || strstr(err, n2) != NULL);
    if (rc != -1 || !strstr(err, n1) || (n2 && !strstr(err, n2)))
        printf("\n  open %s: rc %d, message '%s', expected '%s' and '%s'\n", path, rc, err, n1, n2 ? n2 : "");
    CU_ASSERT(s.file < 0 && s.path == NULL && s.meta.prompt_offsets == NULL);
    prefshard_close(&s);
}

static void test_bad_files(void)
{
    /* One token out of range, written with raw HDF5 into an otherwise valid file. */
    PrefData d;
    make_random(&d, 6, 100, 4, 20, 30, 1);
    char *path = new_path("corrupt");
    prefdata_write(path, &d, NULL);
    prefdata_free(&d);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    hid_t ds = H5Dopen2(f, "responses/tokens", H5P_DEFAULT), sp = H5Dget_space(ds);
    hsize_t at = 1234, one = 1;
    int32_t v = 5000;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    CU_ASSERT(H5Sselect_hyperslab(sp, H5S_SELECT_SET, &at, NULL, &one, NULL) >= 0);
    CU_ASSERT(H5Dwrite(ds, H5T_NATIVE_INT32, ms, sp, H5P_DEFAULT, &v) >= 0);
    H5Sclose(ms);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    expect_open_fail(path, 0, path, "/responses/tokens[1234] = 5000 is out of range [0, 1000)");
    free(path);

    /* Not HDF5; missing; a vocabulary larger than the model's. */
    path = new_path("text");
    FILE *fp = fopen(path, "w");
    CU_ASSERT_FATAL(fp != NULL);
    fputs("prompt,response\n1,2\n", fp);
    fclose(fp);
    expect_open_fail(path, 0, path, "not an HDF5 file");
    free(path);
    path = new_path("missing");
    expect_open_fail(path, 0, path, "cannot open");
    free(path);
    make_random(&d, 7, 3, 2, 4, 4, 0);
    path = new_path("vocab");
    prefdata_write(path, &d, NULL);
    prefdata_free(&d);
    expect_open_fail(path, 500, path, "vocab_size");
    free(path);
    prefshard_close(NULL);
}

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
    snprintf(g_dir, sizeof g_dir, "/tmp/prefer-test-prefshard-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    h5u_init();
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("prefshard", NULL, NULL);
    CU_add_test(s, "small files: random gathers equal the full read", test_small_files);
    CU_add_test(s, "chunked, deflated file: random gathers", test_big_file);
    CU_add_test(s, "responses with their prompts; buffer reuse", test_gather_responses);
    CU_add_test(s, "int64 tokens converted", test_int64_tokens);
    CU_add_test(s, "corrupt, foreign, missing files fail at open", test_bad_files);
    CU_add_test(s, "no HDF5 handles left open", test_no_open_handles);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    rm_dir();
    return fails ? 1 : 0;
}

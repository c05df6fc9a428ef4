/* test_reflogp.c: the packed log-prob pass (reflogp_compute: a prompt's consecutive responses
 * forwarded as one sequence prompt | y_1 | ... | y_k) gives every response the log-prob of its
 * own prompt + response sequence; on data with empty prompts and responses, one-token
 * responses, prompts whose responses are not contiguous, at several batch sizes, split over
 * simulated ranks (the ranks' parts sum to the one-rank result exactly), and read as shards. */
#include "prefer/gpt.h"
#include "prefer/prefdata.h"
#include "prefer/prefshard.h"
#include "prefer/reflogp.h"
#include "prefer/rng.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const GptDims g_dims = {.vocab_size = 19, .context = 16, .n_layer = 2, .n_head = 2, .n_embd = 16};

/* P prompts of 0..6 tokens (every 7th empty), 1..5 responses each of 0..9 tokens, stored
 * prompt by prompt except that the last 6 responses answer earlier prompts again; then
 * prompts with many responses: 1 token with 16 of 3 tokens, 1 token with 20 of 1 token,
 * 8 tokens with 16 of 3 tokens (more responses than a pack may score rows for). */
static void make_data(PrefData *d, uint64_t seed)
{
    Rng r;
    rng_init(&r, seed, 0);
    memset(d, 0, sizeof *d);
    int64_t P = 23, cap = P * 5 + 6 + 52;
    d->vocab_size = 19;
    d->n_prompts = P;
    d->prompt_offsets = xmalloc(sizeof(int64_t) * (size_t)(P + 1));
    d->response_offsets = xmalloc(sizeof(int64_t) * (size_t)(cap + 1));
    d->response_prompt = xmalloc(sizeof(int64_t) * (size_t)cap);
    d->prompt_offsets[0] = d->response_offsets[0] = 0;
    for (int64_t p = 0; p < P; p++)
        d->prompt_offsets[p + 1] = d->prompt_offsets[p] + (p % 7 == 3 ? 0 : 1 + (int64_t)rng_below(&r, 6));
    int64_t R = 0;
    for (int64_t p = 0; p < P; p++)
        for (int64_t k = 1 + (int64_t)rng_below(&r, 5); k > 0; k--)
            d->response_prompt[R++] = p;
    for (int i = 0; i < 6; i++)
        d->response_prompt[R++] = (int64_t)rng_below(&r, (uint64_t)P);
    for (int64_t e = 0; e < R; e++) {
        int64_t len = rng_below(&r, 9) == 0 ? 0 : (rng_below(&r, 8) == 0 ? 1 : (int64_t)rng_below(&r, 10));
        d->response_offsets[e + 1] = d->response_offsets[e] + len;
    }
    static const int many[3][3] = {{1, 16, 3}, {1, 20, 1}, {8, 16, 3}}; /* prompt, responses, length */
    d->prompt_offsets = xrealloc(d->prompt_offsets, sizeof(int64_t) * (size_t)(P + 4));
    for (int i = 0; i < 3; i++, P++) {
        d->prompt_offsets[P + 1] = d->prompt_offsets[P] + many[i][0];
        for (int k = 0; k < many[i][1]; k++, R++) {
            d->response_prompt[R] = P;
            d->response_offsets[R + 1] = d->response_offsets[R] + many[i][2];
        }
    }
    d->n_prompts = P;
    d->n_responses = R;
    int64_t tp = d->prompt_offsets[P], tr = d->response_offsets[R];
    d->prompt_tokens = xmalloc(sizeof(int32_t) * (size_t)(tp ? tp : 1));
    d->response_tokens = xmalloc(sizeof(int32_t) * (size_t)(tr ? tr : 1));
    for (int64_t i = 0; i < tp; i++)
        d->prompt_tokens[i] = (int32_t)rng_below(&r, 19);
    for (int64_t i = 0; i < tr; i++)
        d->response_tokens[i] = (int32_t)rng_below(&r, 19);
}

/* log pi(y | x) of response e alone: the sequence prompt + response, its tokens after the
 * prompt scored (the first token of a response without a prompt is not: nothing predicts it). */
static double single_logp(Gpt *m, const PrefData *d, int64_t e)
{
    int64_t p = d->response_prompt[e];
    int lp = (int)(d->prompt_offsets[p + 1] - d->prompt_offsets[p]);
    int lr = (int)(d->response_offsets[e + 1] - d->response_offsets[e]), n = lp + lr;
    if (n < 2)
        return 0;
    int32_t tok[32], tgt[32];
    uint8_t mask[32];
    for (int i = 0; i + 1 < n; i++) {
        tok[i] = i < lp ? d->prompt_tokens[d->prompt_offsets[p] + i] : d->response_tokens[d->response_offsets[e] + i - lp];
        tgt[i] = i + 1 < lp ? d->prompt_tokens[d->prompt_offsets[p] + i + 1]
                            : d->response_tokens[d->response_offsets[e] + i + 1 - lp];
        mask[i] = i + 1 >= lp;
    }
    double s;
    gpt_forward(m, tok, tgt, mask, 1, n - 1, NULL, &s, NULL);
    return s;
}

/* The pass split over `world` simulated ranks (no MPI here: each call returns only its part,
 * zeros elsewhere), from memory (s NULL) or from shards, summed into got. */
static void ranks_sum(Gpt *m, const PrefData *d, PrefShard *s, int world, int batch, double *got, double *part)
{
    int64_t R = d->n_responses;
    memset(got, 0, sizeof(double) * (size_t)R);
    for (int rank = 0; rank < world; rank++) {
        if (s)
            reflogp_compute_shard(m, s, rank, world, batch, part);
        else
            reflogp_compute(m, d, rank, world, batch, part);
        for (int64_t e = 0; e < R; e++)
            got[e] += part[e];
    }
}

/* d written to a new file in a new temporary directory dir (a mkdtemp template); returns
 * the path (free it; unlink it and rmdir dir). */
static char *write_temp(const PrefData *d, char *dir)
{
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char *path = xasprintf("%s/d.h5", dir);
    prefdata_write(path, d, "");
    return path;
}

static void packed_equals_single(int threads)
{
    gpt_set_threads(threads); /* before the models: a forward-only model's attention scratch is per thread */
    PrefData d;
    make_data(&d, 5);
    char err[256];
    CU_ASSERT_EQUAL_FATAL(prefdata_validate(&d, err, sizeof err), 0);
    Gpt ref;
    gpt_init_seq(&ref, &g_dims, 1, g_dims.context);
    gpt_init_weights(&ref, 9, 0.3);
    int64_t R = d.n_responses;
    double *want = xmalloc(sizeof(double) * (size_t)R), *got = xmalloc(sizeof(double) * (size_t)R);
    double *part = xmalloc(sizeof(double) * (size_t)R), *one = xmalloc(sizeof(double) * (size_t)R);
    int longest = 1;
    for (int64_t e = 0; e < R; e++) {
        want[e] = single_logp(&ref, &d, e);
        int64_t p = d.response_prompt[e];
        int n = (int)(d.prompt_offsets[p + 1] - d.prompt_offsets[p] + d.response_offsets[e + 1] - d.response_offsets[e]) - 1;
        longest = n > longest ? n : longest;
    }
    /* the pass packs: its sequences are longer than any single one */
    int T = reflogp_seq_len(&d);
    CU_ASSERT(T > longest);
    int batches[] = {1, 3, 64};
    for (int bi = 0; bi < 3; bi++) {
        Gpt m;
        gpt_init_infer(&m, &g_dims, batches[bi], T);
        memcpy(m.params, ref.params, sizeof(float) * ref.num_params);
        reflogp_compute(&m, &d, 0, 1, batches[bi], got);
        double worst = 0;
        for (int64_t e = 0; e < R; e++) {
            double err1 = fabs(got[e] - want[e]) / (1 + fabs(want[e]));
            worst = err1 > worst ? err1 : worst;
            if ((d.response_offsets[e + 1] == d.response_offsets[e]) ||
                (d.response_offsets[e + 1] - d.response_offsets[e] == 1 &&
                 d.prompt_offsets[d.response_prompt[e] + 1] == d.prompt_offsets[d.response_prompt[e]]))
                CU_ASSERT_EQUAL(got[e], 0.0); /* nothing to score */
        }
        CU_ASSERT(worst < 1e-5);
        /* simulated ranks (no MPI here: each call returns only its part): the parts cover
         * every response once, with the same bits as one rank */
        memcpy(one, got, sizeof(double) * (size_t)R);
        for (int world = 2; world <= 3; world++) {
            ranks_sum(&m, &d, NULL, world, batches[bi], got, part);
            CU_ASSERT(memcmp(got, one, sizeof(double) * (size_t)R) == 0);
        }
        /* sharded reading: the same values, the same bits */
        char dir[] = "/tmp/prefer-test-reflogp.XXXXXX";
        char *path = write_temp(&d, dir);
        PrefShard s;
        CU_ASSERT_EQUAL_FATAL(prefshard_open(path, 0, &s, err, sizeof err), 0);
        for (int world = 1; world <= 2; world++) {
            ranks_sum(&m, &d, &s, world, batches[bi], got, part);
            CU_ASSERT(memcmp(got, one, sizeof(double) * (size_t)R) == 0);
        }
        prefshard_close(&s);
        unlink(path);
        rmdir(dir);
        free(path);
        gpt_free(&m);
    }
    double fl = reflogp_pass_flops(&d, 64, &ref);
    CU_ASSERT(fl > 0 && isfinite(fl));
    free(want);
    free(got);
    free(part);
    free(one);
    gpt_free(&ref);
    prefdata_free(&d);
    gpt_set_threads(1);
}
static void test_packed_equals_single(void) { packed_equals_single(1); }
static void test_packed_equals_single_2threads(void) { packed_equals_single(2); }

/* More responses than one gather of the shard path takes (4096): the shards over 1 and 2
 * simulated ranks give the in-memory pass's bits. */
static void test_shard_many_gathers(void)
{
    PrefData d;
    memset(&d, 0, sizeof d);
    Rng r;
    rng_init(&r, 21, 0);
    int64_t P = 1400, K = 4, R = P * K;
    d.vocab_size = 19;
    d.n_prompts = P;
    d.n_responses = R;
    d.prompt_offsets = xmalloc(sizeof(int64_t) * (size_t)(P + 1));
    d.response_offsets = xmalloc(sizeof(int64_t) * (size_t)(R + 1));
    d.response_prompt = xmalloc(sizeof(int64_t) * (size_t)R);
    d.prompt_offsets[0] = d.response_offsets[0] = 0;
    for (int64_t p = 0; p < P; p++)
        d.prompt_offsets[p + 1] = d.prompt_offsets[p] + 1 + (int64_t)rng_below(&r, 3);
    for (int64_t e = 0; e < R; e++) {
        d.response_prompt[e] = e / K;
        d.response_offsets[e + 1] = d.response_offsets[e] + 1 + (int64_t)rng_below(&r, 2);
    }
    d.prompt_tokens = xmalloc(sizeof(int32_t) * (size_t)d.prompt_offsets[P]);
    d.response_tokens = xmalloc(sizeof(int32_t) * (size_t)d.response_offsets[R]);
    for (int64_t i = 0; i < d.prompt_offsets[P]; i++)
        d.prompt_tokens[i] = (int32_t)rng_below(&r, 19);
    for (int64_t i = 0; i < d.response_offsets[R]; i++)
        d.response_tokens[i] = (int32_t)rng_below(&r, 19);
    Gpt m;
    gpt_init_infer(&m, &g_dims, 16, reflogp_seq_len(&d));
    gpt_init_weights(&m, 4, 0.3);
    double *want = xmalloc(sizeof(double) * (size_t)R), *got = xmalloc(sizeof(double) * (size_t)R);
    double *part = xmalloc(sizeof(double) * (size_t)R);
    reflogp_compute(&m, &d, 0, 1, 16, want);
    char dir[] = "/tmp/prefer-test-reflogp.XXXXXX", err[256];
    char *path = write_temp(&d, dir);
    PrefShard s;
    CU_ASSERT_EQUAL_FATAL(prefshard_open(path, 0, &s, err, sizeof err), 0);
    for (int world = 1; world <= 2; world++) {
        ranks_sum(&m, &d, &s, world, 16, got, part);
        CU_ASSERT(memcmp(got, want, sizeof(double) * (size_t)R) == 0);
    }
    int nonzero = 0;
    for (int64_t e = 0; e < R; e++)
        nonzero += want[e] < 0;
    CU_ASSERT(nonzero == R); /* every response has a token after a prompt */
    prefshard_close(&s);
    unlink(path);
    rmdir(dir);
    free(path);
    free(want);
    free(got);
    free(part);
    gpt_free(&m);
    prefdata_free(&d);
}

int main(void)
{
    gpt_set_threads(1);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("reflogp", NULL, NULL);
    CU_add_test(s, "packed pass equals single sequences", test_packed_equals_single);
    CU_add_test(s, "packed pass equals single sequences, 2 threads", test_packed_equals_single_2threads);
    CU_add_test(s, "shards over several gathers", test_shard_many_gathers);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned f = CU_get_number_of_failures();
    CU_cleanup_registry();
    return f ? 1 : 0;
}

/* test_synth.c: the Markov teacher and the SFT corpus sampled from it. */
#include "prefer/synth.h"
#include "prefer/cli.h"
#include "prefer/h5util.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static SynthConfig small_cfg(int64_t seed)
{
    SynthConfig c = {0};
    c.n_prompts = 50;
    c.prompt_len = 7;
    c.response_len = 5;
    c.vocab_size = 20;
    c.seed = seed;
    return c;
}

static int same_corpus(const PrefData *a, const PrefData *b)
{
    if (a->n_prompts != b->n_prompts || a->n_responses != b->n_responses ||
        a->vocab_size != b->vocab_size)
        return 0;
    size_t tp = (size_t)a->prompt_offsets[a->n_prompts];
    size_t tr = (size_t)a->response_offsets[a->n_responses];
    return tp == (size_t)b->prompt_offsets[b->n_prompts] &&
           tr == (size_t)b->response_offsets[b->n_responses] &&
           !memcmp(a->prompt_tokens, b->prompt_tokens, tp * sizeof(int32_t)) &&
           !memcmp(a->response_tokens, b->response_tokens, tr * sizeof(int32_t));
}

static void test_teacher_rows(void)
{
    const int V = 33;
    SynthTeacher t;
    synth_teacher_init(&t, V, 123);
    CU_ASSERT_EQUAL(t.vocab, V);
    for (int a = 0; a < V; a++) {
        const double *p = t.prob + (size_t)a * V;
        CU_ASSERT_EQUAL(p[SYNTH_EOS], 0.0);
        double s = 0.0, h = 0.0;
        for (int b = 0; b < V; b++) {
            CU_ASSERT(p[b] >= 0.0);
            s += p[b];
            if (p[b] > 0)
                h -= p[b] * log(p[b]);
        }
        CU_ASSERT_DOUBLE_EQUAL(s, 1.0, 1e-12);
        CU_ASSERT_EQUAL(t.cdf[(size_t)a * V + V - 1], 1.0);
        CU_ASSERT_DOUBLE_EQUAL(t.row_entropy[a], h, 1e-12);
        CU_ASSERT(t.row_entropy[a] >= 0.0 && t.row_entropy[a] <= log(V - 1) + 1e-12);
        for (int b = 1; b < V; b++)
            CU_ASSERT_DOUBLE_EQUAL(exp(synth_teacher_logprob(&t, a, b)), p[b], 1e-15);
        CU_ASSERT(isinf(synth_teacher_logprob(&t, a, SYNTH_EOS)));
    }
    /* start state: uniform over 1..V-1 */
    for (int b = 1; b < V; b++)
        CU_ASSERT_DOUBLE_EQUAL(t.prob[b], 1.0 / (V - 1), 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(t.row_entropy[0], log(V - 1), 1e-12);
    /* learnable: the rows are far from uniform (scale-3 logits) */
    double mean_h = 0.0;
    for (int a = 1; a < V; a++)
        mean_h += t.row_entropy[a] / (V - 1);
    CU_ASSERT(mean_h < 0.75 * log(V - 1));

    /* same seed, same teacher; another seed, another one */
    SynthTeacher t2, t3;
    synth_teacher_init(&t2, V, 123);
    synth_teacher_init(&t3, V, 124);
    CU_ASSERT(!memcmp(t.prob, t2.prob, (size_t)V * V * sizeof(double)));
    CU_ASSERT(memcmp(t.prob + V, t3.prob + V, (size_t)(V - 1) * V * sizeof(double)) != 0);
    synth_teacher_free(&t);
    synth_teacher_free(&t2);
    synth_teacher_free(&t3);
    synth_teacher_free(&t3); /* zeroed: harmless */
    synth_teacher_free(NULL);
}

static void test_teacher_sample(void)
{
    const int V = 10;
    SynthTeacher t;
    synth_teacher_init(&t, V, 7);
    Rng r;
    rng_init(&r, 99, 0);
    for (int i = 0; i < 20000; i++) {
        int prev = i % V;
        uint64_t c0 = r.counter;
        int32_t x = synth_teacher_sample(&t, prev, &r);
        CU_ASSERT(x >= 1 && x < V);
        CU_ASSERT_EQUAL(r.counter, c0 + 1); /* exactly one draw per token */
        if (x < 1 || x >= V || r.counter != c0 + 1)
            break;
    }
    synth_teacher_free(&t);
}

static void test_corpus_deterministic(void)
{
    SynthConfig c = small_cfg(5);
    PrefData a, b, d;
    double ha, hb, hd;
    synth_make_corpus(&c, &a, &ha);
    synth_make_corpus(&c, &b, &hb);
    CU_ASSERT(same_corpus(&a, &b));
    CU_ASSERT_EQUAL(ha, hb);
    c.seed = 6;
    synth_make_corpus(&c, &d, &hd);
    CU_ASSERT(!same_corpus(&a, &d));
    /* prompt i depends only on (seed, i): a longer corpus starts with the same prompts */
    c.seed = 5;
    c.n_prompts = 80;
    PrefData e;
    synth_make_corpus(&c, &e, NULL);
    CU_ASSERT(!memcmp(a.prompt_tokens, e.prompt_tokens,
                      (size_t)a.prompt_offsets[a.n_prompts] * sizeof(int32_t)));
    CU_ASSERT(!memcmp(a.response_tokens, e.response_tokens,
                      (size_t)a.response_offsets[a.n_responses] * sizeof(int32_t)));
    prefdata_free(&a);
    prefdata_free(&b);
    prefdata_free(&d);
    prefdata_free(&e);
}

static void test_corpus_shape(void)
{
    SynthConfig c = small_cfg(11);
    PrefData d;
    double h;
    synth_make_corpus(&c, &d, &h);
    char err[256] = "";
    int rc = prefdata_validate(&d, err, sizeof err);
    if (rc)
        fprintf(stderr, "\n  prefdata_validate: %s\n", err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(d.n_prompts, c.n_prompts);
    CU_ASSERT_EQUAL(d.n_responses, c.n_prompts);
    CU_ASSERT_EQUAL(d.n_pairs, 0);
    CU_ASSERT_EQUAL(d.vocab_size, c.vocab_size);
    CU_ASSERT_PTR_NULL(d.response_score);
    for (int64_t i = 0; i <= d.n_prompts; i++) {
        CU_ASSERT_EQUAL(d.prompt_offsets[i], i * c.prompt_len);
        CU_ASSERT_EQUAL(d.response_offsets[i], i * c.response_len);
    }
    int bad = 0;
    for (int64_t i = 0; i < d.n_prompts; i++) {
        CU_ASSERT_EQUAL(d.response_prompt[i], i);
        for (int j = 0; j < c.prompt_len; j++) {
            int32_t x = d.prompt_tokens[i * c.prompt_len + j];
            bad += x < 1 || x >= c.vocab_size;
        }
        for (int j = 0; j < c.response_len; j++) {
            int32_t x = d.response_tokens[i * c.response_len + j];
            if (j == c.response_len - 1)
                bad += x != SYNTH_EOS;
            else
                bad += x < 1 || x >= c.vocab_size;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(h > 0.0 && h < log(c.vocab_size));
    prefdata_free(&d);

    /* smallest sizes: one prompt of one token, the response is just EOS (loss floor 0) */
    c.n_prompts = 1;
    c.prompt_len = 1;
    c.response_len = 1;
    synth_make_corpus(&c, &d, &h);
    CU_ASSERT_EQUAL(prefdata_validate(&d, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.response_tokens[0], SYNTH_EOS);
    CU_ASSERT(d.prompt_tokens[0] >= 1 && d.prompt_tokens[0] < c.vocab_size);
    CU_ASSERT_EQUAL(h, 0.0);
    prefdata_free(&d);

    /* V = 2: one real token, a deterministic chain, entropy 0 */
    c = small_cfg(3);
    c.vocab_size = 2;
    synth_make_corpus(&c, &d, &h);
    CU_ASSERT_EQUAL(prefdata_validate(&d, err, sizeof err), 0);
    for (int64_t k = 0; k < d.prompt_offsets[d.n_prompts]; k++)
        CU_ASSERT_EQUAL(d.prompt_tokens[k], 1);
    CU_ASSERT_EQUAL(h, 0.0);
    prefdata_free(&d);
}

/* Empirical transition frequencies of a large corpus match the teacher, and the first
 * prompt token is uniform. */
static void test_corpus_statistics(void)
{
    SynthConfig c = {0};
    c.n_prompts = 4000;
    c.prompt_len = 40;
    c.response_len = 25;
    c.vocab_size = 16;
    c.seed = 2024;
    const int V = c.vocab_size;
    PrefData d;
    double h;
    synth_make_corpus(&c, &d, &h);
    SynthTeacher t;
    synth_teacher_init(&t, V, (uint64_t)c.seed);

    double *count = calloc((size_t)V * V, sizeof(double)), *row = calloc((size_t)V, sizeof(double));
    double first[64] = {0};
    CU_ASSERT_FATAL(count && row);
    for (int64_t i = 0; i < d.n_prompts; i++) {
        /* the chain: prompt then response without its EOS */
        const int32_t *pt = d.prompt_tokens + d.prompt_offsets[i];
        const int32_t *rt = d.response_tokens + d.response_offsets[i];
        first[pt[0]] += 1;
        int prev = pt[0];
        for (int j = 1; j < c.prompt_len + c.response_len - 1; j++) {
            int x = j < c.prompt_len ? pt[j] : rt[j - c.prompt_len];
            count[(size_t)prev * V + x] += 1;
            row[prev] += 1;
            prev = x;
        }
    }
    double maxdiff = 0.0;
    int rows_checked = 0;
    for (int a = 1; a < V; a++) {
        if (row[a] < 10000)
            continue;
        rows_checked++;
        for (int b = 0; b < V; b++)
            maxdiff = fmax(maxdiff, fabs(count[(size_t)a * V + b] / row[a] - t.prob[a * V + b]));
    }
    CU_ASSERT(rows_checked >= 4);
    CU_ASSERT(maxdiff < 0.02);
    if (!(maxdiff < 0.02) || rows_checked < 4)
        fprintf(stderr, "\n  rows checked %d, max |freq - prob| = %g\n", rows_checked, maxdiff);
    for (int b = 0; b < V; b++)
        CU_ASSERT(fabs(first[b] / (double)d.n_prompts - t.prob[b]) < 0.02); /* row 0 */

    /* the corpus' loss floor: between 0 and log V, and close to (Lr-1)/Lr times the
     * stationary entropy rate once the prompt has mixed the chain */
    double rate = synth_teacher_entropy_rate(&t);
    CU_ASSERT(rate > 0.0 && rate <= log(V - 1));
    CU_ASSERT(h > 0.0 && h < log(V));
    double expect = rate * (c.response_len - 1) / c.response_len;
    CU_ASSERT(fabs(h - expect) < 0.02 * expect);
    free(count);
    free(row);
    synth_teacher_free(&t);
    prefdata_free(&d);
}

/* `prefer synth` end to end: creates missing directories, writes a file that reads back
 * equal to the in-memory corpus, with the teacher_entropy and config attributes. */
static void test_cmd_synth(void)
{
    char dir[] = "/tmp/prefer-test-synth-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char *path = xasprintf("%s/a/b/corpus.h5", dir);
    char *set_out = xasprintf("synth.out=%s", path);
    char *argv[] = {"synth", "--set", set_out, "--set=synth.n_prompts=30", "--set",
                    "synth.vocab_size=24", NULL};
    CU_ASSERT_EQUAL(cmd_synth(6, argv), 0);

    PreferConfig cfg;
    char err[512] = "";
    config_defaults(&cfg);
    const char *sets[2] = {"synth.n_prompts=30", "synth.vocab_size=24"};
    CU_ASSERT_FATAL(config_load_checked(&cfg, NULL, sets, 2, err, sizeof err) == 0);
    PrefData want, got;
    double h;
    synth_make_corpus(&cfg.synth, &want, &h);
    int rc = prefdata_read_checked(path, 0, &got, err, sizeof err);
    if (rc)
        fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(same_corpus(&want, &got));
    CU_ASSERT_EQUAL(got.n_pairs, 0);
    CU_ASSERT_EQUAL(got.vocab_size, 24);
    CU_ASSERT_PTR_NULL(got.response_score);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    double h_file = -1.0;
    CU_ASSERT_EQUAL(h5u_read_attr_f64(f, "teacher_entropy", &h_file), 0);
    CU_ASSERT_EQUAL(h_file, h);
    char *text = h5u_read_attr_str(f, "config");
    CU_ASSERT(text && strstr(text, "n_prompts = 30"));
    free(text);
    H5Fclose(f);

    /* --help does nothing and succeeds */
    char *argv_help[] = {"synth", "--help", NULL};
    CU_ASSERT_EQUAL(cmd_synth(2, argv_help), 0);

    prefdata_free(&want);
    prefdata_free(&got);
    config_free(&cfg);
    unlink(path);
    char *d2 = xasprintf("%s/a/b", dir), *d1 = xasprintf("%s/a", dir);
    rmdir(d2);
    rmdir(d1);
    rmdir(dir);
    free(d1);
    free(d2);
    free(path);
    free(set_out);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("synth", NULL, NULL);
    if (!s || !CU_add_test(s, "teacher rows", test_teacher_rows) ||
        !CU_add_test(s, "teacher sample", test_teacher_sample) ||
        !CU_add_test(s, "corpus deterministic", test_corpus_deterministic) ||
        !CU_add_test(s, "corpus shape", test_corpus_shape) ||
        !CU_add_test(s, "corpus statistics", test_corpus_statistics) ||
        !CU_add_test(s, "cmd_synth", test_cmd_synth)) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    int err = CU_get_error() != CUE_SUCCESS;
    CU_cleanup_registry();
    return (failed || err) ? 1 : 0;
}

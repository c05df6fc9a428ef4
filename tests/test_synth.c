/* test_synth.c: the synthetic task: the Markov teacher, the SFT corpus, true rewards and
 * cares, Bradley-Terry pairs, the files and their attributes, `prefer synth` and `prefer
 * label`, and the exact optimum against brute force. */
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

/* ======================================================================== the task */

/* The synth section with every default, then the sizes given. */
static SynthConfig task_cfg(int V, int Lp, int Lr, int64_t seed)
{
    static PreferConfig d; /* its strings stay alive for the whole test run */
    static int init = 0;
    if (!init) {
        config_defaults(&d);
        init = 1;
    }
    SynthConfig c = d.synth;
    c.vocab_size = V;
    c.prompt_len = Lp;
    c.response_len = Lr;
    c.seed = seed;
    return c;
}

static void test_reward_hand(void)
{
    SynthConfig c = task_cfg(6, 3, 4, 42);
    c.care_sigma = 0.0;      /* every caring prompt has care = reward_scale */
    c.care_indifferent = 0.0;
    c.reward_scale = 2.5;
    SynthTask t;
    synth_task_init(&t, &c);
    CU_ASSERT_EQUAL(t.weight[SYNTH_EOS], 0.0);
    for (int v = 1; v < 6; v++)
        CU_ASSERT(t.weight[v] != 0.0 && fabs(t.weight[v]) < 8.0);
    /* the weights are hidden N(0,1) draws; set them by hand to check the formula */
    const double w[6] = {0.0, 1.0, -0.5, 0.25, 2.0, -3.0};
    memcpy(t.weight, w, sizeof w);
    const int32_t y1[4] = {1, 3, 4, SYNTH_EOS};  /* 1 + 0.25 + 2 = 3.25 */
    const int32_t y2[4] = {5, 5, 2, SYNTH_EOS};  /* -3 - 3 - 0.5 = -6.5 */
    const int32_t y3[3] = {2, 9, -1};            /* out-of-vocabulary tokens weigh 0 */
    for (int64_t i = 0; i < 5; i++) {
        CU_ASSERT_EQUAL(synth_care(&t, i), 2.5);
        CU_ASSERT_DOUBLE_EQUAL(synth_reward(&t, i, y1, 4), 2.5 * 3.25, 1e-15);
        CU_ASSERT_DOUBLE_EQUAL(synth_reward(&t, i, y2, 4), 2.5 * -6.5, 1e-15);
        CU_ASSERT_DOUBLE_EQUAL(synth_reward(&t, i, y3, 3), 2.5 * -0.5, 1e-15);
        CU_ASSERT_EQUAL(synth_reward(&t, i, y1, 0), 0.0);
    }
    synth_task_free(&t);

    /* every prompt near-indifferent: care = reward_scale * care_indifferent_scale */
    c.care_indifferent = 1.0;
    c.care_indifferent_scale = 0.1;
    synth_task_init(&t, &c);
    memcpy(t.weight, w, sizeof w);
    CU_ASSERT_DOUBLE_EQUAL(synth_care(&t, 3), 0.25, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(synth_reward(&t, 3, y1, 4), 0.25 * 3.25, 1e-15);
    synth_task_free(&t);
    synth_task_free(&t); /* zeroed: harmless */
    synth_task_free(NULL);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_cares(void)
{
    SynthConfig c = task_cfg(16, 4, 5, 9);
    SynthTask t, u;
    synth_task_init(&t, &c);
    c.n_prompts = 3; /* sizes and label keys play no part */
    c.k = 7;
    c.response_len = 9;
    synth_task_init(&u, &c);
    const int N = 4000;
    double *care = malloc(N * sizeof(double)), *sorted = malloc(N * sizeof(double));
    CU_ASSERT_FATAL(care && sorted);
    int same = 1, differ = 0;
    for (int i = 0; i < N; i++) {
        care[i] = synth_care(&t, i);
        CU_ASSERT(care[i] >= 0.0 && isfinite(care[i]));
        same &= care[i] == synth_care(&u, i) && care[i] == synth_care(&t, i);
    }
    CU_ASSERT(same);
    /* a pure function of (split, base + i) */
    synth_task_bind(&u, SYNTH_SPLIT_TRAIN, 1000);
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(synth_care(&u, i), care[1000 + i]);
    synth_task_bind(&u, SYNTH_SPLIT_HELDOUT, 0);
    for (int i = 0; i < 100; i++)
        differ += synth_care(&u, i) != care[i];
    CU_ASSERT(differ >= 99);
    /* another seed, other cares */
    SynthTask s;
    SynthConfig c2 = c;
    c2.seed = 10;
    synth_task_init(&s, &c2);
    differ = 0;
    for (int i = 0; i < 100; i++)
        differ += synth_care(&s, i) != care[i];
    CU_ASSERT(differ >= 99);
    synth_task_free(&s);

    /* spread with the default parameters: some prompts nearly indifferent, some care sharply */
    memcpy(sorted, care, N * sizeof(double));
    qsort(sorted, N, sizeof(double), cmp_double);
    const double med = sorted[N / 2];
    int low = 0, high = 0;
    for (int i = 0; i < N; i++) {
        low += care[i] < 0.1 * med;
        high += care[i] > 3.0 * med;
    }
    CU_ASSERT(low > N / 10);   /* the default 20% near-indifferent share, mostly */
    CU_ASSERT(high > N / 10);  /* the log-normal's upper tail */
    if (!(low > N / 10 && high > N / 10))
        fprintf(stderr, "\n  median %g: %d below 0.1x, %d above 3x of %d\n", med, low, high, N);
    free(care);
    free(sorted);
    synth_task_free(&t);
    synth_task_free(&u);
}

static void test_prompts_splits(void)
{
    SynthConfig c = task_cfg(20, 7, 5, 5);
    c.n_prompts = 50;
    PrefData sft;
    synth_make_corpus(&c, &sft, NULL);
    SynthTask t;
    synth_task_init(&t, &c);
    int32_t p[7], q[7];
    int same = 1, differ = 0;
    for (int64_t i = 0; i < 50; i++) {
        synth_prompt(&t, i, p);
        same &= !memcmp(p, sft.prompt_tokens + i * 7, sizeof p);
    }
    CU_ASSERT(same); /* train prompt i = prompt i of the SFT corpus */
    char err[256];
    CU_ASSERT_EQUAL(synth_check_prompts(&t, &sft, err, sizeof err), 0);
    synth_task_bind(&t, SYNTH_SPLIT_HELDOUT, 0);
    for (int64_t i = 0; i < 50; i++) {
        synth_prompt(&t, i, q);
        differ += memcmp(q, sft.prompt_tokens + i * 7, sizeof q) != 0;
    }
    CU_ASSERT(differ >= 49);
    CU_ASSERT_EQUAL(synth_check_prompts(&t, &sft, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "prompt 0") != NULL);
    synth_task_free(&t);
    prefdata_free(&sft);
}

/* ======================================================================== preference files */

static void check_pairs_grouped(const PrefData *d)
{
    char err[256] = "";
    int rc = prefdata_validate(d, err, sizeof err);
    if (rc)
        fprintf(stderr, "\n  prefdata_validate: %s\n", err);
    CU_ASSERT_EQUAL(rc, 0);
    for (int64_t k = 1; k < d->n_pairs; k++)
        CU_ASSERT(d->response_prompt[d->pair_chosen[k]] >= d->response_prompt[d->pair_chosen[k - 1]]);
}

static void test_prefs_pairs(void)
{
    SynthConfig c = task_cfg(12, 5, 6, 3);
    SynthTask t;
    synth_task_init(&t, &c);
    PrefData d;
    double *rew;
    SynthLabelStats st;
    c.k = 4;
    synth_make_prefs(&t, &c, SYNTH_SPLIT_TRAIN, 30, &d, &rew, &st);
    CU_ASSERT_EQUAL(d.n_prompts, 30);
    CU_ASSERT_EQUAL(d.n_responses, 120);
    CU_ASSERT_EQUAL(d.n_pairs, 30 * 6); /* K = 4, all pairs */
    CU_ASSERT_EQUAL(st.n_pairs, 180);
    CU_ASSERT_EQUAL(st.n_lonely, 0);
    CU_ASSERT_PTR_NOT_NULL(d.response_score);
    check_pairs_grouped(&d);
    /* each unordered pair of a prompt once */
    for (int64_t p = 0; p < 30; p++) {
        int seen[4][4] = {{0}};
        for (int64_t k = 6 * p; k < 6 * p + 6; k++) {
            int64_t a = d.pair_chosen[k] - 4 * p, b = d.pair_rejected[k] - 4 * p;
            CU_ASSERT_FATAL(a >= 0 && a < 4 && b >= 0 && b < 4 && a != b);
            seen[a < b ? a : b][a < b ? b : a]++;
        }
        for (int a = 0; a < 4; a++)
            for (int b = a + 1; b < 4; b++)
                CU_ASSERT_EQUAL(seen[a][b], 1);
    }
    /* responses: teacher chains from the prompt's last token, then EOS; scores = rewards */
    int bad = 0;
    for (int64_t r = 0; r < d.n_responses; r++) {
        const int32_t *y = d.response_tokens + d.response_offsets[r];
        const int64_t p = d.response_prompt[r];
        bad += d.response_offsets[r + 1] - d.response_offsets[r] != 6 || y[5] != SYNTH_EOS;
        bad += p != r / 4;
        int prev = d.prompt_tokens[d.prompt_offsets[p + 1] - 1];
        for (int j = 0; j < 5; j++) {
            bad += y[j] < 1 || y[j] >= 12 || t.teacher.prob[prev * 12 + y[j]] <= 0.0;
            prev = y[j];
        }
        bad += rew[r] != synth_reward(&t, p, y, 6) || d.response_score[r] != (float)rew[r];
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* the first K responses do not change when K grows */
    PrefData e;
    c.k = 6;
    synth_make_prefs(&t, &c, SYNTH_SPLIT_TRAIN, 30, &e, NULL, NULL);
    CU_ASSERT_EQUAL(e.n_pairs, 30 * 15);
    for (int64_t p = 0; p < 30; p++)
        CU_ASSERT(!memcmp(d.response_tokens + p * 4 * 6, e.response_tokens + p * 6 * 6,
                          4 * 6 * sizeof(int32_t)));
    prefdata_free(&e);
    prefdata_free(&d);
    free(rew);

    /* best_worst: one pair per prompt, best against worst; a tiny temperature makes the
     * label follow the reward */
    c.k = 5;
    c.pairs = "best_worst";
    c.label_temp = 1e-9;
    synth_make_prefs(&t, &c, SYNTH_SPLIT_HELDOUT, 40, &d, &rew, &st);
    CU_ASSERT_EQUAL(t.split, SYNTH_SPLIT_HELDOUT);
    CU_ASSERT_EQUAL(d.n_pairs, 40);
    check_pairs_grouped(&d);
    for (int64_t p = 0; p < 40; p++) {
        double mx = -INFINITY, mn = INFINITY;
        for (int k = 0; k < 5; k++) {
            mx = fmax(mx, rew[p * 5 + k]);
            mn = fmin(mn, rew[p * 5 + k]);
        }
        CU_ASSERT_EQUAL(rew[d.pair_chosen[p]], mx);
        CU_ASSERT_EQUAL(rew[d.pair_rejected[p]], mn);
    }
    CU_ASSERT_EQUAL(st.n_agree, 40);
    prefdata_free(&d);
    free(rew);

    /* K = 2, all: one pair per prompt */
    c.k = 2;
    c.pairs = "all";
    synth_make_prefs(&t, &c, SYNTH_SPLIT_TRAIN, 10, &d, NULL, NULL);
    CU_ASSERT_EQUAL(d.n_pairs, 10);
    prefdata_free(&d);
    synth_task_free(&t);
}

/* A file of n prompts with two responses each, of rewards (dr[p % nd], 0), and m lonely
 * prompts with one response. */
static void two_response_file(PrefData *d, int64_t n, const double *dr, int nd, double **rew)
{
    memset(d, 0, sizeof *d);
    d->n_prompts = n + 1;
    d->n_responses = 2 * n + 1;
    d->vocab_size = 2;
    d->prompt_tokens = calloc((size_t)n + 1, sizeof(int32_t));
    d->prompt_offsets = calloc((size_t)n + 2, sizeof(int64_t));
    d->response_tokens = calloc((size_t)(2 * n + 1), sizeof(int32_t));
    d->response_offsets = calloc((size_t)(2 * n + 2), sizeof(int64_t));
    d->response_prompt = calloc((size_t)(2 * n + 1), sizeof(int64_t));
    *rew = calloc((size_t)(2 * n + 1), sizeof(double));
    for (int64_t p = 0; p <= n; p++)
        d->prompt_offsets[p + 1] = p + 1;
    for (int64_t r = 0; r <= 2 * n; r++) {
        d->response_offsets[r + 1] = r + 1;
        d->response_prompt[r] = r / 2;
        (*rew)[r] = r % 2 == 0 && r < 2 * n ? dr[(r / 2) % nd] : 0.0;
    }
}

/* Bradley-Terry: the earlier response wins with frequency sigma(dr / temp). */
static void test_bt_labels(void)
{
    /* 100000 draws per difference: 4.5 standard errors are < 0.007, enough to tell a 5% error
     * in the temperature at dr / temp ~ 1.4 (0.011) */
    const double dr[5] = {0.0, 0.3, -0.8, 1.0, 4.0};
    const double temp = 0.7;
    const int64_t n = 500000;
    PrefData d;
    double *rew;
    two_response_file(&d, n, dr, 5, &rew);
    SynthLabelSpec spec = {0, temp, 0.0};
    SynthLabelStats st;
    synth_draw_pairs(&d, rew, &spec, 123, 5, &st);
    CU_ASSERT_EQUAL(d.n_pairs, n);
    CU_ASSERT_EQUAL(st.n_lonely, 1); /* the last prompt has one response */
    CU_ASSERT_EQUAL(st.n_ties, n / 5);
    CU_ASSERT_EQUAL(st.n_flipped, 0);
    int64_t wins[5] = {0};
    for (int64_t k = 0; k < n; k++) {
        CU_ASSERT(d.pair_chosen[k] / 2 == k && d.pair_rejected[k] / 2 == k);
        wins[k % 5] += d.pair_chosen[k] % 2 == 0;
    }
    for (int i = 0; i < 5; i++) {
        const double p = 1.0 / (1.0 + exp(-dr[i] / temp)), m = (double)(n / 5);
        const double freq = (double)wins[i] / m, se = sqrt(p * (1 - p) / m);
        CU_ASSERT(fabs(freq - p) < 4.5 * se + 1e-12);
        if (!(fabs(freq - p) < 4.5 * se + 1e-12))
            fprintf(stderr, "\n  dr %g: freq %g want %g (se %g)\n", dr[i], freq, p, se);
    }
    /* deterministic in (seed, stream); another seed, other labels */
    int64_t *c1 = malloc((size_t)n * sizeof(int64_t));
    memcpy(c1, d.pair_chosen, (size_t)n * sizeof(int64_t));
    synth_draw_pairs(&d, rew, &spec, 123, 5, NULL);
    CU_ASSERT(!memcmp(c1, d.pair_chosen, (size_t)n * sizeof(int64_t)));
    synth_draw_pairs(&d, rew, &spec, 124, 5, NULL);
    CU_ASSERT(memcmp(c1, d.pair_chosen, (size_t)n * sizeof(int64_t)) != 0);
    free(c1);

    /* label noise: with a near-zero temperature every label follows the reward, then a share
     * `noise` of them is flipped */
    const double dr1[1] = {1.0};
    free(rew);
    prefdata_free(&d);
    two_response_file(&d, n, dr1, 1, &rew);
    SynthLabelSpec noisy = {0, 1e-9, 0.2};
    synth_draw_pairs(&d, rew, &noisy, 77, 5, &st);
    const double se = sqrt(0.2 * 0.8 / (double)n);
    const double flip = (double)st.n_flipped / (double)n, dis = 1.0 - (double)st.n_agree / (double)n;
    CU_ASSERT(fabs(flip - 0.2) < 4.5 * se);
    CU_ASSERT_EQUAL(st.n_agree + st.n_flipped, n); /* exactly the flipped ones disagree */
    CU_ASSERT(fabs(dis - 0.2) < 4.5 * se);
    free(rew);
    prefdata_free(&d);
}

/* ======================================================================== files */

static void rm_tree_files(const char *dir, const char *const *names)
{
    for (const char *const *n = names; *n; n++) {
        char *p = xasprintf("%s/%s", dir, *n);
        unlink(p);
        free(p);
    }
}

static int same_prefs(const PrefData *a, const PrefData *b)
{
    if (!same_corpus(a, b) || a->n_pairs != b->n_pairs || !a->response_score != !b->response_score)
        return 0;
    if (a->response_score &&
        memcmp(a->response_score, b->response_score, (size_t)a->n_responses * sizeof(float)))
        return 0;
    return !memcmp(a->pair_chosen, b->pair_chosen, (size_t)a->n_pairs * sizeof(int64_t)) &&
           !memcmp(a->pair_rejected, b->pair_rejected, (size_t)a->n_pairs * sizeof(int64_t)) &&
           !memcmp(a->response_prompt, b->response_prompt, (size_t)a->n_responses * sizeof(int64_t));
}

/* `prefer synth` end to end: creates missing directories, writes the three files, which read
 * back equal to the in-memory ones and rebuild the task from their attributes. */
static void test_cmd_synth(void)
{
    char dir[] = "/tmp/prefer-test-synth-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char *sft = xasprintf("%s/a/b/corpus.h5", dir), *train = xasprintf("%s/a/train.h5", dir),
         *held = xasprintf("%s/held.h5", dir);
    char *s1 = xasprintf("synth.sft_out=%s", sft), *s2 = xasprintf("synth.out=%s", train),
         *s3 = xasprintf("synth.heldout_out=%s", held);
    char *argv[] = {"synth", "--set", s1, "--set", s2, "--set", s3, "--set=synth.n_prompts=30",
                    "--set", "synth.vocab_size=24", "--set", "synth.n_heldout=20",
                    "--set", "synth.label_noise=0.1", NULL};
    CU_ASSERT_EQUAL(cmd_synth(14, argv), 0);

    PreferConfig cfg;
    char err[512] = "";
    config_defaults(&cfg);
    const char *sets[4] = {"synth.n_prompts=30", "synth.vocab_size=24", "synth.n_heldout=20",
                           "synth.label_noise=0.1"};
    CU_ASSERT_FATAL(config_load_checked(&cfg, NULL, sets, 4, err, sizeof err) == 0);

    /* the SFT corpus, as before */
    PrefData want, got;
    double h;
    synth_make_corpus(&cfg.synth, &want, &h);
    int rc = prefdata_read_checked(sft, 0, &got, err, sizeof err);
    if (rc)
        fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(same_corpus(&want, &got));
    CU_ASSERT_EQUAL(got.n_pairs, 0);
    CU_ASSERT_EQUAL(got.vocab_size, 24);
    CU_ASSERT_PTR_NULL(got.response_score);
    hid_t f = H5Fopen(sft, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    double h_file = -1.0;
    CU_ASSERT_EQUAL(h5u_read_attr_f64(f, "teacher_entropy", &h_file), 0);
    CU_ASSERT_EQUAL(h_file, h);
    char *text = h5u_read_attr_str(f, "config");
    CU_ASSERT(text && strstr(text, "n_prompts = 30"));
    free(text);
    text = h5u_read_attr_str(f, "synth_kind");
    CU_ASSERT(text && !strcmp(text, "sft"));
    free(text);
    H5Fclose(f);
    prefdata_free(&want);
    prefdata_free(&got);

    /* the two preference files equal the in-memory ones; the task rebuilt from each file
     * gives the stored scores and the same optimum */
    SynthTask t;
    synth_task_init(&t, &cfg.synth);
    const char *paths[2] = {train, held};
    const int splits[2] = {SYNTH_SPLIT_TRAIN, SYNTH_SPLIT_HELDOUT};
    const int64_t ns[2] = {30, 20};
    for (int i = 0; i < 2; i++) {
        synth_make_prefs(&t, &cfg.synth, splits[i], ns[i], &want, NULL, NULL);
        rc = prefdata_read_checked(paths[i], 0, &got, err, sizeof err);
        if (rc)
            fprintf(stderr, "\n  %s\n", err);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        CU_ASSERT(same_prefs(&want, &got));
        CU_ASSERT_EQUAL(got.n_pairs, ns[i] * 6);

        SynthTask ft;
        rc = synth_task_from_file(paths[i], &ft, err, sizeof err);
        if (rc)
            fprintf(stderr, "\n  %s\n", err);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        CU_ASSERT_EQUAL(ft.split, splits[i]);
        CU_ASSERT_EQUAL(ft.prompt_base, 0);
        CU_ASSERT_EQUAL(ft.vocab, 24);
        CU_ASSERT(!memcmp(ft.weight, t.weight, 24 * sizeof(double)));
        CU_ASSERT(!memcmp(ft.teacher.prob, t.teacher.prob, 24 * 24 * sizeof(double)));
        CU_ASSERT_EQUAL(synth_check_prompts(&ft, &got, err, sizeof err), 0);
        int bad = 0;
        for (int64_t r = 0; r < got.n_responses; r++) {
            const int64_t o = got.response_offsets[r];
            bad += (float)synth_reward(&ft, got.response_prompt[r], got.response_tokens + o,
                                       got.response_offsets[r + 1] - o) != got.response_score[r];
        }
        CU_ASSERT_EQUAL(bad, 0);
        float *kept = got.response_score;
        got.response_score = NULL;
        synth_score_file_responses(&ft, &got);
        CU_ASSERT(!memcmp(kept, got.response_score, (size_t)got.n_responses * sizeof(float)));
        free(kept);
        double r1, k1, r2, k2;
        synth_optimum(&t, 3, 0.7, &r1, &k1); /* t is bound to this split by make_prefs */
        synth_optimum(&ft, 3, 0.7, &r2, &k2);
        CU_ASSERT(r1 == r2 && k1 == k2);
        synth_task_free(&ft);
        prefdata_free(&want);
        prefdata_free(&got);
    }

    /* not from the synthetic task: 1; a newer task version: -1 */
    SynthTask ft;
    char *plain = xasprintf("%s/plain.h5", dir);
    synth_make_corpus(&cfg.synth, &want, NULL);
    prefdata_write(plain, &want, NULL);
    CU_ASSERT_EQUAL(synth_task_from_file(plain, &ft, err, sizeof err), 1);
    CU_ASSERT(strstr(err, "synth_task") != NULL);
    synth_write_task_attrs(plain, &t, "sft");
    CU_ASSERT_EQUAL(synth_task_from_file(plain, &ft, err, sizeof err), 0);
    synth_task_free(&ft);
    f = H5Fopen(plain, H5F_ACC_RDWR, H5P_DEFAULT);
    h5u_attr_i64(f, "synth_version", SYNTH_TASK_VERSION + 1);
    H5Fclose(f);
    CU_ASSERT_EQUAL(synth_task_from_file(plain, &ft, err, sizeof err), -1);
    CU_ASSERT(strstr(err, "upgrade prefer") != NULL);
    char *missing = xasprintf("%s/missing.h5", dir);
    CU_ASSERT_EQUAL(synth_task_from_file(missing, &ft, err, sizeof err), -1);
    free(missing);
    prefdata_free(&want);

    /* --help does nothing and succeeds */
    char *argv_help[] = {"synth", "--help", NULL};
    CU_ASSERT_EQUAL(cmd_synth(2, argv_help), 0);

    synth_task_free(&t);
    config_free(&cfg);
    const char *files[] = {"a/b/corpus.h5", "a/train.h5", "held.h5", "plain.h5", NULL};
    rm_tree_files(dir, files);
    char *d2 = xasprintf("%s/a/b", dir), *d1 = xasprintf("%s/a", dir);
    rmdir(d2);
    rmdir(d1);
    rmdir(dir);
    free(d1);
    free(d2);
    free(sft);
    free(train);
    free(held);
    free(plain);
    free(s1);
    free(s2);
    free(s3);
}

/* `prefer label` on unscored samples of the held-out split (what `prefer sample` writes):
 * scored with the true reward, labelled, attributes carried over; on a scored foreign file:
 * labelled by its scores. */
static void test_cmd_label(void)
{
    char dir[] = "/tmp/prefer-test-label-XXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    PreferConfig cfg;
    char err[512] = "";
    config_defaults(&cfg);
    const char *sets[3] = {"synth.vocab_size=16", "synth.k=3", "synth.seed=99"};
    CU_ASSERT_FATAL(config_load_checked(&cfg, NULL, sets, 3, err, sizeof err) == 0);
    SynthTask t;
    synth_task_init(&t, &cfg.synth);
    PrefData d;
    synth_make_prefs(&t, &cfg.synth, SYNTH_SPLIT_HELDOUT, 25, &d, NULL, NULL);
    float *truth = d.response_score;
    d.response_score = NULL;
    free(d.pair_chosen);
    free(d.pair_rejected);
    d.pair_chosen = d.pair_rejected = NULL;
    d.n_pairs = 0;
    char *in = xasprintf("%s/samples.h5", dir), *out = xasprintf("%s/prefs.h5", dir);
    prefdata_write(in, &d, NULL);
    synth_write_task_attrs(in, &t, "samples");

    char *s1 = xasprintf("label.in=%s", in), *s2 = xasprintf("label.out=%s", out);
    char *argv[] = {"label", "--set", s1, "--set", s2, "--set", "synth.vocab_size=16",
                    "--set", "synth.k=3", "--set", "synth.seed=99", NULL};
    CU_ASSERT_EQUAL(cmd_label(11, argv), 0);
    PrefData got;
    int rc = prefdata_read_checked(out, 0, &got, err, sizeof err);
    if (rc)
        fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(same_corpus(&d, &got));
    CU_ASSERT_EQUAL(got.n_pairs, 25 * 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got.response_score);
    CU_ASSERT(!memcmp(truth, got.response_score, (size_t)d.n_responses * sizeof(float)));
    check_pairs_grouped(&got);
    SynthTask ft;
    CU_ASSERT_EQUAL(synth_task_from_file(out, &ft, err, sizeof err), 0);
    CU_ASSERT_EQUAL(ft.split, SYNTH_SPLIT_HELDOUT);
    synth_task_free(&ft);
    /* the same input and config: the same labels */
    int64_t *c1 = malloc((size_t)got.n_pairs * sizeof(int64_t));
    memcpy(c1, got.pair_chosen, (size_t)got.n_pairs * sizeof(int64_t));
    prefdata_free(&got);
    CU_ASSERT_EQUAL(cmd_label(11, argv), 0);
    CU_ASSERT_EQUAL_FATAL(prefdata_read_checked(out, 0, &got, err, sizeof err), 0);
    CU_ASSERT(!memcmp(c1, got.pair_chosen, (size_t)got.n_pairs * sizeof(int64_t)));
    free(c1);
    prefdata_free(&got);

    /* a foreign file with scores, best_worst */
    for (int64_t r = 0; r < d.n_responses; r++)
        truth[r] = (float)(r % 3); /* the last response of each prompt is best */
    d.response_score = truth;
    truth = NULL;
    prefdata_write(in, &d, NULL);
    char *argv2[] = {"label", "--set", s1, "--set", s2, "--set", "synth.pairs=best_worst",
                     "--set", "synth.label_temp=1e-9", NULL};
    CU_ASSERT_EQUAL(cmd_label(9, argv2), 0);
    CU_ASSERT_EQUAL_FATAL(prefdata_read_checked(out, 0, &got, err, sizeof err), 0);
    CU_ASSERT_EQUAL(got.n_pairs, 25);
    for (int64_t k = 0; k < got.n_pairs; k++) {
        CU_ASSERT_EQUAL(got.pair_chosen[k], 3 * k + 2);
        CU_ASSERT_EQUAL(got.pair_rejected[k], 3 * k);
    }
    CU_ASSERT_EQUAL(synth_task_from_file(out, &ft, err, sizeof err), 1);
    prefdata_free(&got);

    char *argv_help[] = {"label", "--help", NULL};
    CU_ASSERT_EQUAL(cmd_label(2, argv_help), 0);

    unlink(in);
    unlink(out);
    rmdir(dir);
    free(in);
    free(out);
    free(s1);
    free(s2);
    free(truth);
    prefdata_free(&d);
    synth_task_free(&t);
    config_free(&cfg);
}

/* ======================================================================== the exact optimum */

/* Brute force over every response (n free tokens in 1..V-1, then EOS) of prompt i:
 * pi* ~ teacher exp(r / beta) directly (beta = INFINITY: the teacher). Also the largest
 * reward. */
static void brute_force(const SynthTask *t, int64_t i, double beta, double *reward, double *kl,
                        double *max_reward)
{
    const int V = t->vocab, n = t->response_len - 1;
    int32_t prompt[64], y[16];
    synth_prompt(t, i, prompt);
    int64_t count = 1;
    for (int j = 0; j < n; j++)
        count *= V - 1;
    double *lp = malloc((size_t)count * sizeof(double)), *r = malloc((size_t)count * sizeof(double));
    double mx = -INFINITY, mr = -INFINITY;
    for (int64_t s = 0; s < count; s++) {
        int64_t x = s;
        int prev = prompt[t->prompt_len - 1];
        lp[s] = 0.0;
        for (int j = 0; j < n; j++) {
            y[j] = (int32_t)(1 + x % (V - 1));
            x /= V - 1;
            lp[s] += synth_teacher_logprob(&t->teacher, prev, y[j]);
            prev = y[j];
        }
        y[n] = SYNTH_EOS;
        r[s] = synth_reward(t, i, y, n + 1);
        mr = fmax(mr, r[s]);
        mx = fmax(mx, lp[s] + (isinf(beta) ? 0.0 : r[s] / beta));
    }
    double z = 0.0;
    for (int64_t s = 0; s < count; s++)
        z += exp(lp[s] + (isinf(beta) ? 0.0 : r[s] / beta) - mx);
    double er = 0.0, k = 0.0;
    for (int64_t s = 0; s < count; s++) {
        const double lq = lp[s] + (isinf(beta) ? 0.0 : r[s] / beta) - mx - log(z);
        const double q = exp(lq);
        er += q * r[s];
        if (q > 0.0)
            k += q * (lq - lp[s]);
    }
    *reward = er;
    *kl = k;
    if (max_reward)
        *max_reward = mr;
    free(lp);
    free(r);
}

#define CLOSE(a, b, tol) (fabs((a) - (b)) <= (tol) * fmax(1.0, fabs(b)))

static void test_optimum_brute_force(void)
{
    const int shapes[3][3] = {{4, 2, 3}, {4, 1, 4}, {6, 3, 5}}; /* V, prompt_len, response_len */
    const double betas[6] = {0.03, 0.2, 1.0, 3.0, 25.0, INFINITY};
    int checked = 0;
    for (int sh = 0; sh < 3; sh++) {
        SynthConfig c = task_cfg(shapes[sh][0], shapes[sh][1], shapes[sh][2], 11 + sh);
        SynthTask t;
        synth_task_init(&t, &c);
        for (int split = 0; split < 2; split++) {
            synth_task_bind(&t, split, 0);
            for (int64_t i = 0; i < 6; i++)
                for (int b = 0; b < 6; b++) {
                    double r, k, rb, kb;
                    synth_optimum(&t, i, betas[b], &r, &k);
                    brute_force(&t, i, betas[b], &rb, &kb, NULL);
                    const int ok = CLOSE(r, rb, 1e-9) && CLOSE(k, kb, 1e-9);
                    CU_ASSERT(ok);
                    if (!ok)
                        fprintf(stderr, "\n  V %d L %d prompt %lld beta %g: DP (%.12g, %.12g) "
                                "brute force (%.12g, %.12g)\n", shapes[sh][0], shapes[sh][2],
                                (long long)i, betas[b], r, k, rb, kb);
                    checked++;
                }
            /* the teacher's reward */
            double rb, kb;
            brute_force(&t, 2, INFINITY, &rb, &kb, NULL);
            CU_ASSERT(CLOSE(synth_teacher_reward(&t, 2), rb, 1e-12));
            CU_ASSERT(fabs(kb) < 1e-12);
        }
        synth_task_free(&t);
    }
    CU_ASSERT_EQUAL(checked, 3 * 2 * 6 * 6);

    /* response_len 1: the response is EOS alone, nothing to optimise */
    SynthConfig c = task_cfg(5, 2, 1, 1);
    SynthTask t;
    synth_task_init(&t, &c);
    double r, k;
    synth_optimum(&t, 0, 0.1, &r, &k);
    CU_ASSERT(r == 0.0 && k == 0.0);
    synth_task_free(&t);
}

static void test_optimum_monotone_limits(void)
{
    SynthConfig c = task_cfg(16, 4, 8, 21);
    SynthTask t;
    synth_task_init(&t, &c);
    int bad = 0;
    for (int64_t i = 0; i < 8; i++) {
        double prev_r = INFINITY, prev_k = INFINITY;
        for (double beta = 1e-3; beta < 2e4; beta *= 1.5) {
            double r, k;
            synth_optimum(&t, i, beta, &r, &k);
            /* KL and reward both fall as beta grows (up to rounding) */
            bad += !(k <= prev_k * (1 + 1e-9) + 1e-15) || !(r <= prev_r + 1e-9 * fmax(1.0, fabs(r)));
            bad += !(k >= 0.0) || !isfinite(r);
            prev_r = r;
            prev_k = k;
        }
        /* beta -> inf: the teacher; beta -> 0: the reward maximiser */
        const double tr = synth_teacher_reward(&t, i);
        double r, k;
        synth_optimum(&t, i, 1e7 * fmax(1.0, synth_care(&t, i)), &r, &k);
        bad += !(k < 1e-10) || !(fabs(r - tr) < 1e-5 * fmax(1.0, fabs(tr)));
        /* the optimum beats the teacher on the regularised objective */
        synth_optimum(&t, i, 0.5, &r, &k);
        bad += !(r - 0.5 * k >= tr - 1e-12);
    }
    CU_ASSERT_EQUAL(bad, 0);
    synth_task_free(&t);

    /* small beta -> the largest reward (brute force on a tiny task) */
    c = task_cfg(4, 2, 4, 5);
    synth_task_init(&t, &c);
    for (int64_t i = 0; i < 4; i++) {
        double r, k, rb, kb, mr;
        brute_force(&t, i, 1.0, &rb, &kb, &mr);
        synth_optimum(&t, i, 1e-6 * synth_care(&t, i), &r, &k);
        CU_ASSERT(fabs(r - mr) < 1e-6 * fmax(1.0, fabs(mr)));
    }
    synth_task_free(&t);
}

static void test_frontier(void)
{
    SynthConfig c = task_cfg(12, 3, 7, 8);
    SynthTask t;
    synth_task_init(&t, &c);
    synth_task_bind(&t, SYNTH_SPLIT_HELDOUT, 0);
    const int64_t n = 24;
    int64_t ids[24];
    for (int64_t i = 0; i < n; i++)
        ids[i] = 3 * i + 1;
    double teacher = 0.0;
    for (int64_t i = 0; i < n; i++)
        teacher += synth_teacher_reward(&t, ids[i]) / (double)n;

    double prev = -INFINITY;
    const double targets[5] = {0.01, 0.3, 1.0, 3.0, 8.0};
    for (int j = 0; j < 5; j++) {
        double r, beta;
        int rc = synth_frontier(&t, ids, n, targets[j], &r, &beta);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT(beta > 0.0 && isfinite(beta));
        /* at the beta found: mean KL = target, mean reward = the value returned */
        double mr = 0.0, mk = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double ri, ki;
            synth_optimum(&t, ids[i], beta, &ri, &ki);
            mr += ri / (double)n;
            mk += ki / (double)n;
        }
        CU_ASSERT(fabs(mk - targets[j]) <= 2e-9 * fmax(1.0, targets[j]));
        CU_ASSERT(fabs(mr - r) <= 1e-9 * fmax(1.0, fabs(r)));
        CU_ASSERT(r > prev); /* more KL, more reward */
        CU_ASSERT(r > teacher);
        if (rc != 0 || !(fabs(mk - targets[j]) <= 2e-9 * fmax(1.0, targets[j])))
            fprintf(stderr, "\n  target %g: rc %d beta %g KL %.12g reward %g\n", targets[j], rc, beta,
                    mk, r);
        prev = r;
    }
    /* no KL: the teacher */
    double r, beta;
    CU_ASSERT_EQUAL(synth_frontier(&t, ids, n, 0.0, &r, &beta), 0);
    CU_ASSERT(isinf(beta));
    CU_ASSERT(fabs(r - teacher) < 1e-12 * fmax(1.0, fabs(teacher)));
    /* beyond the reachable KL: the reward maximisers, flagged */
    CU_ASSERT_EQUAL(synth_frontier(&t, ids, n, 1e6, &r, &beta), 1);
    CU_ASSERT(r >= prev);
    /* prompts = NULL means 0 .. n-1 */
    double r1, r2, b1, b2;
    int64_t first[5] = {0, 1, 2, 3, 4};
    synth_frontier(&t, first, 5, 0.5, &r1, &b1);
    synth_frontier(&t, NULL, 5, 0.5, &r2, &b2);
    CU_ASSERT(r1 == r2 && b1 == b2);
    synth_task_free(&t);
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
        !CU_add_test(s, "reward by hand", test_reward_hand) ||
        !CU_add_test(s, "cares", test_cares) ||
        !CU_add_test(s, "prompt splits", test_prompts_splits) ||
        !CU_add_test(s, "preference pairs", test_prefs_pairs) ||
        !CU_add_test(s, "Bradley-Terry labels and noise", test_bt_labels) ||
        !CU_add_test(s, "cmd_synth", test_cmd_synth) ||
        !CU_add_test(s, "cmd_label", test_cmd_label) ||
        !CU_add_test(s, "optimum vs brute force", test_optimum_brute_force) ||
        !CU_add_test(s, "optimum monotone, limits", test_optimum_monotone_limits) ||
        !CU_add_test(s, "frontier", test_frontier)) {
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

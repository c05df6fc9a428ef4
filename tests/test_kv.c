/* test_kv.c: the KV cache against the full forward: every position's log-softmax over the
 * whole vocabulary, for sequences of different lengths and start times in one batch,
 * crossing the 64-row attention blocks of the training kernel; reset; inactive slots
 * untouched; rewinding a slot; bit-identical logits whatever the batch and thread count. */
#include "prefer/gpt.h"
#include "prefer/kv.h"
#include "prefer/rng.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-5

static void init_model(Gpt *m, int V, int T, int L, int NH, int C, int max_batch, uint64_t seed)
{
    GptDims d = {.vocab_size = V, .context = T, .n_layer = L, .n_head = NH, .n_embd = C};
    gpt_init(m, &d, max_batch);
    /* larger than GPT-2's 0.02 so that attention and the output distribution are far
     * from uniform: a mistake in the cache shows up in the logits */
    gpt_init_weights(m, seed, 0.2);
    /* non-trivial LayerNorm gains and biases */
    Rng r;
    rng_init(&r, seed, 99);
    for (int l = 0; l < L; l++) {
        GptLayer *y = &m->p.layer[l];
        for (int c = 0; c < C; c++) {
            y->ln1w[c] = (float)(1 + 0.2 * rng_normal(&r));
            y->ln1b[c] = (float)(0.1 * rng_normal(&r));
            y->ln2w[c] = (float)(1 + 0.2 * rng_normal(&r));
            y->ln2b[c] = (float)(0.1 * rng_normal(&r));
        }
        for (int c = 0; c < 3 * C; c++)
            y->qkvb[c] = (float)(0.1 * rng_normal(&r));
        for (int c = 0; c < 4 * C; c++)
            y->fcb[c] = (float)(0.1 * rng_normal(&r));
    }
}

/* Full-forward log-softmax over the vocabulary at every position of B padded sequences:
 * out (B, T, V), entry [b,t,v] = log p(v | seq[b, <=t]) for t < len[b]. One forward per v,
 * all targets = v. */
static void full_logsoftmax(Gpt *m, const int32_t *seq, const int *len, int B, int T, double *out)
{
    int V = m->d.vocab_size;
    size_t N = (size_t)B * T;
    int32_t *tgt = malloc(sizeof(int32_t) * N);
    uint8_t *mask = malloc(N);
    float *lp = malloc(sizeof(float) * N);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            mask[b * T + t] = t < len[b];
    for (int v = 0; v < V; v++) {
        for (size_t i = 0; i < N; i++)
            tgt[i] = v;
        gpt_forward(m, seq, tgt, mask, B, T, lp, NULL, NULL);
        for (size_t i = 0; i < N; i++)
            out[i * V + v] = lp[i];
    }
    free(tgt);
    free(mask);
    free(lp);
}

/* log-softmax of a float row in double */
static void logsoftmax(const float *x, int V, double *out)
{
    double mx = x[0], s = 0;
    for (int v = 1; v < V; v++)
        mx = x[v] > mx ? x[v] : mx;
    for (int v = 0; v < V; v++)
        s += exp((double)x[v] - mx);
    double lse = mx + log(s);
    for (int v = 0; v < V; v++)
        out[v] = (double)x[v] - lse;
}

/* Sequences of different lengths, starting at different steps, crossing positions 64 and
 * 128; every step's logits against the full forward over the whole vocabulary. */
static void test_kv_equals_forward(void)
{
    const int V = 29, T = 150, B = 5;
    Gpt m;
    init_model(&m, V, T, 2, 3, 24, B, 11);
    int len[5] = {150, 70, 1, 129, 65};
    int start[5] = {0, 3, 40, 10, 85};
    int32_t *seq = calloc((size_t)B * T, sizeof(int32_t));
    Rng r;
    rng_init(&r, 5, 0);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < len[b]; t++)
            seq[b * T + t] = (int32_t)rng_below(&r, (uint64_t)V);
    double *ref = malloc(sizeof(double) * B * T * V);
    full_logsoftmax(&m, seq, len, B, T, ref);

    GptKV *kv = gpt_kv_new(&m, B);
    float *logits = malloc(sizeof(float) * B * V);
    double *row = malloc(sizeof(double) * V);
    int32_t tok[5];
    int pos[5];
    uint8_t act[5];
    double worst = 0;
    int checked = 0;
    for (int s = 0; s < 300; s++) {
        int any = 0;
        for (int b = 0; b < B; b++) {
            int p = s - start[b];
            act[b] = p >= 0 && p < len[b];
            pos[b] = act[b] ? p : 0;
            tok[b] = act[b] ? seq[b * T + p] : 0;
            any |= act[b];
        }
        if (!any)
            continue;
        gpt_kv_step(&m, kv, tok, pos, act, logits);
        for (int b = 0; b < B; b++) {
            if (!act[b])
                continue;
            logsoftmax(logits + (size_t)b * V, V, row);
            const double *want = ref + ((size_t)b * T + pos[b]) * V;
            for (int v = 0; v < V; v++) {
                double e = fabs(row[v] - want[v]);
                worst = e > worst ? e : worst;
            }
            checked++;
        }
    }
    int total = 0;
    for (int b = 0; b < B; b++) {
        total += len[b];
        CU_ASSERT(gpt_kv_len(kv, b) == len[b]);
    }
    printf("\n  %d positions, worst |log p| difference %.3g ", checked, worst);
    CU_ASSERT(checked == total);
    CU_ASSERT(worst < TOL);
    gpt_kv_free(kv);
    gpt_kv_free(NULL);
    free(seq);
    free(ref);
    free(logits);
    free(row);
    gpt_free(&m);
}

/* After reset, the same sequence gives the same logits as a fresh cache; a slot that was
 * inactive keeps its logits row, cache and length; rewinding a slot to position p replaces
 * its tail. */
static void test_kv_reset_inactive_rewind(void)
{
    const int V = 17, T = 80, B = 3, n = 70;
    Gpt m;
    init_model(&m, V, T, 2, 2, 16, 1, 3);
    int32_t seq[3][80];
    Rng r;
    rng_init(&r, 9, 0);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            seq[b][t] = (int32_t)rng_below(&r, (uint64_t)V);

    GptKV *kv = gpt_kv_new(&m, B);
    CU_ASSERT(gpt_kv_batch(kv) == B);
    float *first = malloc(sizeof(float) * n * B * V), *lg = malloc(sizeof(float) * B * V);
    int32_t tok[3];
    int pos[3];
    /* run all three slots, remember the logits */
    for (int t = 0; t < n; t++) {
        for (int b = 0; b < B; b++) {
            tok[b] = seq[b][t];
            pos[b] = t;
        }
        gpt_kv_step(&m, kv, tok, pos, NULL, first + (size_t)t * B * V);
    }
    /* garbage in the cache, then reset and run again: identical */
    for (int t = 0; t < 5; t++) {
        for (int b = 0; b < B; b++) {
            tok[b] = (int32_t)((t * 7 + b) % V);
            pos[b] = t;
        }
        gpt_kv_step(&m, kv, tok, pos, NULL, lg);
    }
    gpt_kv_reset(kv);
    for (int b = 0; b < B; b++)
        CU_ASSERT(gpt_kv_len(kv, b) == 0);
    int same = 1;
    for (int t = 0; t < n; t++) {
        for (int b = 0; b < B; b++) {
            tok[b] = seq[b][t];
            pos[b] = t;
        }
        gpt_kv_step(&m, kv, tok, pos, NULL, lg);
        if (memcmp(lg, first + (size_t)t * B * V, sizeof(float) * B * V) != 0)
            same = 0;
    }
    CU_ASSERT(same);

    /* slot 1 pauses while slots 0 and 2 are rewound and replaced: its row of the logits,
     * its length and its cache are untouched (it then continues as if never paused) */
    gpt_kv_reset(kv);
    for (int t = 0; t < 30; t++) {
        for (int b = 0; b < B; b++) {
            tok[b] = seq[b][t];
            pos[b] = t;
        }
        gpt_kv_step(&m, kv, tok, pos, NULL, lg);
    }
    for (int v = 0; v < V; v++)
        lg[V + v] = -12345.0f;
    uint8_t act[3] = {1, 0, 1};
    for (int t = 0; t < 40; t++) {
        for (int b = 0; b < B; b++) {
            tok[b] = (int32_t)((t * 5 + 3 * b) % V);
            pos[b] = t; /* slots 0 and 2 start over at 0 */
        }
        pos[1] = 999; /* ignored: inactive */
        tok[1] = -1;
        gpt_kv_step(&m, kv, tok, pos, act, lg);
    }
    int untouched = 1;
    for (int v = 0; v < V; v++)
        untouched &= lg[V + v] == -12345.0f;
    CU_ASSERT(untouched);
    CU_ASSERT(gpt_kv_len(kv, 1) == 30);
    CU_ASSERT(gpt_kv_len(kv, 0) == 40);
    uint8_t only1[3] = {0, 1, 0};
    same = 1;
    for (int t = 30; t < n; t++) {
        tok[1] = seq[1][t];
        pos[1] = t;
        gpt_kv_step(&m, kv, tok, pos, only1, lg);
        if (memcmp(lg + V, first + (size_t)t * B * V + V, sizeof(float) * V) != 0)
            same = 0;
    }
    CU_ASSERT(same);

    /* rewind slot 1 to position 10 and replay the original tokens: same logits again */
    same = 1;
    for (int t = 10; t < n; t++) {
        tok[1] = seq[1][t];
        pos[1] = t;
        gpt_kv_step(&m, kv, tok, pos, only1, lg);
        if (memcmp(lg + V, first + (size_t)t * B * V + V, sizeof(float) * V) != 0)
            same = 0;
        if (t == 10)
            CU_ASSERT(gpt_kv_len(kv, 1) == 11);
    }
    CU_ASSERT(same);

    /* logits NULL: the cache still advances */
    gpt_kv_reset(kv);
    for (int t = 0; t < n - 1; t++) {
        tok[0] = seq[0][t];
        pos[0] = t;
        gpt_kv_step(&m, kv, tok, pos, (const uint8_t[3]){1, 0, 0}, NULL);
    }
    tok[0] = seq[0][n - 1];
    pos[0] = n - 1;
    gpt_kv_step(&m, kv, tok, pos, (const uint8_t[3]){1, 0, 0}, lg);
    CU_ASSERT(memcmp(lg, first + (size_t)(n - 1) * B * V, sizeof(float) * V) == 0);

    gpt_kv_free(kv);
    free(first);
    free(lg);
    gpt_free(&m);
}

/* A slot's logits do not depend on how many other slots step with it (bit for bit): what
 * makes sampling independent of batch size and of the number of ranks. */
static void test_kv_batch_independent(void)
{
    const int V = 23, T = 40, B = 9;
    Gpt m;
    init_model(&m, V, T, 2, 4, 32, 1, 21);
    int32_t seq[9][40];
    Rng r;
    rng_init(&r, 13, 0);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            seq[b][t] = (int32_t)rng_below(&r, (uint64_t)V);
    GptKV *big = gpt_kv_new(&m, B), *one = gpt_kv_new(&m, 1);
    float *lb = malloc(sizeof(float) * B * V), *l1 = malloc(sizeof(float) * V);
    int32_t tok[9];
    int pos[9];
    int same = 1;
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            tok[b] = seq[b][t];
            pos[b] = t;
        }
        gpt_kv_step(&m, big, tok, pos, NULL, lb);
        int p1 = t;
        gpt_kv_step(&m, one, &seq[4][t], &p1, NULL, l1);
        if (memcmp(l1, lb + 4 * V, sizeof(float) * V) != 0)
            same = 0;
    }
    CU_ASSERT(same);
    /* nor on the thread count (the threads split output columns, never a sum) */
    float *l2 = malloc(sizeof(float) * B * V);
    gpt_kv_reset(big);
    gpt_set_threads(1);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            tok[b] = seq[b][t];
            pos[b] = t;
        }
        gpt_kv_step(&m, big, tok, pos, NULL, l2);
    }
    gpt_set_threads(2);
    gpt_kv_reset(big);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            tok[b] = seq[b][t];
            pos[b] = t;
        }
        gpt_kv_step(&m, big, tok, pos, NULL, lb);
    }
    CU_ASSERT(memcmp(l2, lb, sizeof(float) * B * V) == 0);
    free(l2);
    gpt_kv_free(big);
    gpt_kv_free(one);
    free(lb);
    free(l1);
    gpt_free(&m);
}

int main(void)
{
    gpt_set_threads(2); /* as runtime_setup does: OpenMP threads, single-threaded OpenBLAS */
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("kv", NULL, NULL);
    CU_add_test(s, "KV steps equal the full forward (all positions, whole vocabulary)", test_kv_equals_forward);
    CU_add_test(s, "reset, inactive slots, rewind, logits NULL", test_kv_reset_inactive_rewind);
    CU_add_test(s, "a slot's logits do not depend on the batch", test_kv_batch_independent);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}

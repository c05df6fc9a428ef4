/* test_sample.c: sample_next (greedy, top-k, top-p nucleus, temperature, frequencies against
 * the renormalised distribution) and sample_responses (eos, max_len and the context bound,
 * determinism in the seed, independence from batch size and from how the prompts are split,
 * log-probs and the per-token hook against the full forward). */
#include "prefer/gpt.h"
#include "prefer/prefdata.h"
#include "prefer/rng.h"
#include "prefer/sample.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DRAWS 40000

static SampleParams params(double temp, int top_k, double top_p)
{
    SampleParams sp = {.temperature = temp, .top_k = top_k, .top_p = top_p, .max_len = 8, .eos = -1, .seed = 1};
    return sp;
}

/* Frequencies of DRAWS draws from logits (V) into freq (V). */
static void frequencies(const float *logits, int V, const SampleParams *sp, double *freq)
{
    float *work = malloc(sizeof(float) * SAMPLE_WORK_FLOATS(V));
    Rng r;
    rng_init(&r, 77, 3);
    memset(freq, 0, sizeof(double) * V);
    int out_of_range = 0;
    for (int i = 0; i < DRAWS; i++) {
        int y = sample_next(logits, V, sp, &r, work);
        if (y < 0 || y >= V)
            out_of_range++;
        else
            freq[y] += 1.0 / DRAWS;
    }
    CU_ASSERT(out_of_range == 0);
    free(work);
}

/* 1 if every freq[v] is within tol of want[v] (want 0 means "never"). */
static int close_to(const double *freq, const double *want, int V, double tol)
{
    int ok = 1;
    for (int v = 0; v < V; v++) {
        if (want[v] == 0.0 && freq[v] != 0.0)
            ok = 0;
        if (fabs(freq[v] - want[v]) > tol)
            ok = 0;
    }
    if (!ok) {
        printf("\n  got:");
        for (int v = 0; v < V; v++)
            printf(" %.4f", freq[v]);
        printf("\n  want:");
        for (int v = 0; v < V; v++)
            printf(" %.4f", want[v]);
    }
    return ok;
}

static void test_greedy_and_top1(void)
{
    const int V = 50;
    float lg[50], work[100];
    Rng g, r;
    rng_init(&g, 4, 0);
    int ok_greedy = 1, ok_top1 = 1;
    for (int trial = 0; trial < 200; trial++) {
        int arg = 0;
        for (int v = 0; v < V; v++) {
            lg[v] = (float)(3 * rng_normal(&g));
            if (lg[v] > lg[arg])
                arg = v;
        }
        SampleParams gr = params(0.0, 0, 1.0), t1 = params(1.7, 1, 0.9);
        rng_init(&r, 1, (uint64_t)trial);
        uint64_t before = r.counter;
        ok_greedy &= sample_next(lg, V, &gr, &r, work) == arg;
        ok_greedy &= r.counter == before; /* greedy draws nothing */
        ok_top1 &= sample_next(lg, V, &t1, &r, work) == arg;
    }
    CU_ASSERT(ok_greedy);
    CU_ASSERT(ok_top1);
    /* ties: greedy takes the lowest id */
    float tie[4] = {1.0f, 3.0f, 3.0f, 2.0f};
    SampleParams gr = params(0.0, 0, 1.0);
    CU_ASSERT(sample_next(tie, 4, &gr, &r, work) == 1);
    CU_ASSERT(fabs(sample_logprob(tie, 4, 0) - (1.0 - log(exp(1.0) + 2 * exp(3.0) + exp(2.0)))) < 1e-12);
}

static void test_plain_and_temperature(void)
{
    const int V = 5;
    const double p[5] = {0.4, 0.3, 0.15, 0.1, 0.05};
    float lg[5];
    double freq[5], want[5];
    for (int v = 0; v < V; v++)
        lg[v] = (float)(log(p[v]) + 2.0); /* shifted: only differences matter */
    SampleParams sp = params(1.0, 0, 1.0);
    frequencies(lg, V, &sp, freq);
    CU_ASSERT(close_to(freq, p, V, 0.02));
    /* temperature T: p^(1/T) renormalised */
    const double temps[3] = {0.5, 2.0, 5.0};
    for (int i = 0; i < 3; i++) {
        double z = 0;
        for (int v = 0; v < V; v++)
            z += want[v] = pow(p[v], 1.0 / temps[i]);
        for (int v = 0; v < V; v++)
            want[v] /= z;
        sp = params(temps[i], 0, 1.0);
        frequencies(lg, V, &sp, freq);
        CU_ASSERT(close_to(freq, want, V, 0.02));
    }
}

static void test_top_k_top_p(void)
{
    const int V = 6;
    /* shuffled ids so that no filter can rely on order */
    const double p[6] = {0.05, 0.3, 0.1, 0.4, 0.0999, 0.0501};
    float lg[6];
    double freq[6], want[6];
    for (int v = 0; v < V; v++)
        lg[v] = (float)log(p[v]);

    /* top-p 0.75: the smallest set with mass >= 0.75 is {3, 1, 2} (0.8); 0.8 itself would sit
     * on the edge of float rounding */
    SampleParams sp = params(1.0, 0, 0.75);
    frequencies(lg, V, &sp, freq);
    memset(want, 0, sizeof want);
    want[3] = 0.4 / 0.8;
    want[1] = 0.3 / 0.8;
    want[2] = 0.1 / 0.8;
    CU_ASSERT(close_to(freq, want, V, 0.02));
    /* top-p 0.65: {3, 1} (0.7) */
    sp = params(1.0, 0, 0.65);
    frequencies(lg, V, &sp, freq);
    memset(want, 0, sizeof want);
    want[3] = 0.4 / 0.7;
    want[1] = 0.3 / 0.7;
    CU_ASSERT(close_to(freq, want, V, 0.02));
    /* top-p small: only the most likely */
    sp = params(1.0, 0, 0.1);
    frequencies(lg, V, &sp, freq);
    memset(want, 0, sizeof want);
    want[3] = 1.0;
    CU_ASSERT(close_to(freq, want, V, 1e-9));
    /* top-k 4: {3, 1, 2, 4}, mass 0.8999 */
    sp = params(1.0, 4, 1.0);
    frequencies(lg, V, &sp, freq);
    memset(want, 0, sizeof want);
    want[3] = 0.4 / 0.8999;
    want[1] = 0.3 / 0.8999;
    want[2] = 0.1 / 0.8999;
    want[4] = 0.0999 / 0.8999;
    CU_ASSERT(close_to(freq, want, V, 0.02));
    /* top-k 4 then top-p 0.85 of the renormalised {0.444, 0.333, 0.111, 0.111}: {3, 1, 2}
     * (0.889); HF order: top-k first, then the nucleus of what is left */
    sp = params(1.0, 4, 0.85);
    frequencies(lg, V, &sp, freq);
    memset(want, 0, sizeof want);
    want[3] = 0.4 / 0.8;
    want[1] = 0.3 / 0.8;
    want[2] = 0.1 / 0.8;
    CU_ASSERT(close_to(freq, want, V, 0.02));
    /* temperature 2 then top-p 0.6: q ~ sqrt(p), renormalised {3: .280, 1: .242, 2: .140,
     * 4: .140 (a hair less than 2), 5: .099, 0: .099}; .280 + .242 = .522 < 0.6 and + .140 =
     * .662 >= 0.6, so the nucleus is {3, 1, 2} */
    sp = params(2.0, 0, 0.6);
    frequencies(lg, V, &sp, freq);
    double q[6], z = 0;
    for (int v = 0; v < V; v++)
        z += q[v] = sqrt(p[v]);
    memset(want, 0, sizeof want);
    double kept = q[3] + q[1] + q[2];
    want[3] = q[3] / kept;
    want[1] = q[1] / kept;
    want[2] = q[2] / kept;
    CU_ASSERT(close_to(freq, want, V, 0.02));
    /* top_k >= V and top_p = 1 filter nothing */
    sp = params(1.0, 6, 1.0);
    frequencies(lg, V, &sp, freq);
    CU_ASSERT(close_to(freq, p, V, 0.02));
}

/* ---------------------------------------------------------------- sample_responses */

static void make_model(Gpt *m, int V, int T, uint64_t seed)
{
    GptDims d = {.vocab_size = V, .context = T, .n_layer = 2, .n_head = 2, .n_embd = 16};
    gpt_init(m, &d, 8);
    gpt_init_weights(m, seed, 0.3);
}

/* P prompts of lengths 1 .. maxlen (varied) */
static void make_prompts(PrefData *d, int P, int V, int maxlen)
{
    memset(d, 0, sizeof *d);
    d->n_prompts = P;
    d->vocab_size = V;
    d->prompt_offsets = malloc(sizeof(int64_t) * (P + 1));
    d->prompt_tokens = malloc(sizeof(int32_t) * (size_t)P * maxlen);
    d->prompt_offsets[0] = 0;
    Rng r;
    rng_init(&r, 123, 0);
    for (int p = 0; p < P; p++) {
        int n = 1 + (p * 7) % maxlen;
        for (int i = 0; i < n; i++)
            d->prompt_tokens[d->prompt_offsets[p] + i] = (int32_t)rng_below(&r, (uint64_t)V);
        d->prompt_offsets[p + 1] = d->prompt_offsets[p] + n;
    }
}

static int same_out(const SampleOut *a, const SampleOut *b)
{
    if (a->n != b->n || a->stride != b->stride || a->n_tokens != b->n_tokens)
        return 0;
    for (int64_t i = 0; i < a->n; i++) {
        if (a->len[i] != b->len[i])
            return 0;
        size_t o = (size_t)i * a->stride;
        if (memcmp(a->tokens + o, b->tokens + o, sizeof(int32_t) * a->len[i]) ||
            memcmp(a->logp + o, b->logp + o, sizeof(float) * a->len[i]))
            return 0;
    }
    return 1;
}

static void test_responses_deterministic(void)
{
    const int V = 12, T = 24, P = 9, K = 3;
    Gpt m;
    make_model(&m, V, T, 5);
    PrefData d;
    make_prompts(&d, P, V, 6);
    SampleParams sp = {.temperature = 1.0, .top_k = 0, .top_p = 0.95, .max_len = 10, .eos = 2, .seed = 42};
    SampleOut a = {0}, b = {0}, c = {0}, e = {0}, f = {0};
    sample_responses(&m, &d, 0, P, K, &sp, 1, &a);
    sample_responses(&m, &d, 0, P, K, &sp, 7, &b);
    CU_ASSERT(a.n == P * K && a.K == K && a.p_begin == 0);
    CU_ASSERT(same_out(&a, &b)); /* batch 1 == batch 7 */
    sample_responses(&m, &d, 0, P, K, &sp, 64, &c);
    CU_ASSERT(same_out(&a, &c)); /* batch larger than the work */
    /* split as two ranks would: [0, 4) and [4, 9) */
    sample_responses(&m, &d, 0, 4, K, &sp, 5, &e);
    sample_responses(&m, &d, 4, P, K, &sp, 3, &f);
    int split_same = e.n + f.n == a.n;
    for (int64_t i = 0; split_same && i < a.n; i++) {
        const SampleOut *s = i < e.n ? &e : &f;
        int64_t j = i < e.n ? i : i - e.n;
        split_same = s->len[j] == a.len[i] &&
                     !memcmp(s->tokens + j * s->stride, a.tokens + i * a.stride, sizeof(int32_t) * a.len[i]);
    }
    CU_ASSERT(split_same);
    CU_ASSERT(f.p_begin == 4);
    /* another seed: different responses; the same seed again: the same */
    sample_out_free(&c);
    sp.seed = 43;
    sample_responses(&m, &d, 0, P, K, &sp, 4, &c);
    CU_ASSERT(!same_out(&a, &c));
    sample_out_free(&c);
    sp.seed = 42;
    sample_responses(&m, &d, 0, P, K, &sp, 4, &c);
    CU_ASSERT(same_out(&a, &c));
    /* the K responses of a prompt differ (their streams differ) */
    int differ = 0;
    for (int p = 0; p < P; p++)
        differ += a.len[p * K] != a.len[p * K + 1] ||
                  memcmp(a.tokens + (size_t)p * K * a.stride, a.tokens + ((size_t)p * K + 1) * a.stride,
                         sizeof(int32_t) * a.len[p * K]) != 0;
    CU_ASSERT(differ > P / 2);
    /* empty range */
    SampleOut z = {0};
    sample_responses(&m, &d, 3, 3, K, &sp, 4, &z);
    CU_ASSERT(z.n == 0 && z.n_tokens == 0);
    sample_out_free(&z);
    sample_out_free(&a);
    sample_out_free(&b);
    sample_out_free(&c);
    sample_out_free(&e);
    sample_out_free(&f);
    sample_out_free(NULL);
    prefdata_free(&d);
    gpt_free(&m);
}

/* eos ends a response (and is kept); otherwise max_len, bounded by context + 1 - prompt
 * length. */
static void test_eos_and_lengths(void)
{
    const int V = 6, T = 12, P = 8, K = 5;
    Gpt m;
    make_model(&m, V, T, 9);
    PrefData d;
    make_prompts(&d, P, V, 12); /* lengths 1 .. 12 = T */
    SampleParams sp = {.temperature = 1.0, .top_k = 0, .top_p = 1.0, .max_len = 9, .eos = 0, .seed = 3};
    SampleOut o = {0};
    sample_responses(&m, &d, 0, P, K, &sp, 6, &o);
    int ok = 1, saw_eos = 0, saw_full = 0, saw_ctx = 0;
    int64_t sum = 0;
    for (int64_t i = 0; i < o.n; i++) {
        int64_t p = i / K;
        int plen = (int)(d.prompt_offsets[p + 1] - d.prompt_offsets[p]);
        int cap = sp.max_len < T + 1 - plen ? sp.max_len : T + 1 - plen;
        const int32_t *y = o.tokens + i * o.stride;
        int n = o.len[i];
        sum += n;
        if (n < 1 || n > cap)
            ok = 0;
        for (int t = 0; t < n - 1; t++)
            if (y[t] == sp.eos)
                ok = 0; /* nothing after eos */
        if (y[n - 1] == sp.eos)
            saw_eos = 1;
        else if (n != cap)
            ok = 0; /* ended without eos before the cap */
        if (n == cap && y[n - 1] != sp.eos)
            saw_full = 1;
        if (cap < sp.max_len && n == cap && y[n - 1] != sp.eos)
            saw_ctx = 1;
    }
    CU_ASSERT(ok);
    CU_ASSERT(saw_eos);
    CU_ASSERT(saw_full);
    CU_ASSERT(saw_ctx);
    CU_ASSERT(sum == o.n_tokens);
    sample_out_free(&o);

    /* greedy with eos = the greedy first token: every response is that one token */
    SampleParams g = {.temperature = 0.0, .top_k = 0, .top_p = 1.0, .max_len = 9, .eos = -1, .seed = 3};
    sample_responses(&m, &d, 0, 1, 1, &g, 1, &o);
    int first = o.tokens[0];
    CU_ASSERT(o.len[0] == 9);
    sample_out_free(&o);
    g.eos = first;
    sample_responses(&m, &d, 0, 1, 3, &g, 2, &o);
    for (int k = 0; k < 3; k++)
        CU_ASSERT(o.len[k] == 1 && o.tokens[k * o.stride] == first);
    sample_out_free(&o);
    prefdata_free(&d);
    gpt_free(&m);
}

typedef struct {
    const SampleOut *out;
    int calls, bad;
    int64_t progress_done, progress_tokens;
} HookCtx;

static void on_token(void *p, int64_t prompt, int k, int t, const float *row)
{
    HookCtx *h = p;
    const SampleOut *o = h->out;
    int64_t i = (prompt - o->p_begin) * o->K + k;
    size_t at = (size_t)i * o->stride + (size_t)t;
    /* the token is stored before the call; the row is the one it was drawn from */
    if (fabs(sample_logprob(row, 12, o->tokens[at]) - o->logp[at]) > 1e-6)
        h->bad++;
    h->calls++;
}

static void on_progress(void *p, int64_t done, int64_t tokens)
{
    HookCtx *h = p;
    if (done != h->progress_done + 1 || tokens < h->progress_tokens)
        h->bad++;
    h->progress_done = done;
    h->progress_tokens = tokens;
}

/* logp of each sampled token equals the full forward's log p(token | prompt, earlier tokens);
 * the hooks see every token. */
static void test_logp_and_hooks(void)
{
    const int V = 12, T = 20, P = 5, K = 2;
    Gpt m;
    make_model(&m, V, T, 17);
    PrefData d;
    make_prompts(&d, P, V, 7);
    SampleParams sp = {.temperature = 0.7, .top_k = 5, .top_p = 0.9, .max_len = 12, .eos = 1, .seed = 8};
    SampleOut o = {0};
    HookCtx h = {.out = &o};
    o.on_token = on_token;
    o.on_progress = on_progress;
    o.ctx = &h;
    sample_responses(&m, &d, 1, P, K, &sp, 3, &o);
    CU_ASSERT(h.bad == 0);
    CU_ASSERT(h.calls == o.n_tokens);
    CU_ASSERT(h.progress_done == o.n && h.progress_tokens == o.n_tokens);
    CU_ASSERT(o.on_token == on_token); /* hooks survive */

    double worst = 0;
    int32_t tok[20], tgt[20];
    uint8_t mask[20];
    float lp[20];
    for (int64_t i = 0; i < o.n; i++) {
        int64_t p = 1 + i / K;
        int plen = (int)(d.prompt_offsets[p + 1] - d.prompt_offsets[p]);
        int n = plen + o.len[i];
        const int32_t *y = o.tokens + i * o.stride;
        for (int j = 0; j + 1 < n; j++) {
            tok[j] = j < plen ? d.prompt_tokens[d.prompt_offsets[p] + j] : y[j - plen];
            tgt[j] = j + 1 < plen ? d.prompt_tokens[d.prompt_offsets[p] + j + 1] : y[j + 1 - plen];
            mask[j] = j + 1 >= plen;
        }
        gpt_forward(&m, tok, tgt, mask, 1, n - 1, lp, NULL, NULL);
        for (int t = 0; t < o.len[i]; t++) {
            double e = fabs((double)lp[plen - 1 + t] - o.logp[i * o.stride + t]);
            worst = e > worst ? e : worst;
        }
    }
    printf("\n  worst |log p| against the full forward %.3g ", worst);
    CU_ASSERT(worst < 1e-5);
    sample_out_free(&o);
    prefdata_free(&d);
    gpt_free(&m);
}

int main(void)
{
    gpt_set_threads(2);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("sample", NULL, NULL);
    CU_add_test(s, "greedy = argmax, top_k 1 = greedy", test_greedy_and_top1);
    CU_add_test(s, "plain sampling and temperature frequencies", test_plain_and_temperature);
    CU_add_test(s, "top-k and top-p (nucleus) frequencies", test_top_k_top_p);
    CU_add_test(s, "responses: batch size, prompt split and seed", test_responses_deterministic);
    CU_add_test(s, "responses: eos, max_len, context bound", test_eos_and_lengths);
    CU_add_test(s, "responses: log-probs and hooks", test_logp_and_hooks);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}

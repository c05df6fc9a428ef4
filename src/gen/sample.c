/* sample.c: token sampling and batched response generation (see sample.h).
 *
 * Does: temperature / top-k / top-p sampling of one token from a logits row; K responses per
 * prompt through one KV cache whose slots are refilled as responses finish (a slot may be
 * feeding its prompt while its neighbours generate), with one Rng stream per response so that
 * the result does not depend on the batch or on how prompts are split over ranks.
 * Does not: know about MPI or files (`prefer sample` is in src/gen/sample_cmd.c), or score
 * responses.
 */
#include "prefer/sample.h"
#include "prefer/kv.h"
#include "prefer/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

int sample_next(const float *logits, int V, const SampleParams *sp, Rng *r, float *work)
{
    int best = 0;
    float mx = logits[0];
    for (int v = 0; v < V; v++) {
        if (!isfinite(logits[v]))
            die("sample_next: logit %d is %g (the model produced a non-finite value)", v, (double)logits[v]);
        if (logits[v] > mx) {
            mx = logits[v];
            best = v;
        }
    }
    if (sp->temperature <= 0.0)
        return best;
    float *p = work, *s = work + V;

    /* top-k: the k-th largest logit is the threshold (ties with it stay, as in HF) */
    float kth = -INFINITY;
    if (sp->top_k > 0 && sp->top_k < V) {
        memcpy(s, logits, sizeof(float) * (size_t)V);
        qsort(s, (size_t)V, sizeof(float), cmp_desc);
        kth = s[sp->top_k - 1];
    }
    /* unnormalised probabilities at the temperature; the max gets exp(0) = 1, so total >= 1 */
    double inv_t = 1.0 / sp->temperature, total = 0.0;
    for (int v = 0; v < V; v++) {
        p[v] = logits[v] >= kth ? (float)exp(((double)logits[v] - mx) * inv_t) : 0.0f;
        total += p[v];
    }
    /* top-p: the smallest set of the most likely tokens whose mass reaches top_p */
    if (sp->top_p < 1.0) {
        int n = 0;
        for (int v = 0; v < V; v++)
            if (p[v] > 0.0f)
                s[n++] = p[v];
        qsort(s, (size_t)n, sizeof(float), cmp_desc);
        double want = sp->top_p * total, cum = 0.0;
        float th = s[n - 1];
        for (int i = 0; i < n; i++) {
            cum += s[i];
            if (cum >= want) {
                th = s[i];
                break;
            }
        }
        total = 0.0;
        for (int v = 0; v < V; v++) {
            if (p[v] < th)
                p[v] = 0.0f;
            total += p[v];
        }
    }
    double u = rng_uniform(r) * total, acc = 0.0;
    int last = best;
    for (int v = 0; v < V; v++) {
        if (p[v] <= 0.0f)
            continue;
        acc += p[v];
        last = v;
        if (u < acc)
            return v;
    }
    return last; /* u landed on the rounding error of the sum: the last kept token */
}

double sample_logprob(const float *logits, int V, int token)
{
    double mx = logits[0], s = 0.0;
    for (int v = 1; v < V; v++)
        mx = logits[v] > mx ? logits[v] : mx;
    for (int v = 0; v < V; v++)
        s += exp((double)logits[v] - mx);
    return (double)logits[token] - mx - log(s);
}

void sample_out_free(SampleOut *out)
{
    if (!out)
        return;
    free(out->tokens);
    free(out->logp);
    free(out->len);
    out->tokens = NULL;
    out->logp = NULL;
    out->len = NULL;
    out->n = out->n_tokens = 0;
}

/* One KV slot: which response it is producing and how far it is. */
typedef struct {
    int64_t i;      /* response index in out, -1 = idle */
    int64_t prompt; /* its prompt (index into the dataset) */
    int k;
    const int32_t *ptok;
    int plen, maxlen;
    int t;          /* response tokens chosen so far */
    Rng rng;
} Slot;

/* Put response *next (if < n) into slot s at position 0 and advance *next. Returns 1 if the
 * slot got a response, 0 if it is now idle. */
static int slot_load(Slot *s, int64_t *next, int *pos, const PrefData *prompts, int64_t p_begin, int K,
                     const SampleParams *sp, int T, int64_t n)
{
    if (*next >= n) {
        s->i = -1;
        return 0;
    }
    s->i = (*next)++;
    s->prompt = p_begin + s->i / K;
    s->k = (int)(s->i % K);
    s->ptok = prompts->prompt_tokens + prompts->prompt_offsets[s->prompt];
    s->plen = (int)(prompts->prompt_offsets[s->prompt + 1] - prompts->prompt_offsets[s->prompt]);
    s->maxlen = sp->max_len < T + 1 - s->plen ? sp->max_len : T + 1 - s->plen;
    s->t = 0;
    rng_init(&s->rng, sp->seed, (uint64_t)s->prompt * (uint64_t)K + (uint64_t)s->k);
    *pos = 0;
    return 1;
}

void sample_responses(const Gpt *m, const PrefData *prompts, int64_t p_begin, int64_t p_end, int K,
                      const SampleParams *sp, int batch, SampleOut *out)
{
    int V = m->d.vocab_size, T = m->d.context;
    if (p_begin < 0 || p_begin > p_end || p_end > prompts->n_prompts)
        die("sample_responses: prompt range [%lld, %lld) outside [0, %lld)", (long long)p_begin,
            (long long)p_end, (long long)prompts->n_prompts);
    if (K < 1 || batch < 1 || sp->max_len < 1)
        die("sample_responses: K = %d, batch = %d and max_len = %d must be at least 1", K, batch, sp->max_len);
    if (sp->eos < -1 || sp->eos >= V)
        die_user("sample: eos = %d is not a token of the model (vocab_size %d; -1 = none)", sp->eos, V);
    for (int64_t p = p_begin; p < p_end; p++) {
        int64_t plen = prompts->prompt_offsets[p + 1] - prompts->prompt_offsets[p];
        if (plen < 1)
            die_user("sample: prompt %lld is empty: there is nothing to condition on", (long long)p);
        if (plen > T)
            die_user("sample: prompt %lld has %lld tokens, more than the model's context of %d "
                     "(a response needs at least one more position; shorten the prompts or use a "
                     "model with a longer context)", (long long)p, (long long)plen, T);
    }

    out->p_begin = p_begin;
    out->K = K;
    out->n = (p_end - p_begin) * K;
    out->stride = sp->max_len;
    size_t cells = (size_t)out->n * (size_t)out->stride;
    out->tokens = xcalloc(cells, sizeof(int32_t));
    out->logp = xcalloc(cells, sizeof(float));
    out->len = xcalloc((size_t)out->n, sizeof(int32_t));
    out->n_tokens = 0;
    if (out->n == 0)
        return;

    int B = (int64_t)batch < out->n ? batch : (int)out->n;
    GptKV *kv = gpt_kv_new(m, B);
    Slot *slot = xcalloc((size_t)B, sizeof(Slot));
    int32_t *tok = xcalloc((size_t)B, sizeof(int32_t));
    int *pos = xcalloc((size_t)B, sizeof(int));
    uint8_t *active = xcalloc((size_t)B, 1);
    float *logits = xmalloc_aligned(sizeof(float) * (size_t)B * V);
    float *work = xmalloc(sizeof(float) * SAMPLE_WORK_FLOATS(V));
    int64_t next = 0, done = 0;

    for (int b = 0; b < B; b++)
        active[b] = slot_load(&slot[b], &next, &pos[b], prompts, p_begin, K, sp, T, out->n);
    while (done < out->n) {
        int need_logits = 0;
        for (int b = 0; b < B; b++) {
            if (!active[b])
                continue;
            const Slot *s = &slot[b];
            tok[b] = pos[b] < s->plen ? s->ptok[pos[b]] : out->tokens[s->i * out->stride + s->t - 1];
            need_logits |= pos[b] >= s->plen - 1;
        }
        gpt_kv_step(m, kv, tok, pos, active, need_logits ? logits : NULL);
        for (int b = 0; b < B; b++) {
            if (!active[b])
                continue;
            Slot *s = &slot[b];
            if (pos[b] < s->plen - 1) { /* still feeding the prompt */
                pos[b]++;
                continue;
            }
            const float *row = logits + (size_t)b * V;
            int y = sample_next(row, V, sp, &s->rng, work);
            size_t at = (size_t)s->i * out->stride + (size_t)s->t;
            out->tokens[at] = y;
            out->logp[at] = (float)sample_logprob(row, V, y);
            if (out->on_token)
                out->on_token(out->ctx, s->prompt, s->k, s->t, row);
            s->t++;
            pos[b]++;
            if (y == sp->eos || s->t == s->maxlen) {
                out->len[s->i] = s->t;
                out->n_tokens += s->t;
                done++;
                if (out->on_progress)
                    out->on_progress(out->ctx, done, out->n_tokens);
                active[b] = slot_load(s, &next, &pos[b], prompts, p_begin, K, sp, T, out->n);
            }
        }
    }
    gpt_kv_free(kv);
    free(slot);
    free(tok);
    free(pos);
    free(active);
    free(logits);
    free(work);
}

/* exact.c: the enumerable response space, every response's log-probability under a model
 * by KV-cache passes over the prefix tree, true rewards and teacher log-probs over the
 * space, and distribution helpers on log-prob arrays (exact.h).
 *
 * Why a prefix tree of KV-cache steps, not full sequences through gpt_forward: the A^n
 * responses of a prompt share their prefixes, so a walk of the tree computes about
 * A^n * A/(A-1) token positions where full sequences compute A^n * (prompt_len + n + 1), and
 * the cache's products give each slot bit-identical logits whatever else is batched with it
 * (kv.h), so the result does not depend on the batching or the thread count. Measured on
 * configs/experiments/did/enum-base.cfg: docs/exact.md.
 *
 * Does not: read or write files, talk MPI, normalise anything behind the caller's back.
 */
#include "prefer/exact.h"
#include "prefer/kv.h"
#include "prefer/util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the space */

/* alphabet^len, or -1 once it exceeds max. */
static int64_t space_size(int alphabet, int len, int64_t max)
{
    int64_t n = 1;
    for (int k = 0; k < len; k++) {
        if (n > max / alphabet)
            return -1;
        n *= alphabet;
    }
    return n <= max ? n : -1;
}

void enum_space_init(EnumSpace *s, const SynthTask *t, int64_t max_responses)
{
    memset(s, 0, sizeof *s);
    if (t->vocab < 2 || t->response_len < 1)
        die_user("the synthetic task (synth.vocab_size = %d, synth.response_len = %d) has no free tokens to "
                 "enumerate", t->vocab, t->response_len);
    if (max_responses < 1)
        die_user("exact.max_responses = %lld must be at least 1", (long long)max_responses);
    int A = t->vocab - 1, len = t->response_len - 1;
    int64_t n = space_size(A, len, max_responses);
    if (n < 0)
        die_user("the synthetic task is too large to enumerate: synth.vocab_size = %d and synth.response_len = %d "
                 "give %d^%d = %.0f responses per prompt, more than exact.max_responses = %lld (make the task with a "
                 "smaller vocabulary or response length, or raise exact.max_responses)",
                 t->vocab, t->response_len, A, len, pow(A, len), (long long)max_responses);
    s->alphabet = A;
    s->len = len;
    s->n = n;
}

void enum_space_init_all(EnumSpace *s, int vocab, int len, int64_t max_responses)
{
    memset(s, 0, sizeof *s);
    if (vocab < 1 || len < 0)
        die("enum_space_init_all: vocab %d, len %d", vocab, len);
    int64_t n = space_size(vocab, len, max_responses);
    if (n < 0)
        die_user("%d^%d token strings are more than exact.max_responses = %lld", vocab, len,
                 (long long)max_responses);
    s->alphabet = vocab;
    s->len = len;
    s->n = n;
    s->all_tokens = 1;
}

int enum_tokens(const EnumSpace *s) { return s->len + (s->all_tokens ? 0 : 1); }

/* Token id of alphabet digit c. */
static inline int32_t digit_token(const EnumSpace *s, int c) { return s->all_tokens ? c : c + 1; }

void enum_response(const EnumSpace *s, int64_t idx, int32_t *out)
{
    if (idx < 0 || idx >= s->n)
        die("enum_response: index %lld outside [0, %lld)", (long long)idx, (long long)s->n);
    for (int k = s->len - 1; k >= 0; k--) {
        out[k] = digit_token(s, (int)(idx % s->alphabet));
        idx /= s->alphabet;
    }
    if (!s->all_tokens)
        out[s->len] = SYNTH_EOS;
}

int64_t enum_index(const EnumSpace *s, const int32_t *tokens, int64_t ntok)
{
    if (ntok != enum_tokens(s) || (!s->all_tokens && tokens[s->len] != SYNTH_EOS))
        return -1;
    int64_t idx = 0;
    for (int k = 0; k < s->len; k++) {
        int c = s->all_tokens ? tokens[k] : tokens[k] - 1;
        if (c < 0 || c >= s->alphabet)
            return -1;
        idx = idx * s->alphabet + c;
    }
    return idx;
}

/* ---------------------------------------------------------------- model log-probs */

/* exact_set_limits: 0 / -1 = automatic */
static size_t work_bytes_limit = 0;
static int forced_depth = -1;

void exact_set_limits(size_t work_bytes, int slot_depth)
{
    work_bytes_limit = work_bytes;
    forced_depth = slot_depth;
}

/* One pass: B slots, slot b holding prefix b0 + b of depth d (its d first tokens). */
typedef struct {
    Gpt *m;
    GptKV *kv;
    const EnumSpace *s;
    int B, V, d, prompt_len;
    int64_t leaves;  /* A^(len - d): leaves under one prefix */
    int32_t *tok;    /* (B) tokens of the next step */
    int *pos;        /* (B) */
    float *logits;   /* (B, V) of the last step */
    double *lpn;     /* (len - d, B, A): log p(child c | node) of the nodes on the current path */
    double *cum;     /* (len - d + 1, B): log p(path) at each depth of the walk */
    int64_t *base;   /* (B) index of slot b's first leaf */
    double *out;
} Walk;

/* log sum exp of a logits row, in double. */
static double row_logz(const float *row, int V)
{
    double mx = -INFINITY;
    for (int v = 0; v < V; v++)
        mx = row[v] > mx ? row[v] : mx;
    double sum = 0.0;
    for (int v = 0; v < V; v++)
        sum += exp((double)row[v] - mx);
    return mx + log(sum);
}

static void step_all(Walk *w, int32_t token, int pos, int want_logits)
{
    for (int b = 0; b < w->B; b++) {
        w->tok[b] = token;
        w->pos[b] = pos;
    }
    gpt_kv_step(w->m, w->kv, w->tok, w->pos, NULL, want_logits ? w->logits : NULL);
}

/* Every slot's logits hold the next-token distribution after its node at depth k of the
 * tree (prompt + the first k tokens); cum[k - d] holds log p of those k tokens. Walk the
 * subtree depth-first, all slots in lockstep; suffix = the node's tokens beyond depth d as a
 * base-A number. */
static void walk(Walk *w, int k, int64_t suffix)
{
    const EnumSpace *s = w->s;
    int A = s->alphabet, B = w->B, V = w->V, j = k - w->d;
    double *cum = w->cum + (size_t)j * B;
    if (k == s->len) { /* a leaf: add the final EOS */
        for (int b = 0; b < B; b++) {
            const float *row = w->logits + (size_t)b * V;
            double e = s->all_tokens ? 0.0 : (double)row[SYNTH_EOS] - row_logz(row, V);
            w->out[w->base[b] + suffix] = cum[b] + e;
        }
        return;
    }
    double *lpn = w->lpn + (size_t)j * B * A, *next = cum + B;
    for (int b = 0; b < B; b++) {
        const float *row = w->logits + (size_t)b * V;
        double z = row_logz(row, V);
        for (int c = 0; c < A; c++)
            lpn[(size_t)b * A + c] = (double)row[digit_token(s, c)] - z;
    }
    for (int c = 0; c < A; c++) {
        for (int b = 0; b < B; b++)
            next[b] = cum[b] + lpn[(size_t)b * A + c];
        if (s->all_tokens && k + 1 == s->len) { /* no EOS to score: the children are leaves */
            for (int b = 0; b < B; b++)
                w->out[w->base[b] + suffix * A + c] = next[b];
            continue;
        }
        step_all(w, digit_token(s, c), w->prompt_len + k, 1);
        walk(w, k + 1, suffix * A + c);
    }
}

/* Prompt, then each slot's own d-token prefix, then the walk; slots are prefixes
 * b0 .. b0 + B - 1. */
static void walk_chunk(Walk *w, const int32_t *prompt, int64_t b0)
{
    const EnumSpace *s = w->s;
    int A = s->alphabet, B = w->B, V = w->V;
    gpt_kv_reset(w->kv);
    for (int t = 0; t < w->prompt_len; t++)
        step_all(w, prompt[t], t, t + 1 == w->prompt_len);
    double *cum = w->cum;
    for (int b = 0; b < B; b++) {
        cum[b] = 0.0;
        w->base[b] = (b0 + b) * w->leaves;
    }
    int64_t div = 1;
    for (int k = 1; k < w->d; k++)
        div *= A;
    for (int k = 0; k < w->d; k++, div /= A) {
        for (int b = 0; b < B; b++) {
            int c = (int)(((b0 + b) / div) % A);
            const float *row = w->logits + (size_t)b * V;
            cum[b] += (double)row[digit_token(s, c)] - row_logz(row, V);
            w->tok[b] = digit_token(s, c);
            w->pos[b] = w->prompt_len + k;
        }
        gpt_kv_step(w->m, w->kv, w->tok, w->pos, NULL, w->logits);
    }
    walk(w, w->d, 0);
}

/* Depth d of the slots (A^d prefixes, one cache slot each): the d with the least estimated
 * time per thread, rows(d) / min(threads, A^d) + EXACT_STEP_ROWS * steps(d), where rows(d) =
 * A^d (prompt_len + d) (each slot feeds the prompt and its prefix) + the nodes deeper than d,
 * and steps(d) = prompt_len + d + the nodes of one slot's subtree (the walk is one step per
 * node, and every thread walks its own slots through all of them). */
static int slot_depth(int A, int len, int prompt_len, int threads)
{
    int best = 0;
    double best_cost = INFINITY;
    for (int d = 0; d <= len; d++) {
        double slots = pow(A, d), deeper = 0.0, sub = 0.0;
        for (int k = d + 1; k <= len; k++)
            deeper += pow(A, k);
        for (int k = 1; k <= len - d; k++)
            sub += pow(A, k);
        double rows = slots * (prompt_len + d) + deeper, par = slots < threads ? slots : threads;
        double cost = rows / par + EXACT_STEP_ROWS * (prompt_len + d + sub);
        if (cost < best_cost) {
            best_cost = cost;
            best = d;
        }
    }
    return best;
}

/* Prefixes [p_begin, p_end) of depth d in chunks of at most cap slots, with one cache. */
static void walk_range(Gpt *m, const int32_t *prompt, int prompt_len, const EnumSpace *s, int d, int64_t p_begin,
                       int64_t p_end, int64_t cap, double *out)
{
    int A = s->alphabet, V = m->d.vocab_size, levels = s->len - d;
    int64_t np = p_end - p_begin;
    if (np < 1)
        return;
    int B = (int)(np < cap ? np : cap);
    Walk w = {.m = m, .s = s, .V = V, .d = d, .prompt_len = prompt_len, .out = out, .B = B};
    w.leaves = 1;
    for (int k = 0; k < levels; k++)
        w.leaves *= A;
    w.kv = gpt_kv_new(m, B);
    w.tok = xmalloc(sizeof(int32_t) * (size_t)B);
    w.pos = xmalloc(sizeof(int) * (size_t)B);
    w.logits = xmalloc(sizeof(float) * (size_t)B * V);
    w.lpn = xmalloc(sizeof(double) * ((size_t)(levels > 0 ? levels : 1) * B * A));
    w.cum = xmalloc(sizeof(double) * (size_t)(levels + 1) * B);
    w.base = xmalloc(sizeof(int64_t) * (size_t)B);
    for (int64_t b0 = p_begin; b0 < p_end; b0 += B) {
        int nb = (int)(p_end - b0 < B ? p_end - b0 : B);
        if (nb != w.B) { /* the last, short chunk: fewer slots (a slot's bits do not depend on it) */
            gpt_kv_free(w.kv);
            w.B = nb;
            w.kv = gpt_kv_new(m, nb);
        }
        walk_chunk(&w, prompt, b0);
    }
    gpt_kv_free(w.kv);
    free(w.tok);
    free(w.pos);
    free(w.logits);
    free(w.lpn);
    free(w.cum);
    free(w.base);
}

void exact_logp_all(Gpt *m, const int32_t *prompt, int prompt_len, const EnumSpace *s, double *out)
{
    const GptDims *dm = &m->d;
    int A = s->alphabet, V = dm->vocab_size;
    if (prompt_len < 1)
        die("exact_logp_all: the prompt is empty");
    if (prompt_len + s->len > dm->context)
        die_user("the model's context (%d) is shorter than a prompt (%d tokens) and a response's %d free tokens",
                 dm->context, prompt_len, s->len);
    if (digit_token(s, A - 1) >= V)
        die_user("the response alphabet (tokens up to %d) exceeds the model's vocabulary (%d)", digit_token(s, A - 1),
                 V);
    int threads = omp_get_max_threads();
    int d = forced_depth >= 0 && forced_depth <= s->len ? forced_depth : slot_depth(A, s->len, prompt_len, threads);
    int64_t np = 1;
    for (int k = 0; k < d; k++)
        np *= A;
    threads = np < threads ? (int)np : threads;
    int levels = s->len - d;
    size_t per_slot = sizeof(float) * ((size_t)2 * dm->n_layer * dm->context * dm->n_embd + (size_t)V +
                                       (size_t)8 * dm->n_embd + (size_t)dm->n_head * dm->context) +
                      sizeof(double) * ((size_t)levels * A + (size_t)levels + 1) + sizeof(int64_t) + 2 * sizeof(int);
    int64_t cap = (int64_t)((work_bytes_limit ? work_bytes_limit : EXACT_WORK_BYTES) / per_slot / (size_t)threads);
    cap = cap < 1 ? 1 : cap;
    if (threads == 1) {
        walk_range(m, prompt, prompt_len, s, d, 0, np, cap, out);
        return;
    }
    /* Each thread walks its own block of prefixes with its own cache: no barrier inside a
     * step (the kernels' parallel loops run on the calling thread alone), one join at the
     * end. Slots' bits do not depend on the blocks, so neither does out. */
#pragma omp parallel num_threads(threads)
    {
        omp_set_num_threads(1);
        int t = omp_get_thread_num();
        walk_range(m, prompt, prompt_len, s, d, np * t / threads, np * (t + 1) / threads, cap, out);
    }
}

/* ---------------------------------------------------------------- the task */

void exact_rewards(const SynthTask *t, int64_t i, const EnumSpace *s, double *out)
{
    double care = synth_care(t, i);
    int nt = enum_tokens(s);
    int32_t *y = xmalloc(sizeof(int32_t) * (size_t)(nt > 0 ? nt : 1));
    for (int64_t idx = 0; idx < s->n; idx++) {
        enum_response(s, idx, y);
        /* synth_reward's sum, in its order (tokens outside the task's vocabulary weigh 0) */
        double sum = 0.0;
        for (int j = 0; j < nt; j++)
            if (y[j] >= 0 && y[j] < t->vocab)
                sum += t->weight[y[j]];
        out[idx] = care * sum;
    }
    free(y);
}

void exact_teacher_logp_all(const SynthTask *t, int64_t i, const EnumSpace *s, double *out)
{
    int32_t *pt = xmalloc(sizeof(int32_t) * (size_t)t->prompt_len);
    synth_prompt(t, i, pt);
    int start = pt[t->prompt_len - 1];
    free(pt);
    int32_t *y = xmalloc(sizeof(int32_t) * (size_t)(s->len + 1));
    for (int64_t idx = 0; idx < s->n; idx++) {
        enum_response(s, idx, y);
        double lp = 0.0;
        int prev = start;
        for (int k = 0; k < s->len && lp > -INFINITY; k++) {
            /* a token outside the task's vocabulary (an all_tokens space): probability 0 */
            lp = y[k] < t->vocab ? lp + synth_teacher_logprob(&t->teacher, prev, y[k]) : -INFINITY;
            prev = y[k];
        }
        out[idx] = lp;
    }
    free(y);
}

/* ---------------------------------------------------------------- distributions */

double exact_logsumexp(const double *x, int64_t n)
{
    double mx = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    if (mx == -INFINITY)
        return -INFINITY;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += exp(x[i] - mx);
    return mx + log(sum);
}

double exact_normalize(double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (isnan(x[i]) || x[i] == INFINITY)
            die("exact_normalize: entry %lld is %g, not a log-probability", (long long)i, x[i]);
    double z = exact_logsumexp(x, n);
    if (z == -INFINITY)
        die("exact_normalize: all %lld entries have probability 0", (long long)n);
    for (int64_t i = 0; i < n; i++)
        x[i] -= z;
    return z;
}

double exact_entropy(const double *lp, int64_t n)
{
    double h = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (lp[i] > -INFINITY)
            h -= exp(lp[i]) * lp[i];
    return h;
}

double exact_kl(const double *lp, const double *lq, int64_t n)
{
    double kl = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (lp[i] == -INFINITY)
            continue;
        if (lq[i] == -INFINITY)
            return INFINITY;
        kl += exp(lp[i]) * (lp[i] - lq[i]);
    }
    return kl;
}

double exact_l1(const double *lp, const double *lq, int64_t n)
{
    double l1 = 0.0;
    for (int64_t i = 0; i < n; i++)
        l1 += fabs(exp(lp[i]) - exp(lq[i]));
    return l1;
}

double exact_expect(const double *lp, const double *f, int64_t n)
{
    double e = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (lp[i] > -INFINITY)
            e += exp(lp[i]) * f[i];
    return e;
}

double exact_did(const double *lp, const double *lp_ref, int64_t n, double *out)
{
    for (int64_t i = 0; i < n; i++) {
        if (lp_ref[i] == -INFINITY) {
            if (lp[i] > -INFINITY)
                die("exact_did: response %lld has probability 0 under the reference but not under the policy: "
                    "the differential information is undefined", (long long)i);
            out[i] = -INFINITY;
        } else {
            out[i] = lp[i] - lp_ref[i];
        }
    }
    return exact_normalize(out, n);
}

double exact_optimum(const double *lp_ref, const double *r, double beta, int64_t n, double *out)
{
    if (!(beta > 0.0))
        die("exact_optimum: beta = %g must be > 0", beta);
    double ib = isinf(beta) ? 0.0 : 1.0 / beta;
    for (int64_t i = 0; i < n; i++)
        out[i] = lp_ref[i] == -INFINITY ? -INFINITY : lp_ref[i] + r[i] * ib;
    return exact_normalize(out, n);
}

int64_t exact_sample_index(const double *lp, int64_t n, double u)
{
    double c = 0.0;
    int64_t last = -1;
    for (int64_t i = 0; i < n; i++) {
        if (lp[i] == -INFINITY)
            continue;
        c += exp(lp[i]);
        last = i;
        if (c > u)
            return i;
    }
    if (last < 0)
        die("exact_sample_index: every probability is 0");
    return last;
}

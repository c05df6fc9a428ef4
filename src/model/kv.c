/* kv.c: KV-cache incremental inference (see kv.h).
 *
 * Does: one token per active slot per step: the active rows are gathered into dense (M, .)
 * arrays and go through the block as gpt_forward computes it: the encoder sum,
 * layernorm_forward, gelu_forward and residual_forward from ops.h; attention of the new row's
 * query against the slot's cached keys per head, with the softmax written as
 * attention_forward writes it (scaled dot products, max subtracted, ops_expf, ops_sum,
 * multiply by the reciprocal); the tied LM head.
 *
 * Why the matrix products are not cblas_sgemm here: OpenBLAS does not compute a row of C
 * the same way for every M (measured on this platform: under the Haswell kernels a row's
 * bits change with M for nearly every M; under SkylakeX the small-matrix path changes them
 * for small M). The sampler needs a sequence's logits to be bit-identical whatever else
 * is in the batch (batch size, the ranks' split of the prompts), so that the same seed
 * draws the same tokens. kv_matmul computes every output element with the same
 * instructions wherever its row sits: this is a decode-time GEMV-like product, limited by
 * reading the weights, which it reads once per KV_RB rows.
 * Does not: sample (src/gen/sample.c), compute gradients, or allocate after gpt_kv_new.
 */
#include "prefer/kv.h"
#include "prefer/ops.h"
#include "prefer/util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct GptKV {
    GptDims d;
    int B;
    int *len;        /* (B) positions held by each slot */
    float *kc, *vc;  /* (L, B, Tmax, C) cached keys and values, heads interleaved by hs */
    /* per-step scratch for up to B gathered rows */
    int *rows;       /* (B) slot of gathered row r */
    float *x;        /* (B, C) residual stream */
    float *ln;       /* (B, C) */
    float *mean, *rstd; /* (B) (B) */
    float *qkv;      /* (B, 3C) */
    float *atty;     /* (B, C) */
    float *tmp;      /* (B, C) projection outputs before the residual */
    float *fch, *fchg; /* (B, 4C) */
    float *att;      /* (B, NH, Tmax) attention weights of the new rows */
    float *lg;       /* (B, V) logits of the gathered rows */
    float *zero;     /* (4C) zeros: the padding row of kv_matmul */
};

/* Rows per group of kv_matmul, and lanes of the partial sums of every dot product. */
#define KV_RB 4
#define KV_LANES 16

/* KV_LANES floats; GCC's vector extension (one AVX-512 register, or two AVX ones). Loads and
 * stores go through memcpy: rows are not 64-byte aligned. */
typedef float KvVec __attribute__((vector_size(KV_LANES * sizeof(float))));

static inline KvVec kv_load(const float *p)
{
    KvVec v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Sum of the lanes plus tail (KV_LANES floats, or NULL for none), as a fixed tree: lanes
 * i and i + 8, then i and i + 4, ... The same order for every call. */
static inline float kv_reduce(KvVec acc, const float *tail)
{
    float l[KV_LANES];
    memcpy(l, &acc, sizeof l);
    if (tail)
        for (int i = 0; i < KV_LANES; i++)
            l[i] += tail[i];
    for (int h = KV_LANES / 2; h >= 1; h /= 2)
        for (int i = 0; i < h; i++)
            l[i] += l[i + h];
    return l[0];
}

/* x . y over n floats: KV_LANES strided partial sums, the last n % KV_LANES products as a
 * scalar tail, reduced by kv_reduce. The same instructions for every call with the same n. */
static inline float kv_dot(const float *x, const float *y, int n)
{
    int nf = n - n % KV_LANES;
    KvVec acc = {0};
    for (int k = 0; k < nf; k += KV_LANES)
        acc += kv_load(x + k) * kv_load(y + k);
    if (nf == n)
        return kv_reduce(acc, NULL);
    float tail[KV_LANES] = {0};
    for (int k = nf; k < n; k++)
        tail[k - nf] = x[k] * y[k];
    return kv_reduce(acc, tail);
}

/* out (M, OC) = inp (M, K) W^T + bias; W (OC, K), bias (OC) or NULL; zero (K) zeros.
 * Every out[r, o] is kv_dot(inp row r, W row o, K) + bias[o], bit for bit, whatever M and r:
 * rows go in groups of KV_RB (a short last group padded with the zero row, whose results
 * are dropped) against two weight rows at a time (an odd last one paired with itself), so
 * each weight row is read once per KV_RB rows; the threads split the weight rows. */
static void kv_matmul(float *out, const float *inp, const float *w, const float *bias, int M, int K, int OC,
                      const float *zero)
{
    int kf = K - K % KV_LANES, pairs = (OC + 1) / 2;
#pragma omp parallel for schedule(static)
    for (int op = 0; op < pairs; op++) {
        int o0 = 2 * op, o1 = o0 + 1 < OC ? o0 + 1 : o0;
        const float *w0 = w + (size_t)o0 * K, *w1 = w + (size_t)o1 * K;
        for (int r0 = 0; r0 < M; r0 += KV_RB) {
            const float *a[KV_RB];
            for (int i = 0; i < KV_RB; i++)
                a[i] = r0 + i < M ? inp + (size_t)(r0 + i) * K : zero;
            KvVec acc0[KV_RB], acc1[KV_RB];
            for (int i = 0; i < KV_RB; i++)
                acc0[i] = acc1[i] = (KvVec){0};
            for (int k = 0; k < kf; k += KV_LANES) {
                KvVec x0 = kv_load(w0 + k), x1 = kv_load(w1 + k);
                for (int i = 0; i < KV_RB; i++) {
                    KvVec y = kv_load(a[i] + k);
                    acc0[i] += y * x0;
                    acc1[i] += y * x1;
                }
            }
            for (int i = 0; i < KV_RB && r0 + i < M; i++) {
                float t0[KV_LANES] = {0}, t1[KV_LANES] = {0};
                for (int k = kf; k < K; k++) {
                    t0[k - kf] = a[i][k] * w0[k];
                    t1[k - kf] = a[i][k] * w1[k];
                }
                float *y = out + (size_t)(r0 + i) * OC;
                float s0 = kv_reduce(acc0[i], kf < K ? t0 : NULL), s1 = kv_reduce(acc1[i], kf < K ? t1 : NULL);
                y[o0] = bias ? bias[o0] + s0 : s0;
                y[o1] = bias ? bias[o1] + s1 : s1;
            }
        }
    }
}

GptKV *gpt_kv_new(const Gpt *m, int B)
{
    const GptDims *d = &m->d;
    if (B < 1)
        die("gpt_kv_new: batch %d must be at least 1", B);
    GptKV *kv = xcalloc(1, sizeof *kv);
    kv->d = *d;
    kv->B = B;
    size_t C = (size_t)d->n_embd, L = (size_t)d->n_layer, T = (size_t)d->context, Bz = (size_t)B;
#define A(n) xmalloc_aligned(sizeof(float) * (n))
    kv->len = xcalloc(Bz, sizeof(int));
    kv->rows = xcalloc(Bz, sizeof(int));
    kv->kc = A(L * Bz * T * C);
    kv->vc = A(L * Bz * T * C);
    kv->x = A(Bz * C);
    kv->ln = A(Bz * C);
    kv->mean = A(Bz);
    kv->rstd = A(Bz);
    kv->qkv = A(Bz * 3 * C);
    kv->atty = A(Bz * C);
    kv->tmp = A(Bz * C);
    kv->fch = A(Bz * 4 * C);
    kv->fchg = A(Bz * 4 * C);
    kv->att = A(Bz * (size_t)d->n_head * T);
    kv->lg = A(Bz * (size_t)d->vocab_size);
    kv->zero = A(4 * C); /* zero-filled */
#undef A
    return kv;
}

void gpt_kv_free(GptKV *kv)
{
    if (!kv)
        return;
    float *bufs[] = {kv->kc, kv->vc, kv->x, kv->ln, kv->mean, kv->rstd, kv->qkv, kv->atty,
                     kv->tmp, kv->fch, kv->fchg, kv->att, kv->lg, kv->zero};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    free(kv->len);
    free(kv->rows);
    free(kv);
}

void gpt_kv_reset(GptKV *kv) { memset(kv->len, 0, sizeof(int) * (size_t)kv->B); }

int gpt_kv_batch(const GptKV *kv) { return kv->B; }

int gpt_kv_len(const GptKV *kv, int b)
{
    if (b < 0 || b >= kv->B)
        die("gpt_kv_len: slot %d outside [0, %d)", b, kv->B);
    return kv->len[b];
}

/* Attention of the M new rows against their slots' caches, layer l.
 *   qkv (M, 3C): the new rows' q | k | v (k, v already stored in the cache at pos)
 *   out atty (M, C). Row r belongs to slot rows[r] at position pos[rows[r]]. */
static void kv_attention(GptKV *kv, int l, int M, const int *pos)
{
    int C = kv->d.n_embd, NH = kv->d.n_head, T = kv->d.context, hs = C / NH;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    const float *kl = kv->kc + (size_t)l * kv->B * T * C;
    const float *vl = kv->vc + (size_t)l * kv->B * T * C;
#pragma omp parallel for schedule(dynamic, 1)
    for (int rh = 0; rh < M * NH; rh++) {
        int r = rh / NH, h = rh % NH, b = kv->rows[r], n = pos[b] + 1;
        const float *q = kv->qkv + (size_t)r * C3 + (size_t)h * hs;
        const float *k = kl + (size_t)b * T * C + (size_t)h * hs;
        const float *v = vl + (size_t)b * T * C + (size_t)h * hs;
        float *a = kv->att + (size_t)rh * T;
        float *o = kv->atty + (size_t)r * C + (size_t)h * hs;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            a[j] = scale * kv_dot(q, k + (size_t)j * C, hs);
            mx = a[j] > mx ? a[j] : mx;
        }
        for (int j = 0; j < n; j++)
            a[j] = ops_expf(a[j] - mx);
        float inv = 1.0f / ops_sum(a, n);
        for (int j = 0; j < n; j++)
            a[j] *= inv;
        for (int c = 0; c < hs; c++)
            o[c] = 0.0f;
        for (int j = 0; j < n; j++) {
            const float *vj = v + (size_t)j * C;
            for (int c = 0; c < hs; c++)
                o[c] += a[j] * vj[c];
        }
    }
}

void gpt_kv_step(const Gpt *m, GptKV *kv, const int32_t *tokens, const int *pos, const uint8_t *active,
                 float *logits)
{
    const GptDims *d = &m->d;
    if (memcmp(d, &kv->d, sizeof *d) != 0)
        die("gpt_kv_step: the model's shape differs from the one the cache was made for");
    int C = d->n_embd, V = d->vocab_size, L = d->n_layer, T = d->context;
    size_t Cz = (size_t)C;

    /* gather the active slots and check their inputs */
    int M = 0;
    for (int b = 0; b < kv->B; b++) {
        if (active && !active[b])
            continue;
        if ((uint32_t)tokens[b] >= (uint32_t)V)
            die("gpt_kv_step: slot %d: token id %d is outside the vocabulary [0, %d)", b, tokens[b], V);
        if (pos[b] < 0 || pos[b] > kv->len[b] || pos[b] >= T)
            die("gpt_kv_step: slot %d: position %d not allowed (the slot holds %d positions, so at "
                "most %d; the context is %d)", b, pos[b], kv->len[b], kv->len[b], T);
        kv->rows[M++] = b;
    }
    if (M == 0)
        return;

    /* encoder: x = wte[token] + wpe[pos] */
    for (int r = 0; r < M; r++) {
        int b = kv->rows[r];
        const float *we = m->p.wte + (size_t)tokens[b] * Cz, *pe = m->p.wpe + (size_t)pos[b] * Cz;
        float *x = kv->x + (size_t)r * Cz;
        for (int c = 0; c < C; c++)
            x[c] = we[c] + pe[c];
    }
    for (int l = 0; l < L; l++) {
        const GptLayer *w = &m->p.layer[l];
        layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, w->ln1w, w->ln1b, M, C);
        kv_matmul(kv->qkv, kv->ln, w->qkvw, w->qkvb, M, C, 3 * C, kv->zero);
        /* append k and v at each slot's position */
        for (int r = 0; r < M; r++) {
            int b = kv->rows[r];
            size_t at = (((size_t)l * kv->B + b) * T + (size_t)pos[b]) * Cz;
            memcpy(kv->kc + at, kv->qkv + (size_t)r * 3 * Cz + Cz, sizeof(float) * Cz);
            memcpy(kv->vc + at, kv->qkv + (size_t)r * 3 * Cz + 2 * Cz, sizeof(float) * Cz);
        }
        kv_attention(kv, l, M, pos);
        kv_matmul(kv->tmp, kv->atty, w->attprojw, w->attprojb, M, C, C, kv->zero);
        residual_forward(kv->x, kv->x, kv->tmp, (size_t)M * Cz);
        layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, w->ln2w, w->ln2b, M, C);
        kv_matmul(kv->fch, kv->ln, w->fcw, w->fcb, M, C, 4 * C, kv->zero);
        gelu_forward(kv->fchg, kv->fch, (size_t)M * 4 * Cz);
        kv_matmul(kv->tmp, kv->fchg, w->fcprojw, w->fcprojb, M, 4 * C, C, kv->zero);
        residual_forward(kv->x, kv->x, kv->tmp, (size_t)M * Cz);
    }
    for (int r = 0; r < M; r++)
        kv->len[kv->rows[r]] = pos[kv->rows[r]] + 1;
    if (!logits)
        return;
    layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, m->p.lnfw, m->p.lnfb, M, C);
    kv_matmul(kv->lg, kv->ln, m->p.wte, NULL, M, C, V, kv->zero);
    for (int r = 0; r < M; r++)
        memcpy(logits + (size_t)kv->rows[r] * V, kv->lg + (size_t)r * V, sizeof(float) * V);
}

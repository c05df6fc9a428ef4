/* gpt.c: the GPT-2 model: parameter layout, init, forward to masked target log-probs,
 * backward with per-layer "gradients ready" callbacks.
 *
 * Does not: sample (src/gen/), compute losses (src/train/), or know about MPI. */
#include "prefer/gpt.h"
#include "prefer/ops.h"
#include "prefer/rng.h"
#include "prefer/util.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct GptActs {
    size_t N; /* max_batch * context */
    float *encoded;                     /* (N,C) */
    float *ln1, *ln1_mean, *ln1_rstd;   /* (L,N,C) (L,N) (L,N) */
    float *qkv;                         /* (L,N,3C) */
    float *att;                         /* (L,B,NH,T,T) */
    float *atty;                        /* (L,N,C) */
    float *res2;                        /* (L,N,C) */
    float *ln2, *ln2_mean, *ln2_rstd;   /* (L,N,C) (L,N) (L,N) */
    float *fch, *fch_gelu;              /* (L,N,4C) */
    float *res3;                        /* (L,N,C) */
    float *lnf, *lnf_mean, *lnf_rstd;   /* (N,C) (N) (N) */
    size_t NR;                          /* capacity of the scored-row arrays: N + max_batch */
    int32_t *pos;                       /* (N) position ids of the last forward */
    float *dxc;                         /* (NR,C) */
    int32_t *rows;                      /* (NR) scored rows (a row may appear twice) */
    int32_t *row_target;                /* (N) their targets */
    float *xc;                          /* (N,C) compacted lnf rows */
    float *probs;                       /* (N,V) logits -> probs -> dlogits */
    double *row_logp;                   /* (NR) */
    double *row_logit;                  /* (NR) mean logit of each scored row */
    float *row_w;                       /* (N) */
    int M;                              /* masked rows of the last forward */
    const int32_t *tokens;              /* of the last forward (caller keeps them alive) */
    /* backward scratch */
    float *dres;                        /* (N,C) */
    float *dbuf;                        /* (N,C) */
    float *dbuf4;                       /* (N,4C) */
    float *dqkv;                        /* (N,3C) */
    float *datt;                        /* (datt_threads,T,T) */
    int datt_threads;
    int att_threads;                    /* forward only: att is (att_threads,T,T) scratch */
};

static void add_tensor(Gpt *m, int *cap, const char *name, size_t *off, int ndim, int s0, int s1,
                       int decay, int emb)
{
    if (m->n_tensors == *cap) {
        *cap = *cap ? 2 * *cap : 32;
        m->tensors = xrealloc(m->tensors, sizeof(GptTensor) * (size_t)*cap);
    }
    GptTensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->offset = *off;
    t->ndim = ndim;
    t->shape[0] = s0;
    t->shape[1] = ndim > 1 ? s1 : 1;
    t->numel = (size_t)s0 * (size_t)(ndim > 1 ? s1 : 1);
    t->decay = decay;
    t->is_embedding = emb;
    *off += t->numel;
}

static void build_layout(Gpt *m)
{
    const GptDims *d = &m->d;
    int C = d->n_embd, cap = 0;
    size_t off = 0;
    char nm[48];
    add_tensor(m, &cap, "wte", &off, 2, d->vocab_size, C, 0, 1);
    add_tensor(m, &cap, "wpe", &off, 2, d->context, C, 0, 1);
    m->layer_offset0 = off;
    for (int l = 0; l < d->n_layer; l++) {
#define T1(suffix, n, dec) (snprintf(nm, sizeof nm, "h.%d.%s", l, suffix), add_tensor(m, &cap, nm, &off, 1, n, 0, dec, 0))
#define T2(suffix, a, b) (snprintf(nm, sizeof nm, "h.%d.%s", l, suffix), add_tensor(m, &cap, nm, &off, 2, a, b, 1, 0))
        T1("ln_1.weight", C, 0);
        T1("ln_1.bias", C, 0);
        T2("attn.c_attn.weight", 3 * C, C);
        T1("attn.c_attn.bias", 3 * C, 0);
        T2("attn.c_proj.weight", C, C);
        T1("attn.c_proj.bias", C, 0);
        T1("ln_2.weight", C, 0);
        T1("ln_2.bias", C, 0);
        T2("mlp.c_fc.weight", 4 * C, C);
        T1("mlp.c_fc.bias", 4 * C, 0);
        T2("mlp.c_proj.weight", C, 4 * C);
        T1("mlp.c_proj.bias", C, 0);
#undef T1
#undef T2
    }
    m->layer_stride = d->n_layer ? (off - m->layer_offset0) / (size_t)d->n_layer : 0;
    add_tensor(m, &cap, "ln_f.weight", &off, 1, C, 0, 0, 0);
    add_tensor(m, &cap, "ln_f.bias", &off, 1, C, 0, 0, 0);
    m->num_params = off;
}

static void make_view(const Gpt *m, float *base, GptView *v)
{
    const GptDims *d = &m->d;
    int C = d->n_embd;
    v->wte = base;
    v->wpe = base + (size_t)d->vocab_size * C;
    v->layer = xcalloc((size_t)d->n_layer, sizeof(GptLayer));
    for (int l = 0; l < d->n_layer; l++) {
        float *p = base + m->layer_offset0 + (size_t)l * m->layer_stride;
        GptLayer *y = &v->layer[l];
        y->ln1w = p; p += C;
        y->ln1b = p; p += C;
        y->qkvw = p; p += (size_t)3 * C * C;
        y->qkvb = p; p += 3 * C;
        y->attprojw = p; p += (size_t)C * C;
        y->attprojb = p; p += C;
        y->ln2w = p; p += C;
        y->ln2b = p; p += C;
        y->fcw = p; p += (size_t)4 * C * C;
        y->fcb = p; p += 4 * C;
        y->fcprojw = p; p += (size_t)4 * C * C;
        y->fcprojb = p;
    }
    v->lnfw = base + m->layer_offset0 + (size_t)d->n_layer * m->layer_stride;
    v->lnfb = v->lnfw + C;
}

void gpt_init(Gpt *m, const GptDims *d, int max_batch) { gpt_init_seq(m, d, max_batch, d->context); }

static void init_model(Gpt *m, const GptDims *d, int max_batch, int max_seq, int infer)
{
    memset(m, 0, sizeof *m);
    if (max_seq < 1)
        die("gpt_init: max_seq %d < 1", max_seq);
    if (d->vocab_size < 2 || d->context < 1 || d->n_layer < 1 || d->n_head < 1 || d->n_embd < 1 ||
        d->n_embd % d->n_head != 0 || max_batch < 1)
        die("bad model shape: vocab_size=%d context=%d n_layer=%d n_head=%d n_embd=%d batch=%d "
            "(n_embd must be a multiple of n_head)",
            d->vocab_size, d->context, d->n_layer, d->n_head, d->n_embd, max_batch);
    m->d = *d;
    m->max_batch = max_batch;
    m->max_seq = max_seq;
    m->infer = infer;
    build_layout(m);
    m->params = xmalloc_aligned(sizeof(float) * m->num_params);
    make_view(m, m->params, &m->p);
    if (!infer) {
        m->grads = xmalloc_aligned(sizeof(float) * m->num_params);
        make_view(m, m->grads, &m->g);
    } else {
        m->g.layer = xcalloc((size_t)d->n_layer, sizeof(GptLayer));
    }

    /* forward only: one layer's activations, reused by every layer, and attention
     * probabilities per thread (nothing is kept for a backward) */
    int C = d->n_embd, L = infer ? 1 : d->n_layer, V = d->vocab_size, T = max_seq, NH = d->n_head;
    size_t N = (size_t)max_batch * T, NR = N + (size_t)max_batch; /* scored rows: a row may count twice */
    GptActs *a = xcalloc(1, sizeof *a);
    a->N = N;
#define A(n) xmalloc_aligned(sizeof(float) * (n))
    a->att_threads = omp_get_max_threads();
    a->encoded = A(N * C);
    a->ln1 = A(L * N * C);
    a->ln1_mean = A(L * N);
    a->ln1_rstd = A(L * N);
    a->qkv = A(L * N * 3 * C);
    a->att = infer ? A((size_t)a->att_threads * T * T) : A((size_t)L * max_batch * NH * T * T);
    a->atty = A(L * N * C);
    a->res2 = A(L * N * C);
    a->ln2 = A(L * N * C);
    a->ln2_mean = A(L * N);
    a->ln2_rstd = A(L * N);
    a->fch = A(L * N * 4 * C);
    a->fch_gelu = A(L * N * 4 * C);
    a->res3 = A(L * N * C);
    a->lnf = A(N * C);
    a->lnf_mean = A(N);
    a->lnf_rstd = A(N);
    a->rows = xmalloc_aligned(sizeof(int32_t) * NR);
    a->row_target = xmalloc_aligned(sizeof(int32_t) * NR);
    a->xc = A(NR * C);
    a->probs = A(NR * V);
    a->row_logp = xmalloc_aligned(sizeof(double) * NR);
    a->row_logit = xmalloc_aligned(sizeof(double) * NR);
    a->pos = xmalloc_aligned(sizeof(int32_t) * N);
    a->NR = NR;
    a->dbuf = A(N * C);      /* also the forward's attention projection output */
    a->dbuf4 = A(N * 4 * C); /* also gpt_forward's scored rows */
    if (!infer) {
        a->row_w = A(NR);
        a->dxc = A(NR * C);
        a->dres = A(N * C);
        a->dqkv = A(N * 3 * C);
        a->datt_threads = omp_get_max_threads();
        a->datt = A((size_t)a->datt_threads * T * T);
    }
#undef A
    m->acts = a;
}

void gpt_init_seq(Gpt *m, const GptDims *d, int max_batch, int max_seq) { init_model(m, d, max_batch, max_seq, 0); }
void gpt_init_infer(Gpt *m, const GptDims *d, int max_batch, int max_seq) { init_model(m, d, max_batch, max_seq, 1); }

void gpt_share_params(Gpt *m, const Gpt *src)
{
    if (memcmp(&m->d, &src->d, sizeof m->d) != 0 || m->num_params != src->num_params)
        die("gpt_share_params: the models have different shapes");
    if (!m->shared_params)
        free(m->params);
    free(m->p.layer);
    m->params = src->params;
    m->shared_params = 1;
    make_view(m, m->params, &m->p);
}

void gpt_free(Gpt *m)
{
    if (!m)
        return;
    GptActs *a = m->acts;
    if (a) {
        float *bufs[] = {a->encoded, a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv, a->att, a->atty,
                         a->res2, a->ln2, a->ln2_mean, a->ln2_rstd, a->fch, a->fch_gelu, a->res3,
                         a->lnf, a->lnf_mean, a->lnf_rstd, a->xc, a->probs, a->row_w, a->dres,
                         a->dbuf, a->dbuf4, a->dqkv, a->datt};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
            free(bufs[i]);
        free(a->rows);
        free(a->pos);
        free(a->dxc);
        free(a->row_target);
        free(a->row_logp);
        free(a->row_logit);
        free(a);
    }
    free(m->p.layer);
    free(m->g.layer);
    if (!m->shared_params)
        free(m->params);
    free(m->grads);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}

void gpt_init_weights(Gpt *m, uint64_t seed, double std)
{
    Rng r;
    double proj_std = std / sqrt(2.0 * m->d.n_layer);
    for (int i = 0; i < m->n_tensors; i++) {
        const GptTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        rng_init(&r, seed, (uint64_t)i);
        const char *suf = strrchr(t->name, '.');
        int is_bias = suf && !strcmp(suf, ".bias");
        int is_ln = strstr(t->name, "ln_") != NULL;
        if (is_ln && !is_bias) {
            for (size_t j = 0; j < t->numel; j++)
                p[j] = 1.0f;
        } else if (is_bias) {
            memset(p, 0, sizeof(float) * t->numel);
        } else {
            double s = strstr(t->name, "c_proj.weight") ? proj_std : std;
            for (size_t j = 0; j < t->numel; j++)
                p[j] = (float)(s * rng_normal(&r));
        }
    }
}

double gpt_flops_fwdbwd(const Gpt *m, double tokens, int T)
{
    return 6.0 * (double)m->num_params * tokens + 6.0 * m->d.n_layer * m->d.n_embd * (double)T * tokens;
}

double gpt_flops_forward(const Gpt *m, double tokens, double tok_t, double scored)
{
    double C = m->d.n_embd, V = m->d.vocab_size;
    double body = (double)m->num_params - V * C - (double)m->d.context * C; /* wte is the LM head, wpe a lookup */
    return 2 * body * tokens + 2 * m->d.n_layer * C * tok_t + 2 * V * C * scored;
}

void gpt_set_threads(int n)
{
    if (n <= 0)
        return;
    /* one pool: OpenMP threads; OpenBLAS single-threaded inside each (see ops_sgemm) */
    openblas_set_num_threads(1);
    omp_set_num_threads(n);
}

const double *gpt_row_logit_mean(const Gpt *m) { return m->acts->row_logit; }
const float *gpt_row_probs(const Gpt *m) { return m->acts->probs; }

int gpt_grad_buckets(const Gpt *m, size_t max_bytes, size_t *bounds, int cap)
{
    size_t per = max_bytes / sizeof(float);
    if (per == 0)
        die("gpt_grad_buckets: max_bytes %zu is less than one float", max_bytes);
    int L = m->d.n_layer, nb = 0;
    /* run k: 0 = wte+wpe, 1..L = layer k-1 (the last one with lnf), L+1 = lnf when L = 0 */
    int runs = L > 0 ? L + 1 : 2;
    if (bounds)
        bounds[0] = 0;
    for (int k = 0; k < runs; k++) {
        size_t lo = k == 0 ? 0 : m->layer_offset0 + (size_t)(k - 1) * m->layer_stride;
        size_t hi = k == runs - 1 ? m->num_params : m->layer_offset0 + (size_t)k * m->layer_stride;
        size_t len = hi - lo, pieces = (len + per - 1) / per;
        for (size_t j = 1; j <= pieces; j++) {
            if (bounds && nb >= cap)
                die("gpt_grad_buckets: more than %d buckets of at most %zu bytes", cap, max_bytes);
            nb++;
            if (bounds)
                bounds[nb] = lo + len * j / pieces;
        }
    }
    return nb;
}

void gpt_zero_grad(Gpt *m)
{
    if (m->infer)
        die("gpt_zero_grad on a forward-only model (gpt_init_infer)");
    memset(m->grads, 0, sizeof(float) * m->num_params);
}

void gpt_forward_rows(Gpt *m, const int32_t *tokens, const int32_t *pos, const int32_t *skip, int B, int T,
                      int n_rows, const int32_t *row, const int32_t *target, double *logp)
{
    const GptDims *d = &m->d;
    GptActs *a = m->acts;
    int C = d->n_embd, NH = d->n_head, V = d->vocab_size, L = d->n_layer;
    if (B < 1 || B > m->max_batch || T < 1 || T > m->max_seq)
        die("gpt_forward: batch %d x %d exceeds the model's %d x %d", B, T, m->max_batch, m->max_seq);
    size_t N = (size_t)B * T;
    if (n_rows < 0 || (size_t)n_rows > a->NR)
        die("gpt_forward: %d scored rows, more than the %zu allocated", n_rows, a->NR);
    for (size_t i = 0; i < N; i++) {
        if ((uint32_t)tokens[i] >= (uint32_t)V)
            die("gpt_forward: token id %d at row %zu is outside the vocabulary [0, %d)", tokens[i], i, V);
        int32_t p = pos ? pos[i] : (int32_t)(i % (size_t)T);
        if ((uint32_t)p >= (uint32_t)d->context)
            die("gpt_forward: position %d at row %zu is outside the context [0, %d)", p, i, d->context);
        a->pos[i] = p;
    }
    for (int r = 0; r < n_rows; r++) {
        if ((uint32_t)row[r] >= (uint32_t)N || (uint32_t)target[r] >= (uint32_t)V)
            die("gpt_forward: scored row %d (row %d, target %d) is outside the batch or the vocabulary", r, row[r],
                target[r]);
        a->rows[r] = row[r];
        a->row_target[r] = target[r];
    }
    if (skip)
        for (size_t i = 0; i < N; i++) {
            int32_t lo = skip[2 * i], hi = skip[2 * i + 1];
            if (lo < 0 || lo > hi || (hi > lo && hi > (int32_t)(i % (size_t)T)))
                die("gpt_forward: bad attention skip [%d, %d) for row %zu of sequence %zu", lo, hi, i % (size_t)T,
                    i / (size_t)T);
        }
    m->B = B;
    m->T = T;
    m->skip = skip;
    a->tokens = tokens;

    encoder_forward(a->encoded, tokens, a->pos, m->p.wte, m->p.wpe, B, T, C);
    const float *res = a->encoded;
    for (int l = 0; l < L; l++) {
        const GptLayer *w = &m->p.layer[l];
        size_t oN = m->infer ? 0 : (size_t)l * a->N; /* forward only: every layer reuses one */
        float *ln1 = a->ln1 + oN * C, *qkv = a->qkv + oN * 3 * C;
        float *att = m->infer ? a->att : a->att + (size_t)l * m->max_batch * NH * m->max_seq * m->max_seq;
        float *atty = a->atty + oN * C, *res2 = a->res2 + oN * C, *ln2 = a->ln2 + oN * C;
        float *fch = a->fch + oN * 4 * C, *fchg = a->fch_gelu + oN * 4 * C, *res3 = a->res3 + oN * C;
        float *dtmp = a->dbuf; /* attention projection output, before the residual */

        layernorm_forward(ln1, a->ln1_mean + oN, a->ln1_rstd + oN, res, w->ln1w, w->ln1b, (int)N, C);
        matmul_forward(qkv, ln1, w->qkvw, w->qkvb, (int)N, C, 3 * C);
        attention_forward(atty, att, m->infer ? a->att_threads : 0, qkv, skip, B, T, C, NH);
        matmul_forward(dtmp, atty, w->attprojw, w->attprojb, (int)N, C, C);
        residual_forward(res2, res, dtmp, N * C);
        layernorm_forward(ln2, a->ln2_mean + oN, a->ln2_rstd + oN, res2, w->ln2w, w->ln2b, (int)N, C);
        matmul_forward(fch, ln2, w->fcw, w->fcb, (int)N, C, 4 * C);
        gelu_forward(fchg, fch, N * 4 * C);
        matmul_forward(dtmp, fchg, w->fcprojw, w->fcprojb, (int)N, 4 * C, C);
        residual_forward(res3, res2, dtmp, N * C);
        res = res3;
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, res, m->p.lnfw, m->p.lnfb, (int)N, C);

    /* LM head only on the rows that count. */
    int M = n_rows;
    a->M = M;
    if (M > 0) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < M; r++)
            memcpy(a->xc + (size_t)r * C, a->lnf + (size_t)a->rows[r] * C, sizeof(float) * C);
        ops_sgemm(0, 1, M, V, C, 1.0f, a->xc, C, m->p.wte, C, 0.0f, a->probs, V);
        logsoftmax_target_forward(a->probs, a->row_logp, a->row_logit, a->row_target, M, V);
    }
    if (logp)
        memcpy(logp, a->row_logp, sizeof(double) * (size_t)M);
}

void gpt_forward(Gpt *m, const int32_t *tokens, const int32_t *targets, const uint8_t *mask,
                 int B, int T, float *tok_logp, double *seq_logp, double *seq_ntok)
{
    GptActs *a = m->acts;
    size_t N = (size_t)B * T;
    if (B < 1 || B > m->max_batch || T < 1 || T > m->max_seq)
        die("gpt_forward: batch %d x %d exceeds the model's %d x %d", B, T, m->max_batch, m->max_seq);
    /* rows/targets staged in the backward scratch (N*4C floats >= 2N ints): gpt_forward_rows
     * copies them */
    int32_t *row = (int32_t *)a->dbuf4, *tgt = row + N;
    int M = 0;
    for (size_t i = 0; i < N; i++)
        if (mask[i]) {
            row[M] = (int32_t)i;
            tgt[M] = targets[i];
            M++;
        }
    gpt_forward_rows(m, tokens, NULL, NULL, B, T, M, row, tgt, NULL);
    if (tok_logp) {
        memset(tok_logp, 0, sizeof(float) * N);
        for (int r = 0; r < M; r++)
            tok_logp[a->rows[r]] = (float)a->row_logp[r];
    }
    if (seq_logp || seq_ntok) {
        for (int b = 0; b < B; b++) {
            if (seq_logp)
                seq_logp[b] = 0.0;
            if (seq_ntok)
                seq_ntok[b] = 0.0;
        }
        for (int r = 0; r < M; r++) {
            int b = a->rows[r] / T;
            if (seq_logp)
                seq_logp[b] += a->row_logp[r];
            if (seq_ntok)
                seq_ntok[b] += 1.0;
        }
    }
}

void gpt_backward(Gpt *m, const float *dlogp, GptGradReady ready, void *ctx)
{
    GptActs *a = m->acts;
    if (m->infer)
        die("gpt_backward on a forward-only model (gpt_init_infer)");
    if (m->B == 0)
        die("gpt_backward called without a forward");
    for (int r = 0; r < a->M; r++)
        a->row_w[r] = dlogp[a->rows[r]];
    gpt_backward_rows(m, NULL, ready, ctx);
}

void gpt_backward_rows(Gpt *m, const float *drow, GptGradReady ready, void *ctx)
{
    if (m->infer)
        die("gpt_backward_rows on a forward-only model (gpt_init_infer)");
    const GptDims *d = &m->d;
    GptActs *a = m->acts;
    int C = d->n_embd, NH = d->n_head, V = d->vocab_size, L = d->n_layer;
    int B = m->B, T = m->T, M = a->M;
    size_t N = (size_t)B * T;
    if (B == 0)
        die("gpt_backward called without a forward");
    if (drow)
        memcpy(a->row_w, drow, sizeof(float) * (size_t)M);

    /* LM head: dlogits in place of probs; dxc = dlogits wte; dwte += dlogits^T xc. */
    float *dlnf = a->dbuf;
    memset(dlnf, 0, sizeof(float) * N * C);
    if (M > 0) {
        logsoftmax_target_backward(a->probs, a->row_w, a->row_target, M, V);
        ops_sgemm(0, 0, M, C, V, 1.0f, a->probs, V, m->p.wte, C, 0.0f, a->dxc, C);
        ops_sgemm(1, 0, V, C, M, 1.0f, a->probs, V, a->xc, C, 1.0f, m->g.wte, C);
        /* serial: a row may be scored twice (packed pairs), so rows accumulate */
        for (int r = 0; r < M; r++) {
            float *dst = dlnf + (size_t)a->rows[r] * C;
            const float *src = a->dxc + (size_t)r * C;
            for (int c = 0; c < C; c++)
                dst[c] += src[c];
        }
    }
    const float *res_last = L > 0 ? a->res3 + (size_t)(L - 1) * a->N * C : a->encoded;
    float *dres = a->dres;
    memset(dres, 0, sizeof(float) * N * C);
    layernorm_backward(dres, m->g.lnfw, m->g.lnfb, dlnf, res_last, m->p.lnfw, a->lnf_mean, a->lnf_rstd,
                       (int)N, C);
    if (ready)
        ready(ctx, m->layer_offset0 + (size_t)L * m->layer_stride, (size_t)2 * C);

    for (int l = L - 1; l >= 0; l--) {
        const GptLayer *w = &m->p.layer[l];
        GptLayer *g = &m->g.layer[l];
        size_t oN = (size_t)l * a->N;
        const float *res = l == 0 ? a->encoded : a->res3 + (size_t)(l - 1) * a->N * C;
        float *ln1 = a->ln1 + oN * C, *qkv = a->qkv + oN * 3 * C;
        float *att = a->att + (size_t)l * m->max_batch * NH * m->max_seq * m->max_seq;
        float *atty = a->atty + oN * C, *res2 = a->res2 + oN * C, *ln2 = a->ln2 + oN * C;
        float *fch = a->fch + oN * 4 * C, *fchg = a->fch_gelu + oN * 4 * C;

        /* MLP: res3 = res2 + fcproj(gelu(fc(ln2(res2)))). Between the big products,
         * ready(ctx, 0, 0) gives in-flight gradient reductions a chance to progress (MPI
         * moves nonblocking collectives only when called). */
        matmul_backward(a->dbuf4, g->fcprojw, g->fcprojb, dres, fchg, w->fcprojw, (int)N, 4 * C, C, 0);
        if (ready)
            ready(ctx, 0, 0);
        gelu_backward(a->dbuf4, fch, a->dbuf4, N * 4 * C);
        matmul_backward(a->dbuf, g->fcw, g->fcb, a->dbuf4, ln2, w->fcw, (int)N, C, 4 * C, 0);
        if (ready)
            ready(ctx, 0, 0);
        layernorm_backward(dres, g->ln2w, g->ln2b, a->dbuf, res2, w->ln2w, a->ln2_mean + oN, a->ln2_rstd + oN,
                           (int)N, C);
        /* attention: res2 = res + attproj(attn(qkv(ln1(res)))) */
        matmul_backward(a->dbuf, g->attprojw, g->attprojb, dres, atty, w->attprojw, (int)N, C, C, 0);
        if (ready)
            ready(ctx, 0, 0);
        attention_backward(a->dqkv, a->datt, a->datt_threads, a->dbuf, qkv, att, B, T, C, NH);
        if (ready)
            ready(ctx, 0, 0);
        matmul_backward(a->dbuf, g->qkvw, g->qkvb, a->dqkv, ln1, w->qkvw, (int)N, C, 3 * C, 0);
        layernorm_backward(dres, g->ln1w, g->ln1b, a->dbuf, res, w->ln1w, a->ln1_mean + oN, a->ln1_rstd + oN,
                           (int)N, C);
        if (ready)
            ready(ctx, m->layer_offset0 + (size_t)l * m->layer_stride, m->layer_stride);
    }
    encoder_backward(m->g.wte, m->g.wpe, dres, a->tokens, a->pos, B, T, C);
    if (ready)
        ready(ctx, 0, m->layer_offset0);
}

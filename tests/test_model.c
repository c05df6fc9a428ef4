/* test_model.c: finite-difference checks of every op's backward and of the whole model's
 * gradient; causality; padding invariance; the FLOP count. */
#include "prefer/gpt.h"
#include "prefer/ops.h"
#include "prefer/rng.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static Rng g_rng;

static float *randv(size_t n, double s)
{
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(s * rng_normal(&g_rng));
    return x;
}

static double dotf(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

/* Central difference of f along x[i]; f reads the array x. */
typedef double (*LossFn)(void *ctx);

/* Check analytic gradient g of loss(ctx) wrt x (n): element-wise where the gradient is not
 * tiny, and along 3 random directions. Returns the worst relative error seen. */
/* A direction for a directional-derivative check: the unit gradient plus a unit random
 * vector. A purely random direction in many dimensions is nearly orthogonal to the gradient,
 * so its derivative is small and the float noise of the loss (a few ulps, over 2h) decides
 * the check; with the gradient in it the signal is at least about |g| / sqrt(2), and the
 * random part still probes every element. */
static float *check_direction(const float *g, size_t n)
{
    float *v = randv(n, 1.0);
    double nr = sqrt(dotf(v, v, n)), ng = sqrt(dotf(g, g, n));
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(v[i] / nr + (ng > 0 ? g[i] / ng : 0.0));
    return v;
}

static double fd_check(LossFn f, void *ctx, float *x, const float *g, size_t n, double h, const char *what)
{
    double worst = 0.0;
    size_t step = n > 400 ? n / 400 : 1; /* at most ~400 elements each */
    for (size_t i = 0; i < n; i += step) {
        float x0 = x[i];
        x[i] = x0 + (float)h;
        float xp = x[i];
        double lp = f(ctx);
        x[i] = x0 - (float)h;
        float xm = x[i];
        double lm = f(ctx);
        x[i] = x0;
        /* divide by the step actually taken in float, not the nominal one */
        double fd = (lp - lm) / ((double)xp - (double)xm);
        double err = fabs(fd - g[i]) / (fabs(fd) + fabs(g[i]) + 1e-2);
        if (err > worst)
            worst = err;
        if (err > 2e-2)
            printf("\n  %s[%zu]: analytic %.6g fd %.6g", what, i, g[i], fd);
    }
    /* directional derivatives: a strong signal, so a tight tolerance */
    h = h < 2e-2 ? 2e-2 : h; /* along a unit direction each element moves h/sqrt(n) */
    for (int r = 0; r < 3; r++) {
        float *v = check_direction(g, n);
        double nv = sqrt(dotf(v, v, n));
        float *x0 = malloc(sizeof(float) * n);
        memcpy(x0, x, sizeof(float) * n);
        /* analytic change: g . (x+ - x-) over the perturbation actually representable */
        double an = 0.0;
        for (size_t i = 0; i < n; i++)
            x[i] = x0[i] + (float)(h * v[i] / nv);
        for (size_t i = 0; i < n; i++)
            an += (double)g[i] * x[i];
        double lp = f(ctx);
        for (size_t i = 0; i < n; i++)
            x[i] = x0[i] - (float)(h * v[i] / nv);
        for (size_t i = 0; i < n; i++)
            an -= (double)g[i] * x[i];
        double lm = f(ctx);
        memcpy(x, x0, sizeof(float) * n);
        double fd = (lp - lm) / (2 * h);
        an /= 2 * h;
        double err = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-3);
        if (err > 2e-3)
            printf("\n  %s direction %d: analytic %.8g fd %.8g", what, r, an, fd);
        if (err * 10 > worst)
            worst = err * 10; /* directional tolerance is 10x tighter */
        free(v);
        free(x0);
    }
    return worst;
}

/* ---- layernorm ---- */
typedef struct { int N, C; float *x, *w, *b, *out, *mean, *rstd, *R; } LnCtx;
static double ln_loss(void *p)
{
    LnCtx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C);
    return dotf(c->out, c->R, (size_t)c->N * c->C);
}
static void test_layernorm(void)
{
    LnCtx c = {.N = 5, .C = 24};
    size_t n = (size_t)c.N * c.C;
    c.x = randv(n, 1.0); c.w = randv(c.C, 1.0); c.b = randv(c.C, 1.0); c.R = randv(n, 1.0);
    c.out = malloc(sizeof(float) * n); c.mean = malloc(sizeof(float) * c.N); c.rstd = malloc(sizeof(float) * c.N);
    float *dx = calloc(n, 4), *dw = calloc(c.C, 4), *db = calloc(c.C, 4);
    ln_loss(&c);
    layernorm_backward(dx, dw, db, c.R, c.x, c.w, c.mean, c.rstd, c.N, c.C);
    CU_ASSERT(fd_check(ln_loss, &c, c.x, dx, n, 1e-2, "ln.dx") < 2e-2);
    CU_ASSERT(fd_check(ln_loss, &c, c.w, dw, c.C, 1e-2, "ln.dw") < 2e-2);
    CU_ASSERT(fd_check(ln_loss, &c, c.b, db, c.C, 1e-2, "ln.db") < 2e-2);
    /* backward accumulates: a second call doubles the parameter gradients */
    float dw0 = dw[3];
    layernorm_backward(dx, dw, db, c.R, c.x, c.w, c.mean, c.rstd, c.N, c.C);
    CU_ASSERT(fabsf(dw[3] - 2 * dw0) <= 1e-5f * fabsf(dw0) + 1e-7f);
    /* forward normalises: mean 0, var 1 with w=1, b=0 */
    for (int i = 0; i < c.C; i++) { c.w[i] = 1; c.b[i] = 0; }
    ln_loss(&c);
    double m = 0, v = 0;
    for (int i = 0; i < c.C; i++) m += c.out[i];
    m /= c.C;
    for (int i = 0; i < c.C; i++) v += (c.out[i] - m) * (c.out[i] - m);
    v /= c.C;
    CU_ASSERT(fabs(m) < 1e-6);
    CU_ASSERT(fabs(v - 1.0) < 1e-3);
    free(c.x); free(c.w); free(c.b); free(c.R); free(c.out); free(c.mean); free(c.rstd); free(dx); free(dw); free(db);
}

/* ---- matmul ---- */
typedef struct { int N, C, OC; float *x, *w, *b, *out, *R; } MmCtx;
static double mm_loss(void *p)
{
    MmCtx *c = p;
    matmul_forward(c->out, c->x, c->w, c->b, c->N, c->C, c->OC);
    return dotf(c->out, c->R, (size_t)c->N * c->OC);
}
static void test_matmul(void)
{
    MmCtx c = {.N = 6, .C = 10, .OC = 7};
    c.x = randv(60, 1); c.w = randv(70, 1); c.b = randv(7, 1); c.R = randv(42, 1); c.out = malloc(42 * 4);
    float *dx = randv(60, 1), *dw = calloc(70, 4), *db = calloc(7, 4);
    mm_loss(&c);
    /* hand check of one output element */
    double o = c.b[2];
    for (int k = 0; k < 10; k++) o += (double)c.x[3 * 10 + k] * c.w[2 * 10 + k];
    CU_ASSERT(fabs(c.out[3 * 7 + 2] - o) < 1e-5);
    matmul_backward(dx, dw, db, c.R, c.x, c.w, c.N, c.C, c.OC, 0); /* overwrite mode ignores old dx */
    CU_ASSERT(fd_check(mm_loss, &c, c.x, dx, 60, 1e-2, "mm.dx") < 2e-2);
    CU_ASSERT(fd_check(mm_loss, &c, c.w, dw, 70, 1e-2, "mm.dw") < 2e-2);
    CU_ASSERT(fd_check(mm_loss, &c, c.b, db, 7, 1e-2, "mm.db") < 2e-2);
    free(c.x); free(c.w); free(c.b); free(c.R); free(c.out); free(dx); free(dw); free(db);
}

/* ---- attention ---- */
typedef struct { int B, T, C, NH; float *qkv, *out, *att, *R; } AttCtx;
static double att_loss(void *p)
{
    AttCtx *c = p;
    attention_forward(c->out, c->att, 0, c->qkv, NULL, c->B, c->T, c->C, c->NH);
    return dotf(c->out, c->R, (size_t)c->B * c->T * c->C);
}
static void att_case(int B, int T, int C, int NH)
{
    AttCtx c = {.B = B, .T = T, .C = C, .NH = NH};
    size_t n3 = (size_t)B * T * 3 * C, n = (size_t)B * T * C;
    c.qkv = randv(n3, 1); c.R = randv(n, 1); c.out = malloc(4 * n); c.att = malloc(4 * (size_t)B * NH * T * T);
    float *dq = malloc(4 * n3), *scr = malloc(4 * (size_t)T * T * 64);
    att_loss(&c);
    /* rows of att are distributions over j <= i */
    for (int i = 0; i < T; i++) {
        double s = 0;
        for (int j = 0; j < T; j++) {
            s += c.att[(size_t)i * T + j];
            if (j > i) CU_ASSERT(c.att[(size_t)i * T + j] == 0.0f);
        }
        CU_ASSERT(fabs(s - 1) < 1e-5);
    }
    attention_backward(dq, scr, 64, c.R, c.qkv, c.att, B, T, C, NH);
    CU_ASSERT(fd_check(att_loss, &c, c.qkv, dq, n3, 1e-2, "att.dqkv") < 2e-2);
    free(c.qkv); free(c.R); free(c.out); free(c.att); free(dq); free(scr);
}
static void test_attention(void)
{
    att_case(2, 5, 8, 2);
    att_case(1, 70, 8, 2); /* spans two query blocks */
}

/* ---- gelu, residual, encoder, logsoftmax ---- */
typedef struct { size_t n; float *x, *out, *R; } GeluCtx;
static double gelu_loss(void *p)
{
    GeluCtx *c = p;
    gelu_forward(c->out, c->x, c->n);
    return dotf(c->out, c->R, c->n);
}
static void test_gelu(void)
{
    GeluCtx c = {.n = 257};
    c.x = randv(c.n, 2); c.R = randv(c.n, 1); c.out = malloc(4 * c.n);
    c.x[0] = 0; c.x[1] = 9; c.x[2] = -9; c.x[3] = 1;
    gelu_loss(&c);
    /* against libm's tanh in double */
    for (size_t i = 0; i < c.n; i++) {
        double x = c.x[i];
        double y = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        CU_ASSERT(fabs(c.out[i] - y) < 1e-6 + 1e-6 * fabs(y));
    }
    float *dx = malloc(4 * c.n);
    gelu_backward(dx, c.x, c.R, c.n);
    CU_ASSERT(fd_check(gelu_loss, &c, c.x, dx, c.n, 1e-3, "gelu.dx") < 2e-2);
    free(c.x); free(c.R); free(c.out); free(dx);
}

static void test_expf(void)
{
    double worst = 0;
    for (float x = -87.0f; x < 88.0f; x += 0.01237f) {
        double e = exp((double)x), a = ops_expf(x);
        double r = fabs(a - e) / e;
        if (r > worst) worst = r;
    }
    CU_ASSERT(worst < 5e-7);
    CU_ASSERT(ops_expf(-200.0f) < 1e-37f);
    CU_ASSERT(ops_expf(0.0f) == 1.0f);
}

typedef struct { int M, V; float *logits, *work; int32_t *tgt; double *logp; float *w; } LsCtx;
static double ls_loss(void *p)
{
    LsCtx *c = p;
    memcpy(c->work, c->logits, sizeof(float) * c->M * c->V);
    logsoftmax_target_forward(c->work, c->logp, NULL, c->tgt, c->M, c->V);
    double s = 0;
    for (int i = 0; i < c->M; i++) s += c->w[i] * c->logp[i];
    return s;
}
static void test_logsoftmax(void)
{
    LsCtx c = {.M = 4, .V = 9};
    int32_t tgt[4] = {0, 8, 3, 3};
    c.tgt = tgt; c.logits = randv(36, 3); c.work = malloc(36 * 4); c.logp = malloc(4 * 8); c.w = randv(4, 1);
    ls_loss(&c);
    for (int i = 0; i < 4; i++) {
        double mx = -1e30, s = 0;
        for (int j = 0; j < 9; j++) mx = fmax(mx, c.logits[i * 9 + j]);
        for (int j = 0; j < 9; j++) s += exp(c.logits[i * 9 + j] - mx);
        double want = c.logits[i * 9 + tgt[i]] - mx - log(s);
        CU_ASSERT(fabs(c.logp[i] - want) < 1e-6);
    }
    logsoftmax_target_backward(c.work, c.w, c.tgt, c.M, c.V);
    float *g = malloc(36 * 4);
    memcpy(g, c.work, 36 * 4);
    CU_ASSERT(fd_check(ls_loss, &c, c.logits, g, 36, 1e-2, "logsoftmax") < 2e-2);
    free(c.logits); free(c.work); free(c.logp); free(c.w); free(g);
}

static void test_encoder(void)
{
    int B = 2, T = 3, C = 4, V = 5;
    int32_t inp[6] = {1, 4, 1, 0, 2, 1};
    float *wte = randv(V * C, 1), *wpe = randv(T * C, 1), out[24], dout[24];
    encoder_forward(out, inp, NULL, wte, wpe, B, T, C);
    CU_ASSERT(out[(1 * 3 + 2) * 4 + 1] == wte[1 * 4 + 1] + wpe[2 * 4 + 1]);
    for (int i = 0; i < 24; i++) dout[i] = 1.0f;
    float *dwte = calloc(V * C, 4), *dwpe = calloc(T * C, 4);
    encoder_backward(dwte, dwpe, dout, inp, NULL, B, T, C);
    CU_ASSERT(dwte[1 * 4] == 3.0f); /* token 1 appears 3 times */
    CU_ASSERT(dwte[3 * 4] == 0.0f);
    CU_ASSERT(dwpe[0] == 2.0f);
    free(wte); free(wpe); free(dwte); free(dwpe);
}

/* ---- whole model ---- */
typedef struct { Gpt *m; int B, T; int32_t *tok, *tgt; uint8_t *mask; float *w; double *seq; } ModelCtx;
static double model_loss(void *p)
{
    ModelCtx *c = p;
    /* per-sequence weights on the double-precision sequence sums: dlogp[b,t] = w[b*T] */
    gpt_forward(c->m, c->tok, c->tgt, c->mask, c->B, c->T, NULL, c->seq, NULL);
    double s = 0;
    for (int b = 0; b < c->B; b++) s += (double)c->w[b * c->T] * c->seq[b];
    return s;
}

static void fill_batch(int32_t *tok, int32_t *tgt, uint8_t *mask, int B, int T, int V)
{
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)rng_below(&g_rng, V);
        tgt[i] = (int32_t)rng_below(&g_rng, V);
        mask[i] = (uint8_t)(rng_below(&g_rng, 3) != 0);
    }
}

static void test_model_gradient(void)
{
    GptDims d = {.vocab_size = 13, .context = 9, .n_layer = 2, .n_head = 2, .n_embd = 8};
    Gpt m;
    gpt_init(&m, &d, 3);
    gpt_init_weights(&m, 5, 0.3);
    /* non-trivial gains and biases so that every path is exercised */
    for (int i = 0; i < m.n_tensors; i++)
        if (!m.tensors[i].decay && !m.tensors[i].is_embedding)
            for (size_t j = 0; j < m.tensors[i].numel; j++)
                m.params[m.tensors[i].offset + j] += (float)(0.3 * rng_normal(&g_rng));
    int B = 3, T = 7;
    ModelCtx c = {.m = &m, .B = B, .T = T};
    c.tok = malloc(4 * B * T); c.tgt = malloc(4 * B * T); c.mask = malloc(B * T); c.w = randv(B * T, 1);
    c.seq = malloc(8 * B);
    fill_batch(c.tok, c.tgt, c.mask, B, T, d.vocab_size);
    for (int i = 0; i < B * T; i++) c.w[i] = c.w[(i / T) * T];
    double L0 = model_loss(&c);
    /* seq sums agree with the weighted sum when w = 1 on the mask */
    double s = 0;
    for (int b = 0; b < B; b++) s += c.seq[b];
    CU_ASSERT(isfinite(L0) && isfinite(s) && s < 0);
    gpt_zero_grad(&m);
    gpt_backward(&m, c.w, NULL, NULL);
    float *g = malloc(4 * m.num_params);
    memcpy(g, m.grads, 4 * m.num_params);
    for (int i = 0; i < m.n_tensors; i++) {
        const GptTensor *t = &m.tensors[i];
        double e = fd_check(model_loss, &c, m.params + t->offset, g + t->offset, t->numel, 1e-2, t->name);
        if (e >= 2e-2)
            printf("\n  tensor %s worst %.3g", t->name, e);
        CU_ASSERT(e < 2e-2);
    }
    free(g); free(c.tok); free(c.tgt); free(c.mask); free(c.w); free(c.seq);
    gpt_free(&m);
}

static void test_model_all_directions(void)
{
    /* larger model (two attention blocks of rows), directional derivatives over all params */
    GptDims d = {.vocab_size = 31, .context = 80, .n_layer = 2, .n_head = 4, .n_embd = 16};
    Gpt m;
    gpt_init(&m, &d, 2);
    gpt_init_weights(&m, 9, 0.1);
    int B = 2, T = 75;
    ModelCtx c = {.m = &m, .B = B, .T = T};
    c.tok = malloc(4 * B * T); c.tgt = malloc(4 * B * T); c.mask = malloc(B * T); c.w = randv(B * T, 1);
    c.seq = malloc(8 * B);
    fill_batch(c.tok, c.tgt, c.mask, B, T, d.vocab_size);
    for (int i = 0; i < B * T; i++) c.w[i] = c.w[(i / T) * T];
    model_loss(&c);
    gpt_zero_grad(&m);
    gpt_backward(&m, c.w, NULL, NULL);
    float *g = malloc(4 * m.num_params);
    memcpy(g, m.grads, 4 * m.num_params);
    double worst = 0;
    for (int r = 0; r < 4; r++) {
        float *v = check_direction(g, m.num_params);
        double nv = sqrt(dotf(v, v, m.num_params)), h = 1e-2;
        float *p0 = malloc(4 * m.num_params);
        memcpy(p0, m.params, 4 * m.num_params);
        double an = 0;
        for (size_t i = 0; i < m.num_params; i++) m.params[i] = p0[i] + (float)(h * v[i] / nv);
        an += dotf(g, m.params, m.num_params);
        double lp = model_loss(&c);
        for (size_t i = 0; i < m.num_params; i++) m.params[i] = p0[i] - (float)(h * v[i] / nv);
        an -= dotf(g, m.params, m.num_params);
        double lm = model_loss(&c);
        memcpy(m.params, p0, 4 * m.num_params);
        double fd = (lp - lm) / (2 * h);
        an /= 2 * h;
        double e = fabs(fd - an) / (fabs(fd) + fabs(an) + 1e-3);
        worst = e > worst ? e : worst;
        free(v); free(p0);
    }
    CU_ASSERT(worst < 2e-3);
    free(g); free(c.tok); free(c.tgt); free(c.mask); free(c.w); free(c.seq);
    gpt_free(&m);
}

static void test_causality_and_padding(void)
{
    GptDims d = {.vocab_size = 17, .context = 70, .n_layer = 2, .n_head = 2, .n_embd = 8};
    Gpt m;
    gpt_init(&m, &d, 3);
    gpt_init_weights(&m, 3, 0.2);
    int B = 3, T = 70;
    int32_t *tok = malloc(4 * B * T), *tgt = malloc(4 * B * T);
    uint8_t *mask = malloc(B * T);
    fill_batch(tok, tgt, mask, B, T, d.vocab_size);
    memset(mask, 1, B * T);
    float *a = malloc(4 * B * T), *b = malloc(4 * B * T);
    gpt_forward(&m, tok, tgt, mask, B, T, a, NULL, NULL);
    /* causality: change token 40 of sequence 1; positions < 40 unchanged */
    tok[1 * T + 40] = (tok[1 * T + 40] + 1) % d.vocab_size;
    gpt_forward(&m, tok, tgt, mask, B, T, b, NULL, NULL);
    int same_before = 1, changed_after = 0;
    for (int t = 0; t < T; t++) {
        float x = a[1 * T + t], y = b[1 * T + t];
        if (t < 40 && fabsf(x - y) > 1e-6f * (1 + fabsf(x))) same_before = 0;
        if (t >= 40 && x != y) changed_after = 1;
    }
    CU_ASSERT(same_before);
    CU_ASSERT(changed_after);
    /* other sequences untouched */
    for (int t = 0; t < T; t++) CU_ASSERT(fabsf(a[t] - b[t]) <= 1e-6f * (1 + fabsf(a[t])));
    /* padding: sequence 2's first 23 tokens alone give the same log-probs */
    int Ts = 23;
    float *c1 = malloc(4 * Ts);
    double seq1, seqB[3];
    gpt_forward(&m, tok + 2 * T, tgt + 2 * T, mask + 2 * T, 1, Ts, c1, &seq1, NULL);
    for (int t = 0; t < Ts; t++) CU_ASSERT(fabsf(c1[t] - b[2 * T + t]) <= 1e-5f * (1 + fabsf(c1[t])));
    /* and masking the tail of sequence 2 in the full batch gives the same sequence sum */
    for (int t = Ts; t < T; t++) mask[2 * T + t] = 0;
    gpt_forward(&m, tok, tgt, mask, B, T, NULL, seqB, NULL);
    CU_ASSERT(fabs(seq1 - seqB[2]) <= 1e-5 * fabs(seq1));
    free(tok); free(tgt); free(mask); free(a); free(b); free(c1);
    gpt_free(&m);
}

static void test_layout(void)
{
    GptDims d = {.vocab_size = 50, .context = 16, .n_layer = 3, .n_head = 2, .n_embd = 8};
    Gpt m;
    gpt_init(&m, &d, 1);
    int C = 8;
    size_t want = 50 * C + 16 * C + 3 * (12 * C * C + 13 * C) + 2 * C;
    CU_ASSERT(m.num_params == want);
    size_t sum = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        CU_ASSERT(m.tensors[i].offset == sum);
        sum += m.tensors[i].numel;
    }
    CU_ASSERT(sum == want);
    CU_ASSERT(m.p.layer[1].ln1w == m.params + m.layer_offset0 + m.layer_stride);
    CU_ASSERT(m.p.lnfb == m.params + want - C);
    CU_ASSERT(gpt_flops_fwdbwd(&m, 10, 4) == 6.0 * want * 10 + 6.0 * 3 * 8 * 4 * 10);
    gpt_free(&m);
    gpt_free(NULL);
}

typedef struct { size_t next; int ok; size_t n; } ReadyCtx;
static void ready_cb(void *p, size_t off, size_t cnt)
{
    ReadyCtx *r = p;
    if (cnt == 0) return; /* a progress call, no new gradients */
    /* runs come back to front, covering everything exactly once */
    if (off + cnt != r->next) r->ok = 0;
    r->next = off;
}
static void test_ready_order(void)
{
    GptDims d = {.vocab_size = 11, .context = 6, .n_layer = 3, .n_head = 2, .n_embd = 4};
    Gpt m;
    gpt_init(&m, &d, 1);
    gpt_init_weights(&m, 1, 0.02);
    int32_t tok[6] = {1, 2, 3, 4, 5, 6}, tgt[6] = {2, 3, 4, 5, 6, 7};
    uint8_t mask[6] = {0, 0, 1, 1, 1, 1};
    float w[6] = {1, 1, 1, 1, 1, 1};
    gpt_forward(&m, tok, tgt, mask, 1, 6, NULL, NULL, NULL);
    ReadyCtx r = {.next = m.num_params, .ok = 1};
    gpt_backward(&m, w, ready_cb, &r);
    CU_ASSERT(r.ok);
    CU_ASSERT(r.next == 0);
    gpt_free(&m);
}


/* A packed pass (log-probs lp1[0..n), gradients in m) equals the separate sequences' (lp2,
 * g2): per row to 1e-5 relative, gradients to 1e-5 of their norm. */
static void assert_same_pass(const double *lp1, const double *lp2, int n, const Gpt *m, const float *g2)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(lp1[i] - lp2[i]) / (1 + fabs(lp2[i]));
        worst = e > worst ? e : worst;
    }
    CU_ASSERT(worst < 1e-5);
    double dd = 0, nn = 0;
    for (size_t i = 0; i < m->num_params; i++) {
        double e = (double)m->grads[i] - g2[i];
        dd += e * e;
        nn += (double)g2[i] * g2[i];
    }
    CU_ASSERT(sqrt(dd) < 1e-5 * sqrt(nn));
}

/* Prefix sharing: one packed sequence prompt|chosen|rejected (rejected skips chosen,
 * positions restart after the prompt) gives the same log-probs and the same gradients as
 * two separate sequences prompt|chosen and prompt|rejected. */
static void test_prefix_sharing(void)
{
    GptDims d = {.vocab_size = 19, .context = 40, .n_layer = 2, .n_head = 2, .n_embd = 8};
    Gpt m;
    gpt_init_seq(&m, &d, 2, 80);
    gpt_init_weights(&m, 11, 0.3);
    enum { LP = 9, LC = 30, LR = 27 }; /* packed length 66 > 64: crosses an attention block */
    int32_t P[LP], Cc[LC], R[LR];
    for (int i = 0; i < LP; i++) P[i] = (int32_t)rng_below(&g_rng, 19);
    for (int i = 0; i < LC; i++) Cc[i] = (int32_t)rng_below(&g_rng, 19);
    for (int i = 0; i < LR; i++) R[i] = (int32_t)rng_below(&g_rng, 19);
    /* unshared: batch of 2, T = LP + max(LC, LR) */
    int T2 = LP + LC;
    int32_t tok2[2 * (LP + LC)], row2[LC + LR], tgt2[LC + LR];
    memset(tok2, 0, sizeof tok2);
    for (int i = 0; i < LP; i++) tok2[i] = tok2[T2 + i] = P[i];
    for (int i = 0; i < LC; i++) tok2[LP + i] = Cc[i];
    for (int i = 0; i < LR; i++) tok2[T2 + LP + i] = R[i];
    int n2 = 0;
    for (int t = 0; t < LC; t++) { row2[n2] = LP - 1 + t; tgt2[n2++] = Cc[t]; }
    for (int t = 0; t < LR; t++) { row2[n2] = T2 + LP - 1 + t; tgt2[n2++] = R[t]; }
    double lp2[LC + LR];
    float w[LC + LR];
    for (int i = 0; i < LC + LR; i++) w[i] = i < LC ? 0.7f : -1.3f; /* like DPO's two weights */
    gpt_forward_rows(&m, tok2, NULL, NULL, 2, T2, n2, row2, tgt2, lp2);
    gpt_zero_grad(&m);
    gpt_backward_rows(&m, w, NULL, NULL);
    float *g2 = malloc(4 * m.num_params);
    memcpy(g2, m.grads, 4 * m.num_params);
    /* packed */
    int T1 = LP + LC + LR;
    int32_t tok1[LP + LC + LR], pos1[LP + LC + LR], row1[LC + LR], tgt1[LC + LR], skip[2 * (LP + LC + LR)];
    for (int i = 0; i < T1; i++) {
        skip[2 * i] = i >= LP + LC ? LP : 0;
        skip[2 * i + 1] = i >= LP + LC ? LP + LC : 0;
    }
    for (int i = 0; i < LP; i++) { tok1[i] = P[i]; pos1[i] = i; }
    for (int i = 0; i < LC; i++) { tok1[LP + i] = Cc[i]; pos1[LP + i] = LP + i; }
    for (int i = 0; i < LR; i++) { tok1[LP + LC + i] = R[i]; pos1[LP + LC + i] = LP + i; }
    int n1 = 0;
    for (int t = 0; t < LC; t++) { row1[n1] = LP - 1 + t; tgt1[n1++] = Cc[t]; }
    for (int t = 0; t < LR; t++) { row1[n1] = t == 0 ? LP - 1 : LP + LC + t - 1; tgt1[n1++] = R[t]; }
    double lp1[LC + LR];
    gpt_forward_rows(&m, tok1, pos1, skip, 1, T1, n1, row1, tgt1, lp1);
    gpt_zero_grad(&m);
    gpt_backward_rows(&m, w, NULL, NULL);
    assert_same_pass(lp1, lp2, n1, &m, g2);
    /* and the skip matters: without it the rejected branch sees the chosen one */
    gpt_forward_rows(&m, tok1, pos1, NULL, 1, T1, n1, row1, tgt1, lp1);
    CU_ASSERT(fabs(lp1[LC + 3] - lp2[LC + 3]) > 1e-4);
    free(g2);
    gpt_free(&m);
}

/* K branches after one prompt in one sequence, each hiding the branches before it, give
 * the log-probs (and the gradient) of K separate prompt + branch sequences. */
static void test_k_branches(void)
{
    GptDims d = {.vocab_size = 19, .context = 40, .n_layer = 2, .n_head = 2, .n_embd = 16};
    enum { K = 4, LP = 5, LB = 21 }; /* the packed sequence (5 + 4*20 = 85) crosses two attention blocks */
    Gpt m;
    gpt_init_seq(&m, &d, K, LP + K * (LB - 1));
    gpt_init_weights(&m, 11, 0.3);
    int32_t P[LP], Y[K][LB];
    for (int i = 0; i < LP; i++) P[i] = (int32_t)rng_below(&g_rng, 19);
    for (int k = 0; k < K; k++)
        for (int i = 0; i < LB; i++) Y[k][i] = (int32_t)rng_below(&g_rng, 19);
    /* separate: K sequences of prompt + branch without its last token */
    int T2 = LP + LB - 1, n2 = 0;
    int32_t tok2[K * (LP + LB - 1)], row2[K * LB], tgt2[K * LB];
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < T2; i++) tok2[k * T2 + i] = i < LP ? P[i] : Y[k][i - LP];
        for (int t = 0; t < LB; t++) { row2[n2] = k * T2 + LP - 1 + t; tgt2[n2++] = Y[k][t]; }
    }
    double lp2[K * LB], lp1[K * LB];
    float w[K * LB];
    for (int i = 0; i < K * LB; i++) w[i] = (float)(i % 7) * 0.3f - 0.8f;
    gpt_forward_rows(&m, tok2, NULL, NULL, K, T2, n2, row2, tgt2, lp2);
    gpt_zero_grad(&m);
    gpt_backward_rows(&m, w, NULL, NULL);
    float *g2 = malloc(4 * m.num_params);
    memcpy(g2, m.grads, 4 * m.num_params);
    /* packed: prompt | branch 0 | ... | branch K-1 */
    int T1 = LP + K * (LB - 1), n1 = 0;
    int32_t tok1[LP + K * (LB - 1)], pos1[LP + K * (LB - 1)], skip[2 * (LP + K * (LB - 1))], row1[K * LB], tgt1[K * LB];
    for (int i = 0; i < LP; i++) { tok1[i] = P[i]; pos1[i] = i; skip[2 * i] = skip[2 * i + 1] = 0; }
    for (int k = 0; k < K; k++) {
        int start = LP + k * (LB - 1);
        for (int i = 0; i < LB - 1; i++) {
            tok1[start + i] = Y[k][i];
            pos1[start + i] = LP + i;
            skip[2 * (start + i)] = k ? LP : 0;
            skip[2 * (start + i) + 1] = k ? start : 0;
        }
        for (int t = 0; t < LB; t++) { row1[n1] = t == 0 ? LP - 1 : start + t - 1; tgt1[n1++] = Y[k][t]; }
    }
    gpt_forward_rows(&m, tok1, pos1, skip, 1, T1, n1, row1, tgt1, lp1);
    gpt_zero_grad(&m);
    gpt_backward_rows(&m, w, NULL, NULL);
    assert_same_pass(lp1, lp2, n1, &m, g2);
    /* the skip matters for the last branch, which would otherwise see the others */
    for (int i = 0; i < 2 * T1; i++) skip[i] = 0;
    gpt_forward_rows(&m, tok1, pos1, skip, 1, T1, n1, row1, tgt1, lp1);
    CU_ASSERT(fabs(lp1[(K - 1) * LB + 3] - lp2[(K - 1) * LB + 3]) > 1e-4);
    free(g2);
    gpt_free(&m);
}

int main(void)
{
    rng_init(&g_rng, 42, 0);
    gpt_set_threads(1);
    if (CU_initialize_registry() != CUE_SUCCESS) return 1;
    CU_pSuite s = CU_add_suite("model", NULL, NULL);
    CU_add_test(s, "expf", test_expf);
    CU_add_test(s, "encoder", test_encoder);
    CU_add_test(s, "layernorm", test_layernorm);
    CU_add_test(s, "matmul", test_matmul);
    CU_add_test(s, "attention", test_attention);
    CU_add_test(s, "gelu", test_gelu);
    CU_add_test(s, "logsoftmax", test_logsoftmax);
    CU_add_test(s, "layout", test_layout);
    CU_add_test(s, "ready order", test_ready_order);
    CU_add_test(s, "model gradient (finite differences)", test_model_gradient);
    CU_add_test(s, "model gradient (directions, two attention blocks)", test_model_all_directions);
    CU_add_test(s, "causality and padding", test_causality_and_padding);
    CU_add_test(s, "prefix sharing equals two sequences", test_prefix_sharing);
    CU_add_test(s, "K branches equal K sequences", test_k_branches);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}

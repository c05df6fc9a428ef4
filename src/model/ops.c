/* ops.c: forward/backward kernels of the GPT-2 block (see ops.h for shapes).
 *
 * Matrix products: cblas_sgemm, with OpenBLAS's own threads. Everything else: plain loops
 * that GCC vectorises, split over rows with OpenMP. No kernel allocates. The elementwise
 * exponentials use ops_expf, a branch-free exp that vectorises (libm's expf does not
 * without -ffast-math, which we refuse: it would break NaN detection). */
#include "prefer/ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define LN_EPS 1e-5f

/* exp(x): x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial, 2^n by exponent
 * bits. Max relative error ~2e-7 on [-87, 88]; clamps outside (no Inf from large x is
 * needed by our callers, which subtract the max first; x < -87.3 gives ~0). */
static inline float expf_inline(float x)
{
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.7f ? 88.7f : x;
    const float log2e = 1.44269504088896341f;
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * log2e + shifter;
    float n = t - shifter;
    float r = x - n * 0.693145751953125f; /* ln2 high part */
    r = r - n * 1.428606765330187e-06f;   /* ln2 low part */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t e = (int32_t)n + 127;
    union { int32_t i; float f; } s;
    s.i = e << 23;
    return p * s.f;
}

float ops_expf(float x) { return expf_inline(x); }
static inline float sum_f32(const float *x, int n);
float ops_sum(const float *x, int n) { return sum_f32(x, n); }

/* Sums in 8 interleaved partial sums (lane k takes x[k], x[k+8], ...), added pairwise at the
 * end: one vector register's worth, so the compiler vectorises what a single running float
 * sum (a chain of dependent adds) cannot. The order is fixed, so the result is the same
 * on every run and thread count. */
#define SUM_LANES 8
static inline float lanes_total(const float *acc)
{
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}
static inline float sum_f32(const float *x, int n)
{
    float acc[SUM_LANES] = {0};
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int k = 0; k < SUM_LANES; k++)
            acc[k] += x[i + k];
    for (int k = 0; i < n; i++, k++)
        acc[k] += x[i];
    return lanes_total(acc);
}
/* max of x[0..n), n >= 1 (exact: the order does not matter) */
static inline float max_f32(const float *x, int n)
{
    float acc[SUM_LANES];
    for (int k = 0; k < SUM_LANES; k++)
        acc[k] = x[0];
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int k = 0; k < SUM_LANES; k++)
            acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
    for (int k = 0; i < n; i++, k++)
        acc[k] = x[i] > acc[k] ? x[i] : acc[k];
    float m = acc[0];
    for (int k = 1; k < SUM_LANES; k++)
        m = acc[k] > m ? acc[k] : m;
    return m;
}
/* sum of (x - m)^2 */
static inline float sumsq_dev_f32(const float *x, float m, int n)
{
    float acc[SUM_LANES] = {0};
    int i = 0;
    for (; i + SUM_LANES <= n; i += SUM_LANES)
        for (int k = 0; k < SUM_LANES; k++) {
            float d = x[i + k] - m;
            acc[k] += d * d;
        }
    for (int k = 0; i < n; i++, k++) {
        float d = x[i] - m;
        acc[k] += d * d;
    }
    return lanes_total(acc);
}

/* One thread pool. OpenBLAS runs single-threaded (gpt_set_threads) and the OpenMP team
 * splits each large product into row or column panels, one cblas_sgemm per thread. Two
 * pools (OpenBLAS's pthreads and OpenMP's) on the same cores steal cycles from each other
 * while one of them spins idle: measured here, 2 threads ran at 0.21 of the sgemm ceiling
 * that way against 0.94 on 1 thread. Splitting along M or N keeps every element's
 * summation over K, but some OpenBLAS kernels (Haswell's, measured) round a row differently
 * with the number of rows in the call, so results are bit-identical for the same thread
 * count and equal to rounding across thread counts. */
void ops_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc)
{
    CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt <= 1 || 2.0 * M * N * K < 2e6) {
        cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int split_m = M >= N;
    int len = split_m ? M : N;
    int per = (len + nt - 1) / nt;
    per = (per + 31) & ~31; /* whole register blocks */
    int parts = (len + per - 1) / per;
#pragma omp parallel for num_threads(parts) schedule(static, 1)
    for (int p = 0; p < parts; p++) {
        int lo = p * per, n = len - lo < per ? len - lo : per;
        if (split_m) {
            /* rows lo.. of op(A) and C */
            const float *Ap = ta ? A + lo : A + (size_t)lo * lda;
            cblas_sgemm(CblasRowMajor, TA, TB, n, N, K, alpha, Ap, lda, B, ldb, beta, C + (size_t)lo * ldc, ldc);
        } else {
            /* columns lo.. of op(B) and C */
            const float *Bp = tb ? B + (size_t)lo * ldb : B + lo;
            cblas_sgemm(CblasRowMajor, TA, TB, M, n, K, alpha, A, lda, Bp, ldb, beta, C + lo, ldc);
        }
    }
}

void encoder_forward(float *out, const int32_t *inp, const int32_t *pos, const float *wte, const float *wpe, int B,
                     int T, int C)
{
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int t = pos ? pos[bt] : bt % T;
        float *o = out + (size_t)bt * C;
        const float *we = wte + (size_t)inp[bt] * C;
        const float *pe = wpe + (size_t)t * C;
        for (int c = 0; c < C; c++)
            o[c] = we[c] + pe[c];
    }
}

void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp, const int32_t *pos, int B,
                      int T, int C)
{
    /* Serial over rows: two rows may share a token, and this is O(N C), negligible. */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *we = dwte + (size_t)inp[b * T + t] * C;
            float *pe = dwpe + (size_t)(pos ? pos[b * T + t] : t) * C;
            for (int c = 0; c < C; c++) {
                we[c] += d[c];
                pe[c] += d[c];
            }
        }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float m = sum_f32(x, C) / C;
        float v = sumsq_dev_f32(x, m, C) / C;
        float r = 1.0f / sqrtf(v + LN_EPS);
        float *o = out + (size_t)i * C;
        for (int c = 0; c < C; c++)
            o[c] = (x[c] - m) * r * w[c] + b[c];
        mean[i] = m;
        rstd[i] = r;
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C)
{
    /* dinp: rows independent. */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *d = dout + (size_t)i * C;
        const float *x = inp + (size_t)i * C;
        float m = mean[i], r = rstd[i];
        float dnorm_mean = 0.0f, dnorm_norm = 0.0f;
        for (int c = 0; c < C; c++) {
            float xn = (x[c] - m) * r;
            float dn = w[c] * d[c];
            dnorm_mean += dn;
            dnorm_norm += dn * xn;
        }
        dnorm_mean /= C;
        dnorm_norm /= C;
        float *di = dinp + (size_t)i * C;
        for (int c = 0; c < C; c++) {
            float xn = (x[c] - m) * r;
            float dn = w[c] * d[c];
            di[c] += (dn - dnorm_mean - xn * dnorm_norm) * r;
        }
    }
    /* dw, db: columns independent; each thread owns a slice of columns. */
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int per = (C + nt - 1) / nt;
        int c0 = id * per, c1 = c0 + per < C ? c0 + per : C;
        for (int i = 0; i < N; i++) {
            const float *d = dout + (size_t)i * C;
            const float *x = inp + (size_t)i * C;
            float m = mean[i], r = rstd[i];
            for (int c = c0; c < c1; c++) {
                dw[c] += (x[c] - m) * r * d[c];
                db[c] += d[c];
            }
        }
    }
}

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC)
{
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < N; i++)
            memcpy(out + (size_t)i * OC, bias, sizeof(float) * OC);
        beta = 1.0f;
    }
    ops_sgemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, beta, out, OC);
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC, int accumulate)
{
    if (dinp)
        ops_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, w, C, accumulate ? 1.0f : 0.0f, dinp, C);
    ops_sgemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    if (dbias) {
#pragma omp parallel
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            int per = (OC + nt - 1) / nt;
            int c0 = id * per, c1 = c0 + per < OC ? c0 + per : OC;
            for (int i = 0; i < N; i++) {
                const float *d = dout + (size_t)i * OC;
                for (int c = c0; c < c1; c++)
                    dbias[c] += d[c];
            }
        }
    }
}

/* Query rows are processed in blocks of ATT_TB so that the causal triangle costs about
 * half of the full T x T products. */
#define ATT_TB 64

void attention_forward(float *out, float *att, int att_threads, const float *qkv, const int32_t *skip, int B, int T,
                       int C, int NH)
{
    int hs = C / NH;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    int nt = omp_get_max_threads();
    nt = att_threads > 0 && att_threads < nt ? att_threads : nt;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        {
            const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
            const float *k = q + C;
            const float *v = q + 2 * C;
            float *a = att_threads > 0 ? att + (size_t)omp_get_thread_num() * T * T : att + ((size_t)b * NH + h) * T * T;
            float *o = out + (size_t)b * T * C + (size_t)h * hs;
            for (int i0 = 0; i0 < T; i0 += ATT_TB) {
                int i1 = i0 + ATT_TB < T ? i0 + ATT_TB : T;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, i1 - i0, i1, hs, scale,
                            q + i0 * C3, (int)C3, k, (int)C3, 0.0f, a + (size_t)i0 * T, T);
            }
            const int32_t *sk = skip ? skip + (size_t)2 * b * T : NULL;
            for (int i = 0; i < T; i++) {
                float *row = a + (size_t)i * T;
                /* a row in a later branch does not see the branches before it: drop [s0, s1) */
                int s0 = i + 1, s1 = i + 1;
                if (sk && sk[2 * i] < sk[2 * i + 1]) {
                    s0 = sk[2 * i];
                    s1 = sk[2 * i + 1];
                }
                for (int j = s0; j < s1; j++)
                    row[j] = -INFINITY;
                float mx = max_f32(row, i + 1);
                /* exp over the visible columns [0, s0) and [s1, i], 0 on the hidden ones */
                for (int j = 0; j < s0; j++)
                    row[j] = expf_inline(row[j] - mx);
                for (int j = s0; j < s1; j++)
                    row[j] = 0.0f;
                for (int j = s1; j <= i; j++)
                    row[j] = expf_inline(row[j] - mx);
                float s = sum_f32(row, i + 1);
                float inv = 1.0f / s;
                for (int j = 0; j <= i; j++)
                    row[j] *= inv;
                for (int j = i + 1; j < T; j++)
                    row[j] = 0.0f;
            }
            for (int i0 = 0; i0 < T; i0 += ATT_TB) {
                int i1 = i0 + ATT_TB < T ? i0 + ATT_TB : T;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, i1 - i0, hs, i1, 1.0f,
                            a + (size_t)i0 * T, T, v, (int)C3, 0.0f, o + (size_t)i0 * C, C);
            }
        }
    }
}

void attention_backward(float *dqkv, float *scratch, int max_threads, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH)
{
    int hs = C / NH;
    size_t C3 = (size_t)3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    memset(dqkv, 0, sizeof(float) * (size_t)B * T * C3);
    int nt = omp_get_max_threads();
    nt = nt < max_threads ? nt : max_threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        {
            const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
            const float *k = q + C;
            const float *v = q + 2 * C;
            float *dq = dqkv + (size_t)b * T * C3 + (size_t)h * hs;
            float *dk = dq + C;
            float *dv = dq + 2 * C;
            const float *a = att + ((size_t)b * NH + h) * T * T;
            const float *dy = dout + (size_t)b * T * C + (size_t)h * hs;
            float *ds = scratch + (size_t)omp_get_thread_num() * T * T;
            for (int i0 = 0; i0 < T; i0 += ATT_TB) {
                int i1 = i0 + ATT_TB < T ? i0 + ATT_TB : T;
                /* dP = dY V^T ; dV += P^T dY */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, i1 - i0, i1, hs, 1.0f,
                            dy + (size_t)i0 * C, C, v, (int)C3, 0.0f, ds + (size_t)i0 * T, T);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1, hs, i1 - i0, 1.0f,
                            a + (size_t)i0 * T, T, dy + (size_t)i0 * C, C, 1.0f, dv, (int)C3);
            }
            /* dS = P * (dP - rowsum(P * dP)), zero above the diagonal */
            for (int i = 0; i < T; i++) {
                const float *pr = a + (size_t)i * T;
                float *dr = ds + (size_t)i * T;
                float dot = 0.0f;
                for (int j = 0; j <= i; j++)
                    dot += pr[j] * dr[j];
                for (int j = 0; j <= i; j++)
                    dr[j] = pr[j] * (dr[j] - dot);
                int jend = ((i / ATT_TB) + 1) * ATT_TB;
                jend = jend < T ? jend : T;
                for (int j = i + 1; j < jend; j++)
                    dr[j] = 0.0f;
            }
            for (int i0 = 0; i0 < T; i0 += ATT_TB) {
                int i1 = i0 + ATT_TB < T ? i0 + ATT_TB : T;
                /* dQ += scale dS K ; dK += scale dS^T Q */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, i1 - i0, hs, i1, scale,
                            ds + (size_t)i0 * T, T, k, (int)C3, 1.0f, dq + i0 * C3, (int)C3);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, i1, hs, i1 - i0, scale,
                            ds + (size_t)i0 * T, T, q + i0 * C3, (int)C3, 1.0f, dk, (int)C3);
            }
        }
    }
}

#define GELU_S 0.7978845608028654f /* sqrt(2/pi) */

static inline float tanh_inline(float u)
{
    /* tanh(u) = 1 - 2/(exp(2u)+1); exp clamps, so |u| large gives +-1 exactly. */
    float e = expf_inline(2.0f * u);
    return 1.0f - 2.0f / (e + 1.0f);
}

void gelu_forward(float *out, const float *inp, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float t = tanh_inline(GELU_S * (x + 0.044715f * x * x * x));
        out[i] = 0.5f * x * (1.0f + t);
    }
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float t = tanh_inline(GELU_S * (x + 0.044715f * x * x * x));
        float dt = (1.0f - t * t) * GELU_S * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * x * dt);
    }
}

void residual_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void logsoftmax_target_forward(float *logits, double *logp, double *mean_logit, const int32_t *target, int M, int V)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *row = logits + (size_t)i * V;
        float mx = row[0], sum = 0.0f;
        for (int j = 1; j < V; j++)
            mx = row[j] > mx ? row[j] : mx;
        if (mean_logit) {
            for (int j = 0; j < V; j++)
                sum += row[j];
            mean_logit[i] = (double)sum / V;
        }
        float zt = row[target[i]] - mx;
        float s = 0.0f;
        for (int j = 0; j < V; j++) {
            row[j] = expf_inline(row[j] - mx);
            s += row[j];
        }
        float inv = 1.0f / s;
        for (int j = 0; j < V; j++)
            row[j] *= inv;
        logp[i] = (double)zt - log((double)s);
    }
}

void logsoftmax_target_backward(float *probs, const float *w, const int32_t *target, int M, int V)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *row = probs + (size_t)i * V;
        float wi = w[i];
        for (int j = 0; j < V; j++)
            row[j] = -wi * row[j];
        row[target[i]] += wi;
    }
}

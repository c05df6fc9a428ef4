/* ops.h: the transformer's kernels, each a forward/backward pair on raw arrays.
 *
 * Shapes: B sequences, T positions, C channels, NH heads, hs = C/NH, V vocabulary,
 * N = B*T rows, OC output channels. Row-major. Kernels never allocate; scratch is passed
 * in. Backward kernels accumulate (+=) into parameter gradients; for input gradients the
 * comment says whether they accumulate or overwrite. Matrix products go through
 * cblas_sgemm; the rest use OpenMP threads over rows.
 */
#ifndef PREFER_OPS_H
#define PREFER_OPS_H

#include <stddef.h>
#include <stdint.h>

/* out (B,T,C) = wte[inp[b,t]] + wpe[pos[b,t]]. inp (B,T) ids in [0,V); pos (B,T) or NULL
 * for t. */
void encoder_forward(float *out, const int32_t *inp, const int32_t *pos, const float *wte, const float *wpe, int B,
                     int T, int C);
/* dwte (V,C) +=, dwpe (Tmax,C) += from dout (B,T,C). */
void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp, const int32_t *pos, int B,
                      int T, int C);

/* out (N,C) = (inp - mean)/sqrt(var + 1e-5) * w + b; mean, rstd (N) saved for backward. */
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, int N, int C);
/* dinp (N,C) +=, dw (C) +=, db (C) += from dout (N,C). */
void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, const float *mean, const float *rstd, int N, int C);

/* out (N,OC) = inp (N,C) W^T + bias; W (OC,C), bias (OC) or NULL. */
void matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC);
/* dinp (N,C) = (accumulate ? dinp : 0) + dout W; dw (OC,C) += dout^T inp; dbias (OC) += colsum(dout)
 * (dbias may be NULL; dinp may be NULL to skip). */
void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, int N, int C, int OC, int accumulate);

/* Causal multi-head attention.
 *   qkv (B,T,3C): q | k | v, heads interleaved by hs within each C
 *   skip (B,T,2) or NULL: row i of sequence b does not attend to columns
 *        [skip[b][i][0], skip[b][i][1]) (empty when equal; hi <= i): branches sharing a
 *        prefix, each row hiding the branches before its own
 *   out (B,T,C), att (B,NH,T,T): softmax probabilities (0 above the diagonal and where
 *   skipped), kept for backward; the backward needs nothing else to honour the skip.
 *   att_threads > 0: att is instead (att_threads,T,T) scratch, one per thread (forward
 *   only), and at most att_threads threads run */
void attention_forward(float *out, float *att, int att_threads, const float *qkv, const int32_t *skip, int B, int T,
                       int C, int NH);
/* dqkv (B,T,3C) overwritten; scratch (max_threads,T,T): heads run in parallel, at most
 * max_threads at once. */
void attention_backward(float *dqkv, float *scratch, int max_threads, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH);

/* GPT-2's GELU, tanh approximation. out (n), inp (n). */
void gelu_forward(float *out, const float *inp, size_t n);
/* dinp (n) = dout * gelu'(inp) (overwrites; dinp may alias dout). */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* out (n) = a + b. */
void residual_forward(float *out, const float *a, const float *b, size_t n);

/* Rows of logits (M,V) -> softmax probabilities in place; logp[i] = log p(target[i]) in
 * double; mean_logit[i] = mean of row i's logits (may be NULL). */
void logsoftmax_target_forward(float *logits, double *logp, double *mean_logit, const int32_t *target, int M, int V);
/* dlogits (M,V) = w[i] * (onehot(target[i]) - probs[i]), in place over probs. */
void logsoftmax_target_backward(float *probs, const float *w, const int32_t *target, int M, int V);

/* C (M,N) = alpha op(A) op(B) + beta C, row-major, op = transpose if ta/tb. Split over the
 * OpenMP threads (OpenBLAS itself single-threaded) unless called inside a parallel region. */
void ops_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);

/* exp(x) for float arrays to ~2 ulp, vectorisable (used by softmax and GELU). */
float ops_expf(float x);
/* Sum of x[0..n) in 8 interleaved partial sums added pairwise (vectorised; a fixed order, so
 * the same bits every time): the softmax denominators and LayerNorm moments use it. */
float ops_sum(const float *x, int n);

#endif

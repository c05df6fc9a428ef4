/* gpt.h: a GPT-2-style decoder, forward and backward, on one contiguous parameter array.
 *
 * Token + learned position embeddings; L pre-LayerNorm blocks (causal multi-head
 * self-attention, GELU(tanh) MLP, residuals); final LayerNorm; LM head tied to wte.
 * Exactly GPT-2's arithmetic (LayerNorm eps 1e-5, biases where GPT-2 has them), so GPT-2
 * checkpoints can be imported.
 *
 * Memory: params, grads (each one contiguous float array of num_params) and activations
 * (allocated once for max_batch x context) are owned by the Gpt. AdamW moments live with
 * the optimizer, with the same layout.
 *
 * Parameter layout, chosen so that gradients become final in one contiguous run per layer
 * during backward (for bucketed allreduce): wte, wpe, then layer 0..L-1 each as
 * {ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb},
 * then lnfw, lnfb. Weight matrices are (out, in) row-major: y = x W^T + b.
 */
#ifndef PREFER_GPT_H
#define PREFER_GPT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int vocab_size; /* V */
    int context;    /* Tmax */
    int n_layer;    /* L */
    int n_head;     /* NH */
    int n_embd;     /* C */
} GptDims;

typedef struct {
    float *ln1w, *ln1b;         /* (C) (C) */
    float *qkvw, *qkvb;         /* (3C, C) (3C) */
    float *attprojw, *attprojb; /* (C, C) (C) */
    float *ln2w, *ln2b;         /* (C) (C) */
    float *fcw, *fcb;           /* (4C, C) (4C) */
    float *fcprojw, *fcprojb;   /* (C, 4C) (C) */
} GptLayer;

typedef struct {
    float *wte;       /* (V, C) */
    float *wpe;       /* (Tmax, C) */
    GptLayer *layer;  /* [L] */
    float *lnfw, *lnfb; /* (C) (C) */
} GptView;

/* One named tensor of the layout (names follow Hugging Face GPT-2: "wte", "h.3.attn.c_attn.weight"). */
typedef struct {
    char name[48];
    size_t offset;  /* into params/grads */
    size_t numel;
    int ndim;
    int shape[2];
    int decay;      /* 1 for weight matrices (AdamW decay applies), 0 for gains/biases/embeddings */
    int is_embedding;
} GptTensor;

typedef struct GptActs GptActs; /* private */

typedef struct {
    GptDims d;
    size_t num_params;
    float *params;    /* [num_params] */
    float *grads;     /* [num_params] */
    GptView p, g;     /* views into params and grads */
    GptTensor *tensors;
    int n_tensors;
    size_t layer_offset0;  /* offset of layer 0's first tensor */
    size_t layer_stride;   /* parameters per layer */
    int max_batch;    /* B the activations were sized for */
    int max_seq;      /* T the activations were sized for (>= context for packed pairs) */
    const int32_t *skip; /* of the last forward */
    int infer;        /* forward only (gpt_init_infer): no gradients, no backward */
    int shared_params; /* params belong to another model (gpt_share_params) */
    GptActs *acts;
    /* set by the last forward, used by backward */
    int B, T;
} Gpt;

/* Allocate params, grads (zeroed) and activations for up to max_batch sequences of up to
 * d->context tokens. Dies on a bad shape or out of memory. */
void gpt_init(Gpt *m, const GptDims *d, int max_batch);
/* The same with activations for sequences of up to max_seq tokens (packed pairs of
 * prompt + chosen + rejected can be longer than the context; positions stay < context). */
void gpt_init_seq(Gpt *m, const GptDims *d, int max_batch, int max_seq);
/* The same for forward passes only (log-probs of many responses): no gradients, and
 * activations for one layer at a time with attention scratch per thread, so a batch needs
 * about 1/n_layer of the memory and stays in cache; gpt_backward* and gpt_zero_grad die on
 * it. Attention runs on at most as many threads as OpenMP had at this call. */
void gpt_init_infer(Gpt *m, const GptDims *d, int max_batch, int max_seq);
/* Make m read src's parameters (same dims) instead of its own, which are freed: a
 * forward-only model that always sees the current weights of a model in training, with no
 * copy. src must outlive m; gpt_free(m) leaves them. */
void gpt_share_params(Gpt *m, const Gpt *src);
void gpt_free(Gpt *m); /* NULL harmless */

/* GPT-2 init: N(0, std) for matrices and embeddings (residual projections scaled by
 * 1/sqrt(2L)), zeros for biases, ones for LayerNorm gains. Deterministic in seed. */
void gpt_init_weights(Gpt *m, uint64_t seed, double std);

/* Model FLOPs for a forward+backward over `tokens` tokens at sequence length T:
 * 6 * num_params * tokens + causal attention 6 * L * C * T * tokens. */
double gpt_flops_fwdbwd(const Gpt *m, double tokens, int T);
/* Model FLOPs of a forward over `tokens` tokens (tok_t: the sum over sequences of tokens x
 * sequence length, for causal attention) of which `scored` rows go through the LM head:
 * 2 * (body parameters) * tokens + 2 * L * C * tok_t + 2 * V * C * scored. A forward +
 * backward is 3 times as much. */
double gpt_flops_forward(const Gpt *m, double tokens, double tok_t, double scored);

/* Forward.
 *   tokens  (B, T) int32 in [0, V): input ids
 *   targets (B, T) int32 in [0, V): the next token to score at each position
 *   mask    (B, T) uint8: 1 where targets[b,t] counts (the response tokens); positions with
 *                  mask 0 cost no LM-head work.
 *   out tok_logp (B, T): log p(targets[b,t] | tokens[b,<=t]) where mask, 0 elsewhere (may be NULL)
 *   out seq_logp (B): sum of tok_logp over the masked positions, in double (may be NULL)
 *   out seq_ntok (B): number of masked positions (may be NULL)
 * T <= context, B <= max_batch. Sequences shorter than T are padded by the caller; a
 * sequence's results do not depend on what else is in the batch (causal attention). */
void gpt_forward(Gpt *m, const int32_t *tokens, const int32_t *targets, const uint8_t *mask,
                 int B, int T, float *tok_logp, double *seq_logp, double *seq_ntok);

/* Forward with explicit scored rows, position ids and an attention skip (the general form;
 * gpt_forward is a wrapper).
 *   tokens (B, T) int32 in [0, V)
 *   pos    (B, T) int32 position ids in [0, context), or NULL for 0..T-1 in every sequence
 *   skip   (B, T, 2) int32 [lo, hi): row i of sequence b does not attend to columns
 *          lo..hi-1 (lo == hi: nothing hidden; hi <= i). Branches sharing a prefix:
 *          prompt | chosen | rejected has lo = len(prompt), hi = lo + len(chosen) on the
 *          rejected rows; K branches hide [len(prompt), start of their own). NULL = plain causal
 *   row    (n_rows) indices into the B*T rows whose next token is scored (a row may repeat:
 *          the last prompt row predicts the first token of both branches)
 *   target (n_rows) the token scored at each of them
 *   out logp (n_rows) log p(target | row), double (may be NULL)
 * n_rows <= B*T + B. skip and tokens must stay alive until the backward. */
void gpt_forward_rows(Gpt *m, const int32_t *tokens, const int32_t *pos, const int32_t *skip, int B, int T,
                      int n_rows, const int32_t *row, const int32_t *target, double *logp);

/* Called during backward each time a run of gradients is final: [offset, offset+count)
 * of grads (count 0: nothing new, a chance to progress communication, between the big
 * products of a layer). Order: lnf, layer L-1, ..., layer 0, then wte+wpe. */
typedef void (*GptGradReady)(void *ctx, size_t offset, size_t count);

/* Bucket boundaries for a bucketed gradient allreduce, aligned with the GptGradReady runs:
 * wte+wpe | layer 0 | ... | layer L-2 | layer L-1 + lnf (lnf alone when L = 0), each run
 * cut into the fewest near-equal pieces of at most max_bytes (>= sizeof(float)). Writes
 * bounds[0] = 0 < ... < bounds[nb] = num_params (nb + 1 entries) and returns nb; with
 * bounds NULL only returns nb. Dies if nb > cap. */
int gpt_grad_buckets(const Gpt *m, size_t max_bytes, size_t *bounds, int cap);

/* Backward of the last forward.
 *   dlogp (B, T): d loss / d tok_logp[b,t] (only masked positions are read)
 * Accumulates (+=) into m->grads; the caller zeroes them once per optimizer step.
 * ready may be NULL. */
void gpt_backward(Gpt *m, const float *dlogp, GptGradReady ready, void *ctx);

/* Backward of the last gpt_forward_rows: drow (n_rows) = d loss / d logp[r]. drow may be
 * NULL when gpt_backward already staged the weights (internal use). */
void gpt_backward_rows(Gpt *m, const float *drow, GptGradReady ready, void *ctx);

void gpt_zero_grad(Gpt *m);

/* Mean logit (over the vocabulary) of each scored row of the last forward (n_rows). */
const double *gpt_row_logit_mean(const Gpt *m);
/* Next-token distributions (n_rows, V) of the scored rows of the last forward; valid until
 * the next forward or backward. */
const float *gpt_row_probs(const Gpt *m);

/* Threads for the non-GEMM kernels (OpenMP) and OpenBLAS; 0 = leave as is. */
void gpt_set_threads(int n);

#endif

/* train.c: the training loop (see train.h) and `prefer train`.
 *
 * Does not: read files other than through prefdata/ckpt, or call MPI except through dist. */
#define _GNU_SOURCE
#include "prefer/train.h"
#include "prefer/ckpt.h"
#include "prefer/pvar.h"
#include "prefer/reflogp.h"
#include "prefer/runlog.h"
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/rng.h"
#include "prefer/runtime.h"
#include "prefer/util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef PREFER_COMMIT
#define PREFER_COMMIT "unknown"
#endif

/* SFT example e = response e: prompt tokens then response tokens. */
static int prompt_len(const PrefData *d, int64_t p) { return (int)(d->prompt_offsets[p + 1] - d->prompt_offsets[p]); }
static int resp_len(const PrefData *d, int64_t r) { return (int)(d->response_offsets[r + 1] - d->response_offsets[r]); }
static int64_t example_len(const PrefData *d, int64_t e) { return prompt_len(d, d->response_prompt[e]) + resp_len(d, e); }

static int is_pref(const PreferConfig *cfg) { return strcmp(cfg->train.objective, "sft") != 0; }

/* Tokens fed for a pair: the prompt and each branch without its last token (a branch's last
 * token is only predicted, never an input), packed (prompt | chosen | rejected) when shared,
 * else the longer of the two sequences. So a pair whose prompt + response is context + 1
 * tokens fits, as for SFT. */
static int branch_in(int len) { return len > 0 ? len - 1 : 0; }
static int pair_seq_len(int share, int lp, int lc, int lr)
{
    return share ? lp + branch_in(lc) + branch_in(lr) : lp + branch_in(lc > lr ? lc : lr);
}

void trainer_model_shape(const PreferConfig *cfg, const PrefData *d, int *max_batch, int *max_seq)
{
    int ctx = cfg->model.context, B = cfg->train.micro_batch;
    if (!is_pref(cfg)) {
        *max_batch = B;
        *max_seq = ctx;
        return;
    }
    if (d->n_pairs < 1)
        die_user("%s: no preference pairs for train.objective = \"%s\" (make pairs with prefer synth or prefer label)",
                 cfg->train.data, cfg->train.objective);
    int longest = 1;
    for (int64_t i = 0; i < d->n_pairs; i++) {
        int64_t c = d->pair_chosen[i], r = d->pair_rejected[i], p = d->response_prompt[c];
        int lp = prompt_len(d, p), lc = resp_len(d, c), lr = resp_len(d, r);
        if (lp < 1)
            die_user("%s: pair %lld has an empty prompt; a response's first token needs at least one prompt token "
                     "to be predicted from",
                     cfg->train.data, (long long)i);
        int need = lp + (lc > lr ? lc : lr) - 1;
        if (need > ctx)
            die_user("%s: pair %lld is %d tokens (prompt + longer response) with model.context = %d",
                     cfg->train.data, (long long)i, need + 1, ctx);
        int len = pair_seq_len(cfg->train.prefix_sharing, lp, lc, lr);
        longest = len > longest ? len : longest;
    }
    *max_batch = cfg->train.prefix_sharing ? B : 2 * B;
    *max_seq = longest;
}

/* Packs (a prompt with its responses) per forward of the PVar pass: about 2048 tokens, which
 * keeps a batch's activations (and the LM head's rows x vocabulary) in cache at small sizes
 * and bounded at GPT-2's */
static int curriculum_batch(const PrefData *d)
{
    int b = 2048 / reflogp_seq_len(d);
    return b < 1 ? 1 : b;
}

/* How often the curriculum reselects (t->cur_period epochs): curriculum.every, or, for a
 * model-based selection whose forward pass over every response would take more than
 * curriculum.max_share of the time it serves, the smallest longer period that keeps it
 * within. Costs are predicted from model FLOPs (gpt_flops_forward; training 3 x forward),
 * not timed, so the schedule is the same on any machine, after a resume and at any number
 * of ranks with the same global batch. */
static void curriculum_period(Trainer *t)
{
    const CurriculumConfig *cc = &t->cfg->curriculum;
    const PrefData *d = t->data;
    t->cur_period = cc->every;
    double in = 0, in_t = 0, scored = 0;
    for (int64_t i = 0; i < d->n_pairs; i++) {
        int64_t c = d->pair_chosen[i], r = d->pair_rejected[i];
        int lp = prompt_len(d, d->response_prompt[c]), lc = resp_len(d, c), lr = resp_len(d, r);
        int n = pair_seq_len(t->share, lp, lc, lr);
        in += t->share ? n : 2 * lp + branch_in(lc) + branch_in(lr);
        in_t += t->share ? (double)n * n : (double)(lp + branch_in(lc)) * (lp + branch_in(lc)) +
                                               (double)(lp + branch_in(lr)) * (lp + branch_in(lr));
        scored += lc + lr;
    }
    /* a step: a global batch of average pairs, forward + backward; an epoch: frac of the
     * pairs (on average), in whole steps */
    double per_pair = d->n_pairs > 0 ? 3 * gpt_flops_forward(t->model, in, in_t, scored) / (double)d->n_pairs : 0;
    double pairs = ceil(cc->frac * (double)d->n_pairs / (double)t->global_batch) * (double)t->global_batch;
    t->cur_step_flops = per_pair * (double)t->global_batch;
    t->cur_epoch_flops = per_pair * pairs;
    t->cur_sel_flops = strcmp(cc->source, "model") ? 0 : reflogp_pass_flops(d, curriculum_batch(d), t->model);
    if (cc->every < 1 || cc->max_share >= 1 || t->cur_sel_flops <= 0 || t->cur_epoch_flops <= 0)
        return;
    double need = t->cur_sel_flops * (1 - cc->max_share) / (cc->max_share * t->cur_epoch_flops);
    if (need > cc->every)
        t->cur_period = need < 1e6 ? (int)ceil(need) : 1000000;
}

void trainer_init(Trainer *t, const PreferConfig *cfg, const PrefData *data, Gpt *model, int rank, int world)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->data = data;
    t->model = model;
    t->rank = rank;
    t->world = world;
    char err[512];
    if (loss_spec_parse(&t->loss, cfg, err, sizeof err) != 0)
        die_user("%s", err);
    t->pref = is_pref(cfg);
    t->share = cfg->train.prefix_sharing;
    if (data->vocab_size > model->d.vocab_size)
        die_user("the dataset's vocab_size %lld exceeds model.vocab_size %d", (long long)data->vocab_size,
                 model->d.vocab_size);
    int need_b, need_t;
    trainer_model_shape(cfg, data, &need_b, &need_t);
    if (model->max_batch < need_b || model->max_seq < need_t)
        die("trainer_init: the model was sized for %d x %d, the data needs %d x %d", model->max_batch,
            model->max_seq, need_b, need_t);
    if (t->pref) {
        t->n_examples = data->n_pairs;
    } else {
        t->n_examples = data->n_responses;
        if (t->n_examples < 1)
            die_user("%s: the dataset has no responses to train on", cfg->train.data);
        for (int64_t e = 0; e < t->n_examples; e++) {
            int64_t n = example_len(data, e);
            if (n - 1 > model->d.context)
                die_user("%s: response %lld with its prompt is %lld tokens: more than model.context + 1 = %d "
                         "(raise model.context or shorten the data)",
                         cfg->train.data, (long long)e, (long long)n, model->d.context + 1);
        }
    }
    t->global_batch = (int64_t)world * cfg->train.micro_batch * cfg->train.grad_accum;
    if (t->global_batch > t->n_examples)
        die_user("global batch %lld (%d ranks x train.micro_batch %d x train.grad_accum %d) is larger than the %lld "
                 "%s of %s: lower train.micro_batch or train.grad_accum",
                 (long long)t->global_batch, world, cfg->train.micro_batch, cfg->train.grad_accum,
                 (long long)t->n_examples, t->pref ? "pairs" : "examples", cfg->train.data);
    t->sched = sched_parse(cfg->train.decay);
    uint8_t *mask = xcalloc(model->num_params, 1);
    for (int i = 0; i < model->n_tensors; i++) {
        const GptTensor *g = &model->tensors[i];
        int dec = g->decay || (g->is_embedding && cfg->train.decay_embeddings);
        if (dec)
            memset(mask + g->offset, 1, g->numel);
    }
    adamw_init(&t->opt, model->num_params, mask, cfg->train.beta1, cfg->train.beta2, cfg->train.adam_eps,
               cfg->train.weight_decay);
    free(mask);
    t->perm_epoch = -1;
    t->perm = xmalloc(sizeof(int64_t) * (size_t)t->n_examples);
    size_t N = (size_t)model->max_batch * model->max_seq, NR = N + (size_t)model->max_batch;
    int B = cfg->train.micro_batch;
    t->tok = xmalloc(sizeof(int32_t) * N);
    t->pos = xmalloc(sizeof(int32_t) * N);
    t->skip = xmalloc(sizeof(int32_t) * 2 * N);
    t->row = xmalloc(sizeof(int32_t) * NR);
    t->tgt = xmalloc(sizeof(int32_t) * NR);
    t->row_pair = xmalloc(sizeof(int32_t) * NR);
    t->drow = xmalloc(sizeof(float) * NR);
    t->row_logp = xmalloc(sizeof(double) * NR);
    t->pairs = xcalloc((size_t)B, sizeof(PairLogps));
    if (world > 1) {
        /* gradient buckets: one per layer (or piece of one), <= 16 MB, as backward finishes them */
        size_t bounds[4096];
        int nb = gpt_grad_buckets(model, DIST_MAX_CHUNK_BYTES, bounds, 4095);
        t->red = dist_reducer_new(model->grads, model->num_params, bounds, nb);
    }
    t->cur_on = t->pref && strcmp(cfg->curriculum.select, "none") != 0;
    t->cur_epoch = -1;
    if (t->cur_on) {
        if (!strcmp(cfg->curriculum.source, "scores") && !data->response_score)
            die_user("%s: curriculum.source = \"scores\" needs response scores, and the file has none",
                     cfg->train.data);
        t->sel = xmalloc(sizeof(int64_t) * (size_t)(data->n_prompts ? data->n_prompts : 1));
        t->cur_pairs = xmalloc(sizeof(int64_t) * (size_t)data->n_pairs);
        t->pvar = xmalloc(sizeof(double) * (size_t)(data->n_prompts ? data->n_prompts : 1));
        int64_t k = cfg->curriculum.grad_norm_sample > 0 ? cfg->curriculum.grad_norm_sample : 1;
        t->gn_prompt = xmalloc(sizeof(int64_t) * (size_t)k);
        t->gn = xmalloc(sizeof(double) * (size_t)k);
        curriculum_period(t);
    }
    t->ids = xmalloc(sizeof(int64_t) * 2 * (size_t)B);
    t->iota = xmalloc(sizeof(int64_t) * 2 * (size_t)B);
    for (int i = 0; i < 2 * B; i++)
        t->iota[i] = i;
    t->pl_loss = xmalloc(sizeof(double) * B);
    t->dlc = xmalloc(sizeof(double) * B);
    t->dlr = xmalloc(sizeof(double) * B);
}

void trainer_set_ref(Trainer *t, const double *ref_logp) { t->ref_logp = ref_logp; }
void trainer_set_shard(Trainer *t, PrefShard *s) { t->shard = s; }

void trainer_free(Trainer *t)
{
    if (!t)
        return;
    adamw_free(&t->opt);
    dist_reducer_free(t->red);
    if (t->infer) {
        gpt_free(t->infer);
        free(t->infer);
    }
    void *bufs[] = {t->perm, t->tok, t->pos, t->skip, t->row, t->tgt, t->row_pair, t->drow, t->row_logp,
                    t->pairs, t->pl_loss, t->dlc, t->dlr, t->ids, t->iota, t->sel, t->cur_pairs, t->pvar, t->gn_prompt, t->gn};
    prefdata_free(&t->local);
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        free(bufs[i]);
    memset(t, 0, sizeof *t);
}

int64_t trainer_example_at(Trainer *t, int64_t q)
{
    if (t->cur_on) {
        if (t->cur_epoch < 0 || t->n_cur < 1)
            die("trainer_example_at: no curriculum epoch (call trainer_curriculum before each step)");
        return t->cur_pairs[(q - t->cur_start * t->global_batch) % t->n_cur];
    }
    int64_t epoch = q / t->n_examples;
    if (epoch != t->perm_epoch) {
        Rng r;
        rng_init(&r, (uint64_t)t->cfg->train.seed, 0x5a3d1e00ULL + (uint64_t)epoch);
        for (int64_t i = 0; i < t->n_examples; i++)
            t->perm[i] = i;
        rng_shuffle_i64(&r, t->perm, t->n_examples);
        t->perm_epoch = epoch;
    }
    return t->perm[q % t->n_examples];
}

/* Append prompt p then response r as one sequence at tok/pos starting at offset `at`,
 * positions from pos0; returns the new offset. */
static int put_tokens(const int32_t *src, int n, int32_t *tok, int32_t *pos, int at, int pos0)
{
    for (int i = 0; i < n; i++) {
        tok[at + i] = src[i];
        pos[at + i] = pos0 + i;
    }
    return at + n;
}

/* Build a batch from the responses ids[] of d: sft, B examples ids[b]; pairs, B pairs
 * (ids[2b] chosen, ids[2b+1] rejected). d is the whole dataset, or the tokens this rank
 * gathered for the micro-step (sharded reading). Fills tok/pos/skip (sequences Bs x T) and
 * the scored rows; returns T. */
static int build_batch(Trainer *t, const PrefData *d, const int64_t *ids, int B, int *Bs, int *nrows)
{
    int T = 1, nr = 0;
    if (!t->pref) {
        for (int b = 0; b < B; b++) {
            int n = (int)example_len(d, ids[b]) - 1;
            T = n > T ? n : T;
        }
        size_t NT = (size_t)(unsigned)B * (unsigned)T;
        memset(t->tok, 0, sizeof(int32_t) * NT);
        for (size_t i = 0; i < NT; i++)
            t->pos[i] = (int32_t)(i % (size_t)T);
        for (int b = 0; b < B; b++) {
            int64_t e = ids[b], p = d->response_prompt[e];
            const int32_t *pt = d->prompt_tokens + d->prompt_offsets[p], *rt = d->response_tokens + d->response_offsets[e];
            int lp = prompt_len(d, p), lr = resp_len(d, e), n = lp + lr;
            int32_t *x = t->tok + (size_t)b * T;
            for (int i = 0; i + 1 < n; i++) {
                x[i] = i < lp ? pt[i] : rt[i - lp];
                if (i + 1 >= lp) {
                    t->row[nr] = b * T + i;
                    t->tgt[nr] = rt[i + 1 - lp];
                    t->row_pair[nr] = b;
                    nr++;
                }
            }
        }
        *Bs = B;
        *nrows = nr;
        return T;
    }
    /* pairs */
    for (int b = 0; b < B; b++) {
        int64_t c = ids[2 * b], r = ids[2 * b + 1], p = d->response_prompt[c];
        int lp = prompt_len(d, p), lc = resp_len(d, c), lr = resp_len(d, r);
        int n = pair_seq_len(t->share, lp, lc, lr);
        T = n > T ? n : T;
    }
    int S = t->share ? B : 2 * B;
    size_t NT = (size_t)(unsigned)S * (unsigned)T;
    memset(t->tok, 0, sizeof(int32_t) * NT);
    memset(t->pos, 0, sizeof(int32_t) * NT);
    for (int b = 0; b < B; b++) {
        int64_t c = ids[2 * b], r = ids[2 * b + 1], p = d->response_prompt[c];
        const int32_t *pt = d->prompt_tokens + d->prompt_offsets[p];
        const int32_t *ct = d->response_tokens + d->response_offsets[c], *rt = d->response_tokens + d->response_offsets[r];
        int lp = prompt_len(d, p), lc = resp_len(d, c), lr = resp_len(d, r);
        if (t->share) {
            int base = b * T;
            int at = put_tokens(pt, lp, t->tok, t->pos, base, 0);
            at = put_tokens(ct, branch_in(lc), t->tok, t->pos, at, lp);
            put_tokens(rt, branch_in(lr), t->tok, t->pos, at, lp);
            /* the rejected rows (and the padding after them) do not see the chosen branch */
            for (int i = 0; i < T; i++) {
                int hide = i >= lp + branch_in(lc);
                t->skip[2 * (base + i)] = hide ? lp : 0;
                t->skip[2 * (base + i) + 1] = hide ? lp + branch_in(lc) : 0;
            }
            for (int k = 0; k < lc; k++) {
                t->row[nr] = base + lp - 1 + k;
                t->tgt[nr] = ct[k];
                t->row_pair[nr++] = b;
            }
            for (int k = 0; k < lr; k++) {
                t->row[nr] = base + (k == 0 ? lp - 1 : lp + branch_in(lc) + k - 1);
                t->tgt[nr] = rt[k];
                t->row_pair[nr++] = -1 - b;
            }
        } else {
            int bc = (2 * b) * T, br = (2 * b + 1) * T;
            put_tokens(ct, branch_in(lc), t->tok, t->pos, put_tokens(pt, lp, t->tok, t->pos, bc, 0), lp);
            put_tokens(rt, branch_in(lr), t->tok, t->pos, put_tokens(pt, lp, t->tok, t->pos, br, 0), lp);
            for (int k = 0; k < lc; k++) {
                t->row[nr] = bc + lp - 1 + k;
                t->tgt[nr] = ct[k];
                t->row_pair[nr++] = b;
            }
            for (int k = 0; k < lr; k++) {
                t->row[nr] = br + lp - 1 + k;
                t->tgt[nr] = rt[k];
                t->row_pair[nr++] = -1 - b;
            }
        }
    }
    *Bs = S;
    *nrows = nr;
    return T;
}


/* The responses of B examples (pairs: chosen, rejected of each) as build_batch wants them:
 * from the whole dataset, or read from the file when sharded. */
static const PrefData *micro_source(Trainer *t, const int64_t *ex, int B, const int64_t **use)
{
    const PrefData *d = t->data;
    int nid = t->pref ? 2 * B : B;
    for (int b = 0; b < B; b++) {
        if (t->pref) {
            t->ids[2 * b] = d->pair_chosen[ex[b]];
            t->ids[2 * b + 1] = d->pair_rejected[ex[b]];
        } else {
            t->ids[b] = ex[b];
        }
    }
    *use = t->ids;
    if (!t->shard)
        return d;
    char err[1024];
    if (prefshard_gather_responses(t->shard, nid, t->ids, &t->local, err, sizeof err) != 0)
        die_user("%s", err);
    *use = t->iota;
    return &t->local;
}

/* After a forward of the pairs ex[0..B): their summed log-probs (with the reference's and
 * the lengths) in t->pairs, the loss and its derivatives, and d loss / d logp of every
 * scored row in t->drow, divided by norm. logit_sum (chosen, rejected mean-logit sums and
 * their row counts) and lm may be NULL. */
static void pair_loss_rows(Trainer *t, const int64_t *ex, int B, int nr, double norm, double *logit_sum,
                           LossMetrics *lm)
{
    const PrefData *d = t->data;
    const double *ml = gpt_row_logit_mean(t->model);
    for (int b = 0; b < B; b++) {
        int64_t c = d->pair_chosen[ex[b]], r = d->pair_rejected[ex[b]];
        PairLogps *pl = &t->pairs[b];
        memset(pl, 0, sizeof *pl);
        pl->len_c = resp_len(d, c);
        pl->len_r = resp_len(d, r);
        pl->ref_c = t->ref_logp ? t->ref_logp[c] : 0.0;
        pl->ref_r = t->ref_logp ? t->ref_logp[r] : 0.0;
    }
    for (int r = 0; r < nr; r++) {
        int pr = t->row_pair[r], ch = pr >= 0;
        if (ch)
            t->pairs[pr].logp_c += t->row_logp[r];
        else
            t->pairs[-1 - pr].logp_r += t->row_logp[r];
        if (logit_sum) {
            logit_sum[ch ? 0 : 1] += ml[r];
            logit_sum[ch ? 2 : 3] += 1;
        }
    }
    loss_batch(&t->loss, B, t->pairs, t->pl_loss, t->dlc, t->dlr, lm);
    for (int r = 0; r < nr; r++) {
        int pr = t->row_pair[r];
        t->drow[r] = (float)((pr >= 0 ? t->dlc[pr] : t->dlr[-1 - pr]) / norm);
    }
}

/* The norm of the gradient of the mean preference loss over the given pairs (this rank
 * alone; no allreduce, no update; leaves model->grads dirty: trainer_grad zeroes them). */
static double pairs_grad_norm(Trainer *t, const int64_t *pairs, int64_t n)
{
    Gpt *m = t->model;
    int B = t->cfg->train.micro_batch;
    gpt_zero_grad(m);
    for (int64_t i0 = 0; i0 < n; i0 += B) {
        int b = (int)(n - i0 < B ? n - i0 : B), Bs, nr;
        const int64_t *use;
        const PrefData *src = micro_source(t, pairs + i0, b, &use);
        int T = build_batch(t, src, use, b, &Bs, &nr);
        gpt_forward_rows(m, t->tok, t->pos, t->share ? t->skip : NULL, Bs, T, nr, t->row, t->tgt, t->row_logp);
        pair_loss_rows(t, pairs + i0, b, nr, (double)n, NULL, NULL);
        gpt_backward_rows(m, t->drow, NULL, NULL);
    }
    return grad_norm(m->grads, m->num_params);
}

/* The per-prompt gradient norm of a seeded sample of prompts (the PVar paper's theorem
 * bounds it by the prompt's PVar): the sample is split over the ranks, the norms summed. */
static void curriculum_grad_norms(Trainer *t)
{
    const PrefData *d = t->data;
    int64_t P = d->n_prompts, k = t->cfg->curriculum.grad_norm_sample;
    k = k < P ? k : P;
    t->n_gn = k;
    if (k < 1)
        return;
    /* sample: a seeded partial shuffle of the prompts that have pairs */
    int64_t *all = xmalloc(sizeof(int64_t) * (size_t)P), *first = xmalloc(sizeof(int64_t) * (size_t)P);
    for (int64_t p = 0; p < P; p++)
        first[p] = -1;
    for (int64_t i = d->n_pairs - 1; i >= 0; i--)
        first[d->response_prompt[d->pair_chosen[i]]] = i;
    int64_t nv = 0;
    for (int64_t p = 0; p < P; p++)
        if (first[p] >= 0)
            all[nv++] = p;
    Rng r;
    rng_init(&r, (uint64_t)t->cfg->curriculum.seed, 0x9a4d0000ULL + (uint64_t)t->cur_epoch);
    rng_shuffle_i64(&r, all, nv);
    k = k < nv ? k : nv;
    t->n_gn = k;
    int64_t *pairs = xmalloc(sizeof(int64_t) * (size_t)(d->n_pairs ? d->n_pairs : 1));
    for (int64_t j = 0; j < k; j++) {
        t->gn_prompt[j] = all[j];
        t->gn[j] = 0;
        if (j % t->world != t->rank)
            continue;
        int64_t n = 0;
        for (int64_t i = 0; i < d->n_pairs; i++)
            if (d->response_prompt[d->pair_chosen[i]] == all[j])
                pairs[n++] = i;
        t->gn[j] = pairs_grad_norm(t, pairs, n);
    }
    dist_allreduce_sum_f64(t->gn, (size_t)k);
    free(pairs);
    free(all);
    free(first);
}

/* The pairs of the selected prompts, shuffled with the epoch's own stream. */
static void curriculum_epoch_pairs(Trainer *t)
{
    const PrefData *d = t->data;
    uint8_t *on = xcalloc((size_t)(d->n_prompts ? d->n_prompts : 1), 1);
    for (int64_t i = 0; i < t->n_sel; i++)
        on[t->sel[i]] = 1;
    t->n_cur = 0;
    for (int64_t i = 0; i < d->n_pairs; i++)
        if (on[d->response_prompt[d->pair_chosen[i]]])
            t->cur_pairs[t->n_cur++] = i;
    free(on);
    if (t->n_cur < 1)
        die_user("curriculum epoch %lld: the selected prompts have no pairs (raise curriculum.frac)",
                 (long long)t->cur_epoch);
    Rng r;
    rng_init(&r, (uint64_t)t->cfg->train.seed, 0xc0ffee00ULL + (uint64_t)t->cur_epoch);
    rng_shuffle_i64(&r, t->cur_pairs, t->n_cur);
    t->cur_steps = (t->n_cur + t->global_batch - 1) / t->global_batch;
}

/* PVar of every prompt, then rank 0 selects and broadcasts (every rank holds the same PVar,
 * but one decision, sent to all, cannot diverge). */
static void curriculum_select(Trainer *t)
{
    const CurriculumConfig *cc = &t->cfg->curriculum;
    const PrefData *d = t->data;
    double t0 = now_s();
    int64_t R = d->n_responses;
    double *h = xmalloc(sizeof(double) * (size_t)(R ? R : 1)), beta;
    if (!strcmp(cc->source, "scores")) {
        for (int64_t i = 0; i < R; i++)
            h[i] = d->response_score[i];
        beta = cc->scale;
    } else if (t->step == 0 && t->cur_start_is_ref) {
        for (int64_t i = 0; i < R; i++) /* the policy is still its reference */
            h[i] = 0;
        beta = cc->beta > 0 ? cc->beta : t->loss.beta;
    } else {
        /* implicit rewards of the current policy: log pi(y) - log pi_ref(y), every response,
         * the work split over the ranks */
        /* forward only, in big batches: a model of its own (the policy's weights, shared;
         * activations for curriculum_batch packs), since training's is sized for its
         * micro-batch */
        if (!t->infer) {
            t->infer = xcalloc(1, sizeof(Gpt));
            gpt_init_infer(t->infer, &t->model->d, curriculum_batch(d), reflogp_seq_len(d));
            gpt_share_params(t->infer, t->model); /* the policy's weights, no copy */
        }
        if (t->shard)
            reflogp_compute_shard(t->infer, t->shard, t->rank, t->world, t->infer->max_batch, h);
        else
            reflogp_compute(t->infer, d, t->rank, t->world, t->infer->max_batch, h);
        for (int64_t i = 0; i < R; i++)
            h[i] -= t->ref_logp ? t->ref_logp[i] : 0.0;
        beta = cc->beta > 0 ? cc->beta : t->loss.beta;
    }
    pvar_all(d, h, beta, t->pvar);
    free(h);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < d->n_prompts; i++)
        nonzero += t->pvar[i] > 0;
    /* PVar 0 everywhere says nothing about the prompts: a uniformly random share then, not
     * the first prompts of the file (where top and bottom would break the ties) */
    const char *mode = nonzero == 0 ? "random" : cc->select;
    if (nonzero == 0 && t->rank == 0)
        warn("curriculum epoch %lld: PVar is 0 for every prompt (the policy still equals its reference), so this "
             "epoch trains on a random %g of the prompts (curriculum.seed); curriculum.source = \"scores\" selects "
             "offline from the responses' scores",
             (long long)t->cur_epoch, cc->frac);
    int64_t n = 0;
    if (t->rank == 0) {
        n = pvar_select(t->pvar, d->n_prompts, mode, cc->frac, cc->temperature, (uint64_t)cc->seed,
                        (uint64_t)t->cur_epoch, t->sel);
        if (n < 0)
            die("curriculum: pvar_select refused mode %s frac %g", cc->select, cc->frac);
    }
    dist_bcast(&n, sizeof n, 0);
    dist_bcast(t->sel, sizeof(int64_t) * (size_t)n, 0);
    t->n_sel = n;
    t->cur_mode = mode;
    if (n < 1)
        die_user("curriculum: no prompt has two or more responses to compute PVar from (%s)", t->cfg->train.data);
    curriculum_grad_norms(t);
    t->cur_new = 1;
    t->cur_seconds = now_s() - t0;
}

int trainer_curriculum_selects(const Trainer *t, int64_t epoch, int64_t start_step)
{
    int64_t n = t->cur_period;
    if (epoch == 0)
        return 1;
    /* model source from a policy that starts as its reference: epoch 0's PVar is 0 (a random
     * share), so the first selection by PVar is after one epoch of training, always made,
     * and the period counts from it */
    int64_t off = t->cur_start_is_ref && !strcmp(t->cfg->curriculum.source, "model") ? 1 : 0;
    if (off && epoch == 1)
        return 1;
    if (n < 1 || epoch < off || (epoch - off) % n != 0)
        return 0;
    /* under a budget, no selection for a tail of the run too short to pay for it */
    double left = (double)(t->cfg->train.steps - start_step) * t->cur_step_flops;
    if (t->cfg->curriculum.max_share < 1 && t->cur_sel_flops > 0 &&
        t->cur_sel_flops > t->cfg->curriculum.max_share * (t->cur_sel_flops + left))
        return 0;
    return 1;
}

void trainer_curriculum(Trainer *t)
{
    if (!t->cur_on)
        return;
    if (t->cur_epoch >= 0 && t->step < t->cur_start + t->cur_steps)
        return;
    int first = t->cur_epoch < 0;
    t->cur_epoch++;
    t->cur_start = t->step;
    if (first || trainer_curriculum_selects(t, t->cur_epoch, t->step))
        curriculum_select(t);
    curriculum_epoch_pairs(t);
}

static void reducer_ready(void *ctx, size_t off, size_t cnt) { dist_reducer_ready((DistReducer *)ctx, off, cnt); }

void trainer_grad(Trainer *t, StepStats *st)
{
    const TrainConfig *tc = &t->cfg->train;
    Gpt *m = t->model;
    const PrefData *d = t->data;
    int B = tc->micro_batch, A = tc->grad_accum;
    memset(st, 0, sizeof *st);
    int64_t base = t->step * t->global_batch;
    int64_t *ex = xmalloc(sizeof(int64_t) * (size_t)B * A);
    /* this rank's slice of the global batch: micro-step a takes B examples */
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++) {
            int64_t q = base + ((int64_t)a * t->world + t->rank) * B + b;
            ex[a * B + b] = trainer_example_at(t, q);
        }
    /* normaliser: scored tokens of the global batch (sft) or its number of pairs */
    double cnt[2] = {0, 0}; /* scored tokens, input tokens */
    for (int i = 0; i < A * B; i++) {
        if (!t->pref) {
            int64_t e = ex[i];
            int lp = prompt_len(d, d->response_prompt[e]), n = (int)example_len(d, e);
            cnt[0] += n - (lp > 1 ? lp : 1);
            cnt[1] += n - 1;
        } else {
            int64_t c = d->pair_chosen[ex[i]], r = d->pair_rejected[ex[i]];
            int lp = prompt_len(d, d->response_prompt[c]), lc = resp_len(d, c), lr = resp_len(d, r);
            cnt[0] += lc + lr;
            cnt[1] += t->share ? pair_seq_len(1, lp, lc, lr) : 2 * lp + branch_in(lc) + branch_in(lr);
        }
    }
    dist_allreduce_sum_f64(cnt, 2);
    double norm = t->pref ? (double)t->global_batch : (cnt[0] > 0 ? cnt[0] : 1);

    gpt_zero_grad(m);
    double loss_sum = 0, logit_sum[4] = {0, 0, 0, 0}; /* sums of mean logits, rows: chosen, rejected */
    LossMetrics lm, acc;
    memset(&acc, 0, sizeof acc);
    for (int a = 0; a < A; a++) {
        int Bs, nr;
        double c0 = now_s();
        const int64_t *use;
        const PrefData *src = micro_source(t, ex + a * B, B, &use);
        int T = build_batch(t, src, use, B, &Bs, &nr);
        double c1 = now_s();
        st->t_data += c1 - c0;
        gpt_forward_rows(m, t->tok, t->pos, t->pref && t->share ? t->skip : NULL, Bs, T, nr, t->row, t->tgt,
                         t->row_logp);
        st->t_forward += now_s() - c1;
        if (!t->pref) {
            for (int r = 0; r < nr; r++) {
                loss_sum -= t->row_logp[r];
                t->drow[r] = (float)(-1.0 / norm);
            }
        } else {
            pair_loss_rows(t, ex + a * B, B, nr, norm, logit_sum, &lm);
            loss_metrics_add(&acc, &lm);
        }
        double c2 = now_s();
        /* on the last micro-step, each layer's gradient bucket starts its allreduce as soon
         * as backward has finished it, overlapping communication with the layers below */
        int last = a == A - 1 && t->red;
        gpt_backward_rows(m, t->drow, last ? reducer_ready : NULL, t->red);
        st->t_backward += now_s() - c2;
    }
    free(ex);
    if (t->red) {
        st->t_allreduce = dist_reducer_finish(t->red); /* time blocked: the part not hidden */
    } else {
        double c3 = now_s();
        dist_allreduce_sum_f32(m->grads, m->num_params);
        st->t_allreduce += now_s() - c3;
    }
    if (!t->pref) {
        dist_allreduce_sum_f64(&loss_sum, 1);
        st->loss = loss_sum / norm;
    } else {
        dist_allreduce_sum_f64((double *)&acc, LOSS_METRICS_NDOUBLE);
        dist_allreduce_sum_f64(logit_sum, 4);
        double n = acc.n > 0 ? acc.n : 1;
        st->loss = acc.loss / n;
        st->rewards_chosen = acc.rewards_chosen / n;
        st->rewards_rejected = acc.rewards_rejected / n;
        st->rewards_margins = acc.rewards_margins / n;
        st->rewards_accuracies = acc.rewards_accuracies / n;
        st->logps_chosen = acc.logps_chosen / n;
        st->logps_rejected = acc.logps_rejected / n;
        /* TRL: mean logit over the vocabulary and the response tokens of each branch */
        st->logits_chosen = logit_sum[0] / (logit_sum[2] > 0 ? logit_sum[2] : 1);
        st->logits_rejected = logit_sum[1] / (logit_sum[3] > 0 ? logit_sum[3] : 1);
    }
    st->tokens = cnt[1];
    st->targets = cnt[0];
    st->examples = (double)t->global_batch;
}

void trainer_step(Trainer *t, StepStats *st)
{
    const TrainConfig *tc = &t->cfg->train;
    Gpt *m = t->model;
    double t0 = now_s();
    trainer_curriculum(t);
    trainer_grad(t, st);
    if (t->pref)
        loss_bco_update(&t->loss, (st->rewards_chosen + st->rewards_rejected) / 2);
    st->grad_norm = grad_clip(m->grads, m->num_params, tc->grad_clip);
    if (!isfinite(st->loss) || !isfinite(st->grad_norm))
        die("step %lld: loss %g, gradient norm %g: not finite; stopping without a checkpoint "
            "(try a lower train.lr or train.grad_clip)",
            (long long)t->step + 1, st->loss, st->grad_norm);
    st->lr = sched_lr(t->sched, tc->lr, tc->min_lr_frac, tc->warmup_steps, tc->steps, (int)t->step);
    adamw_step(&t->opt, m->params, m->grads, st->lr);
    t->step++;
    st->seconds = now_s() - t0;
}

void trainer_save(const Trainer *t, const char *path)
{
    char *text = config_to_text(t->cfg);
    CkptState s = {.step = t->step, .rng_key = 0, .rng_counter = 0, .bco_delta = t->loss.bco_delta,
                   .bco_count = t->loss.bco_count, .cur_epoch = t->cur_on ? t->cur_epoch : -1,
                   .cur_start = t->cur_start, .n_sel = t->cur_on && t->cur_epoch >= 0 ? t->n_sel : 0,
                   .sel = t->sel};
    ckpt_save(path, t->model, &t->opt, &s, text);
    free(text);
}

void trainer_load(Trainer *t, const char *path)
{
    CkptState s;
    ckpt_load(path, t->model, &t->opt, &s);
    t->step = s.step;
    t->loss.bco_delta = s.bco_delta;
    t->loss.bco_count = s.bco_count;
    if (t->cur_on && s.cur_epoch >= 0) {
        /* the epoch in progress, with the prompts it selected: continue it exactly */
        if (s.n_sel < 1 || s.n_sel > t->data->n_prompts)
            die_user("%s: curriculum state of %lld prompts does not fit the dataset's %lld", path, (long long)s.n_sel,
                     (long long)t->data->n_prompts);
        for (int64_t i = 0; i < s.n_sel; i++)
            if (s.sel[i] < 0 || s.sel[i] >= t->data->n_prompts)
                die_user("%s: curriculum prompt %lld is not in the dataset", path, (long long)s.sel[i]);
        memcpy(t->sel, s.sel, sizeof(int64_t) * (size_t)s.n_sel);
        t->n_sel = s.n_sel;
        t->cur_epoch = s.cur_epoch;
        t->cur_start = s.cur_start;
        curriculum_epoch_pairs(t);
    }
    free(s.sel);
}

/* ---------------- prefer train ---------------- */

static void fmt_eta(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    long v = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", v / 3600, (v / 60) % 60, v % 60);
}

static void train_usage(void)
{
    printf("usage: prefer train CONFIG [--set section.key=value ...]\n\n"
           "Trains model.* on train.data with train.objective (sft: mean NLL of the response\n"
           "tokens). Global batch = ranks x train.micro_batch x train.grad_accum examples.\n"
           "Prints a progress line every train.log_every steps (rank 0) and writes checkpoints to\n"
           "train.out_dir/ckpt_<step>.h5 every train.ckpt_every steps and at the end\n"
           "(train.out_dir/latest.h5 links the newest).\n"
           "Starts from model.init_from (weights only) or train.resume (weights, optimizer, step).\n"
           "Keys: `prefer config --reference`. Run with mpirun -np P, srun, or alone.\n");
}

/* Checkpoint files of dir with their steps, newest first. Returns the count; *names owned
 * by the caller (free each and the array). */
static int list_ckpts(const char *dir, char ***names, int64_t **steps)
{
    DIR *d = opendir(dir);
    int n = 0, cap = 0;
    *names = NULL;
    *steps = NULL;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long st;
        char tail[8];
        if (sscanf(e->d_name, "ckpt_%lld.h%7s", &st, tail) != 2 || strcmp(tail, "5") != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            *names = xrealloc(*names, sizeof(char *) * (size_t)cap);
            *steps = xrealloc(*steps, sizeof(int64_t) * (size_t)cap);
        }
        (*names)[n] = xasprintf("%s/%s", dir, e->d_name);
        (*steps)[n] = st;
        n++;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort, newest first */
        for (int j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
            char *tn = (*names)[j];
            int64_t ts = (*steps)[j];
            (*names)[j] = (*names)[j - 1];
            (*steps)[j] = (*steps)[j - 1];
            (*names)[j - 1] = tn;
            (*steps)[j - 1] = ts;
        }
    return n;
}

static void save_ckpt(const Trainer *t, const char *dir)
{
    if (t->rank != 0)
        return;
    double t0 = now_s();
    char *path = xasprintf("%s/ckpt_%08lld.h5", dir, (long long)t->step);
    trainer_save(t, path);
    /* latest.h5 -> newest, replaced atomically */
    char *link = xasprintf("%s/latest.h5", dir), *tmp = xasprintf("%s/.latest.h5.tmp", dir);
    const char *base = strrchr(path, '/') + 1;
    unlink(tmp);
    if (symlink(base, tmp) != 0 || rename(tmp, link) != 0)
        warn("could not update %s: %s", link, strerror(errno));
    /* keep the newest train.keep_ckpts */
    int keep = t->cfg->train.keep_ckpts;
    char **names;
    int64_t *steps;
    int n = list_ckpts(dir, &names, &steps);
    for (int i = 0; i < n; i++) {
        if (keep > 0 && i >= keep && steps[i] != t->step && unlink(names[i]) != 0)
            warn("could not remove old checkpoint %s: %s", names[i], strerror(errno));
        free(names[i]);
    }
    free(names);
    free(steps);
    say("checkpoint: %s (%.2f s)\n", path, now_s() - t0);
    free(path);
    free(link);
    free(tmp);
}

/* train.resume = "auto": the newest checkpoint of out_dir that loads cleanly (rank 0 checks
 * them, newest first, warning about damaged ones); NULL when there is none. Every rank gets
 * the same answer. */
static char *find_resume(const PreferConfig *cfg, Gpt *m, int rank)
{
    char buf[4096] = "";
    if (rank == 0) {
        char **names;
        int64_t *steps;
        int n = list_ckpts(cfg->train.out_dir, &names, &steps);
        AdamW probe;
        adamw_init(&probe, m->num_params, NULL, 0.9, 0.95, 1e-8, 0);
        float *keep = xmalloc(sizeof(float) * m->num_params);
        memcpy(keep, m->params, sizeof(float) * m->num_params);
        for (int i = 0; i < n; i++) {
            char err[1024];
            if (!*buf) {
                if (ckpt_load_checked(names[i], m, &probe, NULL, err, sizeof err) == 0)
                    snprintf(buf, sizeof buf, "%s", names[i]);
                else
                    warn("resume: skipping a damaged checkpoint: %s", err);
            }
            free(names[i]);
        }
        memcpy(m->params, keep, sizeof(float) * m->num_params);
        free(keep);
        adamw_free(&probe);
        free(names);
        free(steps);
    }
    dist_bcast(buf, sizeof buf, 0);
    return *buf ? xstrdup(buf) : NULL;
}

/* Preemption: SIGTERM / SIGUSR1 (Slurm's --signal) / SIGINT set a flag; every rank checks it
 * (an allreduce) after each step, rank 0 checkpoints, and all exit with PREFER_EXIT_PREEMPTED. */
static volatile sig_atomic_t g_stop_signal = 0;
static void on_stop_signal(int sig) { g_stop_signal = sig; }

int train_stop_signal(void) { return (int)g_stop_signal; }

void train_install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* Every rank must hold the same parameters: compare a hash of them across ranks. */
static void check_replicas(const Gpt *m, int64_t step)
{
    uint64_t h = util_hash(UTIL_HASH_INIT, m->params, sizeof(float) * m->num_params);
    int64_t v[2] = {(int64_t)h, (int64_t)~h};
    dist_allreduce_min_i64(v, 2);
    if (v[0] != (int64_t)h || v[1] != (int64_t)~h)
        die("step %lld: this rank's parameters differ from another rank's (hash %016llx); the replicas "
            "diverged: a non-deterministic reduction or a hardware fault",
            (long long)step, (unsigned long long)h);
}

/* Reference log-probs of every response: from the dataset file's cache when it holds an
 * entry for this reference, else computed by all ranks and (rank 0) added to the cache. */
static double *ref_logps(const PreferConfig *cfg, const char *ref, const PrefData *data, PrefShard *shard, int rank,
                         int world)
{
    double t0 = now_s();
    GptDims d;
    char err[1024];
    if (ckpt_read_dims(ref, &d, err, sizeof err) != 0)
        die_user("reference: %s", err);
    int longest = 1;
    for (int64_t r = 0; r < data->n_responses; r++) {
        int n = prompt_len(data, data->response_prompt[r]) + resp_len(data, r) - 1;
        longest = n > longest ? n : longest;
    }
    if (longest > d.context)
        die_user("reference %s: context %d is shorter than the longest prompt + response (%d)", ref, d.context,
                 longest + 1);
    /* the cache key needs only the weights: activations for the forward passes are
     * allocated on a cache miss only (at GPT-2 124M they are ~4 GiB) */
    Gpt m;
    int batch = cfg->train.micro_batch * 2;
    gpt_init_seq(&m, &d, 1, 1);
    ckpt_load(ref, &m, NULL, NULL);
    char hash[17];
    reflogp_model_hash(&m, hash);
    double *v = xmalloc(sizeof(double) * (size_t)data->n_responses);
    int found = 0;
    /* the cache is keyed by the dataset's contents: rank 0 reads the tokens once for that */
    PrefData full;
    memset(&full, 0, sizeof full);
    if (rank == 0 && strcmp(cfg->train.ref_cache, "off") != 0)
        prefdata_read(cfg->train.data, 0, &full);
    if (strcmp(cfg->train.ref_cache, "off") != 0) {
        /* rank 0 reads, everyone gets the verdict and the values */
        int64_t st = 0;
        if (rank == 0) {
            st = reflogp_cache_read(cfg->train.data, hash, &full, v, err, sizeof err);
            if (st < 0)
                die_user("%s", err);
            if (st == 0 && !strcmp(cfg->train.ref_cache, "require"))
                die_user("%s (train.ref_cache = \"require\")", err);
        }
        dist_bcast(&st, sizeof st, 0);
        if (st == 1) {
            dist_bcast(v, sizeof(double) * (size_t)data->n_responses, 0);
            found = 1;
        }
    }
    if (found) {
        say("reference: %s (hash %s): log-probs of %lld responses from the cache in %s\n", ref, hash,
            (long long)data->n_responses, cfg->train.data);
    } else {
        gpt_free(&m);
        gpt_init_infer(&m, &d, batch, reflogp_seq_len(data));
        ckpt_load(ref, &m, NULL, NULL);
        if (shard)
            reflogp_compute_shard(&m, shard, rank, world, batch, v);
        else
            reflogp_compute(&m, data, rank, world, batch, v);
        say("reference: %s (hash %s): computed log-probs of %lld responses in %.1f s\n", ref, hash,
            (long long)data->n_responses, now_s() - t0);
        if (rank == 0 && strcmp(cfg->train.ref_cache, "off") != 0) {
            reflogp_cache_write(cfg->train.data, hash, &full, v, ref);
            say("reference: cached as /ref_logp/%s in %s\n", hash, cfg->train.data);
        }
        dist_barrier();
    }
    prefdata_free(&full);
    gpt_free(&m);
    return v;
}

/* The reference log-probs of the preference losses: train.ref's, or with train.ref_mix the
 * geometric mixture ref_alpha * log pi_mix + (1 - ref_alpha) * log pi_ref of two models.
 * The mixture's normaliser log Z(x) is left out: it is the same for both responses of a
 * pair, so DPO's and IPO's losses (functions of the pair's log-ratio difference) are exact. */
static double *prepare_ref(const PreferConfig *cfg, const PrefData *data, PrefShard *shard, int rank, int world)
{
    const char *ref = cfg->train.ref && *cfg->train.ref ? cfg->train.ref : cfg->model.init_from;
    if (!ref || !*ref)
        die_user("train.objective = \"%s\" needs a reference model: set train.ref (or model.init_from) to a "
                 "checkpoint, e.g. the SFT model",
                 cfg->train.objective);
    int mix = cfg->train.ref_mix && *cfg->train.ref_mix && cfg->train.ref_alpha > 0;
    if (mix && cfg->train.ref_alpha == 1.0) {
        say("reference: geometric mixture with weight 1: log pi(%s) alone\n", cfg->train.ref_mix);
        return ref_logps(cfg, cfg->train.ref_mix, data, shard, rank, world);
    }
    double *v = ref_logps(cfg, ref, data, shard, rank, world);
    if (mix) {
        double *w = ref_logps(cfg, cfg->train.ref_mix, data, shard, rank, world), a = cfg->train.ref_alpha;
        for (int64_t r = 0; r < data->n_responses; r++)
            v[r] = a * w[r] + (1.0 - a) * v[r];
        free(w);
        say("reference: geometric mixture %.4g * log pi(%s) + %.4g * log pi(%s)\n", a, cfg->train.ref_mix, 1.0 - a, ref);
    }
    return v;
}

int cmd_train(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    if (a.help) {
        train_usage();
        return 0;
    }
    cli_check_flags(&a, "train", NULL);
    PreferConfig cfg;
    cli_load_config(&a, &cfg);
    cli_print_config(&cfg);
    runtime_setup(&cfg.runtime, 1);
    int rank = dist_rank(), world = dist_size();

    /* sharded: rank 0 validates the file, every rank keeps the small index arrays and reads
     * the tokens of its own examples, step by step */
    PrefShard shard;
    char err[1024];
    if (prefshard_open(cfg.train.data, cfg.model.vocab_size, &shard, err, sizeof err) != 0)
        die_user("%s", err);
    const PrefData *dp = &shard.meta;
    GptDims d = {cfg.model.vocab_size, cfg.model.context, cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd};
    int max_batch, max_seq;
    trainer_model_shape(&cfg, dp, &max_batch, &max_seq);
    /* the reference log-probs first: the reference model and its activations are freed
     * before the policy, its gradients and activations exist (GPT-2 124M DPO: 9.2 -> 5.x GiB) */
    LossSpec ls;
    if (loss_spec_parse(&ls, &cfg, err, sizeof err) != 0)
        die_user("%s", err);
    double *ref = NULL;
    if (is_pref(&cfg) && loss_needs_ref(&ls))
        ref = prepare_ref(&cfg, dp, &shard, rank, world);
    Gpt m;
    gpt_init_seq(&m, &d, max_batch, max_seq);
    gpt_init_weights(&m, (uint64_t)cfg.train.seed, cfg.model.init_std);
    if (cfg.model.init_from && *cfg.model.init_from)
        ckpt_load(cfg.model.init_from, &m, NULL, NULL);
    Trainer t;
    trainer_init(&t, &cfg, dp, &m, rank, world);
    trainer_set_shard(&t, &shard);
    if (ref)
        trainer_set_ref(&t, ref);
    /* a policy that starts as its own reference has h = 0 and PVar 0 for every prompt at step
     * 0: the curriculum then skips that forward pass */
    const char *ref_path = cfg.train.ref && *cfg.train.ref ? cfg.train.ref : cfg.model.init_from;
    t.cur_start_is_ref = ref && !(cfg.train.ref_mix && *cfg.train.ref_mix && cfg.train.ref_alpha > 0) &&
                         cfg.model.init_from && *cfg.model.init_from && !strcmp(ref_path, cfg.model.init_from);
    int resumed = 0;
    if (cfg.train.resume && *cfg.train.resume) {
        char *path = !strcmp(cfg.train.resume, "auto") ? find_resume(&cfg, &m, rank) : xstrdup(cfg.train.resume);
        if (path) {
            trainer_load(&t, path);
            say("train: resumed from %s at step %lld\n", path, (long long)t.step);
            resumed = 1;
            free(path);
        } else {
            say("train: train.resume = \"auto\" found no checkpoint in %s: starting fresh\n", cfg.train.out_dir);
        }
    }
    train_install_stop_handlers();
    if (resumed && t.step >= cfg.train.steps) {
        say("train: the run was already complete (step %lld of %d): nothing to do\n", (long long)t.step,
            cfg.train.steps);
        free(ref);
        trainer_free(&t);
        gpt_free(&m);
        prefshard_close(&shard);
        config_free(&cfg);
        return 0;
    }
    dist_bcast(m.params, sizeof(float) * m.num_params, 0);
    if (rank == 0)
        util_mkdir_p(cfg.train.out_dir);
    char desc[256] = "sft";
    if (t.pref)
        loss_spec_describe(&t.loss, desc, sizeof desc);
    say("train: %s on %s: %lld %s, %zu parameters, global batch %lld (%d ranks x %d x %d), %d steps%s\n", desc,
        cfg.train.data, (long long)t.n_examples, t.pref ? "pairs" : "examples", m.num_params,
        (long long)t.global_batch, world, cfg.train.micro_batch, cfg.train.grad_accum, cfg.train.steps,
        t.pref ? (t.share ? ", prefix sharing" : ", no prefix sharing") : "");

    /* run log (rank 0): one row per step under /steps, TRL's metric names */
    /* host names of every rank, for the run log: one small broadcast per rank, at start */
    char *hosts = xcalloc((size_t)world, 64);
    for (int r = 0; r < world; r++) {
        char *h = hosts + (size_t)r * 64;
        if (r == rank)
            snprintf(h, 64, "%s", dist_hostname());
        dist_bcast(h, 64, r);
    }
    RunLog *rl = NULL;
    if (rank == 0) {
        char *text = config_to_text(&cfg), *path = xasprintf("%s/run.h5", cfg.train.out_dir);
        /* a resumed run appends to its log; "auto" with nothing to resume may still find an
         * old log of a run that never checkpointed: append to it too rather than refuse */
        int resume = resumed || (cfg.train.resume && !strcmp(cfg.train.resume, "auto"));
        rl = runlog_open(path, text, resume, cfg.train.log_flush_every);
        runlog_attr_i64(rl, "world_size", world);
        size_t hl = 1;
        for (int r = 0; r < world; r++)
            hl += strlen(hosts + (size_t)r * 64) + 1;
        char *all = xcalloc(hl, 1);
        for (int r = 0; r < world; r++) {
            strcat(all, hosts + (size_t)r * 64);
            if (r + 1 < world)
                strcat(all, ",");
        }
        runlog_attr_str(rl, "host", dist_hostname());
        runlog_attr_str(rl, "hosts", all); /* rank r's host is the r-th name */
        free(all);
        runlog_attr_str(rl, "commit", PREFER_COMMIT);
        runlog_attr_str(rl, "objective", desc);
        runlog_attr_str(rl, "openblas_core", runtime_blas_core());
        runlog_attr_i64(rl, "threads_per_rank", runtime_threads());
        runlog_attr_f64(rl, resume ? "resumed_at" : "start_time", (double)time(NULL));
        say("train: run log %s\n", path);
        free(text);
        free(path);
    }
    free(hosts);
    if (t.cur_on && t.cur_period != cfg.curriculum.every) {
        say("curriculum: reselecting every %d epochs, not every %d: a selection is a forward pass over every response "
            "of every prompt (%.3g GFLOP), an epoch trains on %.0f%% of the pairs (%.3g GFLOP), so more frequent "
            "selections would take more than curriculum.max_share = %g of the time (1 = keep curriculum.every)\n",
            t.cur_period, cfg.curriculum.every, t.cur_sel_flops / 1e9, 100 * cfg.curriculum.frac,
            t.cur_epoch_flops / 1e9, cfg.curriculum.max_share);
        if (rl)
            runlog_attr_i64(rl, "curriculum_period", t.cur_period);
    }
    double t_start = now_s(), tok_window = 0, time_window = 0, first_loss = NAN, loss = NAN;
    double cur_total = 0; /* seconds spent in curriculum selections since t_start */
    const int64_t step0 = t.step; /* steps done before this process (a resume) */
    StepStats first = {0}, st = {0};
    while (t.step < cfg.train.steps) {
        trainer_step(&t, &st);
        if (t.cur_new) {
            t.cur_new = 0;
            int64_t P = dp->n_prompts;
            double ms = 0, mu = 0, ns = 0, nu = 0;
            uint8_t *flag = xcalloc((size_t)(P ? P : 1), 1);
            for (int64_t i = 0; i < t.n_sel; i++)
                flag[t.sel[i]] = 1;
            for (int64_t i = 0; i < P; i++)
                if (!isnan(t.pvar[i])) {
                    if (flag[i]) {
                        ms += t.pvar[i];
                        ns++;
                    } else {
                        mu += t.pvar[i];
                        nu++;
                    }
                }
            ms = ns > 0 ? ms / ns : NAN;
            mu = nu > 0 ? mu / nu : NAN;
            /* share of the time the selection serves: the selection over it plus the steps it
             * serves at the mean training step time of this process so far, selections
             * excluded (an estimate made when the epoch starts; the first has no steps to
             * time yet) */
            cur_total += t.cur_seconds;
            double per_step = (now_s() - t_start - cur_total) / (double)(t.step > step0 ? t.step - step0 : 1);
            /* the selection serves the epochs until the next one, or the rest of the run */
            int64_t next = t.cur_epoch + 1;
            while (t.cur_start + (next - t.cur_epoch) * t.cur_steps < cfg.train.steps &&
                   !trainer_curriculum_selects(&t, next, t.cur_start + (next - t.cur_epoch) * t.cur_steps))
                next++;
            double served = (double)(next - t.cur_epoch) * (double)t.cur_steps;
            if (served > (double)(cfg.train.steps - t.cur_start))
                served = (double)(cfg.train.steps - t.cur_start);
            double share = t.cur_seconds / (t.cur_seconds + per_step * served);
            say("curriculum: epoch %lld from step %lld: %s %.0f%% by PVar (%s%s): %lld of %lld prompts, %lld pairs, "
                "%lld steps; mean PVar selected %.4f, others %.4f; %.2f s (%.1f%% of the time until the next selection)\n",
                (long long)t.cur_epoch, (long long)t.cur_start, t.cur_mode, 100 * cfg.curriculum.frac,
                cfg.curriculum.source, strcmp(t.cur_mode, cfg.curriculum.select) ? "; every PVar 0" : "",
                (long long)t.n_sel, (long long)P, (long long)t.n_cur, (long long)t.cur_steps, ms,
                mu, t.cur_seconds, 100 * share);
            if (rl) {
                static const char *const en[] = {"epoch", "step", "n_selected", "n_pairs", "steps",
                                                 "pvar_selected_mean", "pvar_unselected_mean", "seconds", "share"};
                double ev[] = {(double)t.cur_epoch, (double)t.cur_start, (double)t.n_sel, (double)t.n_cur,
                               (double)t.cur_steps, ms, mu, t.cur_seconds, share};
                runlog_row(rl, "epochs", 9, en, ev);
                char path[96];
                hsize_t dims[1] = {(hsize_t)P};
                if (!strcmp(cfg.curriculum.log_pvar, "histogram")) {
                    enum { NB = 50 };
                    double hall[NB] = {0}, hsel[NB] = {0}, edges[NB + 1];
                    for (int k = 0; k <= NB; k++)
                        edges[k] = 0.25 * k / NB;
                    for (int64_t i = 0; i < P; i++) {
                        if (isnan(t.pvar[i]))
                            continue;
                        int k = (int)(t.pvar[i] / 0.25 * NB);
                        k = k < 0 ? 0 : k >= NB ? NB - 1 : k;
                        hall[k]++;
                        if (flag[i])
                            hsel[k]++;
                    }
                    hsize_t hd[1] = {NB}, ed[1] = {NB + 1}, sd[1] = {(hsize_t)t.n_sel};
                    snprintf(path, sizeof path, "/curriculum/epoch_%lld/pvar_hist", (long long)t.cur_epoch);
                    runlog_array(rl, path, H5T_NATIVE_DOUBLE, 1, hd, hall);
                    snprintf(path, sizeof path, "/curriculum/epoch_%lld/pvar_hist_selected", (long long)t.cur_epoch);
                    runlog_array(rl, path, H5T_NATIVE_DOUBLE, 1, hd, hsel);
                    snprintf(path, sizeof path, "/curriculum/epoch_%lld/pvar_hist_edges", (long long)t.cur_epoch);
                    runlog_array(rl, path, H5T_NATIVE_DOUBLE, 1, ed, edges);
                    snprintf(path, sizeof path, "/curriculum/epoch_%lld/selected_prompts", (long long)t.cur_epoch);
                    runlog_array(rl, path, H5T_NATIVE_INT64, 1, sd, t.sel);
                } else {
                    snprintf(path, sizeof path, "/curriculum/epoch_%lld/pvar", (long long)t.cur_epoch);
                    runlog_array(rl, path, H5T_NATIVE_DOUBLE, 1, dims, t.pvar);
                    snprintf(path, sizeof path, "/curriculum/epoch_%lld/selected", (long long)t.cur_epoch);
                    runlog_array(rl, path, H5T_NATIVE_UINT8, 1, dims, flag);
                }
                if (t.n_gn > 0) {
                    hsize_t gd[1] = {(hsize_t)t.n_gn};
                    snprintf(path, sizeof path, "/curriculum/epoch_%lld/grad_norm_prompt", (long long)t.cur_epoch);
                    runlog_array(rl, path, H5T_NATIVE_INT64, 1, gd, t.gn_prompt);
                    snprintf(path, sizeof path, "/curriculum/epoch_%lld/grad_norm", (long long)t.cur_epoch);
                    runlog_array(rl, path, H5T_NATIVE_DOUBLE, 1, gd, t.gn);
                }
                runlog_flush(rl);
            }
            free(flag);
        }
        tok_window += st.tokens;
        time_window += st.seconds;
        loss = st.loss;
        if (isnan(first_loss)) {
            first_loss = st.loss;
            first = st;
        }
        if (rl) {
            static const char *const names[] = {"step", "loss", "grad_norm", "learning_rate", "num_tokens",
                                                "tokens_per_s", "time/step", "rewards/chosen", "rewards/rejected",
                                                "rewards/margins", "rewards/accuracies", "logps/chosen",
                                                "logps/rejected", "logits/chosen", "logits/rejected",
                                                "time/data", "time/forward", "time/backward", "time/allreduce"};
            double v[] = {(double)t.step, st.loss, st.grad_norm, st.lr, st.tokens, st.tokens / st.seconds,
                          st.seconds, st.rewards_chosen, st.rewards_rejected, st.rewards_margins,
                          st.rewards_accuracies, st.logps_chosen, st.logps_rejected, st.logits_chosen,
                          st.logits_rejected, st.t_data, st.t_forward, st.t_backward, st.t_allreduce};
            /* sft has no preference metrics: skip those 8 columns */
            static const char *const sft_names[] = {"step", "loss", "grad_norm", "learning_rate", "num_tokens",
                                                    "tokens_per_s", "time/step", "time/data", "time/forward",
                                                    "time/backward", "time/allreduce"};
            double sv[] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[15], v[16], v[17], v[18]};
            if (t.pref)
                runlog_row(rl, "steps", 19, names, v);
            else
                runlog_row(rl, "steps", 11, sft_names, sv);
        }
        if (t.step % cfg.train.log_every == 0 || t.step == cfg.train.steps || t.step == 1) {
            double rate = tok_window / (time_window > 0 ? time_window : 1);
            double per_step = (now_s() - t_start) / (double)t.step;
            char eta[32];
            fmt_eta(eta, sizeof eta, per_step * (double)(cfg.train.steps - t.step));
            if (t.pref)
                say("step %6lld/%d | loss %.4f | acc %.3f | margin %+.4f | logps c %.2f r %.2f | lr %.2e | "
                    "grad_norm %.3f | %.0f tok/s | ETA %s\n",
                    (long long)t.step, cfg.train.steps, st.loss, st.rewards_accuracies, st.rewards_margins,
                    st.logps_chosen, st.logps_rejected, st.lr, st.grad_norm, rate, eta);
            else
                say("step %6lld/%d | loss %.4f | lr %.2e | grad_norm %.3f | %.0f tok/s | ETA %s\n", (long long)t.step,
                    cfg.train.steps, st.loss, st.lr, st.grad_norm, rate, eta);
            tok_window = time_window = 0;
        }
        if (cfg.train.check_every > 0 && t.step % cfg.train.check_every == 0)
            check_replicas(&m, t.step);
        if (cfg.train.ckpt_every > 0 && t.step % cfg.train.ckpt_every == 0 && t.step < cfg.train.steps)
            save_ckpt(&t, cfg.train.out_dir);
        int64_t any = -(int64_t)g_stop_signal;
        dist_allreduce_min_i64(&any, 1);
        if (any != 0 && t.step < cfg.train.steps) {
            say("train: stopped by signal %d at step %lld: checkpointing, then exit code %d (resubmit with "
                "train.resume = \"auto\")\n",
                (int)-any, (long long)t.step, PREFER_EXIT_PREEMPTED);
            save_ckpt(&t, cfg.train.out_dir);
            if (rl) {
                runlog_attr_f64(rl, "preempted_at", (double)time(NULL));
                runlog_close(rl);
            }
            free(ref);
            trainer_free(&t);
            gpt_free(&m);
            prefshard_close(&shard);
            config_free(&cfg);
            dist_barrier();
            return PREFER_EXIT_PREEMPTED;
        }
    }
    save_ckpt(&t, cfg.train.out_dir);
    if (rl) {
        runlog_attr_f64(rl, "end_time", (double)time(NULL));
        runlog_close(rl);
    }
    say("train: done in %.1f s; loss %.4f -> %.4f\n", now_s() - t_start, first_loss, loss);
    if (t.pref)
        say("train: logps/chosen %.3f -> %.3f, logps/rejected %.3f -> %.3f, accuracy %.3f -> %.3f\n",
            first.logps_chosen, st.logps_chosen, first.logps_rejected, st.logps_rejected, first.rewards_accuracies,
            st.rewards_accuracies);
    say("train: read %.1f MB of tokens on rank 0 in %lld gathers (%.2f s)\n", shard.bytes_read / 1e6,
        (long long)shard.gathers, shard.gather_seconds);
    free(ref);
    trainer_free(&t);
    gpt_free(&m);
    prefshard_close(&shard);
    config_free(&cfg);
    return 0;
}

/* ---------------- prefer config ---------------- */

int cmd_config(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    if (a.help) {
        printf("usage: prefer config [CONFIG] [--set section.key=value ...] [--reference]\n\n"
               "Validates CONFIG and prints the effective config (defaults, file, overrides).\n"
               "--reference prints every key with its default, range and help (configs/reference.cfg).\n");
        return 0;
    }
    static const char *const flags[] = {"--reference", NULL};
    cli_check_flags(&a, "config", flags);
    if (cli_has_flag(&a, "--reference")) {
        char *s = config_reference_text();
        if (util_rank() == 0)
            fputs(s, stdout);
        free(s);
        return 0;
    }
    PreferConfig cfg;
    cli_load_config(&a, &cfg);
    char *s = config_to_text(&cfg);
    if (util_rank() == 0)
        fputs(s, stdout);
    free(s);
    config_free(&cfg);
    return 0;
}

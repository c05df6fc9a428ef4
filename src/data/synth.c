/* synth.c: the synthetic preference task, `prefer synth` and `prefer label`.
 *
 * Does: build a seeded random first-order Markov teacher and the hidden true reward (token
 * weights, per-prompt cares); sample the SFT corpus and the preference files (K teacher
 * responses per prompt, true-reward scores, Bradley-Terry pairs) of the train and held-out
 * splits; store the task's parameters as root attributes so that any command can rebuild
 * it from a file; compute the exact KL-regularised optimum (backward dynamic programming
 * over the Markov chain) and the optimal reward/KL frontier (root finding on log beta).
 * Does not: touch models or MPI (the commands work on rank 0 alone); know about policies
 * (`prefer sample` scores its samples with synth_score_file_responses, `prefer eval` holds
 * policies against synth_frontier).
 *
 * Randomness (rng.h streams of synth.seed, SYNTH_STREAM_* in synth.h): every draw sits at a
 * position fixed by what it is for, so any prompt, response, care or label can be
 * regenerated alone and nothing depends on rank, thread count, or the sizes of other
 * things. Train prompt i uses draws [i*D, (i+1)*D) of SYNTH_STREAM_CORPUS with
 * D = prompt_len + response_len - 1 (the rest of the block is its SFT response); held-out
 * prompts use the same layout in SYNTH_STREAM_HELDOUT.
 */
#include "prefer/synth.h"
#include "prefer/did.h"
#include "prefer/bpe.h"
#include "prefer/lexicon.h"
#include "prefer/cli.h"
#include "prefer/h5util.h"
#include "prefer/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The teacher with logits scale * N(0,1); synth_teacher_init uses SYNTH_LOGIT_SCALE, a file
 * may carry another scale (synth_logit_scale). */
static void teacher_build(SynthTeacher *t, int vocab, uint64_t seed, double scale)
{
    if (vocab < 2 || vocab > SYNTH_MAX_VOCAB)
        die_user("synth: synth.vocab_size = %d is outside [2, %d] (token 0 is end-of-sequence; "
                 "the teacher is a dense V x V table)",
                 vocab, SYNTH_MAX_VOCAB);
    memset(t, 0, sizeof *t);
    const size_t V = (size_t)vocab;
    t->vocab = vocab;
    t->prob = xcalloc(V * V, sizeof(double));
    t->cdf = xcalloc(V * V, sizeof(double));
    t->row_entropy = xcalloc(V, sizeof(double));

    Rng r;
    rng_init(&r, seed, SYNTH_STREAM_TEACHER);
    /* row 0: the start state, uniform over 1..V-1 */
    for (size_t b = 1; b < V; b++)
        t->prob[b] = 1.0 / (double)(V - 1);
    for (size_t a = 1; a < V; a++) {
        double *p = t->prob + a * V;
        double mx = -INFINITY;
        for (size_t b = 1; b < V; b++) {
            p[b] = scale * rng_normal(&r);
            mx = fmax(mx, p[b]);
        }
        double z = 0.0;
        for (size_t b = 1; b < V; b++) {
            p[b] = exp(p[b] - mx);
            z += p[b];
        }
        for (size_t b = 1; b < V; b++)
            p[b] /= z;
    }
    for (size_t a = 0; a < V; a++) {
        const double *p = t->prob + a * V;
        double *c = t->cdf + a * V, acc = 0.0, h = 0.0;
        for (size_t b = 0; b < V; b++) {
            acc += p[b];
            c[b] = acc;
            if (p[b] > 0.0)
                h -= p[b] * log(p[b]);
        }
        c[V - 1] = 1.0; /* rounding must never leave a gap above the last token */
        t->row_entropy[a] = h;
    }
}

void synth_teacher_init(SynthTeacher *t, int vocab, uint64_t seed)
{
    teacher_build(t, vocab, seed, SYNTH_LOGIT_SCALE);
}

void synth_teacher_free(SynthTeacher *t)
{
    if (!t)
        return;
    free(t->prob);
    free(t->cdf);
    free(t->row_entropy);
    memset(t, 0, sizeof *t);
}

int32_t synth_teacher_sample(const SynthTeacher *t, int prev, Rng *r)
{
    const double *c = t->cdf + (size_t)prev * (size_t)t->vocab;
    const double u = rng_uniform(r); /* [0, 1) */
    /* first b with c[b] > u; c[0] = 0 <= u, c[V-1] = 1 > u, so b lands in [1, V) */
    int lo = 0, hi = t->vocab - 1;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (c[mid] > u)
            hi = mid;
        else
            lo = mid;
    }
    /* a zero-probability token (underflowed exp) has c[b] == c[b-1] and is never chosen */
    return (int32_t)hi;
}

double synth_teacher_logprob(const SynthTeacher *t, int prev, int next)
{
    double p = t->prob[(size_t)prev * (size_t)t->vocab + (size_t)next];
    return p > 0.0 ? log(p) : -INFINITY;
}

double synth_teacher_entropy_rate(const SynthTeacher *t)
{
    /* Power iteration for the stationary distribution of tokens 1..V-1. Every transition
     * among them has positive probability (softmax), so the chain is irreducible and
     * aperiodic and the iteration converges geometrically. */
    const size_t V = (size_t)t->vocab;
    double *pi = xcalloc(V, sizeof(double)), *nx = xcalloc(V, sizeof(double));
    for (size_t a = 1; a < V; a++)
        pi[a] = 1.0 / (double)(V - 1);
    for (int it = 0; it < 10000; it++) {
        memset(nx, 0, V * sizeof(double));
        for (size_t a = 1; a < V; a++)
            for (size_t b = 1; b < V; b++)
                nx[b] += pi[a] * t->prob[a * V + b];
        double diff = 0.0;
        for (size_t b = 1; b < V; b++) {
            diff += fabs(nx[b] - pi[b]);
            pi[b] = nx[b];
        }
        if (diff < 1e-14)
            break;
    }
    double h = 0.0;
    for (size_t a = 1; a < V; a++)
        h += pi[a] * t->row_entropy[a];
    free(pi);
    free(nx);
    return h;
}

void synth_make_corpus(const SynthConfig *cfg, PrefData *out, double *entropy)
{
    if (cfg->n_prompts < 1 || cfg->prompt_len < 1 || cfg->response_len < 1)
        die_user("synth: n_prompts, prompt_len and response_len must be at least 1 "
                 "(got %d, %d, %d)",
                 cfg->n_prompts, cfg->prompt_len, cfg->response_len);
    SynthTeacher t;
    synth_teacher_init(&t, cfg->vocab_size, (uint64_t)cfg->seed);

    const int64_t P = cfg->n_prompts, Lp = cfg->prompt_len, Lr = cfg->response_len;
    memset(out, 0, sizeof *out);
    out->n_prompts = P;
    out->n_responses = P;
    out->n_pairs = 0;
    out->vocab_size = cfg->vocab_size;
    out->prompt_tokens = xmalloc((size_t)(P * Lp) * sizeof(int32_t));
    out->prompt_offsets = xmalloc((size_t)(P + 1) * sizeof(int64_t));
    out->response_tokens = xmalloc((size_t)(P * Lr) * sizeof(int32_t));
    out->response_offsets = xmalloc((size_t)(P + 1) * sizeof(int64_t));
    out->response_prompt = xmalloc((size_t)P * sizeof(int64_t));

    Rng r;
    rng_init(&r, (uint64_t)cfg->seed, SYNTH_STREAM_CORPUS);
    const uint64_t draws = (uint64_t)(Lp + Lr - 1);
    double h_sum = 0.0; /* teacher entropy summed over response positions */
    for (int64_t i = 0; i < P; i++) {
        r.counter = (uint64_t)i * draws;
        int32_t *pt = out->prompt_tokens + i * Lp;
        int32_t *rt = out->response_tokens + i * Lr;
        int prev = 0; /* the start state */
        for (int64_t j = 0; j < Lp; j++)
            prev = pt[j] = synth_teacher_sample(&t, prev, &r);
        for (int64_t j = 0; j < Lr - 1; j++) {
            h_sum += t.row_entropy[prev];
            prev = rt[j] = synth_teacher_sample(&t, prev, &r);
        }
        rt[Lr - 1] = SYNTH_EOS;
        out->prompt_offsets[i] = i * Lp;
        out->response_offsets[i] = i * Lr;
        out->response_prompt[i] = i;
    }
    out->prompt_offsets[P] = P * Lp;
    out->response_offsets[P] = P * Lr;
    if (entropy)
        *entropy = h_sum / (double)(P * Lr);
    synth_teacher_free(&t);
}

void synth_write_entropy_attr(const char *path, double entropy)
{
    h5u_init();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        die("cannot reopen %s to store teacher_entropy", path);
    h5u_attr_f64(f, "teacher_entropy", entropy);
    if (H5Fclose(f) < 0)
        die("closing %s after storing teacher_entropy failed (disk full?)", path);
}

/* mkdir -p of the directory part of path; dies (user error) naming the directory. */
/* ======================================================================== the task */

static const char *split_name(int split) { return split == SYNTH_SPLIT_HELDOUT ? "heldout" : "train"; }

/* Build the task from its parameters; every caller validated them. */
static void task_build(SynthTask *t, int vocab, uint64_t seed, double logit_scale, int prompt_len,
                       int response_len, double reward_scale, double care_sigma,
                       double care_indifferent, double care_indifferent_scale)
{
    if (prompt_len < 1 || response_len < 1)
        die_user("synth: synth.prompt_len and synth.response_len must be at least 1 (got %d, %d)",
                 prompt_len, response_len);
    memset(t, 0, sizeof *t);
    teacher_build(&t->teacher, vocab, seed, logit_scale);
    t->seed = seed;
    t->vocab = vocab;
    t->prompt_len = prompt_len;
    t->response_len = response_len;
    t->logit_scale = logit_scale;
    t->reward_scale = reward_scale;
    t->care_sigma = care_sigma;
    t->care_indifferent = care_indifferent;
    t->care_indifferent_scale = care_indifferent_scale;
    t->split = SYNTH_SPLIT_TRAIN;
    t->prompt_base = 0;
    t->weight = xcalloc((size_t)vocab, sizeof(double));
    Rng r;
    rng_init(&r, seed, SYNTH_STREAM_WEIGHTS);
    for (int v = 1; v < vocab; v++) {
        r.counter = 2 * (uint64_t)v; /* token v's weight does not depend on V */
        t->weight[v] = rng_normal(&r);
    }
    t->weight[SYNTH_EOS] = 0.0;
}

void synth_task_init(SynthTask *t, const SynthConfig *cfg)
{
    task_build(t, cfg->vocab_size, (uint64_t)cfg->seed, SYNTH_LOGIT_SCALE, cfg->prompt_len,
               cfg->response_len, cfg->reward_scale, cfg->care_sigma, cfg->care_indifferent,
               cfg->care_indifferent_scale);
}

void synth_task_free(SynthTask *t)
{
    if (!t)
        return;
    synth_teacher_free(&t->teacher);
    free(t->weight);
    memset(t, 0, sizeof *t);
}

void synth_task_bind(SynthTask *t, int split, int64_t base)
{
    if ((split != SYNTH_SPLIT_TRAIN && split != SYNTH_SPLIT_HELDOUT) || base < 0)
        die("synth_task_bind: bad split %d or base %lld", split, (long long)base);
    t->split = split;
    t->prompt_base = base;
}

double synth_care(const SynthTask *t, int64_t i)
{
    Rng r;
    rng_init(&r, t->seed, SYNTH_STREAM_CARE + (uint64_t)t->split);
    r.counter = 4 * (uint64_t)(t->prompt_base + i);
    double z = rng_normal(&r);  /* draws 4i, 4i+1 */
    double u = rng_uniform(&r); /* draw 4i+2 */
    double c = t->reward_scale * exp(t->care_sigma * z);
    return u < t->care_indifferent ? c * t->care_indifferent_scale : c;
}

void synth_prompt(const SynthTask *t, int64_t i, int32_t *out)
{
    Rng r;
    rng_init(&r, t->seed, t->split == SYNTH_SPLIT_HELDOUT ? SYNTH_STREAM_HELDOUT : SYNTH_STREAM_CORPUS);
    r.counter = (uint64_t)(t->prompt_base + i) * (uint64_t)(t->prompt_len + t->response_len - 1);
    int prev = 0;
    for (int j = 0; j < t->prompt_len; j++)
        prev = out[j] = synth_teacher_sample(&t->teacher, prev, &r);
}

/* sum of the hidden weights of tokens[len]; tokens outside the task's vocabulary weigh 0 */
static double weight_sum(const SynthTask *t, const int32_t *tokens, int64_t len)
{
    double s = 0.0;
    for (int64_t j = 0; j < len; j++)
        if (tokens[j] >= 0 && tokens[j] < t->vocab)
            s += t->weight[tokens[j]];
    return s;
}

double synth_reward(const SynthTask *t, int64_t i, const int32_t *tokens, int64_t len)
{
    return synth_care(t, i) * weight_sum(t, tokens, len);
}

/* Exact rewards of every response of d (double[n_responses], caller frees), cares computed
 * once per prompt. */
static double *true_rewards(const SynthTask *t, const PrefData *d)
{
    double *care = xmalloc((size_t)(d->n_prompts > 0 ? d->n_prompts : 1) * sizeof(double));
    for (int64_t p = 0; p < d->n_prompts; p++)
        care[p] = synth_care(t, p);
    double *rew = xmalloc((size_t)(d->n_responses > 0 ? d->n_responses : 1) * sizeof(double));
    for (int64_t r = 0; r < d->n_responses; r++) {
        const int64_t o = d->response_offsets[r];
        rew[r] = care[d->response_prompt[r]] *
                 weight_sum(t, d->response_tokens + o, d->response_offsets[r + 1] - o);
    }
    free(care);
    return rew;
}

void synth_score_file_responses(const SynthTask *t, PrefData *d)
{
    double *rew = true_rewards(t, d);
    if (!d->response_score)
        d->response_score = xmalloc((size_t)(d->n_responses > 0 ? d->n_responses : 1) * sizeof(float));
    for (int64_t r = 0; r < d->n_responses; r++)
        d->response_score[r] = (float)rew[r];
    free(rew);
}

int synth_check_prompts(const SynthTask *t, const PrefData *d, char *err, int errlen)
{
    int32_t *want = xmalloc((size_t)t->prompt_len * sizeof(int32_t));
    int rc = 0;
    for (int64_t p = 0; p < d->n_prompts && rc == 0; p++) {
        const int64_t o = d->prompt_offsets[p], len = d->prompt_offsets[p + 1] - o;
        synth_prompt(t, p, want);
        if (len != t->prompt_len ||
            memcmp(want, d->prompt_tokens + o, (size_t)len * sizeof(int32_t)) != 0) {
            if (err && errlen > 0)
                snprintf(err, (size_t)errlen,
                         "prompt %lld is not prompt %lld of the task's %s split (the file's prompts "
                         "must be the synthetic ones, in order)",
                         (long long)p, (long long)(t->prompt_base + p), split_name(t->split));
            rc = -1;
        }
    }
    free(want);
    return rc;
}

/* ======================================================================== labels */

SynthLabelSpec synth_label_spec(const SynthConfig *cfg)
{
    SynthLabelSpec s;
    s.best_worst = cfg->pairs && !strcmp(cfg->pairs, "best_worst");
    s.temp = cfg->label_temp;
    s.noise = cfg->label_noise;
    return s;
}

static double u01(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }

void synth_draw_pairs(PrefData *d, const double *reward, const SynthLabelSpec *spec, uint64_t seed,
                      uint64_t stream, SynthLabelStats *st)
{
    if (!(spec->temp > 0.0) || !(spec->noise >= 0.0 && spec->noise <= 0.5))
        die("synth_draw_pairs: label_temp %g must be > 0 and label_noise %g in [0, 0.5]", spec->temp,
            spec->noise);
    SynthLabelStats s = {0};
    const int64_t P = d->n_prompts, R = d->n_responses;

    /* responses grouped by prompt, in file order (counting sort) */
    int64_t *start = xcalloc((size_t)P + 1, sizeof(int64_t));
    int64_t *order = xmalloc((size_t)(R > 0 ? R : 1) * sizeof(int64_t));
    for (int64_t r = 0; r < R; r++)
        start[d->response_prompt[r] + 1]++;
    for (int64_t p = 0; p < P; p++)
        start[p + 1] += start[p];
    int64_t *fill = xmalloc((size_t)(P > 0 ? P : 1) * sizeof(int64_t));
    memcpy(fill, start, (size_t)P * sizeof(int64_t));
    for (int64_t r = 0; r < R; r++)
        order[fill[d->response_prompt[r]]++] = r;
    free(fill);

    int64_t n = 0;
    for (int64_t p = 0; p < P; p++) {
        const int64_t m = start[p + 1] - start[p];
        if (m < 2)
            s.n_lonely++;
        else
            n += spec->best_worst ? 1 : m * (m - 1) / 2;
    }
    free(d->pair_chosen);
    free(d->pair_rejected);
    d->pair_chosen = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    d->pair_rejected = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    d->n_pairs = n;

    Rng base;
    rng_init(&base, seed, stream);
    int64_t k = 0;
    for (int64_t p = 0; p < P; p++) {
        const int64_t *rs = order + start[p], m = start[p + 1] - start[p];
        if (m < 2)
            continue;
        const uint64_t key = rng_at(base.key, (uint64_t)p);
        int64_t npairs = spec->best_worst ? 1 : m * (m - 1) / 2, a = 0, b = 1;
        if (spec->best_worst) {
            int64_t best = 0, worst = 0;
            for (int64_t q = 1; q < m; q++) {
                if (reward[rs[q]] > reward[rs[best]])
                    best = q;
                if (reward[rs[q]] < reward[rs[worst]])
                    worst = q;
            }
            if (best == worst) /* all equal */
                worst = m - 1;
            a = best;
            b = worst;
        }
        for (int64_t j = 0; j < npairs; j++) {
            const int64_t ri = rs[a], rj = rs[b];
            const double dr = reward[ri] - reward[rj];
            const double prob_i = 1.0 / (1.0 + exp(-dr / spec->temp));
            int i_wins = u01(rng_at(key, 2 * (uint64_t)j)) < prob_i;
            if (u01(rng_at(key, 2 * (uint64_t)j + 1)) < spec->noise) {
                i_wins = !i_wins;
                s.n_flipped++;
            }
            d->pair_chosen[k] = i_wins ? ri : rj;
            d->pair_rejected[k] = i_wins ? rj : ri;
            if (dr == 0.0)
                s.n_ties++;
            else if ((dr > 0.0) == (i_wins != 0))
                s.n_agree++;
            k++;
            if (++b == m) { /* next (a, b) in lexicographic order */
                a++;
                b = a + 1;
            }
        }
    }
    s.n_pairs = n;
    free(start);
    free(order);
    if (st)
        *st = s;
}

void synth_make_prefs(SynthTask *t, const SynthConfig *cfg, int split, int64_t n, PrefData *out,
                      double **reward, SynthLabelStats *st)
{
    const int64_t K = cfg->k, Lp = t->prompt_len, Lr = t->response_len;
    if (K < 2 || K > SYNTH_MAX_K)
        die_user("synth: synth.k = %lld must be in [2, %d]", (long long)K, SYNTH_MAX_K);
    if (n < 1)
        die_user("synth: the number of prompts must be at least 1 (got %lld)", (long long)n);
    synth_task_bind(t, split, 0);
    memset(out, 0, sizeof *out);
    out->n_prompts = n;
    out->n_responses = n * K;
    out->vocab_size = t->vocab;
    out->prompt_tokens = xmalloc((size_t)(n * Lp) * sizeof(int32_t));
    out->prompt_offsets = xmalloc((size_t)(n + 1) * sizeof(int64_t));
    out->response_tokens = xmalloc((size_t)(n * K * Lr) * sizeof(int32_t));
    out->response_offsets = xmalloc((size_t)(n * K + 1) * sizeof(int64_t));
    out->response_prompt = xmalloc((size_t)(n * K) * sizeof(int64_t));
    out->response_score = xmalloc((size_t)(n * K) * sizeof(float));
    double *rew = xmalloc((size_t)(n * K) * sizeof(double));

    Rng r;
    rng_init(&r, t->seed, SYNTH_STREAM_RESPONSES + (uint64_t)split);
    for (int64_t i = 0; i < n; i++) {
        int32_t *pt = out->prompt_tokens + i * Lp;
        synth_prompt(t, i, pt);
        out->prompt_offsets[i] = i * Lp;
        const double care = synth_care(t, i);
        for (int64_t k = 0; k < K; k++) {
            const int64_t ri = i * K + k;
            int32_t *rt = out->response_tokens + ri * Lr;
            r.counter = (uint64_t)(i * SYNTH_MAX_K + k) * (uint64_t)(Lr - 1);
            int prev = pt[Lp - 1];
            for (int64_t j = 0; j < Lr - 1; j++)
                prev = rt[j] = synth_teacher_sample(&t->teacher, prev, &r);
            rt[Lr - 1] = SYNTH_EOS;
            out->response_offsets[ri] = ri * Lr;
            out->response_prompt[ri] = i;
            rew[ri] = care * weight_sum(t, rt, Lr);
            out->response_score[ri] = (float)rew[ri];
        }
    }
    out->prompt_offsets[n] = n * Lp;
    out->response_offsets[n * K] = n * K * Lr;
    SynthLabelSpec spec = synth_label_spec(cfg);
    synth_draw_pairs(out, rew, &spec, t->seed, SYNTH_STREAM_LABELS + (uint64_t)split, st);
    if (reward)
        *reward = rew;
    else
        free(rew);
}

/* ======================================================================== files */

void synth_put_task_attrs(hid_t f, const SynthTask *t, const char *kind)
{
    h5u_attr_str(f, "synth_task", SYNTH_TASK_NAME);
    h5u_attr_i64(f, "synth_version", SYNTH_TASK_VERSION);
    h5u_attr_i64(f, "synth_seed", (int64_t)t->seed);
    h5u_attr_i64(f, "synth_vocab_size", t->vocab);
    h5u_attr_f64(f, "synth_logit_scale", t->logit_scale);
    h5u_attr_i64(f, "synth_prompt_len", t->prompt_len);
    h5u_attr_i64(f, "synth_response_len", t->response_len);
    h5u_attr_f64(f, "synth_reward_scale", t->reward_scale);
    h5u_attr_f64(f, "synth_care_sigma", t->care_sigma);
    h5u_attr_f64(f, "synth_care_indifferent", t->care_indifferent);
    h5u_attr_f64(f, "synth_care_indifferent_scale", t->care_indifferent_scale);
    h5u_attr_str(f, "synth_split", split_name(t->split));
    h5u_attr_i64(f, "synth_prompt_base", t->prompt_base);
    h5u_attr_str(f, "synth_kind", kind ? kind : "");
}

void synth_write_task_attrs(const char *path, const SynthTask *t, const char *kind)
{
    h5u_init();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        die("cannot reopen %s to store the synthetic task's attributes", path);
    synth_put_task_attrs(f, t, kind);
    if (H5Fclose(f) < 0)
        die("closing %s after storing the synthetic task's attributes failed (disk full?)", path);
}

int synth_task_from_file(const char *path, SynthTask *t, char *err, int errlen)
{
    memset(t, 0, sizeof *t);
    h5u_init();
    if (!h5u_is_hdf5(path))
        return util_seterr(err, errlen, "%s: cannot open as HDF5", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return util_seterr(err, errlen, "%s: cannot open as HDF5", path);
    int rc = -1;
    char *name = h5u_read_attr_str(f, "synth_task"), *split = NULL;
    int64_t version, seed, vocab, lp, lr, base;
    double logit, rs, sigma, indiff, iscale;
    if (!name) {
        util_seterr(err, errlen, "%s: does not carry the synthetic task (no synth_task attribute)", path);
        rc = 1;
    } else if (strcmp(name, SYNTH_TASK_NAME) != 0) {
        util_seterr(err, errlen, "%s: synth_task = \"%s\", this prefer knows \"%s\"", path, name,
               SYNTH_TASK_NAME);
    } else if (h5u_read_attr_i64(f, "synth_version", &version) != 0 || version < 1) {
        util_seterr(err, errlen, "%s: synth_version missing or not a positive integer", path);
    } else if (version > SYNTH_TASK_VERSION) {
        util_seterr(err, errlen, "%s: synth_version %lld is newer than this prefer reads (%d): upgrade prefer",
               path, (long long)version, SYNTH_TASK_VERSION);
    } else if (h5u_read_attr_i64(f, "synth_seed", &seed) != 0 ||
               h5u_read_attr_i64(f, "synth_vocab_size", &vocab) != 0 ||
               h5u_read_attr_i64(f, "synth_prompt_len", &lp) != 0 ||
               h5u_read_attr_i64(f, "synth_response_len", &lr) != 0 ||
               h5u_read_attr_i64(f, "synth_prompt_base", &base) != 0 ||
               h5u_read_attr_f64(f, "synth_logit_scale", &logit) != 0 ||
               h5u_read_attr_f64(f, "synth_reward_scale", &rs) != 0 ||
               h5u_read_attr_f64(f, "synth_care_sigma", &sigma) != 0 ||
               h5u_read_attr_f64(f, "synth_care_indifferent", &indiff) != 0 ||
               h5u_read_attr_f64(f, "synth_care_indifferent_scale", &iscale) != 0 ||
               !(split = h5u_read_attr_str(f, "synth_split"))) {
        util_seterr(err, errlen, "%s: a synth_* attribute is missing or of the wrong type (need synth_seed, "
               "synth_vocab_size, synth_prompt_len, synth_response_len, synth_prompt_base, "
               "synth_logit_scale, synth_reward_scale, synth_care_sigma, synth_care_indifferent, "
               "synth_care_indifferent_scale, synth_split)", path);
    } else if (vocab < 2 || vocab > SYNTH_MAX_VOCAB || lp < 1 || lp > (1 << 20) || lr < 1 ||
               lr > (1 << 20) || base < 0 || !(logit > 0.0 && isfinite(logit)) ||
               !(rs > 0.0 && isfinite(rs)) || !(sigma >= 0.0 && sigma <= 10.0) ||
               !(indiff >= 0.0 && indiff <= 1.0) || !(iscale >= 0.0 && iscale <= 1.0)) {
        util_seterr(err, errlen, "%s: synth_* attributes out of range (vocab_size %lld, prompt_len %lld, "
               "response_len %lld, prompt_base %lld, logit_scale %g, reward_scale %g, care_sigma %g, "
               "care_indifferent %g, care_indifferent_scale %g)", path, (long long)vocab,
               (long long)lp, (long long)lr, (long long)base, logit, rs, sigma, indiff, iscale);
    } else if (strcmp(split, "train") != 0 && strcmp(split, "heldout") != 0) {
        util_seterr(err, errlen, "%s: synth_split = \"%s\", expected \"train\" or \"heldout\"", path, split);
    } else {
        task_build(t, (int)vocab, (uint64_t)seed, logit, (int)lp, (int)lr, rs, sigma, indiff, iscale);
        synth_task_bind(t, !strcmp(split, "heldout") ? SYNTH_SPLIT_HELDOUT : SYNTH_SPLIT_TRAIN, base);
        rc = 0;
    }
    free(name);
    free(split);
    H5Fclose(f);
    return rc;
}

/* ======================================================================== the exact optimum */

/* Scratch for one prompt's dynamic programme: vt[(n+1)*V], g[V], e[V], mu[V], nmu[V]. */
typedef struct {
    double *vt, *g, *e, *mu, *nmu;
    double *buf;
} OptWork;

static void opt_work_init(OptWork *w, const SynthTask *t)
{
    const size_t V = (size_t)t->vocab, n = (size_t)(t->response_len - 1);
    w->buf = xmalloc(((n + 1) * V + 4 * V) * sizeof(double));
    w->vt = w->buf;
    w->g = w->vt + (n + 1) * V;
    w->e = w->g + V;
    w->mu = w->e + V;
    w->nmu = w->mu + V;
}

/* g[b] = c w_b / beta + V_{t+1}(b) for b >= 1; e[b] = exp(g[b] - m); returns m = max g. */
static double opt_tilt(const SynthTask *t, double cb, const double *vnext, double *g, double *e)
{
    const int V = t->vocab;
    double m = -INFINITY;
    for (int b = 1; b < V; b++) {
        g[b] = cb * t->weight[b] + vnext[b];
        m = fmax(m, g[b]);
    }
    for (int b = 1; b < V; b++)
        e[b] = exp(g[b] - m);
    return m;
}

/* E_{pi*}[r] and KL(pi* || teacher) from start state `start` for care c and inverse
 * temperature ib = 1/beta (ib = 0: the teacher). */
static void opt_core(const SynthTask *t, int start, double c, double ib, OptWork *w, double *reward,
                     double *kl)
{
    const int V = t->vocab, n = t->response_len - 1;
    const double *P = t->teacher.prob;
    const double cb = c * ib;
    double *vt = w->vt, *g = w->g, *e = w->e;
    /* backward: V_n = 0; V_t(a) = log sum_b P(b|a) exp(g_b) */
    for (int a = 0; a < V; a++)
        vt[(size_t)n * V + a] = 0.0;
    for (int s = n - 1; s >= 0; s--) {
        double *v = vt + (size_t)s * V;
        const double m = opt_tilt(t, cb, v + V, g, e);
        for (int a = 1; a < V; a++) {
            const double *pa = P + (size_t)a * V;
            double sum = 0.0;
            for (int b = 1; b < V; b++)
                sum += pa[b] * e[b];
            if (sum > 1e-280) {
                v[a] = m + log(sum);
            } else { /* the tilt's favourite has (near) zero teacher probability: log space */
                double mm = -INFINITY;
                for (int b = 1; b < V; b++)
                    if (pa[b] > 0.0)
                        mm = fmax(mm, log(pa[b]) + g[b]);
                double s2 = 0.0;
                for (int b = 1; b < V; b++)
                    if (pa[b] > 0.0)
                        s2 += exp(log(pa[b]) + g[b] - mm);
                v[a] = mm + log(s2);
            }
        }
        v[0] = 0.0; /* the start state never recurs */
    }
    /* forward over the state distribution */
    double *mu = w->mu, *nmu = w->nmu, R = 0.0, K = 0.0;
    memset(mu, 0, (size_t)V * sizeof(double));
    mu[start] = 1.0;
    for (int s = 0; s < n; s++) {
        const double *v = vt + (size_t)s * V;
        const double m = opt_tilt(t, cb, v + V, g, e);
        memset(nmu, 0, (size_t)V * sizeof(double));
        for (int a = 1; a < V; a++) {
            if (mu[a] == 0.0)
                continue;
            const double *pa = P + (size_t)a * V;
            const double inv = exp(m - v[a]); /* 1 / sum_b P(b|a) e_b */
            const int logspace = !(isfinite(inv) && inv > 0.0);
            for (int b = 1; b < V; b++) {
                if (pa[b] == 0.0)
                    continue;
                const double p = logspace ? exp(log(pa[b]) + g[b] - v[a]) : pa[b] * e[b] * inv;
                if (p == 0.0)
                    continue;
                const double q = mu[a] * p;
                nmu[b] += q;
                R += q * c * t->weight[b];
                K += q * (g[b] - v[a]); /* log pi*(b|a,t) - log P(b|a) */
            }
        }
        double *tmp = mu;
        mu = nmu;
        nmu = tmp;
    }
    *reward = R;
    *kl = K > 0.0 ? K : 0.0; /* rounding can leave -1e-17 at beta -> inf */
}

/* The prompt's last token (the chain's state when the response starts). */
static int prompt_last(const SynthTask *t, int64_t i)
{
    int32_t *pt = xmalloc((size_t)t->prompt_len * sizeof(int32_t));
    synth_prompt(t, i, pt);
    int s = pt[t->prompt_len - 1];
    free(pt);
    return s;
}

void synth_optimum(const SynthTask *t, int64_t i, double beta, double *reward, double *kl)
{
    if (!(beta > 0.0))
        die("synth_optimum: beta = %g must be > 0", beta);
    OptWork w;
    opt_work_init(&w, t);
    opt_core(t, prompt_last(t, i), synth_care(t, i), isinf(beta) ? 0.0 : 1.0 / beta, &w, reward, kl);
    if (isinf(beta))
        *kl = 0.0;
    free(w.buf);
}

double synth_teacher_reward(const SynthTask *t, int64_t i)
{
    double r, kl;
    synth_optimum(t, i, INFINITY, &r, &kl);
    return r;
}

/* Mean reward and KL of pi*_beta over the prompts (start states and cares precomputed). The
 * per-prompt results are summed in prompt order, so the result does not depend on the
 * thread count. */
static void frontier_eval(const SynthTask *t, const int *start, const double *care, int64_t n,
                          double ib, double *res, double *mean_r, double *mean_kl)
{
#pragma omp parallel
    {
        OptWork w;
        opt_work_init(&w, t);
#pragma omp for schedule(dynamic, 4)
        for (int64_t i = 0; i < n; i++)
            opt_core(t, start[i], care[i], ib, &w, &res[2 * i], &res[2 * i + 1]);
        free(w.buf);
    }
    double r = 0.0, k = 0.0;
    for (int64_t i = 0; i < n; i++) {
        r += res[2 * i];
        k += ib == 0.0 ? 0.0 : res[2 * i + 1];
    }
    *mean_r = r / (double)n;
    *mean_kl = k / (double)n;
}

int synth_frontier(const SynthTask *t, const int64_t *prompts, int64_t n, double target_kl,
                   double *reward, double *beta_found)
{
    if (n < 1)
        die("synth_frontier: needs at least one prompt");
    int *start = xmalloc((size_t)n * sizeof(int));
    double *care = xmalloc((size_t)n * sizeof(double)), *res = xmalloc((size_t)n * 2 * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        const int64_t p = prompts ? prompts[i] : i;
        start[i] = prompt_last(t, p);
        care[i] = synth_care(t, p);
    }
    double r, k, beta;
    int rc = 0;
    if (!(target_kl > 0.0)) {
        frontier_eval(t, start, care, n, 0.0, res, &r, &k);
        beta = INFINITY;
    } else {
        /* bracket: KL(hi) <= target < KL(lo), in log beta steps of 8 around the reward scale */
        const double scale = t->reward_scale, tol = 1e-9 * fmax(1.0, target_kl);
        double hi = scale, lo, klo, rlo;
        frontier_eval(t, start, care, n, 1.0 / hi, res, &r, &k);
        while (k > target_kl && hi < 1e12 * scale) {
            hi *= 8.0;
            frontier_eval(t, start, care, n, 1.0 / hi, res, &r, &k);
        }
        double rhi = r, khi = k;
        lo = hi;
        klo = khi;
        rlo = rhi;
        while (klo <= target_kl && lo > 1e-12 * scale) {
            hi = lo;
            rhi = rlo;
            khi = klo;
            lo /= 8.0;
            frontier_eval(t, start, care, n, 1.0 / lo, res, &rlo, &klo);
        }
        if (klo <= target_kl) { /* beyond the reachable KL: the reward maximisers */
            r = rlo;
            k = klo;
            beta = lo;
            rc = 1;
        } else if (khi > target_kl) { /* even beta = 1e12 scale is too far: the teacher */
            r = rhi;
            k = khi;
            beta = hi;
        } else {
            /* Illinois (regula falsi that halves a stale end) on f(x) = log(KL / target) at
             * x = log beta, which is nearly linear: a few evaluations instead of ~40
             * bisection steps. The bracket [lo, hi] always holds the root. */
            double xa = log(lo), xb = log(hi);
            double fa = log(klo / target_kl), fb = khi > 0.0 ? log(khi / target_kl) : -745.0;
            int side = 0;
            beta = hi;
            r = rhi;
            k = khi;
            for (int it = 0; it < 200 && fabs(k - target_kl) > tol && xb - xa > 1e-15 * fmax(1.0, fabs(xa));
                 it++) {
                double xc = (xa * fb - xb * fa) / (fb - fa);
                if (!(xc > xa && xc < xb)) /* rounding: fall back to bisection */
                    xc = 0.5 * (xa + xb);
                double rm, km;
                frontier_eval(t, start, care, n, exp(-xc), res, &rm, &km);
                const double fc = km > 0.0 ? log(km / target_kl) : -745.0;
                beta = exp(xc);
                r = rm;
                k = km;
                if (fc > 0.0) { /* KL too large: beta must grow */
                    xa = xc;
                    fa = fc;
                    if (side == 1)
                        fb *= 0.5;
                    side = 1;
                } else {
                    xb = xc;
                    fb = fc;
                    if (side == -1)
                        fa *= 0.5;
                    side = -1;
                }
            }
        }
    }
    free(start);
    free(care);
    free(res);
    *reward = r;
    if (beta_found)
        *beta_found = beta;
    return rc;
}

/* ======================================================================== commands */

/* Write d to path with the task's attributes (t may be NULL: none), the label keys (cfg may
 * be NULL: none) and teacher_entropy (NaN: none): prefdata_write into path.tmp, the
 * attributes, then one fsync + rename, so readers never see a file without them. */
static void write_with_attrs_did(const char *path, const PrefData *d, const char *config_text,
                                 const SynthTask *t, const char *kind, const SynthConfig *cfg,
                                 double entropy, double did_beta, const DidStats *did)
{
    char *stage = h5u_tmp_name(path);
    prefdata_write(stage, d, config_text);
    hid_t f = H5Fopen(stage, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        die("cannot reopen %s to store its attributes", stage);
    if (t)
        synth_put_task_attrs(f, t, kind);
    if (cfg) {
        h5u_attr_str(f, "synth_pairs", cfg->pairs);
        h5u_attr_f64(f, "synth_label_temp", cfg->label_temp);
        h5u_attr_f64(f, "synth_label_noise", cfg->label_noise);
    }
    if (!isnan(entropy))
        h5u_attr_f64(f, "teacher_entropy", entropy);
    if (did)
        did_put_attrs(f, cfg, did_beta, did);
    if (H5Fclose(f) < 0)
        die("closing %s failed (disk full?)", stage);
    h5u_commit(stage, path);
    free(stage);
}

static void write_with_attrs(const char *path, const PrefData *d, const char *config_text,
                             const SynthTask *t, const char *kind, const SynthConfig *cfg,
                             double entropy)
{
    write_with_attrs_did(path, d, config_text, t, kind, cfg, entropy, NAN, NULL);
}

/* The DID training file (did.h) in place of the teacher's preference file. */
static void did_pref_file(SynthTask *t, const SynthConfig *sc, double beta, int64_t n, const char *path,
                          const char *text)
{
    PrefData d;
    DidStats st;
    did_make_prefs(t, sc, beta, SYNTH_SPLIT_TRAIN, n, &d, &st);
    util_mkdir_parent(path);
    write_with_attrs_did(path, &d, text, t, "preferences", sc, NAN, beta, &st);
    say("synth: wrote %s: DID data, %lld prompts x %d pairs: chosen from %s, rejected from %s%s (beta %g, "
        "%lld responses per prompt enumerated)\n",
        path, (long long)n, sc->did_pairs, sc->chosen_from, sc->rejected_from,
        !strcmp(sc->rejected_from, "mix") ? " (mixture)" : "", beta, (long long)st.n_responses);
    say("  exact: DID entropy H(pi_c/pi_rej) %.4f nats; KL(pi* || pi_ref) %.4f; reward pi_ref %.4f pi* %.4f; "
        "DPO's population optimum keeps KL(pi_dpo || pi*) = %.4f\n",
        st.did_entropy, st.kl_star_ref, st.reward_ref, st.reward_star, st.kl_dpo_star);
    say("  pairs: %lld with the same response twice, %lld whose chosen has the higher true reward\n",
        (long long)st.n_same, (long long)st.n_chosen_better);
    prefdata_free(&d);
}

static void mean_std(const double *x, int64_t n, double *mean, double *std)
{
    double s = 0.0, q = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    const double m = n > 0 ? s / (double)n : 0.0;
    for (int64_t i = 0; i < n; i++)
        q += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = n > 1 ? sqrt(q / (double)(n - 1)) : 0.0;
}

static void say_labels(const SynthLabelStats *st, const char *order)
{
    const int64_t decided = st->n_pairs - st->n_ties;
    say("  labels: %lld pairs; the chosen response has the higher %s in %lld of %lld pairs "
        "(%.1f%%), %lld ties, %lld flipped by noise\n",
        (long long)st->n_pairs, order, (long long)st->n_agree, (long long)decided,
        decided > 0 ? 100.0 * (double)st->n_agree / (double)decided : 0.0, (long long)st->n_ties,
        (long long)st->n_flipped);
    if (st->n_lonely)
        warn("%lld prompts have fewer than 2 responses: no pairs for them", (long long)st->n_lonely);
}

/* One preference file of the task: sample, write, summarise. */
static void synth_pref_file(SynthTask *t, const SynthConfig *sc, int split, int64_t n, const char *path,
                            const char *text)
{
    PrefData d;
    double *rew;
    SynthLabelStats st;
    synth_make_prefs(t, sc, split, n, &d, &rew, &st);
    util_mkdir_parent(path);
    write_with_attrs(path, &d, text, t, "preferences", sc, NAN);
    double m, sd, tm, tsd;
    mean_std(rew, d.n_responses, &m, &sd);
    double *care = xmalloc((size_t)n * sizeof(double)), *trew = xmalloc((size_t)n * sizeof(double));
    int64_t low = 0;
    for (int64_t i = 0; i < n; i++) {
        care[i] = synth_care(t, i);
        trew[i] = synth_teacher_reward(t, i);
    }
    mean_std(trew, n, &tm, &tsd);
    for (int64_t i = 0; i < n; i++)
        low += care[i] < 0.1 * sc->reward_scale;
    say("synth: wrote %s (%s split): %lld prompts x %d responses, %lld pairs (%s)\n", path,
        split_name(split), (long long)n, sc->k, (long long)d.n_pairs, sc->pairs);
    say("  true reward: mean %.4f std %.4f over responses; the teacher's expected reward %.4f "
        "(mean over prompts); %lld of %lld prompts (%.1f%%) care less than 0.1 x reward_scale\n",
        m, sd, tm, (long long)low, (long long)n, 100.0 * (double)low / (double)n);
    say_labels(&st, "true reward");
    free(care);
    free(trew);
    free(rew);
    prefdata_free(&d);
}

static const char synth_usage[] =
    "usage: prefer synth [CONFIG] [--set section.key=value ...] [--help]\n"
    "\n"
    "Write the synthetic preference task (docs/synthetic-task.md): a seeded random Markov teacher\n"
    "language over synth.vocab_size tokens (token 0 ends a response) and a hidden true reward\n"
    "r(x, y) = care(x) * sum of the response tokens' weights. Three HDF5 files (prefer.prefdata):\n"
    "  synth.sft_out      SFT demonstrations: synth.n_prompts prompts, one teacher response each\n"
    "  synth.out          training preferences: the same prompts, synth.k teacher responses each,\n"
    "                     true rewards as scores, pairs (synth.pairs) labelled by Bradley-Terry on\n"
    "                     the true reward (synth.label_temp), flipped with prob. synth.label_noise\n"
    "  synth.heldout_out  the same for synth.n_heldout prompts of the held-out split\n"
    "(\"\" skips synth.sft_out or synth.heldout_out.) Every file carries the task's parameters as\n"
    "synth_* attributes, so later commands can rebuild the task, its rewards and its exact\n"
    "KL-regularised optimum. Prints the teacher's entropy (the lowest SFT loss), reward statistics\n"
    "and how often the labels agree with the true-reward order. Only rank 0 works; run it\n"
    "without mpirun.\n";

int cmd_synth(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    static const char *const allowed[] = {NULL};
    cli_check_flags(&a, "synth", allowed);
    if (a.help) {
        say("%s", synth_usage);
        return 0;
    }
    /* every rank loads the config so that a bad file fails everywhere the same way */
    PreferConfig cfg;
    cli_load_config(&a, &cfg);
    cli_print_config(&cfg);
    if (util_rank() != 0) {
        config_free(&cfg);
        return 0;
    }
    const SynthConfig *sc = &cfg.synth;
    if (!sc->out || !sc->out[0])
        die_user("synth: synth.out is empty (set it in the config or --set synth.out=FILE)");
    const char *names[3] = {"synth.sft_out", "synth.out", "synth.heldout_out"};
    const char *paths[3] = {sc->sft_out, sc->out, sc->heldout_out};
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (paths[i] && paths[j] && paths[i][0] && !strcmp(paths[i], paths[j]))
                die_user("synth: %s and %s are both \"%s\": give each file its own name", names[i],
                         names[j], paths[i]);
    if (sc->vocab_size > cfg.model.vocab_size)
        warn("synth.vocab_size = %d exceeds model.vocab_size = %d: training this config "
             "on the corpus will be refused",
             sc->vocab_size, cfg.model.vocab_size);
    if (sc->prompt_len + sc->response_len > cfg.model.context)
        warn("synth.prompt_len + synth.response_len = %d exceeds model.context = %d",
             sc->prompt_len + sc->response_len, cfg.model.context);

    double t0 = now_s();
    SynthTask t;
    synth_task_init(&t, sc);
    char *text = config_to_text(&cfg);
    if (sc->sft_out && sc->sft_out[0]) {
        PrefData d;
        double h;
        synth_make_corpus(sc, &d, &h);
        util_mkdir_parent(sc->sft_out);
        synth_task_bind(&t, SYNTH_SPLIT_TRAIN, 0);
        write_with_attrs(sc->sft_out, &d, text, &t, "sft", NULL, h);
        say("synth: wrote %s: %lld prompts, one teacher response each; teacher entropy %.4f "
            "nats/token = the lowest achievable SFT loss\n",
            sc->sft_out, (long long)d.n_prompts, h);
        prefdata_free(&d);
    }
    if (did_enabled(sc))
        did_pref_file(&t, sc, cfg.loss.beta, sc->n_prompts, sc->out, text);
    else
        synth_pref_file(&t, sc, SYNTH_SPLIT_TRAIN, sc->n_prompts, sc->out, text);
    if (sc->heldout_out && sc->heldout_out[0])
        synth_pref_file(&t, sc, SYNTH_SPLIT_HELDOUT, sc->n_heldout, sc->heldout_out, text);
    say("synth: done (%.2f s)\n", now_s() - t0);
    free(text);
    synth_task_free(&t);
    config_free(&cfg);
    return 0;
}

static const char label_usage[] =
    "usage: prefer label [CONFIG] [--set section.key=value ...] [--help]\n"
    "\n"
    "Label the responses of label.in (prefer.prefdata with several responses per prompt, e.g.\n"
    "from `prefer sample`) with preference pairs and write label.out. The scores are the file's\n"
    "/responses/score; a file without scores must come from the synthetic task (synth_*\n"
    "attributes, copied from its prompt file), and is scored with the true reward. Pairs as in\n"
    "`prefer synth`: synth.pairs (all | best_worst), Bradley-Terry labels with temperature\n"
    "synth.label_temp, flipped with probability synth.label_noise; existing pairs are replaced.\n"
    "The draws depend on synth.seed and the file's tokens. Only rank 0 works.\n"
    "With label.reward = lexicon the scores are the AFINN sentiment of each response decoded\n"
    "with label.tokenizer, lexicon label.lexicon (docs/sentiment.md); they replace any scores.\n";

/* label.reward = lexicon: each response decoded with label.tokenizer and scored with the
 * AFINN lexicon label.lexicon (lexicon.h); a malloc'd array of n_responses scores. */
static double *lexicon_rewards(const LabelConfig *lc, const PrefData *d)
{
    if (!lc->lexicon[0] || !lc->tokenizer[0])
        die_user("label: label.reward = lexicon needs label.lexicon (a file) and label.tokenizer (a directory)");
    Lexicon *lx = lexicon_load_or_die(lc->lexicon);
    Bpe *bpe = bpe_load_or_die(lc->tokenizer);
    if (d->vocab_size > bpe_vocab_size(bpe))
        die_user("label: %s has vocab_size %lld but the tokenizer %s has %d tokens", lc->in,
                 (long long)d->vocab_size, lc->tokenizer, bpe_vocab_size(bpe));
    double *rew = xmalloc((size_t)(d->n_responses > 0 ? d->n_responses : 1) * sizeof(double));
    for (int64_t r = 0; r < d->n_responses; r++)
        rew[r] = lexicon_score_ids(lx, bpe, d->response_tokens + d->response_offsets[r],
                                   (size_t)(d->response_offsets[r + 1] - d->response_offsets[r]), bpe_eot(bpe));
    say("label: lexicon %s (%zu words, %zu negators), responses decoded with %s\n", lc->lexicon,
        lexicon_n_words(lx), lexicon_n_negators(lx), lc->tokenizer);
    lexicon_free(lx);
    bpe_free(bpe);
    return rew;
}

int cmd_label(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    static const char *const allowed[] = {NULL};
    cli_check_flags(&a, "label", allowed);
    if (a.help) {
        say("%s", label_usage);
        return 0;
    }
    PreferConfig cfg;
    cli_load_config(&a, &cfg);
    cli_print_config(&cfg);
    if (util_rank() != 0) {
        config_free(&cfg);
        return 0;
    }
    const LabelConfig *lc = &cfg.label;
    const SynthConfig *sc = &cfg.synth;
    double t0 = now_s();
    PrefData d;
    prefdata_read(lc->in, 0, &d);
    SynthTask t;
    char err[1024] = "";
    const int rc = synth_task_from_file(lc->in, &t, err, sizeof err);
    if (rc < 0)
        die_user("label: %s", err);
    double *rew;
    const char *source;
    if (!strcmp(lc->reward, "lexicon")) {
        rew = lexicon_rewards(lc, &d);
        free(d.response_score);
        d.response_score = xmalloc((size_t)(d.n_responses > 0 ? d.n_responses : 1) * sizeof(float));
        for (int64_t r = 0; r < d.n_responses; r++)
            d.response_score[r] = (float)rew[r];
        source = "lexicon sentiment";
    } else if (!d.response_score) {
        if (rc != 0)
            die_user("label: %s has no /responses/score and is not from the synthetic task (%s): "
                     "score its responses first",
                     lc->in, err);
        if (synth_check_prompts(&t, &d, err, sizeof err) != 0)
            die_user("label: %s: %s", lc->in, err);
        rew = true_rewards(&t, &d);
        d.response_score = xmalloc((size_t)(d.n_responses > 0 ? d.n_responses : 1) * sizeof(float));
        for (int64_t r = 0; r < d.n_responses; r++)
            d.response_score[r] = (float)rew[r];
        source = "true reward";
    } else {
        rew = xmalloc((size_t)(d.n_responses > 0 ? d.n_responses : 1) * sizeof(double));
        for (int64_t r = 0; r < d.n_responses; r++)
            rew[r] = d.response_score[r];
        source = "score";
    }
    if (d.n_pairs > 0)
        say("label: replacing the %lld pairs of %s\n", (long long)d.n_pairs, lc->in);
    /* the draws: a pure function of synth.seed and the input's tokens */
    uint64_t h = util_hash(UTIL_HASH_INIT, d.prompt_tokens,
                           (size_t)d.prompt_offsets[d.n_prompts] * sizeof(int32_t));
    h = util_hash(h, d.response_tokens, (size_t)d.response_offsets[d.n_responses] * sizeof(int32_t));
    SynthLabelSpec spec = synth_label_spec(sc);
    SynthLabelStats st;
    synth_draw_pairs(&d, rew, &spec, (uint64_t)sc->seed ^ h, SYNTH_STREAM_RELABEL, &st);
    char *text = config_to_text(&cfg);
    util_mkdir_parent(lc->out);
    write_with_attrs(lc->out, &d, text, rc == 0 ? &t : NULL, "preferences", sc, NAN);
    double m, sd;
    mean_std(rew, d.n_responses, &m, &sd);
    say("label: wrote %s: %lld prompts, %lld responses, %lld pairs (%s) from the %ss of %s\n",
        lc->out, (long long)d.n_prompts, (long long)d.n_responses, (long long)d.n_pairs, sc->pairs,
        source, lc->in);
    say("  %s: mean %.4f std %.4f over responses\n", source, m, sd);
    say_labels(&st, source);
    say("label: done (%.2f s)\n", now_s() - t0);
    free(text);
    free(rew);
    synth_task_free(&t);
    prefdata_free(&d);
    config_free(&cfg);
    return 0;
}

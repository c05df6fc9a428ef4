/* train.c: the training loop (see train.h) and `prefer train`.
 *
 * Does not: read files other than through prefdata/ckpt, or call MPI except through dist. */
#define _GNU_SOURCE
#include "prefer/train.h"
#include "prefer/ckpt.h"
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/rng.h"
#include "prefer/runtime.h"
#include "prefer/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* SFT example e = response e: prompt tokens then response tokens. */
static int64_t example_len(const PrefData *d, int64_t e)
{
    int64_t p = d->response_prompt[e];
    return (d->prompt_offsets[p + 1] - d->prompt_offsets[p]) + (d->response_offsets[e + 1] - d->response_offsets[e]);
}

void trainer_init(Trainer *t, const PreferConfig *cfg, const PrefData *data, Gpt *model, int rank, int world)
{
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->data = data;
    t->model = model;
    t->rank = rank;
    t->world = world;
    if (strcmp(cfg->train.objective, "sft") != 0)
        die_user("train.objective = \"%s\" is not implemented yet (available: sft)", cfg->train.objective);
    if (data->vocab_size > model->d.vocab_size)
        die_user("the dataset's vocab_size %lld exceeds model.vocab_size %d", (long long)data->vocab_size,
                 model->d.vocab_size);
    t->n_examples = data->n_responses;
    if (t->n_examples < 1)
        die_user("the dataset has no responses to train on");
    for (int64_t e = 0; e < t->n_examples; e++) {
        int64_t n = example_len(data, e);
        if (n - 1 > model->d.context)
            die_user("response %lld with its prompt is %lld tokens: more than model.context + 1 = %d "
                     "(raise model.context or shorten the data)",
                     (long long)e, (long long)n, model->d.context + 1);
    }
    t->global_batch = (int64_t)world * cfg->train.micro_batch * cfg->train.grad_accum;
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
    size_t N = (size_t)cfg->train.micro_batch * model->d.context;
    t->tok = xmalloc(sizeof(int32_t) * N);
    t->tgt = xmalloc(sizeof(int32_t) * N);
    t->mask = xmalloc(N);
    t->dlogp = xmalloc(sizeof(float) * N);
    t->seq_logp = xmalloc(sizeof(double) * cfg->train.micro_batch);
    t->seq_ntok = xmalloc(sizeof(double) * cfg->train.micro_batch);
}

void trainer_free(Trainer *t)
{
    if (!t)
        return;
    adamw_free(&t->opt);
    free(t->perm);
    free(t->tok);
    free(t->tgt);
    free(t->mask);
    free(t->dlogp);
    free(t->seq_logp);
    free(t->seq_ntok);
    memset(t, 0, sizeof *t);
}

int64_t trainer_example_at(Trainer *t, int64_t q)
{
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

/* Fill the batch buffers with examples ex[0..B); returns T (longest input). */
static int build_batch(Trainer *t, const int64_t *ex, int B, double *targets, double *tokens)
{
    const PrefData *d = t->data;
    int T = 1;
    for (int b = 0; b < B; b++) {
        int n = (int)example_len(d, ex[b]) - 1;
        T = n > T ? n : T;
    }
    size_t NT = (size_t)(unsigned)B * (unsigned)T;
    memset(t->tok, 0, sizeof(int32_t) * NT);
    memset(t->tgt, 0, sizeof(int32_t) * NT);
    memset(t->mask, 0, NT);
    for (int b = 0; b < B; b++) {
        int64_t e = ex[b], p = d->response_prompt[e];
        const int32_t *pt = d->prompt_tokens + d->prompt_offsets[p];
        int lp = (int)(d->prompt_offsets[p + 1] - d->prompt_offsets[p]);
        const int32_t *rt = d->response_tokens + d->response_offsets[e];
        int lr = (int)(d->response_offsets[e + 1] - d->response_offsets[e]);
        int n = lp + lr;
        int32_t *x = t->tok + (size_t)b * T, *y = t->tgt + (size_t)b * T;
        uint8_t *mk = t->mask + (size_t)b * T;
        for (int i = 0; i + 1 < n; i++) {
            x[i] = i < lp ? pt[i] : rt[i - lp];
            int j = i + 1;
            y[i] = j < lp ? pt[j] : rt[j - lp];
            mk[i] = j >= lp;
            *targets += mk[i];
        }
        *tokens += n > 0 ? n - 1 : 0;
    }
    return T;
}

void trainer_step(Trainer *t, StepStats *st)
{
    const TrainConfig *tc = &t->cfg->train;
    Gpt *m = t->model;
    int B = tc->micro_batch, A = tc->grad_accum;
    double t0 = now_s();
    memset(st, 0, sizeof *st);
    int64_t base = t->step * t->global_batch;
    int64_t *ex = xmalloc(sizeof(int64_t) * (size_t)B * A);
    /* this rank's slice of the global batch: micro-step a takes B examples */
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++) {
            int64_t q = base + ((int64_t)a * t->world + t->rank) * B + b;
            ex[a * B + b] = trainer_example_at(t, q);
        }
    /* scored tokens of the whole global batch, for the mean */
    double cnt[2] = {0, 0}; /* targets, tokens */
    for (int a = 0; a < A; a++) {
        for (int b = 0; b < B; b++) {
            int64_t e = ex[a * B + b], p = t->data->response_prompt[e];
            int lp = (int)(t->data->prompt_offsets[p + 1] - t->data->prompt_offsets[p]);
            int n = (int)example_len(t->data, e);
            cnt[0] += n - (lp > 1 ? lp : 1);
            cnt[1] += n - 1;
        }
    }
    dist_allreduce_sum_f64(cnt, 2);
    double total = cnt[0] > 0 ? cnt[0] : 1;

    gpt_zero_grad(m);
    double loss_sum = 0, tg = 0, tk = 0;
    for (int a = 0; a < A; a++) {
        int T = build_batch(t, ex + a * B, B, &tg, &tk);
        gpt_forward(m, t->tok, t->tgt, t->mask, B, T, NULL, t->seq_logp, t->seq_ntok);
        for (int b = 0; b < B; b++)
            loss_sum -= t->seq_logp[b];
        for (size_t i = 0; i < (size_t)B * T; i++)
            t->dlogp[i] = t->mask[i] ? (float)(-1.0 / total) : 0.0f;
        gpt_backward(m, t->dlogp, NULL, NULL);
    }
    free(ex);
    dist_allreduce_sum_f32(m->grads, m->num_params);
    double sums[1] = {loss_sum};
    dist_allreduce_sum_f64(sums, 1);
    st->loss = sums[0] / total;
    st->grad_norm = grad_clip(m->grads, m->num_params, tc->grad_clip);
    if (!isfinite(st->loss) || !isfinite(st->grad_norm))
        die("step %lld: loss %g, gradient norm %g: not finite; stopping without a checkpoint "
            "(try a lower train.lr or train.grad_clip)",
            (long long)t->step + 1, st->loss, st->grad_norm);
    st->lr = sched_lr(t->sched, tc->lr, tc->min_lr_frac, tc->warmup_steps, tc->steps, (int)t->step);
    adamw_step(&t->opt, m->params, m->grads, st->lr);
    t->step++;
    st->tokens = cnt[1];
    st->targets = cnt[0];
    st->seconds = now_s() - t0;
}

void trainer_save(const Trainer *t, const char *path)
{
    char *text = config_to_text(t->cfg);
    CkptState s = {.step = t->step, .rng_key = 0, .rng_counter = 0};
    ckpt_save(path, t->model, &t->opt, &s, text);
    free(text);
}

void trainer_load(Trainer *t, const char *path)
{
    CkptState s;
    ckpt_load(path, t->model, &t->opt, &s);
    t->step = s.step;
}

/* ---------------- prefer train ---------------- */

static void mkdir_p(const char *dir)
{
    char *p = xstrdup(dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                die_user("cannot create directory %s: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        die_user("cannot create directory %s: %s", p, strerror(errno));
    free(p);
}

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

static void save_ckpt(const Trainer *t, const char *dir)
{
    if (t->rank != 0)
        return;
    char *path = xasprintf("%s/ckpt_%08lld.h5", dir, (long long)t->step);
    trainer_save(t, path);
    /* latest.h5 -> newest, replaced atomically */
    char *link = xasprintf("%s/latest.h5", dir), *tmp = xasprintf("%s/.latest.h5.tmp", dir);
    const char *base = strrchr(path, '/') + 1;
    unlink(tmp);
    if (symlink(base, tmp) != 0 || rename(tmp, link) != 0)
        warn("could not update %s: %s", link, strerror(errno));
    say("checkpoint: %s\n", path);
    free(path);
    free(link);
    free(tmp);
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

    PrefData data;
    prefdata_read(cfg.train.data, cfg.model.vocab_size, &data);
    GptDims d = {cfg.model.vocab_size, cfg.model.context, cfg.model.n_layer, cfg.model.n_head, cfg.model.n_embd};
    Gpt m;
    gpt_init(&m, &d, cfg.train.micro_batch);
    gpt_init_weights(&m, (uint64_t)cfg.train.seed, cfg.model.init_std);
    if (cfg.model.init_from && *cfg.model.init_from)
        ckpt_load(cfg.model.init_from, &m, NULL, NULL);
    Trainer t;
    trainer_init(&t, &cfg, &data, &m, rank, world);
    if (cfg.train.resume && *cfg.train.resume)
        trainer_load(&t, cfg.train.resume);
    dist_bcast(m.params, sizeof(float) * m.num_params, 0);
    if (rank == 0)
        mkdir_p(cfg.train.out_dir);
    say("train: %s on %s: %lld examples, %zu parameters, global batch %lld (%d ranks x %d x %d), %d steps\n",
        cfg.train.objective, cfg.train.data, (long long)t.n_examples, m.num_params, (long long)t.global_batch, world,
        cfg.train.micro_batch, cfg.train.grad_accum, cfg.train.steps);

    double t_start = now_s(), tok_window = 0, time_window = 0, first_loss = NAN, loss = NAN;
    while (t.step < cfg.train.steps) {
        StepStats st;
        trainer_step(&t, &st);
        tok_window += st.tokens;
        time_window += st.seconds;
        loss = st.loss;
        if (isnan(first_loss))
            first_loss = st.loss;
        if (t.step % cfg.train.log_every == 0 || t.step == cfg.train.steps || t.step == 1) {
            double rate = tok_window / (time_window > 0 ? time_window : 1);
            double per_step = (now_s() - t_start) / (double)t.step;
            char eta[32];
            fmt_eta(eta, sizeof eta, per_step * (double)(cfg.train.steps - t.step));
            say("step %6lld/%d | loss %.4f | lr %.2e | grad_norm %.3f | %.0f tok/s | ETA %s\n", (long long)t.step,
                cfg.train.steps, st.loss, st.lr, st.grad_norm, rate, eta);
            tok_window = time_window = 0;
        }
        if (cfg.train.ckpt_every > 0 && t.step % cfg.train.ckpt_every == 0 && t.step < cfg.train.steps)
            save_ckpt(&t, cfg.train.out_dir);
    }
    save_ckpt(&t, cfg.train.out_dir);
    say("train: done in %.1f s; loss %.4f -> %.4f\n", now_s() - t_start, first_loss, loss);
    trainer_free(&t);
    gpt_free(&m);
    prefdata_free(&data);
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

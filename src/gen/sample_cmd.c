/* sample_cmd.c: `prefer sample CONFIG`: responses from a checkpoint to a dataset's prompts.
 *
 * Does: every rank loads the checkpoint (dimensions from the file) and the prompts; rank r
 * samples prompts [r P / size, (r+1) P / size) with sample_responses; lengths and tokens are
 * gathered to rank 0, which writes sample.out: the prompts, sample.n responses each in
 * prompt order, no pairs. Because each response has its own RNG stream, the file is the same
 * for any number of ranks and any sample.batch. When sample.data carries the synthetic task
 * (synth.h) and its prompts are the task's, the responses are scored with the true reward
 * and the task attributes are copied, so `prefer label` and `prefer eval` recognise the file.
 * With sample.tokenizer set, rank 0 prints the first sample.print prompt + response pairs
 * decoded (newlines shown as \n).
 * Does not: label pairs (`prefer label`) or evaluate (`prefer eval`).
 */
#define _GNU_SOURCE
#include "prefer/bpe.h"
#include "prefer/ckpt.h"
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/h5util.h"
#include "prefer/lexicon.h"
#include "prefer/prefdata.h"
#include "prefer/runtime.h"
#include "prefer/sample.h"
#include "prefer/synth.h"
#include "prefer/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Seconds between progress lines. */
#define SAMPLE_PROGRESS_EVERY 10.0

static void sample_usage(void)
{
    printf("usage: prefer sample CONFIG [--set section.key=value ...]\n\n"
           "Samples sample.n responses to every prompt of sample.data from the checkpoint\n"
           "sample.checkpoint (its dimensions are used; model.* is ignored) and writes them, with\n"
           "the prompts and no pairs, to sample.out (a prefdata file).\n"
           "Decoding: sample.temperature (0 = greedy), then sample.top_k and sample.top_p\n"
           "filtering; a response ends with sample.eos (kept) or after sample.max_len tokens\n"
           "(at most context + 1 - prompt length). Response k of prompt p draws from RNG stream\n"
           "p * sample.n + k of sample.seed, so the output is the same for any number of ranks\n"
           "and any sample.batch. If sample.data is a file of the synthetic task, the responses\n"
           "are scored with its true reward. With sample.tokenizer = DIR, the first sample.print\n"
           "prompt ||| response pairs are printed decoded (newlines as \\n).\n"
           "Run with mpirun -np P, srun, or alone. Keys: `prefer config --reference`.\n");
}

static void fmt_hms(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    long v = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", v / 3600, (v / 60) % 60, v % 60);
}

typedef struct {
    double t0, last;
    int64_t n;      /* responses of this rank */
    int K;
    int64_t P;      /* prompts in all */
} Progress;

/* Rank 0's share stands for the whole job (the shares differ by at most one prompt). */
static void on_progress(void *ctx, int64_t done, int64_t tokens)
{
    Progress *p = ctx;
    double now = now_s();
    if (now - p->last < SAMPLE_PROGRESS_EVERY || done == p->n)
        return;
    p->last = now;
    double el = now - p->t0;
    char eta[32];
    fmt_hms(eta, sizeof eta, el / (double)done * (double)(p->n - done));
    say("sample: prompts %lld/%lld of rank 0 (%lld in all) | %.0f tok/s per rank | ETA %s\n",
        (long long)(done / p->K), (long long)(p->n / p->K), (long long)p->P, (double)tokens / el, eta);
}

/* Rank 0: score with the synthetic task's true reward when the prompts are the task's, and
 * write the file (with the task's attributes in that case). */
static void write_samples(const SampleConfig *sc, PrefData *o, const char *config_text)
{
    SynthTask t;
    char err[1024] = "";
    int rc = synth_task_from_file(sc->data, &t, err, sizeof err);
    int scored = 0;
    if (rc < 0) {
        warn("sample: %s; the responses are written unscored", err);
    } else if (rc == 0) {
        if (synth_check_prompts(&t, o, err, sizeof err) == 0) {
            synth_score_file_responses(&t, o);
            scored = 1;
        } else {
            warn("sample: %s: %s; the responses are written unscored", sc->data, err);
        }
    }
    util_mkdir_parent(sc->out);
    char *stage = h5u_tmp_name(sc->out);
    prefdata_write(stage, o, config_text);
    if (scored) {
        hid_t f = H5Fopen(stage, H5F_ACC_RDWR, H5P_DEFAULT);
        if (f < 0)
            die("cannot reopen %s to store the synthetic task's attributes", stage);
        synth_put_task_attrs(f, &t, "samples");
        if (H5Fclose(f) < 0)
            die("closing %s failed (disk full?)", stage);
    }
    h5u_commit(stage, sc->out);
    free(stage);
    if (scored) {
        double s = 0;
        for (int64_t i = 0; i < o->n_responses; i++)
            s += o->response_score[i];
        say("sample: true reward of the synthetic task: mean %.4f over %lld responses\n",
            o->n_responses ? s / (double)o->n_responses : 0.0, (long long)o->n_responses);
    }
    synth_task_free(&t);
}

/* fputs text with newlines, tabs and backslashes escaped, so a sample stays on one line */
static void put_escaped(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '\n')
            fputs("\\n", stdout);
        else if (t[i] == '\t')
            fputs("\\t", stdout);
        else if (t[i] == '\\')
            fputs("\\\\", stdout);
        else
            putchar(t[i]);
    }
}

/* Rank 0: the first sc->print responses of o, decoded with sc->tokenizer. */
static void print_decoded(const SampleConfig *sc, const PrefData *o)
{
    Bpe *bpe = bpe_load_or_die(sc->tokenizer);
    if (o->vocab_size > bpe_vocab_size(bpe))
        die_user("sample: the checkpoint has %lld tokens but the tokenizer %s has %d", (long long)o->vocab_size,
                 sc->tokenizer, bpe_vocab_size(bpe));
    int64_t n = o->n_responses < sc->print ? o->n_responses : sc->print;
    for (int64_t i = 0; i < n; i++) {
        int64_t p = o->response_prompt[i];
        size_t lp, lr;
        char *pt = lexicon_decode(bpe, o->prompt_tokens + o->prompt_offsets[p],
                                  (size_t)(o->prompt_offsets[p + 1] - o->prompt_offsets[p]), -1, &lp);
        char *rt = lexicon_decode(bpe, o->response_tokens + o->response_offsets[i],
                                  (size_t)(o->response_offsets[i + 1] - o->response_offsets[i]), bpe_eot(bpe), &lr);
        printf("sample: [prompt %lld, response %lld] ", (long long)p, (long long)(i % sc->n));
        put_escaped(pt, lp);
        fputs(" ||| ", stdout);
        put_escaped(rt, lr);
        putchar('\n');
        free(pt);
        free(rt);
    }
    fflush(stdout);
    bpe_free(bpe);
}

int cmd_sample(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    if (a.help) {
        sample_usage();
        return 0;
    }
    cli_check_flags(&a, "sample", NULL);
    PreferConfig cfg;
    cli_load_config(&a, &cfg);
    cli_print_config(&cfg);
    runtime_setup(&cfg.runtime, 1);
    const SampleConfig *sc = &cfg.sample;
    int rank = dist_rank(), world = dist_size();

    GptDims d;
    char err[1024];
    if (ckpt_read_dims(sc->checkpoint, &d, err, sizeof err) != 0)
        die_user("sample: %s", err);
    Gpt m;
    gpt_init(&m, &d, 1);
    ckpt_load(sc->checkpoint, &m, NULL, NULL);
    PrefData data;
    prefdata_read(sc->data, d.vocab_size, &data);
    if (sc->eos >= d.vocab_size)
        die_user("sample: sample.eos = %d is not a token of the model (vocab_size %d; -1 = none)", sc->eos,
                 d.vocab_size);
    /* every rank checks every prompt, so that all fail alike */
    for (int64_t p = 0; p < data.n_prompts; p++) {
        int64_t n = data.prompt_offsets[p + 1] - data.prompt_offsets[p];
        if (n < 1 || n > d.context)
            die_user("sample: prompt %lld of %s has %lld tokens; a prompt needs 1 to %d (the "
                     "checkpoint's context) so that a response fits", (long long)p, sc->data,
                     (long long)n, d.context);
    }
    int64_t P = data.n_prompts, lo = rank * P / world, hi = (rank + 1) * P / world;
    SampleParams sp = {.temperature = sc->temperature, .top_k = sc->top_k, .top_p = sc->top_p,
                       .max_len = sc->max_len, .eos = sc->eos, .seed = (uint64_t)sc->seed};
    say("sample: %s (%d layers, %d channels, vocab %d, context %d) on %lld prompts of %s: %d each, "
        "temperature %g, top_k %d, top_p %g, max_len %d, eos %d; %d rank%s x batch %d\n",
        sc->checkpoint, d.n_layer, d.n_embd, d.vocab_size, d.context, (long long)P, sc->data, sc->n,
        sc->temperature, sc->top_k, sc->top_p, sc->max_len, sc->eos, world, world > 1 ? "s" : "", sc->batch);

    double t0 = now_s();
    Progress prog = {.t0 = t0, .last = t0, .n = (hi - lo) * sc->n, .K = sc->n, .P = P};
    SampleOut out = {0};
    out.on_progress = on_progress;
    out.ctx = &prog;
    sample_responses(&m, &data, lo, hi, sc->n, &sp, sc->batch, &out);

    /* pack this rank's responses and gather them, in prompt order, to rank 0 */
    int64_t *len = xmalloc(sizeof(int64_t) * (size_t)(out.n > 0 ? out.n : 1));
    int32_t *tok = xmalloc(sizeof(int32_t) * (size_t)(out.n_tokens > 0 ? out.n_tokens : 1));
    int64_t at = 0, n_eos = 0;
    for (int64_t i = 0; i < out.n; i++) {
        len[i] = out.len[i];
        memcpy(tok + at, out.tokens + i * out.stride, sizeof(int32_t) * (size_t)out.len[i]);
        at += out.len[i];
        n_eos += out.tokens[i * out.stride + out.len[i] - 1] == sc->eos;
    }
    sample_out_free(&out);
    size_t n_len, n_tok;
    int64_t *all_len = dist_gatherv_i64(len, (size_t)(hi - lo) * (size_t)sc->n, &n_len);
    int32_t *all_tok = dist_gatherv_i32(tok, (size_t)at, &n_tok);
    free(len);
    free(tok);
    dist_allreduce_sum_i64(&n_eos, 1);
    double secs = now_s() - t0;

    if (rank == 0) {
        if ((int64_t)n_len != P * sc->n)
            die("sample: gathered %zu responses, expected %lld", n_len, (long long)(P * sc->n));
        PrefData o;
        memset(&o, 0, sizeof o);
        o.n_prompts = P;
        o.n_responses = P * sc->n;
        o.vocab_size = d.vocab_size;
        o.prompt_tokens = data.prompt_tokens; /* borrowed */
        o.prompt_offsets = data.prompt_offsets;
        o.response_tokens = all_tok;
        o.response_offsets = xmalloc(sizeof(int64_t) * (size_t)(o.n_responses + 1));
        o.response_prompt = xmalloc(sizeof(int64_t) * (size_t)(o.n_responses > 0 ? o.n_responses : 1));
        o.response_offsets[0] = 0;
        for (int64_t i = 0; i < o.n_responses; i++) {
            o.response_offsets[i + 1] = o.response_offsets[i] + all_len[i];
            o.response_prompt[i] = i / sc->n;
        }
        o.pair_chosen = xcalloc(1, sizeof(int64_t));
        o.pair_rejected = xcalloc(1, sizeof(int64_t));
        char *text = config_to_text(&cfg);
        write_samples(sc, &o, text);
        free(text);
        if (sc->tokenizer[0] && sc->print > 0)
            print_decoded(sc, &o);
        say("sample: wrote %s: %lld prompts x %d responses, %zu tokens (mean length %.2f, %.1f%% ended by "
            "eos) in %.1f s, %.0f tok/s\n",
            sc->out, (long long)P, sc->n, n_tok, o.n_responses ? (double)n_tok / (double)o.n_responses : 0.0,
            o.n_responses ? 100.0 * (double)n_eos / (double)o.n_responses : 0.0, secs,
            secs > 0 ? (double)n_tok / secs : 0.0);
        free(o.response_offsets);
        free(o.response_prompt);
        free(o.response_score);
        free(o.pair_chosen);
        free(o.pair_rejected);
    }
    free(all_len);
    free(all_tok);
    gpt_free(&m);
    prefdata_free(&data);
    config_free(&cfg);
    return 0;
}

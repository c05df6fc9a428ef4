/* logprob_cmd.c: `prefer logprob CKPT [--tokens]`: the log-probability a checkpoint gives
 * to each line of token ids read from standard input.
 *
 * Does: read every line first (space-separated ids, as `prefer tokenize` prints them),
 * check each id against the vocabulary and each line against the context, naming the
 * line; then for each line print sum_{t>=1} log p(x_t | x_<t) (the first token is
 * conditioned on, not scored) and with --tokens the per-token terms, with %.9g. One rank,
 * one line per forward (results do not depend on the other lines).
 * Does not: tokenize text, add an end-of-text token, or run under several ranks.
 */
#include "prefer/ckpt.h"
#include "prefer/cli.h"
#include "prefer/config.h"
#include "prefer/dist.h"
#include "prefer/gpt.h"
#include "prefer/runtime.h"
#include "prefer/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("usage: prefer logprob CKPT [--tokens] [--set runtime.threads=N]\n\n"
           "Reads lines of space-separated token ids from standard input (the output of\n"
           "`prefer tokenize`) and prints, for each line, the sum over t >= 1 of\n"
           "log p(token_t | tokens_<t) under the checkpoint CKPT (natural log, %%.9g; 0 for a\n"
           "line of fewer than 2 tokens). With --tokens, a tab and the per-token terms follow\n"
           "on the same line. A line longer than the model's context, or an id outside its\n"
           "vocabulary, is an error naming the line (a line may be context + 1 tokens long:\n"
           "its last token is scored, never fed in).\n");
}

typedef struct {
    int32_t *tok; /* all lines' ids, concatenated */
    size_t n, cap;
    size_t *off;  /* line i = tok[off[i] .. off[i+1]) */
    size_t lines, lcap;
} Lines;

static void push_tok(Lines *L, int32_t t)
{
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 4096;
        L->tok = xrealloc(L->tok, sizeof(int32_t) * L->cap);
    }
    L->tok[L->n++] = t;
}

static void end_line(Lines *L)
{
    if (L->lines + 2 > L->lcap) {
        L->lcap = L->lcap ? 2 * L->lcap : 256;
        L->off = xrealloc(L->off, sizeof(size_t) * L->lcap);
    }
    L->off[++L->lines] = L->n;
}

/* Read stdin into L, checking ids and lengths against d. Dies naming the line. */
static void read_lines(Lines *L, const GptDims *d)
{
    memset(L, 0, sizeof *L);
    L->lcap = 256;
    L->off = xmalloc(sizeof(size_t) * L->lcap);
    L->off[0] = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, stdin)) >= 0) {
        size_t no = L->lines + 1;
        char *s = line;
        for (;;) {
            while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
                s++;
            if (!*s)
                break;
            char *end;
            int w = (int)strcspn(s, " \t\r\n"); /* the word, for messages */
            w = w > 24 ? 24 : w;
            errno = 0;
            long v = strtol(s, &end, 10);
            if (end == s || (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r'))
                die_user("logprob: stdin line %zu: \"%.*s\" is not a token id", no, w, s);
            if (errno || v < 0 || v >= d->vocab_size)
                die_user("logprob: stdin line %zu: token id %.*s is outside the model's vocabulary [0, %d)", no, w, s,
                         d->vocab_size);
            push_tok(L, (int32_t)v);
            s = end;
        }
        size_t n = L->n - L->off[L->lines];
        if (n > (size_t)d->context + 1) /* the last token is only scored, never fed in */
            die_user("logprob: stdin line %zu has %zu tokens, more than the model's context + 1 = %d", no, n,
                     d->context + 1);
        end_line(L);
    }
    if (ferror(stdin))
        die_user("logprob: reading stdin: %s", strerror(errno));
    free(line);
}

int cmd_logprob(int argc, char **argv)
{
    CliArgs a;
    cli_parse(argc, argv, &a);
    if (a.help) {
        usage();
        return 0;
    }
    static const char *const flags[] = {"--tokens", NULL};
    cli_check_flags(&a, "logprob", flags);
    if (a.n_pos != 1) {
        fprintf(stderr, "prefer: logprob: needs exactly one CKPT (try --help)\n");
        return PREFER_EXIT_USAGE;
    }
    if (dist_size() > 1)
        die_user("logprob runs on one rank: start it without mpirun");
    int per_token = cli_has_flag(&a, "--tokens");
    PreferConfig cfg;
    config_defaults(&cfg);
    config_load(&cfg, NULL, a.sets, a.n_sets); /* runtime.threads */
    runtime_setup(&cfg.runtime, 0);

    const char *path = a.pos[0];
    GptDims d;
    char err[1024];
    if (ckpt_read_dims(path, &d, err, sizeof err) != 0)
        die_user("logprob: %s", err);
    Lines L;
    read_lines(&L, &d);
    size_t longest = 1; /* positions fed in: tokens - 1 */
    for (size_t i = 0; i < L.lines; i++)
        if (L.off[i + 1] - L.off[i] > longest + 1)
            longest = L.off[i + 1] - L.off[i] - 1;
    Gpt m;
    ckpt_load_model(path, 1, (int)longest, 0, &m);
    int32_t *row = xmalloc(sizeof(int32_t) * longest), *tgt = xmalloc(sizeof(int32_t) * longest);
    double *lp = xmalloc(sizeof(double) * longest);
    for (size_t i = 0; i < L.lines; i++) {
        const int32_t *x = L.tok + L.off[i];
        int T = (int)(L.off[i + 1] - L.off[i]), R = T - 1;
        double sum = 0;
        if (R > 0) {
            for (int t = 0; t < R; t++) {
                row[t] = t;
                tgt[t] = x[t + 1];
            }
            gpt_forward_rows(&m, x, NULL, NULL, 1, R, R, row, tgt, lp);
            for (int t = 0; t < R; t++)
                sum += lp[t];
        }
        printf("%.9g", sum);
        if (per_token) {
            putchar('\t');
            for (int t = 0; t < R; t++)
                printf(t ? " %.9g" : "%.9g", lp[t]);
        }
        putchar('\n');
    }
    if (fflush(stdout) != 0)
        die_user("logprob: writing stdout: %s", strerror(errno));
    free(row);
    free(tgt);
    free(lp);
    free(L.tok);
    free(L.off);
    gpt_free(&m);
    config_free(&cfg);
    return 0;
}

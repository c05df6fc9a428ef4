/* import_cmd.c: `prefer import CONFIG`: JSONL preference data -> one prefdata file.
 *
 * Does: every rank loads the tokenizer (import.tokenizer), takes a line-aligned byte share of
 * import.input (jsonl_share: lines belong to the share they begin in), counts its newlines so
 * that every rank knows the file line number of its first line, and parses, renders,
 * tokenizes and truncates its lines (jsonl_import.h). Rank 0 gathers the token arrays in rank
 * order, renumbers prompts, responses and pairs, and writes import.output with the
 * tokenizer's identity, vocab_size = the tokenizer's, and root attributes source,
 * import_format and the counts. The file is the same for any number of ranks. A malformed
 * line (unless import.skip_malformed) or any other failure on one rank ends the whole job
 * through die_user, naming the rank, the file and the line.
 * Does not: deduplicate prompts (each line is its own prompt), or read the model: set
 * import.max_total_tokens to the model's context so that every sequence fits it.
 */
#define _GNU_SOURCE
#include "prefer/bpe.h"
#include "prefer/cli.h"
#include "prefer/dist.h"
#include "prefer/h5util.h"
#include "prefer/jsonl_import.h"
#include "prefer/prefdata.h"
#include "prefer/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Per-rank header gathered to rank 0: sizes, then the counts. */
enum { H_PROMPTS, H_RESPONSES, H_PAIRS, H_LISTED, H_PTOK, H_RTOK, H_COUNTS, H_LEN = H_COUNTS + JSONL_N_COUNTS };

_Static_assert(sizeof(JsonlCounts) == JSONL_N_COUNTS * sizeof(int64_t), "JsonlCounts is JSONL_N_COUNTS int64s");

static void usage(void)
{
    printf("usage: prefer import CONFIG [--set section.key=value ...]\n\n"
           "Reads import.input, a JSONL file of preference data (one JSON object per line), tokenizes it\n"
           "with the GPT-2 BPE tokenizer in import.tokenizer and writes import.output, a prefdata file\n"
           "(docs/formats.md) carrying the tokenizer's identity. import.format (default auto: from the\n"
           "first line with known keys):\n"
           "  explicit        {\"prompt\", \"chosen\", \"rejected\"}: strings, or lists of messages\n"
           "  implicit        {\"chosen\", \"rejected\"} sharing their beginning, the prompt (HH-RLHF: split\n"
           "                  after the last import.template_generation_prompt, \"\\n\\nAssistant:\", they share)\n"
           "  conversational  lists of {\"role\", \"content\"}: {\"messages\"} (one SFT response) or\n"
           "                  {\"chosen\", \"rejected\"[, \"prompt\"]}, rendered with import.template_*\n"
           "  scored          {\"prompt\", \"completions\": [{\"text\", \"score\"}, ...]} (UltraFeedback's\n"
           "                  \"instruction\", \"response\", \"fine-grained_score\" too): every response and its\n"
           "                  score kept, pairs by score (import.pairs = all | best_worst; ties make none)\n"
           "Responses end with <|endoftext|> (import.append_eot). Limits: import.max_prompt_tokens keeps a\n"
           "prompt's end, import.max_response_tokens a response's start; import.max_total_tokens then drops\n"
           "responses whose prompt + response is longer (a pair loses both). A malformed line stops the\n"
           "import naming its line (import.skip_malformed = true: skip and count). Under mpirun every rank\n"
           "parses a share of the file; the output does not depend on the number of ranks. See\n"
           "docs/import.md; keys: `prefer config --reference`.\n");
}

static int bpe_encode_cb(void *ctx, const char *text, size_t n, BpeIds *out)
{
    return bpe_encode((Bpe *)ctx, text, n, 0, out);
}

/* The file line number of the first line of this rank's share: 1 + the newlines of the
 * shares before it. Collective. */
static int64_t first_line_of_share(int64_t newlines, int rank, int world)
{
    size_t tot;
    int64_t *all = dist_gatherv_i64(&newlines, 1, &tot);
    int64_t *before = xcalloc((size_t)world, sizeof(int64_t));
    if (rank == 0)
        for (int r = 1; r < world; r++)
            before[r] = before[r - 1] + all[r - 1];
    dist_bcast(before, sizeof(int64_t) * (size_t)world, 0);
    int64_t first = before[rank] + 1;
    free(all);
    free(before);
    return first;
}

/* Everything rank 0 gathered. */
typedef struct {
    int64_t *hdr; /* [world][H_LEN] */
    int64_t *plen, *rlen, *rprompt, *pc, *pr, *listed;
    int32_t *ptok, *rtok;
    float *score;
} Gathered;

static void gather(const JsonlShard *s, int scored, Gathered *g)
{
    int64_t h[H_LEN];
    h[H_PROMPTS] = s->n_prompts;
    h[H_RESPONSES] = s->n_responses;
    h[H_PAIRS] = s->n_pairs;
    h[H_LISTED] = s->n_listed;
    h[H_PTOK] = s->n_prompt_tokens;
    h[H_RTOK] = s->n_response_tokens;
    memcpy(h + H_COUNTS, &s->counts, sizeof s->counts);
    size_t t;
    g->hdr = dist_gatherv_i64(h, H_LEN, &t);
    g->plen = dist_gatherv_i64(s->prompt_len, (size_t)s->n_prompts, &t);
    g->ptok = dist_gatherv_i32(s->prompt_tokens, (size_t)s->n_prompt_tokens, &t);
    g->rlen = dist_gatherv_i64(s->response_len, (size_t)s->n_responses, &t);
    g->rprompt = dist_gatherv_i64(s->response_prompt, (size_t)s->n_responses, &t);
    g->rtok = dist_gatherv_i32(s->response_tokens, (size_t)s->n_response_tokens, &t);
    g->score = scored ? dist_gatherv_f32(s->response_score, (size_t)s->n_responses, &t) : NULL;
    g->pc = dist_gatherv_i64(s->pair_chosen, (size_t)s->n_pairs, &t);
    g->pr = dist_gatherv_i64(s->pair_rejected, (size_t)s->n_pairs, &t);
    g->listed = dist_gatherv_i64(s->listed, (size_t)s->n_listed, &t);
}

static void gathered_free(Gathered *g)
{
    free(g->hdr);
    free(g->plen);
    free(g->rlen);
    free(g->rprompt);
    free(g->pc);
    free(g->pr);
    free(g->listed);
    free(g->ptok);
    free(g->rtok);
    free(g->score);
    memset(g, 0, sizeof *g);
}

static int64_t *offsets_of(const int64_t *len, int64_t n)
{
    int64_t *off = xmalloc(sizeof(int64_t) * (size_t)(n + 1));
    off[0] = 0;
    for (int64_t i = 0; i < n; i++)
        off[i + 1] = off[i] + len[i];
    return off;
}

/* Rank 0: the shares in rank order -> one PrefData (takes the gathered token arrays), the
 * summed counts in *c. */
static void assemble(Gathered *g, int world, const Bpe *b, PrefData *d, JsonlCounts *c)
{
    memset(d, 0, sizeof *d);
    memset(c, 0, sizeof *c);
    int64_t P = 0, R = 0, N = 0;
    for (int r = 0; r < world; r++) {
        const int64_t *h = g->hdr + (size_t)r * H_LEN;
        P += h[H_PROMPTS];
        R += h[H_RESPONSES];
        N += h[H_PAIRS];
        int64_t *sum = (int64_t *)c;
        for (int k = 0; k < JSONL_N_COUNTS; k++)
            sum[k] += h[H_COUNTS + k];
    }
    /* local indices -> global: add the prompts and responses of the shares before */
    int64_t bp = 0, br = 0, i = 0, k = 0;
    for (int r = 0; r < world; r++) {
        const int64_t *h = g->hdr + (size_t)r * H_LEN;
        for (int64_t j = 0; j < h[H_RESPONSES]; j++)
            g->rprompt[i++] += bp;
        for (int64_t j = 0; j < h[H_PAIRS]; j++, k++) {
            g->pc[k] += br;
            g->pr[k] += br;
        }
        bp += h[H_PROMPTS];
        br += h[H_RESPONSES];
    }
    d->n_prompts = P;
    d->n_responses = R;
    d->n_pairs = N;
    d->vocab_size = bpe_vocab_size(b);
    d->tokenizer = xstrdup(bpe_identity(b));
    d->prompt_offsets = offsets_of(g->plen, P);
    d->response_offsets = offsets_of(g->rlen, R);
    d->prompt_tokens = g->ptok;
    d->response_tokens = g->rtok;
    d->response_prompt = g->rprompt;
    d->response_score = g->score;
    d->pair_chosen = g->pc;
    d->pair_rejected = g->pr;
    g->ptok = g->rtok = NULL;
    g->rprompt = g->pc = g->pr = NULL;
    g->score = NULL;
}

/* Write d to import.output with the import's root attributes. */
static void write_output(const ImportConfig *ic, const PrefData *d, JsonlFormat fmt, const JsonlCounts *c,
                         const char *config_text)
{
    util_mkdir_parent(ic->output);
    char *stage = h5u_tmp_name(ic->output);
    prefdata_write(stage, d, config_text);
    hid_t f = H5Fopen(stage, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        die("import: cannot reopen %s to add the import's attributes", stage);
    h5u_attr_str(f, "source", ic->input);
    h5u_attr_str(f, "import_format", jsonl_format_name(fmt));
    h5u_attr_i64(f, "n_lines", c->lines);
    h5u_attr_i64(f, "n_blank_lines", c->blank);
    h5u_attr_i64(f, "n_malformed_lines", c->malformed);
    h5u_attr_i64(f, "n_records", c->records);
    h5u_attr_i64(f, "n_truncated_prompts", c->truncated_prompts);
    h5u_attr_i64(f, "n_truncated_responses", c->truncated_responses);
    h5u_attr_i64(f, "n_dropped_responses", c->dropped_responses);
    h5u_attr_i64(f, "n_dropped_records", c->dropped_records);
    h5u_attr_i64(f, "n_tied_pairs", c->tied_pairs);
    if (H5Fclose(f) < 0)
        die("import: closing %s failed (disk full?)", stage);
    h5u_commit(stage, ic->output);
    free(stage);
}

static void report(const ImportConfig *ic, const PrefData *d, JsonlFormat fmt, const JsonlCounts *c,
                   const int64_t *listed, int64_t n_listed, int64_t bytes, double parse_s, double secs)
{
    say("import: %s (%s): %lld lines, %lld records -> %lld prompts, %lld responses, %lld pairs; %lld prompt "
        "and %lld response tokens\n",
        ic->input, jsonl_format_name(fmt), (long long)c->lines, (long long)c->records, (long long)d->n_prompts,
        (long long)d->n_responses, (long long)d->n_pairs, (long long)d->prompt_offsets[d->n_prompts],
        (long long)d->response_offsets[d->n_responses]);
    say("import: truncated %lld prompts (max_prompt_tokens %d) and %lld responses (max_response_tokens %d); "
        "dropped %lld records and %lld responses (max_total_tokens %d)\n",
        (long long)c->truncated_prompts, ic->max_prompt_tokens, (long long)c->truncated_responses,
        ic->max_response_tokens, (long long)c->dropped_records, (long long)c->dropped_responses,
        ic->max_total_tokens);
    if (fmt == JSONL_SCORED)
        say("import: pairs = %s; %lld pairs not made for equal scores\n", ic->pairs, (long long)c->tied_pairs);
    if (c->malformed > 0) {
        char lines[256] = "";
        size_t o = 0;
        for (int64_t i = 0; i < n_listed && o < sizeof lines - 24; i++)
            o += (size_t)snprintf(lines + o, sizeof lines - o, "%s%lld", i ? ", " : "", (long long)listed[i]);
        say("import: skipped %lld malformed lines (lines %s%s)\n", (long long)c->malformed, lines,
            c->malformed > n_listed ? ", ..." : "");
    }
    if (c->blank > 0)
        say("import: skipped %lld blank lines\n", (long long)c->blank);
    say("import: wrote %s (tokenizer %s, vocab_size %lld) in %.2f s; parsing and tokenizing %.2f s on the "
        "slowest of %d ranks, %.2f MB/s\n",
        ic->output, d->tokenizer, (long long)d->vocab_size, secs, parse_s, dist_size(),
        parse_s > 0 ? (double)bytes / 1e6 / parse_s : 0.0);
}

int cmd_import(int argc, char **argv)
{
    CliArgs a;
    PreferConfig cfg;
    if (cli_start(argc, argv, "import", usage, NULL, &a, &cfg))
        return 0;
    const ImportConfig *ic = &cfg.import;
    int rank = dist_rank(), world = dist_size();
    double t0 = now_s();
    char err[1024];

    if (!*ic->tokenizer)
        die_user("import: import.tokenizer is not set: give the tokenizer directory (vocab.json + merges.txt, "
                 "encoder.json + vocab.bpe or tokenizer.json; scripts/fetch-gpt2-tokenizer.sh fetches GPT-2's)");
    JsonlTemplate tmpl = {ic->template_system, ic->template_user, ic->template_assistant,
                          ic->template_generation_prompt};
    if (jsonl_template_check(&tmpl, err, sizeof err) != 0)
        die_user("import: %s", err);
    JsonlFormat fmt;
    if (jsonl_format_parse(ic->format, &fmt) != 0)
        die("import: import.format = %s passed the config check but is unknown here", ic->format);
    if (rank == 0)
        cli_print_config(&cfg);

    Bpe *b = bpe_load_or_die(ic->tokenizer);
    int32_t eot = -1;
    if (ic->append_eot && (eot = bpe_eot(b)) < 0)
        die_user("import: the tokenizer in %s has no <|endoftext|> token; set import.append_eot = false",
                 ic->tokenizer);

    FILE *f = fopen(ic->input, "rb");
    struct stat st;
    if (!f)
        die_user("import: cannot open import.input = %s: %s", ic->input, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode))
        die_user("import: import.input = %s is not a file", ic->input);
    int64_t size = (int64_t)st.st_size;

    if (fmt == JSONL_AUTO) { /* every rank reads the same first lines: no message needed */
        int64_t line;
        fmt = jsonl_detect_file(f, &line);
        if (fmt == JSONL_AUTO)
            die_user("import: %s: no line is a JSON object with a known layout (prompt/chosen/rejected, "
                     "chosen/rejected, messages, or prompt/completions); see docs/import.md",
                     ic->input);
        say("import: %s: format %s (detected from line %lld)\n", ic->input, jsonl_format_name(fmt), (long long)line);
    }

    int64_t start, end;
    if (jsonl_share(f, size, rank, world, &start, &end) != 0)
        die_user("import: reading %s failed: %s", ic->input, strerror(errno));
    int64_t nl = jsonl_count_newlines(f, start, end);
    if (nl < 0)
        die_user("import: reading %s failed: %s", ic->input, strerror(errno));
    int64_t first = first_line_of_share(nl, rank, world);

    JsonlImportOptions o;
    memset(&o, 0, sizeof o);
    o.parse.format = fmt;
    o.parse.tmpl = tmpl;
    o.parse.score_key = ic->score_key;
    o.limits.max_prompt = ic->max_prompt_tokens;
    o.limits.max_response = ic->max_response_tokens;
    o.limits.max_total = ic->max_total_tokens;
    o.best_worst = !strcmp(ic->pairs, "best_worst");
    o.eot = eot;
    o.skip_malformed = ic->skip_malformed;
    o.encode = bpe_encode_cb;
    o.encode_ctx = b;
    o.path = ic->input;
    JsonlShard s;
    double t_parse = now_s();
    if (jsonl_import_range(f, start, end, first, &o, &s, err, sizeof err) != 0)
        die_user("import: %s (fix the line, or set import.skip_malformed = true to skip malformed lines)", err);
    fclose(f);
    t_parse = now_s() - t_parse;
    dist_allreduce_max_f64(&t_parse, 1);

    Gathered g;
    memset(&g, 0, sizeof g);
    gather(&s, fmt == JSONL_SCORED, &g);
    jsonl_shard_free(&s);
    if (rank == 0) {
        PrefData d;
        JsonlCounts c;
        assemble(&g, world, b, &d, &c);
        int64_t n_listed = 0;
        for (int r = 0; r < world; r++)
            n_listed += g.hdr[(size_t)r * H_LEN + H_LISTED];
        if (d.n_prompts == 0)
            die_user("import: nothing imported from %s: %lld lines, %lld records, %lld malformed, %lld dropped by "
                     "import.max_total_tokens = %d",
                     ic->input, (long long)c.lines, (long long)c.records, (long long)c.malformed,
                     (long long)c.dropped_records, ic->max_total_tokens);
        char *text = config_to_text(&cfg);
        write_output(ic, &d, fmt, &c, text);
        free(text);
        report(ic, &d, fmt, &c, g.listed, n_listed < JSONL_LISTED ? n_listed : JSONL_LISTED, size, t_parse,
               now_s() - t0);
        prefdata_free(&d);
    }
    gathered_free(&g);
    bpe_free(b);
    config_free(&cfg);
    return 0;
}

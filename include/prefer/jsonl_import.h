/* jsonl_import.h: JSONL preference data (TRL / Hugging Face layouts) -> token records, the
 * pure parts of `prefer import` (docs/import.md).
 *
 * One line is one JSON object (parsed with jansson). Layouts, by import.format:
 *   explicit        {"prompt": s, "chosen": s, "rejected": s}, all strings or all lists of
 *                   messages (TRL's standard and conversational preference forms)
 *   implicit        {"chosen": s, "rejected": s} whose shared beginning is the prompt
 *                   (HH-RLHF), or two lists of messages whose shared leading messages are it
 *   conversational  lists of {"role", "content"} messages: {"messages": [...]} (one
 *                   conversation: an SFT record, its last message the response), or
 *                   {"chosen", "rejected"} with an optional "prompt", rendered through a template
 *   scored          {"prompt": s, "completions": [{"text": s, "score": x}, ...]}
 *                   (UltraFeedback's own names "instruction", "response", "fine-grained_score",
 *                   "overall_score" are accepted too)
 * Other keys of an object are ignored. A record becomes one prompt with its responses: a pair
 * (chosen = response 0, rejected = response 1), one SFT response, or K scored responses
 * that make pairs by score.
 *
 * Does: parse and check a line (errors say what is wrong and, for bad JSON, the column),
 * detect the layout, split an implicit prompt, render messages through a chat template,
 * apply the token limits, make pairs from scores, and import the lines of a byte range of a
 * file into flat token arrays with an encoder given as a callback (so the tests need no
 * vocabulary). Does not: MPI, the tokenizer itself, or writing the dataset (import_cmd.c).
 */
#ifndef PREFER_JSONL_IMPORT_H
#define PREFER_JSONL_IMPORT_H

#include "prefer/bpe.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    JSONL_AUTO = 0, /* detect from the first line with a known layout */
    JSONL_EXPLICIT,
    JSONL_IMPLICIT,
    JSONL_CONVERSATIONAL,
    JSONL_SCORED,
} JsonlFormat;

/* "auto", "explicit", ... <-> JsonlFormat; jsonl_format_parse returns -1 if unknown. */
const char *jsonl_format_name(JsonlFormat f);
int jsonl_format_parse(const char *name, JsonlFormat *out);

/* ---------------------------------------------------------------- chat template */

/* Each role's string holds "{content}" exactly once; a message renders as its role's string
 * with the content in place of "{content}". A prompt renders as its messages in order, then
 * generation_prompt (the opening of the assistant's turn). A response (messages starting with
 * an assistant message) renders the same way minus that opening: template_assistant's text
 * before "{content}" must begin with generation_prompt, which is cut from the first message.
 * So prompt + response is exactly the rendered whole conversation. */
typedef struct {
    const char *system, *user, *assistant, *generation_prompt;
} JsonlTemplate;

/* HH-RLHF's layout: user "\n\nHuman: {content}", assistant "\n\nAssistant: {content}",
 * system "{content}", generation prompt "\n\nAssistant:". */
extern const JsonlTemplate JSONL_TEMPLATE_HH;

/* 0, or -1 with a message naming the import.template_* key at fault. */
int jsonl_template_check(const JsonlTemplate *t, char *err, int errlen);

typedef struct {
    const char *role;    /* "system" | "user" | "assistant" */
    const char *content;
} JsonlMessage;

/* Render m[0..n). as_prompt: the prompt form (generation prompt appended); else the response
 * form (m[0] must be an assistant message). Returns a malloc'd string (caller frees), or NULL
 * with a message in err (unknown role, response not starting with the assistant). */
char *jsonl_render(const JsonlTemplate *t, const JsonlMessage *m, size_t n, int as_prompt, char *err,
                   int errlen);

/* ---------------------------------------------------------------- implicit prompt */

/* Length in bytes of the prompt shared by chosen a[0..na) and rejected b[0..nb).
 * Rule: take their longest common prefix (backed up to a UTF-8 character boundary). If
 * `marker` (the generation prompt, "\n\nAssistant:" for HH-RLHF) occurs wholly inside it, the
 * prompt ends right after its last such occurrence (the DPO paper's HH split, taken inside
 * the shared part only). Otherwise the prompt is the whole common prefix, less a final space,
 * which goes to the responses (TRL's extract_prompt). marker may be NULL or "".
 * Returns the length, or -1 with a message in err when the prompt or a response would be
 * empty. */
int64_t jsonl_implicit_split(const char *a, size_t na, const char *b, size_t nb, const char *marker, char *err,
                             int errlen);

/* ---------------------------------------------------------------- one line -> one record */

typedef enum {
    JSONL_REC_PAIR,   /* 2 responses: chosen, rejected; one pair */
    JSONL_REC_SFT,    /* 1 response, no pair */
    JSONL_REC_SCORED, /* n >= 1 responses with scores; pairs by score */
} JsonlRecKind;

typedef struct {
    JsonlRecKind kind;
    char *prompt;    /* the prompt text, malloc'd */
    int n;           /* responses */
    char **response; /* [n] malloc'd texts */
    double *score;   /* [n] for SCORED, else NULL */
} JsonlRecord;

void jsonl_record_free(JsonlRecord *r); /* zeroes it; NULL and zeroed records are harmless */

typedef struct {
    JsonlFormat format;     /* never JSONL_AUTO here */
    JsonlTemplate tmpl;     /* for message lists (checked with jsonl_template_check) */
    const char *score_key;  /* scored: the completion's score field; "auto" = "score", else
                             * "fine-grained_score", else "overall_score" */
} JsonlParseOptions;

/* Parse one line (without its newline; a trailing '\r' is ignored) into *rec.
 * Returns 0, or -1 with what is wrong in err (no file or line: the caller adds them), e.g.
 * `invalid JSON at column 17: ...`, `"rejected" is missing`, `"chosen" is an empty string`,
 * `"completions"[2]."score" is not a number`. *rec is zeroed on failure. */
int jsonl_parse_line(const char *line, size_t len, const JsonlParseOptions *o, JsonlRecord *rec, char *err,
                     int errlen);

/* The layout of one line from its keys: "completions" -> scored; "messages" -> conversational;
 * "chosen" and "rejected" as lists -> conversational, as strings -> explicit with a "prompt",
 * implicit without. JSONL_AUTO if the line is not a JSON object with such keys. */
JsonlFormat jsonl_detect_line(const char *line, size_t len);

/* ---------------------------------------------------------------- token limits */

typedef struct {
    int64_t max_prompt;   /* > 0: keep the last max_prompt prompt tokens */
    int64_t max_response; /* > 0: keep the first max_response tokens of a response (the end
                           * token counts; a cut response has none) */
    int64_t max_total;    /* > 0: a response whose prompt + response (after the cuts above)
                           * is longer is dropped; a pair loses both */
} JsonlLimits;

typedef struct {
    int64_t lines;               /* lines read (blank and malformed included) */
    int64_t blank;               /* whitespace-only lines, skipped */
    int64_t malformed;           /* malformed lines skipped (import.skip_malformed) */
    int64_t records;             /* well-formed records */
    int64_t truncated_prompts;   /* imported prompts cut to max_prompt */
    int64_t truncated_responses; /* imported responses cut to max_response */
    int64_t dropped_responses;   /* responses over max_total (in dropped records too) */
    int64_t dropped_records;     /* records with no response left */
    int64_t tied_pairs;          /* scored: pairs not made because the scores were equal */
} JsonlCounts;

#define JSONL_N_COUNTS 9 /* JsonlCounts as int64_t[JSONL_N_COUNTS] */

/* Apply the limits to one record of n responses with token lengths *prompt_len and
 * resp_len[n] (>= 1 each). Shortens *prompt_len and resp_len[i] in place, sets keep[i] (0 =
 * dropped for max_total). all_or_none (pairs): one dropped response drops all. Adds to the
 * truncation and drop counts in c (truncations only of what is kept). Returns the number of
 * responses kept (0 = the record is dropped). */
int jsonl_fit(const JsonlLimits *lim, int64_t *prompt_len, int64_t *resp_len, int n, int all_or_none,
              uint8_t *keep, JsonlCounts *c);

/* Pairs among the responses i with keep[i] (keep NULL = all), chosen = the higher score:
 * best_worst = 0: every pair i < j in index order; 1: the first highest against the first
 * lowest. Equal scores make no pair and add to *ties. Writes local indices to chosen[] and
 * rejected[] (room for n(n-1)/2) and returns the count. */
int jsonl_make_pairs(const double *score, const uint8_t *keep, int n, int best_worst, int *chosen, int *rejected,
                     int64_t *ties);

/* ---------------------------------------------------------------- a byte range of a file */

/* Append the token ids of text[0..n) to out. Returns 0 (or non-zero: the import dies). */
typedef int (*JsonlEncodeFn)(void *ctx, const char *text, size_t n, BpeIds *out);

typedef struct {
    JsonlParseOptions parse;
    JsonlLimits limits;
    int best_worst;        /* scored records: import.pairs = best_worst */
    int32_t eot;           /* appended to every response; -1 = none */
    int skip_malformed;
    JsonlEncodeFn encode;
    void *encode_ctx;
    const char *path;      /* for messages */
} JsonlImportOptions;

#define JSONL_LISTED 10 /* malformed line numbers remembered */

/* What one range imported: ragged arrays with local indices (prompt p's tokens follow prompt
 * p-1's; response_prompt and pairs index this shard's prompts and responses). */
typedef struct {
    int32_t *prompt_tokens;
    int64_t *prompt_len, n_prompts, n_prompt_tokens;
    int32_t *response_tokens;
    int64_t *response_len, *response_prompt, n_responses, n_response_tokens;
    float *response_score; /* [n_responses] when the records are scored, else NULL */
    int64_t *pair_chosen, *pair_rejected, n_pairs;
    JsonlCounts counts;
    int64_t listed[JSONL_LISTED]; /* the first malformed line numbers */
    int n_listed;
    size_t cap_pt, cap_p, cap_rt, cap_r, cap_pairs; /* private */
} JsonlShard;

void jsonl_shard_free(JsonlShard *s); /* zeroes it */

/* Line-aligned share r of `world` of a file of `size` bytes: [*start, *end). Share r starts
 * at the first line that begins at or after byte size*r/world (a line begins at 0 or right
 * after a '\n'), and ends where share r+1 starts: a line belongs to the share it begins in,
 * so the shares cover every line once, in order, for any world. Returns 0, or -1 (read error). */
int jsonl_share(FILE *f, int64_t size, int r, int world, int64_t *start, int64_t *end);

/* Number of '\n' bytes in [start, end): the line number of the first line of the next share
 * is 1 + the newlines before it. Returns -1 on a read error. */
int64_t jsonl_count_newlines(FILE *f, int64_t start, int64_t end);

/* The layout of the first line of the file that has one (jsonl_detect_line), and its line
 * number in *line; JSONL_AUTO if none does (or a read error). */
JsonlFormat jsonl_detect_file(FILE *f, int64_t *line);

/* Import the lines beginning in [start, end) of f, the first being line first_line of the
 * file, into *s (zeroed first; free with jsonl_shard_free). Returns 0, or -1 with
 * "PATH:LINE: problem" in err for the first malformed line (unless skip_malformed) or a read
 * error, and *s freed. */
int jsonl_import_range(FILE *f, int64_t start, int64_t end, int64_t first_line, const JsonlImportOptions *o,
                       JsonlShard *s, char *err, int errlen);

#endif

/* jsonl_import.c: JSONL preference lines -> records -> flat token arrays (jsonl_import.h).
 *
 * Does: parse each line with jansson (duplicate keys rejected), check its layout and types,
 * render message lists through the config's chat template, split implicit prompts, encode
 * with the caller's encoder, apply the token limits, make pairs, and collect a byte range of a
 * file into a JsonlShard. Every problem with a line is reported as "PATH:LINE: what" with the
 * true line number of the file, whatever byte the range starts at.
 * Does not: know about MPI or HDF5, or load a tokenizer (import_cmd.c does those).
 */
#define _GNU_SOURCE
#include "prefer/jsonl_import.h"
#include "prefer/util.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CONTENT "{content}"
#define WARN_SKIPPED 3 /* malformed lines warned about (with the reason) per range */

const JsonlTemplate JSONL_TEMPLATE_HH = {
    .system = "{content}",
    .user = "\n\nHuman: {content}",
    .assistant = "\n\nAssistant: {content}",
    .generation_prompt = "\n\nAssistant:",
};

static const char *const FORMAT_NAMES[] = {"auto", "explicit", "implicit", "conversational", "scored"};

const char *jsonl_format_name(JsonlFormat f)
{
    return (unsigned)f < sizeof FORMAT_NAMES / sizeof FORMAT_NAMES[0] ? FORMAT_NAMES[f] : "?";
}

int jsonl_format_parse(const char *name, JsonlFormat *out)
{
    for (size_t i = 0; i < sizeof FORMAT_NAMES / sizeof FORMAT_NAMES[0]; i++)
        if (!strcmp(name, FORMAT_NAMES[i])) {
            *out = (JsonlFormat)i;
            return 0;
        }
    return -1;
}

/* ---------------------------------------------------------------- chat template */

static int count_occurrences(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + strlen(needle), needle))
        n++;
    return n;
}

int jsonl_template_check(const JsonlTemplate *t, char *err, int errlen)
{
    const char *names[3] = {"import.template_system", "import.template_user", "import.template_assistant"};
    const char *vals[3] = {t->system, t->user, t->assistant};
    for (int i = 0; i < 3; i++) {
        int k = vals[i] ? count_occurrences(vals[i], CONTENT) : 0;
        if (k != 1)
            return util_seterr(err, errlen, "%s = \"%s\" must contain \"" CONTENT "\" exactly once (it has %d)", names[i],
                          vals[i] ? vals[i] : "", k);
    }
    const char *gp = t->generation_prompt ? t->generation_prompt : "";
    size_t before = (size_t)(strstr(t->assistant, CONTENT) - t->assistant);
    if (strlen(gp) > before || strncmp(t->assistant, gp, strlen(gp)) != 0)
        return util_seterr(err, errlen,
                      "import.template_generation_prompt = \"%s\" must be the beginning of import.template_assistant "
                      "= \"%s\" (the text before " CONTENT "), so that prompt + response is the whole conversation",
                      gp, t->assistant);
    return 0;
}

/* Growable byte string. */
typedef struct {
    char *p;
    size_t n, cap;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static const char *role_template(const JsonlTemplate *t, const char *role)
{
    if (!strcmp(role, "system"))
        return t->system;
    if (!strcmp(role, "user"))
        return t->user;
    if (!strcmp(role, "assistant"))
        return t->assistant;
    return NULL;
}

/* Role template with the content in place, the first `skip` bytes left out. */
static void render_one(Buf *b, const char *tmpl, const char *content, size_t skip)
{
    const char *at = strstr(tmpl, CONTENT);
    size_t pre = (size_t)(at - tmpl);
    if (skip < pre)
        buf_add(b, tmpl + skip, pre - skip);
    buf_add(b, content, strlen(content));
    buf_add(b, at + strlen(CONTENT), strlen(at + strlen(CONTENT)));
}

char *jsonl_render(const JsonlTemplate *t, const JsonlMessage *m, size_t n, int as_prompt, char *err, int errlen)
{
    if (jsonl_template_check(t, err, errlen) != 0)
        return NULL;
    if (!as_prompt && (n == 0 || strcmp(m[0].role, "assistant") != 0)) {
        util_seterr(err, errlen, "a response must start with an assistant message (it starts with %s)",
               n ? m[0].role : "nothing");
        return NULL;
    }
    Buf b = {0};
    buf_add(&b, "", 0);
    for (size_t i = 0; i < n; i++) {
        const char *tm = role_template(t, m[i].role);
        if (!tm) {
            free(b.p);
            util_seterr(err, errlen, "unknown role \"%s\" (expected system, user or assistant)", m[i].role);
            return NULL;
        }
        render_one(&b, tm, m[i].content, !as_prompt && i == 0 ? strlen(t->generation_prompt) : 0);
    }
    if (as_prompt)
        buf_add(&b, t->generation_prompt, strlen(t->generation_prompt));
    return b.p;
}

/* ---------------------------------------------------------------- implicit prompt */

int64_t jsonl_implicit_split(const char *a, size_t na, const char *b, size_t nb, const char *marker, char *err,
                             int errlen)
{
    size_t lcp = 0, lim = na < nb ? na : nb;
    while (lcp < lim && a[lcp] == b[lcp])
        lcp++;
    /* never split inside a UTF-8 character: back up over continuation bytes */
    while (lcp > 0 && lcp < lim && ((unsigned char)a[lcp] & 0xC0) == 0x80)
        lcp--;
    if (lcp == na && lcp == nb && !(marker && *marker && memmem(a, na, marker, strlen(marker))))
        return util_seterr(err, errlen, "\"chosen\" and \"rejected\" are identical (no prompt can be split off)");
    size_t split = 0, ml = marker ? strlen(marker) : 0;
    int found = 0;
    if (ml > 0 && ml <= lcp)
        for (size_t i = lcp - ml + 1; i-- > 0;)
            if (!memcmp(a + i, marker, ml)) {
                split = i + ml;
                found = 1;
                break;
            }
    if (!found) {
        split = lcp;
        if (split > 0 && a[split - 1] == ' ')
            split--;
    }
    if (split == 0)
        return util_seterr(err, errlen,
                      "\"chosen\" and \"rejected\" share no beginning, so the implicit prompt would be empty");
    if (split == na || split == nb)
        return util_seterr(err, errlen,
                      "\"%s\" is the shared prompt itself (the other continues it), so its response would be empty",
                      split == na ? "chosen" : "rejected");
    return (int64_t)split;
}

/* ---------------------------------------------------------------- JSON helpers */

static const char *kind_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Non-empty string at key of obj. */
static int get_text(json_t *obj, const char *key, const char **out, char *err, int errlen)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return util_seterr(err, errlen, "\"%s\" is missing", key);
    if (!json_is_string(v))
        return util_seterr(err, errlen, "\"%s\" is %s, expected a string", key, kind_of(v));
    if (json_string_length(v) == 0)
        return util_seterr(err, errlen, "\"%s\" is an empty string", key);
    *out = json_string_value(v);
    return 0;
}

/* The list of messages at key: each {"role": system|user|assistant, "content": string};
 * content may be empty only in a system message. *out is malloc'd (borrowed strings). */
static int get_messages(json_t *obj, const char *key, JsonlMessage **out, size_t *n, char *err, int errlen)
{
    *out = NULL;
    *n = 0;
    json_t *v = json_object_get(obj, key);
    if (!v)
        return util_seterr(err, errlen, "\"%s\" is missing", key);
    if (!json_is_array(v))
        return util_seterr(err, errlen, "\"%s\" is %s, expected a list of messages", key, kind_of(v));
    size_t k = json_array_size(v);
    if (k == 0)
        return util_seterr(err, errlen, "\"%s\" is an empty list", key);
    JsonlMessage *m = xmalloc(sizeof *m * k);
    for (size_t i = 0; i < k; i++) {
        json_t *e = json_array_get(v, i), *role, *content;
        if (!json_is_object(e)) {
            free(m);
            return util_seterr(err, errlen, "\"%s\"[%zu] is %s, expected a message {\"role\", \"content\"}", key, i,
                          kind_of(e));
        }
        role = json_object_get(e, "role");
        content = json_object_get(e, "content");
        const char *miss = !role ? "role" : !content ? "content" : NULL;
        if (miss) {
            free(m);
            return util_seterr(err, errlen, "\"%s\"[%zu].\"%s\" is missing", key, i, miss);
        }
        if (!json_is_string(role) || !json_is_string(content)) {
            json_t *bad = !json_is_string(role) ? role : content;
            free(m);
            return util_seterr(err, errlen, "\"%s\"[%zu].\"%s\" is %s, expected a string", key, i,
                          bad == role ? "role" : "content", kind_of(bad));
        }
        m[i].role = json_string_value(role);
        m[i].content = json_string_value(content);
        if (strcmp(m[i].role, "system") && strcmp(m[i].role, "user") && strcmp(m[i].role, "assistant")) {
            int r = util_seterr(err, errlen, "\"%s\"[%zu].\"role\" is \"%s\", expected system, user or assistant", key, i,
                           m[i].role);
            free(m);
            return r;
        }
        if (!*m[i].content && strcmp(m[i].role, "system")) {
            free(m);
            return util_seterr(err, errlen, "\"%s\"[%zu].\"content\" is an empty string", key, i);
        }
    }
    *out = m;
    *n = k;
    return 0;
}

/* Render into *dst; errors name the key. */
static int render_to(const JsonlTemplate *t, const char *key, const JsonlMessage *m, size_t n, int as_prompt,
                     char **dst, char *err, int errlen)
{
    char why[256];
    *dst = jsonl_render(t, m, n, as_prompt, why, sizeof why);
    if (!*dst)
        return util_seterr(err, errlen, "\"%s\": %s", key, why);
    if (!**dst)
        return util_seterr(err, errlen, "\"%s\" renders to an empty %s", key, as_prompt ? "prompt" : "response");
    return 0;
}

static void rec_alloc(JsonlRecord *r, JsonlRecKind kind, int n)
{
    r->kind = kind;
    r->n = n;
    r->response = xcalloc((size_t)n, sizeof(char *));
    if (kind == JSONL_REC_SCORED)
        r->score = xcalloc((size_t)n, sizeof(double));
}

void jsonl_record_free(JsonlRecord *r)
{
    if (!r)
        return;
    free(r->prompt);
    for (int i = 0; r->response && i < r->n; i++)
        free(r->response[i]);
    free(r->response);
    free(r->score);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- the layouts */

/* {"prompt", "chosen", "rejected"}: three strings or three lists of messages. */
static int parse_explicit(json_t *o, const JsonlParseOptions *opt, JsonlRecord *r, char *err, int errlen)
{
    json_t *p = json_object_get(o, "prompt");
    if (!p)
        return util_seterr(err, errlen, "\"prompt\" is missing");
    if (json_is_array(p)) {
        JsonlMessage *mp = NULL, *mc = NULL, *mr = NULL;
        size_t np, nc, nr;
        int rc = -1;
        rec_alloc(r, JSONL_REC_PAIR, 2);
        if (get_messages(o, "prompt", &mp, &np, err, errlen) == 0 &&
            get_messages(o, "chosen", &mc, &nc, err, errlen) == 0 &&
            get_messages(o, "rejected", &mr, &nr, err, errlen) == 0 &&
            render_to(&opt->tmpl, "prompt", mp, np, 1, &r->prompt, err, errlen) == 0 &&
            render_to(&opt->tmpl, "chosen", mc, nc, 0, &r->response[0], err, errlen) == 0 &&
            render_to(&opt->tmpl, "rejected", mr, nr, 0, &r->response[1], err, errlen) == 0)
            rc = 0;
        free(mp);
        free(mc);
        free(mr);
        return rc;
    }
    const char *ps, *cs, *rs;
    if (get_text(o, "prompt", &ps, err, errlen) || get_text(o, "chosen", &cs, err, errlen) ||
        get_text(o, "rejected", &rs, err, errlen)) {
        json_t *c = json_object_get(o, "chosen"), *r2 = json_object_get(o, "rejected");
        if (json_is_string(p) && (json_is_array(c) || json_is_array(r2)))
            return util_seterr(err, errlen, "\"prompt\" is a string but \"%s\" is a list: all three must be strings, "
                                       "or all three lists of messages",
                          json_is_array(c) ? "chosen" : "rejected");
        return -1;
    }
    rec_alloc(r, JSONL_REC_PAIR, 2);
    r->prompt = xstrdup(ps);
    r->response[0] = xstrdup(cs);
    r->response[1] = xstrdup(rs);
    return 0;
}

static int same_message(const JsonlMessage *a, const JsonlMessage *b)
{
    return !strcmp(a->role, b->role) && !strcmp(a->content, b->content);
}

/* {"chosen", "rejected"} lists: the shared leading messages are the prompt. */
static int parse_implicit_lists(json_t *o, const JsonlParseOptions *opt, JsonlRecord *r, char *err, int errlen)
{
    JsonlMessage *mc = NULL, *mr = NULL;
    size_t nc, nr;
    int rc = -1;
    if (get_messages(o, "chosen", &mc, &nc, err, errlen) || get_messages(o, "rejected", &mr, &nr, err, errlen))
        goto out;
    size_t k = 0;
    while (k < nc && k < nr && same_message(&mc[k], &mr[k]))
        k++;
    if (k == 0) {
        util_seterr(err, errlen, "\"chosen\" and \"rejected\" share no leading message, so the implicit prompt would be "
                            "empty");
        goto out;
    }
    if (k == nc || k == nr) {
        util_seterr(err, errlen, "\"%s\" has no message after the %zu shared ones, so its response would be empty",
               k == nc ? "chosen" : "rejected", k);
        goto out;
    }
    rec_alloc(r, JSONL_REC_PAIR, 2);
    if (render_to(&opt->tmpl, "prompt (the shared messages)", mc, k, 1, &r->prompt, err, errlen) == 0 &&
        render_to(&opt->tmpl, "chosen", mc + k, nc - k, 0, &r->response[0], err, errlen) == 0 &&
        render_to(&opt->tmpl, "rejected", mr + k, nr - k, 0, &r->response[1], err, errlen) == 0)
        rc = 0;
out:
    free(mc);
    free(mr);
    return rc;
}

static int parse_implicit(json_t *o, const JsonlParseOptions *opt, JsonlRecord *r, char *err, int errlen)
{
    if (json_object_get(o, "prompt"))
        return util_seterr(err, errlen, "has a \"prompt\": that is the explicit layout (import.format = explicit, or auto)");
    json_t *c = json_object_get(o, "chosen");
    if (json_is_array(c))
        return parse_implicit_lists(o, opt, r, err, errlen);
    const char *cs, *rs;
    if (get_text(o, "chosen", &cs, err, errlen) || get_text(o, "rejected", &rs, err, errlen))
        return -1;
    size_t nc = strlen(cs), nr = strlen(rs);
    char why[256];
    int64_t split = jsonl_implicit_split(cs, nc, rs, nr, opt->tmpl.generation_prompt, why, sizeof why);
    if (split < 0)
        return util_seterr(err, errlen, "%s", why);
    rec_alloc(r, JSONL_REC_PAIR, 2);
    r->prompt = strndup(cs, (size_t)split);
    if (!r->prompt)
        die("out of memory copying a prompt");
    r->response[0] = xstrdup(cs + split);
    r->response[1] = xstrdup(rs + split);
    return 0;
}

/* {"messages"} (SFT) or {"chosen", "rejected"[, "prompt"]} as lists of messages. */
static int parse_conversational(json_t *o, const JsonlParseOptions *opt, JsonlRecord *r, char *err, int errlen)
{
    if (json_object_get(o, "messages")) {
        JsonlMessage *m;
        size_t n;
        if (get_messages(o, "messages", &m, &n, err, errlen))
            return -1;
        int rc = -1;
        if (strcmp(m[n - 1].role, "assistant") != 0) {
            util_seterr(err, errlen, "the last message of \"messages\" is the %s's; it must be the assistant's (the response)",
                   m[n - 1].role);
        } else {
            rec_alloc(r, JSONL_REC_SFT, 1);
            if (render_to(&opt->tmpl, "messages", m, n - 1, 1, &r->prompt, err, errlen) == 0 &&
                render_to(&opt->tmpl, "messages", m + n - 1, 1, 0, &r->response[0], err, errlen) == 0)
                rc = 0;
        }
        free(m);
        return rc;
    }
    json_t *c = json_object_get(o, "chosen");
    if (c && !json_is_array(c))
        return util_seterr(err, errlen, "\"chosen\" is %s: the conversational layout has lists of messages (strings are "
                                   "import.format = explicit or implicit, or auto)",
                      kind_of(c));
    if (!c && !json_object_get(o, "rejected"))
        return util_seterr(err, errlen, "neither \"messages\" nor \"chosen\" and \"rejected\" is present");
    if (json_object_get(o, "prompt"))
        return parse_explicit(o, opt, r, err, errlen);
    return parse_implicit_lists(o, opt, r, err, errlen);
}

/* The score of completion e (index i) by score_key. */
static int get_score(json_t *e, size_t i, const char *score_key, double *out, char *err, int errlen)
{
    static const char *const AUTO[] = {"score", "fine-grained_score", "overall_score"};
    const char *key = score_key;
    json_t *v = NULL;
    if (!strcmp(score_key, "auto")) {
        for (size_t k = 0; k < 3 && !v; k++)
            if ((v = json_object_get(e, AUTO[k])))
                key = AUTO[k];
        if (!v)
            return util_seterr(err, errlen,
                          "\"completions\"[%zu] has no \"score\" (nor \"fine-grained_score\" or \"overall_score\")", i);
    } else if (!(v = json_object_get(e, key))) {
        return util_seterr(err, errlen, "\"completions\"[%zu].\"%s\" is missing (import.score_key)", i, key);
    }
    if (!json_is_number(v))
        return util_seterr(err, errlen, "\"completions\"[%zu].\"%s\" is %s, expected a number", i, key, kind_of(v));
    double x = json_number_value(v);
    if (!isfinite(x) || fabs(x) > FLT_MAX)
        return util_seterr(err, errlen, "\"completions\"[%zu].\"%s\" = %g does not fit a float32", i, key, x);
    *out = x;
    return 0;
}

/* {"prompt" | "instruction", "completions": [{"text" | "response", score}, ...]} */
static int parse_scored(json_t *o, const JsonlParseOptions *opt, JsonlRecord *r, char *err, int errlen)
{
    const char *ps;
    const char *pk = json_object_get(o, "prompt") || !json_object_get(o, "instruction") ? "prompt" : "instruction";
    if (get_text(o, pk, &ps, err, errlen))
        return -1;
    json_t *cs = json_object_get(o, "completions");
    if (!cs)
        return util_seterr(err, errlen, "\"completions\" is missing");
    if (!json_is_array(cs))
        return util_seterr(err, errlen, "\"completions\" is %s, expected a list of {\"text\", \"score\"}", kind_of(cs));
    size_t k = json_array_size(cs);
    if (k == 0)
        return util_seterr(err, errlen, "\"completions\" is an empty list");
    /* at most 4096: all pairs of a record (k (k-1) / 2) then stay far below INT_MAX */
    if (k > 4096)
        return util_seterr(err, errlen, "\"completions\" has %zu entries (at most 4096)", k);
    rec_alloc(r, JSONL_REC_SCORED, (int)k);
    r->prompt = xstrdup(ps);
    for (size_t i = 0; i < k; i++) {
        json_t *e = json_array_get(cs, i);
        if (!json_is_object(e))
            return util_seterr(err, errlen, "\"completions\"[%zu] is %s, expected {\"text\", \"score\"}", i, kind_of(e));
        const char *tk = json_object_get(e, "text") || !json_object_get(e, "response") ? "text" : "response";
        json_t *t = json_object_get(e, tk);
        if (!t)
            return util_seterr(err, errlen, "\"completions\"[%zu].\"text\" is missing", i);
        if (!json_is_string(t))
            return util_seterr(err, errlen, "\"completions\"[%zu].\"%s\" is %s, expected a string", i, tk, kind_of(t));
        if (json_string_length(t) == 0)
            return util_seterr(err, errlen, "\"completions\"[%zu].\"%s\" is an empty string", i, tk);
        if (get_score(e, i, opt->score_key, &r->score[i], err, errlen))
            return -1;
        r->response[i] = xstrdup(json_string_value(t));
    }
    return 0;
}

/* The line as a JSON object, or NULL with the problem in err. */
static json_t *load_object(const char *line, size_t len, char *err, int errlen)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!o) {
        util_seterr(err, errlen, "invalid JSON at column %d: %s", je.column, je.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        util_seterr(err, errlen, "the line is %s, expected a JSON object", kind_of(o));
        json_decref(o);
        return NULL;
    }
    return o;
}

int jsonl_parse_line(const char *line, size_t len, const JsonlParseOptions *o, JsonlRecord *rec, char *err,
                     int errlen)
{
    memset(rec, 0, sizeof *rec);
    json_t *obj = load_object(line, len, err, errlen);
    if (!obj)
        return -1;
    int rc;
    switch (o->format) {
    case JSONL_EXPLICIT: rc = parse_explicit(obj, o, rec, err, errlen); break;
    case JSONL_IMPLICIT: rc = parse_implicit(obj, o, rec, err, errlen); break;
    case JSONL_CONVERSATIONAL: rc = parse_conversational(obj, o, rec, err, errlen); break;
    case JSONL_SCORED: rc = parse_scored(obj, o, rec, err, errlen); break;
    default: rc = util_seterr(err, errlen, "no layout given (import.format = auto is resolved before parsing)");
    }
    json_decref(obj);
    if (rc != 0)
        jsonl_record_free(rec);
    return rc;
}

JsonlFormat jsonl_detect_line(const char *line, size_t len)
{
    json_t *o = load_object(line, len, NULL, 0);
    if (!o)
        return JSONL_AUTO;
    JsonlFormat f = JSONL_AUTO;
    json_t *c = json_object_get(o, "chosen");
    if (json_object_get(o, "completions"))
        f = JSONL_SCORED;
    else if (json_object_get(o, "messages"))
        f = JSONL_CONVERSATIONAL;
    else if (c && json_object_get(o, "rejected"))
        f = json_is_array(c) ? JSONL_CONVERSATIONAL : json_object_get(o, "prompt") ? JSONL_EXPLICIT : JSONL_IMPLICIT;
    json_decref(o);
    return f;
}

/* ---------------------------------------------------------------- limits and pairs */

int jsonl_fit(const JsonlLimits *lim, int64_t *prompt_len, int64_t *resp_len, int n, int all_or_none,
              uint8_t *keep, JsonlCounts *c)
{
    int64_t p = *prompt_len;
    int pcut = lim->max_prompt > 0 && p > lim->max_prompt;
    if (pcut)
        p = lim->max_prompt;
    int kept = 0;
    for (int i = 0; i < n; i++) {
        int64_t r = lim->max_response > 0 && resp_len[i] > lim->max_response ? lim->max_response : resp_len[i];
        keep[i] = !(lim->max_total > 0 && p + r > lim->max_total);
        kept += keep[i];
    }
    if (all_or_none && kept < n) {
        memset(keep, 0, (size_t)n);
        kept = 0;
    }
    for (int i = 0; i < n; i++)
        if (lim->max_response > 0 && resp_len[i] > lim->max_response) {
            resp_len[i] = lim->max_response;
            c->truncated_responses += keep[i];
        }
    c->dropped_responses += n - kept;
    if (kept == 0)
        c->dropped_records++;
    else
        c->truncated_prompts += pcut;
    *prompt_len = p;
    return kept;
}

int jsonl_make_pairs(const double *score, const uint8_t *keep, int n, int best_worst, int *chosen, int *rejected,
                     int64_t *ties)
{
    int np = 0;
    if (best_worst) {
        int hi = -1, lo = -1, k = 0;
        for (int i = 0; i < n; i++) {
            if (keep && !keep[i])
                continue;
            k++;
            if (hi < 0 || score[i] > score[hi])
                hi = i;
            if (lo < 0 || score[i] < score[lo])
                lo = i;
        }
        if (k < 2)
            return 0;
        if (score[hi] == score[lo]) {
            (*ties)++;
            return 0;
        }
        chosen[0] = hi;
        rejected[0] = lo;
        return 1;
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (keep && (!keep[i] || !keep[j]))
                continue;
            if (score[i] == score[j]) {
                (*ties)++;
                continue;
            }
            chosen[np] = score[i] > score[j] ? i : j;
            rejected[np++] = score[i] > score[j] ? j : i;
        }
    return np;
}

/* ---------------------------------------------------------------- shards */

/* Make room for need elements of size elem in *p (capacity *cap elements). */
static void grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    *p = xrealloc(*p, c * elem);
    *cap = c;
}

void jsonl_shard_free(JsonlShard *s)
{
    if (!s)
        return;
    free(s->prompt_tokens);
    free(s->prompt_len);
    free(s->response_tokens);
    free(s->response_len);
    free(s->response_prompt);
    free(s->response_score);
    free(s->pair_chosen);
    free(s->pair_rejected);
    memset(s, 0, sizeof *s);
}

/* Room for need responses in the three per-response arrays (score only when scored). */
static void grow_responses(JsonlShard *s, size_t need, int scored)
{
    if (need <= s->cap_r)
        return;
    size_t c = s->cap_r ? s->cap_r : 64;
    while (c < need)
        c *= 2;
    s->response_len = xrealloc(s->response_len, c * sizeof(int64_t));
    s->response_prompt = xrealloc(s->response_prompt, c * sizeof(int64_t));
    if (scored)
        s->response_score = xrealloc(s->response_score, c * sizeof(float));
    s->cap_r = c;
}

static void grow_pairs(JsonlShard *s, size_t need)
{
    if (need <= s->cap_pairs)
        return;
    size_t c = s->cap_pairs ? s->cap_pairs : 64;
    while (c < need)
        c *= 2;
    s->pair_chosen = xrealloc(s->pair_chosen, c * sizeof(int64_t));
    s->pair_rejected = xrealloc(s->pair_rejected, c * sizeof(int64_t));
    s->cap_pairs = c;
}

static void ids_push(BpeIds *v, int32_t id)
{
    grow((void **)&v->ids, &v->cap, v->n + 1, sizeof(int32_t));
    v->ids[v->n++] = id;
}

/* Scratch of the record loop. */
typedef struct {
    BpeIds prompt, resp;     /* token ids; resp holds all responses back to back */
    int64_t *roff, *rlen;    /* [n+1] offsets into resp, [n] lengths */
    int64_t *map;            /* [n] index in the shard, -1 = dropped */
    uint8_t *keep;
    int *pc, *pr;            /* pair candidates, n(n-1)/2 */
    size_t cap_n, cap_pairs;
} Scratch;

static void scratch_free(Scratch *w)
{
    free(w->prompt.ids);
    free(w->resp.ids);
    free(w->roff);
    free(w->rlen);
    free(w->map);
    free(w->keep);
    free(w->pc);
    free(w->pr);
    memset(w, 0, sizeof *w);
}

static int encode(const JsonlImportOptions *o, const char *text, BpeIds *out, char *err, int errlen)
{
    if (o->encode(o->encode_ctx, text, strlen(text), out) != 0)
        return util_seterr(err, errlen, "the tokenizer failed on the text");
    return 0;
}

/* Tokenize, fit, and append one record to s. */
static int add_record(const JsonlImportOptions *o, const JsonlRecord *r, JsonlShard *s, Scratch *w, char *err,
                      int errlen)
{
    int n = r->n;
    if ((size_t)n > w->cap_n) {
        w->cap_n = (size_t)n;
        w->roff = xrealloc(w->roff, sizeof(int64_t) * ((size_t)n + 1));
        w->rlen = xrealloc(w->rlen, sizeof(int64_t) * (size_t)n);
        w->map = xrealloc(w->map, sizeof(int64_t) * (size_t)n);
        w->keep = xrealloc(w->keep, (size_t)n);
    }
    w->prompt.n = w->resp.n = 0;
    if (encode(o, r->prompt, &w->prompt, err, errlen))
        return -1;
    for (int i = 0; i < n; i++) {
        w->roff[i] = (int64_t)w->resp.n;
        if (encode(o, r->response[i], &w->resp, err, errlen))
            return -1;
        if (o->eot >= 0)
            ids_push(&w->resp, o->eot);
        w->rlen[i] = (int64_t)w->resp.n - w->roff[i];
    }
    int64_t plen = (int64_t)w->prompt.n;
    if (plen == 0 || w->resp.n == 0)
        return util_seterr(err, errlen, "the tokenizer returned no tokens for a non-empty text");
    for (int i = 0; i < n; i++)
        if (w->rlen[i] == 0)
            return util_seterr(err, errlen, "the tokenizer returned no tokens for a non-empty response");
    if (jsonl_fit(&o->limits, &plen, w->rlen, n, r->kind == JSONL_REC_PAIR, w->keep, &s->counts) == 0)
        return 0;

    /* the prompt: its last plen tokens */
    grow((void **)&s->prompt_tokens, &s->cap_pt, (size_t)(s->n_prompt_tokens + plen), sizeof(int32_t));
    memcpy(s->prompt_tokens + s->n_prompt_tokens, w->prompt.ids + (w->prompt.n - (size_t)plen),
           sizeof(int32_t) * (size_t)plen);
    s->n_prompt_tokens += plen;
    grow((void **)&s->prompt_len, &s->cap_p, (size_t)s->n_prompts + 1, sizeof(int64_t));
    int64_t p = s->n_prompts++;
    s->prompt_len[p] = plen;

    /* the kept responses: their first rlen tokens */
    int scored = o->parse.format == JSONL_SCORED;
    for (int i = 0; i < n; i++) {
        w->map[i] = -1;
        if (!w->keep[i])
            continue;
        int64_t len = w->rlen[i];
        grow((void **)&s->response_tokens, &s->cap_rt, (size_t)(s->n_response_tokens + len), sizeof(int32_t));
        memcpy(s->response_tokens + s->n_response_tokens, w->resp.ids + w->roff[i], sizeof(int32_t) * (size_t)len);
        s->n_response_tokens += len;
        grow_responses(s, (size_t)s->n_responses + 1, scored);
        int64_t e = s->n_responses++;
        s->response_len[e] = len;
        s->response_prompt[e] = p;
        if (scored)
            s->response_score[e] = r->score ? (float)r->score[i] : 0.0f;
        w->map[i] = e;
    }

    /* pairs, as local indices of the record, then mapped to the shard's */
    int np = 0;
    size_t room = r->kind == JSONL_REC_SCORED ? (size_t)n * (size_t)(n - 1) / 2 : 1;
    if (room > w->cap_pairs) {
        w->pc = xrealloc(w->pc, sizeof(int) * room);
        w->pr = xrealloc(w->pr, sizeof(int) * room);
        w->cap_pairs = room;
    }
    if (r->kind == JSONL_REC_PAIR) {
        w->pc[0] = 0;
        w->pr[0] = 1;
        np = 1;
    } else if (r->kind == JSONL_REC_SCORED) {
        np = jsonl_make_pairs(r->score, w->keep, n, o->best_worst, w->pc, w->pr, &s->counts.tied_pairs);
    }
    grow_pairs(s, (size_t)(s->n_pairs + np));
    for (int k = 0; k < np; k++) {
        s->pair_chosen[s->n_pairs] = w->map[w->pc[k]];
        s->pair_rejected[s->n_pairs++] = w->map[w->pr[k]];
    }
    return 0;
}

/* ---------------------------------------------------------------- files */

/* The first line beginning at or after byte off (0 or right after a '\n'), or size. */
static int line_start(FILE *f, int64_t size, int64_t off, int64_t *out)
{
    if (off <= 0) {
        *out = 0;
        return 0;
    }
    if (off >= size) {
        *out = size;
        return 0;
    }
    if (fseeko(f, (off_t)(off - 1), SEEK_SET) != 0)
        return -1;
    int64_t pos = off - 1;
    int ch;
    while ((ch = getc(f)) != EOF) {
        pos++;
        if (ch == '\n') {
            *out = pos;
            return 0;
        }
    }
    if (ferror(f))
        return -1;
    *out = size;
    return 0;
}

int jsonl_share(FILE *f, int64_t size, int r, int world, int64_t *start, int64_t *end)
{
    int64_t a = (int64_t)((__int128)size * r / world), b = (int64_t)((__int128)size * (r + 1) / world);
    if (line_start(f, size, a, start) != 0)
        return -1;
    if (r + 1 >= world)
        *end = size;
    else if (line_start(f, size, b, end) != 0)
        return -1;
    return 0;
}

int64_t jsonl_count_newlines(FILE *f, int64_t start, int64_t end)
{
    if (start >= end)
        return 0;
    if (fseeko(f, (off_t)start, SEEK_SET) != 0)
        return -1;
    enum { CHUNK = 1 << 20 };
    char *buf = xmalloc(CHUNK);
    int64_t left = end - start, n = 0;
    while (left > 0) {
        size_t want = left < CHUNK ? (size_t)left : CHUNK;
        size_t got = fread(buf, 1, want, f);
        if (got == 0)
            break;
        for (const char *p = buf, *e = buf + got; (p = memchr(p, '\n', (size_t)(e - p))); p++)
            n++;
        left -= (int64_t)got;
    }
    int bad = ferror(f) || left > 0;
    free(buf);
    return bad ? -1 : n;
}

/* A line of only blanks. */
static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

/* Strip the newline (and a '\r' before it) and, on the file's first line, a UTF-8 BOM. */
static const char *clean_line(const char *buf, size_t *len, int64_t at)
{
    size_t n = *len;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (at == 0 && n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) {
        buf += 3;
        n -= 3;
    }
    *len = n;
    return buf;
}

JsonlFormat jsonl_detect_file(FILE *f, int64_t *line)
{
    *line = 0;
    if (fseeko(f, 0, SEEK_SET) != 0)
        return JSONL_AUTO;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    int64_t at = 0, no = 0;
    JsonlFormat fmt = JSONL_AUTO;
    while (fmt == JSONL_AUTO && (got = getline(&buf, &cap, f)) > 0) {
        size_t len = (size_t)got;
        const char *s = clean_line(buf, &len, at);
        at += got;
        no++;
        if (!blank(s, len) && (fmt = jsonl_detect_line(s, len)) != JSONL_AUTO)
            *line = no;
    }
    free(buf);
    return fmt;
}

int jsonl_import_range(FILE *f, int64_t start, int64_t end, int64_t first_line, const JsonlImportOptions *o,
                       JsonlShard *s, char *err, int errlen)
{
    memset(s, 0, sizeof *s);
    if (start >= end)
        return 0;
    if (fseeko(f, (off_t)start, SEEK_SET) != 0)
        return util_seterr(err, errlen, "%s: cannot seek to byte %lld: %s", o->path, (long long)start, strerror(errno));
    char *buf = NULL, why[512];
    size_t cap = 0;
    ssize_t got;
    int64_t at = start, no = first_line;
    int rc = 0;
    Scratch w;
    memset(&w, 0, sizeof w);
    while (at < end && (got = getline(&buf, &cap, f)) > 0) {
        size_t len = (size_t)got;
        const char *line = clean_line(buf, &len, at);
        at += got;
        s->counts.lines++;
        if (blank(line, len)) {
            s->counts.blank++;
        } else {
            JsonlRecord rec;
            if (jsonl_parse_line(line, len, &o->parse, &rec, why, sizeof why) != 0) {
                if (!o->skip_malformed) {
                    rc = util_seterr(err, errlen, "%s:%lld: %s", o->path, (long long)no, why);
                    break;
                }
                if (s->counts.malformed < WARN_SKIPPED)
                    warn("import: skipping %s:%lld: %s", o->path, (long long)no, why);
                if (s->n_listed < JSONL_LISTED)
                    s->listed[s->n_listed++] = no;
                s->counts.malformed++;
            } else {
                s->counts.records++;
                rc = add_record(o, &rec, s, &w, why, sizeof why);
                jsonl_record_free(&rec);
                if (rc != 0) {
                    util_seterr(err, errlen, "%s:%lld: %s", o->path, (long long)no, why);
                    break;
                }
            }
        }
        no++;
    }
    if (rc == 0 && ferror(f))
        rc = util_seterr(err, errlen, "%s: read error near byte %lld: %s", o->path, (long long)at, strerror(errno));
    free(buf);
    scratch_free(&w);
    if (rc != 0)
        jsonl_shard_free(s);
    return rc;
}

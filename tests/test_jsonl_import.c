/* test_jsonl_import.c: the text-level parts of `prefer import` (jsonl_import.h).
 *
 * Every layout parsed from literal lines with exact expected prompt and response texts;
 * malformed lines with the exact problem (and jansson's column); the implicit-prompt split
 * (HH marker inside the shared part, TRL's space rule, UTF-8 boundaries); the chat template
 * and its checks; token limits and pairs with exact outputs; and whole files imported with
 * a byte-level stand-in encoder (token = byte value, end token 256), so no vocabulary is
 * needed: line numbers in errors, skipped lines, blank/CRLF/BOM lines, and the line-aligned
 * shares of 1..6 "ranks" giving the same records as the whole file. Also the prefdata
 * "tokenizer" attribute that import writes: round trip, absent, and of the wrong type.
 * Runs without MPI. main() returns non-zero on any failure.
 */
#define _GNU_SOURCE
#include "prefer/h5util.h"
#include "prefer/jsonl_import.h"
#include "prefer/prefdata.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64];

static JsonlParseOptions popt(JsonlFormat f)
{
    JsonlParseOptions o = {.format = f, .tmpl = JSONL_TEMPLATE_HH, .score_key = "auto"};
    return o;
}

/* Parse line; on success check the prompt and up to 2 responses (NULL = not checked). */
static int parse(const char *line, JsonlFormat f, JsonlRecord *r, char *err)
{
    JsonlParseOptions o = popt(f);
    err[0] = 0;
    return jsonl_parse_line(line, strlen(line), &o, r, err, 512);
}

#define CHECK_STR(got, want)                                                                   \
    do {                                                                                       \
        const char *g_ = (got), *w_ = (want);                                                  \
        CU_ASSERT_PTR_NOT_NULL_FATAL(g_);                                                      \
        if (strcmp(g_, w_) != 0)                                                               \
            printf("\n  line %d: got \"%s\", want \"%s\"\n", __LINE__, g_, w_);                \
        CU_ASSERT_STRING_EQUAL(g_, w_);                                                        \
    } while (0)

/* The line fails and err contains want. */
static void expect_error(const char *line, JsonlFormat f, const char *want)
{
    JsonlRecord r;
    char err[512];
    int rc = parse(line, f, &r, err);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_PTR_NULL(r.prompt);
    if (rc != -1 || !strstr(err, want))
        printf("\n  %s -> rc %d, \"%s\"; want \"%s\"\n", line, rc, err, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
}

static void test_format_names(void)
{
    JsonlFormat f;
    CU_ASSERT_EQUAL(jsonl_format_parse("scored", &f), 0);
    CU_ASSERT_EQUAL(f, JSONL_SCORED);
    CU_ASSERT_EQUAL(jsonl_format_parse("conversational", &f), 0);
    CU_ASSERT_EQUAL(f, JSONL_CONVERSATIONAL);
    CU_ASSERT_EQUAL(jsonl_format_parse("Explicit", &f), -1);
    CU_ASSERT_STRING_EQUAL(jsonl_format_name(JSONL_IMPLICIT), "implicit");
    CU_ASSERT_STRING_EQUAL(jsonl_format_name(JSONL_AUTO), "auto");
}

static void test_explicit(void)
{
    JsonlRecord r;
    char err[512];
    CU_ASSERT_EQUAL_FATAL(parse("{\"prompt\": \"The sky is\", \"chosen\": \" blue.\", \"rejected\": \" green.\", "
                                "\"id\": 7}",
                                JSONL_EXPLICIT, &r, err),
                          0);
    CU_ASSERT_EQUAL(r.kind, JSONL_REC_PAIR);
    CU_ASSERT_EQUAL(r.n, 2);
    CU_ASSERT_PTR_NULL(r.score);
    CHECK_STR(r.prompt, "The sky is");
    CHECK_STR(r.response[0], " blue.");
    CHECK_STR(r.response[1], " green.");
    jsonl_record_free(&r);
    /* escapes and non-ASCII come through as UTF-8 */
    CU_ASSERT_EQUAL_FATAL(parse("{\"prompt\": \"a\\nb \\u00e9\", \"chosen\": \"\\\"x\\\"\", \"rejected\": \"\xe2\x82\xac\"}",
                                JSONL_EXPLICIT, &r, err),
                          0);
    CHECK_STR(r.prompt, "a\nb \xc3\xa9");
    CHECK_STR(r.response[0], "\"x\"");
    CHECK_STR(r.response[1], "\xe2\x82\xac");
    jsonl_record_free(&r);
    /* TRL's conversational explicit form: lists of messages through the template */
    CU_ASSERT_EQUAL_FATAL(parse("{\"prompt\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
                                "\"content\": \"Sky colour?\"}], \"chosen\": [{\"role\": \"assistant\", \"content\": "
                                "\"Blue.\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"Green.\"}]}",
                                JSONL_EXPLICIT, &r, err),
                          0);
    CHECK_STR(r.prompt, "Be brief.\n\nHuman: Sky colour?\n\nAssistant:");
    CHECK_STR(r.response[0], " Blue.");
    CHECK_STR(r.response[1], " Green.");
    jsonl_record_free(&r);
}

static void test_malformed(void)
{
    expect_error("{\"prompt\": \"a\",, }", JSONL_EXPLICIT, "invalid JSON at column 16: string or '}' expected near ','");
    expect_error("{\"prompt\": \"a\", \"chosen\": \"b\"}", JSONL_EXPLICIT, "\"rejected\" is missing");
    expect_error("{\"prompt\": \"a\", \"chosen\": \"\", \"rejected\": \"c\"}", JSONL_EXPLICIT,
                 "\"chosen\" is an empty string");
    expect_error("{\"prompt\": 3, \"chosen\": \"b\", \"rejected\": \"c\"}", JSONL_EXPLICIT,
                 "\"prompt\" is a number, expected a string");
    expect_error("{\"prompt\": \"a\", \"chosen\": [{\"role\": \"assistant\", \"content\": \"b\"}], \"rejected\": \"c\"}",
                 JSONL_EXPLICIT, "\"prompt\" is a string but \"chosen\" is a list");
    expect_error("{\"chosen\": \"b\", \"rejected\": \"c\"}", JSONL_EXPLICIT, "\"prompt\" is missing");
    expect_error("[1, 2]", JSONL_EXPLICIT, "the line is a list, expected a JSON object");
    expect_error("\"text\"", JSONL_IMPLICIT, "the line is a string, expected a JSON object");
    expect_error("{\"prompt\": \"a\", \"prompt\": \"b\", \"chosen\": \"c\", \"rejected\": \"d\"}", JSONL_EXPLICIT,
                 "duplicate object key");
    expect_error("{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"", JSONL_EXPLICIT, "invalid JSON at column");
    expect_error("{\"prompt\": \"\\u0000\", \"chosen\": \"b\", \"rejected\": \"c\"}", JSONL_EXPLICIT,
                 "\\u0000 is not allowed");
    expect_error("{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"chosen\": [{\"role\": \"user\", "
                 "\"content\": \"b\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"c\"}]}",
                 JSONL_EXPLICIT, "\"chosen\": a response must start with an assistant message (it starts with user)");
    expect_error("{\"prompt\": [{\"role\": \"tool\", \"content\": \"q\"}], \"chosen\": [], \"rejected\": []}",
                 JSONL_EXPLICIT, "\"prompt\"[0].\"role\" is \"tool\", expected system, user or assistant");
    expect_error("{\"prompt\": [{\"role\": \"user\"}], \"chosen\": [], \"rejected\": []}", JSONL_EXPLICIT,
                 "\"prompt\"[0].\"content\" is missing");
    expect_error("{\"prompt\": [{\"role\": \"user\", \"content\": \"q\"}], \"chosen\": [], \"rejected\": []}",
                 JSONL_EXPLICIT, "\"chosen\" is an empty list");
    expect_error("{\"prompt\": [\"q\"], \"chosen\": [], \"rejected\": []}", JSONL_EXPLICIT,
                 "\"prompt\"[0] is a string, expected a message");
    expect_error("{\"prompt\": [{\"role\": \"user\", \"content\": \"\"}], \"chosen\": [{\"role\": \"assistant\", "
                 "\"content\": \"b\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"c\"}]}",
                 JSONL_EXPLICIT, "\"prompt\"[0].\"content\" is an empty string");
}

static void test_implicit_split(void)
{
    char err[256];
    const char *m = "\n\nAssistant:";
    /* HH-RLHF: the split is after the last "\n\nAssistant:" inside the shared part */
    const char *a = "\n\nHuman: Hi\n\nAssistant: Hello there", *b = "\n\nHuman: Hi\n\nAssistant: Hey";
    CU_ASSERT_EQUAL(jsonl_implicit_split(a, strlen(a), b, strlen(b), m, err, sizeof err),
                    (int64_t)strlen("\n\nHuman: Hi\n\nAssistant:"));
    /* multi-turn, diverging before chosen's last marker: only the shared part counts */
    a = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d";
    b = "\n\nHuman: a\n\nAssistant: x";
    CU_ASSERT_EQUAL(jsonl_implicit_split(a, strlen(a), b, strlen(b), m, err, sizeof err),
                    (int64_t)strlen("\n\nHuman: a\n\nAssistant:"));
    /* two turns shared */
    a = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d";
    b = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: e";
    CU_ASSERT_EQUAL(jsonl_implicit_split(a, strlen(a), b, strlen(b), m, err, sizeof err),
                    (int64_t)strlen("\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:"));
    /* no marker: TRL's rule, the common prefix less a final space */
    a = "The sky is blue.";
    b = "The sky is green.";
    CU_ASSERT_EQUAL(jsonl_implicit_split(a, strlen(a), b, strlen(b), m, err, sizeof err), 10);
    CU_ASSERT_EQUAL(jsonl_implicit_split(a, strlen(a), b, strlen(b), NULL, err, sizeof err), 10);
    /* a marker that is not wholly shared does not count */
    a = "Q: x\n\nAssistant: yes";
    b = "Q: x\n\nAssist";
    CU_ASSERT_EQUAL(jsonl_implicit_split(a, strlen(a), b, strlen(b), m, err, sizeof err), -1); /* b is the prefix */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "\"rejected\" is the shared prompt itself"));
    /* UTF-8: e-acute C3 A9 vs e-grave C3 A8 share a byte; the split backs up before it */
    a = "x \xc3\xa9t\xc3\xa9";
    b = "x \xc3\xa8re";
    CU_ASSERT_EQUAL(jsonl_implicit_split(a, strlen(a), b, strlen(b), m, err, sizeof err), 1);
    /* empty pieces */
    CU_ASSERT_EQUAL(jsonl_implicit_split("same", 4, "same", 4, m, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "identical"));
    CU_ASSERT_EQUAL(jsonl_implicit_split("abc", 3, "xyz", 3, m, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "share no beginning"));
    /* identical HH texts still split at the marker (both responses equal, not empty) */
    a = "\n\nHuman: q\n\nAssistant: same";
    CU_ASSERT_EQUAL(jsonl_implicit_split(a, strlen(a), a, strlen(a), m, err, sizeof err),
                    (int64_t)strlen("\n\nHuman: q\n\nAssistant:"));
}

static void test_implicit(void)
{
    JsonlRecord r;
    char err[512];
    CU_ASSERT_EQUAL_FATAL(parse("{\"chosen\": \"\\n\\nHuman: What is 2+2?\\n\\nAssistant: 4.\", \"rejected\": "
                                "\"\\n\\nHuman: What is 2+2?\\n\\nAssistant: 5.\"}",
                                JSONL_IMPLICIT, &r, err),
                          0);
    CHECK_STR(r.prompt, "\n\nHuman: What is 2+2?\n\nAssistant:");
    CHECK_STR(r.response[0], " 4.");
    CHECK_STR(r.response[1], " 5.");
    jsonl_record_free(&r);
    /* lists: the shared leading messages are the prompt */
    CU_ASSERT_EQUAL_FATAL(parse("{\"chosen\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                                "\"content\": \"Hello!\"}], \"rejected\": [{\"role\": \"user\", \"content\": \"Hi\"}, "
                                "{\"role\": \"assistant\", \"content\": \"Go away.\"}]}",
                                JSONL_IMPLICIT, &r, err),
                          0);
    CHECK_STR(r.prompt, "\n\nHuman: Hi\n\nAssistant:");
    CHECK_STR(r.response[0], " Hello!");
    CHECK_STR(r.response[1], " Go away.");
    jsonl_record_free(&r);
    expect_error("{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}", JSONL_IMPLICIT, "has a \"prompt\"");
    expect_error("{\"chosen\": \"abc\", \"rejected\": \"abc\"}", JSONL_IMPLICIT, "are identical");
    expect_error("{\"chosen\": [{\"role\": \"user\", \"content\": \"a\"}], \"rejected\": [{\"role\": \"user\", "
                 "\"content\": \"b\"}]}",
                 JSONL_IMPLICIT, "share no leading message");
    expect_error("{\"chosen\": [{\"role\": \"user\", \"content\": \"a\"}], \"rejected\": [{\"role\": \"user\", "
                 "\"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}",
                 JSONL_IMPLICIT, "\"chosen\" has no message after the 1 shared ones");
}

static void test_conversational(void)
{
    JsonlRecord r;
    char err[512];
    /* one conversation: an SFT record, the last (assistant) message is the response */
    CU_ASSERT_EQUAL_FATAL(parse("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                                "\"content\": \"Hello.\"}, {\"role\": \"user\", \"content\": \"Bye\"}, {\"role\": "
                                "\"assistant\", \"content\": \"Bye!\"}]}",
                                JSONL_CONVERSATIONAL, &r, err),
                          0);
    CU_ASSERT_EQUAL(r.kind, JSONL_REC_SFT);
    CU_ASSERT_EQUAL(r.n, 1);
    CHECK_STR(r.prompt, "\n\nHuman: Hi\n\nAssistant: Hello.\n\nHuman: Bye\n\nAssistant:");
    CHECK_STR(r.response[0], " Bye!");
    jsonl_record_free(&r);
    /* chosen/rejected lists with and without a prompt */
    CU_ASSERT_EQUAL_FATAL(parse("{\"prompt\": [{\"role\": \"user\", \"content\": \"Q\"}], \"chosen\": [{\"role\": "
                                "\"assistant\", \"content\": \"A\"}], \"rejected\": [{\"role\": \"assistant\", "
                                "\"content\": \"B\"}, {\"role\": \"user\", \"content\": \"?\"}]}",
                                JSONL_CONVERSATIONAL, &r, err),
                          0);
    CU_ASSERT_EQUAL(r.kind, JSONL_REC_PAIR);
    CHECK_STR(r.prompt, "\n\nHuman: Q\n\nAssistant:");
    CHECK_STR(r.response[0], " A");
    CHECK_STR(r.response[1], " B\n\nHuman: ?");
    jsonl_record_free(&r);
    expect_error("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}", JSONL_CONVERSATIONAL,
                 "the last message of \"messages\" is the user's");
    expect_error("{\"chosen\": \"a\", \"rejected\": \"b\"}", JSONL_CONVERSATIONAL, "\"chosen\" is a string");
    expect_error("{\"prompt\": \"x\"}", JSONL_CONVERSATIONAL, "neither \"messages\" nor");
    expect_error("{\"messages\": {}}", JSONL_CONVERSATIONAL, "\"messages\" is an object, expected a list of messages");
}

static void test_template(void)
{
    char err[512];
    JsonlTemplate chatml = {.system = "<|im_start|>system\n{content}<|im_end|>\n",
                            .user = "<|im_start|>user\n{content}<|im_end|>\n",
                            .assistant = "<|im_start|>assistant\n{content}<|im_end|>\n",
                            .generation_prompt = "<|im_start|>assistant\n"};
    CU_ASSERT_EQUAL(jsonl_template_check(&chatml, err, sizeof err), 0);
    JsonlMessage m[3] = {{"system", "S"}, {"user", "U"}, {"assistant", "A"}};
    char *p = jsonl_render(&chatml, m, 2, 1, err, sizeof err);
    CHECK_STR(p, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
    char *q = jsonl_render(&chatml, m + 2, 1, 0, err, sizeof err);
    CHECK_STR(q, "A<|im_end|>\n");
    /* prompt + response = the whole conversation rendered */
    char *all = jsonl_render(&chatml, m, 3, 1, err, sizeof err);
    char *cat = xasprintf("%s%s%s", p, q, chatml.generation_prompt);
    CHECK_STR(all, cat);
    free(p);
    free(q);
    free(all);
    free(cat);
    /* an empty system message is allowed */
    JsonlMessage e[2] = {{"system", ""}, {"user", "U"}};
    p = jsonl_render(&JSONL_TEMPLATE_HH, e, 2, 1, err, sizeof err);
    CHECK_STR(p, "\n\nHuman: U\n\nAssistant:");
    free(p);
    /* checks name the key */
    JsonlTemplate bad = chatml;
    bad.user = "<|im_start|>user\n";
    CU_ASSERT_EQUAL(jsonl_template_check(&bad, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "import.template_user"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "exactly once (it has 0)"));
    bad = chatml;
    bad.system = "{content}{content}";
    CU_ASSERT_EQUAL(jsonl_template_check(&bad, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "import.template_system"));
    bad = chatml;
    bad.generation_prompt = "<|im_start|>bot\n";
    CU_ASSERT_EQUAL(jsonl_template_check(&bad, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "import.template_generation_prompt"));
    CU_ASSERT_PTR_NULL(jsonl_render(&bad, m, 1, 1, err, sizeof err));
    /* an empty generation prompt is allowed (plain concatenation) */
    JsonlTemplate plain = {.system = "{content}", .user = "{content}\n", .assistant = "{content}\n", .generation_prompt = ""};
    CU_ASSERT_EQUAL(jsonl_template_check(&plain, err, sizeof err), 0);
    p = jsonl_render(&plain, m, 2, 1, err, sizeof err);
    CHECK_STR(p, "SU\n");
    free(p);
    /* a custom template reaches the parser */
    JsonlParseOptions o = popt(JSONL_CONVERSATIONAL);
    o.tmpl = chatml;
    JsonlRecord r;
    const char *line = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                       "\"content\": \"Yo\"}]}";
    CU_ASSERT_EQUAL_FATAL(jsonl_parse_line(line, strlen(line), &o, &r, err, sizeof err), 0);
    CHECK_STR(r.prompt, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    CHECK_STR(r.response[0], "Yo<|im_end|>\n");
    jsonl_record_free(&r);
}

static void test_scored(void)
{
    JsonlRecord r;
    char err[512];
    CU_ASSERT_EQUAL_FATAL(parse("{\"prompt\": \"Name a colour.\", \"completions\": [{\"text\": \" Red.\", \"score\": "
                                "7.5}, {\"text\": \" Blue.\", \"score\": -2}, {\"text\": \" Dog.\", \"score\": 0}]}",
                                JSONL_SCORED, &r, err),
                          0);
    CU_ASSERT_EQUAL(r.kind, JSONL_REC_SCORED);
    CU_ASSERT_EQUAL_FATAL(r.n, 3);
    CHECK_STR(r.prompt, "Name a colour.");
    CHECK_STR(r.response[1], " Blue.");
    CU_ASSERT_EQUAL(r.score[0], 7.5);
    CU_ASSERT_EQUAL(r.score[1], -2.0);
    CU_ASSERT_EQUAL(r.score[2], 0.0);
    jsonl_record_free(&r);
    /* UltraFeedback's own names; auto takes fine-grained_score before overall_score */
    CU_ASSERT_EQUAL_FATAL(parse("{\"instruction\": \"Q\", \"completions\": [{\"response\": \"a\", \"overall_score\": 8, "
                                "\"fine-grained_score\": 4.25, \"model\": \"m\"}, {\"response\": \"b\", "
                                "\"overall_score\": 3}]}",
                                JSONL_SCORED, &r, err),
                          0);
    CHECK_STR(r.prompt, "Q");
    CHECK_STR(r.response[0], "a");
    CU_ASSERT_EQUAL(r.score[0], 4.25);
    CU_ASSERT_EQUAL(r.score[1], 3.0);
    jsonl_record_free(&r);
    JsonlParseOptions o = popt(JSONL_SCORED);
    o.score_key = "overall_score";
    const char *line = "{\"instruction\": \"Q\", \"completions\": [{\"response\": \"a\", \"overall_score\": 8, "
                       "\"fine-grained_score\": 4.25}]}";
    CU_ASSERT_EQUAL_FATAL(jsonl_parse_line(line, strlen(line), &o, &r, err, sizeof err), 0);
    CU_ASSERT_EQUAL(r.score[0], 8.0);
    jsonl_record_free(&r);
    o.score_key = "helpfulness";
    CU_ASSERT_EQUAL(jsonl_parse_line(line, strlen(line), &o, &r, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "\"completions\"[0].\"helpfulness\" is missing (import.score_key)"));
    expect_error("{\"prompt\": \"Q\", \"completions\": []}", JSONL_SCORED, "\"completions\" is an empty list");
    expect_error("{\"prompt\": \"Q\"}", JSONL_SCORED, "\"completions\" is missing");
    expect_error("{\"prompt\": \"Q\", \"completions\": [{\"text\": \"a\", \"score\": 1}, {\"text\": \"b\", \"score\": "
                 "null}]}",
                 JSONL_SCORED, "\"completions\"[1].\"score\" is null, expected a number");
    expect_error("{\"prompt\": \"Q\", \"completions\": [{\"text\": \"a\"}]}", JSONL_SCORED,
                 "\"completions\"[0] has no \"score\"");
    expect_error("{\"prompt\": \"Q\", \"completions\": [{\"text\": \"\", \"score\": 1}]}", JSONL_SCORED,
                 "\"completions\"[0].\"text\" is an empty string");
    expect_error("{\"prompt\": \"Q\", \"completions\": [{\"score\": 1}]}", JSONL_SCORED,
                 "\"completions\"[0].\"text\" is missing");
    expect_error("{\"prompt\": \"Q\", \"completions\": [{\"text\": \"a\", \"score\": 1e300}]}", JSONL_SCORED,
                 "does not fit a float32");
    expect_error("{\"prompt\": \"Q\", \"completions\": [\"a\"]}", JSONL_SCORED, "\"completions\"[0] is a string");
    expect_error("{\"completions\": [{\"text\": \"a\", \"score\": 1}]}", JSONL_SCORED, "\"prompt\" is missing");
}

static void test_detect(void)
{
#define DET(s) jsonl_detect_line((s), strlen(s))
    CU_ASSERT_EQUAL(DET("{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}"), JSONL_EXPLICIT);
    CU_ASSERT_EQUAL(DET("{\"chosen\": \"b\", \"rejected\": \"c\"}"), JSONL_IMPLICIT);
    CU_ASSERT_EQUAL(DET("{\"chosen\": [], \"rejected\": []}"), JSONL_CONVERSATIONAL);
    CU_ASSERT_EQUAL(DET("{\"prompt\": [], \"chosen\": [], \"rejected\": []}"), JSONL_CONVERSATIONAL);
    CU_ASSERT_EQUAL(DET("{\"messages\": []}"), JSONL_CONVERSATIONAL);
    CU_ASSERT_EQUAL(DET("{\"instruction\": \"q\", \"completions\": []}"), JSONL_SCORED);
    CU_ASSERT_EQUAL(DET("{\"prompt\": \"a\", \"chosen\": \"b\"}"), JSONL_AUTO);
    CU_ASSERT_EQUAL(DET("not json"), JSONL_AUTO);
    CU_ASSERT_EQUAL(DET("[1]"), JSONL_AUTO);
#undef DET
}

static void test_fit(void)
{
    JsonlCounts c;
    memset(&c, 0, sizeof c);
    uint8_t keep[4];
    /* prompt 10 -> last 4; responses 3, 8 -> 3, 5; total 12: both fit (4 + 5 = 9) */
    JsonlLimits lim = {.max_prompt = 4, .max_response = 5, .max_total = 12};
    int64_t p = 10, r[4] = {3, 8};
    CU_ASSERT_EQUAL(jsonl_fit(&lim, &p, r, 2, 1, keep, &c), 2);
    CU_ASSERT_EQUAL(p, 4);
    CU_ASSERT_EQUAL(r[0], 3);
    CU_ASSERT_EQUAL(r[1], 5);
    CU_ASSERT(keep[0] == 1 && keep[1] == 1);
    CU_ASSERT_EQUAL(c.truncated_prompts, 1);
    CU_ASSERT_EQUAL(c.truncated_responses, 1);
    CU_ASSERT_EQUAL(c.dropped_records, 0);
    /* total 8: the 5-token response does not fit (4 + 5 > 8): a pair loses both */
    memset(&c, 0, sizeof c);
    lim.max_total = 8;
    p = 10;
    r[0] = 3;
    r[1] = 8;
    CU_ASSERT_EQUAL(jsonl_fit(&lim, &p, r, 2, 1, keep, &c), 0);
    CU_ASSERT(keep[0] == 0 && keep[1] == 0);
    CU_ASSERT_EQUAL(c.dropped_records, 1);
    CU_ASSERT_EQUAL(c.dropped_responses, 2);
    CU_ASSERT_EQUAL(c.truncated_prompts, 0); /* nothing of it was imported */
    CU_ASSERT_EQUAL(c.truncated_responses, 0);
    /* scored (not all-or-none): only the long one goes */
    memset(&c, 0, sizeof c);
    p = 10;
    int64_t s[4] = {3, 8, 2, 4};
    CU_ASSERT_EQUAL(jsonl_fit(&lim, &p, s, 4, 0, keep, &c), 3);
    CU_ASSERT(keep[0] == 1 && keep[1] == 0 && keep[2] == 1 && keep[3] == 1);
    CU_ASSERT_EQUAL(c.dropped_responses, 1);
    CU_ASSERT_EQUAL(c.dropped_records, 0);
    CU_ASSERT_EQUAL(c.truncated_prompts, 1);
    CU_ASSERT_EQUAL(c.truncated_responses, 0); /* the cut one was dropped */
    /* the limit is inclusive: 4 + 4 = 8 fits */
    CU_ASSERT_EQUAL(s[3], 4);
    /* no limits: nothing changes */
    memset(&c, 0, sizeof c);
    JsonlLimits none = {0};
    p = 1000;
    r[0] = 500;
    r[1] = 1;
    CU_ASSERT_EQUAL(jsonl_fit(&none, &p, r, 2, 1, keep, &c), 2);
    CU_ASSERT(p == 1000 && r[0] == 500 && r[1] == 1);
    JsonlCounts z;
    memset(&z, 0, sizeof z);
    CU_ASSERT(!memcmp(&c, &z, sizeof c));
    /* the prompt alone exceeds the total: everything dropped */
    memset(&c, 0, sizeof c);
    JsonlLimits tot = {.max_total = 5};
    p = 5;
    r[0] = 1;
    CU_ASSERT_EQUAL(jsonl_fit(&tot, &p, r, 1, 0, keep, &c), 0);
    CU_ASSERT_EQUAL(c.dropped_records, 1);
}

static void test_pairs(void)
{
    double sc[5] = {1.0, 3.0, 3.0, -1.0, 2.0};
    int ch[10], rj[10];
    int64_t ties = 0;
    int n = jsonl_make_pairs(sc, NULL, 5, 0, ch, rj, &ties);
    CU_ASSERT_EQUAL(n, 9); /* 10 pairs, one tie (1, 2) */
    CU_ASSERT_EQUAL(ties, 1);
    int want_c[9] = {1, 2, 0, 4, 1, 1, 2, 2, 4}, want_r[9] = {0, 0, 3, 0, 3, 4, 3, 4, 3};
    for (int k = 0; k < 9 && k < n; k++) {
        CU_ASSERT_EQUAL(ch[k], want_c[k]);
        CU_ASSERT_EQUAL(rj[k], want_r[k]);
    }
    ties = 0;
    n = jsonl_make_pairs(sc, NULL, 5, 1, ch, rj, &ties);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(ch[0], 1); /* the first highest */
    CU_ASSERT_EQUAL(rj[0], 3);
    CU_ASSERT_EQUAL(ties, 0);
    uint8_t keep[5] = {1, 1, 1, 0, 0};
    n = jsonl_make_pairs(sc, keep, 5, 1, ch, rj, &ties);
    CU_ASSERT(n == 1 && ch[0] == 1 && rj[0] == 0);
    double eq[3] = {2, 2, 2};
    ties = 0;
    CU_ASSERT_EQUAL(jsonl_make_pairs(eq, NULL, 3, 1, ch, rj, &ties), 0);
    CU_ASSERT_EQUAL(ties, 1);
    ties = 0;
    CU_ASSERT_EQUAL(jsonl_make_pairs(eq, NULL, 3, 0, ch, rj, &ties), 0);
    CU_ASSERT_EQUAL(ties, 3);
    ties = 0;
    CU_ASSERT_EQUAL(jsonl_make_pairs(sc, NULL, 1, 0, ch, rj, &ties), 0);
    CU_ASSERT_EQUAL(jsonl_make_pairs(sc, NULL, 1, 1, ch, rj, &ties), 0);
    CU_ASSERT_EQUAL(ties, 0);
}

/* ---------------------------------------------------------------- files */

/* Stand-in tokenizer: one token per byte, id = byte value. */
static int byte_encode(void *ctx, const char *text, size_t n, BpeIds *out)
{
    (void)ctx;
    if (out->n + n > out->cap) {
        out->cap = (out->n + n) * 2 + 8;
        out->ids = xrealloc(out->ids, out->cap * sizeof(int32_t));
    }
    for (size_t i = 0; i < n; i++)
        out->ids[out->n++] = (unsigned char)text[i];
    return 0;
}

static char *write_file(const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static JsonlImportOptions iopt(JsonlFormat f, const char *path)
{
    JsonlImportOptions o;
    memset(&o, 0, sizeof o);
    o.parse = popt(f);
    o.eot = 256;
    o.encode = byte_encode;
    o.path = path;
    return o;
}

static int64_t file_size(FILE *f)
{
    fseeko(f, 0, SEEK_END);
    return (int64_t)ftello(f);
}

/* The text of tokens t[0..n) (byte tokens; 256 -> '$'). */
static char *text_of(const int32_t *t, int64_t n)
{
    char *s = xmalloc((size_t)n + 1);
    for (int64_t i = 0; i < n; i++)
        s[i] = t[i] == 256 ? '$' : (char)t[i];
    s[n] = 0;
    return s;
}

static void test_import_file(void)
{
    const char *text =
        "\xEF\xBB\xBF{\"prompt\": \"P1\", \"chosen\": \"good\", \"rejected\": \"bad\"}\n"
        "\n"
        "{\"prompt\": \"P2\", \"chosen\": \"yes\", \"rejected\": \"no\"}\r\n"
        "   \n"
        "{\"prompt\": \"P1\", \"chosen\": \"a\", \"rejected\": \"b\"}"; /* duplicate prompt; no final newline */
    char *path = write_file("explicit.jsonl", text);
    FILE *f = fopen(path, "rb");
    int64_t line;
    CU_ASSERT_EQUAL(jsonl_detect_file(f, &line), JSONL_EXPLICIT);
    CU_ASSERT_EQUAL(line, 1);
    JsonlImportOptions o = iopt(JSONL_EXPLICIT, path);
    JsonlShard s;
    char err[512] = "";
    int64_t size = file_size(f);
    CU_ASSERT_EQUAL_FATAL(jsonl_import_range(f, 0, size, 1, &o, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(s.counts.lines, 5);
    CU_ASSERT_EQUAL(s.counts.blank, 2);
    CU_ASSERT_EQUAL(s.counts.records, 3);
    CU_ASSERT_EQUAL_FATAL(s.n_prompts, 3); /* duplicate prompts stay separate */
    CU_ASSERT_EQUAL_FATAL(s.n_responses, 6);
    CU_ASSERT_EQUAL_FATAL(s.n_pairs, 3);
    CU_ASSERT_PTR_NULL(s.response_score);
    char *pt = text_of(s.prompt_tokens, s.n_prompt_tokens), *rt = text_of(s.response_tokens, s.n_response_tokens);
    CHECK_STR(pt, "P1P2P1");
    CHECK_STR(rt, "good$bad$yes$no$a$b$");
    free(pt);
    free(rt);
    int64_t want_rl[6] = {5, 4, 4, 3, 2, 2}, want_rp[6] = {0, 0, 1, 1, 2, 2};
    for (int i = 0; i < 6; i++) {
        CU_ASSERT_EQUAL(s.response_len[i], want_rl[i]);
        CU_ASSERT_EQUAL(s.response_prompt[i], want_rp[i]);
    }
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_EQUAL(s.pair_chosen[k], 2 * k);
        CU_ASSERT_EQUAL(s.pair_rejected[k], 2 * k + 1);
    }
    jsonl_shard_free(&s);
    /* no end token */
    o.eot = -1;
    CU_ASSERT_EQUAL_FATAL(jsonl_import_range(f, 0, size, 1, &o, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(s.n_response_tokens, 4 + 3 + 3 + 2 + 1 + 1);
    jsonl_shard_free(&s);
    fclose(f);
    free(path);
}

static void test_import_errors(void)
{
    const char *text = "{\"prompt\": \"P\", \"chosen\": \"c\", \"rejected\": \"r\"}\n"
                       "{\"prompt\": \"P\", \"chosen\": \"c\"}\n"
                       "{\"prompt\": \"P\", \"chosen\": \"c\", \"rejected\": \"r\"}\n"
                       "{oops\n"
                       "{\"prompt\": \"Q\", \"chosen\": \"c\", \"rejected\": \"r\"}\n";
    char *path = write_file("bad.jsonl", text);
    FILE *f = fopen(path, "rb");
    int64_t size = file_size(f);
    JsonlImportOptions o = iopt(JSONL_EXPLICIT, path);
    JsonlShard s;
    char err[512] = "", *want = xasprintf("%s:2: \"rejected\" is missing", path);
    CU_ASSERT_EQUAL(jsonl_import_range(f, 0, size, 1, &o, &s, err, sizeof err), -1);
    CHECK_STR(err, want);
    free(want);
    /* a range starting mid-file (line 4, byte 127 of 181) still names the file's line number */
    int64_t start, end;
    CU_ASSERT_EQUAL(jsonl_share(f, size, 1, 2, &start, &end), 0);
    int64_t before = jsonl_count_newlines(f, 0, start);
    CU_ASSERT_EQUAL(start, 127);
    CU_ASSERT_EQUAL(before, 3);
    CU_ASSERT_EQUAL(jsonl_import_range(f, start, end, before + 1, &o, &s, err, sizeof err), -1);
    want = xasprintf("%s:4: invalid JSON at column 5: string or '}' expected near 'oops'", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    if (!strstr(err, want))
        printf("\n  got \"%s\", want \"%s...\"\n", err, want);
    free(want);
    /* skipped and counted */
    o.skip_malformed = 1;
    CU_ASSERT_EQUAL_FATAL(jsonl_import_range(f, 0, size, 1, &o, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL(s.counts.malformed, 2);
    CU_ASSERT_EQUAL(s.counts.records, 3);
    CU_ASSERT_EQUAL(s.n_prompts, 3);
    CU_ASSERT_EQUAL(s.n_listed, 2);
    CU_ASSERT(s.listed[0] == 2 && s.listed[1] == 4);
    jsonl_shard_free(&s);
    fclose(f);
    free(path);
}

/* The scored layout with limits: exact tokens and pairs. */
static void test_import_scored_limits(void)
{
    const char *text = "{\"prompt\": \"abcdef\", \"completions\": [{\"text\": \"xy\", \"score\": 1}, "
                       "{\"text\": \"long response\", \"score\": 5}, {\"text\": \"z\", \"score\": 3}, "
                       "{\"text\": \"w\", \"score\": 3}]}\n"
                       "{\"prompt\": \"pq\", \"completions\": [{\"text\": \"0123456789abc\", \"score\": 0}]}\n";
    char *path = write_file("scored.jsonl", text);
    FILE *f = fopen(path, "rb");
    int64_t size = file_size(f);
    JsonlImportOptions o = iopt(JSONL_SCORED, path);
    o.limits = (JsonlLimits){.max_prompt = 4, .max_response = 6, .max_total = 8};
    JsonlShard s;
    char err[512] = "";
    CU_ASSERT_EQUAL_FATAL(jsonl_import_range(f, 0, size, 1, &o, &s, err, sizeof err), 0);
    /* record 1: prompt "cdef"; "xy$" 3, "long r" 6 (cut; 4 + 6 > 8: dropped), "z$", "w$";
     * record 2: prompt "pq", "012345" (cut, 2 + 6 = 8 fits) */
    CU_ASSERT_EQUAL_FATAL(s.n_prompts, 2);
    CU_ASSERT_EQUAL_FATAL(s.n_responses, 4);
    char *pt = text_of(s.prompt_tokens, s.n_prompt_tokens), *rt = text_of(s.response_tokens, s.n_response_tokens);
    CHECK_STR(pt, "cdefpq");
    CHECK_STR(rt, "xy$z$w$012345");
    free(pt);
    free(rt);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.response_score);
    CU_ASSERT(s.response_score[0] == 1.0f && s.response_score[1] == 3.0f && s.response_score[2] == 3.0f &&
              s.response_score[3] == 0.0f);
    /* pairs among the kept (0 "xy" 1, 1 "z" 3, 2 "w" 3): (1,0), (2,0); (1,2) tied */
    CU_ASSERT_EQUAL_FATAL(s.n_pairs, 2);
    CU_ASSERT(s.pair_chosen[0] == 1 && s.pair_rejected[0] == 0);
    CU_ASSERT(s.pair_chosen[1] == 2 && s.pair_rejected[1] == 0);
    CU_ASSERT_EQUAL(s.counts.tied_pairs, 1);
    CU_ASSERT_EQUAL(s.counts.truncated_prompts, 1);
    CU_ASSERT_EQUAL(s.counts.truncated_responses, 1);
    CU_ASSERT_EQUAL(s.counts.dropped_responses, 1);
    CU_ASSERT_EQUAL(s.counts.dropped_records, 0);
    jsonl_shard_free(&s);
    /* best_worst: one pair per prompt */
    o.best_worst = 1;
    CU_ASSERT_EQUAL_FATAL(jsonl_import_range(f, 0, size, 1, &o, &s, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(s.n_pairs, 1);
    CU_ASSERT(s.pair_chosen[0] == 1 && s.pair_rejected[0] == 0);
    jsonl_shard_free(&s);
    fclose(f);
    free(path);
}

/* Lines of mixed lengths; every world 1..6 gives the same records as one range. */
static void test_shares(void)
{
    size_t cap = 1 << 16, n = 0;
    char *text = xmalloc(cap);
    for (int i = 0; i < 60; i++) {
        int rep = 1 + (i * 7) % 23;
        n += (size_t)snprintf(text + n, cap - n, "{\"chosen\": \"Q%d%.*s A\", \"rejected\": \"Q%d%.*s B\"}\n%s", i,
                              rep, "..........................", i, rep, "..........................",
                              i % 9 == 0 ? "\n" : "");
    }
    char *path = write_file("shares.jsonl", text);
    free(text);
    FILE *f = fopen(path, "rb");
    int64_t size = file_size(f);
    JsonlImportOptions o = iopt(JSONL_IMPLICIT, path);
    JsonlShard whole;
    char err[512] = "";
    CU_ASSERT_EQUAL_FATAL(jsonl_import_range(f, 0, size, 1, &o, &whole, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(whole.n_prompts, 60);
    char *wp = text_of(whole.prompt_tokens, whole.n_prompt_tokens);
    CU_ASSERT(!strncmp(wp, "Q0. ", 2));
    for (int world = 1; world <= 6; world++) {
        int64_t prompts = 0, responses = 0, pairs = 0, ptok = 0, rtok = 0, lines = 0, prev_end = 0, nl = 0;
        int same = 1;
        for (int r = 0; r < world; r++) {
            int64_t a, b;
            CU_ASSERT_EQUAL_FATAL(jsonl_share(f, size, r, world, &a, &b), 0);
            CU_ASSERT_EQUAL(a, prev_end); /* contiguous cover */
            prev_end = b;
            JsonlShard s;
            CU_ASSERT_EQUAL_FATAL(jsonl_import_range(f, a, b, nl + 1, &o, &s, err, sizeof err), 0);
            nl += jsonl_count_newlines(f, a, b);
            same &= !memcmp(s.prompt_tokens, whole.prompt_tokens + ptok, sizeof(int32_t) * (size_t)s.n_prompt_tokens);
            same &= !memcmp(s.response_tokens, whole.response_tokens + rtok,
                            sizeof(int32_t) * (size_t)s.n_response_tokens);
            for (int64_t i = 0; i < s.n_prompts; i++)
                same &= s.prompt_len[i] == whole.prompt_len[prompts + i];
            for (int64_t i = 0; i < s.n_responses; i++)
                same &= s.response_len[i] == whole.response_len[responses + i] &&
                        s.response_prompt[i] + prompts == whole.response_prompt[responses + i];
            for (int64_t i = 0; i < s.n_pairs; i++)
                same &= s.pair_chosen[i] + responses == whole.pair_chosen[pairs + i] &&
                        s.pair_rejected[i] + responses == whole.pair_rejected[pairs + i];
            prompts += s.n_prompts;
            responses += s.n_responses;
            pairs += s.n_pairs;
            ptok += s.n_prompt_tokens;
            rtok += s.n_response_tokens;
            lines += s.counts.lines;
            jsonl_shard_free(&s);
        }
        CU_ASSERT_EQUAL(prev_end, size);
        CU_ASSERT(same);
        CU_ASSERT_EQUAL(prompts, 60);
        CU_ASSERT_EQUAL(pairs, 60);
        CU_ASSERT_EQUAL(ptok, whole.n_prompt_tokens);
        CU_ASSERT_EQUAL(rtok, whole.n_response_tokens);
        CU_ASSERT_EQUAL(lines, whole.counts.lines);
        CU_ASSERT_EQUAL(nl, whole.counts.lines); /* every line ends with '\n' */
    }
    /* a share boundary exactly at a line start keeps that line in the later share */
    int64_t a, b;
    const char *two = "{\"chosen\": \"x1\", \"rejected\": \"x2\"}\n";
    char *p2 = write_file("two.jsonl", "{\"chosen\": \"x1\", \"rejected\": \"x2\"}\n{\"chosen\": \"x1\", \"rejected\": \"x2\"}\n");
    FILE *g = fopen(p2, "rb");
    int64_t sz2 = file_size(g);
    CU_ASSERT_EQUAL(sz2, 2 * (int64_t)strlen(two));
    CU_ASSERT_EQUAL(jsonl_share(g, sz2, 1, 2, &a, &b), 0);
    CU_ASSERT_EQUAL(a, (int64_t)strlen(two));
    CU_ASSERT_EQUAL(b, sz2);
    CU_ASSERT_EQUAL(jsonl_share(g, sz2, 0, 2, &a, &b), 0);
    CU_ASSERT(a == 0 && b == (int64_t)strlen(two));
    /* more shares than lines: the extra ones are empty */
    int64_t total = 0;
    for (int r = 0; r < 8; r++) {
        CU_ASSERT_EQUAL(jsonl_share(g, sz2, r, 8, &a, &b), 0);
        CU_ASSERT(a <= b);
        total += b - a;
    }
    CU_ASSERT_EQUAL(total, sz2);
    fclose(g);
    free(p2);
    free(wp);
    jsonl_shard_free(&whole);
    fclose(f);
    free(path);
}

/* PrefData.tokenizer: written as the root attribute "tokenizer", read back, NULL when absent. */
static void test_prefdata_tokenizer(void)
{
    int64_t po[2] = {0, 2}, ro[3] = {0, 1, 3}, rp[2] = {0, 0}, ch[1] = {0}, rj[1] = {1};
    int32_t pt[2] = {5, 6}, rt[3] = {7, 8, 9};
    PrefData d = {0};
    d.n_prompts = 1;
    d.n_responses = 2;
    d.n_pairs = 1;
    d.vocab_size = 10;
    d.prompt_tokens = pt;
    d.prompt_offsets = po;
    d.response_tokens = rt;
    d.response_offsets = ro;
    d.response_prompt = rp;
    d.pair_chosen = ch;
    d.pair_rejected = rj;
    d.tokenizer = "gpt2-bpe:0123456789abcdef";
    char *p = xasprintf("%s/tok.h5", g_dir), *q = xasprintf("%s/notok.h5", g_dir), err[512] = "";
    prefdata_write(p, &d, NULL);
    d.tokenizer = NULL;
    prefdata_write(q, &d, NULL);
    PrefData r;
    CU_ASSERT_EQUAL_FATAL(prefdata_read_checked(p, 0, &r, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.tokenizer);
    CU_ASSERT_STRING_EQUAL(r.tokenizer, "gpt2-bpe:0123456789abcdef");
    prefdata_free(&r);
    CU_ASSERT_PTR_NULL(r.tokenizer);
    CU_ASSERT_EQUAL_FATAL(prefdata_read_checked(q, 0, &r, err, sizeof err), 0);
    CU_ASSERT_PTR_NULL(r.tokenizer);
    prefdata_free(&r);
    /* an integer "tokenizer" is refused, naming the attribute */
    hid_t f = H5Fopen(q, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    h5u_attr_i64(f, "tokenizer", 3);
    H5Fclose(f);
    CU_ASSERT_EQUAL(prefdata_read_checked(q, 0, &r, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "tokenizer attribute is not a string"));
    CU_ASSERT_PTR_NULL(r.tokenizer);
    free(p);
    free(q);
}

static void rm_dir(void)
{
    char *cmd = xasprintf("rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
    free(cmd);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/prefer-test-jsonl-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    h5u_init();
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("jsonl_import", NULL, NULL);
    CU_add_test(s, "format names", test_format_names);
    CU_add_test(s, "explicit layout", test_explicit);
    CU_add_test(s, "malformed lines", test_malformed);
    CU_add_test(s, "implicit prompt split", test_implicit_split);
    CU_add_test(s, "implicit layout", test_implicit);
    CU_add_test(s, "conversational layout", test_conversational);
    CU_add_test(s, "chat template", test_template);
    CU_add_test(s, "scored layout", test_scored);
    CU_add_test(s, "layout detection", test_detect);
    CU_add_test(s, "token limits", test_fit);
    CU_add_test(s, "pairs from scores", test_pairs);
    CU_add_test(s, "import a file", test_import_file);
    CU_add_test(s, "import errors and skipped lines", test_import_errors);
    CU_add_test(s, "scored import with limits", test_import_scored_limits);
    CU_add_test(s, "line-aligned shares", test_shares);
    CU_add_test(s, "prefdata tokenizer attribute", test_prefdata_tokenizer);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    rm_dir();
    return fails ? 1 : 0;
}

/* test_lexicon.c: the AFINN sentiment score (lexicon.h) on a tiny hand lexicon.
 *
 * Scores worked out by hand against the rules of the npm package sentiment: lowercasing,
 * punctuation to spaces, runs of whitespace, the lone-tab rule, negators (only the token just
 * before), apostrophes kept, unicode spaces, Latin-1 lowercasing, empty text; loading from a
 * file and from a directory (labels.json + negators.json); malformed inputs give -1 naming
 * the file. The comparison with the package itself is tests/cli/test_sentiment.sh. No MPI.
 */
#define _GNU_SOURCE
#include "prefer/lexicon.h"
#include "prefer/util.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char LABELS[] = "{\"good\": 3, \"bad\": -3, \"love\": 3, \"hate\": -3, \"fine\": 2,"
                             " \"can't stand\": -3, \"naïve\": -2, \"don't\": 0, \"happy\": 3, \"half\": 0.5}";
static const char NEGATORS[] = "{\"not\": 1, \"don't\": 1, \"never\": true, \"maybe\": 0}";

static Lexicon *hand(void)
{
    Lexicon *lx = NULL;
    char err[256];
    int rc = lexicon_load_json(LABELS, strlen(LABELS), "labels", NEGATORS, strlen(NEGATORS), "negators", &lx, err,
                               sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return lx;
}

static double sc(const Lexicon *lx, const char *s, size_t *nt)
{
    return lexicon_score(lx, s, strlen(s), nt);
}

static void test_hand_scores(void)
{
    Lexicon *lx = hand();
    CU_ASSERT_EQUAL(lexicon_n_words(lx), 10);
    CU_ASSERT_EQUAL(lexicon_n_negators(lx), 3); /* "maybe": 0 is not a negator */
    size_t nt = 0;
    /* "good" 3 + "bad" -3 + "fine" 2 = 2; 4 tokens */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "Good, bad and FINE.", &nt), 2.0, 0);
    CU_ASSERT_EQUAL(nt, 4);
    /* negators: "not good" -3, "don't love" -3 (don't itself scores 0), "never hate" +3 */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "not good; I don't love it, never hate", &nt), -3.0, 0);
    CU_ASSERT_EQUAL(nt, 8);
    /* only the token right before negates: "not very good" = 3 */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "not very good", NULL), 3.0, 0);
    /* punctuation joins nothing: "not.good" -> "not good" -> -3 */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "not.good", NULL), -3.0, 0);
    /* apostrophe and hyphen are kept: "good's" and "good-bad" are not words */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "good's good-bad", NULL), 0.0, 0);
    /* a lone tab stays inside a token: "good\tbad" is one token (0); two blanks split */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "good\tbad", &nt), 0.0, 0);
    CU_ASSERT_EQUAL(nt, 1);
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "good\t\tbad", &nt), 0.0, 0);
    CU_ASSERT_EQUAL(nt, 2);
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "good \t happy", &nt), 6.0, 0);
    CU_ASSERT_EQUAL(nt, 2);
    /* "\n" is a space first: "good\nbad" = 0; "\r\n" is a run of two -> one space */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "good\nhappy", NULL), 6.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "good\r\nhappy", NULL), 6.0, 0);
    /* a lone "\r" is not a separator */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "good\rhappy", NULL), 0.0, 0);
    /* a single space char between words, leading/trailing blanks trimmed */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "   happy   ", &nt), 3.0, 0);
    CU_ASSERT_EQUAL(nt, 1);
    /* NBSP twice is a run; one NBSP alone is not a separator */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "good\xc2\xa0\xc2\xa0happy", NULL), 6.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "good\xc2\xa0happy", NULL), 0.0, 0);
    /* U+3000 ideographic space: trailing one trimmed */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "happy \xe3\x80\x80", &nt), 3.0, 0);
    CU_ASSERT_EQUAL(nt, 1);
    /* Latin-1 lowercasing: NAÏVE -> naïve (-2); multi-word entries never match */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "NA\xc3\x8fVE", NULL), -2.0, 0);
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "I can't stand it", NULL), 0.0, 0);
    /* a two-space gap gives one separator, a single space between words too; doubled
     * separators after punctuation: "good ,  ,bad" -> "good     bad" -> "good bad" */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "good ,  ,bad", &nt), 0.0, 0);
    CU_ASSERT_EQUAL(nt, 2);
    /* non-integer scores summed */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "half half not half", NULL), 0.5, 0);
    /* empty and blank text: one empty token, score 0 */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "", &nt), 0.0, 0);
    CU_ASSERT_EQUAL(nt, 1);
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, " ... ", &nt), 0.0, 0);
    CU_ASSERT_EQUAL(nt, 1);
    /* invalid UTF-8 bytes are ordinary bytes; 0xC3 before "\n" does not swallow it */
    CU_ASSERT_DOUBLE_EQUAL(sc(lx, "\xc3\nhappy \xff", &nt), 3.0, 0);
    CU_ASSERT_EQUAL(nt, 3);
    int found;
    CU_ASSERT_DOUBLE_EQUAL(lexicon_word(lx, "bad", 3, &found), -3.0, 0);
    CU_ASSERT_EQUAL(found, 1);
    CU_ASSERT_DOUBLE_EQUAL(lexicon_word(lx, "Bad", 3, &found), 0.0, 0);
    CU_ASSERT_EQUAL(found, 0);
    lexicon_free(lx);
    lexicon_free(NULL);
}

/* without negators nothing is negated */
static void test_no_negators(void)
{
    Lexicon *lx = NULL;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(lexicon_load_json(LABELS, strlen(LABELS), "l", NULL, 0, NULL, &lx, err, sizeof err), 0);
    CU_ASSERT_EQUAL(lexicon_n_negators(lx), 0);
    CU_ASSERT_DOUBLE_EQUAL(lexicon_score(lx, "not good", 8, NULL), 3.0, 0);
    lexicon_free(lx);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

static void test_files(void)
{
    char dir[] = "/tmp/test_lexicon.XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char *lp = xasprintf("%s/labels.json", dir), *np = xasprintf("%s/negators.json", dir),
         *bad = xasprintf("%s/bad.json", dir);
    write_file(lp, LABELS);
    Lexicon *lx = NULL;
    char err[512];
    /* the directory without negators.json: words only */
    CU_ASSERT_EQUAL_FATAL(lexicon_load(dir, &lx, err, sizeof err), 0);
    CU_ASSERT_EQUAL(lexicon_n_negators(lx), 0);
    lexicon_free(lx);
    write_file(np, NEGATORS);
    CU_ASSERT_EQUAL_FATAL(lexicon_load(dir, &lx, err, sizeof err), 0);
    CU_ASSERT_EQUAL(lexicon_n_negators(lx), 3);
    CU_ASSERT_DOUBLE_EQUAL(lexicon_score(lx, "not good", 8, NULL), -3.0, 0);
    lexicon_free(lx);
    /* the file alone: no negators */
    CU_ASSERT_EQUAL_FATAL(lexicon_load(lp, &lx, err, sizeof err), 0);
    CU_ASSERT_EQUAL(lexicon_n_negators(lx), 0);
    lexicon_free(lx);
    /* malformed: -1, the file named, nothing returned */
    static const char *const cases[][2] = {{"{\"a\": 1,", "bad.json:"},
                                           {"[1, 2]", "expected a JSON object"},
                                           {"{\"a\": \"x\"}", "\"a\" is not a number"},
                                           {"{\"a\": 1, \"a\": 2}", "bad.json:"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(bad, cases[i][0]);
        lx = NULL;
        CU_ASSERT_EQUAL(lexicon_load(bad, &lx, err, sizeof err), -1);
        CU_ASSERT_PTR_NULL(lx);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i][1]));
    }
    /* a bad negators file in a directory names that file */
    write_file(np, "{\"not\": \"yes\"}");
    CU_ASSERT_EQUAL(lexicon_load(dir, &lx, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "negators.json"));
    char *missing = xasprintf("%s/none.json", dir);
    CU_ASSERT_EQUAL(lexicon_load(missing, &lx, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "none.json"));
    unlink(lp);
    unlink(np);
    unlink(bad);
    rmdir(dir);
    free(lp);
    free(np);
    free(bad);
    free(missing);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("lexicon", NULL, NULL);
    CU_add_test(s, "hand-computed scores", test_hand_scores);
    CU_add_test(s, "no negators", test_no_negators);
    CU_add_test(s, "files, directories, malformed input", test_files);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return fails ? 1 : 0;
}

/* fuzz_jsonl.c: libFuzzer target for one line of JSONL preference data (src/text/
 * jsonl_import.c): jsonl_detect_line, then jsonl_parse_line under each of the four layouts
 * (explicit, implicit, conversational with the HH-RLHF template, scored with score_key
 * "auto"), and for a pair record jsonl_implicit_split of its two responses.
 *
 * The input is the line without its newline (it may hold any bytes, NUL included: the parser
 * takes a length). The reader returns -1 with a message on every malformed line.
 *
 * Does not: fuzz jsonl_import_range (file shares, the tokenizer callback) or import_cmd.c.
 * Built by `make fuzz` (clang -fsanitize=fuzzer,address,undefined).
 */
#include "prefer/jsonl_import.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = size ? (const char *)data : "";
    char err[512];
    (void)jsonl_detect_line(line, size);
    static const JsonlFormat formats[] = {JSONL_EXPLICIT, JSONL_IMPLICIT, JSONL_CONVERSATIONAL, JSONL_SCORED};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        JsonlParseOptions o = {.format = formats[i], .tmpl = JSONL_TEMPLATE_HH, .score_key = "auto"};
        JsonlRecord rec;
        if (jsonl_parse_line(line, size, &o, &rec, err, sizeof err) == 0) {
            if (rec.kind == JSONL_REC_PAIR && rec.n == 2)
                (void)jsonl_implicit_split(rec.response[0], strlen(rec.response[0]), rec.response[1],
                                           strlen(rec.response[1]), JSONL_TEMPLATE_HH.generation_prompt, err,
                                           sizeof err);
            jsonl_record_free(&rec);
        }
    }
    return 0;
}

/* fuzz_tokenizer.c: libFuzzer target for the tokenizer file loaders of src/text/bpe.c, on
 * memory (no files).
 *
 * Input layout: the first byte selects the loader. Even: tokenizer.json
 * (bpe_load_tokenizer_json) on the rest. Odd: vocab.json + merges.txt
 * (bpe_load_vocab_merges), the rest split at its first NUL byte (vocab before, merges after;
 * no NUL = empty merges). A tokenizer that loads then encodes a fixed text (with
 * <|endoftext|> allowed) and decodes the ids back, so that a loaded table is exercised.
 * The loaders return -1 with a message on every malformed file.
 *
 * Does not: check decode(encode(s)) == s (a fuzzed vocabulary need not cover every byte);
 * tests/test_bpe.c does on GPT-2's real files. Built by `make fuzz`.
 */
#include "prefer/bpe.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    char err[512];
    Bpe *b = NULL;
    int rc;
    if ((data[0] & 1) == 0) {
        rc = bpe_load_tokenizer_json(p, n, "tokenizer.json", &b, err, sizeof err);
    } else {
        const char *nul = memchr(p, 0, n);
        size_t nv = nul ? (size_t)(nul - p) : n;
        const char *m = nul ? nul + 1 : "";
        size_t nm = nul ? n - nv - 1 : 0;
        rc = bpe_load_vocab_merges(p, nv, "vocab.json", m, nm, "merges.txt", &b, err, sizeof err);
    }
    if (rc != 0)
        return 0;
    static const char text[] = "Hello world, it's 2024!  \xc3\xa9t\xc3\xa9 <|endoftext|>\xff\n";
    BpeIds ids = {0};
    bpe_encode(b, text, sizeof text - 1, 1, &ids);
    size_t len = 0;
    char *back = bpe_decode(b, ids.ids, ids.n, &len, err, sizeof err);
    free(back);
    bpe_ids_free(&ids);
    bpe_free(b);
    return 0;
}

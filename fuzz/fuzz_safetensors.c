/* fuzz_safetensors.c: libFuzzer target for hf_parse_safetensors (src/io/hf.c), the reader of
 * a downloaded model.safetensors image.
 *
 * The input is the whole file image. It is parsed into a tiny GPT-2 (vocab 5, 4 positions,
 * 1 layer, 2 heads, 4 channels: the dims of the seeds that fuzz/make_seeds.py writes), so
 * that a well-formed header gets past the name and shape checks into the conversion code.
 * The reader returns -1 on every malformed input; it never calls die() on one.
 *
 * Does not: fuzz config.json (hf_parse_config) or the file mapping of src/io/hf_cmd.c.
 * Built by `make fuzz` (clang -fsanitize=fuzzer,address,undefined).
 */
#include "prefer/gpt.h"
#include "prefer/hf.h"

#include <stddef.h>
#include <stdint.h>

static Gpt model;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        GptDims d = {.vocab_size = 5, .context = 4, .n_layer = 1, .n_head = 2, .n_embd = 4};
        gpt_init_seq(&model, &d, 1, 1);
        ready = 1;
    }
    char err[512];
    (void)hf_parse_safetensors(size ? data : (const uint8_t *)"", size, &model, err, sizeof err);
    return 0;
}

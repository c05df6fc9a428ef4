/* hf.h: Hugging Face GPT-2 checkpoints in and out: config.json and model.safetensors.
 *
 * Reading is split into functions over memory buffers (hf_parse_config,
 * hf_parse_safetensors), so that a fuzzer can drive them without files; the commands
 * (src/io/hf_cmd.c) map the files and add the file names to the messages.
 *
 * Name mapping (docs/hf.md): Hugging Face's GPT-2 names, with or without the
 * "transformer." prefix, are prefer's tensor names (gpt.h) except "wte.weight" -> "wte"
 * and "wpe.weight" -> "wpe". GPT-2's Conv1D weights (c_attn, c_proj, c_fc) are stored
 * (in, out) and transposed to prefer's (out, in). The buffers "h.<l>.attn.bias" and
 * "h.<l>.attn.masked_bias" are ignored; "lm_head.weight" is accepted only when it equals
 * wte bit for bit (prefer ties the head); any other tensor is refused.
 *
 * Does not: read sharded checkpoints (model-00001-of-00002.safetensors), PyTorch pickles
 * (pytorch_model.bin), or GPT-2 variants with another activation, epsilon or untied head.
 */
#ifndef PREFER_HF_H
#define PREFER_HF_H

#include <stddef.h>
#include <stdint.h>

#include "prefer/gpt.h"

/* Parse config.json text (n bytes, not necessarily NUL-terminated) of a GPT-2 model into
 * d: n_embd, n_layer, n_head, n_positions (or n_ctx), vocab_size. Refuses a config whose
 * arithmetic prefer does not reproduce: activation_function other than gelu_new (or its
 * equal gelu_pytorch_tanh), layer_norm_epsilon != 1e-5, n_inner other than null or
 * 4 n_embd, tie_word_embeddings false, scale_attn_weights false,
 * scale_attn_by_inverse_layer_idx true, model_type other than gpt2. Returns 0, or -1 with
 * a message naming the key in err. */
int hf_parse_config(const char *text, size_t n, GptDims *d, char *err, int errlen);

/* Parse a whole model.safetensors image buf[0..n) and load its GPT-2 tensors into
 * m->params (m initialised with the dims of the model's config). Checks, before any
 * allocation that depends on them: the 8-byte header length against n, every
 * data_offsets range against the data size, each tensor's byte size against its dtype and
 * shape, that the ranges tile the data without gaps or overlaps (as the safetensors
 * specification requires); then the names, dtypes (F32, F16, BF16; converted to float),
 * shapes against m's dims; then converts into m->params and checks finiteness. A
 * structural error leaves m->params untouched; a NaN or Inf found while converting leaves
 * it partly overwritten. Returns 0, or -1 with a message naming the tensor or key in err. */
int hf_parse_safetensors(const uint8_t *buf, size_t n, Gpt *m, char *err, int errlen);

/* config.json text of a GPT2LMHeadModel with m's dims (caller frees). */
char *hf_config_json(const GptDims *d);

/* Write m's parameters as a safetensors file (F32, Hugging Face GPT-2 names without the
 * "transformer." prefix, Conv1D weights transposed to (in, out), 8-byte aligned data,
 * metadata {"format": "pt"}) to path, through path.tmp and a rename. Dies naming the
 * file on I/O errors. */
void hf_write_safetensors(const Gpt *m, const char *path);

#endif

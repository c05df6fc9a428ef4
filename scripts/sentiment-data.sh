#!/bin/sh
# sentiment-data.sh [OUT]: the data of the sentiment experiment (docs/sentiment.md).
#
# 1. Debian's `fortunes` package (apt-get install when missing and run as root; else a message
#    and exit 3); its plain-text fortune files /usr/share/games/fortunes/* (fortunes separated
#    by lines holding only "%"; the *.dat indexes, the *.u8 links and the ASCII-art files are
#    skipped).
# 2. GPT-2's tokenizer (scripts/fetch-gpt2-tokenizer.sh) in ${PREFER_CACHE:-$HOME/.cache/prefer}.
# 3. The npm package sentiment (pinned) into ${PREFER_CACHE:-$HOME/.cache/prefer}/npm; its
#    languages/en folder (labels.json = AFINN-165, negators.json) copied to
#    ${PREFER_CACHE:-$HOME/.cache/prefer}/sentiment-lexicon.
# 4. OUT (default sentiment-out/data) gets, as JSONL and imported with `prefer import`:
#      sft.jsonl/.h5      training fortunes: prompt = the first WORDS words, one completion =
#                         the rest (scored layout, one completion, no pairs: an SFT corpus)
#      prompts.jsonl/.h5  PROMPTS training fortunes' prompts (with their true continuation),
#                         for sampling K responses each and labelling
#      heldout.jsonl/.h5  HELDOUT fortunes of the held-out split (every 10th fortune), for eval
# Whitespace runs inside a fortune become one space. Knobs (environment): WORDS (4),
# PROMPTS (512), HELDOUT (128), MAX_FORTUNES (0 = all), MAX_RESPONSE_TOKENS (48),
# CONTEXT (64, = the model's), PREFER (bin/prefer), FORTUNE_DIR (/usr/share/games/fortunes).
# Exit codes: 0 ok; 1 error; 3 fortunes cannot be installed or the npm registry is unreachable
# (tests skip on 3 and only on 3).
set -eu

case "${1:-}" in
-h | --help)
    sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
esac

SENTIMENT_VERSION=5.0.2
OUT="${1:-sentiment-out/data}"
CACHE="${PREFER_CACHE:-$HOME/.cache/prefer}"
NPM_DIR="$CACHE/npm"
LEX="$CACHE/sentiment-lexicon"
TOK="$CACHE/gpt2-tokenizer"
PREFER="${PREFER:-${BIN:-bin}/prefer}"
FORTUNE_DIR="${FORTUNE_DIR:-/usr/share/games/fortunes}"
WORDS="${WORDS:-4}"
PROMPTS="${PROMPTS:-512}"
HELDOUT="${HELDOUT:-128}"
MAX_FORTUNES="${MAX_FORTUNES:-0}"
MAX_RESPONSE_TOKENS="${MAX_RESPONSE_TOKENS:-48}"
CONTEXT="${CONTEXT:-64}"
HERE="$(cd "$(dirname "$0")" && pwd)"

say() { echo "sentiment-data: $*" >&2; }

# 1. fortunes
if [ ! -f "$FORTUNE_DIR/fortunes" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian's fortunes package"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes >/dev/null 2>&1; then
            apt-get update -qq >/dev/null 2>&1 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes >/dev/null 2>&1 || {
                say "apt-get install fortunes failed: install Debian's fortunes package"; exit 3; }
        fi
    else
        say "$FORTUNE_DIR/fortunes is missing: install Debian's fortunes package (apt-get install fortunes, as root)"
        exit 3
    fi
fi

# 2. GPT-2's tokenizer (exit 3 passes through)
sh "$HERE/fetch-gpt2-tokenizer.sh" "$TOK"

# 3. the sentiment package's lexicon
PKG="$NPM_DIR/node_modules/sentiment"
if [ ! -f "$LEX/labels.json" ] || [ ! -f "$LEX/negators.json" ]; then
    if [ ! -f "$PKG/languages/en/labels.json" ] \
        || [ "$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$PKG/package.json" 2>/dev/null)" != "$SENTIMENT_VERSION" ]; then
        sh "$HERE/npm-install.sh" "sentiment@$SENTIMENT_VERSION" "$NPM_DIR" || exit $?
        [ -f "$PKG/languages/en/labels.json" ] || { say "$PKG/languages/en/labels.json missing after npm install"; exit 1; }
    fi
    mkdir -p "$LEX"
    for f in labels.json negators.json; do
        cp "$PKG/languages/en/$f" "$LEX/.$f.tmp.$$"
        mv -f "$LEX/.$f.tmp.$$" "$LEX/$f"
    done
    cp "$PKG/LICENSE.md" "$LEX/LICENSE.md"
    say "wrote the AFINN-165 lexicon of sentiment@$SENTIMENT_VERSION to $LEX"
fi

# 4. fortunes -> JSONL -> prefdata
mkdir -p "$OUT"
FORTUNE_DIR="$FORTUNE_DIR" WORDS="$WORDS" PROMPTS="$PROMPTS" HELDOUT="$HELDOUT" MAX_FORTUNES="$MAX_FORTUNES" \
    /usr/bin/python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
d = os.environ["FORTUNE_DIR"]
words = int(os.environ["WORDS"]); n_prompts = int(os.environ["PROMPTS"])
n_held = int(os.environ["HELDOUT"]); cap = int(os.environ["MAX_FORTUNES"])
skip = {"art", "ascii-art"}
fortunes = []
for name in sorted(os.listdir(d)):
    p = os.path.join(d, name)
    if name.endswith((".dat", ".u8")) or name in skip or os.path.islink(p) or not os.path.isfile(p):
        continue
    with open(p, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    cur = []
    for line in text.split("\n") + ["%"]:
        if line.strip() == "%" and line.rstrip("\r") == "%":
            t = " ".join(" ".join(cur).split())
            if len(t.split(" ")) > words:
                fortunes.append(t)
            cur = []
        else:
            cur.append(line)
if cap > 0:
    fortunes = fortunes[:cap]
def record(t):
    w = t.split(" ")
    return {"prompt": " ".join(w[:words]), "completions": [{"text": " " + " ".join(w[words:]), "score": 0}]}
train = [t for i, t in enumerate(fortunes) if i % 10 != 9]
held = [t for i, t in enumerate(fortunes) if i % 10 == 9]
# sampling prompts: spread evenly over the training fortunes
step = max(1, len(train) // max(1, n_prompts))
prompts = train[::step][:n_prompts]
hstep = max(1, len(held) // max(1, n_held))
held = held[::hstep][:n_held]
for name, rows in (("sft", train), ("prompts", prompts), ("heldout", held)):
    with open(os.path.join(out, name + ".jsonl"), "w") as f:
        for t in rows:
            f.write(json.dumps(record(t), ensure_ascii=False) + "\n")
print("sentiment-data: %d fortunes: %d for SFT, %d sampling prompts, %d held-out prompts" %
      (len(fortunes), len(train), len(prompts), len(held)), file=sys.stderr)
PY
for name in sft prompts heldout; do
    "$PREFER" import /dev/null --set import.input="$OUT/$name.jsonl" --set import.output="$OUT/$name.h5" \
        --set import.tokenizer="$TOK" --set import.format=scored \
        --set import.max_response_tokens="$MAX_RESPONSE_TOKENS" --set import.max_prompt_tokens=16 \
        --set import.max_total_tokens="$CONTEXT" >"$OUT/import-$name.log" 2>&1 \
        || { cat "$OUT/import-$name.log" >&2; say "prefer import of $OUT/$name.jsonl failed"; exit 1; }
    tail -n 1 "$OUT/import-$name.log" >&2
done
say "data in $OUT; tokenizer $TOK; lexicon $LEX"

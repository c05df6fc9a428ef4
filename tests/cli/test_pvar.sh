#!/bin/sh
# prefer pvar on a tiny synthetic task: source = scores writes the results file (format
# prefer.pvar, /pvar /rank /selected) and select_out keeps 10% of the prompts with all their
# responses and pairs (checked with prefer info); PVar correlates positively with the
# prompts' hidden care; a second pvar on the selected file follows /source_prompt; source =
# model gives the same /pvar and /h at 1 and 2 ranks (h5dump, full precision), and PVar 0
# everywhere for a policy equal to its reference; config errors name the key.
set -u
P="${BIN:-bin}/prefer"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-pvar.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
# dataset $2 of file $1 at full precision, without the header line that names the file
dump() { h5dump -m %.17g -d "$2" "$1" | tail -n +2; }
# 1 if the number $1 is > $2
gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 > b + 0 && a != "nan" && a != "") }'; }

"$P" pvar --help >"$T/h" 2>&1 && grep -q "usage: prefer pvar" "$T/h" && ok "pvar --help" || bad "pvar --help"

S="--set synth.out=$T/train.h5 --set synth.sft_out=$T/sft.h5 --set synth.heldout_out= --set synth.n_prompts=100 \
   --set model.context=32"
# shellcheck disable=SC2086
"$P" synth $S >"$T/log" 2>&1 && ok "synth" || { bad "synth"; cat "$T/log"; }

# ---- scores: 100 prompts x 4 responses, 6 pairs each; top 10% -> 10 prompts, 40 responses, 60 pairs
V="--set pvar.data=$T/train.h5 --set pvar.source=scores --set pvar.out=$T/pv.h5"
# shellcheck disable=SC2086
"$P" pvar $V --set pvar.select=top --set pvar.frac=0.1 --set pvar.select_out="$T/sel.h5" >"$T/s.log" 2>&1 \
    && ok "pvar scores" || { bad "pvar scores"; cat "$T/s.log"; }
h5dump -a /format "$T/pv.h5" 2>/dev/null | grep -q '"prefer.pvar"' && dump "$T/pv.h5" /pvar | grep -q "( 100 )" \
    && dump "$T/pv.h5" /rank | grep -q "( 100 )" && dump "$T/pv.h5" /selected | grep -q "( 100 )" \
    && ok "results file: prefer.pvar with /pvar, /rank, /selected of 100" || { bad "results file"; h5dump -H "$T/pv.h5"; }
grep -q "selected 10 of 100 prompts" "$T/s.log" && ok "10 of 100 selected" || { bad "selection line"; cat "$T/s.log"; }
"$P" info "$T/sel.h5" >"$T/info" 2>&1 && grep -Eq "^  prompts +10 " "$T/info" && grep -Eq "^  responses +40 " "$T/info" \
    && grep -Eq "^  pairs +60$" "$T/info" && grep -q "valid *yes" "$T/info" \
    && ok "select_out: 10 prompts, 40 responses, 60 pairs, valid" || { bad "select_out"; cat "$T/info"; }
dump "$T/sel.h5" /source_prompt | grep -q "( 10 )" && ok "select_out has /source_prompt[10]" || bad "/source_prompt"
rho=$(sed -n 's/.*care (synthetic task): pearson \([^ ]*\) spearman \([^ ]*\).*/\2/p' "$T/s.log")
gt "$rho" 0.3 && ok "PVar follows the care (spearman $rho)" || { bad "PVar/care correlation '$rho'"; cat "$T/s.log"; }
# the selected prompts care more than the rest
line=$(grep "mean care" "$T/s.log")
cs=$(echo "$line" | sed 's/.*mean care \([^ ]*\) selected, \([^ ]*\) unselected.*/\1/')
cu=$(echo "$line" | sed 's/.*mean care \([^ ]*\) selected, \([^ ]*\) unselected.*/\2/')
gt "$cs" "$cu" && ok "selected prompts care more ($cs > $cu)" || bad "care selected $cs vs unselected $cu"
# pvar on the selected file: the cares come through /source_prompt
# shellcheck disable=SC2086
"$P" pvar --set pvar.data="$T/sel.h5" --set pvar.out="$T/pv2.h5" >"$T/s2.log" 2>&1 \
    && grep -q "correlation of PVar with the prompts' care" "$T/s2.log" && ok "pvar on the selection (cares via /source_prompt)" \
    || { bad "pvar on the selection"; cat "$T/s2.log"; }

# ---- model: a checkpoint after 10 SFT steps as reference, after 20 as policy
"$P" train $S --set train.data="$T/sft.h5" --set train.out_dir="$T/sft" --set train.steps=20 --set train.ckpt_every=10 \
    >"$T/log" 2>&1 && [ -f "$T/sft/ckpt_00000010.h5" ] && ok "train two checkpoints" || { bad "train"; cat "$T/log"; ls "$T/sft"; }
M="--set pvar.data=$T/train.h5 --set pvar.source=model --set pvar.policy=$T/sft/latest.h5 --set pvar.ref=$T/sft/ckpt_00000010.h5 \
   --set pvar.select=proportional --set pvar.frac=0.2 --set pvar.batch=16 --set runtime.threads=1"
# shellcheck disable=SC2086
"$P" pvar $M --set pvar.out="$T/m1.h5" >"$T/m1.log" 2>&1 && ok "pvar model, 1 rank" || { bad "pvar model, 1 rank"; cat "$T/m1.log"; }
grep -q "mean 0 min 0" "$T/m1.log" && bad "model PVar all 0 for different checkpoints" || ok "model PVar not all 0"
if command -v mpirun >/dev/null; then
    # shellcheck disable=SC2086
    mpirun -np 2 "$P" pvar $M --set pvar.out="$T/m2.h5" >"$T/m2.log" 2>&1 && ok "pvar model, 2 ranks" \
        || { bad "pvar model, 2 ranks"; cat "$T/m2.log"; }
    for d in /pvar /h /rank /selected; do
        dump "$T/m1.h5" $d >"$T/d1"
        dump "$T/m2.h5" $d >"$T/d2" 2>&1
        [ -s "$T/d1" ] && cmp -s "$T/d1" "$T/d2" && ok "$d: 1 rank = 2 ranks" || { bad "$d differs at 1 and 2 ranks"; diff "$T/d1" "$T/d2" | head; }
    done
else
    echo "skip: no mpirun (1 rank = 2 ranks)"
fi
# a policy equal to its reference: h = 0, PVar 0
# shellcheck disable=SC2086
"$P" pvar $M --set pvar.ref="$T/sft/latest.h5" --set pvar.out="$T/m0.h5" >"$T/m0.log" 2>&1 \
    && grep -q "every PVar is 0" "$T/m0.log" && ok "policy = reference: PVar 0 everywhere" || { bad "policy = reference"; cat "$T/m0.log"; }

# ---- errors
"$P" pvar --set pvar.select=topp >"$T/e" 2>&1 && bad "bad select accepted" \
    || { grep -q "did you mean 'top'" "$T/e" && ok "bad pvar.select named" || { bad "bad select message"; cat "$T/e"; }; }
"$P" pvar --set pvar.frac=0 >"$T/e" 2>&1 && bad "frac 0 accepted" \
    || { grep -q "pvar.frac" "$T/e" && ok "pvar.frac = 0 refused" || { bad "frac message"; cat "$T/e"; }; }
"$P" pvar --set pvar.data="$T/sft.h5" --set pvar.out="$T/x.h5" >"$T/e" 2>&1 \
    && grep -q "100 prompts with fewer than 2 responses" "$T/e" && ok "one response per prompt: no PVar, reported" \
    || { bad "SFT file"; cat "$T/e"; }

echo "pvar: $fails failure(s)"
[ "$fails" -eq 0 ]

#!/bin/sh
# The preference pipeline end to end on a tiny synthetic task: synth -> SFT -> sample ->
# label -> DPO (reference log-probs computed, then cached) -> eval; the cache is reused,
# a stale cache is refused, train.ref_cache = require refuses a missing entry, and the
# eval line has the documented form.
set -u
P="${BIN:-bin}/prefer"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-pipe.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
S="--set synth.sft_out=$T/sft.h5 --set synth.out=$T/train.h5 --set synth.heldout_out=$T/heldout.h5 \
   --set synth.n_prompts=64 --set synth.n_heldout=16 --set model.context=32"
"$P" synth $S >"$T/log" 2>&1 && ok "synth" || { bad "synth"; cat "$T/log"; }
"$P" train $S --set train.data=$T/sft.h5 --set train.out_dir=$T/sft --set train.steps=30 >"$T/log" 2>&1 \
    && ok "sft" || { bad "sft"; cat "$T/log"; }
"$P" sample $S --set sample.checkpoint=$T/sft/latest.h5 --set sample.data=$T/train.h5 --set sample.out=$T/samples.h5 \
    --set sample.n=3 >"$T/log" 2>&1 && ok "sample" || { bad "sample"; cat "$T/log"; }
"$P" label $S --set label.in=$T/samples.h5 --set label.out=$T/prefs.h5 >"$T/log" 2>&1 \
    && "$P" info "$T/prefs.h5" | grep -q "pairs *192" && ok "label: 3 pairs per prompt" || { bad "label"; cat "$T/log"; }
D="--set train.objective=dpo --set train.data=$T/prefs.h5 --set model.init_from=$T/sft/latest.h5 --set train.steps=5 --set train.micro_batch=8"
"$P" train $S $D --set train.out_dir=$T/dpo >"$T/log" 2>&1 && grep -q "computed log-probs" "$T/log" \
    && ok "dpo computes the reference log-probs" || { bad "dpo first run"; cat "$T/log"; }
"$P" train $S $D --set train.out_dir=$T/dpo2 >"$T/log" 2>&1 && grep -q "from the cache" "$T/log" \
    && ok "dpo reuses the cache" || { bad "dpo cache reuse"; cat "$T/log"; }
# two ranks: same loss as one rank at the same global batch
"$P" train $S $D --set train.out_dir=$T/a --set train.log_every=1 >"$T/l1" 2>&1
mpirun -np 2 "$P" train $S $D --set train.micro_batch=4 --set train.out_dir=$T/b --set train.log_every=1 >"$T/l2" 2>&1
l1=$(grep "^step *5/5" "$T/l1" | sed 's/.*loss \([^ ]*\).*/\1/'); l2=$(grep "^step *5/5" "$T/l2" | sed 's/.*loss \([^ ]*\).*/\1/')
[ -n "$l1" ] && [ "$l1" = "$l2" ] && ok "dpo 1 rank = 2 ranks (loss $l1)" || { bad "dpo 1 vs 2 ranks: '$l1' vs '$l2'"; tail -5 "$T/l2"; }
# require: a reference without a cache entry is refused
"$P" train $S $D --set train.ref=$T/dpo/latest.h5 --set train.ref_cache=require --set train.out_dir=$T/x >"$T/log" 2>&1 \
    && bad "require: accepted a missing cache" || { grep -q "no reference log-probs" "$T/log" && ok "require refuses a missing entry" || { bad "require message"; cat "$T/log"; }; }
# a stale cache (computed on other responses) is refused
/usr/bin/python3 - "$T/prefs.h5" <<'PY' && stale=1 || stale=0
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    for k in f["ref_logp"]:
        f["ref_logp"][k].attrs["data_hash"] = "0000000000000000"
PY
if [ "$stale" = 1 ]; then
    "$P" train $S $D --set train.out_dir=$T/y >"$T/log" 2>&1 && bad "stale cache accepted" \
        || { grep -q "refusing a stale cache" "$T/log" && ok "stale cache refused" || { bad "stale message"; cat "$T/log"; }; }
else
    echo "skip: python3-h5py missing (stale-cache check)"
fi
"$P" eval $S --set eval.policy=$T/dpo/latest.h5 --set eval.ref=$T/sft/latest.h5 --set eval.data=$T/heldout.h5 >"$T/log" 2>&1 \
    && tail -1 "$T/log" | grep -Eq '^eval: reward=[-0-9.]+ reward_ref=[-0-9.]+ kl=[0-9.]+ win_rate=[0-9.]+ pref_acc=[0-9.]+$' \
    && ok "eval line" || { bad "eval"; cat "$T/log"; }
"$P" info "$T/dpo/run.h5" | grep -q "table /eval *1 rows" && ok "eval appended a row to the policy's run log" \
    || { bad "no eval row in $T/dpo/run.h5"; "$P" info "$T/dpo/run.h5" | head -20; }
# a pair whose prompt + response is context + 1 tokens fits (the last token is only predicted),
# with and without prefix sharing, and both give the same loss
L="--set model.context=32 --set synth.prompt_len=8 --set synth.response_len=25 --set synth.n_prompts=16"
# shellcheck disable=SC2086
"$P" synth $L --set synth.out=$T/long.h5 --set synth.sft_out=$T/long-sft.h5 --set synth.heldout_out= >"$T/log" 2>&1 \
    && "$P" train $L --set train.data=$T/long-sft.h5 --set train.out_dir=$T/long-sft --set train.steps=2 >>"$T/log" 2>&1 \
    || { bad "long synth/sft"; tail "$T/log"; }
for ps in true false; do
    # shellcheck disable=SC2086
    "$P" train $L --set train.objective=dpo --set train.data=$T/long.h5 --set model.init_from=$T/long-sft/latest.h5 \
        --set train.out_dir=$T/long-$ps --set train.steps=2 --set train.micro_batch=4 --set train.prefix_sharing=$ps \
        >"$T/long-$ps.log" 2>&1 || { bad "dpo on context + 1 tokens (prefix_sharing $ps)"; tail -3 "$T/long-$ps.log"; }
done
a=$(grep "train: done" "$T/long-true.log" | sed 's/.*loss //'); b=$(grep "train: done" "$T/long-false.log" | sed 's/.*loss //')
[ -n "$a" ] && [ "$a" = "$b" ] && ok "dpo on pairs of context + 1 tokens, shared = unshared ($a)" || bad "context + 1: '$a' vs '$b'"
echo "pipeline: $fails failure(s)"
[ "$fails" -eq 0 ]

#!/bin/sh
# PVar curriculum in training: the prompts selected at each epoch are the same at 1 and 2
# ranks; a run resumed mid-curriculum from a checkpoint ends bit-identical to an
# uninterrupted one; the run log holds each epoch's PVar and selection.
set -u
P="${BIN:-bin}/prefer"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-cur.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
S="--set synth.sft_out=$T/sft.h5 --set synth.out=$T/train.h5 --set synth.heldout_out= \
   --set synth.n_prompts=64 --set model.context=32 --set runtime.threads=1"
"$P" synth $S >/dev/null 2>&1 || bad "synth"
"$P" train $S --set train.data=$T/sft.h5 --set train.out_dir=$T/sft --set train.steps=20 >/dev/null 2>&1 || bad "sft"
D="$S --set train.objective=dpo --set train.data=$T/train.h5 --set model.init_from=$T/sft/latest.h5 --set train.steps=14 \
   --set train.lr=1e-3 --set curriculum.select=top --set curriculum.frac=0.1 --set curriculum.every=1 --set train.keep_ckpts=0"
"$P" train $D --set train.micro_batch=8 --set train.out_dir=$T/one >"$T/one.log" 2>&1 || { bad "1 rank"; tail -3 "$T/one.log"; }
mpirun -np 2 "$P" train $D --set train.micro_batch=4 --set train.out_dir=$T/two >"$T/two.log" 2>&1 || { bad "2 ranks"; tail -3 "$T/two.log"; }
n=$(grep -c "^curriculum: epoch" "$T/one.log")
[ "$n" -ge 2 ] && ok "$n curriculum epochs in 14 steps" || bad "expected several curriculum epochs, got $n"
for e in 0 1; do
    h5dump -d /curriculum/epoch_$e/selected "$T/one/run.h5" | tail -n +3 >"$T/s1" 2>/dev/null
    h5dump -d /curriculum/epoch_$e/selected "$T/two/run.h5" | tail -n +3 >"$T/s2" 2>/dev/null
    [ -s "$T/s1" ] && cmp -s "$T/s1" "$T/s2" && ok "epoch $e: same selection at 1 and 2 ranks" || bad "epoch $e selection differs or missing"
done
"$P" info "$T/one/run.h5" | grep -q "table /epochs" && ok "run log has /epochs" || bad "no /epochs table"
# resume mid-curriculum: bit-identical
"$P" train $D --set train.micro_batch=8 --set train.out_dir=$T/part --set train.ckpt_every=5 >/dev/null 2>&1
"$P" train $D --set train.micro_batch=8 --set train.out_dir=$T/res --set train.resume=$T/part/ckpt_00000005.h5 >"$T/res.log" 2>&1
if h5diff "$T/one/ckpt_00000014.h5" "$T/res/ckpt_00000014.h5" /params /params >/dev/null 2>&1; then
    ok "resumed at step 5 = uninterrupted (h5diff /params)"
else bad "resume with curriculum state differs"; tail -3 "$T/res.log"; fi
# histogram logging: 50 counts summing to the prompts with a PVar, selection as ids
"$P" train $D --set train.micro_batch=8 --set train.out_dir=$T/hist --set curriculum.log_pvar=histogram >/dev/null 2>&1
/usr/bin/python3 - "$T/hist/run.h5" <<'PY' && ok "histogram logging" || bad "histogram logging"
import sys, h5py
g = h5py.File(sys.argv[1], "r")["curriculum/epoch_1"]
h, hs, ids = g["pvar_hist"][()], g["pvar_hist_selected"][()], g["selected_prompts"][()]
assert len(h) == 50 and h.sum() == 64 and hs.sum() == len(ids) and "pvar" not in g, (h.sum(), hs.sum(), len(ids))
PY
echo "curriculum: $fails failure(s)"
[ "$fails" -eq 0 ]

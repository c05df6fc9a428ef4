#!/bin/sh
# PVar curriculum in training: the prompts selected at each epoch are the same at 1 and 2
# ranks; a run resumed mid-curriculum from a checkpoint ends bit-identical to an
# uninterrupted one; the run log holds each epoch's PVar and selection; under the cost
# budget (curriculum.max_share) the reselection period is lengthened, the same at 1 and 2
# ranks and after a resume.
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
# every epoch, whatever it costs (the budget is tested below)
D="$D --set curriculum.max_share=1"
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
# the budget: a selection forwards all 64 x 4 responses, an epoch trains on 10% of the pairs,
# so at the default max_share = 0.15 the curriculum reselects every N > 1 epochs: epochs
# 0, 1, 1 + N, ... (model source), the same at 1 and 2 ranks, and the same after a resume
B="$S --set train.objective=dpo --set train.data=$T/train.h5 --set model.init_from=$T/sft/latest.h5 --set train.steps=200 \
   --set train.lr=1e-3 --set curriculum.select=top --set curriculum.frac=0.1 --set train.keep_ckpts=0 --set train.micro_batch=4"
"$P" train $B --set train.out_dir=$T/b1 >"$T/b1.log" 2>&1 || { bad "budget run"; tail -3 "$T/b1.log"; }
mpirun -np 2 "$P" train $B --set train.micro_batch=2 --set train.out_dir=$T/b2 >"$T/b2.log" 2>&1 || { bad "budget run, 2 ranks"; tail -3 "$T/b2.log"; }
N=$(sed -n 's/^curriculum: reselecting every \([0-9]*\) epochs, not every 1.*/\1/p' "$T/b1.log")
E1=$(sed -n 's/^curriculum: epoch \([0-9]*\) from.*/\1/p' "$T/b1.log" | tr '\n' ' ')
E2=$(sed -n 's/^curriculum: epoch \([0-9]*\) from.*/\1/p' "$T/b2.log" | tr '\n' ' ')
want=""
if [ -n "$N" ] && [ "$N" -gt 1 ]; then
    ok "budget: reselecting every $N epochs"
    set -- $E1
    e=0; for got in "$@"; do want="$want$e "; [ $e -eq 0 ] && e=1 || e=$((e + N)); done
else bad "budget: no lengthened period ($(grep 'reselecting' "$T/b1.log"))"; fi
[ -n "$E1" ] && [ "$E1" = "$want" ] && [ $(echo $E1 | wc -w) -ge 3 ] && ok "budget: selections at epochs $E1" ||
    bad "budget: selections at epochs '$E1', want '$want' (3 or more)"
[ "$E1" = "$E2" ] && ok "budget: the same epochs at 2 ranks" || bad "budget: 1 rank '$E1', 2 ranks '$E2'"
last=$(echo $E1 | awk '{print $NF}')
h5dump -d /curriculum/epoch_$last/selected "$T/b1/run.h5" | tail -n +3 >"$T/s1" 2>/dev/null
h5dump -d /curriculum/epoch_$last/selected "$T/b2/run.h5" | tail -n +3 >"$T/s2" 2>/dev/null
[ -s "$T/s1" ] && cmp -s "$T/s1" "$T/s2" && ok "budget: epoch $last selects the same prompts at 1 and 2 ranks" ||
    bad "budget: epoch $last selection differs or missing"
/usr/bin/python3 - "$T/b1/run.h5" <<'PY' && ok "budget: epoch 0 PVar is exactly 0 (policy = reference, no pass)" || bad "budget: epoch 0 PVar"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert np.all(f["curriculum/epoch_0/pvar"][()] == 0) and np.any(f["curriculum/epoch_1/pvar"][()] > 0)
assert f.attrs["curriculum_period"] > 1
PY
/usr/bin/python3 - "$T/b1/run.h5" "$T/b2/run.h5" <<'PY' && ok "budget: epoch 1 PVar at 2 ranks = 1 rank (to 1e-4)" || bad "budget: epoch 1 PVar differs at 2 ranks"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["curriculum/epoch_1/pvar"][()] for p in sys.argv[1:3])
assert a.shape == b.shape and np.nanmax(np.abs(a - b)) < 1e-4 and np.nanmax(a) > 1e-3, np.nanmax(np.abs(a - b))
PY
# a short run still makes its first selection by PVar (epoch 1), whatever the budget
"$P" train $B --set train.steps=40 --set train.out_dir=$T/bs >"$T/bs.log" 2>&1 || bad "short budget run"
E=$(sed -n 's/^curriculum: epoch \([0-9]*\) from.*/\1/p' "$T/bs.log" | tr '\n' ' ')
[ "$E" = "0 1 " ] && grep -q "^curriculum: epoch 1 from.*: top 10% by PVar (model):" "$T/bs.log" && ok "budget: short run selects at epochs $E" ||
    bad "budget: short run selects at epochs '$E'"
# a reference given under another path than the initial policy: epoch 0 makes a real pass, and
# the period counts from it (0, N, 2N, ...)
cp "$T/sft/latest.h5" "$T/ref.h5"
"$P" train $B --set train.ref=$T/ref.h5 --set train.out_dir=$T/bx >"$T/bx.log" 2>&1 || bad "budget run, train.ref"
EX=$(sed -n 's/^curriculum: epoch \([0-9]*\) from.*/\1/p' "$T/bx.log" | tr '\n' ' ')
wantx=""; if [ -n "$N" ]; then e=0; for got in $EX; do wantx="$wantx$e "; e=$((e + N)); done; fi
[ -n "$EX" ] && [ "$EX" = "$wantx" ] && [ $(echo $EX | wc -w) -ge 2 ] && ok "budget, train.ref: selections at epochs $EX" ||
    bad "budget, train.ref: selections at epochs '$EX', want '$wantx'"
"$P" train $B --set train.out_dir=$T/bp --set train.ckpt_every=100 >/dev/null 2>&1
"$P" train $B --set train.out_dir=$T/br --set train.resume=$T/bp/ckpt_00000100.h5 >"$T/br.log" 2>&1
if h5diff "$T/b1/ckpt_00000200.h5" "$T/br/ckpt_00000200.h5" /params /params >/dev/null 2>&1; then
    ok "budget: resumed at step 100 = uninterrupted"
else bad "budget: resume differs"; tail -3 "$T/br.log"; fi
# the cost benchmark runs and prints its figures (make bench; figures are not asserted)
if "$P" bench configs/demo.cfg --pvar --quick --set runtime.threads=1 >"$T/bench" 2>&1 &&
    grep -Eq "^bench-pvar: pass_s=[0-9.]+ share_speedup=[0-9.]+ selection_in_steps=[0-9.]+ predicted_steps=[0-9.]+ ratio=[0-9.]+$" "$T/bench"; then
    ok "bench --pvar: $(tail -n 1 "$T/bench")"
else bad "bench --pvar"; cat "$T/bench"; fi
echo "curriculum: $fails failure(s)"
[ "$fails" -eq 0 ]

#!/bin/sh
# Restart and preemption: a run resumed from its step-10 checkpoint ends bit-identical to an
# uninterrupted one (same number of ranks); 1, 2 and 3 ranks give the same trajectory to
# 1e-5 (relative 2-norm difference of all parameters) at the same global batch; resuming at
# another number of ranks stays within 1e-5;
# SIGTERM mid-run leaves a checkpoint and exit code 75, and train.resume = auto completes
# the run; a rank killed with SIGKILL ends the job within 30 s with a non-zero exit.
set -u
P="${BIN:-bin}/prefer"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-resume.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
PY=/usr/bin/python3
S="--set synth.sft_out=$T/sft.h5 --set synth.out=$T/train.h5 --set synth.heldout_out= \
   --set synth.n_prompts=96 --set model.context=32 --set runtime.threads=1"
"$P" synth $S >/dev/null 2>&1 || bad "synth"
"$P" train $S --set train.data=$T/sft.h5 --set train.out_dir=$T/sft --set train.steps=20 >/dev/null 2>&1 || bad "sft"
D="$S --set train.objective=dpo --set train.data=$T/train.h5 --set model.init_from=$T/sft/latest.h5 --set train.steps=20 \
   --set train.lr=1e-3 --set train.warmup_steps=5 --set train.keep_ckpts=0"
same() { # compare /params of two checkpoints: bit for bit (tol 0), or the relative difference
          # of the whole parameter vector, |a - b| / |a| (2-norms), against tol. (Per element,
          # Adam turns float rounding in gradients that are zero in exact arithmetic, such as
          # the attention key bias's, into steps of ~lr: see the closing note of issue 4.)
    $PY - "$1" "$2" "$3" <<'PY'
import sys, h5py, numpy as np
a, b, tol = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r"), float(sys.argv[3])
xs, ys = [], []
def collect(n, o):  # visititems stops at the first non-None return: return nothing
    if isinstance(o, h5py.Dataset):
        xs.append(o[()].ravel())
        ys.append(b["params"][n][()].ravel())
a["params"].visititems(collect)
x, y = np.concatenate(xs), np.concatenate(ys)
if tol == 0:
    bad = int(np.sum(x.view(np.uint32) != y.view(np.uint32)))
    print(f"{bad} of {x.size} parameters differ")
    sys.exit(1 if bad else 0)
rel = float(np.linalg.norm((x - y).astype(np.float64)) / np.linalg.norm(x.astype(np.float64)))
print(f"relative difference {rel:.3g} (largest element difference {float(np.max(np.abs(x - y))):.3g})")
sys.exit(0 if rel <= tol else 1)
PY
}
# 1) bit-identical resume, 1 rank and 2 ranks
for np in 1 2; do
    L="mpirun -np $np"
    $L "$P" train $D --set train.micro_batch=$((12 / np)) --set train.out_dir=$T/full$np >"$T/full$np.log" 2>&1 \
        || { bad "$np rank(s): uninterrupted run failed"; tail -5 "$T/full$np.log"; }
    $L "$P" train $D --set train.micro_batch=$((12 / np)) --set train.out_dir=$T/part$np --set train.ckpt_every=10 --set train.steps=20 \
        >"$T/part$np.log" 2>&1 && rm "$T/part$np/ckpt_00000020.h5" || { bad "$np rank(s): first part failed"; tail -5 "$T/part$np.log"; }
    $L "$P" train $D --set train.micro_batch=$((12 / np)) --set train.out_dir=$T/res$np --set train.resume=$T/part$np/ckpt_00000010.h5 \
        >"$T/log" 2>&1
    if same "$T/full$np/ckpt_00000020.h5" "$T/res$np/ckpt_00000020.h5" 0 >"$T/cmp" 2>&1; then
        ok "$np rank(s): resumed at step 10 = uninterrupted, bit for bit"
    else bad "$np rank(s): resume differs: $(cat "$T/cmp")"; tail -3 "$T/log"; fi
done
# 2) 1, 2, 3 ranks agree (global batch 12)
mpirun -np 3 "$P" train $D --set train.micro_batch=4 --set train.out_dir=$T/full3 >/dev/null 2>&1
for np in 2 3; do
    if same "$T/full1/ckpt_00000020.h5" "$T/full$np/ckpt_00000020.h5" 1e-5 >"$T/cmp" 2>&1; then
        ok "1 vs $np ranks after 20 DPO steps: $(cat "$T/cmp")"
    else bad "1 vs $np ranks: $(cat "$T/cmp")"; fi
done
# 3) resume the 1-rank step-10 checkpoint on 3 ranks
mpirun -np 3 "$P" train $D --set train.micro_batch=4 --set train.out_dir=$T/x3 --set train.resume=$T/part1/ckpt_00000010.h5 >/dev/null 2>&1
same "$T/full1/ckpt_00000020.h5" "$T/x3/ckpt_00000020.h5" 1e-5 >"$T/cmp" 2>&1 \
    && ok "resume at 1 -> 3 ranks: $(cat "$T/cmp")" || bad "resume at another P: $(cat "$T/cmp")"
# 4) SIGTERM mid-run: checkpoint, exit 75, resume = auto completes
"$P" train $D --set train.micro_batch=12 --set train.steps=100000 --set train.out_dir=$T/sig >"$T/sig.log" 2>&1 &
pid=$!
sleep 2
kill -TERM $pid
wait $pid
rc=$?
n=$(ls "$T/sig" | grep -c '^ckpt_')
[ "$rc" = 75 ] && [ "$n" -ge 1 ] && ok "SIGTERM: exit 75 with a checkpoint" || { bad "SIGTERM: exit $rc, $n checkpoints"; tail -3 "$T/sig.log"; }
step=$(ls "$T/sig" | grep '^ckpt_' | sed 's/ckpt_0*\([0-9]*\).h5/\1/' | sort -n | tail -1)
"$P" train $D --set train.micro_batch=12 --set train.steps=$((step + 5)) --set train.out_dir=$T/sig --set train.resume=auto >"$T/log" 2>&1 \
    && grep -q "resumed from .*ckpt_0*$step.h5" "$T/log" && ok "resume = auto continues from step $step" || { bad "resume auto"; tail -3 "$T/log"; }
# a damaged newest checkpoint is skipped with a warning
echo garbage >"$T/sig/ckpt_99999999.h5"
"$P" train $D --set train.micro_batch=12 --set train.steps=$((step + 6)) --set train.out_dir=$T/sig --set train.resume=auto >"$T/log" 2>&1 \
    && grep -q "skipping a damaged checkpoint" "$T/log" && ok "damaged checkpoint skipped" || { bad "damaged checkpoint"; tail -3 "$T/log"; }
# 5) SIGKILL of one rank ends the job, non-zero, within 30 s
mpirun -np 2 "$P" train $D --set train.micro_batch=6 --set train.steps=100000 --set train.out_dir=$T/kill >"$T/kill.log" 2>&1 &
mp=$!
sleep 3
victim=$(pgrep -f "prefer train .*$T/kill" | tail -1)
t0=$(date +%s)
kill -KILL "$victim"
wait $mp
rc=$?
dt=$(( $(date +%s) - t0 ))
[ "$rc" != 0 ] && [ "$dt" -le 30 ] && ok "SIGKILL of a rank: job ended in ${dt}s, exit $rc" || bad "SIGKILL: exit $rc after ${dt}s"
pkill -f "prefer train .*$T/kill" 2>/dev/null
echo "resume: $fails failure(s)"
[ "$fails" -eq 0 ]

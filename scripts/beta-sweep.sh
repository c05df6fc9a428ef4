#!/bin/sh
# beta-sweep.sh: the DPO paper's reward/KL frontier on the synthetic task (Fig. 2 left):
# DPO at several beta from the demo's SFT reference and preferences, each evaluated on the
# held-out prompts, printed as a table next to the exact optimum's reward at the same KL.
# Run `make demo` first (it makes demo-out/sft and demo-out/prefs.h5).
# Knobs: BETAS (default "0.05 0.1 1 5"), OBJ (default dpo), STEPS (default 300), BIN, NP.
set -e
: "${BIN:=bin}" "${NP:=1}" "${BETAS:=0.05 0.1 1 5}" "${OBJ:=dpo}" "${STEPS:=300}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CFG=configs/demo.cfg
OUT=demo-out/sweep-$OBJ
if [ "$NP" -gt 1 ]; then RUN="mpirun -np $NP --oversubscribe $BIN/prefer"; else RUN="$BIN/prefer"; fi
[ -f demo-out/sft/latest.h5 ] && [ -f demo-out/prefs.h5 ] || { echo "beta-sweep.sh: run make demo first" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT"
for b in $BETAS; do
    $RUN train $CFG --set train.objective=$OBJ --set loss.beta=$b --set train.data=demo-out/prefs.h5 \
        --set model.init_from=demo-out/sft/latest.h5 --set train.out_dir=$OUT/beta-$b \
        --set train.steps=$STEPS --set train.micro_batch=32 --set train.lr=1e-3 --set train.log_every=1000 >"$OUT/train-$b.txt"
    $RUN eval $CFG --set eval.policy=$OUT/beta-$b/latest.h5 --set eval.out=$OUT/eval-$b.h5 >"$OUT/eval-$b.txt"
done
$RUN eval $CFG --set eval.policy=demo-out/sft/latest.h5 --set eval.out=$OUT/eval-ref.h5 >/dev/null
if /usr/bin/python3 -c 'import h5py, matplotlib' 2>/dev/null; then
    /usr/bin/python3 analysis/frontier.py $OUT/eval-ref.h5 $OUT/eval-*[0-9].h5 -o $OUT/frontier.png
fi
echo "$OBJ beta sweep on held-out prompts ($STEPS steps each)"
echo "beta      reward (+-se)        KL(pi||ref)  win rate  optimum reward at that KL"
for b in $BETAS; do
    f="$OUT/eval-$b.txt"
    last=$(tail -1 "$f")
    r=$(echo "$last" | sed 's/.*reward=\([^ ]*\).*/\1/')
    k=$(echo "$last" | sed 's/.*kl=\([^ ]*\).*/\1/')
    w=$(echo "$last" | sed 's/.*win_rate=\([^ ]*\).*/\1/')
    se=$(grep 'true reward' "$f" | sed 's/.*policy [^ ]* +- \([^ ]*\).*/\1/')
    o=$(grep 'exact optimum' "$f" | sed 's/.*: reward \([^ ]*\).*/\1/')
    printf '%-8s %8s +- %-8s %10s %9s %12s\n' "$b" "$r" "$se" "$k" "$w" "$o"
done

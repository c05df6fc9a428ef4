#!/bin/sh
# demo.sh: the whole preference pipeline on the synthetic task, one machine (`make demo`).
#   synth -> SFT (the reference) -> sample 4 responses per prompt -> label -> DPO, IPO -> eval
# and a before/after table: mean true reward on held-out prompts (+- standard error over
# prompts), KL(policy || reference), win rate over the reference, held-out preference
# accuracy, and the exact optimum's reward at the same KL.
# Knobs: BIN (default bin), NP (MPI ranks, default 1), PREFER_DEMO_STEPS (DPO/IPO steps).
set -e
: "${BIN:=bin}" "${NP:=1}" "${PREFER_DEMO_STEPS:=300}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CFG=configs/demo.cfg
OUT=demo-out
if [ "$NP" -gt 1 ]; then RUN="mpirun -np $NP --oversubscribe $BIN/prefer"; else RUN="$BIN/prefer"; fi
quiet() { grep -v -e '^  ' -e '^#' -e '^[a-z]*: {' -e '^};' -e '^prefer: '; }
start=$(date +%s)
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== 1/7 synth: teacher language, hidden token rewards, prompt cares"
$RUN synth $CFG | quiet
echo "== 2/7 SFT of the reference policy"
$RUN train $CFG | quiet | sed -n -e '/^train:/p' -e '/^step .*00\//p' -e '/^checkpoint/p'
echo "== 3/7 sample 4 responses per training prompt from the SFT model"
$RUN sample $CFG --set sample.checkpoint=$OUT/sft/latest.h5 --set sample.data=$OUT/train.h5 \
    --set sample.out=$OUT/samples.h5 --set sample.n=4 --set sample.max_len=16 | quiet
echo "== 4/7 label: Bradley-Terry preferences on the true reward"
$RUN label $CFG | quiet
for obj in dpo ipo; do
    n=5; [ $obj = ipo ] && n=6
    echo "== $n/7 $obj from the SFT reference"
    $RUN train $CFG --set train.objective=$obj --set train.data=$OUT/prefs.h5 \
        --set model.init_from=$OUT/sft/latest.h5 --set train.out_dir=$OUT/$obj \
        --set train.steps=$PREFER_DEMO_STEPS --set train.micro_batch=32 --set train.lr=1e-3 \
        --set train.warmup_steps=20 --set train.log_every=50 | quiet
done
echo "== 7/7 eval on held-out prompts"
for pol in sft dpo ipo; do
    $RUN eval $CFG --set eval.policy=$OUT/$pol/latest.h5 >"$OUT/eval-$pol.txt"
    grep -e 'true reward' -e 'optimum' "$OUT/eval-$pol.txt" | sed "s/^eval:/  $pol:/"
done

echo
"$(dirname "$0")/eval-table.sh" "$OUT" sft dpo ipo
echo "(sft is the reference itself: KL 0, win rate ~0.5; files in $OUT/; $(( $(date +%s) - start )) s)"

#!/bin/sh
# pvar-experiment.sh: the PVar paper's comparison on the synthetic task. DPO trained on the
# top / random / bottom 10% of prompts by PVar and on the full set, the same steps and
# seeds (configs/experiments/pvar-*.cfg), each evaluated on the held-out prompts.
# Run `make demo` first. Knobs: BIN, NP (ranks), STEPS (default: the configs' 300).
set -e
: "${BIN:=bin}" "${NP:=1}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT=demo-out/pvar-experiment
[ -f demo-out/sft/latest.h5 ] && [ -f demo-out/prefs.h5 ] || { echo "pvar-experiment.sh: run make demo first" >&2; exit 1; }
if [ "$NP" -gt 1 ]; then RUN="mpirun -np $NP --oversubscribe $BIN/prefer"; else RUN="$BIN/prefer"; fi
rm -rf "$OUT"
mkdir -p "$OUT"
EXTRA=""
[ -n "${STEPS:-}" ] && EXTRA="--set train.steps=$STEPS"
for arm in top10 random10 bottom10 full; do
    cfg=configs/experiments/pvar-$arm.cfg
    $RUN train $cfg --set train.out_dir=$OUT/$arm $EXTRA >"$OUT/train-$arm.txt"
    grep -e '^curriculum: epoch' "$OUT/train-$arm.txt" | head -1 | sed "s/^/  $arm: /"
    $RUN eval $cfg --set eval.policy=$OUT/$arm/latest.h5 --set eval.out=$OUT/eval-$arm.h5 >"$OUT/eval-$arm.txt"
done
echo "arm        reward (+-se)        KL(pi||ref)  win rate  pref acc"
for arm in top10 random10 bottom10 full; do
    f="$OUT/eval-$arm.txt"
    last=$(tail -1 "$f")
    r=$(echo "$last" | sed 's/.*reward=\([^ ]*\).*/\1/')
    k=$(echo "$last" | sed 's/.*kl=\([^ ]*\).*/\1/')
    w=$(echo "$last" | sed 's/.*win_rate=\([^ ]*\).*/\1/')
    a=$(echo "$last" | sed 's/.*pref_acc=\([^ ]*\).*/\1/')
    se=$(grep 'true reward' "$f" | sed 's/.*policy [^ ]* +- \([^ ]*\).*/\1/')
    printf '%-10s %8s +- %-8s %10s %9s %9s\n' "$arm" "$r" "$se" "$k" "$w" "$a"
done

#!/bin/sh
# pvar-experiment.sh: the PVar paper's comparison on the synthetic task. DPO trained on the
# top / random / bottom 10% of prompts by PVar and on the full set, the same steps
# (configs/experiments/pvar-*.cfg), for each seed in SEEDS (train.seed: data order;
# curriculum.seed: the random arm; eval.seed), each evaluated on the held-out prompts;
# prints every run and the mean (and standard deviation over seeds) per arm.
# Run `make demo` first. Knobs: BIN, NP (ranks), SEEDS (default "1 2 3"), STEPS, ARMS (default
# "top10 random10 bottom10 full"; also top10-model: PVar from the policy, reselected in training).
set -e
: "${BIN:=bin}" "${NP:=1}" "${SEEDS:=1 2 3}" "${ARMS:=top10 random10 bottom10 full}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OUT=demo-out/pvar-experiment
[ -f demo-out/sft/latest.h5 ] && [ -f demo-out/prefs.h5 ] || { echo "pvar-experiment.sh: run make demo first" >&2; exit 1; }
if [ "$NP" -gt 1 ]; then RUN="mpirun -np $NP --oversubscribe $BIN/prefer"; else RUN="$BIN/prefer"; fi
rm -rf "$OUT"
mkdir -p "$OUT"
EXTRA=""
[ -n "${STEPS:-}" ] && EXTRA="--set train.steps=$STEPS"
: >"$OUT/results.tsv"
for seed in $SEEDS; do
    for arm in $ARMS; do
        cfg=configs/experiments/pvar-$arm.cfg
        d=$OUT/$arm-seed$seed
        $RUN train $cfg --set train.out_dir=$d --set train.seed=$seed --set curriculum.seed=$seed $EXTRA >"$d.train.txt"
        $RUN eval $cfg --set eval.policy=$d/latest.h5 --set eval.seed=$seed --set eval.out=$d.eval.h5 >"$d.eval.txt"
        last=$(tail -1 "$d.eval.txt")
        r=$(echo "$last" | sed 's/.*reward=\([^ ]*\).*/\1/')
        k=$(echo "$last" | sed 's/.*kl=\([^ ]*\).*/\1/')
        w=$(echo "$last" | sed 's/.*win_rate=\([^ ]*\).*/\1/')
        printf '%s\t%s\t%s\t%s\t%s\n' "$arm" "$seed" "$r" "$k" "$w" >>"$OUT/results.tsv"
        printf '  %-12s seed %s: reward %8s  KL %8s  win rate %s\n' "$arm" "$seed" "$r" "$k" "$w"
    done
done
echo "arm           runs  reward mean (sd over seeds)   KL mean (sd)        win rate"
for arm in $ARMS; do
    awk -v a="$arm" -F'\t' '$1 == a { n++; r += $3; rr += $3 * $3; k += $4; kk += $4 * $4; w += $5 }
        END { mr = r / n; mk = k / n; sr = (n > 1) ? sqrt((rr - n * mr * mr) / (n - 1)) : 0;
              sk = (n > 1) ? sqrt((kk - n * mk * mk) / (n - 1)) : 0;
              printf "%-13s %4d  %9.3f (%6.3f)          %8.3f (%6.3f)   %.3f\n", a, n, mr, sr, mk, sk, w / n }' "$OUT/results.tsv"
done

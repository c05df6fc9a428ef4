#!/bin/bash
# pipeline.sh: the demo pipeline as a chain of Slurm jobs (each starts when the one before it
# succeeded: --dependency=afterok; a failure cancels the rest: --kill-on-invalid-dep=yes):
#   synth -> SFT -> sample -> label -> DPO -> eval -> report
#
#   jobs/pipeline.sh [CONFIG] [--set section.key=value ...]      (CONFIG default configs/demo.cfg)
#
# Prints one line per job, "stage job-id", and returns at once; the last line is the report
# job: wait for it (squeue, sacct or `scontrol show job ID`) and read
# $OUT/report.txt. The SFT and DPO jobs are jobs/train.sbatch (they checkpoint and requeue
# themselves near their time limit); synth, sample, label, eval and report run this script
# again as a job (`pipeline.sh --stage NAME ...`). Paths are relative to the directory you
# submit from.
#
# Every stage runs CONFIG with the pipeline's own --set (the file names under $OUT, the stage's
# objective and inputs, as in scripts/demo.sh) followed by yours, so yours win everywhere: use
# them for the task and model size, steps, learning rate, ...
#
# Knobs (environment):
#   OUT          directory of every file (default slurm-out; must not exist or be empty);
#                the jobs' logs go to $OUT/logs/
#   NTASKS       MPI ranks of the SFT, sample, DPO and eval jobs (default 2)
#   OBJECTIVE    the preference objective (default dpo; any train.objective)
#   SFT_STEPS    SFT steps (default: train.steps of CONFIG)
#   DPO_STEPS    preference steps (default 300, as make demo)
#   SBATCH_OPTS  extra sbatch options for every job, e.g. "--partition=cpu --account=x --time=30"
#   PREFER_ROOT  the source tree (default: the one holding this script); PREFER the binary
set -u
if [ "${1:-}" != "--stage" ]; then
    # ---- submit the chain ----
    here=$(cd "$(dirname "$0")/.." && pwd)
    export PREFER_ROOT=${PREFER_ROOT:-$here}
    : "${OUT:=slurm-out}" "${NTASKS:=2}" "${OBJECTIVE:=dpo}" "${DPO_STEPS:=300}" "${SBATCH_OPTS:=}"
    export OUT NTASKS OBJECTIVE
    CONFIG=configs/demo.cfg
    case "${1:-}" in ""|--set|--set=*) ;; -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; *) CONFIG=$1; shift ;; esac
    [ -f "$CONFIG" ] || { echo "pipeline.sh: no config file $CONFIG" >&2; exit 2; }
    command -v sbatch >/dev/null 2>&1 || { echo "pipeline.sh: no sbatch: not on a Slurm cluster (jobs/workstation.sh runs the pipeline with mpirun)" >&2; exit 1; }
    if [ -d "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
        echo "pipeline.sh: $OUT exists and is not empty: remove it or set OUT (training would resume from its checkpoints)" >&2
        exit 1
    fi
    mkdir -p "$OUT/logs" || exit 1
    # the pipeline's file names under $OUT, then the user's --set
    FILES=(--set "synth.sft_out=$OUT/sft.h5" --set "synth.out=$OUT/train.h5" --set "synth.heldout_out=$OUT/heldout.h5"
           --set "label.in=$OUT/samples.h5" --set "label.out=$OUT/prefs.h5"
           --set "eval.ref=$OUT/sft/latest.h5" --set "eval.data=$OUT/heldout.h5")
    SFT=(--set "train.objective=sft" --set "train.data=$OUT/sft.h5" --set "train.out_dir=$OUT/sft")
    [ -n "${SFT_STEPS:-}" ] && SFT+=(--set "train.steps=$SFT_STEPS")
    PREF=(--set "train.objective=$OBJECTIVE" --set "train.data=$OUT/prefs.h5" --set "model.init_from=$OUT/sft/latest.h5"
          --set "train.out_dir=$OUT/$OBJECTIVE" --set "train.steps=$DPO_STEPS" --set "train.micro_batch=32"
          --set "train.lr=1e-3" --set "train.warmup_steps=20" --set "train.log_every=50")
    prev=""
    submit() { # stage ntasks script args...
        local name=$1 n=$2 dep=() id
        shift 2
        [ -n "$prev" ] && dep=(--dependency="afterok:$prev" --kill-on-invalid-dep=yes)
        # shellcheck disable=SC2086
        id=$(sbatch --parsable --job-name="prefer-$name" --ntasks="$n" --output="$OUT/logs/%x-%j.out" \
            --open-mode=append "${dep[@]}" $SBATCH_OPTS "$@") || { echo "pipeline.sh: sbatch for $name failed" >&2; exit 1; }
        id=${id%%;*}
        printf '%-8s %s\n' "$name" "$id"
        prev=$id
    }
    me=$PREFER_ROOT/jobs/pipeline.sh
    submit synth 1 "$me" --stage synth "$CONFIG" "${FILES[@]}" "$@"
    submit sft "$NTASKS" "$PREFER_ROOT/jobs/train.sbatch" "$CONFIG" "${FILES[@]}" "${SFT[@]}" "$@"
    submit sample "$NTASKS" "$me" --stage sample "$CONFIG" "${FILES[@]}" "$@"
    submit label 1 "$me" --stage label "$CONFIG" "${FILES[@]}" "$@"
    submit "$OBJECTIVE" "$NTASKS" "$PREFER_ROOT/jobs/train.sbatch" "$CONFIG" "${FILES[@]}" "${PREF[@]}" "$@"
    submit eval "$NTASKS" "$me" --stage eval "$CONFIG" "${FILES[@]}" "$@"
    submit report 1 "$me" --stage report "$CONFIG" "${FILES[@]}" "$@"
    exit 0
fi

# ---- one stage, inside its job ----
STAGE=$2 CONFIG=$3
shift 3
cd "${SLURM_SUBMIT_DIR:-.}" && . "${PREFER_ROOT:-$PWD}/jobs/common.sh" || exit 1
prefer_job_init
echo "stage $STAGE: $CONFIG $*"
set -o pipefail
case "$STAGE" in
synth)
    srun --mpi=pmix "$PREFER" synth "$CONFIG" "$@" ;;
sample)
    srun --mpi=pmix "$PREFER" sample "$CONFIG" --set "sample.checkpoint=$OUT/sft/latest.h5" --set "sample.data=$OUT/train.h5" \
        --set "sample.out=$OUT/samples.h5" --set sample.n=4 --set sample.max_len=16 "$@" ;;
label)
    srun --mpi=pmix "$PREFER" label "$CONFIG" "$@" ;;
eval)
    for pol in sft "$OBJECTIVE"; do
        srun --mpi=pmix "$PREFER" eval "$CONFIG" --set "eval.policy=$OUT/$pol/latest.h5" --set "eval.out=$OUT/eval-$pol.h5" "$@" \
            >"$OUT/eval-$pol.txt" || { tail -5 "$OUT/eval-$pol.txt"; exit 1; }
        tail -1 "$OUT/eval-$pol.txt"
    done ;;
report)
    {
        "$PREFER_ROOT/scripts/eval-table.sh" "$OUT" sft "$OBJECTIVE"
        echo "(sft is the reference itself: KL 0, win rate ~0.5; files in $OUT/)"
    } | tee "$OUT/report.txt"
    if /usr/bin/python3 -c 'import h5py, matplotlib' 2>/dev/null; then
        /usr/bin/python3 "$PREFER_ROOT/analysis/frontier.py" "$OUT/eval-sft.h5" "$OUT/eval-$OBJECTIVE.h5" -o "$OUT/frontier.png" \
            && echo "reward/KL plot: $OUT/frontier.png" || echo "analysis/frontier.py failed (the table above stands)"
    fi ;;
*)
    echo "pipeline.sh: unknown stage $STAGE" >&2; exit 2 ;;
esac

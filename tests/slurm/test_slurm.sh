#!/bin/sh
# Slurm: the job scripts on a throwaway one-node cluster (scripts/slurm-local.sh), on a tiny
# synthetic task:
#   (a) sbatch --wait of a 2-rank jobs/train.sbatch: exit 0, the checkpoint, 2 ranks
#   (b) preemption: `scancel --signal=USR1` (what --signal=USR1@120 sends near the time limit)
#       makes the ranks checkpoint and exit 75, the job requeues itself and finishes from the
#       checkpoint (Restarts=1, SLURM_RESTART_COUNT in its log, one /resumes row in run.h5)
#   (c) jobs/pipeline.sh: synth -> SFT -> sample -> label -> DPO -> eval -> report, each job
#       after the one before it, and the report table
#   (d) jobs/sweep-beta.sbatch --submit: a 2-task array and the frontier report after it
# Skips (exit 0) unless root with Slurm installed or installable with apt-get. About 1.5 min,
# most of it (b)'s requeue, which waits AuthInfo cred_expire (30 s here).
set -u
P="${BIN:-bin}/prefer"
if [ "$(id -u)" != 0 ]; then echo "skip: not root (the throwaway Slurm cluster runs its daemons as root)"; exit 0; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-slurm-test.XXXXXX")
chmod 0755 "$T" # munged wants every directory above its socket searchable by all
export PREFER_SLURM_DIR="$T/slurm"
# a port of its own, so a developer's cluster (16817) or a parallel run is left alone
export PREFER_SLURM_PORT=$((20000 + ($$ % 4000) * 2))
cleanup() { scripts/slurm-local.sh stop >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
t0=$(date +%s)
since() { echo "$(( $(date +%s) - $1 )) s"; }

scripts/slurm-local.sh start >"$T/start.out" 2>&1
rc=$?
if [ "$rc" = 3 ]; then echo "skip: Slurm is not installed and cannot be: $(cat "$T/start.out")"; exit 0; fi
if [ "$rc" != 0 ]; then cat "$T/start.out"; bad "the local cluster did not start"; exit 1; fi
eval "$(grep '^export SLURM_CONF=' "$T/start.out")"
scripts/slurm-local.sh status >/dev/null && ok "local cluster up ($(since "$t0"), port $PREFER_SLURM_PORT)" || bad "slurm-local.sh status"
export PREFER_ROOT="$PWD"
case "$P" in /*) PREFER=$P ;; *) PREFER=$PWD/$P ;; esac
export PREFER

state() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n 's/^JobState=//p' | head -1; }
field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
wait_job() { # id timeout: prints the final state
    w=0
    while [ "$w" -lt "$2" ]; do
        s=$(state "$1")
        case "$s" in PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RESIZING|SUSPENDED|"") sleep 1; w=$((w + 1)) ;;
        *) echo "$s"; return ;;
        esac
    done
    echo "TIMEOUT"
}
clean() { grep -v -e '^  ' -e '^[a-z]*: {' -e '^};' -e '^#' "$@"; }
show_fail() { # files...: their tails and slurmctld's
    for f in "$@"; do [ -f "$f" ] && { echo "--- $f"; clean "$f" | tail -12; }; done
    echo "--- slurmctld.log"; tail -8 "$PREFER_SLURM_DIR/log/slurmctld.log"
}

# the tiny task: a 1-layer model, 96 training and 32 held-out prompts
S="--set synth.sft_out=$T/sft.h5 --set synth.out=$T/train.h5 --set synth.heldout_out=$T/heldout.h5
   --set synth.n_prompts=96 --set synth.n_heldout=32 --set model.n_layer=1 --set model.n_embd=32 --set model.n_head=2
   --set runtime.threads=1"
"$P" synth configs/demo.cfg $S >"$T/synth.out" 2>&1 || { cat "$T/synth.out"; bad "synth"; exit 1; }

# (a) a 2-rank SFT run, sbatch --wait
t=$(date +%s)
sbatch --wait --ntasks=2 -o "$T/a.out" jobs/train.sbatch configs/demo.cfg $S \
    --set train.data="$T/sft.h5" --set train.out_dir="$T/sft" --set train.steps=40 >/dev/null 2>"$T/a.err"
rc=$?
if [ "$rc" = 0 ] && [ -f "$T/sft/ckpt_00000040.h5" ] && [ -f "$T/sft/latest.h5" ] && grep -q '^prefer: 2 ranks' "$T/a.out"; then
    ok "(a) sbatch --wait jobs/train.sbatch: 2 ranks under srun --mpi=pmix, exit 0, checkpoint at step 40 ($(since "$t"))"
else
    bad "(a) train.sbatch: exit $rc"; cat "$T/a.err"; show_fail "$T/a.out"
fi

# (b) checkpoint on USR1, exit 75, requeue, finish from the checkpoint
t=$(date +%s)
jid=$(sbatch --parsable --ntasks=2 -o "$T/b.out" jobs/train.sbatch configs/demo.cfg $S --set train.objective=dpo \
    --set train.data="$T/train.h5" --set model.init_from="$T/sft/latest.h5" --set train.out_dir="$T/dpo" \
    --set train.steps=300 --set train.log_every=10)
w=0
while ! grep -q '^step ' "$T/b.out" 2>/dev/null && [ "$w" -lt 300 ]; do sleep 0.2; w=$((w + 1)); done
scancel --signal=USR1 "$jid"
st=$(wait_job "$jid" 150)
restarts=$(field "$jid" Restarts)
if [ "$st" = COMPLETED ] && [ "$restarts" = 1 ] && grep -q 'exit code 75' "$T/b.out" &&
    grep -q 'requeueing job' "$T/b.out" && grep -q "restart 1 on" "$T/b.out" &&
    grep -q 'resumed from .*ckpt_' "$T/b.out" && [ -f "$T/dpo/ckpt_00000300.h5" ]; then
    stop=$(sed -n 's/.*stopped by signal .* at step \([0-9]*\).*/\1/p' "$T/b.out")
    ok "(b) USR1 at step $stop: checkpoint, exit 75, requeued (Restarts=1, SLURM_RESTART_COUNT=1), resumed and finished step 300 ($(since "$t"))"
else
    bad "(b) requeue: state $st, Restarts=$restarts"; show_fail "$T/b.out"
fi
/usr/bin/python3 - "$T/dpo/run.h5" >"$T/b.py" 2>&1 <<'PY'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
n, steps = len(f["resumes/step"]), f["steps/step"][()]
print(f"{n} /resumes row(s), resumed at step {int(f['resumes/step'][0])}; {len(steps)} step rows, last {int(steps[-1])}")
sys.exit(0 if n == 1 and steps[-1] == 300 and len(steps) == 300 else 1)
PY
[ $? = 0 ] && ok "(b) run log: $(cat "$T/b.py")" || bad "(b) run log: $(cat "$T/b.py")"

# (c) the pipeline, job after job
t=$(date +%s)
OUT="$T/pipe" NTASKS=2 jobs/pipeline.sh configs/demo.cfg --set synth.n_prompts=96 --set synth.n_heldout=32 \
    --set model.n_layer=1 --set model.n_embd=32 --set model.n_head=2 --set runtime.threads=1 --set train.steps=30 \
    >"$T/c.ids" 2>&1 || { cat "$T/c.ids"; bad "(c) pipeline.sh"; }
last=$(tail -1 "$T/c.ids" | awk '{print $2}')
st=$(wait_job "${last:-0}" 150)
order=ok prev_end="" states=""
for id in $(awk '{print $2}' "$T/c.ids"); do
    states="$states $(state "$id")"
    start=$(date -d "$(field "$id" StartTime)" +%s 2>/dev/null || echo 0)
    [ -n "$prev_end" ] && [ "$start" -lt "$prev_end" ] && order="job $id started at $start, before the previous ended ($prev_end)"
    prev_end=$(date -d "$(field "$id" EndTime)" +%s 2>/dev/null || echo 0)
done
if [ "$st" = COMPLETED ] && [ "$(echo $states)" = "COMPLETED COMPLETED COMPLETED COMPLETED COMPLETED COMPLETED COMPLETED" ] &&
    [ "$order" = ok ] && grep -q '^dpo  *[-0-9.]* +- ' "$T/pipe/report.txt"; then
    ok "(c) pipeline.sh: 7 jobs ($(awk '{printf "%s%s=%s", s, $1, $2; s=" "}' "$T/c.ids")), each after the one before, report: $(grep '^dpo' "$T/pipe/report.txt" | tr -s ' ') ($(since "$t"))"
else
    bad "(c) pipeline: last job $st, states$states, order: $order"; cat "$T/c.ids"; show_fail "$T"/pipe/logs/*
fi

# (d) the beta sweep: a 2-task array, then the report
t=$(date +%s)
BETAS="0.1 1" STEPS=30 SFT="$T/sft/latest.h5" PREFS="$T/train.h5" HELDOUT="$T/heldout.h5" OUT="$T/sweep" \
    SBATCH_OPTS="--ntasks=1" jobs/sweep-beta.sbatch --submit configs/demo.cfg $S >"$T/d.ids" 2>&1 || { cat "$T/d.ids"; bad "(d) sweep-beta --submit"; }
arr=$(awk '$1 == "array" {print $2}' "$T/d.ids")
rep=$(awk '$1 == "report" {print $2}' "$T/d.ids")
st=$(wait_job "${rep:-0}" 120)
tasks=$(scontrol show job "${arr:-0}" 2>/dev/null | grep -c 'JobState=COMPLETED')
if [ "$st" = COMPLETED ] && [ "$tasks" = 2 ] && [ -f "$T/sweep/eval-0.1.h5" ] && [ -f "$T/sweep/eval-1.h5" ] &&
    grep -q 'beta=0.1 ' "$T/sweep/frontier.txt" && grep -q 'beta=1 ' "$T/sweep/frontier.txt" && [ -f "$T/sweep/frontier.png" ]; then
    ok "(d) sweep-beta.sbatch: array $arr (2 tasks) then report $rep: frontier.png and table ($(since "$t"))"
else
    bad "(d) sweep: report $st, $tasks array task(s) completed"; cat "$T/d.ids"; show_fail "$T"/sweep/*.out "$T/sweep/frontier.txt"
fi

echo "slurm: $fails failure(s) in $(since "$t0")"
[ "$fails" -eq 0 ]

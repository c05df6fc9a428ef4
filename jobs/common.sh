# jobs/common.sh: shared by the Slurm job scripts (bash; sourced, not run).
#
#   prefer_job_init           cd to the submit directory, find bin/prefer, threads per rank,
#                             print one line about the job (id, array task, restart count)
#   prefer_step CMD ...       run CMD (an srun) as a job step in the background so that the
#                             batch shell stays responsive to signals; returns CMD's exit code
#   prefer_requeue_or_exit RC after a step that exited 75 (prefer checkpointed on a signal):
#                             requeue this job if the signal was Slurm's USR1 warning, else exit
#
# Preemption and time limits. The job scripts ask for --signal=USR1@120: 120 s (up to ~60 s
# more, Slurm checks on a timer) before the time limit Slurm sends SIGUSR1 to every job step;
# the ranks finish their step, write a checkpoint and exit 75. The batch shell sees 75 without
# having been sent SIGTERM itself, so it runs `scontrol requeue $SLURM_JOB_ID`; the job comes
# back after about cred_expire (120 s by default, see AuthInfo) with SLURM_RESTART_COUNT
# one higher and continues from the newest checkpoint (train.resume = "auto"). --signal=B:USR1@N
# (batch shell only) works too: the trap below forwards USR1 to the step, as it does for
# `scancel --batch --signal=USR1 JOB`. If the shell itself gets SIGTERM (scancel, the time
# limit itself, preemption), the ranks still checkpoint and exit 75, but the job is not
# requeued by the script: a cancelled job stays cancelled, a preempted job with --requeue
# (PreemptMode=REQUEUE) is requeued by Slurm, and a timed-out job can be resubmitted as is.
#
# Knobs (environment, exported to the job by sbatch):
#   PREFER_ROOT          the prefer source tree (default: the submit directory); jobs/ and
#                        bin/ are found there
#   PREFER               the prefer binary (default $PREFER_ROOT/bin/prefer)
#   PREFER_MAX_RESTARTS  requeue at most this many times (default 20)
#   OPENBLAS_CORETYPE    the site's OpenBLAS kernel, passed through untouched

prefer_job_init() {
    cd "${SLURM_SUBMIT_DIR:-.}" || exit 1
    : "${PREFER_ROOT:=$PWD}"
    : "${PREFER:=$PREFER_ROOT/bin/prefer}"
    : "${PREFER_MAX_RESTARTS:=20}"
    if [ ! -x "$PREFER" ]; then
        echo "${SLURM_JOB_NAME:-job}: no prefer binary at $PREFER: build it (make) and submit from the" \
            "source tree, or set PREFER_ROOT / PREFER" >&2
        exit 1
    fi
    # one thread pool per rank, sized to the CPUs Slurm gave the task (prefer's runtime.threads
    # = 0 reads these)
    export OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1} OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
    PREFER_GOT_TERM=0 PREFER_TRAPS=0
    trap 'PREFER_GOT_TERM=1; PREFER_TRAPS=$((PREFER_TRAPS + 1)); echo "$(date +%T) batch shell: SIGTERM (scancel, time limit or preemption): waiting for the checkpoint" >&2' TERM
    trap 'PREFER_TRAPS=$((PREFER_TRAPS + 1)); echo "$(date +%T) batch shell: SIGUSR1: forwarded to the job step" >&2; [ -n "${PREFER_STEP_PID:-}" ] && kill -USR1 "$PREFER_STEP_PID" 2>/dev/null' USR1
    echo "$(date '+%F %T') job ${SLURM_JOB_ID:-?}${SLURM_ARRAY_TASK_ID:+ (array ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID})}" \
        "restart ${SLURM_RESTART_COUNT:-0} on ${SLURM_JOB_NODELIST:-?}: ${SLURM_NTASKS:-1} task(s) x ${SLURM_CPUS_PER_TASK:-1} cpu(s)"
}

prefer_step() {
    "$@" &
    PREFER_STEP_PID=$!
    local rc seen
    while :; do
        seen=$PREFER_TRAPS
        wait "$PREFER_STEP_PID"
        rc=$?
        # a trapped signal interrupts wait (> 128) while the step still runs: wait again (bash
        # keeps a finished step's status, so the second wait returns it)
        [ "$rc" -gt 128 ] && [ "$PREFER_TRAPS" != "$seen" ] && continue
        break
    done
    PREFER_STEP_PID=
    return "$rc"
}

prefer_requeue_or_exit() {
    local rc=$1
    [ "$rc" = 0 ] && return 0
    if [ "$rc" != 75 ]; then
        echo "$(date +%T) step failed with exit code $rc" >&2
        exit "$rc"
    fi
    if [ "$PREFER_GOT_TERM" = 1 ]; then
        echo "$(date +%T) checkpointed after SIGTERM from Slurm: not requeueing (resubmit to continue;" \
            "a preempted job with --requeue is requeued by Slurm)" >&2
        exit 75
    fi
    if [ -z "${SLURM_JOB_ID:-}" ]; then
        echo "checkpointed (exit 75) outside Slurm: run again to continue" >&2
        exit 75
    fi
    if [ "${SLURM_RESTART_COUNT:-0}" -ge "$PREFER_MAX_RESTARTS" ]; then
        echo "$(date +%T) checkpointed, but already restarted $SLURM_RESTART_COUNT times (PREFER_MAX_RESTARTS): not requeueing" >&2
        exit 75
    fi
    echo "$(date +%T) checkpointed on SIGUSR1: requeueing job $SLURM_JOB_ID (restart $((${SLURM_RESTART_COUNT:-0} + 1)));" \
        "it continues from the checkpoint"
    if ! scontrol requeue "$SLURM_JOB_ID"; then
        # requeueing our own job also signals this script, so scontrol may report failure
        # even when the requeue happened: the job's state (squeue) is what tells
        echo "$(date +%T) scontrol requeue returned non-zero (usually harmless: the requeue stops this script too;" \
            "if the job does not come back, was it submitted with --requeue?)" >&2
        exit 75
    fi
    exit 0
}

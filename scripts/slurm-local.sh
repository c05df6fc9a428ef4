#!/bin/sh
# slurm-local.sh: a throwaway one-node Slurm cluster on localhost, for tests of jobs/.
#
#   scripts/slurm-local.sh start     install (root, Debian) if missing, start munged, slurmctld
#                                    and slurmd, wait for the node, print `export SLURM_CONF=...`
#   scripts/slurm-local.sh status    exit 0 and print the export line and sinfo if it runs
#   scripts/slurm-local.sh stop      cancel every job, stop the daemons, remove the directory
#
# Everything (config, munge key and socket, state, spool, logs) lives in one directory; start
# and stop are idempotent. Slurm 22.05 (Debian's slurm-wlm) + munge, configured as measured in
# ../shared/PLATFORM.md: SlurmUser=root, proctrack/linuxproc, task/none, select/cons_tres with
# CR_CPU, MpiDefault=pmix, no accounting (no sacct), one node "localhost" at 127.0.0.1 with
# CPUs=2 (config_overrides: the count is the config's whatever the hardware), short timeouts and
# AuthInfo cred_expire=30 and a 2 s backfill interval, so a requeued job restarts ~35 s after
# its requeue (~2.5 minutes with the defaults).
# Nothing listens on all addresses: CommunicationParameters=NoCtldInAddrAny binds slurmctld to
# the SlurmctldHost address (127.0.0.1) and NoInAddrAny binds slurmd to its NodeAddr (127.0.0.1)
# and srun and slurmstepd to the address the host name resolves to (127.0.0.1 on the machines
# this was written on; a LAN address where the host name resolves to one).
#
# Knobs (environment):
#   PREFER_SLURM_DIR   the directory (default ${TMPDIR:-/tmp}/prefer-slurm-$UID); every
#                      directory above it must be searchable by all (munged checks)
#   PREFER_SLURM_PORT  slurmctld's port; slurmd uses the next one (default 16817: not the
#                      standard 6817/6818, so a real Slurm on the machine is left alone)
#   PREFER_SLURM_CPUS  CPUs of the node (default 2)
# Exit codes: 0 ok; 1 failed to start (logs printed); 3 Slurm is missing and cannot be
# installed (not root, no apt-get, or apt-get failed): callers treat 3 as "skip".
set -u
: "${PREFER_SLURM_DIR:=${TMPDIR:-/tmp}/prefer-slurm-$(id -u)}"
: "${PREFER_SLURM_PORT:=16817}" "${PREFER_SLURM_CPUS:=2}"
D=$PREFER_SLURM_DIR
CONF=$D/slurm.conf
export SLURM_CONF=$CONF
PATH=$PATH:/usr/sbin:/sbin

say() { echo "slurm-local: $*" >&2; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

have_slurm() {
    command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 &&
        command -v sbatch >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 &&
        for f in /usr/lib/*/slurm-wlm/mpi_pmix.so /usr/lib/slurm/mpi_pmix.so /usr/lib64/slurm/mpi_pmix.so; do
            [ -e "$f" ] && return 0
        done
    return 1
}

install_slurm() {
    have_slurm && return 0
    if [ "$(id -u)" != 0 ]; then say "Slurm is not installed and this is not root: apt-get install slurm-wlm munge"; exit 3; fi
    if ! command -v apt-get >/dev/null 2>&1; then say "Slurm is not installed and there is no apt-get"; exit 3; fi
    say "installing slurm-wlm and munge with apt-get (~20 s)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"${TMPDIR:-/tmp}/slurm-local-apt.log" 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"${TMPDIR:-/tmp}/slurm-local-apt.log" 2>&1 ||
            { say "apt-get install slurm-wlm munge failed:"; tail -5 "${TMPDIR:-/tmp}/slurm-local-apt.log" >&2; exit 3; }
    fi
    have_slurm || { say "slurm-wlm installed but slurmctld/slurmd/sbatch/munged or the pmix plugin is missing"; exit 3; }
}

running() { alive "$D/run/munged.pid" && alive "$D/run/slurmctld.pid" && alive "$D/run/slurmd.pid"; }

write_conf() {
    cat >"$CONF" <<EOF
# Written by scripts/slurm-local.sh: a throwaway one-node cluster for tests.
ClusterName=prefertest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PREFER_SLURM_PORT
SlurmdPort=$((PREFER_SLURM_PORT + 1))
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge-run/munge.socket.2,cred_expire=30
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$D/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=pmix
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_interval=5
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=10
MinJobAge=600
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$PREFER_SLURM_CPUS State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$D/plugstack.conf"
}

# Processes started for this cluster: the daemons carry PREFER_SLURM_DAEMON=$D in their
# environment and pass it to the slurmstepd they fork; the job's processes descend from those.
ours() {
    marked=""
    for e in /proc/[0-9]*/environ; do
        pid=${e#/proc/}; pid=${pid%/environ}
        { tr '\0' '\n' <"$e" | grep -qx "PREFER_SLURM_DAEMON=$D"; } 2>/dev/null && marked="$marked $pid"
    done
    [ -z "$marked" ] && return 0
    ps -e -o pid= -o ppid= | awk -v m="$marked" '
        BEGIN { n = split(m, a, " "); for (i = 1; i <= n; i++) keep[a[i]] = 1 }
        { parent[$1] = $2 }
        END { for (p in parent) { q = p; while (q > 1) { if (q in keep) { print p; break } q = parent[q] } } }'
}

stop() {
    if [ -f "$CONF" ] && alive "$D/run/slurmctld.pid"; then
        ids=$(squeue -h -o %i 2>/dev/null)
        if [ -n "$ids" ]; then
            scancel $ids 2>/dev/null
            i=0
            while [ $i -lt 30 ] && [ -n "$(squeue -h -o %i 2>/dev/null)" ]; do sleep 0.5; i=$((i + 1)); done
        fi
    fi
    for d in slurmd slurmctld munged; do
        [ -f "$D/run/$d.pid" ] && kill "$(cat "$D/run/$d.pid")" 2>/dev/null
    done
    sleep 0.5
    for d in slurmd slurmctld munged; do
        [ -f "$D/run/$d.pid" ] && kill -KILL "$(cat "$D/run/$d.pid")" 2>/dev/null
    done
    if [ -f "$CONF" ]; then
        left=$(ours)
        [ -n "$left" ] && kill -KILL $left 2>/dev/null
    fi
    rm -rf "$D"
    return 0
}

show_logs() {
    for f in "$D"/log/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -15 "$f" >&2; }; done
}

start() {
    if running; then
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    install_slurm
    [ -d "$D" ] && stop
    mkdir -p "$D" && chmod 0755 "$D" || { say "cannot create $D"; exit 1; }
    mkdir -p "$D/munge-run" "$D/munge-key" "$D/run" "$D/log" "$D/state" "$D/spool"
    chmod 0755 "$D/munge-run" "$D/run" "$D/log"
    chmod 0700 "$D/munge-key" "$D/state" "$D/spool"
    # munge: its own key, socket, pid, log and seed (it checks these permissions)
    dd if=/dev/urandom of="$D/munge-key/munge.key" bs=1024 count=1 2>/dev/null
    chmod 0400 "$D/munge-key/munge.key"
    export PREFER_SLURM_DAEMON="$D"
    munged --socket="$D/munge-run/munge.socket.2" --key-file="$D/munge-key/munge.key" \
        --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" \
        --seed-file="$D/munge-key/munged.seed" --num-threads=4 ||
        { say "munged failed to start"; show_logs; exit 1; }
    write_conf
    slurmctld -f "$CONF" -i || { say "slurmctld failed to start"; show_logs; exit 1; }
    slurmd -f "$CONF" -N localhost || { say "slurmd failed to start"; show_logs; exit 1; }
    i=0
    while [ $i -lt 60 ]; do
        st=$(sinfo -h -n localhost -o %t 2>/dev/null)
        case "$st" in idle*|mix*|alloc*) break ;; esac
        sleep 0.5; i=$((i + 1))
    done
    case "$st" in
    idle*|mix*|alloc*) ;;
    *) say "the node did not come up (state '$st')"; show_logs; exit 1 ;;
    esac
    echo "export SLURM_CONF=$CONF"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status)
    if running; then
        echo "export SLURM_CONF=$CONF"
        sinfo
        exit 0
    fi
    echo "slurm-local: not running ($D)"
    exit 1 ;;
*) sed -n '2,/^set -u/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac

#!/bin/sh
# bench-scaling.sh: weak scaling of the data-parallel step (make bench-scaling).
#   scripts/bench-scaling.sh [CONFIG [prefer options ...]]     (default configs/bench.cfg)
# Runs `prefer bench-scaling` under mpirun -np 1 and -np 2 --bind-to core (one core and one
# thread per rank, the same per-rank micro-batch), REPEAT times each (default 2, alternating),
# keeps for each size the run with the shortest step (the least disturbed on a shared
# machine), and derives
#   efficiency E = step_time(1 rank) / step_time(2 ranks)
#   overlap    O = 1 - blocked in dist_reducer_finish (2 ranks) / blocking allreduce alone (2 ranks)
# Last line: bench-scaling: efficiency=E overlap=O
set -eu
P="${BIN:-bin}/prefer"
CFG="${1:-configs/bench.cfg}"
[ $# -gt 0 ] && shift
REPEAT="${REPEAT:-2}"
# CI runs as root; quiet Open MPI's warnings about transports a container lacks
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_base_warn_component_unused=0
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-scaling.XXXXXX")
trap 'rm -rf "$T"' EXIT
rep=1
while [ "$rep" -le "$REPEAT" ]; do
    for np in 1 2; do
        echo "== mpirun -np $np --bind-to core $P bench-scaling $CFG $* (run $rep of $REPEAT)"
        mpirun -np "$np" --bind-to core "$P" bench-scaling "$CFG" "$@" >"$T/out" 2>&1 || { cat "$T/out"; exit 1; }
        cat "$T/out"
        grep '^bench-scaling: world=' "$T/out" | tail -n 1 >>"$T/lines$np"
    done
    rep=$((rep + 1))
done
for np in 1 2; do
    [ -s "$T/lines$np" ] || { echo "bench-scaling.sh: no result line at $np rank(s)" >&2; exit 1; }
    # the run with the shortest step
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^step_ms=/) { v = substr($i, 9) + 0; if (!n++ || v < best) { best = v; line = $0 } } }
         END { print line }' "$T/lines$np" >"$T/line$np"
done
# key=value from the chosen result line
val() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$T/line$1"; }
echo "== kept (shortest step of $REPEAT):"
cat "$T/line1" "$T/line2"
awk -v s1="$(val 1 step_ms)" -v s2="$(val 2 step_ms)" -v c1="$(val 1 compute_ms)" -v c2="$(val 2 compute_ms)" \
    -v a2="$(val 2 allreduce_ms)" -v r2="$(val 2 reducer_ms)" -v b2="$(val 2 blocked_ms)" \
    -v y2="$(val 2 in_ready_ms)" 'BEGIN {
    printf "step: 1 rank %.1f ms, 2 ranks %.1f ms; forward+backward alone: %.1f ms, %.1f ms (compute scaling %.3f)\n",
        s1, s2, c1, c2, c1 / c2
    printf "gradient allreduce at 2 ranks: %.2f ms blocking alone, %.2f ms through the reducer alone; %.2f ms still blocked after backward, %.2f ms spent driving it inside backward (overlap counting that too: %.3f)\n",
        a2, r2, b2, y2, (a2 > 0 ? 1 - (b2 + y2) / a2 : 0)
    printf "bench-scaling: efficiency=%.3f overlap=%.3f\n", s1 / s2, (a2 > 0 ? 1 - b2 / a2 : 0)
}'

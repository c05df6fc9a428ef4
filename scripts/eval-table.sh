#!/bin/sh
# eval-table.sh DIR POLICY...: the before/after table of `prefer eval` results, one row per
# policy from DIR/eval-POLICY.txt (what `prefer eval` printed): true reward +- its standard
# error, KL(pi||ref), win rate, held-out preference accuracy, and the exact optimum's reward at
# the policy's KL. Used by scripts/demo.sh and jobs/pipeline.sh.
set -eu
[ $# -ge 2 ] || { echo "usage: scripts/eval-table.sh DIR POLICY..." >&2; exit 2; }
dir=$1
shift
echo "policy   reward (+-se)        KL(pi||ref)  win rate  pref acc  optimum reward at that KL"
for pol in "$@"; do
    f="$dir/eval-$pol.txt"
    [ -f "$f" ] || { echo "eval-table.sh: no $f" >&2; exit 1; }
    last=$(tail -1 "$f")
    r=$(echo "$last" | sed 's/.*reward=\([^ ]*\).*/\1/')
    k=$(echo "$last" | sed 's/.*kl=\([^ ]*\).*/\1/')
    w=$(echo "$last" | sed 's/.*win_rate=\([^ ]*\).*/\1/')
    a=$(echo "$last" | sed 's/.*pref_acc=\([^ ]*\).*/\1/')
    se=$(grep 'true reward' "$f" | sed 's/.*policy [^ ]* +- \([^ ]*\).*/\1/')
    o=$(grep 'exact optimum' "$f" | sed 's/.*: reward \([^ ]*\).*/\1/')
    printf '%-8s %8s +- %-8s %10s %9s %9s %12s\n' "$pol" "$r" "$se" "$k" "$w" "$a" "$o"
done

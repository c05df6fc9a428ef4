#!/bin/sh
# The bucketed, overlapped gradient allreduce (DistReducer) under mpirun: the test program
# $BUILD/tests/test_mpi_reducer (built by make check) at 2 ranks (results equal to
# MPI_Allreduce's exactly) and 3 ranks (within 1e-6); it exits non-zero if any rank failed.
# Then the refusals: a bucket over 16 MB, gradients readied twice in one step; and
# `make bench-scaling`'s script on a tiny model (its last line's format).
set -u
X="${BUILD:-build}/tests/test_mpi_reducer"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_base_warn_component_unused=0
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-reducer.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
[ -x "$X" ] || { echo "FAIL: $X not built (make check builds it)"; exit 1; }
command -v mpirun >/dev/null || { echo "FAIL: no mpirun"; exit 1; }

for np in 1 2 3; do
    if [ "$np" = 1 ]; then "$X" >"$T/out" 2>&1; else mpirun -np "$np" --oversubscribe "$X" >"$T/out" 2>&1; fi
    rc=$?
    if [ "$rc" -eq 0 ] && grep -q "at $np ranks\{0,1\}, 0 failed" "$T/out"; then
        ok "$np rank(s): $(grep test_mpi_reducer: "$T/out")"
    else
        bad "$np rank(s), exit $rc"; cat "$T/out"
    fi
done
# libnbc's own choice for < 4 ranks (binomial), which dist_init overrides unless the user set it
if OMPI_MCA_coll_libnbc_iallreduce_algorithm=2 mpirun -np 2 "$X" >"$T/out" 2>&1 && grep -q ", 0 failed" "$T/out"; then
    ok "2 ranks, binomial iallreduce"
else
    bad "2 ranks, binomial iallreduce"; cat "$T/out"
fi
expect_fail() { # name, pattern, args...
    name=$1; pat=$2; shift 2
    if mpirun -np 2 "$X" "$@" >"$T/out" 2>&1; then bad "$name: exited 0"; return; fi
    if grep -q -e "$pat" "$T/out"; then ok "$name"; else bad "$name: no '$pat' in: $(cat "$T/out")"; fi
}
expect_fail "bucket over 16 MB refused" "bucket 0 is 16777220 bytes, more than DIST_MAX_CHUNK_BYTES" --oversize
expect_fail "gradients readied twice refused" "readied twice in one step" --twice
# prefer bench-scaling and scripts/bench-scaling.sh (make bench-scaling) on a tiny model
tiny="--quick --set model.n_layer=2 --set model.n_embd=64 --set model.n_head=2 --set model.context=32"
tiny="$tiny --set model.vocab_size=256 --set train.micro_batch=2"
# shellcheck disable=SC2086
if BIN="${BIN:-bin}" REPEAT=1 scripts/bench-scaling.sh configs/bench.cfg $tiny >"$T/scaling" 2>&1 \
    && grep -q "^bench-scaling: world=2 step_ms=[0-9.]* .*buckets=3 " "$T/scaling" \
    && tail -n 1 "$T/scaling" | grep -Eq "^bench-scaling: efficiency=[0-9.]+ overlap=-?[0-9.]+$"; then
    ok "bench-scaling: $(tail -n 1 "$T/scaling")"
else
    bad "bench-scaling"; cat "$T/scaling"
fi
[ "$fails" -eq 0 ]

#!/bin/sh
# Sharded dataset reads under mpirun: the test program $BUILD/tests/test_mpi_prefshard
# (built by make check) at 1, 2 and 3 ranks. Each rank reads its part of every global
# batch (equal to the full read, bytes_read exactly its share); a corrupt file, a non-HDF5
# file and a file only rank 0 can see fail on every rank with the same message. The
# program sums failures over ranks and exits non-zero if any rank failed.
set -u
X="${BUILD:-build}/tests/test_mpi_prefshard"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_base_warn_component_unused=0
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-prefshard.XXXXXX")
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
        ok "$np rank(s): $(grep 'read .* token bytes' "$T/out")"
    else
        bad "$np rank(s), exit $rc"; cat "$T/out"
    fi
done
[ "$fails" -eq 0 ]

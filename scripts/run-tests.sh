#!/bin/sh
# run-tests.sh: run every unit test binary given as arguments, then the command-line tests
# (tests/cli/*.sh) against $BIN/prefer. Prints one line per test and a final
# "N passed, N failed" line; exits non-zero if anything failed.
#
# CI runs as root: Open MPI refuses that unless these are set. Sanitizer builds
# (BUILD=build-san) get ASan options that tolerate Open MPI's own leaks under mpirun.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
# quiet Open MPI's warnings about missing high-speed transports in containers
export OMPI_MCA_btl_base_warn_component_unused=0
: "${BIN:=bin}" "${BUILD:=build}"
export BIN BUILD
case "$BUILD" in *san*) export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" ;; esac

pass=0
fail=0
failed=""
logdir=$(mktemp -d "${TMPDIR:-/tmp}/prefer-tests.XXXXXX")
for t in "$@"; do
    name=$(basename "$t")
    start=$(date +%s)
    if "$t" >"$logdir/$name.log" 2>&1; then
        pass=$((pass + 1)); st=ok
    else
        fail=$((fail + 1)); st=FAIL; failed="$failed $name"
        sed 's/^/    /' "$logdir/$name.log" | grep -v -e '^ *$' | tail -40
    fi
    printf '%-40s %s (%ss)\n' "$name" "$st" "$(( $(date +%s) - start ))"
done
# bin/prefer always initialises MPI, and Open MPI's own allocations trip LeakSanitizer:
# the command-line tests run with leak checks off (the unit tests above keep them).
case "$BUILD" in *san*) export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0" ;; esac
for t in $(for d in ${TEST_DIRS:-tests/cli}; do ls "$d"/*.sh 2>/dev/null; done); do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    start=$(date +%s)
    if sh "$t" >"$logdir/$name.log" 2>&1; then
        pass=$((pass + 1)); st=ok
    else
        fail=$((fail + 1)); st=FAIL; failed="$failed $name"
        sed 's/^/    /' "$logdir/$name.log" | tail -40
    fi
    printf '%-40s %s (%ss)\n' "$name" "$st" "$(( $(date +%s) - start ))"
done
[ -n "$failed" ] && echo "failed:$failed (logs in $logdir)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && rm -rf "$logdir"
[ "$fail" -eq 0 ]

#!/bin/sh
# fuzz.sh: run the libFuzzer targets of fuzz/ (built by `make fuzz` into build-fuzz/) and
# report per target the executions and whether it crashed. Called by `make fuzz`.
#
#   scripts/fuzz.sh --check            exit 1, saying what to install, if $FUZZ_CC (clang)
#                                      cannot build a libFuzzer binary
#   FUZZ_TIME=60 scripts/fuzz.sh T...  run build-fuzz/fuzz_T for FUZZ_TIME seconds each
#
# Each target starts from its seeds in fuzz/corpus/T/ (never written) plus the inputs it
# found in earlier runs (build-fuzz/corpus/T/, where new ones go). A crash, sanitizer
# report, leak, timeout (-timeout=10 s per input) or out-of-memory (-rss_limit_mb=2048)
# leaves its input in build-fuzz/crashes/T/ and the log in build-fuzz/T.log.
# Output, one line a target:
#   fuzz-T: seconds=S execs=N (stat::number_of_executed_units) cov=C corpus=K crashed=no|yes
# Exits 1 if any target crashed. Fuzzing is optional: install-deps.sh does not install clang.
set -u
CC_FUZZ="${FUZZ_CC:-clang}"
OUT="${FUZZ_OUT:-build-fuzz}"

if [ "${1:-}" = --check ]; then
    t=$(mktemp -d "${TMPDIR:-/tmp}/prefer-fuzzcheck.XXXXXX")
    printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$t/c.c"
    if command -v "$CC_FUZZ" >/dev/null 2>&1 \
        && "$CC_FUZZ" -fsanitize=fuzzer,address,undefined -o "$t/c" "$t/c.c" >"$t/log" 2>&1; then
        rm -rf "$t"
        exit 0
    fi
    echo "make fuzz: '$CC_FUZZ' cannot build a libFuzzer target (fuzzing is optional)." >&2
    [ -s "$t/log" ] && sed -n '1,3p' "$t/log" >&2
    echo "  On Debian/Ubuntu: apt-get install clang libclang-rt-dev" >&2
    echo "  (or the versioned pair, e.g. clang-14 libclang-rt-14-dev, then make fuzz FUZZ_CC=clang-14)" >&2
    rm -rf "$t"
    exit 1
fi

TIME="${FUZZ_TIME:-60}"
# a known leak of libconfig 1.5 itself (fuzz/lsan.supp)
LSAN_OPTIONS="suppressions=$(pwd)/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
crashed=0
for tgt in "$@"; do
    bin="$OUT/fuzz_$tgt"
    log="$OUT/$tgt.log"
    mkdir -p "$OUT/corpus/$tgt" "$OUT/crashes/$tgt"
    if ! [ -x "$bin" ]; then
        echo "fuzz-$tgt: $bin is not built" >&2
        crashed=1
        continue
    fi
    "$bin" "$OUT/corpus/$tgt" "fuzz/corpus/$tgt" -max_total_time="$TIME" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$OUT/crashes/$tgt/" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    n=$(ls "$OUT/corpus/$tgt" | wc -l)
    if [ "$rc" -ne 0 ] || grep -q -e '^==[0-9]*==ERROR' -e 'runtime error' -e 'deadly signal' "$log"; then
        what=$(grep -m1 -o -e 'ERROR: [A-Za-z]*: [a-z-]*' -e 'runtime error: .*' -e 'ERROR: libFuzzer: [a-z-]*' "$log")
        echo "fuzz-$tgt: seconds=$TIME execs=${execs:-?} exec_per_s=${secs:-?} cov=${cov:-?} corpus=$n crashed=yes ($what; input in $OUT/crashes/$tgt/, log $log)"
        crashed=1
    else
        echo "fuzz-$tgt: seconds=$TIME execs=${execs:-?} exec_per_s=${secs:-?} cov=${cov:-?} corpus=$n crashed=no"
    fi
done
exit $crashed

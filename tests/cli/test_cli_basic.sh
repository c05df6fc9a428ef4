#!/bin/sh
# Command-line basics: --help everywhere, config errors name file/line/key, the reference
# listing matches configs/reference.cfg, info on good and bad files, a short SFT run.
set -u
P="${BIN:-bin}/prefer"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
expect_fail() { # name, pattern, command...
    name=$1; pat=$2; shift 2
    if "$@" >"$T/out" 2>&1; then bad "$name: exited 0"; return; fi
    if grep -q -e "$pat" "$T/out"; then ok "$name"; else bad "$name: no '$pat' in: $(cat "$T/out")"; fi
}

"$P" --help >/dev/null && ok "prefer --help" || bad "prefer --help"
for c in train synth info config bench; do
    "$P" $c --help >"$T/h" 2>&1 && grep -q usage "$T/h" && ok "$c --help" || bad "$c --help"
done
expect_fail "unknown command" "unknown command" "$P" frobnicate

# config errors
printf 'train: {\n  steps = 10;\n  lrr = 0.1;\n};\n' >"$T/unknown.cfg"
expect_fail "unknown key" "unknown.cfg:3.*train.lrr" "$P" config "$T/unknown.cfg"
printf 'model: {\n  n_layer = "two";\n};\n' >"$T/type.cfg"
expect_fail "wrong type" "type.cfg:2.*model.n_layer" "$P" config "$T/type.cfg"
printf 'train: {\n\n  lr = 50.0;\n};\n' >"$T/range.cfg"
expect_fail "out of range" "range.cfg:3.*train.lr" "$P" config "$T/range.cfg"
printf 'train: {\n  steps = 10\n' >"$T/syntax.cfg"
expect_fail "syntax error" "syntax.cfg:" "$P" config "$T/syntax.cfg"
expect_fail "missing config" "nope.cfg" "$P" config "$T/nope.cfg"
expect_fail "bad --set" "train.steps" "$P" config --set train.steps=abc
"$P" config --set train.steps=7 | grep -q "steps = 7;" && ok "--set applies" || bad "--set applies"

# the reference listing is checked in and current
"$P" config --reference >"$T/ref.cfg"
if cmp -s "$T/ref.cfg" configs/reference.cfg; then ok "configs/reference.cfg current"; else bad "configs/reference.cfg differs from 'prefer config --reference' (run make reference)"; fi
"$P" config configs/reference.cfg >/dev/null && ok "reference.cfg loads" || bad "reference.cfg loads"
for f in configs/*.cfg; do "$P" config "$f" >/dev/null 2>&1 && ok "valid: $f" || bad "invalid shipped config $f"; done

# synth, info, train
"$P" synth --set synth.sft_out="$T/sft.h5" --set synth.out="$T/train.h5" --set synth.heldout_out="$T/heldout.h5" --set synth.n_prompts=64 --set synth.n_heldout=8 >/dev/null && ok "synth" || bad "synth"
"$P" info "$T/sft.h5" | grep -q "prompts *64" && ok "info on a dataset" || bad "info on a dataset"
echo "not hdf5" >"$T/junk.h5"
expect_fail "info on junk" "junk.h5" "$P" info "$T/junk.h5"
expect_fail "info on missing file" "missing.h5" "$P" info "$T/missing.h5"
expect_fail "train on junk" "junk.h5" "$P" train --set train.data="$T/junk.h5" --set train.out_dir="$T/r0"
expect_fail "train: vocab too small" "vocab" "$P" train --set train.data="$T/sft.h5" --set model.vocab_size=10 --set train.out_dir="$T/r0"
"$P" train --set train.data="$T/sft.h5" --set train.out_dir="$T/run" --set train.steps=5 --set train.log_every=1 >"$T/train.log" 2>&1 \
    && grep -q "step      5/5 | loss" "$T/train.log" && [ -f "$T/run/ckpt_00000005.h5" ] && [ -f "$T/run/latest.h5" ] \
    && ok "train 5 steps + checkpoint" || { bad "train 5 steps"; cat "$T/train.log"; }
"$P" info "$T/run/latest.h5" | grep -q "step *5" && ok "info on a checkpoint" || bad "info on a checkpoint"
# two ranks
if command -v mpirun >/dev/null; then
    mpirun -np 2 "$P" train --set train.data="$T/sft.h5" --set train.out_dir="$T/run2" --set train.steps=3 >"$T/mpi.log" 2>&1 \
        && grep -q "2 ranks x 1" "$T/mpi.log" && grep -q "global batch 32" "$T/mpi.log" && ok "mpirun -np 2 train" \
        || { bad "mpirun -np 2 train"; cat "$T/mpi.log"; }
fi
echo "cli: $fails failure(s)"
[ "$fails" -eq 0 ]

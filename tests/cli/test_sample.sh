#!/bin/sh
# prefer sample: the output is identical for 1, 2 and 3 ranks and for any batch size
# (responses, offsets and true-reward scores compared with h5dump); the file is a valid
# prefdata file with n responses per prompt and no pairs; `prefer label` accepts it;
# greedy decoding gives the same response to every sample of a prompt; errors name the
# problem (prompt longer than the context, eos outside the vocabulary, missing checkpoint).
set -u
P="${BIN:-bin}/prefer"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-sample.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
expect_fail() { # name, pattern, command...
    name=$1; pat=$2; shift 2
    if "$@" >"$T/out" 2>&1; then bad "$name: exited 0"; return; fi
    if grep -q -e "$pat" "$T/out"; then ok "$name"; else bad "$name: no '$pat' in: $(cat "$T/out")"; fi
}
# the datasets of a file, without the header line that names the file
dump() { for d in /prompts/tokens /responses/tokens /responses/offsets /responses/prompt $2; do h5dump -d "$d" "$1" | tail -n +2; done; }

"$P" sample --help >"$T/h" 2>&1 && grep -q usage "$T/h" && ok "sample --help" || bad "sample --help"

S="--set synth.out=$T/train.h5 --set synth.sft_out=$T/sft.h5 --set synth.heldout_out= --set synth.n_prompts=21"
# shellcheck disable=SC2086
"$P" synth $S >"$T/synth.log" 2>&1 && ok "synth" || { bad "synth"; cat "$T/synth.log"; }
"$P" train --set train.data="$T/sft.h5" --set train.out_dir="$T/sft" --set train.steps=10 >"$T/train.log" 2>&1 \
    && ok "train a checkpoint" || { bad "train"; cat "$T/train.log"; }

C="--set sample.checkpoint=$T/sft/latest.h5 --set sample.data=$T/train.h5 --set sample.n=3 --set sample.max_len=12 --set sample.top_p=0.9"
# shellcheck disable=SC2086
"$P" sample $C --set sample.out="$T/s1.h5" --set sample.batch=64 >"$T/s1.log" 2>&1 \
    && grep -q "wrote .*s1.h5: 21 prompts x 3 responses" "$T/s1.log" && ok "sample, 1 rank" \
    || { bad "sample, 1 rank"; cat "$T/s1.log"; }
"$P" info "$T/s1.h5" >"$T/info" 2>&1 && grep -q "responses *63" "$T/info" && grep -q "pairs *0" "$T/info" \
    && grep -q "scores" "$T/info" && ok "info: 63 responses, scored, no pairs" || { bad "info on the samples"; cat "$T/info"; }
dump "$T/s1.h5" /responses/score >"$T/d1"
if command -v mpirun >/dev/null; then
    for np in 2 3; do
        # shellcheck disable=SC2086
        mpirun -np $np "$P" sample $C --set sample.out="$T/s$np.h5" --set sample.batch=$((np + 2)) >"$T/s$np.log" 2>&1 \
            || { bad "mpirun -np $np sample"; cat "$T/s$np.log"; continue; }
        dump "$T/s$np.h5" /responses/score >"$T/d$np"
        if cmp -s "$T/d1" "$T/d$np"; then ok "mpirun -np $np (batch $((np + 2))) = 1 rank (batch 64)"
        else bad "mpirun -np $np sample differs from 1 rank"; diff "$T/d1" "$T/d$np" | head -20; fi
    done
fi
# shellcheck disable=SC2086
"$P" sample $C --set sample.out="$T/s1b.h5" --set sample.batch=1 >/dev/null 2>&1 && dump "$T/s1b.h5" /responses/score >"$T/d1b" \
    && cmp -s "$T/d1" "$T/d1b" && ok "batch 1 = batch 64" || bad "batch 1 differs from batch 64"
# shellcheck disable=SC2086
"$P" sample $C --set sample.out="$T/s_seed.h5" --set sample.seed=2 >/dev/null 2>&1 && dump "$T/s_seed.h5" /responses/score >"$T/dseed" \
    && ! cmp -s "$T/d1" "$T/dseed" && ok "another seed, other responses" || bad "sample.seed has no effect"
"$P" label --set label.in="$T/s1.h5" --set label.out="$T/prefs.h5" >"$T/label.log" 2>&1 \
    && "$P" info "$T/prefs.h5" | grep -q "pairs *63" && ok "label the samples (3 pairs per prompt)" \
    || { bad "label the samples"; cat "$T/label.log"; }

# greedy: the 3 responses of a prompt are the same, and long (eos = -1, max_len 5)
# shellcheck disable=SC2086
"$P" sample $C --set sample.out="$T/g.h5" --set sample.temperature=0 --set sample.eos=-1 --set sample.max_len=5 >/dev/null 2>&1 \
    && "$P" info "$T/g.h5" | grep -q "length min 5 mean 5.00 max 5" \
    && ok "greedy, eos -1: every response max_len long" || bad "greedy sampling"
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
    /usr/bin/python3 - "$T/g.h5" <<'EOF' && ok "greedy: the samples of a prompt agree" || bad "greedy: the samples of a prompt differ"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
t, o = f["/responses/tokens"][:], f["/responses/offsets"][:]
r = [tuple(t[o[i]:o[i + 1]]) for i in range(len(o) - 1)]
sys.exit(0 if all(r[3 * p] == r[3 * p + 1] == r[3 * p + 2] for p in range(len(r) // 3)) else 1)
EOF
fi

# errors
# shellcheck disable=SC2086
expect_fail "eos outside the vocabulary" "sample.eos = 5000" "$P" sample $C --set sample.eos=5000 --set sample.out="$T/x.h5"
# shellcheck disable=SC2086
expect_fail "missing checkpoint" "nope.h5" "$P" sample $C --set sample.checkpoint="$T/nope.h5" --set sample.out="$T/x.h5"
"$P" synth --set synth.out="$T/long.h5" --set synth.sft_out= --set synth.heldout_out= --set synth.n_prompts=4 \
    --set synth.prompt_len=70 >/dev/null 2>&1 || bad "synth with long prompts"
# shellcheck disable=SC2086
expect_fail "prompt longer than the context" "prompt 0 .* 70 tokens" "$P" sample $C --set sample.data="$T/long.h5" --set sample.out="$T/x.h5"
[ -f "$T/x.h5" ] && bad "a failed run left $T/x.h5" || ok "failed runs write nothing"
echo "sample: $fails failure(s)"
[ "$fails" -eq 0 ]

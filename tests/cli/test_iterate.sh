#!/bin/sh
# prefer iterate on a tiny synthetic task: rounds of sample (mixed sampler) -> label -> train
# with a geometric-mixture reference; the run log's "rounds" table has one row per policy;
# with lambda = 0.5 the round's samples mix pi_t's and pi_0's; a run stopped by SIGTERM in
# the middle of a round's training (exit 75) and rerun ends with the same final policy, bit for
# bit, as an uninterrupted run; the cyclic oracle labels by class; bad settings are named.
set -u
P="${BIN:-bin}/prefer"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-iterate.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }

"$P" iterate --help >"$T/h" 2>&1 && grep -q "usage: prefer iterate" "$T/h" && ok "iterate --help" || bad "iterate --help"

cat >"$T/c.cfg" <<CFG
model: { vocab_size = 16; context = 16; n_layer = 1; n_head = 2; n_embd = 16; };
synth: { vocab_size = 16; prompt_len = 4; response_len = 6; n_prompts = 48; seed = 3;
         out = "$T/train.h5"; sft_out = "$T/sft.h5"; heldout_out = ""; };
train: { objective = "sft"; data = "$T/sft.h5"; out_dir = "$T/sft"; steps = 30; micro_batch = 16; lr = 3e-3;
         warmup_steps = 2; log_every = 10; };
sample: { max_len = 6; };
loss: { beta = 0.5; };
runtime: { threads = 1; };
iterate: { data = "$T/train.h5"; rounds = 2; k = 3; steps = 12; lambda = 0.5; alpha = 0.5; oracle = "bt"; };
CFG
"$P" synth "$T/c.cfg" >"$T/log" 2>&1 && "$P" train "$T/c.cfg" >>"$T/log" 2>&1 && ok "synth + sft" || { bad "synth + sft"; tail "$T/log"; }
I="--set model.init_from=$T/sft/latest.h5 --set train.objective=dpo --set train.micro_batch=8 --set train.ckpt_every=4"

# shellcheck disable=SC2086
"$P" iterate "$T/c.cfg" $I --set iterate.out_dir=$T/a >"$T/a.log" 2>&1 && ok "iterate: 2 rounds" || { bad "iterate"; tail -20 "$T/a.log"; }
rows=$(/usr/bin/python3 -c "import h5py; f=h5py.File('$T/a/iterate.h5','r'); g=f['rounds']; print(len(g['round']), list(g['round'][:]), g['alpha'][0], g['lambda'][0])" 2>&1)
[ "$rows" = "3 [0.0, 1.0, 2.0] 0.5 0.5" ] && ok "rounds table: $rows" || bad "rounds table: $rows"
[ -f "$T/a/round_1/samples_pi0.h5" ] && [ -f "$T/a/round_1/samples.h5" ] && [ ! -f "$T/a/round_0/samples.h5" ] \
    && ok "lambda 0.5: round 1 mixes pi_1's and pi_0's samples (round 0: pi_1 = pi_0)" || bad "mixed sampler files"
# the mixture takes each response from one of the two files, about half from each
mix=$(/usr/bin/python3 - "$T/a/round_1" <<'PY'
import sys, h5py, numpy as np
d = sys.argv[1]
def resp(f):
    with h5py.File(f, "r") as h:
        t, o = h["responses/tokens"][:], h["responses/offsets"][:]
    return [tuple(t[o[i]:o[i + 1]]) for i in range(len(o) - 1)]
a, b, m = resp(d + "/samples_pi.h5"), resp(d + "/samples_pi0.h5"), resp(d + "/samples.h5")
fa = sum(1 for x, y, z in zip(a, b, m) if z == x and z != y)
fb = sum(1 for x, y, z in zip(a, b, m) if z == y and z != x)
bad = sum(1 for x, y, z in zip(a, b, m) if z != x and z != y)
print(bad, "ok" if 0.3 < fa / max(fa + fb, 1) < 0.7 else "skewed %d %d" % (fa, fb))
PY
)
[ "$mix" = "0 ok" ] && ok "mixture draws from both samplers" || bad "mixture: $mix"
grep -q "geometric mixture 0.5" "$T/a.log" && ok "geometric-mixture reference used" || bad "no geometric-mixture reference in the log"

# ---- SIGTERM in the middle of round 1's training, then rerun: same final policy
# shellcheck disable=SC2086
"$P" iterate "$T/c.cfg" $I --set iterate.out_dir=$T/b --set iterate.steps=400 >"$T/b1.log" 2>&1 &
pid=$!
i=0
while [ $i -lt 1200 ] && ! ls "$T"/b/round_1/train/ckpt_*.h5 >/dev/null 2>&1; do sleep 0.05; i=$((i + 1)); done
kill -TERM $pid 2>/dev/null
wait $pid
rc=$?
[ "$rc" = 75 ] && ok "SIGTERM mid-round: exit 75" || bad "SIGTERM mid-round: exit $rc"
[ ! -f "$T/b/round_1/policy.h5" ] && ok "round 1 unfinished" || bad "round 1 finished before the signal"
# shellcheck disable=SC2086
"$P" iterate "$T/c.cfg" $I --set iterate.out_dir=$T/b --set iterate.steps=400 >"$T/b2.log" 2>&1 && ok "rerun completes" || { bad "rerun"; tail "$T/b2.log"; }
# shellcheck disable=SC2086
"$P" iterate "$T/c.cfg" $I --set iterate.out_dir=$T/c --set iterate.steps=400 >"$T/c.log" 2>&1 || bad "uninterrupted run"
h5diff "$T/b/round_1/policy.h5" "$T/c/round_1/policy.h5" /params /params >/dev/null 2>&1 \
    && ok "resumed mid-round = uninterrupted (h5diff /params)" || bad "resumed policy differs"
n=$(/usr/bin/python3 -c "import h5py; print(len(h5py.File('$T/b/iterate.h5','r')['rounds/round']))")
[ "$n" = 3 ] && ok "resumed run log: 3 rows, none repeated" || bad "resumed run log has $n rows"

# ---- cyclic oracle: a pair's chosen class beats its rejected class (or ties) under P
# shellcheck disable=SC2086
"$P" iterate "$T/c.cfg" $I --set iterate.out_dir=$T/cy --set iterate.rounds=1 --set iterate.oracle=cyclic \
    --set iterate.cyclic_a=0.5 --set iterate.lambda=1 >"$T/cy.log" 2>&1 && ok "cyclic oracle run" || { bad "cyclic"; tail "$T/cy.log"; }
cyc=$(/usr/bin/python3 - "$T/cy/round_0/prefs.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as h:
    t, o = h["responses/tokens"][:], h["responses/offsets"][:]
    c, r = h["pairs/chosen"][:], h["pairs/rejected"][:]
cl = [t[o[i]] % 3 for i in range(len(o) - 1)]
# a = 0.5: class k beats k+1 always, so a chosen class is never the one beaten by the rejected
wrong = sum(1 for a, b in zip(c, r) if (cl[b] - cl[a]) % 3 == 2)
print(len(c), wrong)
PY
)
set -- $cyc
[ "${1:-0}" -gt 0 ] && [ "${2:-1}" = 0 ] && ok "cyclic labels: $1 pairs, none against P" || bad "cyclic labels: $cyc"
grep -q "contraction constant" "$T/cy.log" && ok "contraction constant printed" || bad "no contraction constant"

# ---- a rerun in the same directory: more rounds continue; other settings are refused
# shellcheck disable=SC2086
"$P" iterate "$T/c.cfg" $I --set iterate.out_dir=$T/a --set iterate.rounds=3 >"$T/a3.log" 2>&1 \
    && [ "$(/usr/bin/python3 -c "import h5py; print(len(h5py.File('$T/a/iterate.h5','r')['rounds/round']))")" = 4 ] \
    && ok "rerun with iterate.rounds = 3 adds one round" || { bad "rounds extension"; tail -3 "$T/a3.log"; }
# shellcheck disable=SC2086
"$P" iterate "$T/c.cfg" $I --set iterate.out_dir=$T/a --set iterate.alpha=0 >"$T/a4.log" 2>&1
[ $? -ne 0 ] && grep -q "other settings" "$T/a4.log" && ok "rerun with other settings refused" || bad "other settings accepted"

# ---- two ranks: every stage's file is written by rank 0 and read by all
# shellcheck disable=SC2086
mpirun -np 2 "$P" iterate "$T/c.cfg" $I --set iterate.out_dir=$T/m --set iterate.rounds=1 >"$T/m.log" 2>&1 \
    && [ -f "$T/m/round_0/policy.h5" ] && ok "iterate under mpirun -np 2" || { bad "iterate at 2 ranks"; tail -5 "$T/m.log"; }

# shellcheck disable=SC2086
"$P" iterate "$T/c.cfg" $I --set iterate.out_dir=$T/e --set train.objective=sft >"$T/e.log" 2>&1
[ $? -ne 0 ] && grep -q "train.objective" "$T/e.log" && ok "sft objective refused, key named" || bad "sft objective accepted"
"$P" iterate "$T/c.cfg" --set iterate.lambda=2 >"$T/e2.log" 2>&1
[ $? -ne 0 ] && grep -q "iterate.lambda" "$T/e2.log" && ok "lambda out of range named" || bad "lambda range"

echo "iterate: $fails failure(s)"
[ "$fails" = 0 ]

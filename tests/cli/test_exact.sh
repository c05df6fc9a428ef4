#!/bin/sh
# prefer exact on a tiny enumerable synthetic task (4 free tokens, 3 per response: 64
# responses per prompt): synth, a short SFT (reference = step 15, policy = step 30), then exact
# at 1 and 2 ranks (runtime.threads = 1): every dataset of the results file, the saved
# distributions included, identical (h5dump, full precision); values sane (KL >= 0, masses
# <= 1 + 1e-9, entropies in [0, log n]); every per-prompt quantity recomputed with numpy from
# the saved distributions; policy = reference gives KL 0 and a uniform DID (entropy log n);
# the run log gets an "exact" row; errors name the key (unknown key, too large a space, a file
# that is not of the task, a missing run log).
set -u
P="${BIN:-bin}/prefer"
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-exact.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
# dataset $2 of file $1 at full precision, without the header line that names the file
dump() { h5dump -m %.17g -d "$2" "$1" | tail -n +2; }

"$P" exact --help >"$T/h" 2>&1 && grep -q "usage: prefer exact" "$T/h" && ok "exact --help" || bad "exact --help"

S="--set synth.vocab_size=5 --set synth.response_len=4 --set synth.prompt_len=3 --set synth.n_prompts=64 \
   --set synth.n_heldout=6 --set synth.out=$T/train.h5 --set synth.sft_out=$T/sft.h5 --set synth.heldout_out=$T/heldout.h5 \
   --set model.vocab_size=5 --set model.context=8 --set model.n_layer=1 --set model.n_head=2 --set model.n_embd=16"
# shellcheck disable=SC2086
"$P" synth $S >"$T/log" 2>&1 && ok "synth (vocab 5, responses 3 + EOS)" || { bad "synth"; cat "$T/log"; }
# shellcheck disable=SC2086
"$P" train $S --set train.data="$T/sft.h5" --set train.out_dir="$T/sft" --set train.steps=30 --set train.ckpt_every=15 \
    --set train.micro_batch=16 --set runtime.threads=1 >"$T/log" 2>&1 && [ -f "$T/sft/ckpt_00000015.h5" ] \
    && ok "SFT: two checkpoints" || { bad "train"; cat "$T/log"; }

E="--set exact.policy=$T/sft/latest.h5 --set exact.ref=$T/sft/ckpt_00000015.h5 --set exact.data=$T/heldout.h5 \
   --set exact.beta=0.5 --set exact.save_distributions=true --set runtime.threads=1"
# shellcheck disable=SC2086
"$P" exact $E --set exact.out="$T/e1.h5" >"$T/e1.log" 2>&1 && grep -q "4^3 = 64 responses each" "$T/e1.log" \
    && ok "exact, 1 rank" || { bad "exact, 1 rank"; cat "$T/e1.log"; }
h5dump -a /format "$T/e1.h5" 2>/dev/null | grep -q '"prefer.exact"' && ok "format prefer.exact" || bad "format attribute"

COLS="care mass mass_ref entropy entropy_ref entropy_opt kl_ref kl_opt kl_opt_ref kl_teacher kl_ref_teacher l1_ref \
did_entropy reward reward_ref reward_opt logp_chosen logp_rejected logp_chosen_ref logp_rejected_ref n_pairs"
if command -v mpirun >/dev/null; then
    # shellcheck disable=SC2086
    mpirun -np 2 "$P" exact $E --set exact.out="$T/e2.h5" >"$T/e2.log" 2>&1 && ok "exact, 2 ranks" \
        || { bad "exact, 2 ranks"; cat "$T/e2.log"; }
    same=0 diff=0
    for d in $COLS distributions/logp_policy distributions/logp_ref distributions/reward; do
        dump "$T/e1.h5" /$d >"$T/d1"
        dump "$T/e2.h5" /$d >"$T/d2" 2>&1
        if [ -s "$T/d1" ] && cmp -s "$T/d1" "$T/d2"; then same=$((same + 1)); else diff=$((diff + 1)); echo "  /$d differs"; fi
    done
    [ "$diff" -eq 0 ] && [ "$same" -eq 24 ] && ok "1 rank = 2 ranks: all $same datasets identical" \
        || bad "1 rank vs 2 ranks: $diff datasets differ"
    for a in mean_kl_opt mean_did_entropy mean_logp_chosen; do
        [ "$(h5dump -m %.17g -a /$a "$T/e1.h5" | grep '(0)')" = "$(h5dump -m %.17g -a /$a "$T/e2.h5" | grep '(0)')" ] \
            && ok "1 rank = 2 ranks: @$a" || bad "@$a differs"
    done
else
    echo "skip: no mpirun (1 rank = 2 ranks)"
fi

# sanity and an independent recomputation from the saved distributions
if $PY -c "import h5py, numpy" 2>/dev/null; then
    $PY - "$T/e1.h5" >"$T/py.log" 2>&1 <<'PY' && ok "values sane and equal to numpy's recomputation" || { bad "numpy check"; cat "$T/py.log"; }
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
n = int(f.attrs["n_responses"]); beta = float(f.attrs["beta"])
lp, lr, r = (f["distributions/" + k][:] for k in ("logp_policy", "logp_ref", "reward"))
assert lp.shape == (6, n) and n == 64, lp.shape
col = lambda k: f[k][:]
bad = []
def check(name, got, want, tol=1e-9):
    if not np.allclose(got, want, rtol=tol, atol=tol):
        bad.append("%s: %s vs %s" % (name, got, want))
# sanity
for k in ("kl_ref", "kl_opt", "kl_opt_ref", "kl_teacher", "kl_ref_teacher"):
    if not (col(k) >= -1e-12).all(): bad.append(k + " < 0")
for k in ("mass", "mass_ref"):
    if not ((col(k) <= 1 + 1e-9) & (col(k) > 0)).all(): bad.append(k + " not in (0, 1]")
for k in ("entropy", "entropy_ref", "entropy_opt", "did_entropy"):
    if not ((col(k) >= -1e-12) & (col(k) <= np.log(n) + 1e-9)).all(): bad.append(k + " outside [0, log n]")
if not ((col("l1_ref") >= 0) & (col("l1_ref") <= 2)).all(): bad.append("l1 outside [0, 2]")
# recomputation
def norm(x): m = x.max(1, keepdims=True); z = m + np.log(np.exp(x - m).sum(1, keepdims=True)); return x - z, z[:, 0]
p, zp = norm(lp); q, zq = norm(lr); o, _ = norm(lr + r / beta); d, _ = norm(lp - lr)
E = lambda a, b: (np.exp(a) * b).sum(1)
check("mass", col("mass"), np.exp(zp)); check("mass_ref", col("mass_ref"), np.exp(zq))
check("entropy", col("entropy"), -E(p, p)); check("entropy_ref", col("entropy_ref"), -E(q, q))
check("entropy_opt", col("entropy_opt"), -E(o, o)); check("did_entropy", col("did_entropy"), -E(d, d))
check("kl_ref", col("kl_ref"), E(p, p - q)); check("kl_opt", col("kl_opt"), E(p, p - o))
check("kl_opt_ref", col("kl_opt_ref"), E(o, o - q)); check("l1_ref", col("l1_ref"), np.abs(np.exp(p) - np.exp(q)).sum(1))
check("reward", col("reward"), E(p, r)); check("reward_ref", col("reward_ref"), E(q, r)); check("reward_opt", col("reward_opt"), E(o, r))
# the dataset's responses are in the space: their log-likelihoods are the enumerated values (float rounding apart)
if not (col("n_pairs") == 6).all(): bad.append("n_pairs %s" % col("n_pairs"))
if not np.isfinite(col("logp_chosen")).all() or not (col("logp_chosen") < 0).all(): bad.append("logp_chosen")
if bad:
    print("\n".join(bad)); sys.exit(1)
print("checked", n, "responses x 6 prompts")
PY
    # chosen/rejected log-likelihoods against the enumerated values of those responses
    $PY - "$T/e1.h5" "$T/heldout.h5" >"$T/py2.log" 2>&1 <<'PY' && ok "chosen/rejected log-likelihoods = enumerated values of those responses (1e-5)" || { bad "chosen/rejected"; cat "$T/py2.log"; }
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r"); d = h5py.File(sys.argv[2], "r")
lp = f["distributions/logp_policy"][:]; A = int(f.attrs["alphabet"]); L = int(f.attrs["free_tokens"])
tok, off, rp = d["responses/tokens"][:], d["responses/offsets"][:], d["responses/prompt"][:]
ch, rj = d["pairs/chosen"][:], d["pairs/rejected"][:]
def idx(e):
    y = tok[off[e]:off[e + 1]]; assert len(y) == L + 1 and y[-1] == 0, y
    i = 0
    for t in y[:-1]: i = i * A + (t - 1)
    return i
for name, ids in (("logp_chosen", ch), ("logp_rejected", rj)):
    want = np.zeros(6); cnt = np.zeros(6)
    for e in ids: want[rp[e]] += lp[rp[e], idx(e)]; cnt[rp[e]] += 1
    got = f[name][:]
    if not np.allclose(got, want / cnt, atol=1e-5, rtol=0): print(name, got, want / cnt); sys.exit(1)
PY
else
    echo "skip: $PY has no h5py/numpy (value checks)"
fi

# policy = reference: KL 0, L1 0, the DID uniform (entropy log 64)
# shellcheck disable=SC2086
"$P" exact $E --set exact.ref="$T/sft/latest.h5" --set exact.out="$T/same.h5" --set exact.save_distributions=false \
    >"$T/s.log" 2>&1 || { bad "exact policy = ref"; cat "$T/s.log"; }
nz=$(dump "$T/same.h5" /kl_ref | grep -cE '^ *\([0-5]\): 0,?$')
[ "$nz" = 6 ] && ok "policy = reference: KL 0 on every prompt" || { bad "policy = reference: KL"; dump "$T/same.h5" /kl_ref; }
awk -v h="$(h5dump -m %.17g -a /mean_did_entropy "$T/same.h5" | grep '(0)' | sed 's/.*(0): //')" \
    'BEGIN { exit !(h - log(64) < 1e-9 && log(64) - h < 1e-9) }' && ok "policy = reference: DID uniform (entropy log 64)" \
    || bad "policy = reference: DID entropy"

# the run log row
cp "$T/sft/run.h5" "$T/run.h5"
# shellcheck disable=SC2086
"$P" exact $E --set exact.out="$T/e3.h5" --set exact.runlog="$T/run.h5" >"$T/r.log" 2>&1 \
    && grep -q 'appended to the "exact" table' "$T/r.log" && dump "$T/run.h5" /exact/kl_opt | grep -q "( 1 ) / ( H5S_UNLIMITED )" \
    && dump "$T/run.h5" /exact/step | grep -qE '^ *\(0\): 30$' \
    && ok "run log: one \"exact\" row (step 30)" || { bad "run log row"; cat "$T/r.log"; h5ls -r "$T/run.h5" | grep exact; }

# ---- errors
"$P" exact --set exact.polcy=x >"$T/e" 2>&1 && bad "unknown key accepted" \
    || { grep -q "exact.polcy" "$T/e" && grep -q "did you mean 'exact.policy'" "$T/e" && ok "unknown key named" \
         || { bad "unknown key message"; cat "$T/e"; }; }
# shellcheck disable=SC2086
"$P" exact $E --set exact.max_responses=63 --set exact.out="$T/x.h5" >"$T/e" 2>&1 && bad "too large a space accepted" \
    || { grep -q "exact.max_responses = 63" "$T/e" && grep -q "synth.vocab_size = 5" "$T/e" && ok "too large a space: keys named" \
         || { bad "too large message"; cat "$T/e"; }; }
# shellcheck disable=SC2086
"$P" exact $E --set exact.data="$T/sft/latest.h5" --set exact.out="$T/x.h5" >"$T/e" 2>&1 && bad "checkpoint as data accepted" \
    || { grep -q "sft/latest.h5" "$T/e" && ok "a file that is not a dataset refused, named" || { bad "bad data message"; cat "$T/e"; }; }
# shellcheck disable=SC2086
"$P" exact $E --set exact.runlog="$T/none.h5" --set exact.out="$T/x.h5" >"$T/e" 2>&1 && bad "missing run log accepted" \
    || { grep -q "exact.runlog" "$T/e" && ok "missing run log: key named" || { bad "run log message"; cat "$T/e"; }; }

echo "exact: $fails failure(s)"
[ "$fails" -eq 0 ]

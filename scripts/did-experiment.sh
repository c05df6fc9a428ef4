#!/bin/sh
# did-experiment.sh: the DID experiment of papers.md section 5 on the enumerable synthetic task
# (docs/did.md): SFT a reference, then for each kind of DID data (chosen from / rejected from)
# and each data size (pairs per prompt), write the data exactly (prefer synth with
# synth.rejected_from), train DPO against the SFT reference, and measure the trained policy
# exactly (prefer exact): KL(pi || pi*) against the data's predicted DPO optimum, and the
# chosen/rejected log-likelihoods before and after training (displacement).
#   scripts/did-experiment.sh                  all kinds, sizes 16 64 256 pairs per prompt
#   KINDS="reference:did optimum:reference" SIZES="4 16" STEPS=300 OUT=did-out scripts/did-experiment.sh
# Prints a table; every run stays in $OUT/<chosen>-<rejected>-<size>/.
set -eu
P="${BIN:-bin}/prefer"
CFG="${CFG:-configs/experiments/did/enum-base.cfg}"
OUT="${OUT:-did-out}"
KINDS="${KINDS:-reference:did optimum:did optimum:reference reference:reference reference:mix}"
SIZES="${SIZES:-16 64 256}"
STEPS="${STEPS:-300}"
BETA="${BETA:-0.5}"
SFT_PROMPTS="${SFT_PROMPTS:-1024}"  # the reference learns the teacher from this many prompts
RUN="${RUN:-}"   # e.g. RUN="mpirun -np 2"
PY=/usr/bin/python3
mkdir -p "$OUT"
quiet() { grep -E "^(synth: wrote|  exact:|train: done|exact: mean)" || true; }

if [ ! -f "$OUT/sft/latest.h5" ]; then
    $RUN "$P" synth "$CFG" --set synth.sft_out="$OUT/sft.h5" --set synth.out="$OUT/teacher.h5" \
        --set synth.heldout_out= --set synth.n_prompts="$SFT_PROMPTS" | quiet
    $RUN "$P" train "$CFG" --set train.data="$OUT/sft.h5" --set train.out_dir="$OUT/sft" | quiet
fi
printf '%-22s %5s %8s %12s %10s %10s %12s %12s %10s\n' kind pairs did_H kl_pred kl_ref_pi kl_opt_pi \
    dlogp_chosen dlogp_rej reward
for kind in $KINDS; do
    ch=${kind%%:*}; rj=${kind##*:}
    for n in $SIZES; do
        d="$OUT/$ch-$rj-$n"
        mkdir -p "$d"
        if [ ! -f "$d/exact.h5" ]; then
            $RUN "$P" synth "$CFG" --set synth.sft_out= --set synth.heldout_out= --set synth.out="$d/train.h5" \
                --set synth.chosen_from="$ch" --set synth.rejected_from="$rj" --set synth.did_pairs="$n" \
                --set synth.did_ref="$OUT/sft/latest.h5" --set loss.beta="$BETA" >"$d/synth.log"
            $RUN "$P" train "$CFG" --set train.objective=dpo --set train.data="$d/train.h5" \
                --set model.init_from="$OUT/sft/latest.h5" --set train.out_dir="$d/dpo" --set loss.beta="$BETA" \
                --set train.steps="$STEPS" --set train.lr=1e-3 --set train.micro_batch=64 >"$d/train.log"
            $RUN "$P" exact "$CFG" --set exact.policy="$d/dpo/latest.h5" --set exact.ref="$OUT/sft/latest.h5" \
                --set exact.data="$d/train.h5" --set exact.beta="$BETA" --set exact.out="$d/exact.h5" >"$d/exact.log"
        fi
        $PY - "$d" "$kind" "$n" <<'PY'
import sys, h5py, numpy as np
d, kind, n = sys.argv[1:4]
t = h5py.File(d + "/train.h5", "r").attrs
e = h5py.File(d + "/exact.h5", "r")
m = lambda c: float(np.nanmean(e[c][:]))
dc = m("logp_chosen") - m("logp_chosen_ref")
dr = m("logp_rejected") - m("logp_rejected_ref")
print("%-22s %5s %8.3f %12.4f %10.4f %10.4f %12.3f %12.3f %10.4f" % (kind, n, t["did_entropy"], t["did_kl_dpo_star"],
      m("kl_ref"), m("kl_opt"), dc, dr, m("reward")))
PY
    done
done
echo "columns: did_H = entropy of the data's differential information pi_c/pi_rej (nats); kl_pred = KL(pi_dpo || pi*)"
echo "of DPO's population optimum on this data (0 = the power-law condition); kl_ref_pi = KL(pi || pi_ref) and"
echo "kl_opt_pi = KL(pi || pi*) of the trained policy; dlogp = change of the mean log-likelihood of the data's"
echo "chosen / rejected responses from the reference to the trained policy; reward = E_pi[r] (pi* has $BETA's optimum)"

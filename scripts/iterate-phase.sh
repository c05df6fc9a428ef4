#!/bin/sh
# iterate-phase.sh: points of the iterative-alignment phase diagram (papers.md section 6) run on
# the transformer with `prefer iterate`, next to the tabular theory (`prefer dynamics`).
# The tabular configuration (configs/experiments/iterate/tabular.cfg: one-token responses in 3
# classes) makes each round's IPO optimum the paper's map on the class marginal. Each point is
# "oracle alpha tau lambda"; beta_tab = 1/tau. Prints per point the theory (contraction constant,
# cyclic radius sqrt(alpha^2 + a^2 beta^2 lambda^2 / 3)) and what the transformer did over the
# last W rounds: cycle strength (mean variance of the class shares), the largest class share,
# entropy first -> last, and a verdict by the rule of analysis/report.py (oscillating if cycle >
# 0.005, else collapsed if the largest class share > 0.9, else converged).
#   scripts/iterate-phase.sh
#   POINTS="cyclic 0 0.1 1;bt 1 0.5 1" ROUNDS=10 STEPS=500 OUT=iter-out scripts/iterate-phase.sh
set -eu
P="${BIN:-bin}/prefer"
CFG="${CFG:-configs/experiments/iterate/tabular.cfg}"
OUT="${OUT:-iter-out}"
ROUNDS="${ROUNDS:-12}"
W="${W:-6}"
STEPS="${STEPS:-150}"
RUN="${RUN:-}"   # e.g. RUN="mpirun -np 2" or "srun --mpi=pmix"   # training steps per round: more bring each round closer to its IPO optimum
POINTS="${POINTS:-cyclic 0 1 1;cyclic 0 0.1 1;cyclic 0.5 0.5 1;cyclic 0.5 0.25 1;bt 0 0.5 1;bt 1 0.5 1}"
mkdir -p "$OUT"
if [ ! -f "$OUT/sft/latest.h5" ]; then
    $RUN "$P" synth "$CFG" --set synth.sft_out="$OUT/sft.h5" --set synth.out="$OUT/prompts-all.h5" \
        --set synth.heldout_out="$OUT/prompts.h5" | grep "wrote" || true
    $RUN "$P" train "$CFG" --set model.init_from= --set train.data="$OUT/sft.h5" --set train.out_dir="$OUT/sft" \
        | grep "done" || true
    [ -f "$OUT/sft/latest.h5" ] || { echo "iterate-phase: the SFT stage failed (no $OUT/sft/latest.h5)" >&2; exit 1; }
fi
echo "$POINTS" | tr ';' '\n' | while read -r oracle alpha tau lambda; do
    [ -n "$oracle" ] || continue
    d="$OUT/$oracle-a$alpha-t$tau-l$lambda"
    $RUN "$P" iterate "$CFG" --set model.init_from="$OUT/sft/latest.h5" --set iterate.data="$OUT/prompts.h5" \
        --set train.objective=ipo --set loss.beta="$tau" --set iterate.alpha="$alpha" --set iterate.lambda="$lambda" \
        --set iterate.oracle="$oracle" --set iterate.rounds="$ROUNDS" --set iterate.steps="$STEPS" --set iterate.out_dir="$d" >"$d.log" 2>&1 \
        || { echo "iterate failed for $d: see $d.log" >&2; exit 1; }
done
/usr/bin/python3 - "$OUT" "$W" "$POINTS" <<'PY'
import sys, math, h5py, numpy as np
out, W, points = sys.argv[1], int(sys.argv[2]), [p.split() for p in sys.argv[3].split(";") if p.strip()]
print("%-7s %5s %5s %6s %8s %11s %7s | %8s %9s %15s  %s" % ("oracle", "alpha", "tau", "lambda", "beta*lam",
      "contraction", "radius", "cycle", "max_share", "entropy", "transformer"))
for oracle, alpha, tau, lam in points:
    a_, t_, l_ = float(alpha), float(tau), float(lam)
    f = h5py.File("%s/%s-a%s-t%s-l%s/iterate.h5" % (out, oracle, alpha, tau, lam), "r")
    g = f["rounds"]
    sh = np.stack([g["share/%d" % c][:] for c in range(3)], 1)
    ent = g["entropy_est"][:]
    last = sh[-W:]
    cycle = float(np.mean(np.var(last, 0)))
    mx = float(last[-1].max())
    verdict = "oscillating" if cycle > 0.005 else ("collapsed" if mx > 0.9 else "converged")
    c = float(g["contraction"][0])
    radius = math.sqrt(a_ ** 2 + 0.25 * (l_ / t_) ** 2 / 3) if oracle == "cyclic" else float("nan")
    print("%-7s %5s %5s %6s %8.2f %11.3f %7.3f | %8.4f %9.3f %6.3f -> %6.3f  %s" % (oracle, alpha, tau, lam,
          l_ / t_, c, radius, cycle, mx, ent[0], ent[-1], verdict))
PY

#!/bin/sh
# analysis/report.py's subcommands for the DID and iterative-alignment papers, on tiny synthetic
# files written here with h5py (no prefer binary needed):
#   did      a did-experiment.sh layout (2 kinds x 2 sizes, one run without exact.h5, one exact.h5
#            with /kl_opt but no mean_kl_opt) -> did-displacement.png, did-kl.png, the table's rows
#            (pairs per prompt from the config or the directory name, KL from the attribute or the
#            dataset's mean, the logps first -> last);
#   iterate  four iterate.h5 logs (cycling, collapsing, converging with a resumed duplicate round,
#            one row) -> iterate.png, iterate-shares.png and the verdicts;
#   phase    cyclic and transitive prefer.dynamics files with the runs overlaid -> phase.png, the
#            per-run verdict lines and phase-points.csv;
# errors (missing directory, data without DID attributes, a training run log as iterate.h5, a
# run log as dynamics file) exit 1 naming the file; the plain `report.py RUN.h5` still works.
# Skips (exit 0) when /usr/bin/python3 lacks h5py, numpy or matplotlib.
set -u
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import h5py, numpy, matplotlib' 2>/dev/null; then
    echo "skip: $PY lacks h5py, numpy or matplotlib (scripts/install-deps.sh --python)"
    exit 0
fi
R=analysis/report.py
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-papers.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
# a real PNG: the 8-byte signature and more than 5 KB
png() {
    [ -f "$1" ] || return 1
    [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] || return 1
    [ "$(wc -c <"$1")" -gt 5120 ]
}

if ! $PY - "$T" <<'PY' >"$T/log" 2>&1
import os, sys, h5py, numpy as np
T = sys.argv[1]

def header(f, fmt, config=""):
    f.attrs["format"], f.attrs["version"], f.attrs["config"] = fmt, 1, config

def table(f, name, cols):
    g = f.create_group(name)
    g.attrs["kind"] = "table"
    for k, v in cols.items():
        g.create_dataset(k, data=np.asarray(v, dtype=np.float64), maxshape=(None,))

# ---- DID: OUT/<chosen>-<rejected>-<n>/{train.h5, dpo/run.h5, exact.h5}, plus the SFT leftovers
D = os.path.join(T, "did")
os.makedirs(os.path.join(D, "sft"))
with h5py.File(os.path.join(D, "teacher.h5"), "w") as f:
    header(f, "prefer.prefdata")
runs = [  # chosen, rejected, n, entropy, kl_dpo_star, kl_opt (None: no exact.h5; "ds": dataset only), logp end
    ("reference", "did", 4, 8.29, -8e-16, 2.5, -6.0),
    ("reference", "did", 16, 8.29, -8e-16, "ds", -4.0),
    ("optimum", "reference", 4, 7.01, 0.656, 3.0, -2.0),
    ("optimum", "reference", 16, 7.01, 0.656, None, -1.0),
]
for ch, rj, n, ent, star, kl, end in runs:
    d = os.path.join(D, f"{ch}-{rj}-{n}")
    os.makedirs(os.path.join(d, "dpo"))
    with h5py.File(os.path.join(d, "train.h5"), "w") as f:
        # the first run's pairs per prompt come from its config, the others' from the directory name
        header(f, "prefer.prefdata", "synth: {\n  did_pairs = 4;\n};\n" if n == 4 and ch == "reference" else "")
        f.attrs.update(dict(did_chosen_from=ch, did_rejected_from=rj, did_mix=0.5, did_entropy=ent,
                            did_kl_dpo_star=star))
    with h5py.File(os.path.join(d, "dpo", "run.h5"), "w") as f:
        header(f, "prefer.runlog", 'train: {\n  objective = "dpo";\n};\nloss: {\n  beta = 0.5;\n};\n')
        s = np.arange(1, 21)
        table(f, "steps", {"step": s, "loss": np.linspace(0.69, 0.3, 20), "logps/chosen": np.linspace(-1, end, 20),
                           "logps/rejected": np.linspace(-3, end - 10, 20)})
    if kl is None:
        continue
    with h5py.File(os.path.join(d, "exact.h5"), "w") as f:
        header(f, "prefer.exact")
        if kl == "ds":
            f["kl_opt"] = np.array([0.1, 0.3, np.nan])
        else:
            f.attrs["mean_kl_opt"] = kl
            f["kl_opt"] = np.array([kl, kl])
os.makedirs(os.path.join(T, "nodid"))
with h5py.File(os.path.join(T, "nodid", "train.h5"), "w") as f:
    header(f, "prefer.prefdata")

# ---- iterate: rounds tables
def iterate(name, oracle, alpha, beta_tab, lam, shares, rounds=None):
    os.makedirs(os.path.join(T, name))
    shares = np.asarray(shares, dtype=np.float64)
    R = len(shares)
    rounds = np.arange(R) if rounds is None else np.asarray(rounds)
    ent = -np.sum(shares * np.log(np.maximum(shares, 1e-12)), axis=1)
    step = np.concatenate([[np.nan], np.abs(np.diff(shares, axis=0)).sum(axis=1)])
    cols = {"round": rounds, "alpha": np.full(R, alpha), "beta_tab": np.full(R, beta_tab), "lambda": np.full(R, lam),
            "contraction": np.full(R, np.nan), "entropy_est": ent, "reward_mean": np.linspace(0, 1, R), "step_l1": step}
    for c in range(shares.shape[1]):
        cols[f"share/{c}"] = shares[:, c]
    with h5py.File(os.path.join(T, name, "iterate.h5"), "w") as f:
        header(f, "prefer.runlog", "iterate: {\n  rounds = 8;\n};\n")
        f.attrs["oracle"], f.attrs["objective"] = oracle, "ipo"
        table(f, "rounds", cols)

cyc = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
iterate("osc", "cyclic", 0.0, 10.0, 1.0, [[1 / 3] * 3] + cyc * 2 + cyc[:1])
iterate("col", "bt", 1.0, 2.0, 1.0, [[0.4, 0.3, 0.3], [0.7, 0.15, 0.15], [0.94, 0.03, 0.03], [0.95, 0.03, 0.02],
                                     [0.95, 0.02, 0.03], [0.96, 0.02, 0.02], [0.95, 0.03, 0.02], [0.95, 0.02, 0.03]])
rng = np.random.default_rng(3)
conv = np.clip(1 / 3 + rng.normal(0, 0.01, (8, 3)), 0, 1)
conv /= conv.sum(axis=1, keepdims=True)
conv = np.vstack([conv[:6], [[0.9, 0.05, 0.05]], conv[6:]])  # round 6 logged twice (a resume): the later row wins
iterate("conv", "cyclic", 0.5, 2.0, 1.0, conv, rounds=[0, 1, 2, 3, 4, 5, 6, 6, 7])
iterate("one", "cyclic", 0.2, 1.0, 0.5, [[0.3, 0.3, 0.4]])

# ---- prefer.dynamics files: a 3 x 3 grid each
def dynamics(name, family, n, P, outcome, advantage=None):
    al, be = np.meshgrid([0.0, 0.5, 0.9], [1.0, 3.0, 5.0], indexing="ij")
    G = al.size
    with h5py.File(os.path.join(T, name), "w") as f:
        header(f, "prefer.dynamics")
        f["P"] = P
        f["grid/alpha"], f["grid/beta"], f["grid/lambda"] = al.ravel(), be.ravel(), np.ones(G)
        f["results/outcome"] = np.asarray(outcome, dtype=np.int64)
        f["results/cycle_strength"] = np.where(np.asarray(outcome) == 1, 0.05, 1e-14)
        f["results/entropy"] = np.full(G, 0.5)
        f["results/regime"] = np.zeros(G, dtype=np.int64)
        f.attrs.update(dict(family=family, n=n, norm=float(np.linalg.norm(P - 0.5, 2)), rounds=100,
                            cyclic_uniform=int(family == "cyclic")))
        if advantage is not None:
            f.attrs["advantage"] = advantage

C = np.array([[0, 1, -1], [-1, 0, 1], [1, -1, 0]], dtype=float)
dynamics("cyc.h5", "cyclic", 3, 0.5 + 0.5 * C, [0, 1, 1, 0, 1, 1, 1, 1, 1], advantage=0.5)
r = np.arange(3.0)[::-1]
dynamics("trans.h5", "transitive", 3, 1 / (1 + np.exp(-(r[:, None] - r[None, :]))), [0, 0, 0, 0, 0, 0, 0, 2, 2])
PY
then
    bad "writing the synthetic files"; cat "$T/log"
    exit 1
fi
ok "synthetic DID, iterate and dynamics files written"

# ---- did
if $PY $R did "$T/did" -o "$T/o-did" >"$T/did.out" 2>"$T/did.err"; then
    ok "report.py did runs"
else
    bad "report.py did"; cat "$T/did.out" "$T/did.err"
fi
for f in did-displacement did-kl; do
    png "$T/o-did/$f.png" && ok "did: $f.png" || bad "did: $f.png missing, not a PNG or under 5 KB"
done
# rows: kind | pairs | DID entropy | predicted KL | trained KL | logps/chosen | logps/rejected
for row in "| reference / did | 4 | 8.290 | 0.0000 | 2.5000 | -1.00 -> -6.00 | -3.00 -> -16.00 |" \
           "| reference / did | 16 | 8.290 | 0.0000 | 0.2000 | -1.00 -> -4.00 | -3.00 -> -14.00 |" \
           "| optimum / reference | 4 | 7.010 | 0.6560 | 3.0000 | -1.00 -> -2.00 | -3.00 -> -12.00 |" \
           "| optimum / reference | 16 | 7.010 | 0.6560 | - | -1.00 -> -1.00 | -3.00 -> -11.00 |"; do
    grep -qF "$row" "$T/did.out" && ok "did table: $row" || { bad "did table lacks: $row"; cat "$T/did.out"; }
done
[ "$(grep -c '^| [a-z]* / ' "$T/did.out")" = 4 ] && ok "did: 4 runs (sft/ and teacher.h5 skipped)" \
    || { bad "did: run count"; cat "$T/did.out"; }
grep -q "optimum-reference-16/exact.h5: no such file: left out of the KL figure" "$T/did.err" \
    && ok "did: missing exact.h5 reported" || { bad "did: missing exact.h5 warning"; cat "$T/did.err"; }
# one run directory on its own works too
$PY $R did "$T/did/reference-did-4" -o "$T/o-did1" >"$T/out" 2>&1 && png "$T/o-did1/did-kl.png" \
    && grep -qF "| reference / did | 4 | 8.290 |" "$T/out" && ok "did: a single run directory" \
    || { bad "did: single run directory"; cat "$T/out"; }

# ---- iterate
I="$T/osc/iterate.h5 $T/col/iterate.h5 $T/conv/iterate.h5 $T/one/iterate.h5"
# shellcheck disable=SC2086
if $PY $R iterate $I -o "$T/o-it" >"$T/it.out" 2>&1; then
    ok "report.py iterate runs"
else
    bad "report.py iterate"; cat "$T/it.out"
fi
for f in iterate iterate-shares; do
    png "$T/o-it/$f.png" && ok "iterate: $f.png" || bad "iterate: $f.png missing, not a PNG or under 5 KB"
done
for want in "osc/iterate.h5 | cyclic | 0 | 10 | 1 | 10 | 8 |.*| oscillating |" \
            "col/iterate.h5 | bt | 1 | 2 | 1 | 2 | 8 |.*| 0.950 | collapsed |" \
            "conv/iterate.h5 | cyclic | 0.5 | 2 | 1 | 2 | 8 |.*| converged |" \
            "one/iterate.h5 | cyclic | 0.2 | 1 | 0.5 | 0.5 | 1 |.*| undecided |"; do
    grep -q "$want" "$T/it.out" && ok "iterate verdict: $want" || { bad "iterate verdict: $want"; cat "$T/it.out"; }
done
# a lower threshold makes the converged run's sampling noise an oscillation: the threshold is used
$PY $R iterate "$T/conv/iterate.h5" --var-threshold 1e-6 -o "$T/o-it2" >"$T/out" 2>&1 \
    && grep -q "conv/iterate.h5 .*| oscillating |" "$T/out" && ok "iterate: --var-threshold applies" \
    || { bad "iterate: --var-threshold"; cat "$T/out"; }

# ---- phase
# shellcheck disable=SC2086
if $PY $R phase "$T/cyc.h5" "$T/trans.h5" --runs $I -o "$T/o-ph" >"$T/ph.out" 2>&1; then
    ok "report.py phase runs"
else
    bad "report.py phase"; cat "$T/ph.out"
fi
png "$T/o-ph/phase.png" && ok "phase: phase.png" || bad "phase: phase.png missing, not a PNG or under 5 KB"
for want in "osc/iterate.h5: cyclic alpha 0 beta_tab\*lambda 10: oscillating" \
            "col/iterate.h5: bt alpha 1 beta_tab\*lambda 2: collapsed (.*max share 0.950)" \
            "conv/iterate.h5: cyclic alpha 0.5 beta_tab\*lambda 2: converged" \
            "one/iterate.h5: cyclic alpha 0.2 beta_tab\*lambda 0.5: undecided"; do
    grep -q "^phase: .*$want" "$T/ph.out" && ok "phase verdict: $want" || { bad "phase verdict: $want"; cat "$T/ph.out"; }
done
grep -qx "1,2,col,collapsed,transitive" "$T/o-ph/phase-points.csv" && grep -qx "0,10,osc,oscillating,cyclic" \
    "$T/o-ph/phase-points.csv" && ok "phase-points.csv (phase.py --points format)" \
    || { bad "phase-points.csv"; cat "$T/o-ph/phase-points.csv"; }
# the CSV is accepted by phase.py itself
$PY analysis/phase.py "$T/cyc.h5" --points "$T/o-ph/phase-points.csv" -o "$T/p2.png" >"$T/out" 2>&1 && png "$T/p2.png" \
    && ok "phase.py reads phase-points.csv" || { bad "phase.py --points phase-points.csv"; cat "$T/out"; }

# ---- errors: exit 1, the file named
err() {  # $1 description, $2 expected text on stderr, rest: the command
    d=$1 w=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" = 1 ] && grep -q "$w" "$T/err" && ok "error: $d" || { bad "error: $d (rc=$rc)"; cat "$T/err"; }
}
err "missing DID directory" "$T/nope: no such directory" $PY $R did "$T/nope" -o "$T/o-e"
err "data without DID attributes" "$T/nodid/train.h5: no did_chosen_from" $PY $R did "$T/nodid" -o "$T/o-e"
err "training run log as iterate.h5" "run.h5: no .rounds. table" $PY $R iterate "$T/did/reference-did-4/dpo/run.h5" -o "$T/o-e"
err "run log as dynamics file" "$T/osc/iterate.h5: not prefer.dynamics" $PY $R phase "$T/osc/iterate.h5" -o "$T/o-e"

# ---- the plain report is unchanged
$PY $R "$T/did/reference-did-4/dpo/run.h5" -o "$T/o-plain" >"$T/out" 2>&1 && png "$T/o-plain/displacement.png" \
    && grep -q "dpo beta=0.5" "$T/o-plain/report.md" && ok "plain report.py RUN.h5 still works" \
    || { bad "plain report.py"; cat "$T/out"; }
echo "analysis papers: $fails failure(s)"
[ "$fails" -eq 0 ]

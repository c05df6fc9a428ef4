#!/bin/sh
# The analysis scripts on a tiny real run: synth -> SFT -> DPO -> eval, then
# analysis/report.py (PNGs with a PNG signature and > 5 KB, report.md naming the runs),
# analysis/frontier.py on the eval file, analysis/summary.py; a copy of the run log with
# fake /epochs and /curriculum groups and a resume that logs steps again gets the curriculum
# figures and its superseded rows dropped; a non-HDF5 file, a missing file and an eval file
# passed as a run log exit 1 with the file named.
# Skips (exit 0) when /usr/bin/python3 lacks h5py or matplotlib (scripts/install-deps.sh
# --python, which make check runs, installs them).
set -u
P="${BIN:-bin}/prefer"
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
if ! [ -x "$PY" ] || ! "$PY" -c 'import h5py, numpy, matplotlib' 2>/dev/null; then
    echo "skip: $PY lacks h5py, numpy or matplotlib (scripts/install-deps.sh --python)"
    exit 0
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-analysis.XXXXXX")
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
S="--set synth.sft_out=$T/sft.h5 --set synth.out=$T/train.h5 --set synth.heldout_out=$T/heldout.h5 \
   --set synth.n_prompts=64 --set synth.n_heldout=16 --set model.context=32 --set runtime.threads=1"
"$P" synth $S >"$T/log" 2>&1 && ok "synth" || { bad "synth"; cat "$T/log"; }
"$P" train $S --set train.data=$T/sft.h5 --set train.out_dir=$T/sft --set train.steps=20 >"$T/log" 2>&1 \
    && ok "sft" || { bad "sft"; cat "$T/log"; }
"$P" train $S --set train.objective=dpo --set train.data=$T/train.h5 --set model.init_from=$T/sft/latest.h5 \
    --set train.steps=12 --set train.micro_batch=8 --set train.lr=1e-3 --set train.warmup_steps=2 \
    --set train.out_dir=$T/dpo >"$T/log" 2>&1 && ok "dpo" || { bad "dpo"; cat "$T/log"; }
"$P" eval $S --set eval.policy=$T/dpo/latest.h5 --set eval.ref=$T/sft/latest.h5 --set eval.data=$T/heldout.h5 \
    --set eval.out=$T/eval.h5 >"$T/log" 2>&1 && ok "eval" || { bad "eval"; cat "$T/log"; }

# report.py on the SFT and DPO runs, with the eval file
if $PY analysis/report.py "$T/sft/run.h5" "$T/dpo/run.h5" --eval "$T/eval.h5" -o "$T/rep" >"$T/log" 2>&1; then
    ok "report.py runs"
else
    bad "report.py"; cat "$T/log"
fi
for f in training displacement timing frontier; do
    png "$T/rep/$f.png" && ok "report: $f.png" || bad "report: $f.png missing, not a PNG or under 5 KB"
done
if [ -s "$T/rep/report.md" ] && grep -q "dpo beta=0.1" "$T/rep/report.md" && grep -q "$T/dpo/run.h5" "$T/rep/report.md" \
    && grep -q "](training.png)" "$T/rep/report.md" && grep -q "^| logps/chosen | " "$T/rep/report.md"; then
    ok "report.md names the run, embeds the figures, has the run table"
else
    bad "report.md"; cat "$T/rep/report.md" 2>/dev/null | head -40
fi

# frontier.py and summary.py
$PY analysis/frontier.py "$T/eval.h5" -o "$T/frontier.png" --table >"$T/log" 2>&1 && png "$T/frontier.png" \
    && grep -q "^| dpo beta=0.1 |" "$T/log" && ok "frontier.py" || { bad "frontier.py"; cat "$T/log"; }
$PY analysis/summary.py "$T/dpo/run.h5" >"$T/log" 2>&1 && grep -q "^/steps: 12 rows" "$T/log" \
    && grep -q "^  logps/chosen " "$T/log" && ok "summary.py" || { bad "summary.py"; cat "$T/log"; }

# the PVar curriculum layout (assumed: /epochs table, /curriculum/epoch_<k>/{pvar,selected}) and
# a resume that logs steps 9..12 again
cp "$T/dpo/run.h5" "$T/cur.h5"
if $PY - "$T/cur.h5" <<'PY' >"$T/log" 2>&1
import sys, h5py, numpy as np
rng = np.random.default_rng(1)
with h5py.File(sys.argv[1], "r+") as f:
    cols = {}
    f["steps"].visititems(lambda n, o: cols.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
    n = len(cols["step"])
    for k, d in cols.items():
        old = d[:]
        d.resize((n + 4,))
        d[n:] = np.arange(9, 13) if k == "step" else old[8:12]
    r = f.create_group("resumes"); r.attrs["kind"] = "table"
    r["time"], r["step"], r["rows/steps"] = np.array([0.0]), np.array([9.0]), np.array([float(n)])
    e = f.create_group("epochs"); e.attrs["kind"] = "table"
    e["epoch"], e["loss"] = np.arange(1.0, 4.0), np.array([0.69, 0.6, 0.55])
    for k in (1, 2, 3):
        pv = rng.beta(1.2, 8, 500) * 0.25
        sel = np.zeros(500, np.uint8); sel[np.argsort(pv)[-50:]] = 1
        f[f"curriculum/epoch_{k}/pvar"], f[f"curriculum/epoch_{k}/selected"] = pv, sel
        f[f"curriculum/epoch_{k}/grad_norm"] = pv * 10
PY
then
    $PY analysis/report.py "$T/cur.h5" -o "$T/rep2" >"$T/log" 2>&1 || { bad "report.py on a curriculum run"; cat "$T/log"; }
    c=$(ls "$T/rep2"/curriculum-*.png 2>/dev/null | head -1)
    [ -n "$c" ] && png "$c" && png "$T/rep2/table-epochs.png" && grep -q "^## Curriculum" "$T/rep2/report.md" \
        && ok "curriculum: PVar histograms and /epochs plotted" || { bad "curriculum figures"; ls "$T/rep2"; }
    grep -q "12 logged (step 1 to 12); 1 resume(s), 4 superseded row(s) dropped" "$T/rep2/report.md" \
        && ok "resume: superseded rows dropped" || { bad "resume dedupe"; grep "logged" "$T/rep2/report.md"; }
else
    bad "making the curriculum run log"; cat "$T/log"
fi

# errors: exit 1 with the file named
echo "not hdf5" >"$T/junk.h5"
$PY analysis/report.py "$T/junk.h5" -o "$T/rep3" >"$T/out" 2>"$T/err"; rc=$?
[ "$rc" = 1 ] && grep -q "$T/junk.h5: not an HDF5 file" "$T/err" && ok "non-HDF5 file: exit 1, file named" \
    || { bad "non-HDF5 file: rc=$rc"; cat "$T/err"; }
$PY analysis/report.py "$T/dpo/run.h5" "$T/nope.h5" -o "$T/rep3" >"$T/out" 2>"$T/err"; rc=$?
[ "$rc" = 1 ] && grep -q "$T/nope.h5: no such file" "$T/err" && ok "missing file: exit 1, file named" \
    || { bad "missing file: rc=$rc"; cat "$T/err"; }
$PY analysis/report.py "$T/eval.h5" -o "$T/rep3" >"$T/out" 2>"$T/err"; rc=$?
[ "$rc" = 1 ] && grep -q "$T/eval.h5: not a prefer run log" "$T/err" && ok "eval file as a run log: exit 1" \
    || { bad "eval file as run log: rc=$rc"; cat "$T/err"; }
$PY analysis/report.py --help >"$T/out" 2>&1 && grep -q "displacement" "$T/out" && ok "report.py --help" || bad "report.py --help"
echo "analysis: $fails failure(s)"
[ "$fails" -eq 0 ]

#!/bin/sh
# prefer dynamics: a 2 x 2 grid on the 3 x 3 cyclic P writes a prefer.dynamics file (checked
# with h5py) in which the point below the boundary alpha^2 + a^2 (beta lambda)^2 / 3 = 1
# converged to the uniform policy and the point above it oscillates, with a saved trajectory;
# the same at 2 ranks (identical results); the transitive family at alpha = 1 collapses onto
# class 0; P from a text file and from an HDF5 file (/P) gives the built-in results bit for
# bit; analysis/phase.py draws the diagram (a PNG) with extra CSV points and prints the table;
# malformed keys, P files and CSVs are refused with the key, file or line named.
set -u
P="${BIN:-bin}/prefer"
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T=$(mktemp -d "${TMPDIR:-/tmp}/prefer-dynamics.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
have_py=0
"$PY" -c 'import h5py, numpy, matplotlib' 2>/dev/null && have_py=1
# a real PNG: the 8-byte signature and more than 5 KB
png() {
    [ -f "$1" ] || return 1
    [ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" = 89504e470d0a1a0a ] || return 1
    [ "$(wc -c <"$1")" -gt 5120 ]
}
# dataset $2 of file $1 at full precision, without the header line that names the file
dump() { h5dump -m %.17g -d "$2" "$1" | tail -n +2; }
# the command must fail, and its output must contain every further argument (fixed strings)
refused() {
    what=$1; shift
    log=$1; shift
    if [ "$(cat "$log.rc")" -eq 0 ]; then bad "$what: accepted"; return; fi
    for s in "$@"; do
        grep -qF -- "$s" "$log" || { bad "$what: message lacks '$s'"; cat "$log"; return; }
    done
    ok "$what: refused, naming $*"
}
run() { # run LOG ARGS...: prefer with the args, output in LOG, exit code in LOG.rc
    log=$1; shift
    "$P" "$@" >"$log" 2>&1
    echo $? >"$log.rc"
}

"$P" dynamics --help >"$T/h" 2>&1 && grep -q "usage: prefer dynamics" "$T/h" && ok "dynamics --help" || bad "dynamics --help"

# ---- cyclic, a = 1/2: (alpha 0.2, beta 1) has radius 0.35 < 1; (0.2, 5) has radius 1.46 > 1
C="--set dynamics.family=cyclic --set dynamics.alpha=0.2,0.9 --set dynamics.beta=1,5 --set dynamics.lambda=1 \
   --set dynamics.rounds=2000 --set dynamics.window=200 --set dynamics.trajectories=0.2,5,1"
# shellcheck disable=SC2086
run "$T/c.log" dynamics $C --set dynamics.out="$T/c.h5"
[ "$(cat "$T/c.log.rc")" -eq 0 ] && [ -f "$T/c.h5" ] && ok "dynamics cyclic 2 x 2 grid" || { bad "dynamics cyclic"; cat "$T/c.log"; }
grep -q "theory and simulation agree at 4 of 4 points" "$T/c.log" && grep -q "^ alpha .*contraction .*outcome" "$T/c.log" \
    && ok "table and agreement printed" || { bad "table / agreement line"; cat "$T/c.log"; }
[ ! -e "$T/c.h5.tmp" ] && ok "no .tmp left" || bad "c.h5.tmp left behind"
if [ $have_py -eq 1 ]; then
    if "$PY" - "$T/c.h5" >"$T/py.log" 2>&1 <<'EOF'; then ok "h5py: format, shapes, outcomes, uniform fixed point, trajectory"; else bad "h5py checks"; cat "$T/py.log"; fi
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
a = f.attrs
assert a["format"] == "prefer.dynamics" and int(a["version"]) == 1, dict(a)
assert a["producer"].startswith("prefer ") and "dynamics" in a["config"]
assert int(a["n_points"]) == 4 and int(a["n"]) == 3 and a["family"] == "cyclic"
assert abs(float(a["norm"]) - 0.5 * 3 ** 0.5) < 1e-13
assert f["P"].shape == (3, 3) and f["results/final_pi"].shape == (4, 3)
al, be = f["grid/alpha"][:], f["grid/beta"][:]
assert list(al) == [0.2, 0.2, 0.9, 0.9] and list(be) == [1, 5, 1, 5], (al, be)
out, reg = f["results/outcome"][:], f["results/regime"][:]
rad, con = f["results/radius"][:], f["results/contraction"][:]
assert np.allclose(rad, np.sqrt(al ** 2 + 0.25 * be ** 2 / 3), atol=1e-14)
assert np.allclose(con, al + be / 2 * 0.5 * 3 ** 0.5, atol=1e-14)
# (0.2, 1): contraction 0.63 -> converged to uniform; (0.2, 5): radius 1.46 -> oscillating
assert reg[0] == 0 and out[0] == 0 and f["results/converged"][0] == 1, (reg, out)
assert np.allclose(f["results/final_pi"][0], 1 / 3, atol=1e-9)
assert reg[1] == 2 and out[1] == 1 and f["results/cycle_strength"][1] > 1e-3, (reg, out)
# (0.9, 1): radius 0.93 -> converges (slowly); (0.9, 5): oscillates
assert out[2] == 0 and out[3] == 1, out
t, ta = f["trajectories/0/pi"], f["trajectories/0"].attrs
assert t.shape == (2001, 3) and ta["alpha"] == 0.2 and ta["beta"] == 5 and ta["outcome"] == "oscillating"
assert np.allclose(t[:].sum(1), 1, atol=1e-12)
assert np.allclose(t[-1], f["results/final_pi"][1], atol=0, rtol=0)
EOF
else
    echo "skip: $PY lacks h5py, numpy or matplotlib (h5py checks, phase.py)"
fi

# ---- 2 ranks: the same results
if command -v mpirun >/dev/null; then
    # shellcheck disable=SC2086
    mpirun -np 2 "$P" dynamics $C --set dynamics.out="$T/c2.h5" >"$T/c2.log" 2>&1 && grep -q "; 2 ranks" "$T/c2.log" \
        && ok "dynamics at 2 ranks" || { bad "dynamics at 2 ranks"; cat "$T/c2.log"; }
    same=1
    for d in /results/entropy /results/cycle_strength /results/max_step /results/outcome /results/final_pi /results/radius \
        /trajectories/0/pi; do
        dump "$T/c.h5" $d >"$T/d1"
        dump "$T/c2.h5" $d >"$T/d2" 2>&1
        [ -s "$T/d1" ] && cmp -s "$T/d1" "$T/d2" || { same=0; bad "$d differs at 1 and 2 ranks"; diff "$T/d1" "$T/d2" | head; }
    done
    [ $same -eq 1 ] && ok "1 rank = 2 ranks (every result, bit for bit)"
else
    echo "skip: no mpirun (1 rank = 2 ranks)"
fi

# ---- transitive at alpha = 1: collapse onto class 0 (the best)
run "$T/t.log" dynamics --set dynamics.family=transitive --set dynamics.n=4 --set dynamics.alpha=0,1 \
    --set dynamics.beta=2 --set dynamics.lambda=1 --set dynamics.rounds=1000 --set dynamics.window=100 \
    --set dynamics.out="$T/t.h5"
[ "$(cat "$T/t.log.rc")" -eq 0 ] && grep -Eq "^ 1.000 .* collapse +collapsed +0.0000 " "$T/t.log" \
    && grep -Eq "^ 0.000 .* contraction +converged " "$T/t.log" \
    && ok "transitive: alpha = 1 collapsed, alpha = 0 converged" || { bad "transitive"; cat "$T/t.log"; }
[ "$(dump "$T/t.h5" /results/argmax | grep -c '): 0,*$')" -eq 2 ] && ok "transitive: mass on class 0" || { bad "argmax"; dump "$T/t.h5" /results/argmax; }

# ---- P from a text file and from an HDF5 file: the cyclic results, bit for bit
printf '# rock-paper-scissors, a = 1/2\n0.5 1 0\n0, 0.5, 1\n1 0 0.5   # scissors\n\n' >"$T/P.txt"
F="--set dynamics.alpha=0.2,0.9 --set dynamics.beta=1,5 --set dynamics.lambda=1 --set dynamics.rounds=2000 \
   --set dynamics.window=200 --set dynamics.family=file"
# shellcheck disable=SC2086
run "$T/f.log" dynamics $F --set dynamics.p_file="$T/P.txt" --set dynamics.out="$T/f.h5"
# shellcheck disable=SC2086
run "$T/g.log" dynamics $F --set dynamics.p_file="$T/c.h5" --set dynamics.out="$T/g.h5"
for x in f g; do
    [ "$(cat "$T/$x.log.rc")" -eq 0 ] || { bad "p_file run $x"; cat "$T/$x.log"; continue; }
    same=1
    for d in /P /results/cycle_strength /results/final_pi /results/outcome; do
        dump "$T/c.h5" $d >"$T/d1"
        dump "$T/$x.h5" $d >"$T/d2" 2>&1
        cmp -s "$T/d1" "$T/d2" || { same=0; bad "p_file ($x): $d differs from the built-in cyclic"; }
    done
    [ $same -eq 1 ] && ok "P from $( [ $x = f ] && echo text || echo HDF5 ) = built-in cyclic"
done

# ---- phase.py
if [ $have_py -eq 1 ]; then
    printf 'alpha,beta_lambda,label,outcome,family\n0.5,1,stable,converged,cyclic\n0.5,5,cycle,oscillating,cyclic\n0.95,2,top,collapse,transitive\n' >"$T/pts.csv"
    $PY analysis/phase.py "$T/c.h5" "$T/t.h5" --points "$T/pts.csv" -o "$T/phase.png" --table >"$T/p.log" 2>&1 \
        && png "$T/phase.png" && grep -q "wrote $T/phase.png (2 panels, 3 extra points)" "$T/p.log" \
        && grep -q "^| 0.2 | Cc | Oo |$" "$T/p.log" && ok "phase.py: PNG and table" || { bad "phase.py"; cat "$T/p.log"; }
    $PY analysis/phase.py "$T/c.h5" --color entropy -o "$T/phase2.png" >"$T/p2.log" 2>&1 && png "$T/phase2.png" \
        && ok "phase.py --color entropy" || { bad "phase.py --color entropy"; cat "$T/p2.log"; }
    printf 'alpha,beta_lambda,label,outcome\n0.5,1,x,wobbly\n' >"$T/bad.csv"
    $PY analysis/phase.py "$T/c.h5" --points "$T/bad.csv" -o "$T/x.png" >"$T/e" 2>&1; echo $? >"$T/e.rc"
    refused "phase.py bad CSV outcome" "$T/e" "$T/bad.csv" "line 2" "wobbly"
    printf 'alpha,label\n' >"$T/bad2.csv"
    $PY analysis/phase.py "$T/c.h5" --points "$T/bad2.csv" -o "$T/x.png" >"$T/e" 2>&1; echo $? >"$T/e.rc"
    refused "phase.py CSV without columns" "$T/e" "$T/bad2.csv" "beta_lambda"
    $PY analysis/phase.py "$T/P.txt" -o "$T/x.png" >"$T/e" 2>&1; echo $? >"$T/e.rc"
    refused "phase.py on a text file" "$T/e" "$T/P.txt" "not an HDF5 file"
    "$P" synth --set synth.out="$T/s.h5" --set synth.sft_out= --set synth.heldout_out= --set synth.n_prompts=4 \
        >/dev/null 2>&1
    $PY analysis/phase.py "$T/s.h5" -o "$T/x.png" >"$T/e" 2>&1; echo $? >"$T/e.rc"
    refused "phase.py on a prefdata file" "$T/e" "$T/s.h5" "prefer.prefdata" "prefer.dynamics"
fi

# ---- errors name the key, the file or the line
run "$T/e" dynamics --set dynamics.alpha=0.2,abc --set dynamics.out="$T/x.h5"
refused "bad alpha list" "$T/e" "dynamics.alpha" "'abc' is not a number"
run "$T/e" dynamics --set dynamics.alpha=0:1.5:4 --set dynamics.out="$T/x.h5"
refused "alpha out of range" "$T/e" "dynamics.alpha" "outside [0, 1]"
run "$T/e" dynamics --set dynamics.beta=1:2 --set dynamics.out="$T/x.h5"
refused "bad range" "$T/e" "dynamics.beta" "lo:hi:count"
run "$T/e" dynamics --set dynamics.window=500 --set dynamics.rounds=100 --set dynamics.out="$T/x.h5"
refused "window > rounds" "$T/e" "dynamics.window" "dynamics.rounds"
run "$T/e" dynamics --set dynamics.pi0=1,2 --set dynamics.out="$T/x.h5"
refused "pi0 of the wrong length" "$T/e" "dynamics.pi0" "2 weights for 3 classes"
run "$T/e" dynamics --set dynamics.family=cyclic --set dynamics.n=2 --set dynamics.out="$T/x.h5"
refused "cyclic n = 2" "$T/e" "dynamics.n >= 3"
run "$T/e" dynamics --set dynamics.famliy=cyclic
refused "misspelt key" "$T/e" "famliy"
printf 'dynamics: {\n  alpha = "0.1, 0.2,";\n  out = "%s";\n};\n' "$T/x.h5" >"$T/bad.cfg"
run "$T/e" dynamics "$T/bad.cfg"
refused "empty list item in a config file" "$T/e" "dynamics.alpha" "$T/bad.cfg"
printf '0.5 0.7 0.2\n0.3 0.5\n' >"$T/ragged.txt"
run "$T/e" dynamics --set dynamics.family=file --set dynamics.p_file="$T/ragged.txt" --set dynamics.out="$T/x.h5"
refused "ragged P file" "$T/e" "$T/ragged.txt" "line 2"
printf '0.5 0.7\n0.4 0.5\n' >"$T/asym.txt"
run "$T/e" dynamics --set dynamics.family=file --set dynamics.p_file="$T/asym.txt" --set dynamics.out="$T/x.h5"
refused "P + P^T != 1" "$T/e" "$T/asym.txt" "P[0][1] + P[1][0]"
printf '0.5 x\n0.5 0.5\n' >"$T/nan.txt"
run "$T/e" dynamics --set dynamics.family=file --set dynamics.p_file="$T/nan.txt" --set dynamics.out="$T/x.h5"
refused "non-number in P file" "$T/e" "$T/nan.txt" "line 1" "'x'"
run "$T/e" dynamics --set dynamics.family=file --set dynamics.p_file="$T/none.txt" --set dynamics.out="$T/x.h5"
refused "missing P file" "$T/e" "$T/none.txt" "cannot open"
run "$T/e" dynamics --set dynamics.family=file --set dynamics.p_file="$T/t.h5.nope" --set dynamics.out="$T/x.h5"
refused "missing P file (2)" "$T/e" "dynamics.p_file"
if [ -f "$T/s.h5" ]; then
    run "$T/e" dynamics --set dynamics.family=file --set dynamics.p_file="$T/s.h5" --set dynamics.out="$T/x.h5"
    refused "HDF5 without /P" "$T/e" "$T/s.h5" "/P"
fi
[ ! -e "$T/x.h5" ] && ok "no results file after the errors" || bad "x.h5 written by a failed run"

echo "dynamics: $fails failure(s)"
[ "$fails" -eq 0 ]

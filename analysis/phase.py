#!/usr/bin/python3
"""phase.py: the phase diagram of iterative alignment from `prefer dynamics` results files
(dynamics.out, format prefer.dynamics; docs/dynamics.md).

One panel per file: each grid point at (beta * lambda, alpha), coloured by its cycle strength
(log10, the default) or its final entropy, its marker the simulated outcome (o converged,
^ oscillating, s collapsed, D undecided). Overlaid: the contraction line
alpha + (beta lambda / 2) ||P - 11^T/2||_2 = 1 (stable below it, for any P) and, for the
cyclic family with uniform pi_0 and pi_ref, the boundary of linear stability of the uniform
policy, alpha^2 + a^2 (beta lambda)^2 / 3 = 1 for n = 3 (in general
alpha^2 + (beta lambda a max_k 2|sin(2 pi k/n)| / n)^2 = 1); for the transitive family the
line alpha = 1, where the policy collapses onto the best class.

--points CSV adds points measured elsewhere (e.g. `prefer iterate` on the transformer), one
per row, with the columns alpha, beta_lambda, label, outcome (converged | oscillating |
collapsed | undecided; also stable, oscillation, collapse), drawn large with a black edge and
their label; an optional column `family` (cyclic | transitive) puts a row only on the panels
of that family.

    analysis/phase.py DYN.h5 [DYN.h5 ...] -o phase.png [--color cycle|entropy] [--lambda L]
                      [--points runs.csv] [--table]

--table prints, per file, a Markdown table: rows alpha, columns beta*lambda, each cell the
theory's regime letter and the outcome letter (as `prefer dynamics` prints its phase map).
The functions read_dynamics() and plot_phase() can be imported (report.py).

Headless (matplotlib Agg). Needs Debian's python3-h5py, python3-numpy, python3-matplotlib.
Exits 1, naming the file, for a missing file, one of another format, or a malformed CSV.
"""
import argparse
import csv
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prefer_h5 as ph  # noqa: E402
from prefer_h5 import np  # noqa: E402

OUTCOMES = ("converged", "oscillating", "collapsed", "undecided")
REGIMES = ("contraction", "stable", "oscillation", "collapse", "unknown")
MARKERS = {"converged": "o", "oscillating": "^", "collapsed": "s", "undecided": "D"}
SYNONYMS = {"stable": "converged", "convergent": "converged", "oscillation": "oscillating", "cycle": "oscillating",
            "cycling": "oscillating", "collapse": "collapsed", "unknown": "undecided", "slow": "undecided"}
REGIME_LETTER = "CSOX?"
OUTCOME_LETTER = "co.?"


def select_lambda(data, lam):
    """Keep, in each file read by read_dynamics, only the grid points with lambda = lam."""
    for d in data:
        sel = np.isclose(d["lambda"], lam)
        if not np.any(sel):
            ph.fail(d["path"], f"no grid point with lambda = {lam:g}")
        for k in ("alpha", "beta", "lambda", "bl", "outcome", "cycle_strength", "entropy", "regime"):
            d[k] = d[k][sel]


def read_dynamics(path):
    """One results file as a dict of numpy arrays and attributes; exits 1 on a bad file."""
    with ph.open_prefer(path, "prefer.dynamics") as f:
        ver = int(f.attrs.get("version", 0))
        if ver > 1:
            ph.fail(path, f"prefer.dynamics version {ver} is newer than this script reads (1): update prefer")
        need = ["grid/alpha", "grid/beta", "grid/lambda", "results/outcome", "results/cycle_strength",
                "results/entropy", "results/regime", "P"]
        missing = [k for k in need if k not in f]
        if missing:
            ph.fail(path, f"prefer.dynamics file without {', '.join('/' + m for m in missing)}")
        d = {k.split("/")[-1]: np.asarray(f[k][()]) for k in need}
        for k in ("contraction", "radius", "converged", "max_step"):
            if f"results/{k}" in f:
                d[k] = np.asarray(f[f"results/{k}"][()])
        a = f.attrs
        d["family"] = ph.as_str(a.get("family"), "?")
        d["n"] = int(a.get("n", d["P"].shape[0]))
        d["norm"] = float(a["norm"]) if "norm" in a else float(np.linalg.norm(d["P"] - 0.5, 2))
        d["advantage"] = float(a["advantage"]) if "advantage" in a else None
        d["cyclic_uniform"] = int(a.get("cyclic_uniform", 0))
        d["rounds"] = int(a.get("rounds", 0))
        d["path"] = path
    d["bl"] = d["beta"] * d["lambda"]
    return d


def read_points(path):
    """Rows of the --points CSV as dicts (alpha, bl floats, label, outcome, family or None)."""
    if not os.path.exists(path):
        ph.fail(path, "no such file")
    rows = []
    with open(path, newline="") as fh:
        r = csv.DictReader(fh)
        cols = [c.strip() for c in (r.fieldnames or [])]
        need = ("alpha", "beta_lambda", "label", "outcome")
        if any(c not in cols for c in need):
            ph.fail(path, f"want the CSV columns {', '.join(need)} (got {', '.join(cols) or 'none'})")
        for i, row in enumerate(r, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            try:
                al, bl = float(row["alpha"]), float(row["beta_lambda"])
            except ValueError:
                ph.fail(path, f"line {i}: alpha and beta_lambda must be numbers")
            out = SYNONYMS.get(row["outcome"].lower(), row["outcome"].lower())
            if out not in OUTCOMES:
                ph.fail(path, f"line {i}: outcome {row['outcome']!r} is not one of {', '.join(OUTCOMES)}")
            rows.append(dict(alpha=al, bl=bl, label=row["label"], outcome=out,
                             family=row.get("family", "").lower() or None))
    return rows


def cyclic_coef(n, a):
    """c with the cyclic boundary alpha^2 + c^2 (beta lambda)^2 = 1 (n = 3: c^2 = a^2 / 3)."""
    return a * max(2 * abs(math.sin(2 * math.pi * k / n)) for k in range(1, n)) / n


def plot_phase(ax, d, color="cycle", points=None, fig=None):
    """One phase diagram on ax from read_dynamics(); points from read_points() or None."""
    x, y = d["bl"], d["alpha"]
    if color == "entropy":
        c, clabel, cmap = d["entropy"], "final entropy (nats)", "viridis"
        vmin, vmax = 0.0, math.log(d["n"])
    else:
        c = np.log10(np.maximum(d["cycle_strength"], 1e-12))
        clabel, cmap, vmin, vmax = "log10 cycle strength", "magma", -12.0, max(-1.0, float(np.max(c)))
    sc = None
    for k, name in enumerate(OUTCOMES):
        sel = d["outcome"] == k
        if np.any(sel):
            sc = ax.scatter(x[sel], y[sel], c=c[sel], cmap=cmap, vmin=vmin, vmax=vmax, marker=MARKERS[name], s=46,
                            edgecolors="0.3", linewidths=0.4)
            # a grey stand-in for the legend: the points' own colours are the data
            ax.scatter([], [], c="0.6", marker=MARKERS[name], s=46, edgecolors="0.3", linewidths=0.4,
                       label=f"{name} ({int(np.sum(sel))})")
    if sc is not None and fig is not None:
        fig.colorbar(sc, ax=ax, label=clabel)
    xmax = float(np.max(x)) * 1.05 if np.max(x) > 0 else 1.0
    xs = np.linspace(0, xmax, 400)
    if d["norm"] > 0:
        ax.plot(xs, 1 - xs * d["norm"] / 2, "c--", lw=1.5,
                label=f"contraction = 1: alpha + (beta lambda/2) {d['norm']:.3g} = 1")
    if d["family"] == "cyclic" and d["cyclic_uniform"] and d["advantage"] is not None:
        cc = cyclic_coef(d["n"], d["advantage"])
        xe = xs[cc * xs < 1]
        if cc * xmax >= 1:  # end exactly where the boundary meets alpha = 0
            xe = np.append(xe, 1 / cc)
        lab = (f"alpha^2 + a^2 (beta lambda)^2 / 3 = 1 (a = {d['advantage']:g})" if d["n"] == 3
               else f"linear stability of uniform, n = {d['n']}")
        ax.plot(xe, np.sqrt(np.maximum(1 - (cc * xe) ** 2, 0)), "g-", lw=2, label=lab)
    if d["family"] == "transitive":
        ax.axhline(1.0, color="r", ls=":", lw=1.5, label="alpha = 1: collapse onto the best class")
    if points:
        for p in points:
            if p["family"] and p["family"] != d["family"]:
                continue
            ax.scatter([p["bl"]], [p["alpha"]], marker=MARKERS[p["outcome"]], s=160, facecolors="none",
                       edgecolors="k", linewidths=2)
            ax.annotate(p["label"], (p["bl"], p["alpha"]), textcoords="offset points", xytext=(6, 6), fontsize=8)
        ax.scatter([], [], marker="o", s=120, facecolors="none", edgecolors="k", linewidths=2,
                   label="transformer runs (--points)")
    ax.set_xlim(0, xmax)
    ax.set_ylim(min(0.0, float(np.min(y))) - 0.03, 1.05)
    ax.set_xlabel("beta * lambda")
    ax.set_ylabel("alpha (weight of pi_t in the reference)")
    extra = f", a = {d['advantage']:g}" if d["advantage"] is not None else ""
    ax.set_title(f"{d['family']} P, n = {d['n']}{extra}, {d['rounds']} rounds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)


def phase_table(d):
    """Markdown lines: rows alpha (descending), columns beta*lambda, cells regime+outcome."""
    xs = sorted(set(np.round(d["bl"], 10)))
    ys = sorted(set(np.round(d["alpha"], 10)), reverse=True)
    cell = {}
    for i in range(len(d["bl"])):
        key = (round(float(d["alpha"][i]), 10), round(float(d["bl"][i]), 10))
        cell.setdefault(key, []).append(REGIME_LETTER[int(d["regime"][i])] + OUTCOME_LETTER[int(d["outcome"][i])])
    lines = ["| alpha \\ beta*lambda | " + " | ".join(f"{v:g}" for v in xs) + " |",
             "|---|" + "---|" * len(xs)]
    for yv in ys:
        lines.append(f"| {yv:g} | " + " | ".join(" ".join(cell.get((yv, xv), ["-"])) for xv in xs) + " |")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="prefer dynamics results files (dynamics.out)")
    ap.add_argument("-o", "--out", default="phase.png", help="PNG to write (default phase.png)")
    ap.add_argument("--color", choices=("cycle", "entropy"), default="cycle", help="colour of the grid points")
    ap.add_argument("--lambda", dest="lam", type=float, default=None, help="only grid points with this lambda")
    ap.add_argument("--points", default=None, help="CSV of extra points: alpha,beta_lambda,label,outcome[,family]")
    ap.add_argument("--table", action="store_true", help="print each file's phase map as a Markdown table")
    args = ap.parse_args()

    data = [read_dynamics(p) for p in args.files]
    if args.lam is not None:
        select_lambda(data, args.lam)
    points = read_points(args.points) if args.points else None
    plt = ph.use_agg()
    fig, axes = plt.subplots(1, len(data), figsize=(6.6 * len(data), 6.4), squeeze=False)
    for ax, d in zip(axes[0], data):
        plot_phase(ax, d, args.color, points, fig)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"phase.py: wrote {args.out} ({len(data)} panel{'s' if len(data) > 1 else ''}"
          f"{f', {len(points)} extra points' if points else ''})")
    if args.table:
        for d in data:
            print(f"\n{d['path']}: {d['family']}, theory (C contraction, S stable, O oscillation, X collapse, "
                  "? none) + outcome (c converged, o oscillating, . collapsed, ? undecided)\n")
            print("\n".join(phase_table(d)))


if __name__ == "__main__":
    main()

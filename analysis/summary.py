#!/usr/bin/python3
"""summary.py: a quick terminal look at a prefer run log (out_dir/run.h5, format prefer.runlog).

Prints the run's attributes (objective, commit, world size, ...), the last row of /steps and
each column's min / mean / max over the logged steps (NaN = not logged is ignored). Rows
superseded by a resume are dropped first: the last occurrence of each step wins.

    analysis/summary.py RUN.h5 [--table steps] [--all-attrs]

Needs Debian's python3-h5py and python3-numpy. Exits 1, naming the file, for a missing file
or one that is not a prefer run log.
"""
import argparse
import datetime

import prefer_h5 as ph
from prefer_h5 import np


def fmt(v):
    if v is None or not np.isfinite(v):
        return "-"
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v)}"
    return f"{v:.6g}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", metavar="RUN.h5", help="a run log (train.out_dir/run.h5)")
    ap.add_argument("--table", default="steps", help="which table to summarise (default steps; e.g. epochs)")
    ap.add_argument("--all-attrs", action="store_true", help="print every root attribute, the config included")
    args = ap.parse_args()

    with ph.open_prefer(args.run, "prefer.runlog",
                        hints={"prefer.eval": "for eval results use analysis/frontier.py --table"}) as f:
        attrs = {k: f.attrs[k] for k in f.attrs}
        avail = ph.tables(f)
        cols, dropped = ph.read_table(f, args.table)
        resumes = len(f["resumes/step"]) if "resumes/step" in f else 0

    print(f"{args.run}: {ph.run_label(args.run, attrs)}")
    for k in sorted(attrs):
        if k == "config" and not args.all_attrs:
            continue
        v = attrs[k]
        s = ph.as_str(v)
        if k.endswith("_time") or k in ("resumed_at", "preempted_at"):
            try:
                s += "  (" + datetime.datetime.fromtimestamp(float(v), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") + ")"
            except (TypeError, ValueError, OverflowError, OSError):
                pass
        if "\n" in s:
            s = "\n    " + s.replace("\n", "\n    ")
        print(f"  {k:16s} {s}")
    print(f"  tables           {', '.join('/' + t for t in avail) or 'none'}")
    if not cols:
        print(f"/{args.table}: no rows" + ("" if args.table in avail else " (no such table)"))
        return
    n = len(next(iter(cols.values())))
    key = ph.key_column(args.table, cols)
    extra = []
    if resumes:
        extra.append(f"{resumes} resume(s)")
    if dropped:
        extra.append(f"{dropped} superseded row(s) dropped")
    span = f", {key} {fmt(cols[key][0])} to {fmt(cols[key][-1])}" if key and n else ""
    print(f"/{args.table}: {n} rows{span}" + (f" ({', '.join(extra)})" if extra else ""))
    if n == 0:
        return
    w = max(len(c) for c in cols) + 2
    print(f"  {'column':{w}s} {'last':>12s} {'min':>12s} {'mean':>12s} {'max':>12s} {'logged':>7s}")
    for c, v in cols.items():
        ok = np.isfinite(v)
        if ok.any():
            lo, mean, hi = np.min(v[ok]), np.mean(v[ok]), np.max(v[ok])
        else:
            lo = mean = hi = float("nan")
        print(f"  {c:{w}s} {fmt(v[-1]):>12s} {fmt(lo):>12s} {fmt(mean):>12s} {fmt(hi):>12s} {int(ok.sum()):>7d}")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""frontier.py: the reward/KL frontier plot of the DPO paper (Fig. 2 left) from `prefer eval`
results files (eval.out, format prefer.eval).

Each file is one policy: a point at (KL(policy || reference), mean true reward), labelled by
the policy's objective and beta (read from the config stored in its checkpoint). The curve is
the exact KL-regularised optimum on the same held-out prompts (synthetic task), from the
first file that has one; the reference sits at KL 0.

    analysis/frontier.py EVAL.h5 [EVAL.h5 ...] -o frontier.png [--table]

Headless (matplotlib Agg). Needs Debian's python3-h5py, python3-numpy, python3-matplotlib.
Exits 1, naming the file, for a missing file or one that is not a prefer eval results file.
"""
import argparse

import prefer_h5 as ph


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="prefer eval results files (eval.out)")
    ap.add_argument("-o", "--out", default="frontier.png", help="PNG to write (default frontier.png)")
    ap.add_argument("--table", action="store_true", help="also print the points as a Markdown table")
    args = ap.parse_args()

    evals = [ph.read_eval(p) for p in args.files]
    plt = ph.use_agg()
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ph.plot_frontier(ax, evals)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"frontier.py: wrote {args.out} ({len(evals)} policies)")
    if args.table:
        print("\n".join(ph.frontier_table(evals)))


if __name__ == "__main__":
    main()

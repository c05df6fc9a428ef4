#!/usr/bin/python3
"""frontier.py: the reward/KL frontier plot of the DPO paper (Fig. 2 left) from `prefer eval`
results files (eval.out, format prefer.eval).

Each file is one policy: a point at (KL(policy || reference), mean true reward), labelled by
the policy's objective and beta (read from the config stored in its checkpoint). The curve is
the exact KL-regularised optimum on the same held-out prompts (synthetic task), from the
first file that has one; the reference sits at KL 0.

    analysis/frontier.py EVAL.h5 [EVAL.h5 ...] -o frontier.png [--table]

Headless (matplotlib Agg). Needs Debian's python3-h5py, python3-numpy, python3-matplotlib.
"""
import argparse
import re
import sys

import h5py
import numpy as np


def policy_label(attrs):
    cfg = attrs.get("policy_config", "")
    if isinstance(cfg, bytes):
        cfg = cfg.decode()
    obj = re.search(r'objective\s*=\s*"([^"]*)"', cfg)
    beta = re.search(r"\bbeta\s*=\s*([0-9.eE+-]+)", cfg)
    name = obj.group(1) if obj else "?"
    if name == "sft":
        return "reference (SFT)"
    return f"{name} beta={float(beta.group(1)):g}" if beta else name


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="prefer eval results files (eval.out)")
    ap.add_argument("-o", "--out", default="frontier.png", help="PNG to write (default frontier.png)")
    ap.add_argument("--table", action="store_true", help="also print the points as a Markdown table")
    args = ap.parse_args()

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, curve = [], None
    for path in args.files:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format", b"")
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            if fmt != "prefer.eval":
                sys.exit(f"frontier.py: {path}: not a prefer eval results file (format {fmt!r})")
            a = dict(f.attrs)
            rows.append((policy_label(a), float(a["kl"]), float(a["reward"]), float(a["reward_se"]),
                         float(a["reward_ref"]), float(a.get("optimum_reward", np.nan)), path))
            if curve is None and "frontier" in f:
                curve = (f["frontier/kl"][:], f["frontier/reward"][:])
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    if curve is not None:
        ax.plot(curve[0], curve[1], "k-", lw=1.5, label="exact optimum: teacher x exp(r/beta), normalised")
    ax.axhline(rows[0][4], color="gray", ls=":", lw=1, label="reference samples")
    for label, kl, r, se, _, _, _ in sorted(rows, key=lambda t: t[1]):
        ax.errorbar([kl], [r], yerr=[se], fmt="o", capsize=3, label=label)
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("KL(policy || reference), nats per response")
    ax.set_ylabel("mean true reward (held-out prompts)")
    ax.set_title("Reward vs KL on the synthetic task")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"frontier.py: wrote {args.out} ({len(rows)} policies)")
    if args.table:
        print("| policy | KL | reward | +- se | optimum at that KL |")
        print("|---|---|---|---|---|")
        for label, kl, r, se, _, opt, _ in sorted(rows, key=lambda t: t[1]):
            print(f"| {label} | {kl:.3f} | {r:.3f} | {se:.3f} | {opt:.3f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""report.py: plots and a Markdown report of one or more prefer training runs.

Reads run logs (out_dir/run.h5, format prefer.runlog) and, optionally, `prefer eval` results
files (eval.out, format prefer.eval), and writes into DIR:

  training.png       loss, rewards/accuracies, rewards/margins vs step (moving average)
  displacement.png   logps/chosen and logps/rejected vs step, and log pi - log pi_ref
                     (rewards / beta): both falling is likelihood displacement
  timing.png         shares of time/step in data, forward, backward, allreduce, other per
                     run, and tokens/s vs step
  frontier.png       with --eval: mean true reward vs KL(policy || reference), as frontier.py
  table-<name>.png   other run-log tables (e.g. /epochs): every column vs epoch
  curriculum-<run>.png        PVar histograms per epoch, the selected prompts marked
                              (/curriculum/epoch_<k>/pvar and .../selected)
  curriculum-stats-<run>.png  every other per-epoch curriculum dataset: median, quartiles
                              and the selected prompts' mean vs epoch
  report.md          the figures and a table per run: objective, steps, start -> end of loss,
                     accuracy, margin, logps (the displacement), tokens/s, time shares

Several runs are overlaid in one figure, labelled by objective and beta (from the run log's
objective and config attributes) or the run's directory name. Figures a run has no data for
are left out. Rows superseded by a resume are dropped: the last occurrence of each step wins.

    analysis/report.py RUN.h5 [RUN.h5 ...] [--eval EVAL.h5 ...] -o DIR [--smooth N]

Subcommands for the DID and iterative-alignment papers (docs/did.md, docs/iterate.md; each
has --help):

    analysis/report.py did DIR [DIR ...] -o OUT [--smooth N]
        DIR: scripts/did-experiment.sh's output directory or its run directories
        <chosen>-<rejected>-<n>/ (train.h5, dpo/run.h5, exact.h5). did-displacement.png:
        logps/chosen (solid) and logps/rejected (dashed) of dpo/run.h5 vs step, a colour per
        kind of DID data with its DID entropy (train.h5's did_entropy) in the legend, a panel
        per data size; did-kl.png: KL(pi || pi*) (exact.h5's mean_kl_opt, else the mean of
        /kl_opt) vs pairs per prompt, a line per kind, its did_kl_dpo_star (the DPO population
        optimum's KL) dashed. Prints a Markdown table.
    analysis/report.py iterate ITERATE.h5 [...] -o OUT [--window W] [--var-threshold V] [--collapse S]
        iterate.png: entropy_est, step_l1, reward_mean vs round (legend: oracle, objective,
        alpha, beta_tab, lambda); iterate-shares.png: class shares vs round, a panel per run.
        Prints each run's verdict.
    analysis/report.py phase DYN.h5 [...] --runs ITERATE.h5 [...] -o OUT [--color C] [--lambda L]
        phase.png: analysis/phase.py's phase diagram of `prefer dynamics` files, with each
        iterate run at (beta_tab * lambda, alpha) marked by its verdict (cyclic oracle on
        cyclic panels, bt on transitive ones); phase-points.csv (phase.py --points format).
        Prints "phase: RUN: ORACLE alpha A beta_tab*lambda X: VERDICT (...)" per run.

    Verdict of an iterate run, from the class shares share/<c> of its rounds table (rows
    pi_0 .. pi_R): over the last W rows (--window, default 5), the share variance is the mean
    over classes of the population variance of the class share (the cycle strength of
    `prefer dynamics`, on estimated shares). "oscillating" if it is above V (--var-threshold,
    default 0.005); else "collapsed" if the largest share of the last row is above S
    (--collapse, default 0.9); else "converged"; "undecided" with fewer than 2 rows. Shares
    are sample estimates (sampling variance <= 0.25 / (prompts x K)): keep V well above that.

Headless (matplotlib Agg). Needs Debian's python3-h5py, python3-numpy, python3-matplotlib.
Exits 1, naming the file, for a missing file or one that is not a prefer run log.
"""
import argparse
import datetime
import inspect
import math
import os
import re
import sys

import prefer_h5 as ph
from prefer_h5 import np

try:
    from matplotlib.ticker import MaxNLocator
except ImportError:  # reported by ph.use_agg() before any plotting
    MaxNLocator = None

TIME_PARTS = ("data", "forward", "backward", "allreduce")
TIME_COLORS = {"data": "#8c564b", "forward": "#1f77b4", "backward": "#ff7f0e", "allreduce": "#2ca02c",
               "other": "#c7c7c7"}


# ---------------------------------------------------------------- loading

class Run:
    pass


def epoch_number(name):
    m = re.search(r"(\d+)$", name)
    return int(m.group(1)) if m else None


def load_curriculum(f):
    """[(epoch, {dataset: array})] from /curriculum/epoch_<k>/..., sorted by epoch, and the
    names of other objects directly under /curriculum."""
    if "curriculum" not in f or not isinstance(f["curriculum"], ph.h5py.Group):
        return [], []
    epochs, other = [], []
    for name, obj in f["curriculum"].items():
        k = epoch_number(name)
        if isinstance(obj, ph.h5py.Group) and name.startswith("epoch") and k is not None:
            d = {}
            for dn, ds in obj.items():
                if isinstance(ds, ph.h5py.Dataset) and ds.dtype.kind in "fiub" and ds.ndim <= 1:
                    d[dn] = np.asarray(ds[()])
            epochs.append((k, d))
        else:
            other.append(name)
    epochs.sort(key=lambda t: t[0])
    return epochs, other


def load_run(path):
    r = Run()
    r.path = path
    with ph.open_prefer(path, "prefer.runlog",
                        hints={"prefer.eval": "pass eval results files with --eval"}) as f:
        r.attrs = {k: f.attrs[k] for k in f.attrs}
        r.steps, r.dropped = ph.read_table(f, "steps")
        r.n_resumes = len(f["resumes/step"]) if "resumes/step" in f else 0
        r.tables = {}
        for t in ph.tables(f):
            if t in ("steps", "resumes"):
                continue
            cols, _ = ph.read_table(f, t)
            if cols:
                r.tables[t] = cols
        r.curriculum, r.curriculum_other = load_curriculum(f)
    r.label = ph.run_label(path, r.attrs)
    r.objective, beta = ph.objective_parts(r.attrs.get("objective"), r.attrs.get("config"))
    r.beta = float(beta) if beta is not None else None
    r.n = len(r.steps.get("step", next(iter(r.steps.values()), [])))
    r.x = r.steps["step"] if "step" in r.steps else np.arange(1, r.n + 1, dtype=float)
    return r


def col(r, name):
    v = r.steps.get(name)
    if v is None or not np.any(np.isfinite(v)):
        return None
    return v


# ---------------------------------------------------------------- statistics

def window_stats(v, k, last):
    """Mean and standard error of the first (last=False) or last k finite values."""
    f = v[np.isfinite(v)]
    if len(f) == 0:
        return float("nan"), float("nan")
    w = f[-k:] if last else f[:k]
    se = float(np.std(w, ddof=1) / math.sqrt(len(w))) if len(w) > 1 else float("nan")
    return float(np.mean(w)), se


def warmup_rows(n):
    """Rows left out of timing statistics: the first steps pay one-off costs (page faults,
    thread start-up, caches) that can outweigh a short run's whole steady state."""
    return min(10, n // 10)


def time_shares(r):
    """{part: share of the summed time/step} over the steady-state rows, with 'other' the rest;
    None without timing columns."""
    step = col(r, "time/step")
    if step is None:
        return None
    s = slice(warmup_rows(r.n), None)
    ok = np.isfinite(step[s])
    total = float(np.sum(step[s][ok]))
    if total <= 0:
        return None
    shares = {}
    for p in TIME_PARTS:
        v = col(r, f"time/{p}")
        shares[p] = float(np.nansum(v[s][ok])) / total if v is not None else 0.0
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def displacement_verdict(dc, sc, dr, sr):
    """Words for the change of logps/chosen (dc +- sc) and logps/rejected (dr +- sr)."""
    def move(d, se):
        if not np.isfinite(d):
            return None
        if np.isfinite(se) and abs(d) < 2 * se:
            return 0
        return 1 if d > 0 else -1
    c, rj = move(dc, sc), move(dr, sr)
    if c is None or rj is None:
        return ""
    if c < 0 and rj < 0:
        return "both fall: likelihood displacement"
    if c < 0:
        return "chosen falls, rejected " + ("rises" if rj > 0 else "about unchanged") + ": displacement of the chosen response"
    if c > 0 and rj < 0:
        return "chosen rises, rejected falls"
    if c > 0 and rj > 0:
        return "both rise"
    if c > 0:
        return "chosen rises, rejected about unchanged"
    return "chosen about unchanged, rejected " + {1: "rises", -1: "falls", 0: "about unchanged"}[rj]


# ---------------------------------------------------------------- plotting helpers

def run_colors(runs):
    import matplotlib
    cmap = matplotlib.colormaps["tab10" if len(runs) <= 10 else "tab20"]
    return {id(r): cmap(i % cmap.N) for i, r in enumerate(runs)}


def legend_below(fig, handles, labels, ncol=None, extra_rows=0):
    """A figure legend under the axes (never over the data); returns the bottom margin to
    pass to tight_layout(rect=...)."""
    if not handles:
        return 0.0
    ncol = ncol or min(len(labels), 4)
    rows = math.ceil(len(labels) / ncol) + extra_rows
    h = fig.get_size_inches()[1]
    bottom = min(0.45, (0.25 + 0.24 * rows) / h)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    return bottom


def plot_smoothed(ax, x, y, n, color, ls="-", raw=True, label=None):
    if raw and n > 1:
        ax.plot(x, y, color=color, ls=ls, lw=0.6, alpha=0.2)
    return ax.plot(x, ph.moving_average(y, n), color=color, ls=ls, lw=1.6, label=label)[0]


def set_step_axis(ax):
    from matplotlib.ticker import MaxNLocator
    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def maybe_log_y(ax, arrays):
    v = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.array([])
    if len(v) and np.all(v > 0) and v.max() / v.min() > 30:
        ax.set_yscale("log")


def save(fig, out_dir, name, written):
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    written.append(name)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return name


# ---------------------------------------------------------------- figures

def fig_training(plt, runs, colors, n, out_dir, written):
    metrics = [("loss", "loss", "training loss"), ("rewards/accuracies", "accuracy", "preference accuracy (r_w > r_l)"),
               ("rewards/margins", "margin", "reward margin r_w - r_l")]
    metrics = [m for m in metrics if any(col(r, m[0]) is not None for r in runs)]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 4.4), squeeze=False)
    handles, labels = [], []
    for ax, (name, short, title) in zip(axes[0], metrics):
        arrays = []
        for r in runs:
            y = col(r, name)
            if y is None:
                continue
            arrays.append(y)
            h = plot_smoothed(ax, r.x, y, n, colors[id(r)])
            if r.label not in labels:
                handles.append(h)
                labels.append(r.label)
        if name == "loss":
            maybe_log_y(ax, arrays)
        if name == "rewards/accuracies":
            ax.axhline(0.5, color="gray", ls=":", lw=1)
            ax.set_ylim(-0.02, 1.02)
        if name == "rewards/margins":
            ax.axhline(0, color="gray", ls=":", lw=1)
        ax.set_title(title)
        set_step_axis(ax)
        ax.set_ylabel(f"{name}" + (f" ({n}-step moving average)" if n > 1 else ""))
        ax.grid(alpha=0.3)
    bottom = legend_below(fig, handles, labels)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, out_dir, "training.png", written)


def fig_displacement(plt, runs, colors, n, out_dir, written):
    have = [r for r in runs if col(r, "logps/chosen") is not None]
    if not have:
        return None
    ratio = [r for r in have if r.beta and col(r, "rewards/chosen") is not None and "simpo" not in r.objective]
    ncols = 2 if ratio else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.4 * ncols, 4.8), squeeze=False)
    ax = axes[0][0]
    handles, labels = [], []
    for r in have:
        c = colors[id(r)]
        h = plot_smoothed(ax, r.x, r.steps["logps/chosen"], n, c, "-")
        if col(r, "logps/rejected") is not None:
            plot_smoothed(ax, r.x, r.steps["logps/rejected"], n, c, "--")
        handles.append(h)
        labels.append(r.label)
    ax.set_title("log-likelihood of the chosen and rejected responses")
    set_step_axis(ax)
    ax.set_ylabel("log pi(y|x), summed over response tokens")
    ax.grid(alpha=0.3)
    if ratio:
        ax = axes[0][1]
        for r in ratio:
            c = colors[id(r)]
            plot_smoothed(ax, r.x, r.steps["rewards/chosen"] / r.beta, n, c, "-")
            if col(r, "rewards/rejected") is not None:
                plot_smoothed(ax, r.x, r.steps["rewards/rejected"] / r.beta, n, c, "--")
        ax.axhline(0, color="gray", ls=":", lw=1)
        ax.set_title("change from the reference: log pi - log pi_ref")
        set_step_axis(ax)
        ax.set_ylabel("log pi(y|x) - log pi_ref(y|x)  (= rewards / beta), nats")
        ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D
    style = [Line2D([], [], color="k", ls="-"), Line2D([], [], color="k", ls="--")]
    handles += style
    labels += ["chosen (solid)", "rejected (dashed)"]
    bottom = legend_below(fig, handles, labels, ncol=min(len(labels), 4))
    if n > 1:
        fig.suptitle(f"Likelihood displacement: both curves falling means the chosen response loses "
                     f"probability too ({n}-step moving average)", fontsize=10)
    else:
        fig.suptitle("Likelihood displacement: both curves falling means the chosen response loses "
                     "probability too", fontsize=10)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, out_dir, "displacement.png", written)


def fig_timing(plt, runs, colors, n, out_dir, written):
    shared = [(r, time_shares(r)) for r in runs]
    shared = [(r, s) for r, s in shared if s]
    tps = [r for r in runs if col(r, "tokens_per_s") is not None]
    if not shared and not tps:
        return None
    panels = (1 if shared else 0) + (1 if tps else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 0.6 + max(3.8, 0.45 * len(runs) + 2.4)),
                             squeeze=False)
    i = 0
    bottoms = []
    if shared:
        ax = axes[0][i]
        i += 1
        y = np.arange(len(shared))[::-1]
        left = np.zeros(len(shared))
        parts = list(TIME_PARTS) + ["other"]
        for p in parts:
            w = np.array([s[p] for _, s in shared]) * 100
            ax.barh(y, w, left=left, color=TIME_COLORS[p], label=p, edgecolor="white", lw=0.5)
            for yy, ll, ww in zip(y, left, w):
                if ww >= 7:
                    ax.text(ll + ww / 2, yy, f"{ww:.0f}%", ha="center", va="center", fontsize=8)
            left += w
        ax.set_yticks(y)
        ax.set_yticklabels([r.label for r, _ in shared], fontsize=8)
        ax.set_xlim(0, 100)
        ax.set_xlabel("share of time/step, %")
        ax.set_title("where a step's time goes (after warm-up)")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=5, fontsize=8, frameon=False)
    handles, labels = [], []
    if tps:
        ax = axes[0][i]
        arrays = []
        for r in tps:
            c, raw = colors[id(r)], r.steps["tokens_per_s"]
            tok, sec = col(r, "num_tokens"), col(r, "time/step")
            if n > 1:
                ax.plot(r.x, raw, color=c, lw=0.6, alpha=0.2)
            if n > 1 and tok is not None and sec is not None:
                # a window's rate is its tokens over its time, not the mean of per-step rates
                ok = np.isfinite(tok) & np.isfinite(sec)
                num = ph.moving_average(np.where(ok, tok, np.nan), n)
                den = ph.moving_average(np.where(ok, sec, np.nan), n)
                with np.errstate(invalid="ignore", divide="ignore"):
                    sm = num / den
            else:
                sm = ph.moving_average(raw, n)
            h = ax.plot(r.x, sm, color=c, lw=1.6)[0]
            handles.append(h)
            labels.append(r.label)
            arrays.append(raw)
        maybe_log_y(ax, arrays)
        ax.set_title("throughput")
        set_step_axis(ax)
        ax.set_ylabel("tokens/s" + (f" (over {n}-step windows)" if n > 1 else ""))
        ax.grid(alpha=0.3)
        if len(tps) > 1:
            ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                      ncol=min(3, len(tps)), frameon=False)
    rows = max(1, math.ceil(len(tps) / 3)) if len(tps) > 1 else 1
    bottoms.append(min(0.4, (0.55 + 0.22 * rows) / fig.get_size_inches()[1]))
    fig.tight_layout(rect=(0, 0, 1, 1))
    fig.subplots_adjust(bottom=max(bottoms) + 0.04)
    return save(fig, out_dir, "timing.png", written)


def safe_name(s):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "run"


def fig_tables(plt, runs, colors, n, out_dir, written):
    """Every other run-log table (e.g. /epochs): each column vs the key column."""
    names = []
    for r in runs:
        for t in r.tables:
            if t not in names:
                names.append(t)
    out = []
    for t in names:
        have = [r for r in runs if t in r.tables]
        cols = []
        keys = set()
        for r in have:
            k = ph.key_column(t, r.tables[t])
            keys.add(k)
            for c in r.tables[t]:
                if c != k and c not in cols and np.any(np.isfinite(r.tables[t][c])):
                    cols.append(c)
        if not cols:
            continue
        xlabel = next(iter(keys)) if len(keys) == 1 and None not in keys else "row"
        nc = min(3, len(cols))
        nr = math.ceil(len(cols) / nc)
        fig, axes = plt.subplots(nr, nc, figsize=(4.6 * nc, 3.3 * nr + 0.6), squeeze=False)
        handles, labels = [], []
        for j, c in enumerate(cols):
            ax = axes[j // nc][j % nc]
            for r in have:
                tab = r.tables[t]
                if c not in tab:
                    continue
                k = ph.key_column(t, tab)
                x = tab[k] if k else np.arange(1, len(tab[c]) + 1)
                y = tab[c]
                few = np.sum(np.isfinite(y)) <= 40
                h = ax.plot(x, y, color=colors[id(r)], marker="o" if few else None, ms=3, lw=1.4)[0]
                if r.label not in labels:
                    handles.append(h)
                    labels.append(r.label)
            ax.set_title(c, fontsize=10)
            ax.set_xlabel(xlabel if xlabel else "row")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        for j in range(len(cols), nr * nc):
            axes[j // nc][j % nc].axis("off")
        fig.suptitle(f"/{t} table: every column vs {xlabel}", fontsize=11)
        bottom = legend_below(fig, handles, labels)
        fig.tight_layout(rect=(0, bottom, 1, 1))
        out.append((t, save(fig, out_dir, f"table-{safe_name(t)}.png", written)))
    return out


def pick_epochs(epochs, most=12):
    if len(epochs) <= most:
        return epochs
    idx = np.unique(np.round(np.linspace(0, len(epochs) - 1, most)).astype(int))
    return [epochs[i] for i in idx]


def fig_curriculum(plt, r, color, out_dir, written):
    """PVar histograms per epoch with the selected prompts marked, and every other per-epoch
    dataset's distribution vs epoch. Returns [(title, png)] and Markdown table lines."""
    out, lines = [], []
    ep = [(k, d) for k, d in r.curriculum if "pvar" in d and d["pvar"].ndim == 1 and d["pvar"].size]
    tag = safe_name(r.label)
    if ep:
        lines += ["| epoch | prompts | selected | share | PVar median | PVar mean (selected) | PVar mean (rest) | threshold |",
                  "|---|---|---|---|---|---|---|---|"]
        for k, d in ep:
            pv = d["pvar"].astype(float)
            sel = d.get("selected")
            sel = sel.astype(bool) if sel is not None and sel.shape == pv.shape else None
            fin = np.isfinite(pv)  # NaN: a prompt without a PVar (fewer than 2 responses)
            pv = pv[fin]
            sel = sel[fin] if sel is not None else None
            if not len(pv):
                lines.append(f"| {k} | 0 | - | - | - | - | - | - |")
                continue
            ns = int(sel.sum()) if sel is not None else None
            fmt = lambda v: f"{v:.4g}" if np.isfinite(v) else "-"  # noqa: E731
            if sel is not None:
                ms = np.mean(pv[sel]) if ns else float("nan")
                mr = np.mean(pv[~sel]) if ns < len(pv) else float("nan")
                thr = np.min(pv[sel]) if ns else float("nan")
                lines.append(f"| {k} | {len(pv)} | {ns} | {100 * ns / len(pv):.1f}% | {np.median(pv):.4g} | "
                             f"{fmt(ms)} | {fmt(mr)} | {fmt(thr)} |")
            else:
                lines.append(f"| {k} | {len(pv)} | - | - | {np.median(pv):.4g} | - | - | - |")
        shown = pick_epochs(ep)
        allp = np.concatenate([d["pvar"].astype(float) for _, d in shown])
        allp = allp[np.isfinite(allp)]
        hi = max(float(allp.max()) if len(allp) else 0.25, 1e-6)
        bins = np.linspace(0, hi * 1.0001, 31)
        nc = min(4, len(shown))
        nr = math.ceil(len(shown) / nc)
        fig, axes = plt.subplots(nr, nc, figsize=(3.6 * nc, 2.9 * nr + 0.9), squeeze=False, sharex=True)
        for j, (k, d) in enumerate(shown):
            ax = axes[j // nc][j % nc]
            pv = d["pvar"].astype(float)
            pv = pv[np.isfinite(pv)] if pv.ndim == 1 else pv
            sel = d.get("selected")
            if sel is not None and sel.shape == d["pvar"].shape:
                s = sel.astype(bool)[np.isfinite(d["pvar"].astype(float))]
                ax.hist([pv[~s], pv[s]], bins=bins, stacked=True, color=["#c7c7c7", color],
                        label=["not selected", "selected"])
                ns = int(s.sum())
                if ns:
                    ax.axvline(pv[s].min(), color="k", ls="--", lw=1)
                ax.set_title(f"epoch {k}: {ns}/{len(pv)} selected ({100 * ns / max(len(pv), 1):.0f}%)", fontsize=9)
            else:
                ax.hist(pv, bins=bins, color="#7f7f7f")
                ax.set_title(f"epoch {k}: {len(pv)} prompts", fontsize=9)
            ax.set_xlabel("PVar", fontsize=8)
            ax.set_ylabel("prompts", fontsize=8)
            ax.tick_params(labelsize=7, labelbottom=True)
            ax.grid(alpha=0.3)
        for j in range(len(shown), nr * nc):
            axes[j // nc][j % nc].axis("off")
        from matplotlib.patches import Patch
        from matplotlib.lines import Line2D
        hs = [Patch(color="#c7c7c7"), Patch(color=color), Line2D([], [], color="k", ls="--")]
        ls = ["not selected", "selected", "lowest selected PVar (threshold)"]
        more = f" ({len(shown)} of {len(ep)} epochs shown)" if len(shown) < len(ep) else ""
        fig.suptitle(f"{r.label}: PVar per prompt by epoch{more}", fontsize=11)
        bottom = legend_below(fig, hs, ls, ncol=3)
        fig.tight_layout(rect=(0, bottom, 1, 1))
        out.append(("PVar histograms", save(fig, out_dir, f"curriculum-{tag}.png", written)))

    # the PVar paper's theorem: per-prompt gradient norm against the prompt's PVar
    pts = [(k, d) for k, d in r.curriculum if "grad_norm" in d and "grad_norm_prompt" in d and "pvar" in d]
    if pts:
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        cmap = plt.get_cmap("viridis")
        for j, (k, d) in enumerate(pts):
            idx = d["grad_norm_prompt"].astype(int)
            pv = d["pvar"][idx]
            ax.scatter(pv, d["grad_norm"], s=10, alpha=0.7, color=cmap(j / max(1, len(pts) - 1)), label=f"epoch {k}")
        ax.set_xlabel("PVar of the prompt")
        ax.set_ylabel("norm of the prompt's preference-loss gradient")
        ax.set_title(f"{r.label}: gradient norm vs PVar (sampled prompts)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.append(("gradient norm vs PVar", save(fig, out_dir, f"gradnorm-pvar-{tag}.png", written)))

    # every other numeric dataset, per epoch
    names = []
    for _, d in r.curriculum:
        for dn, v in d.items():
            if dn not in ("pvar", "selected", "grad_norm", "grad_norm_prompt") and dn not in names and v.size:
                names.append(dn)
    if names:
        nc = min(3, len(names))
        nr = math.ceil(len(names) / nc)
        fig, axes = plt.subplots(nr, nc, figsize=(4.6 * nc, 3.3 * nr + 0.9), squeeze=False)
        for j, dn in enumerate(names):
            ax = axes[j // nc][j % nc]
            ks, med, q1, q3, msel = [], [], [], [], []
            for k, d in r.curriculum:
                if dn not in d:
                    continue
                v = d[dn].astype(float).ravel()
                fin = np.isfinite(v)
                if not fin.any():
                    continue
                ks.append(k)
                med.append(np.median(v[fin]))
                q1.append(np.percentile(v[fin], 25))
                q3.append(np.percentile(v[fin], 75))
                s = d.get("selected")
                if s is not None and s.shape == d[dn].shape and d[dn].ndim == 1 and np.any(s.astype(bool) & fin):
                    msel.append(np.mean(v[s.astype(bool) & fin]))
                else:
                    msel.append(np.nan)
            mk = "o" if len(ks) <= 40 else None
            ax.fill_between(ks, q1, q3, color="#7f7f7f", alpha=0.25, lw=0)
            ax.plot(ks, med, color="#7f7f7f", marker=mk, ms=3)
            if np.any(np.isfinite(msel)):
                ax.plot(ks, msel, color=color, marker=mk, ms=3)
            ax.set_title(dn, fontsize=10)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        for j in range(len(names), nr * nc):
            axes[j // nc][j % nc].axis("off")
        from matplotlib.patches import Patch
        from matplotlib.lines import Line2D
        hs = [Line2D([], [], color="#7f7f7f", marker="o"), Patch(color="#7f7f7f", alpha=0.25),
              Line2D([], [], color=color, marker="o")]
        ls = ["median over prompts (a scalar: its value)", "25-75% range", "mean over the selected prompts"]
        fig.suptitle(f"{r.label}: /curriculum/epoch_*/ datasets vs epoch", fontsize=11)
        bottom = legend_below(fig, hs, ls, ncol=3)
        fig.tight_layout(rect=(0, bottom, 1, 1))
        out.append(("other curriculum datasets", save(fig, out_dir, f"curriculum-stats-{tag}.png", written)))
    return out, lines


# ---------------------------------------------------------------- report.md

def fmt(v, spec=".4g"):
    return format(v, spec) if v is not None and np.isfinite(v) else "-"


def start_end(r, name, k, spec=".4g"):
    v = col(r, name)
    if v is None:
        return "-", None
    a, sa = window_stats(v, k, last=False)
    b, sb = window_stats(v, k, last=True)
    return f"{fmt(a, spec)} -> {fmt(b, spec)}", (b - a, math.hypot(sa, sb) if np.isfinite(sa) and np.isfinite(sb) else float("nan"))


def run_table(r, k):
    a = r.attrs
    s = ph.as_str
    rows = [("file", f"`{r.path}`"), ("objective", s(a.get("objective")) or r.objective or "-")]
    if r.n:
        first, last = r.x[0], r.x[-1]
        extra = []
        if r.n_resumes:
            extra.append(f"{r.n_resumes} resume(s)")
        if r.dropped:
            extra.append(f"{r.dropped} superseded row(s) dropped")
        rows.append(("steps", f"{r.n} logged (step {first:g} to {last:g})" + (f"; {', '.join(extra)}" if extra else "")))
    else:
        rows.append(("steps", "none logged yet"))
    cfg = s(a.get("config"))
    bits = []
    for key in ("train.micro_batch", "train.grad_accum", "train.lr", "train.data"):
        v = ph.config_get(cfg, key)
        if v is not None:
            bits.append(f"{key.split('.')[1]} {v}")
    ws = a.get("world_size")
    if ws is not None:
        bits.insert(0, f"{int(ws)} rank(s)")
    if bits:
        rows.append(("setup", ", ".join(bits)))
    if r.n:
        kk = min(k, r.n)
        rows.append(("loss (first -> last %d steps, mean)" % kk, start_end(r, "loss", kk)[0]))
        for name, label in (("rewards/accuracies", "accuracy"), ("rewards/margins", "margin")):
            if col(r, name) is not None:
                rows.append((label, start_end(r, name, kk)[0]))
        c, dc = start_end(r, "logps/chosen", kk, ".2f")
        j, dr = start_end(r, "logps/rejected", kk, ".2f")
        if dc:
            rows.append(("logps/chosen", f"{c} (change {dc[0]:+.2f} +- {fmt(dc[1], '.2f')})"))
        if dr:
            rows.append(("logps/rejected", f"{j} (change {dr[0]:+.2f} +- {fmt(dr[1], '.2f')})"))
        if dc and dr:
            v = displacement_verdict(dc[0], dc[1], dr[0], dr[1])
            if v:
                rows.append(("displacement", v))
        t = col(r, "tokens_per_s")
        w = warmup_rows(r.n)
        if t is not None:
            tt = t[w:][np.isfinite(t[w:])]
            if len(tt):
                rows.append(("tokens/s (median after warm-up)", f"{np.median(tt):,.0f}"))
        ts = col(r, "time/step")
        if ts is not None:
            rows.append(("time/step (median after warm-up)", f"{1000 * np.nanmedian(ts[w:] if len(ts) > w else ts):.3g} ms"))
        sh = time_shares(r)
        if sh:
            rows.append(("time shares", ", ".join(f"{p} {100 * sh[p]:.1f}%" for p in list(TIME_PARTS) + ["other"])))
    st, en = a.get("start_time"), a.get("end_time")
    if st is not None and en is not None and float(en) >= float(st):
        rows.append(("wall time (start_time to end_time)", f"{float(en) - float(st):.0f} s"))
    for key in ("commit", "host", "openblas_core", "threads_per_rank", "created"):
        if key in a:
            rows.append((key, s(a[key])))
    if r.tables:
        rows.append(("other tables", ", ".join(f"/{t} ({len(next(iter(c.values())))} rows)" for t, c in r.tables.items())))
    if r.curriculum:
        rows.append(("curriculum", f"{len(r.curriculum)} epoch group(s) under /curriculum"))
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows]
    return lines


def summary_table(runs, k):
    lines = ["| run | steps | loss | accuracy | margin | logps/chosen change | logps/rejected change | tokens/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        if not r.n:
            lines.append(f"| {r.label} | 0 | - | - | - | - | - | - |")
            continue
        kk = min(k, r.n)
        last = lambda name: fmt(window_stats(col(r, name), kk, True)[0]) if col(r, name) is not None else "-"  # noqa: E731
        ch = []
        for name in ("logps/chosen", "logps/rejected"):
            _, d = start_end(r, name, kk)
            ch.append(f"{d[0]:+.2f}" if d else "-")
        t = col(r, "tokens_per_s")
        w = warmup_rows(r.n)
        tps = f"{np.nanmedian(t[w:]):,.0f}" if t is not None and np.any(np.isfinite(t[w:])) else "-"
        lines.append(f"| {r.label} | {int(r.x[-1])} | {last('loss')} | {last('rewards/accuracies')} | "
                     f"{last('rewards/margins')} | {ch[0]} | {ch[1]} | {tps} |")
    return lines


# ---------------------------------------------------------------- the DID and iterative-alignment papers
# Subcommands (`report.py did|iterate|phase ...`); see the module docstring.

SUBCOMMANDS = ("did", "iterate", "phase")


def did_run_dirs(paths):
    """DID run directories (scripts/did-experiment.sh: OUT/<chosen>-<rejected>-<n>/): a path that
    holds train.h5 is one; otherwise every subdirectory of it that holds train.h5."""
    out = []
    for p in paths:
        if not os.path.exists(p):
            ph.fail(p, "no such directory")
        if not os.path.isdir(p):
            ph.fail(p, "not a directory: pass a DID run directory (with train.h5) or the experiment's output directory")
        if os.path.isfile(os.path.join(p, "train.h5")):
            out.append(p)
            continue
        subs = sorted(d for d in os.listdir(p) if os.path.isfile(os.path.join(p, d, "train.h5")))
        if not subs:
            ph.fail(p, "no DID run here: neither train.h5 nor */train.h5 (layout of scripts/did-experiment.sh)")
        out += [os.path.join(p, d) for d in subs]
    return out


def did_pairs_per_prompt(d, f):
    """Pairs per prompt of a DID data file: synth.did_pairs of its config, else the run
    directory's -<n> suffix, else pairs / prompts."""
    v = ph.config_get(f.attrs.get("config"), "synth.did_pairs")
    try:
        return int(float(v))
    except (TypeError, ValueError):
        pass
    m = re.search(r"-(\d+)$", os.path.basename(os.path.normpath(d)))
    if m:
        return int(m.group(1))
    if "pairs/chosen" in f and "prompts/offsets" in f and len(f["prompts/offsets"]) > 1:
        return int(round(len(f["pairs/chosen"]) / (len(f["prompts/offsets"]) - 1)))
    ph.fail(os.path.join(d, "train.h5"), "cannot tell the pairs per prompt (no synth.did_pairs in its config)")


def load_did_run(d):
    """One DID run directory: the data's DID attributes (train.h5), the DPO run log
    (dpo/run.h5, or None) and KL(pi || pi*) of the trained policy (exact.h5, or None)."""
    r = Run()
    r.dir = d
    tpath = os.path.join(d, "train.h5")
    with ph.open_prefer(tpath, "prefer.prefdata") as f:
        a = f.attrs
        if "did_chosen_from" not in a or "did_rejected_from" not in a:
            ph.fail(tpath, "no did_chosen_from / did_rejected_from attributes: not DID data "
                           "(prefer synth with synth.rejected_from)")
        r.chosen, r.rejected = ph.as_str(a["did_chosen_from"]), ph.as_str(a["did_rejected_from"])
        r.mix = float(a.get("did_mix", float("nan")))
        r.did_entropy = float(a.get("did_entropy", float("nan")))
        r.kl_pred = float(a.get("did_kl_dpo_star", float("nan")))
        r.pairs = did_pairs_per_prompt(d, f)
    r.kind = (r.chosen, r.rejected, r.mix if r.rejected == "mix" else None)
    r.kind_label = f"{r.chosen} / {r.rejected}" + (f" {r.mix:g}" if r.rejected == "mix" else "")
    rpath = os.path.join(d, "dpo", "run.h5")
    r.run = load_run(rpath) if os.path.exists(rpath) else None
    if r.run is None:
        print(f"report.py: {rpath}: no such file: left out of the displacement figure", file=sys.stderr)
    r.kl_opt = None
    epath = os.path.join(d, "exact.h5")
    if os.path.exists(epath):
        with ph.open_prefer(epath, "prefer.exact") as f:
            v = float(f.attrs.get("mean_kl_opt", float("nan")))
            if not np.isfinite(v) and "kl_opt" in f:
                kl = np.asarray(f["kl_opt"][()], dtype=np.float64)
                v = float(np.nanmean(kl)) if np.any(np.isfinite(kl)) else float("nan")
            if not np.isfinite(v):
                ph.fail(epath, "neither a finite mean_kl_opt attribute nor a /kl_opt dataset")
            r.kl_opt = v
    else:
        print(f"report.py: {epath}: no such file: left out of the KL figure", file=sys.stderr)
    return r


def kind_colors(kinds):
    import matplotlib
    cmap = matplotlib.colormaps["tab10"]
    return {k: cmap(i % cmap.N) for i, k in enumerate(kinds)}


def entropy_text(vals):
    v = [x for x in vals if np.isfinite(x)]
    if not v:
        return "H(DID) ?"
    lo, hi = min(v), max(v)
    return f"H(DID) = {lo:.2f} nats" if hi - lo < 5e-3 else f"H(DID) = {lo:.2f}-{hi:.2f} nats"


def fig_did_displacement(plt, runs, kinds, colors, n, out_dir, written):
    """Chosen (solid) and rejected (dashed) log-likelihood vs step: a panel per data size, a
    colour per kind of DID data, its DID entropy in the legend."""
    have = [r for r in runs if r.run is not None and col(r.run, "logps/chosen") is not None]
    if not have:
        return None
    sizes = sorted({r.pairs for r in have})
    nc = min(3, len(sizes))
    nr = math.ceil(len(sizes) / nc)
    fig, axes = plt.subplots(nr, nc, figsize=(5.6 * nc, 4.2 * nr + 1.0), squeeze=False)
    for j, size in enumerate(sizes):
        ax = axes[j // nc][j % nc]
        for r in have:
            if r.pairs != size:
                continue
            c = colors[r.kind]
            plot_smoothed(ax, r.run.x, r.run.steps["logps/chosen"], n, c, "-")
            if col(r.run, "logps/rejected") is not None:
                plot_smoothed(ax, r.run.x, r.run.steps["logps/rejected"], n, c, "--")
        ax.set_title(f"{size} pairs per prompt", fontsize=10)
        set_step_axis(ax)
        ax.set_ylabel("log pi(y|x) of the batch's responses")
        ax.grid(alpha=0.3)
    for j in range(len(sizes), nr * nc):
        axes[j // nc][j % nc].axis("off")
    from matplotlib.lines import Line2D
    handles, labels = [], []
    for k in kinds:
        rs = [r for r in have if r.kind == k]
        if rs:
            handles.append(Line2D([], [], color=colors[k], lw=2))
            labels.append(f"{rs[0].kind_label}: {entropy_text([r.did_entropy for r in rs])}")
    handles += [Line2D([], [], color="k", ls="-"), Line2D([], [], color="k", ls="--")]
    labels += ["chosen (solid)", "rejected (dashed)"]
    fig.suptitle("DPO on DID data (kind = chosen / rejected from): log-likelihood of the chosen and rejected\n"
                 "responses; both falling is likelihood displacement" + (f" ({n}-step moving average)" if n > 1 else ""),
                 fontsize=10)
    bottom = legend_below(fig, handles, labels, ncol=min(3, len(labels)))
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, out_dir, "did-displacement.png", written)


def fig_did_kl(plt, runs, kinds, colors, out_dir, written):
    """KL(pi || pi*) of the trained policy vs pairs per prompt, a line per kind; dashed: the
    kind's predicted DPO population optimum KL(pi_dpo || pi*) (did_kl_dpo_star)."""
    have = [r for r in runs if r.kl_opt is not None]
    if not have:
        return None
    fig, ax = plt.subplots(figsize=(7.0, 5.2))
    handles, labels = [], []
    from matplotlib.lines import Line2D
    for k in kinds:
        rs = sorted((r for r in have if r.kind == k), key=lambda r: r.pairs)
        if not rs:
            continue
        c = colors[k]
        h = ax.plot([r.pairs for r in rs], [r.kl_opt for r in rs], "o-", color=c, lw=1.6)[0]
        handles.append(h)
        labels.append(rs[0].kind_label)
        pred = [r.kl_pred for r in rs if np.isfinite(r.kl_pred)]
        if pred:
            ax.axhline(max(float(np.mean(pred)), 0.0), color=c, ls="--", lw=1.2)
    sizes = sorted({r.pairs for r in have})
    if len(sizes) > 1 and sizes[0] > 0:
        ax.set_xscale("log", base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_yscale("symlog", linthresh=1e-2)
    top = max([r.kl_opt for r in have] + [r.kl_pred for r in have if np.isfinite(r.kl_pred)] + [1e-2])
    ax.set_ylim(0, top * 2)
    ax.set_xlabel("data size: pairs per prompt")
    ax.set_ylabel("KL(pi || pi*), nats (exact, mean over prompts)")
    ax.set_title("Does DPO reach pi* as data grows?", fontsize=10)
    ax.grid(alpha=0.3)
    handles.append(Line2D([], [], color="k", ls="--"))
    labels.append("dashed: KL(pi_dpo || pi*) of the population optimum (did_kl_dpo_star)")
    bottom = legend_below(fig, handles, labels, ncol=2)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, out_dir, "did-kl.png", written)


def did_table(runs, n):
    lines = ["| kind (chosen / rejected) | pairs/prompt | DID entropy | KL(pi_dpo‖pi*) predicted | KL(pi‖pi*) trained | "
             "logps/chosen (first -> last) | logps/rejected (first -> last) |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        cells = []
        for name in ("logps/chosen", "logps/rejected"):
            cells.append(start_end(r.run, name, min(n, r.run.n), ".2f")[0] if r.run is not None and r.run.n else "-")
        kl = fmt(r.kl_opt, ".4f") if r.kl_opt is not None else "-"
        lines.append(f"| {r.kind_label} | {r.pairs} | {fmt(r.did_entropy, '.3f')} | {fmt(max(r.kl_pred, 0.0), '.4f')} | "
                     f"{kl} | {cells[0]} | {cells[1]} |")
    return lines


def main_did(argv):
    ap = argparse.ArgumentParser(prog="report.py did", description=(
        "The DID experiment (docs/did.md, scripts/did-experiment.sh): did-displacement.png (logps/chosen\n"
        "and logps/rejected of dpo/run.h5 vs step, a colour per kind of DID data, its DID entropy from\n"
        "train.h5 in the legend, a panel per data size) and did-kl.png (KL(pi || pi*) of exact.h5 vs pairs\n"
        "per prompt, a line per kind, the kind's did_kl_dpo_star dashed); prints a Markdown table."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", metavar="DIR",
                    help="the experiment's output directory (OUT of did-experiment.sh) or run directories "
                         "<chosen>-<rejected>-<n>/ holding train.h5, dpo/run.h5, exact.h5")
    ap.add_argument("-o", "--out", required=True, metavar="DIR", help="directory for the PNGs")
    ap.add_argument("--smooth", type=int, default=0, metavar="N", help="moving-average window in steps (default: "
                    "about 1/20 of the longest run, 1..50; 1 = raw)")
    args = ap.parse_args(argv)
    if args.smooth < 0:
        ap.error("--smooth must be >= 0")
    runs = [load_did_run(d) for d in did_run_dirs(args.dirs)]
    runs.sort(key=lambda r: (r.kind_label, r.pairs))
    kinds = []
    for r in runs:
        if r.kind not in kinds:
            kinds.append(r.kind)
    longest = max([r.run.n for r in runs if r.run is not None] + [1])
    n = args.smooth or int(min(50, max(1, round(longest / 20))))
    make_out_dir(args.out)
    plt = ph.use_agg()
    colors = kind_colors(kinds)
    written = []
    fig_did_displacement(plt, runs, kinds, colors, n, args.out, written)
    fig_did_kl(plt, runs, kinds, colors, args.out, written)
    print("\n".join(did_table(runs, n)))
    print(f"report.py did: wrote {', '.join(written) or 'no figure'} in {args.out} ({len(runs)} run(s), "
          f"{len(kinds)} kind(s), smoothing {n})")


# ---------------------------------------------------------------- iterative alignment

def load_iterate(path):
    """An iterate.h5 run log (prefer iterate): its rounds table, oracle, objective, knobs and
    class shares [rows, classes]."""
    r = Run()
    r.path = path
    with ph.open_prefer(path, "prefer.runlog") as f:
        r.attrs = {k: f.attrs[k] for k in f.attrs}
        r.t, _ = ph.read_table(f, "rounds")
    if not r.t or "round" not in r.t:
        ph.fail(path, "no `rounds` table with a `round` column: not a prefer iterate run log (iterate.out_dir/iterate.h5)")
    r.oracle = ph.as_str(r.attrs.get("oracle"), "?")
    r.objective = ph.as_str(r.attrs.get("objective"), "")
    r.x = r.t["round"]
    last = lambda c: float(r.t[c][-1]) if c in r.t and len(r.t[c]) else float("nan")  # noqa: E731
    r.alpha, r.beta_tab, r.lam = last("alpha"), last("beta_tab"), last("lambda")
    cls = sorted((int(k.split("/")[1]), k) for k in r.t if re.fullmatch(r"share/\d+", k))
    r.classes = [c for c, _ in cls]
    r.shares = np.stack([r.t[k] for _, k in cls], axis=1) if cls else np.zeros((len(r.x), 0))
    r.label = (f"{r.oracle} {r.objective} ".replace("  ", " ") +
               f"alpha={r.alpha:g} beta_tab={r.beta_tab:g} lambda={r.lam:g}")
    return r


def load_iterates(paths):
    runs = [load_iterate(p) for p in paths]
    for r, lab in zip(runs, ph.unique_labels([r.label for r in runs], [r.path for r in runs])):
        r.label = lab
    return runs


def iterate_verdict(shares, window=5, var_threshold=5e-3, collapse=0.9):
    """The outcome of an iterative run from its class shares [rows, classes], rows pi_0 .. pi_R.

    Rows with a NaN share are skipped. The window is the last `window` rows (all rows when
    there are fewer). The share variance is the mean over classes of the population variance
    of the class's share over the window (the cycle strength of `prefer dynamics`, on
    estimated shares). "oscillating" if that variance > var_threshold; else "collapsed" if
    the largest class share of the last row > collapse; else "converged"; "undecided" with
    fewer than 2 rows or no share columns. The shares are sample estimates: their variance
    from sampling alone is at most 0.25 / (prompts x K) per class, so var_threshold must sit
    well above that. A run still drifting towards a vertex inside the window also counts as
    oscillating.

    Returns (verdict, variance, max share)."""
    S = np.asarray(shares, dtype=np.float64)
    if S.ndim != 2 or S.shape[1] == 0:
        return "undecided", float("nan"), float("nan")
    S = S[np.all(np.isfinite(S), axis=1)]
    if len(S) < 2:
        return "undecided", float("nan"), float(np.max(S[-1])) if len(S) else float("nan")
    w = S[-max(2, window):]
    var = float(np.mean(np.var(w, axis=0)))
    pmax = float(np.max(S[-1]))
    if var > var_threshold:
        return "oscillating", var, pmax
    if pmax > collapse:
        return "collapsed", var, pmax
    return "converged", var, pmax


def verdict_lines(runs, args):
    lines = ["| run | oracle | alpha | beta_tab | lambda | beta_tab*lambda | rounds | entropy_est (last) | "
             "share variance | max share | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        v, var, pmax = iterate_verdict(r.shares, args.window, args.var_threshold, args.collapse)
        r.verdict, r.var, r.pmax = v, var, pmax
        ent = r.t.get("entropy_est")
        lines.append(f"| {r.path} | {r.oracle} | {r.alpha:g} | {r.beta_tab:g} | {r.lam:g} | {r.beta_tab * r.lam:g} | "
                     f"{len(r.x)} | {fmt(ent[-1] if ent is not None and len(ent) else None)} | {fmt(var, '.3g')} | "
                     f"{fmt(pmax, '.3f')} | {v} |")
    return lines


def add_verdict_args(ap):
    ap.add_argument("--window", type=int, default=5, metavar="W", help="rounds judged: the last W rows (default 5)")
    ap.add_argument("--var-threshold", type=float, default=5e-3, metavar="V",
                    help="oscillating: mean class-share variance over the window above V (default 0.005)")
    ap.add_argument("--collapse", type=float, default=0.9, metavar="S",
                    help="collapsed: largest class share of the last round above S (default 0.9)")


def check_verdict_args(ap, args):
    if args.window < 2:
        ap.error("--window must be >= 2")
    if not (0 <= args.var_threshold) or not (0 < args.collapse <= 1):
        ap.error("--var-threshold must be >= 0 and --collapse in (0, 1]")


def fig_iterate(plt, runs, colors, out_dir, written):
    """entropy_est, step_l1 (and reward_mean) vs round, a line per run."""
    metrics = [("entropy_est", "policy entropy (estimate, nats)"), ("step_l1", "step ||shares_t - shares_{t-1}||_1"),
               ("reward_mean", "mean true reward (estimate)")]
    metrics = [m for m in metrics if any(m[0] in r.t and np.any(np.isfinite(r.t[m[0]])) for r in runs)]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 4.4), squeeze=False)
    handles, labels = [], []
    for ax, (name, title) in zip(axes[0], metrics):
        for r in runs:
            y = r.t.get(name)
            if y is None or not np.any(np.isfinite(y)):
                continue
            h = ax.plot(r.x, y, "o-", ms=3, lw=1.5, color=colors[id(r)])[0]
            if r.label not in labels:
                handles.append(h)
                labels.append(r.label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("round t (policy pi_t)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle("Iterative alignment: per-round statistics of pi_t (prefer iterate, table rounds)", fontsize=10)
    bottom = legend_below(fig, handles, labels, ncol=min(2, len(labels)))
    fig.tight_layout(rect=(0, bottom, 1, 1))
    return save(fig, out_dir, "iterate.png", written)


def fig_iterate_shares(plt, runs, out_dir, written):
    """Class shares vs round, a panel per run, the verdict in the title."""
    have = [r for r in runs if r.shares.shape[1]]
    if not have:
        return None
    nc = min(3, len(have))
    nr = math.ceil(len(have) / nc)
    fig, axes = plt.subplots(nr, nc, figsize=(5.0 * nc, 3.6 * nr + 0.4), squeeze=False)
    for j, r in enumerate(have):
        ax = axes[j // nc][j % nc]
        for i, c in enumerate(r.classes):
            ax.plot(r.x, r.shares[:, i], "o-", ms=3, lw=1.4, label=f"class {c}")
        ax.set_ylim(-0.02, 1.02)
        if len(r.x) == 1:
            ax.set_xlim(r.x[0] - 1, r.x[0] + 1)
        ax.set_title(f"{r.label}\n{getattr(r, 'verdict', '')}", fontsize=8)
        ax.set_xlabel("round t")
        ax.set_ylabel("class share of pi_t")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right", ncol=2 if len(r.classes) > 4 else 1)
    for j in range(len(have), nr * nc):
        axes[j // nc][j % nc].axis("off")
    fig.tight_layout()
    return save(fig, out_dir, "iterate-shares.png", written)


def main_iterate(argv):
    ap = argparse.ArgumentParser(prog="report.py iterate", description=(
        "Iterative-alignment runs (docs/iterate.md): iterate.png (entropy_est, step_l1 and reward_mean vs\n"
        "round, a line per run labelled by oracle, objective, alpha, beta_tab, lambda) and iterate-shares.png\n"
        "(class shares vs round, a panel per run); prints each run's verdict (see `report.py phase --help`)."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="ITERATE.h5", help="prefer iterate run logs (iterate.out_dir/iterate.h5)")
    ap.add_argument("-o", "--out", required=True, metavar="DIR", help="directory for the PNGs")
    add_verdict_args(ap)
    args = ap.parse_args(argv)
    check_verdict_args(ap, args)
    runs = load_iterates(args.runs)
    make_out_dir(args.out)
    plt = ph.use_agg()
    written = []
    lines = verdict_lines(runs, args)
    fig_iterate(plt, runs, run_colors(runs), args.out, written)
    fig_iterate_shares(plt, runs, args.out, written)
    print("\n".join(lines))
    print(f"report.py iterate: wrote {', '.join(written) or 'no figure'} in {args.out} ({len(runs)} run(s))")


def main_phase(argv):
    ap = argparse.ArgumentParser(prog="report.py phase", description=(
        "The phase diagram of iterative alignment (docs/dynamics.md) from prefer dynamics results files,\n"
        "drawn by analysis/phase.py's plot_phase(), with transformer runs (prefer iterate) overlaid: each\n"
        "run at (beta_tab * lambda, alpha), its marker its verdict, on the panels of its oracle's family\n"
        "(cyclic -> cyclic, bt -> transitive). Writes phase.png and phase-points.csv (phase.py --points\n"
        "format) and prints one line per run.\n\n"
        "Verdict of a run, from its class shares share/<c> of the rounds table:\n" +
        "\n".join("  " + s for s in inspect.cleandoc(iterate_verdict.__doc__).split("\n\n")[1].splitlines())),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dyn", nargs="+", metavar="DYN.h5", help="prefer dynamics results files (dynamics.out)")
    ap.add_argument("--runs", nargs="+", action="extend", default=[], metavar="ITERATE.h5",
                    help="prefer iterate run logs to overlay")
    ap.add_argument("-o", "--out", required=True, metavar="DIR", help="directory for phase.png")
    ap.add_argument("--color", choices=("cycle", "entropy"), default="cycle", help="colour of the grid points")
    ap.add_argument("--lambda", dest="lam", type=float, default=None, help="only grid points with this lambda")
    add_verdict_args(ap)
    args = ap.parse_args(argv)
    check_verdict_args(ap, args)
    import phase
    data = [phase.read_dynamics(p) for p in args.dyn]
    if args.lam is not None:
        phase.select_lambda(data, args.lam)
    runs = load_iterates(args.runs)
    verdict_lines(runs, args)
    family = {"cyclic": "cyclic", "bt": "transitive"}
    points = [dict(alpha=r.alpha, bl=r.beta_tab * r.lam, label=os.path.basename(os.path.dirname(os.path.abspath(r.path))),
                   outcome=r.verdict, family=family.get(r.oracle)) for r in runs]
    make_out_dir(args.out)
    plt = ph.use_agg()
    fig, axes = plt.subplots(1, len(data), figsize=(6.6 * len(data), 6.4), squeeze=False)
    for ax, d in zip(axes[0], data):
        phase.plot_phase(ax, d, args.color, points or None, fig)
        # plot_phase ends the axis at the grid: widen it to show runs beyond the grid
        far = [p["bl"] for p in points if (not p["family"] or p["family"] == d["family"]) and np.isfinite(p["bl"])]
        if far and max(far) * 1.08 > ax.get_xlim()[1]:
            ax.set_xlim(0, max(far) * 1.08)
    fig.tight_layout()
    written = []
    save(fig, args.out, "phase.png", written)
    if points:
        with open(os.path.join(args.out, "phase-points.csv"), "w") as fh:
            fh.write("alpha,beta_lambda,label,outcome,family\n")
            for p in points:
                fh.write(f"{p['alpha']:g},{p['bl']:g},{p['label'].replace(',', ' ')},{p['outcome']},{p['family'] or ''}\n")
        written.append("phase-points.csv")
    for r in runs:
        print(f"phase: {r.path}: {r.oracle} alpha {r.alpha:g} beta_tab*lambda {r.beta_tab * r.lam:g}: {r.verdict} "
              f"(share variance {fmt(r.var, '.3g')} over the last {min(args.window, len(r.x))} rounds, "
              f"max share {fmt(r.pmax, '.3f')})")
    print(f"report.py phase: wrote {', '.join(written)} in {args.out} ({len(data)} panel(s), {len(runs)} run(s))")


def make_out_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        sys.exit(f"report.py: {path}: cannot create the output directory: {e.strerror}")


def main():
    sub = sys.argv[1] if len(sys.argv) > 1 else ""
    if sub in SUBCOMMANDS and not os.path.isfile(sub):
        {"did": main_did, "iterate": main_iterate, "phase": main_phase}[sub](sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="RUN.h5", help="run logs (train.out_dir/run.h5)")
    ap.add_argument("--eval", nargs="+", action="extend", default=[], metavar="EVAL.h5",
                    help="prefer eval results files (eval.out): adds the reward/KL frontier")
    ap.add_argument("-o", "--out", required=True, metavar="DIR", help="directory for the PNGs and report.md")
    ap.add_argument("--smooth", type=int, default=0, metavar="N",
                    help="moving-average window in steps for the curves, and the number of first/last "
                         "steps averaged in the tables (default: about 1/20 of the longest run, 1..50; "
                         "1 = raw)")
    args = ap.parse_args()
    if args.smooth < 0:
        ap.error("--smooth must be >= 0")

    runs = [load_run(p) for p in args.runs]
    evals = [ph.read_eval(p) for p in args.eval]
    for r, lab in zip(runs, ph.unique_labels([r.label for r in runs], [r.path for r in runs])):
        r.label = lab
    longest = max([r.n for r in runs] + [1])
    n = args.smooth or int(min(50, max(1, round(longest / 20))))

    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        sys.exit(f"report.py: {args.out}: cannot create the output directory: {e.strerror}")
    plt = ph.use_agg()
    colors = run_colors(runs)
    written = []
    active = [r for r in runs if r.n]
    f_train = fig_training(plt, active, colors, n, args.out, written)
    f_disp = fig_displacement(plt, active, colors, n, args.out, written)
    f_time = fig_timing(plt, active, colors, n, args.out, written)
    f_tabs = fig_tables(plt, runs, colors, n, args.out, written)
    f_front = None
    if evals:
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        ph.plot_frontier(ax, evals)
        fig.tight_layout()
        f_front = save(fig, args.out, "frontier.png", written)
    cur = []
    for r in runs:
        if r.curriculum:
            figs, lines = fig_curriculum(plt, r, colors[id(r)], args.out, written)
            cur.append((r, figs, lines))

    md = ["# prefer training report", ""]
    md.append(f"Generated {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by "
              f"`analysis/report.py` from {len(runs)} run log(s)" + (f" and {len(evals)} eval file(s)" if evals else "") + ".")
    md.append((f"Curves: {n}-step trailing moving average (faint: every step)" if n > 1 else
               "Curves: every step, unsmoothed") +
              f"; tables: \"start -> end\" are the means of the first and last {n} logged steps, the "
              "change is given +- its standard error (batch-to-batch noise), and timing leaves out "
              "the first steps (warm-up: min(10, steps/10)).")
    md.append("")
    md += ["## Runs", ""] + summary_table(runs, n) + [""]
    if f_train:
        md += ["## Loss, accuracy, margin", "", f"![loss, accuracy and margin vs step]({f_train})", ""]
    if f_disp:
        md += ["## Likelihood displacement", "",
               "Left: the policy's log-likelihood of the chosen and rejected responses of each batch. "
               "Right: their change from the reference, log pi - log pi_ref = rewards / beta. A margin can "
               "grow while both fall: the chosen response then loses probability too (likelihood "
               "displacement), and the mass goes to responses outside the pair.", "",
               f"![logps/chosen and logps/rejected vs step]({f_disp})", ""]
    if f_time:
        md += ["## Time and throughput", "", f"![time breakdown and tokens/s]({f_time})", ""]
    if f_front:
        md += ["## Reward vs KL", "", f"![reward vs KL frontier]({f_front})", ""] + ph.frontier_table(evals) + [""]
    for t, png in f_tabs:
        md += [f"## /{t}", "", f"![/{t} columns]({png})", ""]
    for r, figs, lines in cur:
        md += [f"## Curriculum: {r.label}", ""]
        if lines:
            md += lines + [""]
        for title, png in figs:
            md += [f"![{title}]({png})", ""]
        if r.curriculum_other:
            md += ["Also under /curriculum (not plotted): " + ", ".join(f"`{o}`" for o in r.curriculum_other), ""]
    for r in runs:
        md += [f"## Run: {r.label}", ""] + run_table(r, n) + [""]
    with open(os.path.join(args.out, "report.md"), "w") as fh:
        fh.write("\n".join(md))
    written.append("report.md")
    print(f"report.py: wrote {', '.join(written)} in {args.out} ({len(runs)} run(s), smoothing {n})")


if __name__ == "__main__":
    main()

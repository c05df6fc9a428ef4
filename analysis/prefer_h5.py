"""prefer_h5.py: shared helpers of the analysis scripts (report.py, summary.py, frontier.py).

Reading prefer's HDF5 files (docs/formats.md): checked opening with clear errors, run-log
tables (resumed runs deduplicated), labels from the objective and config attributes, the
eval results files and the reward/KL frontier plot. Not a script: import it from a script in
this directory (its directory is on sys.path when the script runs).
"""
import os
import re
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.exit(f"{os.path.basename(sys.argv[0])}: {e}: needs Debian's python3-h5py and python3-numpy "
             "(scripts/install-deps.sh --python); run with /usr/bin/python3")


def prog():
    return os.path.basename(sys.argv[0]) or "analysis"


def fail(path, msg):
    """Exit 1 with 'script: path: msg' on stderr."""
    sys.exit(f"{prog()}: {path}: {msg}")


def as_str(v, default=""):
    if v is None:
        return default
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return as_str(v[()], default)
    return str(v)


def open_prefer(path, want, hints=None):
    """Open a prefer HDF5 file read-only and check its `format` attribute against `want`
    (a string or a tuple of strings). Exits 1 naming the file if it is missing, not HDF5, or
    of another format; `hints` maps a wrong format to advice appended to the message."""
    wants = (want,) if isinstance(want, str) else tuple(want)
    kind = {"prefer.runlog": "a prefer run log", "prefer.eval": "a prefer eval results file"}.get(
        wants[0], wants[0])
    if not os.path.exists(path):
        fail(path, "no such file")
    if os.path.isdir(path):
        fail(path, f"is a directory, not {kind}")
    try:
        ok = h5py.is_hdf5(path)
    except OSError as e:
        fail(path, f"cannot read: {e}")
    if not ok:
        fail(path, f"not an HDF5 file, so not {kind} (format {wants[0]})")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        fail(path, f"cannot open ({e}); if prefer is writing it right now, try again")
    fmt = as_str(f.attrs.get("format"), None)
    if fmt not in wants:
        f.close()
        found = "no format attribute" if fmt is None else f"format {fmt!r}"
        hint = (hints or {}).get(fmt, "")
        fail(path, f"not {kind} ({found}; expected {' or '.join(wants)})" + (f": {hint}" if hint else ""))
    return f


# ---------------------------------------------------------------- config and labels

def config_get(text, key):
    """The value of `section.key` (or a top-level `key`) in libconfig text, as a string
    without quotes, or None. Enough for prefer's flat `section: { key = value; };` files."""
    text = as_str(text)
    if "." in key:
        sec, k = key.split(".", 1)
        m = re.search(r"(?m)^\s*" + re.escape(sec) + r"\s*[:=]\s*\{(.*?)\}\s*;?", text, re.S)
        if not m:
            return None
        text = m.group(1)
    else:
        k = key
    m = re.search(r"(?m)^\s*" + re.escape(k) + r"\s*[=:]\s*(\"(?:[^\"\\]|\\.)*\"|[^;\n]+)\s*;", text)
    if not m:
        return None
    v = m.group(1).strip()
    return v[1:-1] if v.startswith('"') else v


def fmt_num(x):
    try:
        return f"{float(x):g}"
    except (TypeError, ValueError):
        return str(x)


def objective_parts(objective, config):
    """(short objective name, beta or None) from the run log's `objective` attribute
    ('dpo*1 (beta 0.1, ...)') or, failing that, the config's train.objective / loss.beta."""
    obj = as_str(objective).strip()
    beta = None
    if obj:
        m = re.search(r"\(beta\s+([0-9.eE+-]+)", obj)
        if m:
            beta = m.group(1)
        terms = obj.split(" (")[0]
        name = re.sub(r"\*1(?![0-9.])", "", terms).strip()
    else:
        name = config_get(config, "train.objective") or ""
    if beta is None:
        beta = config_get(config, "loss.beta")
    if name in ("", "sft"):
        beta = None
    return name, (fmt_num(beta) if beta is not None else None)


def run_label(path, attrs):
    """'dpo beta=0.1' (same style as the eval labels), or the run's directory name."""
    name, beta = objective_parts(attrs.get("objective"), attrs.get("config"))
    if not name:
        return dir_name(path)
    return f"{name} beta={beta}" if beta else name


def dir_name(path):
    d = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return d or os.path.basename(path)


def unique_labels(labels, paths):
    """Append the directory name (or the path) to labels that several runs share."""
    out = list(labels)
    for lab in set(labels):
        idx = [i for i, l in enumerate(labels) if l == lab]
        if len(idx) < 2:
            continue
        dirs = [dir_name(paths[i]) for i in idx]
        if len(set(dirs)) < len(dirs):
            dirs = [paths[i] for i in idx]
        for i, d in zip(idx, dirs):
            out[i] = f"{lab} ({d})"
    return out


# ---------------------------------------------------------------- run-log tables

def table_columns(group):
    """{column name: dataset} of a run-log table, column names with '/' (rewards/chosen),
    in creation order."""
    cols = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            cols[name] = obj

    group.visititems(visit)
    return cols


def tables(f):
    """Names of the top-level groups that are run-log tables (attribute kind = table)."""
    return [k for k, v in f.items() if isinstance(v, h5py.Group) and as_str(v.attrs.get("kind")) == "table"]


def key_column(name, cols):
    """The column that numbers a table's rows: step for /steps, else epoch, round or step."""
    order = ("step",) if name == "steps" else ("epoch", "round", "iteration", "step")
    return next((c for c in order if c in cols), None)


def read_table(f, name):
    """A run-log table as ({column: float64 array}, rows dropped); all columns of one length.
    If the table has a key column (key_column), rows superseded by a resume are dropped
    (docs/formats.md, Resuming; when the key is `step`), then only the last row of each key
    value is kept (a run resumed from an older checkpoint logs steps again), sorted by key.
    ({}, 0) if the table is absent or empty."""
    if name not in f or not isinstance(f[name], h5py.Group):
        return {}, 0
    cols = {}
    for k, ds in table_columns(f[name]).items():
        if ds.ndim != 1:
            continue
        try:
            cols[k] = np.asarray(ds[:], dtype=np.float64)
        except (TypeError, ValueError):
            continue
    if not cols:
        return {}, 0
    n = max(len(v) for v in cols.values())
    for k, v in cols.items():  # a crash mid-write can leave a column short: pad with NaN
        if len(v) < n:
            cols[k] = np.concatenate([v, np.full(n - len(v), np.nan)])
    key = key_column(name, cols)
    if key is None or n == 0:
        return cols, 0
    step = cols[key]
    keep = np.ones(n, bool)
    res_rows = f"resumes/rows/{name}"
    if key == "step" and res_rows in f and "resumes/step" in f:
        for first, s in zip(f[res_rows][:], f["resumes/step"][:]):
            if not np.isfinite(first) or not np.isfinite(s):
                continue
            first = int(min(max(first, 0), n))
            keep[:first] &= ~(step[:first] >= s)
    # the last occurrence of each key value wins
    rev = np.nonzero(keep & np.isfinite(step))[0][::-1]
    _, first = np.unique(step[rev], return_index=True)  # sorted by key value
    order = rev[first]
    dropped = n - len(order)
    return {k: v[order] for k, v in cols.items()}, dropped


def moving_average(y, n):
    """Trailing moving average over the last n rows, ignoring NaN (partial windows at the
    start); NaN where the window holds no value."""
    y = np.asarray(y, dtype=np.float64)
    if n <= 1 or len(y) == 0:
        return y.copy()
    ok = np.isfinite(y)
    c = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    m = np.concatenate([[0], np.cumsum(ok)])
    i = np.arange(1, len(y) + 1)
    lo = np.maximum(i - n, 0)
    cnt = m[i] - m[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, (c[i] - c[lo]) / np.maximum(cnt, 1), np.nan)


# ---------------------------------------------------------------- eval files and the frontier

def policy_label(attrs):
    """'dpo beta=0.1' from an eval file's policy_config; 'reference (SFT)' for the SFT model."""
    cfg = as_str(attrs.get("policy_config", ""))
    name = config_get(cfg, "train.objective")
    if name is None:  # older or hand-written configs: anywhere in the text
        m = re.search(r'objective\s*=\s*"([^"]*)"', cfg)
        name = m.group(1) if m else "?"
    if name == "sft":
        return "reference (SFT)"
    beta = config_get(cfg, "loss.beta")
    if beta is None:
        m = re.search(r"\bbeta\s*=\s*([0-9.eE+-]+)", cfg)
        beta = m.group(1) if m else None
    return f"{name} beta={fmt_num(beta)}" if beta is not None else name


def read_eval(path):
    """One `prefer eval` results file as a dict: label, kl, reward, se, reward_ref, optimum,
    win_rate, pref_acc, path, and curve = (kl[], reward[]) or None. Exits 1 on a bad file."""
    with open_prefer(path, "prefer.eval") as f:
        a = dict(f.attrs)
        missing = [k for k in ("kl", "reward") if k not in a]
        if missing:
            fail(path, f"eval results file without the attribute(s) {', '.join(missing)}")
        g = lambda k: float(a[k]) if k in a else float("nan")  # noqa: E731
        curve = None
        if "frontier/kl" in f and "frontier/reward" in f:
            curve = (f["frontier/kl"][:], f["frontier/reward"][:])
        return dict(label=policy_label(a), kl=g("kl"), reward=g("reward"), se=g("reward_se"),
                    reward_ref=g("reward_ref"), optimum=g("optimum_reward"), win_rate=g("win_rate"),
                    pref_acc=g("pref_acc"), path=path, curve=curve)


def plot_frontier(ax, evals):
    """The DPO paper's Fig. 2 (left) on `ax`: each policy a point at (KL, reward) with its
    standard error, the exact KL-regularised optimum curve from the first file that has one,
    and the reference's reward as a dotted line."""
    curve = next((e["curve"] for e in evals if e["curve"] is not None), None)
    if curve is not None:
        ax.plot(curve[0], curve[1], "k-", lw=1.5, label="exact optimum: teacher x exp(r/beta), normalised")
    ref = next((e["reward_ref"] for e in evals if np.isfinite(e["reward_ref"])), None)
    if ref is not None:
        ax.axhline(ref, color="gray", ls=":", lw=1, label="reference samples")
    for e in sorted(evals, key=lambda e: e["kl"]):
        ax.errorbar([e["kl"]], [e["reward"]], yerr=[e["se"]] if np.isfinite(e["se"]) else None,
                    fmt="o", capsize=3, label=e["label"])
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("KL(policy || reference), nats per response")
    ax.set_ylabel("mean true reward (held-out prompts)")
    ax.set_title("Reward vs KL on the synthetic task")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def frontier_table(evals):
    """The frontier points as Markdown table lines."""
    lines = ["| policy | KL | reward | +- se | optimum at that KL |", "|---|---|---|---|---|"]
    for e in sorted(evals, key=lambda e: e["kl"]):
        lines.append(f"| {e['label']} | {e['kl']:.3f} | {e['reward']:.3f} | {e['se']:.3f} | {e['optimum']:.3f} |")
    return lines


def use_agg():
    """matplotlib with the headless Agg backend; exits with a clear message if missing."""
    try:
        import matplotlib
    except ImportError as e:
        sys.exit(f"{prog()}: {e}: needs Debian's python3-matplotlib (scripts/install-deps.sh --python); "
                 "run with /usr/bin/python3")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt

"""Training metrics: one JSON object per logging step in DIR/metrics.jsonl, and a PNG plot.

Keys follow TRL's names: loss, rewards/chosen, rewards/rejected, rewards/margins,
rewards/accuracies, logps/chosen, logps/rejected, plus grad_norm, lr, step, epoch
(and eval/... for the held-out split).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np


class MetricsLog:
    """Append metrics rows to a JSONL file (or keep them in memory when path is None).

    A new log empties the file. `append=True` (resuming a run) keeps the rows already
    there whose "step" is at most `keep_through_step` (when given) and drops the
    later ones, which the resumed run writes again.
    """

    def __init__(self, path=None, append=False, keep_through_step=None):
        self.path, self.rows = path, []
        if path is None:
            return
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        kept = []
        if append and os.path.exists(path):
            kept = [row for row in read_metrics(path)
                    if keep_through_step is None or row.get("step", 0) <= keep_through_step]
        with open(path, "w") as f:
            f.writelines(json.dumps(row, allow_nan=True) + "\n" for row in kept)

    def write(self, row: dict) -> None:
        clean = {k: _plain(v) for k, v in row.items()}
        self.rows.append(clean)
        if self.path is not None:  # closed per row: each row is in the file before the next step starts
            with open(self.path, "a") as f:
                f.write(json.dumps(clean, allow_nan=True) + "\n")


def _plain(value):
    """NumPy scalars as Python int / float (JSON has no NumPy types)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


def read_metrics(path) -> list:
    """The rows of a metrics.jsonl file; a line that is not JSON is an error naming the file and line."""
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}, line {number}: not a JSON metrics row ({error})") from None
    return rows


def plot_metrics(rows: list, out_png) -> str | None:
    """Plot loss, reward margin and accuracy over steps to `out_png`.

    Returns None on success, or a one-line note when matplotlib is not installed
    (it is the optional `plots` extra) or there is nothing to plot.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install 'minigrad-dpo[plots]')"
    train = [r for r in rows if "loss" in r and "step" in r]
    if not train:
        return "plot skipped: no training steps were logged"
    steps = [r["step"] for r in train]
    panels = [("loss", "DPO loss"), ("rewards/margins", "reward margin"), ("rewards/accuracies", "accuracy")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (key, title) in zip(axes, panels):
        ax.plot(steps, [r.get(key, math.nan) for r in train], label="train")
        evals = [r for r in rows if f"eval/{key}" in r]
        if evals:
            ax.plot([r["step"] for r in evals], [r[f"eval/{key}"] for r in evals], "o-", label="eval")
            ax.legend()
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return None

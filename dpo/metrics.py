"""Training metrics: one JSON object per logging step in DIR/metrics.jsonl, and a PNG plot.

Keys follow TRL's names: loss, rewards/chosen, rewards/rejected, rewards/margins,
rewards/accuracies, logps/chosen, logps/rejected, logits/chosen, logits/rejected,
grad_norm, learning_rate, step, epoch (fractional: updates / updates per epoch),
nll_loss when an sft term is present, loss/<type> for each part of a combined loss,
plus kl_per_token, the mean of (log π - log π_ref) / tokens over the batch's
completions; the held-out split's rows carry TRL's eval_ prefix (eval_loss, ...).
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


def plot_metrics(rows: list, out_png, title: str | None = None) -> str | None:
    """Plot loss, chosen and rejected rewards, reward margin, the per-token KL estimate and
    accuracy over steps to `out_png`, titled `title` (e.g. the loss type).

    Returns None on success, or a one-line note when matplotlib is not installed
    (it is the optional `plots` extra) or there is nothing to plot.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install 'minigrad-dpo[plots]')"
    train = [r for r in rows if "loss" in r and "step" in r]
    if not train:
        return "plot skipped: no training steps were logged"
    steps = [r["step"] for r in train]
    panels = [(("loss",), "loss"), (("rewards/chosen", "rewards/rejected"), "rewards"),
              (("rewards/margins",), "reward margin"), (("kl_per_token",), "KL estimate per token"),
              (("rewards/accuracies",), "accuracy")]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2))
    for ax, (keys, panel_title) in zip(axes, panels):
        for key in keys:
            name_of = key.split("/")[-1] if len(keys) > 1 else ""
            ax.plot(steps, [r.get(key, math.nan) for r in train], label=name_of or "train")
            evals = [r for r in rows if f"eval_{key}" in r]
            if evals:
                ax.plot([r["step"] for r in evals], [r[f"eval_{key}"] for r in evals], "o-",
                        label=f"eval {name_of}".strip())
        if len(keys) > 1 or any(f"eval_{key}" in r for r in rows for key in keys):
            ax.legend()
        ax.set_title(panel_title)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return None

"""Training metrics: one JSON object per logging step in DIR/metrics.jsonl, and a PNG plot.

Keys follow TRL's names: loss, rewards/chosen, rewards/rejected, rewards/margins,
rewards/accuracies, logps/chosen, logps/rejected, plus grad_norm, lr, step, epoch
(and eval/... for the held-out split).
"""

from __future__ import annotations

import json
import math
import os


class MetricsLog:
    """Append metrics rows to a JSONL file (or keep them in memory when path is None)."""

    def __init__(self, path=None, append=False):
        self.path, self.rows = path, []
        if path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            if not append:
                open(path, "w").close()

    def write(self, row: dict) -> None:
        clean = {k: (float(v) if isinstance(v, float) or hasattr(v, "dtype") else v) for k, v in row.items()}
        self.rows.append(clean)
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(clean, allow_nan=True) + "\n")


def read_metrics(path) -> list:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


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

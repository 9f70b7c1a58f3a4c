"""frontier.png: true reward against KL(π_θ ‖ π_ref), one curve per run, and the bandit's
closed-form frontier beside the points DPO reached on it."""

from __future__ import annotations

LABELS = {"sigmoid": "DPO", "ipo": "IPO", "simpo": "SimPO", "sft": "preferred-FT"}


def run_label(loss_type: str, beta) -> str:
    """"DPO β=0.1", "preferred-FT", ...: the legend's name of a run."""
    name = LABELS.get(loss_type, loss_type)
    return name if loss_type == "sft" else f"{name} β={beta:g}"


def plot_frontier(rows: list, out_png) -> str | None:
    """Draw the two panels to `out_png`. Returns None, or a one-line note when matplotlib
    (the optional `plots` extra) is missing or there are no policy rows."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (pip install 'minigrad-dpo[plots]')"
    policy = [r for r in rows if r.get("kind") == "policy"]
    if not policy:
        return "plot skipped: no policy evaluations in the rows"
    runs = list(dict.fromkeys((r["loss_type"], r["beta"]) for r in policy))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    colors = plt.get_cmap("tab10")
    for i, (loss_type, beta) in enumerate(runs):
        points = sorted((r for r in policy if (r["loss_type"], r["beta"]) == (loss_type, beta)),
                        key=lambda r: r["step"])
        left.errorbar([r["kl"] for r in points], [r["reward"] for r in points],
                      xerr=[r["kl_se"] for r in points], yerr=[r["reward_se"] for r in points],
                      fmt="o-" if loss_type == "sigmoid" else "s--", ms=3.5, lw=1.2, capsize=1.5,
                      color=colors(i % 10), label=run_label(loss_type, beta))
    reference = next((r for r in rows if r.get("kind") == "reference"), None)
    if reference is not None:
        left.axhline(reference["reward"], color="0.4", ls=":", lw=1, label=f"π_ref ({reference['reward']:.2f})")
    left.set_xscale("symlog", linthresh=1.0, linscale=1.5)  # the large-β runs live below 1 nat
    left.set_xlim(left=-0.05)
    left.set_xlabel("KL(π_θ ‖ π_ref) on held-out prompts (nats, exact per-position sum; linear below 1)")
    left.set_ylabel("true reward σ(n_pos − n_neg − n_unknown)")
    left.set_title("synthetic reviews: reward vs KL every eval step")
    left.grid(alpha=0.3)
    left.legend(fontsize=7.5, loc="best")

    optimal = sorted((r for r in rows if r.get("kind") == "bandit_optimal"), key=lambda r: r["kl"])
    learned = [r for r in rows if r.get("kind") == "bandit_dpo"]
    if optimal:
        right.plot([r["kl"] for r in optimal], [r["reward"] for r in optimal], "-", color="0.2",
                   label="π* ∝ π_ref·exp(r/β) (closed form)")
    for r in learned:
        right.plot(r["kl"], r["reward"], "o", ms=7, mfc="none", mew=1.5, color="C3")
        right.annotate(f"β={r['beta']:g}", (r["kl"], r["reward"]), textcoords="offset points", xytext=(5, -10),
                       fontsize=7.5)
    if learned:
        right.plot([], [], "o", mfc="none", mew=1.5, color="C3", label="DPO on exact Bradley–Terry preferences")
    right.set_xscale("symlog", linthresh=1e-2)
    right.set_xlabel("KL(π ‖ π_ref) (nats)")
    right.set_ylabel("expected true reward")
    right.set_title("bandit over sampled candidates: theory and DPO")
    right.grid(alpha=0.3)
    right.legend(fontsize=7.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return None

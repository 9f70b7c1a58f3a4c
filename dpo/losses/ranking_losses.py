"""AOT: alignment via optimal transport (Melnyk et al. 2024), losses on *sorted* batches.

Instead of comparing each pair, AOT compares the batch's distribution of
margins with the reference's, quantile by quantile: sort both, pair the k-th
smallest with the k-th smallest, and apply the (label-smoothed) logistic loss
to each difference. It reads raw log-probs (no f-divergence).

Consequences to keep in mind:
- `losses[k]` belongs to the k-th quantile, not to example k; only their mean
  (or sum) has a meaning per batch.
- examples are coupled: π_c,i's gradient is the slope at example i's *rank*,
  so it depends on the rest of the batch; the loss is piecewise smooth (the
  ranks change where two values cross).
- the sort runs on values (NumPy `argsort`), the gradient flows through the
  indexing x[order], identically on both backends.
Notation: see `loss_type.py`.
"""

import numpy as np

from .loss_type import LossType
from .margin_losses import smoothed_logistic, smoothed_logistic_slope


def _scatter_to_examples(values_by_rank, order):
    """grad[order[k]] = values_by_rank[k]: a rank-indexed slope back on the examples."""
    out = np.empty_like(values_by_rank)
    out[order] = values_by_rank
    return out


# ---- aot ----------------------------------------------------------------------------------
def aot_loss(q):
    """AOT, paired: sort the policy's log-prob margins and the reference's separately.

        x = sort(π_c - π_r),  y = sort(ρ_c - ρ_r),  d_k = x_k - y_k
        ℓ_k = -(1-ε)·log σ(β·d_k) - ε·log σ(-β·d_k)
        d(Σ_k ℓ_k)/dπ_c,i = β·(-(1-ε)·σ(-β·d_k) + ε·σ(β·d_k)) at k = rank of example i in x

    All-zero margins give log 2 per quantile. Use: paired preference data, to
    make the policy's margin distribution dominate the reference's (first-order
    stochastic dominance). What goes wrong: needs batches large enough for
    quantiles to mean something (batch of 1 is plain DPO); a gradient step can
    reorder the batch, so per-example gradients jump between quantiles.
    """
    x, _ = q.ops.sort(q.policy_chosen - q.policy_rejected)
    y, _ = q.ops.sort(q.ref_chosen - q.ref_rejected)
    return smoothed_logistic(q.beta * (x - y), q.label_smoothing, q.ops)


def aot_grad(q):
    x, order = q.ops.sort(q.policy_chosen - q.policy_rejected)
    y, _ = q.ops.sort(q.ref_chosen - q.ref_rejected)
    slope = q.beta * smoothed_logistic_slope(q.beta * (x - y), q.label_smoothing, q.ops)
    return _scatter_to_examples(slope, order)


# ---- aot_unpaired -------------------------------------------------------------------------
def aot_unpaired_loss(q):
    """AOT, unpaired: sort the chosen log-ratios and the rejected log-ratios separately.

        x = sort(c),  y = sort(r),  d_k = x_k - y_k
        ℓ_k = -(1-ε)·log σ(β·d_k) - ε·log σ(-β·d_k)
        d(Σ_k ℓ_k)/dπ_c,i = β·(-(1-ε)·σ(-β·d_k) + ε·σ(β·d_k)) at k = rank of example i in x

    All-zero log-ratios give log 2 per quantile. Use: chosen and rejected
    completions that are not matched pairs (unpaired data): the distribution of
    chosen rewards is pushed above that of rejected rewards. What goes wrong:
    as `aot`; moreover row i of the chosen and row i of the rejected need not be
    related, so `losses[k]` has no per-example meaning at all.
    """
    x, _ = q.ops.sort(q.chosen_logratio)
    y, _ = q.ops.sort(q.rejected_logratio)
    return smoothed_logistic(q.beta * (x - y), q.label_smoothing, q.ops)


def aot_unpaired_grad(q):
    x, order = q.ops.sort(q.chosen_logratio)
    y, _ = q.ops.sort(q.rejected_logratio)
    slope = q.beta * smoothed_logistic_slope(q.beta * (x - y), q.label_smoothing, q.ops)
    return _scatter_to_examples(slope, order)


TYPES = (
    LossType("aot", aot_loss, aot_grad, uses_f_divergence=False),
    LossType("aot_unpaired", aot_unpaired_loss, aot_unpaired_grad, uses_f_divergence=False),
)

"""What a loss type is (`LossType`) and what it reads (`Pair`).

Notation used in every docstring of this package, per example:

    π_c, π_r        policy log-probs of the chosen / rejected completion (SUMS over completion tokens)
    ρ_c, ρ_r        the same under the reference model
    c = π_c - ρ_c   chosen log-ratio;  r = π_r - ρ_r  rejected log-ratio
    s(·), s'(·)     the f-divergence score and its slope (`divergences.py`; s(u) = u for reverse KL)
    Δ = s(c) - s(r) the score margin (reverse KL: Δ = (π_c - π_r) - (ρ_c - ρ_r))
    L_c, L_r        completion token counts (`chosen_lengths`, `rejected_lengths`)
    β, ε, γ, τ      beta, label_smoothing, gamma, discopop_tau
    σ               the logistic sigmoid;  σ'(z) = σ(z)σ(-z)

Each loss type is a pair of functions side by side:

- `loss(q)`: per-example losses built from `q`'s tensors with `q.ops` (runs on
  minigrad or torch; autodiff differentiates it);
- `grad_chosen(q)`: d(Σ_i loss_i)/dπ_c written out by hand on NumPy arrays.
  For every type but `aot`/`aot_unpaired` loss_i depends on example i only, so
  this is simply dloss_i/dπ_c,i; the sort in `aot` couples examples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class LossType:
    name: str
    loss: Callable  # loss(pair) -> per-example losses (tensor or array, shape (B,))
    grad_chosen: Callable  # grad_chosen(pair) -> d Σ loss / d π_c (NumPy, shape (B,))
    needs_reference: bool = True
    needs_lengths: tuple = ()  # which of ("chosen", "rejected") lengths it reads
    lengths_only_if_averaged: bool = False  # ipo: lengths are needed only with ipo_average=True
    # False: no valid f-divergence generalisation (raw log-probs or log-ratios, or each completion's own
    # reward, where f-DPO's log Z(x) does not cancel); a non-default f_divergence is refused, as in TRL
    uses_f_divergence: bool = True


@dataclasses.dataclass
class Pair:
    """The per-example quantities a loss type reads, built once per call (`make_pair`).

    Tensors on the `dpo_loss` side, float64 NumPy arrays on the analytic side.
    Reference-derived fields are None when no reference log-probs were given.
    """

    ops: Any
    beta: float
    label_smoothing: float
    gamma: float
    discopop_tau: float
    ipo_average: bool
    bco_delta: float  # bco_pair's running reward shift δ (a constant: no gradient flows through it)
    policy_chosen: Any
    policy_rejected: Any
    ref_chosen: Any = None
    ref_rejected: Any = None
    chosen_lengths: Any = None
    rejected_lengths: Any = None
    chosen_logratio: Any = None  # c = π_c - ρ_c
    rejected_logratio: Any = None  # r = π_r - ρ_r
    chosen_score: Any = None  # s(c)
    rejected_score: Any = None  # s(r)
    chosen_score_slope: Any = None  # s'(c), NumPy side only

    @property
    def score_margin(self):
        """Δ = s(c) - s(r)."""
        return self.chosen_score - self.rejected_score


def make_pair(ops, divergence, f_alpha, policy_chosen, policy_rejected, ref_chosen=None, ref_rejected=None,
              *, with_slopes=False, **hyper) -> Pair:
    """Log-ratios and scores from log-probs; `with_slopes` adds s'(c) (NumPy inputs only)."""
    pair = Pair(ops=ops, policy_chosen=policy_chosen, policy_rejected=policy_rejected,
                ref_chosen=ref_chosen, ref_rejected=ref_rejected, **hyper)
    if ref_chosen is not None:
        pair.chosen_logratio = policy_chosen - ref_chosen
        pair.rejected_logratio = policy_rejected - ref_rejected
        pair.chosen_score = divergence.score(pair.chosen_logratio, f_alpha, ops)
        pair.rejected_score = divergence.score(pair.rejected_logratio, f_alpha, ops)
        if with_slopes:
            pair.chosen_score_slope = divergence.slope(pair.chosen_logratio, f_alpha)
    return pair

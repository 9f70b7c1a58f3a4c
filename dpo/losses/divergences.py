"""f-divergence scores: how a completion's log-ratio u = log π(y|x) - log π_ref(y|x)
enters the pair losses (f-DPO, Wang et al. 2023, "Beyond Reverse KL").

DPO regularises the policy towards the reference with the reverse KL. Swapping
in another f-divergence f changes the implicit reward from β·u to β·f'(e^u).
Each choice below is that score s(u) = f'(e^u) and its slope s'(u), which the
chain rule multiplies into every score-based loss's derivative:
dℓ/dπ_c = (dℓ/ds_c)·s'(c).

    name               s(u) = f'(e^u)                    s'(u)             f'(t)
    reverse_kl         u                                 1                 log t (DPO, default)
    forward_kl         1 - e^(-u)                        e^(-u)            1 - 1/t
    js_divergence      log 2 + log σ(u)                  σ(-u)             log(2t/(1+t))
    alpha_divergence   (e^((α-1)u) - 1) / (α-1)          e^((α-1)u)        (t^(α-1) - 1)/(α-1)

Every score is 0 at u = 0 (policy = reference), as f'(1) = 0 for each f. The
constant matters: it cancels in s(c) - s(r), but not where each score is divided
by its own completion length (averaged `ipo`, `sigmoid_norm`), which would
otherwise add constant·(1/L_c - 1/L_r). TRL's parametrisation and default
(α = 0.5, `f_alpha`); α → 1 is the reverse KL (used when |α - 1| < 1e-6), α = 0
is the forward KL. Every slope is > 0, so a divergence never flips which way a
loss pushes; it reweights the push.

Only the losses of the pair's score margin generalise (the f-DPO derivation
leaves a β·log Z(x) term that cancels only in s(c) - s(r)); `resolve_options`
refuses a non-default f-divergence for the others, as TRL does.

What goes wrong: forward_kl and alpha_divergence with α < 1 grow like e^(-u)
for log-ratios far below 0 (a completion the policy has made much less likely
than the reference) and overflow in float32 beyond |(α-1)u| ≈ 88; TRL clamps
(α-1)u at 80, which silently zeroes the gradient there; here it is not clamped.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .ops import sigmoid

ALPHA_IS_REVERSE_KL = 1e-6  # |α - 1| below this: the α-divergence's limit, the reverse KL


class FDivergence(NamedTuple):
    name: str
    score: Callable  # score(u, alpha, ops) -> s(u), on tensors or NumPy arrays
    slope: Callable  # slope(u, alpha) -> s'(u), NumPy only (for the analytic derivatives)


def _reverse_kl_score(u, alpha, ops):
    return u


def _reverse_kl_slope(u, alpha):
    return np.ones_like(u)


def _forward_kl_score(u, alpha, ops):
    return 1.0 - ops.exp(-u)


def _forward_kl_slope(u, alpha):
    return np.exp(-u)


def _js_score(u, alpha, ops):
    return ops.logsigmoid(u) + math.log(2.0)


def _js_slope(u, alpha):
    return sigmoid(-u)


def _alpha_score(u, alpha, ops):
    if abs(alpha - 1.0) < ALPHA_IS_REVERSE_KL:
        return u
    k = alpha - 1.0
    return (ops.exp(k * u) - 1.0) * (1.0 / k)


def _alpha_slope(u, alpha):
    if abs(alpha - 1.0) < ALPHA_IS_REVERSE_KL:
        return np.ones_like(u)
    return np.exp((alpha - 1.0) * u)


F_DIVERGENCES = {
    "reverse_kl": FDivergence("reverse_kl", _reverse_kl_score, _reverse_kl_slope),
    "forward_kl": FDivergence("forward_kl", _forward_kl_score, _forward_kl_slope),
    "js_divergence": FDivergence("js_divergence", _js_score, _js_slope),
    "alpha_divergence": FDivergence("alpha_divergence", _alpha_score, _alpha_slope),
}

"""f-divergence scores: how a completion's log-ratio u = log π(y|x) - log π_ref(y|x)
enters the pair losses (f-DPO, Wang et al. 2023, "Beyond Reverse KL").

DPO regularises the policy towards the reference with the reverse KL. Swapping
in another f-divergence f changes the implicit reward from β·u to β·f'(e^u) (up
to a constant, which cancels between chosen and rejected). Each choice below is
that score s(u) and its slope s'(u), which the chain rule multiplies into every
score-based loss's derivative: dℓ/dπ_c = (dℓ/ds_c)·s'(c).

    name               s(u)                              s'(u)             reference
    reverse_kl         u                                 1                 DPO (default)
    forward_kl         -e^(-u)                           e^(-u)            f'(t) = 1 - 1/t
    js_divergence      log σ(u)                          σ(-u)             f'(t) = log(2t/(1+t))
    alpha_divergence   e^((α-1)u) / (α-1)                e^((α-1)u)        f'(t) = (t^(α-1) - 1)/(α-1)

TRL's parametrisation and default (α = 0.5, `f_alpha`); α → 1 is the reverse
KL (used when |α - 1| < 1e-6), α = 0 is the forward KL. Every slope is > 0, so
a divergence never flips which way a loss pushes; it reweights the push.

What goes wrong: forward_kl and alpha_divergence with α < 1 grow like e^(-u)
for log-ratios far below 0 (a completion the policy has made much less likely
than the reference) and overflow in float32 beyond |(α-1)u| ≈ 88; TRL clamps
the exponent, which silently zeroes the gradient there; here it is not clamped.
"""

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
    return -ops.exp(-u)


def _forward_kl_slope(u, alpha):
    return np.exp(-u)


def _js_score(u, alpha, ops):
    return ops.logsigmoid(u)


def _js_slope(u, alpha):
    return sigmoid(-u)


def _alpha_score(u, alpha, ops):
    if abs(alpha - 1.0) < ALPHA_IS_REVERSE_KL:
        return u
    k = alpha - 1.0
    return ops.exp(k * u) * (1.0 / k)


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

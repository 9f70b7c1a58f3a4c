"""Exercise `dpo_sigmoid`: the gradient of the DPO loss with respect to its four log-probs.

    check it:   python -m minigrad.exercises check dpo_sigmoid

The loss (given), per example i of a batch of B preference pairs:
    z = β·((π_c - ρ_c) - (π_r - ρ_r))
    ℓ = -log σ(z)
π_c, π_r: the policy's log-probs of the chosen / rejected completion (summed over its
tokens); ρ_c, ρ_r: the same under the frozen reference model; β > 0.

To derive (by hand, no autodiff): dℓ/dπ_c, dℓ/dπ_r, dℓ/dρ_c, dℓ/dρ_r.
Start from d(-log σ(z))/dz, then the chain rule through z.
Return them as a tuple of four NumPy arrays of shape (B,), in that order: entry i is
the derivative of ℓ_i with respect to example i's log-prob.
(The reference gets no gradient in training, but its derivative is still well defined:
the checker checks all four.)
"""

import numpy as np


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """ℓ_i = -log σ(z_i), computed stably as log(1 + e^(-|z|)) - min(z, 0)."""
    z = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return np.log1p(np.exp(-np.abs(z))) - np.minimum(z, 0.0)


def dpo_loss_grads(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """(dℓ/dπ_c, dℓ/dπ_r, dℓ/dρ_c, dℓ/dρ_r), four arrays of shape (B,)."""
    raise NotImplementedError("your turn: return the four derivatives")

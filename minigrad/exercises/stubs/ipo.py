"""Exercise `ipo`: the gradient of the IPO loss with respect to its four log-probs.

    check it:   python -m minigrad.exercises check ipo

The loss (given), per example i, in the per-token form the project uses by default
(`dpo_loss(..., loss_type="ipo")`, ipo_average=True):
    h = (π_c - ρ_c)/L_c - (π_r - ρ_r)/L_r
    ℓ = (h - 1/(2β))²
π_c, π_r: the policy's log-probs of the chosen / rejected completion (summed over its
tokens); ρ_c, ρ_r: the same under the reference; L_c, L_r: the completions' token
counts (constants, no gradient); β > 0.

To derive (by hand): dℓ/dπ_c, dℓ/dπ_r, dℓ/dρ_c, dℓ/dρ_r.
Return them as a tuple of four NumPy arrays of shape (B,), in that order.
"""


def ipo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_lengths, rejected_lengths, beta):
    """ℓ_i = (h_i - 1/(2β))²."""
    h = (policy_chosen - ref_chosen) / chosen_lengths - (policy_rejected - ref_rejected) / rejected_lengths
    return (h - 1.0 / (2.0 * beta)) ** 2


def ipo_loss_grads(policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_lengths, rejected_lengths,
                   beta):
    """(dℓ/dπ_c, dℓ/dπ_r, dℓ/dρ_c, dℓ/dρ_r), four arrays of shape (B,)."""
    raise NotImplementedError("your turn: return the four derivatives")

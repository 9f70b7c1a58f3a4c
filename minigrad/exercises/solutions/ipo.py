"""Solution `ipo`: ℓ = (h - 1/(2β))², h = (π_c - ρ_c)/L_c - (π_r - ρ_r)/L_r.

    dℓ/dh = 2·(h - 1/(2β))
    dh/dπ_c = 1/L_c,  dh/dρ_c = -1/L_c,  dh/dπ_r = -1/L_r,  dh/dρ_r = 1/L_r

The push is proportional to the distance from the target margin 1/(2β), and changes
sign above it: IPO regresses h onto 1/(2β) instead of pushing it up forever like DPO.
"""


def ipo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_lengths, rejected_lengths, beta):
    """ℓ_i = (h_i - 1/(2β))²."""
    h = (policy_chosen - ref_chosen) / chosen_lengths - (policy_rejected - ref_rejected) / rejected_lengths
    return (h - 1.0 / (2.0 * beta)) ** 2


def ipo_loss_grads(policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_lengths, rejected_lengths,
                   beta):
    """(dℓ/dπ_c, dℓ/dπ_r, dℓ/dρ_c, dℓ/dρ_r), four arrays of shape (B,)."""
    h = (policy_chosen - ref_chosen) / chosen_lengths - (policy_rejected - ref_rejected) / rejected_lengths
    slope = 2.0 * (h - 1.0 / (2.0 * beta))
    return slope / chosen_lengths, -slope / rejected_lengths, -slope / chosen_lengths, slope / rejected_lengths

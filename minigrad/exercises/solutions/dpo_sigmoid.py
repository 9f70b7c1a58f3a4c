"""Solution `dpo_sigmoid`: ℓ = -log σ(z), z = β·((π_c - ρ_c) - (π_r - ρ_r)).

    dℓ/dz = -σ'(z)/σ(z) = -σ(z)σ(-z)/σ(z) = -σ(-z)
    dz/dπ_c = β,  dz/dπ_r = -β,  dz/dρ_c = -β,  dz/dρ_r = β

so  dℓ/dπ_c = -β·σ(-z),  dℓ/dπ_r = +β·σ(-z),  dℓ/dρ_c = +β·σ(-z),  dℓ/dρ_r = -β·σ(-z).

σ(-z) is the weight of the example: close to 1 when the implicit reward ranks the pair
the wrong way round (z ≪ 0), close to 0 once it ranks it right by a wide margin.
"""

import numpy as np


def sigmoid(x):
    """σ(x) without overflow."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """ℓ_i = -log σ(z_i), computed stably as log(1 + e^(-|z|)) - min(z, 0)."""
    z = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return np.log1p(np.exp(-np.abs(z))) - np.minimum(z, 0.0)


def dpo_loss_grads(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    """(dℓ/dπ_c, dℓ/dπ_r, dℓ/dρ_c, dℓ/dρ_r), four arrays of shape (B,)."""
    z = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    weight = beta * sigmoid(-z)
    return -weight, weight, weight, -weight

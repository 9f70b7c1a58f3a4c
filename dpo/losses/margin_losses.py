"""Losses of the pair's score margin Δ = s(c) - s(r) (reverse KL: Δ = (π_c - π_r) - (ρ_c - ρ_r)).

These see only the difference between chosen and rejected, so adding the same
constant to ρ_c and ρ_r changes nothing (reverse KL), and the gradient with
respect to π_r is the chosen one mirrored: dℓ/dπ_r = -dℓ/dπ_c · s'(r)/s'(c).
Notation: see `loss_type.py`.
"""

import math

from .loss_type import LossType


def smoothed_logistic(z, eps, ops):
    """-(1-ε)·log σ(z) - ε·log σ(-z): logistic loss whose label is right with probability 1-ε."""
    return -(1.0 - eps) * ops.logsigmoid(z) - eps * ops.logsigmoid(-z)


def smoothed_logistic_slope(z, eps, ops):
    """d/dz of `smoothed_logistic`: -(1-ε)·σ(-z) + ε·σ(z)."""
    return -(1.0 - eps) * ops.sigmoid(-z) + eps * ops.sigmoid(z)


# ---- sigmoid ------------------------------------------------------------------------------
def sigmoid_loss(q):
    """DPO (Rafailov et al. 2023); conservative DPO (cDPO) when ε = label_smoothing > 0.

        ℓ = -(1-ε)·log σ(βΔ) - ε·log σ(-βΔ)
        dℓ/dπ_c = β·s'(c)·(-(1-ε)·σ(-βΔ) + ε·σ(βΔ))

    Zero margin gives log 2. Use: the default; a Bradley-Terry model of the
    preference with the reward β·log(π/π_ref). What goes wrong: with ε = 0 the
    loss keeps pushing Δ → ∞ on separable data (the reward gap is unbounded and
    β is the only brake), and the gradient only fixes the *difference*, so both
    log-probs can fall together (likelihood displacement). With ε > 0 the
    optimum is finite: dℓ/dΔ = 0 at βΔ = log((1-ε)/ε), and above it the
    gradient pushes the chosen log-prob down.
    """
    return smoothed_logistic(q.beta * q.score_margin, q.label_smoothing, q.ops)


def sigmoid_grad(q):
    z = q.beta * q.score_margin
    return q.beta * q.chosen_score_slope * smoothed_logistic_slope(z, q.label_smoothing, q.ops)


# ---- robust -------------------------------------------------------------------------------
def robust_loss(q):
    """Robust DPO (Chowdhury et al. 2024): unbiased under labels flipped with probability ε.

        ℓ = (-(1-ε)·log σ(βΔ) + ε·log σ(-βΔ)) / (1 - 2ε)
        dℓ/dπ_c = β·s'(c)·(-(1-ε)·σ(-βΔ) - ε·σ(βΔ)) / (1 - 2ε)      (always < 0)

    Zero margin gives log 2 for every ε. Use: preference labels known to be
    noisy at a rate ε < 0.5. What goes wrong: for ε > 0 the loss is unbounded
    below (→ -∞ linearly as Δ → ∞), so it pushes margins even harder than DPO;
    1/(1-2ε) blows up as ε → 0.5.
    """
    z = q.beta * q.score_margin
    eps = q.label_smoothing
    return (-(1.0 - eps) * q.ops.logsigmoid(z) + eps * q.ops.logsigmoid(-z)) * (1.0 / (1.0 - 2.0 * eps))


def robust_grad(q):
    z = q.beta * q.score_margin
    eps = q.label_smoothing
    return q.beta * q.chosen_score_slope * (-(1 - eps) * q.ops.sigmoid(-z) - eps * q.ops.sigmoid(z)) / (1 - 2 * eps)


# ---- hinge --------------------------------------------------------------------------------
def hinge_loss(q):
    """SLiC-style hinge (Zhao et al. 2023): ℓ = max(0, 1 - βΔ).

        dℓ/dπ_c = -β·s'(c) where βΔ < 1, else 0 (0 at the kink βΔ = 1, as relu'(0) = 0)

    Zero margin gives 1. Use: stop pushing a pair once its margin reaches 1/β.
    What goes wrong: pairs past the margin give no gradient at all, and inside
    it every pair pulls equally hard whatever its margin (no confidence weighting).
    """
    return q.ops.relu(1.0 - q.beta * q.score_margin)


def hinge_grad(q):
    inside = (1.0 - q.beta * q.score_margin) > 0
    return -q.beta * q.chosen_score_slope * inside


# ---- ipo ----------------------------------------------------------------------------------
def ipo_margin(q):
    """h = s(c)/L_c - s(r)/L_r (ipo_average=True, TRL's per-token form), or Δ (the paper's summed form)."""
    if q.ipo_average:
        return q.chosen_score / q.chosen_lengths - q.rejected_score / q.rejected_lengths
    return q.score_margin


def ipo_loss(q):
    """IPO (Azar et al. 2023, eq. 17, β in the role of τ): ℓ = (h - 1/(2β))².

        h = s(c)/L_c - s(r)/L_r   (ipo_average=True, default: log-ratios averaged per completion token, as TRL)
        h = Δ                     (ipo_average=False: the paper's summed log-ratios)
        dℓ/dπ_c = 2·(h - 1/(2β))·s'(c) / L_c     (drop the 1/L_c for the summed form)

    Zero margin gives 1/(4β²). Use: deterministic or near-deterministic
    preferences, where DPO's margin runs away; IPO regresses h onto the finite
    target 1/(2β). What goes wrong: above the target the gradient pushes the
    chosen log-prob *down*; with the summed form the target is per sequence,
    so long completions reach it with tiny per-token changes (length matters).
    """
    return (ipo_margin(q) - 1.0 / (2.0 * q.beta)) ** 2


def ipo_grad(q):
    per_token = q.chosen_lengths if q.ipo_average else 1.0
    return 2.0 * (ipo_margin(q) - 1.0 / (2.0 * q.beta)) * q.chosen_score_slope / per_token


# ---- exo_pair -----------------------------------------------------------------------------
def exo_pair_loss(q):
    """EXO (Ji et al. 2024, eq. 16): KL(p_θ ‖ p_label) over {chosen, rejected} for K = 2.

        p_θ = (σ(βΔ), σ(-βΔ)),  p_label = (1-ε, ε),  ε = label_smoothing ∈ (0, 0.5)
        ℓ = σ(βΔ)·(log σ(βΔ) - log(1-ε)) + σ(-βΔ)·(log σ(-βΔ) - log ε)
        dℓ/dπ_c = β·s'(c)·σ(βΔ)·σ(-βΔ)·(βΔ - log((1-ε)/ε))

    Zero margin gives -log 2 - ½·log(ε(1-ε)). Use: mode-seeking alternative to
    DPO's mean-seeking fit (the paper uses ε = 1e-3). What goes wrong: needs ε > 0
    (log ε); the minimum sits at βΔ = log((1-ε)/ε) (≈ 6.9 for ε = 1e-3), above which
    the chosen log-prob is pushed down; the gradient vanishes for |βΔ| large.
    """
    z = q.beta * q.score_margin
    eps = q.label_smoothing
    ops = q.ops
    return (ops.sigmoid(z) * (ops.logsigmoid(z) - math.log(1.0 - eps))
            + ops.sigmoid(-z) * (ops.logsigmoid(-z) - math.log(eps)))


def exo_pair_grad(q):
    z = q.beta * q.score_margin
    eps = q.label_smoothing
    target = math.log(1.0 - eps) - math.log(eps)
    return q.beta * q.chosen_score_slope * q.ops.sigmoid(z) * q.ops.sigmoid(-z) * (z - target)


# ---- discopop -----------------------------------------------------------------------------
def discopop_loss(q):
    """DiscoPOP / LRML (Chan et al. 2024, eq. 5): a logistic-exponential blend, z = βΔ.

        m = σ(z/τ)
        ℓ = (1-m)·(-log σ(z)) + m·e^(-z)
        dℓ/dz = m'·(e^(-z) + log σ(z)) - (1-m)·σ(-z) - m·e^(-z),   m' = σ(z/τ)σ(-z/τ)/τ
        dℓ/dπ_c = β·s'(c)·dℓ/dz

    Zero margin gives (1 + log 2)/2. Use: the LLM-discovered objective of the
    paper (τ = discopop_tau = 0.05, TRL's default). What goes wrong: it is
    non-convex: near zero margin (for τ = 0.05, -0.119 < βΔ < 0.072) dℓ/dz > 0,
    so the gradient pushes the chosen log-prob *down* there (at z = 0:
    dℓ/dz = (1 - log 2)/(4τ) - 3/4 ≈ 0.78); e^(-z) overflows (NaN as 0·∞) for
    very negative margins (z < -88 in float32).
    """
    z = q.beta * q.score_margin
    ops = q.ops
    m = ops.sigmoid(z * (1.0 / q.discopop_tau))
    return (1.0 - m) * (-ops.logsigmoid(z)) + m * ops.exp(-z)


def discopop_grad(q):
    z = q.beta * q.score_margin
    ops = q.ops
    m = ops.sigmoid(z / q.discopop_tau)
    dm = m * (1 - m) / q.discopop_tau
    e = ops.exp(-z)
    dz = dm * (e + ops.logsigmoid(z)) - (1 - m) * ops.sigmoid(-z) - m * e
    return q.beta * q.chosen_score_slope * dz


# ---- sigmoid_norm -------------------------------------------------------------------------
def sigmoid_norm_loss(q):
    """Length-normalised DPO (TRL's `sigmoid_norm`): DPO on per-token score margins.

        h = s(c)/L_c - s(r)/L_r
        ℓ = -log σ(βh)
        dℓ/dπ_c = -β·s'(c)·σ(-βh) / L_c      (always < 0)

    Zero margin gives log 2. Use: pairs of very different lengths, where summed
    log-ratios reward or punish length itself. What goes wrong: per-token
    margins are ~L times smaller than summed ones, so β must be ~L times larger
    to get the same push; with the DPO-sized β the loss barely moves.
    """
    h = q.chosen_score / q.chosen_lengths - q.rejected_score / q.rejected_lengths
    return -q.ops.logsigmoid(q.beta * h)


def sigmoid_norm_grad(q):
    h = q.chosen_score / q.chosen_lengths - q.rejected_score / q.rejected_lengths
    return -q.beta * q.chosen_score_slope * q.ops.sigmoid(-q.beta * h) / q.chosen_lengths


BOTH = ("chosen", "rejected")
TYPES = (
    LossType("sigmoid", sigmoid_loss, sigmoid_grad),
    LossType("robust", robust_loss, robust_grad),
    LossType("ipo", ipo_loss, ipo_grad, needs_lengths=BOTH, lengths_only_if_averaged=True),
    LossType("hinge", hinge_loss, hinge_grad),
    LossType("exo_pair", exo_pair_loss, exo_pair_grad),
    LossType("discopop", discopop_loss, discopop_grad),
    LossType("sigmoid_norm", sigmoid_norm_loss, sigmoid_norm_grad, needs_lengths=BOTH),
)

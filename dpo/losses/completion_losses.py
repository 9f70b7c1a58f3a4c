"""Losses that score each completion's own reward, not only the pair's margin.

Chosen and rejected each get a target of their own (a sign, a value, a
sigmoid), so these losses see absolute rewards: adding the same constant to
ρ_c and ρ_r *does* change them. For the same reason f-DPO's log Z(x) term does
not cancel, so they read the raw log-ratios c, r and refuse a non-default
f_divergence, as TRL does. Notation: see `loss_type.py`.
"""

from .loss_type import LossType


# ---- nca_pair -----------------------------------------------------------------------------
def nca_pair_loss(q):
    """NCA, pairwise (Chen et al. 2024, "Noise Contrastive Alignment"), a = β·c, b = β·r:

        ℓ = -log σ(a) - ½·log σ(-a) - ½·log σ(-b)
        dℓ/dπ_c = β·(½·σ(a) - σ(-a))        (< 0 iff a < log 2)

    Zero rewards give 2·log 2. Use: keep the chosen likelihood from falling
    (DPO only fixes the difference; NCA optimises absolute rewards). What goes
    wrong: the chosen reward is driven to a = log 2, not beyond: above it the
    gradient pushes the chosen log-prob down; the rejected side always goes
    down (dℓ/dπ_r = ½·β·σ(b) > 0).
    """
    ops = q.ops
    a = q.beta * q.chosen_logratio
    b = q.beta * q.rejected_logratio
    return -ops.logsigmoid(a) - 0.5 * ops.logsigmoid(-a) - 0.5 * ops.logsigmoid(-b)


def nca_pair_grad(q):
    a = q.beta * q.chosen_logratio
    return q.beta * (0.5 * q.ops.sigmoid(a) - q.ops.sigmoid(-a))


# ---- bco_pair -----------------------------------------------------------------------------
def bco_pair_loss(q):
    """BCO, pairwise (Jung et al. 2024): a binary classifier of chosen vs rejected rewards.

        a = β·c - δ,  b = β·r - δ
        ℓ = -log σ(a) - log σ(-b)
        dℓ/dπ_c = -β·σ(-a)      (always < 0;  dℓ/dπ_r = β·σ(b) > 0)

    δ is the running mean of the batch-mean reward (β·c and β·r of every batch
    seen so far, this one included), the BCO paper's reward shift. The state is
    explicit: pass `bco_state=RunningMean()` and keep it across steps (and in
    checkpoints); `dpo_loss` updates it once per call. It is a constant for the
    gradient (no gradient flows through δ). Without a state δ = 0, which is TRL
    1.16's bco_pair (it keeps no running shift). Zero rewards and δ = 0 give
    2·log 2. Use: the reward shift δ centres the classifier so that chosen rewards end above, rejected below, the
    running average. What goes wrong: every call (evaluation too) moves the
    state; a state not saved with the checkpoint changes the loss on resume.
    """
    ops = q.ops
    a = q.beta * q.chosen_logratio - q.bco_delta
    b = q.beta * q.rejected_logratio - q.bco_delta
    return -ops.logsigmoid(a) - ops.logsigmoid(-b)


def bco_pair_grad(q):
    a = q.beta * q.chosen_logratio - q.bco_delta
    return -q.beta * q.ops.sigmoid(-a)


# ---- sppo_hard ----------------------------------------------------------------------------
def sppo_hard_loss(q):
    """SPPO with hard win probabilities (Wu et al. 2024, eq. 4.7 with P = 1 for the winner, 0 for the loser):

        ℓ = (c - 1/(2β))² + (r + 1/(2β))²
        dℓ/dπ_c = 2·(c - 1/(2β))     (< 0 iff c < 1/(2β))

    Zero log-ratios give 1/(2β²). Use: self-play iterations where each
    completion's log-ratio is regressed onto ±1/(2β). What goes wrong: a chosen
    log-ratio above its target is pushed down, a rejected one below -1/(2β) is
    pushed up; squared error gives large gradients far from the targets.
    """
    half = 0.5 / q.beta
    return (q.chosen_logratio - half) ** 2 + (q.rejected_logratio + half) ** 2


def sppo_hard_grad(q):
    return 2.0 * (q.chosen_logratio - 0.5 / q.beta)


# ---- apo_zero -----------------------------------------------------------------------------
def apo_zero_loss(q):
    """APO-zero (D'Oosterlinck et al. 2024, eq. 7), on the raw log-ratios c, r (no f-divergence):

        ℓ = 1 - σ(βc) + σ(βr)
        dℓ/dπ_c = -β·σ(βc)·σ(-βc)      (always < 0;  dℓ/dπ_r = β·σ(βr)·σ(-βr) > 0)

    Zero log-ratios give 1. Use: when the chosen answers are better than what
    the model produces now: raise chosen, lower rejected, each on its own. What
    goes wrong: bounded in (0, 2), so the gradient vanishes once |βc| and |βr|
    are a few units (saturation), however the pair's margin stands.
    """
    ops = q.ops
    return 1.0 - ops.sigmoid(q.beta * q.chosen_logratio) + ops.sigmoid(q.beta * q.rejected_logratio)


def apo_zero_grad(q):
    z = q.beta * q.chosen_logratio
    return -q.beta * q.ops.sigmoid(z) * q.ops.sigmoid(-z)


# ---- apo_down -----------------------------------------------------------------------------
def apo_down_loss(q):
    """APO-down (D'Oosterlinck et al. 2024, eq. 8), on the raw log-ratios c, r:

        ℓ = σ(βc) + 1 - σ(β(c - r))
        dℓ/dπ_c = β·σ(βc)·σ(-βc) - β·σ(β(c - r))·σ(-β(c - r))

    Zero log-ratios give 1. Use: when the chosen answers are *worse* than what
    the model already produces: lower the chosen likelihood, the rejected one
    more. By design the chosen log-prob is pushed *down* where σ'(βc) > σ'(β(c - r)),
    that is where |c| < |c - r|; the rejected one always goes down
    (dℓ/dπ_r = β·σ'(β(c - r)) > 0). What goes wrong: used on data whose chosen
    answers are good, it unlearns them.
    """
    ops = q.ops
    margin = q.chosen_logratio - q.rejected_logratio
    return ops.sigmoid(q.beta * q.chosen_logratio) + 1.0 - ops.sigmoid(q.beta * margin)


def apo_down_grad(q):
    ops = q.ops
    zc = q.beta * q.chosen_logratio
    zm = q.beta * (q.chosen_logratio - q.rejected_logratio)
    chosen_term = q.beta * ops.sigmoid(zc) * ops.sigmoid(-zc)
    margin_term = q.beta * ops.sigmoid(zm) * ops.sigmoid(-zm)
    return chosen_term - margin_term


TYPES = (
    LossType("nca_pair", nca_pair_loss, nca_pair_grad, uses_f_divergence=False),
    LossType("bco_pair", bco_pair_loss, bco_pair_grad, uses_f_divergence=False),
    LossType("sppo_hard", sppo_hard_loss, sppo_hard_grad, uses_f_divergence=False),
    LossType("apo_zero", apo_zero_loss, apo_zero_grad, uses_f_divergence=False),
    LossType("apo_down", apo_down_loss, apo_down_grad, uses_f_divergence=False),
)

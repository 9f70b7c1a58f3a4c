"""Reference-free losses: no reference model, length-normalised policy log-probs.

They read a_c = π_c/L_c and a_r = π_r/L_r, the average log-prob per completion
token; reference log-probs may be None (and are ignored if given); a non-default
`f_divergence` is refused for simpo and orpo (there is no log-ratio to score).
TRL implements simpo in its CPOTrainer and orpo in its ORPOTrainer (both in
`trl.experimental` in 1.16); their preference terms agree with these.

The NLL terms differ. Here it is per example, over the completion only:
−π_c/L_c, then the batch mean (the RPO paper's form; `sft` in a list of loss
types is the same term). TRL's DPOTrainer `sft` averages over all chosen
completion tokens of the batch at once, which equals this only when every
chosen completion has the same length. TRL's ORPOTrainer takes the NLL over the
chosen rows' prompt *and* completion tokens (cross-entropy over every
non-padding token), so it differs even when all completion lengths are equal.
That prompt-and-completion NLL is not
offered: it trains the model to produce prompts, which carry no preference; the
ORPO paper's L_SFT is the NLL of the chosen response given the prompt; and
`dpo_loss` takes summed completion log-probs (`dpo.logprobs` masks the prompt
out), so the prompt term would need a second log-prob path through every
backend. Notation: see `loss_type.py`.
"""

from .loss_type import LossType
from .margin_losses import smoothed_logistic, smoothed_logistic_slope


def _average_margin(q):
    return q.policy_chosen / q.chosen_lengths - q.policy_rejected / q.rejected_lengths


# ---- simpo --------------------------------------------------------------------------------
def simpo_loss(q):
    """SimPO (Meng et al. 2024; TRL's CPOTrainer loss_type="simpo"): DPO without a reference, on
    average log-probs, with a target margin γ:

        z = β·(π_c/L_c - π_r/L_r) - γ
        ℓ = -(1-ε)·log σ(z) - ε·log σ(-z)
        dℓ/dπ_c = (β/L_c)·(-(1-ε)·σ(-z) + ε·σ(z))

    Equal averages and γ = 0 give log 2; equal averages give log(1 + e^γ). Use:
    no reference model to hold in memory; length normalisation removes the
    length bias of summed log-probs. The paper uses β ≈ 2-2.5 and γ/β ≈ 0.5
    (TRL's default γ = 0.5 with β = 0.1). What goes wrong: nothing anchors the
    policy to where it started (no KL to a reference), so the average chosen
    log-prob can drift down along with the rejected one; add "sft" to hold it
    (["simpo", "sft"] is CPO-SimPO).
    """
    z = q.beta * _average_margin(q) - q.gamma
    return smoothed_logistic(z, q.label_smoothing, q.ops)


def simpo_grad(q):
    z = q.beta * _average_margin(q) - q.gamma
    return q.beta / q.chosen_lengths * smoothed_logistic_slope(z, q.label_smoothing, q.ops)


# ---- orpo ---------------------------------------------------------------------------------
def _log_odds_ratio(q):
    """log odds(a_c) - log odds(a_r), odds(a) = e^a / (1 - e^a), a = average log-prob (< 0)."""
    ops = q.ops
    a_c = q.policy_chosen / q.chosen_lengths
    a_r = q.policy_rejected / q.rejected_lengths
    return (a_c - a_r) - (ops.log(1.0 - ops.exp(a_c)) - ops.log(1.0 - ops.exp(a_r)))


def orpo_loss(q):
    """ORPO (Hong et al. 2024; TRL's ORPOTrainer, λ = beta = 0.1 there too): NLL of the chosen
    completion plus an odds-ratio preference term, on average log-probs a = π/L. The
    odds-ratio term equals TRL's; the NLL term is over completion tokens only, where TRL's
    covers the prompt too (see the module docstring):

        lo = (a_c - a_r) - (log(1 - e^a_c) - log(1 - e^a_r))          (log odds ratio)
        ℓ = -a_c - β·log σ(lo)
        dℓ/dπ_c = -1/L_c - β·σ(-lo) / ((1 - e^a_c)·L_c)      (always < 0)

    At a_c = a_r = log ½ (token probability ½): lo = 0 and ℓ = (1 + β)·log 2.
    Use: one-stage alignment of a base model (SFT and preference together), no
    reference model. What goes wrong: needs a < 0 (a token probability of 1
    makes log(1 - e^a) = -∞); 1/(1 - e^a_c) makes the gradient large as the
    chosen probability approaches 1; with small β the NLL term dominates.
    """
    a_c = q.policy_chosen / q.chosen_lengths
    return -a_c - q.beta * q.ops.logsigmoid(_log_odds_ratio(q))


def orpo_grad(q):
    ops = q.ops
    a_c = q.policy_chosen / q.chosen_lengths
    lo = _log_odds_ratio(q)
    return -1.0 / q.chosen_lengths - q.beta * ops.sigmoid(-lo) / ((1.0 - ops.exp(a_c)) * q.chosen_lengths)


# ---- sft ----------------------------------------------------------------------------------
def sft_loss(q):
    """Supervised NLL of the chosen completion, per token:

        ℓ = -π_c / L_c
        dℓ/dπ_c = -1/L_c      (dℓ/dπ_r = 0: the rejected completion is not read)

    Use: combined with a preference loss, e.g. ["sigmoid", "sft"] with
    loss_weights [1, α] is RPO (Pang et al. 2024), which keeps the chosen
    likelihood from falling. What goes wrong: alone it is plain fine-tuning on
    the chosen answers (it ignores the preference); a large weight drowns the
    preference term.
    """
    return -q.policy_chosen / q.chosen_lengths


def sft_grad(q):
    return -1.0 / q.chosen_lengths


BOTH = ("chosen", "rejected")
TYPES = (
    LossType("simpo", simpo_loss, simpo_grad, needs_reference=False, needs_lengths=BOTH, uses_f_divergence=False),
    LossType("orpo", orpo_loss, orpo_grad, needs_reference=False, needs_lengths=BOTH, uses_f_divergence=False),
    # sft reads no score, so any f_divergence leaves it unchanged; TRL accepts the pair too
    LossType("sft", sft_loss, sft_grad, needs_reference=False, needs_lengths=("chosen",)),
)

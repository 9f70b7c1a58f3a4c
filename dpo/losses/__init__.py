"""The DPO loss family, written once against the backend surface (minigrad or torch).

    from dpo.losses import dpo_loss
    out = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.1, loss_type="sigmoid", backend=be)
    out.losses.mean().backward();  out.margins          # detached β·(c - r)

Inputs are per-example log-probs SUMMED over completion tokens, shape (B,).
Notation (details in `loss_type.py`): c = π_c - ρ_c, r = π_r - ρ_r (policy minus
reference log-probs); s, s' the f-divergence score and slope (s(u) = u for the
default reverse KL); Δ = s(c) - s(r); L_c, L_r completion token counts;
β beta, ε label_smoothing, γ gamma, τ discopop_tau; σ'(z) = σ(z)σ(-z).

    type          loss per example                                  dℓ/dπ_c
    sigmoid       -(1-ε)log σ(βΔ) - ε log σ(-βΔ)                    β s'(c)(-(1-ε)σ(-βΔ) + εσ(βΔ))
    robust        (-(1-ε)log σ(βΔ) + ε log σ(-βΔ)) / (1-2ε)         β s'(c)(-(1-ε)σ(-βΔ) - εσ(βΔ)) / (1-2ε)
    ipo           (h - 1/(2β))²,  h = s(c)/L_c - s(r)/L_r  [or Δ]   2(h - 1/(2β)) s'(c)/L_c  [or without /L_c]
    hinge         max(0, 1 - βΔ)                                    -β s'(c) where βΔ < 1, else 0
    exo_pair      σ(βΔ)(log σ(βΔ) - log(1-ε))                       β s'(c) σ'(βΔ)(βΔ - log((1-ε)/ε))
                   + σ(-βΔ)(log σ(-βΔ) - log ε)
    nca_pair      -log σ(a) - ½log σ(-a) - ½log σ(-b),              β(½σ(a) - σ(-a))
                   a = βc, b = βr
    bco_pair      -log σ(βc - δ) - log σ(-(βr - δ))                 -β σ(δ - βc)
    sppo_hard     (c - 1/(2β))² + (r + 1/(2β))²                     2(c - 1/(2β))
    apo_zero      1 - σ(βc) + σ(βr)                                 -β σ'(βc)
    apo_down      σ(βc) + 1 - σ(β(c - r))                           β σ'(βc) - β σ'(β(c - r))
    aot           smoothed logistic of β(sort(π_c-π_r) - sort(ρ_c-ρ_r))   slope at example i's rank
    aot_unpaired  smoothed logistic of β(sort(c) - sort(r))         slope at example i's rank
    discopop      (1-m)(-log σ(z)) + m e^(-z),  z = βΔ, m = σ(z/τ)  β s'(c)(m'(e^(-z) + log σ(z))
                                                                       - (1-m)σ(-z) - m e^(-z)),  m' = σ'(z/τ)/τ
    sigmoid_norm  -log σ(βh),  h = s(c)/L_c - s(r)/L_r              -β s'(c) σ(-βh)/L_c
    simpo         smoothed logistic of z = β(π_c/L_c - π_r/L_r) - γ  (β/L_c)(-(1-ε)σ(-z) + εσ(z))
    orpo          -π_c/L_c - β log σ(lo),  lo = log odds ratio      -1/L_c - β σ(-lo)/((1 - e^(π_c/L_c)) L_c)
    sft           -π_c/L_c                                          -1/L_c

The same derivatives are code: `analytic_grad_chosen(loss_type, ...)`, each
type's `grad_chosen` beside its `loss` in `margin_losses.py` (sigmoid, robust,
ipo, hinge, exo_pair, discopop, sigmoid_norm), `completion_losses.py`
(nca_pair, bco_pair, sppo_hard, apo_zero, apo_down), `ranking_losses.py` (aot,
aot_unpaired) and `reference_free_losses.py` (simpo, orpo, sft), whose
docstrings also say when to use each type and what goes wrong with it.

Which way each one pushes (dℓ/dπ_c < 0 raises the chosen log-prob):
always for robust, bco_pair, apo_zero, sigmoid_norm, orpo, sft and (ε = 0)
sigmoid, aot, aot_unpaired, simpo; up to a finite target and then down for
sigmoid/aot/simpo with ε > 0, ipo, exo_pair, nca_pair, sppo_hard; until the
margin 1/β and then not at all for hinge; away from a band around zero margin
for discopop; and deliberately down where |c| < |Δ| for apo_down.

Hyper-parameter defaults follow TRL (beta 0.1, gamma 0.5, f_alpha 0.5,
discopop_tau 0.05, ipo averaged per token). Reference-free types (simpo, orpo,
sft) accept None references. A non-default f_divergence is refused, as TRL
refuses it, for the types without a valid generalisation: nca_pair, bco_pair,
sppo_hard, apo_zero, apo_down, aot, aot_unpaired (and the reference-free simpo
and orpo, which have no log-ratio to score); so the formulas of those types use
the raw log-ratios c, r. bco_pair's running reward shift is explicit state:
`RunningMean` (TRL 1.16 has none: δ = 0, as with `bco_state=None`). Where a
type differs from TRL 1.16 (label smoothing on sigmoid, ORPO's and sft's NLL
averaging, ...) is listed in docs/loss-variants.md.
"""

from .divergences import F_DIVERGENCES
from .dpo_loss import DPOLossOutput, dpo_loss
from .gradients import analytic_grad_chosen
from .loss_type import LossType
from .registry import LOSS_TYPE_NAMES, LOSS_TYPES, REFERENCE_FREE
from .running_mean import RunningMean

__all__ = ["dpo_loss", "DPOLossOutput", "analytic_grad_chosen", "RunningMean", "LOSS_TYPES", "LOSS_TYPE_NAMES",
           "REFERENCE_FREE", "F_DIVERGENCES", "LossType"]

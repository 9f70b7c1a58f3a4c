"""`dpo_loss`: the per-example DPO-family loss, written once against the backend surface."""

from __future__ import annotations

import collections

import numpy as np

from backends import resolve_backend

from .loss_type import make_pair
from .ops import NumpyOps, TensorOps
from .options import check_lengths, check_logps, check_orpo_domain, resolve_options


class DPOLossOutput(collections.namedtuple("DPOLossOutput", ["losses", "chosen_rewards", "rejected_rewards"])):
    """Per-example backend tensors, each of shape (B,).

    losses            the weighted sum of the selected loss types (differentiable; take `.mean()`)
    chosen_rewards    β·(π_c - ρ_c), detached (β·π_c when no reference was given)
    rejected_rewards  β·(π_r - ρ_r), detached
    margins           chosen_rewards - rejected_rewards (a property; detached)

    The rewards are DPO's implicit rewards on *summed* log-probs whatever the
    loss type (TRL's CPO/ORPO trainers log average-log-prob rewards instead),
    and they are detached, as TRL returns them: they are for logging and
    accuracy (margins > 0), not for backpropagation.
    """

    __slots__ = ()

    @property
    def margins(self):
        return self.chosen_rewards - self.rejected_rewards


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps=None, ref_rejected_logps=None,
             beta=0.1, loss_type="sigmoid", label_smoothing=0.0, *, chosen_lengths=None, rejected_lengths=None,
             gamma=0.5, f_divergence="reverse_kl", f_alpha=0.5, ipo_average=True, loss_weights=None,
             discopop_tau=0.05, bco_state=None, backend=None) -> DPOLossOutput:
    """Per-example DPO-family losses and implicit rewards (see the table in `dpo.losses`).

    Args:
        policy_chosen_logps, policy_rejected_logps: backend tensors of shape (B,): the policy's
            log-probs of each completion, SUMMED over its tokens.
        ref_chosen_logps, ref_rejected_logps: the same under the reference model (computed under
            `no_grad`); required by every type except the reference-free simpo, orpo, sft.
        beta: β > 0, the strength of the tie to the reference (ORPO: the odds-ratio weight λ).
        loss_type: a name, or a list of names combined as Σ_k loss_weights[k]·loss_k
            (["sigmoid", "sft"] is RPO).
        label_smoothing: ε in [0, 0.5): cDPO for sigmoid; the flip rate for robust; the label
            distribution (1-ε, ε) for exo_pair (needs ε > 0); also read by aot, aot_unpaired, simpo.
        chosen_lengths, rejected_lengths: completion token counts (sequences, arrays or tensors of
            shape (B,), > 0); needed by ipo (ipo_average=True), sigmoid_norm, simpo, orpo, sft.
        gamma: SimPO's target margin γ (TRL's simpo_gamma, 0.5).
        f_divergence: "reverse_kl" (DPO), "forward_kl", "js_divergence" or "alpha_divergence",
            with `f_alpha` the α of the last (TRL's default 0.5).
        ipo_average: True (default): IPO on per-token averaged log-ratios, as TRL; False: the
            paper's summed form.
        loss_weights: one float per loss type (default all 1).
        discopop_tau: DiscoPOP's temperature τ (0.05).
        bco_state: a `RunningMean` holding bco_pair's reward shift δ; updated once per call with
            this batch's mean reward. None: δ = 0.
        backend: the backend the tensors belong to (a Backend or a name; default numpy).

    Returns:
        DPOLossOutput(losses, chosen_rewards, rejected_rewards), with `.margins`.

    Raises one ValueError/TypeError naming the argument for: an unknown loss type or
    f-divergence, tensors of another backend, shapes that are not (B,) alike, NaN/inf
    log-probs, missing references for a reference-based type, missing or non-positive
    lengths for a length-normalised type, out-of-range hyper-parameters.
    """
    where = "dpo_loss"
    be = resolve_backend(backend)
    options = resolve_options(where, loss_type, loss_weights, f_divergence, f_alpha, beta, label_smoothing, gamma,
                              discopop_tau, ipo_average)
    tensors = dict(policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps,
                   ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps)
    for name, t in tensors.items():
        if t is not None and not be.is_tensor(t):
            raise TypeError(f"{where}: {name} is a {type(t).__module__}.{type(t).__name__}, not a tensor of {be}; "
                            "pass backend= the backend it belongs to, or convert it with backend.tensor(...)")
    arrays = {name: None if t is None else be.to_numpy(t) for name, t in tensors.items()}
    batch = check_logps(where, options, arrays)
    lengths = [be.to_numpy(x) if be.is_tensor(x) else x for x in (chosen_lengths, rejected_lengths)]
    chosen_np, rejected_np = check_lengths(where, options, *lengths, batch)
    if options.has("orpo"):
        check_orpo_domain(where, arrays, chosen_np, rejected_np)

    float_dtype = arrays["policy_chosen_logps"].dtype

    def as_tensor(array):
        return None if array is None else be.tensor(array.astype(float_dtype), dtype=policy_chosen_logps.dtype)

    bco_delta = _update_bco_state(bco_state, options, arrays) if options.has("bco_pair") else 0.0
    pair = make_pair(TensorOps(be), options.divergence, options.f_alpha, policy_chosen_logps, policy_rejected_logps,
                     ref_chosen_logps, ref_rejected_logps, chosen_lengths=as_tensor(chosen_np),
                     rejected_lengths=as_tensor(rejected_np), bco_delta=bco_delta, **options.hyper)
    losses = None
    for loss_kind, weight in options.terms:
        term = loss_kind.loss(pair) * weight
        losses = term if losses is None else losses + term

    beta = options.hyper["beta"]
    with be.no_grad():
        chosen = policy_chosen_logps.detach()
        rejected = policy_rejected_logps.detach()
        if ref_chosen_logps is not None:
            chosen = chosen - ref_chosen_logps.detach()
            rejected = rejected - ref_rejected_logps.detach()
        chosen_rewards, rejected_rewards = chosen * beta, rejected * beta
    return DPOLossOutput(losses, chosen_rewards, rejected_rewards)


def _update_bco_state(state, options, arrays):
    """δ for bco_pair: fold this batch's mean of β·s(c), β·s(r) into `state`, return its mean (0 without one)."""
    if state is None:
        return 0.0
    beta = options.hyper["beta"]
    scores = [options.divergence.score(arrays[f"policy_{side}_logps"] - arrays[f"ref_{side}_logps"],
                                       options.f_alpha, NumpyOps) for side in ("chosen", "rejected")]
    return float(state.update(beta * float(np.mean(np.concatenate(scores)))))

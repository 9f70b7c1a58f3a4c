"""Checking what `dpo_loss` and `analytic_grad_chosen` are given: one clear error per mistake.

Everything here works on plain Python values and NumPy arrays (tensors are
converted by the caller), so both entry points check the same way.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .divergences import F_DIVERGENCES, FDivergence
from .registry import LOSS_TYPE_NAMES, LOSS_TYPES, REFERENCE_FREE

# the loss types whose loss reads label_smoothing (ε); for the others a non-zero ε is a mistake
USES_LABEL_SMOOTHING = ("sigmoid", "robust", "exo_pair", "aot", "aot_unpaired", "simpo")


@dataclasses.dataclass(frozen=True)
class LossOptions:
    terms: tuple  # ((LossType, weight), ...)
    divergence: FDivergence
    f_alpha: float
    hyper: dict  # beta, label_smoothing, gamma, discopop_tau, ipo_average: what every Pair carries

    def has(self, name):
        return any(t.name == name for t, _ in self.terms)


def _finite_number(where, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: {name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be finite, got {value}")
    return float(value)


def resolve_options(where, loss_type, loss_weights, f_divergence, f_alpha, beta, label_smoothing, gamma,
                    discopop_tau, ipo_average) -> LossOptions:
    names = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    if not names:
        raise ValueError(f"{where}: loss_type is an empty list; give at least one of: {', '.join(LOSS_TYPE_NAMES)}")
    for name in names:
        if name not in LOSS_TYPES:
            raise ValueError(f"{where}: unknown loss_type {name!r}; choose from: {', '.join(LOSS_TYPE_NAMES)}")
    if loss_weights is None:
        weights = [1.0] * len(names)
    else:
        weights = [_finite_number(where, "loss_weights entry", w) for w in loss_weights]
        if len(weights) != len(names):
            raise ValueError(f"{where}: {len(weights)} loss_weights for {len(names)} loss types {names}; "
                             "give one weight per loss type")
    if f_divergence not in F_DIVERGENCES:
        raise ValueError(f"{where}: unknown f_divergence {f_divergence!r}; "
                         f"choose from: {', '.join(F_DIVERGENCES)}")
    if f_divergence != "reverse_kl":
        refused = [n for n in names if not LOSS_TYPES[n].uses_f_divergence]
        if refused:
            raise ValueError(f"{where}: f_divergence {f_divergence!r} has no valid generalisation for loss type(s) "
                             f"{', '.join(refused)} (TRL refuses it too); use f_divergence='reverse_kl' with them")
    f_alpha = _finite_number(where, "f_alpha", f_alpha)
    beta = _finite_number(where, "beta", beta)
    if beta <= 0:
        raise ValueError(f"{where}: beta must be > 0, got {beta}")
    eps = _finite_number(where, "label_smoothing", label_smoothing)
    if not 0.0 <= eps < 0.5:
        raise ValueError(f"{where}: label_smoothing must be in [0, 0.5), got {eps}")
    if "exo_pair" in names and eps == 0.0:
        raise ValueError(f"{where}: loss type 'exo_pair' needs label_smoothing in (0, 0.5) (it takes log ε); "
                         "the EXO paper uses 1e-3")
    gamma = _finite_number(where, "gamma", gamma)
    tau = _finite_number(where, "discopop_tau", discopop_tau)
    if tau <= 0:
        raise ValueError(f"{where}: discopop_tau must be > 0, got {tau}")
    hyper = dict(beta=beta, label_smoothing=eps, gamma=gamma, discopop_tau=tau, ipo_average=bool(ipo_average))
    return LossOptions(tuple((LOSS_TYPES[n], w) for n, w in zip(names, weights)), F_DIVERGENCES[f_divergence],
                       f_alpha, hyper)


def check_training_choice(where, loss_type, loss_weights, label_smoothing) -> None:
    """What a training run must not be given, although `dpo_loss` computes it (a negative
    weight is gradient ascent on that loss): a loss type named twice, a negative or all-zero
    weight, label smoothing that no listed type reads. Called after `resolve_options`."""
    names = [loss_type] if isinstance(loss_type, str) else list(loss_type)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{where}: loss type {twice[0]!r} is named twice in loss_type {names}; "
                         "name each type once and weigh it with loss_weights")
    weights = [1.0] * len(names) if loss_weights is None else [float(w) for w in loss_weights]
    negative = [(n, w) for n, w in zip(names, weights) if w < 0]
    if negative:  # training would maximise that loss
        raise ValueError(f"{where}: loss_weights entry {negative[0][1]:g} for {negative[0][0]!r} is negative; "
                         "weights must be >= 0")
    if not any(weights):
        raise ValueError(f"{where}: loss_weights are all zero, so nothing would be trained; "
                         "give at least one positive weight")
    if label_smoothing > 0 and not set(names) & set(USES_LABEL_SMOOTHING):
        raise ValueError(f"{where}: label_smoothing {label_smoothing:g} has no effect on loss type(s) "
                         f"{', '.join(names)}; only {', '.join(USES_LABEL_SMOOTHING)} read it")


LOGP_NAMES = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")


def _check_finite(where, name, array):
    bad = ~np.isfinite(array)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "NaN" if np.isnan(array[i]) else "inf"
        raise ValueError(f"{where}: {name} contains {what} at index {i}; inputs must be finite")


def check_logps(where, options, arrays) -> int:
    """`arrays`: {name: NumPy array or None} for the four log-prob inputs. Returns the batch size."""
    for name in LOGP_NAMES[:2]:
        if arrays[name] is None:
            raise TypeError(f"{where}: {name} is required")
    first = arrays["policy_chosen_logps"]
    for name in LOGP_NAMES:
        array = arrays[name]
        if array is None:
            continue
        if array.ndim != 1:
            raise ValueError(f"{where}: {name} must be 1-D (one summed log-prob per example), "
                             f"got shape {tuple(array.shape)}")
        if array.shape != first.shape:
            raise ValueError(f"{where}: {name} has shape {tuple(array.shape)}, expected {tuple(first.shape)} "
                             "like policy_chosen_logps")
    if first.shape[0] == 0:
        raise ValueError(f"{where}: the batch is empty (policy_chosen_logps has shape (0,))")
    if (arrays["ref_chosen_logps"] is None) != (arrays["ref_rejected_logps"] is None):
        given = "ref_chosen_logps" if arrays["ref_chosen_logps"] is not None else "ref_rejected_logps"
        raise ValueError(f"{where}: only {given} was given; pass both reference log-probs or neither")
    if arrays["ref_chosen_logps"] is None:
        needing = [t.name for t, _ in options.terms if t.needs_reference]
        if needing:
            raise ValueError(f"{where}: loss type {needing[0]!r} needs ref_chosen_logps and ref_rejected_logps "
                             f"(the reference-free types are: {', '.join(REFERENCE_FREE)})")
    for name in LOGP_NAMES:
        if arrays[name] is not None:
            _check_finite(where, name, arrays[name])
    return first.shape[0]


def check_lengths(where, options, chosen_lengths, rejected_lengths, batch):
    """Completion token counts as float64 arrays (or None), checked against what the loss types read."""
    given = {"chosen": chosen_lengths, "rejected": rejected_lengths}
    for t, _ in options.terms:
        needs = () if (t.lengths_only_if_averaged and not options.hyper["ipo_average"]) else t.needs_lengths
        for side in needs:
            if given[side] is None:
                why = " with ipo_average=True" if t.lengths_only_if_averaged else ""
                raise ValueError(f"{where}: loss type {t.name!r}{why} needs {side}_lengths "
                                 "(the number of completion tokens of each example)")
    out = []
    for side, lengths in given.items():
        if lengths is None:
            out.append(None)
            continue
        array = np.asarray(lengths)
        if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or
                                       np.issubdtype(array.dtype, np.floating)):
            raise TypeError(f"{where}: {side}_lengths must hold numbers, got dtype {array.dtype}")
        array = array.astype(np.float64)
        if array.shape != (batch,):
            raise ValueError(f"{where}: {side}_lengths has shape {tuple(array.shape)}, expected ({batch},), "
                             "one token count per example")
        _check_finite(where, f"{side}_lengths", array)
        if (array <= 0).any():
            i = int(np.flatnonzero(array <= 0)[0])
            raise ValueError(f"{where}: {side}_lengths must be > 0, got {array[i]:g} at index {i}")
        out.append(array)
    return tuple(out)


def check_orpo_domain(where, arrays, chosen_lengths, rejected_lengths):
    """ORPO takes log(1 - e^a) of the average log-prob a = π/L: a must be < 0."""
    for name, lengths in (("policy_chosen_logps", chosen_lengths), ("policy_rejected_logps", rejected_lengths)):
        average = arrays[name] / lengths
        if (average >= 0).any():
            i = int(np.flatnonzero(average >= 0)[0])
            raise ValueError(f"{where}: loss type 'orpo' needs average log-probs below 0 (token probabilities < 1); "
                             f"{name} / lengths is {average[i]:g} at index {i}")

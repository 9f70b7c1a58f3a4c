"""The trainer options DPO practitioners know from TRL, as small functions `train_dpo` calls.

    optimizer = make_optimizer(backend, policy.parameters(), config)        # optim, lr, weight_decay
    scheduler = make_scheduler(backend, optimizer, config, total_steps)     # lr_scheduler_type, warm-up
    forward = policy_forward(policy, batch, config)                         # ld_alpha, use_weighting, logits/*
    mix_reference(policy, reference, config.ref_model_mixup_alpha)          # TR-DPO (sync_ref_model)
    with precision(backend, config): ...                                    # bf16

Each follows TRL 1.16 / transformers: the schedules are transformers'
`get_scheduler` formulas (update s, 0-based, uses base_lr · factor(s), so a
warm-up starts at 0); LD-DPO's shared/tail split, WPO's weights and TR-DPO's mix
are TRL's `DPOTrainer` and `SyncRefModelCallback` formulas.
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import numpy as np

from .config import DPOConfig
from .logprobs import counted_token_logprobs

# torch's names on the backend surface for DPOConfig.optim; "adamw" keeps torch's default decay only when asked
OPTIMIZER_NAMES = {"adamw": "adamw", "adam": "adam", "sgd": "sgd", "rmsprop": "rmsprop"}


def make_optimizer(backend, params, config: DPOConfig):
    """config.optim over `params` at config.lr with config.weight_decay (torch's other defaults)."""
    return backend.optimizer(OPTIMIZER_NAMES[config.optim], params, lr=config.lr, weight_decay=config.weight_decay)


def warmup_updates(config: DPOConfig, total_steps: int) -> int:
    """ceil(warmup_ratio · total_steps) when warmup_ratio > 0, else warmup_steps."""
    return math.ceil(config.warmup_ratio * total_steps) if config.warmup_ratio > 0 else config.warmup_steps


def lr_factor(kind: str, warmup: int, total_steps: int):
    """transformers' schedule `kind` as a function of the update index s (0-based): the
    learning rate of update s is base_lr · factor(s).

        constant              1
        constant_with_warmup  s / warmup during warm-up, then 1
        linear                s / warmup, then (total - s) / (total - warmup), down to 0
        cosine                s / warmup, then ½(1 + cos(π·p)), p = (s - warmup) / (total - warmup)
    """
    def warming(s):
        return s < warmup

    def factor(s):
        if kind == "constant":
            return 1.0
        if warming(s):
            return s / max(1, warmup)
        if kind == "constant_with_warmup":
            return 1.0
        if kind == "linear":
            return max(0.0, (total_steps - s) / max(1, total_steps - warmup))
        progress = (s - warmup) / max(1, total_steps - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    if kind not in ("constant", "constant_with_warmup", "linear", "cosine"):
        raise ValueError(f"lr_factor: unknown schedule {kind!r}")
    return factor


def make_scheduler(backend, optimizer, config: DPOConfig, total_steps: int):
    """A LambdaLR for config.lr_scheduler_type over `total_steps` updates."""
    return backend.lambda_lr(optimizer, lr_factor(config.lr_scheduler_type, warmup_updates(config, total_steps),
                                                  total_steps))


def precision(backend, config: DPOConfig):
    """The context the forward passes run in: bfloat16 autocast when config.bf16 (the backend
    refuses it with one line where it has no mixed precision), else nothing."""
    return backend.autocast("bfloat16") if config.bf16 else contextlib.nullcontext()


def micro_batches(chunk, size: int) -> list:
    """`chunk` (the pair indices of one update) cut into micro-batches of at most `size`."""
    return [chunk[i:i + size] for i in range(0, len(chunk), size)]


# ---- one forward with what TRL reads besides the summed log-probs --------------------------------
class PolicyForward(NamedTuple):
    """logps: (2B,) backend tensor (LD-weighted when config.ld_alpha is set); wpo_weights: (B,) NumPy
    w_c·w_r (None unless config.use_weighting); logits_chosen / logits_rejected: the mean logit over
    the vocabulary, averaged over the completion tokens (TRL's logits/chosen, logits/rejected)."""

    logps: object
    wpo_weights: np.ndarray | None
    logits_chosen: float
    logits_rejected: float


def ld_token_weights(batch, ld_alpha) -> np.ndarray:
    """(2B, T) weights of each target: 1 for a completion's first min(L_c, L_r) tokens (the
    part both completions of the pair share in length), ld_alpha for the longer one's rest,
    0 off the completion. ld_alpha None: 1 on every completion token (plain sums)."""
    mask = batch.loss_mask.astype(np.float64)
    if ld_alpha is None:
        return mask
    chosen, rejected = batch.chosen_rejected(batch.completion_lengths)
    shared = np.minimum(chosen, rejected)
    shared = np.concatenate([shared, shared])[:, None]
    position = np.cumsum(mask, axis=1)  # 1-based index of each completion token
    return mask * np.where(position <= shared, 1.0, float(ld_alpha))


def _logsumexp(x, axis=-1):
    top = x.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(x - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def wpo_weights(logits: np.ndarray, token_logps: np.ndarray, batch) -> np.ndarray:
    """WPO (Zhou et al. 2024, eq. 2, as TRL): per row exp(mean over completion tokens of
    log p(y_t) - log Σ_v p(v)²), then w_c·w_r per pair. A constant (no gradient).
    `logits`: (2B, T, V), or (N, V) at the N counted positions (batch.loss_mask) only."""
    mask = batch.loss_mask
    logits = (logits[mask] if logits.ndim == 3 else logits).astype(np.float64)
    log_probs = logits - _logsumexp(logits)[..., None]
    log_sum_sq = np.zeros(mask.shape)
    log_sum_sq[mask] = _logsumexp(2.0 * log_probs)
    aligned = ((token_logps - log_sum_sq) * mask).sum(1) / np.maximum(mask.sum(1), 1)
    chosen, rejected = batch.chosen_rejected(np.exp(aligned))
    return chosen * rejected


def policy_forward(model, batch, config: DPOConfig) -> PolicyForward:
    """One forward of the 2B rows: summed (or LD-weighted) completion log-probs plus the
    logits statistics and WPO weights. The same sums as `sequence_log_prob` when ld_alpha is None."""
    backend = type(model).backend
    with precision(backend, config):
        per_token, logits = counted_token_logprobs(model, batch)
    if config.ld_alpha is None:
        logps = per_token.sum(-1)
    else:
        logps = (per_token * backend.tensor(ld_token_weights(batch, config.ld_alpha))).sum(-1)
    logits_np = backend.to_numpy(logits.detach())  # (N, V) at the counted positions, chosen rows first
    n_chosen = int(batch.chosen_rejected(batch.loss_mask)[0].sum())

    def mean_logit(rows):  # over the vocabulary, then over the completion tokens (TRL's logits/*)
        return float(rows.mean(dtype=np.float64)) if len(rows) else 0.0

    weights = None
    if config.use_weighting:
        token_logps = np.asarray(backend.to_numpy(per_token.detach()), dtype=np.float64)
        weights = wpo_weights(logits_np, token_logps, batch)
    return PolicyForward(logps, weights, mean_logit(logits_np[:n_chosen]), mean_logit(logits_np[n_chosen:]))


def reference_forward_logps(reference, batch, config: DPOConfig) -> np.ndarray:
    """(2B,) float64: the reference's completion log-probs, LD-weighted like the policy's."""
    backend = type(reference).backend
    with backend.no_grad(), precision(backend, config):
        per_token = counted_token_logprobs(reference, batch).per_token
    token = np.asarray(backend.to_numpy(per_token), dtype=np.float64)
    return (token * ld_token_weights(batch, config.ld_alpha)).sum(-1)


def mix_reference(policy, reference, alpha: float):
    """TR-DPO's soft update (TRL's SyncRefModelCallback): reference ← α·policy + (1-α)·reference."""
    mine, theirs = policy.export_weights(), reference.export_weights()
    reference.load_weights({name: alpha * np.asarray(mine[name], dtype=np.float64)
                            + (1.0 - alpha) * np.asarray(value, dtype=np.float64) for name, value in theirs.items()})

"""KL(π_θ ‖ π_ref) of whole completions, estimated along samples y ~ π_θ(·|x).

For completions drawn token by token, the sequence KL is the expected sum of
the per-position KLs between the two next-token distributions (the chain rule
of KL):

    KL(π_θ(·|x) ‖ π_ref(·|x)) = E_{y~π_θ} Σ_t KL(π_θ(·|x, y<t) ‖ π_ref(·|x, y<t))

with each term a sum over the full vocabulary. `sequence_kl` returns, per
sample, that sum ("exact": no sampling noise within a position) and the plain
Monte-Carlo log-ratio log π_θ(y|x) - log π_ref(y|x), whose mean estimates the
same number with more variance. A completion cut at max_new_tokens is scored
over the tokens it has: both estimators then describe the distribution of cut
completions, the one sampling draws from.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SampleKL(NamedTuple):
    """Per-sample arrays (n,): `exact` = Σ_t full-vocabulary KL, `log_ratio` = log π_θ(y) - log π_ref(y)."""

    exact: np.ndarray
    log_ratio: np.ndarray


def mean_and_stderr(values) -> tuple[float, float]:
    """(mean, standard error of the mean) of a 1-D sample; the error is 0 for one value."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_and_stderr: no values")
    se = float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.0
    return float(values.mean()), se


def pack(prompts, completions, pad_id: int):
    """(ids (n, T), scored (n, T) bool, targets (n, T)): prompt + completion right-padded; the
    logits at position t score token t + 1, so `scored` marks the positions whose next token
    belongs to the completion and `targets` holds that token (0 elsewhere)."""
    rows = [list(p) + list(c) for p, c in zip(prompts, completions)]
    T = max(len(r) for r in rows)
    ids = np.full((len(rows), T), pad_id, dtype=np.int64)
    scored = np.zeros((len(rows), T), dtype=bool)
    targets = np.zeros((len(rows), T), dtype=np.int64)
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, :len(rows[i])] = rows[i]
        scored[i, len(p) - 1:len(rows[i]) - 1] = True
        targets[i, len(p) - 1:len(rows[i]) - 1] = c
    return ids, scored, targets


def _log_softmax(logits):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def completion_log_probs(model, prompts, completions, pad_id: int, batch_size: int = 64) -> np.ndarray:
    """log π(y|x) (n,) float64: each completion's token log-probs summed, without a graph."""
    backend = type(model).backend
    out = []
    with backend.no_grad():
        for start in range(0, len(prompts), batch_size):
            ids, scored, targets = pack(prompts[start:start + batch_size], completions[start:start + batch_size],
                                        pad_id)
            logp = _log_softmax(backend.to_numpy(model(backend.tensor(ids))))
            out.append((np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0] * scored).sum(axis=-1))
    return np.concatenate(out)


def sequence_kl(policy, reference, prompts, completions, pad_id: int, batch_size: int = 64) -> SampleKL:
    """Both KL estimates for each (prompt, completion) of token ids, the completions drawn
    from `policy`. Both models run forward without a graph, in chunks of `batch_size`."""
    prompts, completions = [list(p) for p in prompts], [list(c) for c in completions]
    if len(prompts) != len(completions) or not prompts:
        raise ValueError(f"sequence_kl: {len(prompts)} prompts for {len(completions)} completions")
    backend = type(policy).backend
    exact, log_ratio = [], []
    with backend.no_grad():
        for start in range(0, len(prompts), batch_size):
            ids, scored, targets = pack(prompts[start:start + batch_size], completions[start:start + batch_size],
                                        pad_id)
            x = backend.tensor(ids)
            logp = _log_softmax(backend.to_numpy(policy(x)))  # (n, T, V)
            logq = _log_softmax(backend.to_numpy(reference(x)))
            per_position = (np.exp(logp) * (logp - logq)).sum(axis=-1)  # KL of the next-token distributions
            exact.append((per_position * scored).sum(axis=-1))
            picked = np.take_along_axis(logp - logq, targets[..., None], axis=-1)[..., 0]
            log_ratio.append((picked * scored).sum(axis=-1))
    return SampleKL(np.concatenate(exact), np.concatenate(log_ratio))

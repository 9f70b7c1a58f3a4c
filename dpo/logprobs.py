"""Sequence log-probabilities: log p(completion | prompt) summed over completion tokens."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .batching import IGNORE_INDEX, PreferenceBatch


class SequenceLogProbs(NamedTuple):
    """logps: backend tensor (rows,), the summed completion-token log-probs;
    token_counts: NumPy int64 (rows,), how many tokens each sum covers."""

    logps: object
    token_counts: np.ndarray


def sequence_log_prob(model, batch: PreferenceBatch, backend=None) -> SequenceLogProbs:
    """One forward of all 2B rows; per row Σ_t log softmax(logits[t])[targets[t]] over the
    positions whose target is a completion token (prompt and padding are masked out
    because their targets are IGNORE_INDEX). Runs the fused token-logprob op, so the
    full (rows, T, V) log-prob tensor is never built. An empty completion gives 0.

    `backend` defaults to the model's own.
    """
    backend = backend or type(model).backend
    ids = backend.tensor(batch.input_ids)
    mask = backend.tensor(batch.attention_mask)
    targets = backend.tensor(batch.targets)
    logits = model(ids, mask)
    per_token = backend.F.token_logprobs(logits, targets, ignore_index=IGNORE_INDEX)
    counts = (batch.targets != IGNORE_INDEX).sum(axis=-1).astype(np.int64)
    return SequenceLogProbs(per_token.sum(-1), counts)

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
    """Per row Σ_t log softmax(logits[t])[targets[t]] over the positions whose target is a
    completion token. An empty completion gives 0. `backend` defaults to the model's own.

    One pass of the model body over all 2B rows (`model.hidden_states`), then the LM head
    and the fused token-logprob op only at the counted positions (`model.logits` on those
    rows of the hidden states): the prompt and padding positions, whose targets are
    IGNORE_INDEX, never reach the (positions, V) head, in forward or backward. The
    per-position log-probs are then laid out (rows, longest completion), zero-padded,
    and summed along each row.
    """
    backend = backend or type(model).backend
    ids = backend.tensor(batch.input_ids)
    mask = backend.tensor(batch.attention_mask)
    counted = batch.targets != IGNORE_INDEX
    rows, cols = np.nonzero(counted)  # row-major: each row's positions are contiguous
    hidden = model.hidden_states(ids, mask)  # (R, T, C)
    picked = hidden[backend.tensor(rows), backend.tensor(cols)]  # (N, C)
    per_token = backend.F.token_logprobs(model.logits(picked), backend.tensor(batch.targets[rows, cols]))  # (N,)
    counts = counted.sum(axis=-1).astype(np.int64)
    # (R, max count) indices into per_token, N (an appended 0) past each row's end
    width = max(int(counts.max(initial=0)), 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    offsets = np.arange(width, dtype=np.int64)
    layout = np.where(offsets[None, :] < counts[:, None], starts[:, None] + offsets[None, :], len(rows))
    padded = backend.cat([per_token, per_token.sum(0, keepdim=True) * 0])  # the 0 in per_token's dtype
    return SequenceLogProbs(padded[backend.tensor(layout)].sum(-1), counts)

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


class CountedTokens(NamedTuple):
    """per_token: backend tensor (rows, T), log p(target) at each counted position, 0 elsewhere;
    logits: backend tensor (N, V), the head's output at the N counted positions, row by row
    (the order of np.nonzero(batch.loss_mask))."""

    per_token: object
    logits: object


def target_logprobs(model, ids, mask, targets, backend):
    """(picked, logits, (rows, cols)): log p(target) (N,) at the N positions whose target is
    not IGNORE_INDEX, in np.nonzero order, with the head's logits (N, V) there. ids, mask,
    targets: NumPy (B, T)."""
    rows, cols = np.nonzero(targets != IGNORE_INDEX)
    # through model(...), not model.hidden_states: DDP and FSDP act in the forward's hooks
    logits = model(backend.tensor(ids), backend.tensor(mask), logits_at=(backend.tensor(rows), backend.tensor(cols)))
    picked = backend.F.token_logprobs(logits, backend.tensor(targets[rows, cols]), ignore_index=IGNORE_INDEX)
    return picked, logits, (rows, cols)


def counted_token_logprobs(model, batch: PreferenceBatch, backend=None) -> CountedTokens:
    """The log-probs of the targets that count (completion tokens), with the LM head and
    the log-softmax run at those N positions only: prompt and padding rows never reach
    the head, which is most of its (rows·T, C) @ (C, V) work. The policy's and the
    reference's log-probs both come from here, so they are the same arithmetic.

    Needs the model contract: `forward(ids, mask, logits_at=(rows, cols))`. `backend` defaults
    to the model's own.
    """
    backend = backend or type(model).backend
    picked, logits, (rows, cols) = target_logprobs(model, batch.input_ids, batch.attention_mask, batch.targets,
                                                   backend)
    # back to (rows, T): position n of the counted ones, or the appended 0 where nothing counts
    slot = np.full(batch.targets.shape, len(rows), dtype=np.int64)
    slot[rows, cols] = np.arange(len(rows))
    padded = backend.cat([picked.to(backend.dtype), backend.zeros(1)])
    return CountedTokens(padded[backend.tensor(slot)], logits)


def sequence_log_prob(model, batch: PreferenceBatch, backend=None) -> SequenceLogProbs:
    """Per row Σ_t log softmax(logits[t])[targets[t]] over the positions whose target is a
    completion token (`counted_token_logprobs`: the head runs at those positions only, and
    the fused token-logprob op never builds their (N, V) log-probs). An empty completion gives 0.

    `backend` defaults to the model's own.
    """
    per_token = counted_token_logprobs(model, batch, backend).per_token
    counts = batch.loss_mask.sum(axis=-1).astype(np.int64)
    return SequenceLogProbs(per_token.sum(-1), counts)

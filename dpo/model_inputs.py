"""Checks every causal LM applies to its inputs (TinyGPT and the pretrained families alike):
token ids (B, T) int64 inside the vocabulary, a right-padded attention mask of the
same shape, and a length within the model's context (counting cached tokens)."""

from __future__ import annotations

import numpy as np


def check_inputs(model, ids, attention_mask, cache):
    """Token ids (B, T) and mask as backend tensors, or one line naming what is wrong.
    With a cache the limit on length counts the tokens already cached."""
    backend, cfg, name = type(model).backend, model.config, type(model).__name__
    if not backend.is_tensor(ids):
        array = np.asarray(ids)
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{name}: token ids must be integers, got {array.dtype}")
        ids = backend.tensor(array)
    if ids.ndim != 2:
        raise ValueError(f"{name}: token ids must have shape (batch, time), got {tuple(ids.shape)}")
    if ids.dtype != backend.int_dtype:
        raise TypeError(f"{name}: token ids must be int64 integers, got {ids.dtype}")
    T = ids.shape[1]
    if ids.numel():
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= cfg.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"{name}: token id {bad} is outside the vocabulary [0, {cfg.vocab_size})")
    if attention_mask is not None:
        if not backend.is_tensor(attention_mask):
            attention_mask = backend.tensor(np.asarray(attention_mask))
        if tuple(attention_mask.shape) != tuple(ids.shape):
            raise ValueError(
                f"{name}: attention_mask has shape {tuple(attention_mask.shape)}, expected the ids' shape "
                f"{tuple(ids.shape)}"
            )
        tokens = backend.to_numpy(attention_mask) != 0
        # right padding: once a row has a 0, it has only 0s after it
        not_right_padded = np.flatnonzero((tokens[:, 1:] & ~tokens[:, :-1]).any(axis=1))
        if not_right_padded.size:
            raise ValueError(
                f"{name}: attention_mask row {int(not_right_padded[0])} is not right padding "
                "(a 1 follows a 0); pad on the right"
            )
    if cache is None:
        if T > cfg.max_len:
            raise ValueError(f"{name}: sequence length {T} exceeds max_len {cfg.max_len}; truncate the input")
    else:
        cache.check(name, ids.shape[0], T, None if attention_mask is None else backend.to_numpy(attention_mask),
                    cfg.max_len)
    return ids, attention_mask


def key_mask_of(attention_mask):
    """bool (B, 1, 1, T), True for keys that are tokens, or None. With right padding a
    token only attends to earlier tokens, so this changes only padded positions."""
    return None if attention_mask is None else (attention_mask != 0)[:, None, None, :]


def at_positions(hidden, logits_at):
    """hidden (B, T, C) -> (N, C) at `logits_at` = (rows, cols), or unchanged for None. It sits
    inside `forward` so that a wrapped model (DDP, FSDP) runs its forward hooks around it."""
    if logits_at is None:
        return hidden
    rows, cols = logits_at
    return hidden[rows, cols]

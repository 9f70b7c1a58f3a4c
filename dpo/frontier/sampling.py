"""Batched ancestral sampling: many completions at once, one forward per new token.

Rows are right-padded: row i holds its prompt and the tokens drawn so far, and
position t's logits see positions <= t only (causal attention), so the padding
after a row's last token never changes the logits that draw its next token.
Finished rows (EOC drawn, or max_new_tokens reached) leave the batch.
"""

from __future__ import annotations

import numpy as np


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"sample_completions: {name} must be a positive int, got {value!r}")


def sample_completions(model, prompts, max_new_tokens: int, stop_id: int, pad_id: int, temperature: float = 1.0,
                       seed: int = 0) -> list[list[int]]:
    """One completion per prompt (lists of token ids; repeat a prompt for several), drawn
    from `model` at `temperature` with a NumPy generator seeded by `seed`. A completion
    ends with `stop_id` when the model drew it, and is cut at `max_new_tokens` otherwise;
    prompt plus completion never exceed the model's max_len."""
    prompts = [list(p) for p in prompts]
    _check_positive(max_new_tokens, "max_new_tokens")
    if not (temperature > 0 and np.isfinite(temperature)):
        raise ValueError(f"sample_completions: temperature must be a positive number, got {temperature!r}")
    if not prompts or any(not p for p in prompts):
        raise ValueError("sample_completions: every prompt needs at least one token")
    max_len = model.config.max_len
    longest = max(len(p) for p in prompts)
    if longest >= max_len:
        raise ValueError(f"sample_completions: a prompt of {longest} tokens leaves no room under max_len {max_len}")
    backend = type(model).backend
    rng = np.random.default_rng(seed)
    width = min(longest + max_new_tokens, max_len)
    ids = np.full((len(prompts), width), pad_id, dtype=np.int64)
    lengths = np.array([len(p) for p in prompts])
    for i, p in enumerate(prompts):
        ids[i, :len(p)] = p
    budget = np.minimum(max_new_tokens, max_len - lengths)  # new tokens each row may still draw
    completions = [[] for _ in prompts]
    active = np.arange(len(prompts))
    was_training = model.training
    model.eval()
    try:
        with backend.no_grad():
            while active.size:
                T = int(lengths[active].max())
                logits = backend.to_numpy(model(backend.tensor(ids[active, :T])))  # (A, T, V)
                last = logits[np.arange(active.size), lengths[active] - 1].astype(np.float64) / temperature
                probs = np.exp(last - last.max(axis=-1, keepdims=True))
                cdf = np.cumsum(probs, axis=-1)
                u = rng.random(active.size) * cdf[:, -1]
                tokens = np.minimum((cdf < u[:, None]).sum(axis=-1), cdf.shape[-1] - 1)
                keep = []
                for row, token in zip(active, tokens):
                    completions[row].append(int(token))
                    ids[row, lengths[row]] = token  # < width: a row draws at most its budget
                    lengths[row] += 1
                    if token != stop_id and len(completions[row]) < budget[row]:
                        keep.append(row)
                active = np.asarray(keep, dtype=np.int64)
    finally:
        model.train(was_training)
    return completions

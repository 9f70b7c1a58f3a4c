"""Text generation from a TinyGPT: greedy, or temperature / top-k sampling."""

from __future__ import annotations

import math
import numbers

import numpy as np


def _next_token(logits: np.ndarray, temperature: float, top_k: int | None, rng) -> int:
    """Pick one id from a row of logits: argmax when temperature == 0, else sample
    softmax(logits / temperature) restricted to the top_k largest."""
    if temperature == 0:
        return int(np.argmax(logits))
    logits = logits.astype(np.float64)
    with np.errstate(over="ignore"):  # a tiny temperature sends all but the best to -inf: probability 0
        scaled = (logits - logits.max()) / temperature
    if top_k is not None and top_k < scaled.size:
        cutoff = np.partition(scaled, -top_k)[-top_k]
        scaled = np.where(scaled >= cutoff, scaled, -np.inf)
    probs = np.exp(scaled)
    probs /= probs.sum()
    return int(rng.choice(scaled.size, p=probs))


def generate_ids(model, prompt_ids, max_new_tokens=48, temperature=0.0, top_k=None, seed=0, stop_id=None):
    """Extend `prompt_ids` one token at a time (a full forward per token: the model
    is tiny, so no key/value cache); stop when the model emits `stop_id`, after
    `max_new_tokens`, or when the context reaches the model's max_len.
    Returns the new ids only (the stop token excluded). Sampling draws from a
    NumPy generator seeded with `seed`: the same seed gives the same text."""
    if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
            or not (math.isfinite(temperature) and temperature >= 0)):
        raise ValueError(f"generate: temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise ValueError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    backend = type(model).backend
    max_len = model.config.max_len
    if len(prompt_ids) == 0:
        raise ValueError("generate: the prompt is empty; give at least one token")
    if len(prompt_ids) >= max_len:
        raise ValueError(
            f"generate: the prompt is {len(prompt_ids)} tokens, which leaves no room under max_len {max_len}"
        )
    rng = np.random.default_rng(seed)
    ids = list(prompt_ids)
    new = []
    was_training = model.training
    model.eval()
    try:
        with backend.no_grad():
            while len(new) < max_new_tokens and len(ids) < max_len:
                logits = model(backend.tensor(np.asarray([ids], dtype=np.int64)))
                token = _next_token(backend.to_numpy(logits[0, -1]), temperature, top_k, rng)
                if token == stop_id:
                    break
                ids.append(token)
                new.append(token)
    finally:
        model.train(was_training)
    return new


def generate(model, tokenizer, prompt: str, max_new_tokens=48, temperature=0.0, top_k=None, seed=0) -> str:
    """The completion the model writes for `prompt` (greedy by default), decoded to text."""
    prompt_ids = tokenizer.encode_prompt(prompt)
    new = generate_ids(model, prompt_ids, max_new_tokens, temperature, top_k, seed, stop_id=tokenizer.EOC)
    return tokenizer.decode(new)

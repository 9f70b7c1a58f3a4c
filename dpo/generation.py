"""Text generation from a TinyGPT: greedy, or temperature / top-k sampling."""

from __future__ import annotations

import numpy as np


def _next_token(logits: np.ndarray, temperature: float, top_k: int | None, rng) -> int:
    """Pick one id from a row of logits: argmax when temperature == 0, else sample
    softmax(logits / temperature) restricted to the top_k largest."""
    if temperature == 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < scaled.size:
        cutoff = np.partition(scaled, -top_k)[-top_k]
        scaled = np.where(scaled >= cutoff, scaled, -np.inf)
    scaled -= scaled.max()
    probs = np.exp(scaled)
    probs /= probs.sum()
    return int(rng.choice(scaled.size, p=probs))


def generate_ids(model, prompt_ids, max_new_tokens=48, temperature=0.0, top_k=None, seed=0, stop_id=None):
    """Extend `prompt_ids` one token at a time; stop after `stop_id`, after
    `max_new_tokens`, or when the context reaches the model's max_len.
    Returns the new ids only (the stop token excluded)."""
    if temperature < 0:
        raise ValueError(f"generate: temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"generate: top_k must be a positive int, got {top_k}")
    if max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be >= 0, got {max_new_tokens}")
    backend = type(model).backend
    max_len = model.config.max_len
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

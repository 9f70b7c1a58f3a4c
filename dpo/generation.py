"""Text generation from a TinyGPT: greedy, or temperature / top-k sampling."""

from __future__ import annotations

import math
import numbers
import warnings

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


def prompt_ids(tokenizer, prompt, system: str | None = None) -> list[int]:
    """The ids a model is prompted with: `prompt` a string (one user turn, after a `system` message
    when given) or a conversation (a list of {"role", "content"} messages ending with a user turn),
    rendered through the tokenizer's chat template with the generation prompt (the byte tokenizer:
    its own conversation rendering); a string without a template or system message is plain text."""
    if isinstance(prompt, str):
        if system is None and not getattr(tokenizer, "has_chat_template", True):
            return tokenizer.render_text(prompt)
        prompt = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": prompt}]
    elif system is not None:
        raise ValueError("generate: system goes with a string prompt; put a system message in the conversation")
    return tokenizer.render_chat(prompt, add_generation_prompt=True)


def fit_context(ids, max_new_tokens: int, max_len: int, notify=None):
    """(ids, max_new_tokens) that fit a context of max_len: a prompt of max_len tokens or more
    keeps its last max_len - 1, and max_new_tokens is cut to the room left; each cut is told
    to `notify(message)` (default: a UserWarning)."""
    notify = notify or (lambda message: warnings.warn(message, stacklevel=3))
    ids = list(ids)
    if len(ids) >= max_len:
        notify(f"the prompt is {len(ids)} tokens, more than the model's context (max_len {max_len}) allows; "
               f"kept its last {max_len - 1}")
        ids = ids[-(max_len - 1):]
    if len(ids) + max_new_tokens > max_len:
        notify(f"max_new_tokens cut from {max_new_tokens} to {max_len - len(ids)}: the prompt's {len(ids)} tokens "
               f"leave that much room in max_len {max_len}")
        max_new_tokens = max_len - len(ids)
    return ids, max_new_tokens


def generate(model, tokenizer, prompt, max_new_tokens=48, temperature=0.0, top_k=None, seed=0, system=None,
             notify=None) -> str:
    """The completion the model writes for `prompt` (greedy by default), decoded to text.

    `prompt`: a string or a conversation, `system`: a system message for a string prompt
    (see `prompt_ids`). A prompt longer than the model's context keeps its end and
    max_new_tokens is cut to fit, each with a message to `notify` (see `fit_context`).
    Generation stops at the tokenizer's EOS (the byte tokenizer's EOC)."""
    ids = prompt_ids(tokenizer, prompt, system)
    ids, max_new_tokens = fit_context(ids, max_new_tokens, model.config.max_len, notify)
    new = generate_ids(model, ids, max_new_tokens, temperature, top_k, seed, stop_id=tokenizer.eos_token_id)
    return tokenizer.decode(new)

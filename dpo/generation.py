"""Text generation from any causal LM of the forward contract (TinyGPT, GPT-2, Llama,
Qwen2): greedy, or sampling with temperature, top-k and top-p; a batch of prompts
of different lengths; with a key/value cache (the default) or by recomputing the
whole sequence at every step (the reference the cache is tested against).
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .kv_cache import KVCache


def _next_token(logits: np.ndarray, temperature: float, top_k: int | None, rng, top_p: float | None = None) -> int:
    """Pick one id from a row of logits: argmax when temperature == 0, else sample
    softmax(logits / temperature) restricted to the top_k largest, then to the
    smallest set of most likely ids whose probability reaches top_p."""
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
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        before = np.cumsum(probs[order]) - probs[order]  # mass of the more likely ids
        keep = np.zeros(probs.size, dtype=bool)
        keep[order[before < top_p]] = True  # the id that crosses top_p is kept
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum()
    return int(rng.choice(scaled.size, p=probs))


def _check_options(temperature, top_k, top_p, max_new_tokens, eos_token_id):
    if (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
            or not (math.isfinite(temperature) and temperature >= 0)):
        raise ValueError(f"generate: temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise ValueError(f"generate: top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, numbers.Real)
                              or not 0 < top_p <= 1):
        raise ValueError(f"generate: top_p must be a number in (0, 1] or None, got {top_p!r}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    stops = [] if eos_token_id is None else (
        [eos_token_id] if isinstance(eos_token_id, numbers.Integral) else list(eos_token_id))
    if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in stops):
        raise ValueError(f"generate: eos_token_id must be an int, a list of ints or None, got {eos_token_id!r}")
    return {int(s) for s in stops}


def _check_prompts(prompts, max_len, vocab_size):
    if isinstance(prompts, np.ndarray):
        prompts = list(prompts)
    if not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError("generate: prompts must be a non-empty list of token-id lists")
    checked = []
    for i, prompt in enumerate(prompts):
        array = np.asarray(prompt)
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"generate: prompt {i} must be a flat list of int token ids")
        if array.size == 0:
            raise ValueError(f"generate: prompt {i} is empty; give at least one token")
        if array.size >= max_len:
            raise ValueError(
                f"generate: prompt {i} is {array.size} tokens, which leaves no room under max_len {max_len}")
        bad = array[(array < 0) | (array >= vocab_size)]
        if bad.size:
            raise ValueError(
                f"generate: prompt {i} has token id {int(bad[0])} outside the vocabulary [0, {vocab_size})")
        checked.append([int(t) for t in array])
    return checked


def _padded(rows):
    """ids and right-padding mask (B, max length) of lists of ids."""
    T = max(len(r) for r in rows)
    ids = np.zeros((len(rows), T), dtype=np.int64)
    mask = np.zeros((len(rows), T), dtype=np.int64)
    for b, r in enumerate(rows):
        ids[b, :len(r)], mask[b, :len(r)] = r, 1
    return ids, mask


def generate_batch(model, prompts, max_new_tokens=48, temperature=0.0, top_k=None, top_p=None, eos_token_id=None,
                   seed=0, use_cache=True) -> list[list[int]]:
    """The new ids for each prompt (a list of token-id lists of any lengths).

    Each row stops when it emits an id in `eos_token_id` (an int or a list; the
    stop id is not returned), after `max_new_tokens`, or when it reaches the
    model's max_len. Sampling draws from one NumPy generator seeded with `seed`,
    rows in order at each step, so the same seed gives the same ids with or
    without the cache. `use_cache=False` recomputes the whole padded batch at
    every step (no cache)."""
    stops = _check_options(temperature, top_k, top_p, max_new_tokens, eos_token_id)
    max_len, vocab = model.config.max_len, model.config.vocab_size
    rows = _check_prompts(prompts, max_len, vocab)
    backend = type(model).backend
    rng = np.random.default_rng(seed)
    new = [[] for _ in rows]
    live = [max_new_tokens > 0 for _ in rows]
    was_training = model.training
    model.eval()
    try:
        with backend.no_grad():
            cache = KVCache(model, len(rows)) if use_cache else None
            ids, mask = _padded(rows)
            lengths = mask.sum(axis=1)
            while any(live):
                # the head runs at each row's last position only (B, V), as transformers' generate does
                cols = lengths - 1 if cache is None or not cache.slots else np.zeros(len(rows), np.int64)
                at = (backend.tensor(np.arange(len(rows), dtype=np.int64)), backend.tensor(cols))
                last = backend.to_numpy(model(backend.tensor(ids), backend.tensor(mask), cache=cache, logits_at=at))
                step = np.zeros(len(rows), dtype=np.int64)
                appended = np.zeros(len(rows), dtype=bool)
                for b in range(len(rows)):
                    if not live[b]:
                        continue
                    token = _next_token(last[b], temperature, top_k, rng, top_p)
                    if token in stops:
                        live[b] = False
                        continue
                    new[b].append(token)
                    rows[b].append(token)
                    step[b], appended[b] = token, True
                    live[b] = len(new[b]) < max_new_tokens and len(rows[b]) < max_len
                if cache is None:
                    ids, mask = _padded(rows)
                    lengths = mask.sum(axis=1)
                else:  # one slot per row: the token just added, or padding for a row that added none
                    ids, mask = step[:, None], appended[:, None].astype(np.int64)
    finally:
        model.train(was_training)
    return new


def generate_ids(model, prompt_ids, max_new_tokens=48, temperature=0.0, top_k=None, seed=0, stop_id=None,
                 top_p=None, use_cache=True):
    """The new ids for one prompt (see generate_batch); the stop id is not returned."""
    if len(prompt_ids) == 0:
        raise ValueError("generate: the prompt is empty; give at least one token")
    if len(prompt_ids) >= model.config.max_len:
        raise ValueError(
            f"generate: the prompt is {len(prompt_ids)} tokens, which leaves no room under max_len "
            f"{model.config.max_len}"
        )
    return generate_batch(model, [list(prompt_ids)], max_new_tokens, temperature, top_k, top_p, stop_id, seed,
                          use_cache)[0]


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
             notify=None, top_p=None) -> str:
    """The completion the model writes for `prompt` (greedy by default), decoded to text.

    `prompt`: a string or a conversation, `system`: a system message for a string prompt
    (see `prompt_ids`). A prompt longer than the model's context keeps its end and
    max_new_tokens is cut to fit, each with a message to `notify` (see `fit_context`).
    Generation stops at the tokenizer's EOS (the byte tokenizer's EOC)."""
    ids = prompt_ids(tokenizer, prompt, system)
    ids, max_new_tokens = fit_context(ids, max_new_tokens, model.config.max_len, notify)
    new = generate_ids(model, ids, max_new_tokens, temperature, top_k, seed, stop_id=tokenizer.eos_token_id,
                       top_p=top_p)
    return tokenizer.decode(new)

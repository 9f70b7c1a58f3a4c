"""The work the DPO benchmarks time: one full DPO training step on a backend.

A step is what `dpo.training.dpo_step` does: the policy forward and backward on
the concatenated chosen/rejected batch (2B rows), the loss against reference
log-probs computed once beforehand (cached, as in training), gradient clipping
and an AdamW update. Every backend gets the same initial weights and batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from backends import get_backend
from dpo import DPOConfig, GPTConfig, InstructionTokenizer, collate, make_preferences
from dpo.data import PreferencePair
from dpo.training import build_models, dpo_step, reference_log_probs

DEFAULT_MODEL = GPTConfig()
LARGE_MODEL = GPTConfig(hidden=256, heads=8, depth=4, max_len=256)
WORDS = ("the model reads each token and predicts the next one while the optimizer moves every weight "
         "a little toward answers people prefer over the answers they reject").split()


def generated_pairs(count: int, prompt_chars: int, completion_chars: int, seed: int = 0) -> list:
    """`count` preference pairs of random words, about prompt_chars + completion_chars bytes
    each (one byte = one token), for benchmarks that need longer sequences than the
    twelve built-in triples."""
    rng = np.random.default_rng(seed)

    def text(chars):
        out = ""
        while len(out) < chars:
            out += WORDS[rng.integers(len(WORDS))] + " "
        return out[:chars].strip() or "x"

    pairs = []
    for i in range(count):
        chosen, rejected = text(completion_chars), text(completion_chars)
        if rejected == chosen:
            rejected += "!"
        pairs.append(PreferencePair(f"{i}: " + text(prompt_chars), chosen, rejected))
    return pairs


def training_flops(config: GPTConfig, lengths) -> float:
    """Useful FLOPs of one training step (forward + backward = 3 x forward) over rows
    of `lengths` real tokens, padding excluded. Per layer and token: the qkv, out,
    fc1, fc2 products, 2·(3 + 1 + 4 + 4)·h² = 24h²; causal attention, 2·h FLOPs for
    each (query, key) pair in q kᵀ and again in P v, L(L+1)/2 pairs per row; the
    head 2·h·V per token. Embeddings, LayerNorm, GELU and softmax are not counted."""
    h, V = config.hidden, config.vocab_size
    lengths = np.asarray(lengths, dtype=np.float64)
    tokens = lengths.sum()
    per_token = config.depth * 24 * h * h + 2 * h * V
    attention = config.depth * 4 * h * np.sum(lengths * (lengths + 1) / 2)
    return float(3 * (tokens * per_token + attention))


@dataclasses.dataclass
class Workload:
    """One DPO step on one backend: call `step()`. `tokens`: real (non-padding) tokens
    per step; `flops`: useful FLOPs per step; `shape`: (rows, T) of the batch; `tuning`:
    what the backend's `tune_process()` did (None: not called, or nothing to tune)."""

    label: str
    backend_label: str
    step: object
    tokens: int
    flops: float
    shape: tuple
    tuning: dict | None = None


def dpo_workload(backend_name: str, model: GPTConfig, pairs, device=None, dtype="float32",
                 autocast=None, seed: int = 0, label: str = "", tune: bool = True) -> Workload:
    """A DPO step of `model` on `pairs` (all of them as one batch) on a backend. `tune`: apply the
    backend's `tune_process()` first, as the CLI does (False: what a library user who never calls
    it gets; MINIGRAD_CPU_TUNING=0 turns it off too)."""
    backend = get_backend(backend_name, device=device, dtype=dtype)
    tuning = backend.tune_process() if tune else None
    config = DPOConfig(model=model, lr=1e-5, seed=seed)
    policy, reference = build_models(config, backend=backend)
    tokenizer = InstructionTokenizer()
    batch = collate(pairs, tokenizer, model.max_len)
    ref_logps = reference_log_probs(reference, pairs, tokenizer, model.max_len)
    optimizer = backend.optimizer("adamw", policy.parameters(), lr=config.lr)
    context = backend.autocast(autocast)

    def step():
        with context:
            dpo_step(policy, batch, ref_logps, optimizer, config)
        backend.synchronize()

    lengths = batch.attention_mask.sum(axis=1)
    name = backend_name + ("" if (device or "cpu") == "cpu" else f" {device}") + (f" {autocast} autocast"
                                                                                  if autocast else "")
    return Workload(label, name, step, int(lengths.sum()), training_flops(model, lengths), batch.input_ids.shape,
                    tuning)


def default_pairs():
    """The twelve built-in triples: the demo's data."""
    return list(make_preferences())


def large_pairs():
    """32 generated pairs of about 200 tokens (a 40-byte prompt, 160-byte completions)."""
    return generated_pairs(32, prompt_chars=40, completion_chars=160, seed=0)


def model_from_spec(spec) -> GPTConfig:
    """"default", "large", or a dict of GPTConfig fields."""
    if spec == "default":
        return DEFAULT_MODEL
    if spec == "large":
        return LARGE_MODEL
    if isinstance(spec, dict):
        return GPTConfig(**spec)
    raise ValueError(f"model spec must be 'default', 'large' or a dict of GPTConfig fields, got {spec!r}")


def pairs_from_spec(spec: dict) -> list:
    """{"kind": "builtin", "count": n} (the twelve triples, repeated or cut to n; all 12 by
    default), {"kind": "large"}, or {"kind": "generated", "count", "prompt_chars",
    "completion_chars", "seed"}: the data a worker process rebuilds from a JSON line."""
    kind = spec.get("kind")
    if kind == "builtin":
        base = default_pairs()
        count = spec.get("count", len(base))
        return (base * (count // len(base) + 1))[:count]
    if kind == "large":
        return large_pairs()
    if kind == "generated":
        return generated_pairs(spec["count"], spec["prompt_chars"], spec["completion_chars"], spec.get("seed", 0))
    raise ValueError(f"pairs spec kind must be 'builtin', 'large' or 'generated', got {kind!r}")

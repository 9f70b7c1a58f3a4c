"""TinyGPT, written once, built on either backend.

    model = TinyGPT(GPTConfig(), backend="numpy")            # a minigrad Module
    model = TinyGPT(GPTConfig(), backend=get_backend("torch", device="cuda"))  # a torch.nn.Module

The architecture is the classic from-scratch TinyGPT: token + learned position
embeddings; per block `x + attn(ln1(x))` then `x + fc2(gelu(fc1(ln2(x))))`;
causal attention with one bias-free qkv projection; a final LayerNorm and an
untied bias-free head. Parameter names and shapes are exactly those of the
PyTorch original, so state dicts move between backends and to plain PyTorch.

Weights are drawn once in NumPy from a seed (`init_weights`) and loaded into the
chosen backend, so both backends start from the same numbers.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from backends import ModelDefinition

from .model_inputs import at_positions, check_inputs, key_mask_of


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = dataclasses.field(default=260, metadata={"help": "model: vocabulary size"})
    hidden: int = dataclasses.field(default=64, metadata={"help": "model: width of the residual stream"})
    heads: int = dataclasses.field(default=4, metadata={"help": "model: attention heads (must divide hidden)"})
    depth: int = dataclasses.field(default=2, metadata={"help": "model: transformer blocks"})
    max_len: int = dataclasses.field(default=96, metadata={
        "help": "model: longest sequence, prompt + completion (its context); longer rows are truncated"})

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig.{field.name} must be a positive int, got {value!r}")
        if self.hidden % self.heads:
            raise ValueError(f"GPTConfig: hidden ({self.hidden}) must be divisible by heads ({self.heads})")

    @property
    def head_dim(self):
        return self.hidden // self.heads

    def to_dict(self):
        return dataclasses.asdict(self)


def init_weights(config: GPTConfig, seed: int = 0) -> dict:
    """GPT-2 style initial weights as float64 NumPy arrays, in state-dict order:
    normal(0, 0.02) for embeddings and projections, residual projections
    (attn.out, fc2) scaled by 1/sqrt(2·depth), biases zero, LayerNorm ones/zeros."""
    rng = np.random.default_rng(seed)
    h, std = config.hidden, 0.02
    residual_std = std / math.sqrt(2 * config.depth)

    def normal(shape, scale=std):
        return rng.normal(0.0, scale, size=shape)

    weights = {"tok.weight": normal((config.vocab_size, h)), "pos.weight": normal((config.max_len, h))}
    for i in range(config.depth):
        p = f"blocks.{i}."
        weights[p + "ln1.weight"] = np.ones(h)
        weights[p + "ln1.bias"] = np.zeros(h)
        weights[p + "attn.qkv.weight"] = normal((3 * h, h))
        weights[p + "attn.out.weight"] = normal((h, h), residual_std)
        weights[p + "ln2.weight"] = np.ones(h)
        weights[p + "ln2.bias"] = np.zeros(h)
        weights[p + "fc1.weight"] = normal((4 * h, h))
        weights[p + "fc1.bias"] = np.zeros(4 * h)
        weights[p + "fc2.weight"] = normal((h, 4 * h), residual_std)
        weights[p + "fc2.bias"] = np.zeros(h)
    weights["ln_f.weight"] = np.ones(h)
    weights["ln_f.bias"] = np.zeros(h)
    weights["head.weight"] = normal((config.vocab_size, h))
    return weights


class CausalSelfAttention(ModelDefinition):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.heads = config.heads
        self.qkv = self.nn.Linear(config.hidden, 3 * config.hidden, bias=False)
        self.out = self.nn.Linear(config.hidden, config.hidden, bias=False)

    def forward(self, x, key_mask=None, cache=None):
        """x (B, T, C) -> (B, T, C), causal. `key_mask`: None, or bool (B, 1, 1, T) with
        True for keys that are tokens (False = padding); torch ANDs it with is_causal.
        With a `cache` (dpo.kv_cache) the cache attends over its keys and these."""
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (B, heads, T, head_dim)
        if cache is not None:
            y = cache.attend(self.layer_index, q, k, v)
        else:
            y = self.F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class Block(ModelDefinition):
    def __init__(self, config: GPTConfig):
        super().__init__()
        nn = self.nn
        self.ln1 = nn.LayerNorm(config.hidden, eps=1e-5)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.hidden, eps=1e-5)
        self.fc1 = nn.Linear(config.hidden, 4 * config.hidden)
        self.fc2 = nn.Linear(4 * config.hidden, config.hidden)

    def forward(self, x, key_mask=None, cache=None):
        x = x + self.attn(self.ln1(x), key_mask, cache)
        return x + self.fc2(self.F.gelu(self.fc1(self.ln2(x))))


class TinyGPT(ModelDefinition):
    """Token ids (B, T) [+ attention mask (B, T), 1 = token, 0 = right padding]
    -> logits (B, T, vocab_size)."""

    def __init__(self, config: GPTConfig | None = None, seed: int = 0):
        super().__init__()
        config = config or GPTConfig()
        nn, backend = self.nn, type(self).backend
        self.config = config
        self.tok = nn.Embedding(config.vocab_size, config.hidden)
        self.pos = nn.Embedding(config.max_len, config.hidden)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.depth)])
        for i, block in enumerate(self.blocks):
            block.attn.layer_index = i  # the cache's key for this layer
        self.ln_f = nn.LayerNorm(config.hidden, eps=1e-5)
        self.head = nn.Linear(config.hidden, config.vocab_size, bias=False)
        backend.place(self)
        self.load_weights(init_weights(config, seed))

    # ---- weights -------------------------------------------------------------------
    def load_weights(self, arrays: dict, strict: bool = True):
        """Load {name: array} (NumPy, minigrad or torch tensors), cast to this model's dtype."""
        backend = type(self).backend
        return backend.load_numpy_state(self, {k: backend.to_numpy(v) for k, v in arrays.items()}, strict)

    def export_weights(self) -> dict:
        """{name: NumPy array copy}: loads into TinyGPT on any backend, or into the
        PyTorch original via `load_state_dict({k: torch.from_numpy(v)})`."""
        return type(self).backend.state_to_numpy(self)

    def to_backend(self, backend) -> TinyGPT:
        """A copy of this model on another backend (or dtype / device), same weights;
        LoRA adapters, where applied, come along (`dpo.lora.copy_adapters`)."""
        from .lora import base_weights, copy_adapters

        copy = TinyGPT(self.config, backend=backend)
        copy.load_weights(base_weights(self))
        return copy_adapters(self, copy)

    # ---- forward -------------------------------------------------------------------
    def forward(self, ids, attention_mask=None, cache=None, logits_at=None):
        """Logits (B, T, vocab) for token ids (B, T); `attention_mask` (B, T), 1 for
        tokens and 0 for right padding, is optional; `cache` a dpo.kv_cache.KVCache
        (generation); `logits_at` (rows, cols) int64 tensors: the logits (N, vocab) at
        those N positions only. One error per bad input: ids not (B, T) int64, T > max_len,
        an id outside the vocabulary, a mask of another shape. Equal to
        `logits(hidden_states(ids, attention_mask, cache))`."""
        return self.logits(at_positions(self.hidden_states(ids, attention_mask, cache), logits_at))

    def logits(self, hidden):
        """The LM head: (..., hidden) -> (..., vocab). A caller that needs the logits at
        a few positions only passes just those rows."""
        return self.head(hidden)

    def hidden_states(self, ids, attention_mask=None, cache=None):
        """(B, T, hidden) after the final layer norm, for the inputs `forward` takes."""
        ids, attention_mask = check_inputs(self, ids, attention_mask, cache)
        T, backend = ids.shape[1], type(self).backend
        if cache is None:
            positions = backend.arange(T)
        else:
            mask = None if attention_mask is None else backend.to_numpy(attention_mask)
            positions = backend.tensor(cache.positions(T, mask))
        x = self.tok(ids) + self.pos(positions)
        key_mask = key_mask_of(attention_mask) if cache is None else None
        for block in self.blocks:
            x = block(x, key_mask, cache)
        return self.ln_f(x)

    def num_parameters(self) -> int:
        return sum(int(np.prod(p.shape)) for p in self.parameters())

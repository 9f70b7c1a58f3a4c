"""A key/value cache for generation, one per batch of prompts, for any model of the
forward contract (TinyGPT, GPT-2, Llama, Qwen2).

The model is called with `cache=`: it asks `cache.positions(T, mask)` for the
absolute positions of the T new tokens ((B, T) int64, per row) and, in
attention layer i, calls `cache.attend(i, q, k, v)` (each (B, heads, T, hd), k
and v already repeated for GQA) in place of scaled_dot_product_attention.

Layout: the cache holds slots in arrival order. Slot s of row b is a key the
row may attend to when it was a token (mask 1), not padding. So a batch of
right-padded prompts is cached as it is, and each later step appends one slot
per row (a row that has stopped appends a padding slot). A query at slot t sees
the valid slots s <= t: causal attention over that row's tokens, in order,
whatever padding lies between them. A row's position counter counts its tokens,
so row b's next token gets position len(row b), as in the uncached forward.
"""

from __future__ import annotations

import numpy as np


class KVCache:
    def __init__(self, model, batch_size: int):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"KVCache: batch_size must be a positive int, got {batch_size!r}")
        self.backend = type(model).backend
        self.batch_size = int(batch_size)
        self.lengths = np.zeros(self.batch_size, dtype=np.int64)  # tokens per row: the next position
        self.valid = np.zeros((self.batch_size, 0), dtype=bool)  # (B, S): slot holds a token
        self.keys: dict = {}
        self.values: dict = {}
        self._mask = None
        self._chunk = 0

    @property
    def slots(self) -> int:
        return self.valid.shape[1]

    def next_length(self, T: int, attention_mask=None) -> int:
        """The longest row's length once a chunk of T (mask: (B, T), 1 = token) is added:
        what a model checks against its max_len."""
        added = T if attention_mask is None else (np.asarray(attention_mask) != 0).sum(axis=1)
        return int((self.lengths + added).max())

    def check(self, model_name: str, batch: int, T: int, attention_mask, max_len: int) -> None:
        """One line naming what is wrong when a chunk of (batch, T) does not fit: another
        batch size than the cache's, or a row longer than the model's max_len."""
        if batch != self.batch_size:
            raise ValueError(f"{model_name}: the cache holds {self.batch_size} rows, the ids {batch}")
        if self.next_length(T, attention_mask) > max_len:
            raise ValueError(f"{model_name}: sequence length {self.next_length(T, attention_mask)} exceeds max_len "
                             f"{max_len}; truncate the input")

    def positions(self, T: int, attention_mask=None) -> np.ndarray:
        """Positions (B, T) of the next T tokens; starts a new chunk. `attention_mask`
        (B, T), 1 = token, 0 = padding (right padding within the chunk)."""
        B = self.batch_size
        chunk = np.ones((B, T), dtype=bool) if attention_mask is None else np.asarray(attention_mask) != 0
        if chunk.shape != (B, T):
            raise ValueError(f"KVCache: a chunk mask of shape {chunk.shape}, expected {(B, T)}")
        positions = self.lengths[:, None] + np.arange(T, dtype=np.int64)[None]  # (B, T)
        positions = np.where(chunk, positions, 0)  # padding reads position 0: in range, and masked out
        start = self.slots
        self.valid = np.concatenate((self.valid, chunk), axis=1)  # (B, S)
        S = self.slots
        causal = np.arange(S)[None, :] <= start + np.arange(T)[:, None]  # (T, S)
        self._mask = self.backend.tensor(self.valid[:, None, None, :] & causal[None, None])  # (B, 1, T, S)
        self.lengths = self.lengths + chunk.sum(axis=1)
        self._chunk = T
        return positions

    def attend(self, layer: int, q, k, v):
        """Attention of the chunk's queries over every cached slot of this layer plus the
        chunk's own keys, which are then kept. q, k, v: (B, heads, T, hd)."""
        if self._mask is None or k.shape[2] != self._chunk:
            raise RuntimeError("KVCache.attend: call positions(T) for the chunk first (the model does)")
        if layer in self.keys:
            k = self.backend.cat([self.keys[layer], k], dim=2)  # (B, heads, S, hd)
            v = self.backend.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return self.backend.F.scaled_dot_product_attention(q, k, v, attn_mask=self._mask)

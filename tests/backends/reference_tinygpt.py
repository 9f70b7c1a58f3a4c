"""The classic from-scratch TinyGPT in plain PyTorch, written from the architecture's
description only (not from dpo/model.py): the yardstick that dpo.model.TinyGPT is
held against. Import it only after `require_torch()`.

    tok: Embedding(vocab, hidden)    pos: Embedding(max_len, hidden)
    per block:  x = x + attn(ln1(x));  x = x + fc2(gelu(fc1(ln2(x))))
    attn:       qkv = Linear(hidden, 3·hidden, bias=False), viewed (B, T, 3, heads, head_dim);
                causal softmax(q kᵀ / sqrt(head_dim)) v by masked_fill(-inf) + softmax;
                out = Linear(hidden, hidden, bias=False)
    ln_f, then head = Linear(hidden, vocab, bias=False) (not tied to tok)

It takes token ids only (no padding mask): under causal attention a right-padded
sequence's real tokens never see the padding, so its logits at real positions are
what this model gives for the unpadded sequence.
"""

import math

import torch
from torch import nn


class ReferenceAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        head_dim = C // self.heads
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, head_dim).unbind(dim=2)  # each (B, T, heads, head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, head_dim)
        scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(diagonal=1)
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(B, T, C))


class ReferenceBlock(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden, eps=1e-5)
        self.attn = ReferenceAttention(hidden, heads)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-5)
        self.fc1 = nn.Linear(hidden, 4 * hidden)
        self.fc2 = nn.Linear(4 * hidden, hidden)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))


class ReferenceTinyGPT(nn.Module):
    def __init__(self, vocab_size=260, hidden=64, heads=4, depth=2, max_len=96):
        super().__init__()
        self.tok = nn.Embedding(vocab_size, hidden)
        self.pos = nn.Embedding(max_len, hidden)
        self.blocks = nn.ModuleList([ReferenceBlock(hidden, heads) for _ in range(depth)])
        self.ln_f = nn.LayerNorm(hidden, eps=1e-5)
        self.head = nn.Linear(hidden, vocab_size, bias=False)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.tok(ids) + self.pos(torch.arange(T, device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

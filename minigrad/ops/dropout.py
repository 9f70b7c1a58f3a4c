"""Inverted dropout: zero each entry with probability p, scale the rest by 1/(1-p)."""

import numpy as np

from ..autograd import Function


class Dropout(Function):
    """out = a ∘ m / (1-p), m ~ Bernoulli(1-p);  d/da = m / (1-p).
    The mask is drawn by the caller (from a minigrad Generator) and passed in."""

    @staticmethod
    def forward(ctx, a, keep, p):
        ctx.scale = (keep / (1 - p)).astype(a.dtype) if p < 1 else np.zeros_like(a)
        return a * ctx.scale

    @staticmethod
    def backward(ctx, g):
        return g * ctx.scale, None, None

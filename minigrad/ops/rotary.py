"""Rotary position embedding applied to queries or keys (RoPE, in the "rotate half"
layout of Llama and Qwen2: feature j pairs with feature j + D/2)."""

import numpy as np

from ..autograd import Function


def rotate_half(x):
    """[x1, x2] -> [-x2, x1] over the last axis (halves of size D/2)."""
    half = x.shape[-1] // 2
    return np.concatenate((-x[..., half:], x[..., :half]), axis=-1)


def rotate_half_transposed(y):
    """The transpose of rotate_half: [y1, y2] -> [y2, -y1]."""
    half = y.shape[-1] // 2
    return np.concatenate((y[..., half:], -y[..., :half]), axis=-1)


class Rotary(Function):
    """out = x∘cos + rotate_half(x)∘sin, for x (..., T, D) and cos, sin broadcastable to it
    (angles are constants: they get no gradient).

    rotate_half is linear, so d/dx = g∘cos + rotate_halfᵀ(g∘sin).
    """

    @staticmethod
    def forward(ctx, x, cos, sin):
        if x.shape[-1] % 2:
            raise RuntimeError(f"rotary_embedding: the last dim of x must be even, got shape {tuple(x.shape)}")
        try:
            np.broadcast_shapes(x.shape, np.shape(cos), np.shape(sin))
        except ValueError:
            raise RuntimeError(
                f"rotary_embedding: cos {tuple(np.shape(cos))} and sin {tuple(np.shape(sin))} "
                f"do not broadcast to x {tuple(x.shape)}"
            ) from None
        cos, sin = np.asarray(cos, dtype=x.dtype), np.asarray(sin, dtype=x.dtype)
        ctx.cos, ctx.sin = cos, sin
        return x * cos + rotate_half(x) * sin

    @staticmethod
    def backward(ctx, g):
        return g * ctx.cos + rotate_half_transposed(g * ctx.sin), None, None

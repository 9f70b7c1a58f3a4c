"""softmax along one dim (the max is subtracted first, so no overflow)."""

import numpy as np

from ..autograd import Function


def _shifted(a, dim):
    """a - max(a) along dim; a row that is all -inf becomes all -inf, never NaN."""
    top = np.max(a, axis=dim, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)
    return a - top


class Softmax(Function):
    """out = exp(a) / Σ exp(a);  d/da = out ∘ (g - Σ g∘out)."""

    @staticmethod
    def forward(ctx, a, dim):
        e = np.exp(_shifted(a, dim))
        with np.errstate(invalid="ignore"):
            ctx.out = e / np.sum(e, axis=dim, keepdims=True)
        ctx.dim = dim
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        out = ctx.out
        return out * (g - np.sum(g * out, axis=ctx.dim, keepdims=True)), None

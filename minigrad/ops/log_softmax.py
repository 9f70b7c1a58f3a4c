"""log_softmax along any dim."""

import numpy as np

from ..autograd import Function
from ..dims import normalize_dim


def checked_dim(a, dim):
    """`dim` as a non-negative axis of `a` (a 0-d array counts as one axis), after checking the input."""
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"log_softmax: input must be a float32 or float64 array, got {a.dtype}")
    dim = normalize_dim(dim, a.ndim, "log_softmax")
    if a.ndim and a.shape[dim] == 0:
        raise ValueError(f"log_softmax: input needs a size >= 1 along dim {dim}, got shape {a.shape}")
    return dim


class LogSoftmax(Function):
    """out = a - m - log Σ exp(a - m) along `dim`, m = max(a) (no overflow);
    d/da = g - exp(out) · Σ g  (d out_i/d a_j = 1[i = j] - softmax_j).

    A row of all -inf gives NaN, as in torch. A 0-d tensor is one row of one entry."""

    @staticmethod
    def forward(ctx, a, dim):
        dim = checked_dim(a, dim) if a.ndim else checked_dim(a, dim) and None  # 0-d: reduce over all
        top = np.max(a, axis=dim, keepdims=True)
        with np.errstate(invalid="ignore"):  # -inf - (-inf): a row of all -inf gives NaN, as in torch
            shifted = a - top
            out = shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))
        ctx.out, ctx.dim = out, dim
        return out

    @staticmethod
    def backward(ctx, g):
        return g - np.exp(ctx.out) * np.sum(g, axis=ctx.dim, keepdims=True), None

"""log_softmax along any dim."""

import numpy as np

from ..autograd import Function


class LogSoftmax(Function):
    """out = a - m - log Σ exp(a - m) along `dim`, m = max(a) (no overflow);
    d/da = g - exp(out) · Σ g  (d out_i/d a_j = 1[i = j] - softmax_j).

    A row of all -inf gives NaN, as in torch. A 0-d tensor is one row of one entry."""

    @staticmethod
    def forward(ctx, a, dim):
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"log_softmax: input must be float32 or float64, got {a.dtype}")
        if not -max(a.ndim, 1) <= dim < max(a.ndim, 1):
            raise IndexError(f"log_softmax: dim {dim} is out of range for a tensor with {a.ndim} dims")
        dim = dim % max(a.ndim, 1) if a.ndim else None
        top = np.max(a, axis=dim, keepdims=True)
        with np.errstate(invalid="ignore"):  # -inf - (-inf): a row of all -inf gives NaN, as in torch
            shifted = a - top
            out = shifted - np.log(np.sum(np.exp(shifted), axis=dim, keepdims=True))
        ctx.out, ctx.dim = out, dim
        return out

    @staticmethod
    def backward(ctx, g):
        return g - np.exp(ctx.out) * np.sum(g, axis=ctx.dim, keepdims=True), None

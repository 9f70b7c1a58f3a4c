"""Reductions over one axis, several axes or all: sum, var, amax, max(dim) (mean is a sum divided
by the count: `Tensor.mean`)."""

import numpy as np

from ..autograd import Function
from ..dims import normalize_dims


def _regrow(g, in_shape, dims, keepdim):
    """Put reduced axes back as size 1 so `g` broadcasts against the input."""
    if not keepdim and dims:
        g = np.expand_dims(g, dims)
    return g


class Sum(Function):
    """out = Σ_dims a;  d/da = 1 broadcast back over the summed axes."""

    @staticmethod
    def forward(ctx, a, dim=None, keepdim=False):
        dims = normalize_dims(dim, a.ndim, "sum")
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        return np.sum(a, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g):
        return np.broadcast_to(_regrow(g, ctx.shape, ctx.dims, ctx.keepdim), ctx.shape), None, None


class Var(Function):
    """out = Σ (a - mean)² / (N - correction);  d/da = 2(a - mean) / (N - correction)."""

    @staticmethod
    def forward(ctx, a, dim=None, correction=1, keepdim=False):
        dims = normalize_dims(dim, a.ndim, "var")
        count = int(np.prod([a.shape[d] for d in dims]))
        ctx.centered = a - np.mean(a, axis=dims, keepdims=True)
        ctx.dims, ctx.keepdim, ctx.shape = dims, keepdim, a.shape
        ctx.denominator = max(count - correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sum(ctx.centered**2, axis=dims, keepdims=keepdim) / ctx.denominator

    @staticmethod
    def backward(ctx, g):
        g = _regrow(g, ctx.shape, ctx.dims, ctx.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * (2 / ctx.denominator) * ctx.centered, None, None, None


class Amax(Function):
    """out = max over dims;  d/da = 1/k at each of the k entries equal to the max
    (ties share the gradient evenly, as torch.amax and full torch.max do)."""

    @staticmethod
    def forward(ctx, a, dim=None, keepdim=False):
        dims = normalize_dims(dim, a.ndim, "amax")
        if any(a.shape[d] == 0 for d in dims):
            raise RuntimeError("amax: cannot reduce over an empty dimension")
        out = np.max(a, axis=dims, keepdims=True)
        ctx.is_max = a == out
        ctx.dims, ctx.keepdim, ctx.shape = dims, keepdim, a.shape
        return out if keepdim else np.squeeze(out, axis=dims)

    @staticmethod
    def backward(ctx, g):
        g = _regrow(g, ctx.shape, ctx.dims, ctx.keepdim)
        ties = np.sum(ctx.is_max, axis=ctx.dims, keepdims=True)
        return np.where(ctx.is_max, g / ties, 0).astype(g.dtype, copy=False), None, None


class MaxDim(Function):
    """out = max along one dim (the values of torch.max(x, dim));
    d/da = 1 at the returned index, 0 elsewhere (one winner per row, as torch)."""

    @staticmethod
    def forward(ctx, a, dim, keepdim=False):
        (d,) = normalize_dims(dim, a.ndim, "max")
        index = np.expand_dims(np.argmax(a, axis=d), d)
        ctx.index, ctx.dim, ctx.keepdim, ctx.shape = index, d, keepdim, a.shape
        out = np.take_along_axis(a, index, axis=d)
        return out if keepdim else np.squeeze(out, axis=d)

    @staticmethod
    def backward(ctx, g):
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.dim)
        grad = np.zeros(ctx.shape, dtype=g.dtype)
        np.put_along_axis(grad, ctx.index, g, axis=ctx.dim)
        return grad, None, None

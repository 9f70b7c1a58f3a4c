"""Repeat each slice along one axis `repeats` times in place (torch.repeat_interleave
with an int): grouped-query attention shares each key/value head among
`heads // kv_heads` query heads this way."""

import numpy as np

from ..autograd import Function


class RepeatInterleave(Function):
    """out[..., i·r + j, ...] = x[..., i, ...] for j < r along `dim`.

    d/dx = the gradient with axis `dim` split into (n, r), summed over r.
    """

    @staticmethod
    def forward(ctx, x, repeats, dim):
        ctx.shape, ctx.repeats, ctx.dim = x.shape, repeats, dim
        return np.repeat(x, repeats, axis=dim)

    @staticmethod
    def backward(ctx, g):
        shape, r, dim = ctx.shape, ctx.repeats, ctx.dim
        split = g.reshape(shape[:dim] + (shape[dim], r) + shape[dim + 1:])
        return split.sum(axis=dim + 1), None, None

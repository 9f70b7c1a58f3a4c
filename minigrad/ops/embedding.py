"""Embedding lookup: rows of a weight matrix picked by integer ids."""

import numpy as np

from ..autograd import Function


class Embedding(Function):
    """out = weight[ids];  d/dweight[v] = Σ of g over the positions whose id is v
    (an id used twice gets both gradients); the row `padding_idx` gets none."""

    @staticmethod
    def forward(ctx, ids, weight, padding_idx=None):
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"embedding: ids must be an integer tensor, got {ids.dtype}")
        rows = weight.shape[0]
        if ids.size and (ids.min() < 0 or ids.max() >= rows):
            bad = ids[(ids < 0) | (ids >= rows)].ravel()[0]
            raise IndexError(f"embedding: id {bad} is out of range for an embedding of {rows} rows")
        ctx.ids, ctx.rows, ctx.padding_idx = ids, rows, padding_idx
        return weight[ids]

    @staticmethod
    def backward(ctx, g):
        dim = g.shape[-1]
        flat_ids = ctx.ids.reshape(-1)
        flat_g = g.reshape(-1, dim)
        grad = np.zeros((ctx.rows, dim), dtype=g.dtype)
        np.add.at(grad, flat_ids, flat_g)
        if ctx.padding_idx is not None:
            grad[ctx.padding_idx] = 0
        return None, grad, None

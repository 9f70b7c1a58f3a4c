"""Embedding lookup: rows of a weight matrix picked by integer ids."""

import numpy as np

from ..autograd import Function


class Embedding(Function):
    """out = weight[ids];  d/dweight[v] = Σ of g over the positions whose id is v
    (out[i] is weight[ids[i]] itself, so each position hands its gradient row to its
    id's row; an id used twice gets both). The row `padding_idx` gets none."""

    @staticmethod
    def forward(ctx, ids, weight, padding_idx=None):
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"embedding: ids must be an integer tensor, got {ids.dtype}")
        rows = weight.shape[0]
        if ids.size and (ids.min() < 0 or ids.max() >= rows):
            bad = ids[(ids < 0) | (ids >= rows)].ravel()[0]
            raise IndexError(f"embedding: id {bad} is out of range for an embedding of {rows} rows")
        if padding_idx is not None and not -rows <= padding_idx < rows:
            raise IndexError(f"embedding: padding_idx {padding_idx} is out of range for an embedding of {rows} rows")
        ctx.ids, ctx.rows, ctx.padding_idx = ids, rows, padding_idx
        return weight[ids]

    @staticmethod
    def backward(ctx, g):
        dweight = np.zeros((ctx.rows, g.shape[-1]), dtype=g.dtype)
        np.add.at(dweight, ctx.ids.reshape(-1), g.reshape(-1, g.shape[-1]))  # unbuffered: repeats add up
        if ctx.padding_idx is not None:
            dweight[ctx.padding_idx] = 0
        return None, dweight, None

"""Embedding lookup: rows of a weight matrix picked by integer ids; the backward
(a scatter-add) runs on `minigrad.kernels.embedding`."""

import numpy as np

from .. import kernels
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
        if padding_idx is not None and not -rows <= padding_idx < rows:
            raise IndexError(f"embedding: padding_idx {padding_idx} is out of range for an embedding of {rows} rows")
        ctx.ids, ctx.rows, ctx.padding_idx, ctx.mode = ids, rows, padding_idx, kernels.get_kernel_mode()
        return weight[ids]

    @staticmethod
    def backward(ctx, g):
        return None, kernels.embedding_backward(ctx.ids, g, ctx.rows, ctx.padding_idx, mode=ctx.mode), None

"""log_softmax along any dim, on the kernels in `minigrad.kernels.log_softmax` (which
work on the last axis: another dim is moved there and back)."""

import numpy as np

from .. import kernels
from ..autograd import Function


class LogSoftmax(Function):
    """out = a - log Σ exp(a) along `dim`;  d/da = g - exp(out) · Σ g."""

    @staticmethod
    def forward(ctx, a, dim):
        rows = a.reshape(1) if a.ndim == 0 else a  # as torch: a 0-d tensor is one row of one entry
        if not -rows.ndim <= dim < rows.ndim:
            raise IndexError(f"log_softmax: dim {dim} is out of range for a tensor with {a.ndim} dims")
        ctx.dim, ctx.shape, ctx.mode = dim, a.shape, kernels.get_kernel_mode()
        ctx.out_last = kernels.log_softmax_forward(np.moveaxis(rows, dim, -1), mode=ctx.mode)
        return np.moveaxis(ctx.out_last, -1, dim).reshape(a.shape)

    @staticmethod
    def backward(ctx, g):
        g_last = np.moveaxis(g.reshape(1) if g.ndim == 0 else g, ctx.dim, -1)
        grad = kernels.log_softmax_backward(ctx.out_last, g_last, mode=ctx.mode)
        return np.moveaxis(grad, -1, ctx.dim).reshape(ctx.shape)

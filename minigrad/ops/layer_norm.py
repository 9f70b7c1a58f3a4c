"""Layer normalisation over the trailing `normalized_shape` axes, on the kernels in
`minigrad.kernels.layer_norm` (which work on rows: the normalised axes are
flattened into one row per leading index)."""

import math

import numpy as np

from .. import kernels
from ..autograd import Function


class LayerNorm(Function):
    """out = x̂·w + b with x̂ = (x - μ)·r, r = 1/sqrt(σ² + eps) (biased σ², as torch).

    d/dx = r · (ĝ - mean(ĝ) - x̂ · mean(ĝ∘x̂)) with ĝ = g∘w (means over the
    normalised axes);  d/dw = Σ g∘x̂;  d/db = Σ g (sums over the leading axes).
    Backward keeps x, μ and r, and rebuilds x̂.
    """

    @staticmethod
    def forward(ctx, x, normalized_shape, weight=None, bias=None, eps=1e-5):
        n = len(normalized_shape)
        if tuple(x.shape[x.ndim - n:]) != tuple(normalized_shape):
            raise RuntimeError(
                f"layer_norm: normalized_shape {tuple(normalized_shape)} does not match the "
                f"trailing dimensions of the input shape {tuple(x.shape)}"
            )
        for name, p in (("weight", weight), ("bias", bias)):
            if p is not None and tuple(p.shape) != tuple(normalized_shape):
                raise RuntimeError(
                    f"layer_norm: {name} has shape {tuple(p.shape)}, expected {tuple(normalized_shape)}"
                )
        width = math.prod(normalized_shape)
        dtype = np.result_type(*(a for a in (x, weight, bias) if a is not None))  # NumPy's promotion
        rows = x.reshape(math.prod(x.shape[: x.ndim - n]), width).astype(dtype, copy=False)
        w = None if weight is None else weight.reshape(width).astype(dtype, copy=False)
        b = None if bias is None else bias.reshape(width).astype(dtype, copy=False)
        ctx.mode = kernels.get_kernel_mode()
        out, ctx.mean, ctx.rstd = kernels.layer_norm_forward(rows, w, b, eps, mode=ctx.mode)
        ctx.rows, ctx.weight, ctx.shape, ctx.param_shape = rows, w, x.shape, tuple(normalized_shape)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        need_x, _, need_w, need_b, _ = ctx.needs_input_grad
        gx, gw, gb = kernels.layer_norm_backward(
            ctx.rows, ctx.mean, ctx.rstd, ctx.weight, g.reshape(ctx.rows.shape), need_x, need_w, need_b, mode=ctx.mode
        )
        return (
            None if gx is None else gx.reshape(ctx.shape),
            None,
            None if gw is None else gw.reshape(ctx.param_shape),
            None if gb is None else gb.reshape(ctx.param_shape),
            None,
        )

"""Root-mean-square normalisation over the trailing `normalized_shape` axes (as
`torch.nn.functional.rms_norm`; Llama's and Qwen2's norm)."""

import numpy as np

from ..autograd import Function
from .layer_norm import as_rows


class RMSNorm(Function):
    """out = x̂·w with x̂ = x·r, r = 1/sqrt(mean(x²) + eps) (mean over the normalised axes).

    With ĝ = g∘w:  d/dx = r · (ĝ - x̂ · mean(ĝ∘x̂));  d/dw = Σ g∘x̂ (sum over the leading axes).
    (From dr/dx = -r³·x/n: the second term is the normalisation pulling back.)
    Backward keeps the rows and r, and rebuilds x̂.
    """

    @staticmethod
    def forward(ctx, x, normalized_shape, weight=None, eps=1e-6):
        rows, w, _ = as_rows(x, normalized_shape, weight, None, op="rms_norm")
        rstd = 1.0 / np.sqrt(np.mean(rows * rows, axis=1, keepdims=True) + rows.dtype.type(eps))
        normed = rows * rstd
        ctx.rows, ctx.rstd, ctx.weight, ctx.shape, ctx.param_shape = rows, rstd, w, x.shape, tuple(normalized_shape)
        return (normed if w is None else normed * w).reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        need_x, _, need_w, _ = ctx.needs_input_grad
        g = g.reshape(ctx.rows.shape)
        normed = ctx.rows * ctx.rstd
        gx = gw = None
        if need_x:
            gh = g if ctx.weight is None else g * ctx.weight
            gx = (ctx.rstd * (gh - normed * np.mean(gh * normed, axis=1, keepdims=True))).reshape(ctx.shape)
        if need_w:
            gw = np.sum(g * normed, axis=0).reshape(ctx.param_shape)
        return gx, None, gw, None

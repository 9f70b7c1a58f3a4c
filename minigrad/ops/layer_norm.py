"""Layer normalisation over the trailing `normalized_shape` axes."""

import numpy as np

from ..autograd import Function


class LayerNorm(Function):
    """out = x̂·w + b with x̂ = (x - μ)·r, r = 1/sqrt(σ² + eps) (biased σ², as torch).

    d/dx = r · (ĝ - mean(ĝ) - x̂ · mean(ĝ∘x̂)) with ĝ = g∘w (means over the
    normalised axes);  d/dw = Σ g∘x̂;  d/db = Σ g (sums over the leading axes).
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
        axes = tuple(range(x.ndim - n, x.ndim))
        mean = np.mean(x, axis=axes, keepdims=True)
        centered = x - mean
        var = np.mean(centered * centered, axis=axes, keepdims=True)
        rstd = 1 / np.sqrt(var + eps)
        xhat = centered * rstd
        ctx.axes, ctx.xhat, ctx.rstd, ctx.weight = axes, xhat, rstd, weight
        out = xhat
        if weight is not None:
            out = out * weight
        if bias is not None:
            out = out + bias
        return out

    @staticmethod
    def backward(ctx, g):
        need_x, _, need_w, need_b, _ = ctx.needs_input_grad
        axes, xhat = ctx.axes, ctx.xhat
        leading = tuple(range(g.ndim - len(axes)))
        gx = gw = gb = None
        if need_x:
            ghat = g * ctx.weight if ctx.weight is not None else g
            gx = ctx.rstd * (
                ghat
                - np.mean(ghat, axis=axes, keepdims=True)
                - xhat * np.mean(ghat * xhat, axis=axes, keepdims=True)
            )
        if need_w:
            gw = np.sum(g * xhat, axis=leading)
        if need_b:
            gb = np.sum(g, axis=leading)
        return gx, None, gw, gb, None

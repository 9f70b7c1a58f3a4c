"""Layer normalisation over the trailing `normalized_shape` axes."""

import math

import numpy as np

from ..autograd import Function


def as_rows(x, normalized_shape, weight, bias, op="layer_norm"):
    """Check the shapes; return x as (R, C) rows and weight, bias as (C,) (or None),
    all in NumPy's promotion of their dtypes. `op` names the norm in errors (rms_norm too)."""
    n = len(normalized_shape)
    if tuple(x.shape[x.ndim - n:]) != tuple(normalized_shape):
        raise RuntimeError(
            f"{op}: normalized_shape {tuple(normalized_shape)} does not match the "
            f"trailing dimensions of the input shape {tuple(x.shape)}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != tuple(normalized_shape):
            raise RuntimeError(f"{op}: {name} has shape {tuple(p.shape)}, expected {tuple(normalized_shape)}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: input must be float32 or float64, got {x.dtype}")
    width = math.prod(normalized_shape)
    if width == 0:
        raise ValueError(f"{op}: normalized_shape {tuple(normalized_shape)} has no entries to normalise")
    dtype = np.result_type(*(a for a in (x, weight, bias) if a is not None))
    rows = x.reshape(math.prod(x.shape[: x.ndim - n]), width).astype(dtype, copy=False)
    w = None if weight is None else weight.reshape(width).astype(dtype, copy=False)
    b = None if bias is None else bias.reshape(width).astype(dtype, copy=False)
    return rows, w, b


class LayerNorm(Function):
    """out = x̂·w + b,  x̂ = (x - μ)·r,  r = 1/sqrt(σ² + eps)  (per row; biased σ², as torch).

    d/dx = r · (ĝ - mean(ĝ) - x̂ · mean(ĝ∘x̂)) with ĝ = g∘w: x̂ depends on x directly,
    through μ (-r/C each) and through r (-x̂·r/C·x̂_j each);  d/dw = Σ_rows g∘x̂;
    d/db = Σ_rows g. Backward keeps x, μ and r (two numbers a row) and rebuilds x̂.
    """

    @staticmethod
    def forward(ctx, x, normalized_shape, weight=None, bias=None, eps=1e-5):
        if not eps >= 0:
            raise ValueError(f"layer_norm: eps must be >= 0, got {eps}")
        rows, w, b = as_rows(x, normalized_shape, weight, bias)
        mean = np.mean(rows, axis=1, keepdims=True)
        centered = rows - mean
        rstd = 1 / np.sqrt(np.mean(centered * centered, axis=1, keepdims=True) + rows.dtype.type(eps))
        out = centered * rstd
        if w is not None:
            out = out * w
        if b is not None:
            out = out + b
        ctx.rows, ctx.mean, ctx.rstd, ctx.weight = rows, mean[:, 0], rstd[:, 0], w
        ctx.shape, ctx.param_shape = x.shape, tuple(normalized_shape)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        need_x, _, need_w, need_b, _ = ctx.needs_input_grad
        g = g.reshape(ctx.rows.shape)
        xhat = (ctx.rows - ctx.mean[:, None]) * ctx.rstd[:, None]
        gx = gw = gb = None
        if need_x:
            ghat = g * ctx.weight if ctx.weight is not None else g
            gx = ctx.rstd[:, None] * (ghat - np.mean(ghat, axis=1, keepdims=True)
                                      - xhat * np.mean(ghat * xhat, axis=1, keepdims=True))
            gx = gx.reshape(ctx.shape)
        if need_w:
            gw = np.sum(g * xhat, axis=0).reshape(ctx.param_shape)
        if need_b:
            gb = np.sum(g, axis=0).reshape(ctx.param_shape)
        return gx, None, gw, gb, None

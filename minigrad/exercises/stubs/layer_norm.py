"""Exercise `layer_norm`: the backward of layer normalisation over the last axis.

    check it:   python -m minigrad.exercises check layer_norm

Forward (given), for each row x of D entries (the last axis):
    μ = mean(x),  σ² = mean((x - μ)²)  (biased, as torch),  r = 1/sqrt(σ² + eps)
    x̂ = (x - μ)·r
    y = x̂ ∘ weight + bias                  weight, bias: shape (D,), shared by every row
To derive:        dL/dx (μ and σ² depend on every entry of the row!), dL/dweight, dL/dbias.
Your backward:    gets `grad` = dL/dy (the shape of x) and returns
                  (dL/dx, dL/dweight, dL/dbias), each in its input's shape.
                  Saved: ctx.xhat (x̂), ctx.rstd (r, shape (..., 1)), ctx.weight.
"""

import numpy as np

from minigrad import Function


class LayerNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        ctx.rstd = 1.0 / np.sqrt(var + eps)
        ctx.xhat = (x - mean) * ctx.rstd
        ctx.weight = weight
        return ctx.xhat * weight + bias

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("your turn: return (dL/dx, dL/dweight, dL/dbias)")

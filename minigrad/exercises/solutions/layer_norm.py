"""Solution `layer_norm`: y = x̂ ∘ w + b, x̂ = (x - μ)·r, r = 1/sqrt(σ² + eps), per row of D.

    dL/db = Σ_rows grad                    (b is added to every row)
    dL/dw = Σ_rows grad ∘ x̂                (w multiplies x̂ in every row)
    dL/dx = r·(ĝ - mean(ĝ) - x̂·mean(ĝ ∘ x̂)),   ĝ = grad ∘ w, means over the row

Derivation of dL/dx for one row: dL/dx̂ = ĝ. With c = x - μ, x̂ = c·r:
    dx̂_i/dx_j = r·([i = j] - 1/D) - c_i·r³·c_j/D        (μ and σ² both depend on x_j)
              = r·([i = j] - 1/D - x̂_i x̂_j / D)
so dL/dx_j = Σ_i ĝ_i·dx̂_i/dx_j = r·(ĝ_j - mean(ĝ) - x̂_j·mean(ĝ ∘ x̂)).
The middle term comes through μ, the last through σ².
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
        xhat = ctx.xhat
        ghat = grad * ctx.weight
        dx = ctx.rstd * (ghat - ghat.mean(axis=-1, keepdims=True)
                         - xhat * (ghat * xhat).mean(axis=-1, keepdims=True))
        rows = grad.reshape(-1, grad.shape[-1])
        dweight = (rows * xhat.reshape(rows.shape)).sum(axis=0)
        dbias = rows.sum(axis=0)
        return dx, dweight, dbias

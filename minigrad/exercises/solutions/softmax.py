"""Solution `softmax`: y = softmax(x) per row;  dL/dx = y ∘ (grad - Σ_i grad_i y_i).

    y_i = e^(x_i) / Σ_k e^(x_k)
    dy_i/dx_j = y_i·([i = j] - y_j)              (the Jacobian diag(y) - y yᵀ)
    dL/dx_j = Σ_i grad_i · y_i·([i = j] - y_j) = y_j·grad_j - y_j·Σ_i grad_i y_i
            = y_j·(grad_j - Σ_i grad_i y_i)

The sum runs over the row (the last axis), so it is kept as a column (keepdims).
"""

import numpy as np

from minigrad import Function


class Softmax(Function):
    @staticmethod
    def forward(ctx, x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        ctx.y = e / e.sum(axis=-1, keepdims=True)
        return ctx.y

    @staticmethod
    def backward(ctx, grad):
        y = ctx.y
        return y * (grad - (grad * y).sum(axis=-1, keepdims=True))

"""Solution `log_softmax`: y = log softmax(x) per row;  dL/dx = grad - softmax(x)·Σ_i grad_i.

    y_i = x_i - log Σ_k e^(x_k)
    dy_i/dx_j = [i = j] - softmax(x)_j
    dL/dx_j = Σ_i grad_i·([i = j] - softmax(x)_j) = grad_j - softmax(x)_j·Σ_i grad_i

softmax(x) = e^y is recovered from the saved output.
"""

import numpy as np

from minigrad import Function


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx, x):
        shifted = x - x.max(axis=-1, keepdims=True)
        ctx.y = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return ctx.y

    @staticmethod
    def backward(ctx, grad):
        return grad - np.exp(ctx.y) * grad.sum(axis=-1, keepdims=True)

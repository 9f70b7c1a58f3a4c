"""Solution `logsigmoid`: y = log σ(x);  dy/dx = σ(-x).

    y = -log(1 + e^(-x))
    dy/dx = e^(-x) / (1 + e^(-x)) = 1 / (e^x + 1) = σ(-x) = 1 - σ(x)

σ(-x) is computed as 1/(1 + e^x) where x ≤ 0 and e^(-x)/(1 + e^(-x)) where x > 0, so
the exponential never overflows.
"""

import numpy as np

from minigrad import Function


def sigmoid(x):
    """σ(x) without overflow: e^(-|x|) ≤ 1 always."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


class LogSigmoid(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return np.minimum(x, 0.0) - np.log1p(np.exp(-np.abs(x)))

    @staticmethod
    def backward(ctx, grad):
        return grad * sigmoid(-ctx.x)

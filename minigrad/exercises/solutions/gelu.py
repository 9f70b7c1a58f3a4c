"""Solution `gelu`: y = x·Φ(x);  dy/dx = Φ(x) + x·φ(x).

Product rule: d(x·Φ(x))/dx = Φ(x) + x·Φ'(x), and Φ' is the standard normal density
φ(x) = e^(-x²/2)/√(2π).
"""

import math

import numpy as np

from minigrad import Function
from minigrad.ops.pointwise import erf


class GELU(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        ctx.cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
        return x * ctx.cdf

    @staticmethod
    def backward(ctx, grad):
        pdf = np.exp(-0.5 * ctx.x * ctx.x) / math.sqrt(2.0 * math.pi)
        return grad * (ctx.cdf + ctx.x * pdf)

"""Exercise `gelu`: the backward of the exact GELU, y = x·Φ(x), elementwise.

    check it:   python -m minigrad.exercises check gelu

Forward (given):  y = x·Φ(x), Φ(x) = (1 + erf(x/√2))/2 the standard normal CDF.
To derive:        dy/dx (product rule; Φ'(x) = φ(x) = e^(-x²/2)/√(2π), the normal density).
Your backward:    gets `grad` = dL/dy and returns dL/dx = grad ∘ dy/dx.
                  `ctx.x` is the input, `ctx.cdf` is Φ(x).
"""

import math

import numpy as np  # noqa: F401  (for your backward)

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
        raise NotImplementedError("your turn: return dL/dx = grad * dy/dx")


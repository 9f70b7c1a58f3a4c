"""SiLU (swish), the gate of Llama's SwiGLU MLP: down(silu(gate(x)) ∘ up(x))."""

import numpy as np

from ..autograd import Function


class SiLU(Function):
    """out = a·σ(a);  d/da = σ(a)·(1 + a·(1 - σ(a))).

    σ(a) = 1/(1 + e^-a): for a very negative e^-a overflows to inf and σ to 0, its
    limit, so no branch is needed (the overflow warning is silenced). Built in place:
    this op runs on the widest activations of the model.
    """

    @staticmethod
    def forward(ctx, a):
        with np.errstate(over="ignore"):
            s = np.exp(-a)
        s += 1
        np.reciprocal(s, out=s)
        ctx.a, ctx.s = a, s
        return a * s

    @staticmethod
    def backward(ctx, g):
        slope = 1 - ctx.s
        slope *= ctx.a
        slope += 1
        slope *= ctx.s
        slope *= g
        return slope

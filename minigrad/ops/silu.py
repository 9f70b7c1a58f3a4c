"""SiLU (swish), the gate of Llama's SwiGLU MLP: down(silu(gate(x)) ∘ up(x))."""

from ..autograd import Function
from .pointwise import _sigmoid


class SiLU(Function):
    """out = a·σ(a);  d/da = σ(a)·(1 + a·(1 - σ(a)))."""

    @staticmethod
    def forward(ctx, a):
        s = _sigmoid(a).astype(a.dtype, copy=False)
        ctx.a, ctx.s = a, s
        return a * s

    @staticmethod
    def backward(ctx, g):
        s = ctx.s
        return g * (s * (1 + ctx.a * (1 - s)))

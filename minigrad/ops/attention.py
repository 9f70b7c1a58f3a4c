"""Scaled dot-product attention as one op, on the kernels in `minigrad.kernels.attention`."""

from .. import kernels
from ..autograd import Function


class ScaledDotProductAttention(Function):
    """out = P v,  P = softmax(q kᵀ·scale + attn_bias, masked), for q, k, v of shape (B, H, L, D).

    d/dv = Pᵀ g;  dS = P ∘ (g vᵀ - rowsum(g ∘ out));  d/dq = scale · dS k;  d/dk = scale · dSᵀ q.

    Options (keywords, not differentiated): `key_padding_mask` (B, S) bool, True =
    may attend; `attn_bias` additive, broadcastable to (B, H, L, S); `is_causal`;
    `scale`. The kernel path (numba or NumPy) is the one active at forward; the
    backward uses the same one.
    """

    grads_are_new = True  # both kernel paths return dq, dk, dv as arrays of their own

    @staticmethod
    def forward(ctx, q, k, v, key_padding_mask=None, attn_bias=None, is_causal=False, scale=None):
        ctx.mode = kernels.get_kernel_mode()
        out, probs = kernels.attention_forward(q, k, v, key_padding_mask, attn_bias, is_causal, scale, mode=ctx.mode)
        ctx.saved = (q, k, v, out, probs)
        ctx.is_causal, ctx.scale = is_causal, scale
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, out, probs = ctx.saved
        return kernels.attention_backward(q, k, v, out, probs, g, ctx.is_causal, ctx.scale, mode=ctx.mode)

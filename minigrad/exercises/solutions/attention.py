"""Solution `attention`: out = P v, P = softmax(causal(q kᵀ·scale)).

Backwards, one line of the forward at a time (g = dL/dout):

    out = P v        ->  dv = Pᵀ g,   dP = g vᵀ
    P = softmax(S)   ->  dS = P ∘ (dP - rowsum(dP ∘ P))        (softmax's backward, per row)
                         and rowsum(dP ∘ P)_i = Σ_j P_ij (g vᵀ)_ij = Σ_e g_ie out_ie = rowsum(g ∘ out)
    S = q kᵀ·scale   ->  dq = scale · dS k,   dk = scale · dSᵀ q

The causal mask needs no code of its own: a masked score has P = 0, so dS is 0 there
and nothing flows back through it.
"""

import numpy as np

from minigrad import Function


class CausalAttention(Function):
    @staticmethod
    def forward(ctx, q, k, v):
        T = q.shape[0]
        scale = 1.0 / np.sqrt(q.shape[-1])
        scores = q @ k.T * scale
        scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        P = e / e.sum(axis=-1, keepdims=True)
        ctx.q, ctx.k, ctx.v, ctx.P, ctx.scale = q, k, v, P, scale
        return P @ v

    @staticmethod
    def backward(ctx, grad):
        q, k, v, P, scale = ctx.q, ctx.k, ctx.v, ctx.P, ctx.scale
        dv = P.T @ grad
        dP = grad @ v.T
        dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
        dq = scale * dS @ k
        dk = scale * dS.T @ q
        return dq, dk, dv

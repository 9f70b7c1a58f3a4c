"""Exercise `attention`: the backward of single-head causal attention.

    check it:   python -m minigrad.exercises check attention

Forward (given), q and k of shape (T, d), v of shape (T, e), scale = 1/sqrt(d):
    S = q kᵀ · scale                      (T, T) scores
    S[i, j] = -inf for j > i              (causal: position i sees keys 0..i)
    P = softmax(S) row by row             (T, T), P[i, j] = 0 above the diagonal
    out = P v                             (T, e)
To derive:        dL/dq, dL/dk, dL/dv. Go backwards one line at a time:
                  out = P v gives dP and dv; softmax's backward gives dS from dP;
                  S = q kᵀ · scale gives dq and dk. (The masked entries have P = 0.)
Your backward:    gets `grad` = dL/dout (T, e) and returns (dL/dq, dL/dk, dL/dv).
                  Saved: ctx.q, ctx.k, ctx.v, ctx.P, ctx.scale.
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
        raise NotImplementedError("your turn: return (dL/dq, dL/dk, dL/dv)")

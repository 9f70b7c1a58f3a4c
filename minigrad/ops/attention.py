"""Scaled dot-product attention as one op, for q, k, v of shape (B, H, L, D)."""

import math

import numpy as np

from ..autograd import Function


def check_inputs(q, k, v, key_padding_mask, attn_bias):
    """Raise one clear error for inputs the op cannot take."""
    for name, a in (("q", q), ("k", k), ("v", v)):
        if not isinstance(a, np.ndarray) or a.ndim != 4:
            shape = getattr(a, "shape", None)
            raise ValueError(f"attention: {name} must be an array of shape (batch, heads, length, dim), got {shape}")
    if q.dtype not in (np.float32, np.float64) or k.dtype != q.dtype or v.dtype != q.dtype:
        raise TypeError(f"attention: q, k, v must all be float32 or all float64, got {q.dtype}, {k.dtype}, {v.dtype}")
    (B, H, L, D), S = q.shape, k.shape[2]
    if k.shape[:2] != (B, H) or v.shape[:2] != (B, H) or k.shape[3] != D or v.shape[2] != S:
        raise ValueError(
            f"attention: shapes q {q.shape}, k {k.shape}, v {v.shape} do not fit: all need the same "
            "(batch, heads), q and k the same last dim, k and v the same length"
        )
    if D == 0:
        raise ValueError("attention: q and k have a last dim of 0; scale = 1/sqrt(dim) needs dim >= 1")
    if key_padding_mask is not None and (key_padding_mask.dtype != np.bool_ or key_padding_mask.shape != (B, S)):
        raise ValueError(
            f"attention: key_padding_mask must be a bool array of shape (batch, keys) = {(B, S)}, "
            f"got {key_padding_mask.dtype} {key_padding_mask.shape}"
        )
    if attn_bias is not None:
        if attn_bias.dtype != q.dtype:
            raise TypeError(f"attention: attn_bias must have q's dtype {q.dtype}, got {attn_bias.dtype}")
        try:
            shape = np.broadcast_shapes(attn_bias.shape, (B, H, L, S))
        except ValueError:
            shape = None
        if shape != (B, H, L, S):
            raise ValueError(
                f"attention: attn_bias of shape {attn_bias.shape} does not broadcast to "
                f"(batch, heads, queries, keys) = {(B, H, L, S)}"
            )


class ScaledDotProductAttention(Function):
    """out = P v,  P = softmax(S) row by row,  S = q kᵀ·scale + attn_bias, -inf where masked.

    d/dv = Pᵀ g;  dP = g vᵀ;  dS = P ∘ (dP - Δ), Δ_i = Σ_j P_ij dP_ij = Σ_e g_ie out_ie
    (softmax backward);  d/dq = scale · dS k;  d/dk = scale · dSᵀ q.

    Options (keywords, not differentiated): `key_padding_mask` (B, S) bool, True =
    may attend; `attn_bias` additive, of q's dtype, broadcastable to (B, H, L, S);
    `is_causal`; `scale` (default 1/sqrt(D)). A query row with no key left has
    P = 0: its output is 0 and it sends no gradient, as in torch. Forward keeps P.
    """

    @staticmethod
    def forward(ctx, q, k, v, key_padding_mask=None, attn_bias=None, is_causal=False, scale=None):
        check_inputs(q, k, v, key_padding_mask, attn_bias)
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        L, S = q.shape[2], k.shape[2]
        scores = (q @ k.swapaxes(-1, -2)) * scale
        if attn_bias is not None:
            scores = scores + attn_bias
        allowed = np.tril(np.ones((L, S), dtype=bool)) if is_causal else np.ones((L, S), dtype=bool)
        if key_padding_mask is not None:
            allowed = allowed & key_padding_mask[:, None, None, :]
        scores = np.where(allowed, scores, -np.inf)
        top = np.max(scores, axis=-1, keepdims=True)
        dead = top == -np.inf
        e = np.exp(scores - np.where(dead, 0, top))
        probs = (e / np.where(dead, 1, np.sum(e, axis=-1, keepdims=True))).astype(q.dtype, copy=False)
        out = probs @ v
        ctx.saved, ctx.scale = (q, k, v, out, probs), scale
        return out

    @staticmethod
    def backward(ctx, g):
        q, k, v, out, probs = ctx.saved
        dv = probs.swapaxes(-1, -2) @ g
        dp = g @ v.swapaxes(-1, -2)
        ds = probs * (dp - np.sum(g * out, axis=-1, keepdims=True)) * ctx.scale
        return ds @ k, ds.swapaxes(-1, -2) @ q, dv

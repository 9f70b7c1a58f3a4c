"""log softmax(logits)[..., target] as one op: the (..., V) log-prob tensor is never kept."""

import numpy as np

from ..autograd import Function


def check_inputs(logits, targets, ignore_index):
    if logits.dtype not in (np.float32, np.float64):
        raise TypeError(f"token_logprobs: logits must be a float32 or float64 array, got {logits.dtype}")
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"token_logprobs: logits need a last (vocabulary) dim of size >= 1, got {logits.shape}")
    if not isinstance(targets, np.ndarray) or not np.issubdtype(targets.dtype, np.integer):
        got = getattr(targets, "dtype", type(targets))
        raise TypeError(f"token_logprobs: targets must be an integer array, got {got}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(
            f"token_logprobs: logits of shape {logits.shape} need targets of shape {logits.shape[:-1]}, "
            f"got {targets.shape}"
        )
    vocab = logits.shape[-1]
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= vocab))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IndexError(
            f"token_logprobs: target {int(targets[where])} is out of range for {vocab} classes "
            f"(at position {where}; it is not ignore_index={ignore_index})"
        )


class TokenLogprobs(Function):
    """out = x_t - lse,  lse = m + log Σ_j exp(x_j - m),  m = max_j x_j, per row x of
    logits and its target t (0 where t == ignore_index);
    d/dx_j = g · (1[j = t] - exp(x_j - lse)), 0 on ignored rows.

    `targets` (an integer array of logits.shape[:-1]) and `ignore_index` are
    keywords, not differentiated. Forward keeps lse (one number a row), not the
    (..., V) log-probs; cross-entropy is -out.
    """

    @staticmethod
    def forward(ctx, logits, targets=None, ignore_index=-100):
        check_inputs(logits, targets, ignore_index)
        valid = targets != ignore_index
        top = np.max(logits, axis=-1, keepdims=True)
        with np.errstate(invalid="ignore"):  # -inf - (-inf): a row of all -inf gives NaN, as in torch
            lse = (top + np.log(np.sum(np.exp(logits - top), axis=-1, keepdims=True)))[..., 0]
        picked = np.take_along_axis(logits, np.where(valid, targets, 0)[..., None], axis=-1)[..., 0]
        ctx.saved, ctx.ignore_index = (logits, targets, np.where(valid, lse, 0).astype(logits.dtype)), ignore_index
        return np.where(valid, picked - lse, 0).astype(logits.dtype)

    @staticmethod
    def backward(ctx, g):
        logits, targets, lse = ctx.saved
        valid = targets != ctx.ignore_index
        probs = np.exp(np.where(valid[..., None], logits - lse[..., None], -np.inf))
        onehot = np.zeros_like(logits)
        np.put_along_axis(onehot, np.where(valid, targets, 0)[..., None], 1, axis=-1)
        return (np.where(valid, g, 0)[..., None] * (onehot - probs)).astype(logits.dtype, copy=False)

"""Fused log p(target) per position: log_softmax(logits)[..., target] without the
(..., V) log-prob tensor.

For a row x of V logits and its target t:

    lse   = m + log Σ_j exp(x_j - m),  m = max_j x_j
    out   = x_t - lse                          (0 where t == ignore_index)
    dx_j  = g · (1[j == t] - exp(x_j - lse))   (0 for an ignored row)

Forward keeps only lse (one float per row) for the backward, which builds the
(..., V) gradient once. Cross-entropy is -out.

`forward_reference` / `backward_reference` are the math in NumPy (they do build
(..., V) temporaries). The numba versions stream each row, in parallel over
rows, and skip ignored rows (their lse is 0 in both versions).
"""

import math

import numba
import numpy as np

from .fast_exp import exp_nonpositive
from .tiles import FASTMATH


def check_inputs(logits, targets, ignore_index):
    if not isinstance(logits, np.ndarray) or logits.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"token_logprobs: logits must be a float32 or float64 array, got {getattr(logits, 'dtype', type(logits))}"
        )
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"token_logprobs: logits need a last (vocabulary) dim of size >= 1, got {logits.shape}")
    if not isinstance(targets, np.ndarray) or not np.issubdtype(targets.dtype, np.integer):
        raise TypeError(
            f"token_logprobs: targets must be an integer array, got {getattr(targets, 'dtype', type(targets))}"
        )
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


# ---- NumPy reference ------------------------------------------------------------------


def forward_reference(logits, targets, ignore_index):
    """(log p(target), lse), both of shape targets.shape."""
    valid = targets != ignore_index
    top = np.max(logits, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # -inf - (-inf): a row of all -inf gives NaN, as in torch
        lse = (top + np.log(np.sum(np.exp(logits - top), axis=-1, keepdims=True)))[..., 0]
    picked = np.take_along_axis(logits, np.where(valid, targets, 0)[..., None], axis=-1)[..., 0]
    return np.where(valid, picked - lse, 0).astype(logits.dtype), np.where(valid, lse, 0).astype(logits.dtype)


def backward_reference(logits, targets, lse, grad, ignore_index):
    valid = targets != ignore_index
    probs = np.exp(np.where(valid[..., None], logits - lse[..., None], -np.inf))  # ignored rows: 0
    onehot = np.zeros_like(logits)
    np.put_along_axis(onehot, np.where(valid, targets, 0)[..., None], 1, axis=-1)
    return (np.where(valid, grad, 0)[..., None] * (onehot - probs)).astype(logits.dtype, copy=False)


# ---- numba ----------------------------------------------------------------------------


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def _forward_rows(x, targets, ignore_index, out, lse):
    for r in numba.prange(x.shape[0]):
        t = targets[r]
        if t == ignore_index:
            out[r] = 0
            lse[r] = 0
            continue
        row = x[r]
        top = row[0]
        for j in range(row.shape[0]):
            top = max(top, row[j])
        total = x.dtype.type(0)
        for j in range(row.shape[0]):
            total += exp_nonpositive(row[j] - top)
        lse[r] = top + math.log(total)
        out[r] = row[t] - lse[r]


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def _backward_rows(x, targets, ignore_index, lse, grad, dx):
    for r in numba.prange(x.shape[0]):
        t = targets[r]
        out = dx[r]
        if t == ignore_index:
            out[:] = 0
            continue
        row, g, m = x[r], grad[r], lse[r]
        for j in range(row.shape[0]):
            out[j] = -g * exp_nonpositive(row[j] - m)
        out[t] += g


def _flat(a, dtype, width=None):
    """`a` as C-contiguous writable rows (one compiled version: see attention._c_writable)."""
    a = np.require(a, dtype, ("C", "W"))
    return a.reshape(-1) if width is None else a.reshape(-1, width)


def forward_numba(logits, targets, ignore_index):
    rows = _flat(logits, logits.dtype, logits.shape[-1])
    out = np.empty(rows.shape[0], dtype=logits.dtype)
    lse = np.empty(rows.shape[0], dtype=logits.dtype)
    _forward_rows(rows, _flat(targets, np.int64), ignore_index, out, lse)
    return out.reshape(targets.shape), lse.reshape(targets.shape)


def backward_numba(logits, targets, lse, grad, ignore_index):
    rows = _flat(logits, logits.dtype, logits.shape[-1])
    dx = np.empty(rows.shape, dtype=logits.dtype)
    dtype = logits.dtype
    _backward_rows(rows, _flat(targets, np.int64), ignore_index, _flat(lse, dtype), _flat(grad, dtype), dx)
    return dx.reshape(logits.shape)

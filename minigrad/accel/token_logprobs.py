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


def forward(logits, targets, ignore_index):
    rows = _flat(logits, logits.dtype, logits.shape[-1])
    out = np.empty(rows.shape[0], dtype=logits.dtype)
    lse = np.empty(rows.shape[0], dtype=logits.dtype)
    _forward_rows(rows, _flat(targets, np.int64), ignore_index, out, lse)
    return out.reshape(targets.shape), lse.reshape(targets.shape)


def backward(logits, targets, lse, grad, ignore_index):
    rows = _flat(logits, logits.dtype, logits.shape[-1])
    dx = np.empty(rows.shape, dtype=logits.dtype)
    dtype = logits.dtype
    _backward_rows(rows, _flat(targets, np.int64), ignore_index, _flat(lse, dtype), _flat(grad, dtype), dx)
    return dx.reshape(logits.shape)

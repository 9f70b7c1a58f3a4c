"""numba kernels of `minigrad.ops.token_logprobs.TokenLogprobs`: the math is the core op's.
They stream each row, in parallel over rows, build no (..., V) temporary in forward
and one (..., V) gradient in backward (none where the logits' memory may take it), and
skip ignored rows (their lse is 0, as in the core op).
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


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def _backward_rows_in_place(x, targets, ignore_index, lse, grad):
    """`_backward_rows` with dx = x, written as one array so that the loop vectorises (the
    two-array kernel given the same memory twice falls back to scalar code)."""
    for r in numba.prange(x.shape[0]):
        t = targets[r]
        row = x[r]
        if t == ignore_index:
            row[:] = 0
            continue
        g, m = grad[r], lse[r]
        for j in range(row.shape[0]):
            row[j] = -g * exp_nonpositive(row[j] - m)
        row[t] += g


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


def backward(logits, targets, lse, grad, ignore_index, into_logits=False):
    """d logits; with `into_logits` (the caller's promise that nothing reads the logits after,
    and that they are a C-contiguous writable array) written over the logits' own memory."""
    rows, dtype = _flat(logits, logits.dtype, logits.shape[-1]), logits.dtype
    args = (rows, _flat(targets, np.int64), ignore_index, _flat(lse, dtype), _flat(grad, dtype))
    if into_logits:
        _backward_rows_in_place(*args)
        return rows.reshape(logits.shape)
    dx = np.empty(rows.shape, dtype=dtype)
    _backward_rows(*args, dx)
    return dx.reshape(logits.shape)

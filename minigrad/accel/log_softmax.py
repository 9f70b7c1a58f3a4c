"""numba kernels of `minigrad.ops.log_softmax.LogSoftmax` over the last axis: the math is
the core op's. Per row, in parallel over rows (each row written by one iteration), in
two passes over the row instead of NumPy's temporaries. A row of all -inf (or holding
+inf or NaN) gives NaN, as in torch.
"""

import math

import numba
import numpy as np

from .fast_exp import exp_nonpositive
from .tiles import FASTMATH


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def _forward_rows(x, y):
    for r in numba.prange(x.shape[0]):
        row, out = x[r], y[r]
        top = row[0]
        for j in range(row.shape[0]):
            top = max(top, row[j])
        total = x.dtype.type(0)
        for j in range(row.shape[0]):
            total += exp_nonpositive(row[j] - top)
        lse = top + math.log(total)
        for j in range(row.shape[0]):
            out[j] = row[j] - lse


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def _backward_rows(y, grad, dx):
    for r in numba.prange(y.shape[0]):
        g, out = grad[r], dx[r]
        total = y.dtype.type(0)
        for j in range(g.shape[0]):
            total += g[j]
        y_row = y[r]
        for j in range(g.shape[0]):
            out[j] = g[j] - exp_nonpositive(y_row[j]) * total


def _rows(a, dtype):
    """`a` as C-contiguous writable rows (one compiled version: see attention._c_writable)."""
    return np.require(a, dtype, ("C", "W")).reshape(-1, a.shape[-1])


def forward(x):
    y = np.empty(x.shape, dtype=x.dtype)
    _forward_rows(_rows(x, x.dtype), y.reshape(-1, x.shape[-1]))
    return y


def backward(y, grad):
    dx = np.empty(y.shape, dtype=y.dtype)
    _backward_rows(_rows(y, y.dtype), _rows(grad, y.dtype), dx.reshape(-1, y.shape[-1]))
    return dx

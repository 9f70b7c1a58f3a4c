"""numba kernels of `minigrad.ops.layer_norm.LayerNorm` on rows of a (R, C) array: the
math is the core op's. Forward returns (out, μ, r); backward rebuilds x̂ from x, μ, r.
Two passes over each row (forward: sum, then squared deviations, then write;
backward: the two row sums, then write), with dw and db summed across rows in the
same pass.

Parallel or serial: numba's threaded launch costs more than a small layer norm, so arrays below
`PARALLEL_MIN_ELEMENTS` run in one thread; above, blocks of `BLOCK_ROWS` rows run
in parallel, each with its own partial dw and db, added up after.
"""

import numba
import numpy as np

from .tiles import FASTMATH

PARALLEL_MIN_ELEMENTS = 1 << 20
BLOCK_ROWS = 256


@numba.njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def _forward_span(x, weight, bias, eps, out, mean, rstd):
    """Rows of x -> out, mean, rstd (weight of ones, bias of zeros where the op has none)."""
    C = x.shape[1]
    inv_c = x.dtype.type(1) / C
    for r in range(x.shape[0]):
        row, dst = x[r], out[r]
        total = x.dtype.type(0)
        for j in range(C):
            total += row[j]
        mu = total * inv_c
        squares = x.dtype.type(0)
        for j in range(C):
            d = row[j] - mu
            squares += d * d
        rs = x.dtype.type(1) / np.sqrt(squares * inv_c + eps)
        for j in range(C):
            dst[j] = (row[j] - mu) * rs * weight[j] + bias[j]
        mean[r] = mu
        rstd[r] = rs


@numba.njit(fastmath=FASTMATH, error_model="numpy", cache=True)
def _backward_span(x, mean, rstd, weight, grad, need_x, dx, dw, db):
    """dx for these rows (if need_x), and their dw, db added into dw, db."""
    C = x.shape[1]
    inv_c = x.dtype.type(1) / C
    for r in range(x.shape[0]):
        row, g = x[r], grad[r]
        mu, rs = mean[r], rstd[r]
        for j in range(C):
            xhat = (row[j] - mu) * rs
            dw[j] += g[j] * xhat
            db[j] += g[j]
        if need_x:
            sum_g = x.dtype.type(0)
            sum_gx = x.dtype.type(0)
            for j in range(C):
                ghat = g[j] * weight[j]
                sum_g += ghat
                sum_gx += ghat * (row[j] - mu) * rs
            mean_g, mean_gx = sum_g * inv_c, sum_gx * inv_c
            dst = dx[r]
            for j in range(C):
                xhat = (row[j] - mu) * rs
                dst[j] = rs * (g[j] * weight[j] - mean_g - xhat * mean_gx)


@numba.njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def _forward_blocks(x, weight, bias, eps, out, mean, rstd):
    R = x.shape[0]
    for b in numba.prange((R + BLOCK_ROWS - 1) // BLOCK_ROWS):
        lo, hi = b * BLOCK_ROWS, min(R, (b + 1) * BLOCK_ROWS)
        _forward_span(x[lo:hi], weight, bias, eps, out[lo:hi], mean[lo:hi], rstd[lo:hi])


@numba.njit(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True)
def _backward_blocks(x, mean, rstd, weight, grad, need_x, dx, dw_parts, db_parts):
    R = x.shape[0]
    for b in numba.prange(dw_parts.shape[0]):
        lo, hi = b * BLOCK_ROWS, min(R, (b + 1) * BLOCK_ROWS)
        _backward_span(x[lo:hi], mean[lo:hi], rstd[lo:hi], weight, grad[lo:hi], need_x, dx[lo:hi],
                       dw_parts[b], db_parts[b])


def _rows(a, dtype):
    """`a` as a C-contiguous writable array (one compiled version: see attention._c_writable)."""
    return np.require(a, dtype, ("C", "W"))


def _parameter(p, C, dtype, fill):
    return np.full(C, fill, dtype=dtype) if p is None else _rows(p, dtype)


def forward(x, weight, bias, eps):
    R, C = x.shape
    dtype = x.dtype
    x = _rows(x, dtype)
    weight, bias = _parameter(weight, C, dtype, 1), _parameter(bias, C, dtype, 0)
    out = np.empty((R, C), dtype=dtype)
    mean, rstd = np.empty(R, dtype=dtype), np.empty(R, dtype=dtype)
    eps = dtype.type(eps)
    if x.size >= PARALLEL_MIN_ELEMENTS:
        _forward_blocks(x, weight, bias, eps, out, mean, rstd)
    else:
        _forward_span(x, weight, bias, eps, out, mean, rstd)
    return out, mean, rstd


def backward(x, mean, rstd, weight, grad, need_x=True, need_weight=True, need_bias=True):
    R, C = x.shape
    dtype = x.dtype
    has_weight = weight is not None
    x, grad, mean, rstd = (_rows(a, dtype) for a in (x, grad, mean, rstd))
    weight = _parameter(weight, C, dtype, 1)
    dx = np.empty((R, C) if need_x else (0, C), dtype=dtype)  # (0, C): never written
    if x.size >= PARALLEL_MIN_ELEMENTS:
        blocks = (R + BLOCK_ROWS - 1) // BLOCK_ROWS
        dw_parts, db_parts = np.zeros((blocks, C), dtype=dtype), np.zeros((blocks, C), dtype=dtype)
        _backward_blocks(x, mean, rstd, weight, grad, need_x, dx, dw_parts, db_parts)
        dw, db = dw_parts.sum(axis=0), db_parts.sum(axis=0)
    else:
        dw, db = np.zeros(C, dtype=dtype), np.zeros(C, dtype=dtype)
        _backward_span(x, mean, rstd, weight, grad, need_x, dx, dw, db)
    return (dx if need_x else None), (dw if need_weight and has_weight else None), (db if need_bias else None)

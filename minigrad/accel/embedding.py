"""numba kernel of the backward of `minigrad.ops.embedding.Embedding`: the core op's
`np.add.at` written out as a loop: for each position, add its gradient row into its id's
row (the row `padding_idx` gets none).

Parallel or serial: two positions with the same id write the same row, so a
parallel loop over positions would race. Above `PARALLEL_MIN_ELEMENTS` gradient
entries the columns are split into blocks instead: each thread walks every
position but owns its block of columns. Below it one thread does it all, because
numba's threaded launch costs more than the work.
"""

import numba
import numpy as np

from .tiles import FASTMATH

PARALLEL_MIN_ELEMENTS = 1 << 20
BLOCK_COLUMNS = 64


@numba.njit(fastmath=FASTMATH, cache=True)
def _scatter_rows(ids, grad, skip, dweight):
    """dweight[ids[i]] += grad[i] for every position i whose id is not `skip`."""
    D = grad.shape[1]
    for i in range(ids.shape[0]):
        v = ids[i]
        if v == skip:
            continue
        src, dst = grad[i], dweight[v]
        for j in range(D):
            dst[j] += src[j]


@numba.njit(parallel=True, fastmath=FASTMATH, cache=True)
def _scatter_column_blocks(ids, grad, skip, dweight):
    D = grad.shape[1]
    for b in numba.prange((D + BLOCK_COLUMNS - 1) // BLOCK_COLUMNS):
        lo, hi = b * BLOCK_COLUMNS, min(D, (b + 1) * BLOCK_COLUMNS)
        _scatter_rows(ids, grad[:, lo:hi], skip, dweight[:, lo:hi])


def backward(ids, grad, num_embeddings, padding_idx=None):
    dim = grad.shape[-1]
    flat_ids = np.require(ids, np.int64, ("C", "W")).reshape(-1)
    flat_grad = np.require(grad, grad.dtype, ("C", "W")).reshape(-1, dim)
    skip = -1 if padding_idx is None else padding_idx % num_embeddings
    dweight = np.zeros((num_embeddings, dim), dtype=grad.dtype)
    if flat_grad.size >= PARALLEL_MIN_ELEMENTS and dim > BLOCK_COLUMNS:
        _scatter_column_blocks(flat_ids, flat_grad, skip, dweight)
    else:
        _scatter_rows(flat_ids, flat_grad, skip, dweight)
    return dweight

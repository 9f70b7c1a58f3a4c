"""Matrix products for the numba kernels, on one (batch, head) slice.

numba has no BLAS here (np.dot inside numba needs SciPy), so the attention
kernels multiply with code of their own:

    matmul_tiled   c = alpha · a @ b in register tiles of 8 x 16 entries of c
                   (`register_tile.py`), each summed over k in vector registers;
                   a c smaller than a tile is one partial tile

A masked product touches only a triangle, bounded by a diagonal d (0 for causal
attention; a d as large as the matrices makes the triangle everything); `mode`
says which operand it bounds:

    FULL       every entry (d is not read)
    LOWER_OUT  only c[i, n] with n <= i + d      (scores of a causal row i)
    LOWER_A    a[i, k] = 0 for k > i + d: sum k <= i + d only
    LOWER_B    b[k, n] = 0 for n > k + d: row k of b read for n <= k + d only

The diagonal only bounds the loops over blocks of tiles, so it may change at run
time at no cost. Tiles are whole (partial only where c is smaller than a tile):
LOWER_OUT may write any entry of c past the
diagonal (callers overwrite or ignore them), and LOWER_A and LOWER_B read a and b
past the diagonal up to the end of their rows, which must hold stored zeros. a may
be any view (it is read one value at a time, e.g. `g.T`); b and c must be
C-contiguous.

Pass `mode` as a constant at each call: numba compiles a copy for each mode, in
which LLVM folds the tests of `mode`. Every shape goes through the same tile (a
partial one where c is smaller than a tile), so each copy holds one loop nest:
compile time grows with every loop an inlined copy carries (see docs/kernels.md,
"Measured choices").

(`fastmath` reassociation is what lets LLVM vectorise a sum; results differ
from a sequential sum by rounding only.)
"""

import numba

from .register_tile import TILE_COLS, TILE_ROWS, register_tile

FULL, LOWER_OUT, LOWER_A, LOWER_B = 0, 1, 2, 3
FASTMATH = {"contract", "reassoc"}  # fused multiply-add and vectorised sums; inf and NaN keep their meaning
# for functions that only other kernels call: numba then builds no wrapper to call them from
# Python (each wrapper is compiled, and optimised again in every kernel that calls the function)
INNER = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True}


@numba.njit(fastmath=FASTMATH, cache=True, **INNER)
def dot(x, y, lo, hi):
    """Σ x[j] · y[j] over lo <= j < hi."""
    acc = x.dtype.type(0)
    for t in range(hi - lo):
        acc += x[lo + t] * y[lo + t]
    return acc


@numba.njit(fastmath=FASTMATH, cache=True, **INNER)
def matmul_tiled(a, b, c, alpha, mode, diagonal):
    """c = alpha · a @ b for the entries `mode` and `diagonal` name, in register tiles
    of TILE_ROWS x TILE_COLS entries of c.

    Tiles cover c in blocks; the last block of rows and of columns is shifted back
    to end at the edge of c, so that it never reaches past it (the entries it shares
    with the block before are computed twice, to the same values). Only where c has
    fewer rows or columns than a tile is the tile partial."""
    M, K = a.shape
    N = b.shape[1]
    rows, cols = min(M, TILE_ROWS), min(N, TILE_COLS)
    for i0 in range(0, M, TILE_ROWS):
        i = min(i0, M - rows)
        last = i + rows - 1  # the block's last row
        n_hi = min(last + 1 + diagonal, N) if mode == LOWER_OUT else N
        k_hi = min(last + 1 + diagonal, K) if mode == LOWER_A else K
        for n0 in range(0, n_hi, TILE_COLS):
            n = min(n0, N - cols)
            k_lo = max(0, min(n - diagonal, K)) if mode == LOWER_B else 0  # b[k, n:] = 0 for k < n - d
            register_tile(a, b, c, i, n, k_lo, k_hi, alpha, rows, cols)

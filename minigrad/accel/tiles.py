"""Matrix products for the numba kernels, on one (batch, head) slice.

numba has no BLAS here (np.dot inside numba needs SciPy), so the attention
kernels multiply with code of their own:

    matmul_tiled   c = alpha · a @ b in register tiles of 8 x 16 entries of c
                   (`register_tile.py`), each summed over k in vector registers
    matmul_small   the same, one row of c at a time, for a c smaller than a tile
                   (a head dim or a length under 16, fewer than 8 rows)

A causal product touches only a triangle; `mode` says which:

    FULL       every entry
    LOWER_OUT  only c[i, n] with n <= i      (scores of a causal row i)
    LOWER_A    a[i, k] = 0 for k > i: sum k <= i only
    LOWER_B    b[k, n] = 0 for n > k: row k of b read for n <= k only

Tiles are whole: LOWER_OUT may write any entry of c past the diagonal (callers
overwrite or ignore them), and LOWER_A and LOWER_B read a and b past the diagonal
up to the end of their rows, which must hold stored zeros. a may be any view (it is
read one value at a time, e.g. `g.T`); b and c are read and written along rows.

Pass `mode` as a constant at each call (one call per mode, chosen by an `if`):
LLVM then compiles each inlined copy for its own triangle; a mode picked at run
time keeps its tests inside the loops. The fallback for small shapes is a plain
row loop, because every inlined copy of `matmul_tiled` compiles it too (compile
time grows with it; see docs/kernels.md, "Measured choices").

(`fastmath` reassociation is what lets LLVM vectorise a sum; results differ
from a sequential sum by rounding only.)
"""

import numba

from .register_tile import TILE_COLS, TILE_ROWS, register_tile

FULL, LOWER_OUT, LOWER_A, LOWER_B = 0, 1, 2, 3
FASTMATH = {"contract", "reassoc"}  # fused multiply-add and vectorised sums; inf and NaN keep their meaning


@numba.njit(fastmath=FASTMATH, cache=True)
def dot(x, y, lo, hi):
    """Σ x[j] · y[j] over lo <= j < hi."""
    acc = x.dtype.type(0)
    for t in range(hi - lo):
        acc += x[lo + t] * y[lo + t]
    return acc


@numba.njit(fastmath=FASTMATH, cache=True)
def matmul_small(a, b, c, alpha, mode):
    """c = alpha · a @ b for the entries `mode` names, one row of c at a time:
    c[i, :] += alpha · a[i, k] · b[k, :], vectorised along the row of c."""
    M, K = a.shape
    N = b.shape[1]
    for i in range(M):
        ci = c[i]
        n_hi = min(i + 1, N) if mode == LOWER_OUT else N
        k_hi = min(i + 1, K) if mode == LOWER_A else K
        for n in range(n_hi):
            ci[n] = 0
        for k in range(k_hi):
            hi = min(k + 1, n_hi) if mode == LOWER_B else n_hi
            ak, bk = alpha * a[i, k], b[k]
            for n in range(hi):
                ci[n] += ak * bk[n]


@numba.njit(fastmath=FASTMATH, cache=True)
def matmul_tiled(a, b, c, alpha, mode):
    """c = alpha · a @ b for the entries `mode` names, in register tiles of TILE_ROWS x
    TILE_COLS entries of c, where c has at least that many rows and columns and b
    and c have contiguous rows (else `matmul_small`).

    Tiles cover c in blocks; the last block of rows and of columns is shifted back
    to end at the edge of c, so that it never reaches past it (the entries it shares
    with the block before are computed twice, to the same values)."""
    M, K = a.shape
    N = b.shape[1]
    rows_contiguous = b.strides[1] == b.itemsize and c.strides[1] == c.itemsize
    if M < TILE_ROWS or N < TILE_COLS or not rows_contiguous:
        matmul_small(a, b, c, alpha, mode)
        return
    for i0 in range(0, M, TILE_ROWS):
        i = min(i0, M - TILE_ROWS)
        last = i + TILE_ROWS - 1  # the block's last row
        n_hi = min(last + 1, N) if mode == LOWER_OUT else N
        k_hi = min(last + 1, K) if mode == LOWER_A else K
        for n0 in range(0, n_hi, TILE_COLS):
            n = min(n0, N - TILE_COLS)
            k_lo = min(n, K) if mode == LOWER_B else 0  # b[k, n:] = 0 for k < n
            register_tile(a, b, c, i, n, k_lo, k_hi, alpha)

"""Matrix products for the numba kernels, on one (batch, head) slice.

numba has no BLAS here (np.dot inside numba needs SciPy), so the attention
kernels multiply with code of their own:

    matmul_tiled  c = alpha · a @ b in register tiles (`register_tile.py`), 8 x 16
                  entries of c at a time, about 3x faster than matmul_nn; for a c
                  smaller than one tile it calls matmul_nn
    matmul_nn     c[i, n] = alpha · Σ_k a[i, k] · b[k, n]      (c = alpha · a @ b)

What follows describes matmul_nn; `matmul_tiled`'s docstring says where it differs.

It is the "outer product" form: c[i, :] += a[i, k] · b[k, :], a scalar times a
row of b, vectorised along the row of c, 4 rows of c and 4 values of k at a time
(16 scalars of a, 4 rows of b), so each row of c is loaded and stored once per
4 k. a is only read one scalar at a time: it may be any view, e.g. a transpose
(`g.T`), and need not be contiguous; b and c are read and written along rows.

An earlier kernel computed each entry of c as a dot product (both operands read
along their contiguous last axis, a 4 × 2 tile of c in eight SIMD accumulators,
each summed across its lanes at the end). At TinyGPT's shapes the lane sums cost
as much as the products: the row form was 1.3-1.6x faster for q kᵀ (a 16-long
sum, rows of T keys) and 1.2-1.5x for P v and dS k (rows of 16), measured at
T = 79-96, D = 16 and T = 512, D = 64, so it is the only one left.

(`fastmath` reassociation is what lets LLVM vectorise a sum; results differ
from a sequential sum by rounding only.)

A causal product touches only a triangle; `mode` says which:

    FULL       every entry
    LOWER_OUT  only c[i, n] with n <= i      (scores of a causal row i)
    LOWER_A    a[i, k] = 0 for k > i: sum k <= i only
    LOWER_B    b[k, n] = 0 for n > k: row k of b read for n <= k only

Pass `mode` as a constant at each call (one call per mode, chosen by an `if`):
LLVM then compiles each inlined copy for its own triangle. A mode picked at run
time keeps its tests inside the loops and made the attention forward 1.4x slower
(see attention.py).

LOWER_OUT may also write entries just past the diagonal, up to the end of the
4-aligned block (c[i, n] for n < i - i % 4 + 4); callers overwrite or ignore
them. LOWER_A and LOWER_B need the zeros of that same block to be really
stored, because they read it whole.

Loops over an offset range are written `for t in range(n): j = lo + t`: with
`range(lo, hi)` LLVM did not vectorise them (measured 10x slower).
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
def matmul_nn(a, b, c, alpha, mode):
    """c[i, n] = alpha · Σ_k a[i, k] · b[k, n] for the entries `mode` names (FULL,
    LOWER_OUT, LOWER_A or LOWER_B), row of c by row of c: c[i, :] += alpha · a[i, k] · b[k, :]."""
    M, K = a.shape
    N = b.shape[1]
    for i in range(0, M - M % 4, 4):
        r0, r1, r2, r3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        c0, c1, c2, c3 = c[i], c[i + 1], c[i + 2], c[i + 3]
        n_hi = min(i + 4, N) if mode == LOWER_OUT else N
        k_hi = min(i + 4, K) if mode == LOWER_A else K
        k4 = k_hi - k_hi % 4
        for n in range(n_hi):
            c0[n] = 0
            c1[n] = 0
            c2[n] = 0
            c3[n] = 0
        for k in range(0, k4, 4):
            hi = min(k + 4, n_hi) if mode == LOWER_B else n_hi
            a00, a01, a02, a03 = alpha * r0[k], alpha * r0[k + 1], alpha * r0[k + 2], alpha * r0[k + 3]
            a10, a11, a12, a13 = alpha * r1[k], alpha * r1[k + 1], alpha * r1[k + 2], alpha * r1[k + 3]
            a20, a21, a22, a23 = alpha * r2[k], alpha * r2[k + 1], alpha * r2[k + 2], alpha * r2[k + 3]
            a30, a31, a32, a33 = alpha * r3[k], alpha * r3[k + 1], alpha * r3[k + 2], alpha * r3[k + 3]
            b0, b1, b2, b3 = b[k], b[k + 1], b[k + 2], b[k + 3]
            for n in range(hi):
                x0, x1, x2, x3 = b0[n], b1[n], b2[n], b3[n]
                c0[n] += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
                c1[n] += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
                c2[n] += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
                c3[n] += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3
        for k in range(k4, k_hi):  # values of k left over, one at a time
            hi = min(k + 1, n_hi) if mode == LOWER_B else n_hi
            a0, a1, a2, a3 = alpha * r0[k], alpha * r1[k], alpha * r2[k], alpha * r3[k]
            bk = b[k]
            for n in range(hi):
                c0[n] += a0 * bk[n]
                c1[n] += a1 * bk[n]
                c2[n] += a2 * bk[n]
                c3[n] += a3 * bk[n]
    for i in range(M - M % 4, M):  # rows left over, one at a time
        ci = c[i]
        n_hi = min(i - i % 4 + 4, N) if mode == LOWER_OUT else N
        k_hi = min(i - i % 4 + 4, K) if mode == LOWER_A else K
        for n in range(n_hi):
            ci[n] = 0
        for k in range(k_hi):
            hi = min(k + 1, n_hi) if mode == LOWER_B else n_hi
            ak, bk = alpha * a[i, k], b[k]
            for n in range(hi):
                ci[n] += ak * bk[n]


@numba.njit(fastmath=FASTMATH, cache=True)
def matmul_tiled(a, b, c, alpha, mode):
    """What `matmul_nn` computes, in register tiles of TILE_ROWS x TILE_COLS entries of c
    (`register_tile.py`: about 3x faster), where c has at least that many rows and
    columns and b and c have contiguous rows (else `matmul_nn`).

    Tiles cover c in blocks; the last block of rows and of columns is shifted back
    to end at the edge of c, so that it never reaches past it (the entries it shares
    with the block before are computed twice, to the same values). Hence, unlike
    `matmul_nn`: LOWER_OUT may write any entry of c past the diagonal (callers
    overwrite or ignore them), and LOWER_A and LOWER_B read a and b past the diagonal
    up to the end of their rows, where they must hold stored zeros."""
    M, K = a.shape
    N = b.shape[1]
    rows_contiguous = b.strides[1] == b.itemsize and c.strides[1] == c.itemsize
    if M < TILE_ROWS or N < TILE_COLS or not rows_contiguous:
        matmul_nn(a, b, c, alpha, mode)
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

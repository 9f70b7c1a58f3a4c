"""Matrix products and transposes for the numba kernels, on one (batch, head) slice.

numba has no BLAS here (np.dot inside numba needs SciPy), so the attention
kernels multiply with `matmul_nt`:

    c[i, e] = alpha · Σ_j a[i, j] · b[e, j]        (c = alpha · a @ b.T)

Both operands are read along their contiguous last axis. The loop computes a
4 × 2 tile of c at a time with eight scalar accumulators; LLVM vectorises the
j loop and keeps the eight partial sums in SIMD registers, so each loaded
vector of a or b feeds two or four multiply-adds. (`fastmath` reassociation is
what lets it vectorise a sum; results differ from a sequential sum by rounding
only.) Every product attention needs is written in this one form by handing it
the right transposed copy: a @ b = matmul_nt(a, b.T).

A causal product touches only a triangle; `mode` says which:

    FULL       every entry
    LOWER_OUT  only c[i, e] with e <= i      (scores of a causal row i)
    UPPER_OUT  only c[i, e] with e >= i      (transposed causal scores)
    LOWER_A    a[i, j] = 0 for j > i: sum j <= i only
    UPPER_A    a[i, j] = 0 for j < i: sum j >= i only

The OUT modes may also write a few entries just past the diagonal (the tile is
4 rows high); callers overwrite or ignore them. The A modes need those zeros
to be really stored in a.

Loops over an offset range are written `for t in range(n): j = lo + t`: with
`range(lo, hi)` LLVM did not vectorise them (measured 10x slower).
"""

import numba

FULL, LOWER_OUT, UPPER_OUT, LOWER_A, UPPER_A = 0, 1, 2, 3, 4
FASTMATH = {"contract", "reassoc"}  # fused multiply-add and vectorised sums; inf and NaN keep their meaning


@numba.njit(fastmath=FASTMATH, cache=True)
def dot(x, y, lo, hi):
    """Σ x[j] · y[j] over lo <= j < hi."""
    acc = x.dtype.type(0)
    for t in range(hi - lo):
        acc += x[lo + t] * y[lo + t]
    return acc


@numba.njit(fastmath=FASTMATH, cache=True)
def matmul_nt(a, b, c, alpha, mode):
    """c[i, e] = alpha · Σ_j a[i, j] · b[e, j] for the entries `mode` names."""
    M, K = a.shape
    N = b.shape[0]
    M4 = M - M % 4
    for i in range(0, M4, 4):
        a0 = a[i]
        a1 = a[i + 1]
        a2 = a[i + 2]
        a3 = a[i + 3]
        e_lo = i if mode == UPPER_OUT else 0
        e_hi = min(i + 4, N) if mode == LOWER_OUT else N
        lo = i if mode == UPPER_A else 0
        hi = min(i + 4, K) if mode == LOWER_A else K
        e = e_lo
        while e + 1 < e_hi:
            b0 = b[e]
            b1 = b[e + 1]
            z = a0.dtype.type(0)
            c00, c01, c10, c11, c20, c21, c30, c31 = z, z, z, z, z, z, z, z
            for t in range(hi - lo):
                j = lo + t
                x0 = b0[j]
                x1 = b1[j]
                y0 = a0[j]
                y1 = a1[j]
                y2 = a2[j]
                y3 = a3[j]
                c00 += y0 * x0
                c01 += y0 * x1
                c10 += y1 * x0
                c11 += y1 * x1
                c20 += y2 * x0
                c21 += y2 * x1
                c30 += y3 * x0
                c31 += y3 * x1
            c[i, e] = alpha * c00
            c[i, e + 1] = alpha * c01
            c[i + 1, e] = alpha * c10
            c[i + 1, e + 1] = alpha * c11
            c[i + 2, e] = alpha * c20
            c[i + 2, e + 1] = alpha * c21
            c[i + 3, e] = alpha * c30
            c[i + 3, e + 1] = alpha * c31
            e += 2
        if e < e_hi:  # odd column left over
            for r in range(4):
                c[i + r, e] = alpha * dot(a[i + r], b[e], lo, hi)
    for i in range(M4, M):  # rows left over, one at a time
        e_lo = i if mode == UPPER_OUT else 0
        e_hi = min(i + 1, N) if mode == LOWER_OUT else N
        lo = i if mode == UPPER_A else 0
        hi = min(i + 1, K) if mode == LOWER_A else K
        for e in range(e_lo, e_hi):
            c[i, e] = alpha * dot(a[i], b[e], lo, hi)


_BLOCK = 16  # square blocks with constant bounds: measured 2x faster than 8 x 8 or runtime bounds


@numba.njit(cache=True)
def _transpose_blocks(src, dst, part):
    """dst = src.T over the whole blocks `part` names (0 all, 1 those touching the
    lower triangle: block column <= block row, 2 the upper), then the edge strips."""
    n, m = src.shape
    n_full, m_full = n - n % _BLOCK, m - m % _BLOCK
    for i0 in range(0, n_full, _BLOCK):
        j_lo = i0 if part == 2 else 0
        j_hi = min(i0 + _BLOCK, m_full) if part == 1 else m_full
        for jb in range(max(0, j_hi - j_lo) // _BLOCK):
            j0 = j_lo + jb * _BLOCK
            for a in range(_BLOCK):
                row = dst[j0 + a]
                for b in range(_BLOCK):
                    row[i0 + b] = src[i0 + b, j0 + a]
    for i in range(n_full, n):  # the strips past the last whole block, copied whole
        for j in range(m):
            dst[j, i] = src[i, j]
    for i in range(n_full):
        for j in range(m_full, m):
            dst[j, i] = src[i, j]


@numba.njit(cache=True)
def transpose(src, dst):
    """dst = src.T, block by block."""
    _transpose_blocks(src, dst, 0)


@numba.njit(cache=True)
def transpose_lower(src, dst):
    """dst = src.T where src is lower triangular (src[i, j] = 0 for j > i): only the
    blocks touching the triangle are copied (zeros inside them included); the rest
    of dst is left as it is. The products in LOWER_A / UPPER_A mode read no more."""
    _transpose_blocks(src, dst, 1)


@numba.njit(cache=True)
def transpose_upper(src, dst):
    """dst = src.T where src is upper triangular (src[i, j] = 0 for j < i), as
    `transpose_lower`."""
    _transpose_blocks(src, dst, 2)

"""Matrix products and transposes for the numba kernels, on one (batch, head) slice.

numba has no BLAS here (np.dot inside numba needs SciPy), so the attention
kernels multiply with two loops of their own, one per shape of product:

    matmul_nt   c[i, e] = alpha · Σ_j a[i, j] · b[e, j]      (c = alpha · a @ b.T)
    matmul_nn   c[i, n] = alpha · Σ_k a[i, k] · b[k, n]      (c = alpha · a @ b)

`matmul_nt` is a dot product per entry of c: both operands are read along their
contiguous last axis, a 4 × 2 tile of c at a time with eight scalar
accumulators; LLVM vectorises the j loop and keeps the eight partial sums in
SIMD registers, then sums each across its lanes. It pays when the summed axis
is long and the rows of c are short (c = P v: sum over up to T keys, rows of D).

`matmul_nn` is the "outer product" form: c[i, :] += a[i, k] · b[k, :], a scalar
times a row of b, vectorised along the row of c. No lane sums at all, so it pays
when the summed axis is short and the rows of c long (scores = q kᵀ with a
16-long sum and rows of T keys: 1.3-1.6x faster than `matmul_nt` measured at
T = 96, D = 16 and T = 512, D = 64). It takes 4 rows of c and 4 values of k at a
time (16 scalars of a, 4 rows of b), so each row of c is loaded and stored once
per 4 k. a is only read one scalar at a time: it may be any view, e.g. a
transpose (`g.T`), and need not be contiguous.

(`fastmath` reassociation is what lets LLVM vectorise a sum; results differ
from a sequential sum by rounding only.)

A causal product touches only a triangle; `mode` says which:

    FULL       every entry
    LOWER_OUT  only c[i, e] with e <= i      (scores of a causal row i)
    UPPER_OUT  only c[i, e] with e >= i      (transposed causal scores; matmul_nt)
    LOWER_A    a[i, j] = 0 for j > i: sum j <= i only       (matmul_nt)
    UPPER_A    a[i, j] = 0 for j < i: sum j >= i only       (matmul_nt)
    LOWER_B    b[k, n] = 0 for n > k: row k of b read for n <= k only   (matmul_nn)

The OUT modes may also write entries just past the diagonal, up to the end of
the 4-aligned block (c[i, e] for e < i - i % 4 + 4); callers overwrite or ignore
them. The A and B modes need the zeros of that same block to be really stored,
because they read it whole.

Loops over an offset range are written `for t in range(n): j = lo + t`: with
`range(lo, hi)` LLVM did not vectorise them (measured 10x slower).
"""

import numba

FULL, LOWER_OUT, UPPER_OUT, LOWER_A, UPPER_A, LOWER_B = 0, 1, 2, 3, 4, 5
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


@numba.njit(fastmath=FASTMATH, cache=True)
def matmul_nn(a, b, c, alpha, mode):
    """c[i, n] = alpha · Σ_k a[i, k] · b[k, n] for the entries `mode` names (FULL,
    LOWER_OUT or LOWER_B), row of c by row of c: c[i, :] += alpha · a[i, k] · b[k, :]."""
    M, K = a.shape
    N = b.shape[1]
    K4 = K - K % 4
    for i in range(0, M - M % 4, 4):
        r0, r1, r2, r3 = a[i], a[i + 1], a[i + 2], a[i + 3]
        c0, c1, c2, c3 = c[i], c[i + 1], c[i + 2], c[i + 3]
        n_hi = min(i + 4, N) if mode == LOWER_OUT else N
        for n in range(n_hi):
            c0[n] = 0
            c1[n] = 0
            c2[n] = 0
            c3[n] = 0
        for k in range(0, K4, 4):
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
        for k in range(K4, K):  # values of k left over, one at a time
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
        for n in range(n_hi):
            ci[n] = 0
        for k in range(K):
            hi = min(k + 1, n_hi) if mode == LOWER_B else n_hi
            ak, bk = alpha * a[i, k], b[k]
            for n in range(hi):
                ci[n] += ak * bk[n]


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

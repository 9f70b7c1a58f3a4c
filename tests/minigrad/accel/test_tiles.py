"""The attention kernels' products (`minigrad.accel.tiles`): `matmul_tiled`, on its
register tiles (`register_tile.py`), against NumPy in every causal mode, at shapes that
fill whole tiles, leave edges, or are smaller than one tile (a partial tile), with a
non-contiguous `a`."""

import numpy as np
import pytest

pytest.importorskip("numba")

import numba  # noqa: E402
from numba.core.errors import TypingError  # noqa: E402

from minigrad.accel import tiles  # noqa: E402
from minigrad.accel.register_tile import TILE_COLS, TILE_ROWS  # noqa: E402
from minigrad.accel.tiles import FULL, LOWER_A, LOWER_B, LOWER_OUT  # noqa: E402

SHAPES = [  # (M, K, N)
    (TILE_ROWS, 16, TILE_COLS),  # exactly one tile
    (96, 16, 96), (96, 96, 16),  # TinyGPT's q kᵀ and P v: whole tiles
    (79, 16, 79), (79, 79, 16), (17, 33, 40),  # edges: the last tiles shifted back
    (3, 5, 7), (TILE_ROWS, 8, TILE_COLS - 1),  # smaller than a tile: one partial tile
    (1, 16, 40), (1, 40, 16), (1, 1, 1),  # one query row (generation with a cache)
    (5, 16, 40), (40, 7, 9), (40, 16, 5),  # fewer rows, or fewer columns, than a tile: partial tiles
]


@numba.njit
def matmul_tiled(a, b, c, alpha, mode, diagonal):
    """`tiles.matmul_tiled` is called from kernels only (it has no Python wrapper): this calls it."""
    tiles.matmul_tiled(a, b, c, alpha, mode, diagonal)


MODES = {"full": FULL, "lower_out": LOWER_OUT, "lower_a": LOWER_A, "lower_b": LOWER_B}
TOLERANCE = {np.float32: 1e-4, np.float64: 1e-12}


def _operands(rng, M, K, N, mode, dtype, diagonal=0):
    a = rng.standard_normal((K, M)).astype(dtype).T  # non-contiguous: the products read g.T and q.T
    b = rng.standard_normal((K, N)).astype(dtype)
    if mode == LOWER_A:
        a = a * np.tri(M, K, diagonal, dtype=bool)  # a[i, k] = 0 for k > i + diagonal, stored
    if mode == LOWER_B:
        b = b * np.tri(K, N, diagonal, dtype=bool)  # b[k, n] = 0 for n > k + diagonal, stored
    return a, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matmul_tiled_matches_numpy(shape, mode, dtype):
    _check_product(shape, mode, dtype, diagonal=0)


@pytest.mark.parametrize("diagonal", [3, 17, 1000])  # 1000: past every edge, the whole product
@pytest.mark.parametrize("mode", ["lower_out", "lower_a", "lower_b"])
@pytest.mark.parametrize("shape", [(79, 79, 16), (17, 33, 40), (3, 5, 7)], ids=lambda s: "x".join(map(str, s)))
def test_matmul_tiled_with_a_diagonal_off_the_main_one(shape, mode, diagonal):
    _check_product(shape, mode, np.float64, diagonal)


def _check_product(shape, mode, dtype, diagonal):
    M, K, N = shape
    a, b = _operands(np.random.default_rng(M * K + N), M, K, N, MODES[mode], dtype, diagonal)
    c = np.full((M, N), np.nan, dtype=dtype)  # every entry it must write starts as NaN
    alpha = dtype(0.7)
    matmul_tiled(a, b, c, alpha, MODES[mode], diagonal)
    expected = alpha * (a.astype(np.float64) @ b.astype(np.float64))
    if MODES[mode] == LOWER_OUT:  # only c[i, n] with n <= i + diagonal is promised
        keep = np.tri(M, N, diagonal, dtype=bool)
        c, expected = np.where(keep, c, 0), np.where(keep, expected, 0)
    assert np.abs(c - expected).max() <= TOLERANCE[dtype], f"{mode} {shape} {dtype.__name__} {diagonal}"


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 16, 40), (40, 16, 5), (17, 33, 40)],
                         ids=lambda s: "x".join(map(str, s)))
def test_matmul_tiled_writes_nothing_past_c(shape):
    """A partial tile's missing rows and columns are never stored: c is the start of a
    longer buffer whose tail must keep its NaNs."""
    M, K, N = shape
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((M, K)), rng.standard_normal((K, N))
    buffer = np.full(M * N + 2 * TILE_ROWS * TILE_COLS, np.nan)
    c = buffer[:M * N].reshape(M, N)
    matmul_tiled(a, b, c, 1.0, FULL, 0)
    assert np.abs(c - a @ b).max() <= 1e-12
    assert np.isnan(buffer[M * N:]).all()


def test_matmul_tiled_refuses_rows_that_are_not_contiguous():
    """b or c with strided rows: the register tiles read and write whole row segments,
    so such a call does not compile, and the error names the requirement."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((16, 24))
    b = rng.standard_normal((24, 64))[:, ::2]  # rows with a stride of 2 entries
    with pytest.raises(TypingError, match="b and c must be C-contiguous"):
        matmul_tiled(a, b, np.empty((16, 32)), 1.0, FULL, 0)

"""`minigrad.accel.vector_copy.copy_rows` (the attention kernels' head copies) against
the same copy written with NumPy indexing: whole and partial vector steps, a unit
source step (vector loads) and a strided one (gathers), and nothing written outside
the rows and elements named."""

import numpy as np
import pytest

pytest.importorskip("numba")

import numba  # noqa: E402
from numba.core.errors import TypingError  # noqa: E402

from minigrad.accel.vector_copy import VECTOR_LANES, copy_rows  # noqa: E402


@numba.njit
def _copy_unit_step(src, src_offset, src_row_step, dst, dst_offset, dst_row_step, rows, count):
    copy_rows(src, src_offset, src_row_step, 1, dst, dst_offset, dst_row_step, rows, count)


@numba.njit
def _copy_any_step(src, src_offset, src_row_step, src_step, dst, dst_offset, dst_row_step, rows, count):
    copy_rows(src, src_offset, src_row_step, src_step, dst, dst_offset, dst_row_step, rows, count)


def _expected(src, src_offset, src_row_step, src_step, dst, dst_offset, dst_row_step, rows, count):
    out = dst.copy().reshape(-1)
    flat = src.reshape(-1)
    for r in range(rows):
        t = np.arange(count)
        out[dst_offset + r * dst_row_step + t] = flat[src_offset + r * src_row_step + t * src_step]
    return out.reshape(dst.shape)


COUNTS = [0, 1, VECTOR_LANES - 1, VECTOR_LANES, VECTOR_LANES + 1, 3 * VECTOR_LANES + 5]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("src_step", [1, 3])
def test_copy_rows_matches_numpy(count, src_step, dtype):
    rng = np.random.default_rng(count)
    rows, src_row_step, dst_row_step = 3, count * src_step + 2, count + 5
    src = rng.standard_normal((4, 8 * VECTOR_LANES)).astype(dtype)  # C-contiguous, more than the copy reads
    dst = np.full((5, 4 * VECTOR_LANES), np.nan, dtype=dtype)  # every element the copy must not touch stays NaN
    args = (src, 7, src_row_step, src_step, dst, 2, dst_row_step, rows, count)
    expected = _expected(*args)
    if src_step == 1:
        _copy_unit_step(src, 7, src_row_step, dst, 2, dst_row_step, rows, count)
    else:
        _copy_any_step(*args)
    np.testing.assert_array_equal(dst, expected)


def test_copy_rows_transposes_a_head_as_the_kernels_do():
    """Rows gathered from columns (a step of the row length): dst = srcᵀ."""
    src = np.arange(7 * 20, dtype=np.float64).reshape(7, 20)
    dst = np.empty((20, 7))
    _copy_any_step(src, 0, 1, 20, dst, 0, 7, 20, 7)
    np.testing.assert_array_equal(dst, src.T)


def test_copy_rows_refuses_an_array_that_is_not_contiguous():
    src = np.zeros((4, 32))[:, ::2]
    with pytest.raises(TypingError, match="arrays must be C-contiguous"):
        _copy_unit_step(src, 0, 16, np.zeros(64), 0, 16, 1, 16)

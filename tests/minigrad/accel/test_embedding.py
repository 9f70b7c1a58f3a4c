"""The embedding-backward kernel (scatter-add of gradient rows): numba against its NumPy
reference (np.add.at), repeated ids by hand, padding_idx (also negative), the parallel
path, gradcheck, torch parity (forward and backward), the backward running on its
forward's path, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
import minigrad.nn.functional as F
from minigrad import accel as kernels
from minigrad.ops.embedding import Embedding
from tests.minigrad.accel.helpers import REFERENCE_ATOL, TORCH_ATOL, assert_close, leaf, torch_leaf


def _backward(ids, grad, rows, padding_idx=None, mode=None):
    """d weight of `F.embedding(ids, weight, padding_idx)` for the output gradient `grad`,
    on the given path (default: the active one)."""
    with kernels.kernel_mode(mode or kernels.get_kernel_mode()):
        weight = leaf(np.zeros((rows, grad.shape[-1]), dtype=grad.dtype))
        F.embedding(minigrad.tensor(ids), weight, padding_idx).backward(gradient=grad)
    return weight.grad.data


@settings(max_examples=50, deadline=None)
@given(
    ids_shape=st.lists(st.integers(0, 6), min_size=1, max_size=3).map(tuple),
    rows=st.integers(1, 12),
    dim=st.integers(1, 20),
    padding=st.sampled_from([None, 0, 3, -1]),
    dtype=st.sampled_from([np.float64, np.float32]),
    id_dtype=st.sampled_from([np.int64, np.int32]),
    seed=st.integers(0, 2**16),
)
def test_numba_matches_reference(ids_shape, rows, dim, padding, dtype, id_dtype, seed):
    rng = np.random.default_rng(seed)
    padding = None if padding is not None and padding >= rows else padding
    ids = rng.integers(0, rows, size=ids_shape).astype(id_dtype)
    grad = rng.standard_normal(ids_shape + (dim,)).astype(dtype)
    fast, ref = (_backward(ids, grad, rows, padding, mode=m) for m in ("numba", "numpy"))
    assert fast.shape == (rows, dim) and fast.dtype == dtype
    atol = REFERENCE_ATOL if dtype == np.float64 else TORCH_ATOL[np.float32]
    assert_close(fast, ref, atol, "d weight (accelerated vs core)")
    if padding is not None:
        assert (fast[padding] == 0).all()


def test_repeated_ids_accumulate_and_padding_gets_nothing(kernel_mode):
    ids = np.array([[1, 4, 1], [1, 0, 4]])
    grad = np.arange(12.0).reshape(2, 3, 2)
    expected = np.zeros((5, 2))
    expected[1] = grad[0, 0] + grad[0, 2] + grad[1, 0]
    expected[0] = grad[1, 1]
    np.testing.assert_array_equal(_backward(ids, grad, 5), np.where(np.arange(5)[:, None] == 4,
                                                                                        grad[0, 1] + grad[1, 2],
                                                                                        expected))
    np.testing.assert_array_equal(_backward(ids, grad, 5, padding_idx=4), expected)
    np.testing.assert_array_equal(_backward(ids, grad, 5, padding_idx=-1), expected)


def test_non_contiguous_gradient(kernel_mode):
    ids = np.array([0, 2, 2, 1])
    grad = np.arange(12.0).reshape(3, 4).T  # (4, 3), a transposed view
    expected = np.stack([grad[0], grad[3], grad[1] + grad[2]])
    np.testing.assert_array_equal(_backward(ids, grad, 3), expected)


def test_parallel_path_matches_serial(monkeypatch):
    """Above the size threshold the columns are split into blocks (the last one partial),
    each walking every position."""
    from minigrad.accel import embedding

    rng = np.random.default_rng(1)
    dim = 2 * embedding.BLOCK_COLUMNS + 9
    ids = rng.integers(0, 7, size=(5, 11))
    grad = rng.standard_normal((5, 11, dim))
    serial = _backward(ids, grad, 7, padding_idx=2, mode="numba")
    monkeypatch.setattr(embedding, "PARALLEL_MIN_ELEMENTS", 1)
    parallel = _backward(ids, grad, 7, padding_idx=2, mode="numba")
    np.testing.assert_array_equal(parallel, serial)
    assert_close(serial, _backward(ids, grad, 7, padding_idx=2, mode="numpy"), REFERENCE_ATOL,
                 "numba vs reference")


@pytest.mark.parametrize("padding_idx", [None, 1, -2])
def test_gradcheck(padding_idx, kernel_mode):
    """(The padding row gets no gradient by design, not by calculus: the ids avoid it.)"""
    ids = np.array([[0, 4, 4], [2, 4, 0]])
    weight = leaf(np.random.default_rng(2).standard_normal((5, 3)))
    assert minigrad.gradcheck(lambda w: F.embedding(ids, w, padding_idx=padding_idx) * 1.5, (weight,))


TORCH_CASES = {  # name: (ids shape, rows, dim, padding_idx)
    "tinygpt_tokens": ((24, 79), 260, 64, 0),
    "no_padding": ((3, 5), 6, 4, None),
    "negative_padding": ((7,), 4, 3, -1),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", TORCH_CASES)
def test_matches_torch(name, dtype, kernel_mode, torch):
    shape, rows, dim, padding_idx = TORCH_CASES[name]
    rng = np.random.default_rng(3)
    ids = rng.integers(0, rows, size=shape)
    weight = rng.standard_normal((rows, dim)).astype(dtype)
    g = rng.standard_normal(shape + (dim,)).astype(dtype)
    mine = leaf(weight)
    out = F.embedding(ids, mine, padding_idx=padding_idx)
    out.backward(gradient=g)
    theirs = torch_leaf(torch, weight)
    expected = torch.nn.functional.embedding(torch.tensor(ids), theirs, padding_idx=padding_idx)
    expected.backward(torch.tensor(g))
    assert out.dtype == dtype and mine.grad.dtype == dtype
    np.testing.assert_array_equal(out.data, expected.detach().numpy())
    count = np.bincount(ids.ravel(), minlength=rows).max()  # float32: rounding grows with the rows summed
    atol = TORCH_ATOL[dtype] * (np.sqrt(count) if dtype == np.float32 else 1)
    assert_close(mine.grad.data, theirs.grad.numpy(), atol, f"{name}: gradient")


@pytest.mark.parametrize("forward_mode", kernels.MODES)
def test_backward_uses_the_path_of_its_forward(forward_mode, monkeypatch):
    from minigrad.accel import embedding

    other = "numpy" if forward_mode == "numba" else "numba"
    if other == "numba":
        monkeypatch.setattr(embedding, "backward", lambda *a: pytest.fail("backward ran on the numba path"))
    else:
        monkeypatch.setattr(Embedding, "backward", staticmethod(lambda *a: pytest.fail("backward ran the core op")))
    weight = leaf(np.ones((4, 2)))
    with kernels.kernel_mode(forward_mode):
        loss = F.embedding(np.array([0, 3, 3]), weight).sum()
    with kernels.kernel_mode(other):
        loss.backward()
    np.testing.assert_array_equal(weight.grad.data, [[1, 1], [0, 0], [0, 0], [2, 2]])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: _backward(np.array([0.0, 1.0]), np.zeros((2, 3)), 4), TypeError,
         "embedding: index must be an integer tensor, got float64"),
        (lambda: _backward(np.array([0, 4]), np.zeros((2, 3)), 4), IndexError,
         "embedding: id 4 is out of range for an embedding of 4 rows"),
        (lambda: _backward(np.array([-1, 0]), np.zeros((2, 3)), 4), IndexError,
         "embedding: id -1 is out of range for an embedding of 4 rows"),
        (lambda: _backward(np.array([0, 1]), np.zeros((2, 3)), 4, padding_idx=4), IndexError,
         "embedding: padding_idx 4 is out of range for an embedding of 4 rows"),
        (lambda: F.embedding(minigrad.tensor([0, 1]), minigrad.zeros(4, 2), padding_idx=-5), IndexError,
         "embedding: padding_idx -5 is out of range for an embedding of 4 rows"),
    ],
    ids=["float_ids", "id_too_large", "negative_id", "padding_idx", "op_padding_idx"],
)
def test_bad_input_raises_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()

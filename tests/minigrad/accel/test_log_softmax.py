"""The log-softmax kernel: numba against its NumPy reference, gradcheck over any dim,
torch parity (forward and backward, up to V = 32,000), -inf entries, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
import minigrad.nn.functional as F
from minigrad.ops.log_softmax import LogSoftmax
from tests.minigrad.accel.helpers import (
    REFERENCE_ATOL,
    TORCH_ATOL,
    assert_close,
    float32_gradient_atol,
    leaf,
    non_contiguous,
    op_both_paths,
    torch_leaf,
)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
    vocab=st.integers(1, 70),
    spread=st.sampled_from([1.0, 30.0, 300.0]),
    minus_inf=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_numba_matches_reference_float64(shape, vocab, spread, minus_inf, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape + (vocab,)) * spread
    if minus_inf and vocab > 1:
        x[..., rng.integers(1, vocab)] = -np.inf  # never the whole row (index 0 stays finite)
    g = rng.standard_normal(x.shape)
    results = op_both_paths(LogSoftmax, (x, -1), g)
    (y_fast, dx_fast), (y_ref, dx_ref) = results["numba"], results["numpy"]
    assert_close(y_fast, y_ref, REFERENCE_ATOL, "log_softmax forward (accelerated vs core)")
    assert np.isfinite(dx_fast).all()
    assert_close(dx_fast, dx_ref, REFERENCE_ATOL, "log_softmax backward (accelerated vs core)")


def test_numba_matches_reference_float32_wide_rows():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 32_000)) * 5).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    results = op_both_paths(LogSoftmax, (x, -1), g)
    (y_fast, dx_fast), (y_ref, dx_ref) = results["numba"], results["numpy"]
    assert y_fast.dtype == np.float32
    assert_close(y_fast, y_ref, TORCH_ATOL[np.float32], "float32 forward")
    assert_close(dx_fast, dx_ref, float32_gradient_atol(g.sum(-1)), "float32 backward")


CASES = {  # name: (shape, dim)
    "last": ((3, 5), -1),
    "first": ((3, 5), 0),
    "middle_3d": ((2, 3, 4), 1),
    "one_class": ((4, 1), -1),
    "vector": ((6,), 0),
}


@pytest.mark.parametrize("name", CASES)
def test_gradcheck(name, kernel_mode):
    shape, dim = CASES[name]
    x = leaf(np.random.default_rng(1).standard_normal(shape) * 3)
    assert minigrad.gradcheck(lambda x: F.log_softmax(x, dim=dim), (x,))


def test_gradcheck_non_contiguous(kernel_mode):
    x = leaf(non_contiguous(np.random.default_rng(2).standard_normal((3, 4))))
    assert minigrad.gradcheck(lambda x: F.log_softmax(x, dim=-1), (x,))


TORCH_CASES = dict(CASES, scalar=((), 0), vocab_32000=((2, 32_000), -1), non_contiguous=((4, 7), -1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", TORCH_CASES)
def test_matches_torch(name, dtype, kernel_mode, torch):
    shape, dim = TORCH_CASES[name]
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    if name == "non_contiguous":
        x = non_contiguous(x)
    g = rng.standard_normal(shape).astype(dtype)
    mine = leaf(x)
    out = F.log_softmax(mine, dim=dim)
    out.backward(gradient=g)
    theirs = torch_leaf(torch, x)
    expected = torch.nn.functional.log_softmax(theirs, dim=dim)
    expected.backward(torch.tensor(g))
    assert out.dtype == dtype and mine.grad.dtype == dtype
    assert_close(out.data, expected.detach().numpy(), TORCH_ATOL[dtype], f"{name}: output")
    row_sums = np.moveaxis(g.reshape(1) if g.ndim == 0 else g, dim, -1).sum(-1)
    grad_atol = TORCH_ATOL[dtype] if dtype == np.float64 else float32_gradient_atol(row_sums)
    assert_close(mine.grad.data, theirs.grad.numpy(), grad_atol, f"{name}: gradient")


def test_minus_inf_entries_and_rows_match_torch(kernel_mode, torch):
    """-inf entries give -inf (their gradient is g: d(x - lse)/dx = 1 - p = 1); a row of
    all -inf gives NaN, as in torch."""
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf]])
    out = F.log_softmax(minigrad.tensor(x), dim=-1).data
    expected = torch.nn.functional.log_softmax(torch.tensor(x), dim=-1).numpy()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    assert np.isnan(out[1]).all() and out[0, 1] == -np.inf
    assert_close(out[0], expected[0], TORCH_ATOL[np.float64], "finite row")
    mine, theirs, g = leaf(x[:1]), torch_leaf(torch, x[:1]), np.array([[0.5, 2.0, -1.0]])
    F.log_softmax(mine, dim=-1).backward(gradient=g)
    torch.nn.functional.log_softmax(theirs, dim=-1).backward(torch.tensor(g))
    assert np.isfinite(mine.grad.data).all()
    assert_close(mine.grad.data, theirs.grad.numpy(), TORCH_ATOL[np.float64], "gradient of the row with -inf")


def test_tensor_method_runs_on_the_kernel_op():
    out = minigrad.tensor(np.zeros((2, 3)), requires_grad=True).log_softmax(-1)
    assert isinstance(out.grad_fn, LogSoftmax)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: F.log_softmax(minigrad.tensor(np.zeros((2, 3))), dim=2), IndexError,
         r"log_softmax: dim 2 is out of range for a tensor of 2 dimension\(s\)"),
        (lambda: F.log_softmax(minigrad.tensor(np.zeros((2, 3), dtype=np.int64)), dim=-1), TypeError,
         "log_softmax: input must be a float32 or float64 array, got int64"),
        (lambda: F.log_softmax(minigrad.tensor(np.zeros((2, 0))), dim=-1), ValueError,
         r"log_softmax: input needs a size >= 1 along dim 1, got shape \(2, 0\)"),
    ],
    ids=["dim", "integer", "empty_rows"],
)
def test_bad_input_raises_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()

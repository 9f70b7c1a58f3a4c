"""nonzero_rows (numba against its NumPy reference) and Linear's backward that multiplies
only the nonzero rows of its incoming gradient: same gradients, checked by gradcheck
and against torch, under both kernel paths."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
import minigrad.nn.functional as F
import minigrad.ops.linear as linear_op
from minigrad import kernels
from tests.conftest import require_torch


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 30), cols=st.integers(1, 20), zero_share=st.floats(0, 1), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float32, np.float64]), transposed=st.booleans())
def test_numba_matches_reference(rows, cols, zero_share, seed, dtype, transposed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, cols)).astype(dtype)
    a[rng.random(rows) < zero_share] = 0
    if rows:
        a[rng.integers(rows), -1] = rng.choice([0.0, 1e-30, -0.0])  # a lone entry at the end of a row
    if transposed:
        a = np.ascontiguousarray(a.T).T
    fast = kernels.nonzero_rows(a, mode="numba")
    reference = kernels.nonzero_rows(a, mode="numpy")
    assert fast.dtype == reference.dtype == np.int64
    np.testing.assert_array_equal(fast, reference)


def test_nan_and_tiny_values_count_as_nonzero_and_negative_zero_does_not():
    a = np.zeros((5, 3))
    a[1, 2], a[3, 0], a[4, 1] = np.nan, 1e-300, -0.0
    for mode in kernels.MODES:
        np.testing.assert_array_equal(kernels.nonzero_rows(a, mode=mode), [1, 3])


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="nonzero_rows: expected a 2-D array, got \\(3,\\)"):
        kernels.nonzero_rows(np.zeros(3))


def _masked_linear_grads(x, w, b, mask):
    """Gradients of sum((linear(x) * mask)²): the rows where mask is 0 get a zero gradient."""
    leaves = [minigrad.tensor(a, requires_grad=True) for a in (x, w, b)]
    out = F.linear(*leaves) * minigrad.tensor(mask)
    (out * out).sum().backward()
    return [t.grad.data for t in leaves]


@pytest.mark.parametrize("zero_share", [0.0, 0.2, 0.6, 1.0])
def test_linear_backward_skipping_zero_rows_gives_the_same_gradients(kernel_mode, zero_share, monkeypatch):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((4, 10, 6)), rng.standard_normal((5, 6)), rng.standard_normal(5)
    mask = (rng.random((4, 10, 1)) >= zero_share).astype(np.float64)
    skipped = _masked_linear_grads(x, w, b, mask)
    monkeypatch.setattr(linear_op, "SKIP_ZERO_ROWS_FROM", 2.0)  # never skip
    dense = _masked_linear_grads(x, w, b, mask)
    for got, want in zip(skipped, dense):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.all(skipped[0][mask[..., 0] == 0] == 0)


def test_gradcheck_and_torch_through_a_loss_that_ignores_positions(kernel_mode):
    """The DPO pattern: token log-probs with ignore_index, so most rows of the head's
    gradient are zero."""
    rng = np.random.default_rng(1)
    h = minigrad.tensor(rng.standard_normal((3, 7, 4)), requires_grad=True)
    w = minigrad.tensor(rng.standard_normal((9, 4)), requires_grad=True)
    targets = rng.integers(0, 9, (3, 7))
    targets[:, :5] = -100  # 5 of 7 positions ignored

    def f(h, w):
        return F.token_logprobs(F.linear(h, w), targets).sum()

    assert minigrad.gradcheck(f, [h, w])
    torch = require_torch()
    th, tw = (torch.tensor(t.data, requires_grad=True) for t in (h, w))
    loss = -torch.nn.functional.cross_entropy((th @ tw.T).reshape(-1, 9), torch.tensor(targets).reshape(-1),
                                              ignore_index=-100, reduction="sum")
    loss.backward()
    f(h, w).backward()
    np.testing.assert_allclose(h.grad.data, th.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(w.grad.data, tw.grad.numpy(), atol=1e-12)

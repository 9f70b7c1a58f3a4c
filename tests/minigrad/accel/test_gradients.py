"""The accelerator's gradient sums (accel/gradients.py) against the core's
`autograd.accumulate`: in place only where nothing but the engine holds the array, the
same values always; every holder that could see an in-place write keeps its values."""

import numpy as np
import pytest

import minigrad
from minigrad import accel as kernels
from minigrad import autograd
from minigrad.accel import gradients
from minigrad.autograd import Function


def test_registered_in_numba_mode_only():
    with kernels.kernel_mode("numba"):
        assert autograd.faster(autograd.accumulate) is gradients.accumulate
    with kernels.kernel_mode("numpy"):
        assert autograd.faster(autograd.accumulate) is autograd.accumulate


def test_a_sum_only_the_engine_holds_is_added_in_place():
    grads = {1: np.arange(3.0)}
    first = id(grads[1])
    gradients.accumulate(grads, 1, np.ones(3))
    assert id(grads[1]) == first  # the same array: it lived on while the sum was written
    gradients.accumulate(grads, 2, np.ones(3))  # a new key takes the array as it is
    np.testing.assert_array_equal(grads[1], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("holder", ["variable", "view", "read_only", "another_entry", "promotes", "broadcast"])
def test_an_array_something_else_can_see_gets_a_new_sum(holder):
    total = np.arange(3.0)
    g = np.ones(3)
    grads = {1: total}
    if holder == "view":
        base = np.arange(6.0)
        grads[1] = total = base[:3]
        del base  # the view still holds it: not its own memory
    elif holder == "read_only":
        total.flags.writeable = False
    elif holder == "another_entry":
        grads[2] = total
    elif holder == "promotes":
        grads[1] = total = np.arange(3, dtype=np.float32)
    elif holder == "broadcast":
        g = np.ones((2, 3))
    kept = total.copy()
    gradients.accumulate(grads, 1, g)
    np.testing.assert_array_equal(total, kept)  # the holder's values did not change
    np.testing.assert_array_equal(grads[1], kept + g)
    assert grads[1] is not total


KEPT = np.full((2, 3), 5.0)


class KeepsItsGradient(Function):
    """y = x, whose backward returns one module-level array (an op that keeps what it returns)."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        return KEPT


@pytest.mark.parametrize("mode", ["numba", "numpy"])
def test_an_array_an_op_returns_and_keeps_is_never_written(mode):
    KEPT[...] = 5.0
    with kernels.kernel_mode(mode):
        x = minigrad.tensor(np.zeros((2, 3)), requires_grad=True)
        h = x * 1.0
        (KeepsItsGradient.apply(h) + KeepsItsGradient.apply(h) + h * 2.0).sum().backward()
    np.testing.assert_array_equal(KEPT, np.full((2, 3), 5.0))
    np.testing.assert_array_equal(x.grad.data, np.full((2, 3), 12.0))


def test_the_engine_gives_the_same_gradients_with_and_without_in_place_sums():
    """A tensor used by several ops (sums of fresh arrays, of views, of one array given to
    two inputs, with retain_graph and without), float64, both modes to the bit."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((4, 6))
    results = {}
    for mode in ("numba", "numpy"):
        with kernels.kernel_mode(mode):
            x = minigrad.tensor(data, requires_grad=True)
            h = x.tanh()
            y = (h + h) * h + h.reshape(6, 4).T.T.reshape(4, 6) + h.exp() * h.sum(dim=0)
            y.sum().backward(retain_graph=True)
            first = x.grad.data.copy()
            y.sum().backward()
            results[mode] = (first, x.grad.data.copy())
    for a, b in zip(results["numba"], results["numpy"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results["numpy"][1], 2 * results["numpy"][0])

"""Backward semantics: long chains, accumulation, nodes used twice, the errors,
grad mode (no_grad / enable_grad / set_grad_enabled), detach, retain_grad."""

import math
import sys

import numpy as np
import pytest

import minigrad
from minigrad.autograd import Function


def leaf(values, dtype=minigrad.float64):
    return minigrad.tensor(values, dtype=dtype, requires_grad=True)


# ---- the graph ------------------------------------------------------------------------------
def test_10000_op_chain_does_not_hit_the_recursion_limit():
    assert sys.getrecursionlimit() < 10_000 * 2  # the chain is deeper than Python's stack allows
    x = leaf(1.0)
    y = x
    for _ in range(5_000):
        y = y * 1.0001
        y = y + 0.5
    y.backward()
    assert x.grad.item() == pytest.approx(1.0001**5_000, rel=1e-9)
    del y  # freeing a 10,000-deep graph must not overflow the C stack either


def test_gradients_accumulate_across_backward_calls_like_torch(torch):
    values = np.array([1.0, -2.0, 3.0])
    x, tx = leaf(values), torch.tensor(values, requires_grad=True)
    for lib_x in (x, tx):
        (lib_x * 3.0).sum().backward()
        (lib_x * lib_x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, 3.0 + 2 * values)
    np.testing.assert_array_equal(x.grad.data, tx.grad.numpy())


def test_a_tensor_used_twice_gets_the_sum_of_both_gradients():
    values = np.array([1.0, -2.0, 3.0])
    cases = {
        "x*x": (lambda x: x * x, 2 * values),
        "x+x": (lambda x: x + x, np.full(3, 2.0)),
        "x*x + 3x + x": (lambda x: x * x + x * 3.0 + x, 2 * values + 4),
        "diamond a=2x; a*a + a": (lambda x: (lambda a: a * a + a)(x * 2.0), 8 * values + 2),
        "x*x*x": (lambda x: x * x * x, 3 * values**2),
        "x/x": (lambda x: x / x, np.zeros(3)),
    }
    for name, (fn, expected) in cases.items():
        x = leaf(values)
        fn(x).sum().backward()
        np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12, err_msg=name)


def test_first_gradient_store_is_a_copy():
    """x.grad must not alias the `gradient` passed in (or any array a later += mutates)."""
    x = leaf([1.0, 2.0])
    seed = np.array([1.0, 1.0])
    (x + 0.0).backward(gradient=seed)
    seed[:] = 100.0
    np.testing.assert_array_equal(x.grad.data, [1.0, 1.0])
    (x + 0.0).backward(gradient=np.array([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])
    np.testing.assert_array_equal(seed, [100.0, 100.0])


def test_gradient_argument_weights_the_outputs():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).backward(gradient=minigrad.tensor([1.0, 0.0, -1.0], dtype=minigrad.float64))
    np.testing.assert_array_equal(x.grad.data, [2.0, 0.0, -6.0])


def test_only_inputs_that_require_grad_get_one():
    x, c = leaf([1.0, 2.0]), minigrad.tensor([3.0, 4.0], dtype=minigrad.float64)
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad.data, [3.0, 4.0])


def test_gradients_of_a_float32_leaf_are_float32():
    x = leaf([1.0, 2.0], dtype=minigrad.float32)
    (x.double() * 2.0).sum().backward()
    assert x.grad.dtype == minigrad.float32
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])


# ---- errors ---------------------------------------------------------------------------------
def test_backward_on_a_non_scalar_needs_gradient():
    with pytest.raises(RuntimeError, match=r"needs a scalar output, got shape \(2, 3\); pass gradient="):
        (leaf(np.ones((2, 3))) * 2.0).backward()


def test_backward_with_a_gradient_of_the_wrong_shape():
    with pytest.raises(RuntimeError, match=r"gradient has shape \(3,\) but the output has shape \(2, 3\)"):
        (leaf(np.ones((2, 3))) * 2.0).backward(gradient=np.ones(3))


def test_backward_on_a_tensor_that_does_not_require_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (minigrad.ones(3) * 2.0).sum().backward()


def test_second_backward_through_a_freed_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="through a graph a second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [4.0, 8.0])


def test_freed_graph_shared_by_two_outputs_like_torch():
    x = leaf([1.0, 2.0])
    shared = x * x
    shared.sum().backward()
    with pytest.raises(RuntimeError, match="a second time"):
        shared.mean().backward()


def test_requires_grad_only_for_floats():
    with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients, got int64"):
        minigrad.tensor([1, 2], requires_grad=True)


def test_requires_grad_false_on_a_non_leaf():
    with pytest.raises(RuntimeError, match=r"non-leaf tensor: use .detach\(\)"):
        (leaf([1.0]) * 2.0).requires_grad_(False)


# ---- grad mode ------------------------------------------------------------------------------
def test_graph_recorded_only_when_a_parent_requires_grad():
    a, b = minigrad.ones(2), minigrad.ones(2)
    out = a * b
    assert not out.requires_grad and out.grad_fn is None
    out = a * leaf([1.0, 2.0])
    assert out.requires_grad and out.grad_fn is not None and not out.is_leaf


def test_no_grad_records_nothing_and_restores_the_mode():
    x = leaf([1.0, 2.0])
    with minigrad.no_grad():
        assert not minigrad.is_grad_enabled()
        y = x * 2.0
    assert minigrad.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None


def test_enable_grad_inside_no_grad():
    x = leaf([1.0, 2.0])
    with minigrad.no_grad():
        with minigrad.enable_grad():
            y = x * 2.0
        z = x * 2.0
    assert y.requires_grad and not z.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])


def test_no_grad_and_enable_grad_as_decorators():
    x = leaf([1.0])

    @minigrad.no_grad()
    def without(t):
        return t * 2.0

    @minigrad.no_grad
    def without_bare(t):
        return t * 2.0

    @minigrad.enable_grad()
    def with_grad(t):
        return t * 2.0

    assert not without(x).requires_grad
    assert not without_bare(x).requires_grad
    assert minigrad.is_grad_enabled()
    with minigrad.no_grad():
        assert with_grad(x).requires_grad
        assert not minigrad.is_grad_enabled()


def test_grad_mode_restored_after_an_exception():
    with pytest.raises(ValueError, match="boom"):
        with minigrad.no_grad():
            raise ValueError("boom")
    assert minigrad.is_grad_enabled()


def test_set_grad_enabled_as_function_and_context_manager():
    x = leaf([1.0])
    with minigrad.set_grad_enabled(False):
        assert not (x * 2.0).requires_grad
    assert minigrad.is_grad_enabled()
    minigrad.set_grad_enabled(False)
    try:
        assert not (x * 2.0).requires_grad
    finally:
        minigrad.set_grad_enabled(True)
    assert (x * 2.0).requires_grad


# ---- detach and retain_grad ------------------------------------------------------------------
def test_detach_shares_data_and_cuts_the_graph():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    assert np.shares_memory(d.data, x.data)
    (d * x).sum().backward()  # d is a constant: d/dx (d·x) = d
    np.testing.assert_array_equal(x.grad.data, [1.0, 2.0])


@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
def test_retain_grad_keeps_a_non_leaf_gradient_like_torch(torch):
    values = np.array([0.5, -1.0])
    results = []
    for lib in (minigrad, torch):
        x = lib.tensor(values, requires_grad=True)
        hidden = x * 3.0
        hidden.retain_grad()
        other = x * 2.0
        (hidden * hidden + other).sum().backward()
        results.append((hidden.grad, other.grad))
    (mine_hidden, mine_other), (torch_hidden, torch_other) = results
    np.testing.assert_allclose(mine_hidden.data, torch_hidden.numpy(), rtol=1e-15)
    np.testing.assert_allclose(mine_hidden.data, 2 * 3.0 * values, rtol=1e-15)
    assert mine_other is None and torch_other is None


def test_retain_grad_on_a_tensor_without_grad():
    with pytest.raises(RuntimeError, match="retain_grad.. on a tensor that does not require grad"):
        minigrad.ones(2).retain_grad()


# ---- custom Functions -------------------------------------------------------------------------
class Cube(Function):
    """out = a³;  d/da = 3a²."""

    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return a**3

    @staticmethod
    def backward(ctx, g):
        return 3 * ctx.a**2 * g


class ScaledAdd(Function):
    """out = a + k·b (k a plain number);  d/da = 1, d/db = k."""

    @staticmethod
    def forward(ctx, a, b, k):
        ctx.k = k
        return a + k * b

    @staticmethod
    def backward(ctx, g):
        assert ctx.needs_input_grad == (True, False, False)
        return g, g * ctx.k, None


def test_custom_function_and_needs_input_grad():
    x = leaf([1.0, 2.0])
    Cube.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 12.0])
    a, b = leaf([1.0]), minigrad.tensor([2.0], dtype=minigrad.float64)
    out = ScaledAdd.apply(a, b, 5.0)
    assert repr(out.grad_fn) == "<ScaledAddBackward>"
    out.backward()
    assert a.grad.item() == 1.0 and b.grad is None


def test_a_chain_of_10000_ops_keeps_the_exact_derivative():
    """tanh chain: compare the backward with the product of the local derivatives by hand."""
    x = leaf(0.3)
    y, value, derivative = x, 0.3, 1.0
    for _ in range(10_000):
        y = (y * 0.5).tanh()
        derivative *= 0.5 * (1 - math.tanh(0.5 * value) ** 2)
        value = math.tanh(0.5 * value)
    y.backward()
    assert y.item() == pytest.approx(value, rel=1e-12)
    assert x.grad.item() == pytest.approx(derivative, rel=1e-9)


class _Double(Function):
    """y = 2x; its backward hands out a new array."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        _Double.last = 2 * g
        return _Double.last


class _PassThrough(Function):
    """y = x; its backward returns the incoming gradient itself (not new)."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        return g


def test_a_new_gradient_is_stored_and_accumulated():
    x = leaf([1.0, 2.0])
    _Double.apply(x).backward(gradient=np.array([1.0, 3.0]))
    np.testing.assert_array_equal(x.grad.data, [2.0, 6.0])
    _Double.apply(x).backward(gradient=np.array([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad.data, [4.0, 8.0])


class _TooFew(Function):
    """forward(x, y) but backward returns one gradient: a bug the engine must name."""

    @staticmethod
    def forward(ctx, x, y):
        return x * y

    @staticmethod
    def backward(ctx, g):
        return g


class _TooMany(Function):
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        return 2 * g, None


@pytest.mark.parametrize("op", [_TooFew, _TooMany], ids=lambda op: op.__name__)
def test_a_backward_returning_the_wrong_number_of_gradients_raises_naming_the_op(op):
    args = (leaf([1.0, 2.0]), leaf([3.0, 4.0])) if op is _TooFew else (leaf([1.0, 2.0]),)
    with pytest.raises(RuntimeError, match=rf"{op.__name__}\.backward returned \d gradient\(s\) for \d input"):
        op.apply(*args).sum().backward()


def test_a_gradient_an_op_passes_through_is_still_copied():
    x = leaf([1.0, 2.0])
    seed = np.array([1.0, 1.0])
    _PassThrough.apply(x).backward(gradient=seed)
    assert x.grad.data is not seed
    x.grad.data += 1.0
    np.testing.assert_array_equal(seed, [1.0, 1.0])


def test_two_new_gradients_for_one_tensor_add_up_in_place():
    x = leaf([1.0, 2.0])
    (_Double.apply(x) + _Double.apply(x)).backward(gradient=np.array([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad.data, [4.0, 4.0])

"""minigrad.gradcheck itself: it passes a correct gradient, fails a wrong one with a
message naming the input, the index, the analytic and the numeric value, and warns
on float32."""

import numpy as np
import pytest

import minigrad
from minigrad import GradcheckError, gradcheck
from minigrad.autograd import Function


class Square(Function):
    """out = a²;  d/da = 2a."""

    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return a * a

    @staticmethod
    def backward(ctx, g):
        return 2 * ctx.a * g


class WrongSquare(Square):
    """out = a², with a wrong backward: 2a everywhere except entry 1, which gets 3a."""

    @staticmethod
    def backward(ctx, g):
        wrong = 2 * ctx.a * g
        wrong[1] = 3 * ctx.a[1] * g[1]
        return wrong


class WrongSecondInput(Function):
    """out = a·b; the gradient of b is off by a factor 2."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, g):
        return g * ctx.b, 2 * g * ctx.a


def x64(values):
    return minigrad.tensor(values, dtype=minigrad.float64, requires_grad=True)


def test_passes_a_correct_gradient():
    assert gradcheck(Square.apply, [x64([1.0, -2.0, 3.0])]) is True
    assert gradcheck(lambda a, b: (a @ b).tanh(), [x64(np.ones((2, 3))), x64(np.full((3, 2), 0.1))]) is True


def test_fails_a_wrong_gradient_naming_input_index_analytic_and_numeric():
    with pytest.raises(GradcheckError) as caught:
        gradcheck(WrongSquare.apply, [x64([1.0, -2.0, 3.0])])
    message = str(caught.value)
    assert "input 0 (shape (3,)) at index (1,)" in message
    assert "analytic gradient" in message and "numeric (finite differences)" in message
    # entry 1: analytic 3·(-2)·u, numeric 2·(-2)·u for the cotangent u; the ratio names the bug
    analytic = float(message.split("analytic gradient ")[1].split(",")[0])
    numeric = float(message.split("numeric (finite differences) ")[1].split(";")[0])
    assert analytic / numeric == pytest.approx(1.5, rel=1e-6)
    assert "1 of 3 entries of this input disagree" in message


def test_names_the_failing_input_among_several():
    with pytest.raises(GradcheckError, match=r"gradcheck failed for b \(shape \(2,\)\) at index \(\d,\)"):
        gradcheck(WrongSecondInput.apply, [x64([1.0, 2.0]), x64([3.0, -1.0])], names=["a", "b"])


def test_raise_exception_false_warns_and_returns_false():
    with pytest.warns(UserWarning, match="gradcheck failed for input 0"):
        assert gradcheck(WrongSquare.apply, [x64([1.0, -2.0, 3.0])], raise_exception=False) is False


def test_warns_on_float32():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    with pytest.warns(UserWarning, match="input 0 is float32; finite differences need float64"):
        assert gradcheck(Square.apply, [x], eps=1e-2, atol=1e-3, rtol=1e-3)  # x² is exact for central differences


def test_leaves_inputs_and_their_gradients_as_they_were():
    x = x64([1.0, -2.0, 3.0])
    x.grad = minigrad.tensor([7.0, 7.0, 7.0], dtype=minigrad.float64)
    gradcheck(lambda a: (a * a).sum(), [x])
    np.testing.assert_array_equal(x.data, [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(x.grad.data, [7.0, 7.0, 7.0])


def test_skips_inputs_without_grad_and_checks_several_outputs():
    x, c = x64([0.5, 1.5]), minigrad.tensor([2.0, 3.0], dtype=minigrad.float64)
    assert gradcheck(lambda a, k, scale: (a * k * scale, a.exp()), [x, c, 2.0]) is True


def test_an_input_the_output_ignores_has_zero_gradient():
    assert gradcheck(lambda a, b: a * 2.0, [x64([1.0]), x64([1.0])]) is True


def test_bad_calls():
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        gradcheck(lambda a: a * 2.0, [minigrad.tensor([1.0], dtype=minigrad.float64)])
    with pytest.raises(TypeError, match="fn must return a floating-point Tensor"):
        gradcheck(lambda a: a.argmax(), [x64([1.0, 2.0])])

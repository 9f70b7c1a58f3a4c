"""add, sub, mul, div, neg, pow, matmul: gradcheck, torch parity, float32 dtypes.

Broadcasting in backward is the classic pitfall: (3,4)+(4,) and (2,1,3)*(4,1)
must sum the gradient over the stretched axes (sum_to_shape).
"""

import numpy as np
import pytest

import minigrad
from tests.minigrad.op_cases import (
    Arg,
    case,
    check_float32_dtypes,
    check_gradcheck,
    check_torch_parity,
    params,
)

POS = "positive"
NONZERO = "nonzero"

CASES = [
    case("add_same_shape", lambda lib, F, x, y: x + y, (2, 3), (2, 3)),
    case("add_row_broadcast", lambda lib, F, x, y: x + y, (3, 4), (4,)),
    case("add_both_broadcast", lambda lib, F, x, y: x + y, (2, 1, 3), (4, 1)),
    case("add_scalar", lambda lib, F, x: x + 2.5, (3, 4)),
    case("radd_scalar", lambda lib, F, x: 2.5 + x, (3, 4)),
    case("add_method", lambda lib, F, x, y: x.add(y), (3, 4), (1, 4)),
    case("add_0d_tensor", lambda lib, F, x, y: x + y, (3, 4), ()),
    case("sub_broadcast", lambda lib, F, x, y: x - y, (3, 4), (3, 1)),
    case("sub_broadcast_left", lambda lib, F, x, y: x - y, (4,), (2, 3, 4)),
    case("rsub_scalar", lambda lib, F, x: 1.5 - x, (2, 3)),
    case("sub_method", lambda lib, F, x, y: x.sub(y), (2, 3), (2, 3)),
    case("mul_row_broadcast", lambda lib, F, x, y: x * y, (3, 4), (4,)),
    case("mul_both_broadcast", lambda lib, F, x, y: x * y, (2, 1, 3), (4, 1)),
    case("mul_scalar", lambda lib, F, x: x * -3.0, (3, 4)),
    case("rmul_int", lambda lib, F, x: 3 * x, (3, 4)),
    case("mul_self", lambda lib, F, x: x * x, (3, 4)),
    case("mul_method", lambda lib, F, x, y: x.mul(y), (2, 3), (3,)),
    case("div_row_broadcast", lambda lib, F, x, y: x / y, (3, 4), Arg((4,), NONZERO)),
    case("div_both_broadcast", lambda lib, F, x, y: x / y, (2, 1, 3), Arg((4, 1), NONZERO)),
    case("div_scalar", lambda lib, F, x: x / 4.0, (3, 4)),
    case("rdiv_scalar", lambda lib, F, x: 2.0 / x, Arg((3, 4), NONZERO)),
    case("div_method", lambda lib, F, x, y: x.div(y), (2, 3), Arg((2, 3), NONZERO)),
    case("neg", lambda lib, F, x: -x, (3, 4)),
    case("neg_3d", lambda lib, F, x: -x, (2, 3, 4)),
    case("pow_int_scalar", lambda lib, F, x: x**3, (3, 4)),
    case("pow_square", lambda lib, F, x: x**2, (3, 4)),
    case("pow_fractional_scalar", lambda lib, F, x: x**2.5, Arg((3, 4), POS)),
    case("pow_negative_scalar", lambda lib, F, x: x**-1.5, Arg((3, 4), POS)),
    case("pow_method", lambda lib, F, x: x.pow(0.5), Arg((3, 4), POS)),
    case("rpow_scalar_base", lambda lib, F, x: 2.0**x, (3, 4)),
    case("rpow_fractional_base", lambda lib, F, x: 0.7**x, (2, 3)),
    case("pow_tensor_tensor", lambda lib, F, x, y: x**y, Arg((3, 4), POS), (3, 4)),
    case("pow_tensor_broadcast", lambda lib, F, x, y: x**y, Arg((3, 4), POS), (4,)),
    case("pow_tensor_both_broadcast", lambda lib, F, x, y: x**y, Arg((2, 1, 3), POS), (4, 1)),
    case("pow_exponent_only", lambda lib, F, x, y: x**y,
         Arg((3, 4), POS, requires_grad=False), (3, 4)),
    case("pow_base_only", lambda lib, F, x, y: x**y, Arg((3, 4), POS), Arg((4,), requires_grad=False)),
    case("mixed_expression", lambda lib, F, x, y: (x * y - y / 3.0) ** 2 + x, (3, 4), (4,)),
    # matmul: every case torch supports, 1-D included
    case("matmul_2d", lambda lib, F, a, b: a @ b, (3, 4), (4, 5)),
    case("matmul_vector_vector", lambda lib, F, a, b: a @ b, (4,), (4,)),
    case("matmul_vector_matrix", lambda lib, F, a, b: a @ b, (4,), (4, 5)),
    case("matmul_matrix_vector", lambda lib, F, a, b: a @ b, (3, 4), (4,)),
    case("matmul_vector_batched", lambda lib, F, a, b: a @ b, (4,), (2, 4, 5)),
    case("matmul_batched_vector", lambda lib, F, a, b: a @ b, (2, 3, 4), (4,)),
    case("matmul_batched", lambda lib, F, a, b: a @ b, (2, 3, 4), (2, 4, 5)),
    case("matmul_broadcast_batch", lambda lib, F, a, b: a @ b, (2, 1, 3, 4), (3, 4, 5)),
    case("matmul_matrix_batched", lambda lib, F, a, b: a @ b, (3, 4), (2, 4, 5)),
    case("matmul_batched_matrix", lambda lib, F, a, b: a @ b, (2, 3, 4), (4, 5)),
    case("matmul_method", lambda lib, F, a, b: a.matmul(b), (3, 4), (4, 2)),
    case("matmul_transposed_operand", lambda lib, F, a, b: a @ b.transpose(-1, -2), (2, 3, 4), (2, 5, 4)),
    case("matmul_one_side_grad", lambda lib, F, a, b: a @ b, (3, 4), Arg((4, 5), requires_grad=False)),
]


@pytest.mark.parametrize(("op_case", "layout"), params(CASES, for_gradcheck=True))
def test_gradcheck(op_case, layout):
    check_gradcheck(op_case, layout)


@pytest.mark.parametrize(("op_case", "layout"), params(CASES))
def test_matches_torch(op_case, layout, torch):
    check_torch_parity(op_case, layout, torch)


@pytest.mark.parametrize("op_case", CASES, ids=str)
def test_float32_dtypes_match_torch(op_case, torch):
    check_float32_dtypes(op_case, torch)


def test_broadcast_gradients_are_summed_by_hand():
    """(3,4) + (4,): d/dy is the column sums of the cotangent; (2,1,3) * (4,1): sums over stretched axes."""
    x = minigrad.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    y = minigrad.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    (x + y).backward(gradient=np.ones((3, 4)))
    np.testing.assert_array_equal(y.grad.numpy(), [3.0, 3.0, 3.0, 3.0])
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((3, 4)))

    a = minigrad.tensor(np.ones((2, 1, 3)), requires_grad=True)
    b = minigrad.tensor(np.full((4, 1), 2.0), requires_grad=True)
    (a * b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full((2, 1, 3), 8.0))  # Σ over 4 rows of b = 2
    np.testing.assert_array_equal(b.grad.numpy(), np.full((4, 1), 6.0))  # Σ over 2·3 entries of a = 1


def test_pow_edge_values_match_torch(torch):
    """0 ** y and x ** 0 at x = 0: torch defines the gradients there (0 where the limit is 0)."""
    base = case("pow_at_zero", lambda lib, F, x, y: x**y, (4,), (4,))
    values = (np.array([0.0, 0.0, 2.0, 0.0]), np.array([2.0, 0.0, 0.0, 3.0]))

    def results(lib):
        x = lib.from_numpy(values[0].copy()).requires_grad_(True)
        y = lib.from_numpy(values[1].copy()).requires_grad_(True)
        out = base.fn(lib, None, x, y)
        out.sum().backward()
        return [np.array(t.detach().numpy() if lib is torch else t.data) for t in (out, x.grad, y.grad)]

    for name, mine, theirs in zip(("value", "grad x", "grad y"), results(minigrad), results(torch)):
        np.testing.assert_array_equal(mine, theirs, err_msg=f"0 ** y: {name}")


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "message"),
    [((3, 4), (5, 2), r"\(3, 4\) and \(5, 2\) cannot be multiplied"), ((), (3,), "at least 1 dimension")],
)
def test_matmul_shape_errors(a_shape, b_shape, message):
    a, b = minigrad.zeros(a_shape), minigrad.zeros(b_shape)
    with pytest.raises(RuntimeError, match=message):
        a @ b


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow"])
def test_broadcast_mismatch_is_one_clear_error(op):
    with pytest.raises(RuntimeError, match=rf"{op}: shapes \(3, 4\), \(3,\) cannot be broadcast"):
        getattr(minigrad.zeros(3, 4), op)(minigrad.zeros(3))

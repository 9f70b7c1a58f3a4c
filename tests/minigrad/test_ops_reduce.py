"""sum, mean, var, max, amax, amin, min: dim int or tuple, negative dims, keepdim.

max(dim) / min(dim) return (values, indices) as torch; the random inputs have
no ties, so the indices and the one-winner gradient are well defined. Ties are
tested separately: amax and full max() share the gradient evenly, as torch does.
"""

import numpy as np
import pytest

import minigrad
from tests.minigrad.op_cases import (
    as_numpy,
    assert_close,
    case,
    check_float32_dtypes,
    check_gradcheck,
    check_torch_parity,
    params,
)

X3 = (2, 3, 4)

CASES = [
    case("sum_all", lambda lib, F, x: x.sum(), X3),
    case("sum_dim", lambda lib, F, x: x.sum(dim=1), X3),
    case("sum_positional_dim", lambda lib, F, x: x.sum(0), X3),
    case("sum_negative_dim_keepdim", lambda lib, F, x: x.sum(-1, keepdim=True), X3),
    case("sum_tuple", lambda lib, F, x: x.sum(dim=(0, 2)), X3),
    case("sum_tuple_negative_keepdim", lambda lib, F, x: x.sum(dim=(-1, -3), keepdim=True), X3),
    case("sum_empty_tuple_is_all", lambda lib, F, x: x.sum(dim=()), X3),
    case("sum_0d", lambda lib, F, x: x.sum(), ()),
    case("sum_of_broadcast", lambda lib, F, x, y: (x * y).sum(dim=-2), (3, 1), (2, 1, 4)),
    case("mean_all", lambda lib, F, x: x.mean(), X3),
    case("mean_dim", lambda lib, F, x: x.mean(dim=2), X3),
    case("mean_negative_dim_keepdim", lambda lib, F, x: x.mean(-2, keepdim=True), X3),
    case("mean_tuple", lambda lib, F, x: x.mean(dim=(0, -1)), X3),
    case("mean_tuple_keepdim", lambda lib, F, x: x.mean(dim=(1, 2), keepdim=True), X3),
    case("var_all", lambda lib, F, x: x.var(), X3),
    case("var_dim", lambda lib, F, x: x.var(dim=1), X3),
    case("var_biased_keepdim", lambda lib, F, x: x.var(dim=-1, keepdim=True, correction=0), X3),
    case("var_tuple", lambda lib, F, x: x.var(dim=(0, 2)), X3),
    case("var_tuple_negative_biased", lambda lib, F, x: x.var(dim=(-3, -1), correction=0, keepdim=True), X3),
    case("max_all", lambda lib, F, x: x.max(), X3),
    case("max_dim", lambda lib, F, x: x.max(dim=1), X3),
    case("max_positional_dim", lambda lib, F, x: x.max(0), X3),
    case("max_negative_dim_keepdim", lambda lib, F, x: x.max(dim=-1, keepdim=True), X3),
    case("max_dim_values", lambda lib, F, x: x.max(dim=2).values * 2.0, X3),
    case("max_dim_indices", lambda lib, F, x: x.max(dim=2)[1], X3, finite_differences=False),
    case("min_all", lambda lib, F, x: x.min(), X3),
    case("min_dim", lambda lib, F, x: x.min(dim=-2), X3),
    case("amax_all", lambda lib, F, x: x.amax(), X3),
    case("amax_dim", lambda lib, F, x: x.amax(dim=1), X3),
    case("amax_tuple", lambda lib, F, x: x.amax(dim=(0, -1)), X3),
    case("amax_negative_keepdim", lambda lib, F, x: x.amax(dim=-2, keepdim=True), X3),
    case("amin_tuple_keepdim", lambda lib, F, x: x.amin(dim=(1, 2), keepdim=True), X3),
    case("argmax_dim", lambda lib, F, x: x.argmax(dim=-1), X3, finite_differences=False),
    case("argmin_all", lambda lib, F, x: x.argmin(), X3, finite_differences=False),
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


TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, -1.0], [5.0, 4.0, 5.0, 5.0]])
TIE_OPS = {
    "amax_dim": lambda x: x.amax(dim=1),
    "amax_all": lambda x: x.amax(),
    "max_all": lambda x: x.max(),
    "amin_dim": lambda x: x.amin(dim=0),
    "min_all": lambda x: x.min(),
}


@pytest.mark.parametrize("name", sorted(TIE_OPS))
def test_ties_share_the_gradient_like_torch(name, torch):
    op = TIE_OPS[name]
    x, tx = minigrad.tensor(TIES, requires_grad=True), torch.tensor(TIES, requires_grad=True)
    out, tout = op(x), op(tx)
    gradient = np.arange(1.0, out.data.size + 1).reshape(out.shape)
    out.backward(gradient=gradient)
    tout.backward(gradient=torch.tensor(gradient))
    assert_close(out.data, as_numpy(tout), f"{name} value")
    assert_close(x.grad.data, as_numpy(tx.grad), f"{name} grad")


def test_amax_ties_by_hand():
    """Row [1, 3, 3, 0]: the two 3s share the gradient, 1/2 each."""
    x = minigrad.tensor(TIES[:1], requires_grad=True)
    x.amax(dim=1).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0.0, 0.5, 0.5, 0.0]])


def test_max_dim_returns_values_and_indices():
    x = minigrad.tensor([[1.0, 7.0, 3.0], [9.0, 2.0, 4.0]], requires_grad=True)
    result = x.max(dim=1)
    values, indices = result
    assert result.values is values and result.indices is indices
    np.testing.assert_array_equal(values.data, [7.0, 9.0])
    np.testing.assert_array_equal(indices.data, [1, 0])
    assert indices.dtype == minigrad.int64 and not indices.requires_grad
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def test_mean_and_sum_by_hand():
    x = minigrad.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    np.testing.assert_array_equal(x.sum(dim=0).data, [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(x.mean(dim=-1, keepdim=True).data, [[1.0], [4.0]])
    x.mean().backward()
    np.testing.assert_array_equal(x.grad.data, np.full((2, 3), 1 / 6))


def test_var_correction_by_hand():
    x = minigrad.tensor([1.0, 2.0, 3.0, 6.0])  # mean 3, squared deviations 4, 1, 0, 9
    assert x.var().item() == pytest.approx(14 / 3)
    assert x.var(correction=0).item() == pytest.approx(14 / 4)
    assert x.var(unbiased=False).item() == pytest.approx(14 / 4)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda x: x.sum(dim=3), IndexError, r"sum: dim 3 is out of range for a tensor of 3 dimension"),
        (lambda x: x.mean(dim=(0, -3)), RuntimeError, "names the same dimension twice"),
        (lambda x: x.amax(dim=-4), IndexError, r"amax: dim -4 is out of range"),
        (lambda x: x.max(dim=5), IndexError, r"max: dim 5 is out of range"),
        (lambda x: x.long().mean(), RuntimeError, "mean: needs a floating-point tensor"),
        (lambda x: x[:, :0].amax(dim=1), RuntimeError, "cannot reduce over an empty dimension"),
    ],
    ids=["sum_dim", "mean_repeated_dim", "amax_dim", "max_dim", "mean_int", "amax_empty"],
)
def test_bad_dims_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(minigrad.zeros(2, 3, 4))

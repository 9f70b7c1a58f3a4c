"""Unary elementwise ops, where, masked_fill, clamp: gradcheck, torch parity,
float32 dtypes, and the stability of logsigmoid / softplus / sigmoid at large |x|."""

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from tests.minigrad.op_cases import (
    Arg,
    as_numpy,
    assert_close,
    case,
    check_float32_dtypes,
    check_gradcheck,
    check_torch_parity,
    params,
)

POS, NONZERO, WIDE, CLAMP = "positive", "nonzero", "wide", "clamp_safe"
COND = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])
ROW_MASK = np.array([True, False, False, True])


def _t(lib, array):
    return lib.tensor(array)


CASES = [
    case("exp", lambda lib, F, x: x.exp(), (3, 4)),
    case("log", lambda lib, F, x: x.log(), Arg((3, 4), POS)),
    case("sqrt", lambda lib, F, x: x.sqrt(), Arg((3, 4), POS)),
    case("abs", lambda lib, F, x: x.abs(), Arg((3, 4), NONZERO)),
    case("tanh", lambda lib, F, x: x.tanh(), (3, 4)),
    case("tanh_functional", lambda lib, F, x: F.tanh(x), (2, 3, 2)),
    case("sigmoid", lambda lib, F, x: x.sigmoid(), Arg((3, 4), WIDE)),
    case("sigmoid_functional", lambda lib, F, x: F.sigmoid(x), (2, 3, 2)),
    case("relu", lambda lib, F, x: x.relu(), Arg((3, 4), NONZERO)),
    case("relu_functional", lambda lib, F, x: F.relu(x), Arg((2, 3, 2), NONZERO)),
    case("gelu_exact", lambda lib, F, x: F.gelu(x), Arg((3, 4), WIDE)),
    case("gelu_tanh", lambda lib, F, x: F.gelu(x, approximate="tanh"), Arg((3, 4), WIDE)),
    case("gelu_of_product", lambda lib, F, x, y: F.gelu(x * y), (3, 4), (4,)),
    case("softplus", lambda lib, F, x: F.softplus(x), Arg((3, 4), WIDE)),
    # beta·x crosses the threshold 3 in this range: both branches are exercised
    case("softplus_beta_threshold", lambda lib, F, x: F.softplus(x, beta=2.0, threshold=3.0), Arg((3, 4), WIDE)),
    case("logsigmoid", lambda lib, F, x: F.logsigmoid(x), Arg((3, 4), WIDE)),
    case("clamp_both", lambda lib, F, x: x.clamp(min=-0.5, max=0.5), Arg((3, 4), CLAMP)),
    case("clamp_min", lambda lib, F, x: x.clamp(min=-0.5), Arg((3, 4), CLAMP)),
    case("clamp_max", lambda lib, F, x: x.clamp(max=0.5), Arg((3, 4), CLAMP)),
    case("where", lambda lib, F, x, y: lib.where(_t(lib, COND), x, y), (3, 4), (3, 4)),
    case("where_broadcast", lambda lib, F, x, y: lib.where(_t(lib, COND), x, y), (3, 4), (4,)),
    case("where_broadcast_condition", lambda lib, F, x, y: lib.where(_t(lib, ROW_MASK), x, y), (3, 4), (3, 1)),
    case("where_scalar_other", lambda lib, F, x: lib.where(_t(lib, COND), x, 0.0), (3, 4)),
    case("where_scalar_input", lambda lib, F, x: lib.where(_t(lib, COND), 2.0, x), (3, 4)),
    case("masked_fill", lambda lib, F, x: x.masked_fill(_t(lib, COND), 0.5), (3, 4)),
    case("masked_fill_broadcast_mask", lambda lib, F, x: x.masked_fill(_t(lib, ROW_MASK), -2.0), (2, 3, 4)),
    case("masked_fill_neg_inf", lambda lib, F, x: x.masked_fill(_t(lib, COND), float("-inf")), (3, 4),
         finite_differences=False),
    case("masked_fill_neg_inf_softmax",
         lambda lib, F, x: F.softmax(x.masked_fill(_t(lib, ROW_MASK), float("-inf")), dim=-1), (3, 4)),
    case("chain_of_unaries", lambda lib, F, x: (x.tanh() * 2.0).exp().sigmoid().log(), (3, 4)),
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


EXTREME = np.array([-1e4, -1e3, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1e3, 1e4])
STABLE_OPS = {
    "logsigmoid": lambda F, x: F.logsigmoid(x),
    "softplus": lambda F, x: F.softplus(x),
    "sigmoid": lambda F, x: F.sigmoid(x),
    "tanh": lambda F, x: F.tanh(x),
    "gelu": lambda F, x: F.gelu(x),
    "gelu_tanh": lambda F, x: F.gelu(x, approximate="tanh"),
}


@pytest.mark.parametrize("name", sorted(STABLE_OPS))
def test_finite_and_equal_to_torch_up_to_1e4(name, torch):
    """Value and gradient stay finite for |x| up to 1e4 and equal torch's
    (relative error: logsigmoid(-1e4) = -1e4, so an absolute bound is meaningless there)."""
    op = STABLE_OPS[name]
    x = minigrad.tensor(EXTREME, requires_grad=True)
    out = op(F, x)
    out.sum().backward()
    tx = torch.tensor(EXTREME, requires_grad=True)
    tout = op(torch.nn.functional, tx)
    tout.sum().backward()
    for label, mine, theirs in (("value", out.data, as_numpy(tout)), ("grad", x.grad.data, as_numpy(tx.grad))):
        assert np.isfinite(mine).all(), f"{name} {label} not finite: {mine}"
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-300, err_msg=f"{name} {label}")


def test_logsigmoid_extremes_by_hand():
    """log σ(x) → x for x → -∞ and → -e^-x ≈ 0 for x → +∞; d/dx = σ(-x) → 1 and → 0."""
    x = minigrad.tensor([-1e4, 1e4], dtype=minigrad.float64, requires_grad=True)
    out = F.logsigmoid(x)
    out.sum().backward()
    np.testing.assert_array_equal(out.data, [-1e4, -0.0])
    np.testing.assert_array_equal(x.grad.data, [1.0, 0.0])


def test_masked_fill_neg_inf_gives_no_gradient_to_filled_entries():
    x = minigrad.tensor(np.ones((3, 4)), requires_grad=True)
    out = x.masked_fill(minigrad.tensor(COND), float("-inf"))
    assert np.isneginf(out.data[COND]).all()
    out.backward(gradient=np.ones((3, 4)))
    np.testing.assert_array_equal(x.grad.data, (~COND).astype(float))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda x: x.masked_fill(minigrad.tensor([1, 0, 1, 0]), 0.0), TypeError, "mask must be a bool tensor"),
        (lambda x: minigrad.where(minigrad.tensor([1, 0, 1, 0]), x, 0.0), TypeError,
         "condition must be a bool tensor"),
        (lambda x: minigrad.where(minigrad.tensor([True, False]), x, 0.0), RuntimeError,
         r"where: shapes \(2,\), \(3, 4\), \(\) cannot be broadcast"),
        (lambda x: x.clamp(), ValueError, "at least one of min and max"),
        (lambda x: F.gelu(x, approximate="fast"), ValueError, "approximate must be 'none' or 'tanh'"),
    ],
    ids=["masked_fill_int_mask", "where_int_condition", "where_bad_shape", "clamp_no_bounds", "gelu_bad_mode"],
)
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(minigrad.zeros(3, 4))


def test_relu_and_abs_gradient_at_zero_match_torch(torch):
    """The kinks: torch's relu gives 0 at 0 and abs gives sign(0) = 0."""
    values = np.array([-1.0, 0.0, 2.0])
    for op in (lambda x: x.relu(), lambda x: x.abs(), lambda x: x.clamp(min=0.0, max=2.0)):
        x, tx = minigrad.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
        op(x).sum().backward()
        op(tx).sum().backward()
        assert_close(x.grad.data, as_numpy(tx.grad), "gradient at the kink")

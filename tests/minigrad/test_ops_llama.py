"""The ops the Llama family needs: silu, rms_norm, rotary_embedding, repeat_interleave
(gradcheck in float64, torch parity, float32 dtypes), through the shared op cases.
torch has no rotary function: its side is the formula written with torch ops."""

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from tests.minigrad.op_cases import (
    Arg,
    case,
    check_float32_dtypes,
    check_gradcheck,
    check_torch_parity,
    params,
)

X = (2, 3, 4, 6)  # (B, heads, T, head_dim)
ANGLES = (4, 6)  # (T, head_dim): broadcast over batch and heads


def _rotary(lib, F, x, cos, sin):
    if lib is minigrad:
        return F.rotary_embedding(x, cos, sin)
    x1, x2 = x[..., :3], x[..., 3:]  # the closed form, in torch ops
    return x * cos + lib.cat((-x2, x1), dim=-1) * sin


CASES = [
    case("silu", lambda lib, F, x: F.silu(x), Arg((3, 5), "wide")),
    case("silu_times_up", lambda lib, F, g, u: F.silu(g) * u, (2, 3, 4), (2, 3, 4)),
    case("rms_norm", lambda lib, F, x, w: F.rms_norm(x, (4,), w, eps=1e-6), (2, 3, 4), (4,)),
    case("rms_norm_default_eps", lambda lib, F, x, w: F.rms_norm(x, [4], w), (3, 4), (4,)),
    case("rms_norm_no_weight", lambda lib, F, x: F.rms_norm(x, (4,), eps=1e-5), (2, 3, 4)),
    case("rms_norm_two_dims", lambda lib, F, x, w: F.rms_norm(x, (3, 4), w, eps=1e-5), (2, 3, 4), (3, 4)),
    case("rotary", _rotary, X, Arg(ANGLES, requires_grad=False), Arg(ANGLES, requires_grad=False)),
    case("rotary_per_row", _rotary, X, Arg((2, 1, 4, 6), requires_grad=False), Arg((2, 1, 4, 6), requires_grad=False)),
    case("repeat_interleave_heads", lambda lib, F, x: x.repeat_interleave(3, dim=1), (2, 2, 3, 4)),
    case("repeat_interleave_negative_dim", lambda lib, F, x: x.repeat_interleave(2, dim=-1) * 1.5, (3, 4)),
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


def test_rotary_at_angle_zero_is_identity_and_quarter_turn_rotates_halves():
    x = np.arange(8.0).reshape(1, 8)
    same = F.rotary_embedding(minigrad.tensor(x), np.ones((1, 8)), np.zeros((1, 8)))
    np.testing.assert_array_equal(same.data, x)
    turned = F.rotary_embedding(minigrad.tensor(x), np.zeros((1, 8)), np.ones((1, 8)))
    np.testing.assert_array_equal(turned.data, [[-4, -5, -6, -7, 0, 1, 2, 3]])


def test_rms_norm_module_by_hand():
    norm = minigrad.nn.RMSNorm(2, eps=0.0, dtype=minigrad.float64)
    out = norm(minigrad.tensor([[3.0, 4.0]]))  # rms = sqrt(12.5)
    np.testing.assert_allclose(out.data, [[3 / np.sqrt(12.5), 4 / np.sqrt(12.5)]], rtol=1e-15)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: F.rms_norm(minigrad.zeros(2, 3), (4,)), RuntimeError, "normalized_shape (4,) does not match"),
    (lambda: F.rms_norm(minigrad.zeros(2, 4), (4,), minigrad.zeros(3)), RuntimeError, "weight has shape (3,)"),
    (lambda: F.rotary_embedding(minigrad.zeros(2, 5), np.ones(5), np.ones(5)), RuntimeError, "must be even"),
    (lambda: F.rotary_embedding(minigrad.zeros(2, 4), np.ones(3), np.ones(3)), RuntimeError, "do not broadcast"),
    (lambda: minigrad.zeros(2, 4).repeat_interleave(0, dim=1), ValueError, "repeats must be a positive int"),
    (lambda: minigrad.zeros(2, 4).repeat_interleave(2, dim=2), IndexError, "dim 2 is out of range"),
])
def test_bad_arguments_raise_clear_errors(call, error, message):
    with pytest.raises(error, match=None) as excinfo:
        call()
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)

"""The GELU kernel (output and slope in one pass): numba against its NumPy reference in
float64, float32 against float64 math (math.erfc, exp) in ulps, the erfc series, the
parallel path, gradcheck, torch parity (forward and backward), what the op keeps for
backward, bad input."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
import minigrad.nn.functional as F
from minigrad import accel as kernels
from minigrad.accel import ops as accelerated
from minigrad.ops.pointwise import GELU
from tests.minigrad.accel.helpers import REFERENCE_ATOL, TORCH_ATOL, assert_close, leaf, non_contiguous, torch_leaf

APPROXIMATIONS = ("none", "tanh")
# every regime: both tails, where 1 + erf and 1 + tanh cancel, where exp flushes to 0, ±1e4
WIDE_GRID = np.concatenate([np.linspace(-40.0, 40.0, 8001), [-1e4, -1e3, -0.0, 0.0, 1e3, 1e4]])



def _gelu_forward(x, approximate="none", with_slope=True, mode=None):
    """(GELU(x), dGELU/dx) from the op on the given path (default: the active one); the
    slope is x's gradient for an output gradient of ones, None outside grad mode."""
    with kernels.kernel_mode(mode or kernels.get_kernel_mode()):
        t = minigrad.Tensor(x, requires_grad=with_slope and x.dtype.kind == "f")
        if not with_slope:
            with minigrad.no_grad():
                return F.gelu(t, approximate).data, None
        out = F.gelu(t, approximate)
        out.backward(gradient=np.ones_like(x))
        return out.data, t.grad.data


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple),
    spread=st.sampled_from([0.5, 3.0, 10.0, 40.0]),
    approximate=st.sampled_from(APPROXIMATIONS),
    seed=st.integers(0, 2**16),
)
def test_numba_matches_reference_float64(shape, spread, approximate, seed):
    x = np.asarray(np.random.default_rng(seed).standard_normal(shape) * spread)
    (out_fast, slope_fast), (out_ref, slope_ref) = (
        _gelu_forward(x, approximate, mode=m) for m in ("numba", "numpy")
    )
    assert out_fast.shape == x.shape and slope_fast.shape == x.shape
    assert_close(out_fast, out_ref, REFERENCE_ATOL, f"gelu({approximate}) output (numba vs NumPy reference)")
    assert_close(slope_fast, slope_ref, REFERENCE_ATOL, f"gelu({approximate}) slope (numba vs NumPy reference)")


@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_numba_matches_reference_float64_on_a_wide_grid(approximate):
    """Including the far tails, where the reference rounds Φ = (1 + erf)/2 to 0 (x < -8.3)
    and the numba kernel must round it the same way."""
    (out_fast, slope_fast), (out_ref, slope_ref) = (
        _gelu_forward(WIDE_GRID, approximate, mode=m) for m in ("numba", "numpy")
    )
    assert_close(out_fast, out_ref, REFERENCE_ATOL, "output")
    assert_close(slope_fast, slope_ref, REFERENCE_ATOL, "slope")
    if approximate == "none":
        assert (out_fast[WIDE_GRID < -9] == 0).all()  # as the reference and torch: 1 + erf(x/√2) is 0 there


def _float64_math(x, approximate):
    """(output, slope, scale of the slope's terms) in float64, without cancellation:
    Φ from math.erfc, σ(2u) from exp of a non-positive number."""
    x = x.astype(np.float64)
    if approximate == "none":
        cdf = 0.5 * np.array([math.erfc(-v / math.sqrt(2.0)) for v in x])
        term = x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return x * cdf, cdf + term, np.abs(cdf) + np.abs(term)
    u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
    e = np.exp(-2.0 * np.abs(u))
    low, high = e / (1 + e), 1 / (1 + e)
    s = np.where(u >= 0, high, low)
    term = 2 * x * low * high * math.sqrt(2.0 / math.pi) * (1 + 3 * 0.044715 * x * x)
    return x * s, s + term, np.abs(s) + np.abs(term)


@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_numba_float32_within_6_ulps_of_float64_math(approximate):
    """The float32 kernel computes in float32 (docstring of kernels/gelu.py): output within 6
    ulps of the float64 value, slope within 6 ulps of the scale of its two terms (it crosses
    0), wherever the value is at least 1e-35 (below, exp flushes to 0)."""
    x = np.concatenate([np.linspace(-13.0, 13.0, 100_001), np.geomspace(1e-30, 13.0, 2001)])
    x = np.concatenate([x, -x]).astype(np.float32)
    out, slope = _gelu_forward(x, approximate, mode="numba")
    assert out.dtype == np.float32 and slope.dtype == np.float32
    exact_out, exact_slope, slope_scale = _float64_math(x, approximate)
    for what, got, want, scale in (("output", out, exact_out, np.abs(exact_out)),
                                   ("slope", slope, exact_slope, slope_scale)):
        judged = scale >= 1e-35
        ulps = np.abs(got[judged].astype(np.float64) - want[judged]) / np.spacing(scale[judged].astype(np.float32))
        worst = int(np.argmax(ulps))
        assert ulps[worst] <= 6, f"{what}: {ulps[worst]:.2f} ulps at x = {x[judged][worst]!r}"
    # and the float64 reference agrees, up to float32 rounding of the reference itself (1 + erf cancels)
    out_ref, _ = _gelu_forward(x, approximate, mode="numpy")
    assert_close(out, out_ref, 2e-7 * 13, "float32 numba vs float32 reference")


def test_erfc_series_matches_math_erfc():
    """erfc(z) = exp(-z²)·R(z) with R from the float64 coefficients, against math.erfc:
    5e-16 absolute (what the docstring states), 1e-13 relative while erfc > 1e-300."""
    from minigrad.accel import gelu

    z = np.concatenate([np.linspace(0.0, 26.0, 5201), [0.1 ** k for k in range(1, 12)]])
    w = (3.0 - z) / (3.0 + z)
    series = np.polynomial.polynomial.polyval(w, np.polynomial.chebyshev.cheb2poly(np.array(gelu.ERFC_SERIES)))
    approx = np.exp(-z * z) * series
    exact = np.array([math.erfc(v) for v in z])
    assert np.abs(approx - exact).max() <= 5e-16
    assert (np.abs(approx - exact) / exact).max() <= 1e-13


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("approximate", APPROXIMATIONS)
def test_parallel_path_matches_serial(approximate, dtype, monkeypatch):
    """Above the size threshold the kernel runs in blocks (the last one partial); same values."""
    from minigrad.accel import gelu

    x = (np.random.default_rng(0).standard_normal(2 * gelu.BLOCK + 77) * 4).astype(dtype)
    serial = _gelu_forward(x, approximate, mode="numba")
    monkeypatch.setattr(gelu, "PARALLEL_MIN_ELEMENTS", 1)
    parallel = _gelu_forward(x, approximate, mode="numba")
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", kernels.MODES)
def test_without_slope_gives_the_same_output_and_no_slope(mode):
    x = np.random.default_rng(1).standard_normal((3, 4))
    for approximate in APPROXIMATIONS:
        with_slope = _gelu_forward(x, approximate, with_slope=True, mode=mode)
        out, slope = _gelu_forward(x, approximate, with_slope=False, mode=mode)
        assert slope is None
        np.testing.assert_array_equal(out, with_slope[0])


CASES = {  # name: shape, sample spread
    "matrix": ((3, 4), 3.0),
    "scalar": ((), 1.5),
    "wide_range": ((2, 3, 4), 6.0),
}


@pytest.mark.parametrize("approximate", APPROXIMATIONS)
@pytest.mark.parametrize("name", CASES)
def test_gradcheck(name, approximate, kernel_mode):
    shape, spread = CASES[name]
    x = leaf(np.asarray(np.random.default_rng(2).standard_normal(shape) * spread))
    assert minigrad.gradcheck(lambda x: F.gelu(x, approximate=approximate), (x,))


def test_gradcheck_non_contiguous(kernel_mode):
    x = leaf(non_contiguous(np.random.default_rng(3).standard_normal((3, 4)) * 3))
    assert minigrad.gradcheck(lambda x: F.gelu(x), (x,))


TORCH_CASES = {  # name: values
    "tinygpt_mlp": lambda rng: rng.standard_normal((2, 79, 256)),
    "wide_grid": lambda rng: WIDE_GRID,
    "non_contiguous": lambda rng: non_contiguous(rng.standard_normal((4, 7)) * 5),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("approximate", APPROXIMATIONS)
@pytest.mark.parametrize("name", TORCH_CASES)
def test_matches_torch(name, approximate, dtype, kernel_mode, torch):
    rng = np.random.default_rng(4)
    x = TORCH_CASES[name](rng)
    x = x.astype(dtype) if x.flags.c_contiguous else non_contiguous(np.ascontiguousarray(x).astype(dtype))
    g = rng.standard_normal(x.shape).astype(dtype)
    mine = leaf(x)
    out = F.gelu(mine, approximate=approximate)
    out.backward(gradient=g)
    theirs = torch_leaf(torch, x)
    expected = torch.nn.functional.gelu(theirs, approximate=approximate)
    expected.backward(torch.tensor(g))
    assert out.dtype == dtype and mine.grad.dtype == dtype
    # |x| up to 1e4 (wide grid): float32 values are x itself there, so scale the bound by |x|
    atol = TORCH_ATOL[dtype] * max(1.0, float(np.abs(x).max())) if dtype == np.float32 else TORCH_ATOL[dtype]
    assert_close(out.data, expected.detach().numpy(), atol, f"{name}: output")
    grad_atol = TORCH_ATOL[dtype] * max(1.0, float(np.abs(g).max()))
    assert_close(mine.grad.data, theirs.grad.numpy(), grad_atol, f"{name}: gradient")


def test_backward_keeps_one_array_and_none_outside_grad_mode(monkeypatch):
    """For backward the op keeps the slope (one array of x's size), nothing else; the
    accelerated op from GELU_RECOMPUTE_MIN_ELEMENTS entries on keeps only x's own array
    (held by the graph anyway). Under no_grad the kernel is not asked for the slope."""
    x = leaf(np.random.default_rng(5).standard_normal((6, 5)))
    for mode, least, name in (("numpy", 1, "slope"), ("numba", x.data.size + 1, "slope"), ("numba", x.data.size, "a")):
        monkeypatch.setattr(accelerated, "GELU_RECOMPUTE_MIN_ELEMENTS", least)
        with kernels.kernel_mode(mode):
            out = F.gelu(x)
        assert isinstance(out.grad_fn, GELU)
        saved = {k: v for k, v in vars(out.grad_fn).items() if isinstance(v, np.ndarray)}
        assert list(saved) == [name] and saved[name].shape == x.shape, f"{mode}, {least}: saved {list(saved)}"
    assert saved["a"] is x.data
    with minigrad.no_grad():
        ctx = GELU()
        GELU.forward(ctx, x.data)
        assert ctx.slope is None


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("retain", [False, True])
def test_slope_computed_again_in_backward_matches_the_kept_one(approximate, retain, monkeypatch):
    """The accelerated op above the size limit (slope computed again in backward, and the
    output gradient written into it) gives the same gradient as keeping the slope, bit for
    bit, and again in a second backward through a retained graph."""
    x = np.random.default_rng(6).standard_normal((7, 9))
    grads = {}
    for least in (x.size + 1, x.size):
        monkeypatch.setattr(accelerated, "GELU_RECOMPUTE_MIN_ELEMENTS", least)
        with kernels.kernel_mode("numba"):
            t = leaf(x.copy())
            out = F.gelu(t, approximate)
            g = np.linspace(-2.0, 2.0, x.size).reshape(x.shape)
            out.backward(gradient=g, retain_graph=retain)
            if retain:
                out.backward(gradient=g)
        grads[least] = t.grad.data
    np.testing.assert_array_equal(grads[x.size], grads[x.size + 1])
    core = _gelu_forward(x, approximate, mode="numpy")[1]
    assert_close(grads[x.size], (2 if retain else 1) * g * core, REFERENCE_ATOL, "gradient with the slope recomputed")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: _gelu_forward(np.zeros(3), approximate="fast"), ValueError,
         "gelu: approximate must be 'none' or 'tanh', got 'fast'"),
        (lambda: _gelu_forward(np.zeros(3, dtype=np.int64)), TypeError,
         "gelu: input must be a float32 or float64 array, got int64"),
        (lambda: F.gelu(minigrad.tensor([1, 2, 3])), TypeError,
         "gelu: input must be a float32 or float64 array, got int64"),
    ],
    ids=["approximate", "integer", "integer_tensor"],
)
def test_bad_input_raises_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()

"""The layer-norm kernel: numba against its NumPy reference (forward and backward, with
and without weight and bias, only the gradients asked for), the parallel path,
gradcheck over one and two normalised dims, torch parity (forward and backward),
what the op keeps for backward, the backward running on its forward's path, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
import minigrad.nn.functional as F
from minigrad import accel as kernels
from minigrad.ops.layer_norm import LayerNorm
from tests.minigrad.accel.helpers import REFERENCE_ATOL, TORCH_ATOL, assert_close, leaf, non_contiguous, torch_leaf


def _both_paths(x, weight, bias, eps, grad, needs=(True, True, True)):
    """{mode: (out, dx, dw, db)} from the op on each path, None for a gradient not asked for."""
    results = {}
    for mode in kernels.MODES:
        with kernels.kernel_mode(mode):
            inputs = [None if a is None else minigrad.Tensor(a, requires_grad=need)
                      for a, need in zip((x, weight, bias), needs)]
            out = LayerNorm.apply(inputs[0], (x.shape[1],), inputs[1], inputs[2], eps)
            assert (type(out.grad_fn) is LayerNorm) == (mode == "numpy") or out.grad_fn is None
            if out.requires_grad:
                out.backward(gradient=grad)
            grads = tuple(None if t is None or t.grad is None else t.grad.data for t in inputs)
            results[mode] = (out.data,) + grads
    return results


NAMES = ("out", "dx", "dweight", "dbias")


@settings(max_examples=50, deadline=None)
@given(
    rows=st.integers(0, 40),
    width=st.integers(1, 70),
    affine=st.sampled_from(["both", "weight", "bias", "none"]),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    eps=st.sampled_from([0.0, 1e-5, 0.1]),
    needs=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    seed=st.integers(0, 2**16),
)
def test_numba_matches_reference_float64(rows, width, affine, scale, eps, needs, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, width)) * scale + rng.standard_normal() * scale
    if width == 1 and eps == 0.0:
        eps = 1e-5  # one entry per row has variance 0: rstd = 1/sqrt(eps)
    weight = rng.standard_normal(width) if affine in ("both", "weight") else None
    bias = rng.standard_normal(width) if affine in ("both", "bias") else None
    grad = rng.standard_normal((rows, width))
    results = _both_paths(x, weight, bias, eps, grad, needs)
    for name, fast, ref in zip(NAMES, results["numba"], results["numpy"]):
        assert (fast is None) == (ref is None), f"{name}: numba gives {fast is None}, reference {ref is None}"
        if ref is not None:
            # dx = rstd·(...): relative to its size (σ = scale·1e-3 makes it ~1e3)
            relative = name == "dx"
            atol = REFERENCE_ATOL * max(1.0, float(np.abs(ref).max(initial=0))) if relative else REFERENCE_ATOL
            assert_close(fast, ref, atol, f"layer_norm {name} (numba vs NumPy reference)")
    need_x, need_w, need_b = needs
    assert (results["numba"][1] is None) == (not need_x)
    assert (results["numba"][2] is None) == (not need_w or weight is None)
    assert (results["numba"][3] is None) == (not need_b or bias is None)


def test_numba_matches_reference_float32():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((24 * 79, 64)) * 3 + 1).astype(np.float32)
    weight, bias, grad = (rng.standard_normal(s).astype(np.float32) for s in (64, 64, x.shape))
    results = _both_paths(x, weight, bias, 1e-5, grad)
    for name, fast, ref in zip(NAMES, results["numba"], results["numpy"]):
        assert fast.dtype == np.float32, name
        atol = TORCH_ATOL[np.float32] * (30 if name in ("dweight", "dbias") else 1)  # sums over 1896 rows
        assert_close(fast, ref, atol, f"float32 {name}")


def test_parallel_path_matches_serial(monkeypatch):
    """Above the size threshold rows run in blocks (the last one partial), each with its
    own partial dweight and dbias."""
    from minigrad.accel import layer_norm

    rng = np.random.default_rng(1)
    x = rng.standard_normal((2 * layer_norm.BLOCK_ROWS + 37, 12))
    weight, bias, grad = rng.standard_normal(12), rng.standard_normal(12), rng.standard_normal(x.shape)
    serial = _both_paths(x, weight, bias, 1e-5, grad)["numba"]
    monkeypatch.setattr(layer_norm, "PARALLEL_MIN_ELEMENTS", 1)
    parallel = _both_paths(x, weight, bias, 1e-5, grad)["numba"]
    for name, a, b in zip(NAMES, serial, parallel):
        assert_close(a, b, REFERENCE_ATOL, f"{name}: parallel vs serial")
    only_bias = _both_paths(x, weight, bias, 1e-5, grad, needs=(False, False, True))["numba"]
    assert only_bias[1] is None and only_bias[2] is None
    assert_close(only_bias[3], serial[3], REFERENCE_ATOL, "dbias alone")


CASES = {  # name: (x shape, normalized_shape, affine)
    "rows": ((2, 3, 4), (4,), "both"),
    "two_dims": ((2, 3, 4), (3, 4), "both"),
    "no_affine": ((3, 5), (5,), "none"),
    "weight_only": ((3, 5), (5,), "weight"),
    "bias_only": ((3, 5), (5,), "bias"),
    "one_row": ((6,), (6,), "both"),
}


def _inputs(case, rng, dtype=np.float64):
    shape, normalized, affine = case
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    weight = (1 + 0.5 * rng.standard_normal(normalized)).astype(dtype) if affine in ("both", "weight") else None
    bias = rng.standard_normal(normalized).astype(dtype) if affine in ("both", "bias") else None
    return x, normalized, weight, bias


@pytest.mark.parametrize("name", CASES)
def test_gradcheck(name, kernel_mode):
    x, normalized, weight, bias = _inputs(CASES[name], np.random.default_rng(2))
    inputs = [leaf(a) for a in (x, weight, bias) if a is not None]

    def fn(*args):
        args = list(args)
        return F.layer_norm(args.pop(0), normalized, args.pop(0) if weight is not None else None,
                            args.pop(0) if bias is not None else None, eps=1e-3)

    assert minigrad.gradcheck(fn, inputs)


def test_gradcheck_non_contiguous_input(kernel_mode):
    x = leaf(non_contiguous(np.random.default_rng(3).standard_normal((3, 4))))
    w, b = leaf(np.array([1.0, 2.0, -1.0, 0.5])), leaf(np.zeros(4))
    assert minigrad.gradcheck(lambda x, w, b: F.layer_norm(x, (4,), w, b), (x, w, b))


TORCH_CASES = dict(CASES, tinygpt=((24, 79, 64), (64,), "both"))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", TORCH_CASES)
def test_matches_torch(name, dtype, kernel_mode, torch):
    rng = np.random.default_rng(4)
    x, normalized, weight, bias = _inputs(TORCH_CASES[name], rng, dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    mine = [None if a is None else leaf(a) for a in (x, weight, bias)]
    out = F.layer_norm(mine[0], normalized, mine[1], mine[2], eps=1e-5)
    out.backward(gradient=g)
    theirs = [None if a is None else torch_leaf(torch, a) for a in (x, weight, bias)]
    expected = torch.nn.functional.layer_norm(theirs[0], normalized, theirs[1], theirs[2], eps=1e-5)
    expected.backward(torch.tensor(g))
    assert out.dtype == dtype
    assert_close(out.data, expected.detach().numpy(), TORCH_ATOL[dtype], f"{name}: output")
    rows = x.size // int(np.prod(normalized))
    for what, a, b in zip(("x", "weight", "bias"), mine, theirs):
        if a is not None:
            assert a.grad.dtype == dtype
            # dweight and dbias are sums over the rows: float32 rounding grows with their count
            atol = TORCH_ATOL[dtype] * (np.sqrt(rows) if what != "x" and dtype == np.float32 else 1)
            assert_close(a.grad.data, b.grad.numpy(), atol, f"{name}: gradient of {what}")


def test_constant_rows_match_torch(kernel_mode, torch):
    """σ² = 0: x̂ = 0, out = bias, and the gradient of x is finite (r = 1/sqrt(eps))."""
    x = np.array([[2.0, 2.0, 2.0], [1.0, -1.0, 0.0]])
    w, b, g = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.0, -0.5]), np.array([[1.0, -2.0, 0.5], [0.3, 0.1, 2.0]])
    mine = [leaf(a) for a in (x, w, b)]
    out = F.layer_norm(mine[0], (3,), mine[1], mine[2])
    out.backward(gradient=g)
    theirs = [torch_leaf(torch, a) for a in (x, w, b)]
    torch.nn.functional.layer_norm(theirs[0], (3,), theirs[1], theirs[2]).backward(torch.tensor(g))
    np.testing.assert_array_equal(out.data[0], b)
    for what, a, t in zip(("x", "weight", "bias"), mine, theirs):
        assert np.isfinite(a.grad.data).all()
        assert_close(a.grad.data, t.grad.numpy(), 1e-8, f"gradient of {what}")  # r = 316: rounding · r²


def test_mixed_dtypes_promote_as_numpy(kernel_mode):
    """float64 input with float32 parameters (as before the kernel): a float64 output."""
    x = minigrad.tensor(np.random.default_rng(5).standard_normal((2, 4)), requires_grad=True)
    w = minigrad.tensor(np.ones(4, dtype=np.float32), requires_grad=True)
    out = F.layer_norm(x, (4,), w)
    assert out.dtype == np.float64
    out.sum().backward()
    assert w.grad is not None and x.grad is not None


def test_backward_keeps_x_mean_rstd_not_a_second_copy():
    """Saved for backward: x (as rows), the weight, and two numbers per row; no (R, C) x̂."""
    x = leaf(np.random.default_rng(6).standard_normal((5, 7, 8)))
    w = leaf(np.ones(8))
    out = F.layer_norm(x, (8,), w)
    assert isinstance(out.grad_fn, LayerNorm)
    saved = {k: v for k, v in vars(out.grad_fn).items() if isinstance(v, np.ndarray)}
    assert sum(v.size for v in saved.values()) == x.data.size + w.data.size + 2 * 35, {
        k: v.shape for k, v in saved.items()}
    assert np.shares_memory(saved["rows"], x.data)


@pytest.mark.parametrize("forward_mode", kernels.MODES)
def test_backward_uses_the_path_of_its_forward(forward_mode, monkeypatch):
    from minigrad.accel import layer_norm

    other = "numpy" if forward_mode == "numba" else "numba"
    if other == "numba":
        monkeypatch.setattr(layer_norm, "backward", lambda *a: pytest.fail("backward ran on the numba path"))
    else:
        monkeypatch.setattr(LayerNorm, "backward", staticmethod(lambda *a: pytest.fail("backward ran the core op")))
    x = leaf(np.random.default_rng(7).standard_normal((3, 4)))
    with kernels.kernel_mode(forward_mode):
        loss = F.layer_norm(x, (4,)).sum()
    with kernels.kernel_mode(other):
        loss.backward()
    assert x.grad is not None


def _layer_norm(x, weight=None, bias=None, eps=1e-5):
    return F.layer_norm(minigrad.tensor(x), x.shape[-1:], weight if weight is None else minigrad.tensor(weight),
                        bias if bias is None else minigrad.tensor(bias), eps)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: _layer_norm(np.zeros((2, 3), dtype=np.int64)), TypeError,
         "layer_norm: input must be float32 or float64, got int64"),
        (lambda: _layer_norm(np.zeros((2, 3)), np.ones(4)), RuntimeError,
         r"layer_norm: weight has shape \(4,\), expected \(3,\)"),
        (lambda: _layer_norm(np.zeros((2, 3)), eps=-1.0), ValueError,
         "layer_norm: eps must be >= 0, got -1.0"),
        (lambda: _layer_norm(np.zeros((2, 3)), eps=float("nan")), ValueError,
         "layer_norm: eps must be >= 0, got nan"),
        (lambda: F.layer_norm(minigrad.zeros(2, 0), (0,)), ValueError,
         r"layer_norm: normalized_shape \(0,\) has no entries to normalise"),
    ],
    ids=["integer", "weight_shape", "negative_eps", "nan_eps", "empty_normalized_shape"],
)
def test_bad_input_raises_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()

"""Op cases written once, run on minigrad and on PyTorch (the tinygrad way).

An `OpCase` is a name, a function `fn(lib, F, *inputs)` written against the API
minigrad shares with torch (`lib` is the `minigrad` or `torch` module, `F` its
`nn.functional`), and one `Arg` per input (shape, how to sample values, whether
it requires grad). The same case then serves three checks:

- `check_gradcheck`: `minigrad.gradcheck` in float64 (finite differences);
- `check_torch_parity`: forward values and input gradients against torch in
  float64, worst absolute difference <= 1e-10;
- `check_float32_dtypes`: in float32, every output and gradient has the dtype
  torch gives it.

Every input is built in one of three memory layouts with the same values:
"contiguous", "transposed" (Fortran order: the array is a transposed view) and
"sliced" (every other column of a twice-as-wide array), so each op also sees
non-contiguous NumPy arrays.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable

import numpy as np

import minigrad
import minigrad.nn.functional as minigrad_functional

PARITY_ATOL = 1e-10
LAYOUTS = ("contiguous", "transposed", "sliced")


def _clamp_safe(rng, shape):
    """Values in [-2, 2] kept 0.1 away from the clamp bounds ±0.5 used by the cases."""
    values = rng.uniform(-2.0, 2.0, shape)
    near = np.abs(np.abs(values) - 0.5) < 0.1
    return np.where(near, values * 1.5, values)


SAMPLERS = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "positive": lambda rng, shape: rng.uniform(0.5, 2.0, shape),
    # away from 0: for kinks (relu, abs) and denominators
    "nonzero": lambda rng, shape: np.where(rng.random(shape) < 0.5, -1.0, 1.0) * rng.uniform(0.3, 2.0, shape),
    "wide": lambda rng, shape: rng.uniform(-6.0, 6.0, shape),
    "clamp_safe": _clamp_safe,
}


@dataclasses.dataclass(frozen=True)
class Arg:
    shape: tuple
    sample: str = "normal"
    requires_grad: bool = True


@dataclasses.dataclass(frozen=True)
class OpCase:
    name: str
    fn: Callable
    args: tuple
    finite_differences: bool = True  # False where an output is ±inf (L = Σ u·out is then NaN)
    layouts: tuple = LAYOUTS  # the input layouts the op accepts (torch's view() rejects some)

    def __str__(self):
        return self.name

    def arrays(self, layout="contiguous", dtype=np.float64):
        """The inputs as NumPy arrays: same values for every layout, different strides."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        out = []
        for arg in self.args:
            values = np.asarray(SAMPLERS[arg.sample](rng, arg.shape), dtype=np.float64).astype(dtype)
            out.append(with_layout(values, layout))
        return out

    def supports(self, layout):
        """True when `layout` makes at least one input non-contiguous."""
        if layout not in self.layouts:
            return False
        if layout == "contiguous":
            return True
        return any(not a.flags.c_contiguous for a in self.arrays(layout))


def case(name, fn, *args, finite_differences=True, layouts=LAYOUTS):
    """OpCase from shapes (tuples) or `Arg`s."""
    shaped = tuple(a if isinstance(a, Arg) else Arg(tuple(a)) for a in args)
    return OpCase(name, fn, shaped, finite_differences, layouts)


def with_layout(values, layout):
    """`values` in the given memory layout (a view with the same entries)."""
    if layout == "contiguous" or values.ndim == 0 or (layout == "transposed" and values.ndim < 2):
        return np.array(values, order="C")
    if layout == "transposed":
        return np.array(values.T, order="C").T
    if layout == "sliced":
        wide = np.zeros(values.shape[:-1] + (2 * values.shape[-1],), dtype=values.dtype)
        wide[..., ::2] = values
        return wide[..., ::2]
    raise ValueError(f"unknown layout {layout!r}")


def params(cases, layouts=LAYOUTS, for_gradcheck=False):
    """pytest params (case, layout) for every layout a case supports."""
    import pytest

    return [
        pytest.param(c, layout, id=f"{c.name}-{layout}")
        for c in cases
        for layout in layouts
        if c.supports(layout) and (c.finite_differences or not for_gradcheck)
    ]


# ---- running a case on one library ------------------------------------------------------
def functional_of(lib):
    return minigrad_functional if lib is minigrad else lib.nn.functional


def as_numpy(t):
    """A minigrad or torch tensor as a NumPy array (a copy)."""
    if isinstance(t, minigrad.Tensor):
        return np.array(t.data)
    return t.detach().numpy().copy()


def leaf(lib, array, requires_grad):
    """A leaf tensor sharing `array`'s memory and strides."""
    t = lib.from_numpy(array)
    return t.requires_grad_(True) if requires_grad else t


def outputs_of(result):
    """An op's result (a tensor, or a tuple such as max(dim)'s) as a list of tensors."""
    return list(result) if isinstance(result, (tuple, list)) else [result]


def _is_float(array):
    return np.issubdtype(array.dtype, np.floating)


@dataclasses.dataclass
class Run:
    outputs: list  # NumPy arrays
    grads: list  # one per input: NumPy array or None


def run(case, lib, layout="contiguous", dtype=np.float64):
    """Forward, then backward with a fixed random cotangent per float output.

    Each output gets its own `backward(gradient=u, retain_graph=True)`, so the
    input gradients are Σ_k J_kᵀ u_k in both libraries, and -inf outputs (from
    masked_fill) do not turn a summed loss into NaN.
    """
    inputs = [leaf(lib, a, arg.requires_grad) for a, arg in zip(case.arrays(layout, dtype), case.args)]
    outs = outputs_of(case.fn(lib, functional_of(lib), *inputs))
    rng = np.random.default_rng(1)
    for out in outs:
        values = as_numpy(out)
        if _is_float(values) and out.requires_grad:
            cotangent = np.asarray(rng.standard_normal(values.shape), dtype=values.dtype)
            out.backward(gradient=lib.from_numpy(cotangent), retain_graph=True)
    return Run([as_numpy(o) for o in outs], [None if t.grad is None else as_numpy(t.grad) for t in inputs])


# ---- the checks --------------------------------------------------------------------------
def assert_close(actual, expected, what, atol=PARITY_ATOL):
    """Same shape and dtype, the same non-finite entries, finite entries within atol."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != torch's {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != torch's {expected.dtype}"
    if not _is_float(expected):
        assert np.array_equal(actual, expected), f"{what}: {actual} != torch's {expected}"
        return
    finite = np.isfinite(expected)
    same_nonfinite = np.array_equal(np.isfinite(actual), finite) and np.array_equal(
        actual[~finite], expected[~finite], equal_nan=True
    )
    assert same_nonfinite, f"{what}: non-finite entries differ:\n{actual}\ntorch:\n{expected}"
    diff = np.where(finite, np.abs(actual - np.where(finite, expected, 0)), 0.0)
    if diff.size and not diff.max() <= atol:
        index = np.unravel_index(int(np.argmax(diff)), diff.shape)
        raise AssertionError(
            f"{what}: worst |difference| {diff[index]:.3g} > {atol:g} at index {index}: "
            f"minigrad {actual[index]!r}, torch {expected[index]!r}"
        )


def check_torch_parity(case, layout, torch, atol=PARITY_ATOL):
    mine, theirs = run(case, minigrad, layout), run(case, torch, layout)
    assert len(mine.outputs) == len(theirs.outputs), (
        f"{case}: {len(mine.outputs)} outputs, torch gives {len(theirs.outputs)}"
    )
    for k, (a, b) in enumerate(zip(mine.outputs, theirs.outputs)):
        assert_close(a, b, f"{case} ({layout}) output {k}", atol)
    for i, (a, b) in enumerate(zip(mine.grads, theirs.grads)):
        assert (a is None) == (b is None), f"{case} ({layout}): input {i} grad is {a} but torch's is {b}"
        if a is not None:
            assert_close(a, b, f"{case} ({layout}) grad of input {i}", atol)


def check_gradcheck(case, layout):
    inputs = [leaf(minigrad, a, arg.requires_grad) for a, arg in zip(case.arrays(layout), case.args)]

    def fn(*xs):
        return case.fn(minigrad, minigrad_functional, *xs)

    assert minigrad.gradcheck(fn, inputs, names=[f"{case} input {i}" for i in range(len(inputs))])


def check_float32_dtypes(case, torch):
    mine, theirs = run(case, minigrad, dtype=np.float32), run(case, torch, dtype=np.float32)
    got = [a.dtype for a in mine.outputs] + [None if g is None else g.dtype for g in mine.grads]
    want = [a.dtype for a in theirs.outputs] + [None if g is None else g.dtype for g in theirs.grads]
    assert got == want, f"{case}: float32 run gives dtypes {got} (outputs, then grads); torch gives {want}"

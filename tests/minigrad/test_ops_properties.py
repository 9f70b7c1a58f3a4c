"""Property tests: hypothesis draws the shapes (and memory layouts) for elementwise,
broadcasting, matmul and reduction ops; each drawn case is gradchecked and held
against torch with the same machinery as the hand-written op tables."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.conftest import require_torch
from tests.minigrad.op_cases import LAYOUTS, Arg, case, check_gradcheck, check_torch_parity

EXAMPLES = settings(max_examples=30, deadline=None)

UNARY = {
    "exp": (lambda lib, F, x: x.exp(), "normal"),
    "log": (lambda lib, F, x: x.log(), "positive"),
    "sqrt": (lambda lib, F, x: x.sqrt(), "positive"),
    "neg": (lambda lib, F, x: -x, "normal"),
    "tanh": (lambda lib, F, x: x.tanh(), "wide"),
    "sigmoid": (lambda lib, F, x: x.sigmoid(), "wide"),
    "relu": (lambda lib, F, x: x.relu(), "nonzero"),
    "gelu": (lambda lib, F, x: F.gelu(x), "wide"),
    "gelu_tanh": (lambda lib, F, x: F.gelu(x, approximate="tanh"), "wide"),
    "softplus": (lambda lib, F, x: F.softplus(x), "wide"),
    "logsigmoid": (lambda lib, F, x: F.logsigmoid(x), "wide"),
    "pow_scalar": (lambda lib, F, x: x**1.5, "positive"),
}
BINARY = {
    "add": (lambda lib, F, x, y: x + y, "normal", "normal"),
    "sub": (lambda lib, F, x, y: x - y, "normal", "normal"),
    "mul": (lambda lib, F, x, y: x * y, "normal", "normal"),
    "div": (lambda lib, F, x, y: x / y, "normal", "nonzero"),
    "pow": (lambda lib, F, x, y: x**y, "positive", "normal"),
    "where": (lambda lib, F, x, y: lib.where(x > 0, x, y), "nonzero", "normal"),
}
REDUCTIONS = {
    "sum": lambda x, dims, keepdim: x.sum(dim=dims, keepdim=keepdim),
    "mean": lambda x, dims, keepdim: x.mean(dim=dims, keepdim=keepdim),
    "amax": lambda x, dims, keepdim: x.amax(dim=dims, keepdim=keepdim),
    "var": lambda x, dims, keepdim: x.var(dim=dims, keepdim=keepdim, correction=0),
    "softmax": lambda x, dims, keepdim: x.softmax(dims[0]),
}

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
layouts = st.sampled_from(LAYOUTS)


def _layout(op_case, layout):
    return layout if op_case.supports(layout) else "contiguous"


def _unary_case(name, shape):
    fn, sample = UNARY[name]
    return case(f"{name}{shape}", fn, Arg(shape, sample))


def _binary_case(name, shape_pair):
    fn, sample_x, sample_y = BINARY[name]
    return case(f"{name}{shape_pair}", fn, Arg(shape_pair[0], sample_x), Arg(shape_pair[1], sample_y))


@st.composite
def reduction_cases(draw):
    name = draw(st.sampled_from(sorted(REDUCTIONS)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    ndim = len(shape)
    picked = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    dims = tuple(d - ndim if draw(st.booleans()) else d for d in picked)  # negative dims too
    keepdim = draw(st.booleans())
    dim_arg = dims[0] if len(dims) == 1 and draw(st.booleans()) else dims
    reduce = REDUCTIONS[name]
    return case(f"{name}{shape}dim={dim_arg}keepdim={keepdim}",
                lambda lib, F, x: reduce(x, dim_arg if name != "softmax" else dims, keepdim), Arg(shape))


@st.composite
def matmul_cases(draw):
    """Batched with broadcast batch dims, or a 1-D operand on either side."""
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3))
    left = (k,) if draw(st.integers(0, 4)) == 0 else batch.input_shapes[0] + (n, k)
    right = (k,) if draw(st.integers(0, 4)) == 0 else batch.input_shapes[1] + (k, m)
    return case(f"matmul{left}@{right}", lambda lib, F, a, b: a @ b, Arg(left), Arg(right))


broadcast_pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3).map(
    lambda drawn: drawn.input_shapes
)


@EXAMPLES
@given(name=st.sampled_from(sorted(UNARY)), shape=shapes, layout=layouts)
def test_unary_gradcheck(name, shape, layout):
    op_case = _unary_case(name, shape)
    check_gradcheck(op_case, _layout(op_case, layout))


@EXAMPLES
@given(name=st.sampled_from(sorted(UNARY)), shape=shapes, layout=layouts)
def test_unary_matches_torch(name, shape, layout):
    op_case = _unary_case(name, shape)
    check_torch_parity(op_case, _layout(op_case, layout), require_torch())


@EXAMPLES
@given(name=st.sampled_from(sorted(BINARY)), shape_pair=broadcast_pairs, layout=layouts)
def test_broadcast_gradcheck(name, shape_pair, layout):
    op_case = _binary_case(name, shape_pair)
    check_gradcheck(op_case, _layout(op_case, layout))


@EXAMPLES
@given(name=st.sampled_from(sorted(BINARY)), shape_pair=broadcast_pairs, layout=layouts)
def test_broadcast_matches_torch(name, shape_pair, layout):
    op_case = _binary_case(name, shape_pair)
    check_torch_parity(op_case, _layout(op_case, layout), require_torch())


@EXAMPLES
@given(op_case=reduction_cases(), layout=layouts)
def test_reduction_gradcheck(op_case, layout):
    check_gradcheck(op_case, _layout(op_case, layout))


@EXAMPLES
@given(op_case=reduction_cases(), layout=layouts)
def test_reduction_matches_torch(op_case, layout):
    check_torch_parity(op_case, _layout(op_case, layout), require_torch())


@EXAMPLES
@given(op_case=matmul_cases(), layout=layouts)
def test_matmul_gradcheck(op_case, layout):
    check_gradcheck(op_case, _layout(op_case, layout))


@EXAMPLES
@given(op_case=matmul_cases(), layout=layouts)
def test_matmul_matches_torch(op_case, layout):
    check_torch_parity(op_case, _layout(op_case, layout), require_torch())


@EXAMPLES
@given(shape_pair=broadcast_pairs)
def test_broadcast_gradient_has_each_inputs_shape(shape_pair):
    """Whatever the broadcast, each input's gradient has that input's shape and
    sums the cotangent over the stretched axes: with a cotangent of ones, d(x*1)/dx
    counts how many output entries each input entry reached."""
    import minigrad

    x = minigrad.tensor(np.zeros(shape_pair[0]), requires_grad=True)
    y = minigrad.tensor(np.zeros(shape_pair[1]), requires_grad=True)
    out = x + y
    out.backward(gradient=np.ones(out.shape))
    assert x.grad.shape == x.shape and y.grad.shape == y.shape
    out_size = int(np.prod(out.shape))
    np.testing.assert_array_equal(x.grad.data, out_size / max(x.data.size, 1))
    np.testing.assert_array_equal(y.grad.data, out_size / max(y.data.size, 1))

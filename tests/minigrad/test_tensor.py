"""The Tensor API: creation, dtypes and promotion, random generators, conversion,
zero_, repr."""

import numpy as np
import pytest

import minigrad
from tests.minigrad.op_cases import with_layout


# ---- creation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        (1.5, minigrad.float32),
        ([1.0, 2.0], minigrad.float32),
        ([[1, 2], [3, 4]], minigrad.int64),
        ([True, False], minigrad.bool),
        (np.array([1.0, 2.0]), minigrad.float64),  # arrays keep their dtype
        (np.array([1.0], dtype=np.float32), minigrad.float32),
        (np.array([1, 2], dtype=np.int32), minigrad.int64),  # any integer width becomes int64
        (np.int16(3), minigrad.int64),
    ],
)
def test_tensor_infers_the_dtype_like_torch(data, dtype):
    assert minigrad.tensor(data).dtype == dtype


def test_tensor_copies_and_from_numpy_shares():
    array = np.array([1.0, 2.0])
    copied, shared = minigrad.tensor(array), minigrad.from_numpy(array)
    array[0] = 9.0
    assert copied.data[0] == 1.0 and shared.data[0] == 9.0


@pytest.mark.parametrize("layout", ["transposed", "sliced"])
def test_from_numpy_keeps_non_contiguous_strides(layout):
    """The op tests rely on this: their non-contiguous inputs reach the ops as such."""
    array = with_layout(np.arange(12.0).reshape(3, 4), layout)
    t = minigrad.from_numpy(array).requires_grad_()
    assert not t.data.flags.c_contiguous and np.shares_memory(t.data, array)
    (t * 2.0).sum().backward()
    np.testing.assert_array_equal(t.grad.data, np.full((3, 4), 2.0))


def test_tensor_dtype_argument_and_requires_grad():
    t = minigrad.tensor([1, 2], dtype=minigrad.float64, requires_grad=True)
    assert t.dtype == minigrad.float64 and t.requires_grad and t.is_leaf


@pytest.mark.parametrize(
    ("make", "shape", "dtype"),
    [
        (lambda: minigrad.zeros(2, 3), (2, 3), minigrad.float32),
        (lambda: minigrad.zeros((2, 3)), (2, 3), minigrad.float32),
        (lambda: minigrad.ones(4, dtype=minigrad.float64), (4,), minigrad.float64),
        (lambda: minigrad.ones([2, 1], dtype=minigrad.int64), (2, 1), minigrad.int64),
        (lambda: minigrad.randn(3, 2), (3, 2), minigrad.float32),
        (lambda: minigrad.randn((5,), dtype=minigrad.float64), (5,), minigrad.float64),
        (lambda: minigrad.rand(2, 2), (2, 2), minigrad.float32),
        (lambda: minigrad.randint(0, 5, (3,)), (3,), minigrad.int64),
        (lambda: minigrad.full((2, 2), 1.5), (2, 2), minigrad.float32),
        (lambda: minigrad.full((2,), 7), (2,), minigrad.int64),
        (lambda: minigrad.full((2,), True), (2,), minigrad.bool),
        (lambda: minigrad.zeros_like(minigrad.ones(2, 3, dtype=minigrad.int64)), (2, 3), minigrad.int64),
        (lambda: minigrad.ones_like(minigrad.ones(2), dtype=minigrad.float64), (2,), minigrad.float64),
    ],
)
def test_creation_functions(make, shape, dtype):
    t = make()
    assert t.shape == shape and t.dtype == dtype


def test_creation_values():
    np.testing.assert_array_equal(minigrad.zeros(2, 2).data, 0.0)
    np.testing.assert_array_equal(minigrad.ones(3).data, 1.0)
    np.testing.assert_array_equal(minigrad.full((2,), 2.5).data, 2.5)
    np.testing.assert_array_equal(minigrad.tril(minigrad.ones(2, 2)).data, [[1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(minigrad.triu(minigrad.ones(2, 2), diagonal=1).data, [[0.0, 1.0], [0.0, 0.0]])
    r = minigrad.rand(1000).data
    assert r.min() >= 0.0 and r.max() < 1.0


@pytest.mark.parametrize(
    ("args", "kwargs", "values", "dtype"),
    [
        ((4,), {}, [0, 1, 2, 3], minigrad.int64),
        ((1, 7, 2), {}, [1, 3, 5], minigrad.int64),
        ((0.0, 1.0, 0.25), {}, [0.0, 0.25, 0.5, 0.75], minigrad.float32),
        ((3,), {"dtype": minigrad.float64}, [0.0, 1.0, 2.0], minigrad.float64),
    ],
)
def test_arange_like_torch(args, kwargs, values, dtype):
    t = minigrad.arange(*args, **kwargs)
    assert t.dtype == dtype
    np.testing.assert_array_equal(t.data, values)


def test_set_default_dtype():
    minigrad.set_default_dtype(minigrad.float64)
    try:
        assert minigrad.tensor([1.0]).dtype == minigrad.float64
        assert minigrad.zeros(2).dtype == minigrad.float64
        assert (minigrad.tensor([1, 2]) * 0.5).dtype == minigrad.float64
    finally:
        minigrad.set_default_dtype(minigrad.float32)
    assert minigrad.tensor([1.0]).dtype == minigrad.float32
    with pytest.raises(TypeError, match="only float32 or float64, got int64"):
        minigrad.set_default_dtype(minigrad.int64)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: minigrad.tensor(np.array([1.0], dtype=np.float16)), TypeError, "unsupported dtype float16"),
        (lambda: minigrad.tensor([1.0], dtype="complex64"), TypeError, "unsupported dtype complex64"),
        (lambda: minigrad.tensor([[1.0], [2.0, 3.0]]), (TypeError, ValueError), "."),
        (lambda: minigrad.tensor(["a"]), TypeError, "unsupported dtype"),
        (lambda: minigrad.from_numpy([1.0]), TypeError, "from_numpy expects a numpy.ndarray, got list"),
    ],
    ids=["float16", "complex", "ragged", "strings", "from_numpy_list"],
)
def test_unsupported_data_is_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ---- dtype promotion: the same result dtype as torch ---------------------------------------
PROMOTION = {
    "f32 * python float": lambda lib: lib.ones(2) * 2.5,
    "f32 * python int": lambda lib: lib.ones(2) * 3,
    "f32 * numpy float64 scalar": lambda lib: lib.ones(2) * np.float64(2.0),
    "numpy float64 scalar * f32": lambda lib: np.float64(2.0) * lib.ones(2),
    "f32 + f64": lambda lib: lib.ones(2) + lib.ones(2, dtype=lib.float64),
    "f32 + 0-d f64": lambda lib: lib.ones(2) + lib.tensor(1.0, dtype=lib.float64),
    "0-d f32 + f64": lambda lib: lib.tensor(1.0) + lib.ones(2, dtype=lib.float64),
    "int64 + f32": lambda lib: lib.tensor([1, 2]) + lib.ones(2),
    "int64 * python float": lambda lib: lib.tensor([1, 2]) * 0.5,
    "int64 + 0-d f64": lambda lib: lib.tensor([1, 2]) + lib.tensor(1.0, dtype=lib.float64),
    "int64 / int64": lambda lib: lib.tensor([1, 2]) / lib.tensor([2, 2]),
    "int64 / python int": lambda lib: lib.tensor([1, 2]) / 2,
    "int64 + python int": lambda lib: lib.tensor([1, 2]) + 1,
    "int64 ** python int": lambda lib: lib.tensor([1, 2]) ** 2,
    "bool + python int": lambda lib: lib.tensor([True, False]) + 1,
    "bool * f32": lambda lib: lib.tensor([True, False]) * lib.ones(2),
    "bool * f64": lambda lib: lib.tensor([True, False]) * lib.ones(2, dtype=lib.float64),
    "where f32 / python float": lambda lib: lib.where(lib.tensor([True, False]), lib.ones(2), 0.0),
    "where python floats": lambda lib: lib.where(lib.tensor([True, False]), 1.0, 0.0),
    "where f32 / f64": lambda lib: lib.where(lib.tensor([True, False]), lib.ones(2), lib.ones(2, dtype=lib.float64)),
    "where int64 / f32": lambda lib: lib.where(lib.tensor([True, False]), lib.tensor([1, 2]), lib.ones(2)),
    "f32 comparison": lambda lib: lib.ones(2) > 0.5,
    "f32 sum": lambda lib: lib.ones(2).sum(),
    "bool sum": lambda lib: lib.tensor([True, True]).sum(),
    "int64 sum": lambda lib: lib.tensor([1, 2]).sum(),
    "f32 mean": lambda lib: lib.ones(2).mean(),
    "f32 to f64": lambda lib: lib.ones(2).double(),
    "f64 to f32": lambda lib: lib.ones(2, dtype=lib.float64).float(),
    "f32 to int64": lambda lib: lib.ones(2).long(),
    "arange float": lambda lib: lib.arange(0.0, 2.0),
}


@pytest.mark.parametrize("name", sorted(PROMOTION))
def test_result_dtype_matches_torch(name, torch):
    mine, theirs = PROMOTION[name](minigrad), PROMOTION[name](torch)
    assert str(mine.dtype) == str(theirs.dtype).replace("torch.", ""), name
    np.testing.assert_array_equal(mine.data, theirs.numpy())


def test_numpy_float64_scalar_does_not_upcast_float32():
    x = minigrad.ones(3)
    for result in (x * np.float64(2.0), np.float64(2.0) * x, x + np.float64(1.0), x - np.float32(1.0)):
        assert result.dtype == minigrad.float32


def test_gradient_through_a_promotion_comes_back_in_each_inputs_dtype():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)  # float32
    y = minigrad.tensor([3.0, 4.0], dtype=minigrad.float64, requires_grad=True)
    out = x * y
    assert out.dtype == minigrad.float64
    out.sum().backward()
    assert x.grad.dtype == minigrad.float32 and y.grad.dtype == minigrad.float64
    np.testing.assert_array_equal(x.grad.data, [3.0, 4.0])


# ---- random generators ------------------------------------------------------------------------
def test_manual_seed_makes_the_global_generator_reproducible():
    minigrad.manual_seed(123)
    a = minigrad.randn(5).data
    minigrad.manual_seed(123)
    b = minigrad.randn(5).data
    minigrad.manual_seed(124)
    c = minigrad.randn(5).data
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generators_are_independent_and_reproducible():
    g1, g2 = minigrad.Generator().manual_seed(7), minigrad.Generator().manual_seed(7)
    minigrad.manual_seed(0)
    a = minigrad.randn(4, generator=g1).data
    minigrad.randn(100)  # drawing from the global generator does not touch g2
    b = minigrad.randn(4, generator=g2).data
    np.testing.assert_array_equal(a, b)
    assert g1.initial_seed() == 7


def test_generator_state_round_trip():
    g = minigrad.Generator().manual_seed(3)
    state = g.get_state()
    a = minigrad.rand(3, generator=g).data
    g.set_state(state)
    np.testing.assert_array_equal(minigrad.rand(3, generator=g).data, a)
    with pytest.raises(TypeError, match="seed must be an int, got float"):
        g.manual_seed(1.5)


def test_layers_initialise_reproducibly_from_the_seed():
    minigrad.manual_seed(5)
    a = minigrad.nn.Linear(3, 2).weight.data.copy()
    minigrad.manual_seed(5)
    np.testing.assert_array_equal(minigrad.nn.Linear(3, 2).weight.data, a)


# ---- conversion and in-place --------------------------------------------------------------------
def test_item():
    assert minigrad.tensor([[2.5]]).item() == 2.5
    assert isinstance(minigrad.tensor(3).item(), int)
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element, got shape \(2,\)"):
        minigrad.ones(2).item()


def test_numpy_shares_memory_and_refuses_tensors_that_require_grad():
    t = minigrad.zeros(3)
    t.numpy()[0] = 5.0
    assert t.data[0] == 5.0
    x = minigrad.zeros(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"requires grad: call .detach\(\).numpy\(\)"):
        x.numpy()
    assert np.shares_memory(x.detach().numpy(), x.data)


def test_zero_():
    x = minigrad.tensor([1.0, 2.0], requires_grad=True)
    (x * 2.0).sum().backward()
    returned = x.grad.zero_()
    assert returned is x.grad
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])
    with pytest.raises(RuntimeError, match="zero_: a leaf Variable that requires grad is being used in an in-place"):
        x.zero_()
    with minigrad.no_grad():
        x.zero_()
    np.testing.assert_array_equal(x.data, [0.0, 0.0])


def test_python_conversions():
    assert float(minigrad.tensor(2.5)) == 2.5 and int(minigrad.tensor(3)) == 3
    assert bool(minigrad.tensor([True])) and len(minigrad.zeros(4, 2)) == 4
    assert minigrad.tensor([[1, 2]]).tolist() == [[1, 2]]
    with pytest.raises(RuntimeError, match="truth value of a tensor with more than one element is ambiguous"):
        bool(minigrad.ones(2))
    with pytest.raises(TypeError, match="len.. of a 0-d tensor"):
        len(minigrad.tensor(1.0))


def test_attributes():
    t = minigrad.zeros(2, 3, 4)
    assert t.shape == (2, 3, 4) and t.size() == (2, 3, 4) and t.size(-1) == 4
    assert t.ndim == t.dim() == 3 and t.numel() == 24 and t.device == "cpu"
    assert t.to("cpu") is t
    with pytest.raises(ValueError, match="to: minigrad runs on the CPU only, got device='cuda'"):
        t.to("cuda")
    with pytest.raises(TypeError, match="unsupported dtype"):
        t.to("float16")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: minigrad.tensor([1.5, 2.0]), "tensor([1.5, 2. ])"),
        (lambda: minigrad.tensor([1, 2]), "tensor([1, 2])"),
        (lambda: minigrad.tensor([True, False]), "tensor([ True, False])"),
        (lambda: minigrad.tensor([1.0], dtype=minigrad.float64), "tensor([1.], dtype=minigrad.float64)"),
        (lambda: minigrad.tensor([1.0], requires_grad=True), "tensor([1.], requires_grad=True)"),
        (lambda: minigrad.tensor([1.0], requires_grad=True) * 2.0, "tensor([2.], grad_fn=<MulBackward>)"),
    ],
)
def test_repr(make, expected):
    assert repr(make()) == expected


def test_comparisons_give_bool_tensors_without_gradient():
    x = minigrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for result in (x > 1.5, x <= 2.0, x == minigrad.tensor([1.0, 0.0, 3.0]), x != 2.0):
        assert result.dtype == minigrad.bool and not result.requires_grad
    np.testing.assert_array_equal(((x > 1.5) & (x < 3.0)).data, [False, True, False])
    np.testing.assert_array_equal((~(x > 1.5) | (x > 2.5)).data, [True, False, True])
    with pytest.raises(TypeError, match="~ needs an integer or bool tensor, got float32"):
        x.__invert__()

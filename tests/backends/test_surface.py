"""The backend surface (backends/base.py) on both backends: each item behaves as its
contract says, and the two backends give the same numbers (float64)."""

import numpy as np
import pytest

from backends import get_backend
from backends.base import Backend
from tests.conftest import require_torch

SURFACE = [
    "tensor", "to_numpy", "is_tensor", "zeros", "arange", "cat", "stack", "where", "resolve_dtype", "no_grad",
    "place", "state_to_numpy", "load_numpy_state", "optimizer", "lambda_lr", "clip_grad_norm_",
    "optimizer_state_to_numpy", "load_optimizer_state", "manual_seed", "get_rng_state", "set_rng_state",
    "autocast", "synchronize",
]
FUNCTIONAL = ["linear", "gelu", "layer_norm", "embedding", "softmax", "log_softmax", "cross_entropy", "nll_loss",
              "logsigmoid", "softplus", "sigmoid", "relu", "tanh", "mse_loss", "dropout",
              "scaled_dot_product_attention", "token_logprobs", "silu", "rms_norm", "rotary_embedding"]
MODULES = ["Module", "Parameter", "Linear", "Embedding", "LayerNorm", "ModuleList", "Sequential", "GELU", "Dropout"]


@pytest.fixture(params=["numpy", "torch"])
def be(request):
    """The backend under test, float64 (torch tests skip with a reason where torch is absent)."""
    if request.param == "torch":
        require_torch()
    return get_backend(request.param, dtype="float64")


@pytest.fixture
def both():
    require_torch()
    return get_backend("numpy", dtype="float64"), get_backend("torch", dtype="float64")


def one_line(excinfo):
    assert "\n" not in str(excinfo.value), str(excinfo.value)
    return str(excinfo.value)


# ---- the surface is complete -----------------------------------------------------------
def test_every_surface_item_is_implemented(be):
    for name in SURFACE:
        assert hasattr(Backend, name), f"{name} is not documented in backends.base.Backend"
        mine = getattr(type(be), name)
        if name not in ("state_to_numpy", "resolve_dtype"):  # these two are shared, in the base class
            assert mine is not getattr(Backend, name), f"{be.name} backend leaves {name} unimplemented"
    for name in FUNCTIONAL:
        assert callable(getattr(be.F, name)), f"{be.name}: F.{name} is missing"
    for name in MODULES:
        assert isinstance(getattr(be.nn, name), type), f"{be.name}: nn.{name} is missing"


# ---- tensors ---------------------------------------------------------------------------
def test_tensor_dtypes_and_copy(be):
    source = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    t = be.tensor(source)
    assert t.dtype == be.dtype  # floats become the backend's float dtype (float64 here)
    source[0, 0] = 99.0
    np.testing.assert_array_equal(be.to_numpy(t), np.arange(6.0).reshape(2, 3))  # a copy was taken
    assert be.tensor(np.array([1, 2], dtype=np.int32)).dtype == be.int_dtype
    assert be.tensor([[1, 2]]).dtype == be.int_dtype
    assert be.tensor(np.array([True, False])).dtype == be.resolve_dtype("bool")
    assert be.tensor([1.5], dtype="float32").dtype == be.resolve_dtype("float32")
    assert be.tensor(np.array([1, 2]), dtype="float64").dtype == be.dtype
    w = be.tensor(np.ones(3), requires_grad=True)
    assert w.requires_grad and be.is_tensor(w) and not be.is_tensor(np.ones(3))


def test_to_numpy_detaches(be):
    w = be.tensor(np.array([1.0, -2.0]), requires_grad=True)
    out = be.to_numpy(w * 3.0)
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, [3.0, -6.0])


def test_resolve_dtype(be):
    assert be.resolve_dtype(None) is None
    assert be.resolve_dtype("float64") == be.dtype
    assert be.resolve_dtype(be.dtype) == be.dtype
    assert be.resolve_dtype(np.int64) == be.int_dtype
    with pytest.raises(ValueError, match=r"unknown tensor dtype 'int32'; choose one of: float32, float64, int64, bool"):
        be.tensor([1, 2], dtype="int32")
    with pytest.raises(ValueError, match=r"unknown tensor dtype 'complex64'") as err:
        be.zeros(2, dtype="complex64")
    one_line(err)


def test_creation_helpers(be):
    z = be.zeros(2, 3)
    assert tuple(z.shape) == (2, 3) and z.dtype == be.dtype and not be.to_numpy(z).any()
    assert be.zeros(2, dtype="int64").dtype == be.int_dtype
    np.testing.assert_array_equal(be.to_numpy(be.arange(4)), [0, 1, 2, 3])
    assert be.arange(4).dtype == be.int_dtype
    a, b = be.tensor(np.ones((2, 2))), be.tensor(np.zeros((2, 2)))
    assert tuple(be.cat([a, b], dim=1).shape) == (2, 4)
    assert tuple(be.stack([a, b], dim=0).shape) == (2, 2, 2)
    picked = be.where(be.tensor(np.array([True, False])), be.tensor(np.array([1.0, 2.0])),
                      be.tensor(np.array([3.0, 4.0])))
    np.testing.assert_array_equal(be.to_numpy(picked), [1.0, 4.0])


def test_no_grad_records_no_graph(be):
    w = be.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with be.no_grad():
        y = (w * w).sum()
    assert not y.requires_grad
    z = (w * w).sum()
    assert z.requires_grad


# ---- functional ops: same values and gradients on both backends -------------------------
def _functional_cases(rng):
    x = rng.standard_normal((2, 3, 5))
    w, b = rng.standard_normal((4, 5)), rng.standard_normal(4)
    ln_w, ln_b = rng.standard_normal(5), rng.standard_normal(5)
    table = rng.standard_normal((7, 5))
    ids = np.array([[0, 3, 6], [2, 2, 5]])
    targets = np.array([[1, 4, -100], [0, 2, 3]])
    q, k, v = (rng.standard_normal((2, 2, 4, 3)) for _ in range(3))
    allowed = np.tril(np.ones((4, 4), dtype=bool))[None, None] & np.array([1, 1, 1, 0], dtype=bool)
    angles, rx = rng.standard_normal((4, 3)), rng.standard_normal((2, 2, 4, 6))
    cos, sin = np.cos(np.concatenate((angles, angles), -1)), np.sin(np.concatenate((angles, angles), -1))
    return {
        "linear": (lambda F, t: F.linear(t(x), t(w), t(b)), (x, w, b)),
        "gelu": (lambda F, t: F.gelu(t(x)), (x,)),
        "layer_norm": (lambda F, t: F.layer_norm(t(x), (5,), t(ln_w), t(ln_b), 1e-5), (x, ln_w, ln_b)),
        "embedding": (lambda F, t: F.embedding(t(ids, grad=False), t(table)), (table,)),
        "softmax": (lambda F, t: F.softmax(t(x), dim=-1), (x,)),
        "log_softmax": (lambda F, t: F.log_softmax(t(x), dim=1), (x,)),
        "cross_entropy": (lambda F, t: F.cross_entropy(t(x).permute(0, 2, 1), t(targets % 5, grad=False)), (x,)),
        "cross_entropy_ignore": (lambda F, t: F.cross_entropy(t(x).reshape(-1, 5), t(targets.reshape(-1), grad=False),
                                                              ignore_index=-100), (x,)),
        "token_logprobs": (lambda F, t: F.token_logprobs(t(x), t(targets, grad=False)), (x,)),
        "logsigmoid": (lambda F, t: F.logsigmoid(t(x)), (x,)),
        "softplus": (lambda F, t: F.softplus(t(x)), (x,)),
        "sigmoid": (lambda F, t: F.sigmoid(t(x)), (x,)),
        "tanh": (lambda F, t: F.tanh(t(x)), (x,)),
        "mse_loss": (lambda F, t: F.mse_loss(t(x), t(x[::-1].copy(), grad=False)), (x,)),
        "silu": (lambda F, t: F.silu(t(x)), (x,)),
        "rms_norm": (lambda F, t: F.rms_norm(t(x), (5,), t(ln_w), 1e-6), (x, ln_w)),
        "rotary_embedding": (lambda F, t: F.rotary_embedding(t(rx), t(cos, grad=False), t(sin, grad=False)), (rx,)),
        "sdpa_causal": (lambda F, t: F.scaled_dot_product_attention(t(q), t(k), t(v), is_causal=True), (q, k, v)),
        "sdpa_mask": (lambda F, t: F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=t(allowed, grad=False)),
                      (q, k, v)),
    }


CASES = list(_functional_cases(np.random.default_rng(0)))


@pytest.mark.parametrize("case", CASES)
def test_functional_op_same_on_both_backends(both, case):
    """Forward values and the gradient of Σ u·out (u fixed, random) agree to 1e-12."""
    results = []
    for be in both:
        fn, arrays = _functional_cases(np.random.default_rng(0))[case]
        leaves = {}

        def t(array, grad=True, be=be, leaves=leaves):
            if grad and id(array) in leaves:
                return leaves[id(array)]
            made = be.tensor(array, requires_grad=grad and np.issubdtype(array.dtype, np.floating))
            if grad:
                leaves[id(array)] = made
            return made

        out = fn(be.F, t)
        u = np.random.default_rng(1).standard_normal(tuple(out.shape))
        (out * be.tensor(u)).sum().backward()
        results.append((be.to_numpy(out), [be.to_numpy(leaves[id(a)].grad) for a in arrays]))
    (out_a, grads_a), (out_b, grads_b) = results
    np.testing.assert_allclose(out_a, out_b, rtol=1e-12, atol=1e-12)
    for ga, gb in zip(grads_a, grads_b):
        np.testing.assert_allclose(ga, gb, rtol=1e-10, atol=1e-12)


def test_dropout_follows_manual_seed_and_rng_state(be):
    x = be.tensor(np.ones((4, 50)))
    be.manual_seed(123)
    first = be.to_numpy(be.F.dropout(x, 0.5, True))
    be.manual_seed(123)
    again = be.to_numpy(be.F.dropout(x, 0.5, True))
    np.testing.assert_array_equal(first, again)
    assert set(np.unique(first)) == {0.0, 2.0}
    state = be.get_rng_state()
    third = be.to_numpy(be.F.dropout(x, 0.5, True))
    be.set_rng_state(state)
    np.testing.assert_array_equal(be.to_numpy(be.F.dropout(x, 0.5, True)), third)
    assert not np.array_equal(third, first)


# ---- modules ---------------------------------------------------------------------------
def test_place_casts_a_module(be):
    layer = be.nn.Linear(3, 2)  # built in the library's default dtype, float32
    assert be.place(layer) is layer
    assert layer.weight.dtype == be.dtype and layer.bias.dtype == be.dtype


def test_state_to_numpy_and_back(be):
    layer = be.place(be.nn.Linear(3, 2))
    state = be.state_to_numpy(layer)
    assert set(state) == {"weight", "bias"}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    state["weight"][...] = 7.0  # a copy: the module is untouched
    assert not np.all(be.to_numpy(layer.weight) == 7.0)
    other = be.place(be.nn.Linear(3, 2))
    be.load_numpy_state(other, state)
    np.testing.assert_array_equal(be.to_numpy(other.weight), np.full((2, 3), 7.0))
    np.testing.assert_array_equal(be.to_numpy(other.bias), state["bias"])
    with pytest.raises(RuntimeError, match="bias"):
        be.load_numpy_state(other, {"weight": state["weight"]})


# ---- training --------------------------------------------------------------------------
def _quadratic_steps(be, name, steps=4, **kwargs):
    """Minimise Σ (w - target)² · scale from a fixed start; return w after each step."""
    w = be.tensor(np.array([1.0, -2.0, 0.5, 3.0]), requires_grad=True)
    target, scale = be.tensor(np.array([0.3, 0.1, -0.7, 2.0])), be.tensor(np.array([1.0, 0.5, 2.0, 0.1]))
    opt = be.optimizer(name, [w], lr=0.1, **kwargs)
    trace = []
    for _ in range(steps):
        opt.zero_grad()
        (((w - target) ** 2) * scale).sum().backward()
        opt.step()
        trace.append(be.to_numpy(w).copy())
    return np.array(trace)


@pytest.mark.parametrize("name,kwargs", [
    ("sgd", {}), ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("adam", {}), ("adam", {"weight_decay": 0.1}), ("adamw", {}), ("AdamW", {"weight_decay": 0.5, "betas": (0.8, 0.9)}),
])
def test_optimizers_agree_across_backends(both, name, kwargs):
    a, b = (_quadratic_steps(be, name, **kwargs) for be in both)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    assert not np.allclose(a[0], a[-1])  # it moved


def test_sgd_step_matches_the_formula(be):
    trace = _quadratic_steps(be, "sgd", steps=1)
    w0 = np.array([1.0, -2.0, 0.5, 3.0])
    grad = 2 * (w0 - np.array([0.3, 0.1, -0.7, 2.0])) * np.array([1.0, 0.5, 2.0, 0.1])
    np.testing.assert_allclose(trace[0], w0 - 0.1 * grad, rtol=1e-14, atol=1e-15)


def test_unknown_optimizer(be):
    w = be.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match=r"unknown optimizer 'adagrad'; choose one of: sgd, adam, adamw, rmsprop") \
            as err:
        be.optimizer("adagrad", [w], lr=0.1)
    one_line(err)


def test_lambda_lr(be):
    w = be.tensor(np.ones(2), requires_grad=True)
    opt = be.optimizer("sgd", [w], lr=0.5)
    sched = be.lambda_lr(opt, lambda step: 1.0 / (step + 1))
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == [0.5, 0.25, 0.5 / 3]


def test_clip_grad_norm(be):
    w = be.tensor(np.array([3.0, 4.0]), requires_grad=True)
    v = be.tensor(np.array([12.0]), requires_grad=True)
    ((w * w).sum() / 2 + (v * v).sum() / 2).backward()  # grads (3, 4) and (12): joint norm 13
    norm = be.clip_grad_norm_([w, v], max_norm=1.3)
    assert isinstance(norm, float) and norm == pytest.approx(13.0, rel=1e-15)
    np.testing.assert_allclose(be.to_numpy(w.grad), [0.3, 0.4], rtol=1e-6)
    np.testing.assert_allclose(be.to_numpy(v.grad), [1.2], rtol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimizer_checkpoint_resumes_exactly(be, name):
    """Save model + optimizer state as NumPy after 2 steps, reload into fresh objects,
    take 2 more steps: the same weights as 4 uninterrupted steps."""
    kwargs = {"momentum": 0.9} if name == "sgd" else {}

    def setup():
        layer = be.place(be.nn.Linear(3, 2))
        be.load_numpy_state(layer, {"weight": np.arange(6.0).reshape(2, 3) / 10, "bias": np.array([0.1, -0.2])})
        return layer, be.optimizer(name, layer.parameters(), lr=0.05, **kwargs)

    x = be.tensor(np.random.default_rng(0).standard_normal((5, 3)))

    def step(layer, opt):
        opt.zero_grad()
        (layer(x) ** 2).mean().backward()
        opt.step()

    layer, opt = setup()
    for _ in range(2):
        step(layer, opt)
    model_state, opt_state = be.state_to_numpy(layer), be.optimizer_state_to_numpy(opt)
    for entry in opt_state["state"].values():
        assert all(isinstance(v, (np.ndarray, int, float)) for v in entry.values()), entry
    for _ in range(2):
        step(layer, opt)
    for _ in range(2):  # twice from the same checkpoint: loading must not let later steps write into it
        resumed, resumed_opt = setup()
        be.load_numpy_state(resumed, model_state)
        be.load_optimizer_state(resumed_opt, opt_state)
        for _ in range(2):
            step(resumed, resumed_opt)
        for key, value in be.state_to_numpy(layer).items():
            np.testing.assert_array_equal(be.state_to_numpy(resumed)[key], value)


# ---- precision -------------------------------------------------------------------------
def test_autocast_none_is_a_no_op(be):
    x = be.tensor(np.ones((2, 3)))
    with be.autocast(None):
        y = be.F.linear(x, be.tensor(np.ones((4, 3))))
    assert y.dtype == be.dtype


def test_numpy_autocast_refuses_a_dtype():
    with pytest.raises(ValueError, match=r"numpy backend has no mixed precision \(autocast dtype='bfloat16'\)") as e:
        get_backend("numpy").autocast("bfloat16")
    one_line(e)


def test_torch_autocast_bfloat16():
    torch = require_torch()
    be = get_backend("torch", dtype="float32")
    with be.autocast("bfloat16"):
        y = be.F.linear(be.tensor(np.ones((2, 3))), be.tensor(np.ones((4, 3))))
    assert y.dtype == torch.bfloat16
    assert be.to_numpy(y).dtype == np.float32  # to_numpy widens bfloat16, which NumPy lacks
    with pytest.raises(ValueError, match=r"unknown autocast dtype 'int8'; choose one of: bfloat16, float16 or None"):
        be.autocast("int8")

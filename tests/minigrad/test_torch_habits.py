"""PyTorch habits: each either works as in torch (an op case against torch, written
once, plus gradcheck where it is differentiable) or fails with a message naming
what minigrad lacks."""

import math

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from minigrad import nn
from tests.minigrad.op_cases import Arg, as_numpy, case, check_gradcheck, check_torch_parity, params

CASES = [
    case("tril", lambda lib, F, x: lib.tril(x), (4, 5)),
    case("triu_diagonal", lambda lib, F, x: lib.triu(x, 1), (3, 4, 4)),
    case("topk_largest", lambda lib, F, x: x.topk(2, dim=-1), (3, 5)),
    case("topk_smallest_dim0", lambda lib, F, x: x.topk(2, dim=0, largest=False), (4, 3)),
    case("repeat", lambda lib, F, x: x.repeat(2, 1, 3), (3, 2)),
    case("std", lambda lib, F, x: x.std(dim=1), (3, 5)),
    case("std_all_biased", lambda lib, F, x: x.std(correction=0), (3, 4)),
    case("einsum_matmul", lambda lib, F, a, b: lib.einsum("ij,jk->ik", a, b), (3, 4), (4, 2)),
    case("einsum_batched_implicit", lambda lib, F, a, b: lib.einsum("bij,bjk", a, b), (2, 3, 4), (2, 4, 5)),
    case("einsum_sum_away", lambda lib, F, a, b: lib.einsum("ij,k->j", a, b), (3, 4), (2,)),
    case("top_level_functions", lambda lib, F, a, b: lib.sum(lib.exp(a) * lib.log(b), dim=1)
         + lib.matmul(a, lib.ones(4, dtype=a.dtype)), (3, 4), Arg((3, 4), "positive")),
    case("mse_loss_module", lambda lib, F, a, b: lib.nn.MSELoss()(a, b), (3, 4), (3, 4)),
    case("cross_entropy_module", lambda lib, F, a: lib.nn.CrossEntropyLoss()(a, lib.tensor([0, 3, 1])), (3, 4)),
]


@pytest.mark.parametrize(("op_case", "layout"), params(CASES, for_gradcheck=True))
def test_gradcheck(op_case, layout):
    check_gradcheck(op_case, layout)


@pytest.mark.parametrize(("op_case", "layout"), params(CASES, layouts=("contiguous", "sliced")))
def test_matches_torch(op_case, layout, torch):
    check_torch_parity(op_case, layout, torch)


def _both(torch, fn):
    """fn(lib) on minigrad and on torch, as NumPy arrays."""
    return as_numpy(fn(minigrad)), as_numpy(fn(torch))


@pytest.mark.parametrize("name", ["and", "or", "xor", "invert", "bool_and", "bool_or"])
def test_bitwise_operators_on_integer_and_bool_tensors(name, torch):
    forms = {
        "and": lambda lib: lib.tensor([6, 3, -4]) & lib.tensor([3, 5, 7]),
        "or": lambda lib: lib.tensor([6, 3, -4]) | 3,
        "xor": lambda lib: lib.tensor([6, 3, -4]) ^ lib.tensor([3, 5, 7]),
        "invert": lambda lib: ~lib.tensor([6, 0, -4]),
        "bool_and": lambda lib: lib.tensor([True, True, False]) & lib.tensor([True, False, False]),
        "bool_or": lambda lib: lib.tensor([True, True, False]) | lib.tensor([True, False, False]),
    }
    mine, theirs = _both(torch, forms[name])
    assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), f"{name}: {mine} != torch's {theirs}"


def test_bitwise_on_floats_names_the_dtype():
    with pytest.raises(TypeError, match="& needs integer or bool tensors, got float32"):
        minigrad.tensor([1.0]) & minigrad.tensor([1.0])


@pytest.mark.parametrize("name", ["any", "all", "any_dim", "all_dim_keepdim", "linspace", "eye", "eye_rect",
                                  "int", "long", "cpu", "to_device_dtype", "tensor_device"])
def test_creation_and_conversion_habits(name, torch):
    x = np.array([[0.0, 1.5], [0.0, 0.0], [2.0, -1.0]])
    forms = {
        "any": lambda lib: lib.tensor(x).any(),
        "all": lambda lib: lib.tensor(x).all(),
        "any_dim": lambda lib: lib.tensor(x).any(dim=1),
        "all_dim_keepdim": lambda lib: lib.tensor(x != 0).all(dim=0, keepdim=True),
        "linspace": lambda lib: lib.linspace(-1.0, 2.0, 7),
        "eye": lambda lib: lib.eye(3),
        "eye_rect": lambda lib: lib.eye(2, 4, dtype=lib.float64),
        "int": lambda lib: lib.tensor(x).int().long(),  # minigrad's int() is int64 already
        "long": lambda lib: lib.tensor(x).long(),
        "cpu": lambda lib: lib.tensor(x).cpu(),
        "to_device_dtype": lambda lib: lib.tensor(x).to("cpu", lib.float32),
        "tensor_device": lambda lib: lib.tensor(x, device="cpu"),
    }
    mine, theirs = _both(torch, forms[name])
    assert mine.dtype == theirs.dtype, f"{name}: dtype {mine.dtype}, torch {theirs.dtype}"
    np.testing.assert_allclose(mine, theirs, rtol=1e-7, atol=1e-12, err_msg=name)


def test_in_place_update_under_no_grad_trains_as_in_torch(torch):
    """The plain SGD loop of a torch tutorial: the parameters move and the loss falls."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    w0 = rng.standard_normal((3, 1))
    losses = {}
    for lib in (minigrad, torch):
        w = lib.tensor(w0.copy(), requires_grad=True)
        xs, ys = lib.tensor(x), lib.tensor(y)
        history = []
        for _ in range(5):
            loss = ((xs @ w - ys) ** 2).mean()
            loss.backward()
            with lib.no_grad():
                w -= 0.1 * w.grad
                w.grad.zero_()
            history.append(loss.item())
        losses[lib.__name__] = history
    assert losses["minigrad"][-1] < losses["minigrad"][0]
    np.testing.assert_allclose(losses["minigrad"], losses["torch"], rtol=1e-12)


@pytest.mark.parametrize("name", ["add_", "mul_", "sub_", "div_", "fill_", "copy_", "setitem", "setitem_mask"])
def test_in_place_ops_on_tensors_without_grad(name, torch):
    forms = {
        "add_": lambda t, lib: t.add_(lib.tensor([1.0, 2.0, 3.0])),
        "mul_": lambda t, lib: t.mul_(2.5),
        "sub_": lambda t, lib: t.sub_(0.5),
        "div_": lambda t, lib: t.div_(lib.tensor([2.0, 4.0, 8.0])),
        "fill_": lambda t, lib: t.fill_(7.0),
        "copy_": lambda t, lib: t.copy_(lib.tensor([9.0, 8.0, 7.0])),
        "setitem": lambda t, lib: t.__setitem__(1, 5.0),
        "setitem_mask": lambda t, lib: t.__setitem__(t > 1.5, 0.0),
    }
    results = []
    for lib in (minigrad, torch):
        t = lib.tensor([1.0, 2.0, 3.0], dtype=lib.float64)
        returned = forms[name](t, lib)
        assert returned is None or returned is t
        results.append(as_numpy(t))
    np.testing.assert_array_equal(*results)


def test_in_place_on_a_leaf_that_requires_grad_raises_torch_error(torch):
    for lib in (minigrad, torch):
        w = lib.ones(2, requires_grad=True)
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
            w += 1


def test_in_place_integer_by_float_raises_as_torch():
    t = minigrad.tensor([1, 2])
    with pytest.raises(RuntimeError, match="add_: result type float32 can't be cast to the desired output type int64"):
        t.add_(0.5)


def test_half_is_a_clear_error():
    with pytest.raises(TypeError, match="float16 is not supported by minigrad"):
        minigrad.ones(2).half()


@pytest.mark.parametrize(("where", "name", "message"), [
    (lambda: minigrad.ones(2), "cuda", "minigrad.Tensor has no attribute 'cuda'"),
    (lambda: minigrad.ones(2), "nan_to_num", "minigrad.Tensor has no attribute 'nan_to_num'"),
    (lambda: minigrad, "fft", "module 'minigrad' has no attribute 'fft'"),
    (lambda: nn, "Conv2d", "module 'minigrad.nn' has no attribute 'Conv2d'"),
    (lambda: F, "conv2d", "module 'minigrad.nn.functional' has no attribute 'conv2d'"),
    (lambda: minigrad.optim, "LBFGS", "module 'minigrad.optim' has no attribute 'LBFGS'"),
])
def test_a_missing_torch_name_is_an_attribute_error_naming_it(where, name, message):
    with pytest.raises(AttributeError, match=message + ": minigrad implements a subset of torch"):
        getattr(where(), name)


def test_a_device_other_than_the_cpu_is_refused():
    with pytest.raises(ValueError, match="tensor: minigrad runs on the CPU only, got device='cuda'"):
        minigrad.tensor([1.0], device="cuda")
    with pytest.raises(ValueError, match="Module.to: minigrad runs on the CPU only"):
        nn.Linear(2, 2).to("cuda")


def test_module_cpu_and_to():
    layer = nn.Linear(3, 2)
    assert layer.cpu() is layer and layer.to("cpu") is layer
    assert layer.to("cpu", minigrad.float64).weight.dtype == minigrad.float64
    assert layer.to(dtype=minigrad.float32).weight.dtype == minigrad.float32


@pytest.mark.parametrize("name", ["normal_", "zeros_", "ones_", "xavier_uniform_", "kaiming_uniform_"])
def test_nn_init_fills_in_place_with_torch_distribution(name, torch):
    """Distributions, not values (the generators differ): bounds from torch's formulas,
    moments from a large sample; zeros_/ones_ exactly."""
    w = nn.Parameter(np.zeros((400, 300), dtype=np.float64))
    out = getattr(nn.init, name)(w)
    assert out is w and w.requires_grad and w.grad_fn is None
    theirs = getattr(torch.nn.init, name)(torch.zeros(400, 300, dtype=torch.float64)).numpy()
    values = w.data
    if name in ("zeros_", "ones_"):
        np.testing.assert_array_equal(values, theirs)
        return
    # both samples: same bound (uniform) or same moments (normal), to sampling error
    if name == "normal_":
        assert abs(values.mean()) < 0.01 and abs(values.std() - 1.0) < 0.01
    else:
        bound = {"xavier_uniform_": math.sqrt(6.0 / 700), "kaiming_uniform_": math.sqrt(6.0 / 300)}[name]
        for sample in (values, theirs):
            assert sample.max() <= bound and sample.min() >= -bound and sample.max() > 0.99 * bound


@pytest.mark.parametrize("name", ["step", "cosine"])
def test_schedulers_match_torch(name, torch):
    rates = []
    for lib in (minigrad, torch):
        p = lib.zeros(2, requires_grad=True)
        optimizer = lib.optim.SGD([p], lr=0.5)
        schedules = lib.optim.lr_scheduler
        if name == "step":
            scheduler = schedules.StepLR(optimizer, step_size=3, gamma=0.5)
        else:
            scheduler = schedules.CosineAnnealingLR(optimizer, T_max=7, eta_min=0.01)
        seen = []
        for _ in range(10):
            optimizer.step()
            scheduler.step()
            seen.append(scheduler.get_last_lr()[0])
        rates.append(seen)
    np.testing.assert_allclose(rates[0], rates[1], rtol=1e-12)


@pytest.mark.parametrize("equation", ["i...,i", "ii->i", "ij,jk->ik,", "ij,jk,kl->il", "ij,jk->iq"])
def test_einsum_outside_the_subset_says_so(equation):
    a = minigrad.ones(3, 3)
    with pytest.raises(ValueError, match="einsum: "):
        minigrad.einsum(equation, a, a) if equation.count(",") else minigrad.einsum(equation, a)

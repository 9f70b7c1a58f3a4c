"""minigrad.nn: Module (registration, traversal, state_dict, modes, zero_grad),
Parameter, and the layers held against their torch counterparts."""

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from minigrad import nn
from tests.minigrad.op_cases import as_numpy, assert_close


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = nn.LayerNorm(4, dtype=minigrad.float64)
        self.proj = nn.Linear(4, 3, dtype=minigrad.float64)

    def forward(self, x):
        return self.proj(self.ln(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4, dtype=minigrad.float64)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.scale = nn.Parameter(np.ones(1))
        self.register_buffer("mask", minigrad.tensor([True, False]))

    def forward(self, ids):
        x = self.embed(ids)
        for block in self.blocks:
            x = F.gelu(block(x)[..., :1]) * self.scale + x
        return x


NET_PARAMETERS = [  # a module's own parameters come before its children's, as in torch
    ("scale", (1,)),
    ("embed.weight", (10, 4)),
    ("blocks.0.ln.weight", (4,)), ("blocks.0.ln.bias", (4,)),
    ("blocks.0.proj.weight", (3, 4)), ("blocks.0.proj.bias", (3,)),
    ("blocks.1.ln.weight", (4,)), ("blocks.1.ln.bias", (4,)),
    ("blocks.1.proj.weight", (3, 4)), ("blocks.1.proj.bias", (3,)),
]


# ---- Module ---------------------------------------------------------------------------------
def test_named_parameters_in_registration_order():
    net = Net()
    assert [(name, p.shape) for name, p in net.named_parameters()] == NET_PARAMETERS
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())
    assert len(list(net.parameters())) == len(NET_PARAMETERS)
    assert [name for name, _ in net.named_parameters(recurse=False)] == ["scale"]


def test_shared_parameters_are_listed_once():
    net = nn.Module()
    net.a = nn.Linear(2, 2)
    net.b = net.a
    assert [name for name, _ in net.named_parameters()] == ["a.weight", "a.bias"]


def test_names_and_order_match_torch(torch):
    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = torch.nn.LayerNorm(4)
            self.proj = torch.nn.Linear(4, 3)

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)
            self.blocks = torch.nn.ModuleList([TorchBlock(), TorchBlock()])
            self.scale = torch.nn.Parameter(torch.ones(1))
            self.register_buffer("mask", torch.tensor([True, False]))

    mine, theirs = Net(), TorchNet()
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(mine.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in mine.named_modules()] == [n for n, _ in theirs.named_modules()]


def test_tied_parameter_is_in_state_dict_under_both_names_like_torch(torch):
    def tie(lib_nn):
        net = lib_nn.Module()
        net.a, net.b = lib_nn.Linear(2, 2), lib_nn.Linear(2, 2)
        net.b.weight = net.a.weight
        return net

    mine, theirs = tie(nn), tie(torch.nn)
    assert list(mine.state_dict()) == list(theirs.state_dict()) == ["a.weight", "a.bias", "b.weight", "b.bias"]
    assert [n for n, _ in mine.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    mine.load_state_dict(mine.state_dict())


def test_children_and_modules():
    net = Net()
    assert [name for name, _ in net.named_children()] == ["embed", "blocks"]
    assert list(net.children()) == [net.embed, net.blocks]
    assert [name for name, _ in net.named_modules()] == [
        "", "embed", "blocks", "blocks.0", "blocks.0.ln", "blocks.0.proj", "blocks.1", "blocks.1.ln", "blocks.1.proj",
    ]


def test_state_dict_orders_each_module_parameters_then_buffers_sharing_memory():
    net = Net()
    state = net.state_dict()
    assert list(state) == ["scale", "mask"] + [name for name, _ in NET_PARAMETERS[1:]]
    assert np.shares_memory(state["embed.weight"].data, net.embed.weight.data)
    assert not state["embed.weight"].requires_grad


def test_load_state_dict_round_trip_and_in_place_copy():
    source, target = Net(), Net()
    for p in source.parameters():
        p.data[...] = np.random.default_rng(0).standard_normal(p.shape)
    held = target.state_dict()
    result = target.load_state_dict(source.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (name, p), (_, q) in zip(source.named_parameters(), target.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
        assert not np.shares_memory(p.data, q.data)
    np.testing.assert_array_equal(held["scale"].data, source.scale.data)  # copied into the same memory, like torch


def test_load_state_dict_into_a_read_only_parameter():
    layer = nn.Linear(2, 1, dtype=minigrad.float64)
    frozen = np.zeros((1, 2))
    frozen.flags.writeable = False
    layer.weight.data = frozen
    layer.load_state_dict({"weight": np.ones((1, 2)), "bias": np.ones(1)})
    np.testing.assert_array_equal(layer.weight.data, [[1.0, 1.0]])
    np.testing.assert_array_equal(frozen, 0.0)


def test_load_state_dict_accepts_numpy_arrays_and_casts():
    net = nn.Linear(2, 3, dtype=minigrad.float64)
    net.load_state_dict({"weight": np.ones((3, 2), dtype=np.float32), "bias": np.zeros(3)})
    assert net.weight.dtype == minigrad.float64
    np.testing.assert_array_equal(net.weight.data, 1.0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("blocks.1.proj.bias"), r"missing keys: blocks\.1\.proj\.bias"),
        (lambda s: s.update(extra=np.zeros(2)), "unexpected keys: extra"),
        (lambda s: s.update({"embed.weight": np.zeros((9, 4))}),
         r"size mismatch for embed\.weight: checkpoint has shape \(9, 4\), the model has \(10, 4\)"),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_load_state_dict_errors(edit, message):
    net = Net()
    state = dict(net.state_dict())
    edit(state)
    with pytest.raises(RuntimeError, match=message):
        net.load_state_dict(state)


def test_load_state_dict_lists_every_problem_in_one_error():
    net = Net()
    state = dict(net.state_dict())
    state.pop("scale")
    state["bogus"] = np.zeros(1)
    state["embed.weight"] = np.zeros((1, 1))
    every_problem = "(?s)size mismatch for embed.weight.*missing keys: scale.*unexpected keys: bogus"
    with pytest.raises(RuntimeError, match=every_problem):
        net.load_state_dict(state)


def test_load_state_dict_not_strict_reports_keys():
    net = Net()
    state = dict(net.state_dict())
    state.pop("scale")
    state["bogus"] = np.zeros(1)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["scale"] and result.unexpected_keys == ["bogus"]
    with pytest.raises(RuntimeError, match="size mismatch for scale"):
        net.load_state_dict({"scale": np.zeros(2)}, strict=False)


def test_train_and_eval_reach_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad():
    net = Net()
    net(minigrad.tensor([[1, 2]])).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.data.any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_module_to_casts_parameters():
    net = nn.Linear(2, 2).to(minigrad.float64)
    assert net.weight.dtype == minigrad.float64 and net.weight.requires_grad
    assert net.float().bias.dtype == minigrad.float32


def test_assigning_before_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\) is called.*in Broken.__init__"):
        Broken()


def test_reassigning_registered_names_like_torch():
    layer = nn.Linear(2, 2)
    layer.weight = nn.Parameter(np.zeros((2, 2)))  # keeps its place
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    layer.bias = None  # allowed: the entry stays registered as None and is skipped
    assert [n for n, _ in layer.named_parameters()] == ["weight"] and list(layer.state_dict()) == ["weight"]
    with pytest.raises(TypeError, match="cannot assign Tensor to 'weight' of Linear: it is a registered parameter"):
        layer.weight = minigrad.zeros(2, 2)
    net = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="cannot assign int to '0' of Sequential: it is a registered module"):
        setattr(net, "0", 3)
    buffered = Net()
    buffered.mask = minigrad.tensor([False, False])  # a tensor may replace a buffer
    assert buffered.state_dict()["mask"].data.tolist() == [False, False]


def test_forward_not_defined():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        nn.Module()(1)


def test_parameter():
    p = nn.Parameter(minigrad.tensor([1.0, 2.0]))
    assert isinstance(p, minigrad.Tensor) and p.requires_grad and p.is_leaf
    assert not nn.Parameter(np.ones(2), requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor([1., 2.]")


def test_module_repr():
    assert repr(nn.Sequential(nn.Linear(2, 3), nn.GELU())) == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): GELU(approximate='none')\n)"
    )


# ---- layers against torch --------------------------------------------------------------------
def _copy_into_torch(module, torch_module, torch):
    with torch.no_grad():
        for name, p in torch_module.named_parameters():
            p.copy_(torch.from_numpy(dict(module.named_parameters())[name].data))


def _compare(mine, theirs, x, tx, what):
    out, tout = mine(x), theirs(tx)
    rng = np.random.default_rng(0)
    cotangent = rng.standard_normal(out.shape)
    out.backward(gradient=cotangent)
    tout.backward(theirs_grad := __import__("torch").from_numpy(cotangent))
    del theirs_grad
    assert_close(out.data, as_numpy(tout), f"{what} output")
    mine_params, their_params = dict(mine.named_parameters()), dict(theirs.named_parameters())
    assert list(mine_params) == list(their_params), f"{what}: parameter names differ"
    for name, p in mine_params.items():
        assert_close(p.grad.data, as_numpy(their_params[name].grad), f"{what} grad of {name}")


def test_linear_matches_torch(torch):
    mine = nn.Linear(4, 3, dtype=minigrad.float64)
    assert mine.weight.shape == (3, 4) and mine.bias.shape == (3,)
    theirs = torch.nn.Linear(4, 3, dtype=torch.float64)
    _copy_into_torch(mine, theirs, torch)
    values = np.random.default_rng(1).standard_normal((2, 5, 4))
    _compare(mine, theirs, minigrad.tensor(values), torch.tensor(values), "Linear")


def test_linear_without_bias_and_its_init_bound():
    layer = nn.Linear(16, 8, bias=False)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert np.abs(layer.weight.data).max() <= 1 / np.sqrt(16)


def test_embedding_matches_torch(torch):
    mine = nn.Embedding(6, 3, padding_idx=0, dtype=minigrad.float64)
    np.testing.assert_array_equal(mine.weight.data[0], 0.0)
    theirs = torch.nn.Embedding(6, 3, padding_idx=0, dtype=torch.float64)
    _copy_into_torch(mine, theirs, torch)
    ids = np.array([[0, 2, 2], [5, 1, 0]])
    _compare(mine, theirs, minigrad.tensor(ids), torch.tensor(ids), "Embedding")


def test_layer_norm_matches_torch(torch):
    mine = nn.LayerNorm(4, eps=1e-3, dtype=minigrad.float64)
    np.testing.assert_array_equal(mine.weight.data, 1.0)
    np.testing.assert_array_equal(mine.bias.data, 0.0)
    mine.weight.data[...] = [0.5, 1.0, 1.5, 2.0]
    mine.bias.data[...] = [0.1, 0.0, -0.1, 0.2]
    theirs = torch.nn.LayerNorm(4, eps=1e-3, dtype=torch.float64)
    _copy_into_torch(mine, theirs, torch)
    values = np.random.default_rng(2).standard_normal((3, 4))
    _compare(mine, theirs, minigrad.tensor(values), torch.tensor(values), "LayerNorm")


def test_sequential_mlp_matches_torch(torch):
    mine = nn.Sequential(nn.Linear(4, 8, dtype=minigrad.float64), nn.GELU(approximate="tanh"),
                         nn.Linear(8, 2, dtype=minigrad.float64), nn.Tanh(), nn.ReLU())
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 8, dtype=torch.float64), torch.nn.GELU(approximate="tanh"),
                                 torch.nn.Linear(8, 2, dtype=torch.float64), torch.nn.Tanh(), torch.nn.ReLU())
    _copy_into_torch(mine, theirs, torch)
    values = np.random.default_rng(3).standard_normal((5, 4))
    _compare(mine, theirs, minigrad.tensor(values), torch.tensor(values), "Sequential")


def test_state_dict_loads_from_torch_tensors(torch):
    theirs = torch.nn.Linear(3, 2, dtype=torch.float64)
    mine = nn.Linear(3, 2, dtype=minigrad.float64)
    mine.load_state_dict(theirs.state_dict())
    np.testing.assert_array_equal(mine.weight.data, theirs.weight.detach().numpy())


def test_module_list_and_sequential_containers():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.GELU()])
    layers.append(nn.Linear(2, 1))
    assert len(layers) == 3 and isinstance(layers[1], nn.GELU) and isinstance(layers[-1], nn.Linear)
    assert [type(m).__name__ for m in layers] == ["Linear", "GELU", "Linear"]
    assert [n for n, _ in layers.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    seq = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    x = minigrad.ones(3, 2)
    np.testing.assert_allclose(seq(x).data, seq[1](seq[0](x)).data)


def test_gelu_module_is_the_functional():
    x = minigrad.tensor(np.linspace(-3, 3, 7))
    np.testing.assert_array_equal(nn.GELU()(x).data, F.gelu(x).data)
    np.testing.assert_array_equal(nn.GELU("tanh")(x).data, F.gelu(x, approximate="tanh").data)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got -0.1"):
        nn.Dropout(-0.1)

"""ModelDefinition: a block built inside a model without `backend=` gets the model's backend
(the torch model then registers the block's parameters); outside any model the default is
"numpy"."""

import pytest

from backends import ModelDefinition, get_backend


class Inner(ModelDefinition):
    def __init__(self, width):
        super().__init__()
        self.proj = self.nn.Linear(width, width)


class Outer(ModelDefinition):
    def __init__(self, width):
        super().__init__()
        self.inner = Inner(width)  # no backend= : the parent's
        self.blocks = self.nn.ModuleList([Inner(width) for _ in range(2)])


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_a_nested_definition_inherits_its_parent_backend(name):
    if name == "torch":
        pytest.importorskip("torch", reason="the torch backend needs PyTorch")
    backend = get_backend(name, dtype="float64")
    model = Outer(3, backend=backend)
    assert type(model.inner).backend is backend and type(model.blocks[0]).backend is backend
    assert isinstance(model.inner, backend.nn.Module)
    assert len(list(model.parameters())) == 3 * 2  # weight and bias of three Linear layers


def test_outside_any_model_the_default_is_numpy():
    assert type(Inner(2)).backend.name == "numpy"


def test_the_parent_backend_does_not_leak_after_construction():
    pytest.importorskip("torch", reason="the torch backend needs PyTorch")
    Outer(2, backend=get_backend("torch"))
    assert type(Inner(2)).backend.name == "numpy"

"""No graph leak: in a training loop (backward, then an optimizer step) the number of
live graph nodes (`minigrad.autograd.Function` instances, counted with gc) does not
grow from step to step, and drops back once the last loss is gone. Counted with the
cycle collector off: graphs must be freed by reference counting alone (no cycles)."""

import gc
import weakref

import numpy as np
import pytest

import minigrad
import minigrad.nn.functional as F
from minigrad import nn
from minigrad.autograd import Function


@pytest.fixture(autouse=True)
def refcounting_only():
    """Collect what earlier tests left in reference cycles (tracebacks hold frames),
    then keep the cycle collector off, so only reference counting frees graphs."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def live_graph_nodes():
    return sum(issubclass(type(o), Function) for o in gc.get_objects())  # type(): no __class__ lookups


def live_tensors():
    return sum(issubclass(type(o), minigrad.Tensor) for o in gc.get_objects())


def test_training_loop_does_not_leak_graph_nodes():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 4))
    optimizer = minigrad.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = minigrad.tensor(rng.standard_normal((8, 6))), minigrad.tensor(rng.integers(0, 4, 8))
    before = live_graph_nodes()
    nodes, tensors = [], []
    for _ in range(6):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        nodes.append(live_graph_nodes())
        tensors.append(live_tensors())
    assert nodes[-1] > before, "the last loss should still hold its graph (sanity check of the counter)"
    assert len(set(nodes)) == 1, f"live graph nodes grow from step to step: {nodes}"
    assert len(set(tensors)) == 1, f"live tensors grow from step to step: {tensors}"
    del loss
    assert live_graph_nodes() == before


def test_no_grad_evaluation_records_no_nodes():
    model = nn.Linear(3, 2)
    before = live_graph_nodes()
    with minigrad.no_grad():
        out = model(minigrad.ones(4, 3)).sum()
    assert out.grad_fn is None
    assert live_graph_nodes() == before


def test_detach_drops_the_graph():
    x = minigrad.ones(3, requires_grad=True)
    before = live_graph_nodes()
    y = (x * 2.0).exp().sum()
    assert live_graph_nodes() == before + 3
    kept = y.detach()
    del y
    assert live_graph_nodes() == before
    assert kept.item() > 0


class _Probe(minigrad.autograd.Function):
    """Identity whose backward records which of the watched arrays are still alive."""

    watched: list = []
    alive_at_backward: list = []

    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, g):
        _Probe.alive_at_backward = [ref() is not None for ref in _Probe.watched]
        return g


def test_backward_frees_each_intermediate_once_the_nodes_using_it_are_done():
    """Nothing outside the graph holds the intermediates: by the time backward reaches the
    first op, the later ops' outputs (which no backward needs) are freed, and after backward
    the root holds no graph, so memory falls as backward proceeds, as in torch. A tensor
    the user still holds keeps its values."""
    x = minigrad.tensor(np.ones((4, 5)), requires_grad=True)
    a = _Probe.apply(x)
    b = a * 2.0  # Mul saves a, not its output b
    c = b + 1.0  # Add saves nothing
    kept = c * 3.0
    loss = kept.sum()
    _Probe.watched = [weakref.ref(b.data), weakref.ref(c.data)]
    kept_before = kept.data.copy()
    del b, c
    loss.backward()
    assert _Probe.alive_at_backward == [False, False], "intermediates outlived the nodes that use them"
    np.testing.assert_array_equal(kept.data, kept_before)
    np.testing.assert_array_equal(x.grad.data, np.full((4, 5), 6.0))
    watched = weakref.ref(kept.grad_fn)
    assert loss.grad_fn.parents == () and watched() is not None  # released: structure cut, node kept by `kept`
    del kept
    assert watched() is None, "after backward the root's released node still holds the graph"


def test_retain_graph_keeps_the_graph_for_a_second_backward():
    x = minigrad.tensor(np.arange(3.0), requires_grad=True)
    loss = ((x * 2.0).exp() * 1.5).sum()
    loss.backward(retain_graph=True)
    first = x.grad.data.copy()
    loss.backward()
    np.testing.assert_allclose(x.grad.data, 2 * first, rtol=1e-15)
    with pytest.raises(RuntimeError, match="backward\\(\\) through a graph a second time"):
        loss.backward()

"""minigrad.optim.RMSprop against torch.optim.RMSprop: a small float64 MLP trained 15 steps
from the same weights, every option (momentum, centered, weight decay) on and off; the
losses and final parameters agree to 1e-9. Also its argument checks."""

import numpy as np
import pytest

import minigrad

RNG = np.random.default_rng(1)
X = RNG.standard_normal((12, 3))
Y = RNG.integers(0, 2, 12)
INIT = {"0.weight": RNG.uniform(-0.5, 0.5, (6, 3)), "0.bias": RNG.uniform(-0.5, 0.5, 6),
        "2.weight": RNG.uniform(-0.5, 0.5, (2, 6)), "2.bias": RNG.uniform(-0.5, 0.5, 2)}


def train(lib, steps=15, **options):
    nn = lib.nn
    model = nn.Sequential(nn.Linear(3, 6, dtype=lib.float64), nn.Tanh(), nn.Linear(6, 2, dtype=lib.float64))
    model.load_state_dict({name: lib.tensor(value) for name, value in INIT.items()})
    optimizer = lib.optim.RMSprop(model.parameters(), **options)
    F = minigrad.nn.functional if lib is minigrad else lib.nn.functional
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(lib.tensor(X)), lib.tensor(Y))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    params = {n: np.array(p.data if lib is minigrad else p.detach().numpy()) for n, p in model.named_parameters()}
    return np.array(losses), params, optimizer


@pytest.mark.parametrize("options", [
    dict(lr=1e-2),
    dict(lr=1e-2, alpha=0.9, eps=1e-6),
    dict(lr=5e-3, momentum=0.9),
    dict(lr=5e-3, centered=True),
    dict(lr=5e-3, momentum=0.5, centered=True, weight_decay=0.1),
], ids=["default", "alpha_eps", "momentum", "centered", "all"])
def test_rmsprop_matches_torch(options, torch):
    mine, mine_params, _ = train(minigrad, **options)
    theirs, their_params, _ = train(torch, **options)
    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9)
    assert mine[-1] < mine[0]
    for name in mine_params:
        np.testing.assert_allclose(mine_params[name], their_params[name], rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("options,message", [
    (dict(lr=-1.0), "RMSprop: lr, eps, weight_decay and momentum must be >= 0"),
    (dict(momentum=-0.1), "RMSprop: lr, eps, weight_decay and momentum must be >= 0"),
    (dict(alpha=1.0), r"RMSprop: alpha must be in \[0, 1\), got 1.0"),
])
def test_rmsprop_bad_arguments(options, message):
    with pytest.raises(ValueError, match=message):
        minigrad.optim.RMSprop([minigrad.zeros(2, requires_grad=True)], **options)

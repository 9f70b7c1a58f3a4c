"""minigrad.optim against torch.optim: a 2-layer MLP trained 20 steps from the same
weights gives the same losses step by step (float64, <= 1e-9). Also clip_grad_norm_,
the linear warm-up(+decay) schedule against a hand-computed table, state_dict, and
that optimizer steps never record a graph."""

import numpy as np
import pytest

import minigrad
from minigrad.autograd import Function
from minigrad.optim.lr_scheduler import linear_warmup_decay

STEPS = 20
LOSS_ATOL = 1e-9
RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 4))
Y = RNG.integers(0, 3, 16)
INIT = {
    "0.weight": RNG.uniform(-0.5, 0.5, (8, 4)), "0.bias": RNG.uniform(-0.5, 0.5, 8),
    "2.weight": RNG.uniform(-0.5, 0.5, (3, 8)), "2.bias": RNG.uniform(-0.5, 0.5, 3),
}


def mlp(lib):
    """Linear(4, 8) -> GELU(tanh) -> Linear(8, 3) in float64, from the INIT weights."""
    nn = lib.nn
    model = nn.Sequential(nn.Linear(4, 8, dtype=lib.float64), nn.GELU(approximate="tanh"),
                          nn.Linear(8, 3, dtype=lib.float64))
    model.load_state_dict({name: lib.tensor(value) for name, value in INIT.items()})
    return model


def train(lib, make_optimizer, make_schedule=None, clip=None, steps=STEPS):
    """Losses per step and the final parameters, written once for both libraries."""
    F = minigrad.nn.functional if lib is minigrad else lib.nn.functional
    model = mlp(lib)
    optimizer = make_optimizer(lib.optim, model.parameters())
    schedule = make_schedule(lib, optimizer) if make_schedule else None
    x, y = lib.tensor(X), lib.tensor(Y)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if clip is not None:
            clip_grad_norm = minigrad.nn.utils.clip_grad_norm_ if lib is minigrad else lib.nn.utils.clip_grad_norm_
            clip_grad_norm(model.parameters(), clip)
        optimizer.step()
        if schedule is not None:
            schedule.step()
        losses.append(loss.item())
    params = {name: np.array(p.data if lib is minigrad else p.detach().numpy()) for name, p in model.named_parameters()}
    return np.array(losses), params


def warmup_decay(lib, optimizer):
    """minigrad's ready-made schedule, torch's LambdaLR with the same formula."""
    if lib is minigrad:
        return minigrad.optim.get_linear_schedule_with_warmup(optimizer, 5, STEPS)
    return lib.optim.lr_scheduler.LambdaLR(optimizer, linear_warmup_decay(5, STEPS))


CONFIGS = {
    "sgd": (lambda optim, p: optim.SGD(p, lr=0.1), None, None),
    "sgd_momentum": (lambda optim, p: optim.SGD(p, lr=0.1, momentum=0.9), None, None),
    "sgd_nesterov_weight_decay": (
        lambda optim, p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), None, None),
    "sgd_dampening": (
        lambda optim, p: optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.02), None, None),
    "adam": (lambda optim, p: optim.Adam(p, lr=1e-2), None, None),
    "adam_l2_betas": (lambda optim, p: optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1), None, None),
    "adamw_default_decay": (lambda optim, p: optim.AdamW(p, lr=1e-2), None, None),
    "adamw": (lambda optim, p: optim.AdamW(p, lr=3e-2, weight_decay=0.1, eps=1e-6), None, None),
    "adamw_warmup_decay": (lambda optim, p: optim.AdamW(p, lr=3e-2), warmup_decay, None),
    "adamw_clipped": (lambda optim, p: optim.AdamW(p, lr=3e-2), None, 0.5),
    "sgd_clipped_scheduled": (lambda optim, p: optim.SGD(p, lr=0.2, momentum=0.5), warmup_decay, 0.3),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_training_matches_torch_step_by_step(name, torch):
    make_optimizer, make_schedule, clip = CONFIGS[name]
    mine, mine_params = train(minigrad, make_optimizer, make_schedule, clip)
    theirs, their_params = train(torch, make_optimizer, make_schedule, clip)
    step = int(np.abs(mine - theirs).argmax())
    assert abs(mine[step] - theirs[step]) <= LOSS_ATOL, f"{name}: step {step} loss {mine[step]} vs torch {theirs[step]}"
    assert mine[-1] < mine[0], f"{name}: the loss did not go down ({mine[0]} -> {mine[-1]})"
    for param in mine_params:
        np.testing.assert_allclose(mine_params[param], their_params[param], rtol=0, atol=LOSS_ATOL, err_msg=param)


def test_optimizer_state_dict_resumes_training_exactly():
    make = CONFIGS["adamw"][0]
    straight, _ = train(minigrad, make, steps=8)
    model = mlp(minigrad)
    x, y = minigrad.tensor(X), minigrad.tensor(Y)
    optimizer = make(minigrad.optim, model.parameters())

    def step():
        optimizer.zero_grad()
        loss = minigrad.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    first = [step() for _ in range(4)]
    saved_model, saved_optimizer = {k: v.data.copy() for k, v in model.state_dict().items()}, optimizer.state_dict()
    model = mlp(minigrad)
    model.load_state_dict(saved_model)
    optimizer = make(minigrad.optim, model.parameters())
    optimizer.load_state_dict(saved_optimizer)
    second = [step() for _ in range(4)]
    np.testing.assert_array_equal(first + second, straight)


# ---- clip_grad_norm_ -------------------------------------------------------------------------
@pytest.mark.parametrize(("max_norm", "norm_type"), [(0.5, 2.0), (100.0, 2.0), (0.5, 1.0), (0.3, float("inf"))])
def test_clip_grad_norm_matches_torch(max_norm, norm_type, torch):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal((300, 500))]  # 3 blocks of dots

    def clipped(lib, clip):
        params = [lib.zeros(*g.shape, dtype=lib.float64, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = lib.tensor(g.copy())
        total = clip(params, max_norm, norm_type=norm_type)
        return float(total), [np.array(p.grad.data if lib is minigrad else p.grad.numpy()) for p in params]

    total, mine = clipped(minigrad, minigrad.nn.utils.clip_grad_norm_)
    their_total, theirs = clipped(torch, torch.nn.utils.clip_grad_norm_)
    assert total == pytest.approx(their_total, rel=1e-13)
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_clip_grad_norm_of_large_float32_gradients_is_as_exact_as_float64_allows():
    """The 2-norm sums float32 dots of blocks in float64: against the float64 norm of the same
    values, within one float32 epsilon (one BLAS dot over the 4·10^6 entries is off by ~3e-6)."""
    rng = np.random.default_rng(2)
    grads = [(rng.standard_normal(n) * 1e-3).astype(np.float32) for n in (4_000_037, 70_000, 1)]
    params = [minigrad.zeros(len(g), requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = minigrad.tensor(g.copy())
    exact = np.sqrt(sum(np.dot(g.astype(np.float64), g.astype(np.float64)) for g in grads))
    total = minigrad.nn.utils.clip_grad_norm_(params, 1e9).item()
    assert total == pytest.approx(exact, rel=float(np.finfo(np.float32).eps))


def test_clip_grad_norm_by_hand():
    p = minigrad.zeros(2, dtype=minigrad.float64, requires_grad=True)
    p.grad = minigrad.tensor([3.0, 4.0])
    total = minigrad.nn.utils.clip_grad_norm_(p, 1.0)
    assert total.item() == 5.0
    np.testing.assert_allclose(p.grad.data, [0.6, 0.8], rtol=1e-6)
    p.grad = minigrad.tensor([np.inf, 0.0])
    with pytest.raises(RuntimeError, match="the total norm of order 2.0 of the gradients is non-finite"):
        minigrad.nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)


# ---- schedules -------------------------------------------------------------------------------
def _lrs(warmup, total, steps, base=0.1):
    p = minigrad.zeros(1, requires_grad=True)
    optimizer = minigrad.optim.SGD([p], lr=base)
    schedule = minigrad.optim.get_linear_schedule_with_warmup(optimizer, warmup, total)
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps):
        schedule.step()
        lrs.append(schedule.get_last_lr()[0])
    return lrs


def test_linear_warmup_decay_against_a_hand_table():
    """warm-up 3, total 10, base 0.1: 0, 1/3, 2/3, then (10 - s)/7, floored at 0."""
    expected = [0, 1 / 3, 2 / 3, 1, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7, 0, 0]
    np.testing.assert_allclose(_lrs(3, 10, 11), [0.1 * f for f in expected], rtol=1e-15, atol=0)


def test_linear_warmup_without_decay_and_without_warmup():
    np.testing.assert_allclose(_lrs(2, None, 4), [0.0, 0.05, 0.1, 0.1, 0.1], rtol=1e-15)
    np.testing.assert_allclose(_lrs(0, 4, 5), [0.1, 0.075, 0.05, 0.025, 0.0, 0.0], rtol=1e-15)


def test_lambda_lr_matches_torch(torch):
    def lrs(lib):
        p = lib.zeros(1, requires_grad=True)
        optimizer = lib.optim.SGD([p], lr=0.5)
        schedule = lib.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.9**s)
        out = [schedule.get_last_lr()[0]]
        for _ in range(5):
            optimizer.step()
            schedule.step()
            out.append(schedule.get_last_lr()[0])
        return out

    assert lrs(minigrad) == pytest.approx(lrs(torch), rel=1e-15)


def test_schedule_rejects_bad_steps():
    with pytest.raises(ValueError, match="need 0 <= warmup_steps <= total_steps, got 5 and 3"):
        linear_warmup_decay(5, 3)


# ---- graphs and errors --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sgd_nesterov_weight_decay", "adam_l2_betas", "adamw"])
def test_optimizer_steps_never_record_a_graph(name, monkeypatch):
    model = mlp(minigrad)
    optimizer = CONFIGS[name][0](minigrad.optim, model.parameters())
    minigrad.nn.functional.cross_entropy(model(minigrad.tensor(X)), minigrad.tensor(Y)).backward()
    calls = []
    original = Function.apply.__func__

    def counting_apply(cls, *args, **kwargs):
        calls.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Function, "apply", classmethod(counting_apply))
    optimizer.step()
    optimizer.step()
    assert calls == [], f"{name}.step() ran differentiable ops: {calls}"
    for p in model.parameters():
        assert p.is_leaf and p.grad_fn is None and p.requires_grad


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda p: minigrad.optim.SGD([], lr=0.1), ValueError, "SGD got an empty parameter list"),
        (lambda p: minigrad.optim.SGD([minigrad.zeros(2)], lr=0.1), ValueError,
         r"SGD: a parameter of shape \(2,\) does not require grad"),
        (lambda p: minigrad.optim.AdamW([np.zeros(2)]), TypeError,
         "AdamW can only optimize minigrad Tensors, got ndarray"),
        (lambda p: minigrad.optim.SGD(p, lr=-1.0), ValueError, "lr, momentum and weight_decay must be >= 0"),
        (lambda p: minigrad.optim.SGD(p, lr=0.1, nesterov=True), ValueError, "Nesterov momentum requires a momentum"),
        (lambda p: minigrad.optim.Adam(p, betas=(0.9, 1.0)), ValueError, r"betas must be in \[0, 1\)"),
        (lambda p: minigrad.optim.Adam(p, lr=-1e-3), ValueError, "Adam: lr, eps and weight_decay must be >= 0"),
    ],
    ids=["empty", "no_grad", "not_tensor", "sgd_lr", "nesterov", "betas", "adam_lr"],
)
def test_bad_optimizer_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make([minigrad.zeros(2, requires_grad=True)])


def test_parameter_groups_and_zero_grad():
    a, b = minigrad.ones(2, requires_grad=True), minigrad.ones(2, requires_grad=True)
    optimizer = minigrad.optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    (a + b * 2.0).sum().backward()
    optimizer.step()
    np.testing.assert_allclose(a.data, [0.9, 0.9], rtol=1e-6)
    np.testing.assert_allclose(b.data, [-1.0, -1.0], rtol=1e-6)
    optimizer.zero_grad(set_to_none=False)
    assert not a.grad.data.any()
    optimizer.zero_grad()
    assert a.grad is None and b.grad is None

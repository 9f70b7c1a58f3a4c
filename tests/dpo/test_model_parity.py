"""TinyGPT on minigrad vs PyTorch (CPU, and CUDA where present): same weights and
batch -> same logits, loss and gradients; AdamW steps track; the classic plain-PyTorch
TinyGPT exchanges state dicts with ours; the torch model works with PyTorch tooling.

On a failure the per-parameter table (backends.parity) is printed and the assertion
names each offending parameter with its worst entry."""

import numpy as np
import pytest

from backends import get_backend
from backends.parity import compare_gradients, compare_parameters
from dpo.model import GPTConfig, TinyGPT, init_weights
from tests.backends.lm_batch import next_token_nll, next_token_nll_numpy, padded_batch, random_weights
from tests.conftest import require_cuda, require_torch

CONFIG = GPTConfig()  # the default size: vocab 260, hidden 64, heads 4, depth 2, max_len 96
LENGTHS = [40, 33, 17, 2]  # right padding in three of four rows
T = 40
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def backend_pair(dtype, device):
    """(numpy backend, torch backend on `device`); skips with a reason where unavailable."""
    require_torch()
    if device == "cuda":
        require_cuda()
    return get_backend("numpy", dtype=dtype), get_backend("torch", device=device, dtype=dtype)


def twin_models(dtype, device, seed=0):
    """The same random (non-initial) weights on both backends."""
    numpy_be, torch_be = backend_pair(dtype, device)
    weights = random_weights(init_weights(CONFIG, seed), np.random.default_rng(seed + 100))
    models = []
    for be in (numpy_be, torch_be):
        model = TinyGPT(CONFIG, backend=be)
        model.load_weights(weights)
        models.append(model)
    return models


def batch(seed=0):
    return padded_batch(np.random.default_rng(seed), LENGTHS, T, CONFIG.vocab_size)


def numpy_of(model, t):
    return type(model).backend.to_numpy(t)


# ---- float64: logits, loss and every gradient --------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_float64_parity_logits_loss_gradients(device):
    a, b = twin_models("float64", device)
    ids, mask = batch()
    logits_a, logits_b = numpy_of(a, a(ids, mask)), numpy_of(b, b(ids, mask))
    assert np.abs(logits_a - logits_b).max() <= 1e-10
    loss_a, loss_b = next_token_nll(a, ids, mask), next_token_nll(b, ids, mask)
    assert abs(float(loss_a.item()) - float(loss_b.item())) <= 1e-10
    assert float(loss_a.item()) == pytest.approx(next_token_nll_numpy(logits_a, ids, mask), abs=1e-12)
    loss_a.backward()
    loss_b.backward()
    report = compare_gradients(a, b)  # the table is printed (pytest shows it on failure)
    assert all(np.any(numpy_of(a, p.grad)) for p in a.parameters()), "a parameter got no gradient"
    report.check(min_cosine=1 - 1e-9, max_rel_err=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_parity_loss_and_gradient_direction(device):
    a, b = twin_models("float32", device)
    ids, mask = batch(1)
    loss_a, loss_b = next_token_nll(a, ids, mask), next_token_nll(b, ids, mask)
    la, lb = float(loss_a.item()), float(loss_b.item())
    assert abs(la - lb) / abs(lb) <= 1e-5
    loss_a.backward()
    loss_b.backward()
    compare_gradients(a, b).check(min_cosine=0.9999)


# ---- training: ten AdamW steps track each other ---------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_ten_adamw_steps_track(device):
    a, b = twin_models("float64", device, seed=2)
    ids, mask = batch(2)
    optimizers = [type(m).backend.optimizer("adamw", m.parameters(), lr=1e-2, weight_decay=0.1) for m in (a, b)]
    losses = {0: [], 1: []}
    for _ in range(10):
        for i, (model, opt) in enumerate(zip((a, b), optimizers)):
            opt.zero_grad()
            loss = next_token_nll(model, ids, mask)
            loss.backward()
            opt.step()
            losses[i].append(float(loss.item()))
    print("losses numpy:", losses[0], "\nlosses torch:", losses[1])
    np.testing.assert_allclose(losses[0], losses[1], rtol=0, atol=1e-8)
    assert losses[0][-1] < losses[0][0] - 0.5  # it learned: the steps were not trivially equal
    compare_parameters(a, b).check(max_abs_err=1e-8)


def test_training_loop_written_once_with_schedule_clipping_and_resume():
    """A generic loop using only the surface (optimizer, lambda_lr, clip_grad_norm_,
    no_grad, NumPy checkpoints) gives the same numbers on both backends, and a run
    resumed from a checkpoint continues exactly."""
    numpy_be, torch_be = backend_pair("float64", "cpu")
    ids, mask = batch(3)
    config = GPTConfig(hidden=32, heads=2, depth=1, max_len=T)

    def train(be, steps, checkpoint=None):
        model = TinyGPT(config, seed=4, backend=be)
        opt = be.optimizer("adamw", model.parameters(), lr=3e-3)
        sched = be.lambda_lr(opt, lambda step: min(1.0, (step + 1) / 3))
        if checkpoint is not None:
            be.load_numpy_state(model, checkpoint["model"])
            be.load_optimizer_state(opt, checkpoint["optimizer"])
            sched.load_state_dict(checkpoint["schedule"])
        norms = []
        for _ in range(steps):
            opt.zero_grad()
            next_token_nll(model, ids, mask).backward()
            norms.append(be.clip_grad_norm_(model.parameters(), max_norm=0.5))
            opt.step()
            sched.step()
        with be.no_grad():
            final = float(next_token_nll(model, ids, mask).item())
        state = {"model": be.state_to_numpy(model), "optimizer": be.optimizer_state_to_numpy(opt),
                 "schedule": sched.state_dict()}
        return norms, final, state

    results = {}
    for be in (numpy_be, torch_be):
        norms, final, _ = train(be, 6)
        _, _, half = train(be, 3)
        resumed_norms, resumed_final, _ = train(be, 3, checkpoint=half)
        assert resumed_norms == pytest.approx(norms[3:], rel=1e-13) and resumed_final == pytest.approx(final, rel=1e-13)
        results[be.name] = (norms, final)
    assert max(results["numpy"][0]) > 0.5  # clipping was active
    np.testing.assert_allclose(results["numpy"][0], results["torch"][0], rtol=1e-9)
    assert results["numpy"][1] == pytest.approx(results["torch"][1], abs=1e-10)


# ---- the classic plain-PyTorch TinyGPT ------------------------------------------------------
def reference_model(device, weights=None, seed=0):
    torch = require_torch()
    from tests.backends.reference_tinygpt import ReferenceTinyGPT

    torch.manual_seed(seed)
    ref = ReferenceTinyGPT(**CONFIG.to_dict()).double().to(device)
    if weights is not None:
        ref.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    return ref


@pytest.mark.parametrize("device", DEVICES)
def test_the_classic_pytorch_tinygpt_loads_our_export(device):
    a, b = twin_models("float64", device, seed=5)
    ref = reference_model(device, a.export_weights())
    torch = require_torch()
    ids, mask = batch(5)
    with torch.no_grad():
        expected = ref(torch.as_tensor(ids, device=device)).cpu().numpy()
        full = ref(torch.as_tensor(ids[:, :10], device=device)).cpu().numpy()
    real = mask.astype(bool)
    for model in (a, b):
        assert np.abs(numpy_of(model, model(ids, mask))[real] - expected[real]).max() <= 1e-10
        assert np.abs(numpy_of(model, model(ids[:, :10])) - full).max() <= 1e-10  # no padding: every position


@pytest.mark.parametrize("device", DEVICES)
def test_our_model_loads_the_classic_pytorch_state_dict(device):
    backends_here = backend_pair("float64", device)
    torch = require_torch()
    ref = reference_model(device, seed=6)
    with torch.no_grad():  # make LayerNorm affine parameters non-trivial too
        for name, p in ref.named_parameters():
            if ".ln" in name or name.startswith("ln_f"):
                p.add_(torch.randn_like(p) * 0.1)
    state = {k: v.detach().cpu().numpy() for k, v in ref.state_dict().items()}
    assert list(state) == list(TinyGPT(CONFIG, backend="numpy").state_dict())
    ids, mask = batch(6)
    ids = ids[:, :24]
    with torch.no_grad():
        expected = ref(torch.as_tensor(ids, device=device)).cpu().numpy()
    for be in backends_here:
        ours = TinyGPT(CONFIG, backend=be)
        ours.load_weights(state)
        assert np.abs(be.to_numpy(ours(ids)) - expected).max() <= 1e-10


# ---- the torch model is a real torch.nn.Module -----------------------------------------------
def test_torch_optim_trains_the_model_directly():
    torch = require_torch()
    model = TinyGPT(GPTConfig(hidden=32, heads=2, depth=1), backend=get_backend("torch", dtype="float64"))
    assert isinstance(model, torch.nn.Module)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids, mask = batch(7)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = next_token_nll(model, ids, mask)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert set(model.state_dict()) == set(init_weights(GPTConfig(hidden=32, heads=2, depth=1)))


def _compiled_matches_eager(compile_backend):
    torch = require_torch()
    config = GPTConfig(vocab_size=32, hidden=16, heads=2, depth=1, max_len=16)
    model = TinyGPT(config, seed=8, backend=get_backend("torch", dtype="float64"))
    ids, mask = padded_batch(np.random.default_rng(8), [8, 5], 8, config.vocab_size)
    ids, mask = torch.as_tensor(ids), torch.as_tensor(mask)
    compiled = torch.compile(model, backend=compile_backend)
    out = compiled(ids, mask)
    out.square().sum().backward()
    compiled_grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    eager = model(ids, mask)
    eager.square().sum().backward()
    assert (out - eager).abs().max().item() <= 1e-12
    for name, p in model.named_parameters():
        assert torch.allclose(compiled_grads[name], p.grad, rtol=1e-10, atol=1e-12), name


def test_torch_compile_traces_the_model():
    """torch.compile's graph capture (dynamo) and autograd tracing (AOTAutograd),
    without generating C++ code: values and gradients equal eager mode."""
    _compiled_matches_eager("aot_eager")


@pytest.mark.slow
def test_torch_compile_with_inductor():
    """The default torch.compile backend; generating C++ takes ~40 s on a cold cache."""
    _compiled_matches_eager("inductor")

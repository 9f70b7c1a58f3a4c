"""DPO loss family: autodiff gradients against the hand-written ones, the direction each
loss pushes, and numpy/torch parity (all float64)."""

import math

import numpy as np
import pytest

from backends import get_backend
from dpo.losses import F_DIVERGENCES, LOSS_TYPE_NAMES, LOSS_TYPES, RunningMean, analytic_grad_chosen, dpo_loss
from tests.conftest import require_torch

BETA = 0.1
B = 6
NEEDS_SMOOTHING = {"exo_pair": 1e-3}  # exo_pair takes log ε, so ε = 0 is an error
DIVERGENCE_CASES = [("reverse_kl", 0.5), ("forward_kl", 0.5), ("js_divergence", 0.5),
                    ("alpha_divergence", 0.5), ("alpha_divergence", -0.7), ("alpha_divergence", 2.0)]


@pytest.fixture(params=["numpy", "torch"])
def be(request):
    if request.param == "torch":
        require_torch()
    return get_backend(request.param, dtype="float64")


def generic_point(seed=0, batch=B):
    """Realistic summed log-probs: policy ≈ -20 ± 3, reference = policy + N(0, 1.5) (log-ratios of a few
    nats), lengths 3..12, no ties. Average log-probs are < 0, so orpo is defined."""
    rng = np.random.default_rng(seed)
    pc, pr = rng.normal(-20, 3, batch), rng.normal(-20, 3, batch)
    rc, rr = pc - rng.normal(0, 1.5, batch), pr - rng.normal(0, 1.5, batch)
    lengths = dict(chosen_lengths=rng.integers(3, 13, batch), rejected_lengths=rng.integers(3, 13, batch))
    return (pc, pr, rc, rr), lengths


def autodiff(be, loss_type, logps, **kwargs):
    """(losses, d Σ losses / d π_c, d Σ losses / d π_r) by the backend's autodiff, as NumPy
    (a gradient is None where the loss does not depend on that input at all)."""
    pc, pr, rc, rr = logps
    tc, tr = be.tensor(pc, requires_grad=True), be.tensor(pr, requires_grad=True)
    refs = (None, None) if rc is None else (be.tensor(rc), be.tensor(rr))
    out = dpo_loss(tc, tr, *refs, loss_type=loss_type, backend=be, **kwargs)
    out.losses.sum().backward()
    grads = [None if t.grad is None else be.to_numpy(t.grad) for t in (tc, tr)]  # None: no path to the loss
    return (be.to_numpy(out.losses), *grads)


def gradient_cases():
    for name in LOSS_TYPE_NAMES:
        if LOSS_TYPES[name].uses_f_divergence:
            for divergence, alpha in DIVERGENCE_CASES:
                yield pytest.param(name, divergence, alpha, id=f"{name}-{divergence}-{alpha}")
        else:
            yield pytest.param(name, "reverse_kl", 0.5, id=f"{name}")


# ---- autodiff == the documented derivative ---------------------------------------------------
@pytest.mark.parametrize("loss_type,divergence,alpha", list(gradient_cases()))
def test_autodiff_gradient_equals_the_analytic_derivative(be, loss_type, divergence, alpha):
    logps, lengths = generic_point(seed=1)
    kwargs = dict(beta=BETA, label_smoothing=NEEDS_SMOOTHING.get(loss_type, 0.0), f_divergence=divergence,
                  f_alpha=alpha, **lengths)
    _, auto, _ = autodiff(be, loss_type, logps, **kwargs)
    analytic = analytic_grad_chosen(loss_type, *logps, **kwargs)
    np.testing.assert_allclose(auto, analytic, rtol=1e-10, atol=1e-10)
    assert np.all(analytic != 0)  # a derivative of 0 everywhere would match a loss that ignores π_c


@pytest.mark.parametrize("loss_type", ["sigmoid", "robust", "exo_pair", "aot", "aot_unpaired", "simpo"])
def test_label_smoothing_enters_the_derivative(be, loss_type):
    logps, lengths = generic_point(seed=2)
    kwargs = dict(beta=0.7, label_smoothing=0.2, **lengths)
    _, auto, _ = autodiff(be, loss_type, logps, **kwargs)
    np.testing.assert_allclose(auto, analytic_grad_chosen(loss_type, *logps, **kwargs), rtol=1e-10, atol=1e-10)
    unsmoothed = analytic_grad_chosen(loss_type, *logps, **{**kwargs, "label_smoothing": 0.001})
    assert np.abs(auto - unsmoothed).max() > 1e-3


@pytest.mark.parametrize("ipo_average", [True, False])
def test_ipo_derivative_in_both_forms(be, ipo_average):
    logps, lengths = generic_point(seed=3)
    kwargs = dict(beta=BETA, ipo_average=ipo_average, **lengths)
    _, auto, _ = autodiff(be, "ipo", logps, **kwargs)
    np.testing.assert_allclose(auto, analytic_grad_chosen("ipo", *logps, **kwargs), rtol=1e-10, atol=1e-10)


def test_bco_pair_derivative_with_a_running_shift(be):
    logps, _ = generic_point(seed=4)
    state = RunningMean(mean=0.3, count=2)
    _, auto, _ = autodiff(be, "bco_pair", logps, beta=BETA, bco_state=state)
    analytic = analytic_grad_chosen("bco_pair", *logps, beta=BETA, bco_delta=state.mean)
    np.testing.assert_allclose(auto, analytic, rtol=1e-10, atol=1e-10)


def test_combined_loss_derivative_is_the_weighted_sum(be):
    logps, lengths = generic_point(seed=5)
    kwargs = dict(beta=BETA, loss_type=["sigmoid", "sft", "hinge"], loss_weights=[1.0, 0.25, -2.0], **lengths)
    pc, pr, rc, rr = logps
    tc = be.tensor(pc, requires_grad=True)
    dpo_loss(tc, be.tensor(pr), be.tensor(rc), be.tensor(rr), backend=be, **kwargs).losses.sum().backward()
    by_hand = (analytic_grad_chosen("sigmoid", *logps, beta=BETA)
               + 0.25 * analytic_grad_chosen("sft", *logps, **lengths)
               - 2.0 * analytic_grad_chosen("hinge", *logps, beta=BETA))
    np.testing.assert_allclose(be.to_numpy(tc.grad), by_hand, rtol=1e-10, atol=1e-10)


def test_aot_gradient_follows_rank_not_position(be):
    # policy margins (π_c - π_r) = [3, -1]: sorted [-1, 3]; reference margins [0, 2]: sorted [0, 2].
    # Example 0 has rank 1 (d = 3 - 2 = 1), example 1 rank 0 (d = -1 - 0 = -1); dℓ/dπ_c = -β·σ(-β·d).
    logps = (np.array([-10.0, -12.0]), np.array([-13.0, -11.0]), np.array([-5.0, -4.0]), np.array([-5.0, -6.0]))
    _, auto, auto_r = autodiff(be, "aot", logps, beta=0.5)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = np.array([-0.5 * sig(-0.5 * 1.0), -0.5 * sig(-0.5 * -1.0)])
    np.testing.assert_allclose(auto, expected, rtol=1e-12)
    np.testing.assert_allclose(auto_r, -expected, rtol=1e-12)


def test_discopop_slope_at_zero_margin_is_positive_by_hand(be):
    # z = 0: m = 1/2, m' = 1/(4τ): dℓ/dz = (1 - log 2)/(4τ) - 3/4, so dℓ/dπ_c = β·((1 - log 2)/(4τ) - 3/4) > 0
    logps = (np.array([-10.0]), np.array([-12.0]), np.array([-11.0]), np.array([-13.0]))
    _, auto, _ = autodiff(be, "discopop", logps, beta=BETA, discopop_tau=0.05)
    expected = BETA * ((1 - math.log(2)) / (4 * 0.05) - 0.75)
    np.testing.assert_allclose(auto, [expected], rtol=1e-12)
    assert expected > 0


# ---- which way each loss pushes -------------------------------------------------------------
def point_with(c, r, pc=None, pr=None):
    """Log-probs whose log-ratios are exactly c and r (reference = policy - log-ratio)."""
    c, r = np.asarray(c, float), np.asarray(r, float)
    pc = np.full(c.shape, -20.0) if pc is None else np.asarray(pc, float)
    pr = np.full(c.shape, -22.0) if pr is None else np.asarray(pr, float)
    return pc, pr, pc - c, pr - r


ALWAYS_UP_DOWN = ["sigmoid", "robust", "bco_pair", "apo_zero", "sigmoid_norm", "orpo", "aot", "aot_unpaired",
                  "simpo"]


@pytest.mark.parametrize("loss_type", ALWAYS_UP_DOWN)
def test_chosen_up_rejected_down_everywhere(be, loss_type):
    """These push π_c up and π_r down at every point (with ε = 0 for sigmoid/aot/simpo, δ = 0 for bco_pair):
    checked at generic points whose βΔ spans about ±3 and at a large margin."""
    for seed in range(3):
        logps, lengths = generic_point(seed=10 + seed)
        _, gc, gr = autodiff(be, loss_type, logps, beta=BETA, **lengths)
        assert np.all(gc < 0) and np.all(gr > 0)
    _, gc, gr = autodiff(be, loss_type, point_with([30.0, 5.0], [-30.0, 0.0]), beta=BETA,
                         chosen_lengths=[4, 4], rejected_lengths=[4, 4])
    assert np.all(gc < 0) and np.all(gr > 0)


def test_sft_raises_chosen_and_ignores_rejected(be):
    logps, lengths = generic_point(seed=20)
    _, gc, gr = autodiff(be, "sft", logps, **lengths)
    assert np.all(gc < 0)
    assert gr is None  # the rejected log-prob is not even in the graph


def test_hinge_pushes_inside_the_margin_and_stops_outside(be):
    # βΔ = 0.5 and -2 (inside the margin 1) vs 1.5 and 4 (outside): no gradient at all outside
    _, gc, gr = autodiff(be, "hinge", point_with([5.0, -10.0, 15.0, 40.0], [0.0, 10.0, 0.0, 0.0]), beta=BETA)
    assert np.all(gc[:2] < 0) and np.all(gr[:2] > 0)
    assert np.all(gc[2:] == 0) and np.all(gr[2:] == 0)


@pytest.mark.parametrize("loss_type,label_smoothing,target", [
    ("ipo", 0.0, 1 / (2 * BETA)),                             # target margin h = 1/(2β) (summed form here)
    ("exo_pair", 1e-3, math.log((1 - 1e-3) / 1e-3) / BETA),   # βΔ = log((1-ε)/ε)
    ("sigmoid", 0.1, math.log(0.9 / 0.1) / BETA),             # cDPO: βΔ = log((1-ε)/ε)
    ("aot", 0.1, math.log(0.9 / 0.1) / BETA),
])
def test_losses_with_a_finite_target_margin_push_back_beyond_it(be, loss_type, label_smoothing, target):
    """Below the target margin: chosen up, rejected down. Above it: chosen down, rejected up."""
    below = point_with([0.5 * target, -3.0], [0.0, 2.0])
    above = point_with([1.5 * target, 3.0 * target], [0.0, 0.0])
    kwargs = dict(beta=BETA, label_smoothing=label_smoothing, ipo_average=False)
    _, gc, gr = autodiff(be, loss_type, below, **kwargs)
    assert np.all(gc < 0) and np.all(gr > 0)
    _, gc, gr = autodiff(be, loss_type, above, **kwargs)
    assert np.all(gc > 0) and np.all(gr < 0)


def test_nca_pair_drives_the_chosen_reward_to_log_2(be):
    # a = β·c: below log 2 the chosen goes up, above it down; the rejected goes down everywhere
    a = np.array([-2.0, 0.0, 0.5, 0.8, 3.0])
    _, gc, gr = autodiff(be, "nca_pair", point_with(a / BETA, [-5.0, 0.0, 5.0, 20.0, -20.0]), beta=BETA)
    assert np.all(gc[:3] < 0) and np.all(gc[3:] > 0)
    assert np.all(gr > 0)


def test_sppo_hard_regresses_each_log_ratio_onto_its_target(be):
    # targets: c → +1/(2β) = 5, r → -5
    _, gc, gr = autodiff(be, "sppo_hard", point_with([-3.0, 4.0, 6.0, 9.0], [-4.0, 0.0, -6.0, -9.0]), beta=BETA)
    assert np.all(gc[:2] < 0) and np.all(gc[2:] > 0)
    assert np.all(gr[:2] > 0) and np.all(gr[2:] < 0)


def test_apo_down_lowers_chosen_where_the_margin_dominates(be):
    # reverse KL: dℓ/dπ_c = β(σ'(βc) - σ'(βΔ)) > 0 iff |c| < |Δ|; the rejected always goes down
    c = np.array([0.0, 5.0, -5.0, 20.0, 30.0])
    r = np.array([-10.0, -20.0, -20.0, 10.0, 25.0])  # Δ = 10, 25, 15, 10, 5
    _, gc, gr = autodiff(be, "apo_down", point_with(c, r), beta=BETA)
    assert np.all(gc[:3] > 0) and np.all(gc[3:] < 0)
    assert np.all(gr > 0)


def test_discopop_pushes_up_outside_its_band_and_down_inside(be):
    # for τ = 0.05, dℓ/dz > 0 for -0.119 < z < 0.072 (z = βΔ); outside it the usual direction
    z = np.array([-3.0, -0.25, 0.25, 3.0, -0.05, 0.0, 0.05])
    _, gc, gr = autodiff(be, "discopop", point_with(z / BETA, np.zeros(7)), beta=BETA)
    assert np.all(gc[:4] < 0) and np.all(gr[:4] > 0)
    assert np.all(gc[4:] > 0) and np.all(gr[4:] < 0)


@pytest.mark.parametrize("divergence", list(F_DIVERGENCES))
def test_f_divergences_keep_dpo_direction(be, divergence):
    logps, _ = generic_point(seed=30)
    _, gc, gr = autodiff(be, "sigmoid", logps, beta=BETA, f_divergence=divergence)
    assert np.all(gc < 0) and np.all(gr > 0)


# ---- numpy == torch ---------------------------------------------------------------------------
def parity_cases():
    for name in LOSS_TYPE_NAMES:
        divergences = ["reverse_kl", "js_divergence", "alpha_divergence"] if LOSS_TYPES[name].uses_f_divergence \
            else ["reverse_kl"]
        for divergence in divergences:
            yield pytest.param(name, divergence, id=f"{name}-{divergence}")


@pytest.mark.parametrize("loss_type,divergence", list(parity_cases()))
def test_value_and_gradient_identical_on_both_backends(loss_type, divergence):
    require_torch()
    logps, lengths = generic_point(seed=40)
    kwargs = dict(beta=0.3, label_smoothing=NEEDS_SMOOTHING.get(loss_type, 0.05), f_divergence=divergence,
                  **lengths)
    results = {}
    for name in ("numpy", "torch"):
        be = get_backend(name, dtype="float64")
        pc, pr, rc, rr = logps
        tc, tr = be.tensor(pc, requires_grad=True), be.tensor(pr, requires_grad=True)
        out = dpo_loss(tc, tr, be.tensor(rc), be.tensor(rr), loss_type=loss_type, backend=be,
                       bco_state=RunningMean(), **kwargs)
        out.losses.mean().backward()
        grad_r = np.zeros(B) if tr.grad is None else be.to_numpy(tr.grad)  # sft: rejected not in the graph
        results[name] = [be.to_numpy(x) for x in (out.losses, tc.grad, out.chosen_rewards, out.margins)] + [grad_r]
    for what, mine, theirs in zip(["losses", "grad chosen", "chosen rewards", "margins", "grad rejected"],
                                  results["numpy"], results["torch"]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-14, err_msg=f"{loss_type}: {what}")

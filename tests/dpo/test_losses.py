"""DPO loss family: the lesson's pinned properties and values at hand-computed points, on both backends.

Expected values are written out from the formulas by hand (log 2, 1/(4β²), ...),
never computed by `dpo.losses` itself.
"""

import math

import numpy as np
import pytest

from backends import get_backend
from dpo.losses import LOSS_TYPE_NAMES, LOSS_TYPES, REFERENCE_FREE, DPOLossOutput, RunningMean, dpo_loss
from tests.conftest import require_torch

LOG2 = math.log(2.0)
BETA = 0.1


@pytest.fixture(params=["numpy", "torch"])
def be(request):
    if request.param == "torch":
        require_torch()
    return get_backend(request.param, dtype="float64")


def softplus(x):
    """log(1 + e^x) = -log σ(-x), for the hand computations."""
    return np.logaddexp(0.0, x)


def run(be, loss_type, pc, pr, rc=None, rr=None, **kwargs):
    tensors = [None if x is None else be.tensor(np.asarray(x, dtype=np.float64)) for x in (pc, pr, rc, rr)]
    return dpo_loss(*tensors, loss_type=loss_type, backend=be, **kwargs)


def losses(be, loss_type, *logps, **kwargs):
    return be.to_numpy(run(be, loss_type, *logps, **kwargs).losses)


# ---- the lesson's pinned properties ----------------------------------------------------------
def test_zero_margin_gives_log_2(be):
    # the policy and the reference prefer neither: c = r (= 0 and = 2)
    out = losses(be, "sigmoid", [-10.0, -10.0], [-10.0, -14.0], [-10.0, -12.0], [-10.0, -16.0])
    np.testing.assert_allclose(out, [LOG2, LOG2], rtol=1e-15)


def test_positive_margin_lowers_the_loss_negative_raises_it(be):
    # Δ = +5, -5 nats with β = 0.1: -log σ(±0.5) = softplus(∓0.5)
    out = losses(be, "sigmoid", [-10.0, -15.0], [-15.0, -10.0], [-12.0, -12.0], [-12.0, -12.0])
    np.testing.assert_allclose(out, [softplus(-0.5), softplus(0.5)], rtol=1e-14)
    assert out[0] < LOG2 < out[1]


def test_equal_reference_offsets_cancel(be):
    pc, pr, rc, rr = [-10.0, -30.0], [-14.0, -25.0], [-11.0, -29.0], [-12.0, -27.0]
    base = losses(be, "sigmoid", pc, pr, rc, rr)
    for k in (-7.5, 3.0, 100.0):
        shifted = losses(be, "sigmoid", pc, pr, np.add(rc, k), np.add(rr, k))
        np.testing.assert_allclose(shifted, base, rtol=1e-13)
    # and by hand: Δ = (-10 + 14) - (-11 + 12) = 3 and (-30 + 25) - (-29 + 27) = -3
    np.testing.assert_allclose(base, [softplus(-0.3), softplus(0.3)], rtol=1e-14)


def test_gradient_raises_the_chosen_and_lowers_the_rejected(be):
    rng = np.random.default_rng(0)
    pc, pr = rng.normal(-20, 3, 8), rng.normal(-20, 3, 8)
    tc, tr = be.tensor(pc, requires_grad=True), be.tensor(pr, requires_grad=True)
    out = dpo_loss(tc, tr, be.tensor(pc + rng.normal(0, 2, 8)), be.tensor(pr + rng.normal(0, 2, 8)), backend=be)
    out.losses.mean().backward()
    assert np.all(be.to_numpy(tc.grad) < 0)
    assert np.all(be.to_numpy(tr.grad) > 0)


PAIR_MARGIN_TYPES = ["sigmoid", "robust", "hinge", "exo_pair", "discopop", "aot"]
SMOOTHING = {"exo_pair": 1e-3, "robust": 0.2}


@pytest.mark.parametrize("loss_type", [*PAIR_MARGIN_TYPES, "ipo", "sigmoid_norm"])
def test_reference_offsets_cancel_for_every_pair_margin_type(be, loss_type):
    """Types that read only Δ (reverse KL) or sort(ρ_c - ρ_r) do not see a common reference offset;
    ipo (averaged) and sigmoid_norm divide by lengths, so they cancel only for equal lengths."""
    rng = np.random.default_rng(1)
    pc, pr = rng.normal(-20, 3, 5), rng.normal(-20, 3, 5)
    rc, rr = pc + rng.normal(0, 1, 5), pr + rng.normal(0, 1, 5)
    kwargs = dict(beta=BETA, label_smoothing=SMOOTHING.get(loss_type, 0.0), chosen_lengths=[7] * 5,
                  rejected_lengths=[7] * 5)
    base = losses(be, loss_type, pc, pr, rc, rr, **kwargs)
    np.testing.assert_allclose(losses(be, loss_type, pc, pr, rc + 4.0, rr + 4.0, **kwargs), base, rtol=1e-12)


@pytest.mark.parametrize("loss_type", ["nca_pair", "bco_pair", "sppo_hard", "apo_zero", "apo_down"])
def test_per_completion_types_see_absolute_rewards(be, loss_type):
    """These score each completion's own log-ratio, so a common reference offset does change them."""
    pc, pr, rc, rr = [-10.0, -20.0], [-12.0, -21.0], [-11.0, -19.0], [-12.5, -22.0]
    base = losses(be, loss_type, pc, pr, rc, rr)
    shifted = losses(be, loss_type, pc, pr, np.add(rc, 4.0), np.add(rr, 4.0))
    assert np.all(np.abs(shifted - base) > 1e-5)


@pytest.mark.parametrize("loss_type", [n for n in LOSS_TYPE_NAMES if LOSS_TYPES[n].needs_reference])
def test_reference_invariance(be, loss_type):
    """Only log-ratios matter: moving a completion's policy and reference log-prob together changes nothing."""
    rng = np.random.default_rng(2)
    pc, pr = rng.normal(-20, 3, 5), rng.normal(-20, 3, 5)
    rc, rr = pc + rng.normal(0, 1, 5), pr + rng.normal(0, 1, 5)
    kwargs = dict(beta=BETA, label_smoothing=SMOOTHING.get(loss_type, 0.0), chosen_lengths=[5, 6, 7, 8, 9],
                  rejected_lengths=[9, 3, 4, 5, 6])
    base = losses(be, loss_type, pc, pr, rc, rr, **kwargs)
    moved = losses(be, loss_type, pc - 3.0, pr + 2.0, rc - 3.0, rr + 2.0, **kwargs)
    np.testing.assert_allclose(moved, base, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("loss_type", REFERENCE_FREE)
def test_reference_free_types_ignore_references(be, loss_type):
    pc, pr, lengths = [-10.0, -20.0], [-12.0, -21.0], dict(chosen_lengths=[4, 5], rejected_lengths=[6, 7])
    without = losses(be, loss_type, pc, pr, **lengths)
    np.testing.assert_array_equal(losses(be, loss_type, pc, pr, [-3.0, -1.0], [-50.0, 2.0], **lengths), without)


# ---- values at hand-computed points ------------------------------------------------------------
ZERO = ([-10.0], [-12.0], [-10.0], [-12.0])  # c = r = 0, so Δ = 0 and every reward is 0
EPS = 1e-3
HAND_VALUES_AT_ZERO = {
    "sigmoid": LOG2,
    "robust": LOG2,                                          # log 2·((1-ε) - ε)/(1-2ε)
    "ipo": 1 / (4 * BETA**2),                                # (0 - 1/(2β))²
    "hinge": 1.0,
    "exo_pair": -LOG2 - 0.5 * math.log(EPS * (1 - EPS)),   # ½(-log 2 - log(1-ε)) + ½(-log 2 - log ε)
    "nca_pair": 2 * LOG2,                                    # log 2 + ½ log 2 + ½ log 2
    "bco_pair": 2 * LOG2,
    "sppo_hard": 2 * (0.5 / BETA) ** 2,
    "apo_zero": 1.0,                                         # 1 - ½ + ½
    "apo_down": 1.0,                                         # ½ + 1 - ½
    "aot": LOG2,
    "aot_unpaired": LOG2,
    "discopop": (1 + LOG2) / 2,                              # ½·log 2 + ½·e^0
    "sigmoid_norm": LOG2,
}


@pytest.mark.parametrize("loss_type", list(HAND_VALUES_AT_ZERO))
def test_value_at_zero_log_ratios(be, loss_type):
    out = losses(be, loss_type, *ZERO, beta=BETA, label_smoothing=EPS if loss_type in ("exo_pair", "robust") else 0.0,
                 chosen_lengths=[3], rejected_lengths=[5])
    np.testing.assert_allclose(out, [HAND_VALUES_AT_ZERO[loss_type]], rtol=1e-14)


def test_conservative_dpo_still_gives_log_2_at_zero_and_bounds_the_margin(be):
    out = losses(be, "sigmoid", [-10.0, -10.0], [-12.0, -112.0], [-10.0, -10.0], [-12.0, -12.0], label_smoothing=0.1)
    # βΔ = 0 and 10: 0.9·softplus(-10) + 0.1·softplus(10)
    np.testing.assert_allclose(out, [LOG2, 0.9 * softplus(-10.0) + 0.1 * softplus(10.0)], rtol=1e-14)


@pytest.mark.parametrize("beta_margin,expected", [(0.5, 0.5), (-2.0, 3.0), (1.0, 0.0), (4.0, 0.0)])
def test_hinge_values(be, beta_margin, expected):
    out = losses(be, "hinge", [-10.0 + beta_margin / BETA], [-10.0], [-10.0], [-10.0], beta=BETA)
    np.testing.assert_allclose(out, [expected], atol=1e-14)


def test_ipo_averaged_and_summed_forms(be):
    # c = 6 over 3 tokens, r = -4 over 2 tokens: h = 2 - (-2) = 4 (averaged), Δ = 10 (summed); target 1/(2β) = 5
    pc, pr, rc, rr = [-14.0], [-24.0], [-20.0], [-20.0]
    lengths = dict(chosen_lengths=[3], rejected_lengths=[2])
    np.testing.assert_allclose(losses(be, "ipo", pc, pr, rc, rr, **lengths), [1.0], rtol=1e-14)
    np.testing.assert_allclose(losses(be, "ipo", pc, pr, rc, rr, ipo_average=False), [25.0], rtol=1e-14)


def test_aot_pairs_sorted_margins_not_examples(be):
    # policy margins [3, -1] → sorted [-1, 3]; reference margins [0, 2] → sorted [0, 2]; d = [-1, 1]
    out = losses(be, "aot", [-10.0, -12.0], [-13.0, -11.0], [-5.0, -4.0], [-5.0, -6.0], beta=0.5)
    np.testing.assert_allclose(out, [softplus(0.5), softplus(-0.5)], rtol=1e-14)


def test_aot_unpaired_sorts_chosen_and_rejected_log_ratios_apart(be):
    # c = [2, -1] → sorted [-1, 2]; r = [-3, 1] → sorted [-3, 1]; d = [2, 1]
    out = losses(be, "aot_unpaired", [-8.0, -11.0], [-13.0, -9.0], [-10.0, -10.0], [-10.0, -10.0], beta=0.5)
    np.testing.assert_allclose(out, [softplus(-1.0), softplus(-0.5)], rtol=1e-14)


def test_sigmoid_norm_value(be):
    # c = 6 over 3 tokens, r = -4 over 2: h = 4, ℓ = softplus(-β·4)
    out = losses(be, "sigmoid_norm", [-14.0], [-24.0], [-20.0], [-20.0], beta=0.5, chosen_lengths=[3],
                 rejected_lengths=[2])
    np.testing.assert_allclose(out, [softplus(-2.0)], rtol=1e-14)


def test_simpo_values(be):
    # equal average log-probs (-2 per token): ℓ = softplus(γ); averages -2 and -3 with β = 2: softplus(-(2 - γ))
    out = losses(be, "simpo", [-8.0, -8.0, -8.0], [-10.0, -10.0, -15.0], beta=2.0, gamma=0.5,
                 chosen_lengths=[4, 4, 4], rejected_lengths=[5, 5, 5])
    np.testing.assert_allclose(out[:2], [softplus(0.5)] * 2, rtol=1e-14)
    np.testing.assert_allclose(out[2], softplus(-1.5), rtol=1e-14)
    np.testing.assert_allclose(losses(be, "simpo", [-8.0], [-10.0], gamma=0.0, chosen_lengths=[4],
                                      rejected_lengths=[5]), [LOG2], rtol=1e-14)


def test_orpo_value(be):
    # average log-probs log ½ on both sides: NLL = log 2, log odds ratio 0, so ℓ = log 2 + β·log 2
    half = math.log(0.5)
    out = losses(be, "orpo", [3 * half], [5 * half], beta=BETA, chosen_lengths=[3], rejected_lengths=[5])
    np.testing.assert_allclose(out, [(1 + BETA) * LOG2], rtol=1e-14)
    # a_c = log 0.8, a_r = log 0.2: odds 4 and 1/4, log odds ratio = log 16, ℓ = -log 0.8 + β·softplus(-log 16)
    out = losses(be, "orpo", [2 * math.log(0.8)], [2 * math.log(0.2)], beta=BETA, chosen_lengths=[2],
                 rejected_lengths=[2])
    np.testing.assert_allclose(out, [-math.log(0.8) + BETA * math.log(1 + 1 / 16)], rtol=1e-13)


def test_sft_is_the_per_token_nll_of_the_chosen(be):
    out = losses(be, "sft", [-12.0, -3.0], [-1.0, -99.0], chosen_lengths=[4, 3])
    np.testing.assert_allclose(out, [3.0, 1.0], rtol=1e-15)


def test_rpo_combines_dpo_and_sft_with_weights(be):
    # Δ = 4 (β·Δ = 0.4), chosen NLL per token = 12/4
    pc, pr, rc, rr = [-12.0], [-15.0], [-11.0], [-10.0]
    out = losses(be, ["sigmoid", "sft"], pc, pr, rc, rr, loss_weights=[1.0, 0.5], chosen_lengths=[4])
    np.testing.assert_allclose(out, [softplus(-0.4) + 0.5 * 3.0], rtol=1e-14)
    # default weights are 1 each
    out = losses(be, ["sigmoid", "sft"], pc, pr, rc, rr, chosen_lengths=[4])
    np.testing.assert_allclose(out, [softplus(-0.4) + 3.0], rtol=1e-14)


@pytest.mark.parametrize("divergence,chosen_score,rejected_score", [
    ("forward_kl", 1.0 - math.exp(-1.0), 1.0 - math.exp(2.0)),                          # 1 - e^(-u)
    ("js_divergence", LOG2 - softplus(-1.0), LOG2 - softplus(2.0)),                      # log 2 + log σ(u)
    ("alpha_divergence", (math.exp(-0.5) - 1) / -0.5, (math.exp(1.0) - 1) / -0.5),       # (e^((α-1)u) - 1)/(α-1)
])
def test_f_divergence_scores_by_hand(be, divergence, chosen_score, rejected_score):
    # c = 1, r = -2; sigmoid reads the difference, sigmoid_norm each score over its own length (3 and 5 tokens)
    out = losses(be, "sigmoid", [-9.0], [-12.0], [-10.0], [-10.0], beta=0.5, f_divergence=divergence, f_alpha=0.5)
    np.testing.assert_allclose(out, [softplus(-0.5 * (chosen_score - rejected_score))], rtol=1e-13)
    out = losses(be, "sigmoid_norm", [-9.0], [-12.0], [-10.0], [-10.0], beta=0.5, f_divergence=divergence,
                 f_alpha=0.5, chosen_lengths=[3], rejected_lengths=[5])
    np.testing.assert_allclose(out, [softplus(-0.5 * (chosen_score / 3 - rejected_score / 5))], rtol=1e-13)


DIVERGENCES = [("reverse_kl", 0.5), ("forward_kl", 0.5), ("js_divergence", 0.5), ("alpha_divergence", 0.5),
               ("alpha_divergence", -0.7), ("alpha_divergence", 2.0)]


@pytest.mark.parametrize("divergence,alpha", DIVERGENCES)
def test_policy_equal_to_reference_gives_trls_values_for_any_lengths(be, divergence, alpha):
    """Every score is 0 at u = 0, so averaged ipo is 1/(4β²) and sigmoid_norm log 2 whatever the lengths."""
    rng = np.random.default_rng(0)
    logps = -rng.uniform(5, 50, size=6)
    other = -rng.uniform(5, 50, size=6)
    lengths = dict(chosen_lengths=rng.integers(1, 40, size=6), rejected_lengths=rng.integers(1, 40, size=6))
    for beta in (0.1, 0.7):
        kwargs = dict(beta=beta, f_divergence=divergence, f_alpha=alpha, **lengths)
        ipo = losses(be, "ipo", logps, other, logps, other, **kwargs)
        np.testing.assert_allclose(ipo, np.full(6, 1.0 / (4.0 * beta**2)), rtol=1e-13)
        norm = losses(be, "sigmoid_norm", logps, other, logps, other, **kwargs)
        np.testing.assert_allclose(norm, np.full(6, LOG2), rtol=1e-13)


@pytest.mark.parametrize("divergence,alpha", DIVERGENCES)
def test_each_f_divergence_score_is_zero_at_zero(divergence, alpha):
    from dpo.losses import F_DIVERGENCES
    from dpo.losses.ops import NumpyOps

    score = F_DIVERGENCES[divergence].score(np.zeros(3), alpha, NumpyOps())
    np.testing.assert_array_equal(score, np.zeros(3))


def test_alpha_divergence_at_alpha_1_is_reverse_kl(be):
    logps = ([-9.0, -5.0], [-12.0, -7.0], [-10.0, -6.0], [-10.0, -3.0])
    np.testing.assert_allclose(losses(be, "sigmoid", *logps, f_divergence="alpha_divergence", f_alpha=1.0),
                               losses(be, "sigmoid", *logps), rtol=1e-15)


# ---- rewards, state, output -------------------------------------------------------------------
def test_rewards_and_margins_are_detached_beta_log_ratios(be):
    tc = be.tensor(np.array([-10.0, -20.0]), requires_grad=True)
    tr = be.tensor(np.array([-12.0, -18.0]), requires_grad=True)
    out = dpo_loss(tc, tr, be.tensor(np.array([-11.0, -21.0])), be.tensor(np.array([-11.0, -17.0])), beta=0.5,
                   backend=be)
    assert isinstance(out, DPOLossOutput)
    losses_, chosen, rejected = out  # unpacks like TRL's (losses, chosen_rewards, rejected_rewards)
    np.testing.assert_allclose(be.to_numpy(chosen), [0.5, 0.5], rtol=1e-15)
    np.testing.assert_allclose(be.to_numpy(rejected), [-0.5, -0.5], rtol=1e-15)
    np.testing.assert_allclose(be.to_numpy(out.margins), [1.0, 1.0], rtol=1e-15)
    assert not chosen.requires_grad and not rejected.requires_grad and not out.margins.requires_grad
    assert losses_.requires_grad


def test_rewards_without_reference_are_beta_times_policy(be):
    out = run(be, "simpo", [-8.0], [-10.0], beta=2.0, chosen_lengths=[4], rejected_lengths=[5])
    np.testing.assert_allclose(be.to_numpy(out.chosen_rewards), [-16.0], rtol=1e-15)
    np.testing.assert_allclose(be.to_numpy(out.margins), [4.0], rtol=1e-15)


def test_bco_pair_running_shift_is_explicit_state(be):
    state = RunningMean()
    # batch 1: c = [1, 3], r = [-1, 1]: mean reward β·mean(1, 3, -1, 1) = 0.1 → δ = 0.1
    out = losses(be, "bco_pair", [-9.0, -7.0], [-11.0, -9.0], [-10.0, -10.0], [-10.0, -10.0], bco_state=state)
    assert state.count == 1 and state.mean == pytest.approx(0.1, rel=1e-14)
    np.testing.assert_allclose(out, [softplus(-(0.1 - 0.1)) + softplus(-0.1 - 0.1),
                                     softplus(-(0.3 - 0.1)) + softplus(0.1 - 0.1)], rtol=1e-14)
    # batch 2: c = r = [5]: mean reward 0.5 → δ = (0.1 + 0.5)/2 = 0.3
    out = losses(be, "bco_pair", [-5.0], [-5.0], [-10.0], [-10.0], bco_state=state)
    assert state.count == 2 and state.mean == pytest.approx(0.3, rel=1e-14)
    np.testing.assert_allclose(out, [softplus(-(0.5 - 0.3)) + softplus(0.5 - 0.3)], rtol=1e-14)
    # without a state δ = 0 and nothing is kept
    np.testing.assert_allclose(losses(be, "bco_pair", [-5.0], [-5.0], [-10.0], [-10.0]),
                               [softplus(-0.5) + softplus(0.5)], rtol=1e-14)


def test_running_mean_state_round_trip():
    state = RunningMean()
    for value in (1.0, 2.0, 6.0):
        state.update(value)
    assert state.mean == 3.0 and state.count == 3
    restored = RunningMean()
    restored.load_state_dict(state.state_dict())
    assert restored.update(7.0) == 4.0


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_float32_inputs_give_float32_losses(name):
    if name == "torch":
        require_torch()
    be = get_backend(name, dtype="float32")
    out = dpo_loss(be.tensor(np.array([-10.0, -20.0])), be.tensor(np.array([-12.0, -18.0])),
                   loss_type=["simpo", "sft"], chosen_lengths=[3, 4], rejected_lengths=[5, 6], backend=be)
    assert be.to_numpy(out.losses).dtype == np.float32
    assert be.to_numpy(out.chosen_rewards).dtype == np.float32

"""The closed-form check: DPO on exact Bradley–Terry preferences reaches π* ∝ π_ref exp(r/β)."""

import numpy as np
import pytest

from backends import get_backend
from dpo.frontier.bandit import kl_rows, make_bandit, optimal_policy, policy_point, theoretical_frontier, train_bandit

# The DPO loss on all ordered pairs is convex in the logits with the unique minimiser π*, so
# in float64 only the optimiser's residual separates π_θ from π*: 1e-9 nats lies far above
# rounding (~1e-16) and far below the KL between π* at β and at 1.01·β (checked below to
# exceed 1e-7), so a policy fitted to a β off by 1% fails.
TOLERANCE = 1e-9


def random_bandit(seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.dirichlet(np.ones(5), size=3)
    valid = np.ones((3, 5), dtype=bool)
    valid[1, 4] = False  # prompts may have fewer candidates than slots
    return make_bandit(ref, rng.random((3, 5)), valid)


def objective(bandit, probs, beta):
    """E_π[r] - β KL(π ‖ π_ref), averaged over prompts."""
    reward, kl = policy_point(bandit, probs)
    return reward - beta * kl


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_optimal_policy_is_the_maximiser_with_value_beta_log_z(beta):
    bandit = random_bandit()
    star = optimal_policy(bandit, beta)
    assert np.allclose(star.sum(axis=1), 1.0) and (star[~bandit.valid] == 0).all()
    log_z = np.log((np.where(bandit.valid, bandit.ref_probs * np.exp(bandit.rewards / beta), 0.0)).sum(axis=1))
    assert objective(bandit, star, beta) == pytest.approx(float((beta * log_z).mean()), abs=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(50):
        other = np.where(bandit.valid, star * np.exp(0.3 * rng.normal(size=star.shape)), 0.0)
        other /= other.sum(axis=1, keepdims=True)
        assert objective(bandit, other, beta) < objective(bandit, star, beta)


def test_theoretical_frontier_trades_reward_for_kl_as_beta_falls():
    points = theoretical_frontier(random_bandit(), [10.0, 1.0, 0.3, 0.1, 0.03])
    rewards, kls = [p[1] for p in points], [p[2] for p in points]
    assert np.all(np.diff(rewards) > 0) and np.all(np.diff(kls) > 0)


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_dpo_on_exact_preferences_reaches_the_optimal_policy(beta):
    bandit = random_bandit()
    probs = train_bandit(bandit, beta, steps=600, lr=0.1, backend=get_backend("numpy", dtype="float64"))
    star = optimal_policy(bandit, beta)
    assert kl_rows(probs, star, bandit.valid).max() < TOLERANCE
    neighbour = kl_rows(optimal_policy(bandit, 1.01 * beta), star, bandit.valid).max()
    assert neighbour > 100 * TOLERANCE
    start = kl_rows(bandit.ref_probs, star, bandit.valid).max()
    assert start > 1e-3  # the reference itself is far from π*: training did the work


@pytest.mark.parametrize("args, message", [
    ((np.ones((2, 3)) / 3, np.zeros((2, 4))), "must be the same"),
    ((np.ones((2, 3)) / 3, np.zeros((2, 3)), np.array([[1, 1, 1], [1, 0, 0]])), "prompt 1 has fewer than 2"),
    ((np.array([[0.5, 0.5, 0.0]]), np.zeros((1, 3))), "π_ref positive"),
])
def test_make_bandit_names_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=message):
        make_bandit(*args)

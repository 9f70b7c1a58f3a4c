"""The bandit check: a finite set of completions per prompt, where DPO's optimum is known exactly.

With K candidate completions per prompt, a reference π_ref(y|x) over them and a
reward r(x, y), the KL-regularised objective

    max_π  E_{y~π}[r(x, y)] - β KL(π(·|x) ‖ π_ref(·|x))

has the closed-form maximiser π*(y|x) = π_ref(y|x) exp(r(x, y)/β) / Z(x), with
value β log Z(x). DPO reaches it from preferences alone: trained on every
ordered pair (y, y') with the Bradley–Terry probability p(y ≻ y') =
σ(r(x, y) - r(x, y')) as its weight, the loss

    Σ_{y≠y'} p(y ≻ y') · -log σ(β(h(y) - h(y'))),   h = log π_θ - log π_ref,

is convex in the policy's logits and minimised exactly where β(h(y) - h(y')) =
r(y) - r(y') for all pairs, i.e. at π_θ = π*. `train_bandit` fits a table of
logits with the project's `dpo_loss` and optimizer; `optimal_policy` and
`theoretical_frontier` give the closed form it must approach.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from backends import resolve_backend

from ..losses import dpo_loss


class Bandit(NamedTuple):
    """ref_probs (X, K): π_ref over each prompt's candidates (rows sum to 1; 0 where not `valid`);
    rewards (X, K); valid (X, K) bool: which of the K slots hold a candidate."""

    ref_probs: np.ndarray
    rewards: np.ndarray
    valid: np.ndarray


def make_bandit(ref_probs, rewards, valid=None) -> Bandit:
    """A checked Bandit: equal (X, K) shapes, at least two candidates per prompt, π_ref > 0 on
    the valid slots (renormalised over them), finite rewards."""
    ref_probs = np.asarray(ref_probs, dtype=np.float64)
    rewards = np.asarray(rewards, dtype=np.float64)
    valid = np.ones(ref_probs.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if ref_probs.ndim != 2 or rewards.shape != ref_probs.shape or valid.shape != ref_probs.shape:
        raise ValueError(f"make_bandit: ref_probs {ref_probs.shape}, rewards {rewards.shape} and valid "
                         f"{valid.shape} must be the same (prompts, candidates) shape")
    if (valid.sum(axis=1) < 2).any():
        raise ValueError(f"make_bandit: prompt {int(np.argmax(valid.sum(axis=1) < 2))} has fewer than 2 candidates")
    if not (np.isfinite(rewards[valid]).all() and (ref_probs[valid] > 0).all()):
        raise ValueError("make_bandit: rewards must be finite and π_ref positive on every candidate")
    ref_probs = np.where(valid, ref_probs, 0.0)
    return Bandit(ref_probs / ref_probs.sum(axis=1, keepdims=True), np.where(valid, rewards, 0.0), valid)


def optimal_policy(bandit: Bandit, beta: float) -> np.ndarray:
    """π*(y|x) ∝ π_ref(y|x) exp(r(x, y)/β), (X, K), 0 off the valid slots."""
    logits = np.where(bandit.valid, np.log(np.where(bandit.valid, bandit.ref_probs, 1.0)) + bandit.rewards / beta,
                      -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def kl_rows(p, q, valid) -> np.ndarray:
    """KL(p ‖ q) per prompt (row), over the valid slots (0 · log 0 = 0)."""
    p, q = np.where(valid, p, 0.0), np.where(valid, q, 1.0)
    terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(q)), 0.0)
    return terms.sum(axis=1)


def policy_point(bandit: Bandit, probs) -> tuple[float, float]:
    """(expected reward, KL(π ‖ π_ref)) of `probs`, each averaged over prompts."""
    reward = float((np.where(bandit.valid, probs, 0.0) * bandit.rewards).sum(axis=1).mean())
    return reward, float(kl_rows(probs, bandit.ref_probs, bandit.valid).mean())


def theoretical_frontier(bandit: Bandit, betas) -> list[tuple[float, float, float]]:
    """(β, reward, KL) of π* for each β: the best reward any policy reaches at that KL."""
    return [(float(b), *policy_point(bandit, optimal_policy(bandit, b))) for b in betas]


def _pair_table(bandit: Bandit):
    """Every ordered pair of distinct valid candidates: flat indices (chosen, rejected) into
    the (X, K) table and the Bradley–Terry weight σ(r_chosen - r_rejected)."""
    X, K = bandit.valid.shape
    chosen, rejected = [], []
    for x in range(X):
        slots = np.flatnonzero(bandit.valid[x])
        for a in slots:
            for b in slots:
                if a != b:
                    chosen.append(x * K + a)
                    rejected.append(x * K + b)
    chosen, rejected = np.array(chosen), np.array(rejected)
    r = bandit.rewards.reshape(-1)
    return chosen, rejected, 1.0 / (1.0 + np.exp(-(r[chosen] - r[rejected])))


def train_bandit(bandit: Bandit, beta: float, steps: int = 600, lr: float = 0.1, backend="numpy") -> np.ndarray:
    """DPO on exact Bradley–Terry preferences over every ordered candidate pair: a table of
    logits θ (X, K), started at log π_ref, trained full-batch with `dpo_loss` (sigmoid, β)
    and Adam at `lr` decayed linearly to 0 over `steps`. Returns π_θ (X, K)."""
    be = resolve_backend(backend)
    X, K = bandit.valid.shape
    chosen, rejected, weights = _pair_table(bandit)
    select = np.zeros((X * K, 2 * len(chosen)))  # one column per policy log-prob the loss reads
    select[chosen, np.arange(len(chosen))] = 1.0
    select[rejected, len(chosen) + np.arange(len(chosen))] = 1.0
    ref_logp = np.log(np.where(bandit.valid, bandit.ref_probs, 1.0)).reshape(-1)
    off = np.where(bandit.valid, 0.0, -1e4)  # invalid slots get no probability
    theta = be.tensor(ref_logp.reshape(X, K), requires_grad=True)
    select_t, off_t, weights_t = be.tensor(select), be.tensor(off), be.tensor(weights / X)
    ref_chosen, ref_rejected = be.tensor(ref_logp[chosen]), be.tensor(ref_logp[rejected])
    optimizer = be.optimizer("adam", [theta], lr=lr)
    scheduler = be.lambda_lr(optimizer, lambda step: max(0.0, 1.0 - step / steps))

    def log_probs():
        return be.F.log_softmax(theta + off_t, dim=-1)

    for _ in range(steps):
        picked = (log_probs().reshape(1, X * K) @ select_t).reshape(2 * len(chosen))
        out = dpo_loss(picked[:len(chosen)], picked[len(chosen):], ref_chosen, ref_rejected, beta=beta,
                       loss_type="sigmoid", backend=be)
        loss = (out.losses * weights_t).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    with be.no_grad():
        return np.where(bandit.valid, np.exp(be.to_numpy(log_probs()).astype(np.float64)), 0.0)

"""KL along samples on a model small enough to enumerate every completion: the exact per-position
sum, the Monte-Carlo log-ratio and the enumerated sequence KL agree; the sampler draws from the model."""

import itertools

import numpy as np
import pytest

from backends import get_backend
from dpo.frontier.kl import completion_log_probs, mean_and_stderr, sequence_kl
from dpo.frontier.sampling import sample_completions
from dpo.model import GPTConfig, TinyGPT

STOP, PAD, PROMPT, MAX_NEW = 3, 0, [1, 2], 3
CONFIG = GPTConfig(vocab_size=4, hidden=8, heads=2, depth=1, max_len=8)


@pytest.fixture(scope="module")
def models():
    be = get_backend("numpy", dtype="float64")
    policy, reference = TinyGPT(CONFIG, seed=1, backend=be), TinyGPT(CONFIG, seed=2, backend=be)
    rng = np.random.default_rng(0)  # init weights give near-uniform outputs: spread the logits
    for model in (policy, reference):
        weights = model.export_weights()
        weights["head.weight"] = rng.normal(0.0, 1.0, size=weights["head.weight"].shape)
        model.load_weights(weights)
    return policy, reference


def enumerate_sequences():
    """Every completion the sampler can return: STOP after 0..MAX_NEW-1 other tokens, or MAX_NEW
    tokens without STOP (cut), or MAX_NEW - 1 tokens then STOP."""
    seqs = [[STOP]]
    for n in range(1, MAX_NEW):
        seqs += [list(c) + [STOP] for c in itertools.product(range(STOP), repeat=n)]
    seqs += [list(c) for c in itertools.product(range(STOP + 1), repeat=MAX_NEW) if STOP not in c[:-1]
             and c[-1] != STOP]
    return seqs


def token_by_token_log_prob(model, completion):
    """log π(y|x) one prefix at a time, each from its own forward: independent of `pack`."""
    be = type(model).backend
    total, ids = 0.0, list(PROMPT)
    for token in completion:
        logits = be.to_numpy(model(be.tensor(np.array([ids])))[0, -1]).astype(np.float64)
        total += logits[token] - np.log(np.exp(logits).sum())
        ids.append(token)
    return total


def test_enumeration_is_a_distribution_and_matches_the_packed_log_probs(models):
    policy, _ = models
    seqs = enumerate_sequences()
    assert len(seqs) == 1 + 3 + 9 + 27
    logp = completion_log_probs(policy, [PROMPT] * len(seqs), seqs, PAD)
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-12)
    for seq, value in zip(seqs[:8], logp[:8]):
        assert value == pytest.approx(token_by_token_log_prob(policy, seq), abs=1e-12)


def test_exact_kl_along_samples_is_unbiased_for_the_sequence_kl(models):
    policy, reference = models
    seqs = enumerate_sequences()
    p = np.exp(completion_log_probs(policy, [PROMPT] * len(seqs), seqs, PAD))
    q = np.exp(completion_log_probs(reference, [PROMPT] * len(seqs), seqs, PAD))
    true_kl = float((p * np.log(p / q)).sum())
    per_sample = sequence_kl(policy, reference, [PROMPT] * len(seqs), seqs, PAD)
    assert true_kl > 0.05
    assert float((p * per_sample.exact).sum()) == pytest.approx(true_kl, abs=1e-12)  # chain rule of KL
    assert float((p * per_sample.log_ratio).sum()) == pytest.approx(true_kl, abs=1e-12)


def test_exact_kl_matches_the_monte_carlo_estimate_within_its_standard_error(models):
    policy, reference = models
    n = 4000
    samples = sample_completions(policy, [PROMPT] * n, MAX_NEW, STOP, PAD, seed=0)
    seqs = enumerate_sequences()
    p = np.exp(completion_log_probs(policy, [PROMPT] * len(seqs), seqs, PAD))
    q = np.exp(completion_log_probs(reference, [PROMPT] * len(seqs), seqs, PAD))
    true_kl = float((p * np.log(p / q)).sum())

    kl = sequence_kl(policy, reference, [PROMPT] * n, samples, PAD)
    exact, exact_se = mean_and_stderr(kl.exact)
    mc, mc_se = mean_and_stderr(kl.log_ratio)
    diff, diff_se = mean_and_stderr(kl.exact - kl.log_ratio)  # same samples: a paired difference
    assert abs(diff) < 3 * diff_se
    assert abs(mc - true_kl) < 3 * mc_se and abs(exact - true_kl) < 3 * exact_se
    assert exact_se < mc_se  # no sampling noise within a position

    # the sampler draws each completion with its probability under the policy
    counts = {tuple(s): 0 for s in seqs}
    for s in samples:
        counts[tuple(s)] += 1
    freq = np.array([counts[tuple(s)] / n for s in seqs])
    assert np.all(np.abs(freq - p) < 4.5 * np.sqrt(p * (1 - p) / n) + 1e-9)


def test_sampling_rejects_bad_arguments(models):
    policy, _ = models
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int, got 0"):
        sample_completions(policy, [PROMPT], 0, STOP, PAD)
    with pytest.raises(ValueError, match="a prompt of 8 tokens leaves no room under max_len 8"):
        sample_completions(policy, [[1] * 8], 2, STOP, PAD)
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        sample_completions(policy, [PROMPT], 2, STOP, PAD, temperature=0.0)


def test_sampling_and_kl_agree_across_backends(models):
    from tests.conftest import require_torch

    require_torch()
    torch_be = get_backend("torch", dtype="float64")
    on_torch = []
    for model in models:
        twin = TinyGPT(CONFIG, backend=torch_be)
        twin.load_weights(model.export_weights())
        on_torch.append(twin)
    prompts = [PROMPT, [2], [1, 1, 2]] * 20
    samples = sample_completions(models[0], prompts, MAX_NEW, STOP, PAD, seed=5)
    assert sample_completions(on_torch[0], prompts, MAX_NEW, STOP, PAD, seed=5) == samples
    numpy_kl = sequence_kl(*models, prompts, samples, PAD)
    torch_kl = sequence_kl(*on_torch, prompts, samples, PAD)
    np.testing.assert_allclose(torch_kl.exact, numpy_kl.exact, rtol=0, atol=1e-10)
    np.testing.assert_allclose(torch_kl.log_ratio, numpy_kl.log_ratio, rtol=0, atol=1e-10)

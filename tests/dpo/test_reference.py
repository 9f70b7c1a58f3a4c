"""The frozen reference: the policy starts equal to it, training never changes it or gives it a
gradient, and its log-probs are computed once per example (not once per step)."""

import numpy as np

from dpo.training import build_models, freeze, reference_log_probs, train_dpo
from tests.dpo.pipeline_setup import backend, backend_names, pairs, tiny_config


def weights_of(model):
    return model.export_weights()


def assert_bit_identical(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name


@backend_names
def test_build_models_policy_starts_equal_to_the_frozen_reference(backend_name):
    policy, reference = build_models(tiny_config(), backend=backend(backend_name))
    assert_bit_identical(weights_of(policy), weights_of(reference))
    assert all(p.requires_grad for p in policy.parameters())
    assert not any(p.requires_grad for p in reference.parameters())
    assert policy.training and not reference.training


def test_build_models_from_given_weights():
    donor, _ = build_models(tiny_config(seed=7), backend=backend("numpy"))
    policy, reference = build_models(tiny_config(seed=0), backend=backend("numpy"), weights=donor.export_weights())
    assert_bit_identical(weights_of(policy), weights_of(donor))
    assert_bit_identical(weights_of(reference), weights_of(donor))


def test_freeze_returns_the_model_frozen():
    policy, _ = build_models(tiny_config(), backend=backend("numpy"))
    assert freeze(policy) is policy
    assert not any(p.requires_grad for p in policy.parameters()) and not policy.training


@backend_names
def test_training_never_changes_the_reference_nor_gives_it_a_gradient(backend_name):
    policy, reference = build_models(tiny_config(), backend=backend(backend_name))
    before = weights_of(reference)
    start = weights_of(policy)
    train_dpo(policy, reference, pairs(), tiny_config(max_steps=3))
    assert_bit_identical(weights_of(reference), before)
    assert all(p.grad is None for p in reference.parameters())
    moved = [name for name in start if not np.array_equal(start[name], weights_of(policy)[name])]
    assert moved  # the policy did train


def count_forwards(model, monkeypatch):
    """Count `model`'s forward passes: calls of `hidden_states`, which `forward` runs too and
    the log-probs run alone (the head at the counted positions only). An instance attribute
    wraps the class's method."""
    calls = []
    hidden_states = model.hidden_states

    def counted(*args, **kwargs):
        calls.append(1)
        return hidden_states(*args, **kwargs)

    monkeypatch.setattr(model, "hidden_states", counted, raising=False)
    return calls


@backend_names
def test_reference_log_probs_are_computed_once_per_example(backend_name, monkeypatch):
    """Reference forwards do not grow with the number of steps or epochs, nor with the
    evaluation of the held-out pairs after each epoch."""
    counts = []
    for epochs in (1, 3):
        policy, reference = build_models(tiny_config(), backend=backend(backend_name))
        calls = count_forwards(reference, monkeypatch)
        config = tiny_config(max_steps=None, epochs=epochs, eval_fraction=0.25)
        result = train_dpo(policy, reference, pairs(), config)
        assert result.steps == epochs * 3  # 9 train pairs in batches of 4
        assert len([row for row in result.history if "eval_loss" in row]) == epochs
        counts.append(len(calls))
    # 9 + 3 pairs each fit one batch of 32: one forward for the train cache, one for the eval cache
    assert counts == [2, 2]


def test_reference_log_probs_match_the_policy_at_the_start():
    """Policy = reference at the start, so the cached reference log-probs are the
    policy's own log-probs, whatever the batching (padding changes nothing)."""
    policy, reference = build_models(tiny_config(), backend=backend("numpy"))
    cache = reference_log_probs(reference, pairs(5), max_len=96, batch_size=2)  # three batches
    again = reference_log_probs(policy, pairs(5), max_len=96, batch_size=5)
    assert cache.shape == (5, 2)
    assert np.abs(cache - again).max() <= 1e-10
    assert np.all(cache < 0)

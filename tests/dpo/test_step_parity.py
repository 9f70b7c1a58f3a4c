"""A whole DPO step on minigrad and on PyTorch from the same weights and batch: the same loss
and rewards (float64, 1e-10) and the same gradient direction for every parameter
(cosine >= 1 - 1e-9), for every loss type and for a combination (RPO = sigmoid + sft)."""

import functools

import numpy as np
import pytest

from dpo.batching import collate
from dpo.losses import LOSS_TYPE_NAMES, RunningMean
from dpo.tokenizer import InstructionTokenizer
from dpo.training import dpo_loss_on_batch, reference_log_probs
from tests.dpo.pipeline_setup import backend, numpy_of, pairs, tiny_config, tiny_model

LOSS_CHOICES = [*LOSS_TYPE_NAMES, ["sigmoid", "sft"]]
SMOOTHED = {"exo_pair": 0.1, "robust": 0.1}  # exo_pair needs ε > 0; robust with ε > 0 exercises its other term


@functools.lru_cache(maxsize=1)
def cached_reference_log_probs():
    """The reference log-probs both backends are given (as training gives its cache): a
    reference with other weights than the policy's, so every log-ratio is non-zero."""
    reference = tiny_model(backend("numpy", "float64"), seed=1, perturb=11)
    return reference_log_probs(reference, pairs(6), InstructionTokenizer(), reference.config.max_len)


def step_on(backend_name, loss_type):
    """(loss, chosen rewards, rejected rewards, {name: grad}) of one DPO loss on `backend_name`,
    from perturbed policy weights (the same numbers on both backends)."""
    be = backend(backend_name, "float64")
    policy = tiny_model(be, seed=0, perturb=10)
    name = loss_type if isinstance(loss_type, str) else loss_type[0]
    config = tiny_config(loss_type=loss_type, beta=0.5, label_smoothing=SMOOTHED.get(name, 0.0))
    batch = collate(pairs(6), InstructionTokenizer(), config.max_len)
    ref_logps = cached_reference_log_probs()
    bco_state = RunningMean(mean=0.05, count=3) if "bco_pair" in np.atleast_1d(loss_type) else None
    loss, output, _, _ = dpo_loss_on_batch(policy, batch, ref_logps, config, bco_state)
    loss.backward()
    grads = {n: np.asarray(numpy_of(policy, p.grad), dtype=np.float64) for n, p in policy.named_parameters()}
    return (float(loss.item()), numpy_of(policy, output.chosen_rewards), numpy_of(policy, output.rejected_rewards),
            grads)


def cosine(a, b):
    return float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("loss_type", LOSS_CHOICES, ids=lambda t: t if isinstance(t, str) else "+".join(t))
def test_dpo_step_same_loss_rewards_and_gradients_on_both_backends(loss_type):
    loss_a, chosen_a, rejected_a, grads_a = step_on("numpy", loss_type)
    loss_b, chosen_b, rejected_b, grads_b = step_on("torch", loss_type)
    assert abs(loss_a - loss_b) <= 1e-10, (loss_a, loss_b)
    assert np.abs(chosen_a - chosen_b).max() <= 1e-10
    assert np.abs(rejected_a - rejected_b).max() <= 1e-10
    assert np.any(chosen_a != rejected_a)  # the rewards are not trivially zero
    assert grads_a.keys() == grads_b.keys()
    dead = [n for n, g in grads_a.items() if not np.any(g)]
    assert not dead, f"{loss_type}: no gradient reached {dead}"
    bad = {n: cosine(grads_a[n], grads_b[n]) for n in grads_a if cosine(grads_a[n], grads_b[n]) < 1 - 1e-9}
    assert not bad, f"{loss_type}: gradient directions differ: {bad}"

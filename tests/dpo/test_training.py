"""SFT warm-up and DPO training: training lowers the loss and raises the margin on both backends;
the step count, warm-up schedule, held-out split and seed do what the config says; a NaN or inf
stops training with TrainingDiverged naming the step and leaves the last checkpoint intact."""

import dataclasses
import math

import numpy as np
import pytest

import dpo.training
from dpo.batching import collate
from dpo.checkpoint import load_checkpoint
from dpo.config import DPOConfig
from dpo.metrics import read_metrics
from dpo.tokenizer import InstructionTokenizer
from dpo.training import (
    TrainingDiverged,
    build_models,
    dpo_step,
    evaluate_pairs,
    reference_log_probs,
    train_dpo,
    warmup_pretrain,
)
from tests.dpo.pipeline_setup import TINY, backend, backend_names, pairs, tiny_config


@backend_names
def test_dpo_training_lowers_the_loss_and_raises_the_margin(backend_name):
    config = tiny_config(max_steps=6)
    policy, reference = build_models(config, backend=backend(backend_name))
    before = evaluate_pairs(policy, reference, pairs(), config, prefix="")
    result = train_dpo(policy, reference, pairs(), config)
    after = evaluate_pairs(policy, reference, pairs(), config, prefix="")
    # policy = reference at the start: every reward is 0, the sigmoid loss is log 2
    assert before["loss"] == pytest.approx(math.log(2), abs=1e-12)
    assert before["rewards/margins"] == 0.0 and before["rewards/accuracies"] == 0.0
    assert after["loss"] < before["loss"] - 0.05
    assert after["rewards/margins"] > 0.1
    assert after["rewards/accuracies"] == 1.0
    losses = result.rows("loss")
    assert losses[0] == pytest.approx(math.log(2), abs=1e-12) and losses[-1] < losses[0]


@backend_names
def test_sft_warmup_lowers_the_next_token_loss(backend_name):
    policy, _ = build_models(tiny_config(), backend=backend(backend_name))
    losses = warmup_pretrain(policy, pairs(), steps=8, lr=1e-2, batch_size=6)
    assert len(losses) == 8
    # a fresh model is near uniform over the 260 tokens: loss ≈ log 260
    assert losses[0] == pytest.approx(math.log(260), abs=0.1)
    assert losses[-1] < losses[0] - 0.5


def test_sft_warmup_checks_its_arguments():
    policy, _ = build_models(tiny_config(), backend=backend("numpy"))
    assert warmup_pretrain(policy, pairs(), steps=0) == []
    with pytest.raises(ValueError, match="steps must be >= 0"):
        warmup_pretrain(policy, pairs(), steps=-1)
    with pytest.raises(ValueError, match="no pairs"):
        warmup_pretrain(policy, [], steps=1)


def test_steps_epochs_and_max_steps():
    policy, reference = build_models(tiny_config(), backend=backend("numpy"))
    by_epochs = train_dpo(policy, reference, pairs(10), tiny_config(max_steps=None, epochs=2, batch_size=4))
    assert by_epochs.steps == 6  # ceil(10 / 4) = 3 batches per epoch
    assert [row["epoch"] for row in by_epochs.history] == pytest.approx([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])  # TRL
    policy, reference = build_models(tiny_config(), backend=backend("numpy"))
    by_steps = train_dpo(policy, reference, pairs(10), tiny_config(max_steps=4, epochs=100))
    assert by_steps.steps == 4 and [row["step"] for row in by_steps.history] == [1, 2, 3, 4]


def test_linear_warmup_then_constant_lr():
    config = tiny_config(max_steps=5, warmup_steps=2, lr=0.01)
    policy, reference = build_models(config, backend=backend("numpy"))
    lrs = train_dpo(policy, reference, pairs(), config).rows("learning_rate")
    # transformers' constant_with_warmup: update s (0-based) uses lr · min(1, s / warmup)
    assert lrs == pytest.approx([0.0, 0.005, 0.01, 0.01, 0.01], abs=1e-15)


def test_same_seed_same_run_other_seed_other_order():
    def losses(seed):
        config = tiny_config(max_steps=4, seed=seed)
        policy, reference = build_models(config, backend=backend("numpy"), seed=0)
        return train_dpo(policy, reference, pairs(), config).rows("loss")

    assert losses(3) == losses(3)
    assert losses(3) != losses(4)  # the batches are shuffled with the seed


def test_held_out_split_is_not_trained_on():
    config = tiny_config(max_steps=None, epochs=2, eval_fraction=0.25)
    policy, reference = build_models(config, backend=backend("numpy"))
    result = train_dpo(policy, reference, pairs(), config)
    assert len(result.eval_pairs) == 3 and len(result.train_pairs) == 9
    assert not set(map(id, result.eval_pairs)) & set(map(id, result.train_pairs))
    evals = [row for row in result.history if "eval_loss" in row]
    assert [row["step"] for row in evals] == [3, 6]  # after each epoch


def test_dpo_step_clips_and_reports_the_gradient_norm():
    """The norm reported is the one before clipping; after the step every gradient has
    been scaled to the clip norm."""
    be = backend("numpy")
    config = tiny_config(max_grad_norm=1e-3)
    policy, reference = build_models(config, backend=be)
    tokenizer = InstructionTokenizer()
    batch = collate(pairs(4), tokenizer, 96)
    ref = reference_log_probs(reference, pairs(4), tokenizer, 96) - 1.0  # a non-zero start: real gradients
    optimizer = be.optimizer("adamw", policy.parameters(), lr=config.lr, weight_decay=0.0)
    metrics = dpo_step(policy, batch, ref, optimizer, config)
    norm_after = math.sqrt(sum(float((p.grad.data.astype(np.float64) ** 2).sum()) for p in policy.parameters()))
    assert metrics["grad_norm"] > 1e-2
    assert norm_after == pytest.approx(1e-3, rel=1e-6)


def test_train_dpo_rejects_mixed_backends_and_no_pairs():
    policy, _ = build_models(tiny_config(), backend=backend("numpy", "float64"))
    _, reference = build_models(tiny_config(), backend=backend("numpy", "float32"))
    with pytest.raises(ValueError, match="policy is on .* but reference is on"):
        train_dpo(policy, reference, pairs(), tiny_config())
    with pytest.raises(ValueError, match="no training pairs"):
        train_dpo(policy, policy, [], tiny_config())


# ---- divergence ------------------------------------------------------------------------------
def test_nan_weights_stop_training_naming_the_step_and_keep_the_last_checkpoint(tmp_path):
    config = tiny_config(max_steps=8, checkpoint_every=2)
    policy, reference = build_models(config, backend=backend("numpy"))
    at_step_2 = {}

    def poison(row):
        if row["step"] == 2:
            at_step_2.update(policy.export_weights())
        if row["step"] == 3:  # after the step-2 checkpoint, before step 4
            policy.head.weight.data[5, 3] = np.nan

    with pytest.raises(TrainingDiverged, match=r"DPO step 4: the policy log-prob of row \d+ is nan; stopped before "
                       r"updating the weights; the last checkpoint, .*checkpoint-2 \(step 2\), is intact"):
        train_dpo(policy, reference, pairs(), config, out_dir=tmp_path, on_log=poison)
    checkpoint = load_checkpoint(tmp_path / "checkpoint-2")
    assert checkpoint.step == 2
    assert all(np.isfinite(w).all() for w in checkpoint.weights.values())
    assert all(np.array_equal(checkpoint.weights[k], at_step_2[k]) for k in at_step_2)
    rows = [row["step"] for row in read_metrics(tmp_path / "metrics.jsonl")]
    assert rows == [1, 2, 3]


def test_an_infinite_loss_stops_training_before_the_update(monkeypatch):
    real = dpo.training.dpo_loss

    def exploding(*args, **kwargs):
        out = real(*args, **kwargs)
        return out._replace(losses=out.losses * float("inf"))

    monkeypatch.setattr(dpo.training, "dpo_loss", exploding)
    config = tiny_config(max_steps=3)
    policy, reference = build_models(config, backend=backend("numpy"))
    start = policy.export_weights()
    with pytest.raises(TrainingDiverged, match="DPO step 1: the loss is inf"):
        train_dpo(policy, reference, pairs(), config)
    assert all(np.array_equal(start[k], v) for k, v in policy.export_weights().items())


def test_nan_in_sft_warmup_names_the_step():
    policy, _ = build_models(tiny_config(), backend=backend("numpy"))
    policy.head.weight.data[:] = np.nan
    with pytest.raises(TrainingDiverged, match="SFT warm-up step 1: the loss is nan"):
        warmup_pretrain(policy, pairs(), steps=2)


def test_config_rejects_bad_values_naming_the_field():
    for field, value, message in [("lr", -1.0, "DPOConfig.lr must be a positive number"),
                                  ("batch_size", 0, "DPOConfig.batch_size must be a positive int"),
                                  ("beta", float("nan"), "DPOConfig: beta must be finite"),
                                  ("eval_fraction", 1.0, r"eval_fraction must be in \[0, 1\)"),
                                  ("loss_type", "dpo", "unknown loss_type 'dpo'"),
                                  ("loss_weights", [1.0, 2.0], "2 loss_weights for 1 loss types"),
                                  ("loss_options", {"tau": 1}, "unknown option.*tau")]:
        with pytest.raises(ValueError, match=message):
            DPOConfig(**{field: value})


def test_config_round_trips_through_a_dict():
    config = tiny_config(loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.5])
    again = DPOConfig.from_dict(config.to_dict())
    assert again == config and again.model == TINY
    assert dataclasses.asdict(again) == config.to_dict()
    with pytest.raises(ValueError, match="unknown field.*colour"):
        DPOConfig.from_dict({**config.to_dict(), "colour": 1})


def test_train_result_counts_the_pairs_whose_prompt_was_cut():
    from dpo.data import PreferencePair

    config = tiny_config(model=dataclasses.replace(TINY, max_len=24), max_steps=1)
    data = [PreferencePair("a prompt far too long for twenty-four tokens", "yes", "no"),
            PreferencePair("hi", "yes", "no")]
    policy, reference = build_models(config, backend=backend("numpy"))
    assert train_dpo(policy, reference, data, config).truncated == 1
    policy, reference = build_models(tiny_config(max_steps=1), backend=backend("numpy"))
    assert train_dpo(policy, reference, pairs(), tiny_config(max_steps=1)).truncated == 0

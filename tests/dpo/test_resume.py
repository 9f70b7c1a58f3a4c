"""Resuming: N steps in one run and N/2 + a resumed N/2 give the same losses (bit-identical on
the numpy backend) and the same weights; an interrupted run's metrics are not duplicated; a
changed config is refused."""

import dataclasses

import numpy as np
import pytest

from dpo.metrics import read_metrics
from dpo.training import build_models, train_dpo
from tests.dpo.pipeline_setup import TORCH_DEVICES, backend, pairs, tiny_config

STEPS = 6


def run(be, config, out_dir, resume_from=None, on_log=None):
    policy, reference = build_models(config, backend=be)
    result = train_dpo(policy, reference, pairs(10), config, out_dir=out_dir, resume_from=resume_from,
                       on_log=on_log)
    return result, policy.export_weights()


def straight_and_resumed(be, config, tmp_path):
    whole, whole_weights = run(be, config, tmp_path / "whole")
    run(be, dataclasses.replace(config, max_steps=STEPS // 2), tmp_path / "split")
    rest, rest_weights = run(be, config, tmp_path / "split", resume_from=tmp_path / "split" / "checkpoint-3")
    return whole, whole_weights, rest, rest_weights


@pytest.mark.parametrize("loss_type", ["sigmoid", "bco_pair"])  # bco_pair also carries its running mean
def test_numpy_resume_is_bit_identical(loss_type, tmp_path):
    config = tiny_config(max_steps=STEPS, warmup_steps=4, loss_type=loss_type)  # resumes mid warm-up
    be = backend("numpy", "float32")
    whole, whole_weights, rest, rest_weights = straight_and_resumed(be, config, tmp_path)
    assert rest.rows("step") == [4, 5, 6]
    assert whole.rows("loss")[3:] == rest.rows("loss")
    assert whole.rows("learning_rate")[3:] == rest.rows("learning_rate")
    assert all(np.array_equal(whole_weights[k], rest_weights[k]) for k in whole_weights)
    # metrics.jsonl of the split run: the first half's rows, then the resumed half's
    assert [row["loss"] for row in read_metrics(tmp_path / "split" / "metrics.jsonl")] == whole.rows("loss")


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_torch_resume_is_close(device, tmp_path):
    config = tiny_config(max_steps=STEPS, warmup_steps=2)
    be = backend("torch", "float32", device)
    whole, whole_weights, rest, rest_weights = straight_and_resumed(be, config, tmp_path)
    assert rest.rows("loss") == pytest.approx(whole.rows("loss")[3:], rel=1e-6, abs=1e-7)
    assert all(np.allclose(whole_weights[k], rest_weights[k], rtol=1e-5, atol=1e-7) for k in whole_weights)


def test_resume_across_an_epoch_boundary_and_an_interrupted_log(tmp_path):
    """10 pairs in batches of 4: 3 steps per epoch. The run stops (interrupt) at step 5,
    after the step-4 checkpoint had been written and step 5 logged; the resumed run
    redoes step 5 and the log holds each step once."""
    config = tiny_config(max_steps=STEPS, checkpoint_every=2, eval_fraction=0.0)
    be = backend("numpy", "float32")
    whole, whole_weights = run(be, config, tmp_path / "whole")

    def interrupt(row):
        if row["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(be, config, tmp_path / "cut", on_log=interrupt)
    rest, rest_weights = run(be, config, tmp_path / "cut", resume_from=tmp_path / "cut" / "checkpoint-4")
    assert rest.rows("step") == [5, 6] and rest.rows("epoch") == pytest.approx([5 / 3, 2])  # 3 updates an epoch
    assert whole.rows("loss")[4:] == rest.rows("loss")
    assert all(np.array_equal(whole_weights[k], rest_weights[k]) for k in whole_weights)
    logged = read_metrics(tmp_path / "cut" / "metrics.jsonl")
    assert [row["step"] for row in logged] == [1, 2, 3, 4, 5, 6]
    assert [row["loss"] for row in logged] == whole.rows("loss")


def test_resume_refuses_a_changed_config(tmp_path):
    be = backend("numpy", "float32")
    run(be, tiny_config(max_steps=2), tmp_path)
    checkpoint = tmp_path / "checkpoint-2"
    with pytest.raises(ValueError, match=r"cannot resume .*config differs \(batch_size 4 -> 3, lr 0.01 -> 0.02\)"):
        run(be, tiny_config(max_steps=4, batch_size=3, lr=0.02), tmp_path, resume_from=checkpoint)
    more, _ = run(be, tiny_config(max_steps=4), tmp_path, resume_from=checkpoint)  # more steps: allowed
    assert more.rows("step") == [3, 4]

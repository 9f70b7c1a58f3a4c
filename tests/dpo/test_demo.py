"""The demo: SFT warm-up, frozen reference, DPO, per-step lines, the margin table and generations;
it succeeds when the loss fell and the margin and accuracy rose, and says FAILED otherwise."""

import io
import os
import subprocess
import sys

import pytest

from dpo.checkpoint import load_checkpoint
from dpo.demo import DemoResult, run_demo
from dpo.metrics import read_metrics
from tests.dpo.pipeline_setup import backend, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def demo(be, make_config=tiny_config, **changes):
    stream = io.StringIO()
    config = make_config(**{"sft_steps": 10, "sft_lr": 1e-2, "max_steps": 4, "lr": 3e-3, **changes})
    return run_demo(be, config=config, stream=stream), stream.getvalue()


def test_numpy_demo_succeeds_and_reports_every_part():
    result, text = demo(backend("numpy", "float32"))
    assert result.succeeded
    assert result.last_loss < result.first_loss
    assert result.margin_before == 0.0 and result.accuracy_before == 0.0  # policy = reference at the start
    assert result.margin_after > 0 and result.accuracy_after > 0
    assert "SFT warm-up: 10 steps" in text
    assert [line.split()[1] for line in text.splitlines() if line.startswith("  step ")] == ["1", "2", "3", "4"]
    assert "Reward margins per pair" in text and "What is the capital of France?" in text
    assert text.count("    before: ") == 3 and text.count("    after:  ") == 3
    assert text.rstrip().splitlines()[-1].startswith("OK: loss 0.6931 -> ")


def test_demo_that_unlearns_is_reported_as_failed():
    """Loss weight -1 is gradient ascent on the DPO loss: the (weighted) loss falls, but the
    margin falls below zero and no pair is ranked right. (DPOConfig refuses a negative weight, so
    it is put in after the config was checked.)"""
    real = tiny_config

    def ascending(**changes):
        config = real(**changes)
        config.loss_weights = [-1.0]
        return config

    result, text = demo(backend("numpy", "float32"), make_config=ascending)
    assert not result.succeeded
    assert result.margin_after < result.margin_before == 0.0
    assert result.accuracy_after == result.accuracy_before == 0.0
    assert text.rstrip().splitlines()[-1].startswith("FAILED: ")


@pytest.mark.parametrize("broken", ["loss", "margin", "accuracy"])
def test_each_criterion_alone_fails_the_demo(broken):
    good = dict(first_loss=0.7, last_loss=0.2, margin_before=0.0, margin_after=1.0, accuracy_before=0.0,
                accuracy_after=1.0, seconds=1.0)
    assert DemoResult(**good).succeeded
    bad = dict(good)
    if broken == "loss":
        bad["last_loss"] = 0.7  # did not fall
    elif broken == "margin":
        bad["margin_after"] = 0.0
    else:
        bad["accuracy_after"] = 0.0
    assert not DemoResult(**bad).succeeded


def test_demo_writes_metrics_and_a_checkpoint(tmp_path):
    stream = io.StringIO()
    config = tiny_config(sft_steps=2, max_steps=2)
    run_demo(backend("numpy", "float32"), config=config, out_dir=tmp_path, stream=stream)
    assert [row["step"] for row in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]
    assert load_checkpoint(tmp_path / "checkpoint-2").step == 2


def test_torch_demo_with_the_default_config_succeeds():
    be = backend("torch", "float32")
    stream = io.StringIO()
    result = run_demo(be, stream=stream)
    assert result.succeeded, stream.getvalue()
    assert "backend torch (cpu, float32)" in stream.getvalue()


@pytest.mark.slow
def test_python_dash_m_dpo_demo_exits_zero():
    """The default demo on the numpy backend, as `make demo` runs it."""
    done = subprocess.run([sys.executable, "-m", "dpo", "demo"], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "backend numpy (cpu, float32)" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("OK: ")

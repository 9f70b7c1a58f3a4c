"""Metrics: metrics.jsonl rows carry exactly TRL's names (learning_rate, a fractional epoch,
logits/*, grad_norm, eval_ for the held-out split) plus kl_per_token; a combined loss adds
each part's loss and nll_loss; the PNG plot is written, and without matplotlib a one-line
note instead."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from dpo.metrics import MetricsLog, plot_metrics, read_metrics
from dpo.training import build_models, train_dpo
from tests.dpo.pipeline_setup import backend, pairs, tiny_config

TRL_NAMES = {"loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
             "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected"}
TRAIN_KEYS = TRL_NAMES | {"grad_norm", "learning_rate", "step", "epoch", "kl_per_token"}
EVAL_KEYS = {f"eval_{name}" for name in TRL_NAMES} | {"step", "epoch"}


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """Two epochs on 9 train pairs (3 held out) in batches of 4: steps 1..6, eval after 3 and 6."""
    out = tmp_path_factory.mktemp("run")
    config = tiny_config(max_steps=None, epochs=2, eval_fraction=0.25)
    policy, reference = build_models(config, backend=backend("numpy", "float32"))
    result = train_dpo(policy, reference, pairs(), config, out_dir=out)
    return out, result


def test_rows_carry_exactly_the_trl_names(logged_run):
    out, result = logged_run
    rows = read_metrics(out / "metrics.jsonl")
    assert rows == result.history
    train = [row for row in rows if "loss" in row]
    evals = [row for row in rows if "eval_loss" in row]
    assert len(train) + len(evals) == len(rows)
    assert [row["step"] for row in train] == [1, 2, 3, 4, 5, 6]
    assert [row["step"] for row in evals] == [3, 6] and [row["epoch"] for row in evals] == [1.0, 2.0]
    assert [row["epoch"] for row in train] == pytest.approx([1 / 3, 2 / 3, 1, 4 / 3, 5 / 3, 2])
    assert all(set(row) == TRAIN_KEYS for row in train)
    assert all(set(row) == EVAL_KEYS for row in evals)


def test_row_values_are_consistent(logged_run):
    _, result = logged_run
    first = result.history[0]
    # step 1 starts at policy = reference: zero rewards, loss log 2
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert first["rewards/chosen"] == first["rewards/rejected"] == first["rewards/margins"] == 0.0
    for row in result.history:
        prefix = "eval_" if "eval_loss" in row else ""
        margin = row[f"{prefix}rewards/chosen"] - row[f"{prefix}rewards/rejected"]
        assert row[f"{prefix}rewards/margins"] == pytest.approx(margin, abs=1e-6)
        assert 0.0 <= row[f"{prefix}rewards/accuracies"] <= 1.0
        assert row[f"{prefix}logps/chosen"] < 0 and row[f"{prefix}logps/rejected"] < 0
    assert all(isinstance(row["step"], int) and isinstance(row["epoch"], float) for row in result.history)
    assert first["kl_per_token"] == 0.0  # policy = reference at the first step


def test_combined_loss_logs_each_part_and_nll_loss():
    config = tiny_config(max_steps=2, loss_type=["sigmoid", "sft"], loss_weights=[1.0, 0.25], log_every=1)
    policy, reference = build_models(config, backend=backend("numpy"))
    first = train_dpo(policy, reference, pairs(), config).history[0]
    assert first["loss/sigmoid"] == pytest.approx(math.log(2), abs=1e-12)  # policy = reference
    assert first["nll_loss"] == first["loss/sft"] > 0
    assert first["loss"] == pytest.approx(first["loss/sigmoid"] + 0.25 * first["nll_loss"], rel=1e-12)


def test_log_every():
    config = tiny_config(max_steps=5, log_every=2)
    policy, reference = build_models(config, backend=backend("numpy", "float32"))
    assert train_dpo(policy, reference, pairs(), config).rows("step") == [2, 4, 5]  # and always the last


def test_the_plot_is_a_png(logged_run, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plots extra) is not installed")
    out, result = logged_run
    png = tmp_path / "metrics.png"
    assert plot_metrics(result.history, png) is None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_a_one_line_note(logged_run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    note = plot_metrics(logged_run[1].history, tmp_path / "metrics.png")
    assert note.startswith("plot skipped: matplotlib is not installed") and "\n" not in note
    assert not (tmp_path / "metrics.png").exists()


def test_without_matplotlib_in_a_fresh_interpreter(tmp_path):
    """The same with matplotlib blocked before anything imports it."""
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from dpo.metrics import plot_metrics\n"
            "print(plot_metrics([{'step': 1, 'loss': 0.5}], sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.png")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("plot skipped: matplotlib is not installed") and done.stdout.count("\n") == 1
    assert not (tmp_path / "m.png").exists()


def test_nothing_to_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the plots extra) is not installed")
    assert plot_metrics([], tmp_path / "m.png") == "plot skipped: no training steps were logged"


def test_log_in_memory_and_numpy_scalars(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    log.write({"step": np.int64(3), "loss": np.float32(0.5), "lr": 1e-3})
    row = json.loads((tmp_path / "m.jsonl").read_text())
    assert row == {"step": 3, "loss": 0.5, "lr": 1e-3} and isinstance(row["step"], int)
    memory = MetricsLog()
    memory.write({"step": 1})
    assert memory.rows == [{"step": 1}]


def test_a_new_log_empties_the_file_and_a_resumed_one_keeps_the_rows_up_to_its_step(tmp_path):
    path = tmp_path / "m.jsonl"
    log = MetricsLog(path)
    for step in range(1, 6):
        log.write({"step": step, "loss": 1.0 / step})
    MetricsLog(path, append=True, keep_through_step=3)
    assert [row["step"] for row in read_metrics(path)] == [1, 2, 3]
    MetricsLog(path)
    assert read_metrics(path) == []

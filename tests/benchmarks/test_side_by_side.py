"""The benchmark harness: worker processes, interleaved blocks, and the report writer.
Timings are never asserted; only that the harness measures what it says it does."""

import json
import os

import pytest

from benchmarks import dpo_vs_torch
from benchmarks.side_by_side import SideBySide, WorkerError
from benchmarks.workloads import model_from_spec, pairs_from_spec, training_flops
from tests.conftest import require_torch

TINY = {"model": {"hidden": 8, "heads": 2, "depth": 1, "max_len": 96}, "pairs": {"kind": "builtin", "count": 3},
        "label": "tiny"}


def test_workers_take_turns_and_report_every_timed_step():
    with SideBySide({"a": {"backend": "numpy", **TINY}, "b": {"backend": "numpy", **TINY}}) as run:
        times = run.interleaved(rounds=2, block=3, warmup=1)
        info = run.info("a")
        memory = run.memory("b")
    assert set(times) == {"a", "b"}
    assert all(len(t) == 2 * (3 - 1) and all(s > 0 for s in t) for t in times.values())  # first of each block dropped
    assert info["shape"][0] == 6 and info["tokens"] > 0 and info["flops"] > 0
    assert memory["peak_rss_mib"] >= memory["rss_before_mib"] > 0


def test_settle_runs_untimed_steps_first_then_times_the_rest():
    with SideBySide({"a": {"backend": "numpy", **TINY}}) as run:
        reply = run.workers["a"].ask({"steps": 2, "settle_s": 0.0})
        settled = run.workers["a"].ask({"steps": 1, "settle_s": 0.3})
        first_step_s = reply["seconds"][0]
        times = run.interleaved(rounds=2, block=3, warmup=1, settle_s=0.0)
    assert reply["untimed"] == 1 and len(reply["seconds"]) == 2  # at least one untimed step
    # steps ran untimed until 0.3 s had passed: more than one unless a step took that long
    assert settled["untimed"] >= (2 if first_step_s < 0.1 else 1) and len(settled["seconds"]) == 1
    assert len(times["a"]) == 2 * (3 - 1)  # with settle_s, block - 1 timed steps per turn


def test_compare_step_rows_carry_the_ratio_and_memory():
    require_torch()
    rows = dpo_vs_torch.compare_step(TINY, rounds=1, block=2, peak_gflops=100.0)
    assert [r["backend"] for r in rows] == ["numpy", "torch"]
    assert rows[0]["ratio"] == pytest.approx(rows[0]["ms"] / rows[1]["ms"])
    for r in rows:
        assert r["batch"] == "6 x " + r["batch"].split(" x ")[1] and r["added_mib"] >= 0
        assert r["peak_fraction"] == pytest.approx(r["gflops"] / 100.0)


def test_untuned_row_times_a_tuned_and_an_untuned_numpy_worker():
    with SideBySide({"tuned": {"backend": "numpy", **TINY},
                     "untuned": {"backend": "numpy", "tune_process": False, **TINY}}) as run:
        tuning = {name: run.info(name)["tuning"] for name in ("tuned", "untuned")}
    assert tuning["untuned"] is None and set(tuning["tuned"]) in ({"openmp", "openblas", "malloc"}, {"all"})
    row = dpo_vs_torch.untuned(TINY, rounds=1, block=2)
    assert row["config"] == "tiny" and row["tuned_ms"] > 0 and row["untuned_ms"] > 0
    line = dpo_vs_torch.untuned_table([row]).splitlines()[-1]
    assert line.startswith("| tiny | ") and line.endswith(f"| {row['untuned_ms'] / row['tuned_ms']:.2f}x |")


def test_two_checkouts_take_turns_each_on_its_own_code(tmp_path):
    """benchmarks.checkouts: a worker per checkout, each importing from its own folder."""
    from benchmarks import checkouts

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with SideBySide({"a": {"backend": "numpy", **TINY}}, roots={"a": root}) as run:
        assert run.info("a")["tokens"] > 0
    times = checkouts.compare(root, root, TINY, rounds=2, block=2)
    assert [len(times["before"]), len(times["after"])] == [2, 2]
    text = checkouts.report(times, "tiny")
    assert text.splitlines()[0] == "tiny" and text.splitlines()[-1].startswith("after / before: ")
    # a folder that is not a checkout: its own worker would fail to import; refused up front, by name
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "benchmarks.checkouts", str(tmp_path), root], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert f"{tmp_path}: not a checkout of this repository (no benchmarks/step_worker.py)" in result.stderr


def test_unknown_skip_part_is_refused_by_name():
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-m", "benchmarks", "--skip", "cold,nope"], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--skip: unknown part(s) nope; the parts are untuned, scaling, cold, pretrained" in result.stderr


def test_a_worker_that_cannot_start_is_reported_by_name():
    with pytest.raises(WorkerError, match="'bad'"):
        with SideBySide({"bad": {"backend": "nonexistent", **TINY}}):
            pass


def test_specs_rebuild_the_documented_workloads():
    assert model_from_spec("large").hidden == 256
    assert len(pairs_from_spec({"kind": "builtin", "count": 30})) == 30
    assert len(pairs_from_spec({"kind": "large"})) == 32
    with pytest.raises(ValueError, match="kind"):
        pairs_from_spec({"kind": "nope"})
    with pytest.raises(ValueError, match="model spec"):
        model_from_spec("huge")


def test_training_flops_counts_matmuls_and_causal_attention_by_hand():
    config = model_from_spec({"hidden": 4, "heads": 1, "depth": 1, "max_len": 8, "vocab_size": 10})
    # one row of 2 tokens: per token 24·16 + 2·4·10 = 464; attention 4·4·(1 + 2) = 48; x3 for fwd + bwd
    assert training_flops(config, [2]) == 3 * (2 * 464 + 48)


def test_report_writes_markdown_and_json(tmp_path, monkeypatch):
    monkeypatch.setattr(dpo_vs_torch, "RESULTS", str(tmp_path))
    row = {"config": "c", "backend": "numpy", "batch": "2 x 3", "ms": 1.0, "spread": "", "tokens_per_s": 10.0,
           "gflops": 1.0, "peak_fraction": 0.5, "peak_rss_mib": 100.0, "added_mib": 5.0, "ratio": 0.9}
    report = {"machine": {"cpu": "cpu", "cores": 2, "python": "3", "numpy": "2", "numba": "0", "torch": None},
              "matmul_peak_gflops": 2.0, "steps": [row], "profile": [("f:1(g)", 0.5, 0.25)],
              "cold_start": {"cold_s": 9.0, "warm_s": 2.0},
              "untuned": [{"config": "c", "tuned_ms": 20.0, "tuned_spread": "±1.00", "untuned_ms": 50.0,
                           "untuned_spread": "±2.00"}]}
    dpo_vs_torch.write_markdown(report)
    text = (tmp_path / "dpo.md").read_text()
    assert "| c | 20.0 ±1.00 ms | 50.0 ±2.00 ms | 2.50x |" in text
    assert "**0.90x**" in text and "| `f:1(g)` | 0.50 | 25% |" in text and "**9.0 s**" in text
    assert json.loads((tmp_path / "dpo.json").read_text())["steps"][0]["ratio"] == 0.9
    assert os.path.exists(tmp_path / "dpo.json")


@pytest.mark.parametrize("module", ["benchmarks.kernels", "benchmarks.fused_ops"])
def test_op_benchmarks_print_their_table_at_a_tiny_size(module):
    """The in-process op benchmarks run end to end (a fresh interpreter: they set
    OMP_WAIT_POLICY before numba and torch load their OpenMP runtime)."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-m", module, "--sizes", "tiny", "--repeats", "2"], cwd=root,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert any("numba" in line and "numpy" in line for line in lines)  # the header
    ops = ("attention", "token_logprobs", "layer_norm", "gelu", "gelu_tanh", "embedding")
    rows = [line for line in lines if line.split() and line.split()[0] in ops and line.rstrip().endswith(
        tuple("0123456789x"))]
    ratios = [w for line in rows for w in line.split() if w.endswith("x") and w[:-1].replace(".", "").isdigit()]
    assert len(rows) >= 2 and len(ratios) >= 2 * len(rows), result.stdout


def test_pretrained_quick_path_has_the_lora_rows(tmp_path):
    """The quick shape end to end (workers, LoRA rows, files): it runs, not how fast."""
    require_torch()
    from benchmarks import pretrained

    report = pretrained.run(quick=True, out_dir=str(tmp_path), lora_r=2, rounds=1, generation=False)
    rows = report["dpo_step"]
    assert list(rows) == ["numpy", "torch", "numpy LoRA r=2", "torch LoRA r=2"]
    shape = pretrained.QUICK["gpt2-small"]
    # c_attn (in n_embd, out 3 n_embd) in each layer: r (in + out) adapter weights
    lora_weights = shape["n_layer"] * 2 * (shape["n_embd"] + 3 * shape["n_embd"])
    for b in ("numpy", "torch"):
        assert rows[b]["trainable"] == report["parameters"]
        assert rows[f"{b} LoRA r=2"]["trainable"] == lora_weights
    for row in rows.values():
        assert row["steps"] == 1 and row["ms_per_step"] > 0 and row["peak_rss_mib"] > 0
    saved = json.loads((tmp_path / "pretrained.json").read_text())
    assert saved["dpo_step"]["torch LoRA r=2"]["trainable"] == lora_weights
    assert "| numpy LoRA r=2 | 0.00M |" in (tmp_path / "pretrained.md").read_text()


def test_pretrained_rejects_a_bad_rank(capsys):
    from benchmarks import pretrained

    with pytest.raises(SystemExit) as exit_info:
        pretrained.main(["--quick", "--lora-r", "-1"])
    assert exit_info.value.code == 2
    assert "--lora-r must be 0 or a positive int, got -1" in capsys.readouterr().err

"""Data-parallel training under torchrun (dpo/distributed.py) equals one process.

Each launch starts `python -m torch.distributed.run --nproc_per_node 2 tests/dpo/dist_worker.py`
on the CPU (gloo) with a free port; float64 throughout. The one-process runs are done here,
in this process, with the same configs (dist_worker.RUNS). What is checked:
- 2 processes with shards of every global batch == 1 process with the whole batch: losses,
  held-out losses and weights after 3 steps within 1e-10, also with gradient accumulation
  and shards of unequal size (one rank with no pair in a micro-batch);
- a 2-process checkpoint resumes in 1 process to the uninterrupted 1-process weights, and a
  1-process checkpoint resumes in 2 processes to them too;
- FSDP2 (--fsdp): the same losses and weights; its checkpoint holds the whole model and optimizer
  state, equal to the one-process checkpoint, and resumes to the one-process weights;
- `torchrun -m dpo train` writes run.json and a first metrics row stating the world size and
  the per-rank batch size, from rank 0 only; the reference log-probs computed half per rank and
  gathered equal one process's;
- a file missing on one rank, and a rank killed mid-run, end every rank with a non-zero exit
  and the message, within the documented timeout; --backend numpy under torchrun is one error.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import require_torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "tests", "dpo", "dist_worker.py")
TIMEOUT_S = 20  # $DPO_DIST_TIMEOUT for these launches: a failure must end every rank well within it
TOL = 1e-10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(scenario, out, extra_env=None, limit=90):
    """Run the worker on 2 processes; (exit status, output, seconds)."""
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "DPO_DIST_TIMEOUT": str(TIMEOUT_S),
           **(extra_env or {})}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), WORKER, scenario, str(out)]
    start = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=limit, cwd=ROOT)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The 'equal' launch and the one-process runs it is compared with."""
    require_torch()
    from tests.dpo import dist_worker

    out = tmp_path_factory.mktemp("ddp")
    model_folder(out)
    # the 1-process checkpoint the 2 processes resume, written before they start
    dist_worker.run("split", None, out_dir=str(out / "split1"), max_steps=3)
    code, output, _ = torchrun("equal", out)
    assert code == 0, output
    return out, output, dist_worker


def model_folder(out):
    """test_cli_pretrained's Qwen2 folder and data file in `out`, where transformers is installed."""
    try:
        import transformers  # noqa: F401
    except ImportError:
        return
    import torch

    from tests.dpo.hf_setup import write_folder
    from tests.dpo.test_cli_pretrained import ROWS

    path = write_folder(out / "qwen")
    torch.manual_seed(0)
    config = transformers.Qwen2Config(vocab_size=400, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    transformers.Qwen2ForCausalLM(config).save_pretrained(path)
    (out / "prefs.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")


def test_fsdp_model_folder_equals_one_process(launched, tmp_path):
    """`torchrun ... train --model DIR --fsdp` saves the model folder one process saves."""
    pytest.importorskip("transformers", reason="model folders need transformers (the dev extra)")
    from dpo import cli
    from dpo.pretrained import load_pretrained
    from tests.dpo.dist_worker import MODEL_ARGS

    out, _, _ = launched
    assert cli.main(MODEL_ARGS + ["--model", str(out / "qwen"), "--data", str(out / "prefs.jsonl"),
                                  "--out", str(tmp_path / "one")]) == 0
    ours = load_pretrained(out / "cli-model" / "model", dtype="float64").export_weights()
    single = load_pretrained(tmp_path / "one" / "model", dtype="float64").export_weights()
    start = load_pretrained(out / "qwen", dtype="float64").export_weights()
    assert json.loads((out / "cli-model" / "run.json").read_text())["distributed"]["fsdp"] is True
    assert (out / "cli-model" / "checkpoint-2" / "config.json").is_file()
    assert any(not np.array_equal(single[k], start[k]) for k in single), "DPO changed nothing"
    for name, value in single.items():
        np.testing.assert_allclose(ours[name], value, rtol=0, atol=TOL, err_msg=name)


def load(path):
    saved = np.load(path)
    weights = {k[2:]: saved[k] for k in saved.files if k.startswith("w:")}
    return saved["losses"], saved["eval_losses"], weights


def assert_same(result, policy, path):
    losses, eval_losses, weights = load(path)
    np.testing.assert_allclose(losses, result.rows("loss"), rtol=0, atol=TOL)
    np.testing.assert_allclose(eval_losses, result.rows("eval_loss"), rtol=0, atol=TOL)
    mine = policy.export_weights()
    assert sorted(mine) == sorted(weights)
    for name in mine:
        np.testing.assert_allclose(weights[name], mine[name], rtol=0, atol=TOL, err_msg=name)


@pytest.mark.parametrize("name", ["plain", "accumulation", "fsdp"])
def test_two_processes_equal_one(launched, name):
    out, _, worker = launched
    result, policy = worker.run(name, None)
    assert len(result.rows("loss")) == 3
    if name == "plain":
        assert len(result.rows("eval_loss")) == 1  # the held-out pairs were evaluated (sharded there)
    assert_same(result, policy, out / f"{name}.npz")


def test_checkpoints_resume_across_process_counts(launched):
    out, _, worker = launched
    whole, policy = worker.run("split", None)  # 6 uninterrupted steps in 1 process
    _, _, resumed_in_two = load(out / "resumed2.npz")
    resumed, resumed_policy = worker.run("split", None, out_dir=str(out / "split2"),
                                         resume_from=str(out / "split2" / "checkpoint-3"))
    assert resumed.start_step == 3 and resumed.steps == 6
    for name, value in policy.export_weights().items():
        np.testing.assert_allclose(resumed_in_two[name], value, rtol=0, atol=TOL, err_msg=name)
        np.testing.assert_allclose(resumed_policy.export_weights()[name], value, rtol=0, atol=TOL, err_msg=name)


def test_fsdp_checkpoint_holds_the_whole_model_and_resumes(launched):
    """FSDP2 (fully_shard, float64, gloo): checkpoint-3 gathered on save is the 1-process checkpoint-3
    (model and optimizer moments), and resuming it under FSDP reaches the 1-process weights."""
    from dpo.checkpoint import load_checkpoint

    out, _, worker = launched
    sharded, single = load_checkpoint(str(out / "fsdp" / "checkpoint-3")), load_checkpoint(str(out / "split1" /
                                                                                                "checkpoint-3"))
    assert sorted(sharded.weights) == sorted(single.weights)
    for name, value in single.weights.items():
        np.testing.assert_allclose(sharded.weights[name], value, rtol=0, atol=TOL, err_msg=name)
    mine, theirs = sharded.optimizer_state()["state"], single.optimizer_state()["state"]
    assert sorted(mine) == sorted(theirs) and len(mine) == len(single.weights)
    for index in theirs:
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(mine[index][key], theirs[index][key], rtol=0, atol=TOL)
    whole, policy = worker.run("split", None)
    _, _, resumed = load(out / "fsdp-resumed.npz")
    for name, value in policy.export_weights().items():
        np.testing.assert_allclose(resumed[name], value, rtol=0, atol=TOL, err_msg=name)


def test_cli_under_torchrun_records_the_layout(launched):
    out, output, _ = launched
    run = json.loads((out / "cli" / "run.json").read_text())
    assert run["distributed"] == {"world_size": 2, "per_rank_batch_size": 2, "global_batch_size": 4, "fsdp": False}
    rows = [json.loads(line) for line in (out / "cli" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]
    assert rows[0]["world_size"] == 2 and rows[0]["per_rank_batch_size"] == 2
    assert os.path.isdir(out / "cli" / "checkpoint-2")
    assert output.count("SFT warm-up: 1 steps") == 1  # rank 0 alone reports
    assert output.count("checkpoint-2, ") == 1  # "wrote <out>/checkpoint-2, <out>/metrics.jsonl"
    assert output.count("wrote the reference log-probs") == 1


def test_reference_log_probs_sharded_and_gathered_equal_one_process(launched):
    """The CLI run's stored reference log-probs (each rank computed half, rank 0 wrote the gathered
    array) are those one process computes from the saved reference."""
    from backends import get_backend
    from dpo.checkpoint import load_checkpoint
    from dpo.config import DPOConfig
    from dpo.data import make_preferences
    from dpo.model import TinyGPT
    from dpo.training import reference_log_probs

    out, _, _ = launched
    config = DPOConfig.from_dict(json.loads((out / "cli" / "run.json").read_text())["config"])
    reference = TinyGPT(config.model, backend=get_backend("torch", dtype="float64"))
    reference.load_weights(load_checkpoint(str(out / "cli" / "reference.safetensors")).weights)
    expected = reference_log_probs(reference, list(make_preferences()), config=config)
    with np.load(out / "cli" / "ref_logps_train.npz") as saved:
        stored = saved["logps"]
    assert stored.shape == (12, 2)
    np.testing.assert_allclose(stored, expected, rtol=0, atol=TOL)


def test_a_file_missing_on_one_rank_ends_every_rank(tmp_path):
    require_torch()
    shutil.copy(os.path.join(ROOT, "dpo", "data", "preferences.jsonl"), tmp_path / "pairs.jsonl")
    code, output, seconds = torchrun("missing", tmp_path)
    assert code != 0
    assert "error: rank 1 of 2:" in output and "not-there.jsonl" in output, output
    assert seconds < TIMEOUT_S + 15, (seconds, output)


def test_a_killed_rank_ends_the_others(tmp_path):
    require_torch()
    code, output, seconds = torchrun("kill", tmp_path)
    assert code != 0
    assert "SIGKILL" in output, output
    assert seconds < TIMEOUT_S + 15, (seconds, output)


def test_numpy_backend_under_torchrun_is_one_error(monkeypatch, capsys, tmp_path):
    from dpo import cli

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = cli.main(["train", "--backend", "numpy", "--max-steps", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["error: rank 0 of 2: --backend numpy runs in one process; under torchrun (WORLD_SIZE=2) use "
                   "--backend torch, or run without torchrun"]


def test_cuda_nccl_two_processes_equal_one_cpu_process(tmp_path):
    """The 'equal' launch on 2 GPUs (NCCL), compared with the 1-process CPU runs."""
    torch = require_torch()
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("NCCL data-parallel needs 2 CUDA devices; fewer are visible here")
    from tests.dpo import dist_worker

    dist_worker.run("split", None, out_dir=str(tmp_path / "split1"), max_steps=3)
    code, output, _ = torchrun("equal", tmp_path, extra_env={"DPO_TEST_DEVICE": "cuda"})
    assert code == 0, output
    for name in dist_worker.RUNS:
        result, policy = dist_worker.run(name, None)
        assert_same(result, policy, tmp_path / f"{name}.npz")


def test_fsdp_without_torchrun_is_one_usage_error(monkeypatch, capsys, tmp_path):
    require_torch()
    from dpo import cli

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    code = cli.main(["train", "--backend", "torch", "--fsdp", "--out", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --fsdp shards the model over the processes of torchrun; launch with torchrun --nproc_per_node N "
        "-m dpo train --backend torch --fsdp ..."]


@pytest.mark.parametrize("value", ["soon", "0", "-5"])
def test_a_bad_timeout_is_named(monkeypatch, value):
    from dpo import distributed

    monkeypatch.setenv(distributed.TIMEOUT_ENV, value)
    with pytest.raises(distributed.DistributedError, match=rf"^\$DPO_DIST_TIMEOUT='{value}': must be a number of "
                                                          r"seconds > 0$"):
        distributed.timeout_s()


@pytest.mark.parametrize("changes, fsdp, message", [
    (dict(loss_type="bco_pair"), False, "loss_type bco_pair keeps a running mean of this process's rewards"),
    (dict(sync_ref_model=True), True, "sync_ref_model mixes the policy's whole weights into the reference"),
])
def test_what_data_parallel_refuses(changes, fsdp, message):
    """Refused before any collective (the group here is a stand-in that would fail if one ran)."""
    from dpo.distributed import Distributed
    from dpo.training import build_models, train_dpo
    from tests.dpo.pipeline_setup import backend, pairs, tiny_config

    config = tiny_config(**changes)
    policy, reference = build_models(config, backend=backend("torch"))
    with pytest.raises(ValueError, match=message):
        train_dpo(policy, reference, pairs(8), config, dist=Distributed(object(), 0, 2, fsdp=fsdp))


def test_the_installed_script_trains_under_torchrun(tmp_path):
    """`torchrun --no-python minigrad-dpo train ...`: the console script is the same entry point as
    `-m dpo`, so it trains data-parallel and rank 0 records the layout."""
    require_torch()
    from tests.dpo.dist_worker import CLI_ARGS

    script = shutil.which("minigrad-dpo", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the minigrad-dpo script is not installed beside this Python (pip install -e .)")
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "DPO_DIST_TIMEOUT": str(TIMEOUT_S)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(free_port()), "--no-python", script,
               *CLI_ARGS, "--out", str(tmp_path / "run")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["distributed"]["world_size"] == 2 and run["distributed"]["per_rank_batch_size"] == 2
    assert os.path.isdir(tmp_path / "run" / "checkpoint-2")

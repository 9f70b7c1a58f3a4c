"""One rank of the multi-process tests in test_distributed.py, started there with
`python -m torch.distributed.run --nproc_per_node 2 tests/dpo/dist_worker.py SCENARIO OUT`.

Scenarios:
  equal OUT     the runs of `RUNS` data-parallel (rank 0 saves losses and weights to OUT/<name>.npz),
                the resumptions, then a short CLI run into OUT/cli
  missing OUT   the CLI with --data naming a file that exists on rank 0 only
  kill OUT      rank 1 kills itself (SIGKILL) after step 2 of a training run
"""

import os
import signal
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from backends import get_backend  # noqa: E402
from dpo import cli  # noqa: E402
from dpo.data import make_preferences  # noqa: E402
from dpo.distributed import Distributed, from_environment, local_device  # noqa: E402
from dpo.training import build_models, train_dpo  # noqa: E402
from tests.dpo.pipeline_setup import tiny_config  # noqa: E402

# name -> (config changes, number of training pairs, number of held-out pairs)
RUNS = {
    "plain": (dict(max_steps=3, batch_size=3), 9, 3),  # shards of 2 and 1 pairs; held-out shards of 2 and 1
    "accumulation": (dict(max_steps=3, batch_size=3, gradient_accumulation_steps=2), 10, 0),  # last micro: 1 pair
    "fsdp": (dict(max_steps=3, batch_size=4), 8, 3),
}
SPLIT = dict(max_steps=6, batch_size=4, checkpoint_every=3)  # the resume runs: 6 steps, a checkpoint at 3
CLI_ARGS = ["train", "--backend", "torch", "--dtype", "float64", "--hidden", "16", "--heads", "2", "--depth", "1",
            "--sft-steps", "1", "--max-steps", "2", "--batch-size", "4", "--precompute-ref-log-probs"]


def torch_backend():
    """float64 torch on $DPO_TEST_DEVICE (default cpu; "cuda" is this rank's GPU under torchrun)."""
    return get_backend("torch", device=local_device(os.environ.get("DPO_TEST_DEVICE", "cpu")), dtype="float64")

MODEL_ARGS = ["train", "--backend", "torch", "--dtype", "float64", "--max-steps", "2", "--batch-size", "2", "--lr",
              "1e-2"]  # a Hugging Face model folder (tests/dpo/test_cli_pretrained.py's), sharded with --fsdp


def data(n_train, n_eval):
    rows = list(make_preferences())
    return rows[:n_train], rows[n_train:n_train + n_eval]


def run(name, dist, out_dir=None, resume_from=None, on_log=None, **changes):
    """Train one of RUNS (or SPLIT when name == "split"); the policy after it and the result."""
    be = torch_backend()
    if name == "split":
        config, n_train, n_eval = tiny_config(**{**SPLIT, **changes}), 10, 0
    else:
        settings, n_train, n_eval = RUNS[name]
        config = tiny_config(**settings, **changes)
    policy, reference = build_models(config, backend=be)
    train, held_out = data(n_train, n_eval)
    result = train_dpo(policy, reference, train, config, out_dir=out_dir, eval_pairs=held_out,
                       resume_from=resume_from, on_log=on_log, dist=dist)
    return result, policy


def save(path, result, weights):
    losses = np.array(result.rows("loss"))
    evals = np.array(result.rows("eval_loss"))
    np.savez(path, losses=losses, eval_losses=evals, **{f"w:{k}": v for k, v in weights.items()})


def main(scenario, out):
    be = torch_backend()
    if scenario == "missing":
        data_file = os.path.join(out, "pairs.jsonl")  # written by the test, removed for rank 1 below
        if os.environ["RANK"] == "1":
            data_file = os.path.join(out, "not-there.jsonl")
        return cli.main(CLI_ARGS + ["--data", data_file, "--out", os.path.join(out, "run")])
    dist = from_environment(be)
    if scenario == "kill":
        def die(row):
            if dist.rank == 1 and row.get("step") == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        run("split", dist, on_log=die)
        return 0
    for name in RUNS:
        if name == "fsdp":  # the same run with the model sharded by FSDP2, then its checkpoint resumed
            dist = from_environment(be, fsdp=True)
            fsdp_out = os.path.join(out, "fsdp")
            run("split", dist, out_dir=fsdp_out, max_steps=3)
            result, policy = run("split", dist, out_dir=fsdp_out, resume_from=os.path.join(fsdp_out, "checkpoint-3"))
            weights = dist.full_weights(policy)
            if dist.is_main:
                save(os.path.join(out, "fsdp-resumed.npz"), result, weights)
        result, policy = run(name, dist)
        if dist.fsdp:  # the policy really is sharded: FSDP2 made its class and its parameters DTensors
            assert type(policy).__name__ == "FSDPTinyGPT", type(policy)
            assert any(type(p).__name__ == "DTensor" for p in policy.parameters())  # the blocks' at least
        weights = dist.full_weights(policy)
        if dist.is_main:
            save(os.path.join(out, f"{name}.npz"), result, weights)
    dist = from_environment(be)
    # 2 processes: the first 3 steps, checkpointed; the test resumes them in 1 process
    run("split", dist, out_dir=os.path.join(out, "split2"), max_steps=3)
    # 2 processes resume the test's 1-process checkpoint
    result, policy = run("split", dist, out_dir=os.path.join(out, "split1"),
                         resume_from=os.path.join(out, "split1", "checkpoint-3"))
    if dist.is_main:
        save(os.path.join(out, "resumed2.npz"), result, policy.export_weights())
    device = os.environ.get("DPO_TEST_DEVICE", "cpu")
    close, Distributed.close = Distributed.close, lambda self: None  # one process group for both CLI runs
    status = cli.main(CLI_ARGS + ["--device", device, "--out", os.path.join(out, "cli")])
    model = os.path.join(out, "qwen")
    if status or not os.path.isdir(model):  # the test wrote a model folder where transformers is installed
        close(dist)
        return status
    status = cli.main(MODEL_ARGS + ["--model", model, "--data", os.path.join(out, "prefs.jsonl"), "--device", device,
                                    "--fsdp", "--out", os.path.join(out, "cli-model")])
    close(dist)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

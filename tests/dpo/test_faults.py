"""Fault injection: `python -m dpo train` as a real process, killed and resumed.

SIGKILL at seeded random moments, KILLS times per backend, half of them the instant a checkpoint
write is seen in progress (a `.checkpoint-*.tmp` folder): after every kill the newest checkpoint
loads, and resuming to the end gives the weights (bit for bit) and metrics.jsonl rows of an
uninterrupted run. SIGINT / SIGTERM: the step finishes, a checkpoint is saved and named, the
exit status is 130 / 143, and resuming gives the uninterrupted result; a second signal exits at
once. Divergence (`--lr 1000`, `sft --lr 100`) ends with exactly one line on stderr.

The training processes are forked from `fork_server` (one per backend, imports done once);
each is a separate process, killed or signalled from here."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dpo.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_model
from dpo.config import DPOConfig
from dpo.metrics import read_metrics
from dpo.model import GPTConfig, TinyGPT
from tests.dpo.pipeline_setup import TINY

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork server and POSIX signals need a POSIX system")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILLS = 10
STEPS = 60  # room for KILLS kills of a few steps' progress each (at most 4 checkpoints, then a short pause)
PAIRS = [
    '{"prompt": "What is the capital of France?", "chosen": "Paris.", "rejected": "Maybe Lyon."}',
    '{"prompt": "Compute 2 + 3.", "chosen": "5", "rejected": "Roughly 6, I think."}',
    '{"prompt": "Python: print 42", "chosen": "print(42)", "rejected": "echo 42, maybe."}',
]
HAS_TORCH = __import__("importlib").util.find_spec("torch") is not None
BACKENDS = ["numpy", pytest.param("torch", marks=pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed"))]
# one thread per process: these tiny runs gain nothing from more, and the machine may be shared
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Server:
    """A `fork_server` process: each `start` forks a child running `python -m dpo ARGV`."""

    def __init__(self, backend, folder):
        self.folder, self.calls = folder, 0
        self.process = subprocess.Popen([sys.executable, "-m", "tests.dpo.fork_server", backend], cwd=ROOT,
                                        env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline() == "ready\n"

    def start(self, argv):
        """Fork a child running `argv` (options of `python -m dpo`); returns (pid, stdout path, stderr path)."""
        self.calls += 1
        out, err = self.folder / f"{self.calls}.out", self.folder / f"{self.calls}.err"
        self.process.stdin.write(json.dumps({"argv": argv, "stdout": str(out), "stderr": str(err)}) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline()), out, err

    def wait(self):
        """The exit status of the child started last (negative: killed by that signal)."""
        return int(self.process.stdout.readline())

    def run(self, argv):
        _, out, err = self.start(argv)
        return self.wait(), out.read_text(), err.read_text()

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    save_model(folder / "tiny.safetensors", TinyGPT(TINY, seed=0), DPOConfig(model=TINY))
    big = GPTConfig(hidden=128, heads=4, depth=4, max_len=96)  # slow steps: time to signal twice within one
    save_model(folder / "big.safetensors", TinyGPT(big, seed=0), DPOConfig(model=big))
    (folder / "pairs.jsonl").write_text("\n".join(PAIRS) + "\n")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    servers = {}

    def get(backend):
        if backend not in servers:
            servers[backend] = Server(backend, tmp_path_factory.mktemp(f"logs-{backend}"))
        return servers[backend]

    yield get
    for running in servers.values():
        running.close()


def resume(out, backend, *more):
    return ["train", "--backend", backend, "--out", str(out), "--resume", *more]


def fresh(inputs, out, backend, *more, model="tiny"):
    return ["train", "--backend", backend, "--out", str(out), "--init", str(inputs / f"{model}.safetensors"),
            "--data", str(inputs / "pairs.jsonl"), "--batch-size", "2", "--lr", "0.01", "--max-steps", str(STEPS),
            "--overwrite", *more]


@pytest.fixture(scope="module")
def uninterrupted(inputs, server, tmp_path_factory):
    """backend -> (final weights, metrics rows) of a run that nobody interrupted."""
    results = {}

    def get(backend):
        if backend not in results:
            out = tmp_path_factory.mktemp(f"whole-{backend}")
            code, _, err = server(backend).run(fresh(inputs, out, backend))
            assert code == 0, err
            results[backend] = (load_checkpoint(out / f"checkpoint-{STEPS}").weights,
                                read_metrics(out / "metrics.jsonl"))
        return results[backend]

    return get


def same_as_uninterrupted(out, expected):
    weights, rows = expected
    final = load_checkpoint(out / f"checkpoint-{STEPS}")
    assert final.weights.keys() == weights.keys()
    for name, array in weights.items():
        assert np.array_equal(final.weights[name], array), name  # bit for bit
    assert read_metrics(out / "metrics.jsonl") == rows
    assert final.log_history == rows


def tmp_entries(out):
    return [n for n in os.listdir(out) if n.endswith(".tmp")] if os.path.isdir(out) else []


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_at_random_moments_then_resume_is_identical(backend, inputs, server, uninterrupted, tmp_path):
    expected = uninterrupted(backend)
    rng = random.Random(f"kills-{backend}")
    out, kills, mid_write = tmp_path / "run", 0, 0
    while kills < KILLS:
        started = latest_checkpoint(out) is not None
        argv = resume(out, backend, "--checkpoint-every", "1") if started else \
            fresh(inputs, out, backend, "--checkpoint-every", "1")
        before, old_leftovers = len(list_checkpoints(out)), set(tmp_entries(out))
        progress = rng.randint(0, 2)  # new checkpoints to wait for (0: kill in or before the first write)
        in_write = kills % 2 == 0  # else after a random pause
        pid, _, err = server(backend).start(argv)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            names = os.listdir(out) if os.path.isdir(out) else []
            done = len([n for n in names if n.startswith("checkpoint-")]) - before
            writing = any(n.startswith(".checkpoint-") for n in names)
            if done >= progress and (writing or not in_write or done >= progress + 2):  # 2 writes missed: now
                if not in_write:
                    time.sleep(rng.uniform(0, 0.05))
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.0005)
        status = server(backend).wait()
        assert status == -signal.SIGKILL, f"the run ended ({status}) before it was killed: {err.read_text()}"
        kills += 1
        mid_write += any(n.startswith(".checkpoint-") for n in set(tmp_entries(out)) - old_leftovers)
        newest = latest_checkpoint(out)
        if newest is not None:
            load_checkpoint(newest)  # complete and finite, whatever the moment of the kill
    assert mid_write >= 1, "no kill landed inside a checkpoint write"
    leftovers = tmp_entries(out)
    code, _, err = server(backend).run(resume(out, backend) if latest_checkpoint(out) else
                                       fresh(inputs, out, backend))
    assert code == 0, err
    if leftovers:
        assert f"removed {len(leftovers)} temporary file(s) left by an interrupted write" in err
    assert not tmp_entries(out)
    same_as_uninterrupted(out, expected)
    print(f"\n{backend}: {kills} SIGKILLs ({mid_write} inside a checkpoint write), resumed to weights and metrics "
          "identical to the uninterrupted run")


def wait_for_line(path, start, timeout=120):
    """Wait until the file `path` has a line that starts with `start` (after leading spaces)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and any(line.lstrip().startswith(start) for line in path.read_text().splitlines()):
            return True
        time.sleep(0.0005)
    return False


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigint_and_sigterm_save_and_resume_is_identical(backend, inputs, server, uninterrupted, tmp_path):
    expected = uninterrupted(backend)
    out = tmp_path / "run"
    for signum, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        argv = resume(out, backend) if latest_checkpoint(out) else fresh(inputs, out, backend)
        pid, stdout, stderr = server(backend).start(argv)  # the default --checkpoint-every 0
        assert wait_for_line(stdout, "step"), stderr.read_text()
        os.kill(pid, signum)
        assert server(backend).wait() == status, stderr.read_text()
        newest = latest_checkpoint(out)
        name = signal.Signals(signum).name
        assert stderr.read_text().splitlines()[-1] == (
            f"interrupted by {name} after DPO step {load_checkpoint(newest).step}: saved {newest}; continue with: "
            f"python -m dpo train --resume --out {out}")
    code, _, err = server(backend).run(resume(out, backend))
    assert code == 0, err
    same_as_uninterrupted(out, expected)


def test_a_second_sigint_exits_at_once(inputs, server, tmp_path):
    pid, stdout, stderr = server("numpy").start(fresh(inputs, tmp_path, "numpy", model="big"))
    assert wait_for_line(stdout, "step")
    os.kill(pid, signal.SIGINT)
    assert wait_for_line(stderr, "SIGINT: finishing the current step")
    os.kill(pid, signal.SIGINT)
    assert server("numpy").wait() == 130
    assert stderr.read_text().splitlines()[-1] == "SIGINT again: stopping at once"


@pytest.mark.parametrize("argv, message", [
    (["train", "--max-steps", "20", "--lr", "1000"], r"error: the run diverged at DPO step \d+: the policy's mean "
                                                     r"log-prob per chosen token is -\d\.\d+e\+\d\d, far below"),
    (["sft", "--steps", "60", "--lr", "100"], r"error: the run diverged at SFT step \d+: the loss rose to"),
])
def test_divergence_stops_with_one_line(argv, message, inputs, tmp_path):
    """A fresh interpreter, so that anything printed on the way out would be seen too."""
    extra = ["--init", str(inputs / "tiny.safetensors"), "--batch-size", "2"] if argv[0] == "train" else []
    done = subprocess.run([sys.executable, "-m", "dpo", *argv, *extra, "--data", str(inputs / "pairs.jsonl"),
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT, env=ENV)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and re.match(message, done.stderr), done.stderr

"""Run workloads side by side: one worker process each, their steps interleaved in blocks.

    with SideBySide({"numpy": spec_a, "torch": spec_b}) as run:
        seconds = run.interleaved(rounds=8, block=6)   # {name: [seconds per step, ...]}

After a warm-up block each, the workers take turns: a block of `block` steps from
the first, then from the second, and so on, `rounds` times, so drifting machine
load hits them alike. Each turn starts with untimed steps, at least one and
until `settle_s` seconds have passed, then times `block - 1`: the untimed ones
pay for cold caches and for the previous worker's threads, which a loop running
one implementation does not see. The op benchmarks settle for 30 ms
(`OP_SETTLE_S`; the DPO step needs no more than its one untimed step): their
calls take a few ms, less than torch's OpenMP threads keep spinning after torch's
last call (GNU OpenMP's default wait policy), and those spinning threads hold both
cores while the next worker runs. Measured at TinyGPT size
(`benchmarks.kernels` attention, 2 cores), the median of each of the five calls
of a turn: numba after torch's turn 6.2, 4.6, 3.4, 2.7, 2.7 ms; numba after the
NumPy reference's turn 3.6, 2.9, 2.7, 2.7, 2.7 ms. Dropping only the first call
charged torch's spinning to whoever ran next. See `step_worker.py` for why each
backend gets its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerError(RuntimeError):
    """A worker process failed to start or to answer."""


class Worker:
    """One step worker; `root`: the checkout whose code it runs (this one by default)."""

    def __init__(self, name: str, spec: dict, env: dict | None = None, root: str | None = None):
        self.name = name
        extra = {} if root is None else {"PYTHONPATH": root}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.step_worker", json.dumps(spec)], cwd=root or ROOT,
            env={**os.environ, **(env or {}), **extra}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            error = self.process.stderr.read().strip().splitlines()
            raise WorkerError(f"benchmark worker {self.name!r} died: {error[-1] if error else 'no output'}")
        return json.loads(line)

    def ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def steps(self, k: int, settle_s: float | None = None) -> list:
        """Seconds of k timed steps; with `settle_s`, after untimed ones for that long."""
        request = {"steps": k} if settle_s is None else {"steps": k, "settle_s": settle_s}
        return self.ask(request)["seconds"]

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


class SideBySide:
    """Workers for {name: spec}, started one after the other (so that no start-up, with
    its imports and compiles, overlaps another's timing), closed on exit."""

    def __init__(self, specs: dict, env: dict | None = None, roots: dict | None = None):
        self.specs, self.env, self.roots, self.workers = specs, env, roots or {}, {}

    def __enter__(self):
        try:
            for name, spec in self.specs.items():
                self.workers[name] = Worker(name, spec, self.env, self.roots.get(name))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for worker in self.workers.values():
            worker.close()
        return False

    def info(self, name: str) -> dict:
        return self.workers[name].info

    def interleaved(self, rounds: int = 8, block: int = 6, warmup: int = 3, settle_s: float = 0.0) -> dict:
        """{name: [seconds of each timed step]}: (block - 1) steps per worker per round, after
        untimed steps for `settle_s` seconds, at least one (see the module text)."""
        for worker in self.workers.values():
            worker.steps(warmup)
        times = {name: [] for name in self.workers}
        for _ in range(rounds):
            for name, worker in self.workers.items():
                times[name].extend(worker.steps(block - 1, settle_s))
        return times

    def memory(self, name: str) -> dict:
        return self.workers[name].ask({"memory": True})


def implementations() -> tuple:
    """The implementations an op benchmark compares: minigrad's two kernel paths, and torch
    where it is installed (found without importing it here)."""
    import importlib.util

    return ("numba", "numpy") + (("torch",) if importlib.util.find_spec("torch") else ())


OP_SETTLE_S = 0.03  # untimed calls at the start of each turn of an op benchmark (see the module text)


def time_op(module: str, op: str, size: str, rounds: int, block: int) -> tuple:
    """({impl: [seconds per call]}, {impl: thread count text}) for one op of an op benchmark
    module, each implementation in its own worker, taking turns in blocks, each turn
    after `OP_SETTLE_S` of untimed calls."""
    specs = {impl: {"op": op, "module": module, "size": size, "impl": impl} for impl in implementations()}
    with SideBySide(specs) as run:
        times = run.interleaved(rounds=rounds, block=block, warmup=1, settle_s=OP_SETTLE_S)
        threads = {impl: run.info(impl)["threads"] for impl in specs}
    return times, threads

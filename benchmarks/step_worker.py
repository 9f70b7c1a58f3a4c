"""One benchmark worker: a process that holds one workload and runs it on request.

    python -m benchmarks.step_worker '{"backend": "numpy", "model": "default", "pairs": {"kind": "builtin"}}'
    python -m benchmarks.step_worker '{"op": "attention", "module": "benchmarks.kernels", "size": "tinygpt",
                                       "impl": "numba"}'

A workload is one DPO training step on a backend (the first form), or one
implementation of an op, forward and backward, as an op benchmark
(`benchmarks.kernels`, `benchmarks.fused_ops`) defines it in its `OPS` table (the
second form: impl is numba, numpy or torch; torch is imported only for torch),
or what a function named by {"workload": "module:function", ...} builds from
the spec (`benchmarks.pretrained`).

The side-by-side runner (`benchmarks.side_by_side`) starts one worker per
backend and sends each, in turn, the number of steps to run. Each backend thus
lives in its own process with its own threading runtime, as it does for a user:
torch's OpenMP pool and numba's and OpenBLAS's pools never share two cores in
one process (in one process they did, and the one whose threads waited
passively lost: torch ran 37 instead of 25 ms per step).

Protocol, one JSON line each way:
    <- {"ready": true, "tokens": .., "flops": .., "shape": [rows, T], "backend": "..", "rss_mib": ..}
    -> {"steps": k}            <- {"seconds": [t1, ..., tk]}
    -> {"steps": k, "settle_s": s}
                               <- {"seconds": [t1, ..., tk], "untimed": n}: first n untimed
                                  steps (at least one, until s seconds have passed), then k timed
    -> {"memory": true}        <- {"peak_rss_mib": .., "rss_before_mib": ..}
    -> end of input            the worker exits
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _rss_mib() -> float:
    """The current resident set size (Linux), else the peak so far."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dpo_step(spec: dict):
    """(step, info) for a DPO training step on a backend."""
    from .workloads import dpo_workload, model_from_spec, pairs_from_spec

    workload = dpo_workload(spec["backend"], model_from_spec(spec.get("model", "default")),
                            pairs_from_spec(spec.get("pairs", {"kind": "builtin"})), device=spec.get("device"),
                            autocast=spec.get("autocast"), label=spec.get("label", ""),
                            tune=spec.get("tune_process", True))
    return workload.step, {"tokens": workload.tokens, "flops": workload.flops, "shape": list(workload.shape),
                           "backend": workload.backend_label, "tuning": workload.tuning}


def _op_call(spec: dict):
    """(call, info) for one implementation of an op from a benchmark module's OPS table."""
    import importlib

    import numpy as np

    module = importlib.import_module(spec["module"])
    impl = spec["impl"]
    torch = importlib.import_module("torch") if impl == "torch" else None
    make = module.OPS[spec["op"]][0]
    call = make(module.SIZES[spec["size"]], np.random.default_rng(0), torch)[impl]
    if impl == "torch":
        threads = f"torch {torch.get_num_threads()} threads"
    else:
        import numba

        from minigrad.accel import tune_process

        tune_process()  # both minigrad paths run with the process settings training gets
        threads = f"numba {numba.get_num_threads()} threads"
    return call, {"impl": impl, "threads": threads}


def _named_workload(spec: dict):
    """(step, info) from a function "module:name" that builds a workload from the spec
    (e.g. benchmarks.pretrained's DPO step and generation)."""
    import importlib

    module, name = spec["workload"].split(":")
    return getattr(importlib.import_module(module), name)(spec)


def _settle(step, settle_s: float) -> int:
    """Run `step` untimed, at least once and until `settle_s` seconds have passed: the
    number of steps run."""
    start, n = time.perf_counter(), 0
    while n == 0 or time.perf_counter() - start < settle_s:
        step()
        n += 1
    return n


def main(spec: dict) -> None:
    if "workload" in spec:
        step, info = _named_workload(spec)
    else:
        step, info = _op_call(spec) if "op" in spec else _dpo_step(spec)
    rss_before = _rss_mib()
    print(json.dumps({"ready": True, **info, "rss_mib": rss_before}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "steps" in request:
            untimed = _settle(step, float(request["settle_s"])) if "settle_s" in request else 0
            seconds = []
            for _ in range(int(request["steps"])):
                start = time.perf_counter()
                step()
                seconds.append(time.perf_counter() - start)
            print(json.dumps({"seconds": seconds, "untimed": untimed}), flush=True)
        elif "memory" in request:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            print(json.dumps({"peak_rss_mib": peak, "rss_before_mib": rss_before}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))

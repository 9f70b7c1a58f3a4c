"""One benchmark worker: a process that holds one DPO workload and runs its steps on request.

    python -m benchmarks.step_worker '{"backend": "numpy", "model": "default", "pairs": {"kind": "builtin"}}'

The side-by-side runner (`benchmarks.side_by_side`) starts one worker per
backend and sends each, in turn, the number of steps to run. Each backend thus
lives in its own process with its own threading runtime, as it does for a user:
torch's OpenMP pool and numba's and OpenBLAS's pools never share two cores in
one process (in one process they did, and the one whose threads waited
passively lost: torch ran 37 instead of 25 ms per step).

Protocol, one JSON line each way:
    <- {"ready": true, "tokens": .., "flops": .., "shape": [rows, T], "backend": "..", "rss_mib": ..}
    -> {"steps": k}            <- {"seconds": [t1, ..., tk]}
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


def main(spec: dict) -> None:
    from .workloads import dpo_workload, model_from_spec, pairs_from_spec

    workload = dpo_workload(spec["backend"], model_from_spec(spec.get("model", "default")),
                            pairs_from_spec(spec.get("pairs", {"kind": "builtin"})), device=spec.get("device"),
                            autocast=spec.get("autocast"), label=spec.get("label", ""))
    rss_before = _rss_mib()
    print(json.dumps({"ready": True, "tokens": workload.tokens, "flops": workload.flops,
                      "shape": list(workload.shape), "backend": workload.backend_label, "rss_mib": rss_before}),
          flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if "steps" in request:
            seconds = []
            for _ in range(int(request["steps"])):
                start = time.perf_counter()
                workload.step()
                seconds.append(time.perf_counter() - start)
            print(json.dumps({"seconds": seconds}), flush=True)
        elif "memory" in request:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
            print(json.dumps({"peak_rss_mib": peak, "rss_before_mib": rss_before}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))

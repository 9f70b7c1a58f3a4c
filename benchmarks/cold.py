"""Cold start: what `python -m dpo demo` spends compiling numba kernels, and the demo's
time with an empty numba cache (cold) and with the cache it left (warm).

    .venv/bin/python -m benchmarks.cold [--warm-repeats 3]

Three kinds of run, each a fresh process on an empty `NUMBA_CACHE_DIR`:

1. the demo with numba's compile events recorded (`numba.core.event`): each kernel
   the demo compiles, with the CPU seconds of its compile (its own and, indented,
   the functions it calls, each compiled once on its first use) and the share spent
   inside LLVM. CPU time, not wall time: numba compiles in one thread, so the
   figure holds when other work shares the machine;
2. the demo cold (nothing cached) and 3. warm (`--warm-repeats` times, with the
   cache run 2 left), each as wall seconds and the process's CPU seconds
   (`--warm-repeats 0`: the compile table alone).

Nothing is asserted: the table is the result (docs/kernels.md, "Cold start").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _record_compiles(out_path):
    """In the child: run the demo with numba's compile events timed in CPU seconds."""
    from numba.core import event

    stack, rows, llvm = [], [], {"depth": 0, "start": 0.0, "total": 0.0}

    class Compile(event.Listener):
        def on_start(self, ev):
            function = ev.data["dispatcher"].py_func
            name = f"{function.__module__}.{function.__name__}"
            stack.append([name, time.process_time(), llvm["total"], len(stack)])

        def on_end(self, ev):
            name, start, llvm_start, depth = stack.pop()
            rows.append({"kernel": name, "depth": depth, "cpu_s": time.process_time() - start,
                         "llvm_s": llvm["total"] - llvm_start})

    class Llvm(event.Listener):  # the LLVM lock is taken around every call into LLVM
        def on_start(self, ev):
            if llvm["depth"] == 0:
                llvm["start"] = time.process_time()
            llvm["depth"] += 1

        def on_end(self, ev):
            llvm["depth"] -= 1
            if llvm["depth"] == 0:
                llvm["total"] += time.process_time() - llvm["start"]

    event.register("numba:compile", Compile())
    event.register("numba:llvm_lock", Llvm())
    from dpo.cli import main

    try:
        main(["demo"])
    except SystemExit as stop:
        if stop.code:
            raise
    with open(out_path, "w") as f:
        json.dump(rows, f)


def _demo(cache_dir, *extra):
    """(wall seconds, CPU seconds) of one `python -m dpo demo` on `cache_dir`."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *extra], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"the demo failed: {result.stderr.strip()[-300:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run(warm_repeats=3):
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache, tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "compiles.json")
        _demo(cache, "-m", "benchmarks.cold", "--record", out)
        rows = json.load(open(out))
    print(f"{'compiled on first use (CPU s)':44s} {'compile':>8s} {'LLVM':>6s}")
    for row in rows:  # children end first: each kernel comes after the functions it called (indented)
        if row["depth"] == 0 or row["kernel"].startswith("minigrad."):  # not numba's own helpers
            name = row["kernel"].removeprefix("minigrad.accel.")
            print(f"{'  ' * row['depth'] + name:44s} {row['cpu_s']:8.2f} {row['llvm_s']:6.2f}")
    total = sum(r["cpu_s"] for r in rows if r["depth"] == 0)
    print(f"{'all kernels':44s} {total:8.2f} {sum(r['llvm_s'] for r in rows if r['depth'] == 0):6.2f}")
    if warm_repeats < 1:
        return
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        cold = _demo(cache, "-m", "dpo", "demo")
        warm = [_demo(cache, "-m", "dpo", "demo") for _ in range(warm_repeats)]
    print(f"python -m dpo demo, cold (empty numba cache): {cold[0]:.2f} s wall, {cold[1]:.2f} s CPU")
    print(f"python -m dpo demo, warm (median of {warm_repeats}): {statistics.median(w[0] for w in warm):.2f} s wall, "
          f"{statistics.median(w[1] for w in warm):.2f} s CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cold", description=__doc__.splitlines()[0])
    parser.add_argument("--warm-repeats", type=int, default=3)
    parser.add_argument("--record", metavar="JSON", help=argparse.SUPPRESS)  # the child of run()
    args = parser.parse_args()
    if args.record:
        _record_compiles(args.record)
    else:
        run(args.warm_repeats)

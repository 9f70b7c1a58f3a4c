"""One DPO step of two checkouts of this repository, side by side: a change's "before
and after on the same machine" in one run.

    git worktree add ../before <commit>
    python -m benchmarks.checkouts ../before .                 # default TinyGPT, numpy
    python -m benchmarks.checkouts ../before . --config large --rounds 8 --block 5

Each checkout runs in a step worker of its own, on its own code (its folder first on
PYTHONPATH and as the working directory) under this interpreter; the two take turns in
blocks of steps, so both see the same load on the machine, which two `make bench` runs
a minute apart do not (absolute times here drift by several percent from one minute to
the next). Prints each side's median step with half its interquartile range (as `make bench`
does), and after / before. Nothing is written.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from .dpo_vs_torch import DEFAULT, LARGE
from .side_by_side import SideBySide
from .timing import median_ms, spread

CONFIGS = {"default": DEFAULT, "large": LARGE}


def compare(before: str, after: str, workload: dict, backend: str = "numpy", rounds: int = 20,
            block: int = 26) -> dict:
    """{"before": seconds, "after": seconds} of `workload` on `backend` in the two checkouts."""
    spec = {"backend": backend, **workload}
    with SideBySide({"before": spec, "after": spec}, roots={"before": before, "after": after}) as run:
        return run.interleaved(rounds=rounds, block=block)


def report(times: dict, label: str) -> str:
    lines = []
    for name in ("before", "after"):
        lines.append(f"{name:6}  {median_ms(times[name]):9.2f} {spread(times[name])} ms  ({len(times[name])} steps)")
    ratio = statistics.median(times["after"]) / statistics.median(times["before"])
    return "\n".join([label] + lines + [f"after / before: {ratio:.3f}"])


def _checkout(path: str) -> str:
    if not os.path.isfile(os.path.join(path, "benchmarks", "step_worker.py")):
        raise argparse.ArgumentTypeError(f"{path}: not a checkout of this repository (no benchmarks/step_worker.py)")
    return os.path.abspath(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.checkouts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=_checkout, help="the checkout before the change")
    parser.add_argument("after", type=_checkout, help="the checkout after it")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="default",
                        help="the bench config (default: default)")
    parser.add_argument("--backend", choices=("numpy", "torch"), default="numpy", help="default: numpy")
    parser.add_argument("--rounds", type=int, default=20, help="turns each side takes (default 20)")
    parser.add_argument("--block", type=int, default=26,
                        help="steps per turn; the first of each is untimed (default 26)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.block < 2:
        parser.error("--rounds must be at least 1 and --block at least 2")
    workload = CONFIGS[args.config]
    times = compare(args.before, args.after, workload, args.backend, args.rounds, args.block)
    print(report(times, f"{workload['label']} ({args.backend}), {args.rounds} rounds of {args.block} steps"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

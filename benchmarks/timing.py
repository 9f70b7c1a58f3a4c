"""Timing side by side: candidates run interleaved (A, B, A, B, ...) after a warm-up,
so drifting machine load hits all of them alike; we report medians."""

from __future__ import annotations

import statistics
import time


def interleaved(candidates: dict, repeats: int = 7, warmup: int = 2) -> dict:
    """{name: [seconds per call, one per repeat]} for zero-argument callables."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median_ms(samples) -> float:
    return 1e3 * statistics.median(samples)


def spread(samples) -> str:
    """The interquartile range as a '±' string in ms (how noisy the median is)."""
    if len(samples) < 4:
        return ""
    q = statistics.quantiles(samples, n=4)
    return f"±{1e3 * (q[2] - q[0]) / 2:.2f}"

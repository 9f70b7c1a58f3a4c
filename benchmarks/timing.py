"""Timing side by side in one process: candidates take turns (A, B, A, B, ...) after a
warm-up, so drifting machine load hits all of them alike; we report medians.

With `block` > 1 each turn is `block` calls in a row and the first is not counted:
it pays for what the previous candidate left behind (its thread pool still spinning
or asleep, its arrays in the caches), which a loop running one implementation does
not see. Measured on the attention kernel at TinyGPT size: 4.8 ms per call when
alternating call by call with the NumPy reference, 2.4 ms in blocks, 2.4 ms alone.
"""

from __future__ import annotations

import statistics
import time


def interleaved(candidates: dict, repeats: int = 7, warmup: int = 2, block: int = 1) -> dict:
    """{name: [seconds per call, (block - 1 or 1) per repeat]} for zero-argument callables."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            for call in range(block):
                start = time.perf_counter()
                fn()
                if call or block == 1:
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

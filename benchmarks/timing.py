"""Summaries of timings: the median in ms, and how noisy it is (half the interquartile range).
Timings come from `side_by_side.py`: each implementation in its own worker process, the
workers taking turns in blocks of calls."""

from __future__ import annotations

import statistics


def median_ms(samples) -> float:
    return 1e3 * statistics.median(samples)


def spread(samples) -> str:
    """The interquartile range as a '±' string in ms (how noisy the median is)."""
    if len(samples) < 4:
        return ""
    q = statistics.quantiles(samples, n=4)
    return f"±{1e3 * (q[2] - q[0]) / 2:.2f}"

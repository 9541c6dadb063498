"""The statistics the gates rest on: percentiles, bootstrap intervals, the rule of three.

Pure functions over lists of floats; the bootstrap takes its seed so a report is reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[Sequence[float]], float],
    *,
    seed: int = 0,
    resamples: int = 1000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``statistic`` over ``values``."""
    if not values:
        raise ValueError("bootstrap of no values")
    rng = random.Random(seed)  # noqa: S311 - resampling, not cryptography
    n = len(values)
    estimates = sorted(statistic(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - level) / 2 * 100
    return percentile(estimates, tail), percentile(estimates, 100 - tail)


def rule_of_three(n: int) -> float:
    """95% upper bound on a failure rate when none of ``n`` trials failed (3/n, capped at 1)."""
    return 1.0 if n <= 0 else min(1.0, 3.0 / n)

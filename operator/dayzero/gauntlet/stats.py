"""The statistics the gates rest on: percentiles, bootstrap intervals, the rule of three, and
the paired tests of the diff (exact McNemar, paired bootstrap, non-inferiority, the minimum
detectable effect).

Pure functions over lists of floats; the bootstrap takes its seed so a report is reproducible.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from typing import Literal

Decision = Literal["better", "non-inferior", "inconclusive", "inferior"]


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


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs: the binomial test
    of ``min(b, c)`` successes in ``b + c`` trials at 1/2, doubled and capped at 1."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must not be negative")
    n = b + c
    if n == 0:
        return 1.0
    tail: float = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_bootstrap(
    differences: Sequence[float],
    *,
    seed: int = 0,
    resamples: int = 1000,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Mean of paired differences and its percentile-bootstrap interval: (mean, low, high).
    The pairs are resampled together, which is what keeps the test paired."""
    if not differences:
        raise ValueError("bootstrap of no differences")
    low, high = bootstrap_ci(
        differences, statistics.fmean, seed=seed, resamples=resamples, level=level
    )
    return statistics.fmean(differences), low, high


def non_inferiority(low: float, high: float, margin: float) -> Decision:
    """The decision on (candidate - baseline) from its interval and the margin.

    ``better``: the whole interval is above 0. ``non-inferior``: the lower bound is above
    ``-margin`` (this is what promotion needs). ``inferior``: the whole interval is below
    ``-margin``. ``inconclusive``: the interval straddles ``-margin``; more data would decide.
    """
    if low > 0:
        return "better"
    if low > -margin:
        return "non-inferior"
    if high < -margin:
        return "inferior"
    return "inconclusive"


def min_detectable_effect(n: int, sd: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest mean paired difference a two-sided test at ``alpha`` detects with ``power``
    over ``n`` pairs whose differences have standard deviation ``sd``:
    ``(z(1 - alpha/2) + z(power)) * sd / sqrt(n)``."""
    if n <= 0:
        return math.inf
    z = statistics.NormalDist()
    return float((z.inv_cdf(1 - alpha / 2) + z.inv_cdf(power)) * sd / math.sqrt(n))

"""The diff's statistics against values computed by hand (and by R's binom.test)."""

from __future__ import annotations

import math

import pytest

from dayzero.gauntlet.stats import (
    mcnemar_exact,
    min_detectable_effect,
    non_inferiority,
    paired_bootstrap,
)


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (0, 0, 1.0),
        (5, 5, 1.0),
        (0, 5, 0.0625),  # 2 * (1/2)^5
        (10, 0, 0.001953125),  # 2 * (1/2)^10
        (1, 9, 0.021484375),  # R: binom.test(1, 10)$p.value
        (7, 2, 0.1796875),  # R: binom.test(2, 9)$p.value
        (4, 4, 1.0),
        (30, 10, 0.0022214),  # 2 * sum(C(40, k), k <= 10) / 2^40
    ],
)
def test_mcnemar_exact_matches_the_binomial_test(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p, rel=1e-4)
    assert mcnemar_exact(c, b) == mcnemar_exact(b, c)  # symmetric


def test_mcnemar_rejects_negative_counts():
    with pytest.raises(ValueError, match="negative"):
        mcnemar_exact(-1, 3)


def test_the_paired_bootstrap_is_seeded_and_brackets_the_mean():
    diffs = [0.0] * 12 + [1.0] * 6 + [-1.0] * 2
    mean, low, high = paired_bootstrap(diffs, seed=3, resamples=2000)
    assert mean == pytest.approx(0.2)
    assert low < mean < high
    assert (low, high) == paired_bootstrap(diffs, seed=3, resamples=2000)[1:]
    # The normal approximation's interval for comparison: 0.2 +- 1.96 * sd / sqrt(20).
    sd = math.sqrt(sum((d - 0.2) ** 2 for d in diffs) / 20)
    assert low == pytest.approx(0.2 - 1.96 * sd / math.sqrt(20), abs=0.06)
    assert high == pytest.approx(0.2 + 1.96 * sd / math.sqrt(20), abs=0.06)


def test_pairing_removes_the_items_own_spread():
    # Scores vary a lot by item, but the candidate is always exactly 0.1 better.
    baseline = [0.1, 0.9, 0.4, 0.7, 0.2, 0.8, 0.3, 0.6]
    diffs = [(b + 0.1) - b for b in baseline]
    mean, low, high = paired_bootstrap(diffs, seed=0, resamples=500)
    assert (mean, low, high) == pytest.approx((0.1, 0.1, 0.1))


@pytest.mark.parametrize(
    ("low", "high", "decision"),
    [
        (0.01, 0.2, "better"),
        (-0.04, 0.1, "non-inferior"),
        (-0.2, 0.1, "inconclusive"),
        (-0.5, -0.06, "inferior"),
        (-0.05, 0.0, "inconclusive"),  # the bound must be above -margin, not at it
    ],
)
def test_non_inferiority_decisions(low, high, decision):
    assert non_inferiority(low, high, 0.05) == decision


def test_minimum_detectable_effect():
    # (z(0.975) + z(0.8)) * sd / sqrt(n) = (1.95996 + 0.84162) * 1 / 10.
    assert min_detectable_effect(100, 1.0) == pytest.approx(0.280159, rel=1e-5)
    assert min_detectable_effect(400, 1.0) == pytest.approx(0.280159 / 2, rel=1e-5)
    assert min_detectable_effect(0, 1.0) == math.inf
    # Stricter alpha, larger effect needed.
    assert min_detectable_effect(100, 1.0, alpha=0.01) > min_detectable_effect(100, 1.0)

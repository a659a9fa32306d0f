"""Confidence intervals for the proportions and medians aisec reports.

Wilson's score interval for binomial proportions (well behaved at 0 and 1, unlike the normal
approximation), the exact Clopper–Pearson interval (conservative; for certified accuracies) and a
distribution-free order-statistic interval for medians.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict


class Interval(BaseModel):
    """A two-sided confidence interval."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    low: float
    high: float
    level: float = 0.95
    method: str

    def contains(self, value: float) -> bool:
        return self.low - 1e-12 <= value <= self.high + 1e-12


def wilson(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion ``successes / n``."""
    if n <= 0:
        return Interval(low=0.0, high=1.0, level=level, method="wilson")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, {n}], got {successes}")
    from scipy import stats  # lazy: scipy costs ~1 s at import and most callers never need it

    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Exact at the boundaries: the interval must contain the point estimate.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low=low, high=high, level=level, method="wilson")


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> Interval:
    """Exact (Clopper–Pearson) two-sided interval for a binomial proportion ``successes / n``.

    Conservative: its coverage is at least ``level`` for every true proportion. The interval certified
    accuracies are reported with (a certificate is a guarantee; its CI should be one too).
    """
    if n <= 0:
        return Interval(low=0.0, high=1.0, level=level, method="clopper-pearson")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, {n}], got {successes}")
    from scipy import stats

    a = (1 - level) / 2
    low = 0.0 if successes == 0 else float(stats.beta.ppf(a, successes, n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.isf(a, successes + 1, n - successes))
    return Interval(low=low, high=high, level=level, method="clopper-pearson")


def median_interval(values: np.ndarray, level: float = 0.95) -> Interval:
    """Distribution-free interval for the median from order statistics (binomial, n ≥ 1)."""
    v = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    n = v.size
    if n == 0:
        return Interval(low=math.nan, high=math.nan, level=level, method="order-statistic")
    from scipy import stats

    alpha = 1 - level
    lo_idx = int(stats.binom.ppf(alpha / 2, n, 0.5))
    hi_idx = int(stats.binom.isf(alpha / 2, n, 0.5))
    lo_idx = min(max(lo_idx - 1, 0), n - 1)
    hi_idx = min(max(hi_idx, 0), n - 1)
    return Interval(low=float(v[lo_idx]), high=float(v[hi_idx]), level=level, method="order-statistic")

"""How well two per-sample rankings agree: Spearman's ρ with a percentile-bootstrap interval.

Used to ask whether a cheap robustness ranking (SPADE node scores) orders the samples as the costly
ones do (CLEVER scores, DeepFool's minimal adversarial distances). The bootstrap resamples the pairs
``(a_i, b_i)`` with replacement; replicates where one side is constant (ρ undefined) are dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aisec.core.errors import DataError
from aisec.core.stats import Interval


@dataclass(frozen=True)
class Agreement:
    """Spearman's ρ of ``n`` pairs and its bootstrap interval (``nan`` when ρ is undefined)."""

    rho: float
    interval: Interval
    n: int
    resamples: int


def spearman_agreement(a: np.ndarray, b: np.ndarray, *, resamples: int = 1000, level: float = 0.95,
                       seed: int = 0) -> Agreement:
    """Spearman's ρ between ``a`` and ``b`` (``scipy.stats.spearmanr``; infinite values rank last) and its
    ``level`` percentile-bootstrap interval over ``resamples`` resamplings of the pairs."""
    from scipy.stats import rankdata, spearmanr

    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise DataError(f"rank agreement: {x.size} values against {y.size}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    n = int(x.size)
    nan = Interval(low=math.nan, high=math.nan, level=level, method="bootstrap-percentile")
    if n < 3:
        return Agreement(rho=math.nan, interval=nan, n=n, resamples=0)
    rx, ry = rankdata(x), rankdata(y)  # ranks once: +inf (never fooled) ranks above every finite distance
    rho = float(spearmanr(rx, ry).statistic) if np.ptp(rx) > 0 and np.ptp(ry) > 0 else math.nan
    if not math.isfinite(rho) or resamples < 1:
        return Agreement(rho=rho, interval=nan, n=n, resamples=0)
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(resamples):
        i = rng.integers(0, n, n)
        bx, by = rx[i], ry[i]
        if np.ptp(bx) == 0 or np.ptp(by) == 0:
            continue
        reps.append(float(spearmanr(bx, by).statistic))
    if not reps:
        return Agreement(rho=rho, interval=nan, n=n, resamples=0)
    lo, hi = np.quantile(np.asarray(reps), [(1 - level) / 2, (1 + level) / 2])
    return Agreement(rho=rho, interval=Interval(low=float(lo), high=float(hi), level=level,
                                                method="bootstrap-percentile"), n=n, resamples=len(reps))


__all__ = ["Agreement", "spearman_agreement"]

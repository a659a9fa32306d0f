"""Metrics of a detector that rejects inputs: the rejection ROC and its operating point.

- :func:`roc_auc_delong` — the area under the ROC curve (adversarial = positive) with DeLong's 95%
  interval (DeLong, DeLong & Clarke-Pearson 1988), computed with the midrank algorithm of Sun & Xu 2014
  (https://doi.org/10.1109/LSP.2014.2337313). The AUC equals scikit-learn's ``roc_auc_score``; the
  variance is that of the Mann-Whitney statistic from its structural components (checked in the tests
  against the direct O(m·n) sum).
- :func:`operating_point` — precision, recall (the detection rate) and F1 at the detector's threshold,
  with Wilson intervals for the rates.
- :func:`roc_points` — the curve itself (false-positive rate, true-positive rate), for the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm as _normal

from aisec.core.stats import Interval, wilson


def _midranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their mean rank."""
    order = np.argsort(v, kind="mergesort")
    s = v[order]
    n = len(v)
    ranks = np.empty(n)
    i = 0
    while i < n:
        j = i
        while j < n and s[j] == s[i]:
            j += 1
        ranks[i:j] = 0.5 * (i + j - 1) + 1
        i = j
    out = np.empty(n)
    out[order] = ranks
    return out


def roc_auc_delong(negatives: np.ndarray, positives: np.ndarray, level: float = 0.95) -> tuple[float, Interval]:
    """AUC of ``positives`` (adversarial scores) against ``negatives`` (clean scores), with DeLong's interval.

    The interval is the normal one on the AUC, clipped to [0, 1]; with fewer than two of either class it
    is the uninformative [0, 1].
    """
    neg = np.asarray(negatives, dtype=float).ravel()
    pos = np.asarray(positives, dtype=float).ravel()
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return math.nan, Interval(low=0.0, high=1.0, level=level, method="delong")
    tx, ty = _midranks(pos), _midranks(neg)
    tz = _midranks(np.r_[pos, neg])
    auc = float(tz[:m].sum() / (m * n) - (m + 1) / (2 * n))
    if m < 2 or n < 2:
        return auc, Interval(low=0.0, high=1.0, level=level, method="delong")
    v01 = (tz[:m] - tx) / n  # per positive: the share of negatives below it (ties count half)
    v10 = 1.0 - (tz[m:] - ty) / m  # per negative: the share of positives above it
    var = float(np.var(v01, ddof=1) / m + np.var(v10, ddof=1) / n)
    half = float(_normal.ppf(0.5 + level / 2)) * math.sqrt(max(var, 0.0))
    return auc, Interval(low=max(0.0, auc - half), high=min(1.0, auc + half), level=level, method="delong")


def roc_points(negatives: np.ndarray, positives: np.ndarray) -> tuple[list[float], list[float]]:
    """The ROC curve: false-positive and true-positive rates at every distinct threshold (from reject-all)."""
    neg = np.asarray(negatives, dtype=float).ravel()
    pos = np.asarray(positives, dtype=float).ravel()
    thresholds = np.unique(np.r_[neg, pos])[::-1]
    fpr = [0.0] + [float((neg >= t).mean()) if neg.size else 0.0 for t in thresholds]
    tpr = [0.0] + [float((pos >= t).mean()) if pos.size else 0.0 for t in thresholds]
    return fpr, tpr


@dataclass(frozen=True)
class OperatingPoint:
    """Precision, recall (detection rate) and F1 at a threshold; adversarial inputs are the positives."""

    threshold: float
    true_positives: int
    false_positives: int
    positives: int
    negatives: int
    precision: float
    recall: float
    f1: float
    false_positive_rate: float

    def recall_ci(self) -> Interval:
        return wilson(self.true_positives, self.positives)

    def precision_ci(self) -> Interval:
        return wilson(self.true_positives, self.true_positives + self.false_positives)

    def fpr_ci(self) -> Interval:
        return wilson(self.false_positives, self.negatives)


def operating_point(negatives: np.ndarray, positives: np.ndarray, threshold: float) -> OperatingPoint:
    """The detector's confusion at ``threshold`` (a score above it is rejected = flagged adversarial).

    Precision with no input flagged is 0 (scikit-learn's ``zero_division=0``), as is F1 then.
    """
    neg = np.asarray(negatives, dtype=float).ravel()
    pos = np.asarray(positives, dtype=float).ravel()
    tp, fp = int((pos > threshold).sum()), int((neg > threshold).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / pos.size if pos.size else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return OperatingPoint(threshold=threshold, true_positives=tp, false_positives=fp, positives=int(pos.size),
                          negatives=int(neg.size), precision=precision, recall=recall, f1=f1,
                          false_positive_rate=fp / neg.size if neg.size else 0.0)

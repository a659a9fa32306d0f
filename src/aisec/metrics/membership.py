"""How well a membership-inference score separates members from non-members.

Input: one score per sample, higher meaning "more likely a member", for n₁ members and n₀
non-members. Output (:class:`MembershipMetrics`):

- **ROC AUC** = P(score(member) > score(non-member)) + ½ P(tie), the Mann–Whitney statistic, with
  DeLong's variance (DeLong, DeLong & Clarke-Pearson 1988; the O(n log n) midrank form of Sun & Xu
  2014). DeLong is the standard nonparametric variance of this U-statistic, deterministic (evidence
  re-runs to the same interval) and costs one sort, where a bootstrap costs hundreds of re-sorts
  and is itself random. The interval is formed on the logit scale so it stays inside [0, 1]; at
  AUC ∈ {0, 1} (zero DeLong variance) the Wilson bound of the smaller sample is used instead.
- **Balanced accuracy** of the attack as a classifier, ½(TPR + TNR), at a threshold chosen by
  2-fold cross-fitting (the threshold maximising balanced accuracy on one half of the data is
  applied to the other half, and vice versa), so the number is not inflated by choosing the
  threshold on the samples it is scored on. Interval: Wilson for TPR and TNR, combined by MOVER
  (Zou & Donner 2008) for their mean.
- **TPR at a fixed FPR α** (0.1% and 1% by default; Carlini et al. 2022): the threshold is the
  smallest one whose empirical FPR on non-members is ≤ α, and TPR is the fraction of members above
  it; interval: Wilson over the members, conditional on the threshold. It needs at least
  ⌈1/α⌉ non-members — with fewer, the lowest non-zero FPR the data can show exceeds α, so the value
  is ``None`` with a warning rather than a number that would mean nothing.
- **Per-class** AUC and TPR@FPR on the members and non-members of each class.
- The **ROC curve** (FPR, TPR) thinned to a few hundred points for log-log plots.

>>> m = membership_metrics(scores_members, scores_nonmembers)
>>> m.auc, m.auc_ci.low, m.tpr_at[0.001].value
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats
from scipy.stats import rankdata

from aisec.core.stats import Interval, wilson

DEFAULT_FPRS = (0.001, 0.01)


@dataclass(frozen=True)
class TprAtFpr:
    """TPR at a target FPR; ``value`` is None when the non-members are too few to measure it."""

    fpr: float
    value: float | None
    interval: Interval | None
    achieved_fpr: float | None
    threshold: float | None
    members_above: int | None
    needed_nonmembers: int
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "fpr": self.fpr, "value": self.value,
            "ci": self.interval.model_dump() if self.interval else None,
            "achieved_fpr": self.achieved_fpr, "threshold": self.threshold,
            "needed_nonmembers": self.needed_nonmembers, "reason": self.reason,
        }


@dataclass(frozen=True)
class MembershipMetrics:
    """AUC, balanced accuracy and TPR at low FPR with intervals, per class and overall."""

    n_members: int
    n_nonmembers: int
    auc: float
    auc_ci: Interval
    balanced_accuracy: float
    balanced_accuracy_ci: Interval
    tpr_at: dict[float, TprAtFpr]
    roc_fpr: np.ndarray
    roc_tpr: np.ndarray
    per_class: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self, *, roc: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "n_members": self.n_members, "n_nonmembers": self.n_nonmembers,
            "auc": self.auc, "auc_ci": self.auc_ci.model_dump(),
            "balanced_accuracy": self.balanced_accuracy,
            "balanced_accuracy_ci": self.balanced_accuracy_ci.model_dump(),
            "tpr_at_fpr": {f"{k:g}": v.as_dict() for k, v in self.tpr_at.items()},
            "per_class": self.per_class, "warnings": list(self.warnings),
        }
        if roc:
            d["roc"] = {"fpr": self.roc_fpr.tolist(), "tpr": self.roc_tpr.tolist()}
        return d


def auc_delong(pos: np.ndarray, neg: np.ndarray, level: float = 0.95) -> tuple[float, Interval, float]:
    """ROC AUC (ties count ½) with DeLong's standard error and a logit-scale interval.

    Returns ``(auc, interval, standard_error)``.
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return math.nan, Interval(low=0.0, high=1.0, level=level, method="delong-logit"), math.nan
    both = np.concatenate([pos, neg])
    r_all = rankdata(both)  # midranks handle ties as ½
    r_pos, r_neg = rankdata(pos), rankdata(neg)
    v10 = (r_all[:m] - r_pos) / n  # per member: fraction of non-members below it
    v01 = 1.0 - (r_all[m:] - r_neg) / m  # per non-member: fraction of members above it
    auc = float(v10.mean())
    s10 = float(v10.var(ddof=1)) if m > 1 else 0.0
    s01 = float(v01.var(ddof=1)) if n > 1 else 0.0
    se = math.sqrt(s10 / m + s01 / n)
    z = float(stats.norm.ppf(0.5 + level / 2))
    if se <= 0 or auc <= 0.0 or auc >= 1.0:
        # Degenerate: every pair ordered the same way. Bound the unseen discordance by the
        # Wilson interval of the smaller sample (no discordant example among min(m, n)).
        k = min(m, n)
        w = wilson(k if auc >= 0.5 else 0, k, level)
        lo, hi = (w.low, 1.0) if auc >= 0.5 else (0.0, w.high)
        if 0.0 < auc < 1.0:
            lo, hi = min(lo, auc), max(hi, auc)
        return auc, Interval(low=lo, high=hi, level=level, method="delong-logit"), se
    lg = math.log(auc / (1 - auc))
    half = z * se / (auc * (1 - auc))
    lo = 1 / (1 + math.exp(-(lg - half)))
    hi = 1 / (1 + math.exp(-(lg + half)))
    return auc, Interval(low=lo, high=hi, level=level, method="delong-logit"), se


def roc_curve(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full ROC: ``(fpr, tpr, thresholds)``, decision rule ``score >= threshold``, from (0, 0)."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    s = np.concatenate([pos, neg])
    lab = np.concatenate([np.ones(pos.size, bool), np.zeros(neg.size, bool)])
    order = np.argsort(-s, kind="stable")
    s, lab = s[order], lab[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # last index of each distinct score
    tp = np.cumsum(lab)[last]
    fp = np.cumsum(~lab)[last]
    tpr = np.r_[0.0, tp / max(pos.size, 1)]
    fpr = np.r_[0.0, fp / max(neg.size, 1)]
    thr = np.r_[np.inf, s[last]]
    return fpr, tpr, thr


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float, level: float = 0.95) -> TprAtFpr:
    """TPR at the largest threshold-achievable FPR ≤ ``fpr``; ``None`` if non-members are too few."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    need = math.ceil(1.0 / fpr - 1e-9)
    if neg.size < need:
        return TprAtFpr(
            fpr=fpr, value=None, interval=None, achieved_fpr=None, threshold=None, members_above=None,
            needed_nonmembers=need,
            reason=f"TPR at {fpr:.3g} FPR needs at least {need} non-members to resolve one false positive; "
                   f"only {neg.size} given",
        )
    if pos.size == 0:
        return TprAtFpr(fpr=fpr, value=None, interval=None, achieved_fpr=None, threshold=None,
                        members_above=None, needed_nonmembers=need, reason="no members")
    # Allowed false positives: the k highest non-member scores may lie at or above the threshold.
    k = math.floor(fpr * neg.size + 1e-9)
    neg_sorted = np.sort(neg)[::-1]
    # Threshold strictly above the (k+1)-th highest non-member: rule "score > t" with t = that score.
    t = float(neg_sorted[k]) if k < neg.size else -math.inf
    fp = int((neg > t).sum())
    tp = int((pos > t).sum())
    return TprAtFpr(
        fpr=fpr, value=tp / pos.size, interval=wilson(tp, pos.size, level), achieved_fpr=fp / neg.size,
        threshold=t, members_above=tp, needed_nonmembers=need,
    )


def _best_threshold(pos: np.ndarray, neg: np.ndarray) -> float:
    """Threshold t (rule ``score >= t``) maximising TPR − FPR on the given samples."""
    fpr, tpr, thr = roc_curve(pos, neg)
    i = int(np.argmax(tpr - fpr))
    t = float(thr[i])
    # Midway to the next lower score, so unseen scores in the gap are split evenly.
    both = np.concatenate([pos, neg])
    below = both[both < t]
    return (t + float(below.max())) / 2 if below.size and np.isfinite(t) else t


def balanced_accuracy_crossfit(
    pos: np.ndarray, neg: np.ndarray, *, seed: int = 0, level: float = 0.95
) -> tuple[float, Interval, int, int]:
    """Balanced accuracy with a 2-fold cross-fitted threshold and a MOVER-Wilson interval.

    Returns ``(value, interval, true_positives, true_negatives)``.
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    rng = np.random.default_rng(seed)
    fp_ = rng.permutation(pos.size) % 2
    fn_ = rng.permutation(neg.size) % 2
    tp = tn = 0
    for f in (0, 1):
        fit_p, fit_n = pos[fp_ != f], neg[fn_ != f]
        ev_p, ev_n = pos[fp_ == f], neg[fn_ == f]
        if fit_p.size == 0 or fit_n.size == 0:
            t = float(np.median(np.concatenate([pos, neg])))
        else:
            t = _best_threshold(fit_p, fit_n)
        tp += int((ev_p >= t).sum())
        tn += int((ev_n < t).sum())
    tpr, tnr = tp / max(pos.size, 1), tn / max(neg.size, 1)
    value = 0.5 * (tpr + tnr)
    w1, w0 = wilson(tp, pos.size, level), wilson(tn, neg.size, level)
    lo = value - 0.5 * math.sqrt((tpr - w1.low) ** 2 + (tnr - w0.low) ** 2)
    hi = value + 0.5 * math.sqrt((w1.high - tpr) ** 2 + (w0.high - tnr) ** 2)
    return value, Interval(low=max(0.0, lo), high=min(1.0, hi), level=level, method="crossfit-mover-wilson"), tp, tn


def thin_roc(fpr: np.ndarray, tpr: np.ndarray, points: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """At most ~``points`` ROC points, log-spaced in FPR (kept dense at low FPR for log-log plots)."""
    if fpr.size <= points:
        return fpr, tpr
    pos = fpr[fpr > 0]
    lo = float(pos.min()) if pos.size else 1e-6
    grid = np.unique(np.r_[0.0, np.geomspace(lo, 1.0, points)])
    # For each grid FPR, the best TPR achievable at FPR ≤ grid value (a step ROC).
    idx = np.searchsorted(fpr, grid, side="right") - 1
    idx = np.clip(idx, 0, fpr.size - 1)
    return fpr[idx], tpr[idx]


def membership_metrics(
    scores_members: np.ndarray,
    scores_nonmembers: np.ndarray,
    *,
    labels_members: np.ndarray | None = None,
    labels_nonmembers: np.ndarray | None = None,
    class_names: list[str] | tuple[str, ...] | None = None,
    fprs: tuple[float, ...] | list[float] = DEFAULT_FPRS,
    level: float = 0.95,
    seed: int = 0,
    roc_points: int = 300,
) -> MembershipMetrics:
    """All membership metrics for one attack's scores (higher score = more likely a member)."""
    pos = np.asarray(scores_members, dtype=np.float64).reshape(-1)
    neg = np.asarray(scores_nonmembers, dtype=np.float64).reshape(-1)
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"need members and non-members, got {pos.size} and {neg.size}")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("membership scores contain NaN or infinite values")
    auc, auc_ci, _ = auc_delong(pos, neg, level)
    ba, ba_ci, _, _ = balanced_accuracy_crossfit(pos, neg, seed=seed, level=level)
    warnings: list[str] = []
    tpr_at: dict[float, TprAtFpr] = {}
    for a in fprs:
        t = tpr_at_fpr(pos, neg, float(a), level)
        tpr_at[float(a)] = t
        if t.value is None:
            warnings.append(t.reason)
    fpr, tpr, _ = roc_curve(pos, neg)
    rf, rt = thin_roc(fpr, tpr, roc_points)
    per_class: list[dict[str, Any]] = []
    if labels_members is not None and labels_nonmembers is not None:
        lm = np.asarray(labels_members).reshape(-1)
        ln = np.asarray(labels_nonmembers).reshape(-1)
        for c in np.union1d(np.unique(lm), np.unique(ln)):
            p, q = pos[lm == c], neg[ln == c]
            row: dict[str, Any] = {
                "class": int(c), "name": class_names[int(c)] if class_names and int(c) < len(class_names) else str(c),
                "n_members": int(p.size), "n_nonmembers": int(q.size),
            }
            if p.size and q.size:
                a_c, ci_c, _ = auc_delong(p, q, level)
                row.update(auc=a_c, auc_ci=ci_c.model_dump())
                for a in fprs:
                    t = tpr_at_fpr(p, q, float(a), level)
                    row[f"tpr_at_{a:g}"] = t.value
            else:
                row.update(auc=None, auc_ci=None)
            per_class.append(row)
    return MembershipMetrics(
        n_members=int(pos.size), n_nonmembers=int(neg.size), auc=auc, auc_ci=auc_ci,
        balanced_accuracy=ba, balanced_accuracy_ci=ba_ci, tpr_at=tpr_at, roc_fpr=rf, roc_tpr=rt,
        per_class=per_class, warnings=warnings,
    )


def fpr_label(fpr: float) -> str:
    """Metric-id fragment for an FPR: 0.001 → '0.1pct', 0.01 → '1pct'."""
    return f"{fpr * 100:g}pct"

"""Detector metrics against independent references: scikit-learn's AUC and precision/recall/F1, the direct
O(m·n) DeLong structural components, and a bootstrap of the AUC."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score, roc_curve

from aisec.defences.detect.metrics import operating_point, roc_auc_delong, roc_points


def _delong_direct(neg: np.ndarray, pos: np.ndarray) -> tuple[float, float]:
    """DeLong et al. 1988 written out: psi(x, y) = 1 (x > y), 1/2 (tie), 0; V10, V01 and their variances."""
    psi = (pos[:, None] > neg[None, :]).astype(float) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(1), psi.mean(0)  # per positive, per negative
    return float(auc), float(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)


@pytest.mark.parametrize("ties", [False, True])
def test_delong_matches_sklearn_auc_and_the_direct_variance(ties: bool) -> None:
    rng = np.random.default_rng(0)
    neg, pos = rng.normal(0, 1, 60), rng.normal(0.8, 1, 45)
    if ties:
        neg, pos = np.round(neg, 1), np.round(pos, 1)
    auc, ci = roc_auc_delong(neg, pos)
    labels = np.r_[np.zeros(neg.size), np.ones(pos.size)]
    assert auc == pytest.approx(roc_auc_score(labels, np.r_[neg, pos]), abs=1e-12)
    auc_d, var = _delong_direct(neg, pos)
    assert auc == pytest.approx(auc_d, abs=1e-12)
    half = 1.959963984540054 * np.sqrt(var)
    assert ci.low == pytest.approx(auc - half, abs=1e-9) and ci.high == pytest.approx(auc + half, abs=1e-9)
    assert ci.low < auc < ci.high and ci.method == "delong"


def test_delong_interval_has_the_bootstrap_width() -> None:
    rng = np.random.default_rng(1)
    neg, pos = rng.normal(0, 1, 150), rng.normal(1.0, 1, 150)
    _, ci = roc_auc_delong(neg, pos)
    boots = []
    for _ in range(400):
        n, p = rng.choice(neg, neg.size), rng.choice(pos, pos.size)
        boots.append(_delong_direct(n, p)[0])
    lo, hi = np.quantile(boots, [0.025, 0.975])
    assert (ci.high - ci.low) == pytest.approx(hi - lo, rel=0.2)


def test_separated_scores_give_auc_one_and_degenerate_inputs_are_uninformative() -> None:
    auc, ci = roc_auc_delong(np.zeros(5), np.ones(5))
    assert auc == 1.0 and ci.high == 1.0
    auc, ci = roc_auc_delong(np.zeros(5), np.array([]))
    assert np.isnan(auc) and (ci.low, ci.high) == (0.0, 1.0)


def test_operating_point_matches_sklearn() -> None:
    rng = np.random.default_rng(2)
    neg, pos = rng.normal(0, 1, 80), rng.normal(1.5, 1, 50)
    thr = float(np.quantile(neg, 0.95))
    op = operating_point(neg, pos, thr)
    labels = np.r_[np.zeros(80), np.ones(50)].astype(int)
    flagged = (np.r_[neg, pos] > thr).astype(int)
    p, r, f, _ = precision_recall_fscore_support(labels, flagged, average="binary", zero_division=0)
    assert (op.precision, op.recall, op.f1) == pytest.approx((p, r, f))
    assert op.false_positive_rate == pytest.approx((neg > thr).mean())
    assert op.recall_ci().low <= op.recall <= op.recall_ci().high
    none = operating_point(neg, pos, 1e9)
    assert (none.precision, none.recall, none.f1) == (0.0, 0.0, 0.0)


def test_roc_points_match_sklearn_curve() -> None:
    rng = np.random.default_rng(3)
    neg, pos = rng.normal(0, 1, 30), rng.normal(1, 1, 20)
    fpr, tpr = roc_points(neg, pos)
    ref_fpr, ref_tpr, _ = roc_curve(np.r_[np.zeros(30), np.ones(20)], np.r_[neg, pos], drop_intermediate=False)
    assert np.allclose(fpr, ref_fpr) and np.allclose(tpr, ref_tpr)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and fpr[-1] == tpr[-1] == 1.0

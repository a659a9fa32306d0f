from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score, roc_curve

from aisec.metrics.membership import (
    auc_delong,
    balanced_accuracy_crossfit,
    fpr_label,
    membership_metrics,
    tpr_at_fpr,
)


def _delong_slow(pos, neg):
    """DeLong's variance from its definition: structural components over all pairs (O(mn))."""
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    return psi.mean(), v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size


def test_auc_and_delong_variance_match_definitions_with_ties():
    rng = np.random.default_rng(0)
    pos = np.round(rng.normal(0.4, 1, 300), 1)  # rounding makes many ties
    neg = np.round(rng.normal(0.0, 1, 200), 1)
    auc, ci, se = auc_delong(pos, neg)
    want_auc, want_var = _delong_slow(pos, neg)
    assert auc == pytest.approx(want_auc, abs=1e-12)
    assert auc == pytest.approx(roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[pos, neg]), abs=1e-12)
    assert se**2 == pytest.approx(want_var, rel=1e-9)
    assert ci.low < auc < ci.high and ci.method == "delong-logit"


def test_auc_interval_at_perfect_separation_stays_in_range():
    auc, ci, _ = auc_delong(np.arange(10.0, 60.0), np.arange(0.0, 10.0))
    assert auc == 1.0 and ci.high == 1.0 and 0.5 < ci.low < 1.0


def test_tpr_at_fpr_is_the_best_tpr_with_fpr_at_most_alpha():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1.0, 1, 2000), rng.normal(0, 1, 5000)
    for a in (0.001, 0.01, 0.1):
        t = tpr_at_fpr(pos, neg, a)
        fpr, tpr, _ = roc_curve(np.r_[np.ones(2000), np.zeros(5000)], np.r_[pos, neg])
        assert t.value == pytest.approx(tpr[fpr <= a + 1e-12].max())
        assert t.achieved_fpr <= a
        assert t.interval.contains(t.value)


def test_too_few_nonmembers_gives_no_number_and_a_reason():
    rng = np.random.default_rng(2)
    m = membership_metrics(rng.normal(1, 1, 500), rng.normal(0, 1, 500))
    assert m.tpr_at[0.001].value is None and m.tpr_at[0.001].interval is None
    assert m.tpr_at[0.001].needed_nonmembers == 1000
    assert any("1000 non-members" in w for w in m.warnings)
    assert m.tpr_at[0.01].value is not None  # 500 ≥ 100
    assert fpr_label(0.001) == "0.1pct" and fpr_label(0.01) == "1pct"


def test_balanced_accuracy_is_honest():
    rng = np.random.default_rng(3)
    same = balanced_accuracy_crossfit(rng.normal(size=400), rng.normal(size=400))
    assert same[1].contains(0.5)  # a threshold fitted on the same data would look better than chance
    sep = balanced_accuracy_crossfit(np.arange(1000.0, 1100.0), np.arange(0.0, 100.0))
    assert sep[0] == 1.0


def test_per_class_rows_and_roc_thinning():
    rng = np.random.default_rng(4)
    y_in, y_out = rng.integers(0, 3, 3000), rng.integers(0, 3, 3000)
    pos = rng.normal(0, 1, 3000) + (y_in == 2)  # only class 2 leaks
    neg = rng.normal(0, 1, 3000)
    m = membership_metrics(pos, neg, labels_members=y_in, labels_nonmembers=y_out, class_names=["a", "b", "c"])
    rows = {r["name"]: r for r in m.per_class}
    assert rows["c"]["auc"] > 0.65 and abs(rows["a"]["auc"] - 0.5) < 0.06
    assert sum(r["n_members"] for r in m.per_class) == 3000
    assert m.roc_fpr.size <= 302 and np.all(np.diff(m.roc_fpr) >= 0) and np.all(np.diff(m.roc_tpr) >= 0)
    d = m.as_dict()
    assert d["tpr_at_fpr"]["0.01"]["value"] == m.tpr_at[0.01].value


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        membership_metrics(np.array([0.1, np.nan]), np.array([0.2, 0.3]))
    with pytest.raises(ValueError, match="need members"):
        membership_metrics(np.array([]), np.array([0.2]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=2, max_size=40), st.lists(st.integers(-5, 5), min_size=2, max_size=40))
def test_properties_auc_symmetry_and_interval(pos, neg):
    p, n = np.array(pos, float), np.array(neg, float)
    auc, ci, _ = auc_delong(p, n)
    auc_neg, _, _ = auc_delong(-p, -n)
    assert 0 <= auc <= 1 and math.isclose(auc + auc_neg, 1.0, abs_tol=1e-12)
    assert ci.contains(auc) and 0 <= ci.low <= ci.high <= 1
    ba, bci, _, _ = balanced_accuracy_crossfit(p, n)
    assert bci.contains(ba)

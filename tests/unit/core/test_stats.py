from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.core.stats import median_interval, wilson


def test_wilson_known_value():
    # Wilson 95% for 5/10: 0.2366 .. 0.7634 (textbook value, e.g. Newcombe 1998 table I method 3).
    iv = wilson(5, 10)
    assert iv.low == pytest.approx(0.2366, abs=1e-4)
    assert iv.high == pytest.approx(0.7634, abs=1e-4)


@given(n=st.integers(1, 2000), data=st.data())
@settings(max_examples=60, deadline=None)
def test_wilson_contains_estimate_and_stays_in_unit_interval(n, data):
    k = data.draw(st.integers(0, n))
    iv = wilson(k, n)
    assert 0.0 <= iv.low <= k / n <= iv.high <= 1.0


def test_wilson_coverage_is_near_nominal():
    rng = np.random.default_rng(0)
    p, n, hits = 0.9, 50, 0
    for _ in range(3000):
        k = int(rng.binomial(n, p))
        hits += wilson(k, n).contains(p)
    assert 0.93 <= hits / 3000 <= 0.975


def test_median_interval_coverage_and_empty():
    rng = np.random.default_rng(1)
    hits = sum(median_interval(rng.exponential(size=31)).contains(math.log(2)) for _ in range(2000))
    assert 0.93 <= hits / 2000 <= 0.99
    assert math.isnan(median_interval(np.array([np.nan])).low)


def test_wilson_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_clopper_pearson_matches_scipy_exact_interval():
    """Against scipy's own exact binomial interval (an independent implementation of the same definition)."""
    from scipy.stats import binomtest

    from aisec.core.stats import clopper_pearson

    for k, n in ((0, 10), (3, 10), (10, 10), (47, 200), (199, 200)):
        ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        iv = clopper_pearson(k, n)
        assert iv.low == pytest.approx(ref.low, abs=1e-9) and iv.high == pytest.approx(ref.high, abs=1e-9)
        assert iv.contains(k / n) and iv.method == "clopper-pearson"


def test_clopper_pearson_is_wider_than_wilson():
    """Exact intervals are conservative: they contain Wilson's at the same level (away from the boundaries)."""
    from aisec.core.stats import clopper_pearson

    for k, n in ((5, 10), (30, 100), (480, 500)):
        cp, w = clopper_pearson(k, n), wilson(k, n)
        assert cp.low <= w.low and cp.high >= w.high

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

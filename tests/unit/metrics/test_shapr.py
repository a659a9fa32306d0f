from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from aisec.metrics.shapr import knn_shapley_matrix, shapr_result, shapr_values, summarize


def _utility(subset, train, y_train, t, y_t, k):
    """K-NN utility of a training subset for one test point (Jia et al. 2019)."""
    if not subset:
        return 0.0
    d = [np.linalg.norm(train[i] - t) for i in subset]
    nearest = [subset[j] for j in np.argsort(d, kind="stable")[:k]]
    return sum(y_train[i] == y_t for i in nearest) / k


def _brute_force(train, y_train, test, y_test, k):
    n = len(train)
    out = np.zeros((len(test), n))
    for t in range(len(test)):
        for i in range(n):
            others = [j for j in range(n) if j != i]
            for r in range(n):
                w = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
                for s in itertools.combinations(others, r):
                    s = list(s)
                    out[t, i] += w * (_utility([*s, i], train, y_train, test[t], y_test[t], k)
                                      - _utility(s, train, y_train, test[t], y_test[t], k))
    return out


@pytest.mark.parametrize("k", [1, 2, 3])
def test_exact_knn_shapley_equals_brute_force_shapley(k):
    rng = np.random.default_rng(k)
    train, y_train = rng.normal(size=(7, 3)), rng.integers(0, 2, 7)
    test, y_test = rng.normal(size=(4, 3)), rng.integers(0, 2, 4)
    got = knn_shapley_matrix(train, y_train, test, y_test, k=k).numpy()
    np.testing.assert_allclose(got, _brute_force(train, y_train, test, y_test, k), atol=1e-12)


def test_blocks_scaling_and_efficiency():
    rng = np.random.default_rng(0)
    p_train = rng.dirichlet(np.ones(4), 120)
    p_test = rng.dirichlet(np.ones(4), 33)
    y_train, y_test = rng.integers(0, 4, 120), rng.integers(0, 4, 33)
    full = knn_shapley_matrix(p_train, y_train, p_test, y_test).numpy()
    v1 = shapr_values(p_train, y_train, p_test, y_test, block=1)
    v2 = shapr_values(p_train, y_train, p_test, y_test)
    np.testing.assert_allclose(v1, v2, atol=1e-12)
    np.testing.assert_allclose(v2, full.sum(0) * 120 / 33, atol=1e-12)  # ART's normalisation
    res = shapr_result(p_train, y_train, p_test, y_test)
    # Efficiency: each test point's values sum to its 1-NN utility, so the mean is the 1-NN accuracy.
    nearest = np.argmin(((p_test[:, None] - p_train[None]) ** 2).sum(-1), 1)
    acc = float((y_train[nearest] == y_test).mean())
    np.testing.assert_allclose(full.sum(1), res.utility, atol=1e-12)
    assert res.score == pytest.approx(acc, abs=1e-12)
    s = summarize(res.values)
    assert s.score == pytest.approx(acc) and 0 <= s.at_risk <= 120


def test_bad_inputs():
    with pytest.raises(ValueError, match="equal C"):
        shapr_values(np.ones((3, 2)), [0, 1, 0], np.ones((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="one label"):
        shapr_values(np.ones((3, 2)), [0, 1], np.ones((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="k must"):
        shapr_values(np.ones((3, 2)), [0, 1, 0], np.ones((2, 2)), [0, 1], k=0)

"""Reference: under constraints, SimBA on a linear model finds exactly the analytic Linf optimum.

For a logistic regression the true-class logit is separable over features, so the strongest attack
inside ``box(eps) ∩ constraints`` sets every mutable feature to the end of its allowed interval
that lowers the true class's score (integer features: to the whole number nearest that end inside
the interval; immutable features: unchanged). A sample can be fooled iff that corner flips the
prediction. SimBA (one coordinate at a time, ±eps, projected) must fool exactly those samples
given 2 queries per feature, and the unconstrained optimum must fool at least as many.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aisec.attacks.base import run_attack
from aisec.core.constraints import TabularConstraints
from aisec.targets.sklearn import ProbaTarget


def _optimum(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             integer: np.ndarray, mutable: np.ndarray, off: np.ndarray, sc: np.ndarray, eps: float) -> np.ndarray:
    """Which samples the best Linf-eps point allowed by the constraints misclassifies (numpy, by hand)."""
    fooled = np.zeros(len(x), dtype=bool)
    for i in range(len(x)):
        u0 = x[i] * sc + off
        a = np.maximum(lo, u0 - eps * sc)
        c = np.minimum(hi, u0 + eps * sc)
        a = np.where(integer, np.ceil(a), a)
        c = np.where(integer, np.floor(c), c)
        down = -1.0 if y[i] == 1 else 1.0  # move the logit against the true class
        best = np.where(down * w * sc > 0, c, a)  # per feature: the interval end that helps most
        u = np.where(mutable, best, u0)
        logit = float(w @ ((u - off) / sc) + b)
        fooled[i] = (logit > 0) != bool(y[i])
    return fooled


@pytest.mark.parametrize("eps", [0.05, 0.15])
def test_simba_reaches_the_analytic_optimum_under_constraints(eps):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    d = load_breast_cancer()
    raw = np.column_stack([d.data[:, :12], np.round(d.data[:, 0] * 3)])  # + an integer feature
    names = [f"f{i}" for i in range(13)]
    lo, hi = raw.min(0), raw.max(0)
    sc = hi - lo
    xs = ((raw - lo) / sc).astype(np.float32)
    model = LogisticRegression(max_iter=3000).fit(xs[::2], d.target[::2])
    x, y = xs[1::2][:80], d.target[1::2][:80]
    sel = raw[1::2][:80]  # ranges tighter than the data's but holding these samples, so they bind
    rng = {f"f{j}": (float(sel[:, j].min()), float(sel[:, j].max())) for j in (1, 2)}
    c = TabularConstraints(num_features=13, feature_names=names, integer=["f12"], immutable=["f0", "f3"], ranges=rng,
                           offset=tuple(lo.tolist()), scale=tuple(sc.tolist()))
    target = ProbaTarget(model, input_shape=(13,), num_classes=2)
    out = run_attack("simba", target, torch.from_numpy(x), torch.from_numpy(y),
                     {"eps": eps, "max_queries": 2 * 13 + 1}, constraints=c)
    clean = model.predict(x) == y
    r_lo = np.full(13, -math.inf)
    r_hi = np.full(13, math.inf)
    for j in (1, 2):
        r_lo[j], r_hi[j] = rng[f"f{j}"]
    r_lo, r_hi = np.maximum(r_lo, lo), np.minimum(r_hi, hi)  # the target's value range [0, 1] in domain units
    integer = np.array([False] * 12 + [True])
    mutable = np.ones(13, dtype=bool)
    mutable[[0, 3]] = False
    w, b = model.coef_[0].astype(np.float64), float(model.intercept_[0])
    want = _optimum(w, b, x.astype(np.float64), y, r_lo, r_hi, integer, mutable, lo, sc, eps) & clean
    got = out.success.numpy()
    assert want.sum() >= 3, "the reference case must have fooled samples"
    np.testing.assert_array_equal(got, want)
    free = _optimum(w, b, x.astype(np.float64), y, lo, hi, np.zeros(13, bool), np.ones(13, bool), lo, sc, eps)
    assert (free & clean).sum() > want.sum()  # the constraints bind: without them more samples fall

"""Properties of certificates that hold for any certifier: merging the attacks' counterexamples only turns
inconclusive samples into counterexamples, and a sound certificate's accuracy never exceeds the attacks'."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aisec.certify import STATUSES, Certificate
from aisec.certify.smoothing import SmoothingParams, SmoothingResult, statuses


@given(st.lists(st.tuples(st.sampled_from(STATUSES), st.booleans()), min_size=1, max_size=60))
@settings(max_examples=80, deadline=None)
def test_merging_counterexamples_only_settles_inconclusive_samples(rows):
    status = np.array([s for s, _ in rows], dtype=object)
    broken = np.array([b for _, b in rows])
    cert = Certificate(method="m", norm="linf", radius=0.1, status=status)
    merged = cert.with_counterexamples(broken)
    assert merged.count("proved") == cert.count("proved")
    changed = merged.status != cert.status
    assert (cert.status[changed] == "inconclusive").all() and (merged.status[changed] == "counterexample").all()
    assert (changed == ((cert.status == "inconclusive") & broken)).all()
    # a sound certificate proves no sample an attack broke: then certified ≤ empirical (robust = correct, unbroken)
    correct = status != "counterexample"
    sound = np.where((status == "proved") & broken, "inconclusive", status).astype(object)
    k = Certificate(method="m", norm="linf", radius=0.1, status=sound).with_counterexamples(broken).count("proved")
    assert k <= int((correct & ~broken).sum())


@given(st.lists(st.tuples(st.integers(-1, 3), st.floats(0, 2), st.integers(0, 3)), min_size=1, max_size=40),
       st.floats(0, 2), st.floats(0, 2))
@settings(max_examples=80, deadline=None)
def test_smoothing_statuses_are_monotone_in_the_radius(rows, r1, r2):
    pred = np.array([p for p, _, _ in rows])
    radius = np.array([np.nan if p == -1 else r for p, r, _ in rows])
    y = np.array([t for _, _, t in rows])
    res = SmoothingResult(prediction=pred, p_lower=np.zeros(len(rows)), radius=radius, seconds=0.0,
                          params=SmoothingParams())
    small, large = sorted((r1, r2))
    a, b = statuses(res, y, small), statuses(res, y, large)
    assert ((b == "proved") <= (a == "proved")).all()  # proved at a larger radius ⇒ proved at a smaller one
    assert ((a == "counterexample") == (b == "counterexample")).all()  # a wrong answer is wrong at every radius
    assert ((pred == -1) <= (a == "inconclusive")).all()  # an abstention is never proved nor refuted

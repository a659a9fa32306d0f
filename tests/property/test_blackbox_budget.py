"""Property: black-box attacks never exceed the per-sample or the target's query budget."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisec.attacks.base import run_attack
from aisec.attacks.evasion._blackbox import recording
from aisec.targets.sklearn import ProbaTarget


class _Linear:
    """A fixed random linear softmax model on 16 features: fast, deterministic."""

    def __init__(self) -> None:
        g = np.random.default_rng(0)
        self.w = g.normal(size=(16, 4)).astype(np.float32)

    def predict_proba(self, a):
        z = np.asarray(a, np.float32) @ self.w
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


_MODEL = _Linear()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(["square", "hopskipjump", "simba", "boundary", "gaussian-noise", "uniform-noise"]),
    n=st.integers(1, 6),
    max_queries=st.integers(1, 60),
    extra=st.integers(0, 200),
    batch=st.integers(1, 8),
    seed=st.integers(0, 3),
)
def test_never_exceeds_budget(name, n, max_queries, extra, batch, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 16, generator=g)
    y = torch.as_tensor(_MODEL.predict_proba(x.numpy()).argmax(1))
    budget = 2 * n + extra
    t = ProbaTarget(_MODEL, input_shape=(16,), num_classes=4, query_budget=budget)
    params = {"max_queries": max_queries, "eps": 0.2}
    if name == "hopskipjump":
        params |= {"init_evals": 5, "max_evals": 20, "init_trials": 5}
    with recording() as sink:
        run_attack(name, t, x, y, params, batch_size=max(batch, n))
    assert t.queries <= budget
    assert all(int(c.max()) <= max_queries for c in sink if c.numel())

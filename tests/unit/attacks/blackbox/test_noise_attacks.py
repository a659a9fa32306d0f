"""gaussian-noise and uniform-noise: every draw on the eps-sphere, first fooling draw kept, budgets.

Known answers on hand-built scorers with a wide value range (so clipping never touches a draw):
each query of a sample is ``x + eps * u`` with ``||u|| = 1`` exactly (float tolerance 1e-5), a sample
that is never fooled costs exactly ``repeats`` queries and comes back unchanged, and a sample stops at
its first fooling draw, which is what it returns.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.attacks.base import run_attack
from aisec.attacks.evasion._blackbox import recording
from aisec.core.registry import get_attack
from aisec.targets.sklearn import ProbaTarget

NOISE = [("gaussian-noise", "l2"), ("uniform-noise", "l2"), ("uniform-noise", "linf")]


class _Recorder:
    """Class 1 when the first feature is above ``threshold``, else class 0; keeps every query."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.seen: list[np.ndarray] = []

    def predict_proba(self, a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        self.seen.append(a.copy())
        out = np.zeros((a.shape[0], 2))
        out[np.arange(a.shape[0]), (a[:, 0] > self.threshold).astype(int)] = 1.0
        return out


def _target(model, budget=None):
    return ProbaTarget(model, input_shape=(12,), num_classes=2, value_range=(-10.0, 10.0), query_budget=budget)


def _norm(d: np.ndarray, norm: str) -> np.ndarray:
    return np.abs(d).max(1) if norm == "linf" else np.linalg.norm(d, axis=1)


@pytest.mark.parametrize(("name", "norm"), NOISE)
def test_decision_only_and_registered_as_baseline(name, norm):
    info = get_attack(name)
    assert info.requires == frozenset()  # the predicted label is enough
    assert info.baseline and info.targeted


@pytest.mark.parametrize(("name", "norm"), NOISE)
def test_every_draw_on_the_sphere_and_never_fooled_costs_repeats(name, norm):
    rec = _Recorder(threshold=1e9)  # never fooled
    x = torch.randn(5, 12, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(5, dtype=torch.long)
    with recording() as sink:
        out = run_attack(name, _target(rec), x, y, {"norm": norm, "eps": 0.7, "repeats": 9})
    assert torch.cat(sink).tolist() == [9] * 5
    assert torch.equal(out.x_adv, x) and not out.success.any()
    queries = np.concatenate(rec.seen[1:-1])  # drop the driver's clean and adversarial scoring
    assert queries.shape == (45, 12)
    owners = np.concatenate([np.arange(5)] * 9)
    dist = _norm(queries - x.numpy()[owners], norm)
    np.testing.assert_allclose(dist, 0.7, rtol=1e-5)
    assert len({q.tobytes() for q in queries}) == 45  # a fresh draw every time


@pytest.mark.parametrize(("name", "norm"), NOISE)
def test_first_fooling_draw_is_kept(name, norm):
    rec = _Recorder(threshold=0.0)  # fooled whenever the first feature's noise is positive
    x = torch.zeros(40, 12)
    y = torch.zeros(40, dtype=torch.long)
    with recording() as sink:
        out = run_attack(name, _target(rec), x, y, {"norm": norm, "eps": 0.5, "repeats": 30})
    per = torch.cat(sink)
    assert out.success.all()  # each draw fools with probability 1/2: 30 misses in a row ~1e-9
    assert float(per.float().mean()) < 4  # geometric with p = 1/2: mean 2
    assert (out.x_adv[:, 0] > 0).all()
    np.testing.assert_allclose(_norm(out.x_adv.numpy(), norm), 0.5, rtol=1e-5)
    seen = np.concatenate(rec.seen[1:-1])
    # what it returns is what it queried (to float precision: the driver's projection rescales by ~1)
    gap = np.abs(out.x_adv.numpy()[:, None, :] - seen[None]).max(2).min(1)
    assert gap.max() < 1e-6


@pytest.mark.parametrize(("name", "norm"), NOISE)
def test_target_budget_never_exceeded(name, norm, digits_proba_target, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:16], y[:16]
    t = ProbaTarget(digits_proba_target, input_shape=(1, 8, 8), num_classes=10, modality="image",
                    query_budget=16 * 2 + 50)
    out = run_attack(name, t, x, y, {"norm": norm, "eps": 0.05, "repeats": 10_000}, batch_size=64)
    assert t.queries <= t.spec.query_budget
    assert out.x_adv.shape == x.shape


@pytest.mark.parametrize(("name", "norm", "eps"), [("gaussian-noise", "l2", 2.0), ("uniform-noise", "linf", 0.5)])
def test_noise_is_weaker_than_pgd(name, norm, eps, digits_target, digits_test_batch):
    """The baseline's meaning: on an unmasked model PGD at the same eps is at least as strong."""
    x, y = digits_test_batch
    x, y = x[:64], y[:64]
    noise = run_attack(name, digits_target, x, y, {"norm": norm, "eps": eps, "repeats": 20})
    pgd = run_attack("pgd", digits_target, x, y, {"norm": norm, "eps": eps, "steps": 10})
    assert float(noise.success.float().mean()) <= float(pgd.success.float().mean())

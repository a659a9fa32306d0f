"""Properties CLEVER must have whatever the model: bounds, invariances, exactness on linear models."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aisec.core.errors import CapabilityError, ConfigError
from aisec.core.types import Norm
from aisec.metrics.clever import clever_t, clever_u, sample_ball
from aisec.targets.torch import TorchTarget

SMALL = {"nb_batches": 4, "batch_size": 16}


class Affine(nn.Module):
    """Wraps a model: ``a * logits + b`` (same decisions, margins and gradients scaled by ``a``)."""

    def __init__(self, inner: nn.Module, a: float, b: float) -> None:
        super().__init__()
        self.inner, self.a, self.b = inner, a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * self.inner(x) + self.b


def linear_target(seed: int = 0) -> TorchTarget:
    torch.manual_seed(seed)
    return TorchTarget(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), input_shape=(1, 8, 8), num_classes=10,
                       name="linear", device="cpu")


@settings(max_examples=6, deadline=None)
@given(norm=st.sampled_from(["l1", "l2", "linf"]), radius=st.floats(0.01, 3.0), seed=st.integers(0, 100))
def test_scores_between_zero_and_radius(digits_target, digits_test_batch, norm, radius, seed):
    x, _ = digits_test_batch
    res = clever_u(digits_target, x[:3], norm=norm, radius=radius, seed=seed, **SMALL)
    assert res.scores.shape == (3,) and res.per_class.shape == (3, 10)
    assert ((res.scores >= 0) & (res.scores <= radius)).all()
    assert torch.isinf(res.per_class.gather(1, res.predicted[:, None])).all()
    finite = torch.isfinite(res.lipschitz)
    # the fitted Lipschitz estimate is never below the largest sampled gradient norm
    assert (res.lipschitz[finite] >= res.max_grad_norm[finite] * (1 - 1e-6)).all()
    assert res.scores.tolist() == pytest.approx(res.per_class.min(1).values.tolist())


def test_invariant_to_logit_scale_and_shift(digits_model, digits_test_batch):
    """CLEVER estimates margin / Lipschitz: scaling all logits by 10 (and shifting them) changes neither."""
    x, _ = digits_test_batch
    base = TorchTarget(digits_model, input_shape=(1, 8, 8), num_classes=10, device="cpu")
    scaled = TorchTarget(Affine(digits_model, 10.0, 3.0), input_shape=(1, 8, 8), num_classes=10, device="cpu")
    for norm in ("l2", "linf"):
        r1 = clever_u(base, x[:4], norm=norm, seed=3, **SMALL)
        r10 = clever_u(scaled, x[:4], norm=norm, seed=3, **SMALL)
        torch.testing.assert_close(r10.scores, r1.scores, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(r10.lipschitz, 10 * r1.lipschitz, rtol=1e-4, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_exact_on_a_linear_model(norm):
    """For logits W x + b the margin's gradient is constant, so CLEVER-t is exactly the distance
    g_j / ‖w_c - w_j‖_q to the decision boundary (q the dual norm) — the true minimal distortion."""
    target = linear_target()
    x = torch.rand(5, 1, 8, 8)
    w = target.module[1].weight.detach()
    q = {"l1": math.inf, "l2": 2, "linf": 1}[norm]
    # points_per_pass < batch_size exercises the running-maximum path
    res = clever_u(target, x, norm=norm, radius=1e3, nb_batches=3, batch_size=10, points_per_pass=7)
    z = target.logits(x).detach()
    c = z.argmax(1)
    for n in range(5):
        for j in range(10):
            if j == c[n]:
                continue
            expect = float(z[n, c[n]] - z[n, j]) / float(torch.linalg.vector_norm(w[c[n]] - w[j], ord=q))
            assert float(res.per_class[n, j]) == pytest.approx(expect, rel=1e-4)


def test_untargeted_is_min_over_targeted(digits_target, digits_test_batch):
    x, _ = digits_test_batch
    kw = {**SMALL, "seed": 5, "points_per_pass": 32}
    u = clever_u(digits_target, x[:3], **kw)
    for j in (0, 7):
        t = clever_t(digits_target, x[:3], j, **kw)
        same = u.predicted != j
        torch.testing.assert_close(t.scores[same], u.per_class[same, j], rtol=1e-5, atol=1e-7)
        assert torch.isnan(t.scores[~same]).all()
        assert t.targeted and not u.targeted


def test_seed_determinism_and_summary(digits_target, digits_test_batch):
    x, _ = digits_test_batch
    a = clever_u(digits_target, x[:2], seed=1, **SMALL)
    b = clever_u(digits_target, x[:2], seed=1, **SMALL)
    c = clever_u(digits_target, x[:2], seed=2, **SMALL)
    assert torch.equal(a.scores, b.scores)
    assert not torch.equal(a.max_grad_norm, c.max_grad_norm)
    s = a.summary()
    assert {"mean", "median", "min", "max"} <= s.keys()
    assert s["min"] <= s["median"] <= s["max"] and s["norm"] == "l2" and s["radius"] == 2.0


def test_requires_gradients_and_valid_parameters(digits_target, digits_test_batch):
    from sklearn.linear_model import LogisticRegression

    from aisec.targets.sklearn import ProbaTarget

    x, y = digits_test_batch
    clf = LogisticRegression(max_iter=200).fit(x.reshape(len(x), -1).numpy(), y.numpy())
    black = ProbaTarget(clf, input_shape=(1, 8, 8), num_classes=10, name="logreg")
    with pytest.raises(CapabilityError, match="CLEVER needs gradients"):
        clever_u(black, x[:2])
    with pytest.raises(ConfigError, match="l0"):
        clever_u(digits_target, x[:2], norm="l0")
    with pytest.raises(ConfigError, match="nb_batches"):
        clever_u(digits_target, x[:2], nb_batches=1)
    with pytest.raises(ConfigError, match="target_class"):
        clever_t(digits_target, x[:2], torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("norm", [Norm.L1, Norm.L2, Norm.LINF])
def test_ball_samples_are_inside_and_fill_the_ball(norm):
    g = torch.Generator().manual_seed(0)
    d, r = 16, 0.5
    pts = sample_ball(20000, d, r, norm, generator=g, device=torch.device("cpu"))
    ord_ = {Norm.L1: 1, Norm.L2: 2, Norm.LINF: math.inf}[norm]
    radii = torch.linalg.vector_norm(pts, ord=ord_, dim=1) / r
    assert float(radii.max()) <= 1 + 1e-6
    # uniform in a d-dimensional ball: P(‖x‖ <= s·r) = s^d, so the radius has mean d / (d + 1)
    assert float(radii.mean()) == pytest.approx(d / (d + 1), abs=0.01)
    assert float(pts.mean()) == pytest.approx(0.0, abs=0.01)

"""Randomized smoothing (Cohen et al. 2019): radii against the closed form of a linear model, the reference's
statistics against scipy, and the properties the paper's algorithm has (monotone in N, abstention vs α and σ,
certified accuracy non-increasing in the radius) on a linear model and the digits CNN."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from aisec.certify import get_certifier
from aisec.certify.smoothing import (
    ABSTAIN,
    SmoothedTarget,
    binomial_pvalue,
    certify,
    certify_smoothing,
    lower_confidence_bound,
    predict,
    sample_counts,
)
from aisec.core.errors import ConfigError
from aisec.core.types import Modality
from aisec.targets.torch import TorchTarget

W, B = torch.tensor([1.5, -2.0]), 0.3


@pytest.fixture(scope="module")
def linear() -> TorchTarget:
    """f(x) = argmax of (w·x + b, −(w·x + b)): a linear binary classifier on 2-D inputs."""
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight[:] = torch.stack([W, -W])
        lin.bias[:] = torch.tensor([B, -B])
    return TorchTarget(lin, input_shape=(2,), num_classes=2, modality=Modality.TABULAR, name="linear", device="cpu")


@pytest.fixture(scope="module")
def points() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Inputs, their true class (the side of the hyperplane) and their distance to it."""
    x = torch.rand(24, 2, generator=torch.Generator().manual_seed(1)) - 0.5
    margin = (x @ W + B).numpy()
    return x, (margin < 0).astype(np.int64), np.abs(margin) / float(W.norm())


def test_radius_against_the_closed_form_on_a_linear_model(linear, points):
    """p_A = Φ(|w·x+b| / (σ‖w‖)), so σΦ⁻¹(p̲_A) is at most the distance to the hyperplane and close to it."""
    x, y, dist = points
    res = certify(linear, x, sigma=0.5, n0=100, n=20_000, alpha=0.001, batch_size=50_000)
    ok = res.prediction != ABSTAIN
    assert ok.mean() > 0.8
    assert (res.prediction[ok] == y[ok]).all()
    assert (res.radius[ok] <= dist[ok] + 1e-9).all(), "a certified radius beyond the exact one: unsound"
    # the gap is the Clopper-Pearson slack at the sample's own p_A: compute it from the closed form
    p = stats.norm.cdf(dist / 0.5)
    expected = 0.5 * stats.norm.ppf(lower_confidence_bound(np.round(p * 20_000), 20_000, 0.001))
    assert np.abs(res.radius[ok] - expected[ok]).max() < 0.03
    assert np.abs(res.radius[ok] - dist[ok]).max() < 0.1


def test_statistics_match_scipy_reference():
    """The lower bound is the reference's proportion_confint(method='beta') one-sided; the test its binom_test."""
    from scipy.stats import binomtest

    for k, n in ((0, 100), (55, 100), (990, 1000), (1000, 1000)):
        ref = binomtest(k, n).proportion_ci(confidence_level=1 - 2 * 0.001, method="exact").low
        assert lower_confidence_bound(np.array([k]), n, 0.001)[0] == pytest.approx(ref, abs=1e-9)
    for a, b in ((60, 40), (50, 50), (100, 0), (7, 3)):
        assert binomial_pvalue(np.array([a]), np.array([b]))[0] == pytest.approx(binomtest(a, a + b, 0.5).pvalue)


def test_batched_counts_equal_a_per_sample_loop_in_distribution(linear, points):
    """Counts are per input and sum to N; batching mixes inputs without mixing their votes."""
    x, y, dist = points
    c = sample_counts(linear, x, 0.5, 300, batch_size=1000)
    assert c.shape == (24, 2) and (c.sum(1) == 300).all()
    p = stats.norm.cdf(dist / 0.5)
    top = c.gather(1, torch.from_numpy(y)[:, None]).squeeze(1).numpy() / 300
    assert np.abs(top - p).max() < 5 * math.sqrt(0.25 / 300)  # within 5 SE of the exact vote share


def test_radius_grows_with_n(linear, points):
    """More draws, a tighter bound: the mean certified radius (abstention = 0) rises with N (fixed seed)."""
    x, _, _ = points
    means = []
    for n in (100, 1000, 10_000):
        r = certify(linear, x, sigma=0.5, n=n, alpha=0.001, batch_size=50_000).radius
        means.append(float(np.nan_to_num(r, nan=0.0).mean()))
    assert means[0] < means[1] < means[2]
    # the exact statement behind it: at a fixed vote share the lower bound rises with N
    lows = [lower_confidence_bound(np.array([0.9 * n]), n, 0.001)[0] for n in (100, 1000, 10_000)]
    assert lows[0] < lows[1] < lows[2] < 0.9


def test_predict_follows_the_hyperplane_and_abstains_near_it(linear, points):
    x, y, dist = points
    pred = predict(linear, x, sigma=0.5, n=2000, alpha=0.001)
    answered = pred != ABSTAIN
    assert (pred[answered] == y[answered]).all()
    if (~answered).any():
        assert dist[~answered].max() < dist[answered].max()


def test_certifier_entry_statuses_and_monotone_accuracy(digits_target, digits_test_batch):
    """A small CNN on digits: certified accuracy never rises with the radius, never exceeds the smoothed
    classifier's own accuracy, and abstention grows with smaller α and with larger σ."""
    x, y = digits_test_batch[0][:32], digits_test_batch[1][:32]
    radii = [0.0, 0.1, 0.25, 0.5, 1.0]
    certs = certify_smoothing(digits_target, x, y, "l2", radii, {"sigma": 0.25, "n0": 32, "n": 200})
    acc = [c.certified_accuracy()[0] for c in certs]
    assert all(a >= b for a, b in itertools.pairwise(acc))
    assert acc[0] > 0.5  # the digits CNN keeps most answers under σ = 0.25 noise
    for c in certs:
        assert c.about == "smoothed" and c.n == 32 and c.count("proved") + c.count("counterexample") + \
            c.count("inconclusive") == 32
        k, iv = c.count("proved"), c.certified_accuracy()[1]
        assert iv.low <= k / 32 <= iv.high
        proved = c.status == "proved"
        assert (c.certified_radius[proved] >= c.radius - 1e-12).all()
    strict = certify(digits_target, x, sigma=0.5, n0=32, n=200, alpha=1e-8)
    loose = certify(digits_target, x, sigma=0.5, n0=32, n=200, alpha=0.1)
    # the same seed, the same counts: every abstention at α = 0.1 is one at α = 1e-8, and there are more
    assert (strict.abstained | ~loose.abstained).all() and strict.abstained.sum() > loose.abstained.sum()
    narrow = certify(digits_target, x, sigma=0.25, n0=32, n=200, alpha=1e-8)
    assert strict.abstained.sum() > narrow.abstained.sum()


def test_smoothed_target_is_a_stochastic_target(linear, points):
    from aisec.checks._reliability import probe_randomness

    x, _, _ = points
    g = SmoothedTarget(linear, 0.5, draws=200)
    p = g.predict(x)
    assert p.shape == (24, 2) and torch.allclose(p.sum(1), torch.ones(24))
    assert g.stochastic and probe_randomness(g, x)[0]
    far = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])  # far from the hyperplane: g answers as f
    assert g.classify(far).tolist() == [0, 1]
    z = g.logits(x.requires_grad_(True))
    z[:, 0].sum().backward()
    assert x.grad is not None and torch.allclose(x.grad, W.expand(24, 2))  # the base model's gradient at x + ε


def test_bad_input_is_one_line(linear, points):
    x, y, _ = points
    with pytest.raises(ConfigError, match="L2 balls"):
        certify_smoothing(linear, x, torch.from_numpy(y), "linf", [0.1], {})
    with pytest.raises(ConfigError, match="sigma"):
        certify_smoothing(linear, x, torch.from_numpy(y), "l2", [0.1], {"sigma": -1})
    with pytest.raises(ConfigError, match="sigm"):
        certify_smoothing(linear, x, torch.from_numpy(y), "l2", [0.1], {"sigm": 0.1})
    with pytest.raises(ConfigError, match=r"unknown certifier 'nope'.*smoothing"):
        get_certifier("nope")
    assert get_certifier("Smoothing") is certify_smoothing


def test_the_smoothed_target_can_be_attacked_with_eot():
    """PGD through EOT on g breaks the samples closer to the hyperplane than eps (g = f for a linear binary
    classifier) and cannot break those farther away: the empirical upper bound meets the closed form."""
    from aisec.attacks.adaptive.eot import EOTTarget
    from aisec.attacks.base import run_attack

    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight[:] = torch.stack([W, -W])
        lin.bias[:] = torch.tensor([B, -B])
    f = TorchTarget(lin, input_shape=(2,), num_classes=2, modality=Modality.TABULAR, value_range=(-1.0, 1.0),
                    device="cpu")
    x = torch.rand(40, 2, generator=torch.Generator().manual_seed(3)) - 0.5
    margin = x @ W + B
    y, dist = (margin < 0).long(), (margin.abs() / W.norm()).numpy()
    g = SmoothedTarget(f, 0.25, draws=2000)
    out = run_attack("pgd", EOTTarget(g, draws=8), x, y, {"norm": "l2", "eps": 0.3, "steps": 20}, seed=0)
    fooled = (out.pred_adv != y).numpy()
    assert (dist < 0.2).sum() >= 5 and (dist > 0.4).sum() >= 5
    assert fooled[dist < 0.2].all()
    assert not fooled[dist > 0.4].any()

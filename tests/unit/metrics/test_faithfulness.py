"""Faithfulness, stability and explained area: definitions, the random control, and the digits model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aisec.core.types import Modality
from aisec.explain import Attribution, explain
from aisec.metrics.faithfulness import (
    bounded_mean_interval,
    chance_jaccard,
    deletion_insertion,
    explained_area,
    jaccard,
    stability,
    topk_sets,
)
from aisec.targets.torch import TorchTarget


@pytest.fixture(scope="module")
def digits_x(digits_split):
    _, test = digits_split
    return test.x[:48].clone()


@pytest.fixture(scope="module")
def curves(digits_target, digits_x):
    """Faithfulness of a random attribution and of three explainers on the demo digits CNN."""
    out = {}
    for method, opts in (("random", {}), ("saliency", {}), ("integrated_gradients", {}),
                         ("lime", {"num_samples": 300})):
        attr = explain(digits_target, digits_x, method=method, **opts)
        out[method] = deletion_insertion(digits_target, digits_x, attr, steps=8, random_orders=8)
    return out


def test_random_attribution_scores_about_one_half(curves):
    f = curves["random"]
    for scores in (f.score_deletion, f.score_insertion):
        ci = bounded_mean_interval(scores)
        assert ci.contains(0.5), (scores.mean(), ci)
        assert abs(scores.mean() - 0.5) < 0.15


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "lime"])
def test_good_explainers_beat_random_clearly(curves, method):
    f = curves[method]
    assert f.score_deletion.mean() > 0.85 and f.score_insertion.mean() > 0.8
    assert bounded_mean_interval(f.score_deletion).low > 0.75
    assert f.auc_deletion.mean() < f.auc_deletion_random.mean()
    assert f.auc_insertion.mean() > f.auc_insertion_random.mean()


def test_curves_start_and_end_where_they_must(curves, digits_target, digits_x):
    f = curves["lime"]
    p = digits_target.predict(digits_x)
    clean = p[torch.arange(len(digits_x)), p.argmax(1)].numpy()
    black = digits_target.predict(torch.zeros_like(digits_x))[torch.arange(len(digits_x)), p.argmax(1)].numpy()
    np.testing.assert_allclose(f.deletion[:, 0], clean, atol=1e-5)
    np.testing.assert_allclose(f.insertion[:, -1], clean, atol=1e-5)
    np.testing.assert_allclose(f.deletion[:, -1], black, atol=1e-5)
    np.testing.assert_allclose(f.insertion[:, 0], black, atol=1e-5)
    assert np.all((f.score_deletion >= 0) & (f.score_deletion <= 1))


def test_exact_scores_on_a_linear_model_with_the_true_ranking():
    """A model whose probability is monotone in each feature: the true ordering beats every random order."""
    w = torch.linspace(1.0, 0.1, 12)
    net = nn.Linear(12, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.stack([w, -w]))
    target = TorchTarget(net, input_shape=(12,), num_classes=2, modality=Modality.TABULAR, device="cpu")
    x = torch.ones(4, 12)
    perfect = Attribution(values=w.expand(4, 12).clone(), label=torch.zeros(4, dtype=torch.long),
                          method="oracle", params={}, seconds=0.0)
    f = deletion_insertion(target, x, perfect, steps=12, random_orders=20, baseline=0.0)
    assert np.all(f.score_deletion == 1.0) and np.all(f.score_insertion == 1.0)
    reverse = Attribution(values=-perfect.values, label=perfect.label, method="worst", params={}, seconds=0.0)
    g = deletion_insertion(target, x, reverse, steps=12, random_orders=20, baseline=0.0)
    assert np.all(g.score_deletion == 0.0) and np.all(g.score_insertion == 0.0)


def test_stability_of_lime_and_ig(digits_target, digits_x):
    x = digits_x[:6]
    lime = explain(digits_target, x, method="lime", num_samples=200)
    s = stability(digits_target, x, lime, top_k=0.1, noise=0.02, repeats=1, num_samples=200)
    assert s.rerun is not None and s.rerun.shape == (6,)
    assert s.rerun.mean() > 3 * s.chance and s.noise.mean() > 3 * s.chance
    ig = explain(digits_target, x, method="integrated_gradients")
    t = stability(digits_target, x, ig, noise=0.0, repeats=1)
    assert t.rerun is None  # deterministic: nothing to rerun
    assert np.all(t.noise == 1.0)  # no noise: the same top-k set


def test_text_curves_and_stability():
    from aisec.data.text import python_docs
    from aisec.models.text import python_docs_target

    target = python_docs_target()
    x = python_docs(split="test").x[:3]
    attr = explain(target, x, method="lime", num_samples=300)
    f = deletion_insertion(target, x, attr, steps=5, random_orders=6)
    assert f.deletion.shape == (3, 6) and np.all((f.score_insertion >= 0) & (f.score_insertion <= 1))
    assert f.score_deletion.mean() > 0.5
    s = stability(target, x, attr, repeats=1, noise=0.05, num_samples=300)
    assert s.rerun is not None and 0 <= s.noise.mean() <= 1


def test_jaccard_chance_and_topk():
    assert jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3)
    assert chance_jaccard(0.1, 1000) == pytest.approx(100 / 1900, rel=1e-9)
    rng = np.random.default_rng(0)
    sims = [jaccard(set(rng.permutation(200)[:20]), set(rng.permutation(200)[:20])) for _ in range(3000)]
    assert np.mean(sims) == pytest.approx(chance_jaccard(20, 200), abs=0.005)
    a = Attribution(values=torch.tensor([[[[0.0, 3.0], [2.0, 1.0]]]]), label=torch.zeros(1, dtype=torch.long),
                    method="t", params={}, seconds=0.0)
    assert topk_sets(a, 2) == [{1, 2}]


def test_explained_area_counts_only_positive_top_features():
    groups = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]).reshape(1, 1, 4, 4)
    weights = np.array([0.5, -0.2, 0.1, 0.0])
    values = torch.from_numpy(weights[groups.numpy()]).float()
    a = Attribution(values=values, label=torch.zeros(1, dtype=torch.long), method="lime", params={}, seconds=0.0,
                    groups=groups, group_weights=[weights])
    assert explained_area(a, num_features=5)[0] == pytest.approx(0.5)  # segments 0 and 2
    assert explained_area(a, num_features=1)[0] == pytest.approx(0.25)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=200))
def test_bounded_mean_interval_contains_the_mean_and_stays_in_unit_range(values):
    ci = bounded_mean_interval(np.asarray(values))
    m = float(np.mean(values))
    assert 0.0 <= ci.low <= ci.high <= 1.0
    assert ci.contains(m)
    if len(values) >= 2 and 0.05 < m < 0.95:
        assert ci.high - ci.low > 0

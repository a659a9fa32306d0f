"""aisec's CLEVER-u against ART's ``art.metrics.clever_u`` on the digits CNN.

Same model (ART's ``PyTorchClassifier`` wraps ``digits_target.module``), samples, nb_batches,
batch_size, radius and norm. The two are different estimators of the same quantity, so we compare
within their spread, not to float precision. Two comparisons per sample:

1. Without the fit: margin / largest sampled dual gradient norm, min over classes. ART's maxima are
   read off the data it hands to ``weibull_min.fit`` (a spy). Both evaluate nb_batches × batch_size
   gradients per class at uniform points in the ball, independently. ART's batches are drawn with
   replacement from a pool of that many points and so see only ~63% of it; its largest norm is a
   little lower and its score a little higher. Medians over seeds must agree within
   ``0.85 <= aisec / ART <= 1.1`` (seen: 0.91 to 1.03 over l1, l2 and linf). This pins the
   sampling, the dual norm (l2 vs l1 norms of a 64-pixel gradient differ ~8x), the margins and the
   class pairs.
2. The final scores. ART fits once from shape 1 with Nelder-Mead, which mostly stops near
   ``loc = -max(S)`` (so ART reports about the largest sampled norm) and sometimes diverges
   (``loc → -∞``, score ≈ 0: 7 of 45 runs in the slow test). Runs whose score is below half their
   own fit-free score are such divergences and are left out; we take the median of the rest.
   aisec's fit never reports less than the largest sampled norm and extrapolates a little beyond it
   (≤ ~10% with the shape penalty), so its score (median of two seeds) sits at or below ART's:
   we require ``0.8 <= aisec / ART <= 1.1`` (seen: 0.85 to 1.02).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.metrics.clever import clever_u

art_cls = pytest.importorskip("art.estimators.classification")
art_metrics = pytest.importorskip("art.metrics")
art_metrics_impl = pytest.importorskip("art.metrics.metrics")
stats = pytest.importorskip("scipy.stats")

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),  # scipy's fit inside ART overflows on divergence
]

ART_NORM = {"l1": 1, "l2": 2, "linf": np.inf}


class FitSpy:
    """Stands in for ``weibull_min`` inside ART: records the per-batch maxima, then fits as ART does."""

    def __init__(self) -> None:
        self.maxima: list[np.ndarray] = []

    def fit(self, data, *args, **kwargs):
        self.maxima.append(-np.asarray(data))
        return stats.weibull_min.fit(data, *args, **kwargs)


def art_scores(digits_target, x, margin, *, norm, nb_batches, batch_size, radius, seeds, monkeypatch):
    """ART's scores and fit-free scores, each (seeds, N)."""
    clf = art_cls.PyTorchClassifier(
        model=digits_target.module, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=10,
        clip_values=(0.0, 1.0), device_type="cpu",
    )
    spy = FitSpy()
    monkeypatch.setattr(art_metrics_impl, "weibull_min", spy)
    scores, nofit = [], []
    for seed in seeds:
        np.random.seed(seed)  # ART samples with the global numpy generator
        row, row_nofit = [], []
        for n, xi in enumerate(x):
            spy.maxima.clear()
            row.append(float(art_metrics.clever_u(clf, xi.numpy(), nb_batches, batch_size, radius, ART_NORM[norm],
                                                  verbose=False)))
            others = [j for j in range(10) if not np.isinf(margin[n, j])]
            assert len(spy.maxima) == len(others)  # one fit per class j != predicted, in class order
            per_class = [float(margin[n, j]) / s.max() for j, s in zip(others, spy.maxima, strict=True)]
            row_nofit.append(min(*per_class, radius))
        scores.append(row)
        nofit.append(row_nofit)
    return np.array(scores), np.array(nofit)


def nofit_scores(res, radius):
    return (res.margin.double() / res.max_grad_norm.double()).nan_to_num(np.inf).amin(1).clamp(max=radius).numpy()


def compare(digits_target, x, monkeypatch, *, norm, nb_batches, batch_size, radius):
    kw = {"norm": norm, "nb_batches": nb_batches, "batch_size": batch_size, "radius": radius}
    runs = [clever_u(digits_target, x, seed=s, **kw) for s in (0, 1)]
    ours = np.median(np.stack([r.scores.numpy() for r in runs]), 0)
    ours_nofit = np.median(np.stack([nofit_scores(r, radius) for r in runs]), 0)
    # margins of the classes ART fits (inf marks the predicted class, which it skips)
    margin = np.where(torch.isnan(runs[0].lipschitz).numpy(), np.inf, runs[0].margin.double().numpy())
    art, art_nofit = art_scores(digits_target, x, margin, seeds=(0, 1, 2), monkeypatch=monkeypatch, **kw)
    print(f"\n{norm}: aisec {np.round(ours, 4)}   fit-free {np.round(ours_nofit, 4)}"
          f"\n  ART runs {np.round(art, 4).tolist()}   fit-free {np.round(np.median(art_nofit, 0), 4)}")
    ratio_nofit = ours_nofit / np.median(art_nofit, 0)
    assert ((ratio_nofit >= 0.85) & (ratio_nofit <= 1.1)).all(), ratio_nofit
    converged = art >= 0.5 * art_nofit
    for n in range(len(x)):
        if converged[:, n].any():
            ratio = ours[n] / np.median(art[converged[:, n], n])
            assert 0.8 <= ratio <= 1.1, (n, ratio)
    assert converged.any(0).sum() >= len(x) - 1, "ART's fit diverged on more samples than seen when tuning"


def test_clever_u_agrees_with_art(digits_target, digits_test_batch, monkeypatch):
    x, _ = digits_test_batch
    compare(digits_target, x[:2], monkeypatch, norm="l2", nb_batches=10, batch_size=20, radius=2.0)


@pytest.mark.slow
@pytest.mark.parametrize("norm,radius", [("l2", 2.0), ("linf", 0.1), ("l1", 10.0)])
def test_clever_u_agrees_with_art_more_samples(digits_target, digits_test_batch, monkeypatch, norm, radius):
    x, _ = digits_test_batch
    compare(digits_target, x[:5], monkeypatch, norm=norm, nb_batches=10, batch_size=50, radius=radius)

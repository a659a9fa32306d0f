"""How much an explanation says about the model: faithfulness, stability and explained area.

All scores are per sample in [0, 1]; a check reports their mean with a 95% interval
(:func:`bounded_mean_interval`). Definitions (docs/explainability.md has the long form):

**Features.** Pixels for images (all channels of a pixel together; an attribution's channels are
summed), columns for tables, distinct words for text. An explanation orders them by score,
highest first, ties in a seeded random order.

**Deletion / insertion curves** (Petsiuk et al. 2018, RISE, https://arxiv.org/abs/1806.07421).
For fractions ``f = 0, 1/T, ..., 1`` of the features, delete the top ``round(f·F)`` features
(replace them by the baseline; for text remove the words) and record the model's probability of
the explained class; insertion starts from the all-baseline input and puts the top features back.
AUC = trapezoid area under probability vs ``f``. A faithful explanation makes the deletion curve
fall fast (low AUC) and the insertion curve rise fast (high AUC).

**Normalised faithfulness.** Raw AUCs depend on the model, the class and the baseline, so each is
compared with the AUCs of ``R`` uniformly random feature orders of the same input:
``score = P(AUC_expl beats AUC_random)``, i.e. the fraction of random orders whose deletion AUC
is higher (insertion: lower) than the explanation's, ties counting one half. It is the
Mann-Whitney / ROC-AUC statistic of one explanation against the random orders: 0.5 means no
better than random (a random attribution scores 0.5 in expectation, exactly), 1 means better than
every random order, 0 worse than every one.

**Stability.** Jaccard index of the top-k feature sets (``k = ceil(top_k · F)``) of the
explanation and of a re-explanation: with another seed (rerun; only stochastic methods) or of the
input plus Gaussian noise (σ = ``noise`` x value range, clipped to the range). Chance level for
two random top-k sets is ``k / (2F − k)``.

**Explained area** (the AI-SEC seed's figure, kept as a secondary number): the fraction of the
input covered by the ``area_features`` (5) highest-scoring features with a positive score —
superpixels (LIME/SHAP segments, or a grid for gradient methods), columns, words.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats

from aisec.core import registry
from aisec.core.errors import ConfigError
from aisec.core.stats import Interval
from aisec.core.target import Target
from aisec.core.types import Modality
from aisec.explain import Attribution, explain, grid_segments, predict_batched


def bounded_mean_interval(values: np.ndarray, level: float = 0.95) -> Interval:
    """Interval for the mean of scores in [0, 1]: Wilson's score interval at the observed mean.

    Among variables in [0, 1] with mean μ the Bernoulli has the largest variance, μ(1 − μ), which
    Wilson's interval assumes; so it covers the mean of bounded scores at least as well as it
    covers a proportion, stays inside [0, 1] and does not collapse when every score is 1.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return Interval(low=0.0, high=1.0, level=level, method="wilson-bounded-mean")
    p = float(np.clip(v.mean(), 0.0, 1.0))
    z = float(stats.norm.ppf(0.5 + level / 2))
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(low=max(0.0, min(p, centre - half)), high=min(1.0, max(p, centre + half)), level=level,
                    method="wilson-bounded-mean")


@dataclass
class Faithfulness:
    """Deletion and insertion curves of one attribution, per sample, with their random-order controls.

    Attributes:
        fractions: ``(T+1,)`` fraction of features deleted/inserted at each curve point.
        deletion, insertion: ``(N, T+1)`` probability of the explained class along the curves.
        deletion_random, insertion_random: ``(N, T+1)`` mean curves over the random orders.
        auc_deletion, auc_insertion: ``(N,)`` areas under the explanation's curves.
        auc_deletion_random, auc_insertion_random: ``(N, R)`` areas under each random order's curve.
        score_deletion, score_insertion: ``(N,)`` normalised faithfulness in [0, 1] (0.5 = random).
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_random: np.ndarray
    insertion_random: np.ndarray
    auc_deletion: np.ndarray
    auc_insertion: np.ndarray
    auc_deletion_random: np.ndarray
    auc_insertion_random: np.ndarray
    score_deletion: np.ndarray
    score_insertion: np.ndarray
    params: dict[str, Any]


def _order(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Feature indices by descending score, ties in random order."""
    p = rng.permutation(scores.size)
    return p[np.argsort(-scores[p], kind="stable")]


def _auc(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    return np.asarray(np.trapezoid(curves, fractions, axis=-1))


def _beats(auc: np.ndarray, auc_random: np.ndarray, lower_is_better: bool) -> np.ndarray:
    a = auc[:, None]
    wins = (a < auc_random) if lower_is_better else (a > auc_random)
    ties = np.isclose(a, auc_random, rtol=0.0, atol=1e-9)
    return np.asarray(np.where(ties, 0.5, wins.astype(float)).mean(1))


def resolve_baseline(target: Target, x: torch.Tensor, baseline: str | float | torch.Tensor) -> torch.Tensor:
    """The "deleted" value of every element, shaped like one sample (broadcast over the batch).

    ``"auto"``: ``"low"`` for images, ``"mean"`` otherwise. ``"low"``: the low end of the value
    range (black). ``"mean"``: the per-element mean of ``x``. ``"blur"``: each image Gaussian-blurred
    (σ = an eighth of its side), returned per sample. A number or a tensor is used as given.
    """
    if isinstance(baseline, torch.Tensor):
        return baseline.detach().float().cpu()
    if isinstance(baseline, (int, float)):
        return torch.full(tuple(x.shape[1:]), float(baseline))
    mode = baseline
    if mode == "auto":
        mode = "low" if target.spec.modality is Modality.IMAGE else "mean"
    if mode == "low":
        return torch.full(tuple(x.shape[1:]), float(target.spec.value_range[0]))
    if mode == "mean":
        return x.detach().float().cpu().mean(0)
    if mode == "blur" and x.ndim == 4:
        from scipy.ndimage import gaussian_filter

        sigma = max(1.0, min(x.shape[2:]) / 8)
        return torch.from_numpy(gaussian_filter(x.detach().float().cpu().numpy(), sigma=(0, 0, sigma, sigma)))
    raise ConfigError(
        f"baseline must be 'auto', 'low', 'mean', 'blur' (images), a number or a tensor; got {baseline!r}")


def element_features(attr: Attribution, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Features as the faithfulness curves use them: ``(element → feature id, per-feature score)``.

    Images: pixels (channels summed); tables: columns; text: the attribution's words.
    """
    v = attr.values[i].detach().double().cpu().numpy()
    if attr.texts is not None:
        return attr.feature_scores(i)
    if v.ndim == 3:
        c, h, w = v.shape
        g = np.broadcast_to(np.arange(h * w).reshape(1, h, w), (c, h, w))
        return g, v.sum(0).ravel()
    return np.arange(v.size).reshape(v.shape), v.ravel()


def deletion_insertion(
    target: Target,
    x: torch.Tensor,
    attr: Attribution,
    *,
    steps: int = 16,
    random_orders: int = 16,
    baseline: str | float | torch.Tensor = "auto",
    seed: int = 0,
    batch_size: int = 4096,
) -> Faithfulness:
    """Deletion and insertion curves of ``attr`` on ``x`` and of ``random_orders`` random orders.

    ``x`` is the batch ``attr`` explains (for text: its byte tensor or ``attr.texts`` is used).
    Every curve point of every order goes through the model in batches of ``batch_size``.
    """
    if steps < 1 or random_orders < 1:
        raise ConfigError(f"steps and random_orders must be ≥ 1, got {steps} and {random_orders}")
    rng = np.random.default_rng(seed)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    n = len(attr)
    label = attr.label.cpu().numpy()
    o = random_orders + 1
    if attr.texts is not None:
        probs = _text_curves(target, attr, fractions, rng, random_orders, batch_size)
    else:
        base = resolve_baseline(target, x, baseline)
        probs = np.zeros((n, 2, o, steps + 1))
        xs = x.detach().float().cpu()
        per = 2 * o * (steps + 1)
        group = max(1, batch_size // per)
        for start in range(0, n, group):
            stop = min(n, start + group)
            imgs, labs = [], []
            for i in range(start, stop):
                g, s = element_features(attr, i)
                f = s.size
                ranks = np.empty((o, f), dtype=np.int64)
                orders = [_order(s, rng)] + [rng.permutation(f) for _ in range(random_orders)]
                for j, order in enumerate(orders):
                    ranks[j, order] = np.arange(f)
                k = np.rint(fractions * f).astype(np.int64)
                top = ranks[:, None, :] < k[None, :, None]  # (O, T+1, F): feature among the first k
                top_el = torch.from_numpy(top[:, :, g])  # (O, T+1, *shape)
                xi = xs[i]
                bi = base[i] if base.ndim == xs.ndim else base
                deleted = torch.where(top_el, bi, xi)
                inserted = torch.where(top_el, xi, bi)
                imgs.append(torch.stack([deleted, inserted]).reshape(-1, *xi.shape))
                labs.append(label[i])
            batch = torch.cat(imgs).to(target.spec.device)
            p = predict_batched(target, batch, batch_size).numpy().reshape(stop - start, 2, o, steps + 1, -1)
            probs[start:stop] = np.take_along_axis(
                p, np.asarray(labs).reshape(-1, 1, 1, 1, 1), axis=-1)[..., 0]
    dele, ins = probs[:, 0], probs[:, 1]
    auc_del, auc_ins = _auc(dele, fractions), _auc(ins, fractions)
    return Faithfulness(
        fractions=fractions, deletion=dele[:, 0], insertion=ins[:, 0],
        deletion_random=dele[:, 1:].mean(1), insertion_random=ins[:, 1:].mean(1),
        auc_deletion=auc_del[:, 0], auc_insertion=auc_ins[:, 0],
        auc_deletion_random=auc_del[:, 1:], auc_insertion_random=auc_ins[:, 1:],
        score_deletion=_beats(auc_del[:, 0], auc_del[:, 1:], lower_is_better=True),
        score_insertion=_beats(auc_ins[:, 0], auc_ins[:, 1:], lower_is_better=False),
        params={"steps": steps, "random_orders": random_orders, "seed": seed,
                "baseline": baseline if isinstance(baseline, (str, int, float)) else "tensor"},
    )


def _text_curves(
    target: Target, attr: Attribution, fractions: np.ndarray, rng: np.random.Generator,
    random_orders: int, batch_size: int,
) -> np.ndarray:
    """Deletion/insertion on words: remove every occurrence of the deleted words (lime's bag of words)."""
    from lime.lime_text import IndexedString

    from aisec.data.text import byte_width, encode_texts

    assert attr.texts is not None and attr.group_weights is not None
    split = attr.params.get("split_expression", r"\W+")
    width = byte_width(target)
    o = random_orders + 1
    out = np.zeros((len(attr), 2, o, fractions.size))
    for i, text in enumerate(attr.texts):
        indexed = IndexedString(text, bow=True, split_expression=split)
        s = np.asarray(attr.group_weights[i], dtype=float)
        f = indexed.num_words()
        if s.size != f:
            raise ConfigError("text attribution and its words disagree; explain the text with bow=True")
        orders = [_order(s, rng)] + [rng.permutation(f) for _ in range(random_orders)]
        k = np.rint(fractions * f).astype(np.int64)
        strings = []
        for order in orders:
            strings += [indexed.inverse_removing(order[:kk]) for kk in k]  # deletion
        for order in orders:
            strings += [indexed.inverse_removing(order[kk:]) for kk in k]  # insertion keeps the top kk
        p = predict_batched(target, encode_texts(strings, width), batch_size).numpy()[:, int(attr.label[i])]
        out[i] = p.reshape(2, o, fractions.size)
    return out


def topk_sets(attr: Attribution, top_k: float | int) -> list[set[int]]:
    """Per sample, the top-k features (as in :func:`element_features`), ties broken by index."""
    sets = []
    for i in range(len(attr)):
        _, s = element_features(attr, i)
        k = _k(top_k, s.size)
        sets.append(set(np.argsort(-s, kind="stable")[:k].tolist()))
    return sets


def _k(top_k: float | int, f: int) -> int:
    if isinstance(top_k, float) and 0 < top_k < 1:
        return max(1, math.ceil(top_k * f))
    if int(top_k) >= 1:
        return min(int(top_k), f)
    raise ConfigError(f"top_k must be a fraction in (0, 1) or a count ≥ 1, got {top_k}")


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def chance_jaccard(top_k: float | int, f: int) -> float:
    """Expected Jaccard index of two independent uniformly random k-subsets of F features (≈ k / (2F − k))."""
    k = _k(top_k, f)
    if k >= f:
        return 1.0
    # E|A∩B| is hypergeometric; E[J] ≈ E|A∩B| / (2k − E|A∩B|), exact enough to mark chance level.
    inter = k * k / f
    return inter / (2 * k - inter)


@dataclass
class Stability:
    """Top-k agreement of an explanation with re-explanations, per sample and kind."""

    rerun: np.ndarray | None
    noise: np.ndarray
    chance: float
    params: dict[str, Any]


def _stochastic(method: str) -> bool:
    """Whether the explainer declares its results depend on the seed (re-running it then measures stability);
    an explainer the registry does not know is taken as deterministic."""
    return method in registry.names("explainer", stochastic=True)


def stability(
    target: Target,
    x: torch.Tensor | list[str],
    attr: Attribution,
    *,
    top_k: float | int = 0.1,
    noise: float = 0.02,
    repeats: int = 2,
    seed: int = 0,
    batch_size: int = 4096,
    explain_fn: Callable[..., Attribution] | None = None,
    **options: Any,
) -> Stability:
    """Re-explain ``x`` with other seeds and under input noise; Jaccard of top-k sets vs ``attr``.

    Reruns use seeds ``seed+1 ... seed+repeats`` (skipped for deterministic methods, where they
    would give 1). Noisy inputs use ``repeats`` draws of N(0, (noise·range)²), clipped, explained
    with ``seed``, and explain the same class as ``attr``. For text, noise means dropping each
    word with probability ``noise`` (at least one word kept).
    """
    fn = explain_fn or explain
    base_sets = topk_sets(attr, top_k)
    n = len(attr)
    label = attr.label
    rerun = None
    if _stochastic(attr.method) and repeats > 0:
        js = np.zeros((n, repeats))
        for r in range(repeats):
            again = fn(target, attr.texts if attr.texts is not None else x, method=attr.method, label=label,
                       seed=seed + 1 + r, batch_size=batch_size, **options)
            js[:, r] = [jaccard(a, b) for a, b in zip(base_sets, topk_sets(again, top_k), strict=True)]
        rerun = js.mean(1)
    gen = torch.Generator().manual_seed(seed + 10_000)
    jn = np.zeros((n, max(repeats, 1)))
    for r in range(max(repeats, 1)):
        if attr.texts is not None:
            noisy: Any = [_drop_words(t, noise, np.random.default_rng(seed + r)) for t in attr.texts]
            again = fn(target, noisy, method=attr.method, label=label, seed=seed, batch_size=batch_size, **options)
            js_r = [_word_jaccard(attr, again, i, top_k) for i in range(n)]
        else:
            assert isinstance(x, torch.Tensor)
            lo, hi = target.spec.value_range
            xn = (x + noise * (hi - lo) * torch.randn(x.shape, generator=gen).to(x.device)).clamp(lo, hi)
            again = fn(target, xn, method=attr.method, label=label, seed=seed, batch_size=batch_size, **options)
            js_r = [jaccard(a, b) for a, b in zip(base_sets, topk_sets(again, top_k), strict=True)]
        jn[:, r] = js_r
    f = element_features(attr, 0)[1].size if n else 1
    return Stability(rerun=rerun, noise=jn.mean(1), chance=chance_jaccard(top_k, f),
                     params={"top_k": top_k, "noise": noise, "repeats": repeats, "seed": seed})


def _drop_words(text: str, p: float, rng: np.random.Generator) -> str:
    import re

    parts = re.split(r"(\W+)", text)
    words = [i for i, w in enumerate(parts) if w and not re.fullmatch(r"\W+", w)]
    drop = {i for i in words if rng.random() < p}
    if len(drop) >= len(words) and words:
        drop.discard(words[0])
    return "".join(w for i, w in enumerate(parts) if i not in drop)


def _word_jaccard(a: Attribution, b: Attribution, i: int, top_k: float | int) -> float:
    """Top-k words of two text explanations compared as words (their ids differ between texts)."""
    assert a.tokens is not None and b.tokens is not None
    wa, wb = a.feature_scores(i)[1], b.feature_scores(i)[1]
    ka, kb = _k(top_k, wa.size), _k(top_k, wb.size)
    sa = {a.tokens[i][j] for j in np.argsort(-wa, kind="stable")[:ka]}
    sb = {b.tokens[i][j] for j in np.argsort(-wb, kind="stable")[:kb]}
    return jaccard({hash(w) for w in sa}, {hash(w) for w in sb})


def explained_area(attr: Attribution, num_features: int = 5, cell: int | None = None) -> np.ndarray:
    """The seed's score per sample: fraction of the input covered by the ≤ ``num_features`` most
    positive features (see the module docstring). Gradient attributions on images are first
    averaged over grid cells (``cell``, default as for LIME) so that they have superpixels too.
    """
    out = np.zeros(len(attr))
    for i in range(len(attr)):
        v = attr.values[i]
        if attr.groups is not None:
            g, s = attr.feature_scores(i)
        elif v.ndim == 3:
            h, w = v.shape[1:]
            seg = torch.from_numpy(grid_segments(h, w, cell)).expand(*v.shape)
            from aisec.explain import feature_units

            g, s = feature_units(v, seg)
        else:
            g, s = attr.feature_scores(i)
        order = np.argsort(-s, kind="stable")[:num_features]
        chosen = order[s[order] > 0]
        valid = g >= 0
        out[i] = float(np.isin(g[valid], chosen).mean()) if valid.any() else 0.0
    return out

"""LIME (Ribeiro et al. 2016, https://arxiv.org/abs/1602.04938) for images, tables and text.

The ``lime`` library does the explaining: its sampling, kernel, feature selection and ridge
surrogate run unchanged, so a result equals a direct ``lime`` call with the same seed and
settings (``tests/reference/test_lime_reference.py``). What aisec changes is how the image
neighbourhood reaches the model: ``lime`` builds perturbed images one at a time in a Python loop
and calls the model every ``batch_size=10`` images; here the same random on/off matrix (drawn from
the same generator, in the same order) becomes all perturbed images in one vectorised step, sent
through the model in chunks of ``batch_size`` (thousands). Tabular and text LIME already query
the model once per explanation and are used as they are.

Each sample is explained with a fresh ``numpy.random.RandomState(seed)``, so an explanation does
not depend on which other samples were in the batch.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from aisec.core.errors import ConfigError
from aisec.core.progress import Progress
from aisec.core.registry import register
from aisec.core.target import Target
from aisec.core.types import Capability, Modality
from aisec.explain._base import Attribution, model_fn_numpy
from aisec.explain._segment import Segmenter

_IMAGE_BUDGET_BYTES = 256 * 2**20  # perturbed images held at once


def _batched_image_explainer(kernel_width: float, feature_selection: str, seed: int) -> Any:
    from lime.lime_image import LimeImageExplainer

    class BatchedLimeImageExplainer(LimeImageExplainer):  # type: ignore[misc]  # lime is untyped: an Any base
        """``lime``'s image explainer with a vectorised, chunked ``data_labels``."""

        def data_labels(self, image: np.ndarray, fudged_image: np.ndarray, segments: np.ndarray,
                        classifier_fn: Any, num_samples: int, batch_size: int = 10) -> tuple[np.ndarray, np.ndarray]:
            n_features = np.unique(segments).shape[0]
            # Same draw, same order as lime_image.LimeImageExplainer.data_labels.
            data = self.random_state.randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
            data[0, :] = 1
            chunk = max(1, min(batch_size, _IMAGE_BUDGET_BYTES // max(image.nbytes, 1)))
            labels = []
            for i in range(0, num_samples, chunk):
                off = data[i : i + chunk][:, segments] == 0  # (n, H, W): pixels whose segment is off
                imgs = np.where(off[..., None], fudged_image[None], image[None])
                labels.append(np.asarray(classifier_fn(imgs)))
            return data, np.concatenate(labels)

    return BatchedLimeImageExplainer(kernel_width=kernel_width, feature_selection=feature_selection,
                                     random_state=seed)


def lime_image_input(x: np.ndarray) -> np.ndarray:
    """One ``(C, H, W)`` image as ``lime`` takes it: ``(H, W)`` for one channel, else ``(H, W, C)``."""
    return x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))


def lime_image_to_tensor(channels: int) -> Any:
    """Convert the ``(n, H, W, 3|C)`` arrays ``lime`` passes to ``classifier_fn`` back to ``(n, C, H, W)``."""

    def convert(imgs: np.ndarray) -> torch.Tensor:
        if channels == 1:  # lime turned the grey image into RGB with three equal channels
            imgs = imgs[..., :1]
        return torch.from_numpy(np.ascontiguousarray(np.transpose(imgs, (0, 3, 1, 2)))).float()

    return convert


def segment_means(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """``lime``'s default "hidden" image: every segment filled with its mean colour, any channel count."""
    k = int(segments.max()) + 1
    flat = image.reshape(-1, image.shape[-1])
    counts = np.bincount(segments.ravel(), minlength=k)[:, None]
    sums = np.stack([np.bincount(segments.ravel(), weights=flat[:, c], minlength=k)
                     for c in range(flat.shape[1])], 1)
    fill: np.ndarray = (sums / np.maximum(counts, 1))[segments].astype(image.dtype)
    return fill


def lime_image(
    target: Target, x: torch.Tensor, labels: torch.Tensor, *, seed: int, batch_size: int,
    progress: Progress, num_samples: int = 1000, segmentation: str = "grid", kernel_width: float = 0.25,
    hide_color: float | str | None = "low", feature_selection: str = "auto", num_features: int = 100000,
    distance_metric: str = "cosine", **seg_params: Any,
) -> Attribution:
    """LIME on ``(N, C, H, W)`` images with superpixels from :class:`Segmenter`.

    ``hide_color`` is what a switched-off superpixel shows: ``"low"`` (default) the low end of the
    value range (black), a number, or ``None`` for ``lime``'s own default, the segment's mean
    colour — which on one-pixel grid cells (8x8 images) equals the pixel and hides nothing.
    """
    t0 = time.perf_counter()
    if hide_color == "low":
        hide_color = float(target.spec.value_range[0])
    elif isinstance(hide_color, str):
        raise ConfigError(f"hide_color must be 'low', a number or None, got '{hide_color}'")
    n, c, h, w = x.shape
    segmenter = Segmenter(segmentation, seed=seed, **seg_params)
    fn = model_fn_numpy(target, batch_size, lime_image_to_tensor(c))
    values = torch.zeros(n, c, h, w)
    groups = torch.zeros(n, c, h, w, dtype=torch.long)
    weights: list[np.ndarray] = []
    scores = np.full(n, np.nan)
    raws = []
    xs = x.detach().cpu().numpy()
    for i in range(n):
        img = lime_image_input(xs[i])
        explainer = _batched_image_explainer(kernel_width, feature_selection, seed)
        hide: Any = hide_color
        if c not in (1, 3) and hide is None:  # lime's segment-mean fill assumes three channels
            hide = segment_means(img, segmenter(img))
        exp = explainer.explain_instance(
            img, fn, labels=(int(labels[i]),), hide_color=hide, top_labels=None, num_features=num_features,
            num_samples=num_samples, batch_size=batch_size, segmentation_fn=segmenter,
            distance_metric=distance_metric,
        )
        seg = np.asarray(exp.segments)
        wt = np.zeros(int(seg.max()) + 1)
        for f, v in exp.local_exp[int(labels[i])]:
            wt[f] = v
        values[i] = torch.from_numpy(wt[seg]).float().expand(c, h, w)
        groups[i] = torch.from_numpy(seg).expand(c, h, w)
        weights.append(wt)
        scores[i] = float(exp.score)
        raws.append(exp)
        progress("lime", i + 1, n)
    params = {"num_samples": num_samples, "kernel_width": kernel_width, "hide_color": hide_color,
              "feature_selection": feature_selection, "num_features": num_features,
              "distance_metric": distance_metric, "seed": seed, **segmenter.describe()}
    return Attribution(values=values, label=labels, method="lime", params=params,
                       seconds=time.perf_counter() - t0, groups=groups, group_weights=weights,
                       score=scores, raw=raws)


def lime_tabular(
    target: Target, x: torch.Tensor, labels: torch.Tensor, *, seed: int, batch_size: int,
    progress: Progress, training_data: Any = None, num_samples: int = 5000,
    feature_names: list[str] | None = None, discretize_continuous: bool = True,
    discretizer: str = "quartile", kernel_width: float | None = None, sample_around_instance: bool = False,
    feature_selection: str = "auto",
) -> Attribution:
    """LIME on ``(N, D)`` rows with ``lime``'s ``LimeTabularExplainer``.

    ``training_data`` ``(M, D)`` gives the feature statistics LIME samples from (required).
    """
    from lime.lime_tabular import LimeTabularExplainer

    if training_data is None:
        raise ConfigError(
            "tabular LIME needs training_data: rows (M, D) whose statistics it samples perturbations from; "
            "pass explain(..., training_data=dataset.x)"
        )
    t0 = time.perf_counter()
    train = np.asarray(training_data.cpu() if isinstance(training_data, torch.Tensor) else training_data,
                       dtype=np.float64)
    shape = tuple(x.shape[1:])
    train = train.reshape(train.shape[0], -1)
    d = train.shape[1]
    fn = model_fn_numpy(target, batch_size, lambda a: torch.from_numpy(a).float().reshape(-1, *shape))
    xs = x.detach().cpu().double().numpy().reshape(x.shape[0], -1)
    n = xs.shape[0]
    values = torch.zeros(n, d)
    weights, scores, raws = [], np.full(n, np.nan), []
    for i in range(n):
        explainer = LimeTabularExplainer(
            train, mode="classification", feature_names=feature_names, kernel_width=kernel_width,
            discretize_continuous=discretize_continuous, discretizer=discretizer,
            sample_around_instance=sample_around_instance, feature_selection=feature_selection,
            random_state=seed,
        )
        exp = explainer.explain_instance(xs[i], fn, labels=(int(labels[i]),), num_features=d,
                                         num_samples=num_samples)
        wt = np.zeros(d)
        for f, v in exp.local_exp[int(labels[i])]:
            wt[f] = v
        values[i] = torch.from_numpy(wt).float()
        weights.append(wt)
        scores[i] = float(exp.score)
        raws.append(exp)
        progress("lime", i + 1, n)
    params = {"num_samples": num_samples, "discretize_continuous": discretize_continuous,
              "discretizer": discretizer, "kernel_width": kernel_width,
              "sample_around_instance": sample_around_instance, "feature_selection": feature_selection,
              "seed": seed, "training_rows": int(train.shape[0])}
    return Attribution(values=values.reshape(n, *shape), label=labels, method="lime", params=params,
                       seconds=time.perf_counter() - t0, group_weights=weights, score=scores, raw=raws)


def word_groups(indexed: Any, width: int) -> np.ndarray:
    """Per UTF-8 byte of an ``IndexedString``'s text, the id of its word (``-1``: not a word)."""
    char_group = np.full(len(indexed.raw), -1, dtype=np.int64)
    for wid in range(indexed.num_words()):
        for start in indexed.string_position(wid):
            char_group[start : start + len(indexed.inverse_vocab[wid])] = wid
    per_byte = np.repeat(char_group, [len(ch.encode("utf-8")) for ch in indexed.raw]) if indexed.raw else char_group
    out = np.full(width, -1, dtype=np.int64)
    out[: min(width, per_byte.size)] = per_byte[:width]
    return out


def lime_text(
    target: Target, texts: list[str], labels: torch.Tensor, *, seed: int, batch_size: int,
    progress: Progress, num_samples: int = 1000, kernel_width: float = 25.0, bow: bool = True,
    split_expression: str = r"\W+", feature_selection: str = "auto", num_features: int = 100000,
    class_names: list[str] | None = None,
) -> Attribution:
    """LIME on words with ``lime``'s ``LimeTextExplainer`` (bag of words: a word is removed everywhere)."""
    from lime.lime_text import LimeTextExplainer

    from aisec.data.text import byte_width, encode_texts

    t0 = time.perf_counter()
    width = byte_width(target)
    fn = model_fn_numpy(target, batch_size, lambda strs: encode_texts(list(strs), width))
    names = class_names or [target.spec.class_name(k) for k in range(target.spec.num_classes)]
    enc = encode_texts(texts, width)
    n, L = enc.shape
    values = torch.zeros(n, L)
    groups = torch.full((n, L), -1, dtype=torch.long)
    weights, tokens, scores, raws = [], [], np.full(n, np.nan), []
    for i, text in enumerate(texts):
        explainer = LimeTextExplainer(kernel_width=kernel_width, class_names=names, bow=bow,
                                      split_expression=split_expression, feature_selection=feature_selection,
                                      random_state=seed)
        exp = explainer.explain_instance(text, fn, labels=(int(labels[i]),), num_features=num_features,
                                         num_samples=num_samples)
        indexed = exp.domain_mapper.indexed_string
        wt = np.zeros(indexed.num_words())
        for f, v in exp.local_exp[int(labels[i])]:
            wt[f] = v
        g = word_groups(indexed, L)
        groups[i] = torch.from_numpy(g)
        values[i] = torch.from_numpy(np.where(g >= 0, wt[np.maximum(g, 0)] if wt.size else 0.0, 0.0)).float()
        weights.append(wt)
        tokens.append(list(indexed.inverse_vocab))
        scores[i] = float(exp.score)
        raws.append(exp)
        progress("lime", i + 1, n)
    params = {"num_samples": num_samples, "kernel_width": kernel_width, "bow": bow,
              "split_expression": split_expression, "feature_selection": feature_selection,
              "num_features": num_features, "seed": seed}
    return Attribution(values=values, label=labels, method="lime", params=params,
                       seconds=time.perf_counter() - t0, groups=groups, group_weights=weights,
                       tokens=tokens, texts=list(texts), score=scores, raw=raws)


@register("explainer", "lime", summary="LIME: a local linear surrogate fitted to perturbed inputs",
          requires={Capability.PROBABILITIES},
          modalities={Modality.IMAGE, Modality.TABULAR, Modality.TEXT}, stochastic=True, perturbation=True,
          paper="https://arxiv.org/abs/1602.04938")
def lime(target: Target, x: Any, labels: torch.Tensor, **options: Any) -> Attribution:
    """Dispatch on the target's modality."""
    modality = target.spec.modality
    if modality is Modality.TEXT:
        return lime_text(target, x, labels, **options)
    if modality is Modality.IMAGE:
        if x.ndim != 4:
            raise ConfigError(f"image LIME needs (N, C, H, W) inputs, got shape {tuple(x.shape)}")
        return lime_image(target, x, labels, **options)
    return lime_tabular(target, x, labels, **options)

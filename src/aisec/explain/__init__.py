"""Explain a model's predictions: ``explain(target, x, method=...) -> Attribution``.

One verb whatever the method or modality:

=======================  ==========================  ==============================================
method                   needs                       inputs
=======================  ==========================  ==============================================
``lime``                 probabilities (black box)   images (any size, 1 or more channels), tables,
                                                     text
``kernel_shap``          probabilities (black box)   images, tables
``saliency``             gradients (white box)       images, tables
``integrated_gradients`` gradients (white box)       images, tables
``random``               nothing                     images, tables (a control for the metrics)
=======================  ==========================  ==============================================

>>> from aisec.explain import explain
>>> attr = explain(target, x[:4], method="lime", num_samples=1000, seed=0)
>>> attr.values.shape == x[:4].shape
True

Text is explained from strings or their byte tensors (:mod:`aisec.data.text`) with a text target
such as :class:`~aisec.targets.text.TextPipelineTarget`. Faithfulness and stability of the
results are measured by :mod:`aisec.metrics.faithfulness`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from aisec.core.errors import ConfigError
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import ExplainerInfo, get, methods
from aisec.core.target import Target, require
from aisec.core.types import Capability, Modality
from aisec.explain._base import Attribution, as_batch, feature_units, predict_batched, resolve_labels

# the explainer modules register themselves (family ``explainer``) when imported
from aisec.explain._gradient import integrated_gradients, random_attribution, saliency  # noqa: F401
from aisec.explain._lime import lime  # noqa: F401
from aisec.explain._segment import SEGMENTATIONS, Segmenter, default_cell, grid_segments
from aisec.explain._shap import kernel_shap  # noqa: F401

Explainer = Callable[..., Attribution]
"""An explainer: ``fn(target, x, labels, *, seed, batch_size, progress, **options) -> Attribution``, registered
in the registry's ``explainer`` family with its facts (needs, modalities, stochastic, perturbation)."""


def method_name(method: str) -> str:
    """The registry name of ``method`` (aliases such as ``ig`` and ``shap`` resolved)."""
    return get("explainer", method).name


def handles(info: ExplainerInfo, modality: Modality) -> bool:
    """Whether the explainer declares it explains inputs of ``modality`` (no modalities declared: any)."""
    return not info.modalities or modality in info.modalities


def text_explainers() -> list[str]:
    """Names of the explainers that explain text."""
    return [m.name for m in methods("explainer") if handles(m, Modality.TEXT)]  # type: ignore[arg-type]


def black_box_alternatives(info: ExplainerInfo) -> str:
    """For an explainer that needs gradients: the ones a black box (probabilities) can serve, quoted, those
    handling the most modalities first."""
    if Capability.GRADIENTS not in info.requires:
        return ""
    alts = [m for m in methods("explainer") if Capability.GRADIENTS not in m.requires and m.requires]
    alts.sort(key=lambda m: (-len(m.modalities), m.name))
    return " or ".join(repr(m.name) for m in alts)


def explain(
    target: Target,
    x: torch.Tensor | str | Sequence[str],
    *,
    method: str = "lime",
    label: int | Sequence[int] | torch.Tensor | None = None,
    seed: int = 0,
    batch_size: int = 4096,
    progress: Progress = no_progress,
    **options: Any,
) -> Attribution:
    """Attribute the target's prediction on ``x`` to its input features.

    Args:
        target: the model; ``saliency`` and ``integrated_gradients`` need a white-box target.
        x: one sample ``input_shape`` or a batch ``(N, *input_shape)`` in the natural range; for
            text, a string, a list of strings or their byte tensor.
        method: see the module table.
        label: class to explain, one or one per sample; default: the predicted class.
        seed: seeds every random choice; each sample of a batch is explained with this seed.
        batch_size: inputs per forward pass (LIME and SHAP send thousands of perturbations).
        **options: method settings, e.g. ``num_samples``, ``segmentation`` (``grid``/``slic``/
            ``quickshift``), ``cell``, ``training_data`` (tabular LIME), ``steps`` (IG).

    Returns:
        An :class:`Attribution` whose ``values`` have the shape of the (batched) input.
    """
    info = get("explainer", method)
    name, fn = info.name, info.obj
    require(target, info.requires, what=f"explainer '{name}'", alternatives=black_box_alternatives(info))
    if batch_size < 1:
        raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
    t0 = time.perf_counter()
    if target.spec.modality is Modality.TEXT:
        if not handles(info, Modality.TEXT):
            raise ConfigError(f"explainer '{name}' does not explain text; use one of {text_explainers()}")
        from aisec.data.text import byte_width, decode_texts, encode_texts

        if isinstance(x, str):
            texts = [x]
        elif isinstance(x, torch.Tensor):
            texts = decode_texts(x)
        else:
            texts = list(x)
        width = byte_width(target)
        labels, prob = resolve_labels(target, encode_texts(texts, width), label, batch_size)
        attr = fn(target, texts, labels, seed=seed, batch_size=batch_size, progress=progress, **options)
    else:
        if not isinstance(x, torch.Tensor):
            raise ConfigError(f"explain() takes a tensor for {target.spec.modality.value} targets, got {type(x)}")
        xb, _ = as_batch(target, x)
        labels, prob = resolve_labels(target, xb, label, batch_size)
        try:
            attr = fn(target, xb, labels, seed=seed, batch_size=batch_size, progress=progress, **options)
        except TypeError as exc:  # an unknown option: name the method and what it accepts
            if "unexpected keyword argument" not in str(exc):
                raise
            raise ConfigError(f"explainer '{name}': {exc}") from exc
    if not isinstance(attr, Attribution):
        raise TypeError(f"explainer '{name}' returned {type(attr).__name__}, not an Attribution")
    attr.probability = prob
    attr.seconds = time.perf_counter() - t0
    return attr


__all__ = [
    "SEGMENTATIONS",
    "Attribution",
    "Segmenter",
    "black_box_alternatives",
    "default_cell",
    "explain",
    "feature_units",
    "grid_segments",
    "handles",
    "method_name",
    "predict_batched",
    "text_explainers",
]

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
from aisec.core.target import Target, require
from aisec.core.types import Capability, Modality
from aisec.explain._base import Attribution, as_batch, feature_units, predict_batched, resolve_labels
from aisec.explain._gradient import integrated_gradients, random_attribution, saliency
from aisec.explain._lime import lime
from aisec.explain._segment import SEGMENTATIONS, Segmenter, default_cell, grid_segments
from aisec.explain._shap import kernel_shap

Explainer = Callable[..., Attribution]

METHODS: dict[str, tuple[Explainer, frozenset[Capability]]] = {
    "lime": (lime, frozenset({Capability.PROBABILITIES})),
    "kernel_shap": (kernel_shap, frozenset({Capability.PROBABILITIES})),
    "saliency": (saliency, frozenset({Capability.GRADIENTS})),
    "integrated_gradients": (integrated_gradients, frozenset({Capability.GRADIENTS})),
    "random": (random_attribution, frozenset()),
}
ALIASES = {"shap": "kernel_shap", "ig": "integrated_gradients", "kernelshap": "kernel_shap"}
TEXT_METHODS = frozenset({"lime"})


def method_name(method: str) -> str:
    """The registry name of ``method`` (aliases such as ``ig`` and ``shap`` resolved)."""
    key = ALIASES.get(method.lower(), method.lower())
    if key not in METHODS:
        raise ConfigError(f"unknown explainer '{method}'; choose one of {', '.join(sorted(METHODS))}")
    return key


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
    name = method_name(method)
    fn, needs = METHODS[name]
    alternatives = "'lime' or 'kernel_shap'" if Capability.GRADIENTS in needs else ""
    require(target, needs, what=f"explainer '{name}'", alternatives=alternatives)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
    t0 = time.perf_counter()
    if target.spec.modality is Modality.TEXT:
        if name not in TEXT_METHODS:
            raise ConfigError(f"explainer '{name}' does not explain text; use one of {sorted(TEXT_METHODS)}")
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
    attr.probability = prob
    attr.seconds = time.perf_counter() - t0
    return attr


__all__ = [
    "METHODS",
    "SEGMENTATIONS",
    "TEXT_METHODS",
    "Attribution",
    "Segmenter",
    "default_cell",
    "explain",
    "feature_units",
    "grid_segments",
    "method_name",
    "predict_batched",
]

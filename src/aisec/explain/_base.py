"""The :class:`Attribution` every explainer returns, and what the explainers share.

An attribution gives every input element a score for one class: how much that element pushes the
model toward the class (positive) or away from it (negative). Elements belong to *features* — the
units an explainer perturbs or a faithfulness curve deletes: pixels, LIME superpixels, table
columns, words. ``groups`` maps every element to its feature (``-1``: not a feature, e.g. the
spaces between words), so scores computed on different units can be compared on the same input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from aisec.core.errors import ConfigError, ShapeError
from aisec.core.target import Target
from aisec.core.types import Modality


@dataclass
class Attribution:
    """Per-element attribution scores for a batch of inputs, one explained class per input.

    Attributes:
        values: ``(N, *input_shape)`` float scores, on the CPU; the input's shape. For text the input
            is UTF-8 bytes (see :mod:`aisec.data.text`) and each byte carries its word's score.
        label: ``(N,)`` the class each row explains.
        method: registry name of the explainer (``lime``, ``saliency``, ...).
        params: the explainer's settings (JSON-able), enough to re-run it.
        seconds: wall-clock time of the whole call.
        groups: ``(N, *input_shape)`` int feature id of each element (``-1``: none); ``None``
            means every element is its own feature. LIME/SHAP image segments and text words live here.
        group_weights: per row, the weight of each feature id ``0..K-1`` (LIME/SHAP surrogate
            coefficients); ``None`` for gradient methods.
        tokens: for text, per row the words behind feature ids ``0..K-1``.
        texts: for text, the explained strings.
        score: per row, the R² of LIME's local surrogate on its neighbourhood (NaN otherwise).
        probability: ``(N,)`` the model's probability of the explained class on the input.
        raw: the underlying library objects (e.g. ``lime`` explanations), not serialised.
    """

    values: torch.Tensor
    label: torch.Tensor
    method: str
    params: dict[str, Any]
    seconds: float
    groups: torch.Tensor | None = None
    group_weights: list[np.ndarray] | None = None
    tokens: list[list[str]] | None = None
    texts: list[str] | None = None
    score: np.ndarray | None = None
    probability: torch.Tensor | None = None
    raw: list[Any] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def head(self, m: int) -> Attribution:
        """The first ``m`` rows (shares tensors with ``self``)."""

        def cut(v: Any) -> Any:
            return None if v is None else v[:m]

        return Attribution(
            values=self.values[:m], label=self.label[:m], method=self.method, params=self.params,
            seconds=self.seconds, groups=cut(self.groups), group_weights=cut(self.group_weights),
            tokens=cut(self.tokens), texts=cut(self.texts), score=cut(self.score),
            probability=cut(self.probability), raw=self.raw[:m],
        )

    def feature_scores(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i`` as ``(groups, scores)``: the feature id of each element and each feature's score.

        Features are the attribution's own units when it has groups (LIME superpixels, words);
        otherwise every element is a feature and scores are summed over image channels, so a
        feature is a pixel.
        """
        return feature_units(self.values[i], None if self.groups is None else self.groups[i],
                             None if self.group_weights is None else self.group_weights[i])


def feature_units(
    values: torch.Tensor, groups: torch.Tensor | None, weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Element→feature map and per-feature scores for one sample (see :meth:`Attribution.feature_scores`)."""
    v = values.detach().cpu().double().numpy()
    if groups is not None:
        g = groups.cpu().numpy().astype(np.int64)
        k = int(g.max()) + 1 if (g >= 0).any() else 0
        if weights is not None and len(weights) == k:
            return g, np.asarray(weights, dtype=np.float64)
        sums = np.bincount(g[g >= 0].ravel(), weights=v[g >= 0].ravel(), minlength=k)
        counts = np.maximum(np.bincount(g[g >= 0].ravel(), minlength=k), 1)
        return g, sums / counts
    if v.ndim == 3:  # (C, H, W): a pixel is a feature, channels summed
        h, w = v.shape[1:]
        g = np.broadcast_to(np.arange(h * w).reshape(1, h, w), v.shape).copy()
        return g, v.sum(0).ravel()
    return np.arange(v.size).reshape(v.shape), v.ravel()


def as_batch(target: Target, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``x`` as a batch ``(N, *input_shape)`` and whether it was a single sample."""
    shape = target.spec.input_shape
    if target.spec.modality is Modality.TEXT:
        return (x.unsqueeze(0), True) if x.ndim == 1 else (x, False)
    if tuple(x.shape) == shape:
        return x.unsqueeze(0), True
    if tuple(x.shape[1:]) == shape:
        return x, False
    raise ShapeError(
        f"explain() got shape {tuple(x.shape)}; model '{target.spec.name}' takes one sample of shape "
        f"{shape} or a batch (N, {', '.join(map(str, shape))})"
    )


def predict_batched(target: Target, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Class probabilities for ``x`` on the CPU, ``batch_size`` samples per forward pass."""
    out = []
    with torch.no_grad():
        for i in range(0, int(x.shape[0]), batch_size):
            out.append(target.predict(x[i : i + batch_size]).detach().float().cpu())
    return torch.cat(out) if out else torch.empty(0, target.spec.num_classes)


def resolve_labels(
    target: Target, x: torch.Tensor, label: int | Sequence[int] | torch.Tensor | np.ndarray | None, batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The class to explain per row (default: the predicted class) and its probability."""
    probs = predict_batched(target, x, batch_size)
    n, k = probs.shape
    if label is None:
        lab = probs.argmax(1)
    else:
        lab = torch.as_tensor(np.asarray(label), dtype=torch.long).reshape(-1).cpu()
        if lab.numel() == 1:
            lab = lab.expand(n).clone()
        if lab.numel() != n:
            raise ConfigError(f"label: give one class or one per sample ({n}), got {lab.numel()}")
        if int(lab.min()) < 0 or int(lab.max()) >= k:
            raise ConfigError(f"label must lie in [0, {k - 1}], got {lab.tolist()}")
    return lab, probs[torch.arange(n), lab]


def seeded(seed: int) -> np.random.RandomState:
    """The legacy numpy generator ``lime`` and ``sklearn`` take as ``random_state``."""
    return np.random.RandomState(seed)


def model_fn_numpy(
    target: Target, batch_size: int, convert: Callable[[np.ndarray], torch.Tensor],
) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap a target as the numpy ``classifier_fn`` that ``lime`` expects, batched."""
    dev = target.spec.device

    def fn(batch: np.ndarray) -> np.ndarray:
        x = convert(batch).to(dev)
        return predict_batched(target, x, batch_size).double().numpy()

    return fn

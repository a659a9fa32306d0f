"""Backdoor detection in a given model: activation clustering, spectral signatures, Neural Cleanse.

>>> det = detect_backdoor(target, train_data, method="neural-cleanse")
>>> det.suspected        # classes that look like backdoor targets
>>> det.flagged          # indices of samples that look poisoned (AC / spectral)
"""

from __future__ import annotations

from typing import Literal, TypedDict

import torch

from aisec.attacks.poisoning._model import batched_features, module_copy
from aisec.core.dataset import Dataset, take
from aisec.core.errors import ConfigError, ShapeError
from aisec.core.target import Target, check_inputs
from aisec.detect._common import Detection, anomaly_index
from aisec.detect.activation_clustering import activation_clustering
from aisec.detect.neural_cleanse import neural_cleanse
from aisec.detect.spectral import spectral_signatures

Method = Literal["activation-clustering", "spectral-signatures", "neural-cleanse"]
METHODS: tuple[str, ...] = ("activation-clustering", "spectral-signatures", "neural-cleanse")


class _ThresholdOption(TypedDict, total=False):
    threshold: float


def detect_backdoor(
    target: Target, data: Dataset, method: str = "neural-cleanse", *, samples: int | None = None,
    threshold: float | None = None, expected_rate: float = 0.1, steps: int = 300, batch_size: int = 32,
    seed: int = 0,
) -> Detection:
    """Look for a backdoor in ``target`` using (part of) its training data ``data``.

    Activation clustering and spectral signatures inspect the training samples (poisons included)
    and flag suspicious ones; Neural Cleanse needs only clean samples and reverse-engineers a
    trigger per class. The target is never modified (a copy of its module is used).
    ``steps`` and ``batch_size`` (clean images per class and step) are Neural Cleanse's; its cost
    grows with ``steps * batch_size * num_classes``. ``expected_rate`` is spectral signatures' bound
    on the share of poisons within a backdoored class (see :func:`spectral_signatures`).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown detection method '{method}'; choose one of {', '.join(METHODS)}")
    if steps < 1 or batch_size < 1:
        raise ConfigError(f"Neural Cleanse needs steps >= 1 and batch_size >= 1, got {steps} and {batch_size}")
    spec = target.spec
    if data.info.num_classes != spec.num_classes:
        raise ShapeError(
            f"dataset '{data.info.name}' has {data.info.num_classes} classes but model '{spec.name}' has "
            f"{spec.num_classes} outputs"
        )
    model = module_copy(target)
    x, y = take(data, samples, device=spec.device)
    check_inputs(spec, x, what=f"dataset '{data.info.name}'")
    torch.manual_seed(seed)
    opt: _ThresholdOption = {"threshold": threshold} if threshold is not None else {}  # else each method's default
    if method == "neural-cleanse":
        return neural_cleanse(model, x, spec.num_classes, steps=steps, batch_size=batch_size, seed=seed, **opt)
    feats = batched_features(model, x)
    if method == "activation-clustering":
        return activation_clustering(feats, y, spec.num_classes, seed=seed, **opt)
    return spectral_signatures(feats, y, spec.num_classes, expected_rate=expected_rate, **opt)


__all__ = [
    "METHODS", "Detection", "activation_clustering", "anomaly_index", "detect_backdoor", "neural_cleanse",
    "spectral_signatures",
]

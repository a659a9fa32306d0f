"""Backdoor detection in a given model: activation clustering, spectral signatures, Neural Cleanse.

>>> det = detect_backdoor(target, train_data, method="neural-cleanse")
>>> det.suspected        # classes that look like backdoor targets
>>> det.flagged          # indices of samples that look poisoned (AC / spectral)
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from aisec.core.dataset import Dataset, take
from aisec.core.errors import ConfigError, ShapeError
from aisec.core.registry import get
from aisec.core.target import Target, check_inputs
from aisec.detect._common import Detection, anomaly_index

# each detector module registers itself (registry family ``detector``) when imported
from aisec.detect.activation_clustering import activation_clustering
from aisec.detect.neural_cleanse import neural_cleanse
from aisec.detect.spectral import spectral_signatures
from aisec.models.torch_module import batched_features, module_copy


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
    info = get("detector", method)
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
    # the settings this call knows, handed to the detector's keyword arguments of the same names
    offered: dict[str, Any] = {"seed": seed, "steps": steps, "batch_size": batch_size, "expected_rate": expected_rate,
                               **({"threshold": threshold} if threshold is not None else {})}
    accepted = inspect.signature(info.obj).parameters
    options = {k: v for k, v in offered.items() if k in accepted}
    if info.inspects == "model":  # probes a copy of the model with the (clean) samples
        result: Detection = info.obj(model, x, spec.num_classes, **options)
    elif info.inspects == "features":  # inspects the penultimate-layer features of the samples
        result = info.obj(batched_features(model, x), y, spec.num_classes, **options)
    else:
        raise ConfigError(f"detector '{info.name}' declares inspects={info.inspects!r}; expected 'model' or "
                          "'features'")
    return result


__all__ = [
    "Detection", "activation_clustering", "anomaly_index", "detect_backdoor", "neural_cleanse",
    "spectral_signatures",
]

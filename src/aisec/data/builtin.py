"""Built-in real datasets that ship with scikit-learn (no download)."""

from __future__ import annotations

import numpy as np

from aisec.core.dataset import TensorDataset
from aisec.core.errors import ConfigError
from aisec.core.types import Modality


def digits() -> TensorDataset:
    """scikit-learn's 1,797 handwritten digits, 1x8x8, scaled from 0..16 to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    return TensorDataset(
        x, d.target, name="digits", modality=Modality.IMAGE,
        classes=[str(i) for i in range(10)], source="sklearn.datasets.load_digits",
    )


def breast_cancer() -> TensorDataset:
    """Wisconsin breast-cancer table (569 x 30), each feature min-max scaled to [0, 1]."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    x = d.data.astype(np.float32)
    lo, hi = x.min(0), x.max(0)
    x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    return TensorDataset(
        x, d.target, name="breast-cancer", modality=Modality.TABULAR,
        classes=list(d.target_names), source="sklearn.datasets.load_breast_cancer",
    )


BUILTIN = {"digits": digits, "breast-cancer": breast_cancer}


def load_builtin(name: str) -> TensorDataset:
    key = name.lower().replace("_", "-")
    if key not in BUILTIN:
        raise ConfigError(f"unknown built-in dataset '{name}'; built-in: {', '.join(BUILTIN)}")
    return BUILTIN[key]()

"""Built-in real datasets that ship with scikit-learn (no download)."""

from __future__ import annotations

import numpy as np
import torch

from aisec.core.dataset import TensorDataset
from aisec.core.errors import ConfigError
from aisec.core.types import Modality


def train_test_split(
    data: TensorDataset, *, test_fraction: float = 0.3, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """A seeded random split; the built-in models are trained on the train part of seed 0."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(data), generator=g)
    k = round(len(data) * (1 - test_fraction))
    name = data.info.name
    return (
        data.subset(perm[:k], name=f"{name}-train"),
        data.subset(perm[k:], name=f"{name}-test"),
    )


def _pick(data: TensorDataset, split: str | None) -> TensorDataset:
    if split is None or split == "all":
        return data
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train', 'test' or 'all', got '{split}'")
    train, test = train_test_split(data)
    return train if split == "train" else test


def digits(split: str | None = None) -> TensorDataset:
    """scikit-learn's 1,797 handwritten digits, 1x8x8, scaled from 0..16 to [0, 1].

    ``split`` = 'train' (70%) or 'test' (30%) of the seed-0 split the demo model was trained on.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    return _pick(TensorDataset(
        x, d.target, name="digits", modality=Modality.IMAGE,
        classes=[str(i) for i in range(10)], source="sklearn.datasets.load_digits",
    ), split)


def breast_cancer(split: str | None = None) -> TensorDataset:
    """Wisconsin breast-cancer table (569 x 30), each feature min-max scaled to [0, 1]."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    x = d.data.astype(np.float32)
    lo, hi = x.min(0), x.max(0)
    x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    return _pick(TensorDataset(
        x, d.target, name="breast-cancer", modality=Modality.TABULAR,
        classes=list(d.target_names), source="sklearn.datasets.load_breast_cancer",
    ), split)


BUILTIN = {"digits": digits, "breast-cancer": breast_cancer}


def load_builtin(name: str, split: str | None = None) -> TensorDataset:
    key = name.lower().replace("_", "-")
    if key not in BUILTIN:
        raise ConfigError(f"unknown built-in dataset '{name}'; built-in: {', '.join(BUILTIN)}")
    return BUILTIN[key](split)

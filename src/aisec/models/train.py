"""Seconds-to-train reference models for the demo and tests, cached as safetensors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from aisec.core.dataset import TensorDataset


def cache_dir() -> Path:
    """Where aisec caches trained demo models: ``$AISEC_CACHE`` or ``~/.cache/aisec``."""
    root = os.environ.get("AISEC_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "aisec"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """Train ``model`` with Adam on in-memory tensors; deterministic for a given seed."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    n = x.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError("training loss became NaN/inf; lower the learning rate")
            loss.backward()
            opt.step()
    return model.eval()


def split(data: TensorDataset, *, test_fraction: float = 0.3, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """Seeded train/test split (see :func:`aisec.data.builtin.train_test_split`)."""
    from aisec.data.builtin import train_test_split

    return train_test_split(data, test_fraction=test_fraction, seed=seed)


def digits_cnn(*, seed: int = 0, epochs: int = 30, cache: bool = True) -> nn.Module:
    """The demo model: :class:`~aisec.models.zoo.DigitsCNN` trained on the digits train split.

    Trains in a few seconds on a CPU; cached under :func:`cache_dir` keyed by seed and recipe.
    """
    from safetensors.torch import load_file, save_file

    from aisec.data.builtin import digits
    from aisec.models.zoo import DigitsCNN

    key = hashlib.sha256(f"digits_cnn-v1-{seed}-{epochs}-{torch.__version__}".encode()).hexdigest()[:16]
    path = cache_dir() / f"digits_cnn-{key}.safetensors"
    torch.manual_seed(seed)
    model = DigitsCNN()
    if cache and path.exists():
        try:
            model.load_state_dict(load_file(str(path)))
            return model.eval()
        except Exception:  # a corrupt cache entry is rebuilt, never trusted
            path.unlink(missing_ok=True)
    train = digits(split="train") if seed == 0 else split(digits(), seed=seed)[0]
    fit(model, train.x, train.y, epochs=epochs, seed=seed)
    if cache:
        tmp = path.with_suffix(".tmp")
        save_file(model.state_dict(), str(tmp))
        tmp.replace(path)
    return model

"""Datasets: labelled samples, iterated in batches, identified by a content digest.

A :class:`Dataset` never has to hold all its samples in memory: checks ask for ``batches`` or
for the first ``n`` samples with :meth:`Dataset.take`. Loaders for files live in
:mod:`aisec.data`; :class:`TensorDataset` wraps tensors already in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.core.errors import DataError
from aisec.core.types import Modality


class DatasetInfo(BaseModel):
    """What a dataset is, without its samples."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    modality: Modality
    sample_shape: tuple[int, ...]
    num_samples: int = Field(ge=0)
    classes: tuple[str, ...]
    value_range: tuple[float, float] = (0.0, 1.0)
    digest: str = Field(description="sha256 over the samples and labels (or the source files).")
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


Batch = tuple[torch.Tensor, torch.Tensor]


@runtime_checkable
class Dataset(Protocol):
    """Labelled samples. ``x`` in the natural range (images in [0, 1], ``(N, C, H, W)``)."""

    @property
    def info(self) -> DatasetInfo: ...

    def __len__(self) -> int: ...

    def batches(self, batch_size: int, *, limit: int | None = None) -> Iterator[Batch]: ...


def take(data: Dataset, n: int | None = None, *, device: str | torch.device = "cpu") -> Batch:
    """The first ``n`` samples (all if ``None``) as tensors on ``device``."""
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    for x, y in data.batches(512, limit=n):
        xs.append(x)
        ys.append(y)
    if not xs:
        raise DataError(f"dataset '{data.info.name}' holds no samples")
    return torch.cat(xs).to(device), torch.cat(ys).to(device)


def digest_arrays(*arrays: np.ndarray | torch.Tensor) -> str:
    """A sha256 over arrays' dtypes, shapes and bytes: the same data gives the same digest."""
    h = hashlib.sha256()
    for a in arrays:
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


class TensorDataset:
    """A dataset held in memory as tensors (small built-in sets, subsets, tests)."""

    def __init__(
        self,
        x: torch.Tensor | np.ndarray,
        y: torch.Tensor | np.ndarray,
        *,
        name: str,
        modality: Modality,
        classes: tuple[str, ...] | list[str] | None = None,
        value_range: tuple[float, float] = (0.0, 1.0),
        source: str = "",
    ) -> None:
        xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        if xt.is_floating_point():
            xt = xt.float()
        yt = yt.long()
        if xt.shape[0] != yt.shape[0]:
            raise DataError(f"'{name}': {xt.shape[0]} samples but {yt.shape[0]} labels")
        if yt.ndim != 1:
            raise DataError(f"'{name}': labels must be one integer per sample, got shape {tuple(yt.shape)}")
        if xt.is_floating_point() and not torch.isfinite(xt).all():
            raise DataError(f"'{name}': samples contain NaN or infinite values")
        if classes is None:
            k = int(yt.max()) + 1 if yt.numel() else 0
            classes = tuple(str(i) for i in range(k))
        if yt.numel() and (int(yt.min()) < 0 or int(yt.max()) >= len(classes)):
            raise DataError(
                f"'{name}': labels span [{int(yt.min())}, {int(yt.max())}] but there are "
                f"{len(classes)} classes"
            )
        self.x, self.y = xt, yt
        self._info = DatasetInfo(
            name=name,
            modality=modality,
            sample_shape=tuple(xt.shape[1:]),
            num_samples=int(xt.shape[0]),
            classes=tuple(classes),
            value_range=value_range,
            digest=digest_arrays(xt, yt),
            source=source,
        )

    @property
    def info(self) -> DatasetInfo:
        return self._info

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batches(self, batch_size: int, *, limit: int | None = None) -> Iterator[Batch]:
        n = len(self) if limit is None else min(limit, len(self))
        for i in range(0, n, batch_size):
            j = min(i + batch_size, n)
            yield self.x[i:j], self.y[i:j]

    def subset(self, index: torch.Tensor | np.ndarray | list[int], *, name: str | None = None) -> TensorDataset:
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return TensorDataset(
            self.x[idx], self.y[idx], name=name or f"{self.info.name}[subset]",
            modality=self.info.modality, classes=self.info.classes,
            value_range=self.info.value_range, source=self.info.source,
        )

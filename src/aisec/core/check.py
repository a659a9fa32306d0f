"""Checks and their results.

A check answers one security question about a target on a dataset (``robustness``,
``poisoning``, ...). It never prints: progress goes through a callback, and what it measured comes
back as a :class:`Result` — measurements that become evidence records, per-sample tables, a
JSON-able summary for reports, and warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel

from aisec.core.dataset import Dataset
from aisec.core.errors import ShapeError
from aisec.core.evidence import Measurement
from aisec.core.progress import Progress
from aisec.core.target import Target


@dataclass
class Result:
    """What one check measured."""

    check: str
    measurements: list[Measurement]
    params: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    images: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    threats: tuple[str, ...] = ()

    def measurement(self, metric: str, **where: Any) -> Measurement:
        """The first measurement with this metric id whose parameters match ``where``."""
        for m in self.measurements:
            if m.metric == metric and all(m.parameters.get(k) == v for k, v in where.items()):
                return m
        raise KeyError(f"no measurement {metric} with {where}")


def require_same_classes(target: Target, data: Dataset, *, role: str = "dataset") -> None:
    """Raise :class:`ShapeError` unless the data has as many classes as the model has outputs."""
    spec, info = target.spec, data.info
    if info.num_classes != spec.num_classes:
        raise ShapeError(
            f"{role} '{info.name}' has {info.num_classes} classes but model '{spec.name}' has "
            f"{spec.num_classes} outputs (expected {spec.num_classes}, got {info.num_classes})"
        )


class Check(Protocol):
    """``run(target, data, params) -> Result``; ``Params`` is the pydantic model of its options."""

    Params: ClassVar[type[BaseModel]]

    def run(self, target: Target, data: Dataset, params: Any, *, progress: Progress) -> Result: ...

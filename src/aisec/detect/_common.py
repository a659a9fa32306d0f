"""Shared result type and statistics of the backdoor detectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Detection:
    """What one detector concluded about a model.

    ``class_scores`` is the per-class statistic the decision is based on and ``anomaly_index``
    its robust z-score (distance from the median in units of 1.4826·MAD, in the direction that
    signals a backdoor); a class is suspected when its anomaly index exceeds ``threshold``.
    ``flagged`` holds the indices of samples the detector thinks are poisoned (empty for
    Neural Cleanse, which needs no training data).
    """

    method: str
    suspected: list[int]
    class_scores: np.ndarray
    anomaly_index: np.ndarray
    threshold: float
    flagged: np.ndarray
    samples: int
    details: dict[str, Any] = field(default_factory=dict)
    triggers: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def alarm(self) -> bool:
        return bool(self.suspected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method, "suspected": [int(k) for k in self.suspected], "alarm": self.alarm,
            "class_scores": [float(v) for v in self.class_scores],
            "anomaly_index": [float(v) for v in self.anomaly_index], "threshold": self.threshold,
            "flagged": [int(i) for i in self.flagged], "flagged_count": int(self.flagged.size),
            "samples": self.samples, **self.details,
        }


def anomaly_index(values: np.ndarray, *, high_is_suspicious: bool) -> np.ndarray:
    """Robust z-scores: (v - median) / (1.4826 MAD), signed so that larger = more suspicious.

    Classes with no value (NaN) get 0. A zero MAD is floored at 1e-12 relative to the median.
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    out = np.zeros_like(v)
    if ok.sum() < 2:
        return out
    med = float(np.median(v[ok]))
    mad = float(np.median(np.abs(v[ok] - med))) * 1.4826
    mad = max(mad, 1e-12 * max(abs(med), 1.0))
    z = (v[ok] - med) / mad if high_is_suspicious else (med - v[ok]) / mad
    out[ok] = z
    return out


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()

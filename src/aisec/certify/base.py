"""What every certifier returns, so the robustness check, the report and the evidence treat them alike.

A certificate is a *lower* bound on robustness: a sample it proves cannot be fooled within the radius by
any attack, where the attacks' robust accuracy is an *upper* bound. ISO/IEC 24029-2 asks for three
outcomes per sample: ``proved`` (certified and correctly classified), ``counterexample`` (an input inside
the ball is misclassified — found by an attack, or the clean input itself is wrong) and ``inconclusive``
(neither: the bound is too loose, or the smoothed classifier abstained).

Certifiers register in :data:`CERTIFIERS` by name (``smoothing``, ``ibp``, ``crown``, …); the robustness
check looks them up there, so a certifier module needs no edit to the check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from aisec.core.target import Target

Status = Literal["proved", "counterexample", "inconclusive"]
STATUSES: tuple[Status, ...] = ("proved", "counterexample", "inconclusive")


@dataclass(frozen=True)
class Certificate:
    """Per-sample outcome of one certifier at one radius (one entry per input, in input order)."""

    method: str
    """The certifier's registry name (``smoothing``, ``ibp``, ``crown``)."""
    norm: str
    """``l2`` or ``linf``: the norm of the ball the certificate is about."""
    radius: float
    """The ball's radius (eps for bounds; the L2 radius asked about for smoothing)."""
    status: np.ndarray
    """One of :data:`STATUSES` per sample (dtype object or str)."""
    certified_radius: np.ndarray | None = None
    """Per sample, the largest radius proved (smoothing: σ·Φ⁻¹(p_A); NaN where none). None when the method
    certifies only the asked radius."""
    seconds: float = 0.0
    """Wall time of the whole certification (for time per sample in the report)."""
    params: dict[str, Any] = field(default_factory=dict)
    """The method's settings as run (σ, N0, N, α; or the bound method), for the evidence."""
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.status.shape[0])

    def count(self, status: Status) -> int:
        return int(np.sum(self.status == status))


Certifier = Callable[[Target, torch.Tensor, torch.Tensor, str, Sequence[float], dict[str, Any]], list[Certificate]]
"""``(target, x, y, norm, radii, params) -> one Certificate per radius``. Raises
:class:`~aisec.core.errors.CapabilityError` (or ConfigError) with a clear message when the target cannot
be certified this way (no white-box access, an unsupported layer, …)."""

CERTIFIERS: dict[str, Certifier] = {}


def register_certifier(name: str) -> Callable[[Certifier], Certifier]:
    """Decorator: make a certifier available to the robustness check under ``name``."""

    def deco(fn: Certifier) -> Certifier:
        if name in CERTIFIERS:
            raise ValueError(f"certifier {name!r} is registered twice")
        CERTIFIERS[name] = fn
        return fn

    return deco


__all__ = ["CERTIFIERS", "STATUSES", "Certificate", "Certifier", "Status", "register_certifier"]

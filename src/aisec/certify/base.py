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
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from aisec.core.errors import ConfigError
from aisec.core.stats import Interval, clopper_pearson
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
    about: Literal["model", "smoothed"] = "model"
    """Which classifier the certificate is about: ``model`` — the target as given (IBP, CROWN), so an attack on
    the target that succeeds inside the ball is a counterexample to it and certified ≤ empirical must hold;
    ``smoothed`` — the Gaussian-smoothed classifier built on the target (randomized smoothing), a different
    classifier, which attacks on the target do not refute."""

    @property
    def n(self) -> int:
        return int(self.status.shape[0])

    def count(self, status: Status) -> int:
        return int(np.sum(self.status == status))

    def certified_accuracy(self, level: float = 0.95) -> tuple[float, Interval]:
        """The fraction of samples ``proved`` and its exact (Clopper–Pearson) interval: a lower bound on the
        robust accuracy of the classifier the certificate is about, at :attr:`radius`."""
        k = self.count("proved")
        return (k / self.n if self.n else 0.0), clopper_pearson(k, self.n, level)

    def with_counterexamples(self, broken: np.ndarray) -> Certificate:
        """This certificate with every ``inconclusive`` sample that ``broken`` marks (an attack fooled it inside
        the ball) turned ``counterexample``. Only for a certificate about the model as given (``about="model"``)."""
        if self.about != "model":
            raise ValueError(f"a {self.about!r} certificate is not about the attacked model; attacks do not refute it")
        status = np.where((self.status == "inconclusive") & np.asarray(broken, dtype=bool), "counterexample",
                          self.status).astype(object)
        return replace(self, status=status)


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


def get_certifier(name: str) -> Certifier:
    """The certifier registered as ``name``, importing the built-in certifier modules (every module of
    :mod:`aisec.certify`) on first use, so a new one needs no edit anywhere else.

    Raises:
        ConfigError: no certifier has that name (the message lists the known ones).
    """
    key = name.strip().lower()
    failed: list[str] = []
    if key not in CERTIFIERS:
        import importlib
        import pkgutil

        import aisec.certify as pkg

        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_") and mod.name != "base":
                try:
                    importlib.import_module(f"aisec.certify.{mod.name}")
                except ImportError as exc:  # an optional dependency missing: the others still load
                    failed.append(f"aisec.certify.{mod.name} ({exc})")
    if key not in CERTIFIERS:
        extra = f" (not loaded: {'; '.join(failed)})" if failed else ""
        raise ConfigError(f"unknown certifier '{name}'; known: {', '.join(sorted(CERTIFIERS)) or 'none'}{extra}")
    return CERTIFIERS[key]


__all__ = ["CERTIFIERS", "STATUSES", "Certificate", "Certifier", "Status", "get_certifier", "register_certifier"]

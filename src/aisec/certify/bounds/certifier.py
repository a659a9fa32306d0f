"""The ``ibp`` and ``crown`` certifiers: per-sample proved / counterexample / inconclusive on Linf balls.

A sample is ``proved`` when the lower bound of every margin ``z_y - z_j`` (``j != y``) over the ball
``{x' : |x' - x|_inf <= eps} ∩ [lo, hi]^d`` (``[lo, hi]`` the target's declared value range) is above
0; a ``counterexample`` when the clean input is misclassified or the caller's attack broke it (``params
["broken"]``); ``inconclusive`` otherwise. The bounds are sound, so a sample an attack broke cannot be
proved; if that happens anyway (an attack that left the ball), it stays a counterexample and a note says
so.

``params``: ``broken`` — booleans, one per sample (the same at every radius) or one row per radius;
``batch_size`` — samples bounded at once (default 64).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from aisec.certify.base import Certificate, register_certifier
from aisec.certify.bounds.crown import crown_margin_bounds
from aisec.certify.bounds.ibp import ibp_margin_bounds
from aisec.certify.bounds.linear import excluding_true
from aisec.certify.bounds.network import Network, read_network
from aisec.core.errors import CapabilityError, ConfigError, ShapeError
from aisec.core.target import Target, check_inputs, require
from aisec.core.types import Capability

MarginBound = Callable[[Network, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
BOUNDS: dict[str, MarginBound] = {"ibp": ibp_margin_bounds, "crown": crown_margin_bounds}


def _broken(params: dict[str, Any], n: int, radii: Sequence[float]) -> np.ndarray:
    """``params["broken"]`` as a ``(len(radii), n)`` boolean array (all False when absent)."""
    raw = params.get("broken")
    if raw is None:
        return np.zeros((len(radii), n), dtype=bool)
    arr = np.asarray(raw)
    if arr.dtype != bool:
        raise ConfigError(f"params['broken'] must be booleans (an attack's success per sample), got dtype {arr.dtype}")
    if arr.shape == (n,):
        return np.broadcast_to(arr, (len(radii), n))
    if arr.shape == (len(radii), n):
        return arr
    raise ConfigError(f"params['broken'] has shape {arr.shape}; give one boolean per sample ({n},) or one row per "
                      f"radius ({len(radii)}, {n})")


def margin_lower_bounds(method: str, target: Target, x: torch.Tensor, y: torch.Tensor, eps: float,
                        *, batch_size: int = 64) -> np.ndarray:
    """Per sample, the ``method`` (``ibp``/``crown``) lower bound on ``min_j≠y z_y - z_j`` over the Linf ball
    of radius ``eps`` intersected with the target's value range."""
    return _lower_bounds(BOUNDS[method], read_network(target), target, x, y, eps, batch_size)


def _lower_bounds(bound: MarginBound, net: Network, target: Target, x: torch.Tensor, y: torch.Tensor, eps: float,
                  batch_size: int) -> np.ndarray:
    lo_v, hi_v = target.spec.value_range
    dev = torch.device(target.spec.device)
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size].to(dev, torch.float32)
            yb = y[start:start + batch_size].to(dev)
            lo, hi = (xb - eps).clamp(lo_v, hi_v), (xb + eps).clamp(lo_v, hi_v)
            out.append(excluding_true(bound(net, lo, hi, yb), yb).cpu())
    return torch.cat(out).double().numpy()


def _check_reading(net: Network, target: Target, x: torch.Tensor) -> None:
    """The chain of layers must reproduce the target's logits (up to a per-sample shift, for log-probabilities)."""
    with torch.no_grad():
        probe = x[:8].to(torch.device(target.spec.device), torch.float32)
        z, ref = net.forward(probe), target.logits(probe).float()
    dz, dref = z - z[:, :1], ref - ref[:, :1]
    err = float((dz - dref).abs().max())
    if err > 1e-3 * (1 + float(dref.abs().max())):
        raise CapabilityError(
            f"target '{target.spec.name}' read as a chain of layers does not reproduce its logits (largest "
            f"difference {err:.3g}): its forward does more than its layers in order. Give it as an nn.Sequential.")


def certify_bounds(method: str, target: Target, x: torch.Tensor, y: torch.Tensor, norm: str,
                   radii: Sequence[float], params: dict[str, Any]) -> list[Certificate]:
    """One :class:`Certificate` per radius (eps) with the ``method`` bound; see the module docstring."""
    require(target, frozenset({Capability.GRADIENTS}), what=f"the '{method}' certifier (layer-wise bounds)",
            alternatives="the 'smoothing' certifier, which needs only predictions")
    if str(norm).lower() not in ("linf", "inf"):
        raise ConfigError(f"the '{method}' certifier bounds Linf balls, not '{norm}'; use norm 'linf' (or the "
                          "'smoothing' certifier for l2)")
    if any(not np.isfinite(r) or r < 0 for r in radii):
        raise ConfigError(f"radii (eps) must be finite and >= 0, got {list(radii)}")
    if x.shape[0] == 0:
        raise ConfigError(f"the '{method}' certifier was given no samples; pass at least one input")
    check_inputs(target.spec, x)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ShapeError(f"labels have shape {tuple(y.shape)}; expected ({x.shape[0]},), one per input")
    n = int(x.shape[0])
    broken = _broken(params, n, radii)
    batch_size = int(params.get("batch_size", 64))
    if batch_size < 1:
        raise ConfigError(f"params['batch_size'] must be >= 1, got {batch_size}")
    net = read_network(target)
    _check_reading(net, target, x)
    with torch.no_grad():
        wrong = (target.predict(x).argmax(1).cpu() != y.cpu()).numpy()
    out = []
    for r, brk in zip(radii, broken, strict=True):
        t0 = time.perf_counter()
        lower = _lower_bounds(BOUNDS[method], net, target, x, y, float(r), batch_size)
        seconds = time.perf_counter() - t0
        status = np.full(n, "inconclusive", dtype=object)
        status[lower > 0] = "proved"
        status[wrong | brk] = "counterexample"
        notes = []
        clash = int(np.sum((lower > 0) & brk))
        if clash:
            notes.append(f"{clash} sample(s) the attack broke are proved by {method} at eps {r:g}: the attack's "
                         "inputs must lie outside the ball or the value range; kept as counterexamples")
        out.append(Certificate(
            method=method, norm="linf", radius=float(r), status=status, seconds=seconds,
            params={"bound": method, "batch_size": batch_size, "seconds_per_sample": seconds / max(n, 1),
                    "value_range": tuple(target.spec.value_range), "attack_results": params.get("broken") is not None},
            notes=notes))
    return out


@register_certifier("ibp")
def certify_ibp(target: Target, x: torch.Tensor, y: torch.Tensor, norm: str, radii: Sequence[float],
                params: dict[str, Any]) -> list[Certificate]:
    """Interval bound propagation (:mod:`aisec.certify.bounds.ibp`)."""
    return certify_bounds("ibp", target, x, y, norm, radii, params)


@register_certifier("crown")
def certify_crown(target: Target, x: torch.Tensor, y: torch.Tensor, norm: str, radii: Sequence[float],
                  params: dict[str, Any]) -> list[Certificate]:
    """CROWN backward linear bounds (:mod:`aisec.certify.bounds.crown`)."""
    return certify_bounds("crown", target, x, y, norm, radii, params)


__all__ = ["BOUNDS", "certify_bounds", "certify_crown", "certify_ibp", "margin_lower_bounds"]

"""Interval bound propagation (IBP; Gowal et al. 2018, "On the Effectiveness of Interval Bound Propagation
for Training Verifiably Robust Models").

Elementwise lower and upper bounds pass layer by layer: through an affine layer as centre ``W m + b`` and
radius ``|W| r``, through ReLU and max-pooling by monotonicity. The cheapest sound bound (one forward pass
per end); loose on normally trained nets, tight enough on nets trained with it. The layers after the
last nonlinear one are composed exactly with the margin specification (elision of the last layer).

Hand-written, not auto_LiRPA: the PyPI release (0.3, 2022) requires torch < 1.13 and the GitHub one
(0.7) declares torch < 2.9, so neither installs beside torch 2.13; the tests cross-check against exact
MILP answers instead, and against auto_LiRPA's source where it is importable.
"""

from __future__ import annotations

import torch

from aisec.certify.bounds.linear import concretize, margin_spec
from aisec.certify.bounds.network import Affine, Network


def interval_bounds(net: Network, lo: torch.Tensor, hi: torch.Tensor, upto: int | None = None
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Bounds of the input of each of ``net.ops[:upto]`` and of its output: ``upto + 1`` pairs, the first
    ``(lo, hi)`` itself."""
    out = [(lo, hi)]
    for op in net.ops[: len(net.ops) if upto is None else upto]:
        lo, hi = op.interval(lo, hi)
        out.append((lo, hi))
    return out


def affine_tail(net: Network) -> int:
    """Index of the first op after the last nonlinear one (all ops from there on are affine)."""
    t = len(net.ops)
    while t > 0 and isinstance(net.ops[t - 1], Affine):
        t -= 1
    return t


def ibp_margin_bounds(net: Network, lo: torch.Tensor, hi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Lower bounds ``(B, K)`` on ``z_y - z_j`` over the box ``lo <= x <= hi`` (column ``y`` is 0).

    Differentiable in the network's parameters (for IBP training) when called with gradients enabled.
    """
    t = affine_tail(net)
    tail_lo, tail_hi = interval_bounds(net, lo, hi, upto=t)[-1]
    a = margin_spec(y, net.num_outputs, dtype=lo.dtype).to(lo.device)
    bias = torch.zeros(a.shape[:2], dtype=lo.dtype, device=lo.device)
    for op in reversed(net.ops[t:]):
        assert isinstance(op, Affine)
        a, b = op.backward(a)
        bias = bias + b
    return concretize(a, bias, tail_lo, tail_hi)


__all__ = ["affine_tail", "ibp_margin_bounds", "interval_bounds"]

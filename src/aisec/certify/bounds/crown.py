"""CROWN (Zhang et al. 2018, "Efficient Neural Network Robustness Certification with General Activation
Functions"): linear bounds passed backward from the margins to the input.

Each nonlinear unit is replaced by two linear functions of its input that hold on its pre-activation
interval ``[l, u]``. For a ReLU: the upper line through ``(l, 0)`` and ``(u, u)`` and the lower line
``α x`` with CROWN's adaptive slope ``α = 1 if u > -l else 0`` (the choice with the smaller area);
stable units are exact. For a max-pool window: the lower line is the input with the largest lower
bound, the upper one the same input when it dominates the window (its lower bound is above every other
upper bound), else the window's largest upper bound as a constant. A coefficient matrix ``A`` on a
layer's output passes back through each layer (``A W`` for affine layers; the matching line, by the
sign of each coefficient, for nonlinear ones) to the input, where the box gives the bound in closed
form. The pre-activation intervals of every nonlinear layer come the same way, from its own backward
pass with the identity as ``A`` (so the cost is quadratic in the depth) — except right after another
nonlinear layer (a max-pool after a ReLU), where the interval map of that layer's bounds is at least as
tight (the backward pass would relax the ReLU's lower side to ``α x``, below 0) and far cheaper;
intermediate bounds are computed in slices of neurons to cap memory.

Hand-written, not auto_LiRPA (it does not install beside torch 2.13; see :mod:`aisec.certify.bounds.ibp`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aisec.certify.bounds.ibp import interval_bounds
from aisec.certify.bounds.linear import concretize, margin_spec
from aisec.certify.bounds.network import Affine, MaxPool, Network, Relu
from aisec.core.errors import CapabilityError

#: At most this many floats in one coefficient tensor; wider layers are bounded in slices of neurons.
MAX_COEFFICIENTS = 2**25

Relaxation = tuple[torch.Tensor, ...]


def _relu_relaxation(lo: torch.Tensor, hi: torch.Tensor) -> Relaxation:
    """``(lower slope, upper slope, upper intercept)`` per unit: ``α x <= relu(x) <= s x + t`` on ``[lo, hi]``."""
    active, unstable = lo >= 0, (lo < 0) & (hi > 0)
    width = (hi - lo).clamp(min=1e-12)
    s = torch.where(unstable, hi / width, active.to(lo.dtype))
    t = torch.where(unstable, -s * lo, torch.zeros_like(lo))
    alpha = torch.where(unstable, (hi > -lo).to(lo.dtype), active.to(lo.dtype))
    return alpha, s, t


def _maxpool_relaxation(op: MaxPool, lo: torch.Tensor, hi: torch.Tensor) -> Relaxation:
    """``(one-hot of the chosen input per window (B, C, K, L), dominates (B, C, L), window max of hi (B, C, L))``."""
    m = op.module
    if m.padding not in (0, (0, 0)) or m.dilation not in (1, (1, 1)) or m.ceil_mode:
        raise CapabilityError(
            f"CROWN passes MaxPool2d only without padding, dilation or ceil_mode; layer '{op.name}' has "
            f"padding={m.padding}, dilation={m.dilation}, ceil_mode={m.ceil_mode}. Use the 'ibp' certifier.")
    b, c = lo.shape[:2]
    kernel, stride = m.kernel_size, m.stride if m.stride is not None else m.kernel_size
    size = math.prod(kernel) if isinstance(kernel, tuple) else kernel * kernel
    lw = F.unfold(lo, kernel, stride=stride).view(b, c, size, -1)  # (B, C, K, L): K inputs per window
    hw = F.unfold(hi, kernel, stride=stride).view(lw.shape)
    best = lw.argmax(2)  # (B, C, L)
    onehot = F.one_hot(best, lw.shape[2]).permute(0, 1, 3, 2).to(lo.dtype)  # (B, C, K, L)
    others = hw.masked_fill(onehot.bool(), -torch.inf).max(2).values
    dominates = (lw.max(2).values >= others).to(lo.dtype)
    return onehot, dominates, hw.max(2).values


def _maxpool_backward(op: MaxPool, a: torch.Tensor, relax: Relaxation) -> tuple[torch.Tensor, torch.Tensor]:
    onehot, dominates, top = relax
    b, s = a.shape[:2]
    c, h, w = op.in_shape
    a = a.reshape(b, s, c, -1)  # (B, S, C, L)
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    coef = pos + neg * dominates.unsqueeze(1)
    bias = (neg * (1 - dominates.unsqueeze(1)) * top.unsqueeze(1)).flatten(2).sum(2)
    full = coef.unsqueeze(3) * onehot.unsqueeze(1)  # (B, S, C, K, L)
    m = op.module
    stride = m.stride if m.stride is not None else m.kernel_size
    back = F.fold(full.reshape(b * s, c * onehot.shape[2], -1), (h, w), m.kernel_size, stride=stride)
    return back.reshape(b, s, c, h, w), bias


def _backward(net: Network, k: int, a: torch.Tensor, relax: dict[int, Relaxation],
              lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Lower bound of ``A · (output of net.ops[:k])`` over the input box, per row of ``A`` ``(B, S)``."""
    bias = torch.zeros(a.shape[:2], dtype=a.dtype, device=a.device)
    for i in range(k - 1, -1, -1):
        op = net.ops[i]
        if isinstance(op, Affine):
            a, b = op.backward(a)
        elif isinstance(op, Relu):
            alpha, s, t = relax[i]
            b = torch.einsum("bsn,bn->bs", a.clamp(max=0).flatten(2), t.flatten(1))
            a = a * torch.where(a > 0, alpha.unsqueeze(1), s.unsqueeze(1))  # the line that bounds from below
        elif isinstance(op, MaxPool):
            a, b = _maxpool_backward(op, a, relax[i])
        else:  # pragma: no cover - read_module builds only these
            raise CapabilityError(f"CROWN has no relaxation for layer '{op.name}'")
        bias = bias + b
    return concretize(a, bias, lo, hi)


def _layer_bounds(net: Network, k: int, relax: dict[int, Relaxation], lo: torch.Tensor, hi: torch.Tensor,
                  ibp: tuple[torch.Tensor, torch.Tensor], skip_stable: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper bounds of the input of ``net.ops[k]``, one backward pass per slice of its neurons.

    Before a ReLU whose output bounds nothing else needs (``skip_stable``), only the units that are unstable
    for some sample by the (sound, cheaper) interval bounds ``ibp`` get a backward pass: a stable unit's
    relaxation is exact whatever its bounds, so its IBP bounds are kept.
    """
    shape = net.shapes[k]
    ibp_lo, ibp_hi = (t.flatten(1) for t in ibp)
    if skip_stable and isinstance(net.ops[k], Relu):
        rows = torch.nonzero(((ibp_lo < 0) & (ibp_hi > 0)).any(0)).flatten()
    else:
        rows = torch.arange(ibp_lo.shape[1], device=lo.device)
    widest = max(math.prod(s) for s in net.shapes[: k + 1])
    step = max(1, MAX_COEFFICIENTS // (2 * lo.shape[0] * widest))
    new_lo, new_hi = ibp_lo.clone(), ibp_hi.clone()
    for start in range(0, int(rows.numel()), step):
        idx = rows[start:start + step]
        e = torch.zeros((idx.numel(), ibp_lo.shape[1]), dtype=lo.dtype, device=lo.device)
        e[torch.arange(idx.numel(), device=lo.device), idx] = 1
        e = e.reshape(-1, *shape)
        a = torch.cat([e, -e]).unsqueeze(0).expand(lo.shape[0], *(-1,) * (1 + len(shape)))
        bound = _backward(net, k, a, relax, lo, hi)
        new_lo[:, idx] = bound[:, :idx.numel()]
        new_hi[:, idx] = -bound[:, idx.numel():]
    return new_lo.reshape(-1, *shape), new_hi.reshape(-1, *shape)


def crown_margin_bounds(net: Network, lo: torch.Tensor, hi: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Lower bounds ``(B, K)`` on ``z_y - z_j`` over the box ``lo <= x <= hi`` (column ``y`` is 0)."""
    relax: dict[int, Relaxation] = {}
    pre: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    intervals = interval_bounds(net, lo, hi)
    for k, op in enumerate(net.ops):
        if isinstance(op, Relu | MaxPool):
            if k - 1 in pre:  # right after a nonlinear layer: its interval map of its own bounds is as tight
                pre_lo, pre_hi = net.ops[k - 1].interval(*pre[k - 1])
            else:
                feeds_nonlinear = k + 1 < len(net.ops) and isinstance(net.ops[k + 1], Relu | MaxPool)
                pre_lo, pre_hi = _layer_bounds(net, k, relax, lo, hi, intervals[k], skip_stable=not feeds_nonlinear)
            pre[k] = (pre_lo, pre_hi)
            relax[k] = (_relu_relaxation(pre_lo, pre_hi) if isinstance(op, Relu)
                        else _maxpool_relaxation(op, pre_lo, pre_hi))
    a = margin_spec(y, net.num_outputs, dtype=lo.dtype).to(lo.device)
    return _backward(net, len(net.ops), a, relax, lo, hi)


__all__ = ["MAX_COEFFICIENTS", "crown_margin_bounds"]

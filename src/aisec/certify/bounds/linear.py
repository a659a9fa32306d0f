"""Linear bounds shared by IBP and CROWN: the margin specification and the bound of ``A x + c`` over a box.

Both methods bound the margins ``z_y - z_j`` (one row of the specification matrix ``C = e_y - e_j`` per
class ``j``) rather than the logits themselves: applying ``C`` before the last layers, not after, keeps
the bound tight (Gowal et al. 2018 call it elision of the last layer; in CROWN it is the starting
coefficient matrix of the backward pass).
"""

from __future__ import annotations

import torch


def margin_spec(y: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``C`` of shape ``(B, K, K)``: row ``j`` is ``e_y - e_j`` (row ``y`` is zero, a margin of 0)."""
    eye = torch.eye(num_classes, dtype=dtype, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def concretize(a: torch.Tensor, bias: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``min over lo <= x <= hi of A x + bias`` per row: ``A⁺ lo + A⁻ hi + bias``. ``A`` is ``(B, S, *shape)``,
    ``lo``/``hi`` are ``(B, *shape)``; the result ``(B, S)``."""
    flat = a.flatten(2)  # A⁺ lo + A⁻ hi = A mid - |A| rad
    mid, rad = ((lo + hi) / 2).flatten(1), ((hi - lo) / 2).flatten(1)
    return torch.einsum("bsn,bn->bs", flat, mid) - torch.einsum("bsn,bn->bs", flat.abs(), rad) + bias


def excluding_true(margins: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The smallest margin lower bound over the classes ``j != y``, per sample (``(B, K) -> (B,)``)."""
    masked = margins.clone()
    masked[torch.arange(margins.shape[0], device=margins.device), y] = torch.inf
    return masked.min(1).values


__all__ = ["concretize", "excluding_true", "margin_spec"]

"""Symmetric padding of image batches, scipy.ndimage's ``mode="reflect"`` (``d c b a | a b c d | d c b a``).

torch's ``F.pad`` has ``reflect`` (scipy's ``mirror``, edge not repeated) and ``replicate`` but not
this one; the filters here use it so they agree with ``scipy.ndimage.median_filter`` and
``gaussian_filter`` (the references in the tests) at the borders too. Index arithmetic, so any pad
width works (also wider than the image) and the result stays differentiable.
"""

from __future__ import annotations

import torch


def _indices(n: int, p: int, device: torch.device) -> torch.Tensor:
    i = torch.arange(-p, n + p, device=device) % (2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def pad_symmetric(x: torch.Tensor, p: int) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` padded by ``p`` on each side of H and W, symmetrically."""
    if p == 0:
        return x
    h, w = x.shape[-2:]
    x = x.index_select(-2, _indices(h, p, x.device))
    return x.index_select(-1, _indices(w, p, x.device))

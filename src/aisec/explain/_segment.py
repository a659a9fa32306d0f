"""Image segmentations (superpixels) for LIME and KernelSHAP that work from 8x8 pixels up.

``lime``'s default, quickshift with ``kernel_size=4``, yields a single segment on a 8x8 digit
and so explains nothing (the seed's LIME could not handle small or 3-channel images either). The
default here is a regular grid whose cell is ``ceil(min(H, W) / 8)`` pixels: 1x1 cells (64
features) on 8x8, 4x4 cells (49) on 28x28, 4x4 cells (64) on 32x32, 28x28 cells (64) on 224x224.
SLIC and quickshift take parameters scaled to the image size. Every segmentation returns labels
``0..K-1`` with no gaps, which ``lime`` requires (it uses ``np.unique(segments)`` as feature ids).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from aisec.core.errors import ConfigError

SEGMENTATIONS = ("grid", "slic", "quickshift")


def default_cell(height: int, width: int) -> int:
    """Grid cell side giving at most 8 cells along the shorter side."""
    return max(1, math.ceil(min(height, width) / 8))


def grid_segments(height: int, width: int, cell: int | None = None) -> np.ndarray:
    """``(H, W)`` labels of square ``cell`` x ``cell`` patches, row-major, ``0..K-1``."""
    c = cell or default_cell(height, width)
    if c < 1:
        raise ConfigError(f"grid cell must be ≥ 1 pixel, got {c}")
    cols = math.ceil(width / c)
    r = np.arange(height)[:, None] // c
    q = np.arange(width)[None, :] // c
    return (r * cols + q).astype(np.int64)


class Segmenter:
    """A picklable segmentation function ``image (H, W, C) -> labels (H, W)`` as ``lime`` calls it.

    Args:
        kind: ``grid`` (default), ``slic`` or ``quickshift``.
        cell: grid cell side in pixels (grid only; default :func:`default_cell`).
        n_segments: SLIC target count (default ``clip(H*W/16, 8, 100)``).
        compactness: SLIC compactness (default 10, for images in [0, 1]).
        kernel_size, max_dist, ratio: quickshift (defaults scaled from lime's 4/200/0.2 at 224 px).
        seed: quickshift's random seed.
    """

    def __init__(self, kind: str = "grid", seed: int = 0, **params: Any) -> None:
        if kind not in SEGMENTATIONS:
            raise ConfigError(f"unknown segmentation '{kind}'; choose one of {', '.join(SEGMENTATIONS)}")
        self.kind = kind
        self.seed = seed
        self.params = params

    def describe(self) -> dict[str, Any]:
        return {"segmentation": self.kind, **self.params}

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if self.kind == "grid":
            return grid_segments(h, w, self.params.get("cell"))
        img = np.asarray(image, dtype=np.float64)
        if img.ndim == 2:
            img = img[..., None]
        if self.kind == "slic":
            from skimage.segmentation import slic

            n = int(self.params.get("n_segments") or min(100, max(8, (h * w) // 16)))
            seg = slic(img, n_segments=n, compactness=float(self.params.get("compactness", 10.0)),
                       start_label=0, channel_axis=-1, enforce_connectivity=min(h, w) >= 16)
        else:
            from skimage.segmentation import quickshift

            if img.shape[-1] != 3:  # quickshift works in a 3-channel colour space
                img = np.repeat(img.mean(-1, keepdims=True), 3, axis=-1)
            scale = min(h, w) / 224
            seg = quickshift(
                img, kernel_size=float(self.params.get("kernel_size", max(1.0, 4 * scale))),
                max_dist=float(self.params.get("max_dist", max(2.0, 200 * scale))),
                ratio=float(self.params.get("ratio", 0.2)), rng=self.seed)
        _, relabelled = np.unique(seg, return_inverse=True)
        return relabelled.reshape(h, w).astype(np.int64)

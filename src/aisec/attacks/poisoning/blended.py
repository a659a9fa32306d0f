"""Blended trigger: a full-image pattern mixed into the image (Chen et al. 2017).

Chen, Liu, Li, Lu, Song, "Targeted Backdoor Attacks on Deep Learning Systems Using Data
Poisoning" (2017), https://arxiv.org/abs/1712.05526. ``x' = (1 - alpha) x + alpha p`` with a
seeded uniform-noise pattern ``p`` or an image file; dirty label like BadNets (use
:func:`aisec.attacks.poisoning.badnets.poison_dataset` with a :class:`BlendTrigger`).

>>> xp = BlendTrigger(alpha=0.2).apply(x)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.core.errors import ConfigError, DataError
from aisec.core.registry import register
from aisec.core.types import Modality


@register("poisoning", "blended", clean_label=False, trigger="blend", modalities={Modality.IMAGE},
          summary="dirty label: a full-image pattern blended into source-class images, relabelled to the target",
          paper="https://arxiv.org/abs/1712.05526", params=None)
class BlendTrigger(BaseModel):
    """A full-image pattern blended in: ``(1 - alpha) x + alpha pattern`` (Chen et al. 2017)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: Literal["blend"] = "blend"
    alpha: float = Field(default=0.2, gt=0, le=1, description="Blend weight of the pattern.")
    path: str | None = Field(default=None, description="Image file resized to the input size.")
    seed: int = 0

    def validate_for(self, shape: tuple[int, ...]) -> None:
        if len(shape) != 3:
            raise ConfigError(f"blend triggers need images (C, H, W); the data's samples have shape {shape}")

    def full_pattern(self, shape: tuple[int, ...]) -> torch.Tensor:
        c, h, w = shape
        if self.path is not None:
            img = _load_image(self.path, (h, w), c)
            return img
        g = torch.Generator().manual_seed(self.seed)
        return torch.rand(c, h, w, generator=g)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.validate_for(tuple(x.shape[1:]))
        p = self.full_pattern(tuple(x.shape[1:])).to(x.device, x.dtype)
        return (1 - self.alpha) * x + self.alpha * p

    @property
    def area(self) -> int:
        return 0



def _load_image(path: str, hw: tuple[int, int], channels: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"trigger image '{path}' does not exist")
    try:
        img: Image.Image = Image.open(p)
        img = img.convert("L" if channels == 1 else "RGB").resize((hw[1], hw[0]), Image.Resampling.NEAREST)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"trigger image '{path}' cannot be read: {exc}") from exc
    import numpy as np

    arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
    return arr.unsqueeze(0) if arr.ndim == 2 else arr.permute(2, 0, 1).contiguous()



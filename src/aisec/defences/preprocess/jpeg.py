"""JPEG compression as a defence (Dziugaite et al. 2016, https://arxiv.org/abs/1608.00853; Das et al.
2017, https://arxiv.org/abs/1705.02900; Guo et al. 2018, https://arxiv.org/abs/1711.00117).

Real JPEG, by Pillow's libjpeg (a maintained implementation, not a re-write): each image is rescaled
from the target's value range to 8 bits, encoded at ``quality`` and decoded, and scaled back. One
channel is a greyscale (``L``) image, three are ``RGB`` (with JPEG's own YCbCr 4:2:0 subsampling);
any other channel count is compressed channel by channel as greyscale. The map is piecewise constant
in the input (it rounds to 8 bits first), so its derivative is zero almost everywhere: plain gradient
attacks stall (Athalye et al. 2018 break it with BPDA, which the robustness check escalates to).
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from pydantic import Field

from aisec.core.registry import register
from aisec.defences.preprocess.base import DefenceParams, PreprocessDefence


class JpegParams(DefenceParams):
    quality: int = Field(default=75, ge=1, le=100, description="JPEG quality 1..100 (Pillow's scale).")


@register("defence", "jpeg", differentiable=False, stochastic=False, piecewise_constant=True,
          paper="https://arxiv.org/abs/1608.00853", aliases=("jpeg-compression",))
class Jpeg(PreprocessDefence):
    """JPEG compression and decompression of every input image (Pillow)."""

    Params = JpegParams
    name = "jpeg"

    def transform(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        assert isinstance(self.params, JpegParams)
        lo, hi = value_range
        u8 = (((x.detach().float() - lo) / (hi - lo)).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        out = np.empty_like(u8)
        q = self.params.quality
        for i in range(u8.shape[0]):
            if u8.shape[1] == 3:
                out[i] = _roundtrip(u8[i].transpose(1, 2, 0), "RGB", q).transpose(2, 0, 1)
            else:
                for c in range(u8.shape[1]):
                    out[i, c] = _roundtrip(u8[i, c], "L", q)
        back = torch.from_numpy(out).to(x.device, torch.float32) / 255
        return (back * (hi - lo) + lo).to(x.dtype)


def _roundtrip(img: np.ndarray, mode: str, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img, mode=mode).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert(mode))

"""Named input preprocessings that defences put in front of a classifier, registered by name.

Each is a non-differentiable (piecewise-constant) map of the input, so its gradient is zero almost
everywhere and a plain gradient attack through it sees nothing: the gradient masking that BPDA
(:class:`aisec.attacks.adaptive.bpda.BPDATarget`) undoes (Athalye, Carlini & Wagner 2018,
https://arxiv.org/abs/1802.00420). A plan names one as ``name`` or ``name:argument``:

- ``bit-depth:N`` — keep N bits per value (Xu, Evans & Qi, "Feature Squeezing", NDSS 2018,
  https://arxiv.org/abs/1704.01155): ``round(u * (2^N - 1)) / (2^N - 1)`` with ``u`` the value
  rescaled to [0, 1] by the target's value range (the formula of ART's ``FeatureSqueezing``).
- ``threshold:t`` — binarise at the fraction ``t`` of the value range (the MNIST binarisation
  defence, e.g. Madry et al.'s remark in https://arxiv.org/abs/1706.06083).
- ``jpeg-like:q`` — 8x8 block DCT with coefficients rounded to the JPEG luminance table scaled
  for quality ``q`` (1..100, the IJG scaling), then the inverse DCT: the lossy step of JPEG
  compression (Dziugaite et al. 2016, https://arxiv.org/abs/1608.00853), per channel; sides that
  are not multiples of 8 are padded by replication and cropped back.

>>> pre = preprocessing("bit-depth:4")
>>> pre(x, (0.0, 1.0))          # same shape, values on a 16-level grid
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F

from aisec.core.errors import ConfigError
from aisec.core.registry import get, register


class Preprocessing(Protocol):
    """A preprocessing: ``(x, value_range) -> x'`` of the same shape, inside the value range."""

    def __call__(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor: ...


def preprocessing(spec: str) -> Preprocessing:
    """The registered preprocessing named by ``spec`` (``name`` or ``name:argument``), built.

    Raises:
        ConfigError: unknown name (the message lists the known ones) or a bad argument.
    """
    name, _, arg = spec.strip().partition(":")
    info = get("preprocessing", name)
    arg = arg.strip() or info.default
    if arg and not info.argument:
        raise ConfigError(f"preprocessing '{info.name}' takes no argument, got '{spec}'")
    built: Preprocessing = info.obj.from_arg(arg)
    return built


def _number(name: str, arg: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(arg)
    except ValueError:
        raise ConfigError(f"preprocessing '{name}' needs a{'n integer' if kind is int else ' number'} "
                          f"argument, got '{arg}' (e.g. '{name}:4')") from None


@register("preprocessing", "bit-depth", argument="bits", default="4", paper="https://arxiv.org/abs/1704.01155",
          aliases=("bit_depth", "squeeze"))
class BitDepth:
    """Bit-depth reduction: keep ``bits`` bits per value (feature squeezing)."""

    def __init__(self, bits: int = 4) -> None:
        if not 1 <= bits <= 16:
            raise ConfigError(f"bit-depth needs 1..16 bits, got {bits}")
        self.bits = bits

    @classmethod
    def from_arg(cls, arg: str) -> BitDepth:
        return cls(int(_number("bit-depth", arg, int)))

    def __call__(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        lo, hi = value_range
        levels = (1 << self.bits) - 1
        u = ((x - lo) / (hi - lo)).clamp(0, 1)
        q: torch.Tensor = torch.round(u * levels)
        return q / levels * (hi - lo) + lo


@register("preprocessing", "threshold", argument="fraction of the value range", default="0.5",
          paper="https://arxiv.org/abs/1706.06083", aliases=("binarize", "binarise"))
class Threshold:
    """Binarisation: values at or above ``lo + t * (hi - lo)`` become ``hi``, the others ``lo``."""

    def __init__(self, t: float = 0.5) -> None:
        if not 0 < t < 1:
            raise ConfigError(f"threshold needs a fraction strictly between 0 and 1, got {t}")
        self.t = t

    @classmethod
    def from_arg(cls, arg: str) -> Threshold:
        return cls(float(_number("threshold", arg, float)))

    def __call__(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        lo, hi = value_range
        return torch.where(x >= lo + self.t * (hi - lo), torch.full_like(x, hi), torch.full_like(x, lo))


_JPEG_LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=torch.float32)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``D`` (``D @ v`` transforms a column ``v``)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d.float()


@register("preprocessing", "jpeg-like", argument="quality 1..100", default="75",
          paper="https://arxiv.org/abs/1608.00853", aliases=("jpeg",))
class JpegLike:
    """JPEG's lossy step: 8x8 block DCT coefficients rounded to the quality-scaled luminance table."""

    def __init__(self, quality: int = 75) -> None:
        if not 1 <= quality <= 100:
            raise ConfigError(f"jpeg-like needs a quality in 1..100, got {quality}")
        self.quality = quality
        scale = 5000 / quality if quality < 50 else 200 - 2 * quality  # IJG quality scaling
        self.table = ((_JPEG_LUMA * scale + 50) // 100).clamp(min=1)
        self.dct = _dct_matrix(8)

    @classmethod
    def from_arg(cls, arg: str) -> JpegLike:
        return cls(int(_number("jpeg-like", arg, int)))

    def __call__(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        if x.ndim < 3:
            raise ConfigError(f"jpeg-like needs image inputs (N, C, H, W) or (N, H, W), got shape {tuple(x.shape)}")
        lo, hi = value_range
        img = x if x.ndim == 4 else x.unsqueeze(1)
        h, w = img.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        u = ((img - lo) / (hi - lo)).clamp(0, 1) * 255 - 128  # JPEG's level shift
        if ph or pw:
            u = F.pad(u, (0, pw, 0, ph), mode="replicate")
        n, c, hh, ww = u.shape
        blocks = u.reshape(n, c, hh // 8, 8, ww // 8, 8).transpose(3, 4)  # (n, c, bh, bw, 8, 8)
        d, table = self.dct.to(x.device, x.dtype), self.table.to(x.device, x.dtype)
        coef = d @ blocks @ d.T
        coef = torch.round(coef / table) * table
        back = (d.T @ coef @ d).transpose(3, 4).reshape(n, c, hh, ww)[..., :h, :w]
        out = ((back + 128) / 255).clamp(0, 1) * (hi - lo) + lo
        return out if x.ndim == 4 else out.squeeze(1)

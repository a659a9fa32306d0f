"""Bit-depth reduction, the first squeezer of Feature Squeezing (Xu, Evans & Qi, NDSS 2018,
https://arxiv.org/abs/1704.01155): every value is rounded to ``bits`` bits of the value range,
``round(u * (2^bits - 1)) / (2^bits - 1)`` (ART's ``FeatureSqueezing`` formula; the same map as the
BPDA preprocessing ``bit-depth:N`` of :mod:`aisec.attacks.adaptive.preprocess`, reused here).
Piecewise constant: zero gradient almost everywhere, evaluated with BPDA.
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.attacks.adaptive.preprocess import BitDepth as _Squeeze
from aisec.core.registry import register
from aisec.defences.preprocess.base import DefenceParams, PreprocessDefence


class BitDepthParams(DefenceParams):
    bits: int = Field(default=4, ge=1, le=16, description="Bits kept per value.")


@register("defence", "bit-depth", differentiable=False, stochastic=False, piecewise_constant=True,
          paper="https://arxiv.org/abs/1704.01155", aliases=("feature-squeezing", "squeeze"))
class BitDepth(PreprocessDefence):
    """Bit-depth reduction (feature squeezing) of every input value."""

    Params = BitDepthParams
    name = "bit-depth"
    image_only = False

    def transform(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        assert isinstance(self.params, BitDepthParams)
        return _Squeeze(self.params.bits)(x, value_range)

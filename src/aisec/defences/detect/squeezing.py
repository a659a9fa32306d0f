"""Feature-squeezing disagreement (Xu, Evans & Qi, NDSS 2018, https://arxiv.org/abs/1704.01155).

The classifier's softmax on ``x`` is compared with its softmax on squeezed copies of ``x``; the score is
the largest L1 distance over the squeezers,

    score(x) = max_s ‖softmax(g(x)) − softmax(g(s(x)))‖₁,

and ``x`` is rejected when it exceeds the threshold set at ``fpr`` on clean data (section IV.B of the
paper). Legitimate inputs barely move under squeezing; adversarial perturbations, tuned to one model on
one input, often do. The squeezers are the preprocessing defences :class:`~aisec.defences.preprocess.bit_depth.BitDepth`
and :class:`~aisec.defences.preprocess.median.Median` (the paper's two).

Defaults: 3-bit depth reduction alone. Measured on digits (DigitsCNN, 200 held-out samples, threshold at
5 % FPR): the share of plain-PGD examples (Linf 0.1) detected is 0.26 / 0.75 / 0.65 / 0.62 / 0.60 at 1 / 2 /
3 / 4 / 5 bits, and 0.02 with a 3x3 median — on 8x8 images a 3x3 median changes clean inputs as much as an
attack does, so its clean scores set a threshold nothing exceeds (the paper's 2x2 median was for 28x28
MNIST). Add it with ``median=3`` on larger images.

Neither squeezer has a useful gradient, so the adaptive attack (He et al. 2017, "Adversarial example
defenses: ensembles of weak defenses are not strong", https://arxiv.org/abs/1706.04701) differentiates
through them straight-through (BPDA: ``s(x)`` in the forward pass, the identity in the backward one).
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator

from aisec.core.registry import register
from aisec.defences.detect.base import DetectorParams, InputDetector
from aisec.defences.preprocess.bit_depth import BitDepth
from aisec.defences.preprocess.median import Median


class SqueezingParams(DetectorParams):
    bits: int | None = Field(default=3, ge=1, le=16, description="Bit-depth squeezer: bits kept (None: none).")
    median: int | None = Field(default=None, ge=3, le=31, description="Median squeezer: window side, odd (None: none).")

    @field_validator("median")
    @classmethod
    def _odd(cls, v: int | None) -> int | None:
        if v is not None and v % 2 == 0:
            raise ValueError(f"the median window side must be odd (3, 5, ...), got {v}")
        return v


@register("rejector", "feature-squeezing", trained=False, adaptive="bpda",
          paper="https://arxiv.org/abs/1704.01155", aliases=("squeezing",))
class FeatureSqueezing(InputDetector):
    """Feature squeezing: the L1 distance between the softmax on x and on its squeezed copies."""

    Params = SqueezingParams
    name = "feature-squeezing"

    def squeezers(self, input_shape: tuple[int, ...]) -> list[BitDepth | Median]:
        p = self.params
        assert isinstance(p, SqueezingParams)
        out: list[BitDepth | Median] = []
        if p.bits is not None:
            out.append(BitDepth(bits=p.bits))
        if p.median is not None and len(input_shape) == 3:  # median smoothing is spatial: images only
            out.append(Median(size=p.median))
        return out

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``s(x)`` for each squeezer, straight-through (BPDA) when ``x`` needs a gradient."""
        spec = self.classifier().spec
        out = []
        for s in self.squeezers(tuple(spec.input_shape)):
            with torch.no_grad():
                sx = s(x.detach(), spec.value_range)
            out.append(x + (sx - x).detach() if x.requires_grad else sx)
        return out

    def attack_score(self, x: torch.Tensor) -> torch.Tensor:
        target = self.classifier()
        grad = x.requires_grad

        def probs(v: torch.Tensor) -> torch.Tensor:
            return torch.softmax(target.logits(v), dim=1) if grad else target.predict(v)

        p0 = probs(x)
        scores = [(p0 - probs(v)).abs().sum(1) for v in self.views(x)]
        if not scores:
            return torch.zeros(x.shape[0], device=x.device)
        return torch.stack(scores).amax(0)

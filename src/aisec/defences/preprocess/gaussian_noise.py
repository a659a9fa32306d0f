"""Gaussian input noise as a randomised defence (e.g. Liu et al., "Towards Robust Neural Networks via
Random Self-ensemble", ECCV 2018, https://arxiv.org/abs/1712.00673; the noise layer of randomized
smoothing without its certificate, Cohen et al. 2019, https://arxiv.org/abs/1902.02918).

Every forward adds fresh ``N(0, sigma^2)`` noise (``sigma`` a fraction of the value range) and clips to
the range. Differentiable, but stochastic: one forward's gradient is one random model's, so a plain
PGD follows noise and its final, re-drawn prediction can undo a barely-adversarial input; the
robustness check's ``randomized`` probe sees it and escalates to EOT (Athalye et al. 2018, 4.3).
Draws come from torch's global generator, which a run seeds.
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.core.registry import register
from aisec.defences.preprocess.base import DefenceParams, PreprocessDefence


class GaussianNoiseParams(DefenceParams):
    sigma: float = Field(default=0.1, gt=0, le=1, description="Noise standard deviation, as a fraction of the "
                         "value range.")
    clip: bool = Field(default=True, description="Clip the noisy input back to the value range.")


@register("defence", "gaussian-noise", differentiable=True, stochastic=True,
          paper="https://arxiv.org/abs/1712.00673", aliases=("noise", "random-noise"))
class GaussianNoise(PreprocessDefence):
    """Fresh Gaussian noise on every input at every query (randomised)."""

    Params = GaussianNoiseParams
    name = "gaussian-noise"
    image_only = False

    def transform(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        assert isinstance(self.params, GaussianNoiseParams)
        lo, hi = value_range
        out = x + torch.randn_like(x) * (self.params.sigma * (hi - lo))
        return out.clamp(lo, hi) if self.params.clip else out

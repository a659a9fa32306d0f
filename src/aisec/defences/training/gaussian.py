"""Gaussian-noise augmentation: train on copies of each batch with N(0, sigma^2) noise added.

Zantedeschi, Nicolae & Rawat, "Efficient Defenses Against Adversarial Attacks", AISec 2017,
https://arxiv.org/abs/1707.06728 (ART's ``GaussianAugmentation``); Cohen, Rosenfeld & Kolter 2019,
https://arxiv.org/abs/1902.02918, train the base classifier of randomized smoothing this way.

Each batch: ``x + sigma * N(0, 1)``, clipped to the value range. With ``keep_clean`` (the default,
like ART's ``augmentation=True`` at ratio 1) the loss is the cross-entropy over the clean and the
noisy copies together; without it, over the noisy copies only (Cohen et al.). No gradient of the
input is taken: it is the cheapest defence here, and it buys robustness to noise more than to
worst-case perturbations — assess it with PGD to see how much.

>>> aisec defend -m digits-cnn -d digits --recipe gaussian-augment:sigma=0.2,epochs=10 -o noisy.safetensors
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from aisec.core.registry import register
from aisec.defences.training.base import Forward, TrainingParams


class GaussianAugmentParams(TrainingParams):
    sigma: float = Field(default=0.1, gt=0, le=1e6, description="Std of the Gaussian noise, in the data range.")
    keep_clean: bool = Field(default=True, description="Train on the clean batch too (ART's augmentation=True).")


@register("training", "gaussian-augment", paper="https://arxiv.org/abs/1707.06728",
          aliases=("gaussian", "noise", "gaussian-augmentation"))
class GaussianAugment:
    """Gaussian-noise augmentation: train on noisy copies (and the clean batch)."""

    Params = GaussianAugmentParams

    def loss(self, forward: Forward, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             params: GaussianAugmentParams, value_range: tuple[float, float]) -> torch.Tensor:
        noisy = (x + params.sigma * torch.randn_like(x)).clamp(*value_range)
        if params.keep_clean:
            return F.cross_entropy(forward(torch.cat([x, noisy])), torch.cat([y, y]))
        return F.cross_entropy(forward(noisy), y)

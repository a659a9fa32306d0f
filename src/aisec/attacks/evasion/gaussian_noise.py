"""Gaussian noise: repeated additive Gaussian noise on the L2 sphere of radius eps (a random baseline).

Rauber, Brendel & Bethge, "Foolbox: A Python toolbox to benchmark the robustness of machine learning
models", 2017, https://arxiv.org/abs/1707.04131 (``L2RepeatedAdditiveGaussianNoiseAttack``).

Norms: l2. Needs: nothing but the predicted label (black box, decision-based). Untargeted or targeted.
Budget: ``repeats`` queries per sample, never more than the target's ``query_budget`` (see
:mod:`._noise`). Each draw is ``x + eps * n / ||n||_2`` with ``n ~ N(0, I)``, clipped to the value
range; the first draw that fools the target is kept.

A random-noise baseline (registry fact ``baseline``): a gradient attack at the same norm and eps that
is *weaker* than random noise is a sign of gradient masking, not of robustness.

Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> out = run_attack("gaussian-noise", target, x, y, {"norm": "l2", "eps": 2.0, "repeats": 100})
"""

from __future__ import annotations

import torch
from pydantic import Field

from aisec.attacks.evasion._blackbox import DECISION_ONLY
from aisec.attacks.evasion._noise import NoiseParams, repeated_noise
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


class GaussianNoiseParams(NoiseParams):
    norm: Norm = Field(default=Norm.L2, description="Norm of the budget: l2 (Gaussian noise has no Linf sphere).")
    eps: float = Field(default=1.0, ge=0, le=1e6, description="L2 radius of every noise draw.")


@register_attack(
    "gaussian-noise",
    requires=DECISION_ONLY,
    norms={Norm.L2},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1707.04131",
    natural_norm=Norm.L2,
    baseline=True,
)
class GaussianNoise:
    """Repeated additive Gaussian noise scaled to L2 norm eps; keeps the first draw that fools."""

    Params = GaussianNoiseParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: GaussianNoiseParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return repeated_noise(target, x, y, target_labels, params, torch.randn_like)

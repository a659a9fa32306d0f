"""Uniform noise: repeated additive uniform noise scaled to the Linf or L2 sphere of radius eps.

Rauber, Brendel & Bethge, "Foolbox: A Python toolbox to benchmark the robustness of machine learning
models", 2017, https://arxiv.org/abs/1707.04131 (``LinfRepeatedAdditiveUniformNoiseAttack``,
``L2RepeatedAdditiveUniformNoiseAttack``).

Norms: linf, l2. Needs: nothing but the predicted label (black box, decision-based). Untargeted or
targeted. Budget: ``repeats`` queries per sample, never more than the target's ``query_budget`` (see
:mod:`._noise`). Each draw is ``x + eps * u / ||u||`` with ``u ~ U(-1, 1)^d`` (so in Linf the largest
coordinate is exactly ``eps``), clipped to the value range; the first draw that fools is kept.

A random-noise baseline (registry fact ``baseline``): a gradient attack at the same norm and eps that
is *weaker* than random noise is a sign of gradient masking, not of robustness.

Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> out = run_attack("uniform-noise", target, x, y, {"eps": 0.3, "repeats": 100})
>>> out = run_attack("uniform-noise", target, x, y, {"norm": "l2", "eps": 2.0})
"""

from __future__ import annotations

import torch

from aisec.attacks.evasion._blackbox import DECISION_ONLY
from aisec.attacks.evasion._noise import NoiseParams, repeated_noise
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm


def _uniform(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x).uniform_(-1.0, 1.0)


@register_attack(
    "uniform-noise",
    requires=DECISION_ONLY,
    norms={Norm.LINF, Norm.L2},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1707.04131",
    baseline=True,
)
class UniformNoise:
    """Repeated additive uniform noise scaled to Linf or L2 norm eps; keeps the first draw that fools."""

    Params = NoiseParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: NoiseParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return repeated_noise(target, x, y, target_labels, params, _uniform)

"""NewtonFool: Newton-like steps that drive the true class's probability down to chance.

Jang, Wu & Jha, "Objective Metrics and Gradient Descent Algorithms for Adversarial Examples in
Machine Learning", ACSAC 2017, https://doi.org/10.1145/3134600.3134635

Norms: l2 (minimum norm: ``eps`` is ignored; the driver reports the distance of what was found).
Needs: gradients. Untargeted only.

With ``F(x)`` the softmax probability of the label ``y`` and ``g = grad F(x_i)``, each step solves
the linearised equation ``F(x_i) + g . d = F(x_i) - delta_i`` with the smallest ``d``:

    delta_i = min(eta * ||x_0||_2 * ||g||_2,  F(x_i) - 1 / n_classes)
    x_{i+1} = x_i - delta_i * g / ||g||_2^2

(the paper's Algorithm 1): ``eta`` caps each step's decrease relative to the input's size, and the
second term never asks for less than chance probability. Two choices the paper leaves open follow
Foolbox's ``NewtonFoolAttack``: every step is clipped to the value range (gradients are taken at
valid inputs), and a sample stops as soon as it is misclassified — otherwise, once ``F`` falls below
chance, ``delta`` turns negative and the steps push the probability back up. Foolbox's own update
squares both norms (``||x_0||^2 ||g||^2`` and divides by ``||g||^4``), which is not the paper's
formula; ART's ``NewtonFool`` implements the formula but never stops and clips once at the end. The
reference test compares with both (tests/reference/test_more_attacks_reference.py).

The batch is processed at once: one forward and one backward pass per step.
Shapes: x ``(N, *input_shape)`` in the target's range; returns x_adv of the same shape.

>>> out = run_attack("newtonfool", target, x, y, {"steps": 100, "eta": 0.01})
>>> out.distance[out.success].median()
"""

from __future__ import annotations

from typing import cast

import torch
from pydantic import Field

from aisec.attacks.base import EvasionParams, needs_gradients, trace_margin
from aisec.core.registry import AttackKind, register_attack
from aisec.core.target import Target
from aisec.core.types import Norm

_TOL = 1e-12


class NewtonFoolParams(EvasionParams):
    norm: Norm = Field(default=Norm.L2, description="Norm the distance is reported in: l2 (the paper's).")
    steps: int = Field(default=100, ge=1, description="Maximum number of Newton steps (ART: max_iter=100).")
    eta: float = Field(
        default=0.01, gt=0, description="Step cap: each step lowers F by at most eta * ||x0|| * ||grad F||."
    )


@register_attack(
    "newtonfool",
    requires=needs_gradients(),
    norms={Norm.L2},
    targeted=False,
    kind=AttackKind.MIN_NORM,
    paper="https://doi.org/10.1145/3134600.3134635",
    natural_norm=Norm.L2,
    iterative=True,
)
class NewtonFool:
    """NewtonFool (Jang et al. 2017): Newton steps on the true class's softmax probability (minimum L2)."""

    Params = NewtonFoolParams

    def run(
        self,
        target: Target,
        x: torch.Tensor,
        y: torch.Tensor,
        params: NewtonFoolParams,
        *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        lo, hi = target.spec.value_range
        n = x.shape[0]
        view = (-1, *([1] * (x.ndim - 1)))
        x = x.detach()
        x0_norm = cast(torch.Tensor, x.reshape(n, -1).norm(dim=1))
        x_adv = x.clone()
        rows = torch.arange(n, device=x.device)
        for _ in range(params.steps):
            x_adv.requires_grad_(True)
            logits = target.logits(x_adv).float()
            probs = logits.softmax(1)
            f = probs[rows, y]
            (g,) = torch.autograd.grad(f.sum(), x_adv)
            trace_margin(logits, y)
            with torch.no_grad():
                active = probs.argmax(1) == y
                if not active.any():
                    break
                g_norm = cast(torch.Tensor, g.reshape(n, -1).norm(dim=1))
                delta = torch.minimum(params.eta * x0_norm * g_norm, f - 1.0 / probs.shape[1])
                delta = delta.clamp_min(0) * active
                step = (delta / g_norm.square().clamp_min(_TOL)).view(view) * g
                x_adv = (x_adv - step).clamp(lo, hi)
        return x_adv.detach()
